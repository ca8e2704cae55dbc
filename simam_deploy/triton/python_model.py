"""Triton python-backend model written by ``simam-deploy triton --backend python``.

It runs ``model.onnx`` (beside this file) in ONNX Runtime on the CPU, with the SimAM op library that
the repository ships in ``lib/`` registered, for servers that have no ONNX Runtime backend. Requests
that arrive together (dynamic batching) are concatenated along the batch axis and run as one batch.
This file runs inside the server's Python stub; it needs numpy and onnxruntime there.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


def _parameter(config, key):
    return config.get("parameters", {}).get(key, {}).get("string_value", "")


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        model_dir = os.path.join(args["model_repository"], args["model_version"])
        options = ort.SessionOptions()
        library = _parameter(config, "op_library")
        if library:
            options.register_custom_ops_library(os.path.join(args["model_repository"], library))
        onnx_file = os.path.join(model_dir, _parameter(config, "onnx_file") or "model.onnx")
        self.session = ort.InferenceSession(onnx_file, options, providers=["CPUExecutionProvider"])
        self.batched = config.get("max_batch_size", 0) > 0
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def execute(self, requests):
        try:
            feeds = [
                {name: pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self.inputs}
                for r in requests
            ]
        except Exception as exc:  # a malformed request fails alone, with the reason
            return [pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))) for _ in requests]
        if self.batched and len(feeds) > 1 and self._same_trailing_shapes(feeds):
            return self._run_together(feeds)
        return [self._run_one(feed) for feed in feeds]

    def _same_trailing_shapes(self, feeds):
        return all(
            len({f[name].shape[1:] for f in feeds}) == 1 and len({f[name].dtype for f in feeds}) == 1
            for name in self.inputs
        )

    def _run_together(self, feeds):
        sizes = [f[self.inputs[0]].shape[0] for f in feeds]
        joined = {name: np.concatenate([f[name] for f in feeds]) for name in self.inputs}
        try:
            results = self.session.run(self.outputs, joined)
        except Exception as exc:
            return [pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))) for _ in feeds]
        bounds = np.cumsum([0, *sizes])
        return [
            pb_utils.InferenceResponse(
                [
                    pb_utils.Tensor(name, np.ascontiguousarray(value[bounds[k] : bounds[k + 1]]))
                    for name, value in zip(self.outputs, results, strict=True)
                ]
            )
            for k in range(len(feeds))
        ]

    def _run_one(self, feed):
        try:
            results = self.session.run(self.outputs, feed)
        except Exception as exc:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc)))
        return pb_utils.InferenceResponse(
            [pb_utils.Tensor(name, value) for name, value in zip(self.outputs, results, strict=True)]
        )

    def finalize(self):
        self.session = None
