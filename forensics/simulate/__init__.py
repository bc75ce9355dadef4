"""Synthetic incidents with ground truth: a generic engine and a library of scenarios as data.

A scenario is a TOML file in ``forensics/simulate/scenarios/`` (format: see
``forensics.simulate.spec``); the ``random`` family builds a different
scenario from each seed. ``simulate`` writes three files to a directory:

* ``requests.parquet``: one row per request, every canonical column plus the
  scenario's extra columns, no ground truth;
* ``events.csv``: change events (``ts, kind, description, scope``);
* ``truth.json``: the injected bugs (predicate, window, symptoms, what was
  injected and how much shows) and the red herrings.

The same scenario, rows and seed give the same bytes in all three files.

>>> "random" in SCENARIOS
True
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from forensics.errors import ConfigError
from forensics.simulate.spec import Scenario, merge_base, parse_scenario

__all__ = ["SCENARIOS", "ScenarioEntry", "SimulationResult", "load_scenario", "simulate"]

DEFAULT_SEED = 7
"""Seed used when none is given (the shipped sample's)."""


@dataclass(frozen=True)
class ScenarioEntry:
    """One scenario of the library, as ``forensics simulate --list`` shows it."""

    name: str
    """Name passed to ``--scenario``."""
    description: str
    """One line."""
    rows: int
    """Default number of requests."""
    kind: Literal["file", "random"]
    """A fixed scenario (a TOML file) or the random family (a scenario per seed)."""
    data: dict[str, Any] = field(repr=False)
    """The parsed TOML."""

    def load(self, seed: int = DEFAULT_SEED) -> Scenario:
        """The checked scenario (for the random family: the one drawn from ``seed``)."""
        if self.kind == "random":
            from forensics.simulate.randomized import random_scenario

            return parse_scenario(
                random_scenario(seed, self.data), source=f"{self.name} (seed {seed})"
            )
        return parse_scenario(self.data, source=f"{self.name}.toml")


def _read(name: str) -> dict[str, Any]:
    """A scenario file of the package, merged onto its base file if it names one."""
    folder = resources.files(__package__).joinpath("scenarios")
    data = tomllib.loads(folder.joinpath(name).read_text("utf-8"))
    if "base" in data:
        return merge_base(_read(data["base"]), data)
    return data


def _library() -> dict[str, ScenarioEntry]:
    """Every scenario file of the package (files starting with _ are bases, not scenarios)."""
    entries = {}
    folder = resources.files(__package__).joinpath("scenarios")
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if not item.name.endswith(".toml") or item.name.startswith("_"):
            continue
        data = _read(item.name)
        kind: Literal["file", "random"] = "random" if data.get("kind") == "random" else "file"
        entries[data["name"]] = ScenarioEntry(
            data["name"], data["description"], int(data["rows"]), kind, data
        )
    return entries


SCENARIOS: dict[str, ScenarioEntry] = _library()
"""The scenario library by name."""


def load_scenario(name: str | Path, *, seed: int = DEFAULT_SEED) -> Scenario:
    """A scenario of the library by name, or a scenario TOML file by path.

    Examples
    --------
    >>> load_scenario("random", seed=1).name
    'random'
    """
    if str(name) in SCENARIOS:
        return SCENARIOS[str(name)].load(seed)
    path = Path(name)
    if path.suffix == ".toml" and path.is_file():
        try:
            data = tomllib.loads(path.read_text("utf-8"))
            if "base" in data:
                # A base next to the file, or one of the library's (e.g. "_fleet.toml").
                local = path.parent / data["base"]
                base = (
                    tomllib.loads(local.read_text("utf-8"))
                    if local.is_file()
                    else _read(data["base"])
                )
                data = merge_base(base, data)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc}); fix the file") from None
        except FileNotFoundError:
            raise ConfigError(
                f"{path}: base {data['base']!r} is neither next to the file nor one of the "
                "library's bases (_fleet.toml)"
            ) from None
        return parse_scenario(data, source=str(path))
    raise ConfigError(
        f"unknown scenario {str(name)!r}; choose one of {', '.join(SCENARIOS)} "
        "(forensics simulate --list), or give the path of a scenario .toml file"
    )


@dataclass(frozen=True)
class SimulationResult:
    """What ``simulate`` wrote."""

    scenario: str
    """Scenario name."""
    seed: int
    """Seed used."""
    rows: int
    """Requests written."""
    requests: Path
    """requests.parquet."""
    events: Path
    """events.csv."""
    truth: Path
    """truth.json."""


def simulate(
    scenario: str | Path | Scenario,
    *,
    rows: int | None = None,
    seed: int = DEFAULT_SEED,
    out: str | Path,
) -> SimulationResult:
    """Generate a scenario and write requests.parquet, events.csv and truth.json to ``out``.

    Parameters
    ----------
    scenario
        A library name (see ``SCENARIOS``), a path to a scenario TOML file, or a ``Scenario``.
    rows
        Number of requests; the scenario's default when None.
    seed
        Random seed: the same seed gives the same bytes.
    out
        Directory to write to (created if needed; the three files are replaced).

    Returns
    -------
    SimulationResult
        The paths written and the row count.
    """
    from forensics.simulate.engine import generate
    from forensics.simulate.output import events_csv, truth, write_requests

    spec = scenario if isinstance(scenario, Scenario) else load_scenario(scenario, seed=seed)
    n = spec.rows if rows is None else int(rows)
    if n < 1:
        raise ConfigError(f"rows must be at least 1, got {n}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    chunks, tallies = generate(spec, rows=n, seed=seed)
    requests = out / "requests.parquet"
    written = write_requests(requests, spec, chunks)
    events = out / "events.csv"
    events.write_text(events_csv(spec.all_events()), encoding="utf-8", newline="")
    truth_path = out / "truth.json"
    truth_path.write_text(truth(spec, seed=seed, rows=written, tallies=tallies), encoding="utf-8")
    return SimulationResult(spec.name, seed, written, requests, events, truth_path)
