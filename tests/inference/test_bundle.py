"""Bundle.load accepts an exported bundle and refuses each kind of broken one, naming file and problem."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from inference.bundle import Bundle, BundleError


@pytest.fixture
def bundle_copy(tiny_bundle, tmp_path):
    """A writable copy of the tiny bundle to break."""
    return shutil.copytree(tiny_bundle, tmp_path / "bundle")


def edit_json(folder, **changes):
    path = folder / "bundle.json"
    meta = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None and key != "weights":
            meta.pop(key)
        else:
            meta[key] = value
    path.write_text(json.dumps(meta))


def test_exported_bundle_loads_with_its_fields(tiny_bundle):
    """The tiny export loads: shapes, precision, graph files, binarize at the model resolution."""
    b = Bundle.load(tiny_bundle)
    assert (b.resolution, b.channels, b.num_ws, b.w_dim, b.z_dim) == (32, 1, 8, 64, 64)
    assert b.precision == "fp32" and b.w_avg.shape == (64,) and b.w_avg.dtype == np.float32
    assert np.abs(b.w_avg).max() > 0
    assert sorted(b.graphs) == ["encoder", "fused", "generator", "mapping"]
    assert b.weights is not None and b.weights.name == "model.safetensors"
    assert b.binarize["resolution"] == 32 and b.binarize_params().resolution == 32
    assert b.provenance["dataset"] == "random (tests)" and "exported" in b.provenance
    assert b.model["generator"]["resolution"] == 32


@pytest.mark.parametrize("change,message", [
    ({"format_version": 2}, r"'format_version' is 2; this New Snow reads version 1"),
    ({"format": "other"}, r"'format' is 'other'"),
    ({"w_avg": [0.0] * 63}, r"'w_avg' has 63 values, expected w_dim = 64"),
    ({"w_avg": None}, r"'w_avg' is missing"),
    ({"resolution": 48}, r"'resolution' is 48"),
    ({"channels": 2}, r"'channels' is 2"),
    ({"precision": "int8"}, r"'precision' is 'int8'"),
    ({"num_ws": "8"}, r"'num_ws' must be int"),
    ({"graphs": {"fused": "fused.onnx"}}, r"no file for the 'encoder' graph"),
    ({"binarize": {"method": "magic"}}, r"'binarize'.*method"),
    ({"binarize": {"resolution": 64}}, r"64px sketches but the model takes 32px"),
    ({"verdict": {"fit_for_table": "yes"}}, r"'verdict' must be an object with fit_for_table"),
    ({"graphs": {"fused": "../fused.onnx", "encoder": "encoder.onnx", "generator": "generator.onnx",
                 "mapping": "mapping.onnx"}}, r"must be a name inside the bundle folder"),
])
def test_bad_bundle_json_is_refused(bundle_copy, change, message):
    """Each wrong field of bundle.json gives a BundleError naming bundle.json and the field."""
    edit_json(bundle_copy, **change)
    with pytest.raises(BundleError, match=message) as err:
        Bundle.load(bundle_copy)
    assert "bundle.json" in str(err.value)


def test_the_verdict_travels_with_the_bundle(bundle_copy):
    """A bundle never evaluated says so; the report's verdict, once recorded, is read back and
    turned into the warning the table shows (unfit, or a smoke test even when fit), or none."""
    from inference.bundle import DEMO_BUNDLE, fit_for_table, fitness_warning, record_verdict

    fresh = Bundle.load(bundle_copy, check_graphs=False)
    assert fresh.verdict is None and fit_for_table(fresh) is None
    assert fitness_warning(fresh).startswith("not evaluated")
    record_verdict(bundle_copy, {"fit_for_table": False, "reasons": ["its samples are all one template"]})
    unfit = Bundle.load(bundle_copy)
    assert fit_for_table(unfit) is False
    assert fitness_warning(unfit) == "not for exhibition: its samples are all one template"
    record_verdict(bundle_copy, {"fit_for_table": True, "reasons": ["a --tiny smoke test"]})
    assert fit_for_table(Bundle.load(bundle_copy, check_graphs=False)) is False
    record_verdict(bundle_copy, {"fit_for_table": True, "reasons": []})
    fit = Bundle.load(bundle_copy, check_graphs=False)
    assert fit_for_table(fit) is True and fitness_warning(fit) is None
    # the demo model carries its own report's verdict: unfit, so the demo warns
    demo = Bundle.load(DEMO_BUNDLE, check_graphs=False)
    assert fit_for_table(demo) is False and "unfit for the table" in fitness_warning(demo)
    assert fitness_warning(demo).endswith("(4 of 10 targets missed; MODEL_CARD.md has the verdict)")


def test_missing_files_are_refused(bundle_copy, tmp_path):
    """No folder, no bundle.json, a missing graph or weights file: each named in the message."""
    with pytest.raises(BundleError, match="no such model bundle folder"):
        Bundle.load(tmp_path / "nowhere")
    (bundle_copy / "generator.onnx").unlink()
    with pytest.raises(BundleError, match=r"generator\.onnx: missing \(the 'generator' graph"):
        Bundle.load(bundle_copy)
    (bundle_copy / "model.safetensors").unlink()
    edit_json(bundle_copy, weights="model.safetensors")
    (bundle_copy / "bundle.json").unlink()
    with pytest.raises(BundleError, match=r"bundle\.json: missing"):
        Bundle.load(bundle_copy)


def test_unreadable_json_is_refused(bundle_copy):
    """A truncated bundle.json is reported as unreadable JSON."""
    path = bundle_copy / "bundle.json"
    path.write_text(path.read_text()[:50])
    with pytest.raises(BundleError, match="not readable JSON"):
        Bundle.load(bundle_copy)


def test_corrupt_onnx_file_is_refused(bundle_copy):
    """Garbage in a graph file gives a BundleError naming that file."""
    data = (bundle_copy / "mapping.onnx").read_bytes()
    (bundle_copy / "mapping.onnx").write_bytes(data[: len(data) // 3])
    with pytest.raises(BundleError, match=r"mapping\.onnx: not a valid ONNX graph for 'mapping'"):
        Bundle.load(bundle_copy)


def test_graph_io_that_disagrees_with_bundle_json_is_refused(bundle_copy):
    """A graph whose input is not what bundle.json implies (here the generator filed as encoder) is refused."""
    meta = json.loads((bundle_copy / "bundle.json").read_text())
    meta["graphs"]["encoder"] = "generator.onnx"
    (bundle_copy / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=r"generator\.onnx: the 'encoder' graph's input is named 'wplus'"):
        Bundle.load(bundle_copy)
    edit_json(bundle_copy, graphs={"fused": "fused.onnx", "encoder": "encoder.onnx",
                                   "generator": "generator.onnx", "mapping": "mapping.onnx"}, num_ws=9,
              w_avg=meta["w_avg"])
    with pytest.raises(BundleError, match=r"'wplus' has shape \['batch', 8, 64\], but bundle\.json implies"):
        Bundle.load(bundle_copy)


def test_runtime_path_does_not_import_torch(tiny_bundle):
    """Loading a bundle and running it in ONNX Runtime never imports torch (a kiosk has none)."""
    code = ("import sys, numpy as np\n"
            "from inference.runtime import open_backend\n"
            f"b = open_backend({str(tiny_bundle)!r}, threads=1)\n"
            "b.sketch_to_drawing(np.ones((1, 1, 32, 32), np.float32))\n"
            "import inference.bench, inference.commands\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
