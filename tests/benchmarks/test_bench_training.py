"""The training benchmark runs the real training functions and prints images/s for each."""
import json
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
    assert re.search(r"tiny, 1 thread\(s\), channels_last=True, batch 8, ADA p 0.25: gan [\d.]+ img/s "
                     r"\([\d.]+ kimg/h\), [\d.]+ img/CPU-s; snapshot [\d.]+ s; encoder [\d.]+ img/s", run.stdout)
    speed = json.loads((tmp_path / "speed.json").read_text())["runs"][0]
    assert speed["gan_images_per_s"] > 0 and speed["gan_images_per_cpu_s"] > 0 and speed["encoder_images_per_s"] > 0
