import pytest

from forensics.errors import ConfigError
from forensics.schema import CANONICAL_COLUMNS, REQUIRED_COLUMNS, Mapping, UserSignal, column


def test_required_columns_are_the_contract():
    # model, platform and routing_pool are dimensions when present: a span export has none
    assert REQUIRED_COLUMNS == ("request_id", "ts")


def test_every_canonical_column_has_a_type_and_description():
    for c in CANONICAL_COLUMNS:
        assert c.dtype, c.name
        assert c.description, c.name
    assert column("max_token_rank").minimum == 1
    assert column("user_feedback").allowed == (-1, 0, 1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"columns": {"not_a_column": "x"}}, "not a canonical column"),
        ({"columns": {"ts": 3}}, "must map canonical names to strings"),
        ({"timestamps": {"epoch_unit": "minutes"}}, "epoch_unit 'minutes'"),
        ({"colums": {}}, "unknown section"),
        ({"columns": {"ts": "t", "request_id": "t"}}, "mapped to more than one"),
        ({"signals": {"slow": {"op": ">"}}}, r"needs column"),
        ({"signals": {"slow": {"column": "x", "op": ">"}}}, "both op and value"),
        ({"signals": {"slow": {"column": "x", "op": "~", "value": 1}}}, "is not one of"),
        (
            {"signals": {"slow": {"column": "x", "op": ">", "value": float("inf")}}},
            r"m\.toml: \[signals\.slow\] value = inf is not a finite number",
        ),
        (
            {"signals": {"slow": {"column": "x", "op": ">", "value": float("nan")}}},
            r"\[signals\.slow\] value = nan is not a finite number",
        ),
        (
            {"signals": {"slow": {"column": "x", "op": ">", "value": "abc"}}},
            r"\[signals\.slow\] value = 'abc' is not a finite number",
        ),
        (
            {"signals": {"slow": {"column": "x", "op": ">", "value": True}}},
            r"\[signals\.slow\] value = true is not a finite number",
        ),
        (
            {"signals": {"Latency": {"column": "latency", "op": ">", "value": 1}}},
            r"\[signals\.Latency\] the signal is named like its column 'latency'",
        ),
        ({"signals": {"": {"column": "x"}}}, r"\[signals\.\] the signal needs a name"),
        ({"signals": {"_slow": {"column": "x"}}}, r"\[signals\._slow\] names starting with '_'"),
        ({"signals": {"slow": {"column": ""}}}, r"\[signals\.slow\] column must name a column"),
        ({"signals": {"slow": {"column": 3}}}, r"\[signals\.slow\] column must name a column"),
        (
            {"signals": {"slow": {"column": "x"}, "SLOW": {"column": "y"}}},
            r"\[signals\.slow\] and \[signals\.SLOW\] differ only in case",
        ),
        (
            {"signals": {"slow": {"column": "x"}, "x": {"column": "y"}}},
            r"\[signals\.slow\] column = 'x' is the name of signal \[signals\.x\]",
        ),
        (
            {"signals": {"slow": {"column": "x", "description": 5}}},
            r"\[signals\.slow\] description must be text",
        ),
    ],
)
def test_bad_mappings_say_what_is_wrong(data, message):
    with pytest.raises(ConfigError, match=message):
        Mapping.from_dict(data, source="m.toml")


ALLOWED = 'allowed values: "dimension", "outcome"'


@pytest.mark.parametrize(
    ("roles", "message"),
    [
        ({"latency_ms": "cause"}, rf"\[roles\] latency_ms = 'cause' is not a role; {ALLOWED}"),
        ({"latency_ms": 1}, rf"\[roles\] latency_ms = 1 is not a role; {ALLOWED}"),
        ({"latency_ms": "Outcome"}, r"\[roles\] latency_ms = 'Outcome' is not a role"),
        (
            {"ts": "dimension"},
            r"\[roles\] ts: ts is the request's time column, whose role is fixed",
        ),
        ({"request_id": "outcome"}, r"\[roles\] request_id: request_id is the request's id column"),
        ({"user_id": "dimension"}, r"\[roles\] user_id: user_id is the request's identity column"),
        ({"time_ms": "outcome"}, r"\[roles\] time_ms: ts is the request's time column"),  # mapped
        ({"_source_row": "dimension"}, r"\[roles\] _source_row: _source_row is forensics' own"),
        ({"slow": "dimension"}, r"\[roles\] slow: slow is a signal column"),
    ],
)
def test_bad_roles_name_the_file_the_key_and_the_allowed_values(roles, message):
    data = {
        "columns": {"ts": "time_ms"},
        "signals": {"slow": {"column": "latency_ms", "op": ">", "value": 1}},
        "roles": roles,
    }
    with pytest.raises(ConfigError, match=rf"^m\.toml: {message}"):
        Mapping.from_dict(data, source="m.toml")
    with pytest.raises(ConfigError, match="allowed values" if "not a role" in message else "fixed"):
        Mapping(columns={"ts": "time_ms"}, roles=roles, signals=(UserSignal("slow", "x", ">", 1),))


def test_roles_section_must_be_a_table():
    with pytest.raises(ConfigError, match=r"m\.toml: \[roles\] must be a table"):
        Mapping.from_dict({"roles": "outcome"}, source="m.toml")


def test_roles_are_keyed_by_the_stored_column_name():
    mapping = Mapping.from_dict(
        {
            "columns": {"output_tokens": "completion_len"},
            "roles": {"completion_len": "dimension", "latency_ms": "outcome"},
        }
    )
    assert mapping.explicit_roles == {"output_tokens": "dimension", "latency_ms": "outcome"}


def test_mapping_file_round_trip(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(
        '[columns]\nts = "time"\n[timestamps]\nepoch_unit = "s"\n'
        '[signals.slow]\ncolumn = "latency_ms"\nop = ">"\nvalue = 30000\ndescription = "slow"\n'
        '[roles]\nlatency_ms = "dimension"\nqueue_depth = "outcome"\n'
    )
    mapping = Mapping.load(path)
    assert mapping.roles == {"latency_ms": "dimension", "queue_depth": "outcome"}
    assert mapping.renames == {"time": "ts"}
    assert mapping.epoch_unit == "s"
    assert mapping.signals == (UserSignal("slow", "latency_ms", ">", 30000.0, "slow"),)


def test_mapping_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.toml: mapping file not found"):
        Mapping.load(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[columns\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        Mapping.load(bad)
    bad.write_text('[roles]\nlatency_ms = "effect"\n')
    with pytest.raises(ConfigError, match=r"bad\.toml: \[roles\] latency_ms = 'effect'"):
        Mapping.load(bad)
