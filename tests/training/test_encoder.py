import numpy as np
import pytest
import torch

from inference.checkpoint import load_model_checkpoint
from training.config import encoder_config_from
from training.encoder import FeatureDistance, ScriptedLPIPS, build_encoder, losses_of
from training.gan import GENERATOR, load_discriminator
from training.metrics import fid, gan_metrics, kid
from training.sketches import load_pairs


def _batch(pairs):
    s, d, _ = load_pairs(pairs, "train")
    to = lambda a: torch.from_numpy(a[:8])[:, None].float() / 127.5 - 1  # noqa: E731
    return to(s), to(d)


def test_encoder_steps_lower_the_loss_on_a_fixed_batch(tiny_pipeline):
    """Ten Adam steps on one batch lower the pSp loss (L2 + D-feature perceptual + w-norm)
    while the generator stays frozen."""
    torch.manual_seed(0)
    generator, _, _ = load_model_checkpoint(tiny_pipeline / "gan" / GENERATOR)
    generator.requires_grad_(False)
    before_g = [p.clone() for p in generator.parameters()]
    perceptual = FeatureDistance(load_discriminator(tiny_pipeline / "gan"))
    cfg = encoder_config_from("tiny", lr=1e-3)
    encoder = build_encoder(cfg, generator).train()
    optimizer = torch.optim.Adam(encoder.parameters(), lr=cfg.lr)
    sketch, drawing = _batch(tiny_pipeline / "pairs")
    first = float(losses_of(encoder, generator, perceptual, sketch, drawing, cfg)["loss"].detach())
    for _ in range(10):
        terms = losses_of(encoder, generator, perceptual, sketch, drawing, cfg)
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
    last = float(losses_of(encoder, generator, perceptual, sketch, drawing, cfg)["loss"].detach())
    assert last < first
    assert all(torch.equal(a, b) for a, b in zip(before_g, generator.parameters()))


def test_feature_distance_is_zero_for_equal_images_only(tiny_pipeline):
    """The D-feature perceptual distance is 0 for identical images and positive otherwise."""
    perceptual = FeatureDistance(load_discriminator(tiny_pipeline / "gan"))
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    assert torch.allclose(perceptual(x, x), torch.zeros(2))
    assert (perceptual(x, x.flip(3)) > 0).all()


def test_lpips_from_a_local_torchscript_file(tmp_path):
    """--lpips loads a TorchScript distance from a path and averages it per sample;
    a missing file is a clear error."""
    class Toy(torch.nn.Module):
        def forward(self, x, y):
            return (x - y).abs().mean(dim=[1, 2, 3], keepdim=True)

    torch.jit.save(torch.jit.script(Toy()), str(tmp_path / "lpips.pt"))
    lpips = ScriptedLPIPS(tmp_path / "lpips.pt")
    x = torch.zeros(3, 1, 8, 8)
    assert torch.allclose(lpips(x, x + 0.5), torch.full((3,), 0.5))
    with pytest.raises(FileNotFoundError, match="no LPIPS file"):
        ScriptedLPIPS(tmp_path / "missing.pt")


def test_fid_kid_with_a_local_feature_network(tmp_path):
    """FID/KID run with a locally made TorchScript 'Inception': ~0 for the same set, larger
    for a different one; without a file they are skipped with a message."""
    class Features(torch.nn.Module):
        def forward(self, x, return_features: bool = True):
            return torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1) / 255.0

    path = tmp_path / "inception.pt"
    torch.jit.save(torch.jit.script(Features()), str(path))
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (200, 16, 16), dtype=np.uint8)
    other = rng.integers(0, 128, (200, 16, 16), dtype=np.uint8)
    same = gan_metrics(path, real, real, kid_subsets=5)
    differ = gan_metrics(path, real, other, kid_subsets=5)
    assert abs(same["fid"]) < 1e-6 and differ["fid"] > same["fid"] + 0.1
    assert differ["kid"] > same["kid"]
    assert "skipped" in gan_metrics(None, real, real)
    assert "skipped" in gan_metrics(tmp_path / "none.pt", real, real)
    f = rng.normal(size=(300, 8))
    assert fid(f, f) == pytest.approx(0, abs=1e-6) and kid(f, f + 3, subsets=5) > kid(f, f, subsets=5)


