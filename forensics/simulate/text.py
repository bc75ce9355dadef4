"""Simulated response texts: clean pools built once, corruption per affected row.

Responses are assembled from the building blocks in ``texts.toml`` into a pool
of ``pool_size`` templates per (language, task), each answer written in its
prompt's own script. A row picks a template by index, so clean texts cost
nothing per row and dictionary-encode well. Only rows the engine marks as
corrupted get Python work here:

* ``insert_foreign_run`` puts an unquoted run of 1-20 characters of a foreign
  script into the prose, at a word boundary or inside a word, never inside a
  quoted span or inline code (where a detector must not look).
* ``break_python`` / ``break_json`` damage a code block so that ``ast.parse`` /
  ``json.loads`` really fail: with foreign-script garbage (a bug writing
  corrupted tokens) or with a structural slip (a dropped colon, bracket or
  comma, as models sometimes write). Each result is checked by parsing it.
"""

from __future__ import annotations

import ast
import functools
import json
import re
import tomllib
import warnings
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Literal

import numpy as np

from forensics.errors import ConfigError

__all__ = [
    "FOREIGN_CODE_SHARE",
    "Language",
    "Pools",
    "TaskShape",
    "Template",
    "TextLibrary",
    "break_json",
    "break_python",
    "build_pools",
    "foreign_run",
    "insert_foreign_run",
    "load_library",
    "parses",
]

PartKind = Literal["prose", "python", "python-bare", "json"]

FOREIGN_CODE_SHARE = 0.5
"""Share of a bug's broken code blocks broken by foreign-script tokens (the rest: a slip)."""

MAX_RUN = 20
"""Longest foreign-script run inserted."""

_ATTEMPTS = 40
"""Random tries at breaking code before the guaranteed fallback."""

_PROTECTED = re.compile(r'"[^"\n]*"|“[^”\n]*”|„[^“\n]*“|«[^»\n]*»|「[^」\n]*」|`[^`\n]*`')
"""Quoted spans and inline code: text there is quoted on purpose, never corrupted."""

_QUOTES = set("\"'“”„«»「」`")


@dataclass(frozen=True)
class Language:
    """The building blocks of one language."""

    code: str
    """BCP-47 tag, as in prompt_language."""
    scripts: tuple[str, ...]
    """Scripts native to it (never foreign in its answers)."""
    sentences: tuple[str, ...]
    """General prose sentences."""
    traps: tuple[str, ...]
    """Sentences a script-mix detector must not flag (quotes, emoji, math, accents)."""
    code_intro: tuple[str, ...]
    """Sentences that introduce a code block."""
    code_outro: tuple[str, ...]
    """Sentences that follow a code block."""
    summary_heading: tuple[str, ...]
    """Headings of a summary."""


@dataclass(frozen=True)
class TaskShape:
    """How the response to one task is put together."""

    sentences: tuple[int, int] | None = None
    """Fewest and most prose sentences."""
    bullets: tuple[int, int] | None = None
    """Fewest and most bullet points (a summary), instead of sentences."""
    blocks: Mapping[str, float] = field(default_factory=dict)
    """Code block kind (python, python-bare, json, none) -> probability."""


_BLOCK_KINDS: dict[str, PartKind] = {
    "python": "python",
    "python-bare": "python-bare",
    "json": "json",
}
"""Code block kinds a task may hold."""


@dataclass(frozen=True)
class TextLibrary:
    """Everything in ``texts.toml``."""

    languages: Mapping[str, Language]
    """Languages by BCP-47 tag."""
    scripts: Mapping[str, str]
    """Alphabets of foreign-script runs, by script name."""
    tasks: Mapping[str, TaskShape]
    """How each task's response is put together."""
    python: tuple[str, ...]
    """Python snippets (each parses)."""
    json: tuple[str, ...]
    """JSON snippets (each parses)."""
    pool_size: int
    """Templates per (language, task)."""
    trap_share: float
    """Share of responses that carry a trap sentence."""

    def foreign_scripts(
        self, language: str, wanted: Sequence[str] | None = None
    ) -> tuple[str, ...]:
        """Scripts among ``wanted`` (default: all) that are foreign to ``language``.

        Examples
        --------
        >>> load_library().foreign_scripts("ja", ["thai", "han"])
        ('thai',)
        """
        native = set(self.languages[language].scripts)
        return tuple(s for s in (wanted or tuple(self.scripts)) if s not in native)


