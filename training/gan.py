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
Every snapshot also measures the EMA generator's variety against the collection
(training.variety) into the log, TensorBoard and RUN/variety.csv, and keeps the most varied
snapshot's generator as RUN/generator_best.pt (RUN/best.json says which; snapshots that
draw grey smudges count only while there is no clean one): a collapsing run shows at once,
and a run that got worse still has its best.
With --glo WEIGHT some training drawings get a learned z of their own (training.glo): a new
run first trains the synthesis network to draw them (the warm-up, RUN/glo_fits.png), then
every G step also pulls their drawings back; the codes are in the state and resume exactly.
"""
from __future__ import annotations

import copy
import csv
import dataclasses
import io
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
from inference.checkpoint import load_model_checkpoint, save_model_checkpoint
from inference.networks import Discriminator, Generator, count_parameters
from training.config import (GAN_CHANGEABLE, GAN_SCHEDULE, GanConfig, config_from, resumed_settings,  # noqa: F401
                             with_defaults)
from training.augment import ADA_SPEC, DIFFAUGMENT_SPEC, augment, ada_update
from training.progress import ProgressLines, around_bar, stage_bar
from training.state import load_same_widths, load_state, prepare_run_folder, previous_of, save_state
from training.speed import keep_freed_memory
from training.stopping import StopRequest
from storage import atomic_write, atomic_write_json, atomic_write_png
from training.loss import discriminator_loss, generator_loss, imle_penalty, mapped_ws, path_length_loss
from training.ingest import load_images, load_manifest
from training.variety import K_NEAREST, VarietyMeter, drawn_in_lines
from training.glo import GloCodes, keep_on_sphere

log = logging.getLogger(__name__)

STATE = "state.pt"
GENERATOR = "generator.pt"
GLO_NETWORK = "glo_network.pt"  # what a --glo run's warm-up learnt
GLO_WARMUP_SAVE_STEPS = 500  # the warm-up's state is saved this often (a kill costs at most these)
GLO_START_VARIETY = 0.3  # below it a --glo run is warned (check_glo_start)
BEST_GENERATOR = "generator_best.pt"
VARIETY_CSV = "variety.csv"
VARIETY_SAMPLES = 256   # drawings a snapshot's variety is measured on (fixed z, constant noise)


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
                      channel_max=cfg.d_channel_max, mbstd_group=cfg.mbstd_group, pack=cfg.d_pack, **fp16)
    return G, D


def start_from_generator(G: Generator, source: Path) -> None:
    """Load the weights (and w_avg) of a bundle's, GAN run's or checkpoint's generator into
    `G`; refuses one of other widths, naming the first tensor that differs."""
    from training.editing.checkpoints import load_stylegan
    from training.editing.generator import load_generator

    if not source.exists():
        raise FileNotFoundError(f"gan: --init-generator {source}: no such bundle, GAN run or checkpoint")
    if (source / "bundle.json").is_file():
        trained = load_generator(source)  # its torch weights alone: no ONNX sessions to train
    elif source.is_dir():
        trained = load_model_checkpoint(source / GENERATOR)[0]
    else:
        trained = load_stylegan(source).generator
    load_same_widths(G, trained.state_dict(), f"gan: --init-generator {source}")
    log.info("G and its EMA start from %s (D starts new)", source)


def lazy_adam(params, cfg: GanConfig, interval: int, lr: float) -> torch.optim.Adam:
    """Adam for a player whose regulariser runs every `interval` steps: lr and betas scaled
    by interval / (interval + 1), as the reference does for lazy regularisation."""
    ratio = interval / (interval + 1) if interval else 1.0
    return torch.optim.Adam(params, lr=lr * ratio, betas=(cfg.betas[0] ** ratio, cfg.betas[1] ** ratio),
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


class VarietyWatch:
    """A run's variety curve: each snapshot's EMA generator measured on the same z against
    the collection, one row a snapshot in RUN/variety.csv (rewritten whole, atomically; a
    resume drops rows past its step), and the most varied snapshot's generator kept (of
    those drawn in lines, once there is one)."""

    FIELDS = ("kimg", "step", "variety", "spread", "coverage", "nearest_distinct", "grey", "ada_p", "loss_G",
              "loss_D")

    def __init__(self, out: Path, collection: np.ndarray, z_dim: int, seed: int, step: int):
        self.out = out
        self.meter = VarietyMeter(collection)
        self.z = torch.randn(VARIETY_SAMPLES, z_dim, generator=torch.Generator().manual_seed(seed + 7919))
        self.rows = [row for row in self._read() if int(row["step"]) <= step]
        self.best = max((self._rank(row["variety"], row.get("grey")) for row in self.rows), default=(False, -1.0))

    def _rank(self, variety, grey) -> tuple[bool, float]:
        """Snapshots drawn in lines before smudged ones, then the more varied: a smudged
        snapshot can read varied (training.variety) and is kept only until a clean one comes.
        Rows written before the grey share count as clean."""
        return grey in (None, "") or drawn_in_lines(float(grey), self.meter.real_grey), float(variety)

    def _read(self) -> list[dict]:
        path = self.out / VARIETY_CSV
        return list(csv.DictReader(path.open())) if path.is_file() else []

    @torch.no_grad()
    def measure(self, G: Generator) -> dict:
        device = next(G.parameters()).device
        drawings = np.concatenate([to_uint8(G(self.z[i:i + 64].to(device), noise_mode="const"))
                                   for i in range(0, len(self.z), 64)])
        return self.meter.measure(drawings)

    def record(self, G: Generator, generator_file: Path, kimg: float, step: int, losses: dict) -> dict:
        """Measure, add the row, and copy `generator_file` as the best when it is."""
        figures = self.measure(G)
        row = {"kimg": f"{kimg:.3f}", "step": step, "variety": f"{figures['variety']:.4f}",
               "spread": f"{figures['spread']:.4f}", "coverage": f"{figures['coverage']:.4f}",
               "nearest_distinct": figures["nearest_distinct"], "grey": f"{figures['grey']:.4f}",
               "ada_p": f"{losses.get('ada_p', 0):.4f}", "loss_G": f"{losses.get('loss_G', 0):.4f}",
               "loss_D": f"{losses.get('loss_D', 0):.4f}"}
        self.rows = [r for r in self.rows if int(r["step"]) < step] + [row]
        text = io.StringIO()
        writer = csv.DictWriter(text, self.FIELDS)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write(self.out / VARIETY_CSV, lambda f: f.write(text.getvalue()), binary=False)
        rank = self._rank(figures["variety"], figures["grey"])
        figures["smudged"], figures["best"] = not rank[0], rank > self.best
        if figures["best"]:
            self.best = rank
            atomic_write(self.out / BEST_GENERATOR, lambda f: f.write(generator_file.read_bytes()))
            atomic_write_json(self.out / "best.json", {"kimg": kimg, "step": step, **figures})
        return figures


def _all_reduce_grads(module: torch.nn.Module, world: int) -> None:
    if world > 1:
        for p in module.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= world


# ---------------------------------------------------------------------------------------
# The loop.


class GanRun:
    """One GAN run as stylegan2-ada-pytorch's training loop has it: the setup (networks,
    optimisers, the resumed state), then steps of phases, G's main loss, G's path-length
    penalty, D's main loss with R1, ADA's p and the EMA generator, and every snapshot_kimg
    the state and the samples. The order of the phases is the order of the random numbers
    they draw: a resumed run continues exactly."""

    def __init__(self, dataset: Path, out: Path, cfg: GanConfig, resume: bool, force: bool,
                 meta: dict | None, progress: bool, init_generator: Path | None = None):
        self.dataset, self.out, self.cfg, self.meta = dataset, out, cfg, meta
        if init_generator is not None and resume:
            raise ValueError("gan: --init-generator starts a new run; a resumed run already has its generator")
        cfg.validate()
        self.state_path = out / STATE
        prepare_run_folder(out, self.state_path, resume, force, "GAN")
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if torch.cuda.is_available():
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu")
            keep_freed_memory()  # fewer page faults a step; computes the same
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if cfg.batch % self.world:
            raise ValueError(f"gan: batch {cfg.batch} does not split over {self.world} processes")
        self.batch = cfg.batch // self.world
        if self.batch % cfg.d_pack:
            raise ValueError(f"gan: {self.world} processes leave batch {self.batch} each, which D's packs of "
                             f"{cfg.d_pack} do not divide")
        if cfg.mode_seeking and self.batch < 2:
            raise ValueError(f"gan: mode_seeking pairs a process's samples, and {self.world} processes leave "
                             f"{self.batch} each of batch {cfg.batch}; raise --batch")
        mixed = cfg.amp and self.device.type == "cuda"

        self.manifest = load_manifest(dataset)
        if self.manifest["settings"]["resolution"] != cfg.resolution:
            raise ValueError(f"gan: dataset {dataset} is {self.manifest['settings']['resolution']} px but "
                             f"resolution is {cfg.resolution}: pass --resolution "
                             f"{self.manifest['settings']['resolution']} or ingest again")
        self.reals = torch.from_numpy(load_images(dataset, "train"))[:, None].to(self.device)  # uint8

        torch.manual_seed(cfg.seed)  # same initial networks on every rank
        G, D = build_networks(cfg, mixed_precision=mixed)
        if init_generator is not None:
            start_from_generator(G, Path(init_generator))
        self.layout = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.G = G.to(self.device, memory_format=self.layout).train()
        self.D = D.to(self.device, memory_format=self.layout).train()
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.opt_G = lazy_adam(self.G.parameters(), cfg, cfg.pl_interval if cfg.pl_weight else 0, cfg.lr)
        self.opt_D = lazy_adam(self.D.parameters(), cfg, cfg.r1_interval if cfg.gamma else 0, cfg.lr_D)
        # fp32 weights, fp16 activations in some blocks: loss scaling keeps small gradients.
        self.scaler_G = torch.amp.GradScaler("cuda", enabled=mixed)
        self.scaler_D = torch.amp.GradScaler("cuda", enabled=mixed)
        self.spec = dataclasses.replace(ADA_SPEC if cfg.ada else DIFFAUGMENT_SPEC, rotate90=cfg.rotate90)
        self.stateful = dict(G=self.G, D=self.D, G_ema=self.G_ema, opt_G=self.opt_G, opt_D=self.opt_D,
                             scaler_G=self.scaler_G, scaler_D=self.scaler_D)
        self.glo = None
        if cfg.glo:
            if self.world > 1:
                raise ValueError("gan: --glo trains each drawing's code in one process; run it without torchrun")
            self.glo = self.stateful["glo"] = GloCodes(self.G, len(self.reals), cfg.glo_drawings, cfg.z_dim,
                                                       cfg.glo_lr, cfg.betas, self.device)
        self.counters = dict(step=0, ada_p=0.0, ada_sum=0.0, ada_count=0, elapsed=0.0, pl_mean=0.0, changes=[],
                             glo_warmup=0)
        torch.manual_seed(cfg.seed + 1 + self.rank)  # different batches and z on every rank

        out.mkdir(parents=True, exist_ok=True)
        if resume:
            self.counters = load_training_state(self.state_path, self.stateful, self.counters, self.device,
                                                self.world, self.rank, cfg)
        self.step, self.ada_p = self.counters["step"], self.counters["ada_p"]
        self.pl_mean = torch.tensor(self.counters["pl_mean"], device=self.device)
        self.losses: dict[str, float] = {}
        self.writer = None
        if self.rank == 0:
            # read back by --resume: never half written
            atomic_write_json(out / "config.json", {**dataclasses.asdict(cfg), "r1_gamma_used": cfg.gamma,
                                                    "changes": self.counters["changes"]})
            log.info("G %d params, D %d params, %d training images, %d steps of batch %d, R1 gamma %.4g",
                     count_parameters(self.G), count_parameters(self.D), len(self.reals), cfg.total_steps,
                     cfg.batch, cfg.gamma)
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / "tensorboard"))
        self.variety = None
        if self.rank == 0 and len(self.reals) >= 2 * (K_NEAREST + 1):
            self.variety = VarietyWatch(out, self.reals[:, 0].cpu().numpy(), cfg.z_dim, cfg.seed, self.step)
            if self.glo is not None and not resume:
                self.check_glo_start()
        self.z_grid = torch.randn(16, cfg.z_dim, generator=torch.Generator().manual_seed(cfg.seed)).to(self.device)
        self.snapshot_steps = max(1, round(cfg.snapshot_kimg * 1000 / cfg.batch))
        self.bar = stage_bar(cfg.total_steps, min(self.step, cfg.total_steps), desc="gan", enabled=progress)
        self.progress_line = ProgressLines(log)
        self.started = time.time() - self.counters["elapsed"]
        self.session_start, self.session_step = time.time(), self.step

    def check_glo_start(self) -> None:
        """Warn when a new --glo run starts from a generator whose samples are not varied yet:
        the pull keeps and spreads a variety the generator has, it does not make one."""
        variety = self.variety.measure(self.G_ema)["variety"]
        log.info("gan: --glo starts from a generator of variety %.2f", variety)
        if variety < GLO_START_VARIETY:
            log.warning("gan: --glo from a generator of variety %.2f: on KanjiVG such starts drew smudges for "
                        "20-50 kimg where varied ones drew characters at once (docs/training.md); a longer run's "
                        "generator (--init-generator) starts it sooner", variety)

    # ---- what the phases share

    def real_batch(self) -> torch.Tensor:
        index = torch.randint(len(self.reals), (self.batch,), device=self.device)
        x = tensors.from_uint8(self.reals[index]).contiguous(memory_format=self.layout)
        if self.cfg.mirror:
            flip = torch.rand(self.batch, device=self.device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x

    def disc(self, images: torch.Tensor) -> torch.Tensor:
        return self.D(augment(images, self.ada_p if self.cfg.ada else 1.0, self.spec))

    def latents(self, n: int | None = None) -> torch.Tensor:
        return torch.randn(n or self.batch, self.cfg.z_dim, device=self.device)

    def optimise(self, loss: torch.Tensor, net: torch.nn.Module, opt, scaler, *also) -> None:
        """One update of `net` by `opt` (and of what the optimisers `also` hold) on `loss`."""
        for o in (opt, *also):
            o.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        _all_reduce_grads(net, self.world)
        for o in (opt, *also):
            scaler.step(o)
        scaler.update()

    # ---- one step

    def generator_phase(self) -> torch.Tensor:
        """G's main loss, then (lazily) its path-length penalty."""
        cfg, G = self.cfg, self.G
        G.requires_grad_(True), self.D.requires_grad_(False)
        loss_G = generator_loss(G, self.disc, self.latents(), cfg.style_mixing, cfg.mode_seeking)
        self.optimise(loss_G, G, self.opt_G, self.scaler_G)
        if cfg.pl_weight and self.step % cfg.pl_interval == 0:
            penalty, self.pl_mean, self.losses["pl_length"] = path_length_loss(
                G, self.latents(max(1, self.batch // cfg.pl_batch_shrink)), cfg.style_mixing, self.pl_mean,
                cfg.pl_weight, cfg.pl_decay)
            self.optimise(penalty * cfg.pl_interval, G, self.opt_G, self.scaler_G)
        if cfg.imle and self.step % cfg.imle_interval == 0:
            pull = imle_penalty(G, self.real_batch(), cfg.imle_candidates)
            self.losses["imle"] = float(pull.detach())
            self.optimise(pull * cfg.imle * cfg.imle_interval, G, self.opt_G, self.scaler_G)
        if self.glo is not None:
            codes, drawings = self.glo.batch(self.reals, self.batch, self.layout)
            error = (G.synthesis(G.mapping(codes)) - drawings).square().mean()
            self.optimise(error * cfg.glo, G, self.opt_G, self.scaler_G, self.glo.opt_pull)
            keep_on_sphere(self.glo.codes)
            self.losses["glo"] = float(error.detach())
        return loss_G

    def discriminator_phase(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Fakes fake, reals real; every r1_interval steps also R1 on the reals."""
        cfg = self.cfg
        self.G.requires_grad_(False), self.D.requires_grad_(True)
        with torch.no_grad():
            fake = self.G.synthesis(mapped_ws(self.G, self.latents(), cfg.style_mixing))
        r1_weight = cfg.gamma / 2 * cfg.r1_interval if cfg.gamma and self.step % cfg.r1_interval == 0 else 0.0
        loss_D, logits_real, r1 = discriminator_loss(self.disc, fake, self.real_batch(), r1_weight)
        if r1 is not None:
            self.losses["r1"] = r1
        self.optimise(loss_D, self.D, self.opt_D, self.scaler_D)
        return loss_D, logits_real

    def ada_phase(self, logits_real: torch.Tensor) -> None:
        """Steer the augmentation probability by the sign of D on reals."""
        cfg, counters = self.cfg, self.counters
        counters["ada_sum"] += float(logits_real.sign().sum())
        counters["ada_count"] += logits_real.numel()  # one score a pack of drawings
        if cfg.ada and (self.step + 1) % cfg.ada_interval == 0:
            stats = torch.tensor([counters["ada_sum"], counters["ada_count"]], dtype=torch.float64,
                                 device=self.device)
            if self.world > 1:
                dist.all_reduce(stats)
            rt = float(stats[0] / stats[1])
            self.ada_p = ada_update(self.ada_p, rt, cfg.ada_target, int(stats[1]), cfg.ada_kimg)
            self.losses["ada_rt"] = rt
            counters["ada_sum"], counters["ada_count"] = 0.0, 0

    def ema_phase(self) -> None:
        """The EMA of the generator: what is sampled and exported."""
        with torch.no_grad():
            beta = ema_beta(self.cfg, self.step)
            for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
                p_ema.copy_(p.detach().lerp(p_ema, beta))
            for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
                b_ema.copy_(b)

    def train_step(self) -> None:
        loss_G = self.generator_phase()
        loss_D, logits_real = self.discriminator_phase()
        self.ada_phase(logits_real)
        self.ema_phase()
        self.step += 1
        self.losses.update(loss_G=float(loss_G.detach()), loss_D=float(loss_D.detach()), ada_p=self.ada_p)
        if not all(math.isfinite(v) for v in self.losses.values()):
            raise FloatingPointError(f"gan: a loss became NaN/inf at step {self.step}: {self.losses}; "
                                     f"lower --lr or raise --r1-gamma, then --resume")

    # ---- GLO's warm-up: a new --glo run's first minutes, before its first GAN step

    @property
    def glo_warming_up(self) -> bool:
        return self.glo is not None and self.counters["glo_warmup"] < self.cfg.glo_warmup_steps

    def glo_warmup_step(self) -> None:
        """The synthesis network and the codes on the pixel error alone (constant noise,
        the mapping kept); at the end G's EMA starts from the network it learnt."""
        cfg, G = self.cfg, self.G
        G.requires_grad_(False), G.synthesis.requires_grad_(True), self.D.requires_grad_(False)
        codes, drawings = self.glo.batch(self.reals, self.batch, self.layout)
        error = (G.synthesis(G.mapping(codes), noise_mode="const") - drawings).square().mean()
        self.optimise(error, G, self.glo.opt_warmup, self.scaler_G)
        keep_on_sphere(self.glo.codes)
        self.losses["glo"] = float(error.detach())
        done = self.counters["glo_warmup"] = self.counters["glo_warmup"] + 1  # one process: GloCodes
        self.progress_line(f"gan GLO warm-up step {done}/{cfg.glo_warmup_steps}: pixel error {error:.4f}",
                           force=done == cfg.glo_warmup_steps)
        if done == cfg.glo_warmup_steps:
            with torch.no_grad():
                self.G_ema.load_state_dict(self.G.state_dict())
            self.save_glo_network()
        if done == cfg.glo_warmup_steps or done % GLO_WARMUP_SAVE_STEPS == 0:
            self.save_state()

    @torch.no_grad()
    def save_glo_network(self) -> None:
        """What the warm-up learnt, for a person and for a run that starts from it
        (--init-generator): RUN/glo_network.pt and RUN/glo_fits.png (16 drawings over their
        fits)."""
        save_model_checkpoint(self.out / GLO_NETWORK, self.G_ema, None, {
            **(self.meta or {}), "glo_warmup_steps": self.counters["glo_warmup"], "glo_drawings": len(self.glo.index)})
        first = slice(0, 16)
        drawings = self.reals[self.glo.index[first], 0].cpu().numpy()
        fits = to_uint8(self.G_ema.synthesis(self.G_ema.mapping(self.glo.codes[first]), noise_mode="const"))
        atomic_write_png(self.out / "glo_fits.png", grid_image(np.concatenate([drawings, fits]), len(drawings)))

    # ---- what a person and a resume see

    def kimg(self, steps: int | None = None) -> float:
        return (self.step if steps is None else steps) * self.cfg.batch / 1000

    def kimg_per_hour(self) -> float:  # of this process (a resumed run's earlier speed is not known)
        return (self.kimg() - self.kimg(self.session_step)) / max(time.time() - self.session_start, 1e-6) * 3600

    def report(self) -> str:
        # most wanted first: a narrow terminal cuts the end of the line
        return (f"{self.kimg():.2f}/{self.kimg(self.cfg.total_steps):.2f} kimg, G {self.losses.get('loss_G', 0):.3f} "
                f"D {self.losses.get('loss_D', 0):.3f}, ADA p {self.ada_p:.3f}, {self.kimg_per_hour():.0f} kimg/h")

    def after_step(self, stopping: bool) -> None:
        """Rank 0: scalars, the bar, a progress line, and at a snapshot the state and samples."""
        if self.rank != 0:
            return
        cfg, step = self.cfg, self.step
        if step % cfg.log_every == 0 or step == cfg.total_steps:
            for name, value in self.losses.items():
                self.writer.add_scalar(f"gan/{name}", value, step * cfg.batch)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(self.report(), refresh=False)
        snapshot = step % self.snapshot_steps == 0 or step == cfg.total_steps or stopping
        self.progress_line(f"gan step {step}/{cfg.total_steps}: {self.report()}", force=snapshot)
        if snapshot:
            self.snapshot()

    def save_state(self) -> None:
        self.counters.update(step=self.step, ada_p=self.ada_p, pl_mean=float(self.pl_mean),
                             elapsed=time.time() - self.started)
        save_training_state(self.state_path, self.stateful, self.counters, self.cfg, self.D)

    def snapshot(self) -> None:
        # The state first: a second Ctrl-C or a kill in what follows costs images only.
        self.save_state()
        manifest = self.manifest
        save_model_checkpoint(self.out / GENERATOR, self.G_ema, None, {
            **(self.meta or {}), "dataset": manifest.get("source", str(self.dataset)), "ingested": str(self.dataset),
            "licence": manifest.get("licence", "unknown"),
            "credit": manifest.get("credit", ""), "images": len(self.reals), "resolution": self.cfg.resolution,
            "kimg": self.kimg(), "steps": self.step, "train_seconds": self.counters["elapsed"],
            "gan_losses": dict(self.losses)})
        for name, image in save_samples(self.G_ema, self.z_grid, self.out, f"{self.kimg():07.1f}kimg").items():
            self.writer.add_image(f"gan/{name}", image, self.step * self.cfg.batch, dataformats="HW")
        if self.variety is not None:
            figures = self.variety.record(self.G_ema, self.out / GENERATOR, self.kimg(), self.step,
                                          {**self.losses, "ada_p": self.ada_p})
            for name in ("variety", "spread", "coverage", "grey"):
                self.writer.add_scalar(f"gan/{name}", figures[name], self.step * self.cfg.batch)
            log.info("gan %.1f kimg: variety %.2f, spread %.2f of the collection's (%d distinct nearest "
                     "drawings of %d), grey share %.2f (the collection's %.2f%s)%s", self.kimg(), figures["variety"],
                     figures["spread"], figures["nearest_distinct"], figures["count"], figures["grey"],
                     figures["grey_real"], ": smudged" if figures["smudged"] else "",
                     ", the best so far" if figures["best"] else "")

    def finish(self, stop: StopRequest) -> dict:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()
        losses = self.losses
        if self.world > 1 and losses:  # each rank saw its own batches: the run's losses are their mean
            names = sorted(losses)
            mean = torch.tensor([losses[n] for n in names], dtype=torch.float64, device=self.device)
            dist.all_reduce(mean)
            losses = {n: float(v) / self.world for n, v in zip(names, mean)}
            losses["ada_p"] = self.ada_p  # the same on every rank
        if self.world > 1:
            # every rank waits for the others, then closes its transport: a rank that exits
            # with gloo's threads alive aborts ("terminate called without an active exception")
            dist.barrier()
            dist.destroy_process_group()
        summary = {"steps": self.step, "kimg": self.kimg(), "ada_p": self.ada_p,
                   "seconds": time.time() - self.started, "kimg_per_hour": self.kimg_per_hour(),
                   "processes": self.world, **losses}
        if stop.signal:
            summary.update(stopped_by=stop.signal, exit_code=stop.exit_code)
            log.info("stopped by %s at step %d (%.2f kimg); %s saved", stop.signal, self.step, self.kimg(),
                     self.state_path)
        if self.rank == 0:
            atomic_write_json(self.out / "summary.json", summary)
        return summary


def train_gan(dataset: Path, out: Path, cfg: GanConfig, resume: bool = False,
              progress: bool = True, meta: dict | None = None, force: bool = False,
              init_generator: Path | None = None) -> dict:
    """Train (or resume) a StyleGAN2 on `dataset`; writes RUN = `out`. Returns a summary.

    `init_generator` (a bundle folder or a generator checkpoint of the same widths) starts a
    new run's G and its EMA from those weights, with a new D: a run whose machine did not
    come back goes on from the shipped generator instead of from noise.

    A resume refuses settings that differ from the run's (GAN_CHANGEABLE excepted); an
    `out` that holds a run needs `resume` or `force`. Ctrl-C or SIGTERM finishes the step,
    saves the state and returns the summary with `stopped_by`.
    """
    with StopRequest() as stop, around_bar():
        # heard while the run is set up too: it then stops before its first step, state saved
        run = GanRun(Path(dataset), Path(out), cfg, resume, force, meta, progress, init_generator)
        while run.glo_warming_up and not stop.signal:
            run.glo_warmup_step()
        while run.step < cfg.total_steps and not stop.signal:
            run.train_step()
            run.after_step(stopping=bool(stop.signal))
        if stop.signal and run.step == run.session_step and run.rank == 0:
            run.save_state() if run.glo_warming_up else run.snapshot()
    return run.finish(stop)


def save_training_state(path: Path, stateful: dict, counters: dict, cfg: GanConfig, D: Discriminator) -> None:
    """Everything `load_training_state` needs for an exact continuation (training.state)."""
    save_state({**{name: obj.state_dict() for name, obj in stateful.items()}, **counters,
                "rng": rng_states(), "config": dataclasses.asdict(cfg), "D_init_kwargs": D.init_kwargs}, path)


def load_training_state(path: Path, stateful: dict, counters: dict, device, world: int, rank: int,
                        cfg: GanConfig) -> dict:
    """Restore what `save_training_state` wrote into `stateful`; returns the counters."""
    state, path = load_state(path, device)
    fresh_lrs = {opt: [group["lr"] for group in opt.param_groups]  # the resumed command's (GAN_CHANGEABLE)
                 for opt in stateful.values() if isinstance(opt, torch.optim.Optimizer)}
    saved = with_defaults(GanConfig, state["config"])
    _, changes = resumed_settings("gan", saved, dataclasses.asdict(cfg), changeable=GAN_CHANGEABLE)
    saved_gamma = GanConfig(**saved).gamma
    if (saved_gamma == 0) != (cfg.gamma == 0):
        # D's Adam is set up for lazy R1 or for none (lazy_adam): it cannot switch mid-run
        raise ValueError(f"gan: --resume can change R1 gamma but not turn R1 on or off (the run has "
                         f"{saved_gamma:g}); start a new run with --init-generator")
    for name, obj in stateful.items():
        obj.load_state_dict(state[name])
    for opt, lrs in fresh_lrs.items():  # Adam's saved state carries the run's old lr
        for group, lr in zip(opt.param_groups, lrs):
            group["lr"] = lr
    restored = {key: state.get(key, default) for key, default in counters.items()}
    kimg = restored["step"] * cfg.batch / 1000
    for change in changes:
        log.info("resume: %s (applied)", change)
        if change.split()[0] not in GAN_SCHEDULE:  # a new recipe from here: the curve's reader needs it
            restored["changes"] = [*restored["changes"], {"kimg": kimg, "change": change}]
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
