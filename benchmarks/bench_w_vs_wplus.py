"""Where a generator's collapse is: how much of the collection one w for every layer (W,
what the mapping samples) and a w a layer (W+, what the encoder gives) can draw.

    python benchmarks/bench_w_vs_wplus.py --model inference/models/demo --dataset ds64 \
        [--count 128] [--steps 150] [--glo-steps 2000] [--json FILE]

Held-out drawings (never trained on) are fitted by Adam on the pixel error from w_avg, once
in W and once in W+, and each set of fits is measured as the report measures the
generator's samples (training.variety, against training drawings), beside G(z) samples and
the held-out drawings themselves. A W+ fit far ahead of W, in lines as clean as the
drawings' (the grey share), says the synthesis network can draw the collection and the
single-w space the GAN trains is what collapsed (docs/training.md).

With --glo-steps, a copy of the synthesis network is trained too, beside one learned z a
drawing (GLO, Bojanowski et al. 2018, "Optimizing the latent space of generative
networks"; z kept on the sphere the Gaussian's samples lie near): whether the network can
learn to draw the drawings from one w each, and what its G(z) then draws between them.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def fit(G, targets, per_layer: bool, steps: int, lr: float):
    """(images uint8, final pixel error) of codes fitted to `targets` (uint8 [N, R, R])."""
    import torch

    from inference.tensors import from_uint8
    from training.gan import to_uint8
    target = torch.from_numpy(from_uint8(targets))[:, None]
    num_ws = G.mapping.num_ws
    start = G.mapping.w_avg[None].repeat(len(targets), 1)
    w = (start[:, None].repeat(1, num_ws, 1) if per_layer else start).requires_grad_(True)
    codes = (lambda: w) if per_layer else (lambda: w[:, None].expand(-1, num_ws, -1))
    opt = torch.optim.Adam([w], lr=lr)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        error = (G.synthesis(codes(), noise_mode="const") - target).square().mean()
        error.backward()
        opt.step()
    with torch.no_grad():
        image = G.synthesis(codes(), noise_mode="const")
        return to_uint8(image), float((image - target).square().mean())


def learn_codes(G, targets, steps: int, batch: int = 32, seed: int = 0):
    """(a copy of G with its synthesis network trained, one z a drawing) after `steps` of
    GLO on the pixel error of uint8 `targets` [N, R, R]."""
    import copy

    import torch

    from inference.tensors import from_uint8
    from training.glo import GloCodes, keep_on_sphere
    G = copy.deepcopy(G).train().requires_grad_(True)
    target = torch.from_numpy(from_uint8(targets))[:, None]
    rng = torch.Generator().manual_seed(seed)
    z = torch.nn.Parameter(torch.randn(len(targets), G.z_dim, generator=rng))
    opt = torch.optim.Adam([{"params": G.synthesis.parameters(), "lr": GloCodes.WARMUP_LR},  # `train gan --glo`'s
                            {"params": [z], "lr": GloCodes.WARMUP_CODES_LR}], betas=(0.0, 0.99))
    for _ in range(steps):
        index = torch.randint(len(targets), (min(batch, len(targets)),), generator=rng)
        error = (G.synthesis(G.mapping(z[index]), noise_mode="const") - target[index]).square().mean()
        opt.zero_grad(set_to_none=True)
        error.backward()
        opt.step()
        keep_on_sphere(z)
    return G.eval(), z.detach()


def glo(G, targets, z_samples, steps: int):
    """(images of the fits, their pixel error, G(z_samples)) after `learn_codes`."""
    import numpy as np
    import torch

    from inference.tensors import from_uint8
    from training.gan import to_uint8
    G, z = learn_codes(G, targets, steps)
    target = torch.from_numpy(from_uint8(targets))[:, None]
    with torch.no_grad():
        fits = torch.cat([G.synthesis(G.mapping(part), noise_mode="const") for part in z.split(64)])
        samples = np.concatenate([to_uint8(G(part, noise_mode="const")) for part in z_samples.split(64)])
        return to_uint8(fits), float((fits - target).square().mean()), samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a bundle, a GAN run or a generator checkpoint")
    parser.add_argument("--dataset", type=Path, required=True, help="the collection it was trained on (train ingest)")
    parser.add_argument("--count", type=int, default=128, help="held-out drawings to fit")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--glo-steps", type=int, default=0,
                        help="also train the synthesis network with the codes this many steps (GLO; 0: off)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import numpy as np
    import torch

    from training.gan import to_uint8
    from training.ingest import load_images
    from training.report import load_networks
    from training.variety import VarietyMeter
    torch.set_num_threads(args.threads)
    G = load_networks(args.model)[0].eval().requires_grad_(False)
    meter = VarietyMeter(load_images(args.dataset, "train"))
    held = load_images(args.dataset, "validation")[:args.count]
    torch.manual_seed(0)
    with torch.no_grad():
        z = torch.randn(256, G.z_dim)
        samples = np.concatenate([to_uint8(G(z[i:i + 64], noise_mode="const")) for i in range(0, 256, 64)])
    rows = [("held-out drawings themselves", held, None), ("G(z), 256 samples", samples, None)]
    for name, per_layer in (("one w for every layer (W)", False), ("a w a layer (W+)", True)):
        images, error = fit(G, held, per_layer, args.steps, args.lr)
        rows.append((f"fitted, {name}", images, error))
    if args.glo_steps:
        fits, error, glo_samples = glo(G, held, z, args.glo_steps)
        rows.append((f"fitted, one w each, the synthesis network trained too ({args.glo_steps} GLO steps)", fits,
                     error))
        rows.append(("G(z) of that synthesis network", glo_samples, None))
    results = []
    print(f"{len(held)} held-out drawings, {args.steps} steps; variety against the collection:")
    print("| what draws | pixel error | variety | spread | nearest distinct | grey share |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, images, error in rows:
        f = meter.measure(images)
        results.append({"what": name, "pixel_error": error,
                        **{k: f[k] for k in ("variety", "spread", "nearest_distinct", "count", "grey")}})
        print(f"| {name} | {'-' if error is None else f'{error:.3f}'} | {f['variety']:.2f} | {f['spread']:.2f} | "
              f"{f['nearest_distinct']} of {f['count']} | {f['grey']:.2f} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
