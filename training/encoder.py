"""pSp encoder training on (sketch, drawing) pairs (`newsnow train encoder`).

The generator from the GAN run stays frozen; the encoder predicts W+ offsets from w_avg:
x_hat = G.synthesis(E(sketch) + w_avg) with constant noise (as the table runs it), and

    loss = l2 * ||x - x_hat||^2 + perceptual * P(x, x_hat) + w_norm * ||E(sketch)||
           + latent * ||E(sketch) + w_avg - w_x||^2   (pairs whose target code w_x is known)
           + delta * sum_i ||E_i - E_0||              (e4e's delta regularisation)

With `code_steps` the first steps take only pairs whose code is known and drop the image
terms: no generator pass (3x the steps per second), a plain regression onto real
drawings' codes. On the demo's collapsed generator it learned little more than the codes'
mean, which that generator draws as its template (docs/training.md, "The bundled demo
model"); it is there for a generator whose codes a sketch predicts better.

(pSp's sketch recipe 1 / 0.8 / 0.005 for the first three). Many pairs' sketches are only
the first strokes of their drawing (training.partial), so one sketch has many right
answers. The latent term pulls the code to the mean of the codes of those answers (cheap:
no generator pass), and averaging codes, not pixels, keeps the answer a drawing. w_x is the
generated drawing's own code, or, for the partial sketch of a collection drawing (whose
code nobody knows: W+ optimisation of every drawing costs hours on a CPU), the encoder's
own code of that drawing's WHOLE sketch, taken without gradient: the first strokes are
taught to give what the whole sketch gives, which the image terms teach to trace. The
delta term keeps it W-like, near the mapping's distribution, as e4e does. The encoder is
deterministic: it picks that drawing for the strokes, and each new stroke moves it. P is LPIPS when a TorchScript LPIPS file is given
(`--lpips PATH`, called as lpips(x, y) on [B, C, R, R] in [-1, 1]); otherwise a feature
distance on the trained discriminator's activations (unit-normalised over channels and
averaged, LPIPS without learned weights), which needs no download.
RUN2/state.pt (beside RUN2/state.prev.pt, the fallback) resumes exactly; RUN2/model.pt is
the generator + encoder for export.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from inference.checkpoint import save_model_checkpoint
from inference.networks import PSPEncoder, count_parameters
from inference.tensors import from_uint8
from training.config import ENCODER_CHANGEABLE, EncoderConfig, resumed_settings
from training.gan import load_discriminator, rng_states, set_rng_states, to_uint8
from training.imports.generators import NoPerceptual, generator_source
from training.progress import ProgressLines, around_bar, stage_bar
from training.provenance import software
from training.sketches import check_codes_generator, contact_sheet, load_codes, load_pairs
from training.state import load_same_widths, load_state, prepare_run_folder, save_state
from training.stopping import StopRequest
from storage import atomic_write_json, atomic_write_png

log = logging.getLogger(__name__)

STATE = "state.pt"
MODEL = "model.pt"


class FeatureDistance(torch.nn.Module):
    """LPIPS-like distance on the discriminator's block activations: per level, unit-
    normalise the channel vectors, square the difference, average; sum the levels."""

    def __init__(self, discriminator):
        super().__init__()
        self.discriminator = discriminator.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        total = x.new_zeros(x.shape[0])
        for fx, fy in zip(self.discriminator.features(x), self.discriminator.features(y)):
            fx = fx / (fx.norm(dim=1, keepdim=True) + 1e-8)
            fy = fy / (fy.norm(dim=1, keepdim=True) + 1e-8)
            total = total + (fx - fy).square().sum(dim=1).mean(dim=[1, 2])
        return total


class ScriptedLPIPS(torch.nn.Module):
    """A TorchScript LPIPS file from a local path: lpips(x, y) -> distances."""

    def __init__(self, path: Path):
        super().__init__()
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no LPIPS file; give a TorchScript LPIPS model or "
                                    f"leave --lpips out to use the discriminator's features")
        try:
            self.net = torch.jit.load(str(path), map_location="cpu").eval()
        except RuntimeError as exc:
            raise ValueError(f"{path}: not a TorchScript LPIPS model ({exc})") from exc
        for parameter in self.net.parameters():
            parameter.requires_grad_(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(x, y).reshape(x.shape[0], -1).mean(dim=1)


def build_encoder(cfg: EncoderConfig, generator) -> PSPEncoder:
    return PSPEncoder(generator.resolution, generator.num_ws, generator.w_dim, in_channels=1,
                      width=cfg.width, blocks=cfg.blocks, channel_max=cfg.channel_max,
                      head_width=cfg.head_width)


def losses_of(encoder, generator, perceptual, sketch, drawing, cfg: EncoderConfig,
              code: torch.Tensor | None = None, known: torch.Tensor | None = None, images: bool = True) -> dict:
    """The loss terms for one batch (tensors in [-1, 1]; `code` the targets' W+ where
    `known`); 'loss' is the weighted sum. Without `images` no generator pass: the image
    terms are zero and 'recon' is None."""
    offsets = encoder(sketch)
    ws = offsets + generator.w_avg
    recon = generator.synthesis(ws, noise_mode="const") if images else None
    l2 = F.mse_loss(recon, drawing) if images else offsets.new_zeros(())
    perc = perceptual(recon, drawing).mean() if images else offsets.new_zeros(())
    w_norm = offsets.norm(2, dim=(1, 2)).mean()
    delta = (offsets[:, 1:] - offsets[:, :1]).norm(2, dim=2).sum(1).mean()
    latent = offsets.new_zeros(())
    if code is not None and known is not None and bool(known.any()):
        latent = (ws[known] - code[known]).square().mean()
    loss = (cfg.l2_lambda * l2 + cfg.perceptual_lambda * perc + cfg.w_norm_lambda * w_norm
            + cfg.latent_lambda * latent + cfg.delta_lambda * delta)
    return {"loss": loss, "l2": l2, "perceptual": perc, "w_norm": w_norm, "latent": latent, "delta": delta,
            "recon": recon}


def whole_pair_index(entries: list[dict]) -> np.ndarray:
    """For each pair, the index of the whole-sketch pair of the same drawing (-1: none)."""
    whole = {e["drawing"]: i for i, e in enumerate(entries) if e.get("part", "whole") == "whole"}
    return np.array([whole.get(e["drawing"], -1) if e.get("part", "whole") != "whole" else -1 for e in entries])


@torch.no_grad()
def target_codes(encoder, generator, sketches: np.ndarray, index: np.ndarray, codes: np.ndarray | None,
                 known: np.ndarray, whole_of: np.ndarray | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The latent term's targets for a batch and where there is one: a known code, else for a
    partial pair the encoder's current code of its drawing's whole sketch (no gradient)."""
    code = torch.from_numpy(codes[index]) if codes is not None else None
    has = torch.from_numpy(known[index]) if codes is not None else torch.zeros(len(index), dtype=torch.bool)
    if whole_of is not None:
        borrow = (whole_of[index] >= 0) & ~has.numpy()
        if borrow.any():
            was_training = encoder.training
            encoder.eval()
            whole = encoder(_tensor(sketches[whole_of[index][borrow]])) + generator.w_avg
            encoder.train(was_training)
            if code is None:
                code = torch.zeros(len(index), *whole.shape[1:])
            code[torch.from_numpy(borrow)] = whole
            has = has | torch.from_numpy(borrow)
    return (code, has) if code is not None else (None, None)


