"""script_mix: the response holds a run of letters from a writing system foreign to its language.

The rule, evaluated in DuckDB SQL (RE2 regexes with Unicode script classes):

1. **Expected scripts.** ``prompt_language`` (BCP-47: ``th``, ``ja-JP``,
   ``zh-Hant``, ``sr-Latn``) maps to the scripts its language is written in
   (``LANGUAGE_SCRIPTS``; a script subtag, ``SCRIPT_SUBTAGS``, wins): ``ja`` to Han +
   Hiragana + Katakana, ``ko`` to Hangul + Han, ``ru`` to Cyrillic, ``en`` to Latin.
   When it is missing or not recognised, the response's dominant script stands
   for the language (Han brings kana along: it may be Chinese or Japanese).
   Either way, a script whose group holds more than ``script_mix_max_share`` of
   the letters (beyond the scripts already expected) is expected too: the answer
   is written in it on purpose, e.g. a translation asked for in English.
2. **Latin is neutral.** Product names, commands, units and code identifiers
   are written in Latin in every language, so Latin letters never fire.
3. **What is cited is masked** before looking for runs: fenced and inline code;
   a foreign run in quotes, brackets or emphasis with no Latin letter in them
   (``"猫"``, ``«спутник»``, ``「水」``, ``*山*``); a parenthetical that opens with
   one (``Tokyo (東京)``); a foreign phrase followed by a parenthesised gloss
   (``猫 (neko)``, ``コーヒー (kōhī)``).
4. **Fire** when a run of at least ``script_mix_min_run`` letters of a tracked
   script (``TRACKED``: Thai, Han, Hangul, Cyrillic, Arabic, ...) outside the
   expected scripts is left, unless its group (beyond the expected scripts)
   holds more than ``script_mix_max_share`` of the letters of its line (a
   translation on a line of its own, even with a brand name or unit in Latin).
   Greek needs ``script_mix_greek_min_run`` letters: a single α or Δ is a math
   symbol, not a word. Emoji, math symbols, punctuation, accented Latin and
   letters of no script (ー, µ, ℝ) never fire.

Null semantics: null when ``response_text`` is null; false for an empty or
letter-free text (there is nothing foreign in it; ingest stores a blank response
as null). A missing ``prompt_language`` column behaves like a null language.

Known limits, by design: an unquoted, unglossed foreign word in running prose
("in Thai, hello is สวัสดี.") fires, as it is indistinguishable from an inserted
run of the same shape; a run inserted into quotes or brackets that hold no Latin
letter, or directly before a parenthesis, is masked; a run longer than the rest
of a short line or answer reads as written on purpose; letters are counted one
for one, so a Chinese line dense with Latin terms can read as Latin (a Han run
in it then fires); Latin inserted into a non-Latin answer is not detected.

Cost: intermediate columns are computed once per row in successive projections
(``script_mix_stages``), each handing the next a null for rows needing no more
work. Most rows stop after one regex scan for a letter foreign to their
language; only the rows where one is left after masking reach the list logic of
``script_mix_verdict``.
"""

from __future__ import annotations

import functools
from collections.abc import Set

from forensics.signals._detector import (
    Detector,
    SignalParams,
    Stages,
    column_or_null,
    sql_literal,
)

__all__ = [
    "DETECTOR",
    "LANGUAGE_SCRIPTS",
    "PREFILTERED",
    "SCRIPT_BLOCKS",
    "SCRIPT_SUBTAGS",
    "TRACKED",
    "foreign_letter_pattern",
    "language_mask_sql",
    "script_bit",
    "script_mix_sql",
    "script_mix_stages",
    "script_mix_verdict",
]

LATIN = "Latin"
"""The neutral script: never foreign."""

