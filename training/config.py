"""Hyperparameters of the training steps and their presets: plain data, no torch, so the
command line can list every setting without loading torch."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from capture.binarize import resolution_problem


@dataclass
class GanConfig:
    """Every hyperparameter of a GAN run (presets below; each overridable on the CLI)."""
    # networks
    resolution: int = 256          # must match the dataset
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 8
    channel_base: int = 16384
    channel_max: int = 512
    d_channel_base: int = 16384
    d_channel_max: int = 512
    mbstd_group: int = 4           # D's minibatch-std group (how many samples it compares)
    d_pack: int = 1                # PacGAN: D scores packs of this many drawings (1: one each)
    # optimisation
    batch: int = 16                # total over all processes
    kimg: float = 10000.0          # length of training, thousands of real images shown
    lr: float = 0.0025
    d_lr: float | None = None      # D's own learning rate (None: lr, as G's)
    betas: tuple[float, float] = (0.0, 0.99)
    r1_gamma: float | None = None  # None: the reference heuristic 0.0002 R^2 / batch
    r1_interval: int = 16          # lazy regularisation
    pl_weight: float = 2.0         # path-length regularisation (0: off)
    pl_interval: int = 4           # lazy, every this many G steps
    pl_batch_shrink: int = 2       # on batch / this many images
    pl_decay: float = 0.01         # of the running mean path length
    style_mixing: float = 0.9
    mode_seeking: float = 0.0      # MSGAN's diversity term in G's loss (0: off; Mao et al. 2019 use 1)
    imle: float = 0.0              # IMLE's pull of the nearest sample towards each real drawing (0: off)
    imle_candidates: int = 4       # samples drawn a real drawing to find its nearest
    imle_interval: int = 4         # lazy, every this many G steps
    glo: float = 0.0               # GLO's pull of G(mapping(z_i)) towards drawing i, every G step (0: off)
    glo_drawings: int = 256        # training drawings given a learned z_i of their own
    glo_warmup_steps: int = 2400   # steps of GLO alone (pixel error, synthesis and codes) before the GAN
    glo_lr: float = 0.1            # the codes' learning rate in the GAN
    ema_kimg: float = 10.0         # EMA half-life, thousands of images (scaled by batch / 32)
    ema_rampup: float = 0.05
    mapping_lr_multiplier: float = 0.01
    # augmentation
    ada: bool = True               # False: fixed DiffAugment-style policy at p = 1
    ada_target: float = 0.6
    ada_interval: int = 4
    ada_kimg: float = 500.0        # p can go 0 -> 1 in this many thousand images
    rotate90: bool = False         # drawings have an up
    mirror: bool = False           # drawings are not symmetric
    # bookkeeping
    snapshot_kimg: float = 50.0    # checkpoint + sample grids every this many kimg
    log_every: int = 20            # steps between TensorBoard scalars
    seed: int = 0
    amp: bool = True               # mixed precision (CUDA only): fp16 in the highest blocks
    num_fp16_res: int = 4          # that many highest resolutions of G and D run in fp16
    conv_clamp: float = 256.0      # clamp of conv outputs (keeps fp16 finite)
    threads: int = 0               # torch CPU threads (0: torch's default)
    channels_last: bool = True     # NHWC tensors: ~12-15% faster convolutions on the CPU

    def validate(self) -> "GanConfig":
        if problem := resolution_problem(self.resolution):
            raise ValueError(f"gan: resolution {self.resolution} {problem}")
        if self.batch < 2:
            raise ValueError(f"gan: batch {self.batch} must be at least 2")
        if self.kimg <= 0 or self.snapshot_kimg <= 0:
            raise ValueError("gan: kimg and snapshot_kimg must be positive")
        if not 0 <= self.ada_target <= 1:
            raise ValueError(f"gan: ada_target {self.ada_target} must be in [0, 1]")
        if self.r1_gamma is not None and self.r1_gamma < 0:
            raise ValueError(f"gan: r1_gamma {self.r1_gamma} must not be negative")
        if self.lr <= 0 or (self.d_lr is not None and self.d_lr <= 0):
            raise ValueError(f"gan: learning rates must be positive (lr {self.lr}, d_lr {self.d_lr})")
        if self.d_pack < 1 or self.batch % self.d_pack:
            raise ValueError(f"gan: d_pack {self.d_pack} must be at least 1 and divide batch {self.batch}")
        if self.mode_seeking < 0:
            raise ValueError(f"gan: mode_seeking {self.mode_seeking} must not be negative")
        if self.imle < 0 or self.imle_candidates < 1 or self.imle_interval < 1:
            raise ValueError("gan: imle must not be negative, imle_candidates and imle_interval positive")
        if self.glo < 0 or self.glo_drawings < 1 or self.glo_warmup_steps < 0 or self.glo_lr <= 0:
            raise ValueError("gan: glo and glo_warmup_steps must not be negative, glo_drawings and glo_lr positive")
        if self.pl_weight < 0 or self.pl_interval < 1 or self.pl_batch_shrink < 1:
            raise ValueError("gan: pl_weight must not be negative, pl_interval and pl_batch_shrink positive")
        return self

    @property
    def lr_D(self) -> float:
        """D's learning rate: its own if set, else G's."""
        return self.lr if self.d_lr is None else self.d_lr

    @property
    def gamma(self) -> float:
        """R1 weight: as set, else stylegan2-ada-pytorch's heuristic 0.0002 R^2 / batch."""
        return self.r1_gamma if self.r1_gamma is not None else 0.0002 * self.resolution ** 2 / self.batch

    @property
    def total_steps(self) -> int:
        # rounded first: 0.408 kimg of batch 8 is 51 steps, not ceil(51.00000000000001)
        return max(1, math.ceil(round(self.kimg * 1000 / self.batch, 6)))


