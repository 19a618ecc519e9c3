"""The model report: its measures tell a collapsed or sketch-blind model from a good one."""
import json

import numpy as np
import pytest

from training.report import (TARGETS, fit_for_table, following, letters_like_a_visitor, spread,
                             strokes_like_a_visitor, verdicts)


@pytest.fixture(scope="module")
def real_drawings(tiny_dataset):
    from training.ingest import load_images
    return load_images(tiny_dataset, "train")


def test_variety_reads_near_one_for_real_drawings_and_near_zero_for_one_template(real_drawings):
    """Real drawings shifted by a pixel keep their spread; 36 copies of one drawing with a
    little noise have almost no nearest-other distance (a collapsed generator)."""
    rng = np.random.default_rng(0)
    shifted = np.roll(real_drawings, 1, axis=2)
    template = np.clip(real_drawings[:1].astype(int) + rng.integers(-8, 9, real_drawings.shape), 0, 255).astype(np.uint8)
    base = spread(real_drawings)
    assert spread(shifted)["nearest"] / base["nearest"] == pytest.approx(1, abs=0.1)
    assert spread(template)["nearest"] / base["nearest"] < 0.2
    assert spread(template)["pairwise"] / base["pairwise"] < 0.2


def test_following_scores_a_faithful_model_above_one_that_ignores_the_sketch():
    """Drawings that are the sketches themselves follow them (score ~1, far above the
    shuffled baseline); one blob for every sketch scores no better than shuffled."""
    sketches = np.stack(strokes_like_a_visitor(32, 8))
    faithful = following(sketches, sketches)
    assert faithful["follow"] > 0.95 and faithful["follow"] - faithful["follow_shuffled"] > 0.5
    blob = np.full_like(sketches, 255)
    blob[:, 8:24, 8:24] = 0
    blind = following(sketches, blob)
    assert abs(blind["follow"] - blind["follow_shuffled"]) < 0.05 and blind["pairwise"] == 0


def test_visitor_letters_are_thin_pen_lines_and_all_different():
    """The letters are drawn as pen lines (a little ink, not filled glyphs) and no two alike."""
    letters = np.stack(letters_like_a_visitor(64))
    ink = (letters < 128).mean(axis=(1, 2))
    assert letters.shape == (8, 64, 64) and (ink > 0.005).all() and (ink < 0.12).all()
    assert spread(letters)["nearest"] > 0.05


def test_verdicts_say_in_words_what_misses():
    """A report with a collapsed generator and a useless encoder says so and is not fit."""
    follow = {"follow": 0.7, "follow_shuffled": 0.6, "on_strokes": 0.7, "around_strokes": 0.7, "distinct": 0.2}
    report = {"generator": {"variety": 0.3},
              "encoder": {"mse": 0.28, "mean_image_mse": 0.285, "optimum_mse": 0.03, "gain_over_mean": 0.02,
                          "vs_optimum": 9.3},
              "following": {"strokes": follow, "letters": follow}}
    lines = verdicts(report)
    assert lines[0] == f"generator collapsed: variety 0.30 of the collection's (target {TARGETS['variety']})"
    assert "no better than the collection's mean image" in lines[1] and "not within 2x" in lines[2]
    assert any("do not follow the visitor's letters" in line for line in lines)
    assert not fit_for_table(report)


def test_evaluate_writes_report_and_contact_sheet_and_train_all_puts_it_in_the_card(tiny_pipeline, tmp_path):
    """`train all` ran the report (its verdicts are in the model card); `evaluate` on the
    bundle and on the run folder writes report.json and a contact sheet."""
    import cv2

    from training.report import ReportSettings, evaluate
    card = (tiny_pipeline / "bundle" / "MODEL_CARD.md").read_text()
    assert "## Verdict" in card and "generator" in card and "for the table" in card
    assert json.loads((tiny_pipeline / "report" / "report.json").read_text())["verdicts"]
    small = ReportSettings(samples=16, real=16, held_out=4, inversion_steps=5)
    for source in (tiny_pipeline / "bundle", tiny_pipeline):
        report = evaluate(source, tmp_path / source.name, dataset=tiny_pipeline / "dataset", settings=small)
        assert set(report["following"]) == {"strokes", "letters"}
        assert report["encoder"]["held_out"] == 2 and report["encoder"]["optimum_mse"] > 0  # the 2 held out
        sheet = cv2.imread(str(tmp_path / source.name / "contact_sheet.png"), cv2.IMREAD_GRAYSCALE)
        assert sheet is not None and sheet.shape[1] == 2 * (8 * 33 + 1)
        bands = [y for y in range(sheet.shape[0]) if sheet[y, :4].min() == 255]  # white title bands
        assert len(bands) == 3 * 18 and (sheet[bands] < 128).any()  # samples, held-out, visitor; with text


def test_evaluate_names_what_is_missing(tmp_path):
    """No model at the path, or no dataset beside it: the error says what to pass."""
    from training.report import evaluate
    with pytest.raises(FileNotFoundError, match="no bundle.json, model.pt or generator.pt"):
        evaluate(tmp_path, tmp_path / "out")
