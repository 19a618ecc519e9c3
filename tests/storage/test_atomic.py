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
    with pytest.raises(OSError, match="No space"):
        atomic_write(path, half_then_fail)
    assert path.read_bytes() == b"the last good checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]
