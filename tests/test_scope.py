"""Event scopes: reading ``key=value; key=value`` and matching it to a slice."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from forensics.scope import parse_scope, scope_conflicts, scope_matches

HAIKU_TOPK = {"model": ["haiku-3.5"], "sampler": ["approx-topk"], "surface": ["first-party"]}


@pytest.mark.parametrize(
    ("text", "values", "ranges", "unread"),
    [
        (None, {}, {}, ()),
        ("", {}, {}, ()),
        ("model=sonnet-4", {"model": ("sonnet-4",)}, {}, ()),
        (
            "platform=tpu; surface=first-party; model=opus-4.1,opus-4",
            {"platform": ("tpu",), "surface": ("first-party",), "model": ("opus-4.1", "opus-4")},
            {},
            (),
        ),
        (" Model = a , b ;", {"model": ("a", "b")}, {}, ()),
        ("batch_size>=64", {}, {"batch_size": (64.0, None)}, ()),
        ("batch_size>=64; batch_size<128", {}, {"batch_size": (64.0, 128.0)}, ()),
        ("rolled out everywhere", {}, {}, ("rolled out everywhere",)),
        ("model=; batch_size>=many", {}, {}, ("model=", "batch_size>=many")),
    ],
)
def test_a_scope_is_read_part_by_part(text, values, ranges, unread):
    scope = parse_scope(text)
    assert (scope.values, scope.ranges, scope.unread) == (values, ranges, unread)


@pytest.mark.parametrize(
    ("predicate", "scope", "conflicts"),
    [
        # the sample's routing fix is not the end of a haiku signature
        (HAIKU_TOPK, "model=sonnet-4", ["model"]),
        (HAIKU_TOPK, "platform=tpu; sampler=approx-topk; model=haiku-3.5", []),
        # a column the slice leaves free never conflicts; nor does an empty scope
        ({"routing_pool": ["long-context-1m"]}, "model=sonnet-4", []),
        (HAIKU_TOPK, None, []),
        (HAIKU_TOPK, "a note, not a scope", []),
        # one shared value is enough
        ({"model": ["opus-4", "opus-4.1"]}, "model=opus-4.1,opus-4", []),
        ({"model": ["opus-4", "opus-4.1"]}, "model=opus-3", ["model"]),
        # letter case of the key does not matter; of the value it does
        ({"model": ["a"]}, "MODEL=a", []),
        ({"model": ["a"]}, "model=A", ["model"]),
        # numeric conditions against values and bounds
        ({"batch_size": {"gte": 96}}, "batch_size=64", ["batch_size"]),
        ({"batch_size": {"gte": 96}}, "batch_size=128", []),
        ({"batch_size": {"gte": 96}}, "batch_size>=64", []),
        ({"batch_size": {"lt": 64}}, "batch_size>=64", ["batch_size"]),
        ({"batch_size": {"gte": 128}}, "batch_size<128", ["batch_size"]),
        ({"batch_size": [1, 2]}, "batch_size>=64", ["batch_size"]),
        ({"batch_size": [1, 64]}, "batch_size=64", []),
        ({"batch_size": [1, 64]}, "batch_size=64.0", []),
    ],
)
def test_a_slice_and_a_scope_conflict_only_where_both_constrain_and_differ(
    predicate, scope, conflicts
):
    assert scope_conflicts(predicate, scope) == conflicts


def test_matches_are_the_columns_both_name_and_agree_on():
    scope = "platform=tpu; surface=first-party; sampler=approx-topk"
    assert scope_matches(HAIKU_TOPK, scope) == ["sampler", "surface"]
    assert scope_matches(HAIKU_TOPK, "platform=tpu") == []
    assert scope_matches(HAIKU_TOPK, "model=sonnet-4") == []


def test_nearest_events_skip_an_event_whose_scope_excludes_the_slice(wb, tmp_path):
    """Nearest in time is not enough: the fix of another model's problem is not this one's end."""
    from forensics.separation.evidence import _nearest_events

    events = tmp_path / "events.csv"
    events.write_text(
        "ts,kind,description,scope\n"
        "2025-09-04T18:00:00Z,fix,Routing fix,model=sonnet-4\n"
        "2025-09-04T19:00:00Z,rollback,Top-k rolled back,platform=tpu; model=haiku-3.5\n"
    )
    wb.ingest_events(events)
    end = datetime(2025, 9, 4, 17, tzinfo=UTC)
    start = datetime(2025, 8, 26, 15, tzinfo=UTC)
    (near,) = _nearest_events(wb.db, start, end, HAIKU_TOPK)
    assert (near["near"], near["description"], near["hours_away"]) == (
        "end",
        "Top-k rolled back",
        2.0,
    )
    (near,) = _nearest_events(wb.db, start, end, {"model": ["sonnet-4"]})
    assert near["description"] == "Routing fix"
