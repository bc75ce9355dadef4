"""code_syntax_error: a fenced Python or JSON block in the response fails to parse.

Which blocks are checked
    Fenced blocks (```` ``` ```` or ``~~~``, closed by a bare fence of the same
    kind, at any indentation: the fence's indentation is removed from the body,
    as inside a list item). The first word of the info string decides:
    ``python``, ``py``, ``python3``, ``py3``, ``ipython``, ``ipython3``,
    ``pycon`` are Python; ``json`` is JSON, ``jsonl`` / ``ndjson`` are JSON
    lines. An unlabelled block is Python when it is *clearly* Python (see
    ``looks_like_python``). Any other label (bash, js, sql, text...) is not
    checked, and neither is a fence left open at the end (a truncated response:
    the length limit is its own symptom) or a body longer than
    ``code_max_chars`` (the parser's time and recursion grow with size).

How they are checked
    Python with ``ast.parse`` (the running interpreter's grammar), after
    turning an interactive session (``>>>`` / ``...`` prompts) into its source
    and IPython magics and shell escapes (lines starting ``%`` or ``!``) into
    ``pass``. A block so deeply nested that the parser runs out of stack is
    not checked. JSON with ``json.loads``, strictly (``NaN`` and ``Infinity``
    are not JSON); a ``json`` block that fails as one document but whose every
    non-blank line is a document passes (JSON lines labelled json).

Value
    true if any checked block fails, false if at least one block was checked
    and all parse, null when there is no checkable block (or no text).

Only rows whose text contains a fence reach Python: the SQL tests for one first,
and the UDF receives those rows alone, a vector at a time, and of each only the
lines from the first fence to the last (``FENCED_REGION``: the same blocks, without
the prose around them).
"""

from __future__ import annotations

import ast
import functools
import json
import re
import threading
import warnings
from collections.abc import Iterator, Set
from dataclasses import dataclass
from typing import Literal, NamedTuple

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from forensics.signals._detector import (
    Detector,
    SignalParams,
    register_arrow_function,
    sql_literal,
)

__all__ = [
    "DETECTOR",
    "FENCED_REGION",
    "FUNCTION_NAME",
    "CodeBlock",
    "check_response",
    "fenced_blocks",
    "fenced_region_sql",
    "forget",
    "located_blocks",
    "looks_like_python",
]

FUNCTION_NAME = "forensics_code_syntax_error"
"""Name of the Python UDF registered on the connection."""

PYTHON_LABELS = frozenset({"python", "py", "python3", "py3", "ipython", "ipython3", "pycon"})
"""Info-string words that mark a Python block."""

JSON_LABELS = frozenset({"json"})
"""Info-string words that mark a JSON document."""

JSON_LINES_LABELS = frozenset({"jsonl", "ndjson", "jsonlines"})
"""Info-string words that mark JSON lines (one document per line)."""

_FENCE_LINE = re.compile(r"(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)")
"""A line opening or closing a fenced block (closing: no info string)."""


class _Fence(NamedTuple):
    start: int
    end: int
    indent: str
    fence: str
    info: str


def _marker_lines(text: str, marker: str) -> list[_Fence]:
    """The fence lines holding ``marker``, in order (``str.find``: faster than a regex)."""
    out = []
    find, size, fence_line = text.find, len(text), _FENCE_LINE.fullmatch
    at = find(marker)
    while at != -1:
        start = text.rfind("\n", 0, at) + 1
        end = find("\n", at)
        if end == -1:
            end = size
        match = fence_line(text, start, end)
        if match is not None:
            out.append(_Fence(start, end, match[1], match[2], match[3]))
        at = find(marker, end)
    return out


def _fence_lines(text: str) -> list[_Fence]:
    """The fence lines of ``text`` in order.

    They are the lines holding a marker that match ``_FENCE_LINE``. Most texts have
    one kind of fence only: no merge then.
    """
    fences = _marker_lines(text, "```")
    if "~~~" in text:
        seen = {f.start for f in fences}
        tildes = [f for f in _marker_lines(text, "~~~") if f.start not in seen]
        if tildes:
            fences = sorted(fences + tildes)  # by start: one fence per line
    return fences


