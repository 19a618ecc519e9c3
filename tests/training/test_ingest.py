import json

import cv2
import numpy as np
import pytest

from training.ingest import DatasetError, IngestSettings, ingest, load_images, near_duplicate_pairs, square, thumbnail


def _scans(folder, rng):
    """A mixed folder: gray PNG, colour JPEG, 16-bit TIFF, PNG with alpha, a duplicate,
    a near duplicate, a corrupt file and a non-image."""
    base = np.full((60, 90), 240, np.uint8)
    cv2.line(base, (10, 10), (80, 50), 20, 3)
    cv2.imwrite(str(folder / "a.png"), base)
    cv2.imwrite(str(folder / "a_copy.png"), base)                       # exact duplicate
    near = base.copy()
    cv2.circle(near, (75, 12), 2, 60, -1)  # a small extra speck
    cv2.imwrite(str(folder / "a_near.png"), near)                       # near duplicate
    colour = np.full((80, 50, 3), 250, np.uint8)
    cv2.circle(colour, (25, 40), 15, (0, 0, 200), 2)
    cv2.imwrite(str(folder / "b.jpg"), colour)
    deep = (rng.random((40, 40)) * 65535).astype(np.uint16)
    cv2.imwrite(str(folder / "sub" / "c.tif"), deep)
    rgba = np.zeros((30, 30, 4), np.uint8)
    rgba[10:20, 10:20] = (0, 0, 0, 255)                                 # ink on transparent
    cv2.imwrite(str(folder / "d.png"), rgba)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder / "notes.txt").write_text("not an image")


def test_ingest_skips_corrupt_reports_duplicates_and_splits(tmp_path):
    """A corrupt file is listed and skipped, an exact duplicate kept once, a near duplicate
    reported; every output is a square gray PNG; the split covers all images."""
    src = tmp_path / "scans"
    (src / "sub").mkdir(parents=True)
    _scans(src, np.random.default_rng(0))
    manifest = ingest(src, tmp_path / "ds", IngestSettings(resolution=32, validation=0.2))
    assert [u["file"] for u in manifest["unreadable"]] == ["broken.jpg"]
    assert manifest["exact_duplicates"] == [{"file": "a_copy.png", "same_as": "a.png"}]
    assert [(n["file"], n["like"]) for n in manifest["near_duplicates"]] == [("a_near.png", "a.png")]
    assert manifest["counts"]["images"] == 5
    assert manifest["counts"]["train"] + manifest["counts"]["validation"] == 5
    assert manifest["counts"]["validation"] == 1
    for entry in manifest["images"]:
        image = cv2.imread(str(tmp_path / "ds" / entry["file"]), cv2.IMREAD_UNCHANGED)
        assert image.shape == (32, 32) and image.dtype == np.uint8
    on_disk = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert on_disk["counts"] == manifest["counts"]
    assert load_images(tmp_path / "ds", "train").shape == (4, 32, 32)
    # alpha composited over white: the transparent border is paper
    d = next(e for e in manifest["images"] if e["source"] == "d.png")
    image = cv2.imread(str(tmp_path / "ds" / d["file"]), cv2.IMREAD_GRAYSCALE)
    assert image[0, 0] > 240 and image[16, 16] < 20


def test_drop_near_keeps_one_of_each_group(tmp_path):
    """With drop_near, the near duplicate is left out of the dataset."""
    src = tmp_path / "scans"
    (src / "sub").mkdir(parents=True)
    _scans(src, np.random.default_rng(0))
    manifest = ingest(src, tmp_path / "ds", IngestSettings(resolution=32, drop_near=True))
    sources = [e["source"] for e in manifest["images"]]
    assert "a.png" in sources and "a_near.png" not in sources


def test_crop_and_pad():
    """Crop takes the centred square; pad keeps the whole image on paper-coloured margins."""
    wide = np.full((20, 60), 255, np.uint8)
    wide[:, :20] = 0                    # ink only in the left third
    assert square(wide, 16, "crop").min() == 255
    padded = square(wide, 16, "pad")
    assert padded.min() == 0 and padded[0, 8] == 255


def test_near_duplicates_are_close_thumbnails_only():
    """A drawing with one extra speck is a near duplicate; a different drawing is not."""
    a = np.full((64, 64), 255, np.uint8)
    cv2.line(a, (5, 5), (60, 60), 0, 3)
    b = a.copy()
    cv2.circle(b, (50, 10), 1, 0, -1)
    c = np.full((64, 64), 255, np.uint8)
    cv2.circle(c, (32, 32), 20, 0, 3)
    pairs = near_duplicate_pairs(np.array([thumbnail(x) for x in (a, b, c)]), 0.03)
    assert [(i, j) for i, j, _ in pairs] == [(0, 1)]


def test_bad_inputs_are_clear_errors(tmp_path):
    """A missing folder, a file for a folder, a folder without images and a bad setting
    raise DatasetError."""
    with pytest.raises(DatasetError, match="nope: does not exist"):
        ingest(tmp_path / "nope", tmp_path / "ds")
    (tmp_path / "scan.png").write_bytes(b"")
    with pytest.raises(DatasetError, match="scan.png: is a file, not a folder of scans"):
        ingest(tmp_path / "scan.png", tmp_path / "ds")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no image files"):
        ingest(tmp_path / "empty", tmp_path / "ds")
    with pytest.raises(DatasetError, match="resolution"):
        IngestSettings(resolution=100)
    with pytest.raises(DatasetError, match="manifest"):
        load_images(tmp_path / "empty")


def test_only_broken_files_name_the_scans_folder_and_each_reason(tmp_path):
    """A folder whose every image is unreadable is refused naming the scans folder (not
    the dataset) and why each file failed."""
    scans = tmp_path / "scans"
    scans.mkdir()
    (scans / "empty.png").write_bytes(b"")
    (scans / "text.jpg").write_text("not a jpeg")
    with pytest.raises(DatasetError) as caught:
        ingest(scans, tmp_path / "ds")
    message = str(caught.value)
    assert message.startswith(f"{scans}: none of the 2 image files can be read")
    assert "empty.png: not a readable image" in message and "text.jpg: not a readable image" in message


def test_ingest_into_an_existing_dataset_needs_force(tmp_path):
    """A second ingest into the same --out is refused (it would silently mix or replace a
    dataset); with force it replaces it whole; an --out that is a file is refused."""
    scans = tmp_path / "scans"
    scans.mkdir()
    for k in range(3):
        cv2.imwrite(str(scans / f"{k}.png"), np.full((16, 16), 40 * k, np.uint8))
    first = ingest(scans, tmp_path / "ds", IngestSettings(resolution=16))
    assert first["source_files"] == 3 and len(first["source_sha256"]) == 64
    with pytest.raises(DatasetError, match="already holds a dataset; .*--force"):
        ingest(scans, tmp_path / "ds", IngestSettings(resolution=16))
    (scans / "0.png").unlink()
    again = ingest(scans, tmp_path / "ds", IngestSettings(resolution=16), force=True)
    assert again["counts"]["images"] == 2 and len(list((tmp_path / "ds" / "images").glob("*.png"))) == 2
    assert again["source_sha256"] != first["source_sha256"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="file: is a file, not a folder"):
        ingest(scans, tmp_path / "file")
