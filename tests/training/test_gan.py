import math

import pytest
import torch

from tests.training.conftest import tiny_gan_config
from training.gan import STATE, GENERATOR, train_gan


def test_gan_steps_give_finite_losses_and_weights(tiny_dataset, tmp_path):
    """A few GAN steps (R1 and ADA included) leave no NaN/inf in losses or networks and
    write samples, a state and an exportable generator checkpoint."""
    summary = train_gan(tiny_dataset, tmp_path, tiny_gan_config(kimg=0.04, r1_interval=2, ada_interval=1),
                        progress=False)
    assert summary["steps"] == 5
    assert all(math.isfinite(summary[k]) for k in ("loss_G", "loss_D", "r1", "ada_p"))
    state = torch.load(tmp_path / STATE, weights_only=False)
    for net in ("G", "D", "G_ema"):
        assert all(torch.isfinite(v).all() for v in state[net].values() if v.is_floating_point())
    assert (tmp_path / GENERATOR).is_file()
    assert list(tmp_path.glob("samples_*.png")) and list(tmp_path.glob("interpolation_*.png"))


def test_resume_after_stop_repeats_the_same_steps_exactly(tiny_dataset, tmp_path):
    """Stopping after step 2 and resuming to step 4 gives bitwise the same networks,
    optimiser moments and ADA p as running 4 steps straight."""
    straight = train_gan(tiny_dataset, tmp_path / "a", tiny_gan_config(), progress=False)
    train_gan(tiny_dataset, tmp_path / "b", tiny_gan_config(kimg=0.016), progress=False)
    (tmp_path / "b" / "state.pt.leftover.tmp").write_bytes(b"half a checkpoint")  # a kill mid-save
    resumed = train_gan(tiny_dataset, tmp_path / "b", tiny_gan_config(), resume=True, progress=False)
    assert straight["steps"] == resumed["steps"] == 4
    a = torch.load(tmp_path / "a" / STATE, weights_only=False)
    b = torch.load(tmp_path / "b" / STATE, weights_only=False)
    for net in ("G", "D", "G_ema"):
        for key in a[net]:
            assert torch.equal(a[net][key], b[net][key]), f"{net}.{key} differs after resume"
    for key, value in a["opt_D"]["state"].items():
        assert torch.equal(value["exp_avg"], b["opt_D"]["state"][key]["exp_avg"])
    assert a["ada_p"] == b["ada_p"] and a["step"] == b["step"]


def test_resume_without_state_and_wrong_resolution_are_clear_errors(tiny_dataset, tmp_path):
    """--resume on an empty folder and a resolution mismatch raise errors that say what to do."""
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train_gan(tiny_dataset, tmp_path, tiny_gan_config(), resume=True, progress=False)
    with pytest.raises(ValueError, match="--resolution 32"):
        train_gan(tiny_dataset, tmp_path, tiny_gan_config(resolution=64), progress=False)