@functools.cache
def load_library() -> TextLibrary:
    """Read ``texts.toml`` from the package (once)."""
    data = tomllib.loads(resources.files(__package__).joinpath("texts.toml").read_text("utf-8"))
    languages = {
        code: Language(
            code,
            tuple(spec["scripts"]),
            tuple(spec["sentences"]),
            tuple(spec.get("traps", ())),
            tuple(spec["code_intro"]),
            tuple(spec["code_outro"]),
            tuple(spec["summary_heading"]),
        )
        for code, spec in data["languages"].items()
    }
    return TextLibrary(
        languages=languages,
        scripts=dict(data["scripts"]),
        tasks={
            name: TaskShape(
                sentences=tuple(spec["sentences"]) if "sentences" in spec else None,
                bullets=tuple(spec["bullets"]) if "bullets" in spec else None,
                blocks=dict(spec.get("blocks", {})),
            )
            for name, spec in data["tasks"].items()
        },
        python=tuple(data["code"]["python"]),
        json=tuple(data["code"]["json"]),
        pool_size=int(data["pool_size"]),
        trap_share=float(data["trap_share"]),
    )


@dataclass(frozen=True)
class Template:
    """One response: prose parts and at most one code block."""

    parts: tuple[tuple[PartKind, str], ...]
    """(kind, text) in order; code parts are unfenced."""

    @property
    def code_kind(self) -> PartKind | None:
        """Kind of the code block, if any."""
        return next((k for k, _ in self.parts if k != "prose"), None)

    def render(self, replace: Mapping[int, str] | None = None) -> str:
        r"""The response text, with some parts replaced.

        Examples
        --------
        >>> Template((("prose", "Hi."), ("json", "{}"))).render()
        'Hi.\n\n```json\n{}\n```'
        """
        out = []
        for i, (kind, text) in enumerate(self.parts):
            text = (replace or {}).get(i, text)
            if kind == "prose":
                out.append(text)
            else:
                fence = {"python": "python", "json": "json", "python-bare": ""}[kind]
                out.append(f"```{fence}\n{text}\n```")
        return "\n\n".join(out)


@dataclass(frozen=True)
class Pools:
    """Template pools for some languages and tasks, concatenated."""

    templates: tuple[Template, ...]
    """Every template; a row's response is one of these, by index."""
    texts: tuple[str, ...]
    """Rendered templates, same order."""
    start: np.ndarray
    """First template index per (language index, task index)."""
    size: np.ndarray
    """Templates per (language index, task index)."""
    has_code: np.ndarray
    """Whether each template holds a code block."""


def _choice(rng: np.random.Generator, items: Sequence[str]) -> str:
    return items[int(rng.integers(len(items)))]


def _compose(lib: TextLibrary, lang: Language, task: str, rng: np.random.Generator) -> Template:
    shape = lib.tasks[task]
    parts: list[tuple[PartKind, str]] = []
    block = "none"
    if shape.blocks:
        kinds, weights = list(shape.blocks), np.array(list(shape.blocks.values()), dtype=float)
        block = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
    if shape.bullets:
        low, high = shape.bullets
        picks = rng.choice(len(lang.sentences), int(rng.integers(low, high + 1)), replace=False)
        bullets = "\n".join(f"- {lang.sentences[i]}" for i in picks)
        parts.append(("prose", f"{_choice(rng, lang.summary_heading)}\n{bullets}"))
    elif shape.sentences:
        low, high = shape.sentences
        picks = rng.choice(len(lang.sentences), int(rng.integers(low, high + 1)), replace=False)
        parts.append(("prose", " ".join(lang.sentences[i] for i in picks)))
    else:
        parts.append(("prose", _choice(rng, lang.code_intro)))
    if lang.traps and rng.random() < lib.trap_share:
        kind, text = parts[0]
        parts[0] = (kind, f"{text} {_choice(rng, lang.traps)}")
    if block != "none":
        source = lib.json if block == "json" else lib.python
        if shape.sentences:
            parts.append(("prose", _choice(rng, lang.code_intro)))
        parts.append((_BLOCK_KINDS[block], _choice(rng, source)))
        parts.append(("prose", _choice(rng, lang.code_outro)))
    return Template(tuple(parts))


