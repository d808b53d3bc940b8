"""`cgchat ingest` killed with SIGKILL at random points, then re-run, leaves exactly the index a clean run
leaves: no lost, duplicate or half-written rows in any table (files, type tables, dependencies, thumbnails,
keyword statistics, visual embeddings, ...), embeddings equal within float tolerance.

Both runs are the real CLI in a subprocess against a real Postgres; the kills are seeded, spread over the
part of each run that writes (before the first write, among the text writes, inside the visual pass with a
tiny CLIP installed), and the test checks that they really landed mid-run, so it cannot pass by killing
only before the first or after the last write.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import psycopg
import pytest
from psycopg import sql

from tests.conftest import SAMPLES, _create_database

COPIES = 4  # the sample library four times over: ~130 files, several seconds of writes per run
KILLS = 5
SEED = 20261125
RUN_LIMIT_S = 120
# Columns that legitimately differ between two runs: surrogate keys (sequences advance on rolled-back
# inserts) and wall-clock times. file_id is replaced by the file's path.
VOLATILE = {"id", "file_id", "indexed_at", "missing_since", "applied_at", "created_at", "updated_at",
            "embedded_at", "visual_at", "last_seen", "first_seen"}


@pytest.fixture()
def big_library(tmp_path: Path) -> Path:
    root = tmp_path / "library"
    for n in range(COPIES):
        shutil.copytree(SAMPLES, root / f"show{n}")
    return root


def _ingest(library: Path, url: str, home: Path, clip_dir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "DATABASE_URL": url, "CGCHAT_HOME": str(home), "CLIP_MODEL_DIR": str(clip_dir)}
    return subprocess.Popen([sys.executable, "-m", "cgchat.cli", "ingest", str(library), "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _indexed(url: str, where: str = "true") -> int:
    """Files committed so far (0 while the schema is not there yet)."""
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            return conn.execute(f"SELECT count(*) FROM files WHERE {where}").fetchone()[0]
    except psycopg.errors.UndefinedTable:
        return 0


def _embedded(url: str) -> int:
    """Assets whose visual (CLIP) embedding is committed."""
    return _indexed(url, "visual_status = 'embedded'")


def _clean_run(library: Path, url: str, home: Path, clip_dir: Path) -> float:
    """Run to completion; return the seconds until the first file was committed."""
    started = time.monotonic()
    proc = _ingest(library, url, home, clip_dir)
    first = None
    while proc.poll() is None:
        if first is None and _indexed(url) > 0:
            first = time.monotonic() - started
        time.sleep(0.05)
    total = time.monotonic() - started
    _, err = proc.communicate()
    assert proc.returncode == 0, err
    return first if first is not None else total / 2


def _kill_after(library: Path, url: str, home: Path, clip_dir: Path, delay: float) -> bool:
    """Start an ingest and SIGKILL it after ``delay`` s; True when it was still running then."""
    proc = _ingest(library, url, home, clip_dir)
    try:
        proc.wait(timeout=delay)
        return False  # finished before the kill
    except subprocess.TimeoutExpired:
        return _kill(proc)


def _kill_mid_writes(library: Path, url: str, home: Path, clip_dir: Path, reached: Any, jitter: float) -> bool:
    """Start an ingest, wait until ``reached()`` says enough is committed, then SIGKILL it ``jitter`` s
    later (wherever it is then: extracting, embedding, inside a write); True when it was still running."""
    proc = _ingest(library, url, home, clip_dir)
    deadline = time.monotonic() + RUN_LIMIT_S
    while proc.poll() is None and not reached() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(jitter)
    return _kill(proc)


def _kill(proc: subprocess.Popen[str]) -> bool:
    running = proc.poll() is None
    if running:
        proc.send_signal(signal.SIGKILL)
    proc.communicate()
    return running


def _dump(url: str) -> dict[str, list[tuple[tuple, list]]]:
    """Every table's rows as (exact part, float part), sorted by the exact part; file_id replaced by path."""
    from pgvector.psycopg import register_vector

    tables: dict[str, list[tuple[tuple, list]]] = {}
    with psycopg.connect(url, row_factory=psycopg.rows.dict_row) as conn:
        register_vector(conn)
        names = [r["table_name"] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            " AND table_type = 'BASE TABLE' ORDER BY table_name")]
        for name in names:
            columns = [r["column_name"] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public'"
                " AND table_name = %s", (name,))]
            if "file_id" in columns:
                query = sql.SQL("SELECT f.path AS file_path, t.* FROM {} t LEFT JOIN files f ON f.id = t.file_id")
            else:
                query = sql.SQL("SELECT * FROM {} t")
            rows = conn.execute(query.format(sql.Identifier(name))).fetchall()
            tables[name] = sorted((_split(row) for row in rows), key=lambda r: repr(r[0]))
    return tables


