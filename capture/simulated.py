"""A simulated pen camera: what the IR camera under the table would see while a visitor draws.

The view (1280 x 720 by default) shows the dark window of the table and on it a sheet of
tracing paper, lit from below by IR LEDs: bright in the middle, darker at the corners
(vignetting) and along the side away from the LED strip, with the paper's fibre texture.
Pen strokes appear over time at a pen's speed, blurred by the paper and covered by sensor
noise. A seeded script decides everything: a new sheet lies blank for a while, strokes
follow with pauses between them, the visitor sometimes nudges the sheet, and after a
number of strokes the sheet is taken away and a fresh one laid down.

The picture at simulation time t depends only on the seed and t, so tests get the same
frames however fast they read. The camera knows the truth the binarizer is measured
against (`truth_sketch`, `truth_mask`) and where the sheet lies (`camera_to_sketch`), which
the loop uses as the crop until the table is calibrated.

Faults for the kiosk tests (vanish, freeze, garbage frames) come from a fixed list or a
seeded random schedule; their effect on `read` mimics a failing USB camera.
"""
from __future__ import annotations

import dataclasses
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import cv2
import numpy as np

from capture.frames import Frame
from capture.health import FAULT_KINDS, FreezeDetector, RateMeter, SourceHealth

STROKE_KINDS = ("splines", "kanji")
NOISE_POOL = 8  # precomputed noise fields, cycled frame by frame


@dataclass(frozen=True)
class Fault:
    """The camera misbehaves from `start` for `duration` seconds of simulation time."""

    kind: str  # one of capture.health.FAULT_KINDS
    start: float
    duration: float

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind {self.kind!r}: must be one of {', '.join(FAULT_KINDS)}")
        if self.duration <= 0 or self.start < 0:
            raise ValueError(f"fault {self.kind}: start must be >= 0 and duration > 0")


