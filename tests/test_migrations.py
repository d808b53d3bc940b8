"""Schema migrations on a real, empty PostgreSQL database."""

from __future__ import annotations

import psycopg

from cgchat.db import migrate
from cgchat.db.migrate import available_migrations

EXPECTED_TABLES = {"files", "images", "videos", "blend_files", "models_3d", "thumbnails", "dependencies", "schema_migrations"}


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as c:
        return {r[0] for r in c.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def test_migrate_from_empty_then_rerun_is_a_noop(db_url: str) -> None:
    assert _tables(db_url) == set()
    applied = migrate(db_url)
    assert applied == [name for _, name, _ in available_migrations()]
    assert EXPECTED_TABLES <= _tables(db_url)
    assert migrate(db_url) == []  # re-running changes nothing
    with psycopg.connect(db_url) as c:
        versions = [r[0] for r in c.execute("SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == [v for v, _, _ in available_migrations()]
        dims = dict(c.execute(
            "SELECT attrelid::regclass::text, format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attname IN ('metadata_embedding', 'visual_embedding') AND attrelid::regclass::text = 'files'"
        ).fetchall())
        assert dims == {"files": "vector(384)"}
        indexes = {r[0] for r in c.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'files'")}
        assert any("hnsw" in d and "vector_cosine_ops" in d for d in indexes)


def test_visual_embedding_columns_are_512d(conn) -> None:  # noqa: ANN001
    rows = conn.execute(
        "SELECT attrelid::regclass::text AS t, format_type(atttypid, atttypmod) AS ty FROM pg_attribute"
        " WHERE attname = 'visual_embedding' AND NOT attisdropped AND attrelid::regclass::text NOT LIKE '%%_hnsw'"
    ).fetchall()
    assert {r["t"]: r["ty"] for r in rows} == {
        "images": "vector(512)", "videos": "vector(512)", "blend_files": "vector(512)", "video_keyframes": "vector(512)"
    }
    indexes = {r["indexname"]: r["indexdef"] for r in conn.execute("SELECT indexname, indexdef FROM pg_indexes")}
    for table in ("images", "videos", "blend_files", "video_keyframes"):
        assert "hnsw (visual_embedding vector_cosine_ops)" in indexes[f"{table}_visual_hnsw"]


def test_concurrent_migrations_apply_once(db_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: migrate(db_url), range(4)))
    assert sorted(len(r) for r in results) == [0, 0, 0, len(available_migrations())]


def test_schema_doc_matches_migrations(db_url: str) -> None:
    from cgchat.db.schema_doc import render
    from tests.conftest import REPO

    migrate(db_url)
    committed = (REPO / "docs" / "SCHEMA.md").read_text()
    assert committed == render(db_url) + "\n", "docs/SCHEMA.md is stale: run `cgchat db schema-doc > docs/SCHEMA.md`"

