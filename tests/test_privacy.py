"""Privacy mode: no raw id or response text in the database file, its WAL or its spill folder.

Every test looks for markers in the bytes of the files DuckDB writes (the
database, its WAL, every file in its spill folder ``<db>.tmp/``), whatever the
input's shape: what no query shows can still be on disk. Hashes are hex, so a
marker with capitals and dashes can only be there raw.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

import forensics
from forensics.db import spill_folder
from forensics.privacy import HASH_CHARS, KDF, MIN_SALT_CHARS
from forensics.schema import Mapping
from tests.conftest import REPO, SALT, request_row

ID = "Ident1ty-Leak"
"""Marker in every raw user and session id."""
TEXT = "Zebra-Quokka-Answer"
"""Marker in every raw response text."""
MARKERS = (ID.encode(), TEXT.encode())


def _on_disk(db_path: Path) -> list[Path]:
    """The database file, its WAL and every file in its spill folder."""
    files = [p for p in (db_path, Path(f"{db_path}.wal")) if p.exists()]
    folder = spill_folder(db_path)
    if folder.is_dir():
        files += [p for p in folder.rglob("*") if p.is_file()]
    return files


def _leaks(db_path: Path) -> list[str]:
    """``file: marker`` for each marker found in the bytes of a file DuckDB wrote."""
    found = []
    for path in _on_disk(db_path):
        data = path.read_bytes()
        found += [f"{path.name}: {m.decode()}" for m in MARKERS if m in data]
    return found


def _private(i: int, **overrides: object) -> dict[str, object]:
    """A request whose ids and text hold the markers."""
    row = request_row(
        i,
        user_id=f"{ID}-user-{i % 3}",
        session_id=f"{ID}-session-{i}",
        response_text=f"{TEXT} number {i}: 東京 is the capital.",
        prompt_language="en",
    )
    row.update(overrides)
    return row


def _jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# -- each path that leaked ----------------------------------------------------------


def test_a_file_of_only_malformed_lines_keeps_no_raw_text(tmp_path):
    lines = [json.dumps(_private(i))[:-9] for i in range(5)]  # cut short: not JSON
    db_path = tmp_path / "p.duckdb"
    with forensics.open(db_path) as wb:
        (f,) = wb.ingest(_jsonl(tmp_path / "bad.jsonl", lines), privacy=True, salt=SALT).files
        assert (f.rows_read, f.rejected) == (5, {"malformed_json": 5})
        assert wb.rejected()["raw"].to_list() == [None] * 5
        assert wb.sql("SELECT privacy FROM ingested_files")["privacy"].to_list() == [True]
        assert _leaks(db_path) == []
    assert _leaks(db_path) == []


def test_a_column_privacy_mode_hashes_or_drops_is_never_kept_under_another_name(tmp_path):
    """The file has user_id and response_text columns, but the mapping names others."""
    rows = [
        {
            **{k: v for k, v in _private(i).items() if k not in ("user_id", "response_text")},
            "uid": f"{ID}-mapped-{i}",
            "answer": "```python\ndef f(:\n```" if i == 0 else f"{TEXT} mapped {i}",
            "user_id": f"{ID}-shadow-{i}",
            "Response_Text": f"{TEXT} shadow {i}",
        }
        for i in range(6)
    ]
    rows[5]["ts"] = "not a time"  # rejected: its raw copy is redacted too
    path = tmp_path / "in.csv"
    pl.DataFrame(rows).write_csv(path)
    mapping = Mapping(columns={"user_id": "uid", "response_text": "answer"})
    db_path = tmp_path / "p.duckdb"
    with forensics.open(db_path) as wb:
        (f,) = wb.ingest(path, mapping=mapping, privacy=True, salt=SALT).files
        assert (f.accepted, f.rejected) == (5, {"bad_timestamp": 1})
        columns = set(wb.db.columns("requests"))
        assert not {c for c in columns if c.lower().startswith(("user_id_", "response_text_"))}
        assert sum("privacy mode keeps nothing of it" in n for n in f.notes) == 2
        got = wb.sql(
            "SELECT count(DISTINCT user_id) AS users, count(response_text) AS texts, "
            "count(*) FILTER (WHERE code_syntax_error) AS broken FROM requests"
        ).rows()
        assert got == [(5, 0, 1)]  # the mapped columns: hashed, dropped after the signals
        cubes = [t for t in wb.db.tables() if t.startswith("cube_")]
        assert "cube_default" in cubes
        assert _leaks(db_path) == []
    assert _leaks(db_path) == []


def test_a_column_named_raw_keeps_its_own_value_and_no_id(tmp_path):
    rows = [_private(i, _raw=f"own value {i}") for i in range(4)]
    rows[3]["ts"] = "not a time"
    db_path = tmp_path / "p.duckdb"
    with forensics.open(db_path) as wb:
        path = _jsonl(tmp_path / "in.jsonl", [json.dumps(r) for r in rows])
        (f,) = wb.ingest(path, privacy=True, salt=SALT).files
        assert f.accepted == 3
        kept = wb.sql("SELECT raw_input FROM requests ORDER BY request_id")["raw_input"]
        assert kept.to_list() == [f"own value {i}" for i in range(3)]
        (raw,) = wb.rejected()["raw"].to_list()
        assert json.loads(raw)["_raw"] == "own value 3"
        assert _leaks(db_path) == []


@pytest.mark.parametrize("column", ["user_id", "response_text"])
def test_nested_ids_and_text_in_parquet_are_rejected_without_their_values(tmp_path, column):
    frame = pl.DataFrame([_private(i) for i in range(3)]).with_columns(
        pl.struct(pl.col(column).alias("inner")).alias(column)
    )
    path = tmp_path / "in.parquet"
    frame.write_parquet(path)
    db_path = tmp_path / "p.duckdb"
    with forensics.open(db_path) as wb:
        (f,) = wb.ingest(path, privacy=True, salt=SALT).files
        assert f.rejected == {"wrong_type": 3}
        bad = wb.rejected()["bad_value"].to_list()
        if column == "user_id":
            assert all(len(b) == HASH_CHARS and int(b, 16) >= 0 for b in bad)
        else:
            assert bad == [None] * 3
        assert _leaks(db_path) == []


# -- the key -------------------------------------------------------------------------


def test_ids_are_hmac_under_a_scrypt_key_with_a_stored_nonce(tmp_path, write_jsonl):
    db_path = tmp_path / "p.duckdb"
    with forensics.open(db_path) as wb:
        wb.ingest(write_jsonl([_private(0)]), privacy=True, salt=SALT)
        (stored,) = wb.sql("SELECT user_id FROM requests")["user_id"].to_list()
        meta = dict(wb.sql("SELECT key, value FROM forensics_meta").rows())
    assert meta["salt_kdf"] == KDF
    assert "salt_check" not in meta
    assert SALT not in json.dumps(meta)
    key = hashlib.scrypt(
        SALT.encode(), salt=bytes.fromhex(meta["salt_nonce"]), n=1 << 15, r=8, p=1,
        maxmem=64 << 20, dklen=32,
    )  # fmt: skip
    raw_id = f"{ID}-user-0"
    assert stored == hmac.new(key, raw_id.encode(), "sha256").hexdigest()[:HASH_CHARS]
    # Not a fast hash of salt and id, which one known id would let a word list test.
    assert stored != hashlib.sha256((SALT + raw_id).encode()).hexdigest()[:HASH_CHARS]
    assert meta["salt_verifier"] == hmac.new(key, b"forensics salt verifier", "sha256").hexdigest()


def test_a_second_database_draws_its_own_nonce(tmp_path, write_jsonl):
    ids = []
    for name in ("a", "b"):
        with forensics.open(tmp_path / f"{name}.duckdb") as wb:
            wb.ingest(write_jsonl([_private(0)]), privacy=True, salt=SALT)
            ids += wb.sql("SELECT user_id FROM requests")["user_id"].to_list()
    assert ids[0] != ids[1]


def test_a_short_salt_is_refused_saying_what_to_use(tmp_path, write_jsonl):
    with forensics.open(tmp_path / "p.duckdb") as wb:
        short = SALT[: MIN_SALT_CHARS - 1]
        with pytest.raises(forensics.ConfigError, match=r"has 15 characters.*at least 16"):
            wb.ingest(write_jsonl([_private(0)]), privacy=True, salt=short)
        assert wb.db.meta("privacy") is None
        (f,) = wb.ingest(write_jsonl([_private(0)]), privacy=True, salt=SALT[:MIN_SALT_CHARS]).files
        assert f.accepted == 1


def test_a_database_made_with_the_old_salt_check_says_to_re_ingest(tmp_path, write_jsonl):
    """Before the KDF, a database stored 12 hex digits of the salt's SHA-256 and no nonce."""
    db_path = tmp_path / "old.duckdb"
    with forensics.open(db_path) as wb:
        wb.db.set_meta("privacy", "on")
        wb.db.set_meta(
            "salt_check", hashlib.sha256(b"forensics-salt-check:" + SALT.encode()).hexdigest()[:12]
        )
    with forensics.open(db_path) as wb:
        with pytest.raises(
            forensics.ConfigError, match=r"older forensics.*re-ingest.*new database"
        ):
            wb.ingest(write_jsonl([_private(0)]), privacy=True, salt=SALT)
        with pytest.raises(forensics.ConfigError, match="privacy mode"):
            wb.ingest(write_jsonl([_private(0)]))


