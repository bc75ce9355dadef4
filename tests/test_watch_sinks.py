"""Alert sinks: JSON lines, a webhook on a loopback HTTP server, a command; failures contained."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from forensics.errors import ConfigError
from forensics.watch.alerts import Alert
from forensics.watch.sinks import (
    CommandSink,
    JsonlSink,
    SinkError,
    WebhookSink,
    deliver,
    parse_sink,
)


def _alert(n: int = 1, kind: str = "new") -> Alert:
    return Alert(
        id=f"Pabc-{n}",
        problem="Pabc",
        seq=n,
        kind=kind,  # type: ignore[arg-type]
        at=datetime(2025, 8, 5, 18, tzinfo=UTC),
        signature={"id": "Pabc", "predicate": {"model": ["a"]}, "signals": ["low_eval"]},
    )


class _Receiver:
    """A webhook receiver on 127.0.0.1: answers each POST with the next planned status."""

    def __init__(self) -> None:
        self.plan: list[int | float] = []  # a status, or seconds to stall before answering 200
        self.seen: list[tuple[str, dict]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.seen.append((self.headers["Idempotency-Key"], body))
                step = receiver.plan.pop(0) if receiver.plan else 200
                if isinstance(step, float):
                    time.sleep(step)
                    step = 200
                self.send_response(step)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    r = _Receiver()
    yield r
    r.close()


def test_webhook_posts_the_payload_with_its_idempotency_key(receiver):
    WebhookSink("w", receiver.url, backoff=0.01).send(_alert())
    ((key, body),) = receiver.seen
    assert key == "Pabc-1"
    assert body == {
        "kind": "new",
        "at": "2025-08-05T18:00:00Z",
        "signature": _alert().signature,
        "problem": "Pabc",
        "id": "Pabc-1",
    }


def test_webhook_retries_server_errors_with_the_same_key(receiver):
    receiver.plan = [500, 503, 429]
    WebhookSink("w", receiver.url, retries=3, backoff=0.01).send(_alert())
    assert [k for k, _ in receiver.seen] == ["Pabc-1"] * 4


def test_webhook_gives_up_after_its_retries(receiver):
    receiver.plan = [500] * 5
    with pytest.raises(SinkError, match="HTTP 500 after 3 attempts"):
        WebhookSink("w", receiver.url, retries=2, backoff=0.01).send(_alert())
    assert len(receiver.seen) == 3


def test_webhook_times_out_and_retries(receiver):
    receiver.plan = [1.5, 200]
    started = time.monotonic()
    WebhookSink("w", receiver.url, timeout=0.3, retries=1, backoff=0.01).send(_alert())
    assert time.monotonic() - started < 1.5  # the stalled call was abandoned, not awaited
    assert [k for k, _ in receiver.seen] == ["Pabc-1", "Pabc-1"]


def test_webhook_does_not_retry_a_refusal(receiver):
    receiver.plan = [400]
    with pytest.raises(SinkError, match="HTTP 400"):
        WebhookSink("w", receiver.url, backoff=0.01).send(_alert())
    assert len(receiver.seen) == 1


def test_a_webhook_nobody_listens_to_fails_cleanly():
    with pytest.raises(SinkError):
        WebhookSink("w", "http://127.0.0.1:9/hook", timeout=0.5, retries=1, backoff=0.01).send(
            _alert()
        )


def test_jsonl_writes_one_object_per_line(tmp_path):
    sink = JsonlSink("j", tmp_path / "out" / "alerts.jsonl")
    sink.send(_alert(1))
    sink.send(_alert(2, "update"))
    lines = (tmp_path / "out" / "alerts.jsonl").read_text().splitlines()
    assert [json.loads(x)["kind"] for x in lines] == ["new", "update"]
    assert set(json.loads(lines[0])) == {"kind", "at", "signature", "problem", "id"}


def test_command_gets_the_alert_on_stdin(tmp_path):
    out = tmp_path / "got.json"
    script = f"import sys,os; open({str(out)!r},'w').write(os.environ['FORENSICS_ALERT_ID'] + sys.stdin.read())"
    CommandSink("c", f"{sys.executable} -c {json.dumps(script)}").send(_alert())
    text = out.read_text()
    assert text.startswith("Pabc-1{")
    assert json.loads(text[len("Pabc-1") :])["kind"] == "new"


def test_a_failing_command_or_one_that_hangs_is_a_sink_error():
    with pytest.raises(SinkError, match="exit 3"):
        CommandSink("c", f"{sys.executable} -c 'import sys; sys.exit(3)'").send(_alert())
    with pytest.raises(SinkError, match="timed out"):
        CommandSink("c", f"{sys.executable} -c 'import time; time.sleep(5)'", timeout=0.3).send(
            _alert()
        )


def test_deliver_never_raises_and_keeps_order_per_sink(tmp_path, receiver):
    receiver.plan = [500] * 10
    good = JsonlSink("good", tmp_path / "a.jsonl")
    bad = WebhookSink("bad", receiver.url, retries=0, backoff=0.01)

    class Broken:
        name = "broken"

        def send(self, alert: Alert) -> None:
            raise RuntimeError("a bug in a sink")

    sinks = {"good": good, "bad": bad, "broken": Broken()}
    pending = [(s, _alert(n)) for n in (1, 2) for s in sinks]
    results = deliver(pending, sinks)
    assert ("good", "Pabc-1", None) in results
    assert ("good", "Pabc-2", None) in results
    # after its first failure a sink's later alerts wait: they are not tried out of order
    assert [a for s, a, _ in results if s == "bad"] == ["Pabc-1"]
    assert [a for s, a, _ in results if s == "broken"] == ["Pabc-1"]
    assert all(e for s, _, e in results if s != "good")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("jsonl", "write jsonl:PATH"),
        ("email:me@example.com", "unknown sink 'email'"),
        ("webhook:example.com/x", "starts with http"),
    ],
)
def test_bad_sink_specs_say_what_to_write(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_sink(spec)


def test_parse_sink_kinds(tmp_path):
    assert isinstance(parse_sink(f"jsonl:{tmp_path / 'a.jsonl'}"), JsonlSink)
    assert isinstance(parse_sink("webhook:http://127.0.0.1:1/x"), WebhookSink)
    assert isinstance(parse_sink("command:cat"), CommandSink)
    assert Path(parse_sink("jsonl:a.jsonl").path).name == "a.jsonl"  # type: ignore[attr-defined]
