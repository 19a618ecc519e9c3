"""The W-against-W+ benchmark fits held-out drawings both ways and measures each set."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[2]


def test_fits_held_out_drawings_in_w_and_wplus_and_measures_them(tiny_gan_run, tmp_path):
    dataset, run = tiny_gan_run
    bench = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_w_vs_wplus.py"), "--model",
                            str(run), "--dataset", str(dataset), "--count", "8", "--steps", "30", "--glo-steps", "20",
                            "--json", str(tmp_path / "fits.json")], capture_output=True, text=True, timeout=300)
    assert bench.returncode == 0, bench.stderr[-2000:]
    held, samples, w, wplus, glo, glo_samples = json.loads((tmp_path / "fits.json").read_text())
    assert held["count"] == w["count"] == wplus["count"] == glo["count"] == 8
    assert samples["count"] == glo_samples["count"] == 256
    # a w a layer has every freedom one w has, from the same start: it fits at least as closely
    assert 0 < wplus["pixel_error"] < w["pixel_error"]
    assert "| fitted, a w a layer (W+) |" in bench.stdout
    assert all(0 <= row["grey"] <= 1 for row in (held, samples, w, wplus, glo, glo_samples))
    assert 0 < glo["pixel_error"] and glo_samples["pixel_error"] is None
    assert "G(z) of that synthesis network" in bench.stdout
