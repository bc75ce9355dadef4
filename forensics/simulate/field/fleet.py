"""The serving fleet of one field-family seed: regions, platforms, models, releases, replicas.

Everything that exists or changes in the world before any request is drawn:
regions in their time zones with their languages, hardware platforms, models
with their snapshots rolling out, client release trains, replicas added and
drained, customers onboarded, benign deploys and traffic shifts, and the
change events they leave in ``events.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

__all__ = [
    "CLIENTS",
    "DAY_MS",
    "HOUR_MS",
    "MINUTE_MS",
    "Event",
    "Fleet",
    "Launch",
    "ModelSpec",
    "Org",
    "Platform",
    "Region",
    "Release",
    "Replica",
    "Shift",
    "Snapshot",
    "draw_fleet",
    "iso",
]

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS


def iso(ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC, to the second.

    Examples
    --------
    >>> iso(0)
    '1970-01-01T00:00:00Z'
    """
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Region:
    """A serving region and the people near it."""

    name: str
    """As logged in ``region``."""
    offset_hours: float
    """Its users' local time minus UTC."""
    weight: float
    """Share of traffic before diurnal shaping."""
    languages: tuple[tuple[str, float], ...]
    """prompt_language mix of its consumer users."""
    platforms: tuple[str, ...]
    """Hardware it hosts."""


@dataclass(frozen=True)
class Platform:
    """A hardware platform."""

    name: str
    """As logged in ``platform``."""
    max_batch: int
    """Largest batch a replica runs."""
    speed: float
    """Decode time factor (1 = reference)."""
    prefill_ms: float
    """Milliseconds per uncached prompt token."""


@dataclass(frozen=True)
class ModelSpec:
    """A model family as served."""

    name: str
    """As logged in ``model``."""
    size: str
    """large, small or code: decides who asks for it."""
    context: int
    """Context window in tokens."""
    platforms: tuple[str, ...]
    """Where it is served."""
    decode_ms: float
    """Milliseconds per output token at batch 1 on the reference platform."""
    quality: float
    """Factor on the rate of bad answers."""
    code_quality: float
    """Factor on the rate of broken code."""
    verbosity: float
    """Factor on output length."""
    base_version: str
    """The snapshot serving when the data starts."""


@dataclass(frozen=True)
class Snapshot:
    """A new snapshot of a model rolled out during the data."""

    model: str
    """The model."""
    version: str
    """As logged in ``model_version``."""
    steps: tuple[tuple[int, float], ...]
    """(epoch ms, share of the model's traffic from then on); the last may be a rollback to 0."""


@dataclass(frozen=True)
class Release:
    """A client release."""

    client: str
    """As logged in ``client``."""
    version: str
    """As logged in ``client_version``."""
    at: int
    """Release time (epoch ms); before the data start for versions already out."""
    ramp_days: float
    """Adoption time scale."""


@dataclass(frozen=True)
class Replica:
    """One serving replica."""

    name: str
    """As logged in ``server_id``."""
    region: str
    """Its region."""
    platform: str
    """Its hardware."""
    start: int | None
    """Added at (epoch ms); None = before the data."""
    end: int | None
    """Drained at; None = still serving."""


@dataclass(frozen=True)
class Org:
    """A customer organisation."""

    name: str
    """As logged in ``org_id``."""
    region: str
    """Where its users are."""
    start: int | None
    """Onboarded at (its first requests); None = before the data."""
    weight: float
    """Share of its region's business traffic."""


@dataclass(frozen=True)
class Shift:
    """A benign traffic mix shift: one task's share multiplied for a while."""

    task: str
    """The task."""
    factor: float
    """Multiplier on its weight."""
    start: int
    """From (epoch ms)."""
    end: int
    """Until."""


@dataclass(frozen=True)
class Launch:
    """A language launched in a region during the data."""

    language: str
    """prompt_language tag."""
    region: str
    """Where."""
    share: float
    """Share of that region's consumer users speaking it."""
    at: int
    """Launch time (epoch ms)."""


@dataclass(frozen=True)
class Event:
    """A change event for events.csv."""

    ts: int
    """Epoch ms."""
    kind: str
    """deploy, release, rollout, rollback, capacity, config, customer, launch, campaign."""
    description: str
    """One line."""
    scope: str
    """``column=value; column=value,value``."""


