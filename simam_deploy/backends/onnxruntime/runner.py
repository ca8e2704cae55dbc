"""ONNX Runtime backend. Models with ``SimAM`` nodes run through the compiled op library
(``simam_deploy.backends.onnxruntime.library``: libsimam_ort_ops.so, CPU float32/float16/bfloat16
and the CUDA EP)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx

from simam_deploy.errors import InputError
from simam_deploy.graph.contract import count_simam_nodes
from simam_deploy.onnx_utils import (
    READABLE_IR_VERSION,
    cap_ir_version,
    load_onnx,
    uses_external_data,
)

_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}


def _copy(proto: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    return copy


def default_providers() -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


class OnnxRuntimeRunner:
    """Runs an ONNX file (or ModelProto) with ONNX Runtime."""

    name = "onnxruntime"

    def __init__(
        self,
        model: str | Path | onnx.ModelProto,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        if threads is not None and threads < 1:
            raise InputError(f"threads must be >= 1, got {threads}", "e.g. --threads 1")

        path: Path | None = None
        if isinstance(model, onnx.ModelProto):
            proto = model
        else:  # a file is validated (external-data locations included) but its weights are not read here
            path = Path(model)
            proto = load_onnx(path, load_external=False)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads is not None:
            options.intra_op_num_threads = threads  # ONNX Runtime's default: one per physical core
        needs_rewrite = proto.ir_version > READABLE_IR_VERSION or count_simam_nodes(proto) > 0
        if path is not None and needs_rewrite:
            proto = load_onnx(path, check=False)  # rewritten in memory: weights included
        if proto.ir_version > READABLE_IR_VERSION:
            proto = cap_ir_version(_copy(proto))  # the caller's ModelProto stays untouched
        # an unmodified file is opened by path, so ONNX Runtime reads external data (and > 2 GB) itself
        opened_by_path = path is not None and not needs_rewrite
        model_bytes = str(path) if opened_by_path else proto.SerializeToString()
        if count_simam_nodes(proto):
            from simam_deploy.backends.onnxruntime import library as simam_ort

            simam_ort.register(options)
        self.providers = list(providers) if providers else ["CPUExecutionProvider"]
        try:
            try:
                self.session = ort.InferenceSession(
                    model_bytes, sess_options=options, providers=self.providers
                )
            except Exception:
                if path is None or not opened_by_path or not uses_external_data(proto):
                    raise
                # ONNX Runtime's shape inference cannot read external data that a node needs as a
                # constant (e.g. ReduceMean's axes in torch's dynamo exports): hand it over loaded
                proto = load_onnx(path, check=False)
                self.session = ort.InferenceSession(
                    proto.SerializeToString(), sess_options=options, providers=self.providers
                )
        except Exception as exc:
            hint = "check the file with `python -m onnx.checker`, or unfuse custom ops (simam-deploy unfuse)"
            if any(init.data_type == onnx.TensorProto.BFLOAT16 for init in proto.graph.initializer):
                hint = (
                    "ONNX Runtime's CPU provider has no bfloat16 kernels: validate the engine built from "
                    "this file (simam-deploy build), or the float32/fp16 file"
                )
            raise InputError(
                f"ONNX Runtime cannot load the model: {str(exc).strip().splitlines()[0]}", hint
            ) from exc

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.session.get_inputs()]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.session.get_outputs()]

    def input_spec(self) -> list[tuple[str, tuple[int | str | None, ...], np.dtype]]:
        return [
            (i.name, tuple(i.shape), np.dtype(_ORT_TYPES.get(i.type, np.float32)))
            for i in self.session.get_inputs()
        ]

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            outputs = self.session.run(None, inputs)
        except Exception as exc:  # onnxruntime's Fail/InvalidArgument/... carry the node's message
            raise InputError(
                f"ONNX Runtime failed to run the model: {str(exc).strip().splitlines()[0]}",
                "check the input shapes and dtypes against the model (SimAM nodes name themselves)",
            ) from exc
        return dict(zip(self.output_names, outputs, strict=True))