@dataclass(frozen=True)
class SimulatedPenSettings:
    """Everything the simulated camera does; all of it is decided by `seed`."""

    width: int = 1280
    height: int = 720
    fps: float = 30.0
    seed: int = 0
    pace: bool = True  # wait for each frame's time like a camera; False: as fast as read
    # the table and the sheet
    sheet_mm: tuple[float, float] = (420.0, 297.0)  # A3 landscape
    px_per_mm: float | None = None  # camera px per mm on the table; None: the sheet fills 90 %
    tilt: float = 0.04  # keystone of a camera not quite square to the table
    area_margin_mm: float = 15.0  # the drawing area keeps this far from the sheet's edge
    paper_level: float = 205.0  # grey level of the brightest paper
    table_level: float = 35.0  # the window beside the sheet
    paper_texture: float = 0.04  # relative strength of the fibre texture
    vignetting: float = 0.35  # brightness lost towards the corners
    led_gradient: float = 0.25  # brightness lost from the LED strip side to the far side
    # the pen and the camera
    pen_mm: float = 0.9  # line width
    ink_contrast: float = 0.65  # share of the light a pen line blocks
    pressure: float = 0.15  # variation of ink darkness along a stroke
    darkness: tuple[float, float] = (1.0, 1.0)  # a stroke's share of the full ink: pencil ~0.3, felt pen 1
    blur_px: float = 1.1  # diffusion of the tracing paper (Gaussian sigma, camera px)
    noise: float = 3.0  # sensor noise, grey levels (sigma)
    # the visitor
    strokes: str = "splines"  # "splines" (smooth pen paths) or "kanji" (kanjivg, train extra)
    pen_speed: float = 150.0  # mm/s
    pause_s: tuple[float, float] = (0.3, 1.2)  # between strokes
    blank_s: float = 1.5  # a fresh sheet lies blank this long
    away_s: float = 1.0  # between taking a sheet away and laying the next
    strokes_per_sheet: tuple[int, int] = (8, 18)
    shift_chance: float = 0.12  # per stroke: the visitor nudges the sheet afterwards
    # faults
    faults: tuple[Fault, ...] = ()
    faults_per_minute: float = 0.0  # random faults on top of `faults` (seeded)

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"simulated.{name}: {why} (got {getattr(self, name)!r})")

        if not (64 <= self.width <= 8192 and 64 <= self.height <= 8192):
            raise bad("width", "width and height must be 64..8192 pixels")
        if not self.fps > 0:
            raise bad("fps", "must be positive")
        if self.strokes not in STROKE_KINDS:
            raise bad("strokes", f"must be one of {', '.join(STROKE_KINDS)}")
        w, h = self.sheet_mm
        if not (w > 0 and h > 0):
            raise bad("sheet_mm", "must be two positive lengths")
        if self.px_per_mm is not None and not (
            0 < max(w, h) * self.px_per_mm <= 2 * max(self.width, self.height)
        ):
            raise bad("px_per_mm", "must be positive and keep the sheet near the view")
        if not 0 <= self.area_margin_mm < min(w, h) / 2 - 10:
            raise bad("area_margin_mm", "must leave a drawing area of at least 20 mm")
        lo, hi = self.strokes_per_sheet
        if not 1 <= lo <= hi:
            raise bad("strokes_per_sheet", "must be (min, max) with 1 <= min <= max")
        if not 0 <= self.pause_s[0] <= self.pause_s[1]:
            raise bad("pause_s", "must be (min, max) seconds with 0 <= min <= max")
        if not 0 < self.ink_contrast <= 1:
            raise bad("ink_contrast", "must be in (0, 1]")
        if not 0 < self.darkness[0] <= self.darkness[1] <= 1:
            raise bad("darkness", "must be (min, max) with 0 < min <= max <= 1")
        if self.pen_speed <= 0 or self.pen_mm <= 0:
            raise bad("pen_speed", "pen_speed and pen_mm must be positive")
        if self.faults_per_minute < 0:
            raise bad("faults_per_minute", "must be >= 0")

    @property
    def scale(self) -> float:
        """Camera pixels per mm on the table."""
        if self.px_per_mm is not None:
            return self.px_per_mm
        return 0.9 * min(self.width / self.sheet_mm[0], self.height / self.sheet_mm[1])

    @property
    def drawing_area_mm(self) -> tuple[float, float, float, float]:
        """The centred square of the sheet (x, y, w, h in sheet mm): what becomes the sketch."""
        w, h = self.sheet_mm
        side = min(w, h) - 2 * self.area_margin_mm
        return ((w - side) / 2, (h - side) / 2, side, side)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["faults"] = [dataclasses.asdict(f) for f in self.faults]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SimulatedPenSettings":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"simulated.{unknown[0]}: unknown setting; known are {', '.join(sorted(names))}")
        d = dict(d)
        for key in ("sheet_mm", "pause_s", "strokes_per_sheet", "darkness"):
            if key in d:
                d[key] = tuple(d[key])
        if "faults" in d:
            d["faults"] = tuple(Fault(**f) if isinstance(f, dict) else f for f in d["faults"])
        try:
            return cls(**d)
        except TypeError as exc:
            raise ValueError(f"simulated: {exc}") from None


# --- the visitor's script --------------------------------------------------------------


@dataclass
class Stroke:
    points: np.ndarray  # (N, 2) sheet mm, about 1 mm apart
    pressure: np.ndarray  # (N,) ink darkness 0..1
    t_start: float
    t_end: float

    def drawn(self, t: float) -> int:
        """How many of the points the pen has reached at time t."""
        if t < self.t_start:
            return 0
        f = 1.0 if t >= self.t_end else (t - self.t_start) / (self.t_end - self.t_start)
        return int(round(f * (len(self.points) - 1))) + 1


@dataclass
class Sheet:
    """One sheet's life: laid down at t_on, drawn on, taken away at t_off."""

    t_on: float
    t_off: float
    pose: tuple[float, float, float]  # table position of its centre (mm) and rotation (rad)
    strokes: list[Stroke]
    shifts: list[tuple[float, float, float, float]]  # (t, dx mm, dy mm, dtheta rad)
    texture_seed: int

    def pose_at(self, t: float) -> tuple[float, float, float]:
        x, y, a = self.pose
        for ts, dx, dy, da in self.shifts:
            if ts <= t:
                x, y, a = x + dx, y + dy, a + da
        return x, y, a


