"""The demo collection: KanjiVG's hand-made stroke drawings rendered as brush-ink drawings.

The `kanjivg` PyPI package ships ~11.7k SVG files (CC BY-SA 3.0, Ulrich Apel and the
KanjiVG contributors, http://kanjivg.tagaini.net), one `<path>` per stroke in a
109 x 109 box. Each stroke is sampled along its length and inked with a width that
follows a brush's pressure (a press at the start, a swell, a taper at the end), with a
little jitter of the whole character and of each stroke, dark ink on white paper.
The renders are ordinary PNG files: `newsnow train ingest` treats them like scans.
Beside them, training.partial.STROKE_ORDER records which SVG and random stream each file
came from, so that training and the report can draw a character's first k strokes again.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
from svg.path import Close, CubicBezier, Line, Move, QuadraticBezier, parse_path

log = logging.getLogger(__name__)

LICENCE = "CC BY-SA 3.0"
CREDIT = ("KanjiVG (c) Ulrich Apel and the KanjiVG contributors, http://kanjivg.tagaini.net, "
          "distributed under CC BY-SA 3.0 (PyPI package `kanjivg`)")
VIEWBOX = 109.0          # KanjiVG draws every character in a 109 x 109 box
SUPERSAMPLE = 4          # render larger, then area-downsample: smooth edges and widths
_SVG = "{http://www.w3.org/2000/svg}"


class CollectionError(ValueError):
    """The KanjiVG files cannot be found or read."""


def svg_folder() -> Path:
    """The folder of KanjiVG SVG files installed by the `kanjivg` package."""
    spec = importlib.util.find_spec("kanji")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        if any(Path(folder).glob("*.svg")):
            return Path(folder)
    raise CollectionError("KanjiVG SVG files not found: install the training extra "
                          "(pip install -e '.[train]'), which brings the `kanjivg` package")


def _sample(segment, step: float) -> np.ndarray | None:
    """Points along one path segment, about `step` units apart (numpy Bezier evaluation:
    svg.path's own arc-length routines are too slow for 11k files)."""
    if isinstance(segment, Move):
        return None
    if isinstance(segment, (Line, Close)):
        control = [segment.start, segment.end]
    elif isinstance(segment, QuadraticBezier):
        control = [segment.start, segment.control, segment.end]
    elif isinstance(segment, CubicBezier):
        control = [segment.start, segment.control1, segment.control2, segment.end]
    else:  # arcs: KanjiVG does not use them
        raise CollectionError(f"unsupported SVG path segment {type(segment).__name__}")
    c = np.array([[z.real, z.imag] for z in control])
    polygon = np.linalg.norm(np.diff(c, axis=0), axis=1).sum()  # >= the curve's length
    if polygon == 0:
        return None
    t = np.linspace(0.0, 1.0, max(2, int(np.ceil(polygon / step)) + 1))[:, None]
    degree = len(c) - 1
    coeff = [1, 1] if degree == 1 else [1, 2, 1] if degree == 2 else [1, 3, 3, 1]
    return sum(coeff[i] * t ** i * (1 - t) ** (degree - i) * c[i] for i in range(degree + 1))


def strokes(svg_file: Path, step: float = 0.5) -> list[np.ndarray]:
    """The strokes of one KanjiVG file as (N, 2) point arrays in the 109-unit box,
    sampled about every `step` units along each path."""
    try:
        root = ET.parse(svg_file).getroot()
    except (ET.ParseError, OSError) as exc:
        raise CollectionError(f"{svg_file}: not a readable SVG file ({exc})") from exc
    result = []
    for element in root.iter(f"{_SVG}path"):
        d = element.get("d")
        if not d:
            continue
        pieces = []
        for segment in parse_path(d):
            piece = _sample(segment, step)
            if piece is not None:
                pieces.append(piece if not pieces else piece[1:])
        if pieces:
            points = np.concatenate(pieces)
            if len(points) >= 2:
                result.append(points)
    if not result:
        raise CollectionError(f"{svg_file}: no stroke paths in this SVG file")
    return result


def _pressure(s: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Relative stroke width along normalised arc length s: press, swell, taper."""
    press = np.clip(s / rng.uniform(0.04, 0.12), 0.0, 1.0) ** 0.5
    taper = 1.0 - rng.uniform(0.4, 0.8) * np.clip((s - 0.65) / 0.35, 0.0, 1.0) ** 1.5
    wobble = 1.0 + rng.uniform(0.05, 0.15) * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * s
                                                     + rng.uniform(0, 2 * np.pi))
    return np.maximum(0.25, (0.35 + 0.65 * press) * taper * wobble)


def _smooth_noise(n: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """(n, 2) low-frequency offsets: a hand does not shake at every sample."""
    noise = rng.normal(0.0, 1.0, size=(n, 2))
    kernel = np.hanning(min(31, n if n % 2 else n - 1))
    kernel /= kernel.sum()
    smooth = np.stack([np.convolve(noise[:, i], kernel, mode="same") for i in range(2)], axis=1)
    peak = np.abs(smooth).max() or 1.0
    return smooth / peak * scale


def render(stroke_list: list[np.ndarray], size: int, rng: np.random.Generator,
           width: tuple[float, float] = (3.0, 6.0)) -> np.ndarray:
    """One character as a uint8 size x size ink drawing (paper 255, ink dark).

    `width` is the range of the brush's full width in KanjiVG units (109 = the image).
    """
    big = size * SUPERSAMPLE
    scale = big / VIEWBOX
    # Whole-character jitter: a small rotation, scale, shear and shift about the centre.
    angle = np.deg2rad(rng.uniform(-4, 4))
    zoom = rng.uniform(0.85, 1.02)
    shear = rng.uniform(-0.06, 0.06)
    affine = zoom * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    affine = affine @ np.array([[1.0, shear], [0.0, 1.0]])
    shift = rng.uniform(-4, 4, size=2)
    centre = np.array([VIEWBOX / 2, VIEWBOX / 2])
    base_width = rng.uniform(*width)
    canvas = np.full((big, big), 255.0, dtype=np.float32)
    for points in stroke_list:
        points = (points - centre) @ affine.T + centre + shift + rng.uniform(-1, 1, size=2)
        points = points + _smooth_noise(len(points), rng.uniform(0.2, 0.8), rng)
        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
        s = arc / (arc[-1] or 1.0)
        radii = 0.5 * base_width * _pressure(s, rng) * scale
        ink = float(rng.uniform(0, 45))
        layer = np.zeros((big, big), dtype=np.uint8)
        pixels = np.round(points * scale * 16).astype(np.int32)  # 4 fractional bits
        for i in range(len(points)):
            cv2.circle(layer, tuple(int(v) for v in pixels[i]), int(round(radii[i] * 16)),
                       255, -1, cv2.LINE_AA, 4)
        alpha = layer.astype(np.float32) / 255.0
        canvas = canvas * (1 - alpha) + np.minimum(canvas, ink) * alpha
    small = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    return np.clip(np.round(small), 0, 255).astype(np.uint8)


def render_collection(out: Path, size: int = 256, count: int | None = None, seed: int = 0,
                      width: tuple[float, float] = (3.0, 6.0),
                      max_strokes: int | None = None) -> list[Path]:
    """Render `count` KanjiVG characters (all when None; a seeded shuffle of the files)
    as PNG files in `out`; returns the written files. `max_strokes` keeps only simpler
    characters, which read better at small resolutions."""
    if size < 16:
        raise CollectionError(f"size {size}: render at 16 px or more")
    files = sorted(svg_folder().glob("*.svg"))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(files))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written, drawings = [], {}
    for index in order:
        if count is not None and len(written) >= count:
            break
        svg_file = files[index]
        try:
            character = strokes(svg_file)
        except CollectionError as exc:
            log.warning("skipped %s", exc)
            continue
        if max_strokes is not None and len(character) > max_strokes:
            continue
        image = render(character, size, np.random.default_rng([seed, int(index)]), width)
        path = out / f"kanjivg_{svg_file.stem}.png"
        cv2.imwrite(str(path), image)
        written.append(path)
        drawings[path.name] = {"svg": svg_file.stem, "index": int(index), "strokes": len(character)}
        if len(written) % 1000 == 0:
            log.info("rendered %d", len(written))
    from storage import atomic_write_json
    from training.partial import STROKE_ORDER
    atomic_write_json(out / STROKE_ORDER, {"size": size, "seed": seed, "width": list(width), "drawings": drawings},
                      indent=None)
    return written