def _tensor(images: np.ndarray) -> torch.Tensor:
    return from_uint8(torch.from_numpy(images))[:, None]


@torch.no_grad()
def validate(encoder, generator, perceptual, sketches: np.ndarray, drawings: np.ndarray,
             cfg: EncoderConfig) -> tuple[dict, np.ndarray]:
    """Mean validation l2 / perceptual / w_norm, and the reconstructions (uint8)."""
    encoder.eval()
    sums, recons = {"l2": 0.0, "perceptual": 0.0, "w_norm": 0.0, "delta": 0.0}, []
    for i in range(0, len(sketches), 64):
        terms = losses_of(encoder, generator, perceptual, _tensor(sketches[i:i + 64]),
                          _tensor(drawings[i:i + 64]), cfg)
        n = len(sketches[i:i + 64])
        for k in sums:
            sums[k] += float(terms[k]) * n
        recons.append(to_uint8(terms["recon"]))
    encoder.train()
    return {k: v / len(sketches) for k, v in sums.items()}, np.concatenate(recons)


def save_encoder_state(path: Path, encoder, optimizer, step: int, elapsed: float, history: list,
                       cfg: EncoderConfig) -> None:
    """Everything `load_encoder_state` needs for an exact continuation."""
    save_state({"encoder": encoder.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                "elapsed": elapsed, "history": history, "rng": rng_states(), "config": dataclasses.asdict(cfg)}, path)


