"""Every `cnn3d ...` command line in the README and docs/ parses (torchrun's `-m cnn3d ...` and
sbatch's `--wrap '...'` included), and the pages the README links to exist."""

import re
import shlex
from pathlib import Path

import pytest

from cnn3d.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def command_lines(text: str) -> list[str]:
    """The cnn3d command lines of a page's code blocks (continuations joined, comments cut);
    inline spans are prose ("`cnn3d test` writes ...") and are left out."""
    found = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = re.sub(r"\s#\s.*$", "", line).strip()
            found += _cnn3d_parts(line)
    return found


def _cnn3d_parts(line: str) -> list[str]:
    wrapped = re.findall(r"--wrap '([^']*)'", line)
    if wrapped:
        return [w for w in wrapped if w.startswith("cnn3d ")]
    if line.startswith("cnn3d "):
        return [line]
    if " -m cnn3d " in line:
        return ["cnn3d " + line.split(" -m cnn3d ", 1)[1]]
    return []


def every_line():
    for page in PAGES:
        for line in command_lines(page.read_text(encoding="utf-8")):
            yield pytest.param(line, id=f"{page.name}: {line[:60]}")


def test_the_pages_hold_command_lines():
    lines = [line for page in PAGES for line in command_lines(page.read_text(encoding="utf-8"))]
    assert len(lines) > 20
    assert any(line.startswith("cnn3d train") for line in lines)
    assert any("--shard" in line for line in lines)  # the sbatch --wrap line was found


@pytest.mark.parametrize("line", every_line())
def test_every_command_line_parses(line, capsys):
    argv = shlex.split(line.replace("$SLURM_ARRAY_TASK_ID", "0"))[1:]
    try:
        build_parser().parse_args(argv)
    except SystemExit as stop:
        pytest.fail(f"{line!r} does not parse (exit {stop.code}): {capsys.readouterr().err}")


def test_the_readme_links_resolve():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#]+)\)", text)
    assert links and all((ROOT / link).exists() for link in links), links
