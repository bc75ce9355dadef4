"""Where alerts go: a JSON-lines file, a webhook, a command. At least once, never in the way.

Every sink receives an alert's payload (``Alert.payload``): ``{"kind": "new" |
"update" | "resolved", "at": <ISO time of the newest data seen>,
"signature": <Signature.to_dict()>, "problem": <key>, "id": <key>-<n>}``.
``id`` is the idempotency key: a sink may see an alert twice (a crash between
sending it and recording that it was sent), never two keys for one alert.

- ``jsonl:PATH`` appends one JSON object per line (flushed and synced).
- ``webhook:URL`` POSTs it as JSON with the header ``Idempotency-Key: <id>``;
  each attempt times out after ``timeout`` seconds; a connection error, a
  time-out, a 5xx, 408 or 429 is retried ``retries`` times with a doubling
  pause; any 2xx is delivered.
- ``command:CMD`` runs CMD in a shell with the payload on its standard input and
  ``FORENSICS_ALERT_ID`` / ``FORENSICS_ALERT_KIND`` in its environment; exit 0 is
  delivered; it is killed after ``timeout`` seconds.

A sink that fails raises ``SinkError``; ``deliver`` catches it, logs it and
leaves the alert pending (tried again next cycle, in order): a failing sink
never stops the watch.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from forensics.errors import ConfigError
from forensics.watch.alerts import Alert

__all__ = [
    "CommandSink",
    "JsonlSink",
    "Sink",
    "SinkError",
    "WebhookSink",
    "deliver",
    "parse_sink",
]

logger = logging.getLogger("forensics")

TIMEOUT_SECONDS = 10.0
"""Default time-out of one webhook request or one command."""

RETRIES = 3
"""Default retries of a webhook after its first attempt."""

BACKOFF_SECONDS = 0.5
"""Pause before the first retry; doubled before each next one."""


class SinkError(Exception):
    """A sink could not deliver an alert (it stays pending)."""


class Sink(Protocol):
    """Something that takes alerts."""

    @property
    def name(self) -> str:
        """How the sink was given (``jsonl:PATH``...): its key in ``alert_deliveries``."""

    def send(self, alert: Alert) -> None:
        """Deliver one alert or raise ``SinkError``."""


@dataclass(frozen=True)
class JsonlSink:
    """Append each alert as one JSON line to a file."""

    name: str
    path: Path

    def send(self, alert: Alert) -> None:
        """Append the payload and sync it to disk."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(alert.payload()) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise SinkError(f"{self.path}: {exc}") from exc


@dataclass(frozen=True)
class WebhookSink:
    """POST each alert as JSON, with an idempotency key, retries and a time-out."""

    name: str
    url: str
    timeout: float = TIMEOUT_SECONDS
    retries: int = RETRIES
    backoff: float = BACKOFF_SECONDS

    def send(self, alert: Alert) -> None:
        """POST until a 2xx, a final refusal, or the retries are spent."""
        body = json.dumps(alert.payload()).encode()
        pause = self.backoff
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(pause)
                pause *= 2
            request = urllib.request.Request(
                self.url,
                data=body,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "Idempotency-Key": alert.id,
                    "User-Agent": "forensics-watch",
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    if 200 <= response.status < 300:
                        return
                    last = f"HTTP {response.status}"
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
                if exc.code < 500 and exc.code not in (408, 429):
                    raise SinkError(f"{self.url}: {last} (not retried)") from exc
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                last = str(getattr(exc, "reason", exc))
        raise SinkError(f"{self.url}: {last} after {self.retries + 1} attempts")


@dataclass(frozen=True)
class CommandSink:
    """Run a shell command with each alert on its standard input."""

    name: str
    command: str
    timeout: float = TIMEOUT_SECONDS

    def send(self, alert: Alert) -> None:
        """Run the command; exit 0 delivers."""
        env = {**os.environ, "FORENSICS_ALERT_ID": alert.id, "FORENSICS_ALERT_KIND": alert.kind}
        try:
            done = subprocess.run(
                self.command,
                shell=True,
                input=json.dumps(alert.payload()).encode(),
                env=env,
                timeout=self.timeout,
                capture_output=True,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SinkError(f"{self.command!r}: timed out after {self.timeout:g} s") from exc
        except OSError as exc:
            raise SinkError(f"{self.command!r}: {exc}") from exc
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
            raise SinkError(f"{self.command!r}: exit {done.returncode} {tail[0]}".rstrip())


def parse_sink(spec: str, *, timeout: float = TIMEOUT_SECONDS, retries: int = RETRIES) -> Sink:
    """A sink from ``jsonl:PATH``, ``webhook:URL`` or ``command:CMD``.

    Examples
    --------
    >>> parse_sink("jsonl:alerts.jsonl").path.name
    'alerts.jsonl'
    """
    kind, _, target = spec.partition(":")
    if not target:
        raise ConfigError(
            f"--alert {spec!r}: write jsonl:PATH, webhook:URL or command:CMD "
            "(e.g. --alert jsonl:alerts.jsonl)"
        )
    if kind == "jsonl":
        return JsonlSink(spec, Path(target))
    if kind == "webhook":
        if not target.startswith(("http://", "https://")):
            raise ConfigError(f"--alert {spec!r}: a webhook URL starts with http:// or https://")
        return WebhookSink(spec, target, timeout=timeout, retries=retries)
    if kind == "command":
        return CommandSink(spec, target, timeout=timeout)
    raise ConfigError(f"--alert {spec!r}: unknown sink {kind!r}; use jsonl:, webhook: or command:")


def deliver(
    pending: Sequence[tuple[str, Alert]], sinks: Mapping[str, Sink]
) -> list[tuple[str, str, str | None]]:
    """Send pending alerts, in order per sink; (sink, alert id, error or None) per attempt.

    After a sink fails, its later alerts wait for the next cycle (order is kept).
    Never raises for a sink's failure.
    """
    failed: set[str] = set()
    results: list[tuple[str, str, str | None]] = []
    for name, alert in pending:
        sink = sinks.get(name)
        if sink is None or name in failed:
            continue
        try:
            sink.send(alert)
        except SinkError as exc:
            logger.warning("alert %s not delivered to %s: %s", alert.id, name, exc)
            failed.add(name)
            results.append((name, alert.id, str(exc)))
        except Exception as exc:  # a sink must never stop the watch
            logger.exception("alert %s: sink %s failed", alert.id, name)
            failed.add(name)
            results.append((name, alert.id, f"{type(exc).__name__}: {exc}"))
        else:
            results.append((name, alert.id, None))
    return results
