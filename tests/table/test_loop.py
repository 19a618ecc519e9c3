"""The live loop with controlled parts: change detection, faults, hand-offs, idle mode."""
from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from calibration import Calibration
from capture.frames import Frame
from config import Config
from table.loop import Table, frame_problem
from render.warp import Warp
from tests.table.fakes import CAMERA, R, FakeBackend, NullDisplay, ScriptedSource, paper, threshold_sketcher

DISPLAY = (96, 64)
BOX = (60, 40, 100, 80)  # ink in the middle of the camera frame
BOX2 = (62, 20, 98, 30)


def make_table(script, backend=None, mode="crossfade", display=None, **sections) -> Table:
    data = {
        "camera": {"resolution": list(CAMERA)},
        "display": {"mode": "headless", "size": list(DISPLAY), "fps": 60},
        "idle": {"after_s": 30},
        "transition": {"duration_s": 0.1},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    config = Config.from_dict(data)
    calibration = Calibration.uncalibrated(CAMERA, DISPLAY)
    warp = Warp(calibration.table_area_to_projector(R), DISPLAY)
    return Table(config, ScriptedSource(script), threshold_sketcher, backend or FakeBackend(),
                 display or NullDisplay(DISPLAY), warp, transition=mode, seed=0)


def test_frozen_sheet_is_inferred_once():
    """A sheet that does not change is answered once; every later frame is skipped, not inferred."""
    backend = FakeBackend()
    table = make_table(lambda t: paper([BOX]), backend)
    status = table.run(1.0)
    assert backend.calls["sketch_to_drawing"] == 1
    assert status.inferences == 1
    assert status.skipped_unchanged > 20
    assert status.faults == {}


def test_new_stroke_is_answered_and_stamped():
    """A stroke added later is inferred again; its answer is displayed with capture->display latency."""
    display = NullDisplay(DISPLAY)
    table = make_table(lambda t: paper([BOX] if t < 0.5 else [BOX, BOX2]), display=display)
    status = table.run(1.0)
    assert status.inferences == 2
    assert status.latency_ms["n"] == 2 and status.stroke_latency_ms["n"] == 2
    assert 0 < status.latency_ms["p50"] < 200
    assert status.stroke_latency_ms["max"] >= status.latency_ms["max"] - 1e-6
    # the fake model inverts the sketch: ink comes back bright, so the projector is not black
    assert display.last.max() > 200


def test_camera_unplug_and_return():
    """A camera that raises OSError for a while: faults counted, display goes on, new strokes answered after."""
    def script(t):
        if 0.4 < t < 0.9:
            raise OSError("camera unplugged")
        return paper([BOX] if t < 0.4 else [BOX, BOX2])

    table = make_table(script)
    status = table.run(1.5)
    assert status.faults.get("camera", 0) >= 2
    assert status.inferences == 2  # the stroke drawn while the camera was away is answered on return
    assert status.display_fps > 40  # the display never waited for the camera


def test_vanished_camera_counts_a_stall():
    """A source that returns no frames for more than a second is counted as a stalled camera."""
    table = make_table(lambda t: paper([BOX]) if t < 0.2 or t > 1.5 else None)
    status = table.run(1.8)
    assert status.faults.get("camera_stalled") == 1
    assert status.frames_displayed > 60


def test_bad_frames_are_counted_and_skipped():
    """Wrong size, wrong type, all black, all white: each is a fault; good frames in between still work."""
    bad = [np.zeros((10, 10), np.uint8) + 100, paper([BOX]).astype(np.float32),
           np.zeros(CAMERA[::-1], np.uint8), np.full(CAMERA[::-1], 255, np.uint8)]
    count = {"n": 0}

    def script(t):
        count["n"] += 1
        return bad[count["n"] % 5] if count["n"] % 5 < 4 else paper([BOX])

    status = make_table(script).run(1.0)
    assert status.faults.get("bad_frame", 0) >= 8
    assert set(status.faults) == {"bad_frame"}
    assert status.inferences == 1


@pytest.mark.parametrize("image,why", [
    (np.zeros((120, 160), np.uint8), "all black"),
    (np.full((120, 160), 255, np.uint8), "all white"),
    (np.zeros((120, 160, 3), np.uint8) + 100, "uint8 gray"),
    (np.zeros((60, 80), np.uint8) + 100, "160x120"),
])
def test_frame_problem_names_the_problem(image, why):
    """frame_problem says what is wrong with a frame in words an operator can act on."""
    class F:
        pass

    f = F()
    f.image = image
    assert why in frame_problem(f, CAMERA)


def test_inference_exception_keeps_the_loop_running():
    """A model that raises: faults counted, the display keeps its rate and nothing propagates."""
    status = make_table(lambda t: paper([BOX] if t < 0.3 else [BOX, BOX2]), FakeBackend(fail=True)).run(1.0)
    assert status.faults.get("inference", 0) >= 2
    assert status.display_fps > 40
    assert status.inferences == 0


def test_stalled_model_never_blocks_the_display():
    """A model taking 0.6 s per sketch and a sketch changing every frame: display keeps ~60 fps,
    the capture thread drops stale sketches instead of queueing them."""
    def script(t):  # a box sliding across the sheet: every frame a new sketch
        x = 20 + int(t * 60) % 100
        return paper([(x, 40, x + 20, 80)])

    backend = FakeBackend(delay_s=0.6)
    status = make_table(script, backend).run(1.5)
    assert status.display_fps > 45
    assert status.dropped_stale > 10
    assert 1 <= backend.calls["sketch_to_drawing"] <= 3


def test_blank_sheet_shows_idle_not_an_error():
    """An empty sheet goes straight to idle: the latent wander is generated and shown, no fault."""
    display = NullDisplay(DISPLAY)
    backend = FakeBackend()
    status = make_table(lambda t: paper(), backend, display=display, idle={"fps": 20}).run(1.0)
    assert status.idle and status.state == "stopped"
    assert status.generations >= 10 and backend.calls["map"] >= 2
    assert status.inferences == 0 and status.faults == {}
    assert display.last.max() > 0  # the projector shows the wander, not black


def test_idle_after_timeout_and_back_at_the_next_stroke():
    """No change for idle.after_s -> idle; a new stroke -> back to the visitor's sketch."""
    table = make_table(lambda t: paper([BOX] if t < 1.0 else [BOX, BOX2]), idle={"after_s": 0.3, "fps": 20})
    seen = []

    def watch():
        while table.stats.snapshot().state != "stopped":
            seen.append(table.status().idle)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    status = table.run(1.6)
    watcher.join()
    # drawing, then idle, then drawing again (and idle again 0.3 s after that stroke)
    changes = [a for a, b in zip(seen, seen[1:]) if a != b]
    assert changes[:2] == [False, True], changes
    assert status.inferences == 2 and status.generations > 3


def test_latent_transition_generates_each_step():
    """In latent mode a new sketch is encoded once and its W+ path generated in latent_steps frames."""
    backend = FakeBackend()
    table = make_table(lambda t: paper([BOX] if t < 0.4 else [BOX, BOX2]), backend, mode="latent",
                       transition={"latent_steps": 5, "duration_s": 0.2})
    status = table.run(1.0)
    assert backend.calls["encode"] == 2 and status.inferences == 2
    # the attract wander from the first frame, then each answer reached in 5 generated steps
    # (the first from the wander's W+), every generated frame counted
    assert backend.calls["generate"] == status.generations >= 2 * 5
    assert status.stroke_latency_ms["n"] == 2


def test_hooks_first_frame_once_and_every_frame():
    """on_first_frame runs once; on_display_frame once per projector frame shown."""
    table = make_table(lambda t: paper([BOX]))
    calls = {"first": 0, "frame": 0}
    table.on_first_frame.append(lambda: calls.__setitem__("first", calls["first"] + 1))
    table.on_display_frame.append(lambda pulse: calls.__setitem__("frame", calls["frame"] + 1))
    status = table.run(0.5)
    assert calls["first"] == 1
    assert calls["frame"] == status.frames_displayed > 20


def test_composite_lays_the_answered_strokes_over_the_drawing():
    """With tone.composite_strokes the visitor's ink is darkened into the drawing it answers."""
    # the fake model inverts the sketch: its ink comes back white; the composite makes it black again
    plain = make_table(lambda t: paper([BOX]))
    plain.run(0.6)
    composite = make_table(lambda t: paper([BOX]), tone={"composite_strokes": True, "stroke_opacity": 1.0})
    composite.run(0.6)
    ink = composite.latest_sketch.image == 0
    assert ink.any()
    assert plain.latest_picture[ink].min() == 255
    assert composite.latest_picture[ink].max() == 0
    assert np.array_equal(composite.latest_picture[~ink], plain.latest_picture[~ink])


def test_new_ink_ignores_edge_flicker_and_sees_a_new_stroke():
    """Line edges toggling (a still sheet's flicker) count 0; a stroke away from the lines counts its pixels."""
    from table.loop import new_ink_pixels

    sheet = np.full((64, 64), 255, np.uint8)
    sheet[30:32, 10:50] = 0  # a line
    flicker = sheet.copy()
    flicker[29, 12:40:3] = 0  # edge pixels come and go
    flicker[31, 20:30] = 255
    assert new_ink_pixels(sheet, flicker) == 0
    stroke = flicker.copy()
    stroke[5:8, 5] = 0  # three pixels of a new stroke on empty paper
    assert new_ink_pixels(sheet, stroke) == 3
    assert new_ink_pixels(stroke, sheet) == 3  # and an erased one


class GarbageBackend(FakeBackend):
    """A model that answers with NaN, +inf or a picture of the wrong size."""

    def __init__(self, garbage):
        super().__init__()
        self.garbage = garbage

    def sketch_to_drawing(self, x):
        super().sketch_to_drawing(x)
        return self.garbage


@pytest.mark.parametrize("garbage,why", [
    (np.full((1, 1, R, R), np.nan, np.float32), "non-finite"),
    (np.full((1, 1, R, R), np.inf, np.float32), "non-finite"),
    (np.zeros((1, 1, R // 2, R // 2), np.float32), "shape"),
])
def test_bad_model_output_is_a_fault_and_the_table_says_so(garbage, why):
    """NaN, +inf or a wrong-sized output is never projected: each is an inference fault, and
    after a few in a row the table's problems say 'model: ... bad outputs in a row'."""
    def sheet(t):  # a new stroke every 0.1 s, so the model is asked again and again
        return paper([BOX] if int(t * 10) % 2 else [BOX2])
    table = make_table(sheet, GarbageBackend(garbage))
    status = table.run(1.0)
    assert status.faults.get("inference", 0) >= 3
    assert len(status.problems) == 1 and status.problems[0].startswith("model:") and why in status.problems[0]


def test_a_good_output_clears_the_model_problem():
    """One good drawing after bad ones: no problem left."""
    from table.stats import TableStats
    stats = TableStats()
    for _ in range(5):
        stats.count_bad_output("3 non-finite values in the output")
    assert stats.snapshot().problems
    stats.count_good_output()
    assert stats.snapshot().problems == []


@pytest.mark.parametrize("offset_s", [-3600.0, 3 * 3600.0])
def test_frames_stamped_on_another_clock_get_the_arrival_time(offset_s):
    """Frames stamped an hour in the past or hours ahead: the table uses the arrival time
    (counted once as a frame_clock fault), so the frame age stays small and latencies sane."""
    from capture.frames import Frame

    class ForeignClock(ScriptedSource):
        def read(self, timeout=1.0):
            frame = super().read(timeout)
            return None if frame is None else Frame(frame.image, frame.t_capture + offset_s, frame.sequence, "foreign")

    table = make_table(lambda t: paper([BOX] if t < 0.3 else [BOX, BOX2]))
    table.source = ForeignClock(lambda t: paper([BOX] if t < 0.3 else [BOX, BOX2]))
    status = table.run(1.0)
    assert status.faults.get("frame_clock") == 1
    assert 0 <= status.last_frame_age_s < 0.5
    assert status.latency_ms["max"] is not None and 0 <= status.latency_ms["max"] < 1000


def test_a_camera_whose_every_frame_is_rejected_is_not_fresh():
    """A camera that switched to another size mid-stream: no frame passes, so the frame age
    grows and the table says 'camera: every frame rejected (frame is 80x60, ...)'."""
    def script(t):
        return paper([BOX]) if t < 0.2 else np.zeros((60, 80), np.uint8) + 100
    status = make_table(script).run(1.5)
    assert status.last_frame_age_s > 0.9
    assert any(p.startswith("camera: every frame rejected (frame is 80x60") for p in status.problems)


def test_a_camera_alternating_sizes_makes_the_table_degraded_with_the_share_in_words():
    """Every other frame of another size (issue 22): never 30 rejected in a row, but half of the
    recent frames rejected is a problem the status names, with the share and the reason."""
    count = {"n": 0}

    def script(t):
        count["n"] += 1
        return paper([BOX]) if count["n"] % 2 else np.zeros((60, 80), np.uint8) + 100

    table = make_table(script)
    status = table.run(1.5)
    share = [p for p in status.problems if p.startswith("camera: ") and "% of frames rejected in the last 5 s" in p]
    assert share and "last: frame is 80x60" in share[0], status.problems
    assert 40 <= int(share[0].split("camera: ")[1].split("%")[0]) <= 60
    assert status.last_frame_age_s < 0.5  # the good half keeps the camera fresh


def test_a_source_repeating_its_frame_does_not_spin_the_capture_thread():
    """A source that returns its last frame again at once (no new sequence number): it is
    not a new frame, the thread waits between reads instead of spinning, and a long
    repetition counts as a stall."""
    from capture.frames import Frame

    class Repeating:
        reads = 0
        frame = Frame(paper([BOX]), time.monotonic(), 1, "repeating")

        def read(self, timeout=1.0):
            Repeating.reads += 1
            return self.frame

        def close(self):
            pass

    table = make_table(lambda t: paper([BOX]))
    table.source = Repeating()
    status = table.run(2.5)
    assert Repeating.reads / 2.5 < 300  # at most one read per 5 ms wait
    assert status.faults.get("camera_stalled") == 1 and status.inferences == 1


class HangingSource:
    """Gives frames, then hangs in read() while `hang` is set (a camera driver that locked up).
    Records how many threads are reading at once."""

    def __init__(self):
        self.hang = threading.Event()
        self.released = threading.Event()
        self.sequence = 0
        self.readers = 0
        self.most_readers = 0
        self._lock = threading.Lock()

    def read(self, timeout=1.0):
        with self._lock:
            self.readers += 1
            self.most_readers = max(self.most_readers, self.readers)
        try:
            if self.hang.is_set():
                self.released.wait(10)
            time.sleep(1 / 60)
            self.sequence += 1
            return Frame(paper([BOX]), time.monotonic(), self.sequence, "hanging")
        finally:
            with self._lock:
                self.readers -= 1

    def close(self):
        pass


def test_a_hung_read_is_a_stall_and_stop_does_not_wait_for_it():
    """A read() that hangs is counted as a camera stall after a second (the display loop
    watches, not the stuck reader), and run() returns within a second of the stop."""
    table = make_table(lambda t: paper([BOX]))
    source = table.source = HangingSource()
    threading.Timer(0.3, source.hang.set).start()
    t0 = time.monotonic()
    status = table.run(2.0)
    assert time.monotonic() - t0 < 2.0 + 1.0
    assert status.faults.get("camera_stalled") == 1
    assert status.last_frame_age_s > 1.0
    source.released.set()


def test_a_source_is_never_read_by_two_tables_at_once():
    """A new table started while the last one's read still hangs waits for that read: the
    source never has two readers, and the new table gets frames once the read returns."""
    first = make_table(lambda t: paper([BOX]))
    source = first.source = HangingSource()
    source.hang.set()
    first.run(0.3)  # its capture thread is left hanging in read()
    second = make_table(lambda t: paper([BOX]))
    second.source = source
    threading.Timer(0.5, lambda: (source.hang.clear(), source.released.set())).start()
    status = second.run(1.5)
    assert source.most_readers == 1
    assert status.frames_captured > 10 and status.inferences >= 1


def test_status_says_how_long_the_model_call_in_progress_runs():
    """The table times its own model calls: status().model_busy_s grows while one hangs."""
    release = threading.Event()

    class Stuck(FakeBackend):
        def sketch_to_drawing(self, x):
            release.wait(5)
            return super().sketch_to_drawing(x)

    table = make_table(lambda t: paper([BOX]), Stuck())
    seen = []
    threading.Timer(0.8, lambda: seen.append(table.status().model_busy_s)).start()
    threading.Timer(1.0, release.set).start()
    status = table.run(1.3)
    assert 0.4 < seen[0] < 0.9 and status.model_busy_s == 0.0


def test_the_projector_is_never_black_without_a_camera():
    """No frame ever arrives: from the first displayed frames the projector shows the attract
    wander (never 20 s of black), and the table says it is idle."""
    table = make_table(lambda t: None, idle={"after_s": 20, "fps": 20})
    black = []
    table.on_display_frame.append(lambda pulse: black.append(
        table.latest_projector is None or not table.latest_projector.any()))
    status = table.run(1.0)
    assert status.idle and status.generations >= 5
    assert not any(black[10:])  # dark only for the first frames, before the first generated one


def test_a_bundle_that_cannot_wander_shows_a_still_drawing():
    """A bundle without the mapping graph: the attract picture is the drawing of an empty sheet,
    one warning, and the table answers sketches as ever."""
    class NoMapping(FakeBackend):
        def map(self, z):
            raise RuntimeError("no mapping graph in this bundle")

    backend = NoMapping()
    table = make_table(lambda t: None if t < 0.5 else paper([BOX]), backend)
    status = table.run(1.2)
    assert backend.calls["sketch_to_drawing"] >= 2 and status.inferences >= 1
    assert status.faults.get("inference") == 1 and table.latest_projector.any()


def test_a_model_of_another_grid_swapped_in_answers_the_sheet_without_a_fault():
    """swap_model with a bundle of twice the resolution (its own sketcher and warp): the running
    table takes it between two steps, sketches of the old grid in flight are dropped, the sheet is
    sent again and answered on the new grid, and no display frame waited (no gap over 0.1 s)."""
    from types import SimpleNamespace

    from tests.table.fakes import FakeBundle

    backend = FakeBackend()
    table = make_table(lambda t: paper([BOX]), backend)
    big = FakeBackend()
    big.bundle = FakeBundle(resolution=2 * R)
    big.name = "fake/big"

    def big_sketcher(image):
        return cv2.resize(threshold_sketcher(image), (2 * R, 2 * R), interpolation=cv2.INTER_NEAREST)

    calibration = Calibration.uncalibrated(CAMERA, DISPLAY)
    fresh = SimpleNamespace(backend=big, sketcher=big_sketcher, transition="crossfade", step_ms=None,
                            warp=Warp(calibration.table_area_to_projector(2 * R), DISPLAY))
    gaps = []
    last = [None]

    def watch(pulse):
        if last[0] is not None:
            gaps.append(pulse.t - last[0])
        last[0] = pulse.t

    table.on_display_frame.append(watch)
    threading.Timer(0.5, table.swap_model, args=(fresh,)).start()
    status = table.run(1.5)
    assert backend.calls["sketch_to_drawing"] == 1 and big.calls["sketch_to_drawing"] == 1
    assert table.models_swapped == 1 and status.backend == "fake/big"
    assert status.faults.get("inference", 0) == 0
    assert table.latest_picture.shape[:2] == (2 * R, 2 * R)  # the new model's drawing is on show
    assert max(gaps) < 0.1
