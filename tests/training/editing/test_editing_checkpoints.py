"""Published StyleGAN2 checkpoints load into the project's generator and draw the same images.

The files are written here in the two formats (rosinality's `.pt` state dict names and
shapes; NVlabs' persistent-object pickle, made with stand-ins for NVlabs' modules), from
a random project generator. The rosinality images are also computed by an independent
forward pass written from that format's definition (upfirdn2d with zero insertion and
padding, per-sample modulated weights), so the 'fir' networks are checked against the
format, not only against themselves.
"""
import argparse
import pickle
import sys

import pytest
import torch

from inference.networks import Generator
from tests.training.reference_formats import (
    Persistent, codes, fir_generator, images, install_nvlabs_stand_ins, nvlabs_g_ema, rosinality_reference,
    rosinality_state, write_nvlabs_pickle,
)
from training.editing.checkpoints import CheckpointFormatError, load_stylegan

torch.set_num_threads(1)


@pytest.mark.parametrize("resolution", [16, 32])
def test_rosinality_checkpoint_draws_the_saved_networks_images(tmp_path, resolution):
    """A g_ema .pt (training-snapshot layout, with argparse args and latent_avg) loads into a
    Generator whose images equal the saved network's and the format's own forward pass."""
    g = fir_generator(resolution)
    sd = rosinality_state(g)
    path = tmp_path / "550000.pt"
    latent_avg = torch.randn(1, 16)
    torch.save({"g_ema": sd, "g": sd, "d": {}, "args": argparse.Namespace(size=resolution),
                "latent_avg": latent_avg}, path)
    loaded = load_stylegan(path)
    assert loaded.format == "rosinality" and loaded.generator.resolution == resolution
    assert loaded.generator.num_ws == g.num_ws and loaded.generator.channels == 3
    ws = codes(g)
    ours, saved = images(loaded.generator, ws), images(g, ws)
    assert torch.allclose(ours, saved, atol=1e-6), (ours - saved).abs().max()
    reference = rosinality_reference(sd, ws)
    assert torch.allclose(ours, reference, atol=1e-4), (ours - reference).abs().max()
    assert torch.allclose(loaded.generator.w_avg, latent_avg[0]) and "latent_avg" in loaded.w_avg_source
    z = torch.randn(3, 16)
    with torch.no_grad():
        assert torch.allclose(loaded.generator.mapping(z), g.mapping(z), atol=1e-6)


def test_the_bilinear_networks_would_not_draw_them(tmp_path):
    """The check above can fail: the table's own (bilinear) upsampling gives other images."""
    g = fir_generator()
    bilinear = Generator(**{**g.init_kwargs, "resample": "bilinear"}).eval()
    bilinear.load_state_dict(g.state_dict())
    ws = codes(g)
    assert (images(bilinear, ws) - rosinality_reference(rosinality_state(g), ws)).abs().max() > 1e-2


def test_pSp_checkpoint_and_missing_latent_avg(tmp_path):
    """pSp/e4e keep the generator as state_dict['decoder.*']; without latent_avg, w_avg is the mean mapped z."""
    g = fir_generator()
    path = tmp_path / "psp.pt"
    torch.save({"state_dict": {**{f"decoder.{k}": v for k, v in rosinality_state(g).items()},
                               "encoder.input_layer.0.weight": torch.zeros(1)}, "opts": {"stylegan_size": 32}}, path)
    loaded = load_stylegan(path)
    assert loaded.format == "psp"  # said as what it is, not as a rosinality generator
    ws = codes(g)
    assert torch.allclose(images(loaded.generator, ws), images(g, ws), atol=1e-6)
    with torch.no_grad():
        mean = g.mapping(torch.randn(20000, 16))[:, 0].mean(0)
    assert (loaded.generator.w_avg - mean).abs().max() < 0.05 and "mean of 10000" in loaded.w_avg_source


