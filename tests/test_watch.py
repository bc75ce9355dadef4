"""The watch: source polling, series, detection, problems and alerts, cycles, restarts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

import forensics
from forensics import queries
from forensics.cli import main
from forensics.watch import FolderSource, WatchParams, parse_sink, run_cycle, store
from forensics.watch import alerts as alerting
from forensics.watch.alerts import problem_key
from forensics.watch.engine import detect
from forensics.watch.model import fit_models
from forensics.watch.source import record_read
from tests import watch_stream
from tests.watch_stream import BUG_END, BUG_START, HISTORY_HOURS, write_history, write_hour

REPO = Path(__file__).resolve().parent.parent

THRESHOLD = 12.0
"""A threshold given by hand: these tests check the mechanics, not the calibration."""

PARAMS = WatchParams(threshold=THRESHOLD)


# -- the source ---------------------------------------------------------------------------


def test_only_complete_supported_files_are_read_and_each_once(tmp_path):
    feed = tmp_path / "feed"
    feed.mkdir()
    for name in ("a.parquet", "b.parquet.tmp", ".c.parquet", "notes.txt", "d.jsonl.part"):
        (feed / name).write_text("x")
    (feed / "sub").mkdir()
    (feed / "sub" / "e.jsonl").write_text("x")
    source = FolderSource(str(feed), settle=0.0)
    db = forensics.open(tmp_path / "w.duckdb").db
    ready = source.ready(db)
    assert [p.name for p, _ in ready] == ["a.parquet", "e.jsonl"]
    record_read(db, [(p, "ingested", look) for p, look in ready])
    assert source.ready(db) == []
    (feed / "a.parquet").write_text("changed")
    assert [p.name for p, _ in source.ready(db)] == ["a.parquet"]
    db.close()


def test_a_file_still_growing_waits_for_the_next_cycle(tmp_path):
    feed = tmp_path / "feed"
    feed.mkdir()
    growing = feed / "g.jsonl"
    growing.write_text('{"a": 1}\n')
    source = FolderSource(str(feed), settle=0.4)
    db = forensics.open(tmp_path / "w.duckdb").db

    def append() -> None:
        time.sleep(0.15)
        with growing.open("a") as f:
            f.write('{"a": 2}\n')

    writer = threading.Thread(target=append)
    writer.start()
    assert source.ready(db) == []  # it changed between the two looks
    writer.join()
    started = time.monotonic()
    assert [p.name for p, _ in source.ready(db)] == ["g.jsonl"]
    assert time.monotonic() - started < 0.3  # unchanged since the last cycle: no second wait
    db.close()


def test_a_missing_folder_is_an_input_error():
    with pytest.raises(forensics.ConfigError, match="no such folder"):
        FolderSource("/nonexistent/folder")


def test_counted_rows_are_refused_with_what_to_do(tmp_path):
    """The watch counts request rows: a [counts] mapping gets a clear refusal, not wrong series."""
    feed = tmp_path / "feed"
    feed.mkdir()
    mapping = forensics.Mapping.from_dict({"counts": {"requests": "cnt"}})
    with pytest.raises(forensics.ConfigError, match="counted rows"):
        run_cycle(tmp_path / "w.duckdb", FolderSource(str(feed)), sinks={}, mapping=mapping)


# -- series and models --------------------------------------------------------------------


@pytest.fixture
def history(tmp_path):
    folder = tmp_path / "feed"
    folder.mkdir()
    write_history(folder)
    wb = forensics.open(tmp_path / "history.duckdb")
    wb.ingest(folder / "history.parquet", progress=False)
    yield wb
    wb.close()


def test_series_count_what_requests_hold(history):
    db = history.db
    dims = store.watched_dimensions(db, max_values=256)
    first = int(db.scalar("SELECT min(epoch_us(ts)) // 3600000000 FROM requests"))
    hours = [first + 5, first + 6]
    store.update_series(db, hours=hours, dims=dims, signals=["argmax_violation"], models={})
    got = db.frame(
        "SELECT hour, value, n__argmax_violation AS n, k__argmax_violation AS k FROM watch_series "
        "WHERE dim = 'model' ORDER BY ALL"
    )
    by_hand = db.frame(
        "SELECT epoch_us(ts) // 3600000000 AS hour, model AS value, count(argmax_violation) AS n, "
        "count(*) FILTER (WHERE argmax_violation) AS k FROM requests "
        "WHERE epoch_us(ts) // 3600000000 IN (SELECT unnest($h)) GROUP BY ALL ORDER BY ALL",
        {"h": hours},
    )
    assert got.rows() == by_hand.rows()
    every = db.frame("SELECT hour, requests FROM watch_series WHERE dim = '' ORDER BY hour")
    assert every["requests"].to_list() == [240, 240]
    # counting an hour again replaces it
    store.update_series(db, hours=hours[:1], dims=dims, signals=["argmax_violation"], models={})
    assert db.scalar("SELECT count(*) FROM watch_series WHERE dim = '' ") == 2


def test_expected_counts_are_the_models_probabilities_summed(history):
    db = history.db
    dims = store.watched_dimensions(db, max_values=256)
    first = int(db.scalar("SELECT min(epoch_us(ts)) // 3600000000 FROM requests"))
    models = fit_models(
        db, dims=dims, signals=["argmax_violation"], until_hour=first + 72, params=PARAMS
    )
    model = models["argmax_violation"]
    hour = first + 80
    store.update_series(db, hours=[hour], dims=dims, signals=["argmax_violation"], models=models)
    rows = db.frame(
        "SELECT "
        + ", ".join(f"CAST({d} AS VARCHAR) AS {d}" for d in ("model", "platform", "region"))
        + ", epoch_us(ts) // 3600000000 % 24 AS hod FROM requests WHERE argmax_violation IS NOT NULL "
        "AND epoch_us(ts) // 3600000000 = $h",
        {"h": hour},
    )
    expected = 0.0
    for row in rows.iter_rows(named=True):
        p = model["base"]
        for d, factors, sibling in zip(
            model["dims"], model["factors"], model["siblings"], strict=True
        ):
            value = str(row["hod"]) if d == "_hour_of_day" else row[d]
            p *= factors.get(value, sibling)
        expected += max(min(p, 0.999), model["floor"])
    stored = db.scalar(
        "SELECT e__argmax_violation FROM watch_series WHERE dim = '' AND hour = $h", {"h": hour}
    )
    assert stored == pytest.approx(expected, rel=1e-9)


# -- detection ----------------------------------------------------------------------------


def _replay(db, hours, threshold=THRESHOLD, params=PARAMS):
    scans = []
    for h in hours:
        db.execute("BEGIN TRANSACTION")
        scans.append(detect(db, hours=[h], newest_hour=h, params=params, threshold=threshold))
        db.execute("COMMIT")
    return scans


def _hour(t):
    return int(t.timestamp() // 3600)


@pytest.mark.parametrize("bug", [True, False])
def test_a_rise_fires_where_it_is_and_quiet_data_does_not(tmp_path, bug):
    folder = tmp_path / "feed"
    folder.mkdir()
    frames = [watch_stream.hour_frame(h, bug=bug) for h in range(HISTORY_HOURS + 12)]
    pl.concat(frames).write_parquet(folder / "all.parquet")
    with forensics.open(tmp_path / "d.duckdb") as wb:
        wb.ingest(folder / "all.parquet", progress=False)
        first = _hour(watch_stream.START)
        scans = _replay(wb.db, range(first, first + HISTORY_HOURS + 12))
    fired = [f for s in scans for f in s.firings]
    if not bug:
        assert fired == []
        assert max(s.top for s in scans) < THRESHOLD
        return
    assert fired
    # slices holding the bug's rows fire (it, its parents, slices crossing it); none without them
    disjoint = {("model", "m-a"), ("model", "m-c"), ("platform", "tpu")}
    assert not {(f.slice.dim, f.slice.value) for f in fired} & disjoint
    strongest = max(fired, key=lambda f: f.statistic)
    assert (strongest.slice.dim, strongest.slice.value) in {("model", "m-b"), ("platform", "gpu")}
    assert {f.signal for f in fired} == {"argmax_violation"}
    first_fire = min(f.start_hour for s in scans for f in s.firings if f.slice.value == "m-b")
    assert abs(first_fire - _hour(BUG_START)) <= 2


# -- the weekly cycle ---------------------------------------------------------------------

WEEKEND = 0.05
"""Weekend symptom rate of the weekly streams (5x the weekdays', from other users)."""

SATURDAY_W2 = range(12 * 24, 13 * 24)
"""The hours of the stream's second Saturday (day 12)."""

WEEK5_BUG = range(33 * 24 + 6, 35 * 24)
"""From the fifth Saturday (day 33) 06:00 on."""


@pytest.fixture(scope="module")
def weekly_streams(tmp_path_factory):
    """Five weeks with a weekend five times as bad as the weekdays, and variants of them."""
    folder = tmp_path_factory.mktemp("weekly")
    clean = [watch_stream.hour_frame(h, weekend=WEEKEND, bug_hours=range(0)) for h in range(840)]
    flat = [watch_stream.hour_frame(h, bug_hours=range(0)) for h in range(28 * 24)]

    def stream(name, base, bug_hours, weekend=WEEKEND):
        path = folder / f"{name}.parquet"
        frames = [
            watch_stream.hour_frame(h, weekend=weekend, bug_hours=bug_hours)
            if h in bug_hours
            else frame
            for h, frame in enumerate(base)
        ]
        pl.concat(frames).write_parquet(path)
        return path

    return {
        "weekly": stream("weekly", clean, range(0)),
        "weekend_bug": stream("weekend_bug", clean, WEEK5_BUG),
        "bad_saturday": stream("bad_saturday", clean[: 28 * 24], SATURDAY_W2),
        "flat_bad_saturday": stream("flat_bad_saturday", flat, SATURDAY_W2, weekend=None),
    }


def _fit(tmp_path, stream, days, params=PARAMS):
    """The argmax_violation model fitted on the days before day ``days`` of ``stream``."""
    with forensics.open(tmp_path / f"{stream.stem}.duckdb") as wb:
        if "requests" not in wb.db.tables():
            wb.ingest(stream, progress=False)
        dims = store.watched_dimensions(wb.db, max_values=256)
        until = _hour(watch_stream.START) + days * 24
        models = fit_models(
            wb.db, dims=dims, signals=["argmax_violation"], until_hour=until, params=params
        )
    return models["argmax_violation"]


def test_the_weekly_cycle_enters_a_model_only_with_three_of_each_weekday(tmp_path, weekly_streams):
    stream = weekly_streams["weekly"]
    # 21 days: three of each weekday; the weekend is measured five times as bad
    model = _fit(tmp_path, stream, 21)
    assert "_day_of_week" in model["dims"]
    week = model["factors"][model["dims"].index("_day_of_week")]
    assert min(week["6"], week["7"]) > 3 * max(week[str(d)] for d in range(1, 6))
    # 20 days: two Sundays. The model is the daily one, as without a weekly term at all.
    short = _fit(tmp_path, stream, 20)
    assert "_day_of_week" not in short["dims"]
    assert short == _fit(tmp_path, stream, 20, WatchParams(threshold=THRESHOLD, weekly_weeks=0))
    # the expectation of an hour applies the factor of its own weekday (1 Monday .. 7 Sunday)
    with forensics.open(tmp_path / "weekly.duckdb") as wb:
        db = wb.db
        dims = store.watched_dimensions(db, max_values=256)
        models = {"argmax_violation": model}
        for day in (26, 27, 28):  # a Saturday, a Sunday, a Monday
            hour = _hour(watch_stream.START) + day * 24 + 10
            store.update_series(
                db, hours=[hour], dims=dims, signals=["argmax_violation"], models=models
            )
            rows = db.frame(
                "SELECT ts FROM requests WHERE argmax_violation IS NOT NULL "
                "AND epoch_us(ts) // 3600000000 = $h",
                {"h": hour},
            )
            expected = 0.0
            for (ts,) in rows.iter_rows():
                p = model["base"]
                for d, factors, sibling in zip(
                    model["dims"], model["factors"], model["siblings"], strict=True
                ):
                    value = {"_hour_of_day": str(ts.hour), "_day_of_week": str(ts.isoweekday())}
                    p *= factors.get(value[d], sibling)
                expected += max(min(p, 0.999), model["floor"])
            stored = db.scalar(
                "SELECT e__argmax_violation FROM watch_series WHERE dim = '' AND hour = $h",
                {"h": hour},
            )
            assert stored == pytest.approx(expected, rel=1e-9)


def test_one_bad_day_does_not_teach_the_weekly_cycle(tmp_path, weekly_streams):
    """A bug on one Saturday is not expected on the next ones, with or without a weekly cycle."""
    clean = _fit(tmp_path, weekly_streams["weekly"], 28)["factors"][-1]
    bad = _fit(tmp_path, weekly_streams["bad_saturday"], 28)
    assert bad["dims"][-1] == "_day_of_week"
    # that Saturday's rate was 1.8 times the others': trimmed away across the weeks
    assert bad["factors"][-1]["6"] == pytest.approx(clean["6"], rel=0.05)
    # without a weekly cycle, one bad Saturday does not make one
    flat = _fit(tmp_path, weekly_streams["flat_bad_saturday"], 28)
    assert "_day_of_week" not in flat["dims"]
    assert flat["weekly"]["p"] >= 1e-3


def _weekend_replay(tmp_path, stream, params=PARAMS):
    """Detection replayed hour by hour over the fifth Friday, Saturday and Sunday."""
    with forensics.open(tmp_path / f"{stream.stem}-replay.duckdb") as wb:
        wb.ingest(stream, progress=False)
        friday = _hour(watch_stream.START) + 32 * 24
        return _replay(wb.db, range(friday, friday + 72), params=params)


@pytest.mark.parametrize("daily_only", [False, True])
def test_a_normal_weekend_is_not_alerted_once_the_weeks_are_learned(
    tmp_path, weekly_streams, daily_only
):
    params = WatchParams(threshold=THRESHOLD, weekly_weeks=0) if daily_only else PARAMS
    scans = _weekend_replay(tmp_path, weekly_streams["weekly"], params)
    fired = [f for s in scans for f in s.firings]
    if daily_only:  # the daily cycle alone: every weekend is a problem
        assert {(f.slice.dim, f.slice.value) for f in fired} >= {("", None), ("model", "m-a")}
        return
    assert fired == []
    assert max(s.top for s in scans) < THRESHOLD


def test_a_bug_on_a_weekend_is_still_alerted_where_it_is(tmp_path, weekly_streams):
    scans = _weekend_replay(tmp_path, weekly_streams["weekend_bug"])
    fired = [f for s in scans for f in s.firings]
    assert fired
    disjoint = {("model", "m-a"), ("model", "m-c"), ("platform", "tpu")}
    assert not {(f.slice.dim, f.slice.value) for f in fired} & disjoint
    strongest = max(fired, key=lambda f: f.statistic)
    assert (strongest.slice.dim, strongest.slice.value) in {("model", "m-b"), ("platform", "gpu")}
    onset = _hour(watch_stream.START) + WEEK5_BUG.start
    first_fire = min(f.start_hour for f in fired if f.slice.value == "m-b")
    assert abs(first_fire - onset) <= 2


# -- problems, keys, the matching rule ----------------------------------------------------


def test_problem_keys_are_stable():
    onset = datetime(2025, 3, 7, 4, tzinfo=UTC)
    a = problem_key("argmax_violation", {"platform": ["gpu"], "model": ["m-b"]}, onset)
    b = problem_key("argmax_violation", {"model": ["m-b"], "platform": ["gpu"]}, onset)
    assert a == b
    assert a.startswith("P")
    assert len(a) == 11
    assert problem_key("low_eval", {"model": ["m-b"]}, onset) != a


def test_the_matching_rule_takes_wider_and_narrower_predicates_not_disjoint_ones(history):
    db = history.db
    now = datetime.fromisoformat(db.scalar("SELECT max(ts) FROM requests").isoformat()) + timedelta(
        hours=1
    )
    p = alerting.Problem(
        key="Pkey",
        status="open",
        signal="argmax_violation",
        predicate={"model": ["m-b"], "platform": ["gpu"]},
        signals=["argmax_violation"],
        onset_hour=_hour(now) - 10,
        onset_range=[_hour(now) - 11, _hour(now) - 10],
        baseline=[1000, 10],
        alerted_excess=20.0,
        last_alert_hour=_hour(now),
        seq=1,
    )

    def matches(predicate, signal="argmax_violation"):
        found = alerting._matching(db, [p], predicate, signal, now, PARAMS)
        return found is not None

    assert matches({"model": ["m-b"]})  # wider
    assert matches({"platform": ["gpu"]})  # wider
    assert matches({"model": ["m-b"], "platform": ["gpu"], "region": ["us"]})  # narrower
    assert matches({"model": ["m-b", "m-c"], "platform": ["gpu"]})  # wider
    assert not matches({"model": ["m-a"]})  # disjoint
    assert not matches({"model": ["m-b"], "platform": ["tpu"]})  # disjoint
    assert not matches({"model": ["m-b"]}, signal="low_eval")  # another symptom
    # a slice mostly elsewhere that holds all of P is P: |D and P| / min(|D|, |P|) is P's share
    assert matches({"model": ["m-a", "m-b"]})


# -- cycles end to end --------------------------------------------------------------------


def _cycle(db, feed, sink, params=PARAMS):
    return run_cycle(
        db, FolderSource(str(feed), settle=0.0), sinks={sink.name: sink}, params=params
    )


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """The stream watched in four cycles: history, the bug's start, its rest, after its fix."""
    root = tmp_path_factory.mktemp("watched")
    feed = root / "feed"
    feed.mkdir()
    db = root / "watch.duckdb"
    sink = parse_sink(f"jsonl:{root / 'alerts.jsonl'}")
    reports = []
    write_history(feed)
    reports.append(_cycle(db, feed, sink))
    for chunk in (range(96, 108), range(108, 128), range(128, 150)):
        for h in chunk:
            write_hour(feed, h)
        reports.append(_cycle(db, feed, sink))
    return root, db, feed, sink, reports


def test_a_bug_is_alerted_once_with_a_stable_key_then_resolved(watched):
    root, db, _, _, reports = watched
    assert all(r.error is None for r in reports), [r.error for r in reports]
    lines = _lines(root / "alerts.jsonl")
    kinds = [a["kind"] for a in lines]
    assert kinds[0] == "new"
    assert kinds[-1] == "resolved"
    assert kinds.count("new") == 1
    assert {a["problem"] for a in lines} == {lines[0]["problem"]}
    new = lines[0]["signature"]
    assert new["predicate"] == {"model": ["m-b"], "platform": ["gpu"]}
    assert new["signal"] == "argmax_violation"
    assert new["id"] == lines[0]["problem"]
    onset = datetime.fromisoformat(new["start"].replace("Z", "+00:00"))
    assert abs((onset - BUG_START).total_seconds()) <= 2 * 3600
    assert new["end"] is None
    symptom = new["symptoms"]["argmax_violation"]
    assert symptom["rate_inside"] > 3 * symptom["rate_baseline"]
    assert symptom["ci_inside"][0] <= symptom["rate_inside"] <= symptom["ci_inside"][1]
    resolved = lines[-1]["signature"]
    end = datetime.fromisoformat(resolved["end"].replace("Z", "+00:00"))
    assert BUG_END <= end <= BUG_END + timedelta(hours=24)
    # ids are the idempotency keys: <problem>-<n>, never repeated
    assert [a["id"] for a in lines] == [
        f"{lines[0]['problem']}-{i}" for i in range(1, len(lines) + 1)
    ]
    # the jsonl lines are the alerts table's, as the contract says
    with forensics.open(db, read_only=True) as wb:
        table = wb.sql('SELECT id, kind, "at" FROM alerts ORDER BY problem, seq')
    assert table["id"].to_list() == [a["id"] for a in lines]
    assert {"kind", "at", "signature"} <= set(lines[0])


def test_cycles_update_the_cubes_in_place(watched):
    _, db, _, _, reports = watched
    assert reports[0].cubes.startswith("rebuilt")
    assert all(r.cubes == "updated" for r in reports[1:])
    with forensics.open(db, read_only=True) as wb:
        assert queries.cubes(wb.db)  # fresh: a reader may use them


def test_a_restart_does_not_send_again(watched):
    root, db, feed, sink, _ = watched
    before = (root / "alerts.jsonl").read_text()
    again = _cycle(db, feed, sink)
    assert again.alerts == ()
    assert (root / "alerts.jsonl").read_text() == before


def test_a_problem_back_after_its_resolution_is_reopened_under_its_key(tmp_path):
    feed = tmp_path / "feed"
    feed.mkdir()
    db = tmp_path / "w.duckdb"
    sink = parse_sink(f"jsonl:{tmp_path / 'a.jsonl'}")
    write_history(feed)
    _cycle(db, feed, sink)
    for chunk in (range(96, 108), range(108, 128), range(128, 150), range(150, 172)):
        for h in chunk:
            write_hour(feed, h, returns_at=158)  # back 8 hours after the cycle that resolved it
        _cycle(db, feed, sink)
    lines = _lines(tmp_path / "a.jsonl")
    kinds = [a["kind"] for a in lines]
    assert kinds.count("new") == 1
    assert {a["problem"] for a in lines} == {lines[0]["problem"]}
    resolved = kinds.index("resolved")
    assert "update" in kinds[resolved + 1 :]  # reopened, the same key
    back = lines[kinds.index("update", resolved + 1)]["signature"]
    assert back["end"] is None


# -- sinks that fail, processes that die --------------------------------------------------


class _Hook:
    """A loopback webhook receiver; ``hold`` makes the first request wait until released."""

    def __init__(self, *, hold: bool = False) -> None:
        self.keys: list[str] = []
        self.arrived = threading.Event()
        self.release = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hook.keys.append(self.headers["Idempotency-Key"])
                assert body["id"] == self.headers["Idempotency-Key"]
                first = not hook.arrived.is_set()
                hook.arrived.set()
                if hold and first:
                    hook.release.wait(30)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def _stream_until_bug(feed):
    write_history(feed)
    for h in range(96, 110):
        write_hour(feed, h)


def test_a_failing_sink_never_stops_ingestion_and_catches_up_later(tmp_path):
    feed = tmp_path / "feed"
    feed.mkdir()
    db = tmp_path / "w.duckdb"
    jsonl = parse_sink(f"jsonl:{tmp_path / 'a.jsonl'}")
    dead = parse_sink("webhook:http://127.0.0.1:9/hook", timeout=0.5, retries=1)
    write_history(feed)
    run_cycle(db, FolderSource(str(feed), settle=0.0), sinks={}, params=PARAMS)
    for h in range(96, 110):
        write_hour(feed, h)
    sinks = {jsonl.name: jsonl, dead.name: dead}
    report = run_cycle(db, FolderSource(str(feed), settle=0.0), sinks=sinks, params=PARAMS)
    assert report.alerts
    assert report.failed >= 1
    assert report.files  # the files went in
    with forensics.open(db, read_only=True) as wb:
        assert wb.counts()["requests"] == 240 * 110
    sent = [a["id"] for a in _lines(tmp_path / "a.jsonl")]
    assert sent == [a.id for a in report.alerts]
    hook = _Hook()
    try:
        live = parse_sink(f"webhook:{hook.url}")
        # the same sink name (the spec) is pending; a new address is another sink: use the
        # same spec, served now
        revived = {dead.name: type(live)(dead.name, hook.url), jsonl.name: jsonl}
        later = run_cycle(db, FolderSource(str(feed), settle=0.0), sinks=revived, params=PARAMS)
    finally:
        hook.close()
    assert later.alerts == ()
    assert hook.keys == sent  # the pending alerts, under their own keys
    assert [a["id"] for a in _lines(tmp_path / "a.jsonl")] == sent  # not sent twice


def _watch_process(feed, db, *alerts, threshold=THRESHOLD):
    env = {**os.environ, "PYTHONPATH": str(REPO), "FORENSICS_PROGRESS": "off"}
    args = [sys.executable, "-c", "from forensics.cli import main; main()", "watch", str(feed)]
    args += ["--db", str(db), "--once", "--settle", "0", "--threshold", str(threshold)]
    for a in alerts:
        args += ["--alert", a]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_kill_9_while_delivering_then_restart_sends_the_same_keys(tmp_path):
    feed = tmp_path / "feed"
    feed.mkdir()
    db = tmp_path / "w.duckdb"
    _stream_until_bug(feed)
    hook = _Hook(hold=True)
    try:
        child = _watch_process(feed, db, f"webhook:{hook.url}")
        assert hook.arrived.wait(120), child.communicate(timeout=5)
        child.send_signal(signal.SIGKILL)  # mid-cycle: alerts committed, not yet marked sent
        child.wait(10)
        first = list(hook.keys)
        hook.release.set()
        done = _watch_process(feed, db, f"webhook:{hook.url}")  # the same sink, restarted
        _out, err = done.communicate(timeout=120)
        assert done.returncode == 0, err.decode()
        resent = hook.keys[len(first) :]
    finally:
        hook.close()
    with forensics.open(db, read_only=True) as wb:
        ids = wb.sql("SELECT id FROM alerts ORDER BY problem, seq")["id"].to_list()
        delivered = wb.sql("SELECT alert_id FROM alert_deliveries WHERE delivered_at IS NOT NULL")
    assert first[0] in ids
    assert resent[0] == first[0]  # what the killed process had not recorded as sent, again...
    assert set(resent) <= set(ids)  # ...under the keys it had: none new
    assert set(delivered["alert_id"]) == set(ids)  # none lost


def test_kill_9_anywhere_in_a_cycle_loses_no_alert_and_makes_no_new_key(tmp_path):
    """Killed at several moments of its cycle, restarted: the alerts of an unbroken run."""
    feed = tmp_path / "feed"
    feed.mkdir()
    _stream_until_bug(feed)
    reference = tmp_path / "reference.duckdb"
    out = tmp_path / "reference.jsonl"
    done = _watch_process(feed, reference, f"jsonl:{out}")
    assert done.wait(180) == 0
    expected = [a["id"] for a in _lines(out)]
    assert expected
    for delay in (0.8, 2.0, 3.5):
        db = tmp_path / f"killed-{delay}.duckdb"
        sent = tmp_path / f"killed-{delay}.jsonl"
        child = _watch_process(feed, db, f"jsonl:{sent}")
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        restarted = _watch_process(feed, db, f"jsonl:{sent}")
        assert restarted.wait(180) == 0, restarted.communicate()[1].decode()
        got = [a["id"] for a in _lines(sent)]
        assert set(got) == set(expected), delay  # none lost, none under a new key
        with forensics.open(db, read_only=True) as wb:
            ids = wb.sql("SELECT id FROM alerts")["id"].to_list()
        assert sorted(ids) == sorted(expected)


# -- the command ----------------------------------------------------------------------


def test_watch_command_once(tmp_path):
    feed = tmp_path / "feed"
    feed.mkdir()
    write_history(feed)
    result = CliRunner().invoke(
        main,
        ["watch", str(feed), "--db", str(tmp_path / "w.duckdb"), "--once", "--settle", "0",
         "--threshold", "12", "--alert", f"jsonl:{tmp_path / 'a.jsonl'}"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "history.parquet: ingested, read 23,040, accepted 23,040" in result.output
    assert "cycle: data to 2025-03-07 00:00 UTC" in result.output


def test_watch_command_reads_the_calibrated_threshold(tmp_path):
    from forensics.watch import calibration

    feed = tmp_path / "feed"
    feed.mkdir()
    write_history(feed)
    for h in range(96, 112):
        write_hour(feed, h)
    out = tmp_path / "a.jsonl"
    args = ["watch", str(feed), "--db", str(tmp_path / "w.duckdb"), "--once", "--settle", "0"]
    result = CliRunner().invoke(main, [*args, "--alert", f"jsonl:{out}"])
    assert result.exit_code == 0, result.output
    assert 10 < calibration.threshold(1.0) < 40
    (new,) = [a for a in _lines(out) if a["kind"] == "new"]
    assert new["signature"]["predicate"] == {"model": ["m-b"], "platform": ["gpu"]}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/nonexistent/folder"], "no such folder"),
        (["{feed}", "--alert", "smtp:me"], "unknown sink 'smtp'"),
        (["{feed}", "--every", "soon"], "write a duration"),
    ],
)
def test_watch_command_refuses_bad_input(tmp_path, args, message):
    feed = tmp_path / "feed"
    feed.mkdir()
    args = [a.replace("{feed}", str(feed)) for a in args]
    result = CliRunner().invoke(main, ["watch", *args, "--db", str(tmp_path / "w.duckdb")])
    assert result.exit_code == 2
    assert message in result.output


# -- where alerts are shown ---------------------------------------------------------------


def test_the_workbench_report_and_dashboard_show_the_alerts(watched):
    from forensics.dashboard.alerts import alerts_html
    from forensics.report import Investigation

    root, db, *_ = watched
    lines = _lines(root / "alerts.jsonl")
    with forensics.open(db, read_only=True) as wb:
        table = wb.alerts()
        assert sorted(table["id"].to_list()) == sorted(a["id"] for a in lines)
        assert table["kind"][0] == "resolved"  # newest first
        assert set(table["delivered"]) == {f"jsonl:{root / 'alerts.jsonl'}"}
        assert "m-b" in table["where"][0]
        inv = Investigation(wb, title="Watched")
        page = inv.to_html()
        assert "Watch alerts" in page
        assert all(a["id"] in page for a in lines)
        assert [a["id"] for a in inv.to_dict()["alerts"]] == table["id"].to_list()
        shown = alerts_html(wb.db)
        assert lines[0]["problem"] in shown
        assert "resolved" in shown


def test_an_unwatched_database_shows_no_alerts(history):
    from forensics.dashboard.alerts import alerts_html

    assert history.alerts().height == 0
    assert alerts_html(history.db) == ""


def test_the_threshold_is_the_smallest_whose_upper_bound_is_stricter_than_the_target():
    from forensics.watch import calibration

    table = {
        "cycles": 1000,
        "thresholds": [
            {"h": 10.0, "upper95": 3.0, "episodes": 4},
            {"h": 12.0, "upper95": 0.9, "episodes": 1},
            {"h": 14.0, "upper95": 0.4, "episodes": 0},
        ],
        "tail": {"h0": 8.0, "rate": 0.5, "values": [9.0, 10.0, 11.0, 12.0, 13.0]},
    }
    # half the target: 1 per 30 days needs an upper bound of 0.5 or less
    assert calibration.threshold(1.0, table=table) == 14.0
    assert calibration.threshold(2.0, table=table) == 12.0
    # beyond the grid: 5 of 1000 cycles reach h0 = 8, 3.6 per 30 days; the tail falls by
    # e^-0.5 a unit, so 0.05 per 30 days is log(3.6 / 0.05) / 0.5 further
    assert calibration.threshold(0.1, table=table) == pytest.approx(8.0 + 2 * 4.2767, rel=1e-3)
    assert calibration.cycle_p_value(9.0, table=table) == 5 / 1000
    assert calibration.cycle_p_value(20.0, table=table) < calibration.cycle_p_value(
        14.0, table=table
    )
