"""BM25 keyword search: term statistics kept by the write path (migration 006), scored by search.

Assets are written through the real ``store.write_asset`` / ``store.delete_assets`` into a fresh
database and searched with the real ``search``; expected BM25 values are computed independently here.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import psycopg
import pytest

from cgchat.db import migrate
from cgchat.db.connection import open_connection
from cgchat.db.migrate import available_migrations
from cgchat.ingest import store
from cgchat.ingest.describe import Description
from cgchat.ingest.extractors.base import Extraction
from cgchat.search import Filters, SearchRequest, search
from cgchat.tokens import trigrams, words

FILLER = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa"
_VECTOR = np.full(384, 1 / math.sqrt(384), dtype=np.float32)


def write(conn: psycopg.Connection, path: str, name: str = "", body: str = "", folders: str = "") -> int:
    """One document asset with the given name words, folder words and body."""
    facts = store.FileFacts(path=path, name=path.rsplit("/", 1)[-1], extension="txt", size_bytes=len(body),
                            mtime_ns=0, sha256="0" * 64, mime_type="text/plain", asset_type="document")
    description = Description(text=f"{name} {body}", name_text=name, path_text=folders, meta_text="",
                              body_text=body, tokens=sorted(set(words(f"{name} {folders}"))))
    return store.write_asset(conn, facts, description, Extraction(body=body), _VECTOR, "test-model", trigrams(name))


def keyword(conn: psycopg.Connection, query: str, limit: int = 50) -> dict[str, float]:
    """path → keyword score, best first."""
    results = search(conn, SearchRequest(query, mode="keyword", limit=limit, auto_filters=False)).results
    return {r.path: r.scores["keyword"] for r in results}


def stats(conn: psycopg.Connection) -> dict[str, float]:
    return conn.execute("SELECT n_docs, total_length, k1, b FROM keyword_stats").fetchone()


def df(conn: psycopg.Connection, term: str) -> int | None:
    row = conn.execute("SELECT df FROM keyword_terms WHERE term = %s", (term,)).fetchone()
    return None if row is None else row["df"]


def assert_consistent(conn: psycopg.Connection) -> None:
    """The maintained statistics equal a recount from the postings."""
    recount = conn.execute(
        "SELECT count(*) AS n, coalesce(sum(dl), 0) AS length"
        " FROM (SELECT DISTINCT ON (file_id) file_id, dl FROM keyword_postings) d"
    ).fetchone()
    kept = stats(conn)
    assert kept["n_docs"] == recount["n"]
    assert kept["total_length"] == pytest.approx(recount["length"])
    wrong = conn.execute(
        "SELECT t.term, t.df, count(p.term) AS n FROM keyword_terms t LEFT JOIN keyword_postings p USING (term)"
        " GROUP BY t.term, t.df HAVING t.df <> count(p.term)"
    ).fetchall()
    assert wrong == []
    missing = conn.execute(
        "SELECT DISTINCT p.term FROM keyword_postings p LEFT JOIN keyword_terms t USING (term) WHERE t.term IS NULL"
    ).fetchall()
    assert missing == []


def expected_bm25(conn: psycopg.Connection, path: str, query_terms: list[str]) -> float:
    """BM25 (Lucene idf) from the raw postings and statistics, computed here, not by the search SQL."""
    s = stats(conn)
    avgdl = s["total_length"] / s["n_docs"]
    total = 0.0
    for term in query_terms:
        row = conn.execute(
            "SELECT p.tf, p.dl FROM keyword_postings p JOIN files f ON f.id = p.file_id"
            " WHERE f.path = %s AND p.term = %s", (path, term)).fetchone()
        if row is None:
            continue
        n = df(conn, term)
        idf = math.log(1 + (s["n_docs"] - n + 0.5) / (n + 0.5))
        tf, dl, k1, b = row["tf"], row["dl"], s["k1"], s["b"]
        total += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))
    return total


def test_scores_are_bm25(conn: psycopg.Connection) -> None:
    write(conn, "/d/a.txt", body="lantern lantern bridge " + FILLER)
    write(conn, "/d/b.txt", body="lantern " + FILLER + " " + FILLER)
    write(conn, "/d/c.txt", body="bridge river " + FILLER)
    got = keyword(conn, "lantern bridge")
    assert set(got) == {"/d/a.txt", "/d/b.txt", "/d/c.txt"}
    for path, score in got.items():
        assert score == pytest.approx(expected_bm25(conn, path, ["lantern", "bridg"]), rel=1e-5)


def test_rarer_terms_outrank_common_ones(conn: psycopg.Connection) -> None:
    for i in range(8):
        write(conn, f"/d/castle{i}.txt", body=f"castle castle {FILLER}")
    write(conn, "/d/dragon.txt", body=f"dragon {FILLER}")
    got = list(keyword(conn, "dragon castle"))
    # ts_rank (no idf) put the two-castle files first; BM25's idf puts the one rare word above them.
    assert got[0] == "/d/dragon.txt" and len(got) == 9


def test_term_frequency_saturates(conn: psycopg.Connection) -> None:
    for tf in (1, 2, 4, 16):
        write(conn, f"/d/tf{tf}.txt", body=" ".join(["crate"] * tf + ["filler"] * (16 - tf)))
    write(conn, "/d/other.txt", body="barrel " * 16)
    got = keyword(conn, "crate")
    s1, s2, s4, s16 = (got[f"/d/tf{tf}.txt"] for tf in (1, 2, 4, 16))
    assert s1 < s2 < s4 < s16
    assert (s2 - s1) > (s4 - s2) / 2 > (s16 - s4) / 12  # each extra occurrence adds less
    idf = math.log(1 + (5 - 4 + 0.5) / (4 + 0.5))
    assert s16 < idf * (stats(conn)["k1"] + 1)  # bounded, however often the word is repeated


def test_longer_documents_are_normalised(conn: psycopg.Connection) -> None:
    write(conn, "/d/short.txt", body=f"granite {FILLER}")
    write(conn, "/d/long.txt", body=f"granite {FILLER} {FILLER} {FILLER} {FILLER}")
    write(conn, "/d/none.txt", body=FILLER)
    got = keyword(conn, "granite")
    assert list(got) == ["/d/short.txt", "/d/long.txt"] and got["/d/short.txt"] > got["/d/long.txt"] * 1.2


def test_name_counts_more_than_path_more_than_body(conn: psycopg.Connection) -> None:
    write(conn, "/d/1.txt", body=f"oak {FILLER}")
    write(conn, "/d/2.txt", folders="oak", body=FILLER)
    write(conn, "/d/3.txt", name="oak", body=FILLER)
    assert list(keyword(conn, "oak")) == ["/d/3.txt", "/d/2.txt", "/d/1.txt"]
    tfs = {r["path"]: r["tf"] for r in conn.execute(
        "SELECT f.path, p.tf FROM keyword_postings p JOIN files f ON f.id = p.file_id WHERE p.term = 'oak'")}
    assert tfs == {"/d/1.txt": 1, "/d/2.txt": 2, "/d/3.txt": 3}


def test_studio_names_are_cut_into_words(conn: psycopg.Connection) -> None:
    name = "dragon_turntable_v003.mp4"
    write(conn, f"/show/{name}", name=f"{name} {' '.join(words('dragon_turntable_v003'))}")
    write(conn, "/show/castle_turntable_v001.mov", name="castle_turntable_v001.mov castle turntable v001")
    assert list(keyword(conn, "v003")) == [f"/show/{name}"]
    assert next(iter(keyword(conn, "DragonTurntable"))) == f"/show/{name}"  # camelCase query, snake_case name
    assert next(iter(keyword(conn, "dragn turntable"))) == f"/show/{name}"  # the typo: name trigrams decide


def test_statistics_follow_reindex_and_delete(conn: psycopg.Connection) -> None:
    first = write(conn, "/d/notes.txt", body="volumetric fog notes")
    write(conn, "/d/other.txt", body="fog machine")
    assert (df(conn, "fog"), df(conn, "volumetr"), stats(conn)["n_docs"]) == (2, 1, 2)
    assert_consistent(conn)

    again = write(conn, "/d/notes.txt", body="rain rain notes")  # the same asset, new words
    assert again == first
    assert (df(conn, "fog"), df(conn, "volumetr"), df(conn, "rain"), stats(conn)["n_docs"]) == (1, 0, 1, 2)
    assert stats(conn)["total_length"] == pytest.approx(3 + 2)
    assert keyword(conn, "volumetric") == {} and list(keyword(conn, "rain")) == ["/d/notes.txt"]
    assert_consistent(conn)

    store.delete_assets(conn, [first])
    assert (df(conn, "rain"), df(conn, "note"), df(conn, "fog"), stats(conn)["n_docs"]) == (0, 0, 1, 1)
    assert stats(conn)["total_length"] == pytest.approx(2)
    assert conn.execute("SELECT count(*) AS n FROM keyword_postings WHERE file_id = %s", (first,)).fetchone()["n"] == 0
    assert keyword(conn, "rain notes") == {}
    assert_consistent(conn)


def test_missing_assets_keep_their_postings(conn: psycopg.Connection) -> None:
    gone = write(conn, "/d/gone.txt", body="lantern")
    write(conn, "/d/here.txt", body="lantern")
    store.mark_missing(conn, [gone])
    assert list(keyword(conn, "lantern")) == ["/d/here.txt"]
    found = search(conn, SearchRequest("lantern", mode="keyword", auto_filters=False,
                                       filters=Filters(include_missing=True))).results
    assert {r.path for r in found} == {"/d/gone.txt", "/d/here.txt"}
    store.touch(conn, "/d/gone.txt", 1)  # back, unchanged: findable again without re-indexing
    assert set(keyword(conn, "lantern")) == {"/d/gone.txt", "/d/here.txt"}
    assert_consistent(conn)


def test_concurrent_writers_keep_statistics_exact(conn: psycopg.Connection, db_url: str) -> None:
    """Writers on separate connections share most terms; they must neither deadlock nor lose counts."""
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            with open_connection(db_url) as own:
                for i in range(15):
                    write(own, f"/w{n}/{i}.txt", body=f"shared words {FILLER} only{n} item{i}")
                    write(own, f"/w{n}/{i}.txt", body=f"shared words again {FILLER} item{i}")  # re-index
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert stats(conn)["n_docs"] == 60 and df(conn, "share") == 60 and df(conn, "only0") == 0
    assert_consistent(conn)


def test_migration_backfills_existing_assets(db_url: str) -> None:
    """An install indexed before migration 006 gets postings and statistics for what it already has."""
    with psycopg.connect(db_url, autocommit=True) as raw:
        raw.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())")
        for version, name, sql in available_migrations():
            if version < 6:
                raw.execute(sql)
                raw.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
        for path, name, body in [("/old/a.txt", "lantern", "lantern bridge"), ("/old/b.txt", "", "bridge river"),
                                 ("/old/c.txt", "", "river river boat")]:
            raw.execute(
                "INSERT INTO files (path, name, size_bytes, mtime_ns, sha256, asset_type, description, search_tsv)"
                " VALUES (%s, %s, 0, 0, repeat('0', 64), 'document', '',"
                " setweight(to_tsvector('english', %s), 'A') || setweight(to_tsvector('english', %s), 'D'))",
                (path, path, name, body),
            )
    assert [n for n in migrate(db_url) if n.startswith("006")]
    with open_connection(db_url) as conn:
        assert_consistent(conn)
        assert (stats(conn)["n_docs"], df(conn, "bridg"), df(conn, "river")) == (3, 2, 2)
        assert stats(conn)["total_length"] == pytest.approx((3 + 1 + 1) + 2 + 3)
        got = keyword(conn, "lantern river")
        assert next(iter(got)) == "/old/a.txt"  # a name word (weight 3) beats a body word twice
        for path, score in got.items():
            assert score == pytest.approx(expected_bm25(conn, path, ["lantern", "river"]), rel=1e-5)
        # written afterwards through the write path, on top of the backfilled statistics
        write(conn, "/new/d.txt", body="boat")
        assert (stats(conn)["n_docs"], df(conn, "boat")) == (4, 2)
        assert_consistent(conn)