SCRIPT_BLOCKS: dict[str, tuple[tuple[int, int], ...]] = {
    "Arabic": ((0x600, 0x8FF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFC), (0x10E60, 0x10EFF), (0x1EE00, 0x1EEF1)),
    "Armenian": ((0x531, 0x58F), (0xFB13, 0xFB17)),
    "Bengali": ((0x980, 0x9FE),),
    "Cyrillic": ((0x400, 0x52F), (0x1C80, 0x1C88), (0x1D2B, 0x1D2B), (0x1D78, 0x1D78), (0x2DE0, 0x2DFF), (0xA640, 0xA69F), (0xFE2E, 0xFE2F), (0x1E030, 0x1E08F)),
    "Devanagari": ((0x900, 0x97F), (0xA8E0, 0xA8FF), (0x11B00, 0x11B09)),
    "Ethiopic": ((0x1200, 0x1399), (0x2D80, 0x2DDE), (0xAB01, 0xAB2E), (0x1E7E0, 0x1E7FE)),
    "Georgian": ((0x10A0, 0x10FF), (0x1C90, 0x1CBF), (0x2D00, 0x2D2D)),
    "Greek": ((0x370, 0x3FF), (0x1D26, 0x1D2A), (0x1D5D, 0x1D61), (0x1D66, 0x1D6A), (0x1DBF, 0x1DBF), (0x1F00, 0x1FFE), (0x2126, 0x2126), (0xAB65, 0xAB65), (0x10140, 0x101A0), (0x1D200, 0x1D245)),
    "Gujarati": ((0xA81, 0xAFF),),
    "Gurmukhi": ((0xA01, 0xA76),),
    "Han": ((0x2E80, 0x3029), (0x3038, 0x303B), (0x3400, 0x9FFF), (0xF900, 0xFAD9), (0x16FE2, 0x16FF1), (0x20000, 0x323AF)),
    "Hangul": ((0x1100, 0x11FF), (0x302E, 0x302F), (0x3131, 0x318E), (0x3200, 0x327E), (0xA960, 0xA97C), (0xAC00, 0xD7FB), (0xFFA0, 0xFFDC)),
    "Hebrew": ((0x591, 0x5F4), (0xFB1D, 0xFB4F)),
    "Hiragana": ((0x3041, 0x309F), (0x1B001, 0x1B11F), (0x1B132, 0x1B152), (0x1F200, 0x1F200)),
    "Kannada": ((0xC80, 0xCF3),),
    "Katakana": ((0x30A1, 0x30FF), (0x31F0, 0x31FF), (0x32D0, 0x3357), (0xFF66, 0xFF9D), (0x1AFF0, 0x1B000), (0x1B120, 0x1B122), (0x1B155, 0x1B167)),
    "Khmer": ((0x1780, 0x19FF),),
    "Lao": ((0xE81, 0xEDF),),
    "Malayalam": ((0xD00, 0xD7F),),
    "Myanmar": ((0x1000, 0x109F), (0xA9E0, 0xAA7F)),
    "Sinhala": ((0xD81, 0xDF4), (0x111E1, 0x111F4)),
    "Tamil": ((0xB82, 0xBFA), (0x11FC0, 0x11FFF)),
    "Telugu": ((0xC00, 0xC7F),),
    "Thai": ((0xE01, 0xE5B),),
    "Tibetan": ((0xF00, 0xFDA),),
}  # fmt: skip
"""Tracked scripts and the code point ranges that hold their letters.

Used only to name the script of a run by its first character: each range covers
every letter RE2's ``\\p{Script}`` class assigns to that script and no letter of
another tracked script or of Latin (the gaps inside may hold punctuation, which
never starts a run). tests/test_signals.py checks this against every code point."""

TRACKED: tuple[str, ...] = tuple(SCRIPT_BLOCKS)
"""Scripts whose letters can be foreign to an answer (all but Latin)."""

_ALL_SCRIPTS = (LATIN, *TRACKED)


def script_bit(name: str) -> int:
    """The bit standing for a script in the masks the SQL computes.

    Examples
    --------
    >>> script_bit("Latin"), script_bit("Arabic")
    (1, 2)
    """
    return 1 << _ALL_SCRIPTS.index(name)


def _mask(*names: str) -> int:
    out = 0
    for name in names:
        out |= script_bit(name)
    return out


