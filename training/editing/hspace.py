"""h-space of a diffusers DDPM: sample, invert and edit through the U-Net's bottleneck.

Paper V (thesis Chapter 6) edits an unconditional diffusion model through h_t, the
output of the U-Net's mid block at step t. A forward hook on `unet.mid_block` records
h_t and adds Δh_t; sampling follows the paper's Eqs 1-5,

    x_{t-1} = √α_{t-1} P_t(ε) + D_t(ε) + σ_t z_t,
    P_t = (x_t - √(1-α_t) ε) / √α_t,   D_t = √(1 - α_{t-1} - σ_t²) ε,
    σ_t = η √((1-α_{t-1})/(1-α_t)) √(1 - α_t/α_{t-1}),

(α is the cumulative product ᾱ), with η = 0 for DDIM and η = 1 for DDPM. The edited ε
feeds both P_t and D_t (one U-Net pass a step); Asyrrp (edited ε in P_t only, two
passes) is an option. The noise z_t is drawn once up front and kept, so a sample is
fixed by (x_T, z_{T:1}, Δh_{T:1}) and an edit changes nothing else. P_t is clipped to
the image range when the model's scheduler says so (`clip_sample`, as diffusers'
DDIMScheduler does): a briefly trained model's unclipped P_t drifts and its samples
come out black.

A model is any local folder holding a diffusers `UNet2DModel` and its scheduler
configuration; nothing is downloaded.
"""
from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import DDIMScheduler, UNet2DModel
from diffusers.models.attention_processor import Attention, AttnProcessor


class ModelFolderError(ValueError):
    """A model folder that is missing, incomplete or of the wrong kind."""


@dataclass
class DiffusionModel:
    """A U-Net ε_θ(x_t, t), the cumulative noise schedule α_t, and where they came from."""

    unet: UNet2DModel
    alphas_cumprod: torch.Tensor  # α_t (Paper V's notation) for t = 0 .. num_train_timesteps-1
    scheduler_config: dict
    source: str  # the folder, recorded in saved directions

    @property
    def clip_range(self) -> float | None:
        """The bound P_t is clipped to when sampling (the scheduler's clip_sample), or None."""
        config = DDIMScheduler.from_config(self.scheduler_config).config  # fills in the defaults
        return float(config.clip_sample_range) if config.clip_sample else None

    @property
    def num_train_timesteps(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        size = self.unet.config.sample_size
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        return (self.unet.config.in_channels, h, w)

    def timesteps(self, steps: int) -> list[int]:
        """The `steps` sampling timesteps, largest first, as the model's scheduler spaces them.

        With the usual "leading" spacing, 10 steps are 900, 800, ..., 0 (the paper's setting).
        """
        if not 1 <= steps <= self.num_train_timesteps:
            raise ValueError(f"steps={steps}: choose between 1 and {self.num_train_timesteps} sampling steps")
        scheduler = DDIMScheduler.from_config(self.scheduler_config)
        scheduler.set_timesteps(steps)
        return [int(t) for t in scheduler.timesteps]

    def alpha(self, t: int) -> float:
        """α_t, and 1 for t < 0 (the clean image after the last step)."""
        return 1.0 if t < 0 else float(self.alphas_cumprod[t])


def _find_folders(path: Path) -> tuple[Path, Path]:
    """(unet folder, scheduler config file) in a pipeline folder or a bare U-Net folder."""
    if (path / "unet" / "config.json").is_file():  # DDPMPipeline.save_pretrained layout
        return path / "unet", path / "scheduler" / "scheduler_config.json"
    if (path / "config.json").is_file():  # a U-Net folder with scheduler_config.json beside it
        return path, path / "scheduler_config.json"
    raise ModelFolderError(
        f"{path}: no diffusers model here; expected unet/config.json (a saved pipeline) or "
        "config.json (a UNet2DModel folder). Give the folder that `newsnow hspace train-ddpm` "
        "or `save_pretrained` wrote"
    )


def load_model(path: str | Path, device: str | torch.device = "cpu") -> DiffusionModel:
    """Load a local diffusers UNet2DModel and its noise schedule; nothing is downloaded."""
    path = Path(path)
    unet_dir, scheduler_file = _find_folders(path)
    config = json.loads((unet_dir / "config.json").read_text())
    if config.get("_class_name", "UNet2DModel") != "UNet2DModel":
        raise ModelFolderError(
            f"{unet_dir / 'config.json'}: _class_name is {config.get('_class_name')!r}; h-space editing "
            "needs an unconditional UNet2DModel"
        )
    if not scheduler_file.is_file():
        raise ModelFolderError(
            f"{scheduler_file}: missing; put the scheduler_config.json that came with the model there "
            "(it holds the noise schedule the U-Net was trained with)"
        )
    scheduler_config = json.loads(scheduler_file.read_text())
    if scheduler_config.get("prediction_type", "epsilon") != "epsilon":
        raise ModelFolderError(
            f"{scheduler_file}: prediction_type is {scheduler_config['prediction_type']!r}; "
            "h-space editing follows Paper V's ε-prediction, so only 'epsilon' models are supported"
        )
    try:
        unet = UNet2DModel.from_pretrained(unet_dir, local_files_only=True)
    except (OSError, ValueError, EnvironmentError) as exc:
        raise ModelFolderError(f"{unet_dir}: the U-Net weights could not be loaded ({exc})") from exc
    return from_unet(unet, scheduler_config, source=str(path), device=device)


def from_unet(
    unet: UNet2DModel, scheduler_config: dict, source: str = "in-memory", device: str | torch.device = "cpu"
) -> DiffusionModel:
    """Wrap a U-Net and a scheduler configuration (for example a DDPMScheduler's `.config`)."""
    scheduler = DDIMScheduler.from_config(dict(scheduler_config))
    unet = unet.to(device).eval().requires_grad_(False)
    # Forward-mode autodiff (the Jacobian directions) is not implemented for PyTorch's fused
    # scaled-dot-product attention on CPU; the plain processor computes the same attention
    # and supports it. UNet2DModel (diffusers 0.42) has no set_attn_processor, so set each one.
    for module in unet.modules():
        if isinstance(module, Attention):
            module.set_processor(AttnProcessor())
    return DiffusionModel(unet, scheduler.alphas_cumprod.to(device), dict(scheduler_config), source)


class MidBlockHook:
    """The forward hook on `unet.mid_block` that makes h-space.

    While `record` is a list, each call appends h_t (the mid block's own output, before
    any edit). `delta` (Δh_t, broadcast over the batch) is added to the output when set;
    `replace` substitutes the output entirely, which turns the U-Net into a function of
    h for the Jacobian.
    """

    def __init__(self, unet: UNet2DModel):
        self.record: list[torch.Tensor] | None = None
        self.delta: torch.Tensor | None = None
        self.replace: torch.Tensor | None = None
        self._handle = unet.mid_block.register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        if self.replace is not None:
            output = self.replace
        if self.record is not None:
            self.record.append(output.detach().clone())
        if self.delta is not None:
            output = output + self.delta
        return output

    def remove(self) -> None:
        self._handle.remove()


@contextlib.contextmanager
def hooked(model: DiffusionModel):
    hook = MidBlockHook(model.unet)
    try:
        yield hook
    finally:
        hook.remove()


def _eps(model: DiffusionModel, x: torch.Tensor, t: int) -> torch.Tensor:
    return model.unet(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)).sample


