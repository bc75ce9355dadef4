"""The shipped sample and the demo database made from it.

``data_samples/postmortem-2025/`` (in the repository) holds a small simulated
incident. ``demo_database()`` finds it from the working directory or any
directory above it (so it works from ``notebooks/`` too), loads it into
``build/demo/demo.duckdb`` next to it once, and returns the path. The CLI's
``lab`` command and the notebooks call it, so that every walkthrough opens the
same database.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from forensics.errors import ConfigError, ForensicsError

__all__ = ["DEMO_DATABASE", "NOTEBOOKS", "SAMPLE", "demo_database", "find_notebooks", "find_sample"]

SAMPLE = Path("data_samples") / "postmortem-2025"
"""Where the shipped sample lives, relative to the repository root."""

DEMO_DATABASE = Path("build") / "demo" / "demo.duckdb"
"""Where the demo database goes, relative to the repository root."""

NOTEBOOKS = Path("notebooks")
"""The walkthrough notebooks, relative to the repository root."""


def _search(start: str | Path | None, relative: Path, marker: str) -> Path | None:
    here = Path(start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / relative / marker).is_file():
            return directory / relative
    return None


def find_sample(start: str | Path | None = None) -> Path:
    """The shipped sample directory, searched in ``start`` (default: cwd) and its parents.

    Raises
    ------
    ConfigError
        When no directory above ``start`` holds ``data_samples/postmortem-2025``.
    """
    found = _search(start, SAMPLE, "requests.parquet")
    if found is None:
        raise ConfigError(
            f"no {SAMPLE}/requests.parquet in {Path(start or Path.cwd()).resolve()} or above "
            "it: run from the forensics repository, or pass sample=DIR (make one with "
            "`forensics simulate --out DIR`)"
        )
    return found


def find_notebooks(start: str | Path | None = None) -> Path:
    """The repository's ``notebooks/`` directory, searched in ``start`` (default: cwd) and up.

    Raises
    ------
    ConfigError
        When no directory above ``start`` holds ``notebooks/01_triage.ipynb``.
    """
    found = _search(start, NOTEBOOKS, "01_triage.ipynb")
    if found is None:
        raise ConfigError(
            f"no {NOTEBOOKS}/01_triage.ipynb in {Path(start or Path.cwd()).resolve()} or above "
            "it: run from the forensics repository, or pass --notebooks DIR"
        )
    return found


def demo_database(
    *, sample: str | Path | None = None, out: str | Path | None = None, rebuild: bool = False
) -> Path:
    """Load the sample into a database once and return the database's path.

    Parameters
    ----------
    sample
        Directory with ``requests.parquet`` (and optionally ``events.csv``);
        default: the shipped sample (``find_sample``).
    out
        Database file; default ``build/demo/demo.duckdb`` at the repository root
        (the directory holding ``data_samples``).
    rebuild
        Load again even when the database exists (it is reloaded anyway when
        it does not hold the sample's current ``requests.parquet``).

    Returns
    -------
    Path
        The database. It is written under a temporary name and renamed when
        complete, so an existing file is always a finished one.
    """
    from forensics.workbench import open as open_workbench

    source = Path(sample) if sample is not None else find_sample()
    requests = source / "requests.parquet"
    if not requests.is_file():
        raise ConfigError(
            f"{requests} not found: pass sample=DIR holding requests.parquet "
            "(make one with `forensics simulate --out DIR`)"
        )
    if out is None:
        root = source.resolve().parent.parent if sample is None else Path.cwd()
        out = root / DEMO_DATABASE
    path = Path(out)
    if path.exists() and not rebuild and _holds(path, requests):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    for stale in (partial, Path(f"{partial}.wal")):
        stale.unlink(missing_ok=True)
    with open_workbench(partial) as wb:
        wb.ingest(requests, errors="raise", progress=False)
        events = source / "events.csv"
        if events.is_file():
            wb.ingest_events(events)
    with contextlib.suppress(FileNotFoundError):
        Path(f"{path}.wal").unlink()
    partial.replace(path)
    return path


def _holds(db: Path, requests: Path) -> bool:
    """Whether a database has ingested exactly this file (same content hash), with fresh cubes.

    A database whose cubes no longer summarise its requests (made by an older
    version, or cut short) is loaded again: read-only, as the notebooks open it,
    it would answer every count from the raw table.
    """
    import duckdb

    from forensics.readers import file_sha256
    from forensics.workbench import open as open_workbench

    try:
        with open_workbench(db, read_only=True) as wb:
            hashes = set(wb.files()["sha256"].to_list())
            cubed = bool(wb.cubes())
    except (ForensicsError, OSError, duckdb.Error):  # unreadable or foreign: load again
        return False
    return cubed and file_sha256(requests) in hashes