def build_pools(lib: TextLibrary, languages: Sequence[str], tasks: Sequence[str]) -> Pools:
    """Build ``lib.pool_size`` templates for each (language, task), the same for every seed.

    A pool depends only on its language and task (not on the scenario), so the
    same response texts recur across scenarios and seeds.
    """
    unknown_lang = [lang for lang in languages if lang not in lib.languages]
    unknown_task = [t for t in tasks if t not in lib.tasks]
    if unknown_lang or unknown_task:
        raise ConfigError(
            f"the text library (forensics/simulate/texts.toml) has no "
            f"{'language(s) ' + ', '.join(unknown_lang) if unknown_lang else ''}"
            f"{' and ' if unknown_lang and unknown_task else ''}"
            f"{'task(s) ' + ', '.join(unknown_task) if unknown_task else ''}; "
            f"languages: {', '.join(lib.languages)}; tasks: {', '.join(lib.tasks)}"
        )
    templates: list[Template] = []
    start = np.zeros((len(languages), len(tasks)), dtype=np.int64)
    size = np.zeros_like(start)
    for i, lang in enumerate(languages):
        for j, task in enumerate(tasks):
            rng = np.random.Generator(np.random.PCG64(zlib.crc32(f"{lang}/{task}".encode())))
            start[i, j], size[i, j] = len(templates), lib.pool_size
            templates += [
                _compose(lib, lib.languages[lang], task, rng) for _ in range(lib.pool_size)
            ]
    return Pools(
        templates=tuple(templates),
        texts=tuple(t.render() for t in templates),
        start=start,
        size=size,
        has_code=np.array([t.code_kind is not None for t in templates], dtype=bool),
    )


# -- corruption ------------------------------------------------------------------------


def foreign_run(alphabet: str, rng: np.random.Generator) -> str:
    """A run of 1-20 characters of ``alphabet``, short runs more likely.

    Examples
    --------
    >>> run = foreign_run("ab", np.random.Generator(np.random.PCG64(0)))
    >>> 1 <= len(run) <= MAX_RUN and set(run) <= {"a", "b"}
    True
    """
    length = 1 + int(MAX_RUN * rng.random() ** 2)
    picks = rng.integers(len(alphabet), size=min(length, MAX_RUN))
    return "".join(alphabet[i] for i in picks)


def insert_foreign_run(text: str, run: str, rng: np.random.Generator) -> str:
    """Insert ``run`` unquoted into ``text``: between words or inside one, outside quotes.

    Examples
    --------
    >>> rng = np.random.Generator(np.random.PCG64(1))
    >>> out = insert_foreign_run('Say "hi" to them.', "กข", rng)
    >>> "กข" in out and '"hi"' in out
    True
    """
    blocked = np.zeros(len(text) + 1, dtype=bool)
    for m in _PROTECTED.finditer(text):
        blocked[m.start() : m.end() + 1] = True
    for i, ch in enumerate(text):
        if ch in _QUOTES or ch == "\n":
            blocked[i] = blocked[i + 1] = True
    allowed = np.flatnonzero(~blocked)
    if len(allowed) == 0:
        return f"{text} {run}"
    pos = int(allowed[rng.integers(len(allowed))])
    spaced = pos == len(text) or text[pos] == " "
    if spaced and rng.random() < 0.7:
        return f"{text[:pos]} {run}{text[pos:]}"
    return f"{text[:pos]}{run}{text[pos:]}"


def parses(code: str, kind: str) -> bool:
    """Whether a code block parses (``ast.parse`` for Python, ``json.loads`` for JSON).

    Examples
    --------
    >>> parses("x = (1", "python"), parses('{"a": 1}', "json")
    (False, True)
    """
    try:
        if kind == "json":
            json.loads(code)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def _token_gap(code: str, rng: np.random.Generator) -> int:
    """A position just after a space, bracket or operator on a non-blank line."""
    candidates = [i + 1 for i, ch in enumerate(code) if ch in " ([{,=+:"]
    return candidates[int(rng.integers(len(candidates)))] if candidates else len(code)


