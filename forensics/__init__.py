"""forensics: separate overlapping LLM-serving bugs in request logs.

>>> import forensics
>>> wb = forensics.open(":memory:")
>>> wb.close()
"""

from forensics.config import Config
from forensics.demo import demo_database
from forensics.errors import (
    ConfigError,
    DiskFullError,
    ForensicsError,
    IngestError,
    InternalError,
    MissingColumnError,
    QueryError,
    SchemaError,
    UnknownNameError,
)
from forensics.explain import ExplainParams, Explanation
from forensics.ingest import FileSummary, IngestSummary
from forensics.report import Investigation
from forensics.schema import CANONICAL_COLUMNS, Column, EventMapping, Mapping, UserSignal
from forensics.signals import SignalParams
from forensics.workbench import Workbench, open

__version__ = "0.1.0"

__all__ = [
    "CANONICAL_COLUMNS",
    "Column",
    "Config",
    "ConfigError",
    "DiskFullError",
    "EventMapping",
    "ExplainParams",
    "Explanation",
    "FileSummary",
    "ForensicsError",
    "IngestError",
    "IngestSummary",
    "InternalError",
    "Investigation",
    "Mapping",
    "MissingColumnError",
    "QueryError",
    "SchemaError",
    "SignalParams",
    "UnknownNameError",
    "UserSignal",
    "Workbench",
    "demo_database",
    "open",
]
