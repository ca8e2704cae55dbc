"""Query a Triton server over HTTP or gRPC (``tritonclient``), time it, and load-test it.

``tritonclient`` is an optional dependency (``pip install "simam-deploy[triton]"``); it is imported
only when a function here runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Any

import numpy as np

from simam_deploy.errors import InputError, MissingDependencyError

PROTOCOLS = ("http", "grpc")
_NP_TO_TRITON = {
    np.dtype(np.float32): "FP32",
    np.dtype(np.float16): "FP16",
    np.dtype(np.float64): "FP64",
    np.dtype(np.int64): "INT64",
    np.dtype(np.int32): "INT32",
    np.dtype(np.uint8): "UINT8",
    np.dtype(np.bool_): "BOOL",
}
_TRITON_TO_NP = {v: k for k, v in _NP_TO_TRITON.items()}


def _client_module(protocol: str) -> ModuleType:
    if protocol not in PROTOCOLS:
        raise InputError(f"unknown protocol {protocol!r}", "use http or grpc")
    try:
        if protocol == "http":
            import tritonclient.http as module
        else:
            import tritonclient.grpc as module
    except ImportError as exc:
        raise MissingDependencyError(
            f"tritonclient[{protocol}] is not installed ({exc})", 'pip install "simam-deploy[triton]"'
        ) from exc
    return module


def split_url(url: str) -> tuple[str, str]:
    """``http://host:8000`` -> ("http", "host:8000"); ``grpc://host:8001`` -> ("grpc", ...)."""
    for protocol in PROTOCOLS:
        prefix = f"{protocol}://"
        if url.startswith(prefix):
            return protocol, url[len(prefix) :].rstrip("/")
    if "://" in url:
        raise InputError(f"unsupported URL scheme in {url!r}", "use http://HOST:PORT or grpc://HOST:PORT")
    return "http", url.rstrip("/")


class TritonEndpoint:
    """One model on one server, over one protocol. Not thread-safe: one per thread."""

    def __init__(self, url: str, model: str, protocol: str | None = None, timeout: float = 60.0) -> None:
        scheme, address = split_url(url)
        self.protocol = protocol or scheme
        self.model = model
        self.address = address
        self._module = _client_module(self.protocol)
        self._client = (
            self._module.InferenceServerClient(address, network_timeout=timeout)
            if (self.protocol == "http")
            else self._module.InferenceServerClient(address)
        )
        self.timeout = timeout

    def metadata(self) -> dict[str, Any]:
        """The model's inputs and outputs as the server declares them."""
        try:
            if self.protocol == "http":
                return self._client.get_model_metadata(self.model)
            return self._client.get_model_metadata(self.model, as_json=True)
        except Exception as exc:
            raise InputError(
                f"cannot read model {self.model!r} from the server at {self.address}: {_first_line(exc)}",
                "check the URL and the model name (curl URL/v2/models/NAME)",
            ) from exc

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tensors = []
        for name, value in inputs.items():
            value = np.ascontiguousarray(value)
            datatype = _NP_TO_TRITON.get(value.dtype)
            if datatype is None:
                raise InputError(f"input {name!r} has dtype {value.dtype}, which Triton clients cannot send")
            tensor = self._module.InferInput(name, list(value.shape), datatype)
            tensor.set_data_from_numpy(value)
            tensors.append(tensor)
        result = self._client.infer(self.model, tensors)
        names = [o["name"] for o in self._outputs()]
        return {name: result.as_numpy(name) for name in names}

    def _outputs(self) -> list[dict[str, Any]]:
        if not hasattr(self, "_output_meta"):
            self._output_meta = self.metadata()["outputs"]
        return self._output_meta

    def close(self) -> None:
        self._client.close()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def random_inputs(
    endpoint: TritonEndpoint, batch: int, shape: tuple[int, ...] | None = None
) -> dict[str, np.ndarray]:
    """Standard-normal inputs of the declared shapes (``-1`` = ``batch`` first, 32 elsewhere
    unless ``shape`` fixes the whole input shape)."""
    rng = np.random.default_rng(0)
    feeds = {}
    for meta in endpoint.metadata()["inputs"]:
        dims = [int(d) for d in meta["shape"]]
        if shape is not None:
            dims = list(shape)
        elif dims and dims[0] == -1:
            dims[0] = batch
        if any(d < 0 for d in dims):
            raise InputError(
                f"input {meta['name']!r} has dynamic dims {meta['shape']}",
                "give the full shape, e.g. --input-shape 1x3x32x32",
            )
        dtype = _TRITON_TO_NP.get(meta["datatype"], np.dtype(np.float32))
        feeds[meta["name"]] = rng.standard_normal(dims).astype(dtype)
    return feeds


@dataclass
class LoadReport:
    protocol: str
    requests: int
    concurrency: int
    errors: int
    seconds: float
    throughput_rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    first_error: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_test(
    url: str,
    model: str,
    make_inputs: Callable[[int], dict[str, np.ndarray]],
    *,
    requests: int = 500,
    concurrency: int = 16,
    protocol: str | None = None,
    check: Callable[[int, dict[str, np.ndarray]], None] | None = None,
    deadline_s: float = 300.0,
) -> LoadReport:
    """Send ``requests`` inferences to a Triton model, ``concurrency`` at a time, each thread with
    its own client. ``make_inputs(i)`` gives request i's inputs; ``check(i, outputs)`` may raise to
    count a wrong answer as an error."""
    local = threading.local()
    clients: list[TritonEndpoint] = []
    lock = threading.Lock()

    def endpoint() -> TritonEndpoint:
        if getattr(local, "endpoint", None) is None:
            local.endpoint = TritonEndpoint(url, model, protocol)
            with lock:
                clients.append(local.endpoint)
        return local.endpoint

    def one(i: int) -> None:
        outputs = endpoint().infer(make_inputs(i))
        if check is not None:
            check(i, outputs)

    try:
        return run_load(
            one, requests=requests, concurrency=concurrency, deadline_s=deadline_s,
            label=protocol or split_url(url)[0],
        )  # fmt: skip
    finally:
        for client in clients:
            client.close()


def run_load(
    one_request: Callable[[int], object],
    *,
    requests: int,
    concurrency: int,
    deadline_s: float = 300.0,
    label: str = "local",
) -> LoadReport:
    """Call ``one_request(i)`` for i < ``requests`` from ``concurrency`` threads; bounded in count and
    in time (requests not started by the deadline count as errors). Times each call."""
    if requests < 1 or concurrency < 1:
        raise InputError("requests and concurrency must be at least 1", "e.g. 500 requests, 16 at a time")
    stop_at = time.monotonic() + deadline_s

    def timed(i: int) -> tuple[float, str | None]:
        if time.monotonic() > stop_at:
            return 0.0, "deadline passed before the request was sent"
        start = time.perf_counter()
        try:
            one_request(i)
        except Exception as exc:  # every failure is counted and the first one reported
            return time.perf_counter() - start, _first_line(exc)
        return time.perf_counter() - start, None

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(timed, range(requests)))
    seconds = time.perf_counter() - start
    latencies = np.array([t for t, err in results if err is None]) * 1e3
    errors = [err for _, err in results if err is not None]

    def pct(q: float) -> float:
        return float(np.percentile(latencies, q)) if latencies.size else float("nan")

    return LoadReport(
        protocol=label,
        requests=requests,
        concurrency=concurrency,
        errors=len(errors),
        seconds=seconds,
        throughput_rps=(requests - len(errors)) / seconds,
        p50_ms=pct(50),
        p90_ms=pct(90),
        p99_ms=pct(99),
        first_error=errors[0] if errors else None,
    )
