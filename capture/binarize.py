"""Camera frame -> binary sketch: the one binarization used at run time and at training.

The IR camera films the sheet from below. The LEDs light it unevenly (bright in the
middle, a gradient away from the LED strips), the tracing paper blurs the pen lines, and
the sensor adds noise. `binarize` undoes that in a fixed order:

1. take the drawing area out of the frame (`to_sketch`, or the centred square) straight
   onto the R x R sketch grid, averaging the camera pixels that fall into each sketch
   pixel, so that a pen line thinner than a sketch pixel stays as a grey line instead of
   vanishing between samples;
2. flat-field: divide by the paper's brightness, estimated by a morphological closing
   (which fills in the dark lines) and a blur, so that the paper becomes one level;
3. threshold: adaptive mean by default; Sauvola and Otsu are there for comparison
   (docs/capture.md: adaptive and Sauvola tie on precision/recall, Otsu loses faint
   pencil lines; adaptive is the cheaper); never call a pixel ink unless it is
   `min_contrast` darker than the paper and `min_depth` grey levels below it;
4. remove specks: ink components smaller than `speck_area` sketch pixels.

Everything after step 1 works on the small sketch grid, so all sizes in the parameters
are in sketch pixels and the cost hardly depends on the camera's resolution.
"""
from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

METHODS = ("adaptive", "sauvola", "otsu")
PAPER = 224  # level the flat-field maps paper to; the headroom keeps noise above it
MIN_LIGHT = 8  # a background darker than this shows nothing: leave it paper


