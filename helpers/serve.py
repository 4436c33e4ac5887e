"""Serve the detector through Triton Inference Server; the learner's kernel stays a pure client.

What the ``nvidia-pytriton`` 0.7.0 wheel really holds (inspected before this design): the
``tritonserver`` binary (x86_64, glibc 2.35+, its libraries vendored in nvidia_pytriton.libs,
nothing missing under ``ldd`` on Debian 12), **one** backend, ``python`` (libtriton_python.so)
with a stub per Python 3.8-3.13, and the local response cache. There is no onnxruntime,
TensorRT or PyTorch backend in it.

Design: a model repository (``config.pbtxt`` + a Python-backend ``model.py`` that runs ONNX
Runtime, serving/detector/model.py), not PyTriton's ``Triton().bind(infer_func)``:

- A repository is what every Triton reads. The same directory deploys unchanged to a stock
  Triton container, a Kubernetes cluster or Triton's JetPack build; there one would switch
  ``backend: "python"`` to ``"onnxruntime"`` or ``"tensorrt"`` (this wheel has neither).
  A PyTriton binding exists only inside the Python process that bound it.
- PyTriton runs the model in the binding process and needs numpy<2 there: the learner's kernel
  would have to be that process. With a repository the server is a separate program started from
  the serving venv (``make serve-env`` -> .venv-serve), and the kernel needs only ``tritonclient``.
- Dynamic batching is then plain Triton configuration (``max_batch_size``,
  ``dynamic_batching { max_queue_delay_microseconds }``), the knobs a deployment tunes.

``tritonclient[http]`` is the kernel's client. Its ``[grpc]`` extra pins protobuf<7, which would
downgrade the protobuf the workbook's ONNX and TF-graph parsing use (helpers.tfgraph), so the
kernel talks HTTP; the server listens on gRPC too, for clients in other environments.

Lifecycle: loopback only (127.0.0.1), free ports, no access tokens (a local, token-free config),
``Server.wait_ready`` with a time limit, and ``Server.stop`` kills the server's whole process
group (the backend stubs included). Every server is in a module registry: ``start`` with a name
that is already running stops the old one first (a re-run cell), ``atexit`` and a weakref
finalizer stop what is left, and on Linux the server gets SIGKILL if the process that started
it dies (``PR_SET_PDEATHSIG``), so a killed kernel leaves no server behind.

``TritonRuntime`` keeps helpers.runtimes' protocol (``run(batch) -> raw outputs``), so
``detect.Detector(model, runtime=TritonRuntime(...))`` preprocesses locally, sends the batch,
and runs the workbook's one postprocess on what comes back; the drift judge compares its raw
outputs with the in-process OnnxRuntime's.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SERVE_VENV = ROOT / ".venv-serve"
MODEL_TEMPLATE = ROOT / "serving" / "detector" / "model.py"
READY_TIMEOUT_S = 120.0
EXIT_TIMEOUT_S = 5  # Triton's grace for in-flight requests on SIGTERM (its default is 30 s)
_REGISTRY: dict[str, "Server"] = {}
_REGISTRY_LOCK = threading.Lock()


def serving_python(venv: str | os.PathLike | None = None) -> Path:
    """The serving venv's interpreter (EVW_SERVE_VENV or .venv-serve)."""
    venv = Path(venv or os.environ.get("EVW_SERVE_VENV") or SERVE_VENV)
    return venv / "bin" / "python"


def problem(venv: str | os.PathLike | None = None) -> str:
    """Why this machine cannot serve here ('' when it can): the reason a lesson or test skips."""
    if not sys.platform.startswith("linux"):
        return f"the PyPI tritonserver is a Linux x86_64 binary; this is {sys.platform}"
    try:
        import tritonclient.http  # noqa: F401
    except ImportError as exc:
        return f"tritonclient is not installed in this kernel ({exc}); run `make serve-env`"
    python = serving_python(venv)
    if not python.is_file():
        return f"the serving venv {python.parent.parent} does not exist; run `make serve-env`"
    try:
        _dist(python)
    except (RuntimeError, FileNotFoundError) as exc:
        return str(exc)
    return ""


