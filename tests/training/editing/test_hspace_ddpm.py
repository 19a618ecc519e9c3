"""The small DDPM trainer (training/ddpm.py) and the `newsnow hspace` commands (train-ddpm among them)."""
import argparse

import cv2
import numpy as np
import pytest
import torch

from training.ddpm import DdpmConfig, train_ddpm
from training.editing.hspace import load_model
from training.editing.hspace_directions import Direction

torch.set_num_threads(1)

TINY = dict(resolution=16, block_out_channels=(8, 16), batch=4, save_every=3, ema_decay=0.9)


@pytest.fixture(scope="module")
def drawings(tmp_path_factory):
    """Twelve 24 px drawings of random dark strokes on white (resized to 16 px when loaded)."""
    folder = tmp_path_factory.mktemp("drawings")
    rng = np.random.default_rng(0)
    for i in range(12):
        img = np.full((24, 24), 255, np.uint8)
        for _ in range(3):
            p, q = rng.integers(2, 22, 2), rng.integers(2, 22, 2)
            cv2.line(img, tuple(int(v) for v in p), tuple(int(v) for v in q), 0, 2)
        cv2.imwrite(str(folder / f"d{i}.png"), img)
    return folder


def test_training_writes_a_loadable_model_and_resumes_exactly(drawings, tmp_path):
    """6 steps in one run and 3 + 3 with --resume give identical weights (state.pt holds
    the whole state); the exported folder loads as an h-space model with finite losses."""
    one = train_ddpm(drawings, tmp_path / "one", DdpmConfig(steps=6, **TINY))
    train_ddpm(drawings, tmp_path / "two", DdpmConfig(steps=3, **TINY))
    two = train_ddpm(drawings, tmp_path / "two", DdpmConfig(steps=6, **TINY), resume=True)
    assert one["steps"] == two["steps"] == 6 and np.isfinite(one["final_loss"])
    a, b = (torch.load(tmp_path / r / "state.pt", weights_only=False) for r in ("one", "two"))
    assert a["step"] == b["step"] == 6
    for k in a["unet"]:
        assert torch.equal(a["unet"][k], b["unet"][k]), k
    model = load_model(tmp_path / "one" / "model")
    assert model.image_shape == (1, 16, 16) and model.num_train_timesteps == 1000
    assert not (tmp_path / "one" / "model.tmp").exists() and not (tmp_path / "one" / "state.pt.tmp").exists()


def test_trainer_errors_name_the_problem(drawings, tmp_path):
    """An empty folder, a resolution the U-Net cannot halve, and resuming with other settings
    raise errors that name the folder, the field or the file."""
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty"):
        train_ddpm(tmp_path / "empty", tmp_path / "run", DdpmConfig(steps=1, **TINY))
    with pytest.raises(ValueError, match="resolution 17"):
        DdpmConfig(resolution=17, block_out_channels=(8, 16))
    train_ddpm(drawings, tmp_path / "run", DdpmConfig(steps=1, **TINY))
    with pytest.raises(ValueError, match="state.pt"):
        train_ddpm(drawings, tmp_path / "run", DdpmConfig(steps=2, **{**TINY, "batch": 2}), resume=True)


def _parser():
    import training.commands
    import training.editing.hspace_commands as hspace_commands

    parser = argparse.ArgumentParser(prog="newsnow")
    sub = parser.add_subparsers(dest="command")
    training.commands.register(sub)
    hspace_commands.register(sub)
    return parser


def _run(parser, argv):
    args = parser.parse_args(argv)
    assert args.handler(args) == 0


@pytest.mark.slow
def test_commands_end_to_end(drawings, tmp_path):
    """`hspace train-ddpm`, then `hspace sample|pca|jacobian|supervised|edit` on the result write
    direction files that load back with the run's timesteps, and grids of the right size."""
    p = _parser()
    run = tmp_path / "run"
    _run(p, ["hspace", "train-ddpm", str(drawings), "--out", str(run), "--resolution", "16", "--channels", "8,16",
             "--steps", "2", "--batch", "4"])
    model = str(run / "model")
    common = ["--model", model, "--steps", "3"]
    _run(p, ["hspace", "sample", *common, "--n", "3", "--out", str(tmp_path / "s.png")])
    assert cv2.imread(str(tmp_path / "s.png"), cv2.IMREAD_GRAYSCALE).shape == (16, 48)
    _run(p, ["hspace", "pca", *common, "--n", "6", "--components", "2", "--grid-samples", "1",
             "--out", str(tmp_path / "pca")])
    pca1 = Direction.load(tmp_path / "pca" / "pca1.safetensors")
    assert pca1.timesteps == load_model(model).timesteps(3) and pca1.model == model
    grid = cv2.imread(str(tmp_path / "pca" / "grid.png"), cv2.IMREAD_GRAYSCALE)
    top, left = grid.shape[0] - 2 * 16, grid.shape[1] - 5 * 16  # 2 x 5 tiles under a labelled margin
    assert top > 5 and left > 5 and grid[:top].min() < 128 and grid[top:, :left].min() < 128
    _run(p, ["hspace", "jacobian", *common, "--at-step", "1", "--k", "2", "--b", "1", "--iters", "3",
             "--grid-samples", "1", "--out", str(tmp_path / "jac")])
    assert Direction.load(tmp_path / "jac" / f"jacobian_t{pca1.timesteps[1]}_2.safetensors").method == "jacobian"
    _run(p, ["hspace", "supervised", *common, "--n", "8", "--pairs", "2", "--name", "ink", "--disentangle",
             str(tmp_path / "pca" / "pca1.safetensors"), "--grid-samples", "1", "--out", str(tmp_path / "sup")])
    ink = Direction.load(tmp_path / "sup" / "ink.safetensors")
    assert abs(float((ink.vectors * pca1.vectors).sum())) < 1e-3 * float(ink.vectors.norm() * pca1.vectors.norm())
    _run(p, ["hspace", "edit", *common, "--eta", "0", "--image", str(drawings), "--direction",
             str(tmp_path / "pca" / "pca1.safetensors"), "--strengths", "0,1", "--out", str(tmp_path / "e.png")])
    assert cv2.imread(str(tmp_path / "e.png"), cv2.IMREAD_GRAYSCALE).shape == (12 * 16, 2 * 16)
