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
                     r"\([\d.]+ kimg/h\), [\d.]+ img/CPU-s; snapshot [\d.]+ s; [\d.]+ GFLOP an image at [\d.]+ "
                     r"GFLOP/s \(one large conv: [\d.]+ GFLOP/s\); encoder [\d.]+ img/s", run.stdout)
    results = json.loads((tmp_path / "speed.json").read_text())
    speed = results["runs"][0]
    assert speed["gan_images_per_s"] > 0 and speed["gan_images_per_cpu_s"] > 0 and speed["encoder_images_per_s"] > 0
    # the counted work of a tiny GAN step: G's forward alone is 0.04 GFLOP an image at 32 px,
    # and a step runs it, its backward, D on fakes and reals and their backward
    assert 0.2 < results["gan_gflop_per_image"] < 2
    assert speed["gan_gflops"] == pytest.approx(speed["gan_images_per_s"] * results["gan_gflop_per_image"])
    assert speed["large_conv_gflops"] > 0
    # where a step's time goes: the phases add up to the step, each regulariser spread over its interval
    assert re.search(r"gan step at 1 thread\(s\): step [\d.]+ ms, G [\d.]+ ms, path length -?[\d.]+ ms, D [\d.]+ ms, "
                     r"R1 -?[\d.]+ ms, rest [\d.]+ ms", run.stdout)
    ms = results["gan_step_ms"]
    assert ms["G"] > 0 and ms["D"] > 0 and ms["rest"] >= 0
    assert sum(v for k, v in ms.items() if k != "step") == pytest.approx(ms["step"])
