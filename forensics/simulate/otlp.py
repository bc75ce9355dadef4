"""Requests as OpenTelemetry GenAI spans, written as OTLP JSON by the real SDK.

For the shipped OTLP sample (``data_samples/otel-genai/``), the tests and
``bench/ingest.py``: each request row (canonical columns) becomes one span made
by ``opentelemetry-sdk`` with the GenAI attributes an instrumentation sets, the
spans are encoded by the OTLP protobuf encoder
(``opentelemetry-exporter-otlp-proto-common``) and written from the protobuf
message with ``google.protobuf.json_format``:

``collector``
    as a collector's file exporter writes: one ``ExportTraceServiceRequest`` per
    line, hex trace and span ids, integer enums;
``protobuf``
    the protobuf JSON mapping as ``json_format`` gives it: base64 ids, enum
    names, one object per line.

Attributes follow the ``otel-genai`` preset (``gen_ai.response.id``,
``gen_ai.response.model``, ``gen_ai.usage.*``, ``gen_ai.output.messages``...); a
canonical column the preset does not map keeps its own name as a span attribute
(``platform``, ``routing_pool``). Ids come from a seeded generator, so a seed
gives the same bytes. These packages are test dependencies: the library reads
OTLP without them.
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
import random
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Literal

__all__ = ["STYLES", "genai_attributes", "write_otlp"]

Style = Literal["collector", "protobuf"]
STYLES: tuple[Style, ...] = ("collector", "protobuf")
"""The OTLP JSON layouts ``write_otlp`` writes."""

_ID_FIELDS = ("traceId", "spanId", "parentSpanId")
_NANOS = 1_000_000_000


@functools.cache
def _preset_attributes() -> dict[str, str]:
    """Canonical column -> the attribute the ``otel-genai`` preset reads it from."""
    from forensics.presets import load_preset

    return dict(load_preset("otel-genai").columns)


def genai_attributes(row: Mapping[str, Any]) -> dict[str, Any]:
    """The span attributes of one request row, as a GenAI instrumentation sets them.

    Examples
    --------
    >>> a = genai_attributes({"request_id": "r1", "model": "m", "finish_reason": "stop",
    ...                       "response_text": "Hi", "platform": "gpu"})
    >>> a["gen_ai.response.id"], a["gen_ai.response.finish_reasons"], a["platform"]
    ('r1', ['stop'], 'gpu')
    >>> json.loads(a["gen_ai.output.messages"])[0]["parts"][0]["content"]
    'Hi'
    """
    names = _preset_attributes()
    attributes: dict[str, Any] = {"gen_ai.operation.name": "chat"}
    if row.get("model") is not None:
        attributes["gen_ai.request.model"] = row["model"]
    for column, value in row.items():
        if value is None or column == "ts":
            continue
        key = names.get(column, column)
        if column == "finish_reason":
            value = [value]
        elif column in ("prompt_text", "response_text"):
            role = "user" if column == "prompt_text" else "assistant"
            message: dict[str, Any] = {"role": role, "parts": [{"type": "text", "content": value}]}
            if role == "assistant" and row.get("finish_reason") is not None:
                message["finish_reason"] = row["finish_reason"]
            value = json.dumps([message], ensure_ascii=False)
        elif hasattr(value, "item"):  # a numpy scalar
            value = value.item()
        attributes[key] = value
    return attributes


def _epoch_nanos(value: Any) -> int:
    """A timestamp (aware datetime, or ISO text) as epoch nanoseconds."""
    from datetime import datetime

    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return int(value.timestamp()) * _NANOS + value.microsecond * 1000


def _hex_ids(node: Any) -> Any:
    """A protobuf JSON dict with base64 ids rewritten as hex, as the collector writes them."""
    if isinstance(node, dict):
        return {
            k: (
                base64.b64decode(v).hex() if k in _ID_FIELDS and isinstance(v, str) else _hex_ids(v)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_hex_ids(v) for v in node]
    return node


def _spans(
    rows: Iterable[Mapping[str, Any]], *, seed: int, service: str, http_every: int
) -> Iterator[list[Any]]:
    """Finished SDK spans, a list per ``_BATCH`` requests (an HTTP span every ``http_every``)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from opentelemetry.trace import SpanKind, set_span_in_context

    draw = random.Random(seed)

    class _Seeded(IdGenerator):
        def generate_span_id(self) -> int:
            return draw.getrandbits(64) or 1

        def generate_trace_id(self) -> int:
            return draw.getrandbits(128) or 1

    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": service}), id_generator=_Seeded())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("forensics.simulate.otlp", "1")
    for i, row in enumerate(rows):
        start = _epoch_nanos(row["ts"])
        end = start + 200_000_000 + 20_000_000 * int(row.get("output_tokens") or 0)
        context = None
        if http_every and i % http_every == 0:
            http = tracer.start_span("POST /v1/chat", kind=SpanKind.SERVER, start_time=start)
            http.set_attribute("http.request.method", "POST")
            http.set_attribute("http.response.status_code", 200)
            context = set_span_in_context(http)
        attributes = genai_attributes(row)
        name = f"chat {attributes.get('gen_ai.request.model', '')}".strip()
        span = tracer.start_span(
            name, kind=SpanKind.CLIENT, start_time=start, attributes=attributes, context=context
        )
        span.end(end_time=end)
        if context is not None:
            http.end(end_time=end)
        if (i + 1) % _BATCH == 0:
            yield list(exporter.get_finished_spans())
            exporter.clear()
    left = list(exporter.get_finished_spans())
    if left:
        yield left


_BATCH = 512
"""Spans per exported request (per line), as a batch span processor sends them."""


def write_otlp(
    rows: Iterable[Mapping[str, Any]],
    path: str | Path,
    *,
    style: Style = "collector",
    seed: int = 7,
    service: str = "llm-gateway",
    http_every: int = 0,
) -> int:
    """Write request rows as OTLP JSON traces; the number of spans written.

    Parameters
    ----------
    rows
        Requests with canonical columns (``ts`` an aware datetime or ISO text).
    path
        The file; gzip-compressed when its name ends in ``.gz``.
    style
        ``collector`` (hex ids, integer enums) or ``protobuf`` (``json_format``'s
        mapping: base64 ids, enum names); one exported request per line either way.
    seed
        Seeds the trace and span ids.
    service
        The resource's ``service.name``.
    http_every
        Also write an HTTP server span (not GenAI: the reader skips it) as the
        parent of every ``http_every``-th request; 0 for none.
    """
    from google.protobuf import json_format
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    path = Path(path)
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    written = 0
    fh: IO[str]
    with opener(path, "wt", encoding="utf-8") as fh:
        for spans in _spans(rows, seed=seed, service=service, http_every=http_every):
            message = encode_spans(spans)
            if style == "collector":
                data = _hex_ids(json_format.MessageToDict(message, use_integers_for_enums=True))
            else:
                data = json_format.MessageToDict(message)
            fh.write(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n")
            written += len(spans)
    return written
