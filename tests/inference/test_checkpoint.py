"""Checkpoints rebuild the exact networks and refuse files that are not checkpoints."""
import pytest

torch = pytest.importorskip("torch")

from inference.checkpoint import CheckpointError, load_model_checkpoint, save_model_checkpoint  # noqa: E402
from tests.conftest import make_tiny_model  # noqa: E402


def test_round_trip_rebuilds_identical_networks(tmp_path):
    """Saved generator + encoder + meta load back with the same outputs and meta."""
    G, E = make_tiny_model(seed=3)
    path = save_model_checkpoint(tmp_path / "ck.pt", G, E, {"dataset": "munch", "steps": 7})
    G2, E2, meta = load_model_checkpoint(path)
    assert meta == {"dataset": "munch", "steps": 7}
    assert G2.init_kwargs == G.init_kwargs and E2.init_kwargs == E.init_kwargs
    z, sketch = torch.randn(1, 64), torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(G2(z, noise_mode="const"), G(z, noise_mode="const"))
        assert torch.equal(E2(sketch), E(sketch))
    assert torch.equal(G2.w_avg, G.w_avg)
    assert not list(tmp_path.glob("*.tmp"))  # the temp file was moved into place


def test_generator_only_checkpoint(tmp_path):
    """A GAN-only checkpoint (no encoder yet) loads with encoder None."""
    G, _ = make_tiny_model()
    _, E, meta = load_model_checkpoint(save_model_checkpoint(tmp_path / "g.pt", G))
    assert E is None and meta == {}


def test_bad_files_are_refused_with_the_path(tmp_path):
    """Missing, corrupt and foreign files raise CheckpointError naming the file."""
    with pytest.raises(CheckpointError, match=r"none\.pt: no such file; pass the model\.pt"):
        load_model_checkpoint(tmp_path / "none.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a zip file at all")
    with pytest.raises(CheckpointError, match=r"corrupt\.pt: not a checkpoint \(neither a torch file nor a pickle"):
        load_model_checkpoint(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a New Snow checkpoint"):
        load_model_checkpoint(foreign)
