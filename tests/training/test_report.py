"""The model report: its measures tell a collapsed or sketch-blind model from a good one."""
import json

import cv2
import numpy as np
import pytest

from training.report import (TARGETS, completion, first_strokes_like_a_visitor, fit_for_table, following,
                             letters_like_a_visitor, strokes_like_a_visitor, verdicts)
from training.variety import VarietyMeter, shape_distances


@pytest.fixture(scope="module")
def real_drawings(tiny_dataset):
    from training.ingest import load_images
    return load_images(tiny_dataset, "train")


def _warped(image: np.ndarray, count: int, rng) -> np.ndarray:
    """`count` copies of one drawing, each turned, scaled, shifted and its pen thinned or
    thickened a little: one template with small variations."""
    r = image.shape[0]
    out = []
    for _ in range(count):
        m = cv2.getRotationMatrix2D((r / 2, r / 2), rng.uniform(-8, 8), rng.uniform(0.9, 1.1))
        m[:, 2] += rng.uniform(-2, 2, 2)
        warped = cv2.warpAffine(image, m, (r, r), borderValue=255)
        pen = [lambda x: x, lambda x: cv2.erode(x, np.ones((2, 2), np.uint8)),
               lambda x: cv2.dilate(x, np.ones((2, 2), np.uint8))][rng.integers(3)]
        out.append(pen(warped))
    return np.stack(out)


