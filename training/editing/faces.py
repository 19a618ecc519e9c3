"""Faces for Paper III: 68-point landmarks and an identity distance, from dlib (`[faces]` extra).

- Landmarks: dlib's frontal face detector (HOG) finds the face, its 68-point shape
  predictor (the iBUG layout, the "Dlib landmarks" Paper III uses) places the points.
- Identity: the distance between dlib's face-recognition ResNet descriptors (128-d,
  Euclidean; dlib calls two faces the same person below 0.6). It stands in for ArcFace,
  whose weights cannot be had here. It is not differentiable (dlib is not torch), so it
  measures what an edit did to the identity; it cannot be the gradient edit's loss term.

The model files come from the `face-recognition-models` package (found without importing
it: its __init__ needs pkg_resources, which new setuptools no longer ships), or from paths
the user gives. Nothing is downloaded.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
RECOGNITION_FILE = "dlib_face_recognition_resnet_model_v1.dat"
SAME_PERSON = 0.6  # dlib's threshold on the descriptor distance


class NoFaceError(ValueError):
    """No face was found in an image."""


class FacesExtraMissing(ImportError, ValueError):
    """dlib or the model files are not installed (a ValueError too, so the CLI says it in one line)."""


def packaged_model(name: str) -> Path:
    """Path of a model file shipped in face-recognition-models."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FacesExtraMissing("faces: the model files come from the face-recognition-models package; install the "
                          "[faces] extra (pip install 'newsnow[faces]') or pass the .dat paths")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing from the face-recognition-models package; reinstall it")
    return path


def _dlib():
    try:
        import dlib
    except ImportError as exc:
        raise FacesExtraMissing("faces: dlib is not installed; install the [faces] extra (pip install 'newsnow[faces]')") from exc
    return dlib


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] from uint8 or [-1, 1] float images, [H, W], [H, W, 1|3] or [C, H, W]."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
        image = np.moveaxis(image, 0, -1)
    if image.dtype != np.uint8:
        image = np.clip((image.astype(np.float32) + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise ValueError(f"faces: an image must be [H, W], [H, W, 1|3] or [1|3, H, W], got {image.shape}")
    return np.ascontiguousarray(np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image)


class FaceAnalyzer:
    """dlib's detector, 68-point predictor and recognition ResNet, loaded once."""

    def __init__(self, predictor: str | Path | None = None, recognition: str | Path | None = None,
                 upsample: int = 1):
        dlib = _dlib()
        self.predictor_path = Path(predictor) if predictor else packaged_model(PREDICTOR_FILE)
        self.recognition_path = Path(recognition) if recognition else packaged_model(RECOGNITION_FILE)
        for path in (self.predictor_path, self.recognition_path):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such dlib model file")
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(self.predictor_path))
        self._recognition = None  # loaded on first use: landmark extraction does not need it
        self.upsample = upsample  # detector upsampling: 1 finds faces down to ~40 px

    def face_box(self, image: np.ndarray):
        """The largest detected face (a dlib rectangle) of an RGB uint8 image."""
        boxes = self.detector(image, self.upsample)
        if len(boxes) == 0:
            raise NoFaceError("faces: no face found in the image")
        return max(boxes, key=lambda b: b.width() * b.height())

    def landmarks(self, image: np.ndarray) -> np.ndarray:
        """68 points [68, 2] (x, y in pixels) of the largest face; NoFaceError if none."""
        rgb = to_rgb_uint8(image)
        shape = self.predictor(rgb, self.face_box(rgb))
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)

    def extract(self, images) -> tuple[np.ndarray, np.ndarray]:
        """(landmarks [M, 68, 2], indices [M] of the images in which a face was found)."""
        found, points = [], []
        for i, image in enumerate(images):
            try:
                points.append(self.landmarks(image))
                found.append(i)
            except NoFaceError:
                continue
        return np.array(points).reshape(-1, 68, 2), np.array(found, dtype=np.int64)

    def descriptor(self, image: np.ndarray) -> np.ndarray:
        """The recognition ResNet's 128-d descriptor of the largest face."""
        if self._recognition is None:
            self._recognition = _dlib().face_recognition_model_v1(str(self.recognition_path))
        rgb = to_rgb_uint8(image)
        shape = self.predictor(rgb, self.face_box(rgb))
        return np.array(self._recognition.compute_face_descriptor(rgb, shape), dtype=np.float64)

    def identity_distance(self, a: np.ndarray, b: np.ndarray) -> float:
        """Descriptor distance of the faces in two images (0 the same image; < 0.6 the same person)."""
        return float(np.linalg.norm(self.descriptor(a) - self.descriptor(b)))


def sample_landmarks(backend, count: int, analyzer: FaceAnalyzer, seed: int = 0, truncation: float = 0.7,
                     batch: int = 8) -> tuple[np.ndarray, np.ndarray, int]:
    """Landmarks of a generator's samples, for training Paper III's regressor (Eq 12).

    backend: from `generator.open_generator`. Draws `count` codes w = w_avg + psi (map(z) -
    w_avg), generates the images and keeps those in which a face is found. Returns
    (W codes [M, w_dim], landmarks [M, 68, 2], M).
    """
    info = backend.bundle
    z = np.random.default_rng(seed).standard_normal((count, info.z_dim)).astype(np.float32)
    w = info.w_avg + truncation * (backend.map(z) - info.w_avg)
    codes, points = [], []
    for start in range(0, count, batch):
        chunk = w[start:start + batch]
        images = backend.generate(np.repeat(chunk[:, None], info.num_ws, axis=1).astype(np.float32))
        found_points, found = analyzer.extract(images)
        codes.append(chunk[found])
        points.append(found_points)
    codes, points = np.concatenate(codes), np.concatenate(points)
    return codes, points, len(codes)
