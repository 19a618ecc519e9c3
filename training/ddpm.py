"""A small unconditional DDPM on a folder of drawings, for trying h-space editing here.

diffusers does the model (UNet2DModel), the noise schedule (DDPMScheduler) and the EMA;
the loop is the plain ε-prediction objective of Ho et al. (L_simple, thesis eq 6.23).
The result is a DDPMPipeline folder (`<out>/model`: unet/ + scheduler/), which
`training.editing.hspace.load_model` and diffusers' own `DDPMPipeline` both read.
Checkpoints (`<out>/state.pt`) and the model folder are replaced atomically, so a
killed run leaves the last complete ones, and `resume=True` continues from them.

Images: every PNG/JPEG under the folder (for example `newsnow train kanjivg --out DIR`),
read as grayscale, area-resized to the resolution, x = u8 / 127.5 - 1 (ink -1).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from inference.tensors import from_uint8
from storage import atomic_write

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class DdpmConfig:
    resolution: int = 32
    block_out_channels: tuple[int, ...] = (32, 64, 64, 128)  # h is 128 x res/8 x res/8
    layers_per_block: int = 1
    train_timesteps: int = 1000
    beta_schedule: str = "linear"  # Ho et al.'s 1e-4 .. 0.02
    steps: int = 2000
    batch: int = 32
    lr: float = 2e-4
    ema_decay: float = 0.999
    save_every: int = 500
    seed: int = 0

    def __post_init__(self):
        if self.resolution % 2 ** (len(self.block_out_channels) - 1):
            raise ValueError(
                f"resolution {self.resolution}: must be divisible by 2^{len(self.block_out_channels) - 1} "
                f"for {len(self.block_out_channels)} U-Net levels"
            )
        for name in ("steps", "batch", "save_every", "train_timesteps", "resolution"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be at least 1")


def build_unet(cfg: DdpmConfig, channels: int = 1):
    """The U-Net: ResNet levels with self-attention one level above the bottleneck."""
    from diffusers import UNet2DModel

    levels = len(cfg.block_out_channels)
    down = ["DownBlock2D"] * levels
    up = ["UpBlock2D"] * levels
    if levels >= 2:
        down[-2] = "AttnDownBlock2D"
        up[1] = "AttnUpBlock2D"
    return UNet2DModel(
        sample_size=cfg.resolution, in_channels=channels, out_channels=channels,
        block_out_channels=tuple(cfg.block_out_channels), layers_per_block=cfg.layers_per_block,
        down_block_types=tuple(down), up_block_types=tuple(up),
        norm_num_groups=min(32, min(cfg.block_out_channels)), attention_head_dim=8,
    )


def load_images(folder: Path, resolution: int) -> torch.Tensor:
    """[N, 1, R, R] float in [-1, 1] from every image file under `folder`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder}: no such folder of drawings (render the demo collection with "
            "`newsnow train kanjivg --out FOLDER --size 64`)"
        )
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{folder}: no PNG or JPEG images in it")
    images = []
    for path in files:
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            log.warning("%s: unreadable, skipped", path)
            continue
        images.append(cv2.resize(gray, (resolution, resolution), interpolation=cv2.INTER_AREA))
    if not images:
        raise OSError(f"{folder}: none of the {len(files)} image files could be read")
    x = from_uint8(torch.from_numpy(np.stack(images)))[:, None]
    log.info("%d drawings from %s at %d px", len(images), folder, resolution)
    return x


def _atomic_save(obj, path: Path) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


def _export(unet, ema, scheduler, out: Path, provenance: dict) -> Path:
    """The EMA weights as a DDPMPipeline folder at out/model, replaced atomically."""
    from diffusers import DDPMPipeline

    export = type(unet).from_config(unet.config).to(next(unet.parameters()).device)
    ema.copy_to(export.parameters())
    export = export.cpu()
    tmp, final, old = out / "model.tmp", out / "model", out / "model.old"
    shutil.rmtree(tmp, ignore_errors=True)
    DDPMPipeline(unet=export, scheduler=scheduler).save_pretrained(tmp)
    (tmp / "provenance.json").write_text(json.dumps(provenance, indent=1))
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def train_ddpm(images: Path, out: Path, cfg: DdpmConfig, resume: bool = False, device: str = "cpu") -> dict:
    """Train (or continue) a DDPM on the drawings in `images` (on `device`); returns a summary."""
    from diffusers import DDPMScheduler
    from diffusers.training_utils import EMAModel

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_images(Path(images), cfg.resolution)
    torch.manual_seed(cfg.seed)
    unet = build_unet(cfg, channels=data.shape[1]).to(device)
    data = data.to(device)
    scheduler = DDPMScheduler(num_train_timesteps=cfg.train_timesteps, beta_schedule=cfg.beta_schedule)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=0.0)
    ema = EMAModel(unet.parameters(), decay=cfg.ema_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    start = 0
    state_file = out / "state.pt"
    if resume:
        if not state_file.is_file():
            raise FileNotFoundError(f"{state_file}: nothing to resume; run once without --resume")
        state = torch.load(state_file, weights_only=False, map_location=device)
        saved = {k: v for k, v in state["config"].items() if k != "steps"}
        wanted = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "steps"}
        if saved != wanted:
            raise ValueError(
                f"{state_file}: was trained with {saved}; resume with the same settings (only --steps may change)"
            )
        unet.load_state_dict(state["unet"])
        opt.load_state_dict(state["opt"])
        ema.load_state_dict(state["ema"])
        gen.set_state(state["generator"].cpu())
        start = state["step"]
        log.info("resuming %s at step %d", state_file, start)
    provenance = {
        "images": str(images), "count": int(data.shape[0]), "config": dataclasses.asdict(cfg),
        "date": time.strftime("%Y-%m-%d"), "command": "newsnow hspace train-ddpm",
    }
    unet.train()
    losses: list[float] = []
    t0 = time.monotonic()
    step = start
    for step in range(start, cfg.steps):
        idx = torch.randint(data.shape[0], (cfg.batch,), generator=gen)
        x0 = data[idx.to(device)]
        # Noise and timesteps come from the CPU generator, so a resumed run draws the same.
        noise = torch.randn(x0.shape, generator=gen).to(device)
        t = torch.randint(0, cfg.train_timesteps, (cfg.batch,), generator=gen).to(device)
        loss = F.mse_loss(unet(scheduler.add_noise(x0, noise, t), t).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        ema.step(unet.parameters())
        losses.append(loss.item())
        if (step + 1) % 50 == 0:
            log.info("step %d/%d loss %.4f (mean of last 50) %.2f steps/s", step + 1, cfg.steps,
                     np.mean(losses[-50:]), len(losses) / (time.monotonic() - t0))
        if (step + 1) % cfg.save_every == 0 or step + 1 == cfg.steps:
            _atomic_save({"unet": unet.state_dict(), "opt": opt.state_dict(), "ema": ema.state_dict(),
                          "generator": gen.get_state(), "step": step + 1, "config": dataclasses.asdict(cfg)},
                         state_file)
            provenance["steps"] = step + 1
            _export(unet, ema, scheduler, out, provenance)
    seconds = time.monotonic() - t0
    return {
        "model": str(out / "model"), "steps": max(step + 1, start), "images": int(data.shape[0]),
        "first_loss": losses[0] if losses else None,
        "final_loss": float(np.mean(losses[-50:])) if losses else None,
        "seconds": round(seconds, 1), "steps_per_second": round(len(losses) / seconds, 2) if losses else None,
    }
