"""Wrong files get one line naming the file, what it is and what to do, from every command
that reads a model file; formats are told apart by content, not by the suffix; nothing in
a file is ever run and no message advises loading unsafely.
"""
import argparse
import pickle

import pytest
import torch

from inference.bundle import DEMO_BUNDLE
from inference.checkpoint import load_model_checkpoint
from tests.training.reference_formats import (
    Persistent, fir_generator, install_nvlabs_stand_ins, nvlabs_g_ema, rosinality_state, write_nvlabs_pickle,
    write_psp_checkpoint,
)
from training.editing.checkpoints import CheckpointFormatError, load_stylegan
from training.imports.bundle import import_checkpoint


def one_line(exc_info, path) -> str:
    message = str(exc_info.value)
    assert "\n" not in message and "\x1b[" not in message, message
    assert "weights_only" not in message and "WeightsUnpickler" not in message, message
    assert message.startswith(str(path)), message
    return message


@pytest.fixture
def nvlabs(monkeypatch):
    return install_nvlabs_stand_ins(monkeypatch)[1]


class Network(torch.nn.Module):  # a whole pickled module, as torch.save(model) writes it
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(2, 2)


def test_truncated_and_foreign_files(tmp_path, nvlabs):
    g = fir_generator()
    whole = tmp_path / "whole.pt"
    torch.save({"g_ema": rosinality_state(g)}, whole)
    cut = tmp_path / "550000.pt"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    for load in (load_stylegan, load_model_checkpoint, lambda p: import_checkpoint(p, tmp_path / "b")):
        with pytest.raises(ValueError) as exc:
            load(cut)
        assert "incomplete torch file" in one_line(exc, cut) and "copy it again" in str(exc.value)
    write_nvlabs_pickle(tmp_path / "snapshot.pkl", g, nvlabs)
    cut_pickle = tmp_path / "network-snapshot-000200.pkl"
    cut_pickle.write_bytes((tmp_path / "snapshot.pkl").read_bytes()[:5000])
    with pytest.raises(CheckpointFormatError) as exc:
        load_stylegan(cut_pickle)
    assert "an incomplete pickle" in one_line(exc, cut_pickle)
    code = tmp_path / "model.pt"
    torch.save(Network(), code)
    with pytest.raises(CheckpointFormatError) as exc:
        load_stylegan(code)
    assert "refers to tests.training.test_model_files.Network (code, not tensors)" in one_line(exc, code)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointFormatError) as exc:
        load_stylegan(empty)
    assert "an empty file" in one_line(exc, empty)
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "weights.pt"))
    with pytest.raises(CheckpointFormatError) as exc:
        load_stylegan(tmp_path / "weights.pt")
    assert "a safetensors file" in one_line(exc, tmp_path / "weights.pt")
    import zipfile

    with zipfile.ZipFile(tmp_path / "faces.zip", "w") as archive:  # an NVlabs data set, passed by mistake
        archive.writestr("00000/img00000000.png", b"png")
    with pytest.raises(CheckpointFormatError) as exc:
        load_stylegan(tmp_path / "faces.zip")
    assert "a zip archive but not a torch file" in one_line(exc, tmp_path / "faces.zip")
    with pytest.raises(CheckpointFormatError) as exc:
        load_stylegan(DEMO_BUNDLE)
    assert "a model bundle folder" in one_line(exc, DEMO_BUNDLE)
    with pytest.raises(CheckpointFormatError) as exc:
        load_stylegan(DEMO_BUNDLE / "mapping.onnx")
    assert "an ONNX graph" in one_line(exc, DEMO_BUNDLE / "mapping.onnx")