@dataclass(frozen=True)
class BinarizeParams:
    """How a frame becomes a sketch. Stored in the config and in `bundle.json["binarize"]`."""

    method: str = "adaptive"  # "adaptive" (mean - offset), "sauvola" or "otsu"
    window: int = 15  # odd side of the local neighbourhood, sketch px (adaptive, sauvola)
    offset: float = 0.09  # adaptive: ink is this much darker than the local mean (x paper)
    k: float = 0.1  # sauvola's k (0.2 in the paper; 0.1 keeps faint pencil, docs/capture.md)
    flat_field: int = 32  # scale of the paper-brightness estimate, sketch px; 0 turns it off
    min_contrast: float = 0.1  # ink is at least this much darker than paper (x paper)
    min_depth: int = 10  # ...and at least this many grey levels darker (above sensor noise)
    speck_area: int = 3  # ink components smaller than this (sketch px) are dust
    resolution: int = 256  # side R of the sketch
    invert: bool = False  # the camera sees bright ink on dark paper

    def __post_init__(self) -> None:
        _check(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BinarizeParams":
        """Parameters from a config table or a bundle; missing fields keep their default."""
        if not isinstance(d, dict):
            raise ValueError(f"binarize: expected a table of parameters, got {type(d).__name__}")
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ValueError(
                f"binarize.{unknown[0]}: unknown parameter; known are {', '.join(names)}"
            )
        values = {}
        for name, value in d.items():
            default = getattr(cls, name)
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif isinstance(default, float):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
                value = float(value) if ok else value
            else:
                ok = isinstance(value, str)
            if not ok:
                raise ValueError(
                    f"binarize.{name}: expected {type(default).__name__}, got {value!r}"
                )
            values[name] = value
        return cls(**values)


# One rule for every grid of the project: the sketch grid is the model's, and the networks
# build powers of two from 16 to 1024 px (a bundle, a dataset and a GAN config check the same).
RESOLUTIONS = tuple(2 ** i for i in range(4, 11))


def resolution_problem(resolution) -> str | None:
    """Why `resolution` cannot be a sketch or model grid, or None when it can."""
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution not in RESOLUTIONS:
        return f"must be a power of two from {RESOLUTIONS[0]} to {RESOLUTIONS[-1]}"
    return None


def _check(p: BinarizeParams) -> None:
    def bad(name: str, why: str) -> ValueError:
        return ValueError(f"binarize.{name}: {why} (got {getattr(p, name)!r})")

    if p.method not in METHODS:
        raise bad("method", f"must be one of {', '.join(METHODS)}")
    if problem := resolution_problem(p.resolution):
        raise bad("resolution", problem)
    if not isinstance(p.window, int) or isinstance(p.window, bool) or p.window < 3 or p.window % 2 == 0:
        raise bad("window", "must be an odd integer of at least 3")
    if p.window > p.resolution:
        raise bad("window", f"must not exceed the resolution {p.resolution}")
    if not isinstance(p.offset, (int, float)) or not 0.0 <= p.offset < 1.0:
        raise bad("offset", "must be a number in [0, 1)")
    if not isinstance(p.k, (int, float)) or not 0.0 < p.k <= 1.0:
        raise bad("k", "must be a number in (0, 1]")
    if not isinstance(p.flat_field, int) or isinstance(p.flat_field, bool) or p.flat_field < 0:
        raise bad("flat_field", "must be a non-negative integer (0 turns flat-fielding off)")
    if p.flat_field > p.resolution:
        raise bad("flat_field", f"must not exceed the resolution {p.resolution}")
    if not isinstance(p.min_contrast, (int, float)) or not 0.0 <= p.min_contrast < 1.0:
        raise bad("min_contrast", "must be a number in [0, 1)")
    if not isinstance(p.min_depth, int) or isinstance(p.min_depth, bool) or not 0 <= p.min_depth <= 255:
        raise bad("min_depth", "must be an integer from 0 to 255 (grey levels)")
    if not isinstance(p.speck_area, int) or isinstance(p.speck_area, bool) or p.speck_area < 0:
        raise bad("speck_area", "must be a non-negative integer (0 keeps every speck)")
    if p.speck_area > p.resolution * p.resolution:
        raise bad("speck_area", f"must not exceed the sketch's area, {p.resolution * p.resolution} px")
    if not isinstance(p.invert, bool):
        raise bad("invert", "must be true or false")


def centred_square(shape: tuple[int, int], resolution: int) -> np.ndarray:
    """The homography from an H x W image to the R x R grid of its centred square."""
    h, w = shape[:2]
    side = min(h, w)
    x0, y0 = (w - side) / 2.0, (h - side) / 2.0
    s = resolution / side
    # Pixel centres sit on integers: x' + 0.5 = s * (x - x0 + 0.5).
    return np.array(
        [[s, 0.0, s * (0.5 - x0) - 0.5], [0.0, s, s * (0.5 - y0) - 0.5], [0.0, 0.0, 1.0]]
    )


def to_grid(gray: np.ndarray, to_sketch: np.ndarray, resolution: int) -> np.ndarray:
    """Warp `gray` onto the R x R grid, averaging the input pixels each grid pixel covers.

    `cv2.warpPerspective` samples bilinearly, which skips thin lines when it shrinks. So the
    part of the input that the grid sees is first shrunk with INTER_AREA (box averaging) to
    about one input pixel per grid pixel; the warp then only does the remaining perspective.
    """
    r = resolution
    m = np.asarray(to_sketch, dtype=np.float64)
    if np.allclose(m, np.eye(3)) and gray.shape == (r, r):
        return gray
    inv = np.linalg.inv(m)
    corners = np.array([[-0.5, -0.5], [r - 0.5, -0.5], [r - 0.5, r - 0.5], [-0.5, r - 0.5]])
    src = cv2.perspectiveTransform(corners[None], inv)[0]
    # The input pixels per grid pixel, averaged over the drawing area.
    shrink = np.sqrt(abs(cv2.contourArea(src.astype(np.float32))) / (r * r))
    h, w = gray.shape
    x0 = int(np.clip(np.floor(src[:, 0].min()) - 1, 0, w - 1))
    y0 = int(np.clip(np.floor(src[:, 1].min()) - 1, 0, h - 1))
    x1 = int(np.clip(np.ceil(src[:, 0].max()) + 2, x0 + 1, w))
    y1 = int(np.clip(np.ceil(src[:, 1].max()) + 2, y0 + 1, h))
    # Box-average by a whole factor (OpenCV's fast INTER_AREA path; a fractional factor
    # is ten times slower); the warp's bilinear sampling does the remaining < 2x.
    f = int(shrink) if shrink >= 2 else 1
    x1, y1 = x0 + max(f, (x1 - x0) // f * f), y0 + max(f, (y1 - y0) // f * f)
    if x1 > w or y1 > h:
        f, x1, y1 = 1, min(x1, w), min(y1, h)
    roi = gray[y0:y1, x0:x1]
    if f > 1:
        small = cv2.resize(roi, ((x1 - x0) // f, (y1 - y0) // f), interpolation=cv2.INTER_AREA)
    else:
        small = roi
    fx = fy = 1.0 / f
    # small pixel -> input pixel: x = (xs + 0.5) / fx - 0.5 + x0
    back = np.array(
        [[1 / fx, 0.0, 0.5 / fx - 0.5 + x0], [0.0, 1 / fy, 0.5 / fy - 0.5 + y0], [0.0, 0.0, 1.0]]
    )
    map1, map2 = _warp_maps(m @ back, r)
    return cv2.remap(small, map1, map2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


_maps: dict[tuple[bytes, int], tuple[np.ndarray, np.ndarray]] = {}
_maps_lock = threading.Lock()  # the loop and a trainer may binarize in several threads


def _warp_maps(m: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-point sampling maps of the grid -> input warp, kept for the next frame.

    The table's homography changes only when it is recalibrated (or the simulated sheet
    moves), and a cached `cv2.remap` is several times cheaper than `cv2.warpPerspective`.
    """
    key = (np.round(m, 9).tobytes(), r)
    with _maps_lock:
        maps = _maps.get(key)
    if maps is None:
        ys, xs = np.mgrid[0:r, 0:r].astype(np.float32)
        grid = np.stack([xs, ys], axis=-1).reshape(1, -1, 2)
        src = cv2.perspectiveTransform(grid, np.linalg.inv(m)).reshape(r, r, 2)
        maps = cv2.convertMaps(src.astype(np.float32), None, cv2.CV_16SC2)
        with _maps_lock:
            if len(_maps) >= 8:
                _maps.pop(next(iter(_maps)))
            _maps[key] = maps
    return maps


def paper_brightness(grid: np.ndarray, scale: int) -> np.ndarray:
    """How bright the paper is at each pixel, pen lines left out.

    The closing of the image (a max filter wider than a pen line, then a min filter) at a
    quarter of the grid, blurred, so that dark lines do not pull it down. `scale` 0: no
    estimate, full white everywhere.
    """
    if not scale:
        return np.full_like(grid, 255)
    r = grid.shape[0]
    q = max(4, r // 4)
    small = cv2.resize(grid, (q, q), interpolation=cv2.INTER_AREA)
    ks = max(3, (scale * q // r) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (ks, ks))
    bg = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel, borderType=cv2.BORDER_REPLICATE)
    bg = cv2.blur(bg, (ks, ks), borderType=cv2.BORDER_REPLICATE)
    return cv2.resize(bg, (r, r), interpolation=cv2.INTER_LINEAR)


def flat_field(grid: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Divide by the paper's brightness so that paper is PAPER everywhere."""
    out = cv2.divide(grid, bg, scale=PAPER)
    # Where nothing is lit there is no paper to see: no ink either.
    out[bg < MIN_LIGHT] = PAPER
    return out


def threshold(norm: np.ndarray, params: BinarizeParams) -> np.ndarray:
    """Ink mask (bool) of a flat-fielded grid whose paper level is PAPER."""
    floor = PAPER * (1.0 - params.min_contrast)  # never ink above this level
    if params.method == "adaptive":
        # ink where the pixel is at or below (local mean - offset)
        ink = cv2.adaptiveThreshold(
            norm, 1, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV,
            params.window, params.offset * PAPER,
        ).view(bool)
    elif params.method == "sauvola":
        # T = m * (1 + k (s / 128 - 1)) with the local mean m and deviation s from box
        # filters (integral images), as skimage.filters.threshold_sauvola computes it.
        f = norm.astype(np.float32)
        size = (params.window, params.window)
        m = cv2.boxFilter(f, -1, size, borderType=cv2.BORDER_REPLICATE)
        m2 = cv2.boxFilter(f * f, -1, size, borderType=cv2.BORDER_REPLICATE)
        s = np.sqrt(np.maximum(m2 - m * m, 0.0))
        ink = f < m * (1.0 + params.k * (s / 128.0 - 1.0))
    else:  # otsu
        t, _ = cv2.threshold(norm, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        # A blank sheet has one mode: Otsu would split the noise; the floor stops it.
        ink = norm <= min(t, floor)
    return ink & (norm < floor)


def remove_specks(ink: np.ndarray, min_area: int) -> np.ndarray:
    """Drop 8-connected ink components smaller than `min_area` pixels."""
    if min_area <= 1:
        return ink
    # connectedComponents + bincount is several times faster than ...WithStats here
    n, labels = cv2.connectedComponents(ink.view(np.uint8), connectivity=8)
    if n <= 1:
        return ink
    keep = np.bincount(labels.ravel(), minlength=n) >= min_area
    if keep[1:].all():
        return ink
    keep[0] = False  # label 0 is the paper
    if n <= 256:  # the usual case: a table lookup is much cheaper than fancy indexing
        lut = np.zeros(256, np.uint8)
        lut[:n] = keep
        return cv2.LUT(labels.astype(np.uint8), lut).view(bool)
    return keep[labels]


def binarize(
    gray: np.ndarray, params: BinarizeParams, to_sketch: np.ndarray | None = None
) -> np.ndarray:
    """A camera frame (or any gray image of dark lines on light paper) -> R x R sketch.

    `to_sketch` is the 3x3 homography from the input's pixels to the sketch grid (the
    calibration's drawing area); None takes the centred square. Returns uint8, ink 0 and
    paper 255.
    """
    if not isinstance(gray, np.ndarray):
        raise ValueError(f"binarize: expected a numpy image, got {type(gray).__name__}")
    if gray.ndim == 3 and gray.shape[2] == 1:
        gray = gray[:, :, 0]
    if gray.ndim != 2 or gray.dtype != np.uint8 or min(gray.shape) < 2:
        raise ValueError(
            f"binarize: expected a uint8 gray image H x W, got {gray.dtype} {gray.shape};"
            " convert colour frames with cv2.cvtColor(..., cv2.COLOR_BGR2GRAY) first"
        )
    r = params.resolution
    if to_sketch is None:
        to_sketch = centred_square(gray.shape, r)
    else:
        to_sketch = np.asarray(to_sketch, dtype=np.float64)
        if to_sketch.shape != (3, 3) or not np.isfinite(to_sketch).all():
            raise ValueError(f"binarize: to_sketch must be a finite 3x3 homography, got shape {to_sketch.shape}")
        if abs(np.linalg.det(to_sketch)) < 1e-12:
            raise ValueError("binarize: to_sketch is singular; check the calibration's drawing area")
    if params.invert:
        gray = cv2.bitwise_not(gray)
    grid = to_grid(gray, to_sketch, r)
    bg = paper_brightness(grid, params.flat_field)
    ink = threshold(flat_field(grid, bg), params)
    if params.min_depth:
        # Sensor noise is a few grey levels whatever the light: on dim paper or the bare
        # table a relative threshold alone would take it for ink.
        ink &= cv2.subtract(bg, grid) > params.min_depth
    ink = remove_specks(ink, params.speck_area)
    return np.where(ink, np.uint8(0), np.uint8(255))


def ink_fraction(sketch: np.ndarray) -> float:
    """Share of ink pixels in a sketch (0 for a blank sheet)."""
    return float(np.count_nonzero(sketch < 128)) / sketch.size


def sketch_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Share of pixels that differ between two sketches: the loop's change detector."""
    if a.shape != b.shape:
        raise ValueError(f"sketch_difference: sketches differ in shape, {a.shape} vs {b.shape}")
    return float(np.count_nonzero(a != b)) / a.size
