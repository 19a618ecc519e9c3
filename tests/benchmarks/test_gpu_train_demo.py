"""The GPU burst of the demo GAN (benchmarks/gpu_train_demo.sh): its CPU dry run goes the
whole way a GPU call would, from a new run and from a packed CPU run, and what it brings
back is a run the CPU resumes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("kanji")  # the dataset is made from the kanjivg package
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_train_demo  # noqa: E402


def burst(out: Path, *options: str) -> dict:
    # 5 minutes of "training", so that --max-steps, not a slow first step on a loaded
    # machine, ends the dry run
    run = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_train_demo.sh"), str(out), "5", "--dry-run",
                          *options], capture_output=True, text=True, timeout=240,
                         env={**os.environ, "PYTHON": sys.executable})
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads((out / "burst.json").read_text())


def test_dry_run_bursts_continue_a_cpu_run_and_come_back_resumable(tmp_path):
    from training.config import GanConfig
    from training.gan import train_gan
    from training.state import load_state
    from inference.checkpoint import load_model_checkpoint

    dataset = tmp_path / "ds64"
    first = burst(tmp_path / "out1", "--max-steps", "3", "--dataset", str(dataset))
    assert (dataset / "manifest.json").is_file()  # made from kanjivg: it was absent
    # what a device call brings back: at most 8 files, each under 16 MiB
    files = sorted((tmp_path / "out1").iterdir())
    assert len(files) <= 8 and all(f.stat().st_size < 16 * 2 ** 20 for f in files)
    assert first["steps"] == 3 and first["images_per_s"] > 0 and first["batch"] == 8
    assert first["variety"] and 0 <= first["variety"][-1]["variety"] <= 2
    assert first["timings"]["total_s"] < 560

    run1 = gpu_train_demo.unpack(tmp_path / "out1", tmp_path / "run1")
    config = json.loads((run1 / "config.json").read_text())
    state, _ = load_state(run1 / "state.pt")
    assert config["batch"] == 32 and state["config"]["batch"] == 32
    assert state["step"] == 1  # 4 steps of 8 (the warm-up one too) are one step of the CPU's 32
    generator, _, _ = load_model_checkpoint(run1 / "generator.pt")
    assert generator.init_kwargs["conv_clamp"] is None  # built as the CPU builds it

    # a CPU run, packed to travel, continued by a second burst
    carried = gpu_train_demo.pack(run1, tmp_path / "carry", None)
    assert "opt_G" not in torch.load(carried / "run" / "state.pt", weights_only=False)
    second = burst(tmp_path / "out2", "--max-steps", "1", "--dataset", str(dataset), "--from",
                   str(carried / "run"))
    assert second["kimg_start"] >= 0.032 and second["kimg_end"] > second["kimg_start"]

    # and the CPU resumes what came back, one step further
    run2 = gpu_train_demo.unpack(tmp_path / "out2", tmp_path / "run2")
    saved = json.loads((run2 / "config.json").read_text())
    saved.pop("r1_gamma_used")
    step = load_state(run2 / "state.pt")[0]["step"]
    cfg = GanConfig(**{**saved, "betas": tuple(saved["betas"]), "kimg": (step + 1) * 32 / 1000})
    summary = train_gan(dataset, run2, cfg, resume=True, progress=False)
    assert summary["steps"] == step + 1 and all(map(lambda v: v == v, (summary["loss_G"], summary["loss_D"])))

    with pytest.raises(SystemExit, match="not empty"):
        gpu_train_demo.unpack(tmp_path / "out2", tmp_path / "run2")


def test_a_glo_run_travels_with_its_codes_and_does_not_warm_up_again(tiny_gan_run, tmp_path):
    """A --glo CPU run packed for the GPU: the burst's run gets the drawings' codes and the
    warm-up's count, so it goes on pulling instead of learning new codes; the warm-up's
    Adam moments (as large as G) stay behind."""
    from training.config import config_from
    from training.gan import GanRun, train_gan
    dataset, _ = tiny_gan_run
    cfg = config_from("tiny", kimg=0.016, snapshot_kimg=0.016, batch=8, glo=30.0, glo_drawings=8,
                      glo_warmup_steps=4)
    train_gan(dataset, tmp_path / "cpu", cfg, progress=False)
    carried = gpu_train_demo.pack(tmp_path / "cpu", tmp_path / "carry", None)
    slim = torch.load(carried / "run" / "state.pt", weights_only=False)
    assert slim["glo"]["opt_warmup"]["state"] == {} and slim["glo"]["opt_pull"]["state"]
    gpu = GanRun(dataset, tmp_path / "gpu", config_from("tiny", batch=16, glo=30.0, glo_drawings=8,
                                                        glo_warmup_steps=4),
                 resume=False, force=True, meta=None, progress=False)
    gpu_train_demo.load_networks_into(gpu, carried / "run", 8)
    assert torch.equal(gpu.glo.codes.detach(), slim["glo"]["codes"]) and not gpu.glo_warming_up
    gpu.train_step()
    assert 0 < gpu.losses["glo"] < 2