def test_formats_by_content_and_bare_generators(tmp_path, nvlabs):
    """A snapshot named .PKL or .pickle, a rosinality file named .pkl, a bare pickled G_ema and a
    bare g_ema state dict all load: they are exactly generators."""
    g = fir_generator()
    ws = g.mapping(torch.randn(2, 16))
    with torch.no_grad():
        want = g.synthesis(ws, noise_mode="const")
    write_nvlabs_pickle(tmp_path / "SNAPSHOT.PKL", g, nvlabs)
    with open(tmp_path / "g_ema.pickle", "wb") as f:
        pickle.dump(nvlabs_g_ema(g, nvlabs), f)
    torch.save({"g_ema": rosinality_state(g)}, tmp_path / "rosinality.pkl")
    torch.save(rosinality_state(g), tmp_path / "g_ema_state_dict")
    formats = {}
    for name in ("SNAPSHOT.PKL", "g_ema.pickle", "rosinality.pkl", "g_ema_state_dict"):
        loaded = load_stylegan(tmp_path / name)
        formats[name] = loaded.format
        with torch.no_grad():
            assert torch.allclose(loaded.generator.synthesis(ws, noise_mode="const"), want, atol=1e-6), name
    assert formats == {"SNAPSHOT.PKL": "stylegan2-ada", "g_ema.pickle": "stylegan2-ada",
                       "rosinality.pkl": "rosinality", "g_ema_state_dict": "rosinality"}


def test_stylegan3_and_other_pickles_are_named(tmp_path, nvlabs):
    synthesis = Persistent("SynthesisNetwork", children=[("input", Persistent("SynthesisInput")),
                                                        ("L0_36_512", Persistent("SynthesisLayer"))])
    g3 = Persistent("Generator", children=[("synthesis", synthesis), ("mapping", Persistent("MappingNetwork"))])
    with open(tmp_path / "stylegan3-t.pkl", "wb") as f:
        pickle.dump({"G_ema": g3}, f)
    with pytest.raises(CheckpointFormatError) as exc:
        load_stylegan(tmp_path / "stylegan3-t.pkl")
    message = one_line(exc, tmp_path / "stylegan3-t.pkl")
    assert "a StyleGAN3 generator" in message and "--cfg=stylegan2" in message
    with open(tmp_path / "d.pkl", "wb") as f:
        pickle.dump(Persistent("Discriminator"), f)
    with pytest.raises(CheckpointFormatError) as exc:
        load_stylegan(tmp_path / "d.pkl")
    assert "a pickled NVlabs Discriminator, not a Generator" in one_line(exc, tmp_path / "d.pkl")
    assert "PickledModule" not in str(exc.value)


def test_export_names_what_a_researchers_file_is_and_the_command_for_it(tmp_path, nvlabs):
    g = fir_generator()
    write_psp_checkpoint(tmp_path / "psp.pt", fir_generator(64), latent_avg=torch.zeros(16))
    torch.save({"g_ema": rosinality_state(g), "args": argparse.Namespace(size=32)}, tmp_path / "rosinality.pt")
    write_nvlabs_pickle(tmp_path / "snapshot.pkl", g, nvlabs)
    hints = {"psp.pt": "a pSp or e4e checkpoint (encoder and decoder); make a bundle of it with `newsnow import",
             "rosinality.pt": "a rosinality StyleGAN2 generator without an encoder; train one for it with "
                              "`newsnow train encoder PAIRS --generator",
             "snapshot.pkl": "a pickle (an NVlabs network snapshot?), not a New Snow checkpoint; train an encoder"}
    for name, hint in hints.items():
        with pytest.raises(ValueError) as exc:
            load_model_checkpoint(tmp_path / name)
        assert hint in one_line(exc, tmp_path / name)


def test_rosinality_lr_mlp_from_args_or_the_flag(tmp_path):
    """A generator trained with lr_mlp 0.1 maps z to its own w when the snapshot's args say
    so, or the flag does; the default 0.01 would be off."""
    g = fir_generator()
    g = type(g)(**{**g.init_kwargs, "mapping_lr_multiplier": 0.1}).eval()
    z = torch.randn(4, 16)
    with torch.no_grad():
        want = g.mapping(z)
    sd = rosinality_state(g)
    torch.save({"g_ema": sd, "args": argparse.Namespace(size=32, n_mlp=2, lr_mlp=0.1)}, tmp_path / "args.pt")
    torch.save({"g_ema": sd}, tmp_path / "plain.pt")
    for path, flag, right in ((tmp_path / "args.pt", None, True), (tmp_path / "plain.pt", None, False),
                              (tmp_path / "plain.pt", 0.1, True)):
        with torch.no_grad():
            got = load_stylegan(path, mapping_lr_multiplier=flag).generator.mapping(z)
        assert torch.allclose(got, want, atol=1e-5) == right, (path.name, flag, (got - want).abs().max())
