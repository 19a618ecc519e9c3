"""`newsnow train ...` as a curator meets it: resumes that keep the run's settings, and
mistakes answered with one line that names the file and what to do (exit 2, no traceback)."""
import json

from installation.cli import main


def _gan(dataset, run, *flags):
    return main(["train", "gan", str(dataset), "--out", str(run), "--threads", "1", *flags])


def test_resume_keeps_the_runs_settings_unless_changed_on_purpose(tiny_dataset, tmp_path, capsys):
    """`train gan --tiny --resume` on a run made with a longer --kimg keeps the run's kimg
    (the preset's default is not a request) and does not crash; an explicit --kimg is
    applied and logged; a setting that changes the steps is refused naming it."""
    run = tmp_path / "run"
    assert _gan(tiny_dataset, run, "--tiny", "--kimg", "0.048") == 0
    assert _gan(tiny_dataset, run, "--tiny", "--resume") == 0
    assert json.loads((run / "config.json").read_text())["kimg"] == 0.048
    assert json.loads((run / "summary.json").read_text())["steps"] == 6
    assert _gan(tiny_dataset, run, "--resume", "--kimg", "0.064") == 0
    assert json.loads((run / "summary.json").read_text())["steps"] == 8
    assert "resume: kimg 0.048 -> 0.064 (applied)" in (run / "train.log").read_text()
    capsys.readouterr()
    assert _gan(tiny_dataset, run, "--tiny", "--resume", "--style-mixing", "0.5", "--rotate90") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "style_mixing 0.5 (the run has 0.9); rotate90 True (the run has False)" in err
    assert _gan(tiny_dataset, run, "--tiny") == 2  # the same command again: not silently over the run
    assert "already holds a GAN run (state.pt); continue it with --resume" in capsys.readouterr().err


def test_input_mistakes_are_one_line_that_names_the_path(tiny_collection, tiny_dataset, tmp_path, capsys):
    """--out that is a file, a missing source, an existing dataset, --resume of nothing."""
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    cases = [
        (["train", "gan", str(tiny_dataset), "--out", str(a_file), "--tiny"], f"{a_file}: is a file, not a folder"),
        (["train", "all", str(tmp_path / "scans"), "--out", str(tmp_path / "w"), "--tiny"],
         f"{tmp_path / 'scans'}: does not exist"),
        (["train", "ingest", str(tiny_collection), "--out", str(tiny_dataset)], "already holds a dataset"),
        (["train", "all", str(tmp_path), "--out", str(tmp_path / "new"), "--tiny", "--resume"],
         "run.json: nothing to resume; run without --resume"),
        (["train", "encoder", str(tmp_path), "--gan", str(tmp_path), "--out", str(a_file / "enc"), "--tiny"],
         f"{a_file}: is a file, so"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err and "Errno" not in err, err


def test_a_full_disk_deep_in_a_step_names_the_file(tmp_path, capsys, monkeypatch):
    """ENOSPC raised raw by a library (cv2, tensorboard, torch) reaches the curator as the
    file and the free space, not as [Errno 28]."""
    import training.ingest

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "ds" / "images" / "000007.png"))
    monkeypatch.setattr(training.ingest, "ingest", full)
    assert main(["train", "ingest", str(tmp_path), "--out", str(tmp_path / "ds")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'ds' / 'images' / '000007.png'}: the disk is full (" in err and "Errno" not in err


def test_train_all_resume_takes_the_runs_settings_and_names_a_changed_one(tiny_collection, tiny_pipeline, capsys):
    """`train all --resume` with no settings continues (here: finds the run complete); with
    a setting that differs it is refused naming it, the run untouched."""
    before = (tiny_pipeline / "run.json").read_text()
    argv = ["train", "all", str(tiny_collection), "--out", str(tiny_pipeline), "--resume"]
    assert main(argv) == 0
    assert f"bundle: {tiny_pipeline / 'bundle'}" in capsys.readouterr().out
    assert main(argv + ["--rotate90"]) == 2
    assert "train all (gan settings): --resume with settings the run was not made with: rotate90 True (the run has " \
           "False)" in capsys.readouterr().err
    assert main(argv + ["--fit", "pad", "--encoder-steps", "9"]) == 2
    assert "fit 'pad' (the run has 'crop')" in capsys.readouterr().err
    assert (tiny_pipeline / "run.json").read_text() == before


def test_a_second_ctrl_c_ends_without_a_traceback_and_says_how_to_resume(tmp_path, capsys, monkeypatch):
    """The second Ctrl-C raises KeyboardInterrupt wherever the step is; the command ends
    with 130 and the resume command (the last checkpoint is whole: atomic writes)."""
    import sys

    import training.gan

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(training.gan, "train_gan", interrupted)
    argv = ["train", "gan", str(tmp_path / "ds"), "--out", str(tmp_path / "run"), "--tiny"]
    monkeypatch.setattr(sys, "argv", ["newsnow", *argv])
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert err.strip().endswith("resume with: newsnow " + " ".join(argv) + " --resume") and "Traceback" not in err
