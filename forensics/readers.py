"""Readers: turn an input file into a relation DuckDB can validate.

Parquet is read by DuckDB directly. JSON lines, JSON arrays and CSV are split
into rows in Python (OTLP JSON traces: one flat object per GenAI span, by
``forensics.otlp``), which gives exact line numbers and catches bad UTF-8 and
malformed lines one row at a time, and are staged as text in a temporary
table; DuckDB then parses the JSON. A file that cannot be read at all
(truncated gzip, corrupt Parquet, unbalanced CSV quoting) raises ``IngestError``.
"""

from __future__ import annotations

import codecs
import csv
import glob
import gzip
import hashlib
import io
import itertools
import json
import logging
import multiprocessing
import re
import sys
import traceback
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from forensics.config import Config
from forensics.db import Database
from forensics.errors import ForensicsError, IngestError, InternalError, SchemaError
from forensics.otlp import SpanTally, is_otlp, span_rows
from forensics.schema import quote_identifier

__all__ = [
    "FORMATS",
    "Format",
    "PrivateFile",
    "Redaction",
    "Source",
    "check_parquet",
    "detect_format",
    "file_sha256",
    "open_csv",
    "open_json",
    "open_parquet",
    "resolve_paths",
]

Format = Literal["parquet", "jsonl", "json", "csv", "otlp"]
"""``otlp``: a JSON (lines) file of OTLP traces, told by its content (``otlp.is_otlp``)
in the process that reads the file; every other format by its name."""

FORMATS: dict[str, Format] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "csv",
}
"""File suffix -> format; each text format may also end in ``.gz``."""

_CSV_FIELD_LIMIT = 1 << 30

logger = logging.getLogger("forensics")


# -- paths and formats --------------------------------------------------------------


def detect_format(path: str | Path) -> Format:
    """Return the format of a file from its name (``.gz`` allowed on text formats).

    Examples
    --------
    >>> detect_format("logs/day1.jsonl.gz")
    'jsonl'
    >>> detect_format("requests.parquet")
    'parquet'
    """
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
        if name.endswith((".parquet", ".pq")):
            raise IngestError(
                f"{path}: gzip-compressed Parquet is not supported; Parquet compresses "
                "itself, so decompress it first (gunzip)",
                path=str(path),
            )
    suffix = Path(name).suffix
    if suffix not in FORMATS:
        raise IngestError(
            f"{path}: unknown file type {suffix or '(no suffix)'!r}; supported: "
            + ", ".join(sorted(FORMATS))
            + " (text formats may end in .gz)",
            path=str(path),
        )
    return FORMATS[suffix]


def _is_supported(path: Path) -> bool:
    try:
        detect_format(path)
    except IngestError:
        return False
    return True


def resolve_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Expand files, directories (recursively) and glob patterns into a sorted file list.

    A directory contributes only files of a supported type; a name or pattern
    that matches nothing is an error.
    """
    out: list[Path] = []
    for given in paths:
        p = Path(given)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and _is_supported(f))
            if not found:
                raise IngestError(
                    f"{p}: directory has no files of a supported type ("
                    + ", ".join(sorted(FORMATS))
                    + ")",
                    path=str(p),
                )
            out.extend(found)
        elif p.is_file():
            out.append(p)
        elif any(ch in str(given) for ch in "*?["):
            matched = sorted(Path(m) for m in glob.glob(str(given), recursive=True))
            matched = [m for m in matched if m.is_file()]
            if not matched:
                raise IngestError(f"{given}: the pattern matches no file", path=str(given))
            out.extend(matched)
        else:
            raise IngestError(f"{given}: no such file or directory", path=str(given))
    seen: set[Path] = set()
    unique = []
    for p in out:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (its identity in ``ingested_files``).

    A file that cannot be read (permissions, a vanished file) raises ``IngestError``.
    """
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise _unreadable(path, exc) from None
    return digest.hexdigest()


# -- text readers -------------------------------------------------------------------


def _open_binary(path: Path) -> BinaryIO:
    if path.name.lower().endswith(".gz"):
        return cast(BinaryIO, gzip.open(path, "rb"))
    return path.open("rb")


_CORRUPT = (EOFError, zlib.error, gzip.BadGzipFile)
"""What reading a truncated or corrupt (gzip) file raises; other OSErrors are not about its bytes."""


def _corrupt(path: Path, exc: BaseException) -> IngestError:
    return IngestError(
        f"{path}: the file is truncated or corrupt ({exc}); nothing from this file was "
        "written. Copy or export it again and re-run the ingest.",
        path=str(path),
    )


def _unreadable(path: Path, exc: OSError) -> IngestError:
    return IngestError(
        f"{path}: cannot read the file ({exc.strerror or exc}); nothing from this file was "
        "written. Check that it exists and that you may read it.",
        path=str(path),
    )


def _read_error(path: Path, exc: BaseException) -> IngestError:
    """The refusal for an exception raised while reading a text file."""
    if isinstance(exc, _CORRUPT) or not isinstance(exc, OSError):
        return _corrupt(path, exc)
    return _unreadable(path, exc)


_BOM = codecs.BOM_UTF8


def _json_lines(path: Path) -> Iterator[tuple[int, str | None, str | None]]:
    """Yield (line number, text, error) for each non-blank line of a JSON-lines file."""
    try:
        with _open_binary(path) as fh:
            for number, raw in enumerate(fh, start=1):
                if number == 1 and raw.startswith(_BOM):
                    raw = raw[len(_BOM) :]
                line = raw.rstrip(b"\r\n")
                if not line.strip():
                    continue
                try:
                    yield number, line.decode("utf-8"), None
                except UnicodeDecodeError:
                    yield number, line.decode("utf-8", "backslashreplace"), "invalid_utf8"
    except (EOFError, OSError, zlib.error) as exc:
        raise _read_error(path, exc) from None


