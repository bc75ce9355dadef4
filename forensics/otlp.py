"""OTLP JSON traces: each GenAI inference span as one request row.

An OpenTelemetry collector's file exporter writes traces as OTLP JSON: one
``ExportTraceServiceRequest`` object per line (``resourceSpans`` → ``scopeSpans``
→ ``spans``, attributes as typed ``{"key", "value": {"stringValue": ...}}`` lists,
hex trace and span ids, integer enums, 64-bit integers as strings). The protobuf
JSON mapping (``google.protobuf.json_format``) is read too: base64 ids, enum
names, ``snake_case`` field names, one object over many lines.

Each span whose ``gen_ai.operation.name`` is an inference (``INFERENCE_OPERATIONS``),
or that has no operation but names a model or provider, becomes one row: a flat
JSON object that the JSON-lines reader stages as it stages any line (so typing,
quarantine, privacy mode and the signals are the ones every format gets). Other
spans (HTTP, database, tool calls, agents) are counted in ``SpanTally.skipped``,
never silently dropped. A row's number is the span's position in the file,
counting every span.

Columns (``span_row``): the canonical ones the ``otel-genai`` preset maps
attributes to (``request_id`` from ``gen_ai.response.id``, else the span id;
``model`` from ``gen_ai.response.model``, else ``gen_ai.request.model``; ``ts`` from
the span's start; ``response_text`` from the text parts of
``gen_ai.output.messages``...), the span's own (``trace_id``, ``span_id``,
``span_name``, ``span_kind``, ``status_code``, ``duration_ms``, ``scope_name``...)
and every other resource and span attribute under its name with dots and other
separators as ``_`` (``service.name`` → ``service_name``). Message attributes
are read into the text columns only, never kept as they are.

A file that is not OTLP as described (an object that does not parse, a span
that is not an object, an attribute value of no known type) is refused as a
whole with the line and the place in the object (``IngestError``).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import gzip
import io
import json
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO, cast

from forensics.errors import IngestError

__all__ = [
    "INFERENCE_OPERATIONS",
    "SPAN_COLUMNS",
    "SpanTally",
    "is_otlp",
    "otlp_roles",
    "readable_name",
    "span_rows",
]

PRESET = "otel-genai"
"""The preset whose ``[columns]`` and ``[roles]`` the reader follows."""

INFERENCE_OPERATIONS = frozenset({"chat", "text_completion", "generate_content"})
"""``gen_ai.operation.name`` values of a model inference (a request to a model)."""

GENAI_MARKERS = (
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.provider.name",
    "gen_ai.system",
)
"""Attributes that make a span with no ``gen_ai.operation.name`` an inference (older
instrumentations set no operation)."""

SPAN_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "span_name",
    "span_kind",
    "status_code",
    "status_message",
    "duration_ms",
    "scope_name",
    "scope_version",
)
"""The columns a row gets from the span itself (beside its attributes)."""

MESSAGE_ATTRIBUTES = (
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
)
"""Attributes holding message text: read into ``prompt_text``/``response_text`` (the
system instructions not at all), never kept as columns of their own."""

LEGACY_TEXT = (("gen_ai.prompt.", "prompt_text"), ("gen_ai.completion.", "response_text"))
"""Older instrumentations' indexed message attributes (``gen_ai.completion.0.content``):
their ``content`` read as the text when there are no messages; none kept as columns."""

_SPAN_KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")
_STATUS_CODES = ("unset", "ok", "error")

_TOP_KEYS = ("resourceSpans", "resource_spans")
_OTHER_SIGNALS = ("resourceLogs", "resource_logs", "resourceMetrics", "resource_metrics")
_HEAD = re.compile(rb'\A\s*\{\s*"(\w+)"\s*:')
_CHUNK = 1 << 20
_BOM = codecs.BOM_UTF8


@dataclass
class SpanTally:
    """What reading a file's spans found: every span, and those not read as requests."""

    spans: int = 0
    """Spans seen."""
    skipped: int = 0
    """Spans that are not GenAI inferences (not rows)."""
    skipped_by: Counter[str] = field(default_factory=Counter)
    """Skipped spans by ``gen_ai.operation.name`` or, without one, ``other``."""