@dataclass(frozen=True)
class Fleet:
    """Everything one seed's world holds before any request."""

    start: int
    """First request time bound (epoch ms, midnight UTC)."""
    end: int
    """Exclusive end."""
    regions: tuple[Region, ...]
    """Serving regions."""
    platforms: dict[str, Platform]
    """Hardware by name."""
    models: tuple[ModelSpec, ...]
    """Model families."""
    snapshots: tuple[Snapshot, ...]
    """New snapshots rolled out during the data."""
    releases: dict[str, tuple[Release, ...]]
    """Per client, its releases in time order (the first ones before the data)."""
    replicas: tuple[Replica, ...]
    """Every replica ever serving."""
    orgs: tuple[Org, ...]
    """Customer organisations."""
    shifts: tuple[Shift, ...]
    """Benign mix shifts."""
    launches: tuple[Launch, ...]
    """Languages launched during the data."""
    events: tuple[Event, ...]
    """Change events, time-ordered."""
    growth: float
    """Traffic growth over the whole period (0.2 = 20% more at the end)."""
    business_share: float
    """Share of traffic from API and business users."""
    eval_share: float
    """Share of requests an automatic grader scores."""
    notes: tuple[str, ...] = field(default=())
    """Benign things worth listing in the truth (for null runs)."""

    @property
    def days(self) -> float:
        """Length of the data in days."""
        return (self.end - self.start) / DAY_MS


REGIONS: tuple[tuple[str, float, float, dict[str, float]], ...] = (
    ("us-east", -5, 1.0, {"en": 0.86, "es": 0.08, "zh-Hans": 0.03, "ko": 0.03}),
    ("us-west", -8, 0.8, {"en": 0.8, "es": 0.08, "zh-Hans": 0.05, "ja": 0.03, "ko": 0.04}),
    ("eu-west", 0, 0.7, {"en": 0.55, "fr": 0.2, "es": 0.15, "pt-BR": 0.03, "de": 0.07}),
    ("eu-central", 1, 0.6, {"de": 0.55, "en": 0.35, "fr": 0.1}),
    ("ap-northeast", 9, 0.6, {"ja": 0.62, "ko": 0.2, "en": 0.13, "zh-Hans": 0.05}),
    ("ap-southeast", 7, 0.5, {"th": 0.4, "en": 0.3, "zh-Hans": 0.2, "id": 0.1}),
    ("sa-east", -3, 0.4, {"pt-BR": 0.75, "es": 0.15, "en": 0.1}),
)
"""Region catalog: name, UTC offset, weight, consumer language mix."""

LAUNCHABLE = (("vi", "ap-southeast"), ("hi", "us-east"), ("hi", "eu-west"), ("vi", "us-west"))
"""Languages that may launch during the data, and where."""

PLATFORMS = (
    Platform("h100", 256, 1.0, 0.020),
    Platform("a100", 192, 1.5, 0.035),
    Platform("tpu-v5e", 384, 1.2, 0.025),
    Platform("tpu-v5p", 512, 0.85, 0.015),
    Platform("trn2", 256, 1.1, 0.022),
    Platform("mi300x", 320, 0.95, 0.018),
)
"""Platform catalog."""

MODELS = (
    ("atlas-large", "large", 1_000_000, 24.0, 0.8, 0.9, 1.2),
    ("atlas-mini", "small", 200_000, 8.0, 1.4, 1.3, 0.8),
    ("atlas-code", "code", 200_000, 14.0, 1.0, 0.6, 1.1),
    ("nimbus-pro", "large", 200_000, 20.0, 0.9, 1.0, 1.0),
    ("nimbus-flash", "small", 1_000_000, 7.0, 1.3, 1.2, 0.9),
    ("sable-7", "small", 200_000, 10.0, 1.6, 1.5, 0.9),
)
"""Model catalog: name, size, context, decode ms/token, quality, code quality, verbosity."""

