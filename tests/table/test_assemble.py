"""table.assemble: the transition choice and the checks made before the display opens."""
from __future__ import annotations

import cv2
import pytest

from table.assemble import choose_transition, prepare, transition_reason
from config import Config, ConfigError


@pytest.mark.parametrize("kind,step_ms,fps,expected", [
    ("crossfade", 1.0, 30, "crossfade"),  # an explicit choice is kept
    ("latent", 50.0, 30, "latent"),
    ("auto", None, 30, "crossfade"),  # no generator graph
    ("auto", 5.0, 30, "latent"),  # a GPU-fast step: under a quarter of a 33 ms frame
    ("auto", 12.0, 30, "crossfade"),  # the 2-core CPU's 64 px step
    ("auto", 5.0, 60, "crossfade"),  # a quarter of a 16.7 ms frame is 4.2 ms
])
def test_auto_transition_follows_the_measured_step(kind, step_ms, fps, expected):
    """`auto` picks latent only when a measured latent step is under a quarter display frame."""
    config = Config.from_dict({"display": {"fps": fps}})
    assert choose_transition(kind, step_ms, config) == expected


def test_the_transition_choice_says_why():
    """The log and the status say what "auto" measured and against which budget, or that the config chose."""
    config = Config.from_dict({"display": {"fps": 30}})
    assert transition_reason("auto", "crossfade", 12.0, config) == (
        "auto: one latent step took 12.0 ms at start-up, more than a quarter of a display frame (8.3 ms at 30 fps)")
    assert "5.0 ms at start-up, within a quarter" in transition_reason("auto", "latent", 5.0, config)
    assert "no working generator graph" in transition_reason("auto", "crossfade", None, config)
    assert transition_reason("latent", "latent", 50.0, config) == "transition.kind = 'latent' in the config"


def test_binarize_override_of_the_resolution_is_refused(tiny_bundle):
    """A [binarize] override that changes the sketch size away from the model's is named and refused."""
    config = Config.from_dict({"binarize": {"resolution": 64}, "camera": {"source": "simulated"}})
    with pytest.raises(ConfigError, match="binarize.resolution 64 does not match the bundle's resolution 32"):
        prepare(config, bundle=tiny_bundle)


def test_prepare_builds_every_part_from_the_config(tiny_bundle):
    """prepare() gives a backend, an uncalibrated warp, a sketcher at the model's size and a choice."""
    config = Config.from_dict({"camera": {"source": "simulated", "resolution": [320, 240]},
                               "display": {"mode": "headless", "size": [160, 120]}})
    parts = prepare(config, bundle=tiny_bundle)
    try:
        frame = parts.source.read(1.0)
        sketch = parts.sketcher(frame.image)
        assert sketch.shape == (32, 32) and set(sketch.ravel()) <= {0, 255}
        assert parts.warp(sketch).shape == (120, 160, 3)
        assert parts.transition in ("crossfade", "latent") and parts.step_ms > 0
        assert parts.transition_reason.startswith("auto: one latent step took")
        assert not parts.calibration.calibrated
    finally:
        parts.close()


def test_a_stored_lens_model_undistorts_frames_before_binarizing(tiny_bundle, tmp_path):
    """With a lens model in the calibration file, the sketcher binarizes the undistorted frame
    (camera_to_sketch is measured in undistorted pixels), not the raw one."""
    import dataclasses

    import numpy as np

    from calibration import Calibration, save
    from calibration.lens import Lens
    from capture.binarize import binarize

    camera, display = (320, 240), (160, 120)
    lens = Lens(camera_matrix=np.array([[300.0, 0, 160], [0, 300.0, 120], [0, 0, 1]]),
                dist_coeffs=np.array([-0.4, 0.2, 0, 0, 0]), mode=camera)
    calibration = dataclasses.replace(Calibration.uncalibrated(camera, display), calibrated=True, lens=lens)
    path = save(calibration, tmp_path / "calibration.json")
    config = Config.from_dict({"camera": {"source": "simulated", "resolution": list(camera)},
                               "display": {"mode": "headless", "size": list(display)},
                               "calibration": {"file": str(path)}})
    parts = prepare(config, bundle=tiny_bundle)
    try:
        rng = np.random.default_rng(0)
        frame = np.full(camera[::-1], 220, np.uint8)
        for _ in range(40):  # dark pen lines all over the frame, so the distortion shows
            x0, y0, x1, y1 = (int(v) for v in rng.integers(0, 240, 4))
            cv2.line(frame, (x0 + 40, y0), (x1 + 40, y1), 30, 2)
        params = parts.bundle.binarize_params()  # no [binarize] overrides in this config
        to_sketch = parts.calibration.camera_to_sketch(parts.bundle.resolution)
        expected = binarize(lens.undistort(frame), params, to_sketch)
        raw = binarize(frame, params, to_sketch)
        assert not np.array_equal(expected, raw)  # the lens matters for this frame
        np.testing.assert_array_equal(parts.sketcher(frame), expected)
    finally:
        parts.close()
