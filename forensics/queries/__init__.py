"""Every SQL statement behind the investigator's questions, each in a named function.

One module per job: ``where`` (filters), ``measures`` (what a count sums),
``dims`` (dimensions), ``cube`` (cubes), ``counts``, ``evidence`` (the counts behind a
signature, on all requests), ``tables`` (events, files, rejected rows) and
``engine`` (what the database must provide). Every public name is imported
here, so ``from forensics.queries import Where`` and ``queries.counts_by`` read
as before.

A function takes the ``Database`` and typed arguments and returns a Polars
DataFrame (or a few plain values). Values are always bound parameters;
identifiers are checked against the table and quoted by
``schema.quote_identifier``. Aggregation happens in DuckDB; only what a chart
or test needs comes back.

Time buckets are computed on integers (``epoch_us(ts) // bucket``), which
DuckDB groups about four times faster than ``date_trunc`` on a TIMESTAMPTZ.
True counts use ``count(*) FILTER (WHERE s)``: ``count_if`` of a group where
the signal is always null is null, not 0.

Cubes
    A cube is a table of counts per time bucket (the default cube's is the
    database's grain, ``data_grain``: the hour on hour-grained data; others an
    hour, a day or a grain asked for) and per combination of some
    dimensions' values: ``requests`` and, for each signal ``s``, ``n__s``
    (requests where ``s`` is defined) and ``k__s`` (where it is true). Numeric
    dimensions enter as buckets (the bucket's lower edge). ``cube_catalog``
    lists the cubes, each with the state of ``requests`` it was built from
    (ingested files, signal registry, row count, a checksum of the rows'
    provenance). A read uses only cubes built from ``requests`` as it is now:
    when they are stale (rows loaded by ``ingest.ingest_files``, a crash
    between an ingest's commit and the rebuild, the user's own SQL) a
    connection that may write rebuilds them first, a read-only one reads the
    raw table. ``Workbench.ingest`` rebuilds them at once. One default cube is
    chosen automatically (the dimensions in schema order that keep it under a
    row budget); ``build_cube(db, dims=...)`` adds others. A count query reads the
    smallest cube that holds every column it needs at a fine enough grain and
    whose time bounds fall on bucket edges, and the raw ``requests`` otherwise:
    the answer is the same, only the speed differs.

Dimensions and roles
    Only columns whose role is *dimension* (``forensics.roles``: a possible
    cause) are dimensions: ``dimensions()``, the cubes, the dashboard's filters
    and the separation's slices never hold an *outcome* (a measured effect such
    as ``output_tokens`` or ``latency_ms``). The dimensions recorded in
    ``cube_dimensions`` follow the roles: ``dimensions()`` leaves out a recorded
    column whose role is no longer dimension, and ``Workbench.ingest`` rebuilds
    the cubes (``refresh_cubes``) when an ingest changed a role, so a column
    that became an outcome leaves the default cube and a cube asked for with it
    is dropped, and a column that became a dimension is discovered. An outcome
    can still be looked at by hand: ``counts_by(by=[outcome])`` (hence
    ``wb.rates(by="latency_ms")``), ``counts_per_dimension`` with it named and a
    ``Where`` on it read the raw table, a numeric outcome bucketed as a numeric
    dimension would be (``describe_column``).
"""

from __future__ import annotations

from forensics.queries.counts import (
    Subset,
    TimeGrid,
    counts_by,
    counts_in_subsets,
    counts_per_dimension,
    moment_counts,
    time_grid,
    time_range,
    user_sequences,
    value_counts,
)
from forensics.queries.cube import (
    CUBE_MAX_ROWS,
    CUBE_MIN_ROWS,
    CUBE_REDUCTION,
    GRAINS,
    Cube,
    Grain,
    build_cube,
    checked_grain,
    cube_sql,
    cubes,
    data_grain,
    dimension,
    dimension_values,
    dimensions,
    groupable_columns,
    recorded_dimensions,
    refresh_cubes,
    set_grain,
)
from forensics.queries.dims import (
    CUBE_MAX_VALUES,
    DIMENSION_MAX_VALUES,
    NUMERIC_DISTINCT_AS_VALUES,
    NUMERIC_MAX_BUCKETS,
    Dimension,
    bucket_index_sql,
    bucket_label,
    bucket_range,
    bucket_sql,
    describe_column,
    discover_dimensions,
    power_of_two_edges,
)
from forensics.queries.engine import Engine
from forensics.queries.evidence import (
    cover_counts,
    overlap_counts,
    requests_and_users,
    slice_counts,
)
from forensics.queries.measures import (
    check_signal,
    count_column,
    no_users_on_counted_rows,
    signal_names,
)
from forensics.queries.tables import (
    event_rows,
    event_sources,
    ingested_files,
    rejected_by_reason,
    rejected_rows,
    stored_path,
    table_counts,
)
from forensics.queries.update import CubeUpdate, update_cubes
from forensics.queries.where import TimeLike, Where, as_utc, where_sql

__all__ = [
    "CUBE_MAX_ROWS",
    "CUBE_MAX_VALUES",
    "CUBE_MIN_ROWS",
    "CUBE_REDUCTION",
    "DIMENSION_MAX_VALUES",
    "GRAINS",
    "NUMERIC_DISTINCT_AS_VALUES",
    "NUMERIC_MAX_BUCKETS",
    "Cube",
    "CubeUpdate",
    "Dimension",
    "Engine",
    "Grain",
    "Subset",
    "TimeGrid",
    "TimeLike",
    "Where",
    "as_utc",
    "bucket_index_sql",
    "bucket_label",
    "bucket_range",
    "bucket_sql",
    "build_cube",
    "check_signal",
    "checked_grain",
    "count_column",
    "counts_by",
    "counts_in_subsets",
    "counts_per_dimension",
    "cover_counts",
    "cube_sql",
    "cubes",
    "data_grain",
    "describe_column",
    "dimension",
    "dimension_values",
    "dimensions",
    "discover_dimensions",
    "event_rows",
    "event_sources",
    "groupable_columns",
    "ingested_files",
    "moment_counts",
    "no_users_on_counted_rows",
    "overlap_counts",
    "power_of_two_edges",
    "recorded_dimensions",
    "refresh_cubes",
    "rejected_by_reason",
    "rejected_rows",
    "requests_and_users",
    "set_grain",
    "signal_names",
    "slice_counts",
    "stored_path",
    "table_counts",
    "time_grid",
    "time_range",
    "update_cubes",
    "user_sequences",
    "value_counts",
    "where_sql",
]
