"""`newsnow import`: pSp and e4e checkpoints, and researchers' generators with a New Snow
encoder, become table bundles whose graphs compute what the original networks compute.

The files are written by the tests in the reference formats (tests/training/reference_formats.py:
pSp's and e4e's coach.py checkpoint layout, rosinality state dicts, NVlabs pickles) with
small widths; the encoders are checked against a forward pass written from the state dict
as pSp's and e4e's code defines it (`psp_reference_codes`), not only against themselves.
"""
import argparse
import json

import numpy as np
import pytest
import torch

from inference.bundle import Bundle
from inference.export import check_parity, export_bundle
from inference.networks import Generator, PSPEncoder
from inference.runtime import open_backend
from tests.training.reference_formats import (
    install_nvlabs_stand_ins, psp_opts, psp_reference_codes, rosinality_state, write_nvlabs_pickle,
    write_psp_checkpoint,
)
from training.editing.checkpoints import load_stylegan
from training.imports.bundle import import_checkpoint

W_DIM = 32


def decoder(resolution=64, channels=1, seed=0, lr_multiplier=0.01) -> Generator:
    """A small generator with the published networks' FIR upsampling; trained-looking noise and biases."""
    torch.manual_seed(seed)
    g = Generator(resolution, channels=channels, z_dim=W_DIM, w_dim=W_DIM, mapping_layers=2, channel_base=512,
                  channel_max=32, mapping_lr_multiplier=lr_multiplier, resample="fir").eval()
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.endswith(("noise_strength", "bias")) and "affine" not in name:
                p.copy_(torch.randn_like(p) * 0.2)
        g.mapping.w_avg.copy_(torch.randn(W_DIM) * 0.2)
    return g