_ARRAY_CHUNK = 1 << 20
"""Characters of a JSON array read at a time (more while one element is longer)."""
_JSON_SPACE = " \t\n\r"


def _json_array(path: Path) -> Iterator[tuple[int, str | None, str | None]]:
    """Yield (element number, JSON text, error) for a file holding one JSON array.

    Elements are decoded one at a time from a window of the text, so a file of
    any size takes the memory of its largest element, not of the whole array.
    A file that is not one valid array is refused as a whole.
    """
    decoder = json.JSONDecoder(object_pairs_hook=_object)

    def invalid(detail: str) -> IngestError:
        return IngestError(
            f"{path}: not a valid JSON array ({detail}); write one JSON object per line "
            "(.jsonl) to have bad records quarantined one by one",
            path=str(path),
        )

    try:
        with _open_binary(path) as fh:
            text = io.TextIOWrapper(fh, encoding="utf-8-sig")
            buf, pos, eof = "", 0, False

            def more() -> bool:
                """Read on (as much again as the window holds): False at the end of the file."""
                nonlocal buf, pos, eof
                chunk = "" if eof else text.read(max(_ARRAY_CHUNK, len(buf) - pos))
                if not chunk:
                    eof = True
                    return False
                buf, pos = buf[pos:] + chunk, 0
                return True

            def peek() -> str | None:
                """The next character that is not white space (None at the end)."""
                nonlocal pos
                while True:
                    while pos < len(buf) and buf[pos] in _JSON_SPACE:
                        pos += 1
                    if pos < len(buf):
                        return buf[pos]
                    if not more():
                        return None

            if peek() != "[":
                raise invalid("it does not start with '['")
            pos += 1
            number = 0
            closed = peek() == "]"
            if closed:
                pos += 1
            while not closed:
                if peek() is None:
                    raise invalid(f"the file ends inside the array, after element {number}")
                while True:
                    try:
                        item, end = decoder.raw_decode(buf, pos)
                    except json.JSONDecodeError as exc:
                        if more():
                            continue
                        raise invalid(f"element {number + 1}: {exc.msg}") from None
                    if end == len(buf) and more():  # a number may go on past the window
                        continue
                    break
                pos = end
                number += 1
                duplicate = "duplicate_key" if isinstance(item, _DuplicateKeys) else None
                yield number, _dumps(item), duplicate
                after = peek()
                if after not in (",", "]"):
                    raise invalid(f"',' or ']' expected after element {number}")
                closed = after == "]"
                pos += 1
            if peek() is not None:
                raise invalid("text after the closing ']'")
    except UnicodeDecodeError as exc:
        raise invalid(str(exc)) from None
    except RecursionError:
        raise IngestError(
            f"{path}: the JSON array is nested too deeply to read (more than about "
            f"{sys.getrecursionlimit()} levels); nothing from this file was written. Write one "
            "JSON object per line (.jsonl): each line is then read, or quarantined, on its own.",
            path=str(path),
        ) from None
    except (EOFError, OSError, zlib.error) as exc:
        raise _read_error(path, exc) from None


