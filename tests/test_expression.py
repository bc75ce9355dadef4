"""Signal expressions: the grammar, its errors, the compiled SQL on a tiny table, and fuzzing."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forensics.errors import ConfigError, ExpressionError
from forensics.expression import parse_expression, render
from forensics.schema import UserSignal
from forensics.signals import detect, readable_columns
from forensics.signals.user import compile_signal

TINY = pl.DataFrame(
    {
        "latency_ms": [100, 40_000, None, 2_500],
        "finish_reason": ["stop", "length", "stop", None],
        "output_tokens": [50, 1024, 0, 300],
        "max_tokens": [1024, 1024, 512, None],
        "flag": [True, False, None, True],
        "region_code": ["eu-1", "us-2", "EU-3", "ap-1"],
        "numbers_as_text": ["1", "20", None, "3.5"],
        "http.status_code": [200, 200, 500, 200],
        "response_text": ["Hello there", "Bonjour", "", None],
    },
    schema_overrides={"latency_ms": pl.Int64, "max_tokens": pl.Int64},
)
"""Four requests, counted by hand in EXPRESSIONS."""

EXPRESSIONS = [
    # (expression, value per row of TINY)
    ("latency_ms > 30000", [False, True, None, False]),
    ("latency_ms >= 2500 and latency_ms < 40000", [False, False, None, True]),
    ("finish_reason == 'length' or output_tokens >= max_tokens", [False, True, False, None]),
    ('FINISH_REASON == "stop"', [True, False, True, None]),
    ("finish_reason != 'stop'", [False, True, False, None]),
    ("not flag", [False, True, None, False]),
    ("flag", [True, False, None, True]),
    ("flag == true", [True, False, None, True]),
    ("finish_reason is null", [False, False, False, True]),
    ("max_tokens is not null and latency_ms is null", [False, False, True, False]),
    ("region_code in ['eu-1', 'ap-1']", [True, False, False, True]),
    ("lower(region_code) not in ['eu-3']", [True, True, False, True]),
    ("output_tokens between 50 and 300", [True, False, False, True]),
    ("output_tokens not between 1 and 1000", [False, True, True, False]),
    ("output_tokens * 2 + 1 > max_tokens", [False, True, False, None]),
    ("output_tokens / max_tokens >= 0.5", [False, True, False, None]),
    ("output_tokens % 2 == 0", [True, True, True, True]),
    ("-latency_ms < -1000", [False, True, None, True]),
    ("len(response_text) > 5", [True, True, False, None]),
    ("len(response_text) == 0", [False, False, True, None]),
    ("contains(lower(response_text), 'hello')", [True, False, False, None]),
    ("contains(region_code, 'u')", [True, True, False, False]),
    ("numbers_as_text > 2", [False, True, None, True]),  # text holding numbers
    ("`http.status_code` == 500", [False, False, True, False]),
    ("http.status_code != 200", [False, False, True, False]),
    ("latency_ms > 1e3 or (flag and not finish_reason == 'stop')", [False, True, None, True]),
    ("no_such_column_anywhere > 1", [None, None, None, None]),  # not in the data yet
    ("true", [True, True, True, True]),
    ("null", [None, None, None, None]),
    ("max_tokens > prompt_tokens", [None, None, None, None]),  # canonical, absent: null
]


@pytest.mark.parametrize(("expr", "expected"), EXPRESSIONS, ids=[e for e, _ in EXPRESSIONS])
def test_expression_values_on_a_tiny_table(expr, expected):
    out = detect(TINY, user_signals=[UserSignal("sig", expr=expr)])
    assert out["sig"].to_list() == expected


@pytest.mark.parametrize(
    ("column", "op", "value", "expected"),
    [
        ("latency_ms", ">", 30000, [False, True, None, False]),
        ("latency_ms", "==", 100, [True, False, None, False]),
        ("latency_ms", "!=", 100, [False, True, None, True]),
        ("flag", None, None, [True, False, None, True]),
        ("output_tokens", None, None, [True, True, False, True]),  # a number as true/false
        ("numbers_as_text", "<=", 3.5, [True, False, None, True]),
    ],
)
def test_the_older_column_op_value_form_goes_through_the_same_path(column, op, value, expected):
    signal = UserSignal("sig", column, op, value)
    out = detect(TINY, user_signals=[signal])
    assert out["sig"].to_list() == expected
    same = UserSignal("sig", expr=signal.expression)
    assert detect(TINY, user_signals=[same])["sig"].to_list() == expected


def _columns():
    con = duckdb.connect()
    con.register("tiny", TINY)
    types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE tiny)").fetchall())
    return readable_columns(types)


def _error(expr: str) -> str:
    with pytest.raises(ExpressionError) as caught:
        compile_signal(UserSignal("sig", expr=expr), _columns(), where="m.toml")
    return str(caught.value)


@pytest.mark.parametrize(
    ("expr", "position", "message"),
    [
        ("latency_ms >", 13, "expected a value"),
        ("latency_ms = 3", 12, "use == to compare"),
        ("latency_ms > 3 &&", 16, "write and"),
        ("(latency_ms > 3", 16, "expected ) to close the ( at position 1, found the end"),
        ("latency_ms > 3)", 15, "expected an operator"),
        ("finish_reason == null", 18, "write `x is null`"),
        ("1 < latency_ms < 3", 16, "comparisons do not chain"),
        ("latency_ms is 3", 15, "expected null after `is`"),
        ("region_code in ('a')", 16, "expected [ to open the list"),
        (
            "region_code in ['a', 1]",
            22,
            "must all be numbers or all text; 1 is a number after text",
        ),
        ("region_code in [latency_ms]", 17, "expected a value of the list"),
        ("output_tokens between 1", 24, "expected and between the two ends"),
        ("finish_reason == 'length", 18, "never closed"),
        (
            "sqrt(latency_ms) > 1",
            1,
            "sqrt() is not a function; functions: len(), lower(), contains()",
        ),
        ("len(region_code, 2) > 1", 1, "len() takes 1 argument, 2 given"),
        ("latncy_ms > 30000", 1, "latncy_ms is not a column; close: latency_ms"),
        ("finish_reasn == 'length'", 1, "close: finish_reason"),
        (
            "latency_ms > 'fast'",
            14,
            "> compares column latency_ms (a number) with 'fast' (text): the right side must be a number too",
        ),
        ("'fast' < latency_ms", 1, "the left side must be a number too"),
        ("flag == 'yes'", 9, "== compares column flag (true/false) with 'yes' (text)"),
        ("len(response_text) == 'x'", 23, "the right side must be a number too"),
        (
            "len(latency_ms) > 1",
            5,
            "what len() measures must be text, but column latency_ms holds a number",
        ),
        ("latency_ms + 1", 1, "the signal must be true/false, but latency_ms + 1 is a number"),
        ("contains(region_code, 3)", 23, "what contains() looks for must be text"),
        ("flag > true", 6, "true/false values are compared with == or != only"),
        ("not len(region_code)", 5, "what not negates must be true/false"),
        ("latency_ms > 1 and 'x'", 20, "the right side of and must be true/false"),
        ("degraded", 1, "degraded is a signal, and a signal reads the data's columns only"),
        ("2fast > 1", 1, "a name cannot start with a digit"),
        ("1e400 > latency_ms", 1, "1e400 is not a finite number"),
        ("", 1, "the expression is empty"),
        ("(" * 60 + "flag" + ")" * 60, 49, "nested more than 48 deep"),
    ],
)
def test_errors_name_the_signal_the_position_and_what_was_expected(expr, position, message):
    error = _error(expr)
    assert error.startswith(("m.toml: ", "signal: "))  # compiled, or refused when declared
    assert f'[signals.sig] expr "{expr[:117]}' in error
    assert f": position {position}: " in error
    assert message in error
    assert "\n" not in error


def test_a_mapping_file_expression_error_names_the_file(tmp_path):
    from forensics.schema import Mapping

    path = tmp_path / "m.toml"
    path.write_text("[signals.hit_limit]\nexpr = \"finish_reason == 'length' or\"\n")
    with pytest.raises(
        ExpressionError,
        match=rf"^{path}: \[signals\.hit_limit\] expr .*position 29: expected a value",
    ):
        Mapping.load(path)
    path.write_text('[signals.hit_limit]\nexpr = "x > 1"\ncolumn = "x"\n')
    with pytest.raises(ConfigError, match=r"give either expr or column"):
        Mapping.load(path)
    path.write_text('[signals.a]\nexpr = "b > 1"\n[signals.b]\nexpr = "c > 1"\n')
    with pytest.raises(
        ExpressionError, match=r"position 1: b is the name of signal \[signals\.b\]"
    ):
        Mapping.load(path)


def test_a_file_without_the_optional_text_column_a_signal_reads_gets_a_null_signal(tmp_path):
    """Found by fuzzing in CI: a signal reading an absent optional text column
    (``surface``) as true/false or as a number crashed the per-file value check."""
    import forensics

    data = tmp_path / "in.jsonl"
    data.write_text(
        '{"request_id": "r0", "ts": "2025-08-01T12:00:00Z", "model": "m", '
        '"platform": "gpu", "routing_pool": "p"}\n'
    )
    mapping = tmp_path / "m.toml"
    mapping.write_text(
        '[signals.flagged]\ncolumn = "surface"\n[signals.big]\nexpr = "surface > 3"\n'
    )
    with forensics.open(tmp_path / "x.duckdb") as wb:
        (summary,) = wb.ingest(data, mapping=mapping).files
        assert summary.status == "ingested", summary.message
        assert wb.sql("SELECT flagged, big FROM requests").rows() == [(None, None)]


@pytest.mark.parametrize(
    "expr",
    [
        "finish_reason == 'length' or output_tokens >= max_tokens",
        "not (a and b) or c",
        "a - (b - c) > 0",
        "x not in [1, -2.5, 3]",
        "contains(lower(t), 'it''s')".replace("''", "\\'"),
        "`my col` between 1 and 2 * 3",
    ],
)
def test_render_reads_back_to_the_same_meaning(expr):
    once = render(parse_expression(expr))
    assert render(parse_expression(once)) == once


# -- fuzzing: compile or the documented error, never anything else ------------------------

_TOKENS = [
    "latency_ms", "finish_reason", "output_tokens", "max_tokens", "flag", "region_code",
    "response_text", "numbers_as_text", "`http.status_code`", "latncy_ms", "degraded", "zzz",
    "prompt_tokens", "and", "or", "not", "in", "is", "null", "between", "true", "false",
    "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "(", ")", "[", "]", ",",
    "len", "lower", "contains", "0", "1", "2.5", "1e308", "-3", "'stop'", "'length'", '"x"',
    "'", "=", "&", "`", "1e999",
]  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    expr=st.lists(st.sampled_from(_TOKENS), min_size=1, max_size=14).map(" ".join)
    | st.text(max_size=40)
)
def test_any_expression_compiles_and_runs_or_raises_the_documented_error(expr):
    columns = _columns()
    try:
        compiled = compile_signal(UserSignal("sig", expr=expr), columns, where="m.toml")
    except ExpressionError as exc:
        error = exc
    else:
        error = None
    if error is not None:
        assert str(error).startswith(("m.toml: [signals.sig] expr ", "signal: [signals.sig] expr "))
        assert 1 <= error.position <= len(expr) + 1
        return
    con = duckdb.connect()
    con.register("tiny", TINY)
    values = con.execute(f"SELECT {compiled.sql} FROM tiny", compiled.params).fetchall()
    assert len(values) == TINY.height
    assert all(v[0] in (True, False, None) for v in values)
    for value in compiled.params.values():  # no value of the expression reaches the SQL text
        if isinstance(value, str) and len(value) > 2:
            assert value not in compiled.sql
