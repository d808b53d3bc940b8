"""Visual search end to end with a tiny random CLIP (tests/tiny_clip.py), exported through the same
conversion ``cgchat models install-clip`` runs: ingest of every sample picture, pending → embedded,
image→image, text→image, video timecodes, model switching, and the no-model errors.

Random weights carry no meaning, so nothing here asserts that "red car" finds a red car; what is
asserted holds for any weights: near-identical pictures get near-identical vectors (a resized,
re-encoded or slightly cropped copy finds its original), exact frames find their keyframe, and
vectors of two models are never compared.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import SAMPLES, _create_database, _use_database, run_cli

pytest.importorskip("torch")  # the tiny CLIP is built with transformers (test dependency)

VISUAL_TYPES = ("image", "video", "blend")
# Different files of the very same picture: a hit on its twin is as good as a hit on the original.
TWINS = [
    {"forest_dusk_v002.jpg", "forest_dusk_v002_cmyk.jpg"},
    {"sh020_beauty_v002.png", "sh020_beauty_v002.exr"},
]


@pytest.fixture(scope="module")
def visual_db(pg_server_url: str, encoder, tiny_clip_dir: Path) -> str:  # noqa: ANN001
    """The sample library indexed, then embedded by the tiny CLIP."""
    from cgchat.db import migrate
    from cgchat.db.connection import open_connection
    from cgchat.ingest.pipeline import Ingestor
    from cgchat.ingest.visual import VisualIndexer
    from cgchat.models.clip_encoder import ClipEncoder

    url = _create_database(pg_server_url, "visual_index")
    migrate(url)
    with open_connection(url) as c:
        Ingestor(c, encoder).run([SAMPLES])
        report = VisualIndexer(c, ClipEncoder(tiny_clip_dir)).run()
    assert not report.failed, report.as_dict()
    return url


@pytest.fixture()
def visual_conn(visual_db: str, clip_env: Path, session_home: Path, monkeypatch: pytest.MonkeyPatch):
    from cgchat.db.connection import open_connection

    _use_database(monkeypatch, visual_db, session_home)
    c = open_connection(visual_db)
    yield c
    c.close()


def _search(conn, **kwargs):  # noqa: ANN001, ANN003, ANN202
    from cgchat.search import SearchRequest, search

    return search(conn, SearchRequest(**kwargs))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


# --- ingest: pending, embedded, no preview --------------------------------------------------------


def test_ingest_without_a_model_marks_pictures_pending(conn, encoder, library: Path):  # noqa: ANN001
    from cgchat.ingest.pipeline import Ingestor

    no_preview = library / "forest/assets/env/oak/tree_oak_v001_nopreview.blend"
    _strip_blend_preview(library / "forest/assets/env/oak/tree_oak_v001.blend", no_preview)
    Ingestor(conn, encoder).run([library])
    rows = conn.execute("SELECT name, asset_type, visual_status, metadata_json FROM files").fetchall()
    by_type = {}
    for row in rows:
        by_type.setdefault(row["asset_type"], set()).add(row["visual_status"])
    assert by_type["image"] == {"pending"} and by_type["video"] == {"pending"}
    assert by_type["blend"] == {"pending", "no_picture"}
    assert by_type["document"] == {None} and by_type["model"] == {None}
    stripped = next(r for r in rows if r["name"] == no_preview.name)
    assert stripped["visual_status"] == "no_picture"
    assert "no preview thumbnail" in stripped["metadata_json"]["visual"]
    assert stripped["metadata_json"]["blend"]["has_preview"] is False
    # Nothing has a vector yet.
    assert conn.execute("SELECT count(*) AS n FROM images WHERE visual_embedding IS NOT NULL").fetchone()["n"] == 0


def test_visual_pass_is_resumable_and_fills_everything(conn, encoder, library: Path, tiny_clip_dir: Path):  # noqa: ANN001
    from cgchat.ingest.pipeline import Ingestor
    from cgchat.ingest.visual import VisualIndexer, pending_count
    from cgchat.models.clip_encoder import ClipEncoder

    Ingestor(conn, encoder).run([library])
    total = pending_count(conn)
    assert total == conn.execute(
        "SELECT count(*) AS n FROM files WHERE asset_type IN ('image', 'video', 'blend')").fetchone()["n"]
    clip = ClipEncoder(tiny_clip_dir)
    first = VisualIndexer(conn, clip).run(limit=5)  # "interrupted" after five assets
    assert first.embedded == 5 and first.remaining == total - 5
    rest = VisualIndexer(conn, clip).run()
    assert rest.embedded == total - 5 and rest.remaining == 0 and not rest.failed
    again = VisualIndexer(conn, clip).run()
    assert again.embedded == 0 and again.marked_stale == 0

    statuses = conn.execute("SELECT DISTINCT visual_status FROM files WHERE visual_status IS NOT NULL").fetchall()
    assert [r["visual_status"] for r in statuses] == ["embedded"]
    for table in ("images", "videos", "blend_files"):
        rows = conn.execute(f"SELECT visual_embedding, visual_model FROM {table}").fetchall()  # noqa: S608
        assert rows and all(r["visual_model"] == "test/tiny-clip-b32" for r in rows)
        for r in rows:
            vector = r["visual_embedding"].to_numpy()
            assert vector.shape == (512,) and abs(float(np.linalg.norm(vector)) - 1) < 1e-4


def test_every_sample_picture_is_embedded(visual_db: str):
    """Each sample image (RGBA, 16-bit, CMYK, EXR, non-ASCII name), video and .blend preview."""
    from cgchat.db.connection import open_connection

    with open_connection(visual_db) as c:
        rows = c.execute(
            "SELECT f.name, f.asset_type, f.visual_status FROM files f WHERE f.asset_type IN ('image', 'video', 'blend')"
        ).fetchall()
    names = {r["name"] for r in rows}
    expected = {p.name for p in SAMPLES.rglob("*") if p.suffix.lower() in
                (".png", ".jpg", ".exr", ".mp4", ".mov", ".blend")}
    assert names == expected
    assert {r["visual_status"] for r in rows} == {"embedded"}
    assert {"forest_dusk_v002_16bit.png", "forest_dusk_v002_cmyk.jpg", "sh020_beauty_v002.exr",
            "leaf_alpha.png", "référence dragon ailes.jpg"} <= names


def test_video_keyframes_with_timecodes_and_pooled_vector(visual_db: str):
    from cgchat.db.connection import open_connection
    from cgchat.ingest.pictures import keyframe_times

    with open_connection(visual_db) as c:
        videos = c.execute("SELECT f.id, f.name, v.duration_s, v.visual_embedding FROM files f JOIN videos v"
                           " ON v.file_id = f.id").fetchall()
        assert len(videos) == 3
        for video in videos:
            frames = c.execute("SELECT frame_index, time_s, visual_embedding FROM video_keyframes WHERE file_id = %s"
                               " ORDER BY frame_index", (video["id"],)).fetchall()
            assert [f["time_s"] for f in frames] == keyframe_times(video["duration_s"])
            stack = np.stack([f["visual_embedding"].to_numpy() for f in frames])
            pooled = stack.mean(axis=0)
            pooled /= np.linalg.norm(pooled)
            assert np.abs(video["visual_embedding"].to_numpy() - pooled).max() < 1e-5


def test_keyframe_times():
    from cgchat.ingest.pictures import keyframe_times

    assert keyframe_times(None) == [0.0] and keyframe_times(0) == [0.0]
    assert keyframe_times(3.0) == [0.75, 2.25]  # 2 slices of 1.5 s, each sampled in its middle
    assert keyframe_times(1.0) == [0.5]
    assert len(keyframe_times(3600.0)) == 16 and keyframe_times(3600.0)[-1] < 3600
    assert keyframe_times(10.0, interval_s=1.0, max_frames=4) == [1.25, 3.75, 6.25, 8.75]


# --- search ---------------------------------------------------------------------------------------


def _variants(path: Path) -> dict[str, Image.Image]:
    """What a person does to a picture before asking "where is the original?"."""
    from cgchat.ingest.pictures import load_image
    from cgchat.models.clip_preprocess import to_rgb

    image = to_rgb(load_image(path))
    w, h = image.size
    jpeg = io.BytesIO()
    image.save(jpeg, "JPEG", quality=90)
    return {
        "resized_half": image.resize((max(1, w // 2), max(1, h // 2)), Image.Resampling.LANCZOS),
        "re_encoded_jpeg90": Image.open(io.BytesIO(jpeg.getvalue())),
        "cropped_95": image.crop((w // 40, h // 40, w - w // 40, h - h // 40)),
    }


def test_image_to_image_finds_the_original(visual_conn):  # noqa: ANN001
    originals = visual_conn.execute("SELECT id, path, name FROM files WHERE asset_type = 'image'").fetchall()
    assert len(originals) >= 10
    misses = []
    for original in originals:
        twins = next((t for t in TWINS if original["name"] in t), {original["name"]})
        for kind, picture in _variants(Path(original["path"])).items():
            response = _search(visual_conn, image=_png(picture), mode="visual", limit=3)
            top = response.results[0]
            assert response.retrievers == ["visual"] and top.matched_by == ["visual"]
            if top.name not in twins:
                misses.append((original["name"], kind, [(r.name, r.score) for r in response.results]))
    assert not misses


def test_text_to_image_returns_visual_hits(visual_conn, clip_env):  # noqa: ANN001
    from cgchat.models.clip_encoder import get_clip_encoder

    assert get_clip_encoder().encode_texts(["red sports car at night"]).shape == (1, 512)
    response = _search(visual_conn, query="red sports car at night", mode="visual", limit=50)
    assert response.mode == "visual" and response.visual_model == "test/tiny-clip-b32"
    types = {r.type for r in response.results}
    assert types <= set(VISUAL_TYPES) and {"image", "video", "blend"} <= types
    scores = [r.scores["visual"] for r in response.results]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
    # A video is listed once, at its best keyframe, with that keyframe's time.
    videos = [r for r in response.results if r.type == "video"]
    assert len({v.id for v in videos}) == len(videos) == 3
    assert all(v.time_s is not None and v.timecode.startswith("00:00:0") for v in videos)
    # Filters still apply inside the visual retriever.
    only_blend = _search(visual_conn, query="something", mode="visual", filters=_filters(asset_types=["blend"]))
    assert only_blend.results and {r.type for r in only_blend.results} == {"blend"}


def _filters(**kwargs):  # noqa: ANN003, ANN202
    from cgchat.search import Filters

    return Filters(**kwargs)


def test_a_video_frame_finds_its_clip_and_timecode(visual_conn):  # noqa: ANN001
    from cgchat.ingest.pictures import load_frames

    video = visual_conn.execute("SELECT id, path FROM files WHERE name = 'castle_turntable_v001.mov'").fetchone()
    frame = load_frames(Path(video["path"]), [2.25])[0].image
    response = _search(visual_conn, image=_png(frame), mode="visual", limit=5)
    top = response.results[0]
    assert (top.id, top.time_s, top.timecode) == (video["id"], 2.25, "00:00:02.250")
    assert top.scores["visual"] > 0.999


def test_more_like_this_asset(visual_conn):  # noqa: ANN001
    ids = {r["name"]: r["id"] for r in visual_conn.execute("SELECT id, name FROM files").fetchall()}
    response = _search(visual_conn, like_asset_id=ids["forest_dusk_v002.jpg"], mode="visual", limit=5)
    names = [r.name for r in response.results]
    assert "forest_dusk_v002.jpg" not in names  # the asset itself is not "like" itself
    assert names[0] == "forest_dusk_v002_cmyk.jpg" and response.results[0].scores["visual"] > 0.999  # its twin
    video = _search(visual_conn, like_asset_id=ids["castle_turntable_v001.mov"], mode="visual", limit=50)
    assert video.results and ids["castle_turntable_v001.mov"] not in {r.id for r in video.results}
    from cgchat.search import SearchError

    doc = visual_conn.execute("SELECT id FROM files WHERE asset_type = 'document' LIMIT 1").fetchone()["id"]
    with pytest.raises(SearchError, match="no picture"):
        _search(visual_conn, like_asset_id=doc, mode="visual")
    with pytest.raises(SearchError, match="no asset with id"):
        _search(visual_conn, like_asset_id=10**9, mode="visual")


def test_hybrid_fuses_visual_when_a_model_is_installed(visual_conn):  # noqa: ANN001
    response = _search(visual_conn, query="dragon turntable", limit=10)
    assert response.retrievers == ["semantic", "keyword", "visual"]
    assert any("visual" in r.matched_by for r in response.results)
    # use_visual=False (chat, for questions not about looks) keeps to the text retrievers.
    text_only = _search(visual_conn, query="dragon turntable", use_visual=False)
    assert text_only.retrievers == ["semantic", "keyword"]
    # Words + a picture: words to the text retrievers, the picture to the visual one.
    brick = visual_conn.execute("SELECT path FROM files WHERE name = 'brick_albedo.png'").fetchone()["path"]
    both = _search(visual_conn, query="castle bricks", image=Path(brick).read_bytes(), limit=5)
    assert both.retrievers == ["semantic", "keyword", "visual"] and both.results[0].name == "brick_albedo.png"


def test_bad_query_pictures_are_clear_errors(visual_conn):  # noqa: ANN001
    from cgchat.search import SearchError

    for data, message in ((b"", "empty"), (b"not an image at all", "cannot be read"),
                          (_png(Image.new("RGB", (4, 4)))[:30], "cannot be read")):
        with pytest.raises(SearchError, match=message):
            _search(visual_conn, image=data, mode="visual")
    with pytest.raises(SearchError, match="searches words"):
        _search(visual_conn, image=_png(Image.new("RGB", (8, 8))), mode="keyword")
    with pytest.raises(SearchError, match="either an image or an asset"):
        _search(visual_conn, image=_png(Image.new("RGB", (8, 8))), like_asset_id=1, mode="visual")


def test_without_a_model_visual_fails_clearly_and_the_rest_works(samples_conn):  # noqa: ANN001
    from cgchat.search import VisualModelMissing

    with pytest.raises(VisualModelMissing, match=r"cgchat models install-clip SOURCE"):
        _search(samples_conn, query="red car", mode="visual")
    with pytest.raises(VisualModelMissing):
        _search(samples_conn, image=_png(Image.new("RGB", (8, 8))))
    hybrid = _search(samples_conn, query="dragon turntable")
    assert hybrid.retrievers == ["semantic", "keyword"] and hybrid.results


# --- model switching ------------------------------------------------------------------------------


def test_switching_models_reembeds_and_never_mixes(conn, encoder, library: Path, tiny_clip_dir: Path,  # noqa: ANN001
                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from cgchat.ingest.pipeline import Ingestor
    from cgchat.ingest.visual import VisualIndexer
    from cgchat.models.clip_encoder import ClipEncoder
    from cgchat.settings import get_settings
    from tests.tiny_clip import export_tiny_clip

    Ingestor(conn, encoder).run([library])
    VisualIndexer(conn, ClipEncoder(tiny_clip_dir)).run()
    second = export_tiny_clip(tmp_path / "clip-v2", model_id="test/tiny-clip-b32-v2", seed=1)
    monkeypatch.setenv("CLIP_MODEL_DIR", str(second))
    get_settings.cache_clear()

    # Before re-embedding, the new model sees no vectors at all: nothing of the old model is compared.
    assert _search(conn, query="anything", mode="visual").results == []
    report = VisualIndexer(conn, ClipEncoder(second)).run(limit=4)
    assert report.marked_stale > 4 and report.embedded == 4
    partial = _search(conn, query="anything", mode="visual", limit=50).results
    assert len(partial) == 4
    VisualIndexer(conn, ClipEncoder(second)).run()
    models = conn.execute(
        "SELECT visual_model FROM images UNION SELECT visual_model FROM videos UNION SELECT visual_model"
        " FROM blend_files UNION SELECT visual_model FROM video_keyframes").fetchall()
    assert [r["visual_model"] for r in models] == ["test/tiny-clip-b32-v2"]
    assert len(_search(conn, query="anything", mode="visual", limit=50).results) > 20


def test_undecodable_pixels_fail_alone_and_retry(conn, encoder, library: Path, tiny_clip_dir: Path):  # noqa: ANN001
    from cgchat.ingest.pipeline import Ingestor
    from cgchat.ingest.visual import VisualIndexer
    from cgchat.models.clip_encoder import ClipEncoder

    Ingestor(conn, encoder).run([library])
    brick = library / "dragon/assets/env/castle/tex/brick_albedo.png"
    good = brick.read_bytes()
    brick.write_bytes(good[: len(good) // 3])  # truncated after indexing, before the visual pass
    clip = ClipEncoder(tiny_clip_dir)
    report = VisualIndexer(conn, clip).run()
    assert [f.path for f in report.failed] == [str(brick)] and report.embedded > 20
    row = conn.execute("SELECT visual_status, metadata_json FROM files WHERE path = %s", (str(brick),)).fetchone()
    assert row["visual_status"] == "failed" and row["metadata_json"]["visual_error"]
    assert VisualIndexer(conn, clip).run().failed == []  # failures are not retried by default
    brick.write_bytes(good)
    retried = VisualIndexer(conn, clip).run(retry_failed=True)
    assert retried.embedded == 1 and not retried.failed
    row = conn.execute("SELECT visual_status, metadata_json FROM files WHERE path = %s", (str(brick),)).fetchone()
    assert row["visual_status"] == "embedded" and "visual_error" not in row["metadata_json"]


# --- CLI ------------------------------------------------------------------------------------------


def test_cli_pending_then_ingest_visual_then_search(db_url, library: Path, tiny_clip_dir: Path):  # noqa: ANN001
    no_model = {"CLIP_MODEL_DIR": str(library / "no-model-here")}
    first = run_cli("ingest", str(library), "--json", env=no_model)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["added"] == 32 and summary["visual"] == {"model": None, "pending": 22}

    refused = run_cli("ingest", "--visual", env=no_model)
    assert refused.returncode == 2 and "cgchat models install-clip" in refused.stderr
    visual_search = run_cli("search", "red car", "--mode", "visual", env=no_model)
    assert visual_search.returncode == 2 and "install-clip" in visual_search.stderr

    model = {"CLIP_MODEL_DIR": str(tiny_clip_dir)}
    filled = run_cli("ingest", "--visual", "--json", env=model)
    assert filled.returncode == 0, filled.stderr
    assert json.loads(filled.stdout)["visual"]["embedded"] == 22 and json.loads(filled.stdout)["visual"]["remaining"] == 0

    frame = library / "frame.png"
    from cgchat.ingest.pictures import load_frames

    load_frames(library / "dragon/review/turntables/dragon_turntable_v003.mp4", [3.0])[0].image.save(frame)
    found = run_cli("search", "--image", str(frame), "--json", "--limit", "2", env=model)
    assert found.returncode == 0, found.stderr
    top = json.loads(found.stdout)[0]
    assert top["name"] == "dragon_turntable_v003.mp4" and top["timecode"] == "00:00:03.000"
    assert run_cli("search", "--image", str(library / "nope.png"), env=model).returncode == 2


# --- helpers --------------------------------------------------------------------------------------


def _strip_blend_preview(source: Path, target: Path) -> None:
    """Copy an uncompressed little-endian 64-bit .blend without its TEST (preview) block, as Blender
    writes it with "Save Preview Images" off."""
    data = source.read_bytes()
    assert data[:9] == b"BLENDER-v", "needs an uncompressed 64-bit little-endian .blend"
    out, pos = bytearray(data[:12]), 12
    while pos < len(data):
        code = data[pos : pos + 4]
        size = struct.unpack_from("<i", data, pos + 4)[0]
        end = pos + 24 + size
        if code != b"TEST":
            out += data[pos:end]
        pos = end
        if code == b"ENDB":
            break
    target.write_bytes(bytes(out))


def test_reindexing_the_same_bytes_keeps_visual_vectors(conn, encoder, library: Path, tiny_clip_dir: Path,  # noqa: ANN001
                                                        monkeypatch: pytest.MonkeyPatch):
    """A new text model re-indexes every file; unchanged pictures keep their CLIP vectors (no re-embed),
    while a file whose bytes changed goes back to pending."""
    from cgchat.ingest.pipeline import Ingestor
    from cgchat.ingest.visual import VisualIndexer, pending_count
    from cgchat.models.clip_encoder import ClipEncoder
    from cgchat.models.text_encoder import load_text_encoder
    from cgchat.settings import Settings

    Ingestor(conn, encoder).run([library])
    VisualIndexer(conn, ClipEncoder(tiny_clip_dir)).run()
    before = {r["file_id"]: r["visual_embedding"].to_numpy() for r in
              conn.execute("SELECT file_id, visual_embedding FROM images").fetchall()}
    frames_before = conn.execute("SELECT count(*) AS n FROM video_keyframes").fetchone()["n"]
    changed = library / "dragon/assets/env/castle/tex/brick_albedo.png"
    Image.open(changed).rotate(90).save(changed)

    other_model = load_text_encoder(Settings(text_model="minilm-int8"))
    assert other_model.model_id != encoder.model_id
    report = Ingestor(conn, other_model).run([library])
    assert report.updated == 32  # every file re-indexed for the new text model
    assert pending_count(conn) == 1  # only the picture whose bytes changed
    after = {r["file_id"]: r["visual_embedding"] for r in
             conn.execute("SELECT file_id, visual_embedding FROM images").fetchall()}
    changed_id = conn.execute("SELECT id FROM files WHERE path = %s", (str(changed),)).fetchone()["id"]
    assert after.pop(changed_id) is None
    for file_id, vector in after.items():
        np.testing.assert_array_equal(vector.to_numpy(), before[file_id])
    assert conn.execute("SELECT count(*) AS n FROM video_keyframes").fetchone()["n"] == frames_before
