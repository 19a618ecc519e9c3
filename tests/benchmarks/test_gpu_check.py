"""The GPU check script runs end to end; on a CPU machine its dry run is what can be tested."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[2]


def test_dry_run_trains_exports_fp16_and_times_the_answer(tmp_path):
    """`gpu_check.sh OUT --dry-run` trains a burst without NaN, exports fp32 and fp16 bundles
    with their parity, times sketch to drawing, and writes gpu_check.json; then imports a
    pSp-format model as fp16 and writes its parity and latency to gpu_check_import.json."""
    run = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path), "--dry-run"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["training"]["finite"] and report["training"]["kimg_per_hour"] > 0
    assert max(report["export"]["fp32"]["parity_max_abs"].values()) < 1e-4
    assert max(report["export"]["fp16"]["parity_max_abs"].values()) < 1e-2
    for precision in ("fp32", "fp16"):
        assert report["latency"][f"CPUExecutionProvider/{precision}"]["median_ms"] > 0
    imported = json.loads((tmp_path / "gpu_check_import.json").read_text())["imported_psp"]
    assert imported["precision"] == "fp16" and max(imported["parity_max_abs"].values()) < 1e-2
    assert imported["latency"]["CPUExecutionProvider"]["sketch_to_drawing"]["median_ms"] > 0


def test_without_a_gpu_the_real_run_refuses_and_says_how_to_dry_run(tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the real run would start")
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "--dry-run" in run.stderr
