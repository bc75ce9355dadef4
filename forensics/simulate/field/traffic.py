"""Requests of the field family: when they come, who sends them, what they ask, where they run.

Arrival times follow each region's local day (consumer traffic peaks in the
evening, business traffic in office hours on weekdays) and a slow growth.
Users belong to a region and a segment and keep their client, tier, customer
and language; a user moves to a new client release once its adoption curve
passes the user's own lag, so releases ramp up over days and the old ones
decay. Batch sizes follow the load of the region at that minute.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from forensics.simulate.field.fleet import DAY_MS, HOUR_MS, MINUTE_MS, Fleet

__all__ = ["TASKS", "Traffic", "draw_traffic"]

TASKS = ("chat", "code", "summarize", "extraction", "analysis", "translation")

_TASK_WEIGHTS = {
    "app": (0.6, 0.1, 0.12, 0.04, 0.08, 0.06),
    "web-business": (0.4, 0.2, 0.2, 0.0, 0.2, 0.0),
    "cli": (0.15, 0.75, 0.0, 0.0, 0.1, 0.0),
    "sdk": (0.15, 0.2, 0.2, 0.3, 0.15, 0.0),
}
"""Task mix per kind of client."""

_PROMPT_MEDIAN = {"chat": 600, "code": 2500, "summarize": 6000, "extraction": 3000,
                  "analysis": 9000, "translation": 400}  # fmt: skip
_DOCUMENT_SHARE = {"chat": 0.02, "code": 0.04, "summarize": 0.12, "extraction": 0.08,
                   "analysis": 0.1, "translation": 0.0}  # fmt: skip
"""Share of requests carrying a long document (median 80k tokens, heavy tail)."""

LONG_CONTEXT_TOKENS = 131_072
"""Prompts above this go to the long-context pool."""

SESSION_GAP_MS = 30 * MINUTE_MS


@dataclass
class Traffic:
    """The request columns (numpy arrays, one entry per request, time-ordered) and latents."""

    columns: dict[str, np.ndarray]
    """Request-side columns as written: ts (epoch ms), request_id, model, ..."""
    load: np.ndarray
    """Load of the request's region at its minute, 0-1 of the region's peak."""
    segment: np.ndarray
    """0 consumer, 1 business."""
    first_in_session: np.ndarray
    """The request opens a session."""

    @property
    def rows(self) -> int:
        """Number of requests."""
        return len(self.columns["ts"])


def _profile(hours: np.ndarray, centre: float, width: float) -> np.ndarray:
    d = np.abs(hours - centre)
    d = np.minimum(d, 24 - d)
    return np.exp(-0.5 * (d / width) ** 2)


def _intensity(fleet: Fleet, minutes: np.ndarray) -> np.ndarray:
    """Arrival intensity per (region, segment, minute): shape (regions, 2, minutes)."""
    t = fleet.start + minutes * MINUTE_MS
    growth = 1 + fleet.growth * (t - fleet.start) / (fleet.end - fleet.start)
    out = np.empty((len(fleet.regions), 2, len(minutes)))
    for i, r in enumerate(fleet.regions):
        local = t + int(r.offset_hours * HOUR_MS)
        hours = (local % DAY_MS) / HOUR_MS
        weekday = ((local // DAY_MS) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        weekend = weekday >= 5
        consumer = 0.2 + 0.55 * _profile(hours, 12.5, 3.5) + 0.9 * _profile(hours, 20.5, 2.2)
        consumer = consumer * np.where(weekend, 1.12, 1.0)
        business = 0.08 + 1.0 * _profile(hours, 14.0, 3.2)
        business = business * np.where(weekend, 0.3, 1.0)
        out[i, 0] = r.weight * (1 - fleet.business_share) * consumer * growth
        out[i, 1] = r.weight * fleet.business_share * business * growth
    return out


def _weighted_pick(weights: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    cum = np.cumsum(weights)
    return np.minimum(np.searchsorted(cum, rng.random(n) * cum[-1], side="right"), len(weights) - 1)


def _hex_ids(rng: np.random.Generator, n: int, prefix: str, digits: int) -> np.ndarray:
    """``n`` random ids: ``prefix`` and ``digits`` hex digits (at most 30)."""
    high = rng.integers(0, 2**60, size=n, dtype=np.int64)
    low = rng.integers(0, 2**60, size=n, dtype=np.int64)
    return np.array(
        [
            f"{prefix}{h:015x}{lo:015x}"[: len(prefix) + digits]
            for h, lo in zip(high, low, strict=True)
        ],
        dtype=object,
    )


def draw_traffic(fleet: Fleet, rows: int, rng: np.random.Generator) -> Traffic:
    """One row per request, ``rows`` of them, time-ordered.

    Examples
    --------
    >>> from forensics.simulate.field.fleet import draw_fleet
    >>> fleet = draw_fleet(np.random.default_rng(1))
    >>> t = draw_traffic(fleet, 2000, np.random.default_rng(2))
    >>> t.rows, bool((np.diff(t.columns["ts"]) >= 0).all())
    (2000, True)
    """
    minutes = np.arange((fleet.end - fleet.start) // MINUTE_MS)
    lam = _intensity(fleet, minutes)
    peak = lam.sum(axis=1).max(axis=1)  # per region
    counts = rng.multinomial(rows, (lam / lam.sum()).ravel())
    cell = np.repeat(np.arange(counts.size), counts)
    region_i, segment, minute = np.unravel_index(cell, lam.shape)
    ts = fleet.start + minute * MINUTE_MS + rng.integers(0, MINUTE_MS, size=rows)
    order = np.argsort(ts, kind="stable")
    region_i, segment, minute, ts = region_i[order], segment[order], minute[order], ts[order]
    load = lam.sum(axis=1)[region_i, minute] / peak[region_i]

    regions = fleet.regions
    region = np.array([r.name for r in regions], dtype=object)[region_i]
    users = _users(fleet, rows, rng)
    user = np.empty(rows, dtype=np.int64)
    for ri in range(len(regions)):
        for seg in (0, 1):
            mask = (region_i == ri) & (segment == seg)
            pool = np.flatnonzero((users["region"] == ri) & (users["segment"] == seg))
            picked = pool[_weighted_pick(users["weight"][pool], int(mask.sum()), rng)]
            # a user of a customer onboarded later sends nothing before it
            late = users["from"][picked] > ts[mask]
            if late.any():
                steady = pool[users["from"][pool] <= fleet.start]
                picked[late] = steady[_weighted_pick(users["weight"][steady], int(late.sum()), rng)]
            user[mask] = picked
    language = users["language"][user].copy()
    for launch in fleet.launches:  # the launched language's speakers arrive from launch on
        li = next(i for i, r in enumerate(regions) if r.name == launch.region)
        mask = (region_i == li) & (segment == 0) & (ts >= launch.at)
        language[mask & (users["u"][user] < launch.share)] = launch.language
    client = users["client"][user]
    tier = users["tier"][user]
    org = users["org"][user]

    kind = np.where(
        np.isin(client, ["ios", "android"]) | ((client == "web") & (segment == 0)),
        "app",
        np.where(client == "web", "web-business", np.where(client == "cli", "cli", "sdk")),
    )
    task = np.empty(rows, dtype=object)
    for k, weights in _TASK_WEIGHTS.items():
        mask = kind == k
        w = np.tile(np.array(weights, dtype=float), (int(mask.sum()), 1))
        for shift in fleet.shifts:
            on = (ts[mask] >= shift.start) & (ts[mask] < shift.end)
            w[on, TASKS.index(shift.task)] *= shift.factor
        cum = np.cumsum(w, axis=1)
        pick = (rng.random(int(mask.sum()))[:, None] * cum[:, -1:] > cum).sum(axis=1)
        task[mask] = np.array(TASKS, dtype=object)[np.minimum(pick, len(TASKS) - 1)]

    prompt = np.empty(rows, dtype=np.int64)
    for name in TASKS:
        mask = task == name
        n = int(mask.sum())
        base = rng.lognormal(np.log(_PROMPT_MEDIAN[name]), 1.0, n)
        doc = rng.random(n) < _DOCUMENT_SHARE[name]
        base[doc] = rng.lognormal(np.log(80_000), 1.0, int(doc.sum()))
        prompt[mask] = np.maximum(8, base).astype(np.int64)

    models = fleet.models
    model_i = _pick_models(fleet, task, tier, segment, prompt, rng)
    model = np.array([m.name for m in models], dtype=object)[model_i]
    context = np.array([m.context for m in models])[model_i]
    max_tokens = _max_tokens(client, users["max_tokens"][user], context)
    over = prompt > context - max_tokens
    # clients cut what does not fit, a little below the window
    prompt[over] = context[over] - max_tokens[over] - rng.integers(500, 4000, int(over.sum()))

    model_version = np.array([m.base_version for m in models], dtype=object)[model_i]
    for snap in fleet.snapshots:
        mask = model == snap.model
        share = np.zeros(int(mask.sum()))
        for at, s in snap.steps:
            share[ts[mask] >= at] = s
        idx = np.flatnonzero(mask)
        model_version[idx[rng.random(idx.size) < share]] = snap.version

    client_version = _client_versions(fleet, client, users["lag"][user], ts)
    platform = _platforms(fleet, region_i, model_i, rng)
    server = _replicas(fleet, region, platform, ts, rng)

    pool = np.full(rows, "default", dtype=object)
    pool[(tier == "enterprise") & (rng.random(rows) < 0.8)] = "priority"
    batch_pool = (
        (kind == "sdk") & np.isin(task, ["extraction", "summarize"]) & (rng.random(rows) < 0.2)
    )
    pool[batch_pool] = "batch"
    pool[prompt > LONG_CONTEXT_TOKENS] = "long-context"

    cap = np.array([fleet.platforms[p].max_batch for p in platform])
    factor = np.select(
        [pool == "batch", pool == "long-context", pool == "priority"], [1.3, 0.08, 0.6], 1.0
    )
    replica_tilt = _replica_tilt(server)
    mean_batch = 1 + 0.45 * cap * load**1.5 * factor * replica_tilt
    batch = np.clip(np.rint(mean_batch * rng.lognormal(0, 0.3, rows)), 1, cap).astype(np.int64)

    surface = np.where(
        kind == "app", "app", np.where(rng.random(rows) < 0.18, "partner-cloud", "api")
    )
    surface = np.where(kind == "web-business", "app", surface).astype(object)

    temperature = np.where(kind == "app", 1.0, users["temperature"][user])
    greedy_task = np.isin(task, ["code", "extraction"]) & (kind != "app") & (rng.random(rows) < 0.5)
    temperature = np.where(greedy_task, 0.0, temperature)

    session, first = _sessions(user, ts, rng)
    cached = np.zeros(rows, dtype=np.int64)
    follow = ~first & (rng.random(rows) < 0.8)
    cached[follow] = (prompt[follow] * rng.beta(6, 2, int(follow.sum())) // 128 * 128).astype(
        np.int64
    )
    system = first & (rng.random(rows) < 0.15)
    cached[system] = np.minimum(prompt[system] // 1024 * 1024, 2048)
    cached = np.minimum(cached, prompt)

    columns = {
        "request_id": _hex_ids(rng, rows, "req_", 20),
        "ts": ts.astype(np.int64),
        "model": model,
        "model_version": model_version,
        "platform": platform,
        "routing_pool": pool,
        "surface": surface,
        "region": region,
        "server_id": server,
        "user_id": users["id"][user],
        "session_id": session,
        "client": client,
        "client_version": client_version,
        "customer_tier": tier,
        "org_id": org,
        "task": task,
        "prompt_language": language,
        "prompt_tokens": prompt,
        "cached_tokens": cached,
        "batch_size": batch,
        "temperature": temperature.astype(np.float64),
        "max_tokens": max_tokens,
    }
    return Traffic(columns, load, segment.astype(np.int8), first)


def _users(fleet: Fleet, rows: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Users per (region, segment) with their fixed attributes and activity weights."""
    parts: list[dict[str, np.ndarray]] = []
    total_weight = sum(r.weight for r in fleet.regions)
    for ri, region in enumerate(fleet.regions):
        for seg in (0, 1):
            share = (
                region.weight
                / total_weight
                * (fleet.business_share if seg else 1 - fleet.business_share)
            )
            n = max(40, int(rows * share / (60 if seg else 25)))
            u = {"region": np.full(n, ri), "segment": np.full(n, seg)}
            rank = rng.permutation(n) + 10.0
            u["weight"] = rank ** (-1.1)
            langs, lw = zip(*region.languages, strict=True)
            lang = np.array(langs, dtype=object)[_weighted_pick(np.array(lw), n, rng)]
            if seg:
                lang[rng.random(n) < 0.6] = "en"
            u["language"] = lang
            u["u"] = rng.random(n)
            u["lag"] = rng.beta(1.1, 1.3, n)
            u["from"] = np.full(n, fleet.start)
            if seg == 0:
                u["tier"] = np.where(rng.random(n) < 0.62, "free", "pro").astype(object)
                clients = np.array(["ios", "android", "web"], dtype=object)
                u["client"] = clients[_weighted_pick(np.array([0.4, 0.35, 0.25]), n, rng)]
                u["org"] = np.full(n, "personal", dtype=object)
            else:
                tiers = np.array(["pro", "team", "enterprise"], dtype=object)
                u["tier"] = tiers[_weighted_pick(np.array([0.3, 0.4, 0.3]), n, rng)]
                clients = np.array(["web", "cli", "sdk-python", "sdk-node"], dtype=object)
                u["client"] = clients[_weighted_pick(np.array([0.2, 0.15, 0.45, 0.2]), n, rng)]
                orgs = [o for o in fleet.orgs if o.region == region.name]
                org = np.full(n, "personal", dtype=object)
                member = u["tier"] != "pro"
                if orgs:
                    ow = np.array([o.weight for o in orgs])
                    pick = _weighted_pick(ow, int(member.sum()), rng)
                    org[member] = np.array([o.name for o in orgs], dtype=object)[pick]
                    starts = np.array(
                        [o.start if o.start is not None else fleet.start for o in orgs]
                    )
                    u["from"][member] = starts[pick]
                u["org"] = org
            u["temperature"] = rng.choice(
                [0.0, 0.2, 0.5, 0.7, 1.0], n, p=[0.3, 0.1, 0.2, 0.25, 0.15]
            )
            u["max_tokens"] = rng.choice([256, 512, 1024, 2048, 4096, 8192], n,
                                         p=[0.08, 0.12, 0.25, 0.2, 0.25, 0.1])  # fmt: skip
            parts.append(u)
    users = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    users["id"] = _hex_ids(rng, len(users["region"]), "u_", 10)
    return users