CLIENTS: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "ios": ((6.0, 10.0), (2.0, 4.0)),
    "android": ((6.0, 10.0), (3.0, 5.0)),
    "web": ((4.0, 7.0), (0.1, 0.3)),
    "cli": ((6.0, 11.0), (2.0, 5.0)),
    "sdk-python": ((8.0, 14.0), (5.0, 12.0)),
    "sdk-node": ((9.0, 16.0), (5.0, 12.0)),
}
"""Clients: (days between releases), (adoption ramp in days)."""

_SYLLABLES = ("ka", "lo", "mi", "ren", "to", "vi", "sa", "nor", "el", "qu", "da", "fen", "ix", "ru")


def _minute(rng: np.random.Generator, start: int, lo_day: float, hi_day: float) -> int:
    """An arbitrary minute (not on an hour) between two day offsets."""
    t = start + int(rng.uniform(lo_day, hi_day) * DAY_MS)
    t -= t % MINUTE_MS
    if t % HOUR_MS == 0:
        t += int(rng.integers(1, 59)) * MINUTE_MS
    return t


def _version_name(client: str, n: int, at: int, patch: int = 0) -> str:
    if client in ("ios", "android"):
        return f"5.{n}.{patch}"
    if client == "web":
        return datetime.fromtimestamp(at / 1000, UTC).strftime("%Y.%m.%d") + f".{patch}"
    if client == "cli":
        return f"0.{n}.{patch}"
    if client == "sdk-python":
        return f"1.{n}.{patch}"
    return f"4.{n}.{patch}"


def _releases(
    rng: np.random.Generator, start: int, end: int
) -> tuple[dict[str, tuple[Release, ...]], list[Event]]:
    out: dict[str, tuple[Release, ...]] = {}
    events: list[Event] = []
    mobile_base = int(rng.integers(18, 40))
    for client, ((gap_lo, gap_hi), (ramp_lo, ramp_hi)) in CLIENTS.items():
        n = mobile_base if client in ("ios", "android") else int(rng.integers(10, 60))
        gap = rng.uniform(gap_lo, gap_hi)
        # two versions already out: the current one and an older one stragglers keep
        t = start - int(rng.uniform(1.5, 2.5) * gap * DAY_MS)
        items = []
        while True:
            ramp = float(rng.uniform(ramp_lo, ramp_hi))
            items.append(Release(client, _version_name(client, n, t), t, ramp))
            if t >= start:
                events.append(
                    Event(
                        t,
                        "release",
                        f"{client} {items[-1].version} released",
                        f"client={client}; client_version={items[-1].version}",
                    )
                )
            if rng.random() < 0.2 and t > start:  # a hotfix on top of it
                hot = t + int(rng.uniform(0.8, 2.5) * DAY_MS)
                hot -= hot % MINUTE_MS
                if hot < end - DAY_MS:
                    version = _version_name(client, n, hot, patch=1)
                    items.append(Release(client, version, hot, ramp * 0.7))
                    events.append(
                        Event(
                            hot,
                            "release",
                            f"{client} {version} hotfix released",
                            f"client={client}; client_version={version}",
                        )
                    )
            n += 1
            t = _minute(rng, t, gap * 0.7, gap * 1.3)
            if t >= end - DAY_MS // 2:
                break
        out[client] = tuple(sorted(items, key=lambda r: r.at))
    return out, events


