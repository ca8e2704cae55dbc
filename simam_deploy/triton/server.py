"""Run a local ``tritonserver`` on loopback: for tests, benchmarks and trying a repository out.

The server comes from the ``nvidia-pytriton`` wheel (Triton 2.51 with only the python backend; it
starts on a CPU-only machine). :func:`install_server` unpacks the server part of that wheel into a
folder of ours, without installing pytriton itself (which pins numpy < 2). :class:`LocalTritonServer`
starts it on 127.0.0.1 only, waits until it is ready and always stops it: no process and no open port
is left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from simam_deploy.errors import InputError, MissingDependencyError

SERVER_ENV = "SIMAM_TRITONSERVER"
PYTHON_ENV = "SIMAM_TRITON_PYTHON"
PYTRITON_WHEEL = "nvidia-pytriton==0.7.0"
LOOPBACK = "127.0.0.1"
_INSTALL_HINT = (
    f"run `make triton-server` (unpacks the tritonserver binary of {PYTRITON_WHEEL} into "
    f".venv/tritonserver), or set {SERVER_ENV}=/path/to/bin/tritonserver"
)


@dataclass(frozen=True)
class ServerDistribution:
    """A tritonserver binary and the backend folder beside it."""

    binary: Path
    backend_dir: Path

    @property
    def python_stub(self) -> Path:
        return self.backend_dir / "python" / "triton_python_backend_stub"


def default_install_dir() -> Path:
    return Path(sys.prefix) / "tritonserver"


def default_python_env() -> Path:
    """The Python environment the python backend runs models in.

    The stub of the wheel's python backend exchanges tensors with numpy's 1.x ABI: with numpy 2 it
    returns wrong data or fails ("PyCapsule_GetPointer called with incorrect name"), so models run in
    a small environment of their own (numpy<2, onnxruntime): ``$SIMAM_TRITON_PYTHON``, else
    ``<venv>/triton-python`` when `make triton-server` made it, else this interpreter's environment.
    """
    explicit = os.environ.get(PYTHON_ENV)
    if explicit:
        return Path(explicit)
    beside = Path(sys.prefix) / "triton-python"
    return beside if (beside / "bin" / "python3").exists() else Path(sys.prefix)


def find_server(explicit: str | os.PathLike | None = None) -> ServerDistribution:
    """The tritonserver to run: ``explicit``, ``$SIMAM_TRITONSERVER``, then our install folder."""
    candidates = [explicit, os.environ.get(SERVER_ENV), default_install_dir() / "bin" / "tritonserver"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            binary = Path(candidate).resolve()
            return ServerDistribution(binary=binary, backend_dir=binary.parent.parent / "backends")
    raise MissingDependencyError("no tritonserver binary found", _INSTALL_HINT)


def install_server(wheel: str | os.PathLike, dest: str | os.PathLike | None = None) -> ServerDistribution:
    """Unpack tritonserver (+ its bundled libraries) from a downloaded nvidia-pytriton wheel into
    ``dest`` and put the python-backend stub for this Python where the backend looks for it."""
    dest = Path(dest) if dest else default_install_dir()
    wheel = Path(wheel)
    if not zipfile.is_zipfile(wheel):
        raise InputError(
            f"{wheel} is not a wheel", f"download it with: pip download --no-deps {PYTRITON_WHEEL}"
        )
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    with zipfile.ZipFile(wheel) as archive:
        members = [
            m
            for m in archive.namelist()
            if m.startswith(("pytriton/tritonserver/", "nvidia_pytriton.libs/")) and not m.endswith("/")
        ]
        if not any(m.endswith("bin/tritonserver") for m in members):
            raise InputError(f"{wheel} holds no tritonserver binary", f"use the {PYTRITON_WHEEL} wheel")
        for member in members:
            # Keep the wheel's layout: the binaries find their libraries through $ORIGIN-relative RPATHs.
            target = staging / member
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            info = archive.getinfo(member)
            mode = (info.external_attr >> 16) & 0o777
            target.chmod(mode or 0o644)
    server_root = staging / "pytriton" / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = server_root / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise InputError(f"{wheel} has no python-backend stub for Python {version}", "use Python 3.9 to 3.13")
    shutil.copy2(stub, server_root / "backends" / "python" / "triton_python_backend_stub")
    for binary in (server_root / "bin" / "tritonserver", server_root / "backends" / "python" / stub.name):
        binary.chmod(0o755)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(staging, dest)
    (dest / "bin").mkdir(exist_ok=True)
    link = dest / "bin" / "tritonserver"
    if not link.exists():
        link.symlink_to(Path("..") / "pytriton" / "tritonserver" / "bin" / "tritonserver")
    return find_server(dest / "pytriton" / "tritonserver" / "bin" / "tritonserver")


def free_port() -> int:
    """A TCP port free on loopback right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((LOOPBACK, port)) == 0


