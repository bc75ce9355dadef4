"""The ``forensics`` command: parse arguments, call the library, print, exit.

A ``ForensicsError`` becomes one line on stderr and exit code 2 (input the user
must fix, or a full disk); an ``InternalError`` exit code 1 and a request to
report the bug; any other traceback is a bug in forensics too (exit 1).
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from forensics.config import Config
from forensics.errors import DiskFullError, ForensicsError, InternalError
from forensics.presets import PRESETS, load_preset, preset_text
from forensics.schema import Mapping, schema_markdown

if TYPE_CHECKING:
    from forensics.ingest import IngestSummary
    from forensics.workbench import Workbench

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_SAMPLE = Path("data_samples") / "postmortem-2025"
"""Where the demo looks for the shipped sample, relative to the working directory."""


def _fail_cleanly(func: F) -> F:
    """Turn errors into one line each on stderr and an exit code.

    A ``ForensicsError`` (input to fix, a full disk) exits with its code, 2; an
    ``InternalError`` (forensics found itself inconsistent) with 1, asking for a
    bug report. An ingest's summary, when the error carries one, is printed first.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (ForensicsError, InternalError) as exc:
            summary = getattr(exc, "summary", None)
            if summary is not None:
                click.echo(summary.table(problems=False))
            if summary is None or not _echo_problems(summary):
                report = isinstance(exc, InternalError) and InternalError.REPORT not in str(exc)
                click.echo(
                    f"error: {exc}" + (f"; {InternalError.REPORT}" if report else ""), err=True
                )
            sys.exit(exc.exit_code)
        except OSError as exc:
            if not DiskFullError.caused(exc):
                raise
            target = exc.filename if isinstance(exc.filename, str) else "the output"
            click.echo(f"error: {DiskFullError.while_writing(target)}", err=True)
            sys.exit(DiskFullError.exit_code)

    return wrapper  # type: ignore[return-value]


def _echo_problems(summary: IngestSummary) -> bool:
    """Print one ``error:`` line per refused or failed file; whether there was any."""
    problems = [f for f in summary.files if f.status in ("refused", "failed")]
    for f in problems:
        click.echo(f"error: {f.message}", err=True)
    return bool(problems)


def _db_option(func: F) -> F:
    return click.option(
        "--db",
        "db",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="DuckDB database file [default: $FORENSICS_DB or ./forensics.duckdb].",
    )(func)


