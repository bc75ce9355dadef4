"""Readers: turn an input file into a relation DuckDB can validate.

Parquet is read by DuckDB directly. JSON lines, JSON arrays and CSV are split
into rows in Python, which gives exact line numbers and catches bad UTF-8 and
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
import json
import sys
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from forensics.db import Database
from forensics.errors import IngestError, SchemaError
from forensics.schema import quote_identifier

__all__ = [
    "FORMATS",
    "Format",
    "Source",
    "check_parquet",
    "detect_format",
    "file_sha256",
    "open_csv",
    "open_json",
    "open_parquet",
    "resolve_paths",
]

Format = Literal["parquet", "jsonl", "json", "csv"]

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

_BATCH_ROWS = 200_000
_CSV_FIELD_LIMIT = 1 << 30


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


def _json_array(path: Path) -> Iterator[tuple[int, str | None, str | None]]:
    """Yield (element number, JSON text, error) for a file holding one JSON array."""
    try:
        with _open_binary(path) as fh:
            data = fh.read()
    except (EOFError, OSError, zlib.error) as exc:
        raise _read_error(path, exc) from None
    try:
        items = json.loads(data.decode("utf-8-sig"), object_pairs_hook=_object)
        texts = [_dumps(item) for item in items]
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IngestError(
            f"{path}: not a valid JSON array ({exc}); write one JSON object per line "
            "(.jsonl) to have bad records quarantined one by one",
            path=str(path),
        ) from None
    except RecursionError:
        raise IngestError(
            f"{path}: the JSON array is nested too deeply to read (more than about "
            f"{sys.getrecursionlimit()} levels); nothing from this file was written. Write one "
            "JSON object per line (.jsonl): each line is then read, or quarantined, on its own.",
            path=str(path),
        ) from None
    for number, (item, text) in enumerate(zip(items, texts, strict=True), start=1):
        yield number, text, "duplicate_key" if isinstance(item, _DuplicateKeys) else None


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
    """SQL giving the raw row text when the reader kept it."""
    params: dict[str, Any]
    """Parameters the relation needs."""
    rows_read: int
    """Rows in the file."""
    not_text: dict[str, str] = field(default_factory=dict)
    """Source column -> SQL: true where its value is a JSON object, array or boolean,
    which a text column does not take (JSON sources only)."""


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


def _stage_text(
    db: Database,
    name: str,
    columns: Sequence[str],
    batches: Iterator[list[tuple[Any, ...]]],
) -> int:
    """Create temp table ``name`` (row, error, raw, columns...) from row batches.

    The first three columns are named by ``_internal_names(columns)``.
    """
    cols = [*_internal_names(columns)[:3], *columns]
    types = ["BIGINT", "VARCHAR", "VARCHAR"] + ["VARCHAR"] * len(columns)
    ddl = ", ".join(f"{quote_identifier(c)} {t}" for c, t in zip(cols, types, strict=True))
    db.execute(f"CREATE OR REPLACE TEMP TABLE {quote_identifier(name)} ({ddl})")
    total = 0
    schema = pa.schema(
        [pa.field(f"c{i}", pa.int64() if i == 0 else pa.string()) for i in range(len(cols))]
    )
    for batch in batches:
        if not batch:
            continue
        arrays = [
            pa.array(list(values), type=f.type)
            for values, f in zip(zip(*batch, strict=True), schema, strict=True)
        ]
        table = pa.Table.from_arrays(arrays, schema=schema)
        db.con.register("_stage_batch", table)
        try:
            db.execute(f"INSERT INTO {quote_identifier(name)} SELECT * FROM _stage_batch")
        finally:
            db.con.unregister("_stage_batch")
        total += len(batch)
    return total


def _text_source(stage: str, columns: Sequence[str], rows_read: int) -> Source:
    """The Source of a staged text file (see ``_stage_text``)."""
    row, error, raw, _ = (quote_identifier(n) for n in _internal_names(columns))
    return Source(
        relation=quote_identifier(stage),
        columns=dict.fromkeys(columns, "VARCHAR"),
        row_expr=row,
        error_expr=error,
        raw_expr=raw,
        params={},
        rows_read=rows_read,
    )


def _batched(
    rows: Iterable[tuple[Any, ...]], size: int = _BATCH_ROWS
) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


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


def open_parquet(db: Database, path: Path, stage: str = "_stage_parquet") -> Source:
    """Open a Parquet file in place (DuckDB reads it; nothing is staged).

    A file with a column of its own named ``file_row_number`` (DuckDB's name for
    the row position) is copied to temp table ``stage`` with the positions in a
    column of another name, so that its column is kept as it is.
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
        row = _stage_parquet(db, path, stage, columns)
        return Source(
            relation=quote_identifier(stage),
            columns=columns,
            row_expr=quote_identifier(row),
            error_expr=None,
            raw_expr=None,
            params={},
            rows_read=int(rows_read),
        )
    return Source(
        relation=f"read_parquet($path, {_FILE_ROW_NUMBER} = true)",
        columns=columns,
        row_expr=f"({_FILE_ROW_NUMBER} + 1)",
        error_expr=None,
        raw_expr=None,
        params=params,
        rows_read=int(rows_read),
    )


