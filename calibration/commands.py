"""`newsnow calibrate sheet|camera|projector|check`: the operator's calibration steps.

Order on a new or moved table: print the sheet, tape it on the table, `camera`, then
`projector` (without moving the sheet in between), then `check`. docs/calibration.md
walks through it.
"""
from __future__ import annotations

import json
import re

DEFAULT_FILE = "calibration.json"


def _mode(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise ValueError(f"mode {text!r}: give WxH in pixels, e.g. 1920x1080")
    return int(m.group(1)), int(m.group(2))


def _area(text: str) -> tuple[float, float, float, float]:
    parts = text.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or values[2] <= 0 or values[3] <= 0:
        raise ValueError(f"--area {text!r}: give X,Y,W,H in table mm, e.g. 20,20,257,380")
    return values


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "calibrate", help="calibrate the table: marker sheet, camera, projector, check",
        description="Calibrate camera -> table -> projector with a printed marker sheet.",
    )
    steps = parser.add_subparsers(dest="step", metavar="STEP", required=True)

    p = steps.add_parser("sheet", help="write the printable marker sheet (PNG with dpi, or PDF)")
    p.add_argument("--size", default="A3", help="A3, A4, ... (portrait) or WxH in mm (default A3)")
    p.add_argument("--out", required=True, help="sheet.png or sheet.pdf")
    p.add_argument("--dpi", type=int, default=300, help="print resolution (default 300)")
    p.add_argument("--layout", help="also write the corners' and marks' table mm to this JSON file")
    p.set_defaults(handler=sheet)

    p = steps.add_parser("camera", help="camera -> table from a frame of the sheet on the table")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", help="a photo from the table's camera, at its running resolution")
    source.add_argument("--device", type=int, help="OpenCV camera index to grab a frame from")
    p.add_argument("--mode", type=_mode, help="camera mode WxH for --device (the table's camera.resolution)")
    p.add_argument("--size", default="A3", help="the printed sheet's size, as given to `calibrate sheet`")
    p.add_argument("--out", default=DEFAULT_FILE, help=f"calibration file to write (default {DEFAULT_FILE})")
    p.add_argument("--max-error", type=float, default=1.5, help="refuse an RMS error over this, camera px")
    p.add_argument("--area", help="drawing area X,Y,W,H in table mm (default: the sheet less 15 mm)")
    p.add_argument("--square-area", action="store_true",
                   help="keep the drawings' aspect: use the largest square centred in the drawing area "
                        "(the sketch is square; any other area is stretched into it)")
    p.add_argument("--overlay", help="write the frame with the found corners and the sheet outline here")
    p.add_argument("--lens-images", nargs="+", metavar="PHOTO",
                   help="4+ photos of the sheet at different tilts, same camera mode: fit lens distortion")
    p.add_argument("--no-lens", action="store_true", help="drop a lens model kept from the old file")
    p.set_defaults(handler=camera)

    p = steps.add_parser("projector", help="projector -> table: lay projected crosses on the printed marks")
    p.add_argument("--file", default=DEFAULT_FILE, help="calibration file with the camera step (updated)")
    p.add_argument("--display", type=int, default=0, help="the projector's display index")
    p.add_argument("--window", type=_mode, help="a window WxH instead of full screen (for a desk test)")
    p.add_argument("--points", type=int, choices=(4, 8), default=4, help="4 corner marks, or 8 for a least-squares fit")
    p.set_defaults(handler=projector)

    p = steps.add_parser("check", help="project the sheet outline and a grid; print residuals and age")
    p.add_argument("--file", default=DEFAULT_FILE, help="calibration file")
    p.add_argument("--out", help="write the check image here instead of showing it")
    p.add_argument("--headless", action="store_true", help="print only, show nothing")
    p.add_argument("--display", type=int, default=0, help="the projector's display index")
    p.add_argument("--camera-mode", type=_mode, help="refuse unless the file was made for this camera mode")
    p.add_argument("--projector-mode", type=_mode, help="refuse unless the file was made for this display mode")
    p.set_defaults(handler=check)


