"""StyleGAN2 training on a dataset from `newsnow train ingest` (`newsnow train gan`).

One explicit loop (`train_gan`), stylegan2-ada-pytorch's recipe in plain PyTorch (losses
in training/loss.py): non-saturating logistic loss, lazy R1 (gamma 0.0002 R^2 / batch
unless set) and lazy path-length regularisation, style mixing, an EMA copy of the
generator (the one that is exported), ADA (or DiffAugment-style fixed augmentation when
ADA is off), mixed precision on CUDA as the reference does it (fp16 only in the highest
`num_fp16_res` blocks, conv outputs clamped, mapping and D's epilogue fp32), several GPUs
through torchrun (gradients all-reduced by hand, since R1 needs double backward).

Everything a resume needs is in RUN/state.pt (networks, optimisers, ADA p and its
accumulator, path-length mean, step, every RNG state), written atomically beside the
previous one (RUN/state.prev.pt, the fallback when the newest is damaged); `--resume`
continues exactly.
RUN/generator.pt is the EMA generator as a model checkpoint for `sketches` and export.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from inference import tensors
from inference.checkpoint import save_model_checkpoint
from inference.networks import Discriminator, Generator, count_parameters
from training.config import GAN_CHANGEABLE, GanConfig, config_from, resumed_settings  # noqa: F401
from training.augment import ADA_SPEC, DIFFAUGMENT_SPEC, augment, ada_update
from training.progress import ProgressLines, around_bar, stage_bar
from training.state import load_state, prepare_run_folder, previous_of, save_state
from training.stopping import StopRequest
from storage import atomic_write_json, atomic_write_png
from training.loss import discriminator_loss, generator_loss, mapped_ws, path_length_loss
from training.ingest import load_images, load_manifest

log = logging.getLogger(__name__)

STATE = "state.pt"
GENERATOR = "generator.pt"


# ---------------------------------------------------------------------------------------
# Helpers the loop uses.


def build_networks(cfg: GanConfig, channels: int = 1, mixed_precision: bool = False
                   ) -> tuple[Generator, Discriminator]:
    """G and D of `cfg`; with mixed precision (CUDA), the `num_fp16_res` highest blocks of
    each run in fp16 and every conv output is clamped to +-conv_clamp, as the reference."""
    fp16 = dict(conv_clamp=cfg.conv_clamp, num_fp16_res=cfg.num_fp16_res) if mixed_precision else {}
    G = Generator(cfg.resolution, channels, z_dim=cfg.z_dim, w_dim=cfg.w_dim,
                  mapping_layers=cfg.mapping_layers, channel_base=cfg.channel_base,
                  channel_max=cfg.channel_max, mapping_lr_multiplier=cfg.mapping_lr_multiplier, **fp16)
    D = Discriminator(cfg.resolution, channels, channel_base=cfg.d_channel_base,
                      channel_max=cfg.d_channel_max, mbstd_group=cfg.mbstd_group, **fp16)
    return G, D


def lazy_adam(params, cfg: GanConfig, interval: int) -> torch.optim.Adam:
    """Adam for a player whose regulariser runs every `interval` steps: lr and betas scaled
    by interval / (interval + 1), as the reference does for lazy regularisation."""
    ratio = interval / (interval + 1) if interval else 1.0
    return torch.optim.Adam(params, lr=cfg.lr * ratio, betas=(cfg.betas[0] ** ratio, cfg.betas[1] ** ratio),
                            eps=1e-8)


def ema_beta(cfg: GanConfig, step: int) -> float:
    """The EMA decay after `step` steps: half-life ema_kimg * batch / 32 thousand images (the
    reference's auto config), ramped up to `ema_rampup` of the images seen so far."""
    ema_nimg = cfg.ema_kimg * 1000 * cfg.batch / 32
    if cfg.ema_rampup:
        ema_nimg = min(ema_nimg, (step + 1) * cfg.batch * cfg.ema_rampup)
    return 0.5 ** (cfg.batch / max(ema_nimg, 1e-8))


def rng_states() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
            "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if states.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[B, C, R, R] in [-1, 1] -> uint8 [B, R, R] (first channel), per docs/CONTRACTS.md."""
    return tensors.to_uint8(images[:, 0])


def grid_image(tiles: np.ndarray, columns: int) -> np.ndarray:
    """uint8 [N, R, R] -> one image, `columns` tiles a row, a 1 px grey gutter."""
    n, r, _ = tiles.shape
    rows = math.ceil(n / columns)
    out = np.full((rows * (r + 1) + 1, columns * (r + 1) + 1), 128, dtype=np.uint8)
    for k in range(n):
        y, x = divmod(k, columns)
        out[1 + y * (r + 1):1 + y * (r + 1) + r, 1 + x * (r + 1):1 + x * (r + 1) + r] = tiles[k]
    return out


@torch.no_grad()
def save_samples(G: Generator, z_grid: torch.Tensor, out: Path, tag: str) -> dict[str, np.ndarray]:
    """A sample grid and a W interpolation strip (4 pairs x 8 steps), constant noise;
    returns them by name (for TensorBoard)."""
    ws = G.mapping(z_grid)
    cols = int(math.sqrt(len(z_grid)))
    t = torch.linspace(0, 1, 8, device=ws.device)
    a, b = ws[0:4], ws[4:8]
    lerp = a[:, None] + (b - a)[:, None] * t[None, :, None, None]
    images = {"samples": grid_image(to_uint8(G.synthesis(ws, noise_mode="const")), cols),
              "interpolation": grid_image(to_uint8(G.synthesis(lerp.flatten(0, 1), noise_mode="const")), 8)}
    for name, image in images.items():
        atomic_write_png(out / f"{name}_{tag}.png", image)
    return images


def _all_reduce_grads(module: torch.nn.Module, world: int) -> None:
    if world > 1:
        for p in module.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= world


# ---------------------------------------------------------------------------------------
# The loop.


def train_gan(dataset: Path, out: Path, cfg: GanConfig, resume: bool = False,
              progress: bool = True, meta: dict | None = None, force: bool = False) -> dict:
    """Train (or resume) a StyleGAN2 on `dataset`; writes RUN = `out`. Returns a summary.

    Each step: G's main loss; every pl_interval steps G's path-length penalty; D's main
    loss (with R1 every r1_interval steps); ADA's p; the EMA generator; then logs and,
    every snapshot_kimg, samples and the training state. A resume refuses settings that
    differ from the run's (GAN_CHANGEABLE excepted); an `out` that holds a run needs
    `resume` or `force`.
    """
    dataset, out = Path(dataset), Path(out)
    cfg.validate()
    state_path = out / STATE
    prepare_run_folder(out, state_path, resume, force, "GAN")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.batch % world:
        raise ValueError(f"gan: batch {cfg.batch} does not split over {world} processes")
    batch = cfg.batch // world
    mixed = cfg.amp and device.type == "cuda"

    manifest = load_manifest(dataset)
    if manifest["settings"]["resolution"] != cfg.resolution:
        raise ValueError(f"gan: dataset {dataset} is {manifest['settings']['resolution']} px but "
                         f"resolution is {cfg.resolution}: pass --resolution "
                         f"{manifest['settings']['resolution']} or ingest again")
    reals_all = torch.from_numpy(load_images(dataset, "train"))[:, None].to(device)  # uint8

    torch.manual_seed(cfg.seed)  # same initial networks on every rank
    G, D = build_networks(cfg, mixed_precision=mixed)
    layout = torch.channels_last if cfg.channels_last else torch.contiguous_format
    G, D = G.to(device, memory_format=layout).train(), D.to(device, memory_format=layout).train()
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt_G = lazy_adam(G.parameters(), cfg, cfg.pl_interval if cfg.pl_weight else 0)
    opt_D = lazy_adam(D.parameters(), cfg, cfg.r1_interval if cfg.gamma else 0)
    # fp32 weights, fp16 activations in some blocks: loss scaling keeps small gradients.
    scaler_G = torch.amp.GradScaler("cuda", enabled=mixed)
    scaler_D = torch.amp.GradScaler("cuda", enabled=mixed)
    spec = dataclasses.replace(ADA_SPEC if cfg.ada else DIFFAUGMENT_SPEC, rotate90=cfg.rotate90)
    stateful = dict(G=G, D=D, G_ema=G_ema, opt_G=opt_G, opt_D=opt_D, scaler_G=scaler_G, scaler_D=scaler_D)
    counters = dict(step=0, ada_p=0.0, ada_sum=0.0, ada_count=0, elapsed=0.0, pl_mean=0.0)
    torch.manual_seed(cfg.seed + 1 + rank)  # different batches and z on every rank

    out.mkdir(parents=True, exist_ok=True)
    if resume:
        counters = load_training_state(state_path, stateful, counters, device, world, rank, cfg)
    step, ada_p = counters["step"], counters["ada_p"]
    pl_mean = torch.tensor(counters["pl_mean"], device=device)
    if rank == 0:
        # read back by --resume: never half written
        atomic_write_json(out / "config.json", {**dataclasses.asdict(cfg), "r1_gamma_used": cfg.gamma})
        log.info("G %d params, D %d params, %d training images, %d steps of batch %d, R1 gamma %.4g",
                 count_parameters(G), count_parameters(D), len(reals_all), cfg.total_steps, cfg.batch, cfg.gamma)
    z_grid = torch.randn(16, cfg.z_dim, generator=torch.Generator().manual_seed(cfg.seed)).to(device)
    snapshot_steps = max(1, round(cfg.snapshot_kimg * 1000 / cfg.batch))

    writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(str(out / "tensorboard"))
    bar = stage_bar(cfg.total_steps, min(step, cfg.total_steps), desc="gan", enabled=progress)
    progress_line = ProgressLines(log)

    def real_batch() -> torch.Tensor:
        index = torch.randint(len(reals_all), (batch,), device=device)
        x = tensors.from_uint8(reals_all[index]).contiguous(memory_format=layout)
        if cfg.mirror:
            flip = torch.rand(batch, device=device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x

    def disc(images: torch.Tensor) -> torch.Tensor:
        return D(augment(images, ada_p, spec) if cfg.ada else augment(images, 1.0, spec))

    def latents(n: int = batch) -> torch.Tensor:
        return torch.randn(n, cfg.z_dim, device=device)

    def optimise(loss: torch.Tensor, net: torch.nn.Module, opt, scaler) -> None:
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        _all_reduce_grads(net, world)
        scaler.step(opt)
        scaler.update()

    started = time.time() - counters["elapsed"]
    session_start, session_step = time.time(), step

    def kimg_per_hour() -> float:  # of this process (a resumed run's earlier speed is not known)
        return (step - session_step) * cfg.batch / 1000 / max(time.time() - session_start, 1e-6) * 3600

    def report() -> str:
        kimg, total = step * cfg.batch / 1000, cfg.total_steps * cfg.batch / 1000
        return (f"{kimg:.2f}/{total:.2f} kimg, {kimg_per_hour():.0f} kimg/h, G {losses.get('loss_G', 0):.3f} "
                f"D {losses.get('loss_D', 0):.3f} ADA p {ada_p:.3f}")

    losses = {}
    with StopRequest() as stop, around_bar():
        while step < cfg.total_steps and not stop.signal:
            # Generator: main loss, then (lazily) its path-length penalty.
            G.requires_grad_(True), D.requires_grad_(False)
            loss_G = generator_loss(G, disc, latents(), cfg.style_mixing)
            optimise(loss_G, G, opt_G, scaler_G)
            if cfg.pl_weight and step % cfg.pl_interval == 0:
                penalty, pl_mean, losses["pl_length"] = path_length_loss(
                    G, latents(max(1, batch // cfg.pl_batch_shrink)), cfg.style_mixing, pl_mean,
                    cfg.pl_weight, cfg.pl_decay)
                optimise(penalty * cfg.pl_interval, G, opt_G, scaler_G)

            # Discriminator: fakes fake, reals real; every r1_interval steps also R1 on reals.
            G.requires_grad_(False), D.requires_grad_(True)
            with torch.no_grad():
                fake = G.synthesis(mapped_ws(G, latents(), cfg.style_mixing))
            r1_weight = cfg.gamma / 2 * cfg.r1_interval if cfg.gamma and step % cfg.r1_interval == 0 else 0.0
            loss_D, logits_real, r1 = discriminator_loss(disc, fake, real_batch(), r1_weight)
            if r1 is not None:
                losses["r1"] = r1
            optimise(loss_D, D, opt_D, scaler_D)

            # ADA: steer p by the sign of D on reals.
            counters["ada_sum"] += float(logits_real.sign().sum())
            counters["ada_count"] += batch
            if cfg.ada and (step + 1) % cfg.ada_interval == 0:
                stats = torch.tensor([counters["ada_sum"], counters["ada_count"]], dtype=torch.float64, device=device)
                if world > 1:
                    dist.all_reduce(stats)
                rt = float(stats[0] / stats[1])
                ada_p = ada_update(ada_p, rt, cfg.ada_target, int(stats[1]), cfg.ada_kimg)
                losses["ada_rt"] = rt
                counters["ada_sum"], counters["ada_count"] = 0.0, 0

            # EMA of the generator (what is sampled and exported).
            with torch.no_grad():
                beta = ema_beta(cfg, step)
                for p_ema, p in zip(G_ema.parameters(), G.parameters()):
                    p_ema.copy_(p.detach().lerp(p_ema, beta))
                for b_ema, b in zip(G_ema.buffers(), G.buffers()):
                    b_ema.copy_(b)
            step += 1
            losses.update(loss_G=float(loss_G.detach()), loss_D=float(loss_D.detach()), ada_p=ada_p)
            if not all(math.isfinite(v) for v in losses.values()):
                raise FloatingPointError(f"gan: a loss became NaN/inf at step {step}: {losses}; "
                                         f"lower --lr or raise --r1-gamma, then --resume")

            if rank == 0:
                if step % cfg.log_every == 0 or step == cfg.total_steps:
                    for name, value in losses.items():
                        writer.add_scalar(f"gan/{name}", value, step * cfg.batch)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(report(), refresh=False)
                snapshot = step % snapshot_steps == 0 or step == cfg.total_steps or stop.signal
                progress_line(f"gan step {step}/{cfg.total_steps}: {report()}", force=snapshot)
                if snapshot:
                    # The state first: a second Ctrl-C or a kill in what follows costs images only.
                    counters.update(step=step, ada_p=ada_p, pl_mean=float(pl_mean), elapsed=time.time() - started)
                    save_training_state(state_path, stateful, counters, cfg, D)
                    save_model_checkpoint(out / GENERATOR, G_ema, None, {
                        **(meta or {}), "dataset": manifest.get("source", str(dataset)), "ingested": str(dataset),
                        "licence": manifest.get("licence", "unknown"),
                        "credit": manifest.get("credit", ""), "images": len(reals_all), "resolution": cfg.resolution,
                        "kimg": step * cfg.batch / 1000, "steps": step, "train_seconds": counters["elapsed"],
                        "gan_losses": dict(losses)})
                    for name, image in save_samples(G_ema, z_grid, out, f"{step * cfg.batch / 1000:07.1f}kimg").items():
                        writer.add_image(f"gan/{name}", image, step * cfg.batch, dataformats="HW")
    if bar is not None:
        bar.close()
    if writer is not None:
        writer.close()
    seconds = time.time() - started
    if world > 1 and losses:  # each rank saw its own batches: the run's losses are their mean
        names = sorted(losses)
        mean = torch.tensor([losses[n] for n in names], dtype=torch.float64, device=device)
        dist.all_reduce(mean)
        losses = {n: float(v) / world for n, v in zip(names, mean)}
        losses["ada_p"] = ada_p  # the same on every rank
    summary = {"steps": step, "kimg": step * cfg.batch / 1000, "ada_p": ada_p, "seconds": seconds,
               "kimg_per_hour": kimg_per_hour(), "processes": world,
               **losses}
    if stop.signal:
        summary.update(stopped_by=stop.signal, exit_code=stop.exit_code)
        log.info("stopped by %s at step %d (%.2f kimg); %s saved",
                 stop.signal, step, step * cfg.batch / 1000, state_path)
    if rank == 0:
        atomic_write_json(out / "summary.json", summary)
    return summary


def save_training_state(path: Path, stateful: dict, counters: dict, cfg: GanConfig, D: Discriminator) -> None:
    """Everything `load_training_state` needs for an exact continuation (training.state)."""
    save_state({**{name: obj.state_dict() for name, obj in stateful.items()}, **counters,
                "rng": rng_states(), "config": dataclasses.asdict(cfg), "D_init_kwargs": D.init_kwargs}, path)


def load_training_state(path: Path, stateful: dict, counters: dict, device, world: int, rank: int,
                        cfg: GanConfig) -> dict:
    """Restore what `save_training_state` wrote into `stateful`; returns the counters."""
    state, path = load_state(path, device)
    _, changes = resumed_settings("gan", state["config"], dataclasses.asdict(cfg), changeable=GAN_CHANGEABLE)
    for change in changes:
        log.info("resume: %s (applied)", change)
    for name, obj in stateful.items():
        obj.load_state_dict(state[name])
    restored = {key: state.get(key, default) for key, default in counters.items()}
    if world == 1:
        set_rng_states(state["rng"])  # exact continuation
    else:  # the saved RNG is rank 0's: give each rank its own stream again
        torch.manual_seed(cfg.seed + 1 + rank + 1000 * restored["step"])
    log.info("resumed %s at step %d (%.1f kimg, ADA p %.3f)", path, restored["step"],
             restored["step"] * cfg.batch / 1000, restored["ada_p"])
    return restored


def load_discriminator(run: Path) -> Discriminator:
    """The trained discriminator of a GAN run (its features stand in for LPIPS)."""
    path = Path(run) / STATE
    if not path.is_file() and not previous_of(path).is_file():
        raise FileNotFoundError(f"{path}: no GAN training state; train with `newsnow train gan` first")
    state, _ = load_state(path)
    # fp32 throughout: its features are a loss for the encoder, not a GAN player any more.
    D = Discriminator(**{**state["D_init_kwargs"], "num_fp16_res": 0})
    D.load_state_dict(state["D"])
    return D.eval().requires_grad_(False)
