"""Names for the files the benchmarks cache in bench/out/, keyed by the code that made them.

A simulation is reused only while the simulator's source is unchanged, and a
database only while the simulator's and ingest's sources (ingest, signals,
schema, readers, cubes) are: otherwise a benchmark would time a new search on
data an old simulator or old detectors wrote, and say nothing.

    >>> len(simulation_key()), simulation_key() == simulation_key()
    (10, True)
    >>> field_key() != simulation_key()
    True
"""

from __future__ import annotations

import hashlib
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
PACKAGE = Path(__file__).resolve().parent.parent / "forensics"

SIMULATOR = ("simulate",)
"""What a simulation depends on (files or folders of the package)."""

FIELD = ("simulate/field",)
"""What a run of the field family depends on (bench/field.py); left out of SIMULATOR's
digest, so changing the field family does not invalidate the tuning library's caches."""

INGEST = ("ingest.py", "readers.py", "schema.py", "db.py", "queries", "signals")
"""What a database depends on besides its simulation."""


def _digest(parts: tuple[str, ...], *, skip: tuple[str, ...] = ()) -> str:
    h = hashlib.sha256()
    skipped = [PACKAGE / s for s in skip]
    for part in parts:
        path = PACKAGE / part
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            if any(file.is_relative_to(s) for s in skipped):
                continue
            h.update(file.relative_to(PACKAGE).as_posix().encode())
            h.update(file.read_bytes())
    return h.hexdigest()[:10]


OTLP_WRITER = ("simulate/otlp.py",)
"""Writes requests as OTLP spans (bench/ingest.py's otlp input): no part of a simulation."""


def simulation_key() -> str:
    """Digest of the simulator's source (the field family and the OTLP writer left out)."""
    return _digest(SIMULATOR, skip=FIELD + OTLP_WRITER)


def data_key() -> str:
    """Digest of the simulator's and ingest's sources."""
    return _digest(SIMULATOR + INGEST, skip=FIELD)


def field_key() -> str:
    """Digest of the field family's source."""
    return _digest(FIELD)


def field_data_key() -> str:
    """Digest of the field family's and ingest's sources."""
    return _digest(FIELD + INGEST)


def simulation_dir(scenario: str, seed: int, rows: int | None, under: str = "") -> Path:
    """Where a simulation of ``scenario`` is cached (in ``bench/out/<under>``)."""
    return OUT / under / f"{scenario}-{rows or 'default'}-{seed}-sim-{simulation_key()}"


def database_path(scenario: str, seed: int, rows: int | None, under: str = "") -> Path:
    """Where the database ingested from that simulation is cached."""
    return OUT / under / f"{scenario}-{rows or 'default'}-{seed}-db-{data_key()}.duckdb"
