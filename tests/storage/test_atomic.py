"""An atomic write replaces the file whole or not at all, and leaves no temporary file."""
import json
import stat

import pytest

from storage import atomic_write, atomic_write_json


def test_writes_readable_json_in_place(tmp_path):
    path = atomic_write_json(tmp_path / "sub" / "bundle.json", {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1} and path.read_text().endswith("\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["bundle.json"]


def test_a_failing_write_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "state.pt"
    path.write_bytes(b"the last good checkpoint")

    def half_then_fail(f):
        f.write(b"half a checkp")
        raise OSError(28, "No space left on device")
    with pytest.raises(OSError, match="disk is full"):
        atomic_write(path, half_then_fail)
    assert path.read_bytes() == b"the last good checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]


def test_a_full_disk_names_the_file_and_the_space_it_needs(tmp_path):
    """ENOSPC while writing says which file, how much is free and how much it needs, with
    no raw errno: what `newsnow` prints for it."""
    from storage.atomic import DiskFull

    def two_megabytes_then_full(f):
        f.write(b"x" * 2_000_000)
        raise OSError(28, "No space left on device")
    with pytest.raises(DiskFull) as caught:
        atomic_write(tmp_path / "state.pt", two_megabytes_then_full)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'state.pt'}: the disk is full")
    assert "more than 2.0 MB" in message and "MB free" in message and "Errno" not in message
    assert list(tmp_path.iterdir()) == []
