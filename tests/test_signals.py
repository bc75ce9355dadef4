"""Signal detectors: input -> expected tables, corpus accuracy, null semantics, ingest, privacy."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pytest

import forensics
from forensics.signals import (
    DETECTORS,
    SignalParams,
    detect,
    register_functions,
    repetition,
    signals_relation,
    wrong_language,
)
from forensics.signals import code_syntax_error as cse
from forensics.signals import script_mix as sm
from tests.conftest import SALT, request_row

CORPUS = Path(__file__).resolve().parent / "signal_corpus"
TEXT_SIGNALS = ("script_mix", "code_syntax_error")
CORPUS_SIGNALS = (*TEXT_SIGNALS, "repetition", "empty_response", "truncated", "wrong_language")
"""Signals the labelled corpus measures (each on the cases labelled for it)."""
CORPUS_COLUMNS = {
    "response_text": pl.String,
    "prompt_language": pl.String,
    "prompt_text": pl.String,
    "finish_reason": pl.String,
    "output_tokens": pl.Int64,
    "max_tokens": pl.Int64,
}
TARGETS = {
    "script_mix": (0.99, 0.97),
    "code_syntax_error": (1.0, 1.0),
    "repetition": (0.99, 0.97),
    "empty_response": (0.99, 0.97),
    "truncated": (1.0, 1.0),
    "wrong_language": (0.98, 0.95),
}
"""Precision and recall each signal must reach on the whole corpus (the issues' targets;
truncated and code_syntax_error are exact rules)."""


def _frame(texts, langs=None) -> pl.DataFrame:
    data = {"response_text": pl.Series(texts, dtype=pl.String)}
    if langs is not None:
        data["prompt_language"] = pl.Series(langs, dtype=pl.String)
    return pl.DataFrame(data)


def _script_mix(text: str | None, lang: str | None = "en", **params) -> bool | None:
    return detect(_frame([text], [lang]), params=SignalParams(**params))["script_mix"][0]


def _code(text: str | None, **params) -> bool | None:
    return detect(_frame([text]), params=SignalParams(**params))["code_syntax_error"][0]


# -- script_mix: input -> expected ------------------------------------------------------

SCRIPT_MIX_CASES = [
    # (text, prompt_language, expected)
    ("A plain English answer.", "en", False),
    ("A plain English answer with a Thai run ข้อมูล inside.", "en", True),
    ("ก starts the answer, then English follows for a while.", "en", True),
    ("English answer ending in Han 的", "en", True),
    ("Glued to a wo中rd in the middle.", "en", True),
    ("The Thai word “สวัสดี” means hello.", "en", False),
    ("The word «спасибо» means thank you.", "en", False),
    ("Tokyo (東京) is the capital of Japan.", "en", False),
    ("The kanji *山* means mountain.", "en", False),
    ("Cat is 猫 (neko) in Japanese.", "en", False),
    ("Coffee is コーヒー (kōhī) in Japanese.", "en", False),
    ("Here it is:\n\nสวัสดีครับ ยินดีที่ได้รู้จัก\n\nThat is polite.", "en", False),
    ("สวัสดีครับ ยินดีที่ได้รู้จักครับ", "en", False),  # translation: the whole answer
    ("กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย", "th", False),
    ("กรุงเทพมหานครเป็นเมืองหลวง的ของประเทศไทย", "th", True),
    ("北京是中国的首都，ข้อมูล也是文化中心。", "zh-Hans", True),
    ("東京は日本の首都です。人口は約1400万人です。", "ja", False),
    ("東京は日本の首都です。데이터人口は約1400万人です。", "ja", True),
    ("서울은 대한민국(大韓民國)의 수도입니다.", "ko", False),
    ("Москва — столица России 首都 и крупнейший город.", "ru", True),
    ("Москва — столица России и крупнейший город.", None, False),
    ("Москва — столица России 首都 и крупнейший город.", None, True),
    ("Let α = 0.05 and β = 0.2, so 1 − β = 0.8.", "en", False),
    ("Great job! 🎉🎉 Keep going 💪 — café, naïve, Zürich, ∑ xᵢ ≤ √n", "en", False),
    ("The word λόγος means reason.", "en", True),  # a Greek word, unquoted
    ("Use `print('你好')` to greet.", "en", False),
    ("```python\ns = 'สวัสดี'\n```\nThat prints a greeting.", "en", False),
    ("Apple's iPhone has a good camera.", "xx-unknown", False),
    ("Apple's iPhone ข้อมูล has a good camera.", "xx-unknown", True),
    ("", "en", False),
    ("   ", "th", False),
    (None, "en", None),
]


@pytest.mark.parametrize(("text", "lang", "expected"), SCRIPT_MIX_CASES)
def test_script_mix(text, lang, expected):
    assert _script_mix(text, lang) is expected


def test_script_mix_thresholds_are_parameters():
    text = "Answer with a run ข้อ of three Thai letters."
    assert _script_mix(text, script_mix_min_run=3) is True
    assert _script_mix(text, script_mix_min_run=4) is False
    assert _script_mix("Let α = 0.05.", script_mix_greek_min_run=1) is True
    # 11 Thai letters of 26: above a 0.4 share the Thai is on purpose, below 0.5 it is not
    short = "Yes it is ok ประเทศไทยมี now"
    assert _script_mix(short, script_mix_max_share=0.5) is True
    assert _script_mix(short, script_mix_max_share=0.4) is False


def test_script_mix_without_prompt_language_column():
    out = detect(_frame(["Plain answer ข้อ here.", "กรุงเทพมหานคร"]))
    assert out["script_mix"].to_list() == [True, False]


def test_script_mix_sql_is_one_expression_per_stage_and_no_column_leaks():
    out = detect(_frame(["a ข b"], ["en"]))
    assert not [c for c in out.columns if c.startswith("_script_mix")]


def test_script_blocks_name_every_letter_re2_assigns():
    """Every code point RE2 puts in a tracked script (or Latin) is classified as that script."""
    con = duckdb.connect()
    scripts = (sm.LATIN, *sm.TRACKED)
    which = " ".join(
        f"WHEN regexp_matches(c, '\\p{{{s}}}') THEN {sm.script_bit(s)}" for s in scripts
    )
    rows = con.execute(
        f"SELECT i, CASE {which} END AS expected, {sm._script_of_first_char('c')} AS got "
        "FROM (SELECT i, chr(i::INTEGER) AS c FROM range(1, 200000) r(i) "
        "WHERE i < 55296 OR i > 57343) "
        f"WHERE regexp_matches(c, {sm.sql_literal(sm.RUNS_ALL)}) AND expected <> got"
    ).fetchall()
    assert rows == []


def test_script_table_is_the_range_rule_on_every_code_point():
    """The lookup table the runs stage uses gives what the range-by-range rule gives."""
    con = duckdb.connect()
    rows = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE {sm._script_ranges_sql('unicode(c)')} "
        f"IS DISTINCT FROM {sm._script_of_first_char('c')}) "
        "FROM (SELECT chr(i::INTEGER) AS c FROM range(0, 1114112) r(i) "
        "WHERE i < 55296 OR i > 57343 UNION ALL SELECT '')"
    ).fetchall()
    assert rows == [(1114112 - 2048 + 1, 0)]


def test_language_mask_reads_bcp47():
    con = duckdb.connect()
    sql = f"SELECT {sm.language_mask_sql('$t')}"
    japanese = sm.script_bit("Han") | sm.script_bit("Hiragana") | sm.script_bit("Katakana")
    cases = {
        "ja": japanese,
        "ja-JP": japanese,
        "zh_Hant": sm.script_bit("Han"),
        "sr-Latn-RS": sm.script_bit("Latin"),
        "sr": sm.script_bit("Cyrillic"),
        "EN-us": sm.script_bit("Latin"),
        "tlh": None,
        "": None,
    }
    for tag, mask in cases.items():
        assert con.execute(sql, {"t": tag}).fetchall()[0][0] == mask, tag


# -- code_syntax_error: input -> expected -------------------------------------------------

F = "```"
CODE_CASES = [
    # (text, expected)
    ("No code at all.", None),
    (f"{F}python\ndef f(x):\n    return x\n{F}", False),
    (f"{F}python\ndef f(x)\n    return x\n{F}", True),
    (f"{F}py\nprint('hi')\n{F}", False),
    (f"{F}python3\nimport os\n{F}", False),
    ("~~~python\nx = [1, 2\n~~~", True),
    (f'{F}json\n{{"a": 1}}\n{F}', False),
    (f'{F}json\n{{"a": 1,}}\n{F}', True),
    (f'{F}json\n{{"a": NaN}}\n{F}', True),
    (f'{F}json\n{{"a": 1}}\n{{"b": 2}}\n{F}', False),  # JSON lines labelled json
    (f'{F}jsonl\n{{"a": 1}}\n{{"b": 2\n{F}', True),
    (f"{F}\ndef f(x):\n    return x\n{F}", False),  # unlabelled, clearly Python
    (f"{F}\ndef f(x):\n    return x)\n{F}", True),
    (f"{F}\nfunction f(x) {{\n  return x;\n}}\n{F}", None),  # unlabelled, not Python
    (f"{F}bash\nls -la\n{F}", None),
    (f"{F}python\ndef f(x):\n    return", None),  # unclosed fence: truncated, not checked
    (f"1. Step:\n\n   {F}python\n   x = 1\n   if x:\n       print(x)\n   {F}", False),
    (f"{F}python\n>>> x = 1\n>>> x + 1\n2\n{F}", False),
    (f"{F}python\n%timeit sum(range(10))\n!pip install numpy\nimport numpy\n{F}", False),
    (f"{F}python\nx = 1\n{F}\n\n{F}python\ny = (\n{F}", True),
    (f"{F}python\r\ndef f(x):\r\n    return x\r\n{F}\r\n", False),  # CRLF line ends
    (f"{F}python\r\ndef f(x)\r\n    return x\r\n{F}\r\n", True),
    (f"{F}python\nx = 'a\\x00b'\n{F}", False),
    (f"{F}python\nx = 1\x00\n{F}", True),
    (f"{F}python\nx = {'[' * 300}{']' * 300}\n{F}", True),  # CPython refuses the nesting
    ("", None),
    (None, None),
]


@pytest.mark.parametrize(("text", "expected"), CODE_CASES)
def test_code_syntax_error(text, expected):
    assert _code(text) is expected


def test_code_blocks_longer_than_the_limit_are_not_checked():
    broken = f"{F}python\ndef f(:\n{F}"
    assert _code(broken) is True
    assert _code(broken, code_max_chars=5) is None


def test_deep_json_that_exhausts_the_parser_is_not_checked():
    deep = "[" * 100_000 + "]" * 100_000
    assert cse.check_response(f"{F}json\n{deep}\n{F}", max_chars=10**6) is None


def test_the_fenced_region_holds_the_same_blocks_as_the_whole_text():
    # The UDF sees only FENCED_REGION of each response: it must decide the same blocks.
    texts = [t for t, _ in CODE_CASES if t]
    texts += [c["response_text"] for c in _corpus() if c["response_text"]]
    texts += [f"Intro {F} here.\r\n{t}\r\nThen ~~ and `x`.\n" for t in texts]
    texts += [f"{F}py\nx = 1\n{F}\nprose ~~~ between\n  ~~~json\n{{}}\n  ~~~  \ntail", "~~~~"]
    con = duckdb.connect()
    con.register("texts", pl.DataFrame({"t": texts}).with_row_index("i"))
    regions = con.execute(f"SELECT {cse.fenced_region_sql('t')} FROM texts ORDER BY i").fetchall()
    fenced = 0
    for text, (region,) in zip(texts, regions, strict=True):
        whole = [(b.kind, b.body) for b in cse.fenced_blocks(text)]
        assert [(b.kind, b.body) for b in cse.fenced_blocks(region)] == whole, text
        fenced += bool(whole)
    assert fenced > 50


def test_code_udf_sees_only_rows_with_a_fence():
    seen: list[int] = []

    def counting(texts: pa.Array, limits: pa.Array) -> pa.Array:
        seen.append(len(texts))
        return cse._udf(texts, limits)

    con = duckdb.connect()
    register_functions(con)
    con.remove_function(cse.FUNCTION_NAME)
    con.create_function(
        cse.FUNCTION_NAME,
        counting,
        ["VARCHAR", "BIGINT"],
        "BOOLEAN",
        type="arrow",
        null_handling="special",
    )
    texts = [f"{F}python\nx = {i}\n{F}" if i % 100 == 0 else f"plain {i}" for i in range(10_000)]
    con.register("frame", _frame(texts))
    sql = signals_relation("frame", ["response_text"])
    rows = con.execute(
        f"SELECT count(code_syntax_error) FROM ({sql})", SignalParams().as_parameters(sql)
    ).fetchall()
    assert rows == [(100,)]
    assert sum(seen) == 100


# -- the four detectors of issue 19: input -> expected --------------------------------------


def _one(signal: str, text: str | None, **columns) -> bool | None:
    data = {"response_text": pl.Series([text], dtype=pl.String)}
    for name, value in columns.items():
        data[name] = pl.Series([value], dtype=CORPUS_COLUMNS[name])
    return detect(pl.DataFrame(data))[signal][0]


REPETITION_CASES = [
    ("Sure. " + "the " * 100, {}, True),
    ("好的" + "的" * 160, {}, True),
    ("```python\n" + "x = 1\n" * 40, {}, True),  # the block never closes
    ("```python\n" + "x = 1\n" * 40 + "```\nDone.", {}, False),
    ("ha " * 12, {}, False),
    ("-" * 200, {}, False),  # a rule: punctuation needs four times the length
    ("-" * 700, {}, True),
    ("\n".join(f"{i}. step {i}" for i in range(60)), {}, False),
    ("Hello " * 50, {"prompt_text": "Say hello 50 times"}, False),
    ("Hello " * 50, {"prompt_text": "Greet me"}, True),
    ("", {}, False),
    (None, {}, None),
]


@pytest.mark.parametrize(("text", "columns", "expected"), REPETITION_CASES)
def test_repetition(text, columns, expected):
    assert _one("repetition", text, **columns) is expected


EMPTY_CASES = [
    ("", {}, True),
    (" \n\t", {"finish_reason": "stop"}, True),
    ("\u200b\ufeff", {}, True),
    ("", {"finish_reason": "length"}, True),
    ("", {"finish_reason": "tool_calls"}, False),
    ("", {"finish_reason": "Function_Call"}, False),
    (".", {}, False),
    ("👍", {}, False),
    (None, {}, None),
]


@pytest.mark.parametrize(("text", "columns", "expected"), EMPTY_CASES)
def test_empty_response(text, columns, expected):
    assert _one("empty_response", text, **columns) is expected


TRUNCATED_CASES = [
    ({"finish_reason": "length"}, True),
    ({"finish_reason": "MAX_TOKENS"}, True),
    ({"finish_reason": "stop"}, False),
    ({"output_tokens": 512, "max_tokens": 512}, True),
    ({"output_tokens": 511, "max_tokens": 512}, False),
    ({"finish_reason": "stop", "output_tokens": 600, "max_tokens": 512}, True),
    ({"max_tokens": 512}, None),
    ({"output_tokens": 5}, None),
    ({}, None),
]


@pytest.mark.parametrize(("columns", "expected"), TRUNCATED_CASES)
def test_truncated(columns, expected):
    assert _one("truncated", "Some answer.", **columns) is expected


WRONG_LANGUAGE_CASES = [
    (
        "Die Antwort ist einfach: Du musst die Datei speichern und das Programm neu starten.",
        "en",
        {},
        True,
    ),
    (
        "The answer is simple: you need to save the file and restart the program afterwards.",
        "de",
        {},
        True,
    ),
    ("東京は日本の首都です。人口は約千四百万人で、交通もとても便利です。", "de", {}, True),
    (
        "The answer is simple: you need to save the file and restart the program afterwards.",
        "en-GB",
        {},
        False,
    ),
    (
        "The answer is simple: you need to save the file and restart the program afterwards.",
        None,
        {},
        None,
    ),
    (
        "The answer is simple: you need to save the file and restart the program afterwards.",
        "tlh",
        {},
        None,
    ),
    (
        "Die Antwort ist einfach: Du musst die Datei speichern und das Programm neu starten.",
        None,
        {"prompt_text": "How do I make the change take effect? It did not work for me."},
        True,
    ),
    (
        "Die Antwort ist einfach: Du musst die Datei speichern und das Programm neu starten.",
        "en",
        {"prompt_text": "Translate into German: the answer is simple, save the file and restart."},
        False,
    ),
    ("Ja.", "en", {}, False),
    ("```python\nprint('hallo welt, das ist ein langer text')\n```", "en", {}, False),
    ("", "en", {}, False),
    (None, "en", {}, None),
]


@pytest.mark.parametrize(("text", "lang", "columns", "expected"), WRONG_LANGUAGE_CASES)
def test_wrong_language(text, lang, columns, expected):
    assert _one("wrong_language", text, prompt_language=lang, **columns) is expected


def test_new_thresholds_are_parameters():
    loop = "Intro. " + "abc " * 30  # 120 characters of loop
    assert detect(_frame([loop]))["repetition"][0] is False
    assert detect(_frame([loop]), params=SignalParams(repetition_min_chars=100))["repetition"][0]
    short = "Das ist eine kurze deutsche Antwort auf die Frage."
    frame = _frame([short], ["en"])
    assert detect(frame)["wrong_language"][0] is True
    assert (
        detect(frame, params=SignalParams(wrong_language_min_letters=60))["wrong_language"][0]
        is False
    )


@pytest.mark.parametrize("module", [repetition, wrong_language])
def test_python_sees_only_the_rows_the_sql_could_not_settle(module, monkeypatch):
    seen: list[int] = []
    original = module._udf

    def counting(texts, second, third, fourth, fifth):
        seen.append(len(texts))
        return original(texts, second, third, fourth, fifth)

    monkeypatch.setattr(module, "_udf", counting)
    english = [
        f"Answer {i}: the value you asked for is stored in the table and you can read it with a query."
        for i in range(5_000)
    ]
    out = detect(_frame(english, ["en"] * len(english)))
    assert out[module.DETECTOR.name].to_list() == [False] * len(english)
    assert sum(seen) == 0


@pytest.mark.parametrize(
    ("module", "rule", "text"),
    [
        (repetition, "is_degenerate", "Sure: " + "the cat " * 60),
        (wrong_language, "judge", "Das Wetter ist heute schön, also gehen wir lange spazieren. "),
    ],
)
def test_python_judges_each_distinct_input_once(module, rule, text, monkeypatch):
    calls: list[str] = []
    original = getattr(module, rule)

    def counting(answer, *args, **kwargs):
        calls.append(answer)
        return original(answer, *args, **kwargs)

    monkeypatch.setattr(module, rule, counting)
    if hasattr(module, "MEMO"):
        module.MEMO.clear()
    texts = [text, "Und: " + text] * 3_000  # several of DuckDB's vectors
    langs = ["en", "en", "fr"] * 2_000
    out = detect(_frame(texts, langs))[module.DETECTOR.name].to_list()
    distinct = {(t, lang) for t, lang in zip(texts, langs, strict=True)}
    assert out.count(True) > 1_000
    # once per distinct (answer, prompt language) for wrong_language, per answer for repetition
    assert len(calls) == (len(distinct) if module is wrong_language else 2)
    again = detect(_frame(texts[:10], langs[:10]))[module.DETECTOR.name].to_list()
    assert again == out[:10]
    assert len(calls) == (len(distinct) if module is wrong_language else 2)  # remembered


def test_letters_and_script_groups_counted_per_distinct_character_are_a_walk_over_the_text():
    from collections import Counter

    texts = [
        "Tokyo 東京は日本の首都です。カタカナ ひらがな",
        "Привет, мир! Hello — ช่วง 한국어 ½ ² Ⅻ ǅ ʰ",
        "",
        "1234 !? ```x = 1```",
        "".join(chr(cp) for cp in range(0x20, 0x3000, 7)),
    ]
    for text in texts:
        walk: dict[str, int] = {}
        weight = 0
        for ch in text:
            if ch.isalpha():
                script = wrong_language._script_of().get(ord(ch), "Latin")
                group = wrong_language._GROUPS.get(script, script)
                walk[group] = walk.get(group, 0) + 1
                weight += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
        groups = wrong_language._groups(Counter(text))
        assert list(groups.items()) == list(walk.items())  # same counts, same order
        assert wrong_language._letters(text) == weight


# -- the labelled corpus -----------------------------------------------------------------


def _corpus() -> list[dict]:
    cases = []
    for path in sorted(CORPUS.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            cases.append(json.loads(line))
    return cases


def _scores(cases, got, signal):
    tp = sum(1 for c, g in zip(cases, got, strict=True) if c[signal] is True and g is True)
    fp = sum(1 for c, g in zip(cases, got, strict=True) if c[signal] is not True and g is True)
    fn = sum(1 for c, g in zip(cases, got, strict=True) if c[signal] is True and g is not True)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return tp, fp, fn, precision, recall


def _corpus_frame(cases) -> pl.DataFrame:
    return pl.DataFrame(
        {
            name: pl.Series([c.get(name) for c in cases], dtype=dtype)
            for name, dtype in CORPUS_COLUMNS.items()
        }
    )


@pytest.fixture(scope="module")
def corpus_result():
    cases = _corpus()
    out = detect(_corpus_frame(cases))
    return cases, {s: out[s].to_list() for s in CORPUS_SIGNALS}


def _labelled(cases, got, signal, keep=lambda c: True):
    pairs = [(c, g) for c, g in zip(cases, got[signal], strict=True) if signal in c and keep(c)]
    return [c for c, _ in pairs], [g for _, g in pairs]


def test_corpus_is_large_and_covers_the_issue(corpus_result):
    cases, _ = corpus_result
    assert len(cases) >= 200
    assert len({c["id"] for c in cases}) == len(cases)
    categories = {c["category"] for c in cases}
    for needed in (
        "english",
        "thai",
        "chinese",
        "japanese",
        "russian",
        "german",
        "corrupted_english",
        "python_valid",
        "python_broken",
        "json_valid",
        "json_broken",
        "lookalike_quoted",
        "lookalike_code_unicode",
        "lookalike_translation",
    ):
        assert needed in categories, needed
    lengths = {int(n) for c in cases for n in _inserted_lengths(c)}
    assert lengths >= set(range(1, 21)) - {11, 13, 14, 15, 17, 18}


_OLD_CATEGORIES = {
    "english", "thai", "chinese", "japanese", "russian", "german", "korean", "arabic",
    "corrupted_english", "corrupted_native", "python_valid", "python_broken", "json_valid",
    "json_broken", "code_unchecked", "lookalike_quoted", "lookalike_code_unicode",
    "lookalike_translation", "edge",
}  # fmt: skip
"""Categories of the corpus written for script_mix and code_syntax_error (round 1-4)."""


def _inserted_lengths(case):
    import re

    return re.findall(r"\((\d+) chars at offset", case["note"])


def test_corpus_precision_and_recall(corpus_result, capsys):
    cases, got = corpus_result
    lines = []
    failures = []
    for signal in CORPUS_SIGNALS:
        for label, keep in (
            ("all", lambda c: True),
            ("round 1", lambda c: "round" not in c),
            ("held-out", lambda c: "round" in c),
        ):
            sub_cases, sub_got = _labelled(cases, got, signal, keep)
            tp, fp, fn, p, r = _scores(sub_cases, sub_got, signal)
            positives = sum(1 for c in sub_cases if c[signal] is True)
            lines.append(
                f"{signal:18s} {label:9s} n={len(sub_cases):3d} positive={positives:3d} tp={tp:3d} "
                f"fp={fp} fn={fn} precision={p:.3f} recall={r:.3f}"
            )
            if p < TARGETS[signal][0] or r < TARGETS[signal][1]:
                failures.append((signal, label, p, r))
        sub_cases, sub_got = _labelled(cases, got, signal)
        misses = [
            (c["id"], c[signal], g)
            for c, g in zip(sub_cases, sub_got, strict=True)
            if c[signal] != g
        ]
        lines.append(f"{signal:18s} disagreements: {misses}")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    # Gated: every signal's targets on the whole corpus; for the new signals, precision on
    # their held-out rounds too (8-20 positives each, where one miss moves recall by 5-12
    # points: held-out recall is printed, not gated). script_mix's known misses on its
    # held-out rounds are printed as before.
    gated = [
        f
        for f in failures
        if f[1] == "all"
        or (f[1] == "held-out" and f[0] not in TEXT_SIGNALS and f[2] < TARGETS[f[0]][0])
    ]
    assert not gated, gated
    valid_code_flagged = [
        c["id"]
        for c, g in zip(cases, got["code_syntax_error"], strict=True)
        if c.get("code_syntax_error") is False and g is True
    ]
    assert valid_code_flagged == []


def test_every_new_signal_has_80_cases_with_look_alikes_and_a_held_out_part(corpus_result):
    cases, _ = corpus_result
    for signal in ("repetition", "empty_response", "truncated", "wrong_language"):
        own = [c for c in cases if signal in c and c["category"] not in _OLD_CATEGORIES]
        assert len(own) >= 80, (signal, len(own))
        assert any(c["category"].startswith("lookalike") or c[signal] is False for c in own)
        assert sum(1 for c in own if c.get("round") == 5) >= 8, signal


def test_corpus_null_semantics(corpus_result):
    cases, got = corpus_result
    for signal in CORPUS_SIGNALS:
        for c, g in zip(*_labelled(cases, got, signal), strict=True):
            assert (g is None) == (c[signal] is None), (signal, c["id"])


# -- ingest end to end -------------------------------------------------------------------


def _corpus_rows(cases):
    return [
        request_row(
            i,
            request_id=c["id"],
            response_text=c["response_text"],
            prompt_language=c["prompt_language"],
        )
        for i, c in enumerate(cases)
    ]


def test_ingest_computes_the_same_signals_as_detect(wb, write_jsonl, corpus_result):
    cases, _ = corpus_result
    wb.ingest(write_jsonl(_corpus_rows(cases)))
    stored = wb.sql(
        "SELECT request_id, response_text, prompt_language, script_mix, code_syntax_error, "
        "degraded FROM requests ORDER BY request_id"
    )
    assert stored.height == len(cases)
    again = detect(stored.select("response_text", "prompt_language"))
    for signal in TEXT_SIGNALS:
        assert stored[signal].to_list() == again[signal].to_list()
    fired = stored.filter(pl.col("script_mix") | pl.col("code_syntax_error"))
    assert fired.height > 100
    assert fired["degraded"].to_list() == [True] * fired.height
    columns = wb.sql("SELECT * FROM requests LIMIT 0").columns
    assert not [c for c in columns if c.startswith("_script_mix")]


def test_registry_is_the_one_list_of_signals(wb, write_jsonl):
    wb.ingest(write_jsonl([request_row(1, response_text="ok")]))
    defined = wb.sql("SELECT name, kind FROM signal_definitions ORDER BY name").rows()
    assert {n for n, k in defined if k == "detector"} == {d.name for d in DETECTORS}
    columns = set(wb.sql("SELECT * FROM requests LIMIT 0").columns)
    assert {d.name for d in DETECTORS} | {"degraded"} <= columns
    assert set(wb.signals()) >= {d.name for d in DETECTORS}


def test_ingest_parquet_without_prompt_language(wb, write_parquet):
    rows = [
        request_row(1, response_text="Plain answer ข้อ here."),
        request_row(2, response_text="กรุงเทพมหานครเป็นเมืองหลวง"),
        request_row(3, response_text=None),
    ]
    wb.ingest(write_parquet(pl.DataFrame(rows)))
    got = wb.sql("SELECT script_mix FROM requests ORDER BY request_id")["script_mix"].to_list()
    assert got == [True, False, None]


def test_ingest_keeps_a_blank_answer_and_finds_it_empty(wb, write_jsonl):
    rows = [
        request_row(1, response_text="", finish_reason="stop"),
        request_row(2, response_text=" \n ", max_tokens=100, output_tokens=100),
        request_row(3, response_text=None),
        request_row(4, response_text="Fine."),
    ]
    wb.ingest(write_jsonl(rows))
    got = wb.sql(
        "SELECT response_text, empty_response, truncated, degraded FROM requests ORDER BY request_id"
    ).rows()
    assert got == [
        ("", True, False, True),
        ("\n", True, True, True),
        (None, None, None, False),  # the answer was not logged: the other signals decide
        ("Fine.", False, None, False),
    ]


# -- privacy -----------------------------------------------------------------------------

SECRET = "zebra-quokka-9137 ข้อมูลลับ"
BROKEN = "```python\ndef leak(:\n    return 'zebra-quokka-9137'\n```"


def _privacy_rows():
    rows = [
        request_row(
            i,
            user_id=f"alice{i}",
            response_text=f"{SECRET} {i}",
            prompt_language="en",
            prompt_text=f"Please repeat {SECRET} for me {i}",
        )
        for i in range(4)
    ]
    rows.append(request_row(10, user_id="alice10", response_text=BROKEN))
    rows.append(request_row(11, response_text=SECRET, eval_score=7))  # rejected: out of range
    return rows


def _files(db_path: Path) -> list[Path]:
    return [p for p in (db_path, Path(f"{db_path}.wal")) if p.exists()]


def _leaks(db_path: Path) -> list[str]:
    needle = b"zebra-quokka-9137"
    return [p.name for p in _files(db_path) if needle in p.read_bytes()]


def test_privacy_keeps_signals_but_no_text_anywhere_in_the_files(tmp_path, write_jsonl):
    db_path = tmp_path / "private.duckdb"
    bench = forensics.open(db_path)
    bench.ingest(write_jsonl(_privacy_rows()), privacy=True, salt=SALT, errors="collect")
    got = bench.sql(
        "SELECT count(*) FILTER (WHERE script_mix) AS sm, "
        "count(*) FILTER (WHERE code_syntax_error) AS cse, "
        "count(response_text) AS texts, count(prompt_text) AS prompts FROM requests"
    ).rows()
    assert got == [(4, 1, 0, 0)]
    assert bench.sql("SELECT count(*) AS n FROM rejected_rows")["n"][0] == 1
    assert _leaks(db_path) == []  # database file and WAL, while open
    bench.close()
    assert _files(db_path)
    assert _leaks(db_path) == []  # after the checkpoint at close


def test_the_privacy_file_scan_would_see_text(tmp_path, write_jsonl):
    """The same scan finds the text when privacy is off, in the WAL and after checkpoint."""
    db_path = tmp_path / "open.duckdb"
    bench = forensics.open(db_path)
    bench.ingest(write_jsonl(_privacy_rows()), errors="collect")
    assert _leaks(db_path)
    bench.close()
    assert _leaks(db_path) == [db_path.name]