def test_partial_pairs_borrow_the_code_of_their_whole_sketch(tiny_pipeline):
    """A partial pair with no known code gets as its latent target the encoder's own code
    of its drawing's whole sketch (no gradient, the encoder's mode kept); a known code wins."""
    import torch

    from inference.checkpoint import load_model_checkpoint
    from training.encoder import target_codes, whole_pair_index, _tensor

    entries = [{"drawing": "d/0.png", "part": "whole"}, {"drawing": "d/0.png", "part": "1/3"},
               {"drawing": "d/1.png", "part": "2/4"}, {"drawing": "d/1.png", "part": "whole"},
               {"drawing": "d/2.png", "part": "1/2"}]
    whole_of = whole_pair_index(entries)
    assert whole_of.tolist() == [-1, 0, 3, -1, -1]
    generator, encoder, _ = load_model_checkpoint(tiny_pipeline / "encoder" / "model.pt")
    encoder.train()
    sketches = np.stack([np.full((32, 32), 255, np.uint8)] * 5)
    sketches[0, 8:24, 15:17] = 0
    sketches[3, 15:17, 8:24] = 0
    known = np.array([False, False, True, False, False])
    codes = np.zeros((5, generator.num_ws, generator.w_dim), np.float32)
    codes[2] = 7.0
    index = np.array([1, 2, 4, 0])
    code, has = target_codes(encoder, generator, sketches, index, codes, known, whole_of)
    assert has.tolist() == [True, True, False, False] and encoder.training
    encoder.eval()
    with torch.no_grad():
        want = encoder(_tensor(sketches[[0]])) + generator.w_avg
    assert torch.allclose(code[0], want[0]) and torch.all(code[1] == 7.0)


def test_code_steps_teach_the_known_codes_without_the_generator(tiny_pipeline, tmp_path):
    """With --code-steps the run's first steps regress the known codes alone (no image
    terms, no generator pass), and the codes' error falls; pairs without codes are refused."""
    from training.config import encoder_config_from
    from training.encoder import train_encoder
    from training.sketches import load_codes, make_pairs

    pairs = tmp_path / "pairs"
    make_pairs(tiny_pipeline / "gan", pairs, 24, partial_share=0.5)
    s, _, manifest = load_pairs(pairs, "train")
    codes, known = load_codes(pairs, manifest)
    cfg = encoder_config_from("tiny", code_steps=40, steps=40, val_every=40, lr=3e-3)
    summary = train_encoder(pairs, tiny_pipeline / "gan", tmp_path / "run", cfg, progress=False)
    assert summary["train"]["l2"] == 0 and summary["train"]["perceptual"] == 0

    generator, trained, _ = load_model_checkpoint(tmp_path / "run" / "model.pt")
    torch.manual_seed(cfg.seed)
    untrained = build_encoder(cfg, generator).eval()
    x = torch.from_numpy(s)[:, None].float() / 127.5 - 1
    with torch.no_grad():
        error = [float(((e(x) + generator.w_avg - torch.from_numpy(codes)) ** 2).mean()) for e in (untrained, trained)]
    assert error[1] < 0.85 * error[0]

    (pairs / "codes.npy").unlink()
    import json
    m = json.loads((pairs / "manifest.json").read_text())
    for e in m["pairs"]:
        e["code"] = None
    (pairs / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="train pair-codes"):
        train_encoder(pairs, tiny_pipeline / "gan", tmp_path / "run2", cfg, progress=False)


def test_a_new_encoder_run_can_start_from_a_trained_encoder(tiny_pipeline, tmp_path):
    """--init-encoder: the new run's encoder has the given run's weights (from the run folder
    or its bundle); other widths and a resume with it are refused, saying why."""
    from training.encoder import start_from_encoder, train_encoder

    generator, trained, _ = load_model_checkpoint(tiny_pipeline / "encoder" / "model.pt")
    cfg = encoder_config_from("tiny", steps=2, val_every=2)
    for source in (tiny_pipeline / "encoder", tiny_pipeline / "bundle"):
        encoder = build_encoder(cfg, generator)
        start_from_encoder(encoder, source)
        assert all(torch.equal(v, trained.state_dict()[k]) for k, v in encoder.state_dict().items())
    with pytest.raises(ValueError, match="give the settings"):
        start_from_encoder(build_encoder(encoder_config_from("cpu-demo"), generator), tiny_pipeline / "encoder")
    summary = train_encoder(tiny_pipeline / "pairs", tiny_pipeline / "gan", tmp_path / "run", cfg, progress=False,
                            init_encoder=tiny_pipeline / "encoder")
    assert summary["steps"] == 2
    with pytest.raises(ValueError, match="starts a new run"):
        train_encoder(tiny_pipeline / "pairs", tiny_pipeline / "gan", tmp_path / "run", cfg, resume=True,
                      progress=False, init_encoder=tiny_pipeline / "encoder")
