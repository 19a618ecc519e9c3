"""capture.video.VideoFileSource: a recording of the table played back, looping."""
import time

import cv2
import numpy as np
import pytest

from capture.video import VideoFileSource


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A 10-frame 50 fps MJPEG recording whose frame i is uniformly gray level 20 * i."""
    path = tmp_path_factory.mktemp("replay") / "table.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 50, (64, 48), False)
    assert writer.isOpened()
    for i in range(10):
        writer.write(np.full((48, 64), 20 * i, np.uint8))
    writer.release()
    return path


def test_replay_loops_with_rising_sequence(recording):
    """Read past the end, the recording starts over; frames are gray, the sequence keeps
    rising across the loop and the loop is counted."""
    with VideoFileSource(recording, speed=0) as src:
        frames = [src.read() for _ in range(25)]
        assert all(f is not None and f.image.shape == (48, 64) and f.image.dtype == np.uint8 for f in frames)
        levels = [int(round(f.image.mean() / 20)) for f in frames]
        assert levels == [i % 10 for i in range(25)]
        assert [f.sequence for f in frames] == list(range(25))
        assert src.loops == 2 and src.health().state == "ok"


def test_replay_without_loop_ends(recording):
    """loop=False gives the frames once, then None, and health says closed."""
    with VideoFileSource(recording, loop=False, speed=0) as src:
        frames = [src.read() for _ in range(12)]
        assert sum(f is not None for f in frames) == 10 and frames[-1] is None
        assert src.health().state == "closed"


def test_replay_paces_at_the_file_rate(recording):
    """speed 1 plays at the file's 50 fps: 11 frames take at least 0.2 s; speed 2 at least
    half that."""
    with VideoFileSource(recording, speed=1.0) as src:
        t0 = time.monotonic()
        for _ in range(11):
            assert src.read(timeout=1) is not None
        assert time.monotonic() - t0 >= 0.19
        assert src.fps == pytest.approx(50)


def test_replay_refuses_missing_and_undecodable_files(tmp_path):
    """A missing file is an OSError naming it; so is a file OpenCV cannot decode."""
    with pytest.raises(OSError, match="nothere.avi"):
        VideoFileSource(tmp_path / "nothere.avi")
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(OSError, match="junk.avi"):
        VideoFileSource(junk)
