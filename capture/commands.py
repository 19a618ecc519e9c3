"""`newsnow camera check|record`: see what the table's camera delivers, and record it.

`check` reads the camera (or the simulated pen camera) for a few seconds through the same
source the table uses, prints its health (state, frame rate, faults) and writes the last
frame beside its binarized sketch, so an operator sees at once whether the pen lines
come through. `record` writes the camera's gray frames to an MJPEG .avi that
`[camera] source = "video"` (capture.video.VideoFileSource) replays.
"""
from __future__ import annotations

import json
import re


def _size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise ValueError(f"--size {text!r}: give WxH in pixels, e.g. 1280x720")
    return int(m.group(1)), int(m.group(2))


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "camera", help="check or record the table's IR camera",
        description="Read the table's camera (or the simulated pen camera) for a while.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, help_text in (("check", "print the camera's health, write its last frame and sketch"),
                            ("record", "record the camera's gray frames to an MJPEG .avi for replay")):
        p = actions.add_parser(name, help=help_text)
        p.add_argument("--device", default="0", help="camera index or device path (default 0)")
        p.add_argument("--simulated", action="store_true", help="use the simulated pen camera instead")
        p.add_argument("--seed", type=int, default=0, help="the simulated pen's seed")
        p.add_argument("--size", type=_size, default=(1280, 720), help="camera mode WxH (default 1280x720)")
        p.add_argument("--fps", type=float, default=30.0, help="frames per second (default 30)")
        p.add_argument("--exposure", type=float, help="manual exposure, driver units")
        p.add_argument("--gain", type=float, help="manual gain, driver units")
        p.add_argument("--seconds", type=float, default=5.0 if name == "check" else 30.0,
                       help="how long to read")
        if name == "check":
            p.add_argument("--out", default=".", help="folder for frame.png and sketch.png (default .)")
            p.set_defaults(handler=check)
        else:
            p.add_argument("--out", required=True, help="the .avi file to write")
            p.set_defaults(handler=record)


def open_source(args):
    """The source the arguments name: the real camera, or the simulated pen camera."""
    if args.simulated:
        from capture.simulated import SimulatedPenCamera, SimulatedPenSettings

        return SimulatedPenCamera(SimulatedPenSettings(width=args.size[0], height=args.size[1],
                                                       fps=args.fps, seed=args.seed))
    from capture.camera import CameraSettings, CameraSource

    device = int(args.device) if args.device.isdigit() else args.device
    return CameraSource(CameraSettings(device=device, width=args.size[0], height=args.size[1],
                                       fps=args.fps, exposure=args.exposure, gain=args.gain,
                                       give_up_after=3))


def _frames(source, seconds: float):
    """Frames read for `seconds` (uint8 gray only; other pictures are counted as faults)."""
    import time

    import numpy as np

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        frame = source.read(timeout=0.5)
        if frame is not None and frame.image.dtype == np.uint8 and frame.image.ndim == 2:
            yield frame
        elif source.health().state == "failed":
            raise OSError(f"{source.name}: the camera does not open; check the device and its cable")


def check(args) -> int:
    from pathlib import Path

    import cv2

    from capture.binarize import BinarizeParams, binarize, ink_fraction

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    last = None
    with open_source(args) as source:
        for last in _frames(source, args.seconds):
            pass
        health = source.health().to_dict()
        to_sketch = source.camera_to_sketch(256) if hasattr(source, "camera_to_sketch") else None
    if last is None:
        print(json.dumps(health))
        raise OSError(f"{health['source']}: no frame in {args.seconds:g} s; check the device and its cable")
    sketch = binarize(last.image, BinarizeParams(), to_sketch)
    cv2.imwrite(str(out / "frame.png"), last.image)
    cv2.imwrite(str(out / "sketch.png"), sketch)
    health["frame_size"] = list(last.image.shape[::-1])
    health["ink_fraction"] = round(ink_fraction(sketch), 4)
    print(json.dumps(health))
    return 0 if health["state"] in ("ok", "stale") else 1


def record(args) -> int:
    import cv2

    path = str(args.out)
    writer, size, count, skipped = None, None, 0, 0
    try:
        with open_source(args) as source:
            for frame in _frames(source, args.seconds):
                h, w = frame.image.shape
                if writer is None:
                    size = (w, h)
                    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), args.fps, size, False)
                    if not writer.isOpened():
                        raise OSError(f"{path}: cannot write a video there; check the folder and the .avi name")
                if (w, h) != size:  # the camera changed mode mid-way: a video has one size
                    skipped += 1
                    continue
                writer.write(frame.image)
                count += 1
            health = source.health().to_dict()
    finally:
        if writer is not None:
            writer.release()
    if not count:
        raise OSError(f"{args.device}: no frame recorded in {args.seconds:g} s; check the camera")
    print(json.dumps({"file": path, "frames": count, "skipped": skipped,
                      **{k: health[k] for k in ("state", "fps", "faults")}}))
    return 0
