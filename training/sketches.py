"""Generated drawings -> (sketch, drawing) pairs for the pSp encoder (`newsnow train sketches`).

For each drawing x = G(z) the sketch is made in three steps:

1. the pSp "pencil sketch" filter (pixel2style2pixel's generate_sketch_data): grayscale,
   3x3 Gaussian blur, Sobel edges of the image and of its inverse (each Sobel_x OR
   Sobel_y, 8 bit, ksize 3), blended 0.75 / 0.75 and inverted: dark outlines on white;
2. a classical simplification (in place of Simo-Serra et al.'s network, whose weights
   are not available): threshold the outlines, keep those beside the drawing's ink (so
   soft shading does not turn into a maze), thin them to one-pixel skeletons
   (scikit-image), drop components shorter than `min_length` pixels, and redraw the
   skeleton with a pen of `line_width` pixels, so the lines look like a felt pen's;
3. `capture.binarize.binarize`, the function the table applies to camera frames, with
   its parameters written into the pairs' manifest (and later into the bundle).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from skimage.morphology import remove_small_holes, remove_small_objects, skeletonize

from capture.binarize import BinarizeParams, binarize, ink_fraction
from storage import atomic_write_json, atomic_write_png

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
CODES = "codes.npy"   # W+ codes of the pairs' drawings (generated, or found), float16 [N, num_ws, w_dim]
PAIRS_FORMAT = "newsnow-pairs"


def generator_fingerprint(generator) -> str:
    """A short hash of the synthesis weights: W+ codes mean something for one generator only."""
    import hashlib
    digest = hashlib.sha256()
    for name, tensor in sorted(generator.synthesis.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def check_codes_generator(pairs: Path, manifest: dict, generator) -> None:
    """Refuse to teach codes found for another generator (manifests that name none pass)."""
    made_for = manifest.get("codes_generator")
    if manifest.get("codes") and made_for and made_for != generator_fingerprint(generator):
        raise ValueError(f"{Path(pairs) / MANIFEST}: its W+ codes (codes.npy) belong to another generator than "
                         f"the one given; train the encoder with the generator the pairs were made with "
                         f"({manifest.get('generator')}), or make the pairs and codes again for this one")


@dataclass(frozen=True)
class SketchSettings:
    edge_threshold: int = 40    # pencil-sketch darkness (of 255) that counts as a line
    min_length: int = 6         # skeleton components with fewer pixels are dropped
    line_width: int = 0         # pen width in sketch px; 0: about R / 48 (2 px at 64)
    width_jitter: int = 1       # each sketch's pen is line_width +- this (>= 1 px)
    min_ink: float = 0.002      # sketches with less ink (share of pixels) are dropped
    darkest_paper: int = 170    # drawing pixels lighter than this are never ink

    def width_for(self, resolution: int) -> int:
        return self.line_width or max(2, round(resolution / 48))


def pencil_sketch(gray: np.ndarray) -> np.ndarray:
    """pSp's pencil-sketch filter: uint8 gray -> uint8 sketch (dark outlines on white)."""
    blur = cv2.GaussianBlur(gray, (3, 3), 0)

    def sobel(image: np.ndarray) -> np.ndarray:
        x = cv2.Sobel(image, cv2.CV_8U, 1, 0, ksize=3)
        y = cv2.Sobel(image, cv2.CV_8U, 0, 1, ksize=3)
        return cv2.bitwise_or(x, y)

    edges = cv2.bitwise_or(sobel(blur), sobel(255 - blur))
    blended = cv2.addWeighted(edges, 0.75, edges, 0.75, 0)
    return 255 - blended