def catmull_rom(ctrl: np.ndarray, step_mm: float = 1.0) -> np.ndarray:
    """A smooth path through the control points, sampled about every `step_mm`."""
    p = np.vstack([2 * ctrl[0] - ctrl[1], ctrl, 2 * ctrl[-1] - ctrl[-2]])
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        n = max(2, int(np.linalg.norm(p2 - p1) / step_mm))
        s = np.linspace(0, 1, n, endpoint=False)[:, None]
        out.append(
            0.5 * ((2 * p1) + (-p0 + p2) * s + (2 * p0 - 5 * p1 + 4 * p2 - p3) * s**2
                   + (-p0 + 3 * p1 - 3 * p2 + p3) * s**3)
        )
    out.append(ctrl[-1:])
    return np.vstack(out)


def spline_paths(rng: np.random.Generator, area: tuple[float, float, float, float], n: int) -> list[np.ndarray]:
    """n smooth pen paths inside the drawing area: long curves, short lines, loops."""
    x0, y0, w, h = area
    margin = 0.06 * w
    lo, hi = np.array([x0 + margin, y0 + margin]), np.array([x0 + w - margin, y0 + h - margin])
    paths = []
    for _ in range(n):
        kind = rng.choice(["curve", "curve", "line", "loop"])
        if kind == "loop":
            c = rng.uniform(lo + 30, hi - 30)
            r = rng.uniform(12, 45, size=2)
            a0 = rng.uniform(0, 2 * math.pi)
            a = a0 + np.linspace(0, rng.uniform(1.2, 2.0) * math.pi, 7)
            ctrl = c + np.stack([r[0] * np.cos(a), r[1] * np.sin(a)], 1)
        else:
            k = 2 if kind == "line" else int(rng.integers(3, 7))
            ctrl = [rng.uniform(lo, hi)]
            heading = rng.uniform(0, 2 * math.pi)
            for _ in range(k - 1):
                heading += rng.normal(0, 0.7)
                step = rng.uniform(25, 80)
                ctrl.append(ctrl[-1] + step * np.array([math.cos(heading), math.sin(heading)]))
            ctrl = np.array(ctrl)
            if kind == "line":
                ctrl = np.array([ctrl[0], (ctrl[0] + ctrl[1]) / 2 + rng.normal(0, 2, 2), ctrl[1]])
        paths.append(np.clip(catmull_rom(np.asarray(ctrl, float)), lo, hi))
    return paths


def kanji_paths(rng: np.random.Generator, area: tuple[float, float, float, float], n: int) -> list[np.ndarray]:
    """Strokes of random KanjiVG characters (CC BY-SA 3.0) placed in the drawing area.

    Needs the `kanjivg` and `svg.path` packages (the train extra); the kiosk never uses it.
    """
    try:
        import importlib.metadata as md

        from svg.path import parse_path
        folder = md.distribution("kanjivg").locate_file("kanji")
    except Exception as exc:  # noqa: BLE001 - any missing piece means the same fix
        raise ValueError(
            "simulated.strokes = 'kanji' needs the kanjivg and svg.path packages:"
            ' pip install -e ".[train]"'
        ) from exc
    import re

    files = sorted(p for p in folder.iterdir() if p.suffix == ".svg" and "-" not in p.stem)
    x0, y0, w, h = area
    paths: list[np.ndarray] = []
    while len(paths) < n:
        svg = files[int(rng.integers(len(files)))].read_text(encoding="utf-8")
        ds = re.findall(r'<path[^>]* d="([^"]+)"', svg)
        if not ds:
            continue
        size = rng.uniform(0.35, 0.7) * w  # the character's box (109 units in KanjiVG)
        ox, oy = rng.uniform([x0, y0], [x0 + w - size, y0 + h - size])
        for d in ds:
            path = parse_path(d)
            n_pts = max(8, int(path.length() * size / 109))
            z = np.array([path.point(s) for s in np.linspace(0, 1, n_pts)])
            paths.append(np.stack([ox + z.real * size / 109, oy + z.imag * size / 109], 1))
    return paths[:n] if len(paths) > n else paths