def draw_fleet(rng: np.random.Generator, *, null: bool = False) -> Fleet:
    """The world of one seed (``null``: draw more of the benign changes).

    Examples
    --------
    >>> fleet = draw_fleet(np.random.default_rng(1))
    >>> 21 <= fleet.days <= 35 and len(fleet.regions) >= 4
    True
    """
    day0 = datetime(2025, 1, 6, tzinfo=UTC).timestamp() * 1000 + int(rng.integers(0, 520)) * DAY_MS
    start = int(day0)
    end = start + int(rng.integers(21, 36)) * DAY_MS
    events: list[Event] = []

    order = rng.permutation(len(REGIONS))
    chosen = sorted(
        {0, *(int(i) for i in order[: int(rng.integers(4, 7))])}, key=lambda i: REGIONS[i][0]
    )
    platform_names = sorted(
        str(p) for p in rng.choice([p.name for p in PLATFORMS], int(rng.integers(3, 5)), False)
    )
    platforms = {p.name: p for p in PLATFORMS if p.name in platform_names}

    picks = list(rng.permutation(len(MODELS)))
    needed = []
    for size in ("large", "small"):
        needed.append(next(i for i in picks if MODELS[i][1] == size))
    needed.append(next(i for i in picks if MODELS[i][2] >= 1_000_000))
    extra = [i for i in picks if i not in needed][: int(rng.integers(0, 3))]
    model_ids = sorted(set(needed) | set(extra))
    models = []
    used_dates: set[str] = set()
    for i in model_ids:
        name, size, context, decode, quality, code_q, verbosity = MODELS[i]
        served = tuple(
            sorted(str(p) for p in rng.choice(platform_names, int(rng.integers(1, 4)), False))
        )
        while True:
            base = datetime.fromtimestamp(
                (start - int(rng.integers(20, 200)) * DAY_MS) / 1000, UTC
            ).strftime("%Y%m%d")
            if base not in used_dates:
                break
        used_dates.add(base)
        models.append(
            ModelSpec(name, size, context, served, decode, quality, code_q, verbosity, base)
        )

    regions = []
    for i in chosen:
        name, offset, weight, languages = REGIONS[i]
        hosted = set(
            str(p)
            for p in rng.choice(
                platform_names, min(len(platform_names), int(rng.integers(2, 4))), False
            )
        )
        for m in models:  # every model is served in every region
            if not hosted & set(m.platforms):
                hosted.add(m.platforms[int(rng.integers(len(m.platforms)))])
        regions.append(
            Region(name, offset, weight * float(rng.uniform(0.7, 1.3)),
                   tuple(languages.items()), tuple(sorted(hosted)))
        )  # fmt: skip

    snapshots = []
    days = (end - start) / DAY_MS
    rollout_models = [m for m in models if rng.random() < 0.55] or [
        models[int(rng.integers(len(models)))]
    ]
    for m in rollout_models:
        t0 = _minute(rng, start, 0.12 * days, 0.7 * days)
        steps = [(t0, 0.02)]
        t = t0
        for share in (0.1, 0.5, 1.0):
            t = _minute(rng, t, 0.6, 2.0)
            steps.append((t, share))
        while True:
            version = datetime.fromtimestamp(
                (t0 - int(rng.integers(2, 12)) * DAY_MS) / 1000, UTC
            ).strftime("%Y%m%d")
            if version not in used_dates:
                break
        used_dates.add(version)
        if rng.random() < 0.15 and steps[-1][0] < end - DAY_MS:  # a benign rollback
            steps.append((_minute(rng, steps[-1][0], 0.3, 3.0), 0.0))
        snapshots.append(Snapshot(m.name, version, tuple(steps)))
        for ts, share in steps:
            if ts >= end:
                continue
            kind = "rollback" if share == 0 else "rollout"
            events.append(Event(ts, kind, f"{m.name} {version} at {share:.0%} of traffic",
                                f"model={m.name}; model_version={version}"))  # fmt: skip

    releases, release_events = _releases(rng, start, end)
    events.extend(release_events)

    replicas = []
    for r in regions:
        short = r.name
        for p in r.platforms:
            for k in range(int(rng.integers(2, 5))):
                replicas.append(Replica(f"{p}-{short}-{k + 1:02d}", r.name, p, None, None))
    for _ in range(int(rng.integers(2, 5))):  # scale-ups
        r = regions[int(rng.integers(len(regions)))]
        p = r.platforms[int(rng.integers(len(r.platforms)))]
        k = sum(1 for x in replicas if x.region == r.name and x.platform == p)
        at = _minute(rng, start, 0.1 * days, 0.8 * days)
        replicas.append(Replica(f"{p}-{r.name}-{k + 1:02d}", r.name, p, at, None))
        events.append(Event(at, "capacity", f"replica {replicas[-1].name} added",
                            f"server_id={replicas[-1].name}"))  # fmt: skip
    for _ in range(int(rng.integers(0, 3))):  # drains of replicas with siblings left
        i = int(rng.integers(len(replicas)))
        rep = replicas[i]
        siblings = [x for x in replicas if x.region == rep.region and x.platform == rep.platform]
        if len(siblings) < 3 or rep.end is not None or rep.start is not None:
            continue
        at = _minute(rng, start, 0.3 * days, 0.9 * days)
        replicas[i] = Replica(rep.name, rep.region, rep.platform, rep.start, at)
        events.append(Event(at, "capacity", f"replica {rep.name} drained", f"server_id={rep.name}"))

    orgs = []
    used_names: set[str] = set()
    for r in regions:
        for _ in range(int(rng.integers(4, 10))):
            while True:
                name = "org-" + "".join(str(s) for s in rng.choice(_SYLLABLES, 3))
                if name not in used_names:
                    break
            used_names.add(name)
            orgs.append(Org(name, r.name, None, float(rng.pareto(1.2) + 0.2)))
    for _ in range(int(rng.integers(1, 3))):  # onboarded during the data
        r = regions[int(rng.integers(len(regions)))]
        while True:
            name = "org-" + "".join(str(s) for s in rng.choice(_SYLLABLES, 3))
            if name not in used_names:
                break
        used_names.add(name)
        at = _minute(rng, start, 0.15 * days, 0.7 * days)
        orgs.append(Org(name, r.name, at, float(rng.uniform(1.0, 3.0))))
        events.append(Event(at, "customer", f"{name} onboarded", f"org_id={name}"))

    notes = []
    for _ in range(int(rng.integers(3, 9))):  # benign deploys and config changes
        at = _minute(rng, start, 0.05 * days, 0.95 * days)
        if rng.random() < 0.6:
            p = platform_names[int(rng.integers(len(platform_names)))]
            build = f"{int(rng.integers(100, 999))}"
            events.append(
                Event(at, "deploy", f"inference server build {build} on {p}", f"platform={p}")
            )
        else:
            r = regions[int(rng.integers(len(regions)))]
            events.append(
                Event(at, "config", f"autoscaler target changed in {r.name}", f"region={r.name}")
            )
    notes.append("benign deploys and config changes (events.csv)")

    shifts = []
    if rng.random() < (0.9 if null else 0.3):
        task = str(rng.choice(["code", "summarize", "extraction", "translation"]))
        s0 = _minute(rng, start, 0.2 * days, 0.7 * days)
        s1 = s0 + int(rng.uniform(3, 8) * DAY_MS)
        shifts.append(Shift(task, float(rng.uniform(1.8, 3.0)), s0, s1))
        events.append(Event(s0, "campaign", f"promotion of {task} features", f"task={task}"))
        notes.append(
            f"traffic mix shift: task {task} x{shifts[-1].factor:.1f} for {((s1 - s0) / DAY_MS):.1f} days"
        )
    launches = []
    present = {lang for r in regions for lang, _ in r.languages}
    if rng.random() < (0.7 if null else 0.25):
        options = [(lang, reg) for lang, reg in LAUNCHABLE
                   if lang not in present and reg in {r.name for r in regions}]  # fmt: skip
        if options:
            lang, reg = options[int(rng.integers(len(options)))]
            at = _minute(rng, start, 0.2 * days, 0.6 * days)
            launches.append(Launch(lang, reg, float(rng.uniform(0.08, 0.2)), at))
            events.append(Event(at, "launch", f"{lang} launched in {reg}",
                                f"prompt_language={lang}; region={reg}"))  # fmt: skip
            notes.append(f"new language {lang} in {reg} from {iso(at)}")
    notes.append("new releases, snapshots, replicas and customers as good as their siblings")
    notes.append("baselines drifting by day, week and trend")

    events = [e for e in events if start <= e.ts < end]
    events.sort(key=lambda e: (e.ts, e.kind, e.scope))
    return Fleet(
        start=start,
        end=end,
        regions=tuple(regions),
        platforms=platforms,
        models=tuple(models),
        snapshots=tuple(snapshots),
        releases=releases,
        replicas=tuple(replicas),
        orgs=tuple(orgs),
        shifts=tuple(shifts),
        launches=tuple(launches),
        events=tuple(events),
        growth=float(rng.uniform(0.0, 0.3)),
        business_share=float(rng.uniform(0.35, 0.55)),
        eval_share=float(rng.uniform(0.05, 0.10)),
        notes=tuple(notes),
    )