def ink_mask(drawing: np.ndarray, darkest_paper: int) -> np.ndarray:
    """Where the drawing has ink: darker than Otsu's split and than `darkest_paper`
    (a sheet with no ink has one mode, which Otsu would split in two)."""
    blur = cv2.GaussianBlur(drawing, (3, 3), 0)
    otsu, _ = cv2.threshold(blur, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return blur <= min(otsu, darkest_paper)


def simplify(pencil: np.ndarray, settings: SketchSettings, width: int,
             drawing: np.ndarray | None = None) -> np.ndarray:
    """Pencil outlines -> clean pen lines of `width` px: threshold, keep the outlines that
    touch the drawing's ink (soft shading and paper texture give outlines too), thin,
    drop short bits, redraw with a round pen. uint8, ink 0, paper 255."""
    lines = pencil < 255 - settings.edge_threshold
    if drawing is not None:
        near_ink = cv2.dilate(ink_mask(drawing, settings.darkest_paper).astype(np.uint8), np.ones((3, 3), np.uint8))
        lines &= near_ink.astype(bool)
    # The two outlines of a thick stroke enclose a sliver: fill it, or thinning leaves a loop.
    lines = remove_small_holes(lines, max_size=max(2, round(6 * (lines.shape[0] / 64) ** 2)))
    skeleton = skeletonize(lines)
    if settings.min_length > 1:
        skeleton = remove_small_objects(skeleton, max_size=settings.min_length - 1, connectivity=2)
    pen = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (width, width))
    ink = cv2.dilate(skeleton.astype(np.uint8), pen)
    return np.where(ink > 0, 0, 255).astype(np.uint8)


def make_sketch(drawing: np.ndarray, settings: SketchSettings, params: BinarizeParams,
                width: int | None = None) -> np.ndarray:
    """One drawing (uint8 R x R) -> its training sketch through the runtime binarizer."""
    width = width or settings.width_for(params.resolution)
    return binarize(simplify(pencil_sketch(drawing), settings, width, drawing), params)