def _spark_options(func: F) -> F:
    """``--spark-master`` and ``--spark-conf`` for a command reading a database.

    When the database is the cache of a Spark table holding a sample of its
    requests, what must read every request runs in Spark with these settings.
    They are put in ``FORENSICS_SPARK_MASTER`` / ``FORENSICS_SPARK_CONF`` for the
    command's run (where ``forensics.open`` reads them, and a notebook kernel
    started by the command inherits them); no option leaves the environment as is.
    """

    @functools.wraps(func)
    def wrapper(
        *args: Any, spark_master: str | None, spark_conf: Path | None, **kwargs: Any
    ) -> Any:
        given = {
            "FORENSICS_SPARK_MASTER": spark_master,
            "FORENSICS_SPARK_CONF": str(spark_conf.resolve()) if spark_conf else None,
        }
        with _environment({k: v for k, v in given.items() if v}):
            return func(*args, **kwargs)

    wrapper = click.option(
        "--spark-conf",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="For the cache of a Spark table: a spark-defaults.conf-style file "
        "[env: FORENSICS_SPARK_CONF].",
    )(wrapper)
    wrapper = click.option(
        "--spark-master",
        default=None,
        help="For the cache of a Spark table: the master that counts every request, e.g. "
        "local[2] [env: FORENSICS_SPARK_MASTER].",
    )(wrapper)
    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a block, then put back what was there."""
    import os

    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _db_path(db: Path | None) -> str:
    return str(db) if db is not None else Config.from_env().db


@contextlib.contextmanager
def _kept_only_if_written(path: str) -> Iterator[None]:
    """Remove a database this command created if, when it ends, nothing was written to it.

    A failed first ingest (a missing or refused file) would otherwise leave an
    empty database behind, and other commands would then say it "holds no
    requests yet" instead of "no such database".
    """
    created = path != ":memory:" and not Path(path).exists()
    try:
        yield
    finally:
        if created and Path(path).is_file() and _holds_nothing(path):
            for leftover in (Path(path), Path(path + ".wal")):
                leftover.unlink(missing_ok=True)


def _holds_nothing(path: str) -> bool:
    """Whether a database has no ingested file, no event and no rejected row."""
    from forensics.workbench import open as open_workbench

    try:
        with open_workbench(path, read_only=True) as wb:
            return not any(wb.counts().values())
    except Exception:  # unreadable after a failure (a full disk...): keep it, say nothing
        return False


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="forensics")
def main() -> None:
    """Separate overlapping LLM-serving bugs in request logs.

    Load logs with `ingest`, then slice, separate and report. Every command
    takes --help. Exit codes: 0 ok, 2 input you must fix, 1 a bug in forensics.
    """


@main.command()
@click.argument("paths", nargs=-1, required=True)
@_db_option
@click.option(
    "--mapping",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML file renaming your columns to canonical names (see README 'Mapping files').",
)
@click.option(
    "--preset",
    type=click.Choice(PRESETS),
    help="A mapping shipped with forensics, e.g. otel-genai for flattened GenAI span tables "
    "(`forensics schema --preset NAME` prints it to copy and adapt).",
)
@click.option("--privacy", is_flag=True, help="Hash user/session ids and keep no response text.")
@click.option(
    "--salt",
    envvar="FORENSICS_SALT",
    help="Salt for --privacy, 16 characters or more [env: FORENSICS_SALT].",
)
@click.option(
    "--grain",
    default=None,
    help="Finest time grain: minute (1m), 5m, 15m, hour (1h), day [default: from the timestamps].",
)
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@click.option(
    "--engine",
    type=click.Choice(["duckdb", "spark"]),
    default="duckdb",
    show_default=True,
    help="Where the requests go: the DuckDB file, or a Spark table (--db is then its cache).",
)
@click.option("--table", help="--engine spark: the Spark table's name (a folder of Parquet).")
@click.option(
    "--spark-master",
    envvar="FORENSICS_SPARK_MASTER",
    help="--engine spark: master URL, e.g. local[2] [env: FORENSICS_SPARK_MASTER].",
)
@click.option(
    "--spark-conf",
    envvar="FORENSICS_SPARK_CONF",
    type=click.Path(path_type=Path),
    help="--engine spark: a spark-defaults.conf-style file [env: FORENSICS_SPARK_CONF].",
)
@click.option(
    "--spark-location",
    envvar="FORENSICS_SPARK_WAREHOUSE",
    help="--engine spark: folder the table lives under [default: spark.sql.warehouse.dir; "
    "env: FORENSICS_SPARK_WAREHOUSE].",
)
@_fail_cleanly
def ingest(
    paths: tuple[str, ...],
    db: Path | None,
    mapping: Path | None,
    preset: str | None,
    privacy: bool,
    salt: str | None,
    grain: str | None,
    quiet: bool,
    engine: str,
    table: str | None,
    spark_master: str | None,
    spark_conf: Path | None,
    spark_location: str | None,
) -> None:
    """Load request logs (Parquet, JSON lines, CSV, OTLP JSON traces; .gz ok) into the database.

    PATHS are files, directories (searched recursively) or glob patterns. An
    OTLP JSON file (resourceSpans...) is read one GenAI span per request; its
    other spans are skipped and counted.
    Bad rows are quarantined in the rejected_rows table with their reason; a
    file missing a required column is refused (exit 2) and nothing from it is
    written. Re-ingesting a file adds nothing. The finest time grain (windows,
    timeline, change points, cubes) is chosen from the timestamps unless
    --grain sets it; a grain finer than the timestamps is refused (exit 2). With --engine spark the rows go
    to the Spark table --table (partitioned by day) and --db becomes the
    investigation's local cache (cubes, a sample of the requests, registry).
    """
    from forensics.workbench import open as open_workbench

    if mapping and preset:
        raise click.UsageError(
            f"give --mapping or --preset, not both; to adapt the preset, write it to a file "
            f"(forensics schema --preset {preset} > mapping.toml), edit it and pass --mapping"
        )
    loaded = Mapping.load(mapping) if mapping else load_preset(preset) if preset else None
    path = _db_path(db)
    if engine == "spark":
        _ingest_spark(
            paths,
            path,
            loaded,
            privacy,
            salt,
            quiet,
            table,
            spark_master,
            spark_conf,
            spark_location,
        )
        return
    if table is not None:
        raise click.UsageError("--table names a Spark table: add --engine spark")
    with _kept_only_if_written(path):
        with open_workbench(path) as wb:
            summary = wb.ingest(
                *paths, mapping=loaded, privacy=privacy, salt=salt, errors="collect", grain=grain
            )
            chosen = wb.grain if wb.counts().get("requests") else None
        if not quiet:
            click.echo(summary.table(problems=False))
            if any(f.status in ("ingested", "already ingested") for f in summary.files):
                click.echo(f"database: {summary.db}")
            if chosen is not None:
                click.echo(f"time grain: {chosen}")
            if summary.rejected:
                click.echo(
                    f"rejected rows are kept, with their reason, in the table rejected_rows; "
                    f"`forensics info --db {summary.db}` shows the first of each reason"
                )
        if _echo_problems(summary):
            sys.exit(2)


def _ingest_spark(
    paths: tuple[str, ...],
    path: str | Path,
    mapping: Mapping | None,
    privacy: bool,
    salt: str | None,
    quiet: bool,
    table: str | None,
    master: str | None,
    conf: Path | None,
    location: str | None,
) -> None:
    """``forensics ingest --engine spark``: the Spark table, then the cache."""
    from forensics.spark import ingest_with_spark

    if not table:
        raise click.UsageError("--engine spark needs --table NAME (the Spark table to write)")
    summary, filled = ingest_with_spark(
        paths,
        table=table,
        cache=path,
        master=master,
        conf_file=conf,
        location=location,
        mapping=mapping,
        privacy=privacy,
        salt=salt,
    )
    if not quiet:
        click.echo(summary.table(problems=False))
        click.echo(
            f"Spark table {table}: {filled['requests']:,} requests at {summary.db}; "
            f"cache: {path} ({filled['sampled']:,} sampled requests, "
            f"{filled['cube_rows']:,} cube rows)"
        )
    if _echo_problems(summary):
        sys.exit(2)


@main.command("ingest-events")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_db_option
@click.option(
    "--mapping",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='TOML file naming your columns: [columns] ts = "...", kind = "..." '
    "(see README 'Mapping files').",
)
@_fail_cleanly
def ingest_events_command(path: Path, db: Path | None, mapping: Path | None) -> None:
    """Load change events (deploys, config and load-balancer changes).

    PATH is CSV or JSON with columns ts, kind, and optionally description and
    scope (under other names: --mapping). Loading the same events twice adds
    nothing.
    """
    from forensics.schema import EventMapping
    from forensics.workbench import open as open_workbench

    event_mapping = EventMapping.load(mapping) if mapping else None
    database = _db_path(db)
    with _kept_only_if_written(database), open_workbench(database) as wb:
        result = wb.ingest_events(path, mapping=event_mapping)
    click.echo(
        f"{result.path}: read {result.rows_read}, loaded {result.accepted}, "
        f"rejected {result.rejected_total}, already present {result.duplicates}"
    )


@main.command()
@click.option(
    "--scenario",
    default="postmortem-2025",
    show_default=True,
    help="Scenario name; --list shows them.",
)
@click.option(
    "--rows",
    type=click.IntRange(min=1000),
    default=None,
    help="Number of requests [default: the scenario's].",
)
@click.option(
    "--seed", type=int, default=7, show_default=True, help="Random seed; same seed, same bytes."
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Output directory.")
@click.option("--list", "list_", is_flag=True, help="List the scenarios and exit.")
@click.option(
    "--counted",
    is_flag=True,
    help="Instead of a scenario: one counted incident (per-minute counts by 4-6 "
    "attributes) as counts.parquet, mapping.toml and truth.json.",
)
@_fail_cleanly
def simulate(
    scenario: str, rows: int | None, seed: int, out: Path | None, list_: bool, counted: bool
) -> None:
    """Write a synthetic incident: requests.parquet, events.csv and truth.json.

    The postmortem-2025 scenario reproduces the three overlapping bugs of the
    Aug-Sep 2025 postmortem; the others each test one kind of bug. With
    --counted, a counted incident of the explain benchmark's generator.
    """
    from forensics.simulate import SCENARIOS
    from forensics.simulate import simulate as run_simulation

    if list_:
        for name, spec in SCENARIOS.items():
            click.echo(f"{name:22} {spec.description}")
        return
    if out is None:
        raise click.UsageError("--out DIR is required (or --list)")
    if counted:
        from forensics.simulate.counted import generate_case, write_case

        case = generate_case(seed)
        write_case(case, out)
        click.echo(
            f"wrote {case.counts.height:,} counted rows ({case.truth['requests']:,} requests) "
            f"to {out} (counted incident, seed {seed})"
        )
        return
    result = run_simulation(scenario, rows=rows, seed=seed, out=out)
    click.echo(f"wrote {result.rows:,} requests to {out} (scenario {scenario}, seed {seed})")


@main.command()
@click.option("--markdown", is_flag=True, help="Print as a Markdown table (as in the README).")
@click.option(
    "--preset",
    type=click.Choice(PRESETS),
    help="Print this shipped mapping file instead (copy it, adapt it, pass it with --mapping).",
)
def schema(markdown: bool, preset: str | None) -> None:
    """Show the canonical request-log schema, or a shipped mapping preset."""
    from forensics.schema import CANONICAL_COLUMNS

    if preset:
        click.echo(preset_text(preset), nl=False)
        return
    if markdown:
        click.echo(schema_markdown())
        return
    for c in CANONICAL_COLUMNS:
        flag = "required" if c.required else "optional"
        click.echo(f"{c.name:16} {c.dtype:12} {flag:9} {c.description}")


EXAMPLE_CHARS = 60
"""A rejected value or raw row is shown in ``info`` up to this many characters."""


LINE_FORMATS = frozenset({"csv", "jsonl"})
"""Formats whose rejected ``row_number`` is a line of the file (see README)."""


def _first_rejected(wb: Workbench, counted: dict[str, Any], formats: dict[int, str]) -> str:
    """The first rejected row of a file and reason, as ``line N, column = 'value'``."""
    first = wb.rejected(
        reason=counted["reason"], source_file=counted["source_file"], limit=1
    ).to_dicts()
    if not first:
        return ""
    row = first[0]
    value = row["bad_value"] if row["column"] is not None else row["raw"]
    shown = "" if value is None else " ".join(str(value).split())
    if len(shown) > EXAMPLE_CHARS:
        shown = shown[: EXAMPLE_CHARS - 1] + "…"
    fmt = formats.get(row["file_id"])
    unit = "line" if fmt in LINE_FORMATS else "span" if fmt == "otlp" else "row"
    where = f"{unit} {row['row_number']}" if row["row_number"] is not None else "file"
    if row["column"] is not None:
        return f"{where}, {row['column']} = {shown!r}"
    return f"{where}: {shown!r}" if shown else where


ROLE_ORDER = ("dimension", "outcome", "count", "id", "time", "identity", "signal", "internal")
"""The order ``info`` lists roles in."""

_SAID_WHY = frozenset({"mapping", "signal input", "name rule"})
"""Rules ``info`` names beside a column (the others are evident from its role)."""


def _spark_table_line(wb: Workbench) -> str | None:
    """Where every request is, for the cache of a Spark table (None for an ordinary database)."""
    from forensics.spark.cache import SPARK_LOCATION, SPARK_ROWS, SPARK_TABLE, holds_sample

    name = wb.db.meta(SPARK_TABLE)
    if name is None:
        return None
    rows = int(wb.db.meta(SPARK_ROWS) or 0)
    held = (
        "a sample of them (the cubes count them all; signatures, explain and report count "
        "in Spark: --spark-master or FORENSICS_SPARK_MASTER)"
        if holds_sample(wb.db)
        else "all of them (no Spark needed)"
    )
    return (
        f"\nthe requests live in Spark table {name} ({wb.db.meta(SPARK_LOCATION)}): "
        f"{rows:,}; this cache holds {held}"
    )


def _role_lines(wb: Workbench) -> list[str]:
    """One line per role: ``  outcome     output_tokens, latency_ms (name rule)``."""
    columns: dict[str, list[str]] = {}
    for name, role, why in wb.roles().iter_rows():
        columns.setdefault(role, []).append(f"{name} ({why})" if why in _SAID_WHY else name)
    order = [r for r in ROLE_ORDER if r in columns] + sorted(set(columns) - set(ROLE_ORDER))
    return [f"  {role:10} {', '.join(columns[role])}" for role in order]


@main.command()
@_db_option
@_spark_options
@_fail_cleanly
def info(db: Path | None) -> None:
    """Show what a database holds: tables, column roles, rejected rows by reason."""
    from forensics.workbench import open as open_workbench

    with open_workbench(_db_path(db), read_only=True) as wb:
        counts = wb.counts()
        for table, n in counts.items():
            click.echo(f"{table:16} {n:>12,}")
        spark_line = _spark_table_line(wb)
        if spark_line:
            click.echo(spark_line)
        if counts.get("requests"):
            click.echo(f"\ntime grain: {wb.grain} (windows, timeline, change points, cubes)")
        roles = _role_lines(wb)
        if roles:
            click.echo(
                "\ncolumn roles (outcomes are measured, never slices; [roles] in a mapping sets them):"
            )
            for line in roles:
                click.echo(line)
        reasons = wb.rejected_by_reason()
        if reasons.height:
            click.echo(
                "\nrejected rows by reason, with the first of each (all: table rejected_rows):"
            )
            formats = dict(wb.files().select("file_id", "format").iter_rows())
            lines = [
                (
                    f"  {row['source_file']}: {row['reason']} {row['rows']:,}",
                    _first_rejected(wb, row, formats),
                )
                for row in reasons.iter_rows(named=True)
            ]
            width = max(len(counted) for counted, _ in lines)
            for counted, example in lines:
                click.echo(f"{counted:{width}}   {example}".rstrip())


@main.command()
@_db_option
@_spark_options
@click.option(
    "--signal", "signals", multiple=True, help="Search only this signal (repeatable) [all]."
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the signatures here as JSON.",
)
@click.option(
    "--grain",
    default=None,
    help="Place windows to this grain for this run: minute (1m), 5m, 15m, hour (1h) "
    "[default: the database's].",
)
@click.option("--quiet", "-q", is_flag=True, help="Do not print the search's progress.")
@_fail_cleanly
def signatures(
    db: Path | None,
    signals: tuple[str, ...],
    json_out: Path | None,
    grain: str | None,
    quiet: bool,
) -> None:
    """Find the distinct problems: slice, window, symptoms, size and confidence.

    Prints one block per signature, strongest first. With --json, writes
    {"signatures": [{"id", "predicate", "start", "end", "signals", "excess_rate",
    "ci", "requests", "users", "p_value", "events", ...}]}: predicate maps a
    column to a list of values or to {"gte": x, "lt": y}; times are ISO-8601
    UTC, end exclusive, a null end means still active. Then the root causes:
    signatures that start at the same change event, share symptoms and a slice
    value, grouped (the JSON's "root_causes": [{"id", "signatures",
    "shared_conditions", "events", "why", ...}]).
    """
    from forensics.rootcause import describe_root_causes
    from forensics.signature import signatures_to_json
    from forensics.workbench import open as open_workbench

    with open_workbench(_db_path(db), read_only=True) as wb:
        found = wb.signatures(
            signals=list(signals) or None,
            progress=None if quiet else (lambda m: click.echo(m, err=True)),
            grain=grain,
        )
        causes = wb.root_causes(found)
    if not found:
        click.echo("no signatures: no slice shows a significant rise in any window")
    for sig in found:
        click.echo(_signature_block(sig))
    if causes:
        click.echo("")
        click.echo(describe_root_causes(causes))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(signatures_to_json(found, root_causes=causes) + "\n")
        click.echo(f"wrote {json_out}")


@main.command()
@click.option(
    "--at",
    default=None,
    help="The moment to explain (ISO-8601, e.g. 2025-08-29T14:32Z); default: the most "
    "anomalous moment, found from the data.",
)
@click.option("--signal", default="degraded", show_default=True, help="The signal explained.")
@click.option(
    "--baseline",
    type=int,
    default=None,
    help="Buckets of recent past each slice is compared with (default 60).",
)
@click.option(
    "--grain",
    default=None,
    help="Bucket length: minute (1m), 5m, 15m, hour (1h), day "
    "[default: from the data's timestamps].",
)
@click.option(
    "--dim", "dims", multiple=True, help="Explain by this dimension (repeat; default: all)."
)
@click.option(
    "--count",
    "weight",
    default=None,
    help="Column holding how many requests each row stands for (counted rows).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
@_db_option
@_spark_options
@_fail_cleanly
def explain(
    at: str | None,
    signal: str,
    baseline: int | None,
    grain: str | None,
    dims: tuple[str, ...],
    weight: str | None,
    as_json: bool,
    db: Path | None,
) -> None:
    """Explain a moment: which slices explain the anomaly, ranked, coarse first.

    Each slice is compared with its own recent past and with the rest of the
    traffic at that moment. With --json, prints {"at", "signal", "candidates":
    [{"elements": [{column: value or {"gte": x, "lt": y}}, ...], "share",
    "rate", "baseline_rate", "ci": [lo, hi], "score"}, ...]}: a candidate's
    elements fail together; each element is one conjunction.
    """
    from forensics.workbench import open as open_workbench

    with open_workbench(_db_path(db), read_only=True) as wb:
        found = wb.explain(
            at,
            signal=signal,
            baseline=baseline,
            dims=list(dims) or None,
            grain=grain,
            weight=weight,
        )
    click.echo(found.to_json() if as_json else found.describe())


def _signature_block(sig: Any) -> str:
    from forensics.signature import users_text
    from forensics.stats import format_p_value

    end = f"{sig.end:%Y-%m-%d %H:%M}" if sig.end else "still active"
    lines = [
        f"{sig.id}  {sig.describe()}",
        f"    window    {sig.start:%Y-%m-%d %H:%M} -> {end} UTC "
        f"(onset between {sig.onset_range[0]:%m-%d %H:%M} and {sig.onset_range[1]:%m-%d %H:%M})",
        f"    size      {sig.requests:,} requests, {users_text(sig.users)}, "
        f"{sig.excess_requests:,.0f} more {sig.signal} than the baseline rate gives",
        f"    effect    {sig.signal} +{sig.excess_rate:.4f} "
        f"[{sig.ci[0]:.4f}, {sig.ci[1]:.4f}], p = {format_p_value(sig.p_value)}",
        f"    baseline  {sig.baseline}",
    ]
    for s in sig.symptoms:
        if s.elevated:
            lines.append(
                f"    {s.signal:18} {s.rate_inside:.4f} [{s.ci_inside[0]:.4f}, {s.ci_inside[1]:.4f}]"
                f" vs {s.rate_baseline:.4f} [{s.ci_baseline[0]:.4f}, {s.ci_baseline[1]:.4f}]"
            )
    for e in sig.events:
        lines.append(
            f"    nearest {e['near']}: {e['ts']:%Y-%m-%d %H:%M} ({e['hours_away']:+.0f} h) "
            f"{e['kind']}: {e['description']}"
        )
    return "\n".join(lines)


@main.command()
@click.option(
    "--truth",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="truth.json written by `forensics simulate`.",
)
@click.option(
    "--signatures",
    "signatures_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="JSON written by `forensics signatures --json`.",
)
@_db_option
@_fail_cleanly
def evaluate(truth: Path, signatures_path: Path, db: Path | None) -> None:
    """Score found signatures against a simulation's ground truth.

    A true bug is recovered when a signature covers the same requests (Jaccard
    >= 0.8 over predicate and window, counted on the rows where the bug's
    symptoms can show). Prints each bug's match, then precision, recall, F1 and
    onset and end errors in hours.
    """
    from forensics.evaluate import evaluate as score
    from forensics.evaluate import load_json
    from forensics.workbench import open as open_workbench

    with open_workbench(_db_path(db), read_only=True) as wb:
        result = score(
            wb.db, load_json(truth, "bugs"), load_json(signatures_path, "signatures")["signatures"]
        )
    click.echo(result.table())


@main.command()
@_db_option
@_spark_options
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Report file; its suffix (.html, .md, .json) picks the format.",
)
@click.option("--title", default=None, help="Report title [default: 'Incident investigation'].")
@click.option(
    "--format",
    "format_",
    type=click.Choice(["html", "md", "json"]),
    default=None,
    help="Output format [default: from the --out suffix, else html].",
)
@_fail_cleanly
def report(db: Path | None, out: Path, title: str | None, format_: str | None) -> None:
    """Write the investigation report of a database: signatures, evidence, provenance.

    Finds the signatures (once), gathers the evidence behind each (change-point
    view, top slices of the comparison, user exposure), and writes one document:
    HTML that renders offline, Markdown with PNG charts beside it, or JSON whose
    signatures have the shape of `forensics signatures --json`.
    """
    from forensics.report import Investigation
    from forensics.workbench import open as open_workbench

    path = Path(_db_path(db))
    if not path.is_file():
        click.echo(
            f"error: {path}: no such database; create it with `forensics ingest FILE --db {path}`",
            err=True,
        )
        sys.exit(2)
    with open_workbench(path, read_only=True) as wb:
        investigation = Investigation.default(
            wb, title=title, progress=lambda m: click.echo(f"  {m}", err=True)
        )
        written = investigation.save(out, format=format_)  # type: ignore[arg-type]
    size = written.stat().st_size if written else 0
    click.echo(f"report: {out} ({len(investigation.signatures)} signatures, {size / 1024:,.0f} KB)")


def _duration(text: str) -> float:
    """Seconds in ``30s``, ``5m``, ``2h``, ``7d`` (or a plain number of seconds).

    Examples
    --------
    >>> _duration("5m"), _duration("90")
    (300.0, 90.0)
    """
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    try:
        scale = units.get(text[-1:], 1)
        value = float(text[:-1] if scale != 1 or text[-1:] == "s" else text) * scale
    except ValueError:
        raise click.BadParameter(f"{text!r}: write a duration such as 30s, 5m, 2h or 7d") from None
    if value <= 0:
        raise click.BadParameter(f"{text!r}: the duration must be positive")
    return value


@main.command()
@click.argument("source")
@_db_option
@click.option("--every", default="5m", show_default=True, help="Time between cycles (30s, 5m, 1h).")
@click.option("--once", is_flag=True, help="Run one cycle and exit (for cron and tests).")
@click.option(
    "--alert",
    "alerts",
    multiple=True,
    help="Where alerts go (repeatable): jsonl:PATH, webhook:URL or command:CMD.",
)
@click.option(
    "--mapping",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML file renaming your columns (see README 'Mapping files').",
)
@click.option(
    "--events",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A change-events file (CSV/JSON) read again each cycle; new events are added.",
)
@click.option(
    "--false-alarms",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Target false alarms per 30 days; the threshold is calibrated for it.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="The detection threshold itself, instead of the one calibrated for --false-alarms.",
)
@click.option(
    "--settle",
    default="2s",
    show_default=True,
    help="A new file is read once its size and time are unchanged this long.",
)
@click.option(
    "--duplicate-horizon",
    default="7d",
    show_default=True,
    help="Compare request ids only with stored rows this close in time.",
)
@click.option(
    "--webhook-timeout", default="10s", show_default=True, help="Time-out of one webhook call."
)
@click.option(
    "--webhook-retries",
    type=click.IntRange(0, 20),
    default=3,
    show_default=True,
    help="Retries of a failed webhook call within a cycle (then the next cycle).",
)
@click.option("--quiet", "-q", is_flag=True, help="Print only alerts and errors.")
@_fail_cleanly
def watch(
    source: str,
    db: Path | None,
    every: str,
    once: bool,
    alerts: tuple[str, ...],
    mapping: Path | None,
    events: Path | None,
    false_alarms: float,
    threshold: float | None,
    settle: str,
    duplicate_horizon: str,
    webhook_timeout: str,
    webhook_retries: int,
    quiet: bool,
) -> None:
    """Watch SOURCE (a folder or a quoted glob) and alert on new problems as they appear.

    Each cycle ingests the complete new files (see README 'Watching production'),
    updates the cubes for the hours they touch, tests every slice for a rise
    that reaches the newest hour, and sends new / update / resolved alerts to
    every --alert sink (none: they are kept in the alerts table). The database
    is open only during a cycle. Stop with Ctrl-C (between cycles).
    """
    import signal
    from datetime import timedelta

    from forensics.watch import FolderSource, WatchParams, parse_sink
    from forensics.watch import watch as run_watch

    timeout = _duration(webhook_timeout)
    sinks = {
        s.name: s for s in (parse_sink(a, timeout=timeout, retries=webhook_retries) for a in alerts)
    }
    params = WatchParams(
        false_alarms_per_30_days=false_alarms,
        threshold=threshold,
        duplicate_horizon=timedelta(seconds=_duration(duplicate_horizon)),
    )
    folder = FolderSource(
        source, settle=_duration(settle) if settle.strip() not in ("0", "0s") else 0.0
    )
    loaded = Mapping.load(mapping) if mapping else None
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))

    def show(report: Any) -> None:
        for f in report.files:
            if not quiet or f.status in ("refused", "failed"):
                click.echo(
                    f"{f.path}: {f.status}, read {f.rows_read:,}, accepted {f.accepted:,}, "
                    f"rejected {f.rejected_total:,}, duplicates {f.duplicates:,}"
                )
        for a in report.alerts:
            sig = a.signature
            click.echo(
                f"alert {a.kind} {a.problem} at {sig['start']}: "
                f"{describe_predicate(sig['predicate'])}: {', '.join(sig['signals'])} "
                f"({sig['requests']:,} requests, excess {sig['excess_requests']:.0f})"
            )
        if report.error:
            click.echo(f"error: detection failed this cycle: {report.error}", err=True)
        if not quiet:
            newest = report.newest.strftime("%Y-%m-%d %H:%M") if report.newest else "-"
            click.echo(
                f"cycle: data to {newest} UTC, cubes {report.cubes or '-'}, firing "
                f"{report.firings}, alerts {len(report.alerts)}, delivered {report.delivered}"
                + (f", failed {report.failed}" if report.failed else "")
                + f", {sum(report.seconds.values()):.1f} s"
            )

    from forensics.signature import describe_predicate

    try:
        run_watch(
            _db_path(db),
            folder,
            sinks=sinks,
            every=_duration(every),
            params=params,
            mapping=loaded,
            events=events,
            once=once,
            on_cycle=show,
            stop=lambda: bool(stopping),
        )
    except KeyboardInterrupt:
        click.echo("stopped", err=True)


@main.command()
@click.option(
    "--sample",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_SAMPLE,
    show_default=True,
    help="Directory holding requests.parquet and events.csv.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("build") / "demo",
    show_default=True,
    help="Where the demo database and report go.",
)
@_fail_cleanly
def demo(sample: Path, out: Path) -> None:
    """Run the whole investigation on the shipped sample, start to finish.

    Loads the sample into OUT/demo.duckdb, then writes OUT/report.html (the
    signatures, the evidence behind each, and how to reproduce every number).
    """
    from forensics.report import Investigation
    from forensics.rootcause import headline
    from forensics.workbench import open as open_workbench

    requests = sample / "requests.parquet"
    events = sample / "events.csv"
    if not requests.is_file():
        raise click.UsageError(
            f"{requests} not found: run from the repository root, or pass --sample DIR "
            "(make one with `forensics simulate --out DIR`)"
        )
    out.mkdir(parents=True, exist_ok=True)
    db_path = out / "demo.duckdb"
    for stale in (db_path, db_path.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)
    with open_workbench(db_path) as wb:
        summary = wb.ingest(requests, errors="raise")
        click.echo(summary.table())
        if events.is_file():
            result = wb.ingest_events(events)
            click.echo(f"events: {result.accepted} loaded from {events}")
    click.echo(f"database: {db_path}")
    click.echo("writing the investigation report (the signature search takes a while)")
    with open_workbench(db_path, read_only=True) as wb:
        investigation = Investigation.default(
            wb,
            title=f"Investigation of {sample.name}",
            progress=lambda m: click.echo(f"  {m}", err=True),
        )
        report_path = investigation.save(out / "report.html")
    click.echo(headline(investigation.root_causes))
    click.echo(f"report: {report_path}")


@main.command()
@_db_option
@_spark_options
@click.option(
    "--notebooks",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Notebook directory [default: notebooks/ of the repository around the working directory].",
)
@click.option("--port", type=click.IntRange(1, 65535), default=8888, show_default=True)
@click.option("--no-browser", is_flag=True, help="Print the URL instead of opening a browser.")
@click.option("--dry-run", is_flag=True, help="Prepare the database, print the command, exit.")
@_fail_cleanly
def lab(
    db: Path | None, notebooks: Path | None, port: int, no_browser: bool, dry_run: bool
) -> None:
    """Start JupyterLab on the walkthrough notebooks, with a database ready.

    Without --db, loads the shipped sample into build/demo/demo.duckdb (once)
    and opens that. The notebooks read the database path from FORENSICS_DB,
    which this sets. The server listens on 127.0.0.1 only; stop it with Ctrl-C.
    """
    import os

    from forensics.demo import demo_database, find_notebooks
    from forensics.spark import SPARK_VARIABLES

    if db is None:
        database = demo_database()
    elif db.is_file():
        database = db
    else:
        raise click.UsageError(
            f"{db}: no such database; create it with `forensics ingest FILE --db {db}`"
        )
    folder = notebooks or find_notebooks()
    # notebook_shim (classic Notebook-server extensions, which forensics does not use)
    # lists ServerApp's members, reading the deprecated ServerApp.token: a DeprecationWarning
    # on every start (shown when Voila is installed, which makes traitlets' visible).
    command = [
        sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={folder.resolve()}",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        "--ServerApp.jpserver_extensions=notebook_shim=False",
    ]  # fmt: skip
    if no_browser:
        command.append("--no-browser")
    if os.geteuid() == 0:  # Jupyter refuses root unless told; containers often run as root
        command.append("--allow-root")
    env = {**os.environ, "FORENSICS_DB": str(database.resolve())}
    click.echo(f"database: {database}  (FORENSICS_DB)")
    spark = {k: v for k in SPARK_VARIABLES if (v := os.environ.get(k))}
    if spark:
        said = ", ".join(f"{k}={v}" for k, v in spark.items())
        click.echo(f"spark: {said}  (the kernel counts a cache's requests there)")
    click.echo(f"notebooks: {folder}")
    if dry_run:
        click.echo(" ".join(command))
        return
    sys.stdout.flush()
    os.execve(sys.executable, command, env)  # replaces this process: Ctrl-C stops Jupyter


if __name__ == "__main__":  # pragma: no cover
    main()
