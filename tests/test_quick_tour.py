"""The README's quick tour, run as written: its claim (F1 1.000) must hold."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
STEPS = ("simulate", "ingest", "ingest-events", "signatures", "evaluate")


def _tour() -> list[list[str]]:
    text = README.read_text()
    block = text.split("### Command line", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["forensics"] and words[1] in STEPS:
            commands.append(words[1:])
    return commands


def test_the_tour_holds_every_step_it_claims():
    assert [c[0] for c in _tour()] == list(STEPS)


@pytest.mark.slow
def test_the_quick_tour_recovers_every_bug_as_the_readme_says(tmp_path):
    out = ""
    for words in _tour():
        args = [re.sub(r"^build/", f"{tmp_path}/build/", w) for w in words]
        done = subprocess.run(
            [sys.executable, "-m", "forensics.cli", *args],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
        out = done.stdout
    assert "found 5, true 5, matched 5: precision 1.000, recall 1.000, F1 1.000" in out
