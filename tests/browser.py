"""Serving notebooks to Debian's headless Chromium: Voilà or JupyterLab on loopback, offline.

Helpers of the browser tests (``tests/test_browser.py``, and the report's and
notebooks' offline checks) and of the dashboard benchmark
(``bench/dashboard.py``): start a server on a free loopback port with a token,
open Chromium with every request that leaves the machine refused, collect what
the page says in its console, and stop everything the server started.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SERVER_SECONDS = 120
"""A server listens within this long, on a slow machine."""


class ServerFailed(RuntimeError):
    """The server exited or never listened (the message holds the end of its log)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerFailed(f"exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise ServerFailed(
        f"did not listen on port {port} within {timeout} s:\n{log.read_text()[-3000:]}"
    )


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (Linux /proc), e.g. the kernels a server started."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def stop(proc: subprocess.Popen) -> list[int]:
    """Stop a server and everything it started; the ids of processes that had to be killed."""
    started = _descendants(proc.pid)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # Voilà and Lab shut their kernels down on SIGTERM
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    deadline = time.monotonic() + 15
    while any(_alive(p) for p in started) and time.monotonic() < deadline:
        time.sleep(0.2)
    survivors = [p for p in started if _alive(p)]
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    return survivors


@dataclass
class Server:
    """A running Voilà or JupyterLab: its URL (with the token) and its log."""

    url: str
    log: Path
    port: int
    survivors: list[int] = field(default_factory=list)
    """Processes still alive after stopping it (killed; a test should fail on them)."""


@contextlib.contextmanager
def serve(
    kind: str, target: Path, *, env: Mapping[str, str], log: Path, cwd: Path
) -> Iterator[Server]:
    """Serve a notebook with Voilà (``kind="voila"``) or a folder with JupyterLab (``"lab"``)."""
    port, token = free_port(), secrets.token_hex(16)
    if kind == "voila":
        args = [
            "-m", "voila", str(target), "--no-browser", f"--port={port}",
            "--Voila.ip=127.0.0.1", f"--token={token}", "--show_tracebacks=True",
        ]  # fmt: skip
        url = f"http://127.0.0.1:{port}/?token={token}"
    else:
        args = [
            "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={target}",
            "--LabApp.news_url=None", "--allow-root", "--LabApp.check_for_updates_class="
            "jupyterlab.NeverCheckForUpdate",
        ]  # fmt: skip
        url = f"http://127.0.0.1:{port}/lab?token={token}"
    server = Server(url, log, port)
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, *args],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=cwd,
        )
        try:
            _wait_for_port(port, proc, log, SERVER_SECONDS)
            yield server
        finally:
            server.survivors = stop(proc)


@dataclass
class Console:
    """What a page logged, and the requests it tried to send off the machine (refused)."""

    messages: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def vega_warnings(self) -> list[str]:
        """Vega and Vega-Lite's warnings (they log ``WARN ...``)."""
        return [text for kind, text in self.messages if "WARN" in text or "[Vega" in text]


def offline_page(browser: Any, port: int, *, viewport: Mapping[str, int]) -> tuple[Any, Console]:
    """A page that may talk to 127.0.0.1:``port`` only, and what it logs."""
    page = browser.new_page(viewport=dict(viewport))
    console = Console()
    page.on("console", lambda m: console.messages.append((m.type, m.text)))
    page.on("pageerror", lambda e: console.errors.append(str(e)))
    local = (f"http://127.0.0.1:{port}/", f"ws://127.0.0.1:{port}/")

    def route(r: Any) -> None:
        if r.request.url.startswith(local):
            r.continue_()
        else:
            console.refused.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    return page, console


def launch(playwright: Any) -> Any:
    """Debian's chromium, headless (never a downloaded browser)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)


def notebook(path: Path, cells: Sequence[str]) -> Path:
    """Write a notebook of these code cells (no outputs) to ``path``."""
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "metadata": {},
                "source": src,
                "outputs": [],
                "execution_count": None,
            }
            for src in cells
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


def drag(
    page: Any, box: Mapping[str, float], start: tuple[float, float], end: tuple[float, float]
) -> None:
    """Drag the mouse across a box, from and to fractions of its width and height."""
    x0, y0 = box["x"] + box["width"] * start[0], box["y"] + box["height"] * start[1]
    x1, y1 = box["x"] + box["width"] * end[0], box["y"] + box["height"] * end[1]
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
    page.mouse.move(x1, y1, steps=5)
    page.mouse.up()
