"""The GLO-warm GAN benchmark trains codes, then a GAN run a weight, and prints their curves."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[2]


def test_runs_a_gan_from_the_glo_network_for_each_weight_and_prints_the_curves(tiny_gan_run, tmp_path):
    dataset, run = tiny_gan_run
    bench = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_glo_gan.py"), "--dataset", str(dataset),
                            "--init-generator", str(run), "--preset", "tiny", "--drawings", "8", "--glo-steps", "5",
                            "--kimg", "0.064", "--every", "0.032", "--weights", "3", "0", "--out", str(tmp_path / "runs"),
                            "--json", str(tmp_path / "curves.json")], capture_output=True, text=True, timeout=300)
    assert bench.returncode == 0, bench.stderr[-2000:]
    curves = json.loads((tmp_path / "curves.json").read_text())
    assert set(curves) == {"3", "0"}
    for curve in curves.values():
        assert curve["kimg"] == [0.032, 0.064] and all(0 <= v <= 2 for v in curve["variety"])
        assert all(0 <= g <= 1 for g in curve["grey"])
    # the weighted run's G steps pulled the codes' drawings (its loss logged); the warm start alone did not
    assert "glo" in json.loads((tmp_path / "runs" / "glo-3" / "summary.json").read_text())
    assert "glo" not in json.loads((tmp_path / "runs" / "glo-0" / "summary.json").read_text())
    assert "| 3 | " in bench.stdout and "| 0 | " in bench.stdout
