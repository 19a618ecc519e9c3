"""The anti-collapse benchmark forks a long run: each variant resumes a copy of its state."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[2]


def test_continue_forks_the_run_for_each_variant_and_skips_what_a_resume_cannot_change(tiny_gan_run, tmp_path):
    dataset, run = tiny_gan_run
    before = (run / "state.pt").read_bytes()
    bench = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_anticollapse.py"), "--dataset",
                            str(dataset), "--continue", str(run), "--kimg", "0.016",
                            "--every", "0.008", "--variants", "mirror", "batch-64", "gamma-2", "--out", str(tmp_path / "forks"),
                            "--json", str(tmp_path / "forks.json")], capture_output=True, text=True, timeout=300)
    assert bench.returncode == 0, bench.stderr[-2000:]
    assert "batch-64: gan: --resume with settings the run was not made with: mbstd_group 16 (the run has 4); " \
           "batch 64 (the run has 8)" in bench.stdout
    mirror, gamma = json.loads((tmp_path / "forks.json").read_text())
    # every variant from the same state (one copy: a live run moves on meanwhile)
    assert list(mirror["variety"]) == list(gamma["variety"]) == ["0.024", "0.032"]
    changes = json.loads((tmp_path / "forks" / "mirror" / "config.json").read_text())["changes"]
    assert changes == [{"kimg": 0.016, "change": "mirror False -> True"}]
    assert (run / "state.pt").read_bytes() == before  # the forked run is untouched
