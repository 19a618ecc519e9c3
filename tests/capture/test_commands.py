"""`newsnow camera check|record` and the capture package's place on the kiosk's path."""
import json
import os
import subprocess
import sys

import cv2
import pytest

from capture.camera import camera_index
from capture.video import VideoFileSource
from installation.cli import main


def test_check_reports_health_and_writes_frame_and_sketch(tmp_path, capsys):
    """`camera check --simulated` reads for the given time, prints the health as JSON
    (state ok, a frame rate, frames counted) and writes frame.png and a 256 x 256 sketch.png."""
    assert main(["camera", "check", "--simulated", "--seconds", "1", "--size", "640x360",
                 "--out", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["state"] == "ok" and report["frames"] >= 10 and report["fps"] > 5
    assert report["frame_size"] == [640, 360]
    assert cv2.imread(str(tmp_path / "frame.png"), cv2.IMREAD_GRAYSCALE).shape == (360, 640)
    assert cv2.imread(str(tmp_path / "sketch.png"), cv2.IMREAD_GRAYSCALE).shape == (256, 256)


def test_record_writes_a_video_the_replay_source_plays(tmp_path, capsys):
    """`camera record` writes an MJPEG .avi whose frames VideoFileSource replays, as many
    as the command reported."""
    out = tmp_path / "table.avi"
    assert main(["camera", "record", "--simulated", "--seconds", "1", "--size", "320x180",
                 "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["frames"] >= 10
    with VideoFileSource(out, loop=False, speed=0) as replay:
        frames = []
        while (f := replay.read()) is not None:
            frames.append(f)
    assert len(frames) == report["frames"] and frames[0].image.shape == (180, 320)


def test_check_names_a_missing_camera(tmp_path, capsys):
    """A camera that does not open ends `camera check` with exit code 2 and a message
    naming the device, not a traceback."""
    assert main(["camera", "check", "--device", "/dev/video-newsnow-missing", "--seconds", "3",
                 "--out", str(tmp_path)]) == 2
    assert "/dev/video-newsnow-missing" in capsys.readouterr().err


def test_device_paths_resolve_to_v4l2_indices(tmp_path):
    """A stable /dev/v4l/by-id style link is opened by its /dev/videoN index (OpenCV's V4L2
    backend opens by index only); other strings go to any backend."""
    link = tmp_path / "usb-cam-video-index0"
    os.symlink("/dev/video7", link)
    index, api = camera_index(str(link))
    assert index == 7 and camera_index("7") == (7, api) and camera_index(2)[0] == 2
    assert camera_index("rtsp://table/cam") == ("rtsp://table/cam", cv2.CAP_ANY)


@pytest.mark.skipif(sys.platform != "linux", reason="V4L2 naming is Linux's")
def test_capture_never_imports_torch():
    """The kiosk path: every capture module imports without pulling in torch."""
    code = ("import sys, capture.binarize, capture.camera, capture.video, capture.simulated, "
            "capture.commands, capture.quality; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.getcwd())
