"""The model report (`newsnow train evaluate`): is a model fit for the table?

A model is judged by what it draws, so the report measures four things and says in plain
words which targets it misses:

- Generator variety (training.variety): how much of the collection random samples reach
  under a shape distance of centre lines, over what as many collection drawings reach
  ("variety"; one template reads about 0.3, a healthy generator near 1), and their mean
  pairwise distance likewise ("spread").
- Completion: a visitor's sheet is partial most of the time, and the table should answer
  the first strokes with a whole drawing that takes them in. For the first 1, 2 and 3
  strokes of held-out collection drawings (training.partial) and for fresh visitor-like
  first strokes: how much of a whole drawing's ink the drawing holds, how close it lies
  to its nearest collection drawing (over the collection's own nearest-other distance),
  how much of the sketch's lines it keeps, and how different the drawings of different
  sketches are. A model that answers with the strokes alone "traces".
- The encoder on held-out collection drawings, their sketches made as training makes
  them: reconstruction MSE beside two baselines, the collection's mean image (an encoder
  that learned nothing) and W+ optimisation on the same generator started from the
  encoder's code (about the best this generator allows).
- Sketch-following on visitor-like sketches that are not training sketches, in two
  groups: strokes at different places (does the drawing go where the pen went?) and
  letters written in the middle of the sheet (does it take the shape, not only the
  place?). For each: how much of the sketch's lines the drawing's ink covers ("on", the
  verdict's measure: a completing drawing adds ink around the lines, which is right) and
  how much of the ink lies near the lines, beside the same with the drawings shuffled
  within the group (what ignoring the sketch scores), and how different the drawings of
  different sketches are, against real drawings' spread ("distinct").
- FID/KID when Inception weights are given at a local path.

The same ReportSettings wherever the report runs (`train all`, `train evaluate`); they are
in report.json and the model card. Writes OUT/report.json and OUT/contact_sheet.png
(samples; held-out sketch | encoder | W+ optimum | real; one drawing made stroke by
stroke; first strokes | drawing; visitor sketch | drawing).
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from inference.tensors import from_uint8
from storage import atomic_write_json, atomic_write_png
from training.variety import GREY_LIMIT, drawn_in_lines

if TYPE_CHECKING:  # torch is imported where it is used: `newsnow train evaluate --help` stays light
    import torch

log = logging.getLogger(__name__)

# What the table needs (issue-12 targets; the model card repeats them).
TARGETS = {
    "variety": 0.7,                 # nearest-sample distance, of the collection's
    "grey": GREY_LIMIT,             # samples' grey share of their ink at most this many times the collection's
    "encoder_gain": 0.4,            # held-out MSE at least 40% below the mean image's
    "encoder_vs_optimum": 2.0,      # within 2x of W+ optimisation
    "follow": 0.5,                  # share of the sketch's lines covered by the drawing's ink
    "follow_gain": 0.25,            # ... clearly above another sketch's drawing
    "distinct": 0.5,                # drawings of different sketches differ (of real spread)
    "completion_ink": 0.6,          # on 1-3 strokes the drawing holds this much of a drawing's ink
    "completion_near": 1.5,         # ... lies at most this many times the collection's nearest-other
    "completion_keeps": 0.8,        # ... and keeps this share of the sketch's lines
}


@dataclass
class ReportSettings:
    samples: int = 256              # generated drawings for variety (and FID/KID)
    real: int = 256                 # real drawings they are compared with
    held_out: int = 48              # held-out drawings for the encoder
    inversion_steps: int = 300      # Adam steps of the W+ optimisation baseline
    inversion_lr: float = 0.02
    completion_drawings: int = 30   # held-out drawings whose first 1, 2, 3 strokes are answered
    visitor_first_strokes: int = 30  # fresh visitor-like sketches of 1, 2 or 3 strokes
    seed: int = 0


# ---------------------------------------------------------------------------------------
# Visitor-like sketches (not training sketches).


def _table_frame(size: int) -> np.ndarray:
    return np.full((size, size), 215, np.uint8)


def _as_sketch(frame: np.ndarray, resolution: int) -> np.ndarray:
    from capture.binarize import binarize
    from training.sketches import default_binarize
    frame = cv2.GaussianBlur(frame, (5, 5), 0)  # tracing paper softens the pen
    return binarize(frame, default_binarize(resolution))


def strokes_like_a_visitor(resolution: int, count: int = 8, seed: int = 0) -> list[np.ndarray]:
    """Pen strokes as a visitor might draw them (lines, arcs, a zigzag, a cross), drawn on a
    camera-sized grey frame with a soft pen and passed through the table's binarizer."""
    rng = np.random.default_rng(seed)
    size = 4 * resolution
    pen = max(2, size // 64)
    sketches = []
    for k in range(count):
        frame = _table_frame(size)
        kind = k % 4
        pts = rng.uniform(0.15, 0.85, size=(5, 2)) * size
        if kind == 0:      # one long stroke
            cv2.line(frame, tuple(map(int, pts[0])), tuple(map(int, pts[1])), 40, pen, cv2.LINE_AA)
        elif kind == 1:    # an arc
            centre = tuple(int(v) for v in rng.uniform(0.35, 0.65, 2) * size)
            cv2.ellipse(frame, centre, (size // 4, size // 5), float(rng.uniform(0, 180)), 0,
                        float(rng.uniform(150, 300)), 40, pen, cv2.LINE_AA)
        elif kind == 2:    # a zigzag
            cv2.polylines(frame, [pts.astype(np.int32)], False, 40, pen, cv2.LINE_AA)
        else:              # a cross and a short bar
            c = size // 2
            cv2.line(frame, (c, size // 6), (c, 5 * size // 6), 40, pen, cv2.LINE_AA)
            cv2.line(frame, (size // 5, c), (4 * size // 5, c), 40, pen, cv2.LINE_AA)
            cv2.line(frame, (size // 4, size // 4), (size // 2 - 8, size // 4 + 5), 40, pen, cv2.LINE_AA)
        sketches.append(_as_sketch(frame, resolution))
    return sketches


def first_strokes_like_a_visitor(resolution: int, count: int = 30, seed: int = 0) -> list[np.ndarray]:
    """A visitor's first 1, 2 or 3 pen strokes (a third of each): short lines, arcs and
    hooks in the middle of the sheet, none of them a collection drawing's, drawn on a
    camera-sized frame with a soft pen and passed through the table's binarizer."""
    rng = np.random.default_rng(seed + 101)
    size = 4 * resolution
    pen = max(2, size // 64)
    sketches = []
    for i in range(count):
        frame = _table_frame(size)
        for _ in range(1 + i % 3):
            start = rng.uniform(0.25, 0.75, 2) * size
            length = rng.uniform(0.2, 0.45) * size
            angle = rng.uniform(0, 2 * np.pi)
            direction = np.array([np.cos(angle), np.sin(angle)])
            kind = int(rng.integers(3))
            if kind == 0:      # a straight stroke
                points = [start, start + length * direction]
            elif kind == 1:    # an arc
                sweep = rng.uniform(np.pi / 2, 1.2 * np.pi)
                t = angle + np.linspace(0, sweep, 24)
                points = list(start + length / 2 * np.stack([np.cos(t), np.sin(t)], 1))
            else:              # a hook: a stroke and a short turn at its end
                turn = angle + rng.choice([-1, 1]) * rng.uniform(np.pi / 3, np.pi * 2 / 3)
                end = start + length * direction
                points = [start, end, end + 0.3 * length * np.array([np.cos(turn), np.sin(turn)])]
            points = np.clip(np.array(points), 0.08 * size, 0.92 * size).astype(np.int32)
            cv2.polylines(frame, [points], False, 40, pen, cv2.LINE_AA)
        sketches.append(_as_sketch(frame, resolution))
    return sketches


def letters_like_a_visitor(resolution: int, text: str = "acqs35Z8") -> list[np.ndarray]:
    """Characters written large with a pen, one a sheet: shapes a visitor tries, which a
    model that answers only the placement of ink turns into one template. OpenCV draws
    filled glyphs, so each is thinned to its centre line and redrawn with the pen."""
    from skimage.morphology import skeletonize

    size = 4 * resolution
    pen = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (max(2, size // 64),) * 2)
    sketches = []
    for ch in text:
        glyph = np.zeros((size, size), np.uint8)
        scale = size / 40
        (w, h), _ = cv2.getTextSize(ch, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        cv2.putText(glyph, ch, ((size - w) // 2, (size + h) // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, 1)
        line = cv2.dilate(skeletonize(glyph > 127).astype(np.uint8), pen)
        frame = np.where(line > 0, 40, _table_frame(size)).astype(np.uint8)
        sketches.append(_as_sketch(frame, resolution))
    return sketches


# ---------------------------------------------------------------------------------------
# Measures (numpy, uint8 images: ink dark, paper light).


def ink_of(images: np.ndarray) -> np.ndarray:
    return images < 128


def near(mask: np.ndarray, radius: float) -> np.ndarray:
    """Pixels within `radius` of a True pixel of mask [R, R]."""
    if not mask.any():
        return np.zeros_like(mask)
    dist = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 3)
    return dist <= radius


def following(sketches: np.ndarray, drawings: np.ndarray) -> dict:
    """How the drawings of visitor sketches follow them (see the module docstring).

    "on": share of the sketch's line pixels with drawing ink within R/64 ("follow", the
    verdict's measure); "around": share of the drawing's ink within R/32 of the lines;
    "f_score" their harmonic mean (a tracing model scores high on it, a completing one
    lower). The same with every other sketch's drawing ("shuffled") is what a model scores
    that ignores the sketch, e.g. one that answers every stroke with the same blob.
    """
    r = sketches.shape[-1]
    lines, ink = ink_of(sketches), ink_of(drawings)
    on_tol, around_tol = max(1.0, r / 64), max(1.0, r / 32)
    near_lines = [near(m, around_tol) for m in lines]
    near_ink = [near(m, on_tol) for m in ink]

    def score(i: int, j: int) -> tuple[float, float, float]:
        on = float(near_ink[j][lines[i]].mean()) if lines[i].any() else 0.0
        around = float(near_lines[i][ink[j]].mean()) if ink[j].any() else 0.0
        return on, around, 2 * on * around / max(on + around, 1e-8)  # 0 for a blank drawing

    n = len(lines)
    matched = np.array([score(i, i) for i in range(n)])
    shuffled = np.array([np.mean([score(i, j) for j in range(n) if j != i], axis=0) for i in range(n)])
    return {"follow": float(matched[:, 0].mean()), "follow_shuffled": float(shuffled[:, 0].mean()),
            "on_strokes": float(matched[:, 0].mean()), "around_strokes": float(matched[:, 1].mean()),
            "f_score": float(matched[:, 2].mean()), "f_score_shuffled": float(shuffled[:, 2].mean()),
            "ink_fraction": float(ink.mean()), "kept": [float(v) for v in matched[:, 0]]}


def completion(sketches: np.ndarray, drawings: np.ndarray, meter, real_ink: float) -> dict:
    """Does the table complete first strokes into drawings (see the module docstring)?
    Medians over the sketches: `ink` of a collection drawing's median ink, `near` the
    nearest collection drawing over the collection's nearest-other distance, `keeps` the
    share of the sketch's lines the drawing covers; `distinct` of the collection's spread."""
    ink = ink_of(drawings).mean(axis=(1, 2)) / max(real_ink, 1e-8)
    near_collection = meter.nearest(drawings)
    follow = following(sketches, drawings)
    kept = np.array(follow["kept"])
    # "keeps_shuffled": lines another sketch's drawing covers; a dense drawing that covers
    # any strokes by chance keeps them as well as the strokes it was given
    return {"sketches": len(sketches), "ink": float(np.median(ink)), "near": float(np.median(near_collection)),
            "keeps": float(np.median(kept)), "keeps_mean": float(kept.mean()),
            "keeps_shuffled": follow["follow_shuffled"], "distinct": meter.distinct(drawings)}


def keeps_strokes(c: dict) -> bool:
    return (c["keeps"] >= TARGETS["completion_keeps"]
            and c["keeps_mean"] - c.get("keeps_shuffled", 0.0) >= TARGETS["follow_gain"])


def completes(c: dict) -> bool:
    return (c["ink"] >= TARGETS["completion_ink"] and c["near"] <= TARGETS["completion_near"]
            and keeps_strokes(c) and c["distinct"] >= TARGETS["distinct"])


def mse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image mean squared error in the networks' [-1, 1] range (uint8 inputs)."""
    return ((from_uint8(a) - from_uint8(b)) ** 2).reshape(len(a), -1).mean(1)


# ---------------------------------------------------------------------------------------
# The networks under test.


def load_networks(source: Path):
    """(generator, encoder or None, binarize params or None, description) from a bundle
    folder, a model checkpoint (.pt), an encoder run (model.pt), a GAN run (generator.pt)
    or a `train all` folder (its encoder, else its GAN)."""
    from inference.bundle import Bundle
    from inference.checkpoint import load_model_checkpoint

    source = Path(source)
    if (source / "bundle.json").is_file():
        from inference.torch_backend import TorchBackend
        bundle = Bundle.load(source, check_graphs=False)
        backend = TorchBackend(bundle, device="cpu")
        return backend.generator, backend.encoder, bundle.binarize_params(), f"bundle {source}"
    candidates = [source] if source.is_file() else [
        source / "model.pt", source / "encoder" / "model.pt", source / "generator.pt", source / "gan" / "generator.pt"]
    for path in candidates:
        if path.is_file():
            generator, encoder, _ = load_model_checkpoint(path)
            return generator, encoder, None, f"checkpoint {path}"
    raise FileNotFoundError(f"{source}: no bundle.json, model.pt or generator.pt here; pass a bundle, "
                            f"a checkpoint or a training run folder")


def find_dataset(source: Path, dataset: Path | None) -> Path:
    """The ingested collection to compare with: as given, else the run's own."""
    if dataset is not None:
        return Path(dataset)
    source = Path(source)
    for folder in (source / "dataset", source.parent / "dataset"):
        if (folder / "manifest.json").is_file():
            return folder
    raise FileNotFoundError(f"{source}: no dataset beside it; pass --dataset, the folder `newsnow train "
                            f"ingest` wrote for this collection")


# ---------------------------------------------------------------------------------------
# The report.


def optimise_wplus(generator, targets: np.ndarray, init, steps: int, lr: float) -> tuple[np.ndarray, torch.Tensor]:
    """W+ codes minimising the L2 to `targets` (uint8), all at once by Adam: their images
    (uint8) and the codes."""
    import torch

    from training.gan import to_uint8
    target = torch.from_numpy(from_uint8(targets))[:, None]
    w = init.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = (generator.synthesis(w, noise_mode="const") - target).square().mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return to_uint8(generator.synthesis(w, noise_mode="const")), w.detach()


COMPLETION_GROUPS = {"held_out": "first strokes of held-out collection drawings",
                     "visitor": "a visitor's first strokes"}


def verdicts(report: dict) -> list[str]:
    """Plain-word lines, one a target, that say whether the model is fit for the table;
    each starts with "pass" or "MISS" so the card's list reads at a glance."""
    lines = []

    def say(ok: bool, text: str) -> None:
        lines.append(f"{'pass' if ok else 'MISS'}: {text}")

    g, e = report["generator"], report.get("encoder")
    v = g["variety"]
    word = "varied" if v >= TARGETS["variety"] else "collapsed" if v < 0.5 else "variety low"
    # a low variety of samples with a high reach of W+ codes: the single-w space collapsed, not
    # what the synthesis network can draw for the encoder (docs/training.md)
    reach = (f"; W+ codes of {e['held_out']} held-out drawings reach {e['reach_optimum']:.2f} of what the "
             f"drawings do" if e and e.get("reach_optimum") is not None and v < TARGETS["variety"] else "")
    say(v >= TARGETS["variety"], f"generator {word}: variety {v:.2f} of the collection's "
                                 f"(target {TARGETS['variety']}){reach}")
    if "grey" in g:  # (reports written before it lack it)
        say(crisp(g), f"generator's lines {'clean' if crisp(g) else 'smudged'}: {g['grey']:.0%} of their ink is "
                      f"grey against the collection's {g['grey_real']:.0%} (target at most {TARGETS['grey']:g}x)")
    if not e:
        lines.append("MISS: no encoder: the encoder, completion and sketch-following were not measured")
        return lines
    gain, ratio = e["gain_over_mean"], e["vs_optimum"]
    if gain < 0.1:
        say(False, f"encoder no better than the collection's mean image: held-out MSE {e['mse']:.3f} "
                   f"vs {e['mean_image_mse']:.3f}")
    else:
        say(gain >= TARGETS["encoder_gain"], f"encoder on whole sketches: held-out MSE {e['mse']:.3f}, {gain:.0%} "
                                             f"below the mean image's {e['mean_image_mse']:.3f} "
                                             f"(target {TARGETS['encoder_gain']:.0%})")
    say(ratio <= TARGETS["encoder_vs_optimum"], f"encoder {ratio:.2f}x the W+ optimisation's error "
                                                f"(optimum MSE {e['optimum_mse']:.3f}; target within "
                                                f"{TARGETS['encoder_vs_optimum']:g}x)")
    for group, c in report.get("completion", {}).items():
        what = COMPLETION_GROUPS.get(group, group)
        figures = (f"its drawings hold {c['ink']:.0%} of a drawing's ink (target {TARGETS['completion_ink']:.0%}), "
                   f"lie {c['near']:.2f}x the collection's nearest-other distance from a collection drawing "
                   f"(target {TARGETS['completion_near']:g}x), keep {c['keeps']:.0%} of the lines (target "
                   f"{TARGETS['completion_keeps']:.0%}; another sketch's drawing {c.get('keeps_shuffled', 0):.0%}, "
                   f"target +{TARGETS['follow_gain']:.0%}), distinct {c['distinct']:.2f} (target {TARGETS['distinct']})")
        if completes(c):
            say(True, f"completes {what}: {figures}")
        elif c["ink"] < TARGETS["completion_ink"]:
            say(False, f"traces {what} instead of completing them: {figures}")
        elif c["near"] > TARGETS["completion_near"]:
            say(False, f"answers {what} with drawings unlike the collection's: {figures}")
        elif not keeps_strokes(c):
            say(False, f"drops or ignores the strokes of {what}: {figures}")
        else:
            say(False, f"answers different {what} with similar drawings: {figures}")
    for group, f in report["following"].items():
        say(follows(f), f"drawings {'follow' if follows(f) else 'do not follow'} the visitor's {group}: "
                        f"{f['follow']:.0%} of the lines have ink near them against {f['follow_shuffled']:.0%} with "
                        f"another sketch's drawing ({f['around_strokes']:.0%} of the ink is near the lines); "
                        f"targets {TARGETS['follow']:.0%}, +{TARGETS['follow_gain']:.0%}")
        d = f["distinct"]
        say(d >= TARGETS["distinct"], f"different {group} get {'different' if d >= TARGETS['distinct'] else 'similar'} "
                                      f"drawings: distinct {d:.2f} of the collection's spread "
                                      f"(target {TARGETS['distinct']})")
    return lines


def follows(f: dict) -> bool:
    return f["follow"] >= TARGETS["follow"] and f["follow"] - f["follow_shuffled"] >= TARGETS["follow_gain"]


def crisp(generator: dict) -> bool:
    """Its samples drawn in lines, not grey smudges (reports written before the grey share pass)."""
    return "grey" not in generator or drawn_in_lines(generator["grey"], generator["grey_real"])


def fit_for_table(report: dict) -> bool:
    e, f = report.get("encoder"), report.get("following")
    return bool(e and report["generator"]["variety"] >= TARGETS["variety"] and crisp(report["generator"])
                and e["gain_over_mean"] >= TARGETS["encoder_gain"]
                and e["vs_optimum"] <= TARGETS["encoder_vs_optimum"]
                and all(completes(c) for c in report.get("completion", {}).values())
                and all(follows(g) and g["distinct"] >= TARGETS["distinct"] for g in f.values()))


def _encode(generator, encoder, sketches: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
    """The drawings (uint8) and W+ codes the model gives `sketches`, as the table runs it."""
    import torch

    from training.gan import to_uint8
    drawings, codes = [], []
    with torch.no_grad():
        for i in range(0, len(sketches), 64):
            w = encoder(torch.from_numpy(from_uint8(sketches[i:i + 64]))[:, None]) + generator.w_avg
            codes.append(w)
            drawings.append(to_uint8(generator.synthesis(w, noise_mode="const")))
    return np.concatenate(drawings), torch.cat(codes)


def held_out_first_strokes(data: Path, count: int, resolution: int, seed: int) -> list[tuple[np.ndarray, list]]:
    """Up to `count` held-out drawings, each with its partial drawings or sketches for k = 1,
    2, 3, ..., n: [(drawing, [(k, n, partial drawing or None, partial sketch or None)])].
    With stroke order the partials are drawings (sketched by the caller); without, pen
    pieces of the drawing's sketch in a random order."""
    from training.ingest import load_manifest
    from training.partial import StrokeOrder, pen_pieces, first_pieces
    from training.sketches import SketchSettings, default_binarize, make_sketch

    manifest = load_manifest(data)
    order = StrokeOrder.of_dataset(data)
    fit = manifest["settings"].get("fit", "crop")
    result = []
    held = [r for r in manifest["images"] if r["split"] == "validation"]
    # a seeded choice, not the first ones: the manifest's order is the files' names, and the
    # first KanjiVG names are Latin letters and kana, not kanji
    pick = np.random.default_rng(seed).choice(len(held), min(count, len(held)), replace=False)
    for record in [held[i] for i in pick]:
        drawing = cv2.imread(str(Path(data) / record["file"]), cv2.IMREAD_GRAYSCALE)
        n = order.strokes(record.get("source", "")) if order else 0
        if n:
            drawn = order.first_strokes(record["source"], list(range(1, n + 1)), resolution, fit)
            steps = [(k, n, drawn[k], None) for k in range(1, n + 1)]
        else:
            whole = make_sketch(drawing, SketchSettings(), default_binarize(resolution))
            pieces = pen_pieces(whole)
            steps = [(k, len(pieces), None, first_pieces(whole, k, np.random.default_rng([seed, k]), pieces))
                     for k in range(1, len(pieces) + 1)]
        if steps:
            result.append((drawing, steps))
    return result


def _sketch_over(sketch: np.ndarray, drawing: np.ndarray) -> np.ndarray:
    """The table's answer, lightened, with the visitor's lines over it in black."""
    light = (255 - (255 - drawing.astype(np.float32)) * 0.45).astype(np.uint8)
    return np.where(sketch < 128, 0, light).astype(np.uint8)


def evaluate(source: Path, out: Path, dataset: Path | None = None, settings: ReportSettings | None = None,
             inception: Path | None = None, progress=None) -> dict:
    """Measure the model at `source` against its collection; write OUT/report.json and
    OUT/contact_sheet.png; return the report. `progress(text)` hears each part begin."""
    import torch

    from training.gan import grid_image, to_uint8
    from training.ingest import load_images
    from training.metrics import gan_metrics
    from training.sketches import SketchSettings, default_binarize, labelled, make_sketch
    from training.variety import VarietyMeter

    say = progress or log.info
    settings = settings or ReportSettings()
    generator, encoder, params, what = load_networks(source)
    data = find_dataset(source, dataset)
    r = generator.resolution
    train, held = load_images(data, "train"), load_images(data, "validation")
    if train.shape[-1] != r:
        raise ValueError(f"{data}: drawings are {train.shape[-1]} px, the model {r} px; pass the model's --dataset")
    say(f"report: generator variety on {settings.samples} samples")
    meter = VarietyMeter(train, count=settings.real, seed=settings.seed)
    torch.manual_seed(settings.seed)
    with torch.no_grad():
        z = torch.randn(settings.samples, generator.z_dim)
        fake = np.concatenate([to_uint8(generator(z[i:i + 64], noise_mode="const"))
                               for i in range(0, len(z), 64)])
        w = generator.mapping(z[:64])
        noise_change = float(np.sqrt(mse(to_uint8(generator.synthesis(w, noise_mode="random")),
                                          to_uint8(generator.synthesis(w, noise_mode="const"))).mean()))
    real_ink = float(np.median(ink_of(meter.reference).mean(axis=(1, 2))))
    report = {"model": what, "dataset": str(data), "resolution": r, "settings": asdict(settings),
              "targets": TARGETS,
              "generator": {**meter.measure(fake), "noise_rms": noise_change,
                            "ink_fraction_sample": float(ink_of(fake).mean()),
                            "ink_fraction_real": float(ink_of(meter.reference).mean())}}
    rows = [("generator samples", fake[:16])]
    if encoder is not None:
        params = params or default_binarize(r)
        sketch_of = lambda d: make_sketch(d, SketchSettings(), params)  # noqa: E731
        say(f"report: the encoder on {min(settings.held_out, len(held))} held-out drawings, and "
            f"{settings.inversion_steps} steps of W+ optimisation for comparison")
        # a seeded choice (the first held-out files by name are letters and kana, not kanji)
        targets = held[np.random.default_rng(settings.seed).choice(
            len(held), min(settings.held_out, len(held)), replace=False)]
        sketches = np.stack([sketch_of(d) for d in targets])
        encoded, codes = _encode(generator, encoder, sketches)
        optimum, _ = optimise_wplus(generator, targets, codes, settings.inversion_steps, settings.inversion_lr)
        mean_image = np.broadcast_to(train.astype(np.float32).mean(0).round().astype(np.uint8), targets.shape)
        enc, base, best = (float(mse(x, targets).mean()) for x in (encoded, mean_image, optimum))
        held_reach = meter.measure(targets)["coverage"]

        def reach(images: np.ndarray) -> float | None:
            """Of what the held-out drawings reach of the collection, what `images` reach: the
            synthesis network's range apart from its random samples (None where the few
            held-out drawings reach none of the reference drawings)."""
            return meter.measure(images)["coverage"] / held_reach if held_reach else None

        report["encoder"] = {"held_out": len(targets), "mse": enc, "mean_image_mse": base, "optimum_mse": best,
                             "gain_over_mean": 1 - enc / base, "vs_optimum": enc / max(best, 1e-8),
                             "reach_optimum": reach(optimum), "reach_answers": reach(encoded)}
        rows.append(("held-out drawings: sketch | encoder | W+ optimum | real, two a row",
                     np.stack([im for i in range(min(8, len(targets)))
                               for im in (sketches[i], encoded[i], optimum[i], targets[i])])))

        say(f"report: completion of the first 1-3 strokes of {settings.completion_drawings} held-out drawings "
            f"and of {settings.visitor_first_strokes} visitor-like first strokes")
        made = held_out_first_strokes(data, settings.completion_drawings, r, settings.seed)
        firsts = [sketch if sketch is not None else sketch_of(partial)
                  for _, steps in made for k, n, partial, sketch in steps if k <= 3 and k < n]
        visitor_firsts = first_strokes_like_a_visitor(r, settings.visitor_first_strokes, settings.seed)
        report["completion"] = {}
        for group, group_sketches in (("held_out", firsts), ("visitor", visitor_firsts)):
            if group_sketches:
                group_sketches = np.stack(group_sketches)
                answers, _ = _encode(generator, encoder, group_sketches)
                report["completion"][group] = completion(group_sketches, answers, meter, real_ink)
        shown = next((steps for _, steps in made if 4 <= len(steps) <= 8), made[0][1] if made else None)
        if shown:
            steps = [sketch if sketch is not None else sketch_of(partial) for _, _, partial, sketch in shown]
            answers, _ = _encode(generator, encoder, np.stack(steps))
            rows.append(("one held-out drawing made stroke by stroke: the sketch (black) over the table's answer",
                         np.stack([_sketch_over(s_, a) for s_, a in zip(steps, answers)])))
        if visitor_firsts:
            answers, _ = _encode(generator, encoder, np.stack(visitor_firsts[:8]))
            rows.append(("a visitor's first 1, 2, 3 strokes: sketch | drawing",
                         np.stack([im for pair in zip(visitor_firsts[:8], answers) for im in pair])))

        say("report: sketch-following on visitor-like strokes and letters")
        visitor = np.stack(strokes_like_a_visitor(r, 8, seed=settings.seed) + letters_like_a_visitor(r))
        answers, _ = _encode(generator, encoder, visitor)
        report["following"] = {}
        for group, part in (("strokes", slice(0, 8)), ("letters", slice(8, None))):
            follow = following(visitor[part], answers[part])
            follow.pop("kept")
            follow["distinct"] = meter.distinct(answers[part])
            report["following"][group] = follow
        rows.append(("fixed test strokes and letters (visitor-like): sketch | drawing",
                     np.stack([im for pair in zip(visitor, answers) for im in pair])))
    metrics = gan_metrics(inception, meter.reference, fake)
    report["fid_kid"] = metrics
    report["verdicts"] = verdicts(report)
    report["fit_for_table"] = fit_for_table(report)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sheet = np.concatenate([labelled(cv2.resize(grid_image(tiles, 8), None, fx=2, fy=2,
                                                 interpolation=cv2.INTER_NEAREST), title)
                            for title, tiles in rows])
    atomic_write_png(out / "contact_sheet.png", sheet)
    atomic_write_json(out / "report.json", report)
    return report