def _dist(python: Path) -> dict:
    """Where the serving venv keeps tritonserver, its libraries, the stub and site-packages."""
    code = ("import sys, sysconfig, pathlib, pytriton; p = pathlib.Path(pytriton.__file__).parent; "
            "print(p); print(sysconfig.get_paths()['purelib']); print(f'{sys.version_info[0]}.{sys.version_info[1]}'); "
            "print(sysconfig.get_config_var('LIBDIR'))")
    got = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
    if got.returncode != 0:
        raise RuntimeError(f"{python} has no nvidia-pytriton ({got.stderr.strip().splitlines()[-1:]}); "
                           f"run `make serve-env` to rebuild the serving venv")
    pkg, site, version, libdir = got.stdout.split("\n")[:4]
    pkg = Path(pkg)
    dist = {"binary": pkg / "tritonserver" / "bin" / "tritonserver",
            "backend": pkg / "tritonserver" / "backends" / "python",
            "stub": pkg / "tritonserver" / "python_backend_stubs" / version / "triton_python_backend_stub",
            "libs": pkg.parent / "nvidia_pytriton.libs", "site": Path(site), "libdir": libdir, "python": python}
    for key in ("binary", "backend", "stub", "libs"):
        if not dist[key].exists():
            raise FileNotFoundError(f"the serving venv's nvidia-pytriton lacks {dist[key]}; reinstall it with `make serve-env`")
    return dist


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _onnx_io(onnx_path: Path) -> tuple[dict, list[dict]]:
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    dims = lambda v: [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim]  # noqa: E731
    if len(graph.input) != 1 or graph.input[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise ValueError(f"{onnx_path}: expected one float32 NCHW input; found {[i.name for i in graph.input]}")
    tensors = [{"name": v.name, "dims": dims(v)} for v in [graph.input[0], *graph.output]]
    if any(t["dims"][0] != -1 for t in tensors):
        raise ValueError(f"{onnx_path}: the batch axis must be dynamic for Triton to batch; export it with "
                         f"export.export_onnx(..., dynamic_batch=True)")
    return tensors[0], tensors[1:]


def _tensor(t: dict) -> str:
    return f'  {{ name: "{t["name"]}" data_type: TYPE_FP32 dims: [ {", ".join(map(str, t["dims"][1:]))} ] }}'


def model_config(onnx_path, name: str = "detector", max_batch: int = 8, queue_delay_us: int | None = 2000,
                 instances: int = 1, intra_op_threads: int = 0) -> str:
    """config.pbtxt for the Python-backend detector. ``queue_delay_us=None`` turns dynamic
    batching off: each request then runs alone, at the batch size the client sent."""
    if max_batch < 1 or instances < 1:
        raise ValueError(f"max_batch and instances must be >= 1; found {max_batch} and {instances}")
    if queue_delay_us is not None and queue_delay_us < 0:
        raise ValueError(f"queue_delay_us must be >= 0 (or None for no dynamic batching); found {queue_delay_us}")
    inp, outs = _onnx_io(Path(onnx_path))
    lines = [f'name: "{name}"', 'backend: "python"', f"max_batch_size: {max_batch}",
             "input [", _tensor(inp), "]", "output [", ",\n".join(_tensor(o) for o in outs), "]",
             f"instance_group [ {{ count: {instances} kind: KIND_CPU }} ]",
             f'parameters {{ key: "intra_op_threads" value {{ string_value: "{intra_op_threads}" }} }}']
    if queue_delay_us is not None:
        lines.append(f"dynamic_batching {{ max_queue_delay_microseconds: {queue_delay_us} }}")
    return "\n".join(lines) + "\n"


def model_repository(onnx_path, out_dir, name: str = "detector", **config) -> Path:
    """Write a Triton model repository: ``<out_dir>/<name>/{config.pbtxt, 1/model.py, 1/model.onnx}``.

    The same directory serves from any Triton build that has the Python backend and numpy +
    onnxruntime in the stub's environment. ``config``: see ``model_config``."""
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {onnx_path}. Export it with export.export_onnx(...)")
    text = model_config(onnx_path, name=name, **config)
    out_dir = Path(out_dir)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=out_dir.mkdir(parents=True, exist_ok=True) or out_dir))
    (staging / "1").mkdir()
    (staging / "config.pbtxt").write_text(text)
    shutil.copy(MODEL_TEMPLATE, staging / "1" / "model.py")
    shutil.copy(onnx_path, staging / "1" / "model.onnx")
    target = out_dir / name
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)  # the server never sees a half-written model
    return out_dir


def _die_with_parent():
    # Runs in the child before exec: SIGKILL when the starting thread's process dies, even by
    # SIGKILL, where atexit never runs.
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _sweep_workdirs() -> None:
    """Remove the server folders of processes that died without cleaning up (SIGKILL)."""
    for path in Path(tempfile.gettempdir()).glob("evw-triton-*"):
        owner = path.name.split("-")[2]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            shutil.rmtree(path, ignore_errors=True)


