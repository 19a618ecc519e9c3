"""The W-against-W+ benchmark fits held-out drawings both ways and measures each set."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[2]


def test_fits_held_out_drawings_in_w_and_wplus_and_measures_them(tmp_path):
    from training.collections.kanjivg import render_collection
    from training.config import config_from
    from training.gan import train_gan
    from training.ingest import IngestSettings, ingest
    render_collection(tmp_path / "renders", size=32, count=48, max_strokes=8, seed=0)
    ingest(tmp_path / "renders", tmp_path / "ds", IngestSettings(resolution=32, validation=0.2))
    torch.set_num_threads(1)
    train_gan(tmp_path / "ds", tmp_path / "run", config_from("tiny", kimg=0.016, snapshot_kimg=0.016, batch=8),
              progress=False)
    bench = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_w_vs_wplus.py"), "--model",
                            str(tmp_path / "run"), "--dataset", str(tmp_path / "ds"), "--count", "8", "--steps", "30",
                            "--json", str(tmp_path / "fits.json")], capture_output=True, text=True, timeout=300)
    assert bench.returncode == 0, bench.stderr[-2000:]
    held, samples, w, wplus = json.loads((tmp_path / "fits.json").read_text())
    assert held["count"] == w["count"] == wplus["count"] == 8 and samples["count"] == 256
    # a w a layer has every freedom one w has, from the same start: it fits at least as closely
    assert 0 < wplus["pixel_error"] < w["pixel_error"]
    assert "| fitted, a w a layer (W+) |" in bench.stdout
