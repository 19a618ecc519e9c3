"""Runtimes that execute a bundle: ONNX Runtime (TensorRT -> CUDA -> CPU), or PyTorch.

`open_backend(bundle)` gives an object with `name`, `bundle`, `sketch_to_drawing(x)`,
`encode(x)`, `generate(wplus)` and `map(z)`, numpy float32 in and out (docs/CONTRACTS.md).
No torch here: the PyTorch backend (`inference.torch_backend`) is imported only when asked for.
"""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np

from inference.backend import Backend
from inference.bundle import Bundle, BundleError, check_session, graph_io, load_session

log = logging.getLogger(__name__)

# Fastest first. An unavailable or failing provider is skipped with one log line.
PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
BACKEND_KINDS = ("auto", "onnxruntime", "torch")



class ProviderError(OSError):
    """No ONNX Runtime execution provider could open the bundle (a device or driver problem)."""

def _as_bundle(bundle: Bundle | str | os.PathLike, check_graphs: bool) -> Bundle:
    return bundle if isinstance(bundle, Bundle) else Bundle.load(bundle, check_graphs=check_graphs)


def open_backend(bundle: Bundle | str | os.PathLike, kind: str = "auto", providers: list[str] | None = None,
                 threads: int | None = None):
    """Open a bundle for inference.

    kind: 'onnxruntime' (and 'auto', which is ONNX Runtime: it runs on a kiosk without torch)
    or 'torch' (needs the bundle's model.safetensors). providers: ONNX Runtime providers to
    try, in order (default: TensorRT, CUDA, CPU among those installed). threads: intra-op
    threads (default: the library's choice, one per physical core).
    """
    if kind not in BACKEND_KINDS:
        raise ValueError(f"backend kind {kind!r} is unknown; use one of {', '.join(BACKEND_KINDS)}")
    if kind == "torch":
        from inference.torch_backend import TorchBackend

        return TorchBackend(_as_bundle(bundle, check_graphs=False), threads=threads)
    return OrtBackend(_as_bundle(bundle, check_graphs=False), providers=providers, threads=threads)


def session_options(threads: int | None = None):
    """ORT options for the table: intra-op threads set, spinning OFF.

    Spinning threads busy-wait for the next op; next to capture, render (and PyTorch, when
    both run in one process) they steal the cores the other stages need.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads {threads} must be at least 1")
        options.intra_op_num_threads = int(threads)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    # Denormal floats (seen with randomly initialised encoders) slow CPU kernels ~20x.
    options.add_session_config_entry("session.set_denormal_as_zero", "1")
    options.log_severity_level = 3  # ORT's own warnings (e.g. a missing provider) go through our log line
    return options


def _provider_options(provider: str, bundle: Bundle) -> dict:
    if provider == "TensorrtExecutionProvider":
        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "newsnow" / "tensorrt"
        cache.mkdir(parents=True, exist_ok=True)
        # Engines take minutes to build: cache them (keyed by the graph) across restarts.
        return {"trt_fp16_enable": bundle.precision == "fp16", "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(cache)}
    return {}


class OrtBackend(Backend):
    """The four graphs of a bundle in ONNX Runtime sessions sharing one execution provider."""

    def __init__(self, bundle: Bundle, providers: list[str] | None = None, threads: int | None = None):
        import onnxruntime as ort

        self.bundle = bundle
        self.threads = threads
        available = ort.get_available_providers()
        wanted = list(providers) if providers else list(PROVIDER_ORDER)
        unknown = [p for p in wanted if p not in PROVIDER_ORDER and p not in available]
        if unknown:
            raise ValueError(f"onnxruntime provider {unknown[0]!r} is unknown; installed are {', '.join(available)}")
        if "CPUExecutionProvider" not in wanted:
            wanted.append("CPUExecutionProvider")  # always something that runs
        options = session_options(threads)
        skipped = []
        self.sessions = None
        for provider in wanted:
            if provider not in available:
                skipped.append(f"{provider} not installed")
                continue
            try:
                later = [p for p in wanted[wanted.index(provider) + 1:] if p in available]
                self.sessions = self._open(provider, later, options)
                self.provider = provider
                break
            except BundleError:
                raise
            except Exception as exc:  # a provider that fails to initialise (driver, library, memory)
                skipped.append(f"{provider} failed: {str(exc).strip().splitlines()[0][:200]}")
        if self.sessions is None:
            raise ProviderError(f"{bundle.path}: no onnxruntime provider could run the bundle ({'; '.join(skipped)}); "
                                f"check `newsnow doctor` for the GPU driver, or pass the CPU provider")
        self.name = f"onnxruntime/{self.provider}"
        self.on_gpu = self.provider in GPU_PROVIDERS
        intra = threads if threads is not None else "default"
        log.info("onnxruntime: using %s (threads %s)%s", self.provider, intra,
                 f"; skipped {'; '.join(skipped)}" if skipped else "")
        self._warm_up()

    def _open(self, provider: str, later: list[str], options) -> dict:
        """Sessions with `provider` first; `later` providers take the nodes it cannot run."""
        sessions = {}
        for name in self.bundle.graphs:
            if provider == "CPUExecutionProvider":
                session = load_session(self.bundle, name, options, [provider])
            else:
                import onnxruntime as ort

                chain = [provider] + later
                with warnings.catch_warnings():  # ORT warns of a failed provider; our one log line says it
                    warnings.simplefilter("ignore", UserWarning)
                    session = ort.InferenceSession(str(self.bundle.graphs[name]), sess_options=options,
                                                   providers=chain, provider_options=[
                                                       _provider_options(p, self.bundle) for p in chain])
                if session.get_providers()[0] != provider:  # ORT fell back silently
                    raise RuntimeError(f"session came up on {session.get_providers()[0]}")
            check_session(self.bundle, name, session)
            sessions[name] = session
        return sessions

    def _warm_up(self) -> None:
        """Run each graph once at load: the first call allocates and (TensorRT) builds engines."""
        for name in self.bundle.graphs:
            (_, shape), _ = graph_io(self.bundle, name)
            self._run(name, np.zeros([1] + shape[1:], np.float32))

    def _run(self, name: str, x: np.ndarray) -> np.ndarray:
        (in_name, _), (out_name, _) = graph_io(self.bundle, name)
        x = self._checked(name, x)
        session = self.sessions[name]
        if not self.on_gpu:
            return session.run([out_name], {in_name: x})[0]
        # On a GPU, bind the buffers so ORT copies once each way instead of per run.
        binding = session.io_binding()
        binding.bind_cpu_input(in_name, x)
        binding.bind_output(out_name, "cuda")
        session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]