def _slip_python(code: str, rng: np.random.Generator) -> str:
    lines = code.split("\n")
    strategy = int(rng.integers(4))
    if strategy == 0:
        colons = [i for i, line in enumerate(lines) if line.rstrip().endswith(":")]
        if colons:
            i = colons[int(rng.integers(len(colons)))]
            lines[i] = lines[i].rstrip()[:-1]
            return "\n".join(lines)
    if strategy == 1:
        closes = [i for i, ch in enumerate(code) if ch in ")]}"]
        if closes:
            i = closes[int(rng.integers(len(closes)))]
            return code[:i] + code[i + 1 :]
    if strategy == 2:
        body = [i for i, line in enumerate(lines) if i > 0 and line.strip()]
        if body:
            i = body[int(rng.integers(len(body)))]
            lines[i] = "   " + lines[i]
            return "\n".join(lines)
    cut = int(len(code) * (0.3 + 0.6 * rng.random()))
    return code[:cut]


def _slip_json(code: str, rng: np.random.Generator) -> str:
    strategy = int(rng.integers(3))
    if strategy == 0:
        commas = [i for i, ch in enumerate(code) if ch == ","]
        if commas:
            i = commas[int(rng.integers(len(commas)))]
            return code[:i] + code[i + 1 :]
    if strategy == 1:
        closes = [i for i, ch in enumerate(code) if ch in "]}"]
        if closes:
            i = closes[int(rng.integers(len(closes)))]
            return code[:i] + ", " + code[i:]
    cut = int(len(code) * (0.3 + 0.6 * rng.random()))
    return code[:cut]


def _break(code: str, kind: str, rng: np.random.Generator, alphabet: str | None) -> str:
    for _ in range(_ATTEMPTS):
        if alphabet:
            pos = _token_gap(code, rng)
            broken = f"{code[:pos]}{foreign_run(alphabet, rng)} {code[pos:]}"
        else:
            broken = _slip_json(code, rng) if kind == "json" else _slip_python(code, rng)
        if not parses(broken, kind):
            return broken
    # Guaranteed failures: an unmatched bracket, or a dangling comma after the JSON value.
    tail = f"{foreign_run(alphabet, rng)} " if alphabet else ""
    return f"{code}\n{tail})" if kind != "json" else f"{code},{tail}"


def break_python(code: str, rng: np.random.Generator, alphabet: str | None = None) -> str:
    r"""Damage a Python block so that ``ast.parse`` fails (foreign tokens if ``alphabet``).

    Examples
    --------
    >>> rng = np.random.Generator(np.random.PCG64(2))
    >>> parses(break_python("def f(x):\\n    return x", rng, "กขค"), "python")
    False
    """
    return _break(code, "python", rng, alphabet)


def break_json(code: str, rng: np.random.Generator, alphabet: str | None = None) -> str:
    """Damage a JSON block so that ``json.loads`` fails (foreign tokens if ``alphabet``).

    Examples
    --------
    >>> rng = np.random.Generator(np.random.PCG64(3))
    >>> parses(break_json('{"a": [1, 2]}', rng), "json")
    False
    """
    return _break(code, "json", rng, alphabet)


def corrupt(
    template: Template,
    rng: np.random.Generator,
    *,
    prose_alphabet: str | None,
    code_alphabet: str | None,
    break_code: bool,
) -> str:
    """Render ``template`` with a foreign run in its prose and/or its code block broken."""
    replace: dict[int, str] = {}
    if prose_alphabet:
        prose = [i for i, (k, _) in enumerate(template.parts) if k == "prose"]
        i = prose[int(rng.integers(len(prose)))]
        replace[i] = insert_foreign_run(template.parts[i][1], foreign_run(prose_alphabet, rng), rng)
    if break_code:
        i = next(i for i, (k, _) in enumerate(template.parts) if k != "prose")
        kind, code = template.parts[i]
        breaker = break_json if kind == "json" else break_python
        replace[i] = breaker(code, rng, code_alphabet)
    return template.render(replace)