def test_partial_and_unknown_rosinality_files_are_refused_by_name(tmp_path):
    g = fir_generator()
    sd = rosinality_state(g)
    partial = {k: v for k, v in sd.items() if k not in ("convs.3.conv.weight", "noises.noise_2")}
    torch.save({"g_ema": partial}, tmp_path / "partial.pt")
    with pytest.raises(CheckpointFormatError, match=r"missing noises\.noise_2, convs\.3\.conv\.weight;"):
        load_stylegan(tmp_path / "partial.pt")
    torch.save({"g_ema": {**sd, "convs.0.conv.extra": torch.zeros(1)}}, tmp_path / "extra.pt")
    with pytest.raises(CheckpointFormatError, match=r"does not know .*convs\.0\.conv\.extra"):
        load_stylegan(tmp_path / "extra.pt")
    torch.save({"model": sd}, tmp_path / "other.pt")
    with pytest.raises(CheckpointFormatError, match=r"other\.pt: a torch file holding a dict with 'model', not a"):
        load_stylegan(tmp_path / "other.pt")
    bad = dict(sd, **{"convs.0.conv.blur.kernel": torch.ones(4, 4) / 16})
    torch.save({"g_ema": bad}, tmp_path / "blur.pt")
    with pytest.raises(CheckpointFormatError, match=r"convs\.0\.conv\.blur\.kernel is not the \[1, 3, 3, 1\]"):
        load_stylegan(tmp_path / "blur.pt")
    with pytest.raises(CheckpointFormatError, match="no such file"):
        load_stylegan(tmp_path / "absent.pt")


def test_channel_widths_the_networks_cannot_hold_are_refused(tmp_path):
    """rosinality channel_multiplier 4 at 64 px (1024 wide above 512 ones) is not min(base / r, max)."""
    from training.editing.stylegan_state import channel_schedule

    assert channel_schedule(tmp_path, {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256}) == (32768, 512)
    assert channel_schedule(tmp_path, {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128}) == (16384, 512)
    with pytest.raises(CheckpointFormatError, match="not min"):
        channel_schedule(tmp_path, {4: 512, 8: 512, 16: 512, 32: 512, 64: 1024})


# ---------------------------------------------------------------------------------------
# NVlabs stylegan2-ada-pytorch: a pickle of persistent objects, written with stand-ins


@pytest.fixture
def nvlabs_modules(monkeypatch):
    return install_nvlabs_stand_ins(monkeypatch)



@pytest.mark.parametrize("channels,conv_clamp", [(3, None), (1, 0.5)])
def test_stylegan2_ada_pickle_draws_the_saved_networks_images(tmp_path, nvlabs_modules, channels, conv_clamp):
    """A network-snapshot .pkl loads without NVlabs' code; images (with conv_clamp read from the
    pickle: 0.5 clamps hard, so a lost clamp shows) equal the saved network's; w_avg is the pickle's."""
    _, easydict = nvlabs_modules
    g = fir_generator(channels=channels, conv_clamp=conv_clamp)
    path = tmp_path / "network-snapshot-000100.pkl"
    write_nvlabs_pickle(path, g, easydict)
    for name in ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util"):
        del sys.modules[name]  # the loader must not need them
    loaded = load_stylegan(path)
    assert loaded.format == "stylegan2-ada" and loaded.generator.init_kwargs["conv_clamp"] == conv_clamp
    ws = codes(g)
    assert torch.allclose(images(loaded.generator, ws), images(g, ws), atol=1e-6)
    assert torch.equal(loaded.generator.w_avg, g.w_avg)
    if conv_clamp is not None:
        unclamped = Generator(**{**g.init_kwargs, "conv_clamp": None}).eval()
        unclamped.load_state_dict(g.state_dict())
        assert (images(unclamped, ws) - images(g, ws)).abs().max() > 1e-2


def test_stylegan2_ada_pickle_refusals(tmp_path, nvlabs_modules):
    """Code in a pickle is never run; a partial G_ema is named; a pickle without G_ema is refused."""
    _, easydict = nvlabs_modules
    evil = tmp_path / "evil.pkl"
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            import os
            return os.system, (f"touch {marker}",)

    with open(evil, "wb") as f:
        pickle.dump({"G_ema": Evil()}, f)
    with pytest.raises(CheckpointFormatError, match=r"refers to (posix|os)\.system"):
        load_stylegan(evil)
    assert not marker.exists()

    g = fir_generator()
    g_ema = nvlabs_g_ema(g, easydict)
    del g_ema.synthesis.b16.conv1._parameters["weight"]
    del g_ema.mapping.fc1._parameters["bias"]
    with open(tmp_path / "partial.pkl", "wb") as f:
        pickle.dump({"G_ema": g_ema}, f)
    with pytest.raises(CheckpointFormatError, match=r"missing mapping\.fc1\.bias, synthesis\.b16\.conv1\.weight"):
        load_stylegan(tmp_path / "partial.pkl")
    with open(tmp_path / "d.pkl", "wb") as f:
        pickle.dump({"D": Persistent("Discriminator")}, f)
    with pytest.raises(CheckpointFormatError, match="no 'G_ema'"):
        load_stylegan(tmp_path / "d.pkl")