_JAPANESE = ("Han", "Hiragana", "Katakana")
_KOREAN = ("Hangul", "Han")

LANGUAGE_SCRIPTS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        [
            "af",
            "az",
            "bs",
            "ca",
            "cs",
            "cy",
            "da",
            "de",
            "en",
            "eo",
            "es",
            "et",
            "eu",
            "fi",
            "fil",
            "fr",
            "ga",
            "gl",
            "ha",
            "haw",
            "hr",
            "hu",
            "id",
            "ig",
            "is",
            "it",
            "la",
            "lb",
            "lt",
            "lv",
            "mg",
            "mi",
            "ms",
            "mt",
            "nb",
            "nl",
            "nn",
            "no",
            "om",
            "pl",
            "pt",
            "ro",
            "rw",
            "sk",
            "sl",
            "sm",
            "so",
            "sq",
            "sv",
            "sw",
            "tl",
            "to",
            "tr",
            "uz",
            "vi",
            "xh",
            "yo",
            "zu",
        ],
        (LATIN,),
    ),
    **dict.fromkeys(["ar", "fa", "ur", "ps", "ug", "ckb", "sd"], ("Arabic",)),
    "hy": ("Armenian",),
    **dict.fromkeys(["bn", "as"], ("Bengali",)),
    **dict.fromkeys(
        ["ru", "uk", "be", "bg", "mk", "sr", "kk", "ky", "tg", "mn", "ba", "tt", "cv"],
        ("Cyrillic",),
    ),
    **dict.fromkeys(["hi", "mr", "ne", "sa", "kok", "mai", "bho"], ("Devanagari",)),
    **dict.fromkeys(["am", "ti"], ("Ethiopic",)),
    "ka": ("Georgian",),
    "el": ("Greek",),
    "gu": ("Gujarati",),
    "pa": ("Gurmukhi",),
    **dict.fromkeys(["zh", "yue", "wuu", "cmn", "hak", "nan", "lzh", "gan"], ("Han",)),
    "ja": _JAPANESE,
    "ko": _KOREAN,
    **dict.fromkeys(["he", "iw", "yi"], ("Hebrew",)),
    "kn": ("Kannada",),
    "km": ("Khmer",),
    "lo": ("Lao",),
    "ml": ("Malayalam",),
    "my": ("Myanmar",),
    "si": ("Sinhala",),
    "ta": ("Tamil",),
    "te": ("Telugu",),
    "th": ("Thai",),
    **dict.fromkeys(["bo", "dz"], ("Tibetan",)),
}
"""Primary language subtag (lower case) -> scripts the language is written in."""

SCRIPT_SUBTAGS: dict[str, tuple[str, ...]] = {
    "latn": (LATIN,),
    "arab": ("Arabic",),
    "armn": ("Armenian",),
    "beng": ("Bengali",),
    "cyrl": ("Cyrillic",),
    "deva": ("Devanagari",),
    "ethi": ("Ethiopic",),
    "geor": ("Georgian",),
    "grek": ("Greek",),
    "gujr": ("Gujarati",),
    "guru": ("Gurmukhi",),
    "hani": ("Han",),
    "hans": ("Han",),
    "hant": ("Han",),
    "hang": ("Hangul",),
    "hebr": ("Hebrew",),
    "hira": ("Hiragana",),
    "kana": ("Katakana",),
    "jpan": _JAPANESE,
    "kore": _KOREAN,
    "knda": ("Kannada",),
    "khmr": ("Khmer",),
    "laoo": ("Lao",),
    "mlym": ("Malayalam",),
    "mymr": ("Myanmar",),
    "sinh": ("Sinhala",),
    "taml": ("Tamil",),
    "telu": ("Telugu",),
    "thai": ("Thai",),
    "tibt": ("Tibetan",),
}
"""ISO 15924 script subtag (``zh-Hant``, ``sr-Latn``) -> scripts; it wins over the language."""