_PYTHON_MARKERS = re.compile(
    r"^\s*(?:"
    r"(?:async\s+)?def\s+\w+\s*\(.*\)\s*(?:->.*)?:\s*(?:#.*)?$"  # def f(x):
    r"|class\s+\w+\s*(?:\(.*\))?\s*:\s*(?:#.*)?$"  # class C(B):
    r"|from\s+\.*[\w.]*\s+import\s+[\w*(]"  # from x import y
    r"|import\s+[\w.]+(?:\s+as\s+\w+)?(?:\s*,\s*[\w.]+(?:\s+as\s+\w+)?)*\s*$"  # import a.b as c
    r"|if\s+__name__\s*==\s*['\"]__main__['\"]\s*:"
    r")",
    re.M,
)
"""Lines only Python writes this way."""

_OTHER_LANGUAGE_MARKERS = re.compile(
    r"[;{]\s*$"  # C-family statement or block ends
    r"|^\s*}"
    r"|=>|\bfunction\b|^\s*(?:const|let|var|public|private|package|using|fn|func|local)\s"
    r"|^\s*#include|^\s*<[A-Za-z!/]|^\s*\$\s",
    re.M,
)
"""Lines that mark another language (or a shell session, or markup)."""

_REPL_PROMPT = re.compile(r"^(?:>>>|\.\.\.)(?: |$)")

_parse_lock = threading.Lock()
"""``warnings.catch_warnings`` is process-global; parse one batch at a time."""


@dataclass(frozen=True)
class CodeBlock:
    """One fenced block that will be checked."""

    kind: Literal["python", "json", "jsonl"]
    """How to check it."""
    body: str
    """The block's text, without fences and without the fence's indentation."""


def looks_like_python(body: str) -> bool:
    r"""Whether an unlabelled block is clearly Python.

    Clearly Python: a line only Python writes that way (``def f(...):``,
    ``class C:``, ``from x import y``, ``import x``, ``if __name__ ==
    "__main__":``) and no line that marks another language (a statement ending
    in ``;`` or ``{``, a line opening with ``}``, ``=>``, ``function``,
    ``const``/``let``/``var``, ``#include``, markup, a ``$`` shell prompt).

    Examples
    --------
    >>> looks_like_python("def f(x):\n    return x")
    True
    >>> looks_like_python("function f(x) {\n  return x;\n}")
    False
    >>> looks_like_python("Total: 42")
    False
    """
    return bool(_PYTHON_MARKERS.search(body)) and not _OTHER_LANGUAGE_MARKERS.search(body)


def _dedent(lines: list[str], indent: str) -> str:
    width = len(indent)
    if width == 0:
        return "\n".join(lines)
    return "\n".join(
        line[width:] if line[:width].strip() == "" else line.lstrip() for line in lines
    )


def fenced_blocks(text: str) -> Iterator[CodeBlock]:
    r"""The checkable blocks of a response, in order.

    Examples
    --------
    >>> text = "Run:\n```py\nx = 1\n```\n```bash\nls\n```\n```json\n{}\n```\n```python\ncut"
    >>> [(b.kind, b.body) for b in fenced_blocks(text)]
    [('python', 'x = 1'), ('json', '{}')]
    """
    return (block for block, _ in located_blocks(text))


