"""extract_blend on the committed sample library (written by Blender 3.4) and on broken copies of it.

No Blender is needed: the samples are read as bytes, and every corrupt case is built here in tmp_path.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from pathlib import Path

import pytest
import zstandard
from PIL import Image

from cgchat.ingest.extractors.base import Dependency, Extraction, ExtractionError
from cgchat.ingest.extractors.blend import extract_blend

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
DRAGON_MODEL = SAMPLES / "dragon/assets/chr/dragon/model/dragon_model_v003.blend"
CASTLE = SAMPLES / "dragon/assets/env/castle/castle_env_v002.blend"
PROPS = SAMPLES / "dragon/assets/props/props_library_v001.blend"
DRAGON_SHOT = SAMPLES / "dragon/seq/sq010/sh010/anim/dragon_flight_sh010_v001.blend"
OAK = SAMPLES / "forest/assets/env/oak/tree_oak_v001.blend"
LIGHTING_SHOT = SAMPLES / "dragon/seq/sq010/sh020/lighting/sh020_lighting_v002.blend"

TYPE_ROW_KEYS = {
    "render_engine",
    "resolution_x",
    "resolution_y",
    "resolution_percentage",
    "frame_start",
    "frame_end",
    "fps",
    "blender_version",
    "compression",
    "scene_names",
    "objects",
    "materials",
    "has_preview",
}

_cache: dict[Path, Extraction] = {}


def extract(path: Path) -> Extraction:
    """Extract once per sample for the whole module (the files are read-only inputs)."""
    assert path.is_file(), f"sample missing: {path.relative_to(SAMPLES.parent)}"
    if path not in _cache:
        _cache[path] = extract_blend(path)
    return _cache[path]


def objects_by_name(ex: Extraction) -> dict[str, str]:
    return {o["name"]: o["type"] for o in ex.type_row["objects"]}


def deps_by_raw(ex: Extraction) -> dict[str, Dependency]:
    return {d.raw_path: d for d in ex.dependencies}


def norm(path: Path) -> str:
    return os.path.normpath(str(path))


def assert_png(data: bytes | None, size: tuple[int, int]) -> None:
    assert data is not None and data.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert image.format == "PNG"
        assert image.size == size
        assert image.mode == "RGBA"
        # A real render, not an empty buffer.
        assert image.getextrema()[3][1] > 0


# ---------------------------------------------------------------------------------------------- samples


def test_dragon_model_render_settings_and_row_shape() -> None:
    ex = extract(DRAGON_MODEL)
    row = ex.type_row
    assert set(row) == TYPE_ROW_KEYS
    assert row["render_engine"] == "CYCLES"
    assert (row["resolution_x"], row["resolution_y"], row["resolution_percentage"]) == (1920, 1080, 100)
    assert (row["frame_start"], row["frame_end"]) == (1, 120)
    assert row["fps"] == pytest.approx(24.0)
    assert row["blender_version"] == "3.4"
    assert row["compression"] == "none"
    assert row["scene_names"]


def test_dragon_model_objects_materials_and_texture() -> None:
    ex = extract(DRAGON_MODEL)
    objects = objects_by_name(ex)
    for name in ("Dragon_Body", "Dragon_Wing_L", "Dragon_Wing_R", "Dragon_Tail"):
        assert objects[name] == "MESH"
    assert objects["Camera"] == "CAMERA"
    assert objects["Key_Light"] == "LIGHT"
    assert {"DragonSkin", "DragonEyes"} <= set(ex.type_row["materials"])

    dep = deps_by_raw(ex)["//../tex/dragon_scales_albedo.png"]
    assert dep.kind == "image"
    assert dep.resolved_path == norm(DRAGON_MODEL.parent.parent / "tex/dragon_scales_albedo.png")
    assert dep.exists is True
    image_paths = {img["filepath"] for img in ex.metadata["blend"]["images"]}
    assert "//../tex/dragon_scales_albedo.png" in image_paths


def test_dragon_model_preview_is_png() -> None:
    ex = extract(DRAGON_MODEL)
    assert ex.type_row["has_preview"] is True
    assert_png(ex.thumbnail_png, (128, 128))


def test_dragon_model_search_text() -> None:
    text = extract(DRAGON_MODEL).text
    assert "Cycles render" in text
    assert "1920x1080" in text
    assert "Blender 3.4" in text
    objects_phrase = next(t for t in text if t.startswith("objects: "))
    assert "Dragon_Body" in objects_phrase and "Dragon_Wing_L" in objects_phrase
    assert any(t.startswith("materials: ") and "DragonSkin" in t for t in text)
    assert any(t.startswith("textures: ") and "dragon_scales_albedo.png" in t for t in text)
    assert not any(t.startswith("missing: ") for t in text)


def test_metadata_holds_row_and_is_json() -> None:
    ex = extract(DRAGON_MODEL)
    meta = json.loads(json.dumps(ex.metadata))["blend"]
    for key in TYPE_ROW_KEYS:
        assert meta[key] == json.loads(json.dumps(ex.type_row[key]))
    scene = next(s for s in meta["scenes"] if s["name"] == meta["active_scene"])
    assert scene["render_engine"] == "CYCLES"
    assert scene["resolution_x"] == 1920
    assert meta["counts"]["objects"] == len(ex.type_row["objects"])
    assert meta["counts"]["materials"] >= 2
    assert meta["file_version"] == 304
    assert meta["packed_files"] == []


def test_castle_zstd_eevee_half_resolution_and_linked_library() -> None:
    ex = extract(CASTLE)
    row = ex.type_row
    assert CASTLE.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"  # the sample really is zstd on disk
    assert row["compression"] == "zstd"
    assert row["render_engine"] == "BLENDER_EEVEE"
    assert (row["resolution_x"], row["resolution_y"], row["resolution_percentage"]) == (3840, 2160, 50)
    assert (row["frame_start"], row["frame_end"]) == (1001, 1100)
    assert row["fps"] == pytest.approx(25.0)
    objects = objects_by_name(ex)
    assert {"Castle_Wall", "Castle_Tower", "Castle_Gate", "Ground", "Sun"} <= set(objects)
    assert objects["Sun"] == "LIGHT"
    assert {"Brick", "Stone"} <= set(row["materials"])

    deps = deps_by_raw(ex)
    brick = deps["//tex/brick_albedo.png"]
    assert brick.kind == "image"
    assert brick.resolved_path == norm(CASTLE.parent / "tex/brick_albedo.png")
    assert brick.exists == os.path.exists(brick.resolved_path)

    lib = deps["//../../props/props_library_v001.blend"]
    assert lib.kind == "library"
    assert lib.resolved_path == norm(PROPS)
    assert lib.exists is True
    (library,) = ex.metadata["blend"]["libraries"]
    assert library["filepath"] == "//../../props/props_library_v001.blend"
    assert {"type": "GR", "name": "Props"} in library["linked_ids"]

    assert "Eevee render" in ex.text
    assert "3840x2160 at 50%" in ex.text
    assert "linked libraries: props_library_v001.blend" in ex.text
    assert "compressed (zstd)" in ex.text


def test_props_library_workbench_and_collection() -> None:
    ex = extract(PROPS)
    assert ex.type_row["render_engine"] == "BLENDER_WORKBENCH"
    assert (ex.type_row["resolution_x"], ex.type_row["resolution_y"]) == (1280, 720)
    props = next(c for c in ex.metadata["blend"]["collections"] if c["name"] == "Props")
    assert {"Barrel", "Crate", "Lantern"} <= set(props["objects"])
    assert {"Barrel", "Crate", "Lantern"} <= set(objects_by_name(ex))
    assert "Workbench render" in ex.text
    assert any(t.startswith("collections: ") and "Props" in t for t in ex.text)


def test_dragon_shot_missing_texture_is_recorded() -> None:
    ex = extract(DRAGON_SHOT)
    row = ex.type_row
    assert row["render_engine"] == "CYCLES"
    assert (row["frame_start"], row["frame_end"]) == (1001, 1120)
    assert row["fps"] == pytest.approx(24.0)
    objects = objects_by_name(ex)
    assert objects["Dragon_Rig"] == "ARMATURE"
    assert objects["Dragon_Body"] == "MESH"
    assert objects["Shot_Camera"] == "CAMERA"

    missing = deps_by_raw(ex)["//../tex/missing_wing_membrane.png"]
    assert missing.kind == "image"
    assert missing.resolved_path == norm(DRAGON_SHOT.parent.parent / "tex/missing_wing_membrane.png")
    assert missing.exists is False
    assert "//../tex/missing_wing_membrane.png" in ex.metadata["blend"]["missing_dependencies"]
    assert any(t.startswith("missing: ") and "missing_wing_membrane.png" in t for t in ex.text)


def test_lighting_shot_links_two_libraries() -> None:
    ex = extract(LIGHTING_SHOT)
    libraries = {d.resolved_path: d for d in ex.dependencies if d.kind == "library"}
    assert set(libraries) == {norm(CASTLE), norm(DRAGON_MODEL)}
    assert all(d.exists and d.raw_path.startswith("//../") for d in libraries.values())
    linked = {lib["name"]: lib["linked_ids"] for lib in ex.metadata["blend"]["libraries"]}
    assert all(ids and all(i["type"] == "GR" for i in ids) for ids in linked.values())
    assert ex.metadata["blend"]["counts"]["libraries"] == 2
    assert any(
        t.startswith("linked libraries: ") and "castle_env_v002.blend" in t and "dragon_model_v003.blend" in t
        for t in ex.text
    )


def test_oak_tree() -> None:
    ex = extract(OAK)
    row = ex.type_row
    assert row["render_engine"] == "BLENDER_EEVEE"
    assert (row["resolution_x"], row["resolution_y"]) == (1920, 1080)
    assert {"Oak_Trunk", "Oak_Leaves", "Ground"} <= set(objects_by_name(ex))
    assert {"Bark", "Leaves"} <= set(row["materials"])
    bark = deps_by_raw(ex)["//tex/bark_albedo.jpg"]
    assert bark.kind == "image"
    assert bark.resolved_path == norm(OAK.parent / "tex/bark_albedo.jpg")


@pytest.mark.parametrize(
    ("stored", "resolves_to_sample_texture"),
    [
        (b"//..\\tex\\dragon_scales_albedo.png", True),  # saved on Windows: kept as written, resolved here
        (b"C:\\tex\\dragon_scales_albedo.png", False),  # a drive path cannot be located on this machine
    ],
)
def test_windows_paths_are_kept_raw(tmp_path: Path, stored: bytes, resolves_to_sample_texture: bool) -> None:
    original = b"//../tex/dragon_scales_albedo.png\0"
    data = DRAGON_MODEL.read_bytes()
    assert original in data
    (tmp_path / "model").mkdir()
    (tmp_path / "tex").mkdir()
    (tmp_path / "tex/dragon_scales_albedo.png").write_bytes(b"")
    patched = tmp_path / "model/dragon.blend"
    patched.write_bytes(data.replace(original, stored.ljust(len(original), b"\0")))

    dep = deps_by_raw(extract_blend(patched))[stored.decode()]
    assert dep.kind == "image"
    if resolves_to_sample_texture:
        assert dep.resolved_path == norm(tmp_path / "tex/dragon_scales_albedo.png")
        assert dep.exists is True
    else:
        assert dep.resolved_path is None
        assert dep.exists is False


# ---------------------------------------------------------------------------------------------- compression


def test_gzip_copy_reads_like_the_original(tmp_path: Path) -> None:
    """Blender <= 2.9x compressed with gzip; the sample library (3.4) only has zstd, so make one."""
    target = tmp_path / DRAGON_MODEL.parent.name / DRAGON_MODEL.name
    target.parent.mkdir()
    target.write_bytes(gzip.compress(DRAGON_MODEL.read_bytes(), compresslevel=1))
    ex = extract_blend(target)
    original = extract(DRAGON_MODEL)
    assert ex.type_row == {**original.type_row, "compression": "gzip"}
    assert ex.thumbnail_png == original.thumbnail_png
    assert "compressed (gzip)" in ex.text


def test_zstd_and_plain_agree(tmp_path: Path) -> None:
    plain = tmp_path / "castle_plain.blend"
    plain.write_bytes(zstandard.ZstdDecompressor().stream_reader(io.BytesIO(CASTLE.read_bytes())).read())
    assert plain.read_bytes()[:7] == b"BLENDER"
    ex = extract_blend(plain)
    assert ex.type_row == {**extract(CASTLE).type_row, "compression": "none"}


# ---------------------------------------------------------------------------------------------- broken input


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("zero", lambda data: b"", "empty"),
        ("garbage", lambda data: bytes(range(256)) * 40, "not a .blend"),
        ("text", lambda data: b"just some text pretending to be a blend\n" * 20, "not a .blend"),
        ("header_only", lambda data: data[:12], "truncated"),
        ("half", lambda data: data[: len(data) // 2], "truncated"),
        ("missing_end", lambda data: data[:-40], "truncated"),
        ("gzip_truncated", lambda data: gzip.compress(data, compresslevel=1)[:4000], "gzip"),
        ("gzip_not_blend", lambda data: gzip.compress(b"hello" * 100), "not a .blend"),
        ("zstd_garbage", lambda data: b"\x28\xb5\x2f\xfd" + b"\x00" * 64, "zstd"),
    ],
)
def test_broken_files_raise_extraction_error(tmp_path: Path, name: str, make, message: str) -> None:
    path = tmp_path / f"{name}.blend"
    path.write_bytes(make(DRAGON_MODEL.read_bytes()))
    with pytest.raises(ExtractionError, match=message):
        extract_blend(path)


def test_truncated_zstd_raises(tmp_path: Path) -> None:
    path = tmp_path / "castle_half.blend"
    data = CASTLE.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ExtractionError):
        extract_blend(path)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(ExtractionError, match="cannot read"):
        extract_blend(tmp_path / "nope.blend")


# ---------------------------------------------------------------------------------------------- resources


def _open_fds() -> list[str]:
    """Descriptors open on files (not sockets or pipes: servers of other test modules run in
    background threads of this process and open connections at any time)."""
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed between listdir and readlink
        if target.startswith("/"):
            targets.append(target)
    return sorted(targets)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to count descriptors")
def test_no_descriptor_leak_over_300_extractions(tmp_path: Path) -> None:
    broken = tmp_path / "half.blend"
    data = CASTLE.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    extract_blend(DRAGON_MODEL)  # warm imports
    before = _open_fds()
    for _ in range(300):
        extract_blend(DRAGON_MODEL)
    for _ in range(50):
        extract_blend(CASTLE)
        with pytest.raises(ExtractionError):
            extract_blend(broken)
    assert _open_fds() == before


FIXTURES = Path(__file__).parent / "fixtures" / "blend"


@pytest.mark.parametrize(("name", "version"), [("made_by_blender_4_2.blend", "4.2"), ("made_by_blender_5_0.blend", "5.0")])
def test_files_from_newer_blender_releases(name: str, version: str) -> None:
    ex = extract_blend(FIXTURES / "model" / name)
    row = ex.type_row
    assert (row["blender_version"], row["compression"], row["render_engine"]) == (version, "zstd", "CYCLES")
    assert (row["resolution_x"], row["resolution_y"], row["frame_start"], row["frame_end"]) == (1920, 1080, 1, 120)
    assert row["fps"] == 24 and row["scene_names"] == ["MainScene", "Second"]
    assert {(o["name"], o["type"]) for o in row["objects"]} == {
        ("Camera", "CAMERA"), ("Dragon_Body", "MESH"), ("Key_Light", "LIGHT"), ("Null", "EMPTY"),
        ("Rig", "ARMATURE"), ("Path", "CURVE"),
    }
    deps = {d.raw_path: d.exists for d in ex.dependencies}
    assert deps == {"//../tex/albedo.png": True, "//../tex/missing_tex.png": False}


def test_cached_dna_catalogue_gives_identical_results() -> None:
    from cgchat.ingest.extractors import blend

    blend._DNA_CACHE.clear()
    fresh = extract_blend(DRAGON_MODEL)
    assert len(blend._DNA_CACHE) == 1
    cached = extract_blend(DRAGON_MODEL)
    assert json.dumps(cached.metadata, sort_keys=True) == json.dumps(fresh.metadata, sort_keys=True)
    assert cached.type_row == fresh.type_row and cached.dependencies == fresh.dependencies
    assert cached.thumbnail_png == fresh.thumbnail_png
