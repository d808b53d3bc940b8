"""Ingest end to end on real files into a real Postgres: idempotence, changes, deletions, bad files."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import psycopg
from PIL import Image

from cgchat.ingest.pipeline import Ingestor
from tests.conftest import SAMPLES, run_cli

DRAGON_MODEL = "dragon/assets/chr/dragon/model/dragon_model_v003.blend"
BRICK = "dragon/assets/env/castle/tex/brick_albedo.png"
TURNTABLE = "dragon/review/turntables/dragon_turntable_v003.mp4"
SHOT_LIST = "dragon/docs/shot_list.csv"


def _snapshot(conn: psycopg.Connection) -> list[tuple]:
    rows = conn.execute(
        "SELECT id, path, sha256, mtime_ns, status, indexed_at, description FROM files ORDER BY path"
    ).fetchall()
    return [tuple(r.values()) for r in rows]


def _count(conn: psycopg.Connection, sql: str, *params: object) -> int:
    return conn.execute(sql, params).fetchone()["n"]


def test_ingest_sample_library_then_rerun_changes_nothing(conn, encoder, library: Path) -> None:  # noqa: ANN001
    files = [p for p in library.rglob("*") if p.is_file() and not p.name.startswith(".")]
    first = Ingestor(conn, encoder).run([library])
    assert first.skipped == [] and first.exit_code == 0
    assert first.added == len(files) == first.scanned
    types = {r["asset_type"]: r["n"] for r in conn.execute("SELECT asset_type, count(*) AS n FROM files GROUP BY 1")}
    assert types["blend"] >= 5 and types["image"] >= 8 and types["video"] >= 3 and types["model"] >= 4
    assert types["document"] >= 3
    # every type table got its rows, each embedding is 384-d from the current model
    assert _count(conn, "SELECT count(*) AS n FROM blend_files") == types["blend"]
    assert _count(conn, "SELECT count(*) AS n FROM videos") == types["video"]
    assert _count(conn, "SELECT count(*) AS n FROM files WHERE metadata_embedding IS NULL") == 0
    assert _count(conn, "SELECT count(*) AS n FROM files WHERE embedding_model <> %s", encoder.model_id) == 0

    before = _snapshot(conn)
    second = Ingestor(conn, encoder).run([library])
    assert (second.added, second.updated, second.unchanged) == (0, 0, len(files))
    assert _snapshot(conn) == before


def test_dependencies_answer_which_blends_use_a_texture(conn, encoder, library: Path) -> None:  # noqa: ANN001
    Ingestor(conn, encoder).run([library])
    rows = conn.execute(
        "SELECT f.name, d.kind, d.exists FROM dependencies d JOIN files f ON f.id = d.file_id"
        " WHERE lower(d.name) = lower(%s)", ("brick_albedo.png",)
    ).fetchall()
    assert [(r["name"], r["kind"], r["exists"]) for r in rows] == [("castle_env_v002.blend", "image", True)]
    missing = conn.execute(
        "SELECT f.name FROM dependencies d JOIN files f ON f.id = d.file_id WHERE NOT d.exists AND d.name = %s",
        ("missing_wing_membrane.png",),
    ).fetchall()
    assert [r["name"] for r in missing] == ["dragon_flight_sh010_v001.blend"]
    lib = conn.execute(
        "SELECT f.name FROM dependencies d JOIN files f ON f.id = d.file_id WHERE d.kind = 'library'"
    ).fetchall()
    assert "castle_env_v002.blend" in {r["name"] for r in lib}
    thumbs = conn.execute(
        "SELECT f.name, t.width, t.height, substring(t.data from 1 for 8) AS magic FROM thumbnails t"
        " JOIN files f ON f.id = t.file_id"
    ).fetchall()
    assert any(r["name"] == "dragon_model_v003.blend" for r in thumbs)
    assert all(bytes(r["magic"]) == b"\x89PNG\r\n\x1a\n" and r["width"] > 0 for r in thumbs)


def test_changed_file_is_reindexed_in_place(conn, encoder, library: Path) -> None:  # noqa: ANN001
    Ingestor(conn, encoder).run([library])
    brick = library / BRICK
    old = conn.execute("SELECT f.id, f.sha256, i.width FROM files f JOIN images i ON i.file_id = f.id"
                       " WHERE path = %s", (str(brick),)).fetchone()
    Image.new("RGB", (512, 128), "orange").save(brick)
    report = Ingestor(conn, encoder).run([library])
    assert report.updated == 1 and report.added == 0
    new = conn.execute("SELECT f.id, f.sha256, i.width, i.height FROM files f JOIN images i ON i.file_id = f.id"
                       " WHERE path = %s", (str(brick),)).fetchone()
    assert new["id"] == old["id"] and new["sha256"] != old["sha256"]
    assert (new["width"], new["height"]) == (512, 128)
    assert _count(conn, "SELECT count(*) AS n FROM images WHERE file_id = %s", old["id"]) == 1


def test_touched_but_identical_file_is_not_reprocessed(conn, encoder, library: Path) -> None:  # noqa: ANN001
    Ingestor(conn, encoder).run([library])
    target = library / TURNTABLE
    row = conn.execute("SELECT indexed_at, mtime_ns FROM files WHERE path = %s", (str(target),)).fetchone()
    os.utime(target, ns=(row["mtime_ns"] + 5_000_000_000, row["mtime_ns"] + 5_000_000_000))
    report = Ingestor(conn, encoder).run([library])
    assert report.updated == 0 and report.unchanged == report.scanned
    after = conn.execute("SELECT indexed_at, mtime_ns FROM files WHERE path = %s", (str(target),)).fetchone()
    assert after["indexed_at"] == row["indexed_at"] and after["mtime_ns"] == row["mtime_ns"] + 5_000_000_000


def test_deleted_file_is_marked_missing_then_pruned(conn, encoder, library: Path) -> None:  # noqa: ANN001
    Ingestor(conn, encoder).run([library])
    gone = library / SHOT_LIST
    gone.unlink()
    report = Ingestor(conn, encoder).run([library])
    assert report.missing == 1
    row = conn.execute("SELECT status, missing_since FROM files WHERE path = %s", (str(gone),)).fetchone()
    assert row["status"] == "missing" and row["missing_since"] is not None
    report = Ingestor(conn, encoder).run([library], prune=True)
    assert report.pruned == 1
    assert _count(conn, "SELECT count(*) AS n FROM files WHERE path = %s", str(gone)) == 0
    # a file that comes back is indexed again
    shutil.copy(SAMPLES / SHOT_LIST, gone)
    assert Ingestor(conn, encoder).run([library]).added == 1


def test_missing_file_that_reappears_is_indexed_again(conn, encoder, library: Path) -> None:  # noqa: ANN001
    Ingestor(conn, encoder).run([library])
    target = library / BRICK
    data = target.read_bytes()
    target.unlink()
    Ingestor(conn, encoder).run([library])
    target.write_bytes(data)
    Ingestor(conn, encoder).run([library])
    assert conn.execute("SELECT status FROM files WHERE path = %s", (str(target),)).fetchone()["status"] == "indexed"


def test_corrupt_and_odd_files_are_reported_and_skipped(conn, encoder, tmp_path: Path) -> None:  # noqa: ANN001
    root = tmp_path / "proj"
    shutil.copytree(SAMPLES / "dragon/assets/chr", root / "assets/chr")
    blend = SAMPLES / DRAGON_MODEL
    (root / "assets/truncated_v001.blend").write_bytes(blend.read_bytes()[: blend.stat().st_size // 3])
    (root / "assets/not_really.blend").write_bytes(b"this is not a blend file at all" * 10)
    (root / "assets/broken.png").write_bytes((SAMPLES / BRICK).read_bytes()[:300])
    (root / "assets/garbage.mp4").write_bytes(os.urandom(4096))
    (root / "assets/empty.exr").write_bytes(b"")
    odd = root / "ref" / ("long " * 30).strip() / "élan vital — dragon 龍 sketch.png"
    odd.parent.mkdir(parents=True)
    Image.new("RGBA", (40, 20), (0, 255, 0, 128)).save(odd)

    report = Ingestor(conn, encoder).run([root])
    skipped = {Path(s.path).name: s.reason for s in report.skipped}
    assert set(skipped) == {"truncated_v001.blend", "not_really.blend", "broken.png", "garbage.mp4"}
    assert all(reason for reason in skipped.values())
    assert report.exit_code == 1
    names = {r["name"] for r in conn.execute("SELECT name FROM files")}
    assert not names & set(skipped)  # nothing half-written for skipped files
    assert {"empty.exr", odd.name, "dragon_model_v003.blend"} <= names
    assert _count(conn, "SELECT count(*) AS n FROM images i JOIN files f ON f.id = i.file_id WHERE f.name = %s",
                  odd.name) == 1
    # no orphan rows anywhere
    for table in ("images", "videos", "blend_files", "models_3d", "thumbnails", "dependencies"):
        assert _count(conn, f"SELECT count(*) AS n FROM {table} t LEFT JOIN files f ON f.id = t.file_id"
                      " WHERE f.id IS NULL") == 0


def test_cli_ingest_exit_codes_and_summary(db_url: str, tmp_path: Path) -> None:
    root = tmp_path / "lib"
    shutil.copytree(SAMPLES / "dragon/docs", root / "docs")
    ok = run_cli("ingest", str(root), "--json")
    assert ok.returncode == 0, ok.stderr
    summary = json.loads(ok.stdout)
    assert summary["added"] == len(list((root / "docs").iterdir())) and summary["skipped"] == []

    (root / "docs/bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnope")
    some_bad = run_cli("ingest", str(root))
    assert some_bad.returncode == 1
    assert "bad.png" in some_bad.stderr and "skipped 1" in some_bad.stderr

    usage = run_cli("ingest", str(tmp_path / "does-not-exist"))
    assert usage.returncode == 2 and "no such file or folder" in usage.stderr
    assert run_cli("ingest").returncode == 2