def test_variety_reads_near_one_for_real_drawings_and_low_for_one_template(real_drawings):
    """Other collection drawings reach the collection as its own drawings do (about 1);
    one drawing warped, moved and drawn with thinner or thicker pens, which a blurred-ink
    distance read as varied, reaches little of it; a pixel's shift is no change."""
    rng = np.random.default_rng(0)
    meter = VarietyMeter(real_drawings, count=len(real_drawings) // 2)
    assert meter.measure(meter.others)["variety"] == pytest.approx(1, abs=0.01)
    template = meter.measure(_warped(real_drawings[0], len(meter.others), rng))
    assert template["variety"] < 0.5 and template["nearest_distinct"] < template["nearest_distinct_real"]
    shifted = np.roll(real_drawings[:8], 1, axis=2)
    d = shape_distances(shifted, real_drawings[:8])
    assert (d.argmin(1) == np.arange(8)).all() and np.diag(d).max() <= 1.0 / real_drawings.shape[-1]


def test_completion_tells_a_tracing_model_from_a_completing_one(real_drawings):
    """Answering first strokes with the strokes themselves holds little ink and is far
    from any collection drawing ("traces"); answering with a whole collection drawing that
    holds the strokes completes them."""
    from training.report import ink_of
    meter = VarietyMeter(real_drawings, count=len(real_drawings) // 2)
    real_ink = float(np.median(ink_of(meter.reference).mean(axis=(1, 2))))
    wholes = meter.others[:8]
    firsts = np.stack([np.where(np.arange(w.shape[1])[None, :] < w.shape[1] // 3, w, 255).astype(np.uint8)
                       for w in wholes])  # the left third of each drawing: its "first strokes"
    traced = completion(firsts, firsts, meter, real_ink)
    completed = completion(firsts, wholes, meter, real_ink)
    assert traced["ink"] < 0.6 and completed["ink"] > 0.8
    assert completed["keeps"] > 0.95 and completed["near"] < traced["near"]
    assert completed["distinct"] > 0.5
    report = {"generator": {"variety": 0.9},
              "encoder": {"mse": 0.1, "mean_image_mse": 0.3, "optimum_mse": 0.06, "gain_over_mean": 0.67,
                          "vs_optimum": 1.6},
              "completion": {"held_out": traced}, "following": {}}
    assert any(line.startswith("MISS: traces first strokes of held-out") for line in verdicts(report))
    assert not fit_for_table(report)


def test_visitor_first_strokes_are_one_two_or_three_pen_strokes():
    """The fresh first strokes are thin lines of a little ink, a third with each count of
    strokes (more strokes, more ink on average), and no two alike."""
    sketches = np.stack(first_strokes_like_a_visitor(64, 30))
    ink = (sketches < 128).mean(axis=(1, 2))
    assert sketches.shape == (30, 64, 64) and (ink > 0.003).all() and (ink < 0.1).all()
    assert ink[0::3].mean() < ink[2::3].mean()
    d = shape_distances(sketches)
    assert d[~np.eye(30, dtype=bool)].min() > 0


def test_following_scores_a_faithful_model_above_one_that_ignores_the_sketch():
    """Drawings that are the sketches themselves follow them (score ~1, far above the
    shuffled baseline); one blob for every sketch scores no better than shuffled."""
    sketches = np.stack(strokes_like_a_visitor(32, 8))
    faithful = following(sketches, sketches)
    assert faithful["follow"] > 0.95 and faithful["follow"] - faithful["follow_shuffled"] > 0.5
    blob = np.full_like(sketches, 255)
    blob[:, 8:24, 8:24] = 0
    blind = following(sketches, blob)
    assert abs(blind["follow"] - blind["follow_shuffled"]) < 0.05


def test_visitor_letters_are_thin_pen_lines_and_all_different():
    """The letters are drawn as pen lines (a little ink, not filled glyphs) and no two alike."""
    letters = np.stack(letters_like_a_visitor(64))
    ink = (letters < 128).mean(axis=(1, 2))
    assert letters.shape == (8, 64, 64) and (ink > 0.005).all() and (ink < 0.12).all()
    d = shape_distances(letters)
    assert d[~np.eye(8, dtype=bool)].min() > 0.01


def test_verdicts_say_in_words_what_misses():
    """A report with a collapsed generator and a useless encoder says so and is not fit."""
    follow = {"follow": 0.7, "follow_shuffled": 0.6, "on_strokes": 0.7, "around_strokes": 0.7, "distinct": 0.2}
    report = {"generator": {"variety": 0.3},
              "encoder": {"mse": 0.28, "mean_image_mse": 0.285, "optimum_mse": 0.03, "gain_over_mean": 0.02,
                          "vs_optimum": 9.3},
              "following": {"strokes": follow, "letters": follow}}
    lines = verdicts(report)
    assert lines[0] == f"MISS: generator collapsed: variety 0.30 of the collection's (target {TARGETS['variety']})"
    assert "no better than the collection's mean image" in lines[1] and lines[2].startswith("MISS: encoder 9.30x")
    assert any("do not follow the visitor's letters" in line for line in lines)
    assert not fit_for_table(report)
    report["encoder"].update(held_out=48, reach_optimum=0.86, reach_answers=0.4)
    assert verdicts(report)[0].endswith("(target 0.7); W+ codes of 48 held-out drawings reach 0.86 of what the "
                                        "drawings do")
    report["generator"].update(grey=0.99, grey_real=0.4)
    assert verdicts(report)[1] == ("MISS: generator's lines smudged: 99% of their ink is grey against the "
                                   "collection's 40% (target at most 1.5x)")


def test_grey_share_tells_smudges_from_pen_lines(real_drawings):
    """Skeletons see a blurred drawing's centre lines where the drawing's are (its variety
    stays), but nearly all of its ink is grey; the collection's own is mostly ink; a fit
    generator's report may not have smudged samples."""
    from training.report import crisp
    from training.variety import grey_share
    meter = VarietyMeter(real_drawings, count=len(real_drawings) // 2)
    smudged = np.stack([cv2.GaussianBlur(d, (0, 0), 1.0) for d in meter.others])
    clean, blurred = meter.measure(meter.others), meter.measure(smudged)
    assert clean["grey"] == clean["grey_real"] < 0.7 and blurred["grey"] > 0.9
    assert blurred["variety"] > 0.5  # what the variety alone would let through
    assert crisp(clean) and not crisp(blurred)
    assert grey_share(np.full((2, 8, 8), 255, np.uint8)) == 0  # blank paper: no ink, nothing grey


def test_evaluate_writes_report_and_contact_sheet_and_train_all_puts_it_in_the_card(tiny_pipeline, tmp_path):
    """`train all` ran the report (its verdicts are in the model card); `evaluate` on the
    bundle and on the run folder writes report.json and a contact sheet."""
    import cv2

    from training.report import ReportSettings, evaluate
    from inference.bundle import Bundle, fitness_warning
    card = (tiny_pipeline / "bundle" / "MODEL_CARD.md").read_text()
    assert "## Verdict" in card and "generator" in card and "for the table" in card
    assert "- **MISS**: " in card or "- **pass**: " in card  # each verdict line marked, the mark in bold
    # the bundle carries the verdict, so the table can warn about a smoke-test model
    bundle = Bundle.load(tiny_pipeline / "bundle", check_graphs=False)
    assert bundle.verdict["preset"] == "tiny" and any("--tiny" in r for r in bundle.verdict["reasons"])
    assert fitness_warning(bundle).startswith("not for exhibition: a --tiny smoke test")
    assert json.loads((tiny_pipeline / "report" / "report.json").read_text())["verdicts"]
    small = ReportSettings(samples=16, real=16, held_out=4, inversion_steps=5, completion_drawings=2,
                           visitor_first_strokes=6)
    for source in (tiny_pipeline / "bundle", tiny_pipeline):
        report = evaluate(source, tmp_path / source.name, dataset=tiny_pipeline / "dataset", settings=small)
        assert set(report["following"]) == {"strokes", "letters"}
        assert set(report["completion"]) == {"held_out", "visitor"} and report["completion"]["visitor"]["sketches"] == 6
        assert report["encoder"]["held_out"] == 2 and report["encoder"]["optimum_mse"] > 0  # the 2 held out
        reached = [report["encoder"][k] for k in ("reach_answers", "reach_optimum")]
        assert all(r is None or r >= 0 for r in reached)
        sheet = cv2.imread(str(tmp_path / source.name / "contact_sheet.png"), cv2.IMREAD_GRAYSCALE)
        assert sheet is not None and sheet.shape[1] == 2 * (8 * 33 + 1)
        bands = [y for y in range(sheet.shape[0]) if sheet[y, :4].min() == 255]  # white title bands
        # samples, held-out, stroke by stroke, first strokes, visitor; each with its title
        assert len(bands) == 5 * 18 and (sheet[bands] < 128).any()


def test_evaluate_names_what_is_missing(tmp_path):
    """No model at the path, or no dataset beside it: the error says what to pass."""
    from training.report import evaluate
    with pytest.raises(FileNotFoundError, match="no bundle.json, model.pt or generator.pt"):
        evaluate(tmp_path, tmp_path / "out")


def test_train_evaluate_records_its_verdict_in_the_bundle(tiny_pipeline, tmp_path, capsys):
    """`newsnow train evaluate BUNDLE` writes the verdict into that bundle's bundle.json (what the
    table, doctor and the status read), replacing the one an earlier report left."""
    import shutil

    from inference.bundle import Bundle, record_verdict
    from installation import cli
    bundle = shutil.copytree(tiny_pipeline / "bundle", tmp_path / "bundle")
    record_verdict(bundle, {"fit_for_table": True, "reasons": [], "verdicts": ["stale"]})
    rc = cli.main(["train", "evaluate", str(bundle), "--out", str(tmp_path / "report"), "--dataset",
                   str(tiny_pipeline / "dataset"), "--samples", "16", "--held-out", "4", "--inversion-steps", "5"])
    assert rc == 0
    verdict = Bundle.load(bundle, check_graphs=False).verdict
    written = json.loads((tmp_path / "report" / "report.json").read_text())
    assert verdict["verdicts"] == written["verdicts"] and verdict["fit_for_table"] == written["fit_for_table"]
    assert verdict["preset"] == "tiny" and "a --tiny smoke test" in verdict["reasons"][0]
    assert "verdict recorded in" in capsys.readouterr().out