def located_blocks(text: str) -> Iterator[tuple[CodeBlock, int]]:
    r"""The checkable blocks of a response with where each body starts in it.

    The offset is that of the body's first line in ``text`` with ``\r\n`` read as
    ``\n`` (the text the blocks are cut from); body line ``i`` is the ``i``-th line
    from there (the fence's indentation removed).

    Examples
    --------
    >>> [(b.body, at) for b, at in located_blocks("Run:\n```py\nx = 1\n```")]
    [('x = 1', 11)]
    """
    text = text.replace("\r\n", "\n")
    fences = _fence_lines(text)
    i = 0
    while i < len(fences):
        opening = fences[i]
        fence, info = opening.fence, opening.info
        if fence[0] == "`" and "`" in info:
            i += 1  # not a fence: inline code at the start of a line
            continue
        end = next(
            (
                j
                for j in range(i + 1, len(fences))
                if fences[j].fence[0] == fence[0]
                and len(fences[j].fence) >= len(fence)
                and not fences[j].info.strip()
            ),
            None,
        )
        if end is None:
            return  # open to the end: a truncated response, not checked
        words = info.strip().strip("{}.").split()
        label = words[0].lower().lstrip(".") if words else ""
        body_lines = text[opening.end + 1 : fences[end].start].split("\n")[:-1]
        body = _dedent(body_lines, opening.indent)
        if label in PYTHON_LABELS or (label == "" and looks_like_python(body)):
            yield CodeBlock("python", body), opening.end + 1
        elif label in JSON_LABELS:
            yield CodeBlock("json", body), opening.end + 1
        elif label in JSON_LINES_LABELS:
            yield CodeBlock("jsonl", body), opening.end + 1
        i = end + 1


def _python_source(body: str) -> str:
    lines = body.split("\n")
    if any(_REPL_PROMPT.match(line) for line in lines):
        lines = [line[4:] for line in lines if _REPL_PROMPT.match(line)]
    out = []
    for line in lines:
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            line = line[: len(line) - len(stripped)] + "pass"
        out.append(line)
    return "\n".join(out)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _loads(text: str) -> None:
    json.loads(text, parse_constant=_reject_constant)


def _block_fails(block: CodeBlock) -> bool | None:
    """True if the block fails to parse, False if it parses, None if it cannot be judged."""
    try:
        if block.kind == "python":
            ast.parse(_python_source(block.body))
        elif block.kind == "json":
            try:
                _loads(block.body)
            except ValueError:
                docs = [line for line in block.body.split("\n") if line.strip()]
                if len(docs) < 2:
                    raise
                for line in docs:
                    _loads(line)
        else:
            for line in block.body.split("\n"):
                if line.strip():
                    _loads(line)
    except (SyntaxError, ValueError):  # ValueError: bad JSON, or NUL in Python source
        return True
    except (RecursionError, MemoryError):
        return None
    return False


BLOCK_MEMO_ENTRIES = 20_000
"""Distinct code blocks whose verdict is remembered (least recent forgotten)."""

BLOCK_MEMO_MAX_CHARS = 2_000
"""Only blocks up to this long are remembered: with ``BLOCK_MEMO_ENTRIES`` this bounds
the memo at 40 million characters."""


@functools.lru_cache(maxsize=BLOCK_MEMO_ENTRIES)
def _remembered_block(block: CodeBlock) -> bool | None:
    return _block_fails(block)


def _block_verdict(block: CodeBlock) -> bool | None:
    """``_block_fails``, remembered.

    Answers repeat the same snippet (a usage example, an install line, a config
    file) inside otherwise different text, and parsing it (``ast.parse`` compiles
    it) costs more than finding it. The verdict depends on the block alone, so this
    changes no result.
    """
    if len(block.body) > BLOCK_MEMO_MAX_CHARS:
        return _block_fails(block)
    return _remembered_block(block)


def forget() -> None:
    """Forget every remembered verdict (blocks and texts)."""
    _remembered_block.cache_clear()
    _remembered.cache_clear()


def check_response(text: str, *, max_chars: int = SignalParams.code_max_chars) -> bool | None:
    r"""code_syntax_error of one response.

    Examples
    --------
    >>> check_response("```python\ndef f(:\n    pass\n```")
    True
    >>> check_response("```json\n{\"a\": [1, 2]}\n```")
    False
    >>> check_response("No code here.") is None
    True
    """
    verdicts = [
        None if len(block.body) > max_chars else _block_verdict(block)
        for block in fenced_blocks(text)
    ]
    if any(v is True for v in verdicts):
        return True
    if any(v is False for v in verdicts):
        return False
    return None