class _DuplicateKeys(dict[str, Any]):
    """A JSON object that has a key twice: its pairs, as written."""

    pairs: list[tuple[str, Any]]


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads`` hook: a dict, or a ``_DuplicateKeys`` keeping every pair."""
    if len({k for k, _ in pairs}) == len(pairs):
        return dict(pairs)
    duplicated = _DuplicateKeys(pairs)
    duplicated.pairs = pairs
    return duplicated


def _dumps(item: Any) -> str:
    """JSON text of an array element; an object with a repeated key shows every pair."""
    if isinstance(item, _DuplicateKeys):
        return (
            "{"
            + ", ".join(
                f"{json.dumps(k, ensure_ascii=False)}: {json.dumps(v, ensure_ascii=False)}"
                for k, v in item.pairs
            )
            + "}"
        )
    return json.dumps(item, ensure_ascii=False)


def _starts_with_array(path: Path) -> bool:
    try:
        with _open_binary(path) as fh:
            head = fh.read(4096)
    except (EOFError, OSError, zlib.error) as exc:
        raise _read_error(path, exc) from None
    return head.lstrip(_BOM + b" \t\r\n").startswith(b"[")


def _csv_dialect(sample: str, path: Path) -> type[csv.Dialect]:
    """RFC 4180 quoting (``"``, doubled inside a quoted field) with the file's delimiter.

    Only the delimiter is sniffed: the sniffer's guesses about quoting (no
    doubled quotes, ``'`` as the quote) come from the sample's text, and a
    wrong guess lets one stray quote swallow the rows after it.
    """
    if path.name.lower().removesuffix(".gz").endswith(".tsv"):
        return csv.excel_tab
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return csv.excel
    return type("_Sniffed", (csv.excel,), {"delimiter": delimiter})


def _csv_rows(
    path: Path,
) -> tuple[list[str], Iterator[tuple[int, list[str] | None, str | None, str | None]]]:
    """Return the header and an iterator of (line, fields, error, raw) for a CSV file."""
    csv.field_size_limit(_CSV_FIELD_LIMIT)

    def open_text() -> io.TextIOWrapper:
        return io.TextIOWrapper(
            _open_binary(path), encoding="utf-8-sig", errors="surrogateescape", newline=""
        )

    try:
        with open_text() as fh:
            sample = fh.read(65536)
        text = open_text()
    except (EOFError, OSError, zlib.error) as exc:
        raise _read_error(path, exc) from None
    dialect = _csv_dialect(sample, path)
    # strict: a quote left open to the end of the file, or text after a closing
    # quote, is an error rather than a field that swallows the rows after it.
    reader = csv.reader(text, dialect, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        text.close()
        raise _unbalanced_quote(path, 1, reader.line_num, str(exc)) from None
    except (EOFError, OSError, zlib.error) as exc:
        text.close()
        raise _read_error(path, exc) from None
    if header is None:
        text.close()
        return [], iter(())
    if reader.line_num > 1:
        text.close()
        raise _unbalanced_quote(path, 1, reader.line_num, "the header runs over several lines")
    header = [h.strip() for h in header]

    def rows() -> Iterator[tuple[int, list[str] | None, str | None, str | None]]:
        previous = reader.line_num  # the last line of the row before
        try:
            for fields in reader:
                start, end = previous + 1, reader.line_num
                previous = end
                if not fields or (len(fields) == 1 and not fields[0].strip()):
                    continue
                if len(fields) != len(header) and end > start:
                    # A quoted field ran over line ends and the row does not fit the
                    # header: the quote that opened it is almost surely a stray one.
                    raise _unbalanced_quote(
                        path,
                        start,
                        end,
                        f"the row has {len(fields)} fields where the header has {len(header)}",
                    )
                bad_utf8 = any(_has_surrogates(f) for f in fields)
                if bad_utf8:
                    raw = ",".join(_unsurrogate(f) for f in fields)
                    yield start, None, "invalid_utf8", raw
                elif len(fields) != len(header):
                    raw = ",".join(fields)
                    yield start, None, "wrong_field_count", raw
                else:
                    yield start, fields, None, None
        except (EOFError, OSError, zlib.error) as exc:
            raise _read_error(path, exc) from None
        except csv.Error as exc:
            raise _unbalanced_quote(path, previous + 1, reader.line_num, str(exc)) from None
        finally:
            text.close()

    return header, rows()


def _unbalanced_quote(path: Path, start: int, end: int, detail: str) -> IngestError:
    """The refusal of a CSV whose quoting breaks at the row starting on line ``start``."""
    where = f"line {start}" if end <= start else f"line {start} (the row runs on to line {end})"
    return IngestError(
        f"{path}: {where}: unbalanced quote: a quoted field opened in this row is not closed "
        f"where a field ends ({detail}); nothing from this file was written. Fix the quoting "
        f'on line {start}: close the quote, double a quote inside a quoted field (""), or '
        "remove it.",
        path=str(path),
    )


def _has_surrogates(value: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def _unsurrogate(value: str) -> str:
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# -- staging ------------------------------------------------------------------------


@dataclass
class Source:
    """A file opened for validation: a relation name and its columns."""

    relation: str
    """SQL relation (table function or temp table) to select from."""
    columns: dict[str, str]
    """Source column name -> DuckDB type."""
    row_expr: str
    """SQL giving the 1-based row or line number."""
    error_expr: str | None
    """SQL giving a row-level parse error code, or None."""
    raw_expr: str | None
    """SQL giving the raw row text when the reader kept it (rows it could not parse)."""
    params: dict[str, Any]
    """Parameters the relation needs."""
    rows_read: int
    """Rows in the file."""
    not_text: dict[str, str] = field(default_factory=dict)
    """Source column -> SQL: true where its value is a JSON object, array or boolean,
    which a text column does not take (JSON sources only)."""
    redacted: bool = False
    """The values went through a ``Redaction`` before they were staged: a hashed
    column holds hashes, a dropped one ``''`` where it had a value, no raw text is kept."""
    derived: dict[str, str] = field(default_factory=dict)
    """Name -> SQL column of the values a ``Redaction`` derived before dropping others."""
    skipped: int = 0
    """Records of the file read but not staged as rows: the spans of an OTLP file that
    are not GenAI inferences. Rows read = staged rows + skipped."""
    otlp: bool = False
    """The JSON file held OTLP traces (``forensics.otlp``): one row per GenAI span."""


@dataclass(frozen=True)
class Redaction:
    """Privacy mode in the readers: what becomes of a file's values before the database sees any.

    Every batch of rows is read by a DuckDB of its own (``_Reader``: in memory,
    never spilling to disk) that applies this, and only what it gives is
    staged in the database: a hash where a value is hashed, an empty text where
    a dropped value was (so a check can still see that it was there), no raw
    row text. The database's DuckDB never holds a raw value, so neither its
    file nor its spill folder can, not even in a block of reused memory.
    """

    treatment: Callable[[str], Literal["hash", "drop"] | None]
    """Source column name -> ``"hash"``, ``"drop"``, or None to keep it as it is."""
    hash_sql: Callable[[str], str]
    """SQL of a text value -> SQL of its hash (null stays null)."""
    derive: Callable[[str, dict[str, str]], tuple[str, dict[str, str]]]
    """``(relation, columns)`` -> a relation over ``relation`` (every row, in order,
    every column) with more columns computed from the values before any is dropped,
    and those columns' names and types. ``columns`` maps each source column to its
    column in ``relation``."""
    params: dict[str, Any]
    """Parameters the SQL of ``hash_sql`` and ``derive`` uses."""
    setup: Callable[[duckdb.DuckDBPyConnection], None] = lambda con: None
    """Prepares the reader's own connection (registers the functions ``derive`` calls)."""


_INTERNAL = ("_row", "_error", "_raw", "_types")
"""Base names of a staged table's own columns: row, error, raw text, JSON types."""


def _internal_names(columns: Sequence[str]) -> tuple[str, ...]:
    """Names for a staged table's own columns (``_INTERNAL``) that no column of the file has.

    ``_row``, ``_error``, ``_raw``, ``_types`` unless the file has a column of that
    name (in any case), then with more leading underscores: a user's column is
    never shadowed.

    Examples
    --------
    >>> _internal_names(["request_id", "_ROW", "__row"])
    ('___row', '_error', '_raw', '_types')
    """
    taken = {c.lower() for c in columns}
    names = []
    for base in _INTERNAL:
        name = base
        while name.lower() in taken:
            name = "_" + name
        taken.add(name.lower())
        names.append(name)
    return tuple(names)


# -- batches ------------------------------------------------------------------------

_BATCH_ROWS = 100_000
"""Rows staged per batch at most."""
_BATCH_CHARS = 8 << 20
"""Characters of text staged per batch at most: what Python holds of a file at once."""
_READER_SHARE = 8
"""The reader's DuckDB may use this fraction of the database's memory limit ..."""
_READER_MIN, _READER_MAX = 48 << 20, 256 << 20
"""... but at least and at most this many bytes."""
_BATCH_SHARE = 40
"""A batch's text is at most this fraction of the reader's memory: parsing a batch of
JSON lines takes some 30 times its size (DuckDB's JSON functions keep each parsed line)."""

_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([kmgt]?i?b?)\s*", re.IGNORECASE)


def _limit_bytes(limit: str) -> int | None:
    """Bytes of a DuckDB memory limit such as ``1500MB`` or ``2 GiB`` (None if not a size).

    Examples
    --------
    >>> _limit_bytes("1500MB"), _limit_bytes("2 GiB"), _limit_bytes("80%")
    (1500000000, 2147483648, None)
    """
    match = _SIZE.fullmatch(limit)
    if match is None:
        return None
    number, unit = float(match.group(1)), match.group(2).lower()
    base = 1024 if "i" in unit else 1000
    power = "bkmgt".index(unit[0]) if unit and unit[0] != "b" else 0
    return int(number * base**power)


def _batched(
    rows: Iterable[tuple[int, tuple[Any, ...]]], chars: int = _BATCH_CHARS
) -> Iterator[list[tuple[Any, ...]]]:
    """``(size, row)`` pairs as lists of rows: at most ``_BATCH_ROWS`` rows, ``chars`` of size.

    Examples
    --------
    >>> [len(b) for b in _batched(((6, (i,)) for i in range(5)), chars=16)]
    [3, 2]
    """
    batch: list[tuple[Any, ...]] = []
    held = 0
    for size, row in rows:
        batch.append(row)
        held += size
        if len(batch) >= _BATCH_ROWS or held >= chars:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch


class _Reader:
    """A DuckDB of its own that reads the raw values of each batch, in memory only.

    It has no spill folder (``temp_directory`` is empty: past its memory limit a
    statement fails rather than write to disk). What it gives back, as Arrow,
    is what the database stages.
    """

    def __init__(self, config: Config, redaction: Redaction | None) -> None:
        limit = _limit_bytes(config.memory_limit) or _READER_MAX * _READER_SHARE
        self.memory = max(_READER_MIN, min(_READER_MAX, limit // _READER_SHARE))
        """Bytes this DuckDB may use."""
        self.chars = max(64 << 10, min(_BATCH_CHARS, self.memory // _BATCH_SHARE))
        """Characters of text per batch."""
        settings: dict[str, Any] = {"temp_directory": "", "memory_limit": f"{self.memory}B"}
        if config.threads:
            settings["threads"] = config.threads
        self.con = duckdb.connect(":memory:", config=settings)
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute("SET enable_progress_bar = false")
        if redaction is not None:
            redaction.setup(self.con)

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.con.close()

    def keys(self, batch: pa.Table) -> list[str]:
        """The keys of a batch of JSON lines (``_JSON_KEYS``), by first line."""
        self.con.register("_stage_batch", batch)
        try:
            return [r[0] for r in self.con.execute(_JSON_KEYS).fetchall()]
        finally:
            self.con.unregister("_stage_batch")

    def describe(self, schema: pa.Schema) -> dict[str, str]:
        """Column name -> DuckDB type of an Arrow schema, as DuckDB reads it."""
        self.con.register("_stage_batch", schema.empty_table())
        try:
            return {r[0]: r[1] for r in self.con.execute("DESCRIBE FROM _stage_batch").fetchall()}
        finally:
            self.con.unregister("_stage_batch")

    def read(self, select: str, params: dict[str, Any], batch: pa.Table) -> pa.Table:
        """The rows ``select`` gives from ``batch`` (read as ``_stage_batch``)."""
        logger.debug("batch of %d rows: %s", batch.num_rows, select)
        self.con.register("_stage_batch", batch)
        try:
            used = {k: v for k, v in params.items() if re.search(rf"\${re.escape(k)}\b", select)}
            return self.con.sql(select, params=used or None).to_arrow_table()
        finally:
            self.con.unregister("_stage_batch")


class _Stage:
    """A temp table filled batch by batch: the file's columns and its own.

    Its own columns (``_INTERNAL`` and the derived ones) take names no column of
    the file has, even one found in a later batch (JSON keys): such a column
    renames ours. Without a database it only keeps the names (in a child
    process, which the database's process follows: same steps, same names).
    """

    def __init__(self, db: Database | None, name: str, own: Sequence[str]) -> None:
        self.db = db
        self.name = quote_identifier(name)
        self.columns: list[str] = []
        """The file's columns, in order."""
        self.own: dict[str, str] = {}
        """Base name of one of the table's own columns -> its name now."""
        self.created = False
        for base in own:
            self._own(base)

    def _own(self, base: str) -> str:
        if base not in self.own:
            self.own[base] = self._free(base)
        return self.own[base]

    def _free(self, base: str) -> str:
        taken = {c.lower() for c in self.columns} | {n.lower() for n in self.own.values()}
        name = base
        while name.lower() in taken:
            name = "_" + name
        return name

    def _alter(self, sql: str) -> None:
        if self.db is not None and self.created:
            self.db.execute(f"ALTER TABLE {self.name} {sql}")

    def add_columns(self, names: Sequence[str]) -> None:
        """The file has these columns too (after those it had); our own make way."""
        new = [n for n in names if n not in self.columns]
        if not new:
            return
        self.columns.extend(new)
        lowered = {n.lower() for n in new}
        for base, name in list(self.own.items()):
            if name.lower() in lowered:
                del self.own[base]
                fresh = self._free(base)
                self.own[base] = fresh
                self._alter(f"RENAME COLUMN {quote_identifier(name)} TO {quote_identifier(fresh)}")
        for n in new:
            self._alter(f"ADD COLUMN {quote_identifier(n)} VARCHAR")

    def derived(self, key: str, dtype: str) -> str:
        """The name of the column holding derived value ``key`` (of type ``dtype``)."""
        new = "_" + key not in self.own
        name = self._own("_" + key)
        if new:
            self._alter(f"ADD COLUMN {quote_identifier(name)} {dtype}")
        return name

    def append(self, batch: _Batch) -> None:
        """Take a batch's new columns, then store its rows (creating the table first)."""
        self.add_columns(batch.columns)
        for key, dtype in batch.derived.items():
            self.derived(key, dtype)
        assert self.db is not None
        self.db.con.register("_stage_rows", batch.rows)
        try:
            if self.created:
                self.db.execute(f"INSERT INTO {self.name} BY NAME SELECT * FROM _stage_rows")
            else:
                self.db.execute(f"CREATE OR REPLACE TEMP TABLE {self.name} AS FROM _stage_rows")
                self.created = True
        finally:
            try:
                self.db.con.unregister("_stage_rows")
            except duckdb.Error as exc:  # the transaction a failed statement aborted
                logger.debug("unregistering staged rows failed: %s", exc)

    def col(self, base: str) -> str:
        """The quoted name of one of the table's own columns."""
        return quote_identifier(self.own[base])


@dataclass
class _Batch:
    """One batch of a file, read: what the staged table gets from it."""

    columns: list[str]
    """The file's columns known with this batch, in order (JSON keys grow)."""
    derived: dict[str, str]
    """Derived values this batch has, and their types."""
    rows: pa.Table
    """Its rows, under the staged table's column names."""
    types: dict[str, str] = field(default_factory=dict)
    """Column -> DuckDB type as the file declares it (Parquet)."""
    skipped: int = 0
    """Records read since the batch before and not staged (OTLP spans that are not GenAI)."""
    otlp: bool = False
    """The rows are OTLP spans."""


def _staged_select(
    stage: _Stage,
    base: str,
    internal: dict[str, str],
    columns: dict[str, str],
    redaction: Redaction | None,
) -> tuple[str, dict[str, Any], dict[str, str]]:
    """The ``SELECT`` (run by the ``_Reader``) giving one batch's staged rows.

    ``base`` is a relation over the batch; ``internal`` maps our own column
    bases (``_row``...) to their SQL in it, ``columns`` each source column to its
    column in it. Through ``redaction`` when given. Returns the SQL, its
    parameters and the derived columns' types.
    """
    items = [f"{sql} AS {stage.col(b)}" for b, sql in internal.items()]
    relation: str = base
    derived: dict[str, str] = {}
    params: dict[str, Any] = {}
    if redaction is not None:
        relation, derived = redaction.derive(base, columns)
        params = redaction.params
        if "_raw" in internal:  # raw text holds every value: none is kept
            items[list(internal).index("_raw")] = f"CAST(NULL AS VARCHAR) AS {stage.col('_raw')}"
    for name, col in columns.items():
        value = quote_identifier(col)
        treatment = redaction.treatment(name) if redaction is not None else None
        if treatment == "hash":
            assert redaction is not None
            value = redaction.hash_sql(f"NULLIF(trim(CAST({value} AS VARCHAR)), '')")
        elif treatment == "drop":
            value = f"CASE WHEN {value} IS NOT NULL THEN '' END"
        items.append(f"{value} AS {quote_identifier(name)}")
    for key, dtype in derived.items():
        items.append(f"{quote_identifier(key)} AS {quote_identifier(stage.derived(key, dtype))}")
    return f"SELECT {', '.join(items)} FROM {relation}", params, derived


def _text_schema(width: int) -> pa.Schema:
    """Arrow schema of a batch: row number, then ``width - 1`` text columns."""
    return pa.schema(
        [pa.field("c0", pa.int64())] + [pa.field(f"c{i}", pa.string()) for i in range(1, width)]
    )


def _arrow_batch(batch: Sequence[tuple[Any, ...]], schema: pa.Schema) -> pa.Table:
    columns = zip(*batch, strict=True) if batch else [() for _ in schema]
    arrays = [pa.array(list(v), type=f.type) for v, f in zip(columns, schema, strict=True)]
    return pa.Table.from_arrays(arrays, schema=schema)


_OWN: dict[Format, tuple[str, ...]] = {
    "parquet": ("_row",),
    "csv": _INTERNAL[:3],
    "jsonl": _INTERNAL,
    "json": _INTERNAL,
    "otlp": _INTERNAL,
}
"""The staged table's own columns, per format."""


def _batches(
    path: Path, fmt: Format, stage: _Stage, config: Config, redaction: Redaction | None
) -> Iterator[_Batch]:
    """Read a file batch by batch into what its staged table gets (see ``_Batch``).

    Every raw value is read here, by a ``_Reader``; nothing of the database is used.
    """
    with _Reader(config, redaction) as reader:
        if fmt == "parquet":
            yield from _parquet_batches(path, stage, reader, redaction)
        elif fmt == "csv":
            yield from _csv_batches(path, stage, reader, redaction)
        else:
            yield from _json_batches(path, fmt, stage, reader, redaction)


def _staged(
    db: Database, path: Path, fmt: Format, stage: _Stage, batches: Iterable[_Batch]
) -> Source:
    """Fill ``stage`` with ``batches``; the Source over it."""
    rows_read = skipped = 0
    otlp = False
    types: dict[str, str] = {}
    for batch in batches:
        stage.append(batch)
        rows_read += batch.rows.num_rows
        skipped += batch.skipped
        otlp = otlp or batch.otlp
        types = types or batch.types
    source = Source(
        relation=stage.name,
        columns=types or dict.fromkeys(stage.columns, "VARCHAR"),
        row_expr=stage.col("_row"),
        error_expr=stage.col("_error") if "_error" in stage.own else None,
        raw_expr=stage.col("_raw") if "_raw" in stage.own else None,
        params={},
        rows_read=rows_read,
        derived={
            base[1:]: quote_identifier(name)
            for base, name in stage.own.items()
            if base not in _INTERNAL
        },
        skipped=skipped,
        otlp=otlp,
    )
    if fmt in ("json", "jsonl", "otlp"):
        kinds = stage.col("_types")
        source.not_text = {
            k: f"coalesce(list_contains({_NOT_TEXT}, {kinds}[{i + 1}]), false)"
            for i, k in enumerate(stage.columns)
        }
    return source


def _stage_file(db: Database, path: Path, fmt: Format, stage: str) -> Source:
    """Stage a file in this process (without redaction)."""
    staged = _Stage(db, stage, _OWN[fmt])
    return _staged(db, path, fmt, staged, _batches(path, fmt, staged, db.config, None))


# -- Parquet ------------------------------------------------------------------------


def _is_malformed_parquet(exc: BaseException) -> bool:
    """Whether a DuckDB error is its Parquet reader rejecting the file's bytes.

    DuckDB reports a bad footer, schema, page or compressed block as
    ``InvalidInputException`` or ``SerializationException``, or as its base
    ``Error`` (thrift and decompression failures). Everything else (out of
    memory, I/O, a conversion in our SQL) is not a statement about the file.
    """
    if isinstance(exc, duckdb.InvalidInputException | duckdb.SerializationException):
        return True
    return type(exc) is duckdb.Error


def _malformed_parquet(path: Path, exc: BaseException) -> IngestError:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return IngestError(
        f"{path}: cannot read as Parquet ({first}); nothing from this file was written. "
        "Check that it is a complete Parquet file (copy or export it again).",
        path=str(path),
    )


def check_parquet(db: Database, path: Path) -> None:
    """Decode every value of a Parquet file; raise ``IngestError`` if its bytes are bad.

    Ingest calls this after a statement over the file failed, to tell a corrupt
    page (the user's to fix) from a bug (ours): only a failure of this plain
    scan counts as the file's.
    """
    try:
        db.execute(
            "SELECT max(length(CAST(COLUMNS(*) AS VARCHAR))) FROM read_parquet($path)",
            {"path": str(path)},
        )
    except duckdb.Error as exc:
        if _is_malformed_parquet(exc):
            raise _malformed_parquet(path, exc) from None
        raise


_FILE_ROW_NUMBER = "file_row_number"
"""The column DuckDB adds for a row's position in a Parquet file."""

_PARQUET_BATCH_ROWS = 16_384
"""Rows per batch when a Parquet file is copied (see ``_parquet_batches``)."""


def open_parquet(db: Database, path: Path, stage: str = "_stage_parquet") -> Source:
    """Open a Parquet file in place (DuckDB reads it; nothing is staged).

    A file with a column of its own named ``file_row_number`` (DuckDB's name for
    the row position) is copied to temp table ``stage`` instead, batch by batch,
    with the positions in a column of another name, so that its column is kept
    as it is.
    """
    params = {"path": str(path)}
    try:
        described = db.execute("DESCRIBE SELECT * FROM read_parquet($path)", params)
        rows_read = db.scalar("SELECT count(*) FROM read_parquet($path)", params)
    except duckdb.Error as exc:
        if _is_malformed_parquet(exc):
            raise _malformed_parquet(path, exc) from None
        raise
    columns = {r[0]: r[1] for r in described}
    if _FILE_ROW_NUMBER in {c.lower() for c in columns}:
        return _stage_file(db, path, "parquet", stage)
    return Source(
        relation=f"read_parquet($path, {_FILE_ROW_NUMBER} = true)",
        columns=columns,
        row_expr=f"({_FILE_ROW_NUMBER} + 1)",
        error_expr=None,
        raw_expr=None,
        params=params,
        rows_read=int(rows_read),
    )


def _parquet_batches(
    path: Path, stage: _Stage, reader: _Reader, redaction: Redaction | None
) -> Iterator[_Batch]:
    """A Parquet file, in file order, with a row-number column.

    Batches are read in order by pyarrow and numbered as they come, so the
    numbers are the rows' positions in the file.
    """
    try:
        parquet = pq.ParquetFile(path)
        types = reader.describe(parquet.schema_arrow)
        stage.add_columns(list(types))
        names = {name: f"c{i + 1}" for i, name in enumerate(types)}
        first = 1
        batches = parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS)
        for batch in itertools.chain(batches, [None]):
            if batch is None and first > 1:
                break
            table = batch or parquet.schema_arrow.empty_table()
            numbers = pa.array(range(first, first + table.num_rows), pa.int64())
            arrays = [numbers, *table.columns]
            rows = pa.Table.from_arrays(arrays, names=["c0", *names.values()])
            select, params, derived = _staged_select(
                stage, "_stage_batch", {"_row": "c0"}, names, redaction
            )
            yield _Batch(list(types), derived, reader.read(select, params, rows), types)
            first += table.num_rows
    except pa.ArrowException as exc:
        raise _malformed_parquet(path, exc) from None
    except duckdb.Error as exc:
        if _is_malformed_parquet(exc):
            raise _malformed_parquet(path, exc) from None
        raise


# -- JSON and CSV -------------------------------------------------------------------

_NOT_TEXT = "['OBJECT', 'ARRAY', 'BOOLEAN']"
"""SQL: the JSON types a text column does not take."""

_JSON_KEYS = (
    "SELECT key FROM (SELECT unnest(json_keys(c2)) AS key, c0 FROM _stage_batch WHERE c1 IS NULL "
    "AND try(json_type(c2)) = 'OBJECT') GROUP BY key ORDER BY min(c0), key"
)
"""SQL: the keys of a batch of JSON lines, by first line."""

_JSON_ERROR = (
    "CASE WHEN c1 IS NOT NULL THEN c1 WHEN t0 IS NULL THEN 'malformed_json' "
    "WHEN t0 <> 'OBJECT' THEN 'not_a_json_object' END"
)
"""SQL: a JSON line's problem (bad UTF-8, not JSON, not an object), or null, given
``t0``, its JSON type (null when it is not JSON: one parse tells both)."""


_TYPED_LINES = (
    "(SELECT c0, c1, c2, CASE WHEN c1 IS NULL THEN try(json_type(c2)) END AS t0 FROM _stage_batch)"
)
"""SQL: a batch of JSON lines with each line's JSON type (``t0``)."""


def _json_batch(keys: Sequence[str]) -> str:
    """SQL: one batch of JSON lines (``_stage_batch``) as row, error, raw, types, ``k<i>``.

    Per row: the JSON type of each key's value (null where the key is absent), kept
    only where one is an object, an array or a boolean (text columns refuse those;
    numbers read as their text); a row with more keys than keys found has one twice
    (``duplicate_key``: which value is meant?). Raw text is kept for rows with a
    problem only: the others are rebuilt from their values when one is rejected.
    """
    if keys:
        values = (
            "(SELECT c0, c2, CASE WHEN e0 IS NULL AND len(json_keys(c2)) > "
            "len([t FOR t IN _t IF t IS NOT NULL]) THEN 'duplicate_key' ELSE e0 END AS e, _v, _t "
            "FROM (SELECT c0, c2, e0, CASE WHEN e0 IS NULL THEN json_extract_string(c2, $paths) "
            "END AS _v, CASE WHEN e0 IS NULL THEN json_type(c2, $paths) END AS _t "
            f"FROM (SELECT c0, c2, {_JSON_ERROR} AS e0 FROM {_TYPED_LINES})))"
        )
    else:
        values = f"(SELECT c0, c2, {_JSON_ERROR} AS e, CAST(NULL AS VARCHAR[]) AS _t FROM {_TYPED_LINES})"
    items = "".join(f", CASE WHEN e IS NULL THEN _v[{i + 1}] END AS k{i}" for i in range(len(keys)))
    return (
        "(SELECT c0, e AS c1, CASE WHEN e IS NOT NULL THEN c2 END AS c2, CASE WHEN e IS NULL "
        f"AND list_has_any(_t, {_NOT_TEXT}) THEN _t END AS c3{items} FROM {values})"
    )


def _json_paths(keys: Sequence[str]) -> list[str]:
    return ['$."' + k.replace("\\", "\\\\").replace('"', '\\"') + '"' for k in keys]


def open_json(db: Database, path: Path, fmt: Format, stage: str) -> Source:
    """Stage a JSON-lines (or JSON array) file as temp table ``stage``, one column per key.

    Each line is checked for UTF-8, JSON validity and being an object; the keys
    of all valid lines become VARCHAR columns (values as JSON text), in the order
    they first appear. Lines are parsed in batches by a ``_Reader`` and only what
    it gives is staged.
    """
    return _stage_file(db, path, fmt, stage)


def _json_batches(
    path: Path, fmt: Format, stage: _Stage, reader: _Reader, redaction: Redaction | None
) -> Iterator[_Batch]:
    """A JSON-lines, JSON-array or OTLP file's batches (OTLP: one flat object per GenAI span).

    Whether a file is OTLP is read here, in the process that reads the file (in
    privacy mode a child: the database's process reads none of its bytes).
    """
    tally = SpanTally()
    otlp = fmt == "otlp" or is_otlp(path)
    if otlp:
        lines = span_rows(path, tally)
    elif fmt == "json" and _starts_with_array(path):
        lines = _json_array(path)
    else:
        lines = _json_lines(path)
    told = 0
    schema = _text_schema(3)
    internal = {"_row": "c0", "_error": "c1", "_raw": "c2", "_types": "c3"}
    sized = ((len(text or ""), (n, err, text)) for n, text, err in lines)
    first = True
    for batch in itertools.chain(_batched(sized, reader.chars), [[]]):
        if not batch and not first and tally.skipped == told:
            break
        first = False
        table = _arrow_batch(batch, schema)
        # The keys known so far are tried first: a line with a key they lack has
        # more keys than were found, as one with a key twice has, and only then
        # are the batch's keys looked up (new keys are rare after the first lines).
        looked_up = not stage.columns
        new = _new_keys(path, stage, reader, table) if looked_up and batch else []
        while True:
            stage.add_columns(new)
            keys = list(stage.columns)
            columns = {k: f"k{i}" for i, k in enumerate(keys)}
            select, params, derived = _staged_select(
                stage, _json_batch(keys), internal, columns, redaction
            )
            rows = reader.read(select, {**params, "paths": _json_paths(keys)}, table)
            if looked_up or not _has_duplicate_keys(rows, stage.own["_error"]):
                break
            looked_up = True
            new = _new_keys(path, stage, reader, table)
            if not new:
                break
        yield _Batch(keys, derived, rows, skipped=tally.skipped - told, otlp=otlp)
        told = tally.skipped


def _new_keys(path: Path, stage: _Stage, reader: _Reader, table: pa.Table) -> list[str]:
    """The keys of a batch of JSON lines that ``stage`` does not have yet."""
    new = [k for k in reader.keys(table) if k not in stage.columns]
    _check_unique_names(path, [*stage.columns, *new])
    return new


def _has_duplicate_keys(rows: pa.Table, error: str) -> bool:
    """Whether a staged batch has a line flagged ``duplicate_key``."""
    return bool(pc.any(pc.equal(rows[error], "duplicate_key")).as_py())


def open_csv(db: Database, path: Path, stage: str) -> Source:
    """Stage a CSV/TSV file as temp table ``stage``: the header's columns, as text.

    The delimiter is sniffed; empty fields are null; rows with bad UTF-8 or the
    wrong number of fields keep their raw text (none in privacy mode) and a
    row-level error. Rows are staged in batches.
    """
    return _stage_file(db, path, "csv", stage)


def _csv_batches(
    path: Path, stage: _Stage, reader: _Reader, redaction: Redaction | None
) -> Iterator[_Batch]:
    header, rows = _csv_rows(path)
    _check_unique_names(path, header)
    width = len(header)
    stage.add_columns(header)
    schema = _text_schema(3 + width)
    internal = {"_row": "c0", "_error": "c1", "_raw": "c2"}
    columns = {name: f"c{3 + i}" for i, name in enumerate(header)}

    def sized() -> Iterator[tuple[int, tuple[Any, ...]]]:
        for number, fields, error, raw in rows:
            if fields is None:
                yield len(raw or ""), (number, error, raw, *([None] * width))
            else:
                size = sum(map(len, fields))
                yield size, (number, None, None, *[f if f != "" else None for f in fields])

    first = True
    for batch in itertools.chain(_batched(sized(), reader.chars), [[]]):
        if not batch and not first:
            break
        first = False
        select, params, derived = _staged_select(
            stage, "_stage_batch", internal, columns, redaction
        )
        yield _Batch(
            list(header), derived, reader.read(select, params, _arrow_batch(batch, schema))
        )


# -- privacy mode: read in a child process ------------------------------------------


class PrivateFile:
    """A file read by a child process in privacy mode: this process never holds a raw value.

    DuckDB writes whole blocks to its spill files, unused bytes included, and a
    block may reuse memory that held anything this process read before (a
    line of the file, a parsed JSON document). So the file's bytes are read,
    hashed (``sha256``) and redacted in a process of their own, which sends only
    what the staged table gets; the database's process, whose DuckDB can spill,
    has never had a raw value in its memory.

    Use as a context manager: ``sha256`` first (nothing else is read until
    ``open``), then ``open`` to stage the file.
    """

    def __init__(
        self, path: Path, fmt: Format, redact: Callable[[], Redaction], config: Config
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self._path, self._fmt = path, fmt
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_read_privately, args=(child, str(path), fmt, redact, config), daemon=True
        )
        self._process.start()
        child.close()
        self._heard = False

    def __enter__(self) -> PrivateFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _receive(self) -> tuple[Any, ...]:
        try:
            message: tuple[Any, ...] = self._conn.recv()
        except EOFError:
            self._process.join(timeout=10)
            hint = (
                ""
                if self._heard
                else "; if you called ingest from a Python script, call it under "
                '`if __name__ == "__main__":` (the reader is a child process that '
                "imports your script again, and without that guard runs it again)"
            )
            raise InternalError(
                f"{self._path}: the process reading it in privacy mode ended without a word "
                f"(exit code {self._process.exitcode}){hint}",
                path=str(self._path),
            ) from None
        self._heard = True
        if message[0] == "error":
            _, kind, text = message
            cls = {"SchemaError": SchemaError}.get(kind, IngestError)
            raise cls(text) if cls is SchemaError else IngestError(text, path=str(self._path))
        if message[0] == "bug":
            raise InternalError(
                f"{self._path}: reading it in privacy mode failed: {message[1]}",
                path=str(self._path),
            )
        return message

    def sha256(self) -> str:
        """The file's content hash (see ``file_sha256``)."""
        _, digest = self._receive()
        return str(digest)

    def open(self, db: Database, stage: str) -> Source:
        """Stage the file as temp table ``stage`` from what the child sends."""
        self._conn.send("go")
        staged = _Stage(db, stage, _OWN[self._fmt])

        def batches() -> Iterator[_Batch]:
            while True:
                message = self._receive()
                if message[0] == "done":
                    return
                _, columns, derived, types, skipped, otlp = message
                rows = pa.ipc.open_stream(self._conn.recv_bytes()).read_all()
                yield _Batch(columns, derived, rows, types, skipped, otlp)

        source = _staged(db, self._path, self._fmt, staged, batches())
        source.redacted = True
        return source

    def close(self) -> None:
        """Stop the child (if it is still reading) and wait for it."""
        self._conn.close()
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()


def _read_privately(
    conn: Connection, path: str, fmt: Format, redact: Callable[[], Redaction], config: Config
) -> None:
    """The child of ``PrivateFile``: hash, read and redact the file; send what is staged."""
    try:
        conn.send(("sha256", file_sha256(Path(path))))
        try:
            if conn.recv() != "go":
                return
        except EOFError:  # the file was seen before: nothing more to read
            return
        redaction = redact()
        stage = _Stage(None, "_", _OWN[fmt])
        for batch in _batches(Path(path), fmt, stage, config, redaction):
            conn.send(
                ("batch", batch.columns, batch.derived, batch.types, batch.skipped, batch.otlp)
            )
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, batch.rows.schema) as writer:
                writer.write_table(batch.rows)
            conn.send_bytes(sink.getvalue())
        conn.send(("done",))
    except ForensicsError as exc:
        conn.send(("error", type(exc).__name__, str(exc)))
    except (BrokenPipeError, EOFError):
        return
    except BaseException:
        conn.send(("bug", traceback.format_exc(limit=-3)))
    finally:
        conn.close()


def _check_unique_names(path: Path, names: Sequence[str]) -> None:
    lowered = Counter(n.lower() for n in names)
    clashing = sorted({n for n in names if lowered[n.lower()] > 1})
    if clashing:
        raise SchemaError(
            f"{path}: columns {', '.join(repr(c) for c in clashing)} differ only in case; "
            "DuckDB column names are case-insensitive, so rename one of them in the file"
        )
    empty = [i + 1 for i, n in enumerate(names) if not n]
    if empty:
        raise SchemaError(
            f"{path}: header column(s) {', '.join(map(str, empty))} have no name; name them in the file"
        )
