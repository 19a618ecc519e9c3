"""The anti-collapse benchmark forks a long run: each variant resumes a copy of its state."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[2]


def test_continue_forks_the_run_for_each_variant_and_skips_what_a_resume_cannot_change(tmp_path):
    from training.collections.kanjivg import render_collection
    from training.config import config_from
    from training.gan import train_gan
    from training.ingest import IngestSettings, ingest
    render_collection(tmp_path / "renders", size=32, count=40, max_strokes=8, seed=0)
    ingest(tmp_path / "renders", tmp_path / "ds", IngestSettings(resolution=32, validation=0.1))
    torch.set_num_threads(1)
    train_gan(tmp_path / "ds", tmp_path / "run", config_from("tiny", kimg=0.016, snapshot_kimg=0.016, batch=8),
              progress=False)
    before = (tmp_path / "run" / "state.pt").read_bytes()
    bench = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_anticollapse.py"), "--dataset",
                            str(tmp_path / "ds"), "--continue", str(tmp_path / "run"), "--kimg", "0.016",
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
    assert (tmp_path / "run" / "state.pt").read_bytes() == before  # the forked run is untouched