def default_binarize(resolution: int) -> BinarizeParams:
    """The table's binarizer at the model resolution (window and flat field fit R)."""
    return BinarizeParams(resolution=resolution, window=min(15, resolution // 4 | 1),
                          flat_field=min(32, resolution // 2))


def contact_sheet(left: list[np.ndarray], right: list[np.ndarray], columns: int = 4,
                  scale: int = 2) -> np.ndarray:
    """Side-by-side (left | right) pairs in a grid, each tile enlarged `scale` times."""
    r = left[0].shape[0] * scale
    n = len(left)
    rows = math.ceil(n / columns)
    sheet = np.full((rows * (r + 4) + 4, columns * (2 * r + 8) + 4), 160, dtype=np.uint8)
    for k, (a, b) in enumerate(zip(left, right)):
        y, x = divmod(k, columns)
        y0, x0 = 4 + y * (r + 4), 4 + x * (2 * r + 8)
        sheet[y0:y0 + r, x0:x0 + r] = cv2.resize(a, (r, r), interpolation=cv2.INTER_NEAREST)
        sheet[y0:y0 + r, x0 + r + 1:x0 + 2 * r + 1] = cv2.resize(b, (r, r), interpolation=cv2.INTER_NEAREST)
    return sheet


def labelled(sheet: np.ndarray, title: str, height: int = 18) -> np.ndarray:
    """`sheet` under a white band that says what its rows are."""
    band = np.full((height, sheet.shape[1]), 255, dtype=np.uint8)
    cv2.putText(band, title, (4, height - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, 0, 1, cv2.LINE_AA)
    return np.vstack([band, sheet])


def make_pairs(run: Path, out: Path, count: int, settings: SketchSettings = SketchSettings(),
               params: BinarizeParams | None = None, truncation: float = 1.0, validation: float = 0.05,
               batch: int = 32, seed: int = 0, collection: Path | None = None,
               collection_count: int = 0, partial_share: float = 0.75,
               mapping_lr_multiplier: float | None = None) -> dict:
    """Sample `count` drawings from the GAN run's EMA generator (or a generator file trained
    elsewhere) and write their pairs.

    Each drawing gives a whole pair (its whole sketch) and, for a share `partial_share` of
    all pairs, partial pairs: part of the sketch as input, the WHOLE drawing as target, so
    the encoder learns to complete a visitor's first strokes instead of tracing them
    (training.partial: a KanjiVG collection's first k strokes as drawn, else pen pieces of
    the sketch in a random order). A generated drawing's W+ code is stored (CODES, the
    entry's "code" row) for the encoder's latent loss.

    With `collection` (a dataset from `ingest`), up to `collection_count` of its own
    drawings are added the same way (train split -> train pairs, validation -> validation),
    as pSp trains on real pairs: the encoder then also learns to reach the collection's
    drawings, which matters when a short-trained generator samples little variety.
    """
    import torch

    from training.gan import to_uint8
    from training.imports.generators import generator_source
    from training.partial import StrokeOrder, first_pieces, pen_pieces, stroke_counts

    if not 0 <= partial_share < 1:
        raise ValueError(f"sketches: partial share {partial_share} must be in [0, 1) (the rest are whole sketches)")
    run, out = Path(run), Path(out)
    # run: a GAN run folder, or a generator file trained elsewhere (training.imports.generators)
    source = generator_source(run, mapping_lr_multiplier)
    generator, meta = source.generator, source.meta
    r = generator.resolution
    params = params or default_binarize(r)
    if params.resolution != r:
        raise ValueError(f"sketches: binarize resolution {params.resolution} is not the generator's {r}")
    for sub in ("drawings", "sketches"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    z_source = torch.Generator().manual_seed(seed)
    width = settings.width_for(r)
    entries, codes = [], []
    counts = {"drawings": 0, "dropped_blank": 0, "partial": 0}
    partials_per_whole = round(partial_share / (1 - partial_share)) if partial_share else 0

    def add_drawing(drawing: np.ndarray, record: dict, partial_drawings: dict[str, np.ndarray]) -> bool:
        """Write `drawing` once and a pair for its whole sketch and for each partial drawing
        (by name, e.g. "3/7") or, without them, for pen pieces of the whole sketch; False
        when the whole sketch is blank."""
        pen = max(1, width + int(rng.integers(-settings.width_jitter, settings.width_jitter + 1)))
        whole = make_sketch(drawing, settings, params, pen)
        if ink_fraction(whole) < settings.min_ink:
            counts["dropped_blank"] += 1
            return False
        name = f"{counts['drawings']:06d}.png"
        counts["drawings"] += 1
        atomic_write_png(out / "drawings" / name, drawing)
        parts = [("whole", whole)]
        if partial_drawings:
            parts += [(part, make_sketch(d, settings, params, pen)) for part, d in partial_drawings.items()]
        elif partials_per_whole:
            pieces = pen_pieces(whole)
            parts += [(f"{k}/{len(pieces)}", first_pieces(whole, k, rng, pieces))
                      for k in stroke_counts(len(pieces), partial_share, rng)]
        for part, sketch in parts:
            if ink_fraction(sketch) < settings.min_ink:  # a dot too small to survive the binarizer
                continue
            sketch_name = f"{len(entries):06d}.png"
            atomic_write_png(out / "sketches" / sketch_name, sketch)
            entries.append({"drawing": f"drawings/{name}", "sketch": f"sketches/{sketch_name}", "pen": pen,
                            "part": part, **record})
            counts["partial"] += part != "whole"
        return True

    n_val = int(round(count * validation))
    while counts["drawings"] < count:
        z = torch.randn(batch, generator.z_dim, generator=z_source)
        with torch.no_grad():
            ws = generator.mapping(z, truncation_psi=truncation)
            drawings = to_uint8(generator.synthesis(ws, noise_mode="const"))
        for w, drawing in zip(ws.numpy(), drawings):
            if counts["drawings"] >= count:
                break
            split = "validation" if counts["drawings"] >= count - n_val else "train"
            if add_drawing(drawing, {"split": split, "source": "generated", "code": len(codes)}, {}):
                codes.append(w.astype(np.float16))
            elif counts["dropped_blank"] > 10 * count + 100:
                raise ValueError(f"sketches: the generator in {run} draws (almost) nothing; "
                                 f"train the GAN longer or lower --edge-threshold")
    if collection is not None and collection_count > 0:
        from training.ingest import load_manifest
        dataset = load_manifest(collection)
        order = StrokeOrder.of_dataset(collection)
        for record in dataset["images"][:collection_count]:
            drawing = cv2.imread(str(Path(collection) / record["file"]), cv2.IMREAD_GRAYSCALE)
            if drawing is None or drawing.shape != (r, r):
                raise ValueError(f"sketches: {Path(collection) / record['file']} is not a {r} px image "
                                 f"of the collection; ingest at --resolution {r}")
            partial_drawings = {}
            n = order.strokes(record.get("source", "")) if order else 0
            if n and partial_share:
                ks = stroke_counts(n, partial_share, rng)
                drawn = order.first_strokes(record["source"], ks, r, dataset["settings"].get("fit", "crop")) if ks else {}
                partial_drawings = {f"{k}/{n}": drawn[k] for k in ks}
            add_drawing(drawing, {"split": record["split"], "source": "collection"}, partial_drawings)
    if codes:
        np.save(out / CODES, np.stack(codes))
    manifest = {"format": PAIRS_FORMAT, "format_version": 1, "generator": str(source.path),
                "resolution": r, "count": len(entries), "drawings": counts["drawings"],
                "partial": counts["partial"], "partial_share_setting": partial_share,
                "dropped_blank": counts["dropped_blank"], "truncation": truncation, "seed": seed,
                "collection": str(collection) if collection else None,
                "from_collection": sum(e["source"] == "collection" for e in entries),
                "codes": CODES if codes else None,
                "codes_generator": generator_fingerprint(generator) if codes else None,
                "binarize": params.to_dict(), "sketch": dataclasses.asdict(settings),
                "provenance": meta, "pairs": entries}
    atomic_write_json(out / MANIFEST, manifest)
    atomic_write_png(out / "contact_sheet.png", pairs_sheet(out, entries))
    return manifest


def pairs_sheet(out: Path, entries: list[dict]) -> np.ndarray:
    """Labelled sheet of some whole and some partial pairs (sketch | drawing)."""
    read = lambda f: cv2.imread(str(out / f), cv2.IMREAD_GRAYSCALE)  # noqa: E731
    bands = []
    for title, shown in (("whole sketch | drawing", [e for e in entries if e["part"] == "whole"][:16]),
                         ("first strokes | the whole drawing they are taught to give",
                          [e for e in entries if e["part"] != "whole"][:16])):
        if shown:
            bands.append(labelled(contact_sheet([read(e["sketch"]) for e in shown],
                                                [read(e["drawing"]) for e in shown]), title))
    width = max(b.shape[1] for b in bands)
    return np.vstack([np.pad(b, ((0, 0), (0, width - b.shape[1])), constant_values=160) for b in bands])


def load_manifest_file(pairs: Path) -> dict:
    """The pairs folder's whole manifest, refused with what to do when it is not one."""
    path = Path(pairs) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: no readable pairs manifest ({exc}); make it with "
                         f"`newsnow train sketches`") from exc
    if manifest.get("format") != PAIRS_FORMAT:
        raise ValueError(f"{path}: not a New Snow pairs manifest")
    return manifest


def load_pairs(pairs: Path, split: str | None = "train") -> tuple[np.ndarray, np.ndarray, dict]:
    """(sketches, drawings) uint8 [N, R, R] of one split, and the manifest (its "pairs"
    are that split's entries, in the same order)."""
    manifest = load_manifest_file(pairs)
    entries = [e for e in manifest["pairs"] if split is None or e["split"] == split]
    if not entries:
        raise ValueError(f"{Path(pairs) / MANIFEST}: no {split} pairs")
    read = lambda f: cv2.imread(str(Path(pairs) / f), cv2.IMREAD_GRAYSCALE)  # noqa: E731
    sketches = np.stack([read(e["sketch"]) for e in entries])
    cache = {}
    drawings = np.stack([cache[e["drawing"]] if e["drawing"] in cache else cache.setdefault(e["drawing"], read(e["drawing"]))
                         for e in entries])
    return sketches, drawings, {**manifest, "pairs": entries}


def load_codes(pairs: Path, manifest: dict) -> tuple[np.ndarray | None, np.ndarray]:
    """The known W+ code of each pair of `manifest` (zeros where none) and which are known."""
    entries = manifest["pairs"]
    known = np.array([e.get("code") is not None for e in entries])
    if not manifest.get("codes") or not known.any():
        return None, known
    stored = np.load(Path(pairs) / manifest["codes"]).astype(np.float32)
    codes = np.zeros((len(entries), *stored.shape[1:]), np.float32)
    codes[known] = stored[[e["code"] for e in entries if e.get("code") is not None]]
    return codes, known
