"""Export: the graphs pass onnx.checker and agree with PyTorch (fp32 1e-4, fp16 1e-2)."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from inference.bundle import Bundle  # noqa: E402
from inference.checkpoint import save_model_checkpoint  # noqa: E402
from inference.export import ExportError, check_parity, export_checkpoint  # noqa: E402
from installation.cli import main  # noqa: E402
from tests.conftest import make_tiny_model  # noqa: E402


def test_tiny_bundle_graphs_pass_the_checker_with_float32_io(tiny_bundle):
    """Every graph is valid ONNX (opset 17) with float32 IO and a free batch axis."""
    b = Bundle.load(tiny_bundle)
    for name, path in b.graphs.items():
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
        assert model.opset_import[0].version == 17
        for value in list(model.graph.input) + list(model.graph.output):
            assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
            assert value.type.tensor_type.shape.dim[0].dim_param == "batch", name


def test_fp32_export_matches_pytorch(tiny_bundle):
    """ORT on the fp32 bundle gives PyTorch's outputs within 1e-4, batch 2, on every graph."""
    G, E = make_tiny_model()  # same seed as the fixture: the same weights
    diffs = check_parity(G, E, Bundle.load(tiny_bundle))
    assert set(diffs) == {"fused", "encoder", "generator", "mapping"}
    assert max(diffs.values()) <= 1e-4, diffs


@pytest.mark.slow
def test_fp16_export_with_check_through_the_cli(tmp_path, capsys):
    """`newsnow export --fp16 --check` writes an fp16 bundle (float32 IO) within 1e-2 of PyTorch,
    smaller than fp32, and prints one difference per graph."""
    G, E = make_tiny_model(seed=5)
    ck = save_model_checkpoint(tmp_path / "ck.pt", G, E, {"dataset": "tiny", "kimg": 1})
    assert main(["export", str(ck), "--out", str(tmp_path / "b16"), "--fp16", "--check"]) == 0
    out = capsys.readouterr().out
    diffs = {line.split()[1]: float(line.split("=")[1].split()[0]) for line in out.splitlines()
             if line.startswith("check ")}
    assert set(diffs) == {"encoder", "generator", "mapping"}  # no --fused: no fused graph
    assert 0 < max(diffs.values()) <= 1e-2, diffs  # fp16 rounding is visible but small
    b = Bundle.load(tmp_path / "b16")
    assert b.precision == "fp16" and b.provenance["kimg"] == 1
    assert b.provenance["export_command"].startswith("newsnow export ") and "--fp16" in b.provenance["export_command"]
    assert "fused" not in b.graphs and not (tmp_path / "b16" / "fused.onnx").exists()
    model = onnx.load(str(b.graphs["encoder"]))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    import onnxruntime as ort
    from inference.runtime import open_backend
    y = open_backend(tmp_path / "b16", threads=1).sketch_to_drawing(np.ones((3, 1, 32, 32), np.float32))
    assert y.shape == (3, 1, 32, 32) and y.dtype == np.float32 and np.abs(y).max() <= 1.0


def test_a_bundle_without_the_fused_graph_draws_the_same(tiny_bundle, tmp_path):
    """The fused graph is optional: without it the table runs the encoder then the
    generator and gets the same drawing; the weights are in the bundle by default."""
    import shutil
    import json

    from inference.runtime import open_backend
    bare = tmp_path / "bare"
    shutil.copytree(tiny_bundle, bare)
    meta = json.loads((bare / "bundle.json").read_text())
    del meta["graphs"]["fused"]
    (bare / "fused.onnx").unlink()
    (bare / "bundle.json").write_text(json.dumps(meta))
    sketch = np.where(np.random.default_rng(0).random((2, 1, 32, 32)) < 0.1, -1, 1).astype(np.float32)
    with_fused = open_backend(tiny_bundle, threads=1).sketch_to_drawing(sketch)
    without = open_backend(bare, threads=1)
    assert "fused" not in without.sessions
    assert np.abs(without.sketch_to_drawing(sketch) - with_fused).max() < 1e-5
    assert Bundle.load(bare).weights is not None


def test_check_fails_loudly_when_graphs_disagree(tiny_bundle):
    """The --check verdict: within the precision's limit passes, beyond it raises naming the graph."""
    from inference.export import require_parity

    b = Bundle.load(tiny_bundle)
    require_parity(b, {"fused": 5e-5, "mapping": 0.0})
    with pytest.raises(ExportError, match=r"beyond 0.0001 \(generator 0.002\); do not ship"):
        require_parity(b, {"fused": 5e-5, "generator": 2e-3})


@pytest.mark.slow
def test_export_without_encoder_or_weights(tmp_path):
    """A generator-only checkpoint is refused; --no-weights gives a bundle with weights null."""
    G, E = make_tiny_model()
    ck = save_model_checkpoint(tmp_path / "g.pt", G)
    with pytest.raises(ExportError, match="no pSp encoder"):
        export_checkpoint(ck, tmp_path / "b")
    ck = save_model_checkpoint(tmp_path / "ge.pt", G, E, {"binarize": {"method": "otsu", "resolution": 32}})
    bundle, _ = export_checkpoint(ck, tmp_path / "b", weights=False)
    meta = json.loads((bundle.path / "bundle.json").read_text())
    assert meta["weights"] is None and not (bundle.path / "model.safetensors").exists()
    assert meta["binarize"]["method"] == "otsu"  # the checkpoint's binarize params are kept
