"""A folder of scans -> a training dataset: square grayscale PNGs + a manifest.

`newsnow train ingest SRC --out DATASET`. Every readable image (PNG, JPEG, TIFF, BMP,
WebP; 8 or 16 bit; gray, colour or with alpha) becomes a `resolution` x `resolution`
grayscale PNG, centre-cropped or padded with the paper's colour. Exact duplicates (same
pixels) are kept once; near duplicates (16 x 16 thumbnails a few grey levels apart) are reported
and, with `drop_near=True`, kept once. Unreadable files are listed and skipped, never a
crash. The manifest (`manifest.json`) records the split, the sources and the decisions.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from capture.binarize import resolution_problem
from storage import atomic_write_json, atomic_write_png, output_folder

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
DATASET_FORMAT = "newsnow-dataset"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}
FITS = ("crop", "pad")


class DatasetError(ValueError):
    """A source folder or dataset cannot be used; the message names it and what to do."""


@dataclass(frozen=True)
class IngestSettings:
    resolution: int = 256
    fit: str = "crop"            # "crop": centre square; "pad": whole image, paper added
    validation: float = 0.05     # share of images held out for validation
    near_rms: float = 0.03       # thumbnail RMS difference (0..1) that counts as a near duplicate
    drop_near: bool = False      # keep only the first of a near-duplicate group
    seed: int = 0

    def __post_init__(self) -> None:
        if problem := resolution_problem(self.resolution):
            raise DatasetError(f"resolution {self.resolution}: {problem}")
        if self.fit not in FITS:
            raise DatasetError(f"fit {self.fit!r}: choose one of {', '.join(FITS)}")
        if not 0.0 <= self.validation < 1.0:
            raise DatasetError(f"validation {self.validation}: a share in [0, 1)")


def read_gray(path: Path) -> np.ndarray:
    """Any image file as uint8 grayscale; alpha is composited over white paper.
    Raises DatasetError when the file cannot be decoded."""
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise DatasetError(f"{path}: not a readable image")
    if image.dtype == np.uint16:
        image = (image / 257.0).round().astype(np.uint8)
    elif image.dtype != np.uint8:
        image = cv2.normalize(image.astype(np.float32), None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 4:
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        image = (image[:, :, :3] * alpha + 255.0 * (1 - alpha)).round().astype(np.uint8)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.shape[2] == 3 else image[:, :, 0]
    if min(image.shape) < 2:
        raise DatasetError(f"{path}: image is {image.shape[1]}x{image.shape[0]} px, too small")
    return image


def square(gray: np.ndarray, resolution: int, fit: str) -> np.ndarray:
    """Centre-crop or pad (with the paper's colour: the median of the border) to a square,
    then area-resample to resolution x resolution."""
    h, w = gray.shape
    if fit == "crop":
        side = min(h, w)
        y, x = (h - side) // 2, (w - side) // 2
        out = gray[y:y + side, x:x + side]
    else:
        side = max(h, w)
        border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
        out = np.full((side, side), int(np.median(border)), dtype=np.uint8)
        y, x = (side - h) // 2, (side - w) // 2
        out[y:y + h, x:x + w] = gray
    interpolation = cv2.INTER_AREA if side >= resolution else cv2.INTER_CUBIC
    return cv2.resize(out, (resolution, resolution), interpolation=interpolation)


def thumbnail(gray: np.ndarray) -> np.ndarray:
    """The perceptual fingerprint: a 16 x 16 area-averaged thumbnail in [0, 1]. (A DCT
    pHash flips many bits on sparse line drawings, whose coefficients crowd its median.)"""
    return cv2.resize(gray, (16, 16), interpolation=cv2.INTER_AREA).astype(np.float32).ravel() / 255.0


def near_duplicate_pairs(thumbs: np.ndarray, max_rms: float, chunk: int = 1024) -> list[tuple[int, int, float]]:
    """(i, j, rms) for every pair i < j whose thumbnails differ by at most max_rms (RMS)."""
    t = np.asarray(thumbs, dtype=np.float32)
    if len(t) < 2:
        return []
    sq = (t * t).sum(1)
    pairs = []
    for start in range(0, len(t), chunk):
        block = t[start:start + chunk]
        d2 = np.maximum(sq[start:start + chunk, None] + sq[None, :] - 2 * block @ t.T, 0) / t.shape[1]
        for i, j in zip(*np.nonzero(d2 <= max_rms ** 2)):
            if start + i < j:
                pairs.append((int(start + i), int(j), float(np.sqrt(d2[i, j]))))
    return pairs


def sources_digest(src: Path, files: list[Path]) -> str:
    """sha256 over every source file's name and bytes: says whether two runs saw the same scans."""
    total = hashlib.sha256()
    for path in files:
        total.update(str(path.relative_to(src)).encode() + b"\0")
        total.update(hashlib.sha256(path.read_bytes()).digest())
    return total.hexdigest()


def scan_files(src: Path) -> list[Path]:
    """The image files under a folder of scans (recursively), or a DatasetError that says what
    is wrong with the folder; `train all` asks before it writes anything."""
    src = Path(src)
    if not src.exists():
        raise DatasetError(f"{src}: does not exist (give the folder holding the scans)")
    if not src.is_dir():
        raise DatasetError(f"{src}: is a file, not a folder of scans (give the folder holding them)")
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"{src}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def ingest(src: Path, out: Path, settings: IngestSettings = IngestSettings(),
           licence: str = "unknown", credit: str = "", force: bool = False) -> dict:
    """Turn the images under `src` (searched recursively) into a dataset in `out`;
    returns the manifest. `licence` and `credit` travel on to the model card. A dataset
    already in `out` is replaced only with `force`."""
    src, out = Path(src), Path(out)
    files = scan_files(src)
    output_folder(out)
    if (out / MANIFEST).is_file() or any((out / "images").glob("*.png")):
        if not force:
            raise DatasetError(f"{out}: already holds a dataset; give another --out, or --force to replace it")
        for old in (out / "images").glob("*.png"):
            old.unlink()
        (out / MANIFEST).unlink(missing_ok=True)
    (out / "images").mkdir(exist_ok=True)
    unreadable, exact, kept = [], [], []
    first_by_digest: dict[str, str] = {}
    images, thumbs = [], []
    for path in files:
        source = str(path.relative_to(src))
        try:
            image = square(read_gray(path), settings.resolution, settings.fit)
        except (DatasetError, cv2.error) as exc:
            reason = str(exc).removeprefix(f"{path}: ")
            unreadable.append({"file": source, "error": reason})
            log.warning("skipped %s: %s", path, reason)
            continue
        digest = hashlib.sha256(image.tobytes()).hexdigest()
        if digest in first_by_digest:
            exact.append({"file": source, "same_as": first_by_digest[digest]})
            continue
        first_by_digest[digest] = source
        kept.append(source)
        images.append(image)
        thumbs.append(thumbnail(image))
    if not kept:
        reasons = "; ".join(f"{u['file']}: {u['error']}" for u in unreadable[:10])
        more = f" (and {len(unreadable) - 10} more)" if len(unreadable) > 10 else ""
        raise DatasetError(f"{src}: none of the {len(files)} image files can be read: {reasons}{more}; "
                           f"export the scans again as PNG, JPEG or TIFF")
    near = near_duplicate_pairs(np.array(thumbs), settings.near_rms)
    dropped = set()
    if settings.drop_near:
        for i, j, _ in near:
            if i not in dropped:
                dropped.add(j)
    rng = np.random.default_rng(settings.seed)
    order = [k for k in rng.permutation(len(kept)) if k not in dropped]
    n_val = int(round(len(order) * settings.validation))
    validation = set(order[:n_val])
    entries = []
    for k in sorted(order):
        name = f"images/{len(entries):06d}.png"
        atomic_write_png(out / name, images[k])
        entries.append({"file": name, "source": kept[k],
                        "split": "validation" if k in validation else "train"})
    manifest = {
        "format": DATASET_FORMAT, "format_version": 1, "source": str(src.resolve()),
        "source_files": len(files), "source_sha256": sources_digest(src, files),
        "licence": licence, "credit": credit, "settings": asdict(settings),
        "counts": {"found": len(files), "images": len(entries),
                   "train": len(entries) - n_val, "validation": n_val,
                   "unreadable": len(unreadable), "exact_duplicates": len(exact),
                   "near_duplicate_pairs": len(near), "near_duplicates_dropped": len(dropped)},
        "images": entries, "unreadable": unreadable, "exact_duplicates": exact,
        "near_duplicates": [{"file": kept[j], "like": kept[i], "rms": round(d, 4)} for i, j, d in near],
    }
    atomic_write_json(out / MANIFEST, manifest)
    c = manifest["counts"]
    log.info("ingest: %d of %d files from %s kept (%d train, %d validation); %d unreadable, %d exact duplicates, "
             "%d near-duplicate pairs (%d dropped)", c["images"], c["found"], src, c["train"], c["validation"],
             c["unreadable"], c["exact_duplicates"], c["near_duplicate_pairs"], c["near_duplicates_dropped"])
    return manifest


def load_manifest(dataset: Path) -> dict:
    """The manifest of a dataset folder written by `ingest`."""
    path = Path(dataset) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: no readable dataset manifest ({exc}); "
                           f"make the dataset with `newsnow train ingest`") from exc
    if manifest.get("format") != DATASET_FORMAT:
        raise DatasetError(f"{path}: not a New Snow dataset manifest")
    return manifest


def load_images(dataset: Path, split: str | None = "train") -> np.ndarray:
    """The dataset's images of one split (None: all) as uint8 [N, R, R]."""
    manifest = load_manifest(dataset)
    entries = [e for e in manifest["images"] if split is None or e["split"] == split]
    if not entries:
        raise DatasetError(f"{dataset}: no {split or ''} images in the manifest")
    images = [cv2.imread(str(Path(dataset) / e["file"]), cv2.IMREAD_GRAYSCALE) for e in entries]
    for e, image in zip(entries, images):
        if image is None:
            raise DatasetError(f"{Path(dataset) / e['file']}: missing or unreadable; ingest again")
    return np.stack(images)