class Server:
    """One tritonserver process on loopback. Use ``start()`` rather than this class directly."""

    def __init__(self, repository, name: str = "detector", venv=None, log_path=None):
        self.name = name
        self.repository = Path(repository).resolve()
        dist = _dist(serving_python(venv))
        _sweep_workdirs()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"evw-triton-{os.getpid()}-"))
        backends = self.workdir / "backends"
        # The stub for the serving venv's Python goes next to the backend, as Triton expects.
        shutil.copytree(dist["backend"], backends / "python", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(dist["stub"], backends / "python" / "triton_python_backend_stub")
        self.http_port, self.grpc_port = free_port(), free_port()
        while self.grpc_port == self.http_port:
            self.grpc_port = free_port()
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = ":".join(filter(None, [str(dist["libs"]), dist["libdir"], env.get("LD_LIBRARY_PATH")]))
        # The stub embeds libpython, ignores PYTHONPATH, and finds its prefix from the first
        # python3 on PATH: the serving venv's, so numpy<2 and onnxruntime come from there.
        env["PATH"] = f"{Path(dist['python']).parent}:{env.get('PATH', '')}"
        env.pop("PYTHONHOME", None)
        env.pop("PYTHONPATH", None)
        command = [str(dist["binary"]), f"--model-repository={self.repository}", f"--backend-directory={backends}",
                   "--http-address=127.0.0.1", f"--http-port={self.http_port}",
                   "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}",
                   "--allow-metrics=false", "--allow-gpu-metrics=false", "--strict-readiness=true",
                   "--exit-on-error=true", "--log-info=false", f"--exit-timeout-secs={EXIT_TIMEOUT_S}"]
        self.log_path = Path(log_path) if log_path else self.workdir / "tritonserver.log"
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True, preexec_fn=_die_with_parent)
        self.pid = self.process.pid
        self._finalizer = weakref.finalize(self, _stop, self.process, self._log, self.workdir)

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.url}/v2/health/ready", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> Server:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tritonserver exited with code {self.process.returncode} before it was ready. "
                                   f"Its log ({self.log_path}) ends:\n{self.log_tail()}")
            if self.is_ready():
                return self
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"tritonserver was not ready within {timeout_s:.0f} s (stopped). Its log ends:\n"
                           f"{self.log_tail()}\nA slow machine may need a longer timeout_s.")

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Stop the server and its backend stubs (the whole process group); idempotent."""
        with _REGISTRY_LOCK:
            if _REGISTRY.get(self.name) is self:
                del _REGISTRY[self.name]
        self._finalizer()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else f"stopped ({self.process.returncode})"
        return f"Server({self.name!r}, http={self.url}, grpc=127.0.0.1:{self.grpc_port}, pid={self.pid}, {state})"


def _stop(process: subprocess.Popen, log, workdir: Path, grace_s: float = EXIT_TIMEOUT_S + 5) -> None:
    try:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)  # Triton finishes in-flight requests, unloads models
                process.wait(grace_s)
            except subprocess.TimeoutExpired:
                pass
            except ProcessLookupError:
                pass
        try:  # whatever is left of the group, stubs included
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        process.wait()
    finally:
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def start(repository, name: str = "detector", timeout_s: float = READY_TIMEOUT_S, venv=None) -> Server:
    """Start tritonserver on loopback for ``repository`` and wait until it is ready.

    A server already running under ``name`` (a re-run cell) is stopped first. Raises
    RuntimeError with ``problem()``'s reason when this machine cannot serve."""
    reason = problem(venv)
    if reason:
        raise RuntimeError(f"cannot start tritonserver: {reason}")
    stop_all(name)
    server = Server(repository, name=name, venv=venv)
    with _REGISTRY_LOCK:
        _REGISTRY[name] = server
    try:
        return server.wait_ready(timeout_s)
    except BaseException:  # KeyboardInterrupt while waiting included
        server.stop()
        raise


def stop_all(name: str | None = None) -> None:
    """Stop every server this process started (or only the one called ``name``)."""
    with _REGISTRY_LOCK:
        servers = [s for n, s in _REGISTRY.items() if name is None or n == name]
    for server in servers:
        server.stop()


atexit.register(stop_all)


