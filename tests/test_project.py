"""The project's own contracts: packaging, the public API, the README and CI."""

import re
import subprocess
import sys
import tomllib

import pytest

import forensics
from forensics.schema import schema_markdown
from tests.conftest import REPO


def _pyproject():
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _environment_pip_lines():
    text = (REPO / "environment.yml").read_text()
    pip_block = text.split("- pip:", 1)[1]
    return [
        line.strip()[2:].strip()
        for line in pip_block.splitlines()
        if line.strip().startswith("- ") and not line.strip().startswith("- -e")
    ]


def test_environment_yml_mirrors_pyproject():
    project = _pyproject()["project"]
    expected = project["dependencies"] + project["optional-dependencies"]["dev"]
    assert _environment_pip_lines() == expected
    python = re.search(r"- python(\S+)", (REPO / "environment.yml").read_text()).group(1)
    assert python == project["requires-python"]


def test_top_level_layout():
    for name in (
        "README.md",
        "environment.yml",
        "notebooks",
        "forensics",
        "data_samples",
        "tests",
        "pyproject.toml",
        ".ci/run",
        "Makefile",
        "ARCHITECTURE.md",
    ):
        assert (REPO / name).exists(), name


def test_all_lists_exactly_the_public_names():
    public = {n for n in vars(forensics) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(forensics, n)).__name__ == "module"}
    assert set(forensics.__all__) == public - modules
    for name in forensics.__all__:
        assert getattr(forensics, name) is not None


def _readme():
    return (REPO / "README.md").read_text()


def test_readme_has_the_two_setup_commands_and_ci_runs_the_test_one():
    readme = _readme()
    assert "make demo" in readme
    assert "make test" in readme
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M)


def test_readme_schema_table_is_generated_from_the_code():
    assert schema_markdown() in _readme(), (
        "run `forensics schema --markdown` and paste it in the README"
    )


def _commands():
    from forensics.cli import main

    return sorted(main.commands)


@pytest.mark.parametrize("command", _commands())
def test_every_command_has_help_and_is_in_the_readme(command):
    out = subprocess.run(
        [sys.executable, "-m", "forensics.cli", command, "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Usage:" in out
    assert len(out.splitlines()) > 3
    assert f"forensics {command}" in _readme(), f"document `forensics {command}` in the README"


def test_top_level_help_lists_commands():
    out = subprocess.run(
        [sys.executable, "-m", "forensics.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for command in _commands():
        assert command in out


def _python_blocks(text):
    return re.findall(r"^```python\n(.*?)^```", text, re.M | re.S)


def test_the_readmes_first_python_example_runs_as_written(tmp_path):
    """Run from a checkout's root (data_samples/ there), in a fresh interpreter."""
    code = _python_blocks(_readme())[0]
    assert "forensics.open(" in code
    (tmp_path / "data_samples").symlink_to(REPO / "data_samples")
    env = {**__import__("os").environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.endswith("0") and "csv" in line)
    assert row.split()[1:] == ["ingested", "8", "7", "1", "0"]
    with forensics.open(tmp_path / "logs.duckdb", read_only=True) as wb:
        assert wb.counts()["events"] == 1
        (rejected,) = wb.rejected(reason="bad_timestamp").rows(named=True)
        assert (rejected["row_number"], rejected["bad_value"]) == (6, "yesterday")
        assert "slow" in wb.signals()
        slow = wb.sql("SELECT count(*) FILTER (WHERE slow) AS n FROM requests")["n"][0]
        assert slow == 2  # latency_ms above 30,000 in two accepted rows


def test_readme_lists_every_reason_code_in_order():
    from forensics.ingest import REASONS

    paragraph = _readme().split("Reason codes: ", 1)[1].split("\n\n", 1)[0]
    listed = re.findall(r"`([a-z][a-z_0-9]+)`", paragraph)  # codes, not `t` or `z`
    assert listed == list(REASONS), "keep the README's reason codes in sync with ingest.REASONS"


def test_every_test_the_readme_cites_exists():
    cited = set(re.findall(r"`(?:tests/[a-z_]+\.py::)?(test_[a-z0-9_]+)`", _readme()))
    assert cited
    defined = {
        name
        for path in (REPO / "tests").glob("test_*.py")
        for name in re.findall(r"^def (test_[a-z0-9_]+)", path.read_text(), re.MULTILINE)
    }
    assert cited <= defined, f"the README cites tests that do not exist: {cited - defined}"