def _stage_parquet(db: Database, path: Path, stage: str, columns: dict[str, str]) -> str:
    """Copy a Parquet file, in file order, to temp table ``stage`` with a row-number column.

    Returns the name of that column. Batches are read in order by pyarrow and
    numbered as they come, so the numbers are the rows' positions in the file.
    """
    row = _internal_names(list(columns))[0]
    db.execute(
        f"CREATE OR REPLACE TEMP TABLE {quote_identifier(stage)} AS SELECT "
        f"CAST(NULL AS BIGINT) AS {quote_identifier(row)}, * FROM read_parquet($path) LIMIT 0",
        {"path": str(path)},
    )
    first = 1
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=_BATCH_ROWS):
            numbers = pa.array(range(first, first + batch.num_rows), pa.int64())
            arrays = [numbers, *batch.columns]
            names = [f"c{i}" for i in range(len(arrays))]
            db.con.register("_stage_batch", pa.Table.from_arrays(arrays, names=names))
            try:
                db.execute(f"INSERT INTO {quote_identifier(stage)} SELECT * FROM _stage_batch")
            finally:
                db.con.unregister("_stage_batch")
            first += batch.num_rows
    except pa.ArrowException as exc:
        raise _malformed_parquet(path, exc) from None
    return row


def open_json(db: Database, path: Path, fmt: Format, stage: str) -> Source:
    """Stage a JSON-lines (or JSON array) file as temp table ``stage``, one column per key.

    Each line is checked for UTF-8, JSON validity and being an object; the keys
    of all valid lines become VARCHAR columns (values as JSON text).
    """
    lines = _json_array(path) if fmt == "json" and _starts_with_array(path) else _json_lines(path)
    line_table = stage + "_lines"
    rows_read = _stage_text(db, line_table, [], _batched((n, err, text) for n, text, err in lines))
    lt = quote_identifier(line_table)
    db.execute(
        f"UPDATE {lt} SET _error = CASE WHEN NOT json_valid(_raw) THEN 'malformed_json' "
        "WHEN json_type(_raw) <> 'OBJECT' THEN 'not_a_json_object' END WHERE _error IS NULL"
    )
    keys = [
        r[0]
        for r in db.execute(
            f"SELECT key FROM (SELECT unnest(json_keys(_raw)) AS key, _row FROM {lt} "
            "WHERE _error IS NULL) GROUP BY key ORDER BY min(_row), key"
        )
    ]
    _check_unique_names(path, keys)
    paths = ['$."' + k.replace("\\", "\\\\").replace('"', '\\"') + '"' for k in keys]
    row, error, raw, types = (quote_identifier(n) for n in _internal_names(keys))
    # Per row: the JSON type of each key's value (null where the key is absent),
    # kept only where one is an object, an array or a boolean (text columns refuse
    # those; numbers read as their text); a row with more keys than keys found has
    # one twice (duplicate_key: which value is meant?).
    items = "".join(
        f", CASE WHEN _error IS NULL THEN _v[{i + 1}] END AS {quote_identifier(k)}"
        for i, k in enumerate(keys)
    )
    values = (
        "(SELECT _row, _raw, CASE WHEN _error IS NULL AND len(json_keys(_raw)) > "
        "len([t FOR t IN _t IF t IS NOT NULL]) THEN 'duplicate_key' ELSE _error END AS _error, "
        "_v, _t FROM (SELECT *, "
        "CASE WHEN _error IS NULL THEN json_extract_string(_raw, $paths) END AS _v, "
        f"CASE WHEN _error IS NULL THEN json_type(_raw, $paths) END AS _t FROM {lt}))"
        if keys
        else f"(SELECT *, CAST(NULL AS VARCHAR[]) AS _t FROM {lt})"
    )
    db.execute(
        f"CREATE OR REPLACE TEMP TABLE {quote_identifier(stage)} AS SELECT _row AS {row}, "
        f"_error AS {error}, _raw AS {raw}, CASE WHEN _error IS NULL AND list_has_any(_t, "
        f"{_NOT_TEXT}) THEN _t END AS {types}{items} FROM {values}",
        {"paths": paths},
    )
    db.execute(f"DROP TABLE {lt}")
    source = _text_source(stage, keys, rows_read)
    source.not_text = {
        k: f"coalesce(list_contains({_NOT_TEXT}, {types}[{i + 1}]), false)"
        for i, k in enumerate(keys)
    }
    return source


_NOT_TEXT = "['OBJECT', 'ARRAY', 'BOOLEAN']"
"""SQL: the JSON types a text column does not take."""


def open_csv(db: Database, path: Path, stage: str) -> Source:
    """Stage a CSV/TSV file as temp table ``stage``: the header's columns, as text.

    The delimiter is sniffed; empty fields are null; rows with bad UTF-8 or the
    wrong number of fields keep their raw text and a row-level error.
    """
    header, rows = _csv_rows(path)
    _check_unique_names(path, header)
    width = len(header)

    def staged() -> Iterator[tuple[Any, ...]]:
        for number, fields, error, raw in rows:
            if fields is None:
                yield (number, error, raw, *([None] * width))
            else:
                yield (number, None, None, *[f if f != "" else None for f in fields])

    rows_read = _stage_text(db, stage, header, _batched(staged()))
    return _text_source(stage, header, rows_read)


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
