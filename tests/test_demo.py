"""The demo database made from the shipped sample, and `forensics lab` that opens it."""

import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

import forensics
from forensics.cli import main
from forensics.demo import demo_database, find_notebooks, find_sample
from forensics.errors import ConfigError
from forensics.simulate import simulate
from tests.conftest import REPO


@pytest.fixture(scope="module")
def small_sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample") / "sample"
    simulate("postmortem-2025", rows=3000, seed=5, out=out)
    return out


def test_the_sample_is_found_from_inside_the_repository():
    assert find_sample(REPO / "notebooks") == REPO / "data_samples" / "postmortem-2025"
    assert find_notebooks(REPO / "forensics") == REPO / "notebooks"


def test_no_sample_says_how_to_make_one(tmp_path):
    with pytest.raises(ConfigError, match="forensics simulate --out DIR"):
        find_sample(tmp_path)
    with pytest.raises(ConfigError, match="--notebooks DIR"):
        find_notebooks(tmp_path)


def test_demo_database_is_built_once(small_sample, tmp_path):
    out = tmp_path / "demo.duckdb"
    assert demo_database(sample=small_sample, out=out) == out
    with forensics.open(out, read_only=True) as wb:
        assert wb.counts()["requests"] == 3000
        assert wb.counts()["events"] > 0
    built = out.stat().st_mtime_ns
    demo_database(sample=small_sample, out=out)
    assert out.stat().st_mtime_ns == built
    demo_database(sample=small_sample, out=out, rebuild=True)
    assert out.stat().st_mtime_ns != built
    assert not list(tmp_path.glob("*.partial*"))


def test_a_demo_database_with_stale_cubes_is_loaded_again(small_sample, tmp_path):
    """Read-only, as the notebooks open it, stale cubes would leave every count on raw rows."""
    import duckdb

    out = tmp_path / "demo.duckdb"
    demo_database(sample=small_sample, out=out)
    with duckdb.connect(str(out)) as con:  # as a version before cubes recorded their source
        con.execute("ALTER TABLE cube_catalog DROP COLUMN source_state")
    with forensics.open(out, read_only=True) as wb:
        assert wb.cubes() == []
    demo_database(sample=small_sample, out=out)
    with forensics.open(out, read_only=True) as wb:
        assert [c.source_rows for c in wb.cubes()] == [3000]


def test_demo_database_refuses_a_directory_without_requests(tmp_path):
    with pytest.raises(ConfigError, match=r"requests\.parquet not found"):
        demo_database(sample=tmp_path, out=tmp_path / "x.duckdb")


def _fake_repository(root, sample):
    shutil.copytree(sample, root / "data_samples" / "postmortem-2025")
    (root / "notebooks").mkdir()
    shutil.copy(REPO / "notebooks" / "01_triage.ipynb", root / "notebooks")


def test_lab_prepares_the_sample_database_and_serves_the_notebooks_on_loopback(
    small_sample, tmp_path, monkeypatch
):
    _fake_repository(tmp_path, small_sample)
    monkeypatch.chdir(tmp_path / "notebooks")
    result = CliRunner().invoke(main, ["lab", "--dry-run", "--no-browser", "--port", "8899"])
    assert result.exit_code == 0, result.output
    database = tmp_path / "build" / "demo" / "demo.duckdb"
    assert database.is_file()
    assert f"database: {database}" in result.output
    command = result.output.strip().splitlines()[-1]
    assert "-m jupyterlab" in command
    assert "--ServerApp.ip=127.0.0.1" in command
    assert "--ServerApp.port=8899" in command
    assert f"--ServerApp.root_dir={tmp_path / 'notebooks'}" in command
    assert "--no-browser" in command.split()


@pytest.mark.slow
def test_lab_starts_jupyterlab_without_warnings(small_sample, tmp_path, monkeypatch):
    """The command `forensics lab` runs: it serves, and says nothing deprecated on the way."""
    import os
    import socket
    import time

    _fake_repository(tmp_path, small_sample)
    monkeypatch.chdir(tmp_path / "notebooks")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = CliRunner().invoke(main, ["lab", "--dry-run", "--no-browser", "--port", str(port)])
    assert result.exit_code == 0, result.output
    command = result.output.strip().splitlines()[-1].split()
    log = tmp_path / "lab.log"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    with log.open("w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 120
            while f"http://127.0.0.1:{port}/lab?token=" not in log.read_text():
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.5)
        finally:
            server.terminate()
            server.wait(timeout=60)
    text = log.read_text()
    assert "deprecated" not in text.lower(), text
    assert "Traceback" not in text, text


def test_lab_with_a_missing_database_exits_2(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "forensics.cli",
            "lab",
            "--dry-run",
            "--db",
            str(tmp_path / "no.duckdb"),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "no such database" in out.stderr
