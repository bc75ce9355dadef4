"""Response texts of the field family: drafts per (language, form), runs inserted, code broken.

Each seed builds a pool of drafts per language and form (prose, a bulleted
list, Python in a fenced block, shell in a fenced block, a JSON block, a
translation asked for in English, a degenerate loop). A row picks a draft;
the few rows a bug or the baseline touches are rendered again with their
change: a run of letters of another script inserted into a line written in
the answer's own language, or the checked block replaced by its broken twin.

Whether a change shows is decided here, not by the detectors: a run shows
(``script_mix``) when its script is not one the language is written in
(``phrases.SCRIPTS_OF``); a broken block shows (``code_syntax_error``) when
the draft holds a Python or JSON block. ``tests/test_field.py`` checks that
the detectors agree.
"""

from __future__ import annotations

import ast
import json
import unicodedata
from dataclasses import dataclass

import numpy as np

from forensics.simulate.field.phrases import (
    BASH_SNIPPETS,
    BREAKS,
    FOREIGN_RUNS,
    LANGUAGES,
    PYTHON_SNIPPETS,
    SCRIPTS_OF,
)

__all__ = ["FORMS", "Draft", "Pools", "insert_run", "shows_run"]

FORMS = ("prose", "list", "python", "shell", "json", "translation", "loop")
"""Answer forms; a blank answer is the empty string, not a form."""

PER_FORM = 10
"""Drafts per (language, form) in a seed's pool."""

_TRANSLATED = ("ja", "zh-Hans", "ko", "th", "de", "es")
"""Languages an English prompt may ask a translation into."""

_THAI_LEADING_VOWELS = frozenset("เแโใไ")


@dataclass(frozen=True)
class Draft:
    """One answer before any change."""

    language: str
    """prompt_language of the rows that may use it."""
    form: str
    """One of ``FORMS``."""
    parts: tuple[str, ...]
    """Paragraphs and fenced blocks, joined by a blank line."""
    lines: tuple[tuple[int, int], ...]
    """(part, line) of the lines in the answer's language a run may go into."""
    broken: tuple[str, ...] | None
    """The parts with the checked block broken; None when there is no checked block."""

    @property
    def text(self) -> str:
        """The clean answer."""
        return "\n\n".join(self.parts)

    @property
    def checked(self) -> bool:
        """Holds a Python or JSON block (``code_syntax_error`` is defined)."""
        return self.broken is not None


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except SyntaxError:
        return False
    return True


def break_python(source: str, rng: np.random.Generator) -> str:
    """The snippet with one edit that stops it parsing (edits tried in a random order)."""
    for i in rng.permutation(len(BREAKS)):
        old, new = BREAKS[int(i)]
        if old in source:
            edited = source.replace(old, new, 1)
            if not _parses(edited):
                return edited
    raise ValueError(f"no edit breaks the snippet {source[:40]!r}")


def _json_block(rng: np.random.Generator) -> tuple[str, str]:
    """A JSON document and a broken twin."""
    record = {
        "id": int(rng.integers(1000, 99999)),
        "status": str(rng.choice(["open", "closed", "pending"])),
        "amount": round(float(rng.uniform(1, 5000)), 2),
        "tags": [str(t) for t in rng.choice(["billing", "urgent", "eu", "retry"], 2, False)],
        "active": bool(rng.random() < 0.5),
    }
    text = json.dumps(record, indent=2)
    cut = rng.random() < 0.5
    # cut before the closing brace, or a missing comma
    broken = text[: text.rfind("}")].rstrip() if cut else text.replace(",\n", "\n", 1)
    return text, broken


def _sentences(language: str, count: int, rng: np.random.Generator) -> list[str]:
    bank = LANGUAGES[language].sentences
    return [bank[int(i)] for i in rng.choice(len(bank), size=min(count, len(bank)), replace=False)]


def _paragraph(language: str, count: int, rng: np.random.Generator) -> str:
    glue = " " if LANGUAGES[language].spaced else ""
    return glue.join(_sentences(language, count, rng))


