"""`newsnow bench`: per-stage figures for each backend and the torch/ORT ratio; clear error without a bundle."""
import json

import pytest

import inference.bench as bench
from inference.bundle import Bundle
from installation.cli import main


def test_bench_reports_every_stage_and_the_ratio(tiny_bundle):
    """Both backends give median <= p95 for encoder, generator and sketch_to_drawing, and a ratio per stage."""
    pytest.importorskip("torch")
    report = bench.bench(Bundle.load(tiny_bundle), ["onnxruntime", "torch"], runs=3, threads=1)
    assert report["machine"]["cores"] >= 1 and report["machine"]["cpu"]
    for kind in ("onnxruntime", "torch"):
        stages = report["backends"][kind]["stages"]
        assert set(stages) == {"encoder", "generator", "sketch_to_drawing"}
        for f in stages.values():
            assert 0 < f["median_ms"] <= f["p95_ms"]
    assert report["backends"]["onnxruntime"]["providers"] == ["CPUExecutionProvider"]
    assert set(report["torch_over_onnxruntime"]) == {"encoder", "generator", "sketch_to_drawing"}
    text = bench.format_report(report)
    assert "torch eager / onnxruntime" in text and "onnxruntime/CPUExecutionProvider" in text


def test_bench_cli_json(tiny_bundle, capsys):
    """`newsnow bench --bundle B --json` prints parseable JSON with the ORT figures."""
    assert main(["bench", "--bundle", str(tiny_bundle), "--json", "--runs", "2", "--threads", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["backends"]["onnxruntime"]["name"] == "onnxruntime/CPUExecutionProvider"


def test_bench_without_demo_bundle_says_to_pass_one(tmp_path, monkeypatch, capsys):
    """With no --bundle and no demo bundle, the CLI exits 2 and tells the operator to pass --bundle."""
    monkeypatch.setattr(bench, "DEMO_BUNDLE", tmp_path / "demo")
    assert main(["bench"]) == 2
    assert "pass --bundle FOLDER" in capsys.readouterr().err
