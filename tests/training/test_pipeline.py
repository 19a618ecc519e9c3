import pytest

from inference.bundle import Bundle


@pytest.mark.slow
def test_train_all_tiny_yields_a_bundle_the_runtime_loads(tiny_pipeline):
    """`train all --tiny` on a tiny collection ends in a bundle that Bundle.load accepts,
    with the pairs' binarize params, provenance and a model card; the encoder's
    reconstructions are in TensorBoard as images."""
    import json
    bundle = Bundle.load(tiny_pipeline / "bundle")
    pairs = json.loads((tiny_pipeline / "pairs" / "manifest.json").read_text())
    assert bundle.resolution == 32 and bundle.channels == 1
    assert bundle.meta["binarize"] == pairs["binarize"]
    assert bundle.meta["provenance"]["licence"] == "CC BY-SA 3.0"
    card = (tiny_pipeline / "bundle" / "MODEL_CARD.md").read_text()
    assert "CC BY-SA 3.0" in card and "kimg" in card and "Encoder validation" in card
    summary = json.loads((tiny_pipeline / "summary.json").read_text())
    assert max(summary["parity"].values()) < 1e-3
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(tiny_pipeline / "encoder" / "tensorboard"))
    events.Reload()
    assert events.Tags()["images"] == ["validation/reconstructions"]


def test_cli_lists_every_step_without_torch():
    """`newsnow train` has ingest, gan, sketches, encoder, all (and kanjivg), and building
    the parser imports no torch."""
    import argparse
    import subprocess
    import sys
    code = ("import sys, argparse; from training import commands; p = argparse.ArgumentParser(); "
            "s = p.add_subparsers(); commands.register(s); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    from training import commands
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers())
    for step in ("ingest", "gan", "sketches", "encoder", "all", "kanjivg"):
        args = parser.parse_args(["train", step, "x", "--out", "y"] + (["--gan", "g"] if step == "encoder" else [])
                                 if step != "kanjivg" else ["train", step, "--out", "y"])
        assert callable(args.handler)
    args = parser.parse_args(["train", "gan", "d", "--out", "r", "--full", "--r1-gamma", "2"])
    assert commands._gan_config(args).resolution == 256 and commands._gan_config(args).r1_gamma == 2


def _train_all_like_the_fixture(src, out, **kwargs):
    """train_all with tiny_pipeline's settings (conftest), so the two runs can be compared."""
    from tests.training.conftest import tiny_gan_config
    from training.config import encoder_config_from
    from training.pipeline import train_all
    values = dict(gan_cfg=tiny_gan_config(kimg=0.064, snapshot_kimg=0.064))
    values.update(kwargs)
    return train_all(src, out, values.pop("gan_cfg"), encoder_config_from("tiny", steps=6, val_every=6),
                     preset="tiny", pair_count=24, licence="CC BY-SA 3.0", credit="KanjiVG", progress=False,
                     **values)


def _same_files(a, b, pattern):
    names = sorted(p.name for p in a.glob(pattern))
    assert names and names == sorted(p.name for p in b.glob(pattern))
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


@pytest.mark.slow
def test_train_all_stopped_in_the_gan_and_resumed_gives_the_same_bundle(tiny_collection, tiny_pipeline,
                                                                        tmp_path, monkeypatch, caplog):
    """Ctrl-C at GAN step 3 of 8 stops `train all` with the state saved; --resume skips the
    ingest, continues the GAN from its checkpoint and ends in a bundle whose graphs and
    weights are byte for byte those of the uninterrupted run (tiny_pipeline)."""
    import json
    import logging
    import os
    import signal

    import torch

    from training import gan
    from training.pipeline import RunStopped

    ema_beta = gan.ema_beta

    def ctrl_c_at_step_3(cfg, step):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return ema_beta(cfg, step)

    out = tmp_path / "run"
    monkeypatch.setattr(gan, "ema_beta", ctrl_c_at_step_3)
    with pytest.raises(RunStopped) as stopped:
        _train_all_like_the_fixture(tiny_collection, out)
    assert stopped.value.exit_code == 130 and stopped.value.where == "at GAN step 3 (0.02 kimg)"
    assert list(json.loads((out / "run.json").read_text())["stages"]) == ["ingest"]
    assert torch.load(out / "gan" / "state.pt", weights_only=False)["step"] == 3
    monkeypatch.undo()

    ingested = (out / "dataset" / "manifest.json").stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        _train_all_like_the_fixture(tiny_collection, out, resume=True)
    assert (out / "dataset" / "manifest.json").stat().st_mtime_ns == ingested
    assert "stage 1/6: ingest (finished earlier, skipped)" in caplog.text and "resumed" in caplog.text
    assert _same_files(tiny_pipeline / "bundle", out / "bundle", "*.onnx")
    assert _same_files(tiny_pipeline / "bundle", out / "bundle", "*.safetensors")
    a = torch.load(tiny_pipeline / "gan" / "state.pt", weights_only=False)
    b = torch.load(out / "gan" / "state.pt", weights_only=False)
    assert all(torch.equal(a["G_ema"][k], b["G_ema"][k]) for k in a["G_ema"]) and a["step"] == b["step"] == 8

    caplog.clear()
    with caplog.at_level(logging.INFO):  # a finished run: nothing is done again
        _train_all_like_the_fixture(tiny_collection, out, resume=True)
    assert "the run is complete" in caplog.text and "stage 2/6: gan (finished earlier, skipped)" in caplog.text
    assert "stage 6/6: report (finished earlier, skipped)" in caplog.text

    from tests.training.conftest import tiny_gan_config
    caplog.clear()
    with caplog.at_level(logging.INFO):  # a longer GAN: it goes on, and what depends on it is redone
        _train_all_like_the_fixture(tiny_collection, out, resume=True,
                                    gan_cfg=tiny_gan_config(kimg=0.08, snapshot_kimg=0.064))
    assert "resume: gan kimg 0.064 -> 0.08 (applied)" in caplog.text
    record = json.loads((out / "run.json").read_text())
    assert record["stages"]["gan"]["result"]["steps"] == 10 and record["stages"]["encoder"]["result"]["steps"] == 6
    assert list(record["stages"]) == ["ingest", "gan", "sketches", "encoder", "export", "report"]
    assert len(record["commands_run"]) == 3  # stopped, resumed, made longer (the no-op resume changed nothing)