def _pick_models(
    fleet: Fleet,
    task: np.ndarray,
    tier: np.ndarray,
    segment: np.ndarray,
    prompt: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    sizes = np.array([m.size for m in fleet.models])
    rows = len(task)
    size = np.where(
        segment == 0,
        np.where(tier == "free", np.where(rng.random(rows) < 0.8, "small", "large"),
                 np.where(rng.random(rows) < 0.65, "large", "small")),
        np.where(task == "code", rng.choice(["code", "large", "small"], rows, p=[0.5, 0.3, 0.2]),
                 np.where(rng.random(rows) < 0.5, "large", "small")),
    )  # fmt: skip
    out = np.empty(rows, dtype=np.int64)
    for s in ("large", "small", "code"):
        mask = size == s
        choices = np.flatnonzero(sizes == s)
        if choices.size == 0:
            choices = np.flatnonzero(sizes == "large")
        out[mask] = choices[rng.integers(0, choices.size, int(mask.sum()))]
    long = np.flatnonzero(np.array([m.context for m in fleet.models]) >= 1_000_000)
    needs_long = prompt > 190_000
    out[needs_long] = long[rng.integers(0, long.size, int(needs_long.sum()))]
    return out


def _max_tokens(client: np.ndarray, chosen: np.ndarray, context: np.ndarray) -> np.ndarray:
    out = np.where(np.isin(client, ["ios", "android", "web"]), 8192, chosen)
    out = np.where(client == "cli", 16384, out)
    return np.minimum(out, context // 4).astype(np.int64)


def _client_versions(
    fleet: Fleet, client: np.ndarray, lag: np.ndarray, ts: np.ndarray
) -> np.ndarray:
    """The newest release each user has adopted by then (adoption: Weibull ramp past the user's lag)."""
    out = np.empty(len(client), dtype=object)
    for name, releases in fleet.releases.items():
        mask = client == name
        t = ts[mask]
        q = lag[mask]
        version = np.full(t.size, releases[0].version, dtype=object)
        for rel in releases[1:]:
            age = np.maximum(t - rel.at, 0) / (rel.ramp_days * DAY_MS)
            adopted = 0.97 * (1 - np.exp(-(age**1.5)))
            version[(t >= rel.at) & (adopted >= q)] = rel.version
        out[mask] = version
    return out


def _platforms(
    fleet: Fleet, region_i: np.ndarray, model_i: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    out = np.empty(len(region_i), dtype=object)
    for ri, region in enumerate(fleet.regions):
        for mi, model in enumerate(fleet.models):
            mask = (region_i == ri) & (model_i == mi)
            options = [p for p in model.platforms if p in region.platforms]
            out[mask] = np.array(options, dtype=object)[
                rng.integers(0, len(options), int(mask.sum()))
            ]
    return out


def _replicas(
    fleet: Fleet, region: np.ndarray, platform: np.ndarray, ts: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    out = np.empty(len(region), dtype=object)
    groups: dict[tuple[str, str], list] = {}
    for rep in fleet.replicas:
        groups.setdefault((rep.region, rep.platform), []).append(rep)
    for (reg, plat), reps in groups.items():
        mask = (region == reg) & (platform == plat)
        if not mask.any():
            continue
        t = ts[mask]
        active = np.stack(
            [
                (t >= (r.start if r.start is not None else fleet.start))
                & (t < (r.end if r.end is not None else fleet.end))
                for r in reps
            ],
            axis=1,
        )
        k = np.floor(rng.random(t.size) * active.sum(axis=1)).astype(np.int64)
        pick = (np.cumsum(active, axis=1) <= k[:, None]).sum(axis=1)
        out[mask] = np.array([r.name for r in reps], dtype=object)[pick]
    return out


def _replica_tilt(server: np.ndarray) -> np.ndarray:
    """Each replica's own batch level (hardware and placement differ a little)."""
    names, inverse = np.unique(server.astype(str), return_inverse=True)
    tilt = np.array([0.85 + 0.3 * ((hash_name(n) % 1000) / 1000) for n in names])
    return tilt[inverse]


def hash_name(name: str) -> int:
    """A stable small hash of a text (Python's ``hash`` changes per process).

    Examples
    --------
    >>> hash_name("a") == hash_name("a")
    True
    """
    h = 2166136261
    for ch in name.encode():
        h = ((h ^ ch) * 16777619) % 2**32
    return h


def _sessions(
    user: np.ndarray, ts: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Session ids (a new one after 30 minutes of silence) and which requests open one."""
    order = np.lexsort((ts, user))
    u, t = user[order], ts[order]
    new = np.ones(len(u), dtype=bool)
    new[1:] = (u[1:] != u[:-1]) | (t[1:] - t[:-1] > SESSION_GAP_MS)
    number = np.cumsum(new) - 1
    ids = _hex_ids(rng, int(number[-1]) + 1 if len(number) else 0, "s_", 14)
    session = np.empty(len(u), dtype=object)
    first = np.empty(len(u), dtype=bool)
    session[order] = ids[number]
    first[order] = new
    return session, first