class LocalTritonServer:
    """``with LocalTritonServer(repo) as server:`` serves ``repo`` on 127.0.0.1 until the block ends.

    ``explicit=True`` starts with no model loaded (``--model-control-mode=explicit``) so that each
    model can be loaded on its own and its failure read back (:meth:`load`).
    """

    def __init__(
        self,
        repository: str | os.PathLike,
        *,
        server: ServerDistribution | None = None,
        explicit: bool = False,
        backend_config: Sequence[str] = (),
        log_path: str | os.PathLike | None = None,
        startup_timeout: float = 90.0,
        python_env: str | os.PathLike | None = None,
    ) -> None:
        self.repository = Path(repository).resolve()
        self.server = server or find_server()
        self.explicit = explicit
        self.backend_config = list(backend_config)
        self.log_path = Path(log_path) if log_path else self.repository.parent / "tritonserver.log"
        self.startup_timeout = startup_timeout
        self.python_env = Path(python_env) if python_env else default_python_env()
        self.http_port = self.grpc_port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"{LOOPBACK}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{LOOPBACK}:{self.grpc_port}"

    def command(self) -> list[str]:
        command = [
            str(self.server.binary),
            f"--model-repository={self.repository}",
            f"--backend-directory={self.server.backend_dir}",
            f"--http-address={LOOPBACK}",
            f"--http-port={self.http_port}",
            f"--grpc-address={LOOPBACK}",
            f"--grpc-port={self.grpc_port}",
            "--allow-metrics=false",  # the metrics endpoint would listen on every address
            "--allow-sagemaker=false",
            "--allow-vertex-ai=false",
            f"--exit-timeout-secs={10}",
        ]
        if self.explicit:
            command.append("--model-control-mode=explicit")
        command += [f"--backend-config={entry}" for entry in self.backend_config]
        return command

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        # The python backend's stub embeds libpython and takes its prefix (and so site-packages
        # with numpy and onnxruntime) from the first `python3` on PATH.
        env["PATH"] = f"{self.python_env / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        libdir = sysconfig.get_config_var("LIBDIR")
        if libdir:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [libdir, env.get("LD_LIBRARY_PATH")]))
        return env

    def start(self) -> LocalTritonServer:
        self.http_port, self.grpc_port = free_port(), free_port()
        while self.grpc_port == self.http_port:
            self.grpc_port = free_port()
        log = open(self.log_path, "wb")  # noqa: SIM115 - the server writes to it until stop()
        self.process = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self._environment(),
            start_new_session=True,  # so that stop() can end the python stubs too
        )
        log.close()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                text = self.log_text()
                self.process = None
                raise InputError(
                    f"tritonserver exited during start-up: {_last_error(text)}",
                    f"read the whole log in {self.log_path}",
                )
            if self._get("/v2/health/live") == 200:
                return self
            time.sleep(0.2)
        self.stop()
        raise InputError(
            f"tritonserver did not start in {self.startup_timeout:.0f} s", f"see {self.log_path}"
        )

    def ready(self, model: str | None = None) -> bool:
        path = f"/v2/models/{model}/ready" if model else "/v2/health/ready"
        return self._get(path) == 200

    def load(self, model: str) -> tuple[bool, str]:
        """Ask the server to load ``model`` (explicit mode); returns (loaded, the server's message)."""
        request = urllib.request.Request(
            f"http://{self.http_url}/v2/repository/models/{model}/load", data=b"{}", method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status == 200, response.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return False, exc.read().decode(errors="replace")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the server's process group, wait, and SIGKILL what is left."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        # The stubs are in the same session: make sure none outlives the server.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _get(self, path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}{path}", timeout=2) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return 0

    def __enter__(self) -> LocalTritonServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _last_error(log: str) -> str:
    errors = [line.strip() for line in log.splitlines() if line.startswith("E") or "error" in line.lower()]
    return errors[-1][:400] if errors else "(no error line in the log)"