def sheet(args) -> int:
    from calibration.sheet import parse_size, write_sheet

    size = parse_size(args.size)
    out, layout = write_sheet(size, args.out, dpi=args.dpi)
    print(f"wrote {out}: {size[0]:g} x {size[1]:g} mm at {args.dpi} dpi; print it at 100 % (actual size)")
    print(f"board {layout.squares[0]} x {layout.squares[1]} squares of {layout.square_mm:.3f} mm, "
          f"markers {layout.marker_mm:.3f} mm, top-left at {layout.origin_mm[0]:.3f}, {layout.origin_mm[1]:.3f} mm")
    for n, (x, y) in enumerate(layout.alignment_marks_mm(8), start=1):
        print(f"  mark {n}: {x:g}, {y:g} mm")
    if args.layout:
        data = {**layout.to_dict(),
                "chessboard_corners_mm": layout.chessboard_corners_mm().round(4).tolist(),
                "marker_corners_mm": {str(k): v.round(4).tolist() for k, v in layout.marker_corners_mm().items()},
                "alignment_marks_mm": layout.alignment_marks_mm(8).tolist()}
        with open(args.layout, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
        print(f"wrote {args.layout}")
    return 0


def camera(args) -> int:
    from pathlib import Path

    import cv2

    import dataclasses

    from calibration.camera import calibrate_camera, grab_frame, overlay, to_calibration
    from calibration.geometry import square_area
    from calibration.record import CalibrationError, load, save
    from calibration.sheet import parse_size

    def read(path):
        image = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise CalibrationError(f"{path}: cannot read this image (missing, or not an image file)")
        return image

    size = parse_size(args.size)
    frame = read(args.image) if args.image else grab_frame(args.device, args.mode)
    previous = None
    if Path(args.out).exists():
        try:
            previous = load(args.out, require_projector=False)
        except CalibrationError as exc:
            print(f"note: the old {args.out} is not reused ({exc})")
    lens = None
    if args.lens_images:
        from calibration.lens import calibrate_lens

        lens = calibrate_lens([read(p) for p in args.lens_images], size)
        print(f"lens from {lens.views} views: RMS {lens.rms_px:.3f} px")
    elif previous is not None and previous.lens is not None and not args.no_lens:
        if tuple(previous.lens.mode) == (frame.shape[1], frame.shape[0]):
            lens = previous.lens
            print(f"kept the lens model of the old {args.out} (--no-lens drops it)")
    result = calibrate_camera(frame, size, max_error_px=args.max_error, lens=lens)
    cal = to_calibration(result, size, _area(args.area) if args.area else None, previous)
    if args.square_area:
        cal = dataclasses.replace(cal, drawing_area_mm=square_area(cal.drawing_area_mm))
    save(cal, args.out)
    _, _, area_w, area_h = cal.drawing_area_mm
    stretch = max(area_w, area_h) / min(area_w, area_h)
    print(f"drawing area {area_w:g} x {area_h:g} mm" + (
        f": stretched {stretch:.2f}:1 into the square sketch (the model sees strokes "
        f"{'wider' if area_h > area_w else 'taller'} than drawn); --square-area keeps the aspect"
        if stretch > 1.01 else ": square, as the sketch"))
    print(f"camera -> table: {result.inliers} of {result.corners} corners ({result.total} on the sheet), "
          f"RMS {result.rms_px:.3f} px = {result.rms_mm:.3f} mm; blur {result.blur:.0f}, glare {result.glare:.1%}")
    print(f"wrote {args.out} (camera mode {cal.camera_mode[0]}x{cal.camera_mode[1]})")
    if cal.projector_to_table is not None:
        print("kept the projector step from the old file: if the sheet moved, run `newsnow calibrate projector`")
    else:
        print("next: `newsnow calibrate projector` without moving the sheet")
    if args.overlay:
        cv2.imwrite(args.overlay, overlay(frame, result, size))
        print(f"wrote {args.overlay}")
    return 0


def projector(args) -> int:
    import pygame

    from calibration.check import check_lines_mm
    from calibration.projector import Alignment, open_screen, run
    from calibration.record import load, save
    from calibration.sheet import SheetLayout

    cal = load(args.file, require_projector=False)
    layout = SheetLayout.for_sheet(cal.sheet_mm)
    marks = layout.alignment_marks_mm(args.points)
    screen = open_screen(args.display, args.window)
    try:
        mode = screen.get_size()
        initial = None
        if cal.projector_to_table is not None and tuple(cal.projector_mode) == tuple(mode):
            from calibration.record import apply_homography

            initial = apply_homography(cal.table_to_projector(), marks)  # start from the last fit
        alignment = Alignment(marks, mode, initial)
        outline = check_lines_mm(cal)["sheet"]
        if not run(alignment, screen, outline_mm=outline):
            print("cancelled: nothing written")
            return 1
    finally:
        pygame.display.quit()
    h, residuals = alignment.projector_to_table()
    save(cal.with_projector(h, mode, residuals), args.file)
    print(f"projector -> table from {residuals['projector_points']} marks "
          f"(RMS {residuals['projector_rms_mm']:.3f} mm); wrote {args.file}")
    return 0


def check(args) -> int:
    from calibration.check import describe, render_check
    from calibration.record import load

    cal = load(args.file, camera_mode=args.camera_mode, projector_mode=args.projector_mode,
               require_projector=not (args.headless and not args.out))
    print(f"{args.file}: " + describe(cal))
    if args.headless and not args.out:
        return 0
    image = render_check(cal)
    if args.out:
        import cv2

        if not cv2.imwrite(args.out, image):
            raise OSError(f"{args.out}: cannot write the check image (folder missing, or unknown suffix)")
        print(f"wrote {args.out}")
        return 0
    _show(image, args.display)
    return 0


def _show(image, display: int) -> None:
    """Full screen on the projector until a key or a click."""
    import numpy as np
    import pygame

    from calibration.projector import open_screen

    from calibration.record import CalibrationError

    screen = open_screen(display)
    try:
        if screen.get_size() != (image.shape[1], image.shape[0]):
            w, h = screen.get_size()
            raise CalibrationError(
                f"display {display} runs {w}x{h}, the calibration's projector_mode is "
                f"{image.shape[1]}x{image.shape[0]}: set the mode back or calibrate the projector again")
        rgb = np.ascontiguousarray(image[:, :, ::-1].swapaxes(0, 1))
        surface = pygame.surfarray.make_surface(rgb)
        screen.blit(surface, (0, 0))
        pygame.display.flip()
        print("showing the check on the projector: press a key to close")
        clock = pygame.time.Clock()
        while not any(e.type in (pygame.KEYDOWN, pygame.MOUSEBUTTONDOWN, pygame.QUIT) for e in pygame.event.get()):
            clock.tick(30)
    finally:
        pygame.display.quit()