# -- detection --------------------------------------------------------------------


def _open(path: Path) -> BinaryIO:
    if path.name.lower().endswith(".gz"):
        return cast(BinaryIO, gzip.open(path, "rb"))
    return path.open("rb")


def _first_key(path: Path) -> str | None:
    """The first key of the file's first JSON object, if it starts with one."""
    with _open(path) as fh:
        head = fh.read(4096)
    match = _HEAD.match(head.removeprefix(_BOM))
    return match.group(1).decode() if match else None


def is_otlp(path: Path) -> bool:
    """Whether a JSON (lines) file holds OTLP traces: it starts ``{"resourceSpans":``.

    OTLP logs or metrics are refused (``IngestError``): they hold no spans.
    """
    try:
        key = _first_key(path)
    except (OSError, EOFError, zlib.error):
        return False  # the JSON reader says what is wrong with the file
    if key in _OTHER_SIGNALS:
        kind = "logs" if "og" in key else "metrics"
        raise IngestError(
            f"{path}: line 1: OTLP {kind}, not traces; forensics reads GenAI spans: export "
            "the traces pipeline (resourceSpans) to a file and ingest that",
            path=str(path),
        )
    return key in _TOP_KEYS


# -- reading objects --------------------------------------------------------------


def _objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each top-level JSON object of the file, with the line it starts on.

    One object per line (the collector's file exporter), one object over many
    lines, or several in a row: read from a window of the text, so a file takes
    the memory of its largest object.
    """
    decoder = json.JSONDecoder()
    text = io.TextIOWrapper(_open(path), encoding="utf-8-sig")
    buf, pos, line, eof = "", 0, 1, False
    with text:
        while True:
            start = pos
            while pos < len(buf) and buf[pos] in " \t\r\n":
                pos += 1
            line += buf.count("\n", start, pos)
            if pos == len(buf):
                if eof:
                    return
                chunk = text.read(_CHUNK)
                eof = not chunk
                buf, pos = buf[pos:] + chunk, 0
                continue
            try:
                item, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError as exc:
                if not eof:
                    chunk = text.read(max(_CHUNK, len(buf) - pos))
                    eof = not chunk
                    buf, pos = buf[pos:] + chunk, 0
                    continue
                at = line + buf.count("\n", pos, exc.pos)
                where = f", line {at}" if at != line else ""
                raise _malformed(
                    path, line, f"the object starting here is not valid JSON ({exc.msg}{where})"
                ) from None
            if end == len(buf) and not eof:  # a number may go on past the window
                chunk = text.read(_CHUNK)
                eof = not chunk
                buf = buf + chunk
                continue
            if not isinstance(item, dict):
                raise _malformed(path, line, "a JSON value that is not an object")
            yield line, item
            line += buf.count("\n", pos, end)
            pos = end


def _malformed(path: Path, line: int, detail: str) -> IngestError:
    return IngestError(
        f"{path}: line {line}: not OTLP JSON traces: {detail}; nothing from this file was "
        "written. Export the traces again with the collector's file exporter (OTLP JSON, "
        "one request per line), or fix the object on that line",
        path=str(path),
    )


# -- fields -----------------------------------------------------------------------


@cache
def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _get(obj: dict[str, Any], name: str) -> Any:
    """A field by its JSON name (``lowerCamelCase``) or its proto name (``snake_case``)."""
    value = obj.get(name)
    return obj.get(_snake(name)) if value is None else value


class _Where:
    """Where in an object a value is, for error messages."""

    def __init__(self, path: Path, line: int) -> None:
        self.path, self.line = path, line

    def fail(self, place: str, detail: str) -> IngestError:
        return _malformed(self.path, self.line, f"{place}: {detail}")


def _list(obj: dict[str, Any], name: str, where: _Where, place: str) -> list[Any]:
    value = _get(obj, name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise where.fail(f"{place}.{name}", f"a list was expected, found {type(value).__name__}")
    return value


def _object(value: Any, where: _Where, place: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise where.fail(place, f"an object was expected, found {type(value).__name__}")
    return value


_VALUE_KINDS = (
    "stringValue",
    "boolValue",
    "intValue",
    "doubleValue",
    "arrayValue",
    "kvlistValue",
    "bytesValue",
)
_KIND_OF = {**{k: k for k in _VALUE_KINDS}, **{_snake(k): k for k in _VALUE_KINDS}}
"""An ``AnyValue`` field's JSON or proto name -> its JSON name."""


def _any_value(value: Any, where: _Where, place: str) -> Any:
    """An ``AnyValue`` as Python: text, bool, int, float, list or dict (None when empty).

    A 64-bit integer written as text is read as a number; one that is not a
    number is kept as its text, for the row's typing to reject.
    """
    value = _object(value, where, place)
    if not value:
        return None
    found = [(_KIND_OF[k], v) for k, v in value.items() if k in _KIND_OF]
    if not found:
        raise where.fail(place, f"a value of no known type (keys {', '.join(sorted(value))})")
    kind, inner = found[0]
    if kind == "intValue" and isinstance(inner, str):
        try:
            return int(inner)
        except ValueError:
            return inner
    if kind == "doubleValue" and isinstance(inner, str):
        try:
            return float(inner)
        except ValueError:
            return inner
    if kind == "arrayValue":
        items = _list(_object(inner, where, place), "values", where, place)
        return [_any_value(v, where, f"{place}[{i}]") for i, v in enumerate(items)]
    if kind == "kvlistValue":
        return _attributes(_object(inner, where, place), where, place, "values")
    if kind == "bytesValue" and isinstance(inner, str):
        return _hex(inner) or inner
    return inner


def _attributes(
    obj: dict[str, Any], where: _Where, place: str, name: str = "attributes"
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, kv in enumerate(_list(obj, name, where, place)):
        here = f"{place}.{name}[{i}]"
        kv = _object(kv, where, here)
        key = kv.get("key")
        if not isinstance(key, str):
            raise where.fail(here, "an attribute without a text key")
        out[key] = _any_value(kv.get("value", {}), where, f"{here} ({key})")
    return out


_HEX = re.compile(r"[0-9a-fA-F]*")


def _hex(value: Any) -> str | None:
    """An id as lower-case hex: hex as written by the collector, base64 by protobuf.

    Examples
    --------
    >>> _hex("5B8EFFF798038103D269B633813FC60C"), _hex("W47/95gDgQPSabYzgT/GDA==")
    ('5b8efff798038103d269b633813fc60c', '5b8efff798038103d269b633813fc60c')
    >>> _hex(""), _hex(None)
    (None, None)
    """
    if not isinstance(value, str) or not value:
        return None
    if len(value) in (16, 32) and _HEX.fullmatch(value):
        return value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return value
    return raw.hex() if raw else None


def _enum(value: Any, names: tuple[str, ...], prefix: str) -> str | None:
    """An enum as its short lower-case name: ``3`` or ``SPAN_KIND_CLIENT`` -> ``client``."""
    if isinstance(value, int) and 0 <= value < len(names):
        return names[value]
    if isinstance(value, str):
        return value.removeprefix(prefix).lower() or None
    return None


def _nanos(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _iso(nanos: int) -> str:
    """Epoch nanoseconds as ISO-8601 UTC to the microsecond.

    Examples
    --------
    >>> _iso(1_756_123_456_789_012_345)
    '2025-08-25T12:04:16.789012Z'
    """
    seconds, rest = divmod(nanos, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- names ------------------------------------------------------------------------

_SEPARATORS = re.compile(r"[^0-9A-Za-z]+")


@cache
def readable_name(key: str) -> str:
    """An attribute's column name: dots and other separators as ``_``.

    Examples
    --------
    >>> readable_name("service.name"), readable_name("gen_ai.usage.cache_read.input_tokens")
    ('service_name', 'gen_ai_usage_cache_read_input_tokens')
    """
    return _SEPARATORS.sub("_", key).strip("_") or "attribute"


@cache
def _preset() -> tuple[dict[str, str], dict[str, str]]:
    """The preset's attribute -> canonical column, and its roles by attribute."""
    from forensics.presets import load_preset

    mapping = load_preset(PRESET)
    canonical = {src: name for name, src in mapping.columns.items() if name != "ts"}
    return canonical, dict(mapping.roles)


def otlp_roles() -> dict[str, str]:
    """The preset's roles under the names the OTLP reader gives the columns.

    Examples
    --------
    >>> otlp_roles()["error_type"], otlp_roles()["service_name"]
    ('outcome', 'dimension')
    """
    canonical, roles = _preset()
    return {canonical.get(k, readable_name(k)): role for k, role in roles.items()}


# -- spans to rows ----------------------------------------------------------------


def _message_text(value: Any) -> str | None:
    """The text parts of GenAI messages (a JSON array, as text or as a value), joined.

    Examples
    --------
    >>> _message_text('[{"role": "assistant", "parts": [{"type": "text", "content": "Hi"}]}]')
    'Hi'
    >>> _message_text("plain words") is None
    True
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return None
    texts = []
    for message in value:
        if not isinstance(message, dict):
            continue
        parts = message.get("parts")
        if isinstance(parts, list):
            for part in parts:
                if isinstance(part, dict) and part.get("type", "text") == "text":
                    content = part.get("content")
                    if isinstance(content, str):
                        texts.append(content)
        elif isinstance(message.get("content"), str):
            texts.append(message["content"])
    return "\n".join(texts) if texts else None


def _legacy_text(attributes: dict[str, Any], prefix: str) -> str | None:
    """``gen_ai.completion.0.content``, ``gen_ai.completion.1.content``... joined in order."""
    found = []
    for key, value in attributes.items():
        if key.startswith(prefix) and key.endswith(".content") and isinstance(value, str):
            index = key[len(prefix) : -len(".content")]
            found.append((int(index) if index.isdigit() else 0, value))
    return "\n".join(v for _, v in sorted(found)) if found else None


def _text(value: Any) -> Any:
    """A value as a row holds it: lists of text joined by ``,``, other lists and maps as JSON."""
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value):
            return ",".join(value)
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return value


def _is_inference(attributes: dict[str, Any]) -> bool:
    operation = attributes.get("gen_ai.operation.name")
    if operation is not None:
        return operation in INFERENCE_OPERATIONS
    return any(attributes.get(k) is not None for k in GENAI_MARKERS)


_LEGACY_PREFIXES = tuple(p for p, _ in LEGACY_TEXT)


def _kept(attributes: dict[str, Any]) -> dict[str, Any]:
    """The attributes kept as columns of their own (no message text)."""
    return {
        k: v
        for k, v in attributes.items()
        if k not in MESSAGE_ATTRIBUTES and not k.startswith(_LEGACY_PREFIXES)
    }


@cache
def _taken() -> frozenset[str]:
    """Column names the reader gives: an attribute of the same readable name makes way."""
    return frozenset({*_preset()[0].values(), *SPAN_COLUMNS, "ts"})


def span_row(
    resource: dict[str, Any],
    scope: dict[str, Any],
    span: dict[str, Any],
    attributes: dict[str, Any],
) -> dict[str, Any]:
    """One GenAI span as a flat row (see the module docstring for its columns)."""
    canonical, _ = _preset()
    row: dict[str, Any] = {}
    taken = _taken()
    for key, value in {**_kept(resource), **_kept(attributes)}.items():
        if key in canonical:
            row[canonical[key]] = _text(value)
            continue
        name = readable_name(key)
        while name in taken or name in row:
            name += "_attribute"
        row[name] = _text(value)
    span_id = _hex(_get(span, "spanId"))
    row.setdefault("request_id", span_id)
    if row.get("model") is None and attributes.get("gen_ai.request.model") is not None:
        row["model"] = attributes["gen_ai.request.model"]
    for key, column in (("gen_ai.input.messages", "prompt_text"),):
        row[column] = _message_text(attributes.get(key))
    row["response_text"] = _message_text(attributes.get("gen_ai.output.messages"))
    for prefix, column in LEGACY_TEXT:
        if row.get(column) is None:
            row[column] = _legacy_text(attributes, prefix)
    start, end = _nanos(_get(span, "startTimeUnixNano")), _nanos(_get(span, "endTimeUnixNano"))
    row["ts"] = _iso(start) if start is not None else _get(span, "startTimeUnixNano")
    status = _get(span, "status") or {}
    row.update(
        trace_id=_hex(_get(span, "traceId")),
        span_id=span_id,
        parent_span_id=_hex(_get(span, "parentSpanId")),
        span_name=_get(span, "name"),
        span_kind=_enum(_get(span, "kind"), _SPAN_KINDS, "SPAN_KIND_"),
        status_code=_enum(_get(status, "code") or 0, _STATUS_CODES, "STATUS_CODE_"),
        status_message=_get(status, "message") or None,
        duration_ms=(end - start) / 1e6 if start is not None and end is not None else None,
        scope_name=scope.get("name") or None,
        scope_version=scope.get("version") or None,
    )
    return {k: v for k, v in row.items() if v is not None}


def span_rows(path: Path, tally: SpanTally) -> Iterator[tuple[int, str | None, str | None]]:
    """``(span number, the row as JSON text, None)`` per GenAI inference span of an OTLP file.

    The JSON-lines reader's contract (number, text, error); other spans are
    counted in ``tally`` only.

    Raises
    ------
    IngestError
        When the file is not OTLP JSON traces, naming the line and the place.
    """
    try:
        for line, request in _objects(path):
            where = _Where(path, line)
            top = "resourceSpans" if "resourceSpans" in request else "resource_spans"
            if top not in request:
                raise where.fail("the object", "no resourceSpans")
            for i, rs in enumerate(_list(request, "resourceSpans", where, "")):
                here = f"resourceSpans[{i}]"
                rs = _object(rs, where, here)
                resource = _attributes(
                    _object(rs.get("resource") or {}, where, f"{here}.resource"),
                    where,
                    f"{here}.resource",
                )
                for j, ss in enumerate(_list(rs, "scopeSpans", where, here)):
                    there = f"{here}.scopeSpans[{j}]"
                    ss = _object(ss, where, there)
                    scope = _object(ss.get("scope") or {}, where, f"{there}.scope")
                    for k, span in enumerate(_list(ss, "spans", where, there)):
                        at = f"{there}.spans[{k}]"
                        span = _object(span, where, at)
                        attributes = _attributes(span, where, at)
                        tally.spans += 1
                        if not _is_inference(attributes):
                            tally.skipped += 1
                            tally.skipped_by[
                                str(attributes.get("gen_ai.operation.name") or "other")
                            ] += 1
                            continue
                        row = span_row(resource, scope, span, attributes)
                        yield tally.spans, json.dumps(row, ensure_ascii=False), None
    except UnicodeDecodeError as exc:
        raise IngestError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); OTLP JSON is UTF-8: "
            "export the traces again",
            path=str(path),
        ) from None
    except (EOFError, OSError, zlib.error) as exc:
        raise IngestError(
            f"{path}: cannot read the file to the end ({exc}); nothing from this file was "
            "written. Copy or export it again and re-run the ingest.",
            path=str(path),
        ) from None