_WRITTEN_TOGETHER: dict[str, tuple[str, ...]] = {
    "Han": _JAPANESE,
    "Hiragana": _JAPANESE,
    "Katakana": _JAPANESE,
    "Hangul": _KOREAN,
}
"""A script found dominant (or holding a large share) brings the scripts it is written
with: Han may be Chinese or Japanese, so with no language to tell, kana is accepted."""


# -- regular expressions (RE2) ----------------------------------------------------------


def _cls(*names: str) -> str:
    return "".join(f"\\p{{{n}}}" for n in names)


_T = f"[{_cls(*TRACKED)}]"
ANY_TRACKED = _T
"""One letter of any tracked script: rows without one are false at once."""

RUNS_TRACKED = "|".join(f"\\p{{{n}}}+" for n in TRACKED)
"""Maximal runs of letters of one tracked script."""

RUNS_ALL = f"\\p{{{LATIN}}}+|{RUNS_TRACKED}"
"""Maximal runs of letters of one script, Latin included."""

CODE = r"```[\s\S]*?(?:```|$)|~~~[\s\S]*?(?:~~~|$)|`[^`\n]+`"
"""Fenced code blocks (closed, or running to the end) and inline code."""

_QUOTES = (
    ('"', '"'),
    ("'", "'"),
    ("“", "”"),
    ("„", "“"),
    ("„", "”"),
    ("‘", "’"),
    ("«", "»"),
    ("»", "«"),
    ("‹", "›"),
    ("「", "」"),
    ("『", "』"),
    ("《", "》"),
    ("〈", "〉"),
    ("【", "】"),
    ("*", "*"),
    ("_", "_"),
)
"""Quote and emphasis pairs: a foreign run between them, with no Latin letter, is cited."""

_BRACKETS = (("(", ")"), ("（", "）"), ("[", "]"))
"""Brackets: a parenthetical that starts with a foreign run gives the original of a name."""


def _esc(ch: str) -> str:
    return "\\" + ch if ch.isascii() and not ch.isalnum() else ch


def _masked_pattern() -> str:
    parts = []
    for o, c in _QUOTES:
        parts.append(f"{_esc(o)}\\s*{_T}[^{_esc(c)}\\n\\p{{{LATIN}}}]*{_esc(c)}")
    for o, c in _BRACKETS:
        parts.append(f"{_esc(o)}\\s*{_T}[^{_esc(c)}\\n]*{_esc(c)}")
    word = f"{_T}[{_cls(*TRACKED)}\\p{{Lm}}\\p{{M}}]*"  # ー and combining marks join a word
    parts.append(f"{word}(?:[ \\t]+{word})*[ \\t]*[(（]")
    return "|".join(parts)


MASKED = _masked_pattern()
"""Cited foreign text (quoted, bracketed, or glossed) to blank out."""


# -- SQL ------------------------------------------------------------------------------

_LANG = "_script_mix_lang"
"""Stage column: mask of the scripts of prompt_language (null: missing or unknown)."""
_CANDIDATE = "_script_mix_candidate"
"""Stage column: the response, only when it may hold a run foreign to its language
(any tracked run when the language is unknown)."""
_MASKED = "_script_mix_masked"
"""Stage column: the candidate with code and cited foreign text blanked out."""
_LEFT = "_script_mix_left"
"""Stage column: the masked text, only when a possibly foreign run is left in it."""
_RUNS = "_script_mix_runs"
"""Stage column: per line of the masked text, its tracked-script runs in order, as
``{b: script bit, n: letters}``."""
_LATIN = "_script_mix_latin"
"""Stage column: per line of the masked text, its number of Latin letters."""
_ALL_RUNS = "_script_mix_all_runs"
"""Stage column: the runs of every line, in one list."""

_TRACKED_MASK = _mask(*TRACKED)
_GREEK = "Greek"


_CLASSIFY_ORDER = ("Han", "Hiragana", "Katakana", "Hangul", "Thai", "Cyrillic", "Arabic", "Greek")
"""Scripts tried first when naming a run (the rest follow in ``TRACKED`` order)."""

_NAMING_ORDER = (*_CLASSIFY_ORDER, *(n for n in TRACKED if n not in _CLASSIFY_ORDER))
"""Every tracked script, in the order tried when naming a run."""

