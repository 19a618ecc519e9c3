import pytest

from inference.bundle import Bundle


@pytest.mark.slow
def test_train_all_tiny_yields_a_bundle_the_runtime_loads(tiny_pipeline):
    """`train all --tiny` on a tiny collection ends in a bundle that Bundle.load accepts,
    with the pairs' binarize params, provenance and a model card."""
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
