"""StyleGAN2 training on a dataset from `newsnow train ingest` (`newsnow train gan`).

One explicit loop (`train_gan`), stylegan2-ada-pytorch's recipe in plain PyTorch:
non-saturating logistic loss, lazy R1 on reals every `r1_interval` steps, style mixing,
an EMA copy of the generator (the one that is exported), ADA (or DiffAugment-style fixed
augmentation when ADA is off), mixed precision on CUDA, several GPUs through torchrun
(gradients all-reduced by hand, as stylegan2-ada does, since R1 needs double backward).

Everything a resume needs is in RUN/state.pt (networks, optimisers, ADA p and its
accumulator, step, every RNG state), written atomically; `--resume` continues exactly.
RUN/generator.pt is the EMA generator as a model checkpoint for `sketches` and export.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
import random
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from inference.checkpoint import save_model_checkpoint
from inference.networks import Discriminator, Generator, count_parameters
from training.config import GanConfig, config_from  # noqa: F401 (re-exported)
from training.augment import ADA_SPEC, DIFFAUGMENT_SPEC, augment, ada_update
from training.ingest import load_images, load_manifest

log = logging.getLogger(__name__)

STATE = "state.pt"
GENERATOR = "generator.pt"


# ---------------------------------------------------------------------------------------
# Helpers the loop uses.


def build_networks(cfg: GanConfig, channels: int = 1) -> tuple[Generator, Discriminator]:
    G = Generator(cfg.resolution, channels, z_dim=cfg.z_dim, w_dim=cfg.w_dim,
                  mapping_layers=cfg.mapping_layers, channel_base=cfg.channel_base,
                  channel_max=cfg.channel_max, mapping_lr_multiplier=cfg.mapping_lr_multiplier)
    D = Discriminator(cfg.resolution, channels, channel_base=cfg.d_channel_base,
                      channel_max=cfg.d_channel_max)
    return G, D


def atomic_save(obj, path: Path) -> None:
    """torch.save to a temp file beside `path`, then os.replace: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def mapped_ws(G: Generator, z: torch.Tensor, mixing: float) -> torch.Tensor:
    """W+ for z, with style mixing: from a random layer on, the styles of a second z."""
    ws = G.mapping(z, update_w_avg=True)
    if mixing > 0 and torch.rand(()) < mixing:
        cutoff = int(torch.randint(1, ws.shape[1], ()))
        ws2 = G.mapping(torch.randn_like(z), update_w_avg=False)
        ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
    return ws


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[B, C, R, R] in [-1, 1] -> uint8 [B, R, R] (first channel), per docs/CONTRACTS.md."""
    return ((images[:, 0].detach().float().cpu().numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)


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
def save_samples(G: Generator, z_grid: torch.Tensor, out: Path, tag: str) -> None:
    """A sample grid and a W interpolation strip (4 pairs x 8 steps), constant noise."""
    ws = G.mapping(z_grid)
    cols = int(math.sqrt(len(z_grid)))
    cv2.imwrite(str(out / f"samples_{tag}.png"), grid_image(to_uint8(G.synthesis(ws, noise_mode="const")), cols))
    t = torch.linspace(0, 1, 8, device=ws.device)
    a, b = ws[0:4], ws[4:8]
    lerp = a[:, None] + (b - a)[:, None] * t[None, :, None, None]
    frames = G.synthesis(lerp.flatten(0, 1), noise_mode="const")
    cv2.imwrite(str(out / f"interpolation_{tag}.png"), grid_image(to_uint8(frames), 8))


def _all_reduce_grads(module: torch.nn.Module, world: int) -> None:
    if world > 1:
        for p in module.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= world


# ---------------------------------------------------------------------------------------
# The loop.


def train_gan(dataset: Path, out: Path, cfg: GanConfig, resume: bool = False,
              progress: bool = True, meta: dict | None = None) -> dict:
    """Train (or resume) a StyleGAN2 on `dataset`; writes RUN = `out`. Returns a summary."""
    dataset, out = Path(dataset), Path(out)
    cfg.validate()
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
    use_amp = cfg.amp and device.type == "cuda"

    manifest = load_manifest(dataset)
    if manifest["settings"]["resolution"] != cfg.resolution:
        raise ValueError(f"gan: dataset {dataset} is {manifest['settings']['resolution']} px but "
                         f"resolution is {cfg.resolution}: pass --resolution "
                         f"{manifest['settings']['resolution']} or ingest again")
    reals_all = torch.from_numpy(load_images(dataset, "train"))[:, None].to(device)  # uint8

    torch.manual_seed(cfg.seed)  # same initial networks on every rank
    G, D = build_networks(cfg)
    G, D = G.to(device).train(), D.to(device).train()
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    ratio = cfg.r1_interval / (cfg.r1_interval + 1)  # lazy R1: rescale D's optimiser
    opt_G = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=cfg.betas, eps=1e-8)
    opt_D = torch.optim.Adam(D.parameters(), lr=cfg.lr * ratio,
                             betas=(cfg.betas[0] ** ratio, cfg.betas[1] ** ratio), eps=1e-8)
    scaler_G = torch.amp.GradScaler("cuda", enabled=use_amp)
    scaler_D = torch.amp.GradScaler("cuda", enabled=use_amp)
    spec = dataclasses.replace(ADA_SPEC if cfg.ada else DIFFAUGMENT_SPEC, rotate90=cfg.rotate90)
    step, ada_p, ada_sum, ada_count, elapsed = 0, 0.0, 0.0, 0, 0.0
    torch.manual_seed(cfg.seed + 1 + rank)  # different batches and z on every rank

    out.mkdir(parents=True, exist_ok=True)
    state_path = out / STATE
    if resume:
        if not state_path.is_file():
            raise FileNotFoundError(f"{state_path}: nothing to resume; run without --resume")
        state = torch.load(state_path, map_location=device, weights_only=False)
        G.load_state_dict(state["G"])
        D.load_state_dict(state["D"])
        G_ema.load_state_dict(state["G_ema"])
        opt_G.load_state_dict(state["opt_G"])
        opt_D.load_state_dict(state["opt_D"])
        scaler_G.load_state_dict(state["scaler_G"])
        scaler_D.load_state_dict(state["scaler_D"])
        step, ada_p, ada_sum, ada_count = state["step"], state["ada_p"], state["ada_sum"], state["ada_count"]
        elapsed = state.get("elapsed", 0.0)
        if world == 1:
            set_rng_states(state["rng"])  # exact continuation
        else:  # the saved RNG is rank 0's: give each rank its own stream again
            torch.manual_seed(cfg.seed + 1 + rank + 1000 * step)
        log.info("resumed %s at step %d (%.1f kimg, ADA p %.3f)", state_path, step, step * cfg.batch / 1000, ada_p)
    if rank == 0:
        (out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=1))
        log.info("G %d params, D %d params, %d training images, %d steps of batch %d",
                 count_parameters(G), count_parameters(D), len(reals_all), cfg.total_steps, cfg.batch)
    z_grid = torch.randn(16, cfg.z_dim, generator=torch.Generator().manual_seed(cfg.seed)).to(device)
    snapshot_steps = max(1, round(cfg.snapshot_kimg * 1000 / cfg.batch))

    writer = bar = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(str(out / "tensorboard"))
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=cfg.total_steps * cfg.batch / 1000, initial=step * cfg.batch / 1000,
                       unit="kimg", bar_format="{l_bar}{bar}| {n:.2f}/{total:.1f} kimg "
                       "[{elapsed}<{remaining}] {postfix}")

    def real_batch() -> torch.Tensor:
        index = torch.randint(len(reals_all), (batch,), device=device)
        x = reals_all[index].float() / 127.5 - 1
        if cfg.mirror:
            flip = torch.rand(batch, device=device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x

    def disc(images: torch.Tensor) -> torch.Tensor:
        return D(augment(images, ada_p, spec) if cfg.ada else augment(images, 1.0, spec))

    started = time.time() - elapsed
    losses = {}
    while step < cfg.total_steps:
        autocast = torch.autocast(device.type, dtype=torch.float16, enabled=use_amp)
        # Generator: make D call the fakes real (non-saturating logistic loss).
        G.requires_grad_(True), D.requires_grad_(False)
        with autocast:
            fake = G.synthesis(mapped_ws(G, torch.randn(batch, cfg.z_dim, device=device), cfg.style_mixing))
            loss_G = F.softplus(-disc(fake)).mean()
        opt_G.zero_grad(set_to_none=True)
        scaler_G.scale(loss_G).backward()
        _all_reduce_grads(G, world)
        scaler_G.step(opt_G)
        scaler_G.update()

        # Discriminator: fakes fake, reals real; every r1_interval steps also R1 on reals.
        G.requires_grad_(False), D.requires_grad_(True)
        do_r1 = cfg.r1_gamma > 0 and step % cfg.r1_interval == 0
        with torch.no_grad(), autocast:
            fake = G.synthesis(mapped_ws(G, torch.randn(batch, cfg.z_dim, device=device), cfg.style_mixing))
        reals = real_batch().requires_grad_(do_r1)
        with autocast:
            logits_fake = disc(fake.float())
        with torch.autocast(device.type, enabled=use_amp and not do_r1):
            logits_real = disc(reals)
        loss_D = F.softplus(logits_fake).mean() + F.softplus(-logits_real).mean()
        if do_r1:
            grad, = torch.autograd.grad(logits_real.float().sum(), reals, create_graph=True)
            r1 = grad.square().sum(dim=[1, 2, 3]).mean()
            loss_D = loss_D + r1 * (cfg.r1_gamma / 2) * cfg.r1_interval
            losses["r1"] = float(r1.detach())
        opt_D.zero_grad(set_to_none=True)
        scaler_D.scale(loss_D).backward()
        _all_reduce_grads(D, world)
        scaler_D.step(opt_D)
        scaler_D.update()

        # ADA: steer p by the sign of D on reals.
        ada_sum += float(logits_real.detach().sign().sum())
        ada_count += batch
        if cfg.ada and (step + 1) % cfg.ada_interval == 0:
            stats = torch.tensor([ada_sum, ada_count], dtype=torch.float64, device=device)
            if world > 1:
                dist.all_reduce(stats)
            rt = float(stats[0] / stats[1])
            ada_p = ada_update(ada_p, rt, cfg.ada_target, int(stats[1]), cfg.ada_kimg)
            losses["ada_rt"] = rt
            ada_sum, ada_count = 0.0, 0

        # EMA of the generator (what is sampled and exported).
        with torch.no_grad():
            ema_nimg = min(cfg.ema_kimg * 1000 * cfg.batch / 32, (step + 1) * cfg.batch * cfg.ema_rampup)
            beta = 0.5 ** (cfg.batch / max(ema_nimg, 1e-8))
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
                bar.n = step * cfg.batch / 1000
                bar.set_postfix(G=f"{losses['loss_G']:.3f}", D=f"{losses['loss_D']:.3f}", p=f"{ada_p:.2f}")
            if step % snapshot_steps == 0 or step == cfg.total_steps:
                tag = f"{step * cfg.batch / 1000:07.1f}kimg"
                save_samples(G_ema, z_grid, out, tag)
                elapsed = time.time() - started
                atomic_save({"G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(),
                             "opt_G": opt_G.state_dict(), "opt_D": opt_D.state_dict(),
                             "scaler_G": scaler_G.state_dict(), "scaler_D": scaler_D.state_dict(),
                             "step": step, "ada_p": ada_p, "ada_sum": ada_sum, "ada_count": ada_count,
                             "elapsed": elapsed, "rng": rng_states(),
                             "config": dataclasses.asdict(cfg), "D_init_kwargs": D.init_kwargs},
                            state_path)
                save_model_checkpoint(out / GENERATOR, G_ema, None, {
                    **(meta or {}), "dataset": str(dataset), "licence": manifest.get("licence", "unknown"),
                    "credit": manifest.get("credit", ""), "images": len(reals_all), "resolution": cfg.resolution,
                    "kimg": step * cfg.batch / 1000, "steps": step, "train_seconds": elapsed,
                    "gan_losses": dict(losses)})
    if bar is not None:
        bar.close()
    if writer is not None:
        writer.close()
    summary = {"steps": step, "kimg": step * cfg.batch / 1000, "ada_p": ada_p,
               "seconds": time.time() - started, **losses}
    if rank == 0:
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def load_discriminator(run: Path) -> Discriminator:
    """The trained discriminator of a GAN run (its features stand in for LPIPS)."""
    path = Path(run) / STATE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no GAN training state; train with `newsnow train gan` first")
    state = torch.load(path, map_location="cpu", weights_only=False)
    D = Discriminator(**state["D_init_kwargs"])
    D.load_state_dict(state["D"])
    return D.eval().requires_grad_(False)