def table_sketches(resolution, batch=2, seed=3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.where(torch.rand(batch, 1, resolution, resolution, generator=g) < 0.1, -1.0, 1.0)


def run_graph(bundle: Bundle, name: str, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(bundle.graphs[name]), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_psp_sketch_model_becomes_a_bundle_that_draws_what_psp_draws(tmp_path):
    """A pSp sketch checkpoint (1-channel input in [0, 1], latent_avg per style): the encoder
    graph gives pSp's codes for the table's sketch (mapped to [0, 1] and resized to 256 inside
    the graph), the table's sketch -> drawing path the drawing the original decoder makes from them; --check
    passes; the bundle records the encoder kind, the binarization asked for and the source."""
    g = decoder()
    latent_avg = g.w_avg[None].repeat(g.num_ws, 1) + 0.1 * torch.randn(g.num_ws, W_DIM)
    path = tmp_path / "best_model.pt"
    state = write_psp_checkpoint(path, g, "psp", input_nc=1, latent_avg=latent_avg)
    bundle, diffs = import_checkpoint(path, tmp_path / "bundle", binarize={"method": "sauvola", "window": 21},
                                      licence="CC BY 4.0", check=True)
    assert set(diffs) == {"encoder", "generator", "mapping"} and max(diffs.values()) < 1e-4, diffs
    sketch = table_sketches(64)
    pSp_input = torch.nn.functional.interpolate((sketch + 1) / 2, size=(256, 256), mode="bilinear")
    with torch.no_grad():
        want_codes = psp_reference_codes(state, pSp_input) + latent_avg
        want_drawing = g.synthesis(want_codes, noise_mode="const").clamp(-1, 1)
    codes = run_graph(bundle, "encoder", sketch.numpy())
    assert np.abs(codes - want_codes.numpy()).max() < 1e-4 * np.abs(want_codes.numpy()).max()
    drawing = open_backend(bundle, threads=1).sketch_to_drawing(sketch.numpy())
    assert np.abs(drawing - want_drawing.numpy()).max() < 2e-4
    assert bundle.model["encoder"]["kind"] == "psp" and bundle.model["encoder"]["input_range"] == "0:1"
    assert bundle.binarize["method"] == "sauvola" and bundle.binarize["window"] == 21
    assert bundle.binarize["resolution"] == 64
    source = bundle.provenance
    assert source["source_format"] == "psp" and len(source["source_sha256"]) == 64
    assert source["opts"]["encoder_type"] == "GradualStyleEncoder" and source["licence"] == "CC BY 4.0"
    card = (bundle.path / "MODEL_CARD.md").read_text()
    assert str(path.resolve()) in card and "Input stage" in card and "encoder" in card
    # The torch backend rebuilds the published encoder from bundle.json and the weights.
    torch_backend = open_backend(bundle, kind="torch")
    assert np.abs(torch_backend.sketch_to_drawing(sketch.numpy()) - drawing).max() < 1e-4


@pytest.mark.parametrize("kind,input_nc,rows", [("e4e", 3, 1), ("psp-w", 1, 1)])
def test_e4e_and_w_encoders(tmp_path, kind, input_nc, rows):
    """e4e (RGB in [-1, 1], one w plus per-layer deltas, latent_avg [1, w_dim]) and pSp's W
    encoder (learn_in_w: one w for every layer) give their reference codes in the graph."""
    g = decoder(seed=1)
    latent_avg = g.w_avg[None] + 0.1 * torch.randn(rows, W_DIM)
    path = tmp_path / f"{kind}.pt"
    state = write_psp_checkpoint(path, g, kind, input_nc=input_nc, latent_avg=latent_avg, seed=2)
    bundle, _ = import_checkpoint(path, tmp_path / "bundle", weights=False)
    sketch = table_sketches(64)
    original_input = torch.nn.functional.interpolate(sketch, size=(256, 256), mode="bilinear")
    if kind == "e4e":
        original_input = original_input.expand(-1, 3, -1, -1)
    else:
        original_input = (original_input + 1) / 2
    with torch.no_grad():
        want = psp_reference_codes(state, original_input, kind)
    want = (want if want.ndim == 3 else want[:, None].expand(-1, g.num_ws, -1)) + latent_avg
    codes = run_graph(bundle, "encoder", sketch.numpy())
    assert np.abs(codes - want.numpy()).max() < 1e-4 * np.abs(want.numpy()).max()
    assert bundle.model["encoder"]["kind"] == kind
    if kind == "e4e":
        assert bundle.provenance["source_format"] == "e4e" and bundle.model["encoder"]["input_range"] == "-1:1"


def test_psp_checkpoints_that_do_not_fit_are_refused_by_name(tmp_path):
    """A partial encoder, a segmentation-map model, and parts that disagree are one line each."""
    g = decoder()
    path = tmp_path / "seg.pt"
    write_psp_checkpoint(path, g, "psp", input_nc=1, latent_avg=g.w_avg[None],
                         opts=psp_opts("psp", 64, label_nc=19, dataset_type="celebs_seg_to_face"))
    with pytest.raises(ValueError, match=r"seg\.pt: a pSp model for 19-class label maps"):
        import_checkpoint(path, tmp_path / "b1")
    record = torch.load(path, weights_only=True)
    del record["state_dict"]["encoder.styles.4.convs.0.bias"]
    record["opts"]["label_nc"] = 0
    torch.save(record, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match=r"partial\.pt: partial psp encoder: missing styles\.4\.convs\.0\.bias"):
        import_checkpoint(tmp_path / "partial.pt", tmp_path / "b2")
    write_psp_checkpoint(tmp_path / "size.pt", g, "psp", latent_avg=g.w_avg[None], opts=psp_opts("psp", 1024))
    with pytest.raises(ValueError, match=r"size\.pt: opts says the decoder draws 1024 px, but .* 64 px"):
        import_checkpoint(tmp_path / "size.pt", tmp_path / "b3")
    write_psp_checkpoint(tmp_path / "avg.pt", g, "psp", latent_avg=None)
    with pytest.raises(ValueError, match=r"avg\.pt: opts says start_from_latent_avg but the file has no latent_avg"):
        import_checkpoint(tmp_path / "avg.pt", tmp_path / "b4")
    assert not any((tmp_path / f"b{i}" / "bundle.json").exists() for i in range(1, 5))


def test_a_generator_alone_takes_the_encoder_trained_for_it(tmp_path):
    """A rosinality snapshot alone is refused with the steps that make an encoder; with the
    model.pt of an encoder trained for this very generator it becomes a bundle; an encoder
    trained for another generator is refused."""
    from inference.checkpoint import save_model_checkpoint

    g = decoder(resolution=32, seed=4)
    path = tmp_path / "000100.pt"
    torch.save({"g_ema": rosinality_state(g), "args": argparse.Namespace(size=32, n_mlp=2, latent=W_DIM)}, path)
    with pytest.raises(ValueError, match=r"000100\.pt: a rosinality generator without an encoder; .*newsnow train "
                                         r"encoder PAIRS --generator"):
        import_checkpoint(path, tmp_path / "b")
    loaded = load_stylegan(path).generator
    encoder = PSPEncoder(32, loaded.num_ws, W_DIM, width=8, head_width=16).eval()
    save_model_checkpoint(tmp_path / "model.pt", loaded, encoder, {"provenance": {"date": "today"}})
    bundle, diffs = import_checkpoint(path, tmp_path / "b", encoder=tmp_path / "model.pt", check=True)
    assert max(diffs.values()) < 1e-4 and bundle.provenance["source_format"] == "rosinality"
    assert bundle.model["generator"]["resample"] == "fir"
    other = decoder(resolution=32, seed=5)
    save_model_checkpoint(tmp_path / "other.pt", other, encoder)
    with pytest.raises(ValueError, match=r"other\.pt: its encoder was trained for another generator"):
        import_checkpoint(path, tmp_path / "b2", encoder=tmp_path / "other.pt")


def test_every_converted_generator_exports_with_parity(tmp_path, monkeypatch):
    """The FIR path exports with the dynamic batch axis: rosinality (snapshot and bare state
    dict, RGB), NVlabs (with conv_clamp) and a pSp decoder each export and pass --check."""
    _, easydict = install_nvlabs_stand_ins(monkeypatch)
    files = {}
    rgb = decoder(resolution=32, channels=3, seed=6)
    torch.save({"g_ema": rosinality_state(rgb), "latent_avg": rgb.w_avg}, tmp_path / "snapshot.pt")
    files["rosinality"] = tmp_path / "snapshot.pt"
    torch.save(rosinality_state(rgb), tmp_path / "g_ema_state.pt")
    files["bare state dict"] = tmp_path / "g_ema_state.pt"
    clamped = Generator(**{**decoder(resolution=32, seed=7).init_kwargs, "conv_clamp": 256.0}).eval()
    write_nvlabs_pickle(tmp_path / "network-snapshot.pkl", clamped, easydict)
    files["stylegan2-ada"] = tmp_path / "network-snapshot.pkl"
    write_psp_checkpoint(tmp_path / "psp.pt", decoder(resolution=32, seed=8), latent_avg=torch.zeros(W_DIM))
    files["psp decoder"] = tmp_path / "psp.pt"
    for what, path in files.items():
        g = load_stylegan(path).generator
        encoder = PSPEncoder(g.resolution, g.num_ws, g.w_dim, width=8, head_width=16).eval()
        bundle = export_bundle(g, encoder, tmp_path / f"bundle-{path.stem}", weights=False)
        diffs = check_parity(g, encoder, bundle)
        assert max(diffs.values()) < 1e-4, (what, diffs)
        assert bundle.channels == g.channels


def test_import_command_prints_parity_and_refuses_in_one_line(tmp_path, capsys, monkeypatch):
    """`newsnow import FILE --out B --check` prints the parity per graph; a wrong file is one
    line on stderr, exit code 2."""
    from installation.cli import main

    g = decoder(resolution=32, seed=9)
    write_psp_checkpoint(tmp_path / "sketch.model", g, latent_avg=g.w_avg)
    argv = ["import", str(tmp_path / "sketch.model"), "--out", str(tmp_path / "b"), "--check"]
    monkeypatch.setattr("sys.argv", ["newsnow", *argv])  # the provenance records the command as run
    assert main(["import", str(tmp_path / "sketch.model"), "--out", str(tmp_path / "b"), "--check",
                 "--binarize", "offset=0.12", "--no-weights"]) == 0
    out = capsys.readouterr().out
    assert "check encoder" in out and "check generator" in out and "MODEL_CARD.md" in out
    meta = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert meta["binarize"]["offset"] == 0.12 and "newsnow import" in meta["provenance"]["export_command"]
    (tmp_path / "notes.txt").write_text("not a model")
    assert main(["import", str(tmp_path / "notes.txt"), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "notes.txt: not a checkpoint" in err


def test_train_sketches_and_encoder_take_a_generator_file(tmp_path):
    """`train sketches FILE` and `train encoder PAIRS --generator FILE` need no GAN run: the
    encoder's model.pt holds the file's generator (its lr multiplier from the flag), so
    `newsnow import FILE --encoder model.pt` accepts it; without a discriminator or LPIPS
    the perceptual term is zero and the model card's provenance says so."""
    from training.config import encoder_config_from
    from training.encoder import train_encoder
    from training.sketches import make_pairs

    g = decoder(resolution=32, seed=10, lr_multiplier=0.1)
    path = tmp_path / "ffhq-32.pt"
    torch.save({"g_ema": rosinality_state(g)}, path)  # convert_weight.py's layout: no args, no lr_mlp
    manifest = make_pairs(path, tmp_path / "pairs", 12, validation=0.25, mapping_lr_multiplier=0.1)
    assert manifest["generator"] == str(path) and manifest["provenance"]["generator_format"] == "rosinality"
    summary = train_encoder(tmp_path / "pairs", path, tmp_path / "enc", encoder_config_from("tiny", steps=2, val_every=2),
                            progress=False, mapping_lr_multiplier=0.1)
    assert summary["steps"] == 2 and summary["train"]["perceptual"] == 0.0
    from inference.checkpoint import load_model_checkpoint

    trained_for, _, meta = load_model_checkpoint(tmp_path / "enc" / "model.pt")
    assert trained_for.init_kwargs["mapping_lr_multiplier"] == 0.1
    assert meta["provenance"]["perceptual"].startswith("none") and meta["gan"]["generator_sha256"]
    bundle, _ = import_checkpoint(path, tmp_path / "b", encoder=tmp_path / "enc" / "model.pt",
                                  mapping_lr_multiplier=0.1, weights=False)
    z = np.random.default_rng(0).standard_normal((2, W_DIM)).astype(np.float32)
    with torch.no_grad():
        want = g.mapping(torch.from_numpy(z))[:, 0].numpy()
    assert np.abs(run_graph(bundle, "mapping", z) - want).max() < 1e-4


def test_train_encoder_takes_a_gan_run_or_a_generator_file_not_both():
    from installation.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["train", "encoder", "pairs", "--generator", "ffhq.pkl", "--out", "enc",
                              "--mapping-lr-multiplier", "0.1"])
    assert args.generator == "ffhq.pkl" and args.gan is None and args.mapping_lr_multiplier == 0.1
    for wrong in (["--out", "enc"], ["--gan", "run", "--generator", "g.pt", "--out", "enc"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["train", "encoder", "pairs", *wrong])
