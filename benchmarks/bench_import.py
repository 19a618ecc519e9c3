"""An imported pSp sketch model: parity of its graphs and their latency on this machine.

Writes a pSp-format checkpoint of the published sizes (IR-SE50 encoder with pSp's 14
map2style blocks for a 256 px decoder of rosinality's channel multiplier 2; random weights:
they do not change the cost) in the layout pSp's training saves
(`tests/training/reference_formats.py`), imports it as `newsnow import --check` does, and
times the graphs at batch 1:

    python benchmarks/bench_import.py [--runs 5] [--threads 1] [--providers CPUExecutionProvider]
                                      [--fp16] [--json OUT.json] [--small]

`--small` uses the tests' widths (a few seconds; what CI runs through gpu_check's dry run).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from inference.bench import machine, time_stages  # noqa: E402
from inference.networks import Generator, count_parameters  # noqa: E402

FULL_WIDTHS = (64, 128, 256, 512)  # IR-SE50's


def write_psp_file(path: Path, small: bool) -> None:
    """A pSp sketch checkpoint: 256 px RGB decoder (or 32 px in --small), 1-channel sketch encoder."""
    from tests.training.reference_formats import SMALL_WIDTHS, psp_encoder_state, psp_opts, rosinality_state

    torch.manual_seed(0)
    if small:
        g = Generator(32, channels=3, z_dim=32, w_dim=32, mapping_layers=2, channel_base=512, channel_max=32,
                      resample="fir").eval()
    else:  # rosinality's Generator(256, 512, 8, channel_multiplier=2): widths 512 up to 32 px, then 512, 256, 128
        g = Generator(256, channels=3, z_dim=512, w_dim=512, mapping_layers=8, channel_base=32768, channel_max=512,
                      resample="fir").eval()
    with torch.no_grad():
        w_avg = g.mapping(torch.randn(2000, g.z_dim))[:, 0].mean(0)
    encoder = psp_encoder_state("psp", 1, g.num_ws, g.w_dim, widths=SMALL_WIDTHS if small else FULL_WIDTHS)
    trained_like_codes(encoder, g)
    state = {**{f"encoder.{k}": v for k, v in encoder.items()},
             **{f"decoder.{k}": v for k, v in rosinality_state(g).items()}}
    torch.save({"state_dict": state, "opts": psp_opts("psp", g.resolution, 1),
                "latent_avg": w_avg[None].repeat(g.num_ws, 1)}, path)


def trained_like_codes(encoder: dict, g: Generator) -> None:
    """Scale the random map2style outputs so that the codes spread around latent_avg as mapped w
    do: a random encoder's codes are many times wider than a trained one's, which would drive
    the decoder far outside W and say nothing about the parity of a real model."""
    from inference.bench import example_sketch
    from inference.published import PublishedEncoder
    from tests.training.reference_formats import IRSE50_UNITS

    widths = [int(encoder[f"body.{i}.res_layer.1.weight"].shape[0]) for i in (0, 3, 7, 21)]
    net = PublishedEncoder("psp", g.resolution, g.num_ws, g.w_dim, units=IRSE50_UNITS, widths=widths,
                           style_width=g.w_dim).eval()
    net.load_state_dict({**encoder, "latent_avg": net.latent_avg, "w_avg": net.w_avg})
    with torch.no_grad():
        codes = net(torch.from_numpy(example_sketch(g.resolution)))
        spread = g.mapping(torch.randn(2000, g.z_dim))[:, 0].std(0).mean()
    scale = float(spread / codes.std())
    for name in [k for k in encoder if k.startswith("styles.") and ".linear." in k]:
        encoder[name] = encoder[name] * scale


def measure(work: Path, small: bool, runs: int, threads: int | None, providers: list[str] | None,
            fp16: bool = False, parity_provider: str = "CPUExecutionProvider", save=None) -> dict:
    """The report; `save(report)` is called after each step, so a run cut short by a time
    limit (a TensorRT engine build is slow) keeps what it measured."""
    from inference.export import check_parity
    from inference.runtime import OrtBackend
    from training.editing.checkpoints import open_checkpoint
    from training.imports.bundle import import_checkpoint
    from training.imports.psp import read_sketch_model

    torch.set_flush_denormal(True)
    work.mkdir(parents=True, exist_ok=True)
    source = work / "psp_sketch.pt"
    write_psp_file(source, small)
    started = time.perf_counter()
    bundle, _ = import_checkpoint(source, work / "bundle", fp16=fp16, weights=False)
    seconds = time.perf_counter() - started
    model = read_sketch_model(open_checkpoint(source))
    parity = check_parity(model.loaded.generator, model.encoder, bundle, provider=parity_provider)
    report = {"machine": machine(), "model": "pSp-format, " + ("test widths" if small else "IR-SE50, 256 px decoder"),
              "resolution": bundle.resolution, "precision": bundle.precision,
              "parameters": {"encoder": count_parameters(model.encoder),
                             "generator": count_parameters(model.loaded.generator)},
              "import_seconds": round(seconds, 1),
              "graphs_mb": {p.name: round(p.stat().st_size / 1e6, 1) for p in bundle.path.glob("*.onnx")},
              "parity_max_abs": parity, "parity_provider": parity_provider, "latency": {}}
    save = save or (lambda report: None)
    save(report)
    for provider in providers or ["CPUExecutionProvider"]:
        try:
            backend = OrtBackend(bundle, providers=[provider], threads=threads)
            used = backend.sessions["encoder"].get_providers()[0]
            report["latency"][provider] = {**time_stages(backend, runs=runs, warmup=2), "provider_used": used,
                                           "threads": threads}
        except Exception as exc:  # a provider that cannot build its engine is a finding, not a crash
            report["latency"][provider] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        save(report)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--providers", nargs="+", default=None)
    parser.add_argument("--fp16", action="store_true")
    parser.add_argument("--small", action="store_true", help="the tests' widths, 32 px")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = measure(Path(tmp), args.small, args.runs, args.threads, args.providers, args.fp16)
    text = json.dumps(report, indent=1)
    if args.json:
        args.json.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
