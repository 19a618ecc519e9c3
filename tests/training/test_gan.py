import math
import shutil

import pytest
import torch

from tests.training.conftest import tiny_gan_config
from training.gan import STATE, GENERATOR, train_gan


def test_gan_steps_give_finite_losses_and_weights(tiny_dataset, tmp_path):
    """A few GAN steps (R1 and ADA included) leave no NaN/inf in losses or networks and
    write samples (as files and TensorBoard images), a state and an exportable generator
    checkpoint."""
    summary = train_gan(tiny_dataset, tmp_path, tiny_gan_config(kimg=0.04, r1_interval=2, ada_interval=1),
                        progress=False)
    assert summary["steps"] == 5
    assert all(math.isfinite(summary[k]) for k in ("loss_G", "loss_D", "r1", "ada_p"))
    state = torch.load(tmp_path / STATE, weights_only=False)
    for net in ("G", "D", "G_ema"):
        assert all(torch.isfinite(v).all() for v in state[net].values() if v.is_floating_point())
    assert (tmp_path / GENERATOR).is_file()
    assert list(tmp_path.glob("samples_*.png")) and list(tmp_path.glob("interpolation_*.png"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert set(events.Tags()["images"]) == {"gan/samples", "gan/interpolation"}  # not only scalars


def test_resume_after_stop_repeats_the_same_steps_exactly(tiny_dataset, tmp_path):
    """Stopping after step 2 and resuming to step 4 gives bitwise the same networks,
    optimiser moments and ADA p as running 4 steps straight."""
    straight = train_gan(tiny_dataset, tmp_path / "a", tiny_gan_config(), progress=False)
    train_gan(tiny_dataset, tmp_path / "b", tiny_gan_config(kimg=0.016), progress=False)
    (tmp_path / "b" / "state.pt.leftover.tmp").write_bytes(b"half a checkpoint")  # a kill mid-save
    resumed = train_gan(tiny_dataset, tmp_path / "b", tiny_gan_config(), resume=True, progress=False)
    assert straight["steps"] == resumed["steps"] == 4
    a = torch.load(tmp_path / "a" / STATE, weights_only=False)
    b = torch.load(tmp_path / "b" / STATE, weights_only=False)
    for net in ("G", "D", "G_ema"):
        for key in a[net]:
            assert torch.equal(a[net][key], b[net][key]), f"{net}.{key} differs after resume"
    for key, value in a["opt_D"]["state"].items():
        assert torch.equal(value["exp_avg"], b["opt_D"]["state"][key]["exp_avg"])
    assert a["ada_p"] == b["ada_p"] and a["step"] == b["step"]
    # the variety curve continues too: one row a snapshot, the same figures as straight
    assert (tmp_path / "a" / "variety.csv").read_text() == (tmp_path / "b" / "variety.csv").read_text()


def test_every_snapshot_measures_variety_and_keeps_the_best_generator(tiny_dataset, tmp_path):
    """variety.csv gets a row a snapshot (TensorBoard the scalar), best.json names the most
    varied snapshot and generator_best.pt is its generator; a resume from an earlier state
    drops the rows it will redo."""
    import csv
    import json
    import shutil

    train_gan(tiny_dataset, tmp_path, tiny_gan_config(kimg=0.048), progress=False)
    rows = list(csv.DictReader((tmp_path / "variety.csv").open()))
    assert [int(r["step"]) for r in rows] == [2, 4, 6]
    assert all(0 <= float(r["variety"]) <= 2 and 0 < float(r["spread"]) for r in rows)
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["variety"] == pytest.approx(max(float(r["variety"]) for r in rows), abs=1e-4)
    saved = torch.load(tmp_path / "generator_best.pt", weights_only=False)
    assert saved["meta"]["steps"] == best["step"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert {"gan/variety", "gan/spread"} <= set(events.Tags()["scalars"])
    shutil.copy(tmp_path / "state.prev.pt", tmp_path / "state.pt")  # back to step 4
    train_gan(tiny_dataset, tmp_path, tiny_gan_config(kimg=0.064), resume=True, progress=False)
    rows = list(csv.DictReader((tmp_path / "variety.csv").open()))
    assert [int(r["step"]) for r in rows] == [2, 4, 6, 8]


def test_resume_without_state_and_wrong_resolution_are_clear_errors(tiny_dataset, tmp_path):
    """--resume on an empty folder and a resolution mismatch raise errors that say what to do."""
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train_gan(tiny_dataset, tmp_path, tiny_gan_config(), resume=True, progress=False)
    with pytest.raises(ValueError, match="--resolution 32"):
        train_gan(tiny_dataset, tmp_path, tiny_gan_config(resolution=64), progress=False)


def test_resume_may_change_r1_gamma_and_the_run_keeps_the_change(tiny_dataset, tmp_path):
    """A long run that levels off is tuned by its regulariser: --resume with a new R1 gamma
    continues D, optimisers and ADA p, and config.json lists the change with its kimg; any
    other new setting, or turning R1 off, is refused."""
    import json
    train_gan(tiny_dataset, tmp_path, tiny_gan_config(kimg=0.016, r1_gamma=0.2), progress=False)
    with pytest.raises(ValueError, match="not turn R1 on or off"):
        train_gan(tiny_dataset, tmp_path, tiny_gan_config(r1_gamma=0.0), resume=True, progress=False)
    with pytest.raises(ValueError, match="style_mixing"):
        train_gan(tiny_dataset, tmp_path, tiny_gan_config(r1_gamma=1.0, style_mixing=0.5), resume=True, progress=False)
    summary = train_gan(tiny_dataset, tmp_path, tiny_gan_config(r1_gamma=1.0), resume=True, progress=False)
    assert summary["steps"] == 4
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["r1_gamma_used"] == 1.0
    assert config["changes"] == [{"kimg": 0.016, "change": "r1_gamma 0.2 -> 1.0"}]
    # the next resume, with the same settings, keeps the history
    train_gan(tiny_dataset, tmp_path, tiny_gan_config(kimg=0.048, r1_gamma=1.0), resume=True, progress=False)
    assert json.loads((tmp_path / "config.json").read_text())["changes"] == config["changes"]


def test_resume_may_change_the_learning_rates_and_mirror_and_adam_takes_them(tiny_dataset, tmp_path):
    """--resume --lr / --d-lr / --mirror: Adam keeps its moments but steps at the new rate
    (its saved state carries the old one), lazily scaled as at the start; config.json lists
    the changes."""
    import json
    from training.state import load_state
    train_gan(tiny_dataset, tmp_path, tiny_gan_config(kimg=0.016, r1_gamma=0.2), progress=False)
    train_gan(tiny_dataset, tmp_path, tiny_gan_config(kimg=0.032, r1_gamma=0.2, lr=0.001, d_lr=0.002, mirror=True),
              resume=True, progress=False)
    config = json.loads((tmp_path / "config.json").read_text())
    cfg = tiny_gan_config()
    assert [c["change"] for c in config["changes"]] == [f"lr {cfg.lr} -> 0.001", "d_lr None -> 0.002",
                                                        "mirror False -> True"]
    state, _ = load_state(tmp_path / "state.pt")
    g_ratio = cfg.pl_interval / (cfg.pl_interval + 1) if cfg.pl_weight else 1.0
    d_ratio = cfg.r1_interval / (cfg.r1_interval + 1)
    assert state["opt_G"]["param_groups"][0]["lr"] == pytest.approx(0.001 * g_ratio)
    assert state["opt_D"]["param_groups"][0]["lr"] == pytest.approx(0.002 * d_ratio)
    assert state["opt_G"]["state"], "Adam's moments were kept"


def test_resume_may_change_the_ema_and_g_and_d_train_the_same(tiny_dataset, tmp_path):
    """--resume --ema-kimg / --ema-rampup: only the averaged copy differs from a run resumed
    without them; G, D and ADA's p are those of the plain continuation, bit for bit."""
    from training.state import load_state
    first = tiny_gan_config(kimg=0.016)
    train_gan(tiny_dataset, tmp_path / "plain", first, progress=False)
    shutil.copytree(tmp_path / "plain", tmp_path / "slow-ema")
    train_gan(tiny_dataset, tmp_path / "plain", tiny_gan_config(kimg=0.032), resume=True, progress=False)
    train_gan(tiny_dataset, tmp_path / "slow-ema", tiny_gan_config(kimg=0.032, ema_kimg=40.0, ema_rampup=0.0),
              resume=True, progress=False)
    plain, _ = load_state(tmp_path / "plain" / "state.pt")
    slow, _ = load_state(tmp_path / "slow-ema" / "state.pt")
    for net in ("G", "D"):
        assert all(torch.equal(plain[net][k], slow[net][k]) for k in plain[net]), net
    assert plain["ada_p"] == slow["ada_p"]
    assert any(not torch.equal(plain["G_ema"][k], slow["G_ema"][k]) for k in plain["G_ema"])


def test_r1_gamma_follows_the_reference_heuristic_unless_set():
    """gamma = 0.0002 R^2 / batch in every preset (64 px batch 16: 0.0512; 256 px batch 16:
    0.8192); an explicit --r1-gamma wins."""
    from training.config import config_from
    assert config_from("cpu-demo").gamma == pytest.approx(0.0512)
    assert config_from("full").gamma == pytest.approx(0.8192)
    assert config_from("tiny").gamma == pytest.approx(0.0002 * 32 ** 2 / 8)
    assert config_from("cpu-demo", batch=32).gamma == pytest.approx(0.0256)
    assert config_from("cpu-demo", r1_gamma=0.3).gamma == 0.3
    assert all(config_from(p).mapping_layers == 2 for p in ("tiny", "cpu-demo"))
    assert config_from("full").pl_weight == 2 and config_from("full").pl_interval == 4
    assert config_from("tiny", kimg=0.408, batch=8).total_steps == 51  # not ceil(51.00000000000001)


def test_ema_half_life_and_rampup_as_the_reference():
    """Half-life 10 kimg x batch / 32 once past the ramp-up; during it, 5% of the images
    seen so far (beta = 0.5 ** (batch / ema_nimg))."""
    from training.config import config_from
    from training.gan import ema_beta
    cfg = config_from("cpu-demo")
    late = 10_000_000 // cfg.batch
    assert ema_beta(cfg, late) == pytest.approx(0.5 ** (16 / 5000))
    assert ema_beta(cfg, 99) == pytest.approx(0.5 ** (16 / (100 * 16 * 0.05)))
    assert ema_beta(config_from("cpu-demo", ema_rampup=0.0), 0) == pytest.approx(0.5 ** (16 / 5000))


def test_mixed_precision_puts_only_the_highest_blocks_in_fp16():
    """With mixed precision (as on CUDA) the 4 highest resolutions of G and D are fp16 and
    clamped at 256; the 4x4 block, the mapping and D's epilogue stay fp32; on the CPU path
    nothing is fp16."""
    from inference.networks import fp16_resolutions
    from training.config import config_from
    from training.gan import build_networks
    assert fp16_resolutions(256, 4) == {32, 64, 128, 256}
    assert fp16_resolutions(32, 4) == {8, 16, 32} and fp16_resolutions(64, 0) == set()
    G, D = build_networks(config_from("full"), mixed_precision=True)
    assert {b.resolution for b in G.synthesis.blocks if b.use_fp16} == {32, 64, 128, 256}
    assert [b.use_fp16 for b in D.blocks] == [True, True, True, True, False, False]  # 256 ... 8
    assert G.synthesis.blocks[-1].conv1.conv_clamp == 256 and D.blocks[0].conv0.conv_clamp == 256
    G, D = build_networks(config_from("full"))
    assert not any(b.use_fp16 for b in G.synthesis.blocks) and G.init_kwargs["conv_clamp"] is None


def test_path_length_penalty_is_trained_and_resumed(tiny_dataset, tmp_path):
    """With path-length regularisation on, its running mean grows from 0, is saved, and a
    resume continues from it."""
    cfg = tiny_gan_config(pl_weight=2.0, pl_interval=2)
    train_gan(tiny_dataset, tmp_path, tiny_gan_config(pl_weight=2.0, pl_interval=2, kimg=0.016), progress=False)
    first = torch.load(tmp_path / STATE, weights_only=False)["pl_mean"]
    summary = train_gan(tiny_dataset, tmp_path, cfg, resume=True, progress=False)
    assert first > 0 and math.isfinite(summary["pl_length"])
    assert torch.load(tmp_path / STATE, weights_only=False)["pl_mean"] != first


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_ctrl_c_saves_the_state_and_says_how_to_resume(tiny_dataset, tmp_path, signame):
    """Ctrl-C (or SIGTERM) during `train gan`: the step finishes, state.pt is written at
    that step, the command prints the exact command that continues and exits 130 (143),
    no traceback; --resume then runs to the end."""
    import os
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "installation.cli", "train", "gan", str(tiny_dataset), "--out", str(run),
           "--tiny", "--batch", "8", "--kimg", "40", "--snapshot-kimg", "20", "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.monotonic() + 120
    while not (run / "tensorboard").is_dir() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3.0)  # some steps in
    proc.send_signal(getattr(signal, signame))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + getattr(signal, signame), err[-2000:]
    assert "Traceback" not in err
    state = torch.load(run / STATE, weights_only=False)
    assert 0 < state["step"] < 5000
    assert out.strip().endswith(f"stopped at step {state['step']} ({state['step'] * 8 / 1000:.2f} kimg); the state is "
                                f"saved; resume with: newsnow " + " ".join(cmd[3:]) + " --resume")
    resumed = subprocess.run(cmd[:-2] + ["--kimg", str((state["step"] + 2) * 8 / 1000), "--resume", "--threads", "1"],
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert torch.load(run / STATE, weights_only=False)["step"] == state["step"] + 2


def test_a_new_run_can_start_from_a_trained_generator_and_refuses_other_widths(tiny_dataset, tmp_path):
    """--init-generator: G takes the given generator's weights (w_avg included), D starts
    new; a generator of other widths and a resume with it are refused, saying why."""
    from training.gan import build_networks, start_from_generator

    train_gan(tiny_dataset, tmp_path / "a", tiny_gan_config(kimg=0.016), progress=False)
    trained = torch.load(tmp_path / "a" / STATE, weights_only=False)["G_ema"]
    G, _ = build_networks(tiny_gan_config())
    start_from_generator(G, tmp_path / "a" / GENERATOR)
    assert all(torch.equal(value, trained[name]) for name, value in G.state_dict().items())
    wider, _ = build_networks(tiny_gan_config(channel_base=2 * tiny_gan_config().channel_base))
    with pytest.raises(ValueError, match="give the settings"):
        start_from_generator(wider, tmp_path / "a" / GENERATOR)
    summary = train_gan(tiny_dataset, tmp_path / "b", tiny_gan_config(kimg=0.016), progress=False,
                        init_generator=tmp_path / "a" / GENERATOR)
    assert summary["steps"] == 2
    with pytest.raises(ValueError, match="starts a new run"):
        train_gan(tiny_dataset, tmp_path / "b", tiny_gan_config(), resume=True, progress=False,
                  init_generator=tmp_path / "a" / GENERATOR)


def test_d_may_learn_at_its_own_rate(tiny_dataset, tmp_path):
    """--d-lr gives D's Adam its own learning rate (lazily scaled like G's); unset, D learns
    at --lr; a rate that is not positive is refused."""
    from training.gan import GanRun
    run = GanRun(tiny_dataset, tmp_path / "a", tiny_gan_config(lr=0.002, d_lr=0.0005), resume=False, force=False,
                 meta=None, progress=False)
    ratio = run.cfg.r1_interval / (run.cfg.r1_interval + 1)
    assert run.opt_D.param_groups[0]["lr"] == pytest.approx(0.0005 * ratio)
    assert run.opt_G.param_groups[0]["lr"] != pytest.approx(0.0005 * ratio)
    same = GanRun(tiny_dataset, tmp_path / "b", tiny_gan_config(lr=0.002), resume=False, force=False,
                  meta=None, progress=False)
    assert same.opt_D.param_groups[0]["lr"] == pytest.approx(0.002 * ratio)
    with pytest.raises(ValueError, match="d_lr 0"):
        tiny_gan_config(d_lr=0.0)


def test_a_packing_discriminator_judges_drawings_together_and_trains(tiny_dataset, tmp_path):
    """PacGAN: D with pack 4 gives one score per 4 consecutive drawings, each depending on
    all four and on no other; its features still take one drawing (the encoder's loss); a
    run with --d-pack 2 trains, and its D is read back for those features."""
    from inference.networks import Discriminator
    from training.gan import load_discriminator

    torch.manual_seed(0)
    D = Discriminator(32, 1, channel_base=256, channel_max=32, mbstd_group=1, pack=4)
    images = torch.randn(8, 1, 32, 32)
    scores = D(images)
    assert scores.shape == (2, 1)
    changed = images.clone()
    changed[6] = torch.randn(1, 32, 32)  # the second pack's third drawing
    again = D(changed)
    assert torch.equal(again[0], scores[0]) and not torch.equal(again[1], scores[1])
    assert [f.shape[0] for f in D.features(images[:3])] == [3] * len(D.blocks)
    with pytest.raises(ValueError, match="packs of 4"):
        D(images[:6])
    with pytest.raises(ValueError, match="d_pack 3"):
        tiny_gan_config(d_pack=3)  # batch 8
    summary = train_gan(tiny_dataset, tmp_path, tiny_gan_config(d_pack=2), progress=False)
    assert math.isfinite(summary["loss_G"]) and math.isfinite(summary["loss_D"])
    assert load_discriminator(tmp_path).pack == 2


def test_mode_seeking_penalises_one_template_and_trains(tiny_dataset, tmp_path):
    """MSGAN's term: one drawing for every z costs far more than different drawings, its
    gradient moves paired drawings apart, and a run with it trains to finite losses."""
    from training.loss import mode_seeking_penalty

    torch.manual_seed(0)
    z = torch.randn(8, 16)
    template = torch.rand(1, 1, 8, 8).expand(8, 1, 8, 8) + 0.01 * torch.randn(8, 1, 8, 8)
    varied = torch.rand(8, 1, 8, 8) * 2 - 1
    assert mode_seeking_penalty(template, z) > 10 * mode_seeking_penalty(varied, z)
    fake = template.clone().requires_grad_(True)
    mode_seeking_penalty(fake, z).backward()
    moved = fake.detach() - 0.01 * fake.grad
    assert (moved[:4] - moved[4:]).abs().mean() > (fake[:4] - fake[4:]).abs().mean()
    summary = train_gan(tiny_dataset, tmp_path, tiny_gan_config(mode_seeking=1.0), progress=False)
    assert math.isfinite(summary["loss_G"])
    with pytest.raises(ValueError, match="mode_seeking"):
        tiny_gan_config(mode_seeking=-1.0)


def test_imle_pulls_a_sample_towards_each_drawing(tiny_dataset, tmp_path):
    """IMLE's pull: steps on it alone bring G's nearest samples closer to two different
    drawings (measured on fresh samples); a run made without it (its saved config older
    than the setting) takes it on --resume, and the pull is logged."""
    import json
    from training.config import config_from
    from training.gan import build_networks
    from training.loss import imle_penalty
    from training.state import load_state, save_state

    torch.manual_seed(0)
    G, _ = build_networks(config_from("tiny"))
    reals = torch.ones(2, 1, 32, 32)
    reals[1, :, 8:24, 8:24] = -1  # a white sheet and a black square: two layouts

    def distance() -> float:
        torch.manual_seed(1)
        with torch.no_grad():
            return float(imle_penalty(G, reals, 8))

    before = distance()
    opt = torch.optim.Adam(G.parameters(), lr=0.01, betas=(0.0, 0.99))
    for _ in range(30):
        opt.zero_grad()
        imle_penalty(G, reals, 8).backward()
        opt.step()
    assert distance() < 0.3 * before

    train_gan(tiny_dataset, tmp_path, tiny_gan_config(kimg=0.016), progress=False)
    state, _ = load_state(tmp_path / STATE)
    for key in ("imle", "imle_candidates", "imle_interval"):
        del state["config"][key]
    save_state(state, tmp_path / STATE)
    summary = train_gan(tiny_dataset, tmp_path, tiny_gan_config(kimg=0.032, imle=1.0, imle_interval=1),
                        resume=True, progress=False)
    assert 0 < summary["imle"] < 1
    config = json.loads((tmp_path / "config.json").read_text())
    assert [c["change"] for c in config["changes"]] == ["imle 0.0 -> 1.0", "imle_interval 4 -> 1"]
    with pytest.raises(ValueError, match="imle"):
        tiny_gan_config(imle_candidates=0)


def test_a_stop_while_the_run_is_set_up_saves_its_state_before_the_first_step(tiny_dataset, tmp_path, monkeypatch):
    """Ctrl-C while a run loads its data and networks is heard: no step, the state saved,
    so the resume command it prints works."""
    import os
    import signal

    from training import gan
    from training.state import load_state
    set_up = gan.GanRun.__init__

    def interrupted(self, *args, **kwargs):
        set_up(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(gan.GanRun, "__init__", interrupted)
    summary = train_gan(tiny_dataset, tmp_path, tiny_gan_config(), progress=False)
    assert summary["stopped_by"] == "SIGINT" and summary["steps"] == 0
    assert load_state(tmp_path / STATE)[0]["step"] == 0
    monkeypatch.undo()
    summary = train_gan(tiny_dataset, tmp_path, tiny_gan_config(), resume=True, progress=False)
    assert summary["steps"] == tiny_gan_config().total_steps


def test_the_best_snapshot_is_one_drawn_in_lines_once_there_is_one(tmp_path):
    """Grey smudges can read varied (training.variety): a smudged snapshot is the best only
    while no snapshot draws in lines, and a more varied smudged one never replaces a clean
    best, also after a resume reads the curve back."""
    import json

    import numpy as np

    from training.gan import VarietyWatch
    from training.variety import GREY_LIMIT

    collection = np.random.default_rng(0).integers(0, 256, (24, 16, 16), dtype=np.uint8)
    watch = VarietyWatch(tmp_path, collection, z_dim=4, seed=0, step=0)
    clean, smudged = watch.meter.real_grey, watch.meter.real_grey * GREY_LIMIT * 1.2
    generator = tmp_path / "generator.pt"
    kept = []
    for step, (variety, grey) in enumerate([(0.5, smudged), (0.4, clean), (0.9, smudged), (0.45, clean)], 1):
        generator.write_bytes(f"snapshot {step}".encode())
        watch.measure = lambda G, v=variety, g=grey: {"variety": v, "grey": g, "spread": 1.0, "coverage": 0.5,
                                                      "nearest_distinct": 3}
        figures = watch.record(None, generator, kimg=step, step=step, losses={})
        assert figures["smudged"] == (grey == smudged)
        kept.append((tmp_path / "generator_best.pt").read_bytes().decode())
    assert kept == ["snapshot 1", "snapshot 2", "snapshot 2", "snapshot 4"]
    assert json.loads((tmp_path / "best.json").read_text())["step"] == 4
    resumed = VarietyWatch(tmp_path, collection, z_dim=4, seed=0, step=4)
    assert resumed.best == (True, 0.45)


def test_glo_warmup_learns_its_drawings_then_the_gan_pulls_them(tiny_dataset, tmp_path):
    """--glo: the warm-up brings its drawings' fits closer (pixel error falls), G's EMA
    starts from what it learnt, the fits and the network are written, and the GAN's steps
    keep pulling (the pull's error in the losses)."""
    from inference import tensors
    from inference.checkpoint import load_model_checkpoint
    from training.gan import GLO_NETWORK, GanRun

    cfg = tiny_gan_config(glo=30.0, glo_drawings=8, glo_warmup_steps=40)
    run = GanRun(tiny_dataset, tmp_path / "a", cfg, resume=False, force=False, meta=None, progress=False)

    def error() -> float:
        with torch.no_grad():
            drawings = tensors.from_uint8(run.reals[run.glo.index])
            return float((run.G.synthesis(run.G.mapping(run.glo.codes), noise_mode="const") - drawings)
                         .square().mean())

    before = error()
    while run.glo_warming_up:
        run.glo_warmup_step()
    assert error() < 0.7 * before
    assert all(torch.equal(a, b) for a, b in zip(run.G.state_dict().values(), run.G_ema.state_dict().values()))
    assert (tmp_path / "a" / "glo_fits.png").is_file()
    assert load_model_checkpoint(tmp_path / "a" / GLO_NETWORK)[0] is not None  # an --init-generator
    summary = train_gan(tiny_dataset, tmp_path / "b", cfg, progress=False)
    assert summary["steps"] == cfg.total_steps and 0 < summary["glo"] < 2


def test_a_glo_run_from_a_generator_without_variety_is_warned(tiny_dataset, tmp_path, caplog, monkeypatch):
    """A new --glo run measures the variety it starts from and warns below GLO_START_VARIETY
    (such runs drew smudges on KanjiVG); a resumed run does not measure again."""
    from training.gan import GLO_START_VARIETY, GanRun, VarietyWatch

    cfg = tiny_gan_config(glo=30.0, glo_drawings=8, glo_warmup_steps=2)
    measured = VarietyWatch.measure
    for variety, warned in ((GLO_START_VARIETY - 0.01, True), (GLO_START_VARIETY + 0.01, False)):
        monkeypatch.setattr(VarietyWatch, "measure", lambda self, G: {**measured(self, G), "variety": variety})
        caplog.clear()
        with caplog.at_level("INFO", logger="training.gan"):
            run = GanRun(tiny_dataset, tmp_path / "a", cfg, resume=False, force=True, meta=None, progress=False)
        assert f"--glo starts from a generator of variety {variety:.2f}" in caplog.text
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert bool(warnings) == warned and all("--init-generator" in w for w in warnings)
    run.save_state()
    caplog.clear()
    with caplog.at_level("INFO", logger="training.gan"):
        GanRun(tiny_dataset, tmp_path / "a", cfg, resume=True, force=False, meta=None, progress=False)
    assert "--glo starts from" not in caplog.text


def test_a_glo_run_stopped_in_its_warmup_and_in_its_gan_resumes_exactly(tiny_dataset, tmp_path, monkeypatch):
    """Ctrl-C in the warm-up saves it (no snapshot of a half-learnt network); resuming
    through the rest of the warm-up, a stop after 2 GAN steps and the last 2 gives bitwise
    the networks, codes and optimisers of the run made straight."""
    import os
    import signal

    from training import gan
    cfg = dict(glo=30.0, glo_drawings=8, glo_warmup_steps=6)
    straight = train_gan(tiny_dataset, tmp_path / "a", tiny_gan_config(**cfg), progress=False)
    warmup_step = gan.GanRun.glo_warmup_step

    def interrupted(self):
        warmup_step(self)
        if self.counters["glo_warmup"] == 3:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(gan.GanRun, "glo_warmup_step", interrupted)
    stopped = train_gan(tiny_dataset, tmp_path / "b", tiny_gan_config(**cfg), progress=False)
    assert stopped["stopped_by"] == "SIGINT" and stopped["steps"] == 0
    assert not list((tmp_path / "b").glob("samples_*")) and not (tmp_path / "b" / gan.GLO_NETWORK).exists()
    monkeypatch.undo()
    train_gan(tiny_dataset, tmp_path / "b", tiny_gan_config(**cfg, kimg=0.016), resume=True, progress=False)
    resumed = train_gan(tiny_dataset, tmp_path / "b", tiny_gan_config(**cfg), resume=True, progress=False)
    assert straight["steps"] == resumed["steps"] == 4
    a = torch.load(tmp_path / "a" / STATE, weights_only=False)
    b = torch.load(tmp_path / "b" / STATE, weights_only=False)
    assert a["glo_warmup"] == b["glo_warmup"] == 6
    for net in ("G", "D", "G_ema"):
        for key in a[net]:
            assert torch.equal(a[net][key], b[net][key]), f"{net}.{key} differs after resume"
    assert torch.equal(a["glo"]["codes"], b["glo"]["codes"]) and torch.equal(a["glo"]["index"], b["glo"]["index"])
    for opt in ("opt_warmup", "opt_pull"):
        for key, value in a["glo"][opt]["state"].items():
            assert torch.equal(value["exp_avg"], b["glo"][opt]["state"][key]["exp_avg"])


def test_glo_settings_that_cannot_work_are_refused_before_training(tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match="glo_drawings 500 is more than the 36 training drawings"):
        train_gan(tiny_dataset, tmp_path, tiny_gan_config(glo=1.0, glo_drawings=500), progress=False)
    with pytest.raises(ValueError, match="glo"):
        tiny_gan_config(glo=-1.0)
    with pytest.raises(ValueError, match="glo"):
        tiny_gan_config(glo=1.0, glo_lr=0.0)