MEMO_ENTRIES = 50_000
"""Distinct texts (fenced regions, ``FENCED_REGION``) whose verdict is remembered between
vectors (least recent forgotten)."""

MEMO_MAX_CHARS = 1_000
"""Only texts up to this long are remembered: with ``MEMO_ENTRIES`` this bounds the
memo at 50 million characters."""


@functools.lru_cache(maxsize=MEMO_ENTRIES)
def _remembered(text: str, max_chars: int) -> bool | None:
    return check_response(text, max_chars=max_chars)


def _verdict(text: str, max_chars: int) -> bool | None:
    if len(text) > MEMO_MAX_CHARS:
        return check_response(text, max_chars=max_chars)
    return _remembered(text, max_chars)


def _udf(texts: pa.Array | pa.ChunkedArray, max_chars: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Vectorised check: each distinct text of the vector reaches Python once.

    The SQL passes each response's fenced region (``FENCED_REGION``), and the same
    region comes back often (retries, cached or templated answers, the same snippet
    in differently worded answers), so texts are dictionary-encoded in Arrow first
    and recent verdicts are remembered (``MEMO_ENTRIES``): a verdict depends on the
    text alone, so this changes no result.
    """
    limits = pc.unique(max_chars)
    with _parse_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SyntaxWarning / DeprecationWarning from user code
        if len(limits) != 1 or not limits[0].is_valid:
            out = [
                None if text is None or limit is None else _verdict(text, int(limit))
                for text, limit in zip(texts.to_pylist(), max_chars.to_pylist(), strict=True)
            ]
            return pa.array(out, pa.bool_())
        limit = int(limits[0].as_py())
        if isinstance(texts, pa.ChunkedArray):
            texts = texts.combine_chunks()
        encoded = texts if pa.types.is_dictionary(texts.type) else pc.dictionary_encode(texts)
        verdicts = [_verdict(text, limit) for text in encoded.dictionary.to_pylist()]
    return pa.array(verdicts, pa.bool_()).take(encoded.indices)


def register(con: duckdb.DuckDBPyConnection) -> None:
    """Register the UDF on ``con`` (vectorised over Arrow arrays, no side effects).

    ``null_handling`` is special because the function returns null for a text
    without a checkable block.
    """
    register_arrow_function(con, FUNCTION_NAME, _udf, ["VARCHAR", "BIGINT"])


FENCED_REGION = r"(?m)^[^\n]*?(?:```|~~~)(?s:.*(?:```|~~~))?[^\n]*\n?"
"""RE2: the lines from the one holding the first fence marker to the one holding the
last, with the line break after it. Every fence line and every body is inside, and it
starts and ends where the text's lines do, so ``fenced_blocks`` of it is that of the
whole text: the prose around the code never reaches Python, and responses that differ
only there arrive as one value (checked once per vector, then remembered)."""


def fenced_region_sql(text: str) -> str:
    r"""SQL: the part of ``text`` that decides its verdict (``FENCED_REGION``).

    Examples
    --------
    >>> import duckdb
    >>> sql = f"SELECT {fenced_region_sql('$t')}"
    >>> t = "Intro.\nRun:\n```py\nx = 1\n```\nDone.\n"
    >>> duckdb.connect().execute(sql, {"t": t}).fetchall()[0][0]
    '```py\nx = 1\n```\n'
    """
    return f"regexp_extract({text}, {sql_literal(FENCED_REGION)})"


def _sql(params: SignalParams, present: Set[str]) -> str:
    # The fence test keeps every row without a block away from Python.
    return (
        "CASE WHEN response_text IS NULL THEN NULL "
        "WHEN NOT (contains(response_text, '```') OR contains(response_text, '~~~')) THEN NULL "
        f"ELSE {FUNCTION_NAME}({fenced_region_sql('response_text')}, $code_max_chars) END"
    )


DETECTOR = Detector(
    name="code_syntax_error",
    description="A fenced python or json code block in the response fails to parse",
    requires=("response_text",),
    sql=_sql,
    register=register,
)
