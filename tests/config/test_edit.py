"""Saving live changes into the config file: comments and layout kept, read back exactly, a backup."""
from __future__ import annotations

import pytest

from config import Config, ConfigError
from config.edit import save_changes, set_values

TEXT = """# The museum's table
[display]
mode = "headless"  # no projector in the workshop

[tone]
# a little more punch
contrast = 1.2
"""


def test_values_are_replaced_added_and_sections_appended_keeping_comments():
    new = set_values(TEXT, {"tone": {"contrast": 1.5, "gamma": 0.9}, "binarize": {"k": 0.2, "invert": True}})
    assert "# The museum's table" in new and "# a little more punch" in new and "# no projector" in new
    cfg = Config.from_dict(__import__("tomllib").loads(new))
    assert cfg.tone.contrast == 1.5 and cfg.tone.gamma == 0.9 and cfg.display.mode == "headless"
    assert cfg.binarize.values == {"k": 0.2, "invert": True}
    assert new.index("gamma = 0.9") < new.index("[binarize]")  # added inside its own section


def test_a_form_the_editor_does_not_rewrite_is_refused():
    with pytest.raises(ConfigError, match="by hand"):
        set_values('tone = { contrast = 1.2 }\n', {"tone": {"contrast": 1.5}})


def test_save_keeps_a_backup_and_the_mode(tmp_path):
    path = tmp_path / "table.toml"
    path.write_text(TEXT)
    path.chmod(0o600)
    backup = save_changes(path, {"idle": {"after_s": 12.0}})
    assert backup.read_text() == TEXT and Config.load(path).idle.after_s == 12.0
    assert path.stat().st_mode & 0o777 == 0o600 and backup.stat().st_mode & 0o777 == 0o600