def h_shape(model: DiffusionModel) -> tuple[int, ...]:
    """The shape of h_t for one image (C', H', W'), found by running the U-Net once."""
    x = torch.zeros(1, *model.image_shape, device=model.alphas_cumprod.device)
    with hooked(model) as hook, torch.no_grad():
        hook.record = []
        _eps(model, x, 0)
    return tuple(hook.record[0].shape[1:])


@dataclass
class Trajectory:
    """One batch through the reverse process: enough to reproduce and to edit it.

    Tensors are stacked over the S steps in sampling order (largest t first):
    `xs[i]` is the input x_t at `timesteps[i]`, `h[i]` is h_t, `noise[i]` is z_t (None
    for η = 0). `x0` is the final image in [-1, 1] (unclipped).
    """

    timesteps: list[int]
    eta: float
    x_T: torch.Tensor  # [B, C, H, W]
    noise: torch.Tensor | None  # [S, B, C, H, W]
    xs: torch.Tensor  # [S, B, C, H, W]
    h: torch.Tensor  # [S, B, C', H', W']
    x0: torch.Tensor  # [B, C, H, W]
    clip_range: float | None = None  # P_t clipped to ± this (None: unclipped, as after inversion)


def step(
    x_t: torch.Tensor, eps_P: torch.Tensor, eps_D: torch.Tensor, alpha_t: float, alpha_prev: float, eta: float,
    z: torch.Tensor | None, clip_range: float | None = None,
) -> torch.Tensor:
    """Eqs 2-5: x_{t-1} from x_t. ε for P_t and D_t differ only under Asyrrp."""
    P = (x_t - math.sqrt(1 - alpha_t) * eps_P) / math.sqrt(alpha_t)
    if clip_range is not None:
        P = P.clamp(-clip_range, clip_range)
    sigma = eta * math.sqrt((1 - alpha_prev) / (1 - alpha_t)) * math.sqrt(1 - alpha_t / alpha_prev)
    D = math.sqrt(max(1 - alpha_prev - sigma**2, 0.0)) * eps_D
    x_prev = math.sqrt(alpha_prev) * P + D
    if sigma > 0:
        x_prev = x_prev + sigma * z
    return x_prev


def _per_step(delta: torch.Tensor | None, S: int, i: int) -> torch.Tensor | None:
    if delta is None:
        return None
    return delta[i] if delta.shape[0] == S else delta[0]