def _split(row: dict[str, Any]) -> tuple[tuple, list]:
    exact: list[Any] = []
    approx: list[Any] = []
    for column, value in row.items():
        if column in VOLATILE and not isinstance(value, bool):
            continue
        if hasattr(value, "to_numpy"):  # pgvector's Vector
            value = value.to_numpy()
        if isinstance(value, (float, np.ndarray)):
            approx.append((column, np.asarray(value, dtype=np.float64)))
        else:
            exact.append((column, value))
    return tuple(exact), approx


def _assert_same_index(clean: dict, resumed: dict) -> None:
    assert sorted(clean) == sorted(resumed)
    counts = {name: (len(clean[name]), len(resumed[name])) for name in clean}
    assert all(a == b for a, b in counts.values()), f"row counts (clean, killed+resumed) differ: {counts}"
    for name, rows in clean.items():
        for (exact_a, approx_a), (exact_b, approx_b) in zip(rows, resumed[name], strict=True):
            where = f"{name} row {exact_a[0]!r}"
            if exact_a != exact_b:
                differing = [a[0] for a, b in zip(exact_a, exact_b, strict=False) if a != b]
                raise AssertionError(f"{where}: values differ in {differing or 'the column set'}")
            for (column, a), (_, b) in zip(approx_a, approx_b, strict=True):
                if a.shape != b.shape or not np.allclose(a, b, rtol=1e-4, atol=1e-5, equal_nan=True):
                    raise AssertionError(f"{where}: numbers in {column} differ beyond float noise")