# -- signals are the same with and without privacy ------------------------------------


_SIGNALS = ("script_mix", "code_syntax_error", "argmax_violation", "low_eval", "degraded")


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "parquet-staged"])
def test_privacy_mode_computes_the_same_signals(tmp_path, fmt):
    texts = [
        "Plain English answer.",
        "An English answer with ข้อ Thai in it.",
        "```python\ndef broken(:\n    pass\n```",
        "```python\nprint('fine')\n```",
        "   ",
        None,
    ]
    rows = [
        _private(i, response_text=texts[i % len(texts)], prompt_language=["en", None][i % 2])
        for i in range(12)
    ]
    frame = pl.DataFrame(rows)
    if fmt == "parquet-staged":
        frame = frame.with_columns(pl.lit("own").alias("file_row_number"))
    path = tmp_path / f"in.{fmt.split('-')[0]}"
    if fmt == "csv":
        frame.write_csv(path)
    elif fmt == "jsonl":
        _jsonl(path, [json.dumps(r) for r in rows])
    else:
        frame.write_parquet(path)
    got = {}
    for mode in ("open", "private"):
        with forensics.open(tmp_path / f"{mode}.duckdb") as wb:
            wb.ingest(path, privacy=mode == "private", salt=SALT)
            got[mode] = wb.sql(
                f"SELECT {', '.join(_SIGNALS)} FROM requests ORDER BY request_id"
            ).rows()
    assert got["private"] == got["open"]
    assert any(r[0] for r in got["open"])
    assert any(r[1] for r in got["open"])