def make_sheet(settings: SimulatedPenSettings, index: int, t_on: float) -> Sheet:
    """Sheet number `index` of the script, laid at t_on; its own RNG keeps it reproducible."""
    s = settings
    rng = np.random.default_rng([s.seed, 1, index])
    tw, th = s.width / s.scale, s.height / s.scale  # the table the camera sees, mm
    slack = np.maximum(np.array([tw, th]) - np.array(s.sheet_mm), 0) * 0.25
    pose = (tw / 2 + rng.uniform(-slack[0], slack[0]), th / 2 + rng.uniform(-slack[1], slack[1]),
            rng.normal(0, 0.02))
    n = int(rng.integers(s.strokes_per_sheet[0], s.strokes_per_sheet[1] + 1))
    make = kanji_paths if s.strokes == "kanji" else spline_paths
    paths = make(rng, s.drawing_area_mm, n)
    t = t_on + s.blank_s
    strokes, shifts = [], []
    for pts in paths:
        length = float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum())
        duration = max(0.1, length / (s.pen_speed * rng.uniform(0.7, 1.3)))
        wobble = np.cumsum(rng.normal(0, 0.08, len(pts)))
        wobble = (wobble - wobble.mean()) / (np.abs(wobble).max() + 1e-6)
        lo, hi = s.darkness  # (drawn only for a range, so fixed-darkness scripts stay as they were)
        pressure = np.clip(1 - s.pressure * (0.5 + 0.5 * wobble), 0.2, 1.0) * (rng.uniform(lo, hi) if lo < hi else lo)
        strokes.append(Stroke(pts, pressure, t, t + duration))
        t += duration + rng.uniform(*s.pause_s)
        if rng.random() < s.shift_chance:
            shifts.append((t, rng.normal(0, 6), rng.normal(0, 4), rng.normal(0, 0.03)))
            t += rng.uniform(*s.pause_s)
    t_off = t + rng.uniform(1.0, 3.0)
    return Sheet(t_on, t_off, pose, strokes, shifts, int(rng.integers(2**31)))


def fault_schedule(settings: SimulatedPenSettings, minute: int) -> list[Fault]:
    """The random faults of one minute of simulation time (seeded)."""
    rng = np.random.default_rng([settings.seed, 2, minute])
    count = rng.poisson(settings.faults_per_minute)
    return [
        Fault(str(rng.choice(FAULT_KINDS)), 60.0 * minute + rng.uniform(0, 60), rng.uniform(0.3, 2.0))
        for _ in range(count)
    ]


# --- the picture -------------------------------------------------------------------------