def load_encoder_state(path: Path, encoder, optimizer, cfg: EncoderConfig) -> tuple[int, float, list]:
    """The networks, optimiser and random state of `save_encoder_state`; (step, elapsed, history).
    Settings that differ from the run's are refused, but ENCODER_CHANGEABLE, which are logged."""
    state, _ = load_state(path)
    _, changes = resumed_settings("encoder", state["config"], dataclasses.asdict(cfg), changeable=ENCODER_CHANGEABLE)
    for change in changes:
        log.info("resume: %s (applied)", change)
    encoder.load_state_dict(state["encoder"])
    optimizer.load_state_dict(state["optimizer"])
    set_rng_states(state["rng"])
    return state["step"], state["elapsed"], state["history"]


def validation_sheet(sketches, drawings, recons) -> np.ndarray:
    """sketch | reconstruction over drawing | reconstruction, for the held-out pairs."""
    sheet = contact_sheet(list(sketches), list(recons))
    target = contact_sheet(list(drawings), list(recons))
    return np.vstack([sheet, target])


def start_from_encoder(encoder: torch.nn.Module, source: Path) -> None:
    """Load the weights of another run's (or a bundle's) encoder into `encoder`; refuses one
    of other widths, naming the first tensor that differs."""
    from inference.checkpoint import load_model_checkpoint

    if (source / "bundle.json").is_file():
        from inference.bundle import Bundle
        from inference.runtime import open_backend

        trained = open_backend(Bundle.load(source), kind="torch").encoder
    elif source.exists():
        trained = load_model_checkpoint(source / MODEL if source.is_dir() else source)[1]
        if trained is None:
            raise ValueError(f"encoder: --init-encoder {source} holds a generator only; give an encoder run")
    else:
        raise FileNotFoundError(f"encoder: --init-encoder {source}: no such encoder run, checkpoint or bundle")
    load_same_widths(encoder, trained.state_dict(), f"encoder: --init-encoder {source}")
    log.info("encoder starts from %s", source)