# -- every shape at once, and a control ------------------------------------------------


def _hostile_files(folder: Path) -> list[tuple[list[Path], Mapping | None]]:
    """Inputs of every shape that once leaked, with the mapping each is ingested under."""
    folder.mkdir()
    good = [_private(i) for i in range(8)]
    out: list[tuple[list[Path], Mapping | None]] = []
    # JSON lines: malformed only; then every row-level problem in one file
    out.append(([_jsonl(folder / "malformed.jsonl", [json.dumps(r)[:-5] for r in good])], None))
    lines = [json.dumps(r) for r in good]
    lines.append(json.dumps(_private(20, ts="yesterday")))  # bad_timestamp
    lines.append(json.dumps(_private(21))[:-1] + f', "user_id": "{ID}-twice"}}')  # duplicate_key
    lines.append(json.dumps([f"{ID}-in-an-array", TEXT]))  # not_a_json_object
    lines.append(json.dumps(_private(0, model="other")))  # duplicate_conflict
    lines.append(json.dumps(_private(1)))  # exact duplicate
    lines.append(json.dumps(_private(22, user_id={"id": f"{ID}-object"})))  # wrong_type
    lines.append(json.dumps(_private(23, response_text=[TEXT])))  # wrong_type
    lines.append(json.dumps(_private(24, _raw="own raw column value")))  # a `_raw` column
    raw_bytes = json.dumps(_private(25)).encode().replace(b"number", b"numb\xff")  # invalid_utf8
    path = _jsonl(folder / "rows.jsonl", lines)
    with path.open("ab") as fh:
        fh.write(raw_bytes + b"\n")
    out.append(([path], None))
    # the same rows gzipped, and as a JSON array
    gz = folder / "rows2.jsonl.gz"
    gz.write_bytes(gzip.compress(path.read_bytes().replace(b'"r000', b'"g000')))
    array = folder / "rows.json"
    array.write_text("[" + ",\n".join(json.dumps(_private(30 + i)) for i in range(4)) + "]")
    out.append(([gz, array], None))
    # CSV: a row with too many fields, one with bad UTF-8, shadow columns under a mapping
    frame = pl.DataFrame(
        [
            {
                **{k: v for k, v in _private(40 + i).items() if k != "user_id"},
                "uid": f"{ID}-mapped-{i}",
                "user_id": f"{ID}-shadow-{i}",
            }
            for i in range(4)
        ]
    )
    csv = folder / "shadow.csv"
    frame.write_csv(csv)
    with csv.open("ab") as fh:
        fh.write(f"r9,{ID}-extra-field,{TEXT},x,y\n".encode())
        fh.write(f"r10,2025-08-01T00:00:00Z,m,gpu,p,{ID}-bad-utf8 \xff".encode("latin-1") + b"\n")
    out.append(([csv], Mapping(columns={"user_id": "uid"})))
    # Parquet: nested ids and text; a file with its own file_row_number column (copied)
    nested = folder / "nested.parquet"
    pl.DataFrame([_private(50 + i) for i in range(3)]).with_columns(
        pl.struct(pl.col("user_id").alias("inner")).alias("user_id"),
        pl.col("response_text").map_elements(lambda t: [t], return_dtype=pl.List(pl.Utf8)),
    ).write_parquet(nested)
    staged = folder / "staged.parquet"
    rows = [_private(60 + i, file_row_number=i) for i in range(5)]
    rows[4]["ts"] = "never"
    pl.DataFrame(rows).write_parquet(staged)
    out.append(([nested, staged], None))
    # a larger file, so that the staged rows spill under a small memory limit
    big = [
        json.dumps(_private(1000 + i, response_text=f"{TEXT} {i} " + "x" * 900))
        for i in range(20_000)
    ]
    out.append(([_jsonl(folder / "big.jsonl", big)], None))
    return out