class SimulatedPenCamera:
    """A frame source (read / health / close) that draws the visitor's sheet."""

    def __init__(self, settings: SimulatedPenSettings | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = s = settings or SimulatedPenSettings()
        self.name = f"simulated:{s.seed}"
        self._clock = clock
        self._lock = threading.Lock()  # read() and health()
        self._script_lock = threading.Lock()  # the lazily written script
        self._sheets: list[Sheet] = []
        self._fault_minutes: dict[int, list[Fault]] = {}
        self._t0: float | None = None
        self._index = -1  # frame index of the last frame read
        self._closed = False
        self._meter = RateMeter()
        self._freeze = FreezeDetector(freeze_after=1.0)
        self._faults: dict[str, int] = {}
        self._frozen_image: np.ndarray | None = None
        self._last_t_capture: float | None = None
        self._in_fault: str | None = None
        # fixed in camera coordinates: the light
        h, w = s.height, s.width
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        rad2 = ((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / ((w / 2) ** 2 + (h / 2) ** 2)
        light = (1 - s.vignetting * rad2) * (1 - s.led_gradient * yy / h)
        self._light = light.astype(np.float32)
        self._table_to_camera = self._make_table_to_camera()
        rng = np.random.default_rng([s.seed, 3])
        self._noise = [
            np.clip(128 + s.noise * rng.standard_normal((h, w), np.float32), 0, 255).astype(np.uint8)
            for _ in range(NOISE_POOL)
        ]
        # render cache: the lit sheet for one pose, and the inked picture for one state
        self._base_key = None
        self._base: np.ndarray | None = None
        self._ink: np.ndarray | None = None  # pen coverage 0..255, camera px
        self._ink_drawn: list[int] = []
        self._picture_key = None
        self._picture: np.ndarray | None = None

    # geometry ----------------------------------------------------------------------------

    def _make_table_to_camera(self) -> np.ndarray:
        s = self.settings
        k = s.scale
        w, h = s.width, s.height
        scale = np.array([[k, 0, 0], [0, k, 0], [0, 0, 1]], float)
        # a slight keystone about the image centre: the camera is not quite square to the table
        c = np.array([[1, 0, w / 2], [0, 1, h / 2], [0, 0, 1]], float)
        keystone = np.array([[1, 0, 0], [0, 1, 0], [0, s.tilt / h, 1]], float)
        return c @ keystone @ np.linalg.inv(c) @ scale

    def sheet_to_camera(self, t: float | None = None) -> np.ndarray | None:
        """Homography from sheet mm to camera px at time t (None when no sheet lies there)."""
        sheet = self._sheet_at(self._now() if t is None else t)
        if sheet is None:
            return None
        t = self._now() if t is None else t
        x, y, a = sheet.pose_at(t)
        sw, sh = self.settings.sheet_mm
        ca, sa = math.cos(a), math.sin(a)
        place = np.array([[ca, -sa, x], [sa, ca, y], [0, 0, 1]]) @ np.array(
            [[1, 0, -sw / 2], [0, 1, -sh / 2], [0, 0, 1]]
        )
        return self._table_to_camera @ place

    def sheet_to_sketch(self, resolution: int) -> np.ndarray:
        """Homography from sheet mm to the R x R sketch grid of the drawing area."""
        x0, y0, side, _ = self.settings.drawing_area_mm
        k = resolution / side
        return np.array([[k, 0, -k * x0 - 0.5], [0, k, -k * y0 - 0.5], [0, 0, 1]])

    def camera_to_sketch(self, resolution: int, t: float | None = None) -> np.ndarray:
        """The crop homography for `capture.binarize`: camera px -> sketch grid.

        Between sheets (no sheet on the table) it is the last sheet's placement.
        """
        t = self._now() if t is None else t
        m = self.sheet_to_camera(t)
        if m is None:
            sheet = self._last_sheet_before(t)
            m = self.sheet_to_camera(sheet.t_off - 1e-6)
        return self.sheet_to_sketch(resolution) @ np.linalg.inv(m)

    # the script ----------------------------------------------------------------------------

    def _ensure_script(self, t: float) -> None:
        # The loop asks for camera_to_sketch from another thread than the one reading.
        with self._script_lock:
            while not self._sheets or self._sheets[-1].t_off + self.settings.away_s <= t:
                t_on = self._sheets[-1].t_off + self.settings.away_s if self._sheets else 0.0
                self._sheets.append(make_sheet(self.settings, len(self._sheets), t_on))

    def _last_sheet_before(self, t: float) -> Sheet:
        self._ensure_script(t)
        return next(s for s in reversed(self._sheets) if s.t_on <= t)

    def _sheet_at(self, t: float) -> Sheet | None:
        sheet = self._last_sheet_before(t)
        return sheet if t < sheet.t_off else None

    def fault_at(self, t: float) -> str | None:
        """The fault in force at simulation time t, if any."""
        faults = list(self.settings.faults)
        if self.settings.faults_per_minute:
            minute = int(t // 60)
            for m in (minute - 1, minute):
                if m >= 0:
                    with self._script_lock:
                        if m not in self._fault_minutes:
                            self._fault_minutes[m] = fault_schedule(self.settings, m)
                    faults += self._fault_minutes[m]
        for f in faults:
            if f.start <= t < f.start + f.duration:
                return f.kind
        return None

    # rendering -----------------------------------------------------------------------------

    def _lit_sheet(self, sheet: Sheet | None, m: np.ndarray | None) -> np.ndarray:
        """Paper (or bare window) under the IR light, before ink and noise."""
        s = self.settings
        key = None if sheet is None else (id(sheet), m.tobytes())
        if key == self._base_key and self._base is not None:
            return self._base
        table = np.full((s.height, s.width), s.table_level, np.float32)
        if sheet is not None:
            rng = np.random.default_rng(sheet.texture_seed)
            tex_px = 2.0  # texture resolution, px per mm of paper
            sw, sh = (int(v * tex_px) for v in s.sheet_mm)
            fibres = cv2.GaussianBlur(rng.normal(0, 1, (sh, sw)).astype(np.float32), (0, 0), 1.5)
            clouds = cv2.GaussianBlur(rng.normal(0, 1, (sh, sw)).astype(np.float32), (0, 0), 12)
            tex = 1 + s.paper_texture * (fibres / (fibres.std() + 1e-6) + clouds / (clouds.std() + 1e-6)) / 2
            to_cam = m @ np.diag([1 / tex_px, 1 / tex_px, 1])
            paper = cv2.warpPerspective(tex * s.paper_level, to_cam, (s.width, s.height),
                                        flags=cv2.INTER_LINEAR, borderValue=-1)
            on = paper >= 0
            table[on] = paper[on]
        self._base_key = key
        self._base = np.clip(table * self._light, 0, 255).astype(np.uint8)
        return self._base

    def _draw_strokes(self, layer: np.ndarray, sheet: Sheet, m: np.ndarray, t: float,
                      thickness: int, anti_alias: bool = True) -> list[int]:
        """Draw the strokes' parts drawn by time t into `layer` through homography m.

        Always the whole of them, so the picture depends on t alone (drawing onto earlier
        anti-aliased edges again would darken them).
        """
        drawn, shift_bits = [], 4
        for stroke in sheet.strokes:
            n = stroke.drawn(t)
            drawn.append(n)
            if n < 2:
                continue
            pts = cv2.perspectiveTransform(stroke.points[None, :n], m)[0]
            pts = np.round(pts * (1 << shift_bits)).astype(np.int32)
            # runs of 16 points share one pen pressure (a colour per segment is too slow)
            for j in range(0, n - 1, 16):
                colour = float(255 * stroke.pressure[j:j + 17].mean())
                cv2.polylines(layer, [pts[j:j + 17]], False, colour, thickness,
                              cv2.LINE_AA if anti_alias else cv2.LINE_8, shift_bits)
        return drawn

    def render(self, t: float) -> np.ndarray:
        """The camera picture at simulation time t (uint8 gray, height x width), no faults."""
        s = self.settings
        sheet = self._sheet_at(t)
        m = self.sheet_to_camera(t) if sheet is not None else None
        base = self._lit_sheet(sheet, m)
        picture_key = None
        if sheet is not None:
            drawn_now = [st.drawn(t) for st in sheet.strokes]
            picture_key = (id(sheet), m.tobytes(), tuple(drawn_now))
            if picture_key != self._picture_key:
                self._ink = np.zeros((s.height, s.width), np.uint8)
                thickness = max(1, int(round(s.pen_mm * s.scale)))
                self._ink_drawn = self._draw_strokes(self._ink, sheet, m, t, thickness)
        if picture_key != self._picture_key or self._picture is None:
            if sheet is not None and any(self._ink_drawn):
                # the paper's diffusion blurs the ink; a line blocks ink_contrast of the light
                ink = cv2.GaussianBlur(self._ink, (0, 0), s.blur_px)
                shade = cv2.convertScaleAbs(ink, alpha=-s.ink_contrast, beta=255)
                self._picture = cv2.multiply(base, shade, scale=1 / 255)
            else:
                self._picture = base
            self._picture_key = picture_key
        noise = self._noise[int(round(t * s.fps)) % NOISE_POOL]
        return cv2.addWeighted(self._picture, 1.0, noise, 1.0, -128.0)

    def truth_mask(self, t: float | None = None) -> np.ndarray:
        """Ground truth in camera px: True where the pen has laid ink by time t."""
        s = self.settings
        t = self._now() if t is None else t
        mask = np.zeros((s.height, s.width), np.uint8)
        sheet = self._sheet_at(t)
        if sheet is not None:
            thickness = max(1, int(round(s.pen_mm * s.scale)))
            self._draw_strokes(mask, sheet, self.sheet_to_camera(t), t, thickness,
                               anti_alias=False)
        return mask > 0

    def truth_sketch(self, resolution: int, t: float | None = None) -> np.ndarray:
        """Ground truth on the sketch grid (uint8, ink 0, paper 255): the ideal binarization."""
        t = self._now() if t is None else t
        layer = np.zeros((resolution, resolution), np.uint8)
        sheet = self._sheet_at(t)
        if sheet is not None:
            px = self.settings.pen_mm * resolution / self.settings.drawing_area_mm[2]
            self._draw_strokes(layer, sheet, self.sheet_to_sketch(resolution), t,
                               max(1, int(round(px))), anti_alias=False)
        return np.where(layer > 0, np.uint8(0), np.uint8(255))

    def sheet_present(self, t: float | None = None) -> bool:
        return self._sheet_at(self._now() if t is None else t) is not None

    # the frame source ------------------------------------------------------------------------

    def _now(self) -> float:
        """Simulation time of the last frame read (0 before the first)."""
        return max(self._index, 0) / self.settings.fps

    def read(self, timeout: float = 1.0) -> Frame | None:
        """The next frame; None while the camera has 'vanished' (or after close)."""
        s = self.settings
        with self._lock:
            if self._closed:
                return None
            if s.pace:
                if self._t0 is None:
                    self._t0 = self._clock()
                # the newest frame the camera has made by now (a slow reader skips frames)
                due = self._t0 + (self._index + 1) / s.fps
                wait = due - self._clock()
                if wait > timeout:
                    time.sleep(max(timeout, 0))
                    return None
                if wait > 0:
                    time.sleep(wait)
                self._index = max(self._index + 1, int((self._clock() - self._t0) * s.fps))
            else:
                self._index += 1
            t = self._index / s.fps
            fault = self.fault_at(t)
            if fault != self._in_fault and fault is not None:
                self._faults[fault] = self._faults.get(fault, 0) + 1
            self._in_fault = fault
            if fault == "vanish":
                self._frozen_image = None
                if s.pace:
                    time.sleep(min(timeout, 1 / s.fps))
                return None
            if fault == "freeze" and self._frozen_image is not None:
                image = self._frozen_image
            else:
                image = self.render(t)
                if fault == "freeze":
                    self._frozen_image = image
                elif fault == "black":
                    image = np.zeros_like(image)
                elif fault == "white":
                    image = np.full_like(image, 255)
                elif fault == "wrong_size":
                    image = cv2.resize(image, (s.width // 2, s.height // 2))
                elif fault == "wrong_dtype":
                    image = image.astype(np.float32) / 255.0
            if fault != "freeze":
                self._frozen_image = None
            t_capture = self._clock()
            self._meter.tick(t_capture)
            if image.dtype == np.uint8:
                self._freeze.update(image, t)  # simulation time: same verdict at any speed
            self._last_t_capture = t_capture
            return Frame(image, t_capture, self._index, self.name)

    def health(self) -> SourceHealth:
        with self._lock:
            now = self._clock()
            age = None if self._last_t_capture is None else now - self._last_t_capture
            if self._closed:
                state = "closed"
            elif self._in_fault == "vanish":
                state = "reconnecting"
            elif self._freeze.frozen:
                state = "frozen"
            else:
                state = "ok"
            return SourceHealth(
                state=state, fps=self._meter.rate(now), faults=dict(self._faults),
                last_frame_age=age, frames=self._index + 1, source=self.name,
            )

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def __enter__(self) -> "SimulatedPenCamera":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
