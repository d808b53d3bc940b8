"""Image, video and text extractors on the committed sample files (made by Blender, ffmpeg, Pillow)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from cgchat.ingest.extractors import ExtractionError, extractor_for
from cgchat.ingest.extractors.image import extract_image
from cgchat.ingest.extractors.text import extract_text
from cgchat.ingest.extractors.video import extract_video
from tests.conftest import SAMPLES

DRAGON = SAMPLES / "dragon"
FOREST = SAMPLES / "forest"


@pytest.mark.parametrize(
    ("path", "mode", "channels", "bit_depth", "alpha"),
    [
        (DRAGON / "assets/env/castle/tex/brick_albedo.png", "RGB", 3, 8, False),
        (DRAGON / "assets/chr/dragon/tex/dragon_scales_roughness.png", "L", 1, 8, False),
        (FOREST / "textures/leaf_alpha.png", "RGBA", 4, 8, True),
        (FOREST / "renders/forest_dusk_v002_cmyk.jpg", "CMYK", 4, 8, False),
        (DRAGON / "ref/référence dragon ailes.jpg", "RGB", 3, 8, False),
    ],
)
def test_image_facts(path: Path, mode: str, channels: int, bit_depth: int, alpha: bool) -> None:
    result = extract_image(path)
    with Image.open(path) as im:
        size = im.size
    row = result.type_row
    assert (row["width"], row["height"]) == size
    assert (row["mode"], row["channels"], row["bit_depth"]) == (mode, channels, bit_depth)
    assert result.metadata["image"]["has_alpha"] is alpha
    assert f"{size[0]}x{size[1]}" in " ".join(result.text)


def test_sixteen_bit_png_is_reported_as_16_bit() -> None:
    result = extract_image(FOREST / "renders/forest_dusk_v002_16bit.png")
    assert result.type_row["bit_depth"] == 16
    assert "16-bit" in " ".join(result.text)


@pytest.mark.parametrize(
    ("path", "codec", "fps", "min_s", "max_s"),
    [
        (DRAGON / "review/turntables/dragon_turntable_v003.mp4", "h264", 24.0, 3.5, 4.5),
        (DRAGON / "seq/sq010/sh010/playblast/dragon_flight_sh010_playblast_v001.mp4", "h264", 24.0, 2.5, 3.5),
        (DRAGON / "review/turntables/castle_turntable_v001.mov", None, 25.0, 2.5, 3.5),
    ],
)
def test_video_facts(path: Path, codec: str | None, fps: float, min_s: float, max_s: float) -> None:
    result = extract_video(path)
    row = result.type_row
    if codec:
        assert row["codec"] == codec
    assert row["fps"] == pytest.approx(fps, abs=0.01)
    assert min_s <= row["duration_s"] <= max_s
    assert row["width"] > 0 and row["height"] > 0
    assert row["frame_count"] == pytest.approx(row["duration_s"] * fps, abs=2)
    assert result.metadata["video"]["container"]


def test_csv_and_markdown_contribute_their_words() -> None:
    csv = extract_text(DRAGON / "docs/shot_list.csv")
    assert csv.metadata["text"]["columns"][:2] == ["shot", "sequence"]
    assert "sh010" in csv.body
    notes = extract_text(DRAGON / "docs/lighting_notes.md")
    assert "fog" in notes.body.lower()


def test_text_head_is_bounded_and_binary_is_not_text(tmp_path: Path) -> None:
    big = tmp_path / "huge.txt"
    big.write_text("word " * 100_000)
    assert len(extract_text(big).body) <= 4096
    binary = tmp_path / "data.json"
    binary.write_bytes(b"\x00\x01\x02" * 100)
    result = extract_text(binary)
    assert result.body == "" and result.metadata["text"]["binary"] is True


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("truncated.png", "png_head"),
        ("noise.jpg", b"\xff\xd8\xff" + bytes(range(256)) * 4),
        ("text_as.tif", b"hello, not a tiff"),
        ("random.mov", bytes(range(256)) * 64),
        ("header_only.mp4", b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"),
    ],
)
def test_corrupt_media_raise_extraction_error(tmp_path: Path, name: str, content: bytes | str) -> None:
    path = tmp_path / name
    if content == "png_head":
        content = (DRAGON / "assets/env/castle/tex/brick_albedo.png").read_bytes()[:200]
    path.write_bytes(content)
    extractor = extractor_for(path)
    assert extractor is not None
    with pytest.raises(ExtractionError):
        extractor(path)


def test_unknown_extensions_have_no_extractor(tmp_path: Path) -> None:
    assert extractor_for(tmp_path / "thing.xyz") is None
    assert extractor_for(tmp_path / "Render.PNG") is extract_image
