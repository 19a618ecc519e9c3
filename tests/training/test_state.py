"""Training checkpoints: the previous one is kept beside the newest, and a damaged newest
one falls back to it with a message that names the file."""
import logging

import pytest
import torch

from inference.checkpoint import CheckpointError
from training.state import load_state, prepare_run_folder, previous_of, save_state


def test_each_save_keeps_the_one_before(tmp_path):
    path = tmp_path / "state.pt"
    for step in (1, 2, 3):
        save_state({"step": step}, path)
    assert torch.load(path, weights_only=False)["step"] == 3
    assert torch.load(previous_of(path), weights_only=False)["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.prev.pt", "state.pt"]


def test_a_truncated_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    """state.pt cut short (a full disk, a copy cut off): resume reads state.prev.pt, says
    which file was damaged, and moves it aside so the next save cannot push it over the
    good one."""
    path = tmp_path / "state.pt"
    save_state({"step": 1, "w": torch.arange(1000.0)}, path)
    save_state({"step": 2, "w": torch.arange(1000.0)}, path)
    path.write_bytes(path.read_bytes()[:300])
    with caplog.at_level(logging.WARNING):
        record, used = load_state(path)
    assert record["step"] == 1 and used == previous_of(path)
    assert f"{path}: damaged" in caplog.text and "state.prev.pt (step 1)" in caplog.text
    assert (tmp_path / "state.pt.damaged").is_file() and not path.exists()
    save_state({"step": 2}, path)  # the run goes on from step 1
    assert torch.load(previous_of(path), weights_only=False)["step"] == 1


def test_a_checkpoint_missing_after_a_kill_between_rename_and_write_falls_back(tmp_path):
    path = tmp_path / "state.pt"
    save_state({"step": 1}, path)
    path.rename(previous_of(path))
    assert load_state(path)[0]["step"] == 1


def test_no_usable_checkpoint_is_one_clear_error(tmp_path):
    path = tmp_path / "state.pt"
    with pytest.raises(FileNotFoundError, match="nothing to resume; run without --resume"):
        load_state(path)
    path.write_bytes(b"PK\x03\x04 half")
    with pytest.raises(CheckpointError, match=r"state.pt: damaged.*no previous checkpoint state.prev.pt.*--force"):
        load_state(path)
    previous_of(path).write_bytes(b"also half")
    with pytest.raises(CheckpointError, match="the previous checkpoint too.*--force"):
        load_state(path)


def test_a_folder_with_a_run_needs_resume_or_force(tmp_path):
    """An --out that holds a run is refused without --resume/--force; --force clears its
    checkpoints; an --out that is a file is refused in words."""
    state = tmp_path / "run" / "state.pt"
    save_state({"step": 1}, state)
    save_state({"step": 2}, state)
    with pytest.raises(FileExistsError, match="already holds a GAN run.*--resume.*--force"):
        prepare_run_folder(state.parent, state, resume=False, force=False, what="GAN")
    prepare_run_folder(state.parent, state, resume=True, force=False, what="GAN")
    assert state.is_file()
    prepare_run_folder(state.parent, state, resume=False, force=True, what="GAN")
    assert not state.exists() and not previous_of(state).exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="file: is a file, not a folder"):
        prepare_run_folder(tmp_path / "file", tmp_path / "file" / "state.pt", False, False, "GAN")