class TritonRuntime:
    """A helpers.runtimes Runtime whose network runs in Triton: ``run(batch) -> raw outputs``.

    One HTTP client per runtime: tritonclient's clients are not thread-safe, so each stream
    (thread) makes its own. ``timeout_s`` bounds every request; a stalled server raises
    TimeoutError instead of hanging the caller."""

    def __init__(self, url: str, model: str = "detector", timeout_s: float = 30.0, name: str | None = None):
        import tritonclient.http as httpclient

        self._http = httpclient
        self.url, self.model, self.timeout_s = url, model, timeout_s
        self.client = httpclient.InferenceServerClient(url, connection_timeout=timeout_s, network_timeout=timeout_s)
        try:
            meta = self.client.get_model_metadata(model)
        except Exception as exc:
            self.client.close()
            raise RuntimeError(f"no model {model!r} is ready at {url} ({exc}); start it with serve.start(...)") from exc
        self.input_name = meta["inputs"][0]["name"]
        self.input_shape = tuple(int(d) for d in meta["inputs"][0]["shape"][1:])
        self.output_names = [o["name"] for o in meta["outputs"]]
        self.name = name or f"triton-{model}"
        self.device = torch.device("cpu")
        self.dtype = torch.float32

    def run(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.client is None:
            raise RuntimeError(f"{self.name} is closed; make a new TritonRuntime")
        if not isinstance(batch, torch.Tensor) or batch.dtype != torch.float32 or batch.ndim != 4 \
                or tuple(batch.shape[1:]) != self.input_shape:
            found = (tuple(batch.shape), batch.dtype) if isinstance(batch, torch.Tensor) else type(batch).__name__
            raise ValueError(f"{self.name}.run expects a float32 NCHW batch of shape (N, {', '.join(map(str, self.input_shape))}); "
                             f"found {found}. Preprocess frames with the detector's Preprocessor first.")
        array = batch.detach().cpu().contiguous().numpy()
        inp = self._http.InferInput(self.input_name, list(array.shape), "FP32")
        inp.set_data_from_numpy(array, binary_data=True)
        outs = [self._http.InferRequestedOutput(n, binary_data=True) for n in self.output_names]
        try:
            result = self.client.infer(self.model, [inp], outputs=outs, timeout=int(self.timeout_s * 1e6))
        except Exception as exc:
            if "timed out" in str(exc).lower() or isinstance(exc, (socket.timeout, TimeoutError)):
                raise TimeoutError(f"{self.name}: no answer from {self.url} within {self.timeout_s} s; "
                                   f"the server is stalled or overloaded") from exc
            raise
        return tuple(torch.from_numpy(result.as_numpy(n).copy()) for n in self.output_names)

    def statistics(self) -> dict:
        """The server's cumulative counters for this model (Triton's inference statistics)."""
        return self.client.get_inference_statistics(self.model)["model_stats"][0]

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def __enter__(self) -> TritonRuntime:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TritonRuntime({self.model!r} at {self.url})"


# ----------------------------------------------------------------- camera streams, measured

DROP_BUDGET = 0.05  # a stream keeps up when it drops at most this fraction of its frames


def _summary(kind: str, n: int, fps: float, seconds: float, latencies_ms: list, dropped: int) -> dict:
    import numpy as np

    done = len(latencies_ms)
    lat = np.asarray(latencies_ms or [float("nan")])
    dropped_fraction = dropped / max(done + dropped, 1)
    return {"kind": kind, "streams": n, "fps": fps, "seconds": seconds, "frames": done, "dropped": dropped,
            "throughput_fps": round(done / seconds, 2), "p50_ms": round(float(np.percentile(lat, 50)), 2),
            "p95_ms": round(float(np.percentile(lat, 95)), 2), "dropped_fraction": round(dropped_fraction, 3),
            "keeps_up": bool(done and dropped_fraction <= DROP_BUDGET)}


def _paced(period: float, phase: float, seconds: float, stop: threading.Event, work) -> tuple[list, int]:
    """Call ``work()`` once per slot of a ``period`` clock; a slot that passes while the previous
    call is still running is a dropped frame (a live camera keeps only its newest frame)."""
    latencies, dropped = [], 0
    start = time.perf_counter() + phase
    slot = 0
    while not stop.is_set():
        due = start + slot * period
        if due - start >= seconds:
            break
        wait = due - time.perf_counter()
        if wait > 0:
            stop.wait(wait)
        work()
        latencies.append((time.perf_counter() - due) * 1e3)
        late = int((time.perf_counter() - start) // period) + 1
        dropped += max(late - slot - 1, 0)
        slot = max(late, slot + 1)
    return latencies, dropped


def _run_threads(targets) -> None:
    stop = threading.Event()
    threads = [threading.Thread(target=t, args=(stop,), daemon=True) for t in targets]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    finally:  # KeyboardInterrupt too: every stream stops and closes its client
        stop.set()
        for t in threads:
            t.join()


def triton_streams(url: str, sample: torch.Tensor, n: int, fps: float, seconds: float = 4.0,
                   model: str = "detector", timeout_s: float = 30.0) -> dict:
    """``n`` camera streams at ``fps`` each, one thread and one client per stream, sending the
    preprocessed ``sample`` (1xCxHxW) to Triton; phases are spread evenly, as unsynchronised
    cameras are. Returns throughput, p50/p95 latency (from the frame's slot to its answer) and
    the dropped fraction."""
    if n < 1 or fps <= 0 or seconds <= 0:
        raise ValueError(f"n >= 1, fps > 0 and seconds > 0 expected; found {n}, {fps}, {seconds}")
    results, errors = [], []

    def stream(i, stop):
        try:
            with TritonRuntime(url, model=model, timeout_s=timeout_s) as rt:
                rt.run(sample)  # warm: connection and first request out of the window
                results.append(_paced(1.0 / fps, i / (n * fps), seconds, stop, lambda: rt.run(sample)))
        except Exception as exc:
            errors.append(exc)
            stop.set()

    _run_threads([lambda stop, i=i: stream(i, stop) for i in range(n)])
    if errors:
        raise errors[0]
    return _summary(f"triton:{model}", n, fps, seconds, [x for lat, _ in results for x in lat],
                    sum(d for _, d in results))


def inprocess_streams(runtime, sample: torch.Tensor, n: int, fps: float, seconds: float = 4.0) -> dict:
    """The in-process baseline: one loop takes the ``n`` streams' frames of each tick as one
    batch and runs it on ``runtime`` here (helpers.runtimes), as benchmarks/pipeline.py batches."""
    if n < 1 or fps <= 0 or seconds <= 0:
        raise ValueError(f"n >= 1, fps > 0 and seconds > 0 expected; found {n}, {fps}, {seconds}")
    batch = sample.expand(n, *sample.shape[1:]).contiguous()
    runtime.run(batch)  # warm
    box = {}

    def loop(stop):
        box["r"] = _paced(1.0 / fps, 0.0, seconds, stop, lambda: runtime.run(batch))

    _run_threads([loop])
    latencies, dropped = box["r"]
    return _summary(f"in-process:{runtime.name}", n, fps, seconds, [x for x in latencies for _ in range(n)],
                    dropped * n)


def _server_ns(stats: dict) -> dict:
    s = stats["inference_stats"]
    return {k: (int(s[k]["count"]), int(s[k]["ns"])) for k in ("success", "queue", "compute_infer")}


def request_overhead(url: str, local, sample: torch.Tensor, iters: int = 30, model: str = "detector") -> dict:
    """What one request costs beyond running the network, in ms, over ``iters`` sequential
    batch-``len(sample)`` requests interleaved with the in-process runtime ``local``.

    ``client_ms``: the mean round trip; ``compute_ms``: the mean time Triton spent in the model's
    execute (its statistics); ``overhead_ms`` = client - compute: serialisation, HTTP transport,
    Triton's queue and the Python backend's shared-memory copies, measured on the same requests,
    so other load on the machine cancels out. ``queue_ms`` is the part spent queued (the
    dynamic batcher's wait); ``in_process_ms`` is the median of ``local.run`` for reference."""
    import numpy as np

    with TritonRuntime(url, model=model) as rt:
        rt.run(sample)
        local.run(sample)
        before = _server_ns(rt.statistics())
        client, here = [], []
        for _ in range(iters):
            t0 = time.perf_counter()
            rt.run(sample)
            client.append((time.perf_counter() - t0) * 1e3)
            t0 = time.perf_counter()
            local.run(sample)
            here.append((time.perf_counter() - t0) * 1e3)
        after = _server_ns(rt.statistics())
    per = {k: (after[k][1] - before[k][1]) / max(after[k][0] - before[k][0], 1) / 1e6 for k in after}
    client_ms = float(np.mean(client))
    return {"batch": int(sample.shape[0]), "iters": iters, "client_ms": round(client_ms, 2),
            "compute_ms": round(per["compute_infer"], 2), "overhead_ms": round(client_ms - per["compute_infer"], 2),
            "queue_ms": round(per["queue"], 2), "server_ms": round(per["success"], 2),
            "in_process_ms": round(float(np.median(here)), 2)}