def _draft(language: str, form: str, rng: np.random.Generator) -> Draft:
    lang = LANGUAGES[language]
    parts: list[str] = []
    lines: list[tuple[int, int]] = []
    broken: list[str] | None = None
    if form == "prose":
        for _ in range(int(rng.integers(1, 3))):
            lines.append((len(parts), 0))
            parts.append(_paragraph(language, int(rng.integers(2, 4)), rng))
    elif form == "list":
        bullets = _sentences(language, int(rng.integers(3, 6)), rng)
        parts.append("\n".join([lang.list_intro, *(f"- {b}" for b in bullets)]))
        lines.extend((0, i + 1) for i in range(len(bullets)))
    elif form in ("python", "shell", "json"):
        parts.append(lang.code_intro if form != "json" else lang.data_intro)
        if form == "python":
            source = PYTHON_SNIPPETS[int(rng.integers(len(PYTHON_SNIPPETS)))]
            bad = break_python(source, rng)
            if rng.random() < 0.3:  # a comment in the answer's language: inside the fence
                comment = f"# {_sentences(language, 1, rng)[0]}\n"
                source, bad = comment + source, comment + bad
            parts.append(f"```python\n{source}\n```")
            broken = [parts[0], f"```python\n{bad}\n```"]
        elif form == "json":
            good, bad = _json_block(rng)
            parts.append(f"```json\n{good}\n```")
            broken = [parts[0], f"```json\n{bad}\n```"]
        else:
            parts.append(f"```bash\n{BASH_SNIPPETS[int(rng.integers(len(BASH_SNIPPETS)))]}\n```")
        parts.append(_paragraph(language, 1, rng) + (" " if lang.spaced else "") + lang.code_outro)
        lines.append((len(parts) - 1, 0))
        if broken is not None:
            broken.append(parts[-1])
    elif form == "translation":
        target = _TRANSLATED[int(rng.integers(len(_TRANSLATED)))]
        parts.append("Here is the translation:")
        parts.append(_sentences(target, 1, rng)[0])
        # no line for runs: a run next to a translated line could read as written on purpose
    elif form == "loop":
        glue = " " if lang.spaced else ""
        body = glue.join([lang.loop] * int(rng.integers(25, 60)))
        cut = int(rng.integers(len(body) // 2, len(body)))
        parts.append(_sentences(language, 1, rng)[0] + glue + body[:cut])
    else:
        raise ValueError(f"unknown form {form!r}")
    return Draft(language, form, tuple(parts), tuple(lines), tuple(broken) if broken else None)


def shows_run(language: str, script: str) -> bool:
    """A run of ``script`` is foreign to an answer in ``language`` (``script_mix`` fires).

    Examples
    --------
    >>> shows_run("en", "Han"), shows_run("ja", "Han"), shows_run("th", "Han")
    (True, False, True)
    """
    return script not in SCRIPTS_OF[language]


def insert_run(line: str, run: str, *, spaced: bool, rng: np.random.Generator) -> str:
    """``line`` with ``run`` inserted between words (spaced scripts) or between two letters.

    Never at either end of the line, never next to punctuation.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> out = insert_run("one two three four", "的", spaced=True, rng=rng)
    >>> out.replace("的", "").replace("  ", " ") == "one two three four"
    True
    """
    if spaced:
        spaces = [i for i, ch in enumerate(line) if ch == " " and 0 < i < len(line) - 1]
        at = spaces[int(rng.integers(len(spaces)))]
        style = int(rng.integers(3))
        if style == 0:  # a word of its own
            return f"{line[:at]} {run}{line[at:]}"
        if style == 1:  # glued to the next word
            return f"{line[: at + 1]}{run}{line[at + 1 :]}"
        return f"{line[:at]}{run}{line[at:]}"  # glued to the previous word
    spots = [i for i in range(2, len(line) - 2) if _between_letters(line, i)]
    at = spots[int(rng.integers(len(spots)))]
    return f"{line[:at]}{run}{line[at:]}"


def _between_letters(line: str, i: int) -> bool:
    """Whether a run may go before ``line[i]``.

    Only inside a word, and for Thai before a consonant that no leading vowel precedes
    (so no vowel or tone mark is cut from its letter).
    """
    here, before = line[i], line[i - 1]
    if not unicodedata.category(here).startswith("L"):
        return False
    if not unicodedata.category(before).startswith(("L", "M")):
        return False
    if "\u0e00" <= here <= "\u0e7f":
        return "\u0e01" <= here <= "\u0e2e" and before not in _THAI_LEADING_VOWELS
    return True


class Pools:
    """A seed's drafts: ``PER_FORM`` per (language, form), addressed by one integer id."""

    def __init__(self, languages: list[str], rng: np.random.Generator) -> None:
        self.drafts: list[Draft] = []
        self._ids: dict[tuple[str, str], np.ndarray] = {}
        for language in languages:
            for form in FORMS:
                if form == "translation" and language != "en":
                    continue
                start = len(self.drafts)
                self.drafts.extend(_draft(language, form, rng) for _ in range(PER_FORM))
                self._ids[(language, form)] = np.arange(start, len(self.drafts))
        self.texts = np.array([d.text for d in self.drafts], dtype=object)
        self.checked = np.array([d.checked for d in self.drafts])
        self.insertable = np.array([bool(d.lines) for d in self.drafts])
        self.language = np.array([d.language for d in self.drafts], dtype=object)

    def ids(self, language: str, form: str) -> np.ndarray:
        """Draft ids of one (language, form); a language without translations gets prose."""
        if form == "translation" and language != "en":
            form = "prose"
        return self._ids[(language, form)]

    def render(
        self,
        draft_id: int,
        *,
        broken: bool,
        run: str | None,
        rng: np.random.Generator,
    ) -> str:
        """The draft's text, its checked block broken and/or a run of letters inserted."""
        draft = self.drafts[draft_id]
        parts = list(draft.broken if broken and draft.broken else draft.parts)
        if run is not None and draft.lines:
            part, line_no = draft.lines[int(rng.integers(len(draft.lines)))]
            lines = parts[part].split("\n")
            text = lines[line_no]
            prefix = "- " if text.startswith("- ") else ""
            lines[line_no] = prefix + insert_run(
                text[len(prefix) :], run, spaced=LANGUAGES[draft.language].spaced, rng=rng
            )
            parts[part] = "\n".join(lines)
        return "\n\n".join(parts)


def foreign_run(script: str, rng: np.random.Generator) -> str:
    """A run of 1-7 letters of ``script``, as a corrupted decode inserts."""
    runs = FOREIGN_RUNS[script]
    return runs[int(rng.integers(len(runs)))]


def render_texts(
    pools: Pools,
    *,
    draft: np.ndarray,
    language: np.ndarray,
    run: np.ndarray,
    broken: np.ndarray,
    blank: np.ndarray,
    loop: np.ndarray,
    failed: np.ndarray,
    cut: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """``response_text`` per request: the draft, changed where a run or a broken block says so.

    A blank answer is the empty string, a failed request has none (None), a loop
    is its language's degenerate draft, and an answer stopped by the length limit
    (``cut``) ends in half a sentence.
    """
    text = pools.texts[draft].copy()
    changed = np.flatnonzero((broken & pools.checked[draft]) | (run != None) & ~loop)  # noqa: E711
    for i in changed:
        script = run[i]
        text[i] = pools.render(
            int(draft[i]),
            broken=bool(broken[i]),
            run=None if script is None else foreign_run(str(script), rng),
            rng=rng,
        )
    for lang in np.unique(language[loop]):
        mask = loop & (language == lang)
        ids = pools.ids(str(lang), "loop")
        text[mask] = pools.texts[ids[rng.integers(0, ids.size, int(mask.sum()))]]
    for i in np.flatnonzero(cut & ~loop & ~blank & ~failed):
        bank = LANGUAGES[str(language[i])]
        sentence = bank.sentences[int(rng.integers(len(bank.sentences)))]
        text[i] = f"{text[i]}\n\n{sentence[: max(2, int(len(sentence) * rng.uniform(0.3, 0.8)))]}"
    text[blank] = ""
    text[failed] = None
    return text
