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


def _shell_block_after(text: str, marker: str) -> list[str]:
    """The command lines of the first ```sh block after `marker` (comments dropped)."""
    block = re.search(r"```sh\n(.*?)```", text[text.index(marker):], flags=re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


def test_one_gpu_install_recipe_that_swaps_onnxruntime():
    """The GPU install is written once (docs/operations.md, "GPU table"), and the README and
    pyproject point to it. Its commands, as a reader copies them: install the runtime (which
    brings the CPU onnxruntime), then uninstall that, then install onnxruntime-gpu at the
    runtime's own version floor, in that order, so no later install brings the CPU build back.
    No extra installs onnxruntime-gpu beside onnxruntime (both own the `onnxruntime` module)."""
    import tomllib

    ops = (ROOT / "docs" / "operations.md").read_text()
    readme = (ROOT / "README.md").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    floor = next(d for d in project["dependencies"] if d.startswith("onnxruntime")).removeprefix("onnxruntime")
    runtime = _shell_block_after(ops, "## 2. The user and the program")
    assert any(re.fullmatch(r"sudo /opt/newsnow/venv/bin/pip install /opt/newsnow/src", c) for c in runtime)
    swap = _shell_block_after(ops, "**GPU table (NVIDIA)**")
    assert swap == ["sudo /opt/newsnow/venv/bin/pip uninstall -y onnxruntime",
                    f'sudo /opt/newsnow/venv/bin/pip install "onnxruntime-gpu{floor}"']
    assert ops.index("**GPU table (NVIDIA)**") > ops.index("pip install /opt/newsnow/src")
    assert all("onnxruntime-gpu" not in dep for deps in project.get("optional-dependencies", {}).values()
               for dep in deps)
    for text in (readme, ops, (ROOT / "pyproject.toml").read_text()):
        assert "[gpu]" not in text and "pip install onnxruntime-gpu" not in text  # no second recipe
    assert 'docs/operations.md, section 2, "GPU table"' in readme


def test_the_thesis_and_the_papers_are_cited_and_no_doc_points_outside_the_repository():
    """docs/references.md cites the thesis (author, title, institution, year) and Papers I-V
    with their venues; the README points to it; no doc sends a reader to a file that only
    existed on the machine the project was written on (docs/hspace.md named shared/seed/...)."""
    refs = (ROOT / "docs" / "references.md").read_text()
    assert "René Haas. *Deep Generative Models for Faces and Expressions.* PhD thesis" in refs
    assert "IT University of Copenhagen, 2023" in refs
    for paper, where in [("Paper I.", "doi:10.1109/FG52635.2021.9666953"), ("Paper II.", "arXiv:2205.06102"),
                         ("Paper III.", "pages 678-687"), ("Paper IV.", "doi:10.1145/3544549.3583902"),
                         ("Paper V.", "arXiv:2303.11073")]:
        entry = refs[refs.index(f"**{paper}**"):]
        assert where in entry.split("\n- ")[0], paper
    assert "docs/references.md" in (ROOT / "README.md").read_text()
    markdown = [p for p in ROOT.rglob("*.md") if ".git" not in p.parts]
    outside = [f"{p.relative_to(ROOT)}: {m}" for p in markdown
               for m in re.findall(r"(?:shared/seed|/work/|seed/thesis)\S*", p.read_text())]
    assert outside == []


def test_ci_installs_the_debian_packages_the_skipping_tests_and_the_readme_name():
    """The browser and promtool tests skip naming a Debian package; .ci/run installs exactly
    those when missing (as root, skipping cleanly where apt cannot), and the README names them
    beside the test command."""
    import subprocess

    ci = (ROOT / ".ci" / "run").read_text()
    subprocess.run(["bash", "-n", str(ROOT / ".ci" / "run")], check=True)  # it parses
    named = set()
    for test in (ROOT / "tests" / "kiosk" / "test_console.py", ROOT / "tests" / "kiosk" / "test_health.py"):
        named |= set(re.findall(r"apt-get install (\w+)\)", test.read_text()))
    assert named == {"chromium", "prometheus"}
    for package in named:
        assert f"missing+=({package})" in ci
        assert f"`{package}`" in (ROOT / "README.md").read_text()
    assert "id -u" in ci and "command -v apt-get" in ci and "will skip" in ci
