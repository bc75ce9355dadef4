"""Global switches, read once from ``FORENSICS_*`` environment variables.

Every other module takes its defaults from ``Config``; nothing else reads the
environment.

| variable | meaning | default |
|---|---|---|
| ``FORENSICS_DB`` | database file used when none is given | ``forensics.duckdb`` |
| ``FORENSICS_MEMORY_LIMIT`` | DuckDB memory limit, e.g. ``1GB`` | ``1500MB`` |
| ``FORENSICS_THREADS`` | DuckDB threads (0 = all cores) | ``0`` |
| ``FORENSICS_SALT`` | salt for hashing user and session ids in privacy mode | unset |
| ``FORENSICS_PROGRESS`` | progress bars: ``auto`` (on a terminal), ``on``, ``off`` | ``auto`` |
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from forensics.errors import ConfigError

__all__ = ["Config"]

_PROGRESS_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class Config:
    """Settings that apply to the whole process."""

    db: str = "forensics.duckdb"
    """Database file used when none is given."""
    memory_limit: str = "1500MB"
    """DuckDB memory limit; ingest of 10M rows stays under 2 GB RSS with the default."""
    threads: int = 0
    """DuckDB worker threads; 0 lets DuckDB use every core."""
    salt: str | None = None
    """Salt for hashing identities in privacy mode; never written to the database."""
    progress: str = "auto"
    """Progress bars: auto (only on a terminal), on, off."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Read the ``FORENSICS_*`` variables.

        Examples
        --------
        >>> Config.from_env({"FORENSICS_THREADS": "2"}).threads
        2
        """
        env = os.environ if environ is None else environ
        threads_text = env.get("FORENSICS_THREADS", "0")
        try:
            threads = int(threads_text)
        except ValueError:
            raise ConfigError(
                f"FORENSICS_THREADS={threads_text!r} is not a whole number; unset it or use e.g. 2"
            ) from None
        progress = env.get("FORENSICS_PROGRESS", "auto")
        if progress not in _PROGRESS_MODES:
            raise ConfigError(
                f"FORENSICS_PROGRESS={progress!r}; use one of {', '.join(_PROGRESS_MODES)}"
            )
        return cls(
            db=env.get("FORENSICS_DB", cls.db),
            memory_limit=env.get("FORENSICS_MEMORY_LIMIT", cls.memory_limit),
            threads=threads,
            salt=env.get("FORENSICS_SALT") or None,
            progress=progress,
        )

    def show_progress(self) -> bool:
        """Whether to draw progress bars now (auto: only when stderr is a terminal)."""
        if self.progress == "auto":
            return sys.stderr.isatty()
        return self.progress == "on"