_LATIN_BELOW = 0x370
"""Code points below this (where Greek starts) are named Latin."""


def _script_ranges_sql(cp: str) -> str:
    """SQL: the bit of the script of code point ``cp`` (0 for a line break), range by range.

    The rule, written out: Latin below Greek, then the first script of
    ``_NAMING_ORDER`` whose ``SCRIPT_BLOCKS`` hold it, else Latin.
    The stages use ``_script_of_first_char``, its table form; a test checks the two
    agree on every code point.
    """
    whens = [f"WHEN {cp} = 10 THEN 0", f"WHEN {cp} < {_LATIN_BELOW} THEN {script_bit(LATIN)}"]
    for name in _NAMING_ORDER:
        cond = " OR ".join(f"{cp} BETWEEN {lo} AND {hi}" for lo, hi in SCRIPT_BLOCKS[name])
        whens.append(f"WHEN {cond} THEN {script_bit(name)}")
    return f"(CASE {' '.join(whens)} ELSE {script_bit(LATIN)} END)"


_RADIX_BITS = (8, 4, 0)
"""Levels of the script table: blocks of 256 code points, then 16, then single ones."""


@functools.cache
def _script_tables() -> tuple[int, tuple[list[int], ...]]:
    """The rule of ``_script_ranges_sql`` as a radix table: (last code point, levels).

    Level 0 holds, per block of 256 code points, the script bit when the whole block
    has one, else ``-(k + 1)`` for the k-th mixed block, whose 16 entries (blocks of
    16) are in level 1, and so on down to single code points in level 2. Code points
    past the last range are Latin, and so is the padding of the last block.
    """
    last = max(hi for ranges in SCRIPT_BLOCKS.values() for _, hi in ranges)
    top = 1 << _RADIX_BITS[0]
    bits = [script_bit(LATIN)] * ((last // top + 1) * top)
    for name in reversed(_NAMING_ORDER):  # the first script of the order wins: painted last
        for lo, hi in SCRIPT_BLOCKS[name]:
            bits[lo : hi + 1] = [script_bit(name)] * (hi + 1 - lo)
    bits[:_LATIN_BELOW] = [script_bit(LATIN)] * _LATIN_BELOW
    bits[10] = 0
    levels: list[list[int]] = []
    blocks = [(0, len(bits))]  # (first code point, size) of the blocks to describe
    for shift in _RADIX_BITS:
        level: list[int] = []
        mixed: list[tuple[int, int]] = []
        for start, size in blocks:
            for lo in range(start, start + size, 1 << shift):
                found = set(bits[lo : lo + (1 << shift)])
                if len(found) == 1:
                    level.append(found.pop())
                else:
                    level.append(-(len(mixed) + 1))
                    mixed.append((lo, 1 << shift))
        levels.append(level)
        blocks = mixed
    return last, tuple(levels)


def _script_of_first_char(run: str) -> str:
    """SQL: the bit of the script of a run (0 for a line break), by its first code point.

    The rule of ``_script_ranges_sql``, looked up in ``_script_tables`` (up to three
    list lookups) rather than tested range by range. It runs inside the lambda of
    the runs stage, where DuckDB sets the expression up again for every vector: on
    the 1M-row signals bench the 77 range tests cost 0.44 s (one thread) that way,
    mostly setting up, and the lookups a third of that.
    """
    cp = f"unicode({run})"
    last, levels = _script_tables()
    lists = ["[" + ", ".join(map(str, level)) + "]" for level in levels]
    # The entry of level 0, then, while it points to a mixed block, that of the next.
    entries = [f"{lists[0]}[({cp} >> {_RADIX_BITS[0]}) + 1]"]
    for depth in range(1, len(levels)):
        span = 1 << (_RADIX_BITS[depth - 1] - _RADIX_BITS[depth])
        block = f"(-1 - {entries[-1]})"  # k, from the pointer -(k + 1)
        within = f"(({cp} >> {_RADIX_BITS[depth]}) & {span - 1})"
        entries.append(f"{lists[depth]}[{block} * {span} + {within} + 1]")
    whens = " ".join(f"WHEN {entry} >= 0 THEN {entry}" for entry in entries[:-1])
    return (
        f"(CASE WHEN {cp} < 0 OR {cp} > {last} THEN {script_bit(LATIN)} "
        f"{whens} ELSE {entries[-1]} END)"
    )


def _map_literal(table: dict[str, tuple[str, ...]]) -> str:
    entries = ", ".join(f"{sql_literal(code)}: {_mask(*names)}" for code, names in table.items())
    return f"MAP {{{entries}}}"


def language_mask_sql(lang: str) -> str:
    """SQL: the mask of scripts of a BCP-47 tag; null when missing or not recognised.

    A script subtag (``zh-Hant``, ``sr-Latn``) wins over the language subtag.

    Examples
    --------
    >>> import duckdb
    >>> con = duckdb.connect()
    >>> tags = ["ja-JP", "zh_Hant_TW", "sr-Latn", "TH", "xx", None]
    >>> sql = f"SELECT {language_mask_sql('$t')}"
    >>> masks = [con.execute(sql, {"t": t}).fetchall()[0][0] for t in tags]
    >>> expected = [_mask(*_JAPANESE), script_bit("Han"), script_bit("Latin"), script_bit("Thai")]
    >>> masks == [*expected, None, None]
    True
    """
    tag = f"replace(lower(trim({lang})), '_', '-')"
    languages = _map_literal(LANGUAGE_SCRIPTS)
    # A bare primary subtag as written in the table ("en", most rows) is looked up as it
    # is; anything else is normalised and split (the same answer for a bare subtag).
    return (
        f"coalesce({languages}[{lang}], "
        f"{_map_literal(SCRIPT_SUBTAGS)}[split_part({tag}, '-', 2)], "
        f"{languages}[split_part({tag}, '-', 1)])"
    )


def _foreign_pattern(expected: int, greek_min_run: int) -> str:
    """RE2: a letter of a tracked script outside ``expected`` (Greek: a run long enough).

    A prefilter: it must find every run the verdict could fire on, so Greek uses the
    run length of the parameters the SQL is built with.
    """
    others = [n for n in TRACKED if n != _GREEK and not expected & script_bit(n)]
    pattern = f"[{_cls(*others)}]"
    if not expected & script_bit(_GREEK):
        pattern += f"|\\p{{{_GREEK}}}{{{max(1, greek_min_run)},}}"
    return pattern


def foreign_letter_pattern(scripts: tuple[str, ...], greek_min_run: int) -> str:
    r"""The regex of the first scan for an answer written in ``scripts`` (none: unknown).

    A letter of a tracked script outside ``scripts``, or a run of ``greek_min_run``
    Greek letters. RE2 syntax, which Polars' regex reads alike (bench/signals.py
    times the same scan in both engines).

    Examples
    --------
    >>> foreign_letter_pattern(("Thai",), 4).startswith(r"[\p{Arabic}")
    True
    >>> foreign_letter_pattern(("Latin",), 4).endswith(r"|\p{Greek}{4,}")
    True
    """
    return _foreign_pattern(_mask(*scripts), greek_min_run)


PREFILTERED: tuple[tuple[str, ...], ...] = (
    (LATIN,),
    ("Han",),
    _JAPANESE,
    ("Cyrillic",),
    _KOREAN,
    ("Thai",),
    ("Arabic",),
)
"""Script sets with a regex of their own in the first scan, most common first. Rows of
any other language use the pattern for an unknown language (a superset: correct, but
they all go on to the masking step)."""


def _may_hold_foreign_run(text: str, lang_mask: str, greek_min_run: int) -> str:
    """SQL: whether ``text`` holds a tracked letter foreign to the language (one regex scan)."""
    whens = [
        f"WHEN {lang_mask} = {_mask(*names)} THEN "
        f"regexp_matches({text}, {sql_literal(_foreign_pattern(_mask(*names), greek_min_run))})"
        for names in PREFILTERED
    ]
    unknown = sql_literal(_foreign_pattern(0, greek_min_run))
    return f"(CASE {' '.join(whens)} ELSE regexp_matches({text}, {unknown}) END)"


def _written_together(bit: str) -> str:
    """SQL: the mask of scripts accepted along with the script ``bit``."""
    whens = " ".join(
        f"WHEN {script_bit(name)} THEN {_mask(*group)}" for name, group in _WRITTEN_TOGETHER.items()
    )
    return f"(CASE {bit} {whens} ELSE {bit} END)"


def script_mix_stages(text: str, lang: str, params: SignalParams) -> Stages:
    """The intermediate columns, each computed once per row, as successive projections.

    Each stage hands the next a null for rows that need no more work: most rows cost
    one regex scan (for a letter foreign to their language) and stop there.
    """
    greek_min_run = params.script_mix_greek_min_run
    lang_stage = language_mask_sql(lang)
    candidate_stage = (
        f"CASE WHEN {_may_hold_foreign_run(text, _LANG, greek_min_run)} THEN {text} END"
    )
    without_code = (
        f"CASE WHEN contains({_CANDIDATE}, '`') OR contains({_CANDIDATE}, '~~~') "
        f"THEN regexp_replace({_CANDIDATE}, {sql_literal(CODE)}, ' ', 'g') ELSE {_CANDIDATE} END"
    )
    masked_stage = f"regexp_replace({without_code}, {sql_literal(MASKED)}, ' ', 'g')"
    left_stage = (
        f"CASE WHEN {_may_hold_foreign_run(_MASKED, _LANG, greek_min_run)} THEN {_MASKED} END"
    )
    # Runs and line breaks in order; joined with spaces and split on the line breaks,
    # they give each line's runs without a regex per line.
    tokens = f"regexp_extract_all({_LEFT}, {sql_literal(chr(10) + '|' + RUNS_TRACKED)})"
    runs_stage = (
        f"[[{{'b': {_script_of_first_char('_sm_x')}, 'n': length(_sm_x)}} "
        f"for _sm_x in string_split(_sm_line, ' ') if _sm_x <> ''] "
        f"for _sm_line in string_split(array_to_string({tokens}, ' '), chr(10))]"
    )
    latin_stage = (
        f"[length(_sm_y) for _sm_y in "
        f"string_split(regexp_replace({_LEFT}, '[^\\p{{{LATIN}}}\\n]+', '', 'g'), chr(10))]"
    )
    return (
        ((_LANG, lang_stage),),
        ((_CANDIDATE, candidate_stage),),
        ((_MASKED, masked_stage),),
        ((_LEFT, left_stage),),
        ((_RUNS, runs_stage), (_LATIN, latin_stage)),
        ((_ALL_RUNS, f"flatten({_RUNS})"),),
    )


def script_mix_verdict() -> str:
    """SQL over the stage columns: the signal of a row with a possibly foreign run left.

    Parameters used: ``$script_mix_min_run``, ``$script_mix_greek_min_run``,
    ``$script_mix_max_share``.
    """
    greek = script_bit(_GREEK)
    latin = script_bit(LATIN)
    every_run = _ALL_RUNS

    def long_enough(run: str) -> str:
        return (
            f"{run}.n >= CASE WHEN {run}.b = {greek} THEN $script_mix_greek_min_run "
            "ELSE $script_mix_min_run END"
        )

    def letters(mask: str, line: str | None = None) -> str:
        # letters of the scripts in mask, in the whole text or in one line
        runs = every_run if line is None else f"{_RUNS}[{line}]"
        latin_count = f"list_sum({_LATIN})" if line is None else f"{_LATIN}[{line}]"
        tracked = f"coalesce(list_sum([_sm_s.n for _sm_s in {runs} if (_sm_s.b & {mask}) <> 0]), 0)"
        return f"({tracked} + CASE WHEN ({mask} & {latin}) <> 0 THEN {latin_count} ELSE 0 END)"

    def share_above(mask: str, line: str | None = None) -> str:
        return f"{letters(mask, line)} > $script_mix_max_share * {letters('-1', line)}"

    scripts = f"list_distinct([_sm_s.b for _sm_s in {every_run}] || [{latin}])"
    dominant = (
        f"list_reverse_sort([{{'n': {letters('_sm_p')}, 'b': _sm_p}} for _sm_p in {scripts}])[1].b"
    )
    # Scripts of the whole answer: its language (or, unknown, its dominant script),
    # and a script whose group, beyond those, holds more than max_share of its letters.
    # (dominant bound once: _written_together repeats its argument, and the sort of
    # per-script sums is the costliest part of the verdict)
    base = (
        f"coalesce({_LANG}, list_transform([{dominant}], lambda _sm_d: "
        f"{_written_together('_sm_d')})[1])"
    )
    beyond = f"({_written_together('_sm_p')} & ~_sm_base)"
    expected = (
        f"list_transform([{base}], lambda _sm_base: _sm_base | coalesce(list_bit_or("
        f"[{_written_together('_sm_p')} for _sm_p in {scripts} "
        f"if {beyond} <> 0 AND {share_above(beyond)}]), 0))[1]"
    )
    # Each (line, script) holding a long-enough run of an unexpected script; it fires
    # unless that script's group, beyond the expected scripts, holds more than
    # max_share of the line's letters.
    foreign = (
        f"list_distinct(flatten([[{{'line': _sm_i, 'b': _sm_r.b}} for _sm_r in _sm_rs "
        f"if (_sm_r.b & ~_sm_e) <> 0 AND {long_enough('_sm_r')}] for _sm_rs, _sm_i in {_RUNS}]))"
    )
    line_beyond = f"({_written_together('_sm_c.b')} & ~_sm_e)"
    fires = f"len([1 for _sm_c in {foreign} if NOT ({share_above(line_beyond, '_sm_c.line')})]) > 0"
    found = (
        f"coalesce(list_bit_or([_sm_r.b for _sm_r in {every_run} if {long_enough('_sm_r')}]), 0)"
    )
    return (
        f"CASE WHEN ({found} & ~coalesce({_LANG}, 0)) = 0 THEN false "
        f"ELSE list_transform([{expected}], lambda _sm_e: {fires})[1] END"
    )


def script_mix_sql(text: str) -> str:
    """The script_mix expression, over the stage columns of ``script_mix_stages``.

    Examples
    --------
    >>> import duckdb
    >>> from forensics.signals import SignalParams
    >>> sql = "SELECT * FROM (VALUES ($t, $l)) v(t, l)"
    >>> for stage in script_mix_stages("t", "l", SignalParams()):
    ...     cols = ", ".join(f"{expr} AS {name}" for name, expr in stage)
    ...     sql = f"SELECT *, {cols} FROM ({sql})"
    >>> sql = f"SELECT {script_mix_sql('t')} FROM ({sql})"
    >>> def run(t, l):
    ...     params = {**SignalParams().as_parameters(sql), "t": t, "l": l}
    ...     return duckdb.connect().execute(sql, params).fetchall()[0][0]
    >>> run("The result is ready ข้อมูล now.", "en")
    True
    >>> run("The Thai word “สวัสดี” means hello.", "en")
    False
    >>> run("กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย", None)
    False
    >>> run("Let α = 0.05 🎉", "en"), run("", "en"), run(None, "en")
    (False, False, None)
    """
    return (
        f"CASE WHEN {text} IS NULL THEN NULL WHEN {_LEFT} IS NULL THEN false "
        f"ELSE {script_mix_verdict()} END"
    )


def _stages(params: SignalParams, present: Set[str]) -> Stages:
    return script_mix_stages("response_text", column_or_null("prompt_language", present), params)


def _sql(params: SignalParams, present: Set[str]) -> str:
    return script_mix_sql("response_text")


DETECTOR = Detector(
    name="script_mix",
    description="Response contains a run of characters from a script foreign to its language",
    requires=("response_text",),
    sql=_sql,
    stages=_stages,
)