def sample(
    model: DiffusionModel,
    x_T: torch.Tensor,
    steps: int = 10,
    eta: float = 1.0,
    noise: torch.Tensor | None = None,
    delta_h: torch.Tensor | None = None,
    asyrrp: bool = False,
    generator: torch.Generator | None = None,
    clip: bool | None = None,
) -> Trajectory:
    """Run the reverse process from x_T, recording h_t and adding Δh_t at every step.

    `delta_h` is [S, ...] (one Δh_t per step) or [1, ...] (the same Δh at every step),
    where ... is h's shape with or without the batch axis. `noise` ([S, B, C, H, W]) is
    z_{T:1}; when η > 0 and it is None it is drawn from `generator` before the first step.
    `clip`: clip P_t to the image range; None follows the model's scheduler (`clip_sample`).
    """
    if eta < 0:
        raise ValueError(f"eta={eta}: η must be >= 0 (0 is DDIM, 1 is DDPM)")
    timesteps = model.timesteps(steps)
    S = len(timesteps)
    if clip is None:
        clip_range = model.clip_range
    else:
        clip_range = (model.clip_range or 1.0) if clip else None
    x_T = x_T.to(model.alphas_cumprod.device, torch.float32)
    if eta > 0 and noise is None:
        noise = torch.randn((S, *x_T.shape), generator=generator, dtype=x_T.dtype, device="cpu").to(x_T.device)
    if noise is not None and tuple(noise.shape) != (S, *x_T.shape):
        raise ValueError(f"noise has shape {tuple(noise.shape)}; it must be (steps, *x_T.shape) = {(S, *x_T.shape)}")
    if delta_h is not None and delta_h.shape[0] not in (1, S):
        raise ValueError(
            f"delta_h has {delta_h.shape[0]} steps; give one Δh per sampling step ({S}) or one for every step"
        )
    xs, hs = [], []
    x = x_T
    with hooked(model) as hook, torch.no_grad():
        for i, t in enumerate(timesteps):
            xs.append(x)
            hook.record = []
            hook.delta = _per_step(delta_h, S, i)
            eps = _eps(model, x, t)
            hs.append(hook.record[0])
            eps_D = eps
            if asyrrp and hook.delta is not None:
                hook.delta, hook.record = None, None
                eps_D = _eps(model, x, t)  # D_t sees the unedited prediction
            t_prev = timesteps[i + 1] if i + 1 < S else -1
            z = noise[i] if noise is not None else None
            x = step(x, eps, eps_D, model.alpha(t), model.alpha(t_prev), eta, z, clip_range)
    return Trajectory(timesteps, eta, x_T, noise, torch.stack(xs), torch.stack(hs), x, clip_range)


def invert(model: DiffusionModel, x0: torch.Tensor, steps: int = 10) -> Trajectory:
    """DDIM inversion (η = 0, eq 6.30) of images x0 in [-1, 1], recording h_t on the way.

    Walks the sampling steps backwards: from x_{t_prev} it evaluates ε at the timestep t
    of the step it undoes and moves to x_t = √α_t P(ε) + √(1-α_t) ε. So `h[i]` and
    `xs[i]` line up with the same `timesteps[i]` as in `sample`, and sampling from the
    returned `x_T` with η = 0 and `clip=False` approximately returns x0 (the trajectory
    records no clipping, so `edit` re-samples it unclipped).
    """
    timesteps = model.timesteps(steps)
    S = len(timesteps)
    x = x0.to(model.alphas_cumprod.device, torch.float32)
    xs, hs = [None] * S, [None] * S
    with hooked(model) as hook, torch.no_grad():
        for i in reversed(range(S)):
            t = timesteps[i]
            t_prev = timesteps[i + 1] if i + 1 < S else -1
            hook.record = []
            eps = _eps(model, x, t)
            hs[i] = hook.record[0]
            a_prev, a_t = model.alpha(t_prev), model.alpha(t)
            P = (x - math.sqrt(1 - a_prev) * eps) / math.sqrt(a_prev)
            x = math.sqrt(a_t) * P + math.sqrt(1 - a_t) * eps
            xs[i] = x
    return Trajectory(timesteps, 0.0, x, None, torch.stack(xs), torch.stack(hs), x0)


@contextlib.contextmanager
def noise_given_h(model: DiffusionModel, x_t: torch.Tensor, t: int):
    """ε_θ(x_t, h) as a function of h alone (the skips from x_t held fixed), for the Jacobian.

    A context manager: inside it, the yielded callable takes a tensor shaped like h_t
    ([B, C', H', W']) and may be differentiated with torch.func.jvp / vjp.
    """
    with hooked(model) as hook:

        def f(h: torch.Tensor) -> torch.Tensor:
            hook.replace = h
            try:
                return _eps(model, x_t, t)
            finally:
                hook.replace = None

        yield f