def _ingest_all(db_path: Path, inputs, *, privacy: bool) -> list[str]:
    """Ingest every input; return the leaks seen while the database was open."""
    seen = []
    with forensics.open(db_path) as wb:
        for paths, mapping in inputs:
            wb.ingest(*paths, mapping=mapping, privacy=privacy, salt=SALT, errors="collect")
            seen += _leaks(db_path)
        wb.report("privacy").save(db_path.parent / f"{db_path.stem}.json")
        seen += _leaks(db_path)
    return seen


def test_no_input_of_any_shape_puts_a_raw_id_or_text_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("FORENSICS_MEMORY_LIMIT", "100MB")
    inputs = _hostile_files(tmp_path / "in")
    db_path = tmp_path / "private.duckdb"
    assert _ingest_all(db_path, inputs, privacy=True) == []
    assert _leaks(db_path) == []
    report = (tmp_path / "private.json").read_text()
    assert ID not in report
    assert TEXT not in report
    # The control: the same inputs without privacy mode show both markers, through
    # the same scan, for every input (so the scan above is not blind to any shape).
    for i, (paths, mapping) in enumerate(inputs):
        control = tmp_path / f"control{i}.duckdb"
        with forensics.open(control) as wb:
            wb.ingest(*paths, mapping=mapping, errors="collect")
            found = {leak.split(": ")[1] for leak in _leaks(control)}
        assert ID in found, paths


