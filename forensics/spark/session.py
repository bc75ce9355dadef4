"""Where Spark is: the master and configuration, from options or the environment, never code.

``FORENSICS_SPARK_MASTER`` (or ``--spark-master``) names the master
(``local[2]``, ``spark://host:7077``, ``yarn``, ``k8s://...``);
``FORENSICS_SPARK_CONF`` (or ``--spark-conf``) a file in ``spark-defaults.conf``
form (``key value`` per line, ``#`` comments) whose settings are applied to
the session. A master that cannot be reached, or Java missing, is a
``ConfigError`` naming what to set (exit 2), not a traceback.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forensics.errors import ConfigError

__all__ = ["SparkSettings", "read_spark_defaults", "spark_session"]

CONNECT_TIMEOUT_S = 5.0
"""How long to wait for a standalone master's port before saying it is unreachable."""

_QUIET = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
}
"""Settings forensics needs (times are UTC, as in DuckDB); a conf file may not undo the time zone."""


def read_spark_defaults(path: str | Path) -> dict[str, str]:
    r"""Read a ``spark-defaults.conf``-style file: ``key value`` (or ``key=value``) per line.

    Examples
    --------
    >>> import tempfile
    >>> f = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
    >>> _ = f.write("# comment\nspark.sql.shuffle.partitions  4\nspark.executor.memory=2g\n")
    >>> f.close()
    >>> read_spark_defaults(f.name)
    {'spark.sql.shuffle.partitions': '4', 'spark.executor.memory': '2g'}
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(
            f"{file}: no such Spark configuration file; set FORENSICS_SPARK_CONF (or "
            "--spark-conf) to a spark-defaults.conf-style file, or unset it"
        )
    out: dict[str, str] = {}
    for number, line in enumerate(file.read_text().splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        key, sep, value = text.replace("=", " ", 1).partition(" ")
        if not sep or not value.strip():
            raise ConfigError(
                f"{file}, line {number}: {text!r} is not 'key value'; write e.g. "
                "'spark.sql.shuffle.partitions 4'"
            )
        out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class SparkSettings:
    """The master and configuration a session is built with."""

    master: str
    """Spark master URL, e.g. ``local[2]`` or ``spark://host:7077``."""
    conf: Mapping[str, str] = field(default_factory=dict)
    """Spark settings (from the conf file), applied to the session."""

    @classmethod
    def resolve(
        cls,
        *,
        master: str | None = None,
        conf_file: str | Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> SparkSettings:
        """Options first, then ``FORENSICS_SPARK_MASTER`` / ``FORENSICS_SPARK_CONF``.

        Examples
        --------
        >>> SparkSettings.resolve(env={"FORENSICS_SPARK_MASTER": "local[2]"}).master
        'local[2]'
        """
        env = os.environ if env is None else env
        conf_file = conf_file or env.get("FORENSICS_SPARK_CONF") or None
        conf = read_spark_defaults(conf_file) if conf_file else {}
        master = master or env.get("FORENSICS_SPARK_MASTER") or conf.get("spark.master")
        if not master:
            raise ConfigError(
                "no Spark master: set FORENSICS_SPARK_MASTER (e.g. local[2], or "
                "spark://host:7077 for a cluster), pass --spark-master, or put spark.master "
                "in the file FORENSICS_SPARK_CONF names"
            )
        return cls(master=master, conf=conf)


def _check_reachable(master: str) -> None:
    """Refuse a standalone master (``spark://h:p[,h:p]``) none of whose ports answer."""
    if not master.startswith("spark://"):
        return
    hosts = master.removeprefix("spark://").split(",")
    for host_port in hosts:
        host, _, port = host_port.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
                return
        except (OSError, ValueError):
            continue
    raise ConfigError(
        f"Spark master {master} is not reachable (no answer within {CONNECT_TIMEOUT_S:g} s); "
        "check that the cluster is up, or set FORENSICS_SPARK_MASTER (or --spark-master) "
        "to one that is, e.g. local[2] to run on this machine"
    )


def spark_session(settings: SparkSettings, *, app_name: str = "forensics") -> Any:
    """The SparkSession for ``settings`` (the active one is reused by Spark).

    Raises
    ------
    ConfigError
        pyspark not installed, Java missing, or the master unreachable.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError(
            "the Spark engine needs pyspark: pip install 'forensics[spark]' "
            "(pyspark 4.3.0 and sqlglot; Spark runs on a Java 17 runtime)"
        ) from None
    _check_reachable(settings.master)
    builder = SparkSession.builder.master(settings.master).appName(app_name)
    if settings.master.startswith("local") and "spark.pyspark.python" not in settings.conf:
        # Local tasks run this interpreter (its packages). pyspark reads the variable
        # when it starts its workers; a cluster's Python is its own configuration's.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for key, value in {**settings.conf, **_QUIET}.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # the JVM failed to start: Java missing, a bad setting
        raise ConfigError(
            f"cannot start Spark with master {settings.master}: {str(exc).strip()[:300]}; "
            "Spark needs a Java 17 runtime (Debian: apt-get install openjdk-17-jre-headless) "
            "and a valid FORENSICS_SPARK_MASTER / FORENSICS_SPARK_CONF"
        ) from None
    session.sparkContext.setLogLevel("ERROR")
    return session
