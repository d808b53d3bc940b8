"""extract_exr and exr_preview_rgb on the committed Blender renders, on EXRs written here, on broken files.

Every broken case is built in tmp_path from real files, so truncation is tested the way it happens on a
render farm: a header that is fine followed by pixel data that stops early.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import OpenEXR
import pytest
from PIL import Image

from cgchat.ingest.extractors.base import ExtractionError
from cgchat.ingest.extractors.exr import exr_preview_rgb, extract_exr

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
SKY = SAMPLES / "dragon/assets/hdri/sky_sunset_v001.exr"
BEAUTY = SAMPLES / "dragon/seq/sq010/sh020/render/sh020_beauty_v002.exr"
IMAGE_COLUMNS = {"width", "height", "mode", "channels", "format", "bit_depth"}


def sample(path: Path) -> Path:
    assert path.is_file(), f"sample missing: {path.relative_to(SAMPLES.parent)}"
    return path


def exr_meta(path: Path) -> dict:
    extraction = extract_exr(path)
    json.dumps(extraction.metadata, allow_nan=False)  # must be storable as jsonb as it is
    assert set(extraction.type_row) == IMAGE_COLUMNS
    return extraction.metadata["exr"]


@pytest.fixture()
def multipart(tmp_path: Path) -> Path:
    """Two parts: a half RGBA beauty (PIZ) and float/uint AOVs (ZIP), with studio header attributes."""
    h, w = 40, 64
    beauty = OpenEXR.Part(
        {
            "compression": OpenEXR.PIZ_COMPRESSION,
            "type": OpenEXR.scanlineimage,
            "owner": "lighting",
            "software": "cgchat-tests",
            "capDate": "2024:05:06 07:08:09",
        },
        {"RGBA": np.full((h, w, 4), 0.5, dtype=np.float16)},
        "beauty",
    )
    aovs = OpenEXR.Part(
        {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
        {"depth.Z": np.ones((h, w), dtype=np.float32), "id": np.arange(h * w, dtype=np.uint32).reshape(h, w)},
        "aovs",
    )
    path = tmp_path / "shot_v001.exr"
    OpenEXR.File([beauty, aovs]).write(str(path))
    return path


def test_multipart_exr_written_here(multipart: Path) -> None:
    extraction = extract_exr(multipart)
    assert extraction.type_row == {
        "width": 64,
        "height": 40,
        "mode": "RGBA",
        "channels": 6,
        "format": "EXR",
        "bit_depth": 16,
    }
    meta = exr_meta(multipart)
    assert meta["multipart"] is True
    assert [p["name"] for p in meta["parts"]] == ["beauty", "aovs"]
    assert [p["compression"] for p in meta["parts"]] == ["PIZ", "ZIP"]
    assert meta["compression"] == ["PIZ", "ZIP"]
    types = {c["name"]: (c["type"], c["part"]) for c in meta["channels"]}
    assert types == {
        "R": ("HALF", 0),
        "G": ("HALF", 0),
        "B": ("HALF", 0),
        "A": ("HALF", 0),
        "depth.Z": ("FLOAT", 1),
        "id": ("UINT", 1),
    }
    assert meta["layers"] == ["beauty", "depth", "aovs"]
    assert meta["data_window"] == [[0, 0], [63, 39]]
    assert meta["attributes"]["owner"] == "lighting"
    assert meta["attributes"]["capDate"] == "2024:05:06 07:08:09"
    assert extraction.text[0] == "OpenEXR 64x40"
    assert "layers: beauty, depth, aovs" in extraction.text
    assert "compression PIZ, ZIP" in extraction.text
    assert "software cgchat-tests" in extraction.text


def test_tiled_luminance_exr(tmp_path: Path) -> None:
    tiles = OpenEXR.TileDescription()
    tiles.xSize, tiles.ySize, tiles.mode = 16, 16, OpenEXR.ONE_LEVEL
    path = tmp_path / "height.exr"
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.tiledimage, "tiles": tiles}
    OpenEXR.File(header, {"Y": np.linspace(0, 1, 50 * 70, dtype=np.float32).reshape(50, 70)}).write(str(path))
    extraction = extract_exr(path)
    assert extraction.type_row["mode"] == "Y"
    assert extraction.type_row["bit_depth"] == 32
    assert (extraction.type_row["width"], extraction.type_row["height"]) == (70, 50)
    assert exr_meta(path)["storage"] == "tiledimage"
    assert exr_preview_rgb(path).size == (70, 50)


def test_sky_sample_is_rgb_half() -> None:
    extraction = extract_exr(sample(SKY))
    assert extraction.type_row == {
        "width": 256,
        "height": 128,
        "mode": "RGB",
        "channels": 3,
        "format": "EXR",
        "bit_depth": 16,
    }
    meta = exr_meta(SKY)
    assert {c["name"]: c["type"] for c in meta["channels"]} == {"R": "HALF", "G": "HALF", "B": "HALF"}
    assert meta["layers"] == [] and meta["multipart"] is False
    assert meta["compression"] == "ZIP"
    assert meta["data_window"] == meta["display_window"] == [[0, 0], [255, 127]]
    assert meta["attributes"]["owner"] == "dragon lighting dept"
    assert extraction.text == ["OpenEXR 256x128", "compression ZIP"]


BEAUTY_LAYERS = [
    "AO",
    "Combined",
    "CryptoObject00",
    "Depth",
    "DiffCol",
    "DiffDir",
    "Emit",
    "GlossDir",
    "Mist",
    "Normal",
]


def test_beauty_sample_is_a_multilayer_cycles_render() -> None:
    extraction = extract_exr(sample(BEAUTY))
    meta = exr_meta(BEAUTY)
    # Mode and bit depth describe the beauty (Combined) layer, not the first layer in channel order (AO).
    assert extraction.type_row == {
        "width": 320,
        "height": 180,
        "mode": "RGBA",
        "channels": 28,
        "format": "EXR",
        "bit_depth": 16,
    }
    assert meta["layers"] == [f"beauty.{name}" for name in BEAUTY_LAYERS]
    types = {c["name"]: c["type"] for c in meta["channels"]}
    assert len(types) == 28
    assert [types[f"beauty.Combined.{c}"] for c in "RGBA"] == ["HALF"] * 4
    assert types["beauty.Depth.Z"] == "FLOAT"
    assert {"beauty.Normal.X", "beauty.Mist.Z", "beauty.CryptoObject00.r"} <= set(types)
    assert meta["compression"] == "ZIP"
    assert meta["attributes"]["Camera"] == "sh020_Camera"
    assert meta["attributes"]["Frame"] == "1048"
    assert "cryptomatte/76ce7da/manifest" in meta["attributes"]
    assert extraction.text == ["OpenEXR 320x180", "layers: " + ", ".join(BEAUTY_LAYERS), "compression ZIP"]


def test_preview_tone_maps_to_srgb(tmp_path: Path) -> None:
    h, w = 64, 512
    rgb = np.zeros((h, w, 3), dtype=np.float32)
    rgb[:, 128:256] = 0.214  # linear mid grey: sRGB 128
    rgb[:, 256:384] = 1.0
    rgb[:, 384:, 0] = 50.0  # HDR red highlight
    path = tmp_path / "ramp.exr"
    OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, {"RGB": rgb}).write(
        str(path)
    )
    image = exr_preview_rgb(path, max_size=128)
    assert isinstance(image, Image.Image) and image.mode == "RGB"
    assert image.size == (128, 16)
    pixels = np.asarray(image)
    assert pixels[8, 8].tolist() == [0, 0, 0]
    assert 110 < pixels[8, 48, 0] < 140  # mid grey stays mid grey (Reinhard white point at the highlight)
    assert (
        pixels[8, 120, 0] == 255 and pixels[8, 120, 1] == 0
    )  # the highlight maps to full red, not clipped grey


def test_preview_of_the_samples() -> None:
    beauty = exr_preview_rgb(sample(BEAUTY), max_size=160)
    assert beauty.mode == "RGB" and beauty.size == (160, 90)
    # The Combined layer shows a dusk sky above a grey-green ground, not the AO or normal pass.
    pixels = np.asarray(beauty).astype(int)
    sky, ground = pixels[:20].mean(axis=(0, 1)), pixels[-10:].mean(axis=(0, 1))
    assert sky[0] > sky[2] and sky.mean() > ground.mean() > 20
    hdri = np.asarray(exr_preview_rgb(sample(SKY))).astype(int)
    assert hdri.shape == (128, 256, 3)
    assert hdri[:30].mean() > hdri[-30:].mean()  # the sky is brighter than the ground half


@pytest.mark.parametrize("keep", [0, 5, 60, "half", -10])
def test_truncated_files_raise_extraction_error(multipart: Path, tmp_path: Path, keep: int | str) -> None:
    """Zero bytes, a cut magic number, a cut header, half the pixels, the last 10 bytes missing."""
    data = multipart.read_bytes()
    cut = tmp_path / "cut.exr"
    cut.write_bytes(data[: len(data) // 2] if keep == "half" else data[: int(keep)])
    with pytest.raises(ExtractionError):
        extract_exr(cut)
    with pytest.raises(ExtractionError):
        exr_preview_rgb(cut)


def test_render_stopped_before_writing_chunks(tmp_path: Path) -> None:
    """An interrupted writer leaves zeros in the chunk offset table: the file must not pass as complete."""
    path = tmp_path / "interrupted.exr"
    header = {"compression": OpenEXR.NO_COMPRESSION, "type": OpenEXR.scanlineimage}
    OpenEXR.File(header, {"RGB": np.ones((4, 8, 3), dtype=np.float16)}).write(str(path))
    data = bytearray(path.read_bytes())
    # Uncompressed: one chunk per scan line, so the 4-entry table is followed directly by the first chunk.
    table = next(p for p in range(8, len(data) - 8) if struct.unpack_from("<Q", data, p)[0] == p + 32)
    extract_exr(path)  # complete as written
    struct.pack_into("<Q", data, table + 24, 0)
    path.write_bytes(bytes(data))
    with pytest.raises(ExtractionError, match="incomplete"):
        extract_exr(path)


@pytest.mark.parametrize(
    "content", [b"not an exr at all" * 10, b"\x89PNG\r\n\x1a\n" + bytes(200), b"v/1\x01" + bytes(4)]
)
def test_non_exr_content_raises_extraction_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "fake.exr"
    path.write_bytes(content)
    with pytest.raises(ExtractionError):
        extract_exr(path)


def test_missing_file_raises_extraction_error(tmp_path: Path) -> None:
    with pytest.raises(ExtractionError):
        extract_exr(tmp_path / "nope.exr")