def test_train_all_refuses_an_existing_run_and_a_resume_with_other_settings(tiny_collection, tiny_pipeline):
    """The same command again does not silently start over a finished run; --resume with a
    setting that changes what the steps compute is refused naming the setting; neither
    touches the run."""
    from tests.training.conftest import tiny_gan_config
    before = (tiny_pipeline / "run.json").read_text()
    with pytest.raises(FileExistsError, match=r"already holds a run \(dataset, gan, .*--resume.*--force"):
        _train_all_like_the_fixture(tiny_collection, tiny_pipeline)
    with pytest.raises(ValueError, match=r"gan settings.*style_mixing 0.5 \(the run has 0.9\).*--force"):
        _train_all_like_the_fixture(tiny_collection, tiny_pipeline, resume=True,
                                    gan_cfg=tiny_gan_config(kimg=0.064, snapshot_kimg=0.064, style_mixing=0.5))
    with pytest.raises(ValueError, match=r"fit 'pad' \(the run has 'crop'\)"):
        _train_all_like_the_fixture(tiny_collection, tiny_pipeline, resume=True, fit="pad")
    assert (tiny_pipeline / "run.json").read_text() == before


def test_model_card_and_provenance_say_where_the_model_came_from(tiny_collection, tiny_pipeline):
    """The card has the date, version, commit, preset, command, the source files' hash, the
    not-for-exhibition line of a tiny run; bundle.json's dataset is the scans folder and its
    export command has --check; the held-out sheet has a title band over each group."""
    import cv2
    card = (tiny_pipeline / "bundle" / "MODEL_CARD.md").read_text()
    manifest = __import__("json").loads((tiny_pipeline / "dataset" / "manifest.json").read_text())
    assert "**Not for exhibition:** a --tiny smoke test" in card
    assert "- Preset: tiny" in card and "newsnow 0.1.0" in card and "commit " in card
    assert "- Trained: 20" in card and "Command as run: `train_all() from Python" in card
    assert manifest["source_sha256"] in card
    provenance = Bundle.load(tiny_pipeline / "bundle").provenance
    assert provenance["dataset"] == str(tiny_collection.resolve())
    assert provenance["export_command"].endswith("--check") and provenance["preset"] == "tiny"
    sheet = cv2.imread(str(tiny_pipeline / "held_out_contact_sheet.png"), cv2.IMREAD_GRAYSCALE)
    bands = [y for y in range(sheet.shape[0]) if sheet[y, :4].min() == 255]  # white title bands
    assert len(bands) == 3 * 18 and (sheet[bands] < 128).any()  # three groups, with text in them


def test_a_mistyped_scans_folder_leaves_nothing_behind(tmp_path, tiny_collection, capsys):
    """`train all nosuch --out RUN` fails naming the folder before it writes run.json, so the
    corrected command then starts without --force."""
    from installation import cli
    out = tmp_path / "run"
    assert cli.main(["train", "all", str(tmp_path / "nosuch"), "--out", str(out), "--tiny"]) == 2
    assert "nosuch: does not exist" in capsys.readouterr().err
    assert not (out / "run.json").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["train", "all", str(empty), "--out", str(out), "--tiny"]) == 2
    assert "no image files" in capsys.readouterr().err and not (out / "run.json").exists()
