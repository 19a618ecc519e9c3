"""Runtimes: ONNX Runtime and PyTorch backends agree; provider fallback picks CPU here and says so."""
import logging
import shutil

import numpy as np
import pytest

from inference.bundle import BundleError
from inference.runtime import open_backend


def sketches(n=2, seed=0):
    rng = np.random.default_rng(seed)
    return np.where(rng.random((n, 1, 32, 32)) < 0.1, -1.0, 1.0).astype(np.float32)


def test_onnxruntime_backend_shapes_and_ranges(tiny_bundle):
    """All four calls give float32 of the contract's shapes; drawings stay within [-1, 1]."""
    b = open_backend(tiny_bundle, threads=1)
    x = sketches()
    drawing = b.sketch_to_drawing(x)
    wplus = b.encode(x)
    assert drawing.shape == (2, 1, 32, 32) and drawing.dtype == np.float32
    assert -1.0 <= drawing.min() and drawing.max() <= 1.0 and drawing.std() > 0
    assert wplus.shape == (2, 8, 64)
    assert np.allclose(b.generate(wplus), drawing, atol=1e-5)  # the two halves make the fused graph
    w = b.map(np.random.default_rng(1).standard_normal((3, 64)).astype(np.float32))
    assert w.shape == (3, 64)


def test_cpu_fallback_without_cuda_is_logged_once(tiny_bundle, caplog):
    """Asking for CUDA on a machine without it runs on CPU with one log line naming both."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA: no fallback to see")
    with caplog.at_level(logging.INFO, logger="inference.runtime"):
        b = open_backend(tiny_bundle, providers=["CUDAExecutionProvider"], threads=1)
    assert b.name == "onnxruntime/CPUExecutionProvider"
    lines = [r.getMessage() for r in caplog.records if r.name == "inference.runtime"]
    assert len(lines) == 1
    assert "using CPUExecutionProvider" in lines[0] and "CUDAExecutionProvider not installed" in lines[0]


def test_torch_backend_matches_onnxruntime(tiny_bundle):
    """The torch backend over model.safetensors gives the ORT graphs' outputs within 1e-4."""
    pytest.importorskip("torch")
    ort_b = open_backend(tiny_bundle, kind="onnxruntime", threads=1)
    torch_b = open_backend(tiny_bundle, kind="torch", threads=1)
    assert torch_b.name == "torch/cpu"
    x = sketches(seed=2)
    z = np.random.default_rng(3).standard_normal((2, 64)).astype(np.float32)
    assert np.abs(torch_b.sketch_to_drawing(x) - ort_b.sketch_to_drawing(x)).max() < 1e-4
    assert np.abs(torch_b.encode(x) - ort_b.encode(x)).max() < 1e-4
    assert np.abs(torch_b.map(z) - ort_b.map(z)).max() < 1e-4


def test_bad_requests_are_refused(tiny_bundle, tmp_path):
    """Wrong input shape, unknown backend kind or provider, torch without weights: clear errors."""
    b = open_backend(tiny_bundle, threads=1)
    with pytest.raises(ValueError, match=r"fused: input has shape \[1, 1, 64, 64\], expected \['batch', 1, 32, 32\]"):
        b.sketch_to_drawing(np.ones((1, 1, 64, 64), np.float32))
    with pytest.raises(ValueError, match="backend kind 'tensorflow'"):
        open_backend(tiny_bundle, kind="tensorflow")
    with pytest.raises(ValueError, match="provider 'FooExecutionProvider' is unknown"):
        open_backend(tiny_bundle, providers=["FooExecutionProvider"])
    pytest.importorskip("torch")
    folder = shutil.copytree(tiny_bundle, tmp_path / "noweights")
    (folder / "model.safetensors").unlink()
    text = (folder / "bundle.json").read_text().replace('"weights": "model.safetensors"', '"weights": null')
    (folder / "bundle.json").write_text(text)
    with pytest.raises(BundleError, match="has no model.safetensors"):
        open_backend(folder, kind="torch")


@pytest.mark.gpu
def test_cuda_provider_matches_cpu(tiny_bundle):
    """On a CUDA machine the backend runs on a GPU provider (io binding) and agrees with CPU."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("no CUDAExecutionProvider in this onnxruntime")
    gpu = open_backend(tiny_bundle, providers=["CUDAExecutionProvider"])
    if gpu.name != "onnxruntime/CUDAExecutionProvider":
        pytest.skip(f"CUDA provider did not start ({gpu.name})")
    cpu = open_backend(tiny_bundle, providers=["CPUExecutionProvider"])
    x = sketches()
    assert np.abs(gpu.sketch_to_drawing(x) - cpu.sketch_to_drawing(x)).max() < 1e-3


def test_provider_that_fails_to_start_falls_back_to_cpu(tiny_bundle, caplog, monkeypatch, recwarn):
    """A provider reported as installed but unable to start (here: CUDA in a CPU build) is
    skipped with its reason in the one log line, and the CPU runs the bundle."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA: it would start")
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    with caplog.at_level(logging.INFO, logger="inference.runtime"):
        b = open_backend(tiny_bundle, threads=1)
    assert b.name == "onnxruntime/CPUExecutionProvider" and not b.on_gpu
    lines = [r.getMessage() for r in caplog.records if r.name == "inference.runtime"]
    assert len(lines) == 1 and "CUDAExecutionProvider failed" in lines[0], lines
    assert b.sketch_to_drawing(sketches()).shape == (2, 1, 32, 32)
    assert not [w for w in recwarn if "CUDAExecutionProvider" in str(w.message)]  # no second message
