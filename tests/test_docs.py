"""The docs agree with each other where a reader copies from one into another."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_one_calibration_file_path_in_the_docs():
    """Every calibration.json path the docs and the example config name is the one the
    operations guide's config reads (docs/calibration.md wrote /etc, the config read /var/lib)."""
    texts = [p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
                                     ROOT / "config" / "example.toml"]]
    paths = {m for text in texts for m in re.findall(r"/[\w/.-]*calibration\.json", text)}
    assert paths == {"/var/lib/newsnow/calibration.json"}