def test_sigkilled_ingest_resumes_to_the_same_index_as_a_clean_run(
    big_library: Path, pg_server_url: str, session_home: Path, encoder: Any, tiny_clip_dir: Path,
) -> None:
    clip = tiny_clip_dir  # a CLIP is installed: every run also does the visual pass, and kills land there too
    clean_url = _create_database(pg_server_url, f"clean_{uuid.uuid4().hex[:8]}")
    first_write = _clean_run(big_library, clean_url, session_home, clip)
    total_files, total_visual = _indexed(clean_url), _embedded(clean_url)
    assert total_files == len([p for p in big_library.rglob("*") if p.is_file()]) and total_visual > 20

    killed_url = _create_database(pg_server_url, f"killed_{uuid.uuid4().hex[:8]}")
    rng = random.Random(SEED)
    # first a kill anywhere before the first write (migration, model load, scan, extraction) ...
    assert _kill_after(big_library, killed_url, session_home, clip, rng.uniform(0.2, first_write))
    mid_run = []
    for _ in range(KILLS - 2):  # ... then kills at random points among the text writes still to do ...
        before = _indexed(killed_url)
        target = before + rng.randint(1, max(1, (total_files - before) // 2))
        was_running = _kill_mid_writes(big_library, killed_url, session_home, clip,
                                       lambda n=target: _indexed(killed_url) >= n, rng.uniform(0, 0.3))
        mid_run.append(was_running and before < _indexed(killed_url) < total_files)
    assert sum(mid_run) >= KILLS - 3, f"too few kills landed between writes ({mid_run}); the test proved little"
    # ... and one in the visual pass, once every file is indexed
    target = rng.randint(1, total_visual // 2)
    assert _kill_mid_writes(big_library, killed_url, session_home, clip,
                            lambda: _indexed(killed_url) == total_files and _embedded(killed_url) >= target,
                            rng.uniform(0, 0.3))
    assert 0 < _embedded(killed_url) < total_visual, "the kill missed the visual pass"

    final = _ingest(big_library, killed_url, session_home, clip)
    out, err = final.communicate(timeout=RUN_LIMIT_S)
    assert final.returncode == 0, err
    assert '"skipped": []' in out

    clean = _dump(clean_url)
    _assert_same_index(clean, _dump(killed_url))
    # the comparison itself is sensitive: one lost row, or one nudged vector, is caught
    with psycopg.connect(killed_url, autocommit=True) as conn:
        conn.execute("UPDATE files SET metadata_embedding = metadata_embedding + array_fill(0.01, ARRAY[384])::vector"
                     " WHERE id = (SELECT min(id) FROM files)")
    with pytest.raises(AssertionError, match="metadata_embedding differ"):
        _assert_same_index(clean, _dump(killed_url))
    with psycopg.connect(killed_url, autocommit=True) as conn:
        conn.execute("DELETE FROM dependencies WHERE id = (SELECT min(id) FROM dependencies)")
    with pytest.raises(AssertionError, match="row counts"):
        _assert_same_index(clean, _dump(killed_url))


# --- the embedded database (no DATABASE_URL) ---------------------------------------------------------------


@pytest.fixture()
def embedded_home() -> Iterator[Path]:
    """A fresh CGCHAT_HOME for the embedded Postgres, outside pytest's 0700 tmp (as root, pgserver runs
    Postgres as its own user, which must reach the data dir); any server left running is stopped."""
    home = Path(tempfile.mkdtemp(prefix="cgchat-kill-"))
    home.chmod(0o755)
    yield home
    for proc in _postgres_of(home / "pgdata"):  # only if the test failed: started by this test
        proc.kill()
    shutil.rmtree(home, ignore_errors=True)


def _postgres_of(pgdata: Path) -> list[psutil.Process]:
    """Running initdb/postgres processes of this data dir."""
    return [p for p in psutil.process_iter(["name", "cmdline"])
            if p.info["name"] in ("initdb", "postgres") and str(pgdata) in (p.info["cmdline"] or [])]


def _embedded_ingest(home: Path, path: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CLIP_MODEL_DIR")}
    env.update({"CGCHAT_HOME": str(home), "TEXT_MODEL": "minilm-int8", "CLIP_MODEL_DIR": str(home / "no-clip")})
    return subprocess.Popen([sys.executable, "-m", "cgchat.cli", "ingest", str(path), "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_until(condition: Any, what: str, limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.005)


def test_embedded_database_survives_kills_during_its_first_start_and_mid_run(embedded_home: Path) -> None:
    pgdata = (embedded_home / "pgdata").resolve()
    docs = SAMPLES / "dragon/docs"
    # 1. killed while initdb creates the cluster: initdb runs on, orphaned; the next run, started at once,
    #    must wait for it instead of tripping over its lock file or starting Postgres on half a cluster
    first = _embedded_ingest(embedded_home, docs)
    _wait_until(lambda: any(p.info["name"] == "initdb" for p in _postgres_of(pgdata)), "initdb to start")
    _kill(first)
    again = _embedded_ingest(embedded_home, docs)
    out, err = again.communicate(timeout=RUN_LIMIT_S)
    assert again.returncode == 0, err
    assert '"added": 2' in out
    _wait_until(lambda: not _postgres_of(pgdata), "the last user to stop Postgres", 30)

    # 2. killed mid-run, after it registered as a user of the server: the next run must still be able to
    #    stop Postgres when it is done (the dead process no longer counts as a user)
    handles = pgdata / ".handle_pids.json"
    victim = _embedded_ingest(embedded_home, SAMPLES)
    _wait_until(lambda: handles.exists() and str(victim.pid) in handles.read_text(), "the run to join the server")
    _kill(victim)
    assert _postgres_of(pgdata), "Postgres outlives a killed user"
    after = _embedded_ingest(embedded_home, SAMPLES)
    out, err = after.communicate(timeout=RUN_LIMIT_S)
    assert after.returncode == 0, err
    assert '"skipped": []' in out
    _wait_until(lambda: not _postgres_of(pgdata), "the last user to stop Postgres", 30)
