"""The training benchmark runs the real training functions and prints images/s for each."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[2]


def test_prints_gan_and_encoder_speed(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_training.py"), "--preset", "tiny",
                          "--threads", "1", "--gan-kimg", "0.05", "--encoder-steps", "5",
                          "--json", str(tmp_path / "speed.json")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert re.search(r"tiny, 1 thread\(s\), channels_last=True: gan [\d.]+ img/s \([\d.]+ kimg/h\), "
                     r"encoder [\d.]+ img/s", run.stdout)
    assert (tmp_path / "speed.json").is_file()
