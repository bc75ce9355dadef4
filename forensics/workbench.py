"""The Workbench: the one object a notebook works with, over one DuckDB file.

``forensics.open(path)`` returns it. Its methods read like an investigator's
questions and delegate to the modules that own each step (ingest, queries,
separation, widgets, report); it holds no logic of its own.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from collections.abc import Mapping as MappingABC
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import polars as pl

from forensics import analysis, queries
from forensics.analysis import Exposure, Timeline
from forensics.config import Config
from forensics.contrast import contrast
from forensics.db import Database, Tracer
from forensics.evaluate import Evaluation, evaluate, load_json, simulation_of
from forensics.explain import ExplainParams, Explanation
from forensics.explain.database import explain_moment
from forensics.ingest import FileSummary, IngestSummary, ingest_events, ingest_files
from forensics.queries import Cube, Dimension, Engine, Grain, Where
from forensics.roles import column_roles
from forensics.rootcause import RootCause, RootCauseParams, group_root_causes
from forensics.samples import SAMPLE_SIZE, sample_requests
from forensics.schema import EventMapping, Mapping
from forensics.separation import SeparationParams, find_signatures
from forensics.signals import SignalParams
from forensics.signature import Signature
from forensics.spark.cache import holds_sample

WhereLike = MappingABC[str, Any] | Where | None

__all__ = ["Workbench", "open"]


class Workbench:
    """An investigation's view of one database of request logs.

    Parameters
    ----------
    db
        The open database.

    Examples
    --------
    >>> wb = open(":memory:")
    >>> wb.counts()["requests"]
    0
    >>> wb.close()
    """

    def __init__(self, db: Database, *, everything: Engine | None = None) -> None:
        self.db = db
        self.everything = everything
        """Where every request is when ``db`` is the cache of a Spark table (else None)."""

    @property
    def path(self) -> str:
        """The database file."""
        return self.db.path

    # -- loading --------------------------------------------------------------------

    def ingest(
        self,
        *paths: str | Path,
        mapping: Mapping | str | Path | None = None,
        privacy: bool = False,
        salt: str | None = None,
        params: SignalParams | None = None,
        progress: bool | None = None,
        errors: Literal["raise", "collect"] = "raise",
        duplicate_horizon: timedelta | None = None,
        grain: str | timedelta | None = None,
    ) -> IngestSummary:
        """Load request-log files (see ``forensics.ingest.ingest_files``).

        ``grain`` (``"minute"``, ``"5m"``, ``"hour"``...) sets the database's finest time
        grain instead of choosing it from the timestamps (see ``set_grain``).
        """
        if mapping is not None and not isinstance(mapping, Mapping):
            mapping = Mapping.load(mapping)
        roles = column_roles(self.db)
        try:
            summary = ingest_files(
                self.db,
                paths,
                mapping=mapping,
                privacy=privacy,
                salt=salt,
                params=params,
                progress=self.db.config.show_progress() if progress is None else progress,
                errors=errors,
                duplicate_horizon=duplicate_horizon,
            )
        finally:
            # Rebuilt now rather than on the first read: every committed file, including
            # those before a refused one, changed what the cubes must summarise; and a
            # changed role changes the dimensions the cubes are built over.
            if not column_roles(self.db).equals(roles):
                queries.refresh_cubes(self.db)
            else:
                queries.cubes(self.db)
        if grain is not None:
            self.set_grain(grain)
        return summary

    @property
    def grain(self) -> str:
        """The finest time grain of the data: cubes, windows, timeline and change points use it.

        Chosen from the timestamps (``forensics.grain``: the minute for minute-dense
        data, the hour for most logs) unless ``set_grain`` set it.
        """
        return queries.data_grain(self.db)

    def set_grain(self, grain: str | timedelta | None) -> str:
        """Set the database's time grain (``"minute"``, ``"5m"``, ``"15m"``, ``"hour"``, ``"day"``).

        Stored in the database, so every reader agrees; the cubes are rebuilt at
        it. None goes back to the grain chosen from the timestamps. A grain finer
        than the timestamps' own grid (minutes on hourly rows) is refused.
        """
        return queries.set_grain(self.db, grain)

    def ingest_events(
        self, path: str | Path, *, mapping: EventMapping | str | Path | None = None
    ) -> FileSummary:
        """Load change events (deploys, config changes) from CSV or JSON.

        ``mapping`` (an ``EventMapping`` or its TOML file) names the columns
        ``ts``, ``kind``, ``description``, ``scope`` when the file calls them otherwise.
        """
        if mapping is not None and not isinstance(mapping, EventMapping):
            mapping = EventMapping.load(mapping)
        return ingest_events(self.db, path, mapping=mapping)

    # -- looking --------------------------------------------------------------------

    def sql(self, query: str, params: MappingABC[str, Any] | None = None) -> pl.DataFrame:
        """Run your own SQL and get a Polars DataFrame; bind values with ``$name`` params."""
        return self.db.frame(query, params)

    def counts(self) -> dict[str, int]:
        """Rows in each table: requests, rejected_rows, events, ingested_files."""
        return queries.table_counts(self.db)

    def files(self) -> pl.DataFrame:
        """The files ingested so far, with content hashes and row counts."""
        return queries.ingested_files(self.db)

    def rejected(
        self, *, reason: str | None = None, source_file: str | None = None, limit: int = 1000
    ) -> pl.DataFrame:
        """Quarantined rows (optionally of one reason code, one file), with row, column and value."""
        return queries.rejected_rows(self.db, reason=reason, source_file=source_file, limit=limit)

    def rejected_by_reason(self) -> pl.DataFrame:
        """Rejected rows counted by file and reason."""
        return queries.rejected_by_reason(self.db)

    def events(self) -> pl.DataFrame:
        """Change events, in time order: ``ts, kind, description, scope``."""
        return queries.event_rows(self.db)

    # -- questions ------------------------------------------------------------------

    def signals(self) -> list[str]:
        """The signals this database holds (built-in, the user's, then ``degraded``)."""
        return queries.signal_names(self.db)

    def dimensions(self) -> list[Dimension]:
        """The columns requests can be sliced by (role dimension), discovered from the data."""
        return queries.dimensions(self.db)

    def roles(self) -> pl.DataFrame:
        """Every column's role as a frame: ``column, role, why``.

        ``role`` is dimension (a possible cause), outcome (measured, never a
        slice), id, time, identity, signal or internal; ``why`` is the rule
        that gave it: mapping (``[roles]``), canonical, signal input, name rule,
        default, signal or internal; see ``forensics.roles``.

        Examples
        --------
        ``wb.roles().filter(pl.col("role") == "outcome")``
        """
        return column_roles(self.db)

    def rates(
        self,
        by: str | Sequence[str] = (),
        *,
        signal: str = "degraded",
        grain: Grain | None = None,
        where: WhereLike = None,
    ) -> pl.DataFrame:
        """Rate of a signal per group with a Wilson 95% interval.

        Examples
        --------
        ``wb.rates(by=["model", "platform"], signal="script_mix", grain="day",
        where={"surface": ["web"]})`` returns ``ts, model, platform, n,
        k, rate, ci_low, ci_high``.
        """
        return analysis.rates(self.db, by=by, signal=signal, grain=grain, where=where)

    def timeline(
        self,
        signal: str = "degraded",
        *,
        by: str | Sequence[str] = (),
        grain: Grain | None = "day",
        where: WhereLike = None,
    ) -> Timeline:
        """Rate series per group with intervals, change events and change points.

        ``grain=None`` is the data's own (``wb.grain``).

        Examples
        --------
        ``wb.timeline("argmax_violation", by="model", grain="day").rates``
        """
        return analysis.timeline(self.db, signal, by=by, grain=grain, where=where)

    def compare(
        self,
        signal: str = "degraded",
        *,
        incident: Sequence[Any],
        baseline: Sequence[Any] | None = None,
        dims: Sequence[str] | None = None,
        where: WhereLike = None,
    ) -> pl.DataFrame:
        """Every dimension value, incident window vs baseline, ranked by what explains it.

        Examples
        --------
        ``wb.compare("script_mix", incident=("2024-03-10", "2024-03-14"),
        baseline=("2024-03-01", "2024-03-10")).head(5)``
        """
        return analysis.compare(
            self.db, signal, incident=incident, baseline=baseline, dims=dims, where=where
        )

    def contrast(
        self,
        signal: str = "degraded",
        *,
        selection: WhereLike,
        scope: WhereLike = None,
        baseline: WhereLike = None,
        leave_out: Sequence[WhereLike] = (),
        dims: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """Every dimension, selection vs baseline: each value's share of the bad requests.

        The baseline is everything else in ``scope`` unless given; ``leave_out``
        keeps rows (other signatures) out of it. See ``forensics.contrast.contrast``.

        Examples
        --------
        ``wb.contrast("script_mix", selection=sig.where, leave_out=[s.where for s in others])``
        """
        return contrast(
            self.db,
            signal,
            selection=selection,
            scope=scope,
            baseline=baseline,
            leave_out=leave_out,
            dims=dims,
        )

    def sample_requests(
        self,
        where: WhereLike = None,
        *,
        limit: int = SAMPLE_SIZE,
        signal: str | None = None,
        seed: int = 0,
    ) -> pl.DataFrame:
        """A sample of the requests a filter selects, with the evidence of their signals.

        Requests where ``signal`` is true come first; in privacy mode, hashed ids
        and signals only. See ``forensics.samples.sample_requests``.

        Examples
        --------
        ``wb.sample_requests(sig.where, signal=sig.signal, limit=5)``
        """
        return sample_requests(self.db, where, limit=limit, signal=signal, seed=seed)

    def exposure(self, signal: str = "degraded", *, where: WhereLike = None) -> Exposure:
        """Users affected, how concentrated, and how sticky (repeat ratio).

        Examples
        --------
        ``wb.exposure("low_eval", where={"routing_pool": ["pool-b"]}).summary()``
        """
        return analysis.exposure(self.db, signal, where=where)

    def change_points(
        self, signal: str = "degraded", *, where: WhereLike = None, grain: Grain | None = None
    ) -> pl.DataFrame:
        """Times where the rate changes: ``ts, direction, rate_before, rate_after, ci_low, ci_high``.

        At ``grain``, default the data's own (``wb.grain``).

        Examples
        --------
        ``wb.change_points("script_mix", where={"platform": ["tpu"]}, grain="hour")``
        """
        return analysis.change_points(self.db, signal, where=where, grain=grain)

    def signatures(
        self,
        signals: Sequence[str] | None = None,
        *,
        params: SeparationParams | None = None,
        progress: Callable[[str], None] | None = None,
        grain: str | None = None,
    ) -> list[Signature]:
        """Separate the distinct problems: slice, window, symptoms, size, confidence.

        Searches every signal but ``degraded`` (or those given) over every
        dimension the data has; see ``forensics.separation``. Windows are placed
        to ``grain`` (default the data's, ``wb.grain``; ``"5m"`` for this run only).

        Examples
        --------
        ``for sig in wb.signatures(): print(sig.describe())``
        """
        return find_signatures(
            self.db,
            signals=signals,
            params=params,
            progress=progress,
            grain=grain,
            everything=self._everything(),
        )

    def _everything(self) -> Engine | None:
        """The engine holding every request, if ``db`` holds a sample of them (a cache).

        Without a session given to ``open``, one is built here, when first needed,
        from ``FORENSICS_SPARK_MASTER`` / ``FORENSICS_SPARK_CONF`` (what the CLI's
        ``--spark-master`` / ``--spark-conf`` set); with neither, a ``ConfigError``
        names them. An ordinary database, or a cache holding every request,
        needs no Spark (and pyspark is not imported).
        """
        if self.everything is not None or not holds_sample(self.db):
            return self.everything
        from forensics.spark import engine_for_environment

        self.everything = engine_for_environment(self.db)
        return self.everything

    def explain(
        self,
        at: str | datetime | None = None,
        *,
        signal: str = "degraded",
        baseline: int | None = None,
        dims: Sequence[str] | None = None,
        grain: str | timedelta | None = None,
        weight: str | None = None,
        params: ExplainParams | None = None,
        where: MappingABC[str, Any] | None = None,
        within: tuple[str | datetime, str | datetime] | None = None,
    ) -> Explanation:
        """Which slices explain the anomaly at a moment, ranked, coarse first.

        Each slice is compared with its own recent past (``baseline`` buckets,
        60 by default) and with the rest of the traffic at that moment; with no
        ``at``, the most anomalous moment is found first (only inside the window
        ``within=(start, end)`` when given). The grain follows the data (minutes
        when the times are minutes); ``weight`` names a column saying how many
        requests a row stands for; ``where`` explains within those requests only.
        See ``forensics.explain``.

        Examples
        --------
        ``wb.explain("2025-08-29T14:32Z", signal="low_eval").candidates`` returns
        ``rank, candidate, elements, share, rate, baseline_rate, ci_low, ci_high,
        score, ...``; ``.to_json()`` is what ``forensics explain --json`` writes.
        """
        return explain_moment(
            self.db,
            at=at,
            signal=signal,
            baseline=baseline,
            dims=dims,
            grain=grain,
            weight=weight,
            params=params,
            where=where,
            within=within,
            everything=self._everything(),
        )

    def root_causes(
        self,
        signatures: Sequence[Signature] | None = None,
        *,
        params: RootCauseParams | None = None,
    ) -> list[RootCause]:
        """Group signatures into root causes: those one change explains, with the evidence.

        Signatures whose onsets match the same change event (by time and scope),
        whose symptoms agree and whose slices share a value are one root cause;
        see ``forensics.rootcause`` for the rule. ``signatures`` default to
        ``wb.signatures()`` (computed here). ``root_causes_frame(causes)`` gives
        one row per cause.

        Examples
        --------
        ``for cause in wb.root_causes(sigs): print(cause.describe())``
        """
        found = self.signatures() if signatures is None else signatures
        return group_root_causes(found, queries.event_rows(self.db), params=params)

    def simulation_truth(self) -> Path | None:
        """The ``truth.json`` of the simulation the requests came from, if any (else None).

        Found beside an ingested file and only when it states that file's row count.

        Examples
        --------
        ``truth = wb.simulation_truth(); truth and wb.evaluate(truth, wb.signatures())``
        """
        for file in self.files().iter_rows(named=True):
            found = simulation_of(file)
            if found is not None:
                return Path(found["truth"])
        return None

    def evaluate(
        self,
        truth: str | Path | MappingABC[str, Any],
        signatures: Sequence[Signature | MappingABC[str, Any]],
    ) -> Evaluation:
        """Score signatures against a simulation's ground truth (``truth.json`` or its dict).

        Examples
        --------
        ``wb.evaluate("sim/truth.json", wb.signatures()).f1``
        """
        if not isinstance(truth, MappingABC):
            truth = load_json(truth, "bugs")
        return evaluate(self.db, truth, signatures)

    def cube(self, dims: Sequence[str] | None = None, *, grain: Grain = "hour") -> Cube:
        """Materialise counts per ``dims`` values x time bucket x signal, kept fresh on ingest.

        Count queries (``rates``, ``timeline``, ``compare``, the dashboard) read
        the smallest cube that covers them, so their speed no longer depends
        on the number of requests. A default cube exists after every ingest;
        ask for another when you slice by dimensions it lacks.

        Examples
        --------
        ``wb.cube(["model", "server_id"], grain="day")``
        """
        return queries.build_cube(self.db, dims=dims, grain=grain)

    def cubes(self) -> list[Cube]:
        """The cubes kept in this database, smallest first."""
        return queries.cubes(self.db)

    # -- showing --------------------------------------------------------------------

    def alerts(self) -> pl.DataFrame:
        """The alerts ``forensics watch`` raised on this database, newest first.

        One row per alert: ``id, problem, seq, kind, at, signal, where, start,
        end, excess_requests, delivered`` (``forensics.watch.alerts.alert_rows``);
        empty when the database was never watched.
        """
        from forensics.watch.alerts import alert_rows

        return alert_rows(self.db)

    def dashboard(
        self,
        investigation: Any = None,
        *,
        signal: str | None = None,
        by: str | None = "",
        grain: str = "day",
    ) -> Any:
        """The interactive dashboard (ipywidgets + Altair) over this database.

        ``investigation`` is any object with ``add_view(view)`` (a report's
        ``Investigation``): "add to report" pins views there; they are also kept
        in ``dashboard.pinned``. ``by=""`` picks the first cubed dimension.
        See ``forensics.dashboard.Dashboard``.

        Examples
        --------
        ``forensics.open("build/demo/demo.duckdb", read_only=True).dashboard()``
        """
        from forensics.dashboard import Dashboard

        return Dashboard(self, investigation=investigation, signal=signal, by=by, grain=grain)

    def report(self, title: str | None = None, **options: Any) -> Any:
        """The default investigation: every signature with its evidence, ready to save.

        Finds the signatures once; ``options`` go to
        ``forensics.report.Investigation.default`` (``signatures``, ``params``,
        ``progress``). The result shows itself in a notebook and saves as HTML,
        Markdown or JSON.

        Examples
        --------
        ``wb.report("Aug 2025 degradation").save("build/report.html")``
        """
        from forensics.report import Investigation

        return Investigation.default(self, title=title, **options)

    # -- lifecycle ------------------------------------------------------------------

    def close(self) -> None:
        """Close the database."""
        self.db.close()

    def __enter__(self) -> Workbench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        counts = self.counts()
        return (
            f"<Workbench {self.path}: {counts['requests']:,} requests, {counts['events']:,} events>"
        )

    def _repr_html_(self) -> str:
        counts = self.counts()
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td style='text-align:right'>{v:,}</td></tr>"
            for k, v in counts.items()
        )
        return (
            f"<div><b>forensics workbench</b> <code>{html.escape(self.path)}</code>"
            f"<table>{rows}</table></div>"
        )


def open(
    path: str | Path | None = None,
    *,
    read_only: bool = False,
    trace: Tracer | None = None,
    spark: Any = None,
) -> Workbench:
    """Open (or create) a forensics database and return its Workbench.

    Parameters
    ----------
    path
        The DuckDB file; ``FORENSICS_DB`` or ``forensics.duckdb`` when omitted;
        ``":memory:"`` for a throwaway one.
    read_only
        Open without write access, so that several processes can read one file.
    trace
        Called with every SQL statement and its parameters, e.g. ``trace=print``.
    spark
        A SparkSession, for the cache of a Spark table (``forensics ingest --engine
        spark``): what must read every request (a signature's final counts) is
        counted there. Without it, a cache holding a sample of the requests builds
        a session from ``FORENSICS_SPARK_MASTER`` / ``FORENSICS_SPARK_CONF`` when
        first needed (not at open: reading the cubes needs no Spark), and refuses,
        naming them, when neither is set.
    """
    config = Config.from_env()
    db = Database(path or config.db, read_only=read_only, trace=trace, config=config)
    if spark is None:
        return Workbench(db)
    from forensics.spark import engine_for_cache

    try:
        everything = engine_for_cache(db, spark)
    except BaseException:
        db.close()
        raise
    return Workbench(db, everything=everything)