def train_encoder(pairs: Path, gan_run: Path, out: Path, cfg: EncoderConfig, resume: bool = False,
                  lpips: Path | None = None, progress: bool = True, force: bool = False,
                  meta: dict | None = None, mapping_lr_multiplier: float | None = None,
                  init_encoder: Path | None = None) -> dict:
    """Train (or resume) a pSp encoder for the GAN run's frozen generator. A resume refuses
    settings that differ from the run's (ENCODER_CHANGEABLE excepted); an `out` that holds
    a run needs `resume` or `force`. `init_encoder` (an encoder run, its model.pt or a
    bundle with weights, same widths) starts a new run from that encoder's weights: new
    pairs or losses without learning to trace again."""
    pairs, gan_run, out = Path(pairs), Path(gan_run), Path(out)
    cfg.validate()
    if init_encoder is not None and resume:
        raise ValueError("encoder: --init-encoder starts a new run; a resumed run already has its weights")
    state_path = out / STATE
    prepare_run_folder(out, state_path, resume, force, "encoder")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    # gan_run: a GAN run folder, or a generator file trained elsewhere (training.imports.generators)
    source = generator_source(gan_run, mapping_lr_multiplier)
    generator, gan_meta = source.generator, source.meta
    generator.requires_grad_(False)
    sketches, drawings, manifest = load_pairs(pairs, "train")
    check_codes_generator(pairs, manifest, generator)
    codes, known = load_codes(pairs, manifest)
    whole_of = whole_pair_index(manifest["pairs"]) if cfg.latent_from_whole else None
    val_sketches, val_drawings, _ = load_pairs(pairs, "validation")
    coded = np.flatnonzero(known)
    if cfg.code_steps and not len(coded):
        raise ValueError(f"encoder: --code-steps {cfg.code_steps} needs pairs with known W+ codes, and {pairs} has "
                         f"none; find them with `newsnow train pair-codes {pairs} --model RUN`")
    if sketches.shape[1] != generator.resolution:
        raise ValueError(f"encoder: pairs in {pairs} are {sketches.shape[1]} px but the generator "
                         f"makes {generator.resolution} px; make the pairs from this GAN run")
    perceptual_name = "lpips" if lpips else "discriminator features" if source.run else "none (no discriminator)"
    perceptual = (ScriptedLPIPS(lpips) if lpips else FeatureDistance(load_discriminator(gan_run)) if source.run
                  else NoPerceptual())
    torch.manual_seed(cfg.seed)
    encoder = build_encoder(cfg, generator).train()
    if init_encoder is not None:
        start_from_encoder(encoder, Path(init_encoder))
    if cfg.channels_last:
        encoder, generator = (net.to(memory_format=torch.channels_last) for net in (encoder, generator))
    optimizer = torch.optim.Adam(encoder.parameters(), lr=cfg.lr)
    step, elapsed, history = 0, 0.0, []
    out.mkdir(parents=True, exist_ok=True)
    if resume:
        step, elapsed, history = load_encoder_state(state_path, encoder, optimizer, cfg)
    atomic_write_json(out / "config.json", dataclasses.asdict(cfg))  # read back by --resume
    log.info("encoder %d params, %d training pairs (%d partial, %d with a known code), %d validation pairs, "
             "perceptual: %s", count_parameters(encoder), len(sketches),
             sum(e.get("part", "whole") != "whole" for e in manifest["pairs"]), int(known.sum()), len(val_sketches),
             perceptual_name)
    from torch.utils.tensorboard import SummaryWriter
    writer = SummaryWriter(str(out / "tensorboard"))
    bar = stage_bar(cfg.steps, min(step, cfg.steps), desc="encoder", enabled=progress)
    progress_line = ProgressLines(log)
    started = time.time() - elapsed
    session_start, session_step = time.time(), step
    shown = slice(0, min(16, len(val_sketches)))
    terms = {}
    with StopRequest() as stop, around_bar():
        while step < cfg.steps and not stop.signal:
            codes_only = step < cfg.code_steps  # known codes first: cheap, and one answer per sketch
            index = (coded[torch.randint(len(coded), (cfg.batch,)).numpy()] if codes_only
                     else torch.randint(len(sketches), (cfg.batch,)).numpy())
            code, code_known = target_codes(encoder, generator, sketches, index, codes, known, whole_of)
            terms = losses_of(encoder, generator, perceptual, _tensor(sketches[index]), _tensor(drawings[index]), cfg,
                              code, code_known, images=not codes_only)
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            optimizer.step()
            step += 1
            scalars = {k: float(v.detach()) for k, v in terms.items() if k != "recon"}
            if not math.isfinite(scalars["loss"]):
                raise FloatingPointError(f"encoder: loss became {scalars['loss']} at step {step}; lower --lr")
            if step % cfg.log_every == 0:
                for k, v in scalars.items():
                    writer.add_scalar(f"encoder/{k}", v, step)
            losses = (f"loss {scalars['loss']:.4f} (l2 {scalars['l2']:.4f}, perceptual "
                      f"{scalars['perceptual']:.4f}, latent {scalars['latent']:.4f})")
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(losses, refresh=False)
            checkpoint = step % cfg.val_every == 0 or step == cfg.steps or stop.signal
            rate = (step - session_step) / max(time.time() - session_start, 1e-6)
            progress_line(f"encoder step {step}/{cfg.steps}: {rate:.2f} steps/s, {losses}", force=checkpoint)
            if checkpoint:
                val, recons = validate(encoder, generator, perceptual, val_sketches, val_drawings, cfg)
                for k, v in val.items():
                    writer.add_scalar(f"validation/{k}", v, step)
                history.append({"step": step, "train": scalars, "validation": val})
                elapsed = time.time() - started
                # The state first: a second Ctrl-C or a kill in what follows costs images only.
                save_encoder_state(state_path, encoder, optimizer, step, elapsed, history, cfg)
                provenance = {
                    "dataset": gan_meta.get("dataset"), "licence": gan_meta.get("licence", "unknown"),
                    "credit": gan_meta.get("credit", ""), "kimg": gan_meta.get("kimg"),
                    "gan_steps": gan_meta.get("steps"), "gan_seconds": gan_meta.get("train_seconds"),
                    "pairs": manifest["count"], "encoder_steps": step, "encoder_seconds": round(elapsed, 1),
                    "encoder_validation": val, "perceptual": perceptual_name,
                    **software(), **(meta or {})}
                save_model_checkpoint(out / MODEL, generator, encoder.eval(), {
                    "binarize": manifest["binarize"], "provenance": provenance, "gan": gan_meta,
                    "steps": step})
                encoder.train()
                picture = validation_sheet(val_sketches[shown], val_drawings[shown], recons[shown])
                atomic_write_png(out / f"validation_{step:06d}.png", picture)
                writer.add_image("validation/reconstructions", picture, step, dataformats="HW")
    if bar is not None:
        bar.close()
    writer.close()
    summary = {"steps": step, "seconds": time.time() - started,
               "train": {k: float(v.detach()) for k, v in terms.items() if k != "recon"} if terms else {},
               "validation": history[-1]["validation"] if history else {}}
    if stop.signal:
        summary.update(stopped_by=stop.signal, exit_code=stop.exit_code)
        log.info("stopped by %s at step %d; %s saved",
                 stop.signal, step, state_path)
    atomic_write_json(out / "summary.json", summary)
    return summary