PRESETS = {
    # Widths put the channels in the cheap low-resolution blocks (features at r: base / r,
    # at most max); mapping depth 2 as the reference's auto config; R1 gamma, EMA and lr
    # from the reference's heuristics unless set.
    # minutes on a 2-core CPU: smoke tests, first try of a collection on a laptop
    "tiny": dict(resolution=32, z_dim=64, w_dim=64, mapping_layers=2, channel_base=512,
                 channel_max=64, d_channel_base=512, d_channel_max=64, batch=8, kimg=4.0,
                 r1_interval=4, pl_weight=0.0, ada_kimg=20, snapshot_kimg=1.0, log_every=5),
    # the bundled demo model: 64 px, a few hours on one core of a 2-core CPU
    "cpu-demo": dict(resolution=64, z_dim=128, w_dim=128, mapping_layers=2, channel_base=1024,
                     channel_max=256, d_channel_base=1024, d_channel_max=256, batch=16, kimg=200.0,
                     r1_interval=16, ada_kimg=100, snapshot_kimg=5.0, log_every=20),
    # the GPU recipe for ~5k images (StyleGAN2-ADA small-data guidance, the reference's
    # 'paper256' widths)
    "full": dict(resolution=256, batch=16, ada_target=0.6, mirror=False,
                 kimg=10000.0, snapshot_kimg=50.0),
}