# -- kill -9 -------------------------------------------------------------------------


_KILLED = r"""
import sys
import forensics
wb = forensics.open(sys.argv[1])
wb.ingest(sys.argv[2], privacy=True, salt=sys.argv[3])
"""


def _spilled(db_path: Path) -> int:
    folder = spill_folder(db_path)
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def _bulky(n: int) -> list[str]:
    """Lines whose staged copy, hashed and without the text, still spills under 48 MB."""
    return [json.dumps(_private(i, notes="y" * 1500)) for i in range(n)]


def test_kill_9_during_a_privacy_ingest_leaves_no_raw_id_on_disk(tmp_path):
    rows = _bulky(40_000)
    path = _jsonl(tmp_path / "big.jsonl", rows)
    db_path = tmp_path / "p.duckdb"
    env = {**os.environ, "FORENSICS_MEMORY_LIMIT": "48MB", "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED, str(db_path), str(path), SALT],
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while _spilled(db_path) < (8 << 20) and child.poll() is None:
            assert time.monotonic() < deadline, "the ingest never spilled"
            time.sleep(0.05)
        assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert _spilled(db_path) > 0
    assert _leaks(db_path) == []  # what the killed process left
    # Reopened, the database is whole and the killed process's spill is gone.
    with forensics.open(db_path) as wb:
        assert not [p for p in spill_folder(db_path).glob("duckdb_temp_*") if p.stat().st_size]
        small = _jsonl(tmp_path / "small.jsonl", rows[:10])
        (f,) = wb.ingest(small, privacy=True, salt=SALT).files
        assert f.accepted == 10
        assert _leaks(db_path) == []
    assert _leaks(db_path) == []


def test_the_kill_9_scan_sees_raw_text_without_privacy(tmp_path):
    """The same kill without privacy mode leaves raw ids in the spill: the scan sees them."""
    rows = _bulky(40_000)
    path = _jsonl(tmp_path / "big.jsonl", rows)
    db_path = tmp_path / "p.duckdb"
    env = {**os.environ, "FORENSICS_MEMORY_LIMIT": "48MB", "PYTHONPATH": str(REPO)}
    script = _KILLED.replace("privacy=True, salt=sys.argv[3]", "")
    child = subprocess.Popen([sys.executable, "-c", script, str(db_path), str(path), SALT], env=env)
    try:
        deadline = time.monotonic() + 120
        while _spilled(db_path) < (8 << 20) and child.poll() is None:
            assert time.monotonic() < deadline, "the ingest never spilled"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    assert any(ID in leak for leak in _leaks(db_path))


def test_a_script_without_a_main_guard_is_told_to_add_one(tmp_path, write_jsonl):
    """The reader is spawned: it imports the calling script again, which opens the database."""
    path = write_jsonl([_private(0)])
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import forensics\n"
        f"with forensics.open({str(tmp_path / 'p.duckdb')!r}) as wb:\n"
        f"    wb.ingest({str(path)!r}, privacy=True, salt={SALT!r})\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert '`if __name__ == "__main__":`' in done.stderr.splitlines()[-1]
