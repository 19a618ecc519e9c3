"""Part of a drawing, as a visitor's sheet is for most of the time they spend at the table.

Two ways to get the first strokes of a drawing:

- With stroke order (the KanjiVG renders): the first k of its n strokes, rendered as the
  whole drawing was (the renderer draws its random numbers stroke by stroke, so the first k
  strokes come out exactly as they are in the whole drawing). `train kanjivg` writes
  STROKE_ORDER beside the renders; `ingest` keeps each file's source name.
- Without (scanned collections, generated drawings): the sketch's own lines cut into pieces
  a pen would draw in one go (connected lines, long ones cut into pen-length segments along
  the line), put in a random order; the first k pieces are kept with their original pen.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

STROKE_ORDER = "stroke_order.json"


@dataclass(frozen=True)
class StrokeOrder:
    """The renders of a KanjiVG collection: which SVG and which random stream each file
    was drawn from, so that its first k strokes can be drawn again."""
    folder: Path
    size: int
    seed: int
    width: tuple[float, float]
    drawings: dict  # source file name -> {"svg": stem, "index": int, "strokes": n}

    @classmethod
    def of_renders(cls, folder: Path) -> "StrokeOrder | None":
        path = Path(folder) / STROKE_ORDER
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text())
            return cls(Path(folder), int(record["size"]), int(record["seed"]), tuple(record["width"]),
                       dict(record["drawings"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a readable stroke order ({exc}); render the collection again "
                             f"with `newsnow train kanjivg`") from exc

    @classmethod
    def of_dataset(cls, dataset: Path) -> "StrokeOrder | None":
        """The stroke order of an ingested collection's source folder, where it has one."""
        from training.ingest import load_manifest
        source = load_manifest(dataset).get("source")
        return cls.of_renders(Path(source)) if source and Path(source).is_dir() else None

    def strokes(self, source: str) -> int:
        """How many strokes the drawing from `source` has (0: not in this collection)."""
        return int(self.drawings.get(source, {}).get("strokes", 0))

    def first_strokes(self, source: str, k: int, resolution: int, fit: str = "crop") -> np.ndarray:
        """uint8 [R, R]: the drawing of `source` with only its first k strokes, brought to
        the dataset's resolution as `ingest` brought the whole one."""
        from training.collections.kanjivg import render, strokes, svg_folder
        from training.ingest import square
        entry = self.drawings[source]
        character = strokes(svg_folder() / f"{entry['svg']}.svg")
        rng = np.random.default_rng([self.seed, int(entry["index"])])
        return square(render(character[:k], self.size, rng, self.width), resolution, fit)


def stroke_counts(k_total: int, share: float, rng: np.random.Generator) -> list[int]:
    """Which first-k partials of an n-stroke drawing to make for a share `share` of partial
    pairs: round(share / (1 - share)) of the n - 1 partial counts (all of them when that is
    as many), the first stroke always among them (a visitor's first answer matters most)."""
    n_partial = k_total - 1
    if n_partial < 1 or share <= 0:
        return []
    wanted = n_partial if share >= 1 else min(n_partial, round(share / (1 - share)))
    if wanted >= n_partial:
        return list(range(1, k_total))
    rest = rng.choice(np.arange(2, k_total), size=wanted - 1, replace=False) if wanted > 1 else []
    return sorted([1, *map(int, rest)])


def _ordered_line(pixels: set[tuple[int, int]]) -> list[tuple[int, int]]:
    """The pixels of one connected thin line in the order a pen would pass them: depth
    first from an end (a pixel with one neighbour), else from any pixel (a loop), so a
    run of the order follows one branch to its end before the next."""
    def neighbours(p):
        y, x = p
        return [(y + dy, x + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                if (dy or dx) and (y + dy, x + dx) in pixels]
    start = min((p for p in pixels if len(neighbours(p)) == 1), default=min(pixels))
    order, seen, stack = [], set(), [start]
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        order.append(p)
        # 4-neighbours last on the stack, so taken first: the line, not its corners
        stack.extend(sorted((q for q in neighbours(p) if q not in seen),
                            key=lambda q: abs(q[0] - p[0]) + abs(q[1] - p[1]), reverse=True))
    return order


def pen_pieces(sketch: np.ndarray, pen_length: int | None = None) -> list[np.ndarray]:
    """The sketch's lines as pieces a pen draws in one go: bool [R, R] masks of centre-line
    pixels, one per connected line, lines longer than `pen_length` px (default R / 3) cut
    into segments of about that length along the line."""
    from skimage.morphology import skeletonize
    r = sketch.shape[-1]
    pen_length = pen_length or max(8, r // 3)
    centre = skeletonize(sketch < 128).astype(np.uint8)
    count, labels = cv2.connectedComponents(centre, connectivity=8)
    pieces = []
    for label in range(1, count):
        ys, xs = np.nonzero(labels == label)
        order = _ordered_line(set(zip(ys.tolist(), xs.tolist())))
        n_segments = max(1, round(len(order) / pen_length))
        for segment in np.array_split(np.array(order), n_segments):
            mask = np.zeros((r, r), bool)
            mask[segment[:, 0], segment[:, 1]] = True
            pieces.append(mask)
    return pieces


def keep_pieces(sketch: np.ndarray, pieces: list[np.ndarray], keep: list[int]) -> np.ndarray:
    """The sketch with only the lines of `pieces[keep]`, each drawn with its original pen
    (the sketch's own ink around those centre lines)."""
    r = sketch.shape[-1]
    centre = np.zeros((r, r), np.uint8)
    for i in keep:
        centre |= pieces[i].astype(np.uint8)
    reach = 2 * max(2, round(r / 24)) + 1  # wider than any pen of the sketches (about R / 48)
    around = cv2.dilate(centre, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (reach, reach))) > 0
    return np.where(around & (sketch < 128), sketch, 255).astype(np.uint8)


def first_pieces(sketch: np.ndarray, k: int, rng: np.random.Generator,
                 pieces: list[np.ndarray] | None = None) -> np.ndarray:
    """The sketch as if only k of its pen pieces had been drawn yet, in a random order."""
    pieces = pen_pieces(sketch) if pieces is None else pieces
    order = rng.permutation(len(pieces))
    return keep_pieces(sketch, pieces, sorted(order[:k].tolist()))