def config_from(preset: str | None, **overrides) -> GanConfig:
    values = dict(PRESETS[preset]) if preset else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    fields = {f.name for f in dataclasses.fields(GanConfig)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(f"gan: unknown setting {unknown[0]}")
    if isinstance(values.get("betas"), list):
        values["betas"] = tuple(values["betas"])
    return GanConfig(**values).validate()




@dataclass
class EncoderConfig:
    """Hyperparameters of pSp training (the generator stays frozen)."""
    width: int = 64                # encoder backbone width (see inference.networks.PSPEncoder)
    blocks: tuple[int, ...] = (2, 2, 2, 2)
    channel_max: int = 512
    head_width: int = 256
    batch: int = 8
    steps: int = 80000
    lr: float = 1e-4
    l2_lambda: float = 1.0         # pSp sketch recipe: l2 1, lpips 0.8, w_norm 0.005
    perceptual_lambda: float = 0.8
    w_norm_lambda: float = 0.005
    latent_lambda: float = 1.0     # squared error to the target's W+ code, where known (see below)
    latent_from_whole: bool = True  # partial pairs without a code: the encoder's own (detached)
                                   # code of the whole sketch of the same drawing
    delta_lambda: float = 0.001    # e4e: W+ styles kept near the first one, so codes stay W-like
    code_steps: int = 0            # first steps on the pairs with a known code, latent term alone
    val_every: int = 2000          # validation + reconstructions + checkpoint
    log_every: int = 50
    seed: int = 0
    threads: int = 0
    channels_last: bool = True     # NHWC tensors: faster convolutions on the CPU

    def validate(self) -> "EncoderConfig":
        if self.batch < 1 or self.steps < 1 or self.val_every < 1:
            raise ValueError("encoder: batch, steps and val_every must be positive")
        if self.code_steps < 0:
            raise ValueError("encoder: code_steps must not be negative")
        if min(self.l2_lambda, self.perceptual_lambda, self.w_norm_lambda, self.latent_lambda,
               self.delta_lambda) < 0:
            raise ValueError("encoder: loss weights must not be negative")
        return self


ENCODER_PRESETS = {
    "tiny": dict(width=8, blocks=(1, 1, 1, 1), channel_max=32, head_width=32, batch=8, steps=60,
                 lr=1e-3, val_every=30, log_every=10),
    # 0.9 M parameters: the bundle (graphs without safetensors) stays under 20 MB
    "cpu-demo": dict(width=24, blocks=(2, 2, 1, 1), channel_max=96, head_width=64, batch=16,
                     steps=20000, lr=1e-3, val_every=1000, log_every=50),
    "full": dict(),
}


def encoder_config_from(preset: str | None, **overrides) -> EncoderConfig:
    values = dict(ENCODER_PRESETS[preset]) if preset else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    fields = {f.name for f in dataclasses.fields(EncoderConfig)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(f"encoder: unknown setting {unknown[0]}")
    if values.get("blocks") is not None:
        values["blocks"] = tuple(int(b) for b in values["blocks"])
    return EncoderConfig(**values).validate()


# Settings a resumed run may change: how long it runs and how often it reports, not what a
# step computes, so the continuation stays exact up to the old end. R1's gamma, the
# learning rates and x-flips of the reals are the exceptions: a long run that levels off,
# its D overfitting, is tuned by them without losing D, Adam's moments and ADA's p (as the
# reference's resume takes new settings); the run keeps each such change with its kimg
# (config.json "changes"). The EMA's half-life changes only the averaged copy that is drawn
# from and measured, never what G and D train on.
GAN_SCHEDULE = frozenset({"kimg", "snapshot_kimg", "log_every", "threads"})
GAN_CHANGEABLE = GAN_SCHEDULE | {"r1_gamma", "lr", "d_lr", "mirror", "ema_kimg", "ema_rampup", "imle",
                                  "imle_candidates", "imle_interval"}
ENCODER_CHANGEABLE = frozenset({"steps", "val_every", "log_every", "threads"})


def _same(a, b) -> bool:
    return (list(a) == list(b)) if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) else a == b


def with_defaults(cls, saved: dict) -> dict:
    """A run's saved settings of `cls`, each setting newer than the run at its default (so
    that a resume compares, and may change, what the run trained with)."""
    names = {f.name for f in dataclasses.fields(cls)}
    defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    return {**defaults, **{k: v for k, v in saved.items() if k in names}}


def resumed_settings(what: str, saved: dict, explicit: dict, preset: dict | None = None,
                     changeable: frozenset = frozenset()) -> tuple[dict, list[str]]:
    """The settings a resumed run continues with, and the changes applied ("kimg 6 -> 8").

    `saved` are the run's own; `explicit` what the command line set; `preset` the values of
    a preset flag given again. A changeable setting changes only when set explicitly (a
    preset's kimg does not shorten a run made longer); any other that differs is refused,
    every such key named, since the continuation would no longer be the same run."""
    values, changes, refused = dict(saved), [], []
    requested = {**{k: v for k, v in (preset or {}).items() if k not in changeable}, **explicit}
    for key, value in requested.items():
        if key not in saved or value is None or _same(saved[key], value):
            continue
        if key in changeable and key in explicit:
            values[key] = value
            changes.append(f"{key} {saved[key]} -> {value}")
        else:
            refused.append(f"{key} {value!r} (the run has {saved[key]!r})")
    if refused:
        raise ValueError(f"{what}: --resume with settings the run was not made with: {'; '.join(refused)}; "
                         f"leave them out to continue the run, or start a new run with --force")
    return values, changes
