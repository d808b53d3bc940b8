"""OpenEXR images: size, channels, layers, compression and header attributes, read from headers only.

Renders are large (a 4K multi-layer frame is hundreds of MB), so metadata comes from the header and the
chunk offset tables alone; pixels are decoded only by :func:`exr_preview_rgb`, on demand.

The OpenEXR bindings open the file (that is the validity check) and convert the typed header attributes.
Their header-only mode does not report channel pixel types, nor notice a file cut short after its header
(a render killed mid-write), so a small walker over the raw header bytes supplies both: the channel list
with pixel types, and the offset tables that prove every chunk is present.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .base import Extraction, ExtractionError
from .common import guarded, require_nonempty

if TYPE_CHECKING:
    from PIL import Image

_MAGIC = b"\x76\x2f\x31\x01"
_TILED_FLAG, _MULTIPART_FLAG = 0x200, 0x1000  # version-field bits
_PIXEL_TYPES = {0: "UINT", 1: "HALF", 2: "FLOAT"}
_PIXEL_BITS = {"UINT": 32, "HALF": 16, "FLOAT": 32}
# Scan lines per chunk, by compression id; compressions not listed (LJ2K) skip the completeness check.
_LINES_PER_CHUNK = {
    0: 1,  # NO
    1: 1,  # RLE
    2: 1,  # ZIPS
    3: 16,  # ZIP
    4: 32,  # PIZ
    5: 16,  # PXR24
    6: 32,  # B44
    7: 32,  # B44A
    8: 32,  # DWAA
    9: 256,  # DWAB
    10: 256,  # HTJ2K256
    11: 32,  # HTJ2K32
    13: 1,  # ZSTD
}
_BEAUTY_LAYER_NAMES = {"combined", "beauty", "rgba", "rgb", "color", "colour"}
_MAX_ATTRIBUTE_CHARS = 2000  # Cryptomatte manifests and similar can be megabytes
_MAX_HEADER_BYTES = 16 * 1024 * 1024
_MAX_CHANNELS_LISTED = 500
# Header attributes reported in their own metadata keys rather than under "attributes".
_LAYOUT_ATTRIBUTES = frozenset(
    "channels compression dataWindow displayWindow type name chunkCount tiles version".split()
)


class _NeedMoreBytes(Exception):
    """The header walker ran past the bytes read so far; read more and retry."""


@dataclass(slots=True)
class _RawPart:
    """What the raw header walker learns about one part."""

    channels: list[tuple[str, str]] = field(default_factory=list)  # (name, pixel type)
    storage: str = "scanlineimage"
    compression: int | None = None
    data_window: tuple[int, int, int, int] | None = None
    chunk_count: int | None = None
    tiles: tuple[int, int, int, int] | None = None  # x size, y size, level mode, rounding mode


@guarded("EXR")
def extract_exr(path: Path) -> Extraction:
    """Read an EXR's headers into an :class:`Extraction` for the ``images`` table.

    Raises ExtractionError for an empty, truncated, corrupt or non-EXR file.
    """
    raw_parts = _check_structure(path)
    parts = _open_headers(path)
    if len(parts) != len(raw_parts):
        raise ExtractionError(f"{path.name}: EXR part count disagrees between header reads")

    part_meta: list[dict[str, Any]] = []
    channels: list[dict[str, Any]] = []
    layers: list[str] = []
    attributes: dict[str, Any] = {}
    for index, (header, raw) in enumerate(zip(parts, raw_parts, strict=True)):
        name = header.get("name") if isinstance(header.get("name"), str) else None
        for channel, pixel_type in raw.channels:
            if len(channels) < _MAX_CHANNELS_LISTED:
                channels.append({"name": channel, "type": pixel_type, "part": index})
        for layer in _layer_names(raw.channels, name if len(parts) > 1 else None):
            if layer not in layers:
                layers.append(layer)
        part_meta.append(
            {
                "name": name,
                "storage": raw.storage,
                "compression": _compression_name(header.get("compression")),
                "data_window": _window(header.get("dataWindow")),
                "display_window": _window(header.get("displayWindow")),
                "channel_count": len(raw.channels),
            }
        )
        for key, value in header.items():
            if key in _LAYOUT_ATTRIBUTES or key in attributes:
                continue
            converted = _jsonable(value)
            if converted is not None:
                attributes[key] = converted

    first, first_raw = part_meta[0], raw_parts[0]
    width, height = _window_size(first["display_window"] or first["data_window"])
    mode, colour_channels = _mode(first_raw.channels)
    depth_types = {t for n, t in first_raw.channels if n in colour_channels} or {
        t for _, t in first_raw.channels
    }
    bit_depth = max((_PIXEL_BITS.get(t, 32) for t in depth_types), default=None)
    total_channels = sum(len(r.channels) for r in raw_parts)
    compressions = list(dict.fromkeys(p["compression"] for p in part_meta if p["compression"]))

    metadata: dict[str, Any] = {
        "channels": channels,
        "channel_count": total_channels,
        "layers": layers,
        "compression": compressions[0] if len(compressions) == 1 else compressions,
        "data_window": first["data_window"],
        "display_window": first["display_window"],
        "storage": first["storage"],
        "parts": part_meta,
        "multipart": len(parts) > 1,
        "attributes": attributes,
    }
    text = [f"OpenEXR {width}x{height}"]
    short_layers = list(dict.fromkeys(layer.rsplit(".", 1)[-1] for layer in layers))
    if len(short_layers) > 1:
        text.append("layers: " + ", ".join(short_layers))
    if len(parts) > 1:
        text.append(f"multi-part EXR, {len(parts)} parts")
    if compressions:
        text.append("compression " + ", ".join(compressions))
    if "software" in attributes:
        text.append(f"software {attributes['software']}")
    type_row = {
        "width": width,
        "height": height,
        "mode": mode,
        "channels": total_channels,
        "format": "EXR",
        "bit_depth": bit_depth,
    }
    return Extraction(metadata={"exr": metadata}, text=text, type_row=type_row)


@guarded("EXR pixels")
def exr_preview_rgb(path: Path, max_size: int = 256) -> Image.Image:
    """Tone-map the first part's colour channels to an 8-bit RGB image, at most ``max_size`` pixels a side.

    Uses extended Reinhard with the white point at the 99.5th percentile (values up to 1.0 are left as they
    are, so display-referred renders look as they do in a viewer) and the sRGB transfer curve. Alpha is
    dropped: EXR colour is premultiplied, which is the same as compositing over black. A file without
    RGB channels (depth, a single luminance channel) is shown as greyscale of its first channel.
    """
    import numpy as np
    import OpenEXR
    from PIL import Image

    raw_parts = _check_structure(path)
    mode, colour = _mode(raw_parts[0].channels)
    wanted = colour[:3] if mode.startswith("RGB") else colour[:1]
    if not wanted:
        raise ExtractionError(f"{path.name}: no channels to preview")
    try:
        source = OpenEXR.InputFile(str(path))  # the classic API reads only the named channels of part 0
        header = source.header()
        box = header["dataWindow"]
        width, height = box.max.x - box.min.x + 1, box.max.y - box.min.y + 1
        float_type = _imath_float_type()
        planes = source.channels(wanted, float_type) if float_type is not None else source.channels(wanted)
        source.close()
        # Sub-sampled channels (luminance/chroma files) do not fill the grid: caught here as a ValueError.
        stack = [np.frombuffer(plane, dtype=np.float32).reshape(height, width) for plane in planes]
    except Exception as exc:
        raise ExtractionError(f"{path.name}: cannot decode EXR pixels: {exc}") from exc
    rgb = np.stack(stack * 3 if len(stack) == 1 else stack, axis=-1)
    rgb = np.nan_to_num(rgb, nan=0.0, posinf=0.0, neginf=0.0).clip(min=0.0)
    white = max(1.0, float(np.percentile(rgb, 99.5)))
    mapped = (rgb * (1.0 + rgb / (white * white)) / (1.0 + rgb)).clip(0.0, 1.0)
    srgb = np.where(mapped <= 0.0031308, mapped * 12.92, 1.055 * np.power(mapped, 1 / 2.4) - 0.055)
    image = Image.fromarray((srgb * 255.0 + 0.5).astype(np.uint8), mode="RGB")
    image.thumbnail((max_size, max_size), Image.Resampling.LANCZOS)
    return image


def _imath_float_type() -> Any:
    """The classic API's FLOAT pixel type (from the Imath module that ships with the bindings), if present."""
    try:
        import Imath  # type: ignore[import-not-found]
    except ImportError:
        return None
    return Imath.PixelType(Imath.PixelType.FLOAT)


def _open_headers(path: Path) -> list[dict[str, Any]]:
    """Each part's header as the OpenEXR bindings convert it, without reading pixels."""
    import OpenEXR

    try:
        exr = OpenEXR.File(str(path), header_only=True)
        return [dict(part.header) for part in exr.parts]
    except Exception as exc:
        raise ExtractionError(f"{path.name}: OpenEXR cannot read the header: {exc}") from exc


def _check_structure(path: Path) -> list[_RawPart]:
    """Walk the raw headers and offset tables; raise ExtractionError unless every chunk is in the file."""
    require_nonempty(path)
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            parts, table_start = _read_headers(handle, size)
            _check_offset_tables(handle, size, parts, table_start)
    except OSError as exc:
        raise ExtractionError(f"{path.name}: cannot read: {exc}") from exc
    except (struct.error, UnicodeDecodeError, ValueError, _NeedMoreBytes) as exc:
        raise ExtractionError(f"{path.name}: corrupt EXR header ({exc})") from exc
    except ExtractionError as exc:
        raise ExtractionError(f"{path.name}: {exc}") from None
    return [part for part, _ in parts]


def _read_headers(handle: BinaryIO, size: int) -> tuple[list[tuple[_RawPart, int]], int]:
    """Parse every part header, re-reading with a larger buffer until the headers fit.

    Returns (part, version flags) pairs and the file offset where the chunk offset tables start.
    """
    want = 65536
    while True:
        handle.seek(0)
        data = handle.read(min(want, size))
        try:
            return _parse_headers(data)
        except _NeedMoreBytes:
            if len(data) >= size or want >= _MAX_HEADER_BYTES:
                raise ExtractionError("truncated EXR header") from None
            want *= 4


def _parse_headers(data: bytes) -> tuple[list[tuple[_RawPart, int]], int]:
    """Parse the magic number, version and attribute lists of all parts from ``data``."""
    if not data.startswith(_MAGIC) and not _MAGIC.startswith(data):
        raise ExtractionError("not an OpenEXR file (bad magic number)")
    if len(data) < 8:
        raise _NeedMoreBytes
    flags = struct.unpack_from("<I", data, 4)[0]
    pos, parts = 8, []
    while True:
        part, pos = _parse_attributes(data, pos, flags)
        parts.append((part, flags))
        if not flags & _MULTIPART_FLAG:
            break
        if _byte(data, pos) == 0:  # an empty header ends the list of parts
            pos += 1
            break
    return parts, pos


def _parse_attributes(data: bytes, pos: int, flags: int) -> tuple[_RawPart, int]:
    """Parse one header's attributes (name, type, size, value) up to its terminating null byte."""
    part = _RawPart(storage="tiledimage" if flags & _TILED_FLAG else "scanlineimage")
    while True:
        name, pos = _cstring(data, pos)
        if not name:
            return part, pos
        kind, pos = _cstring(data, pos)
        if pos + 4 > len(data):
            raise _NeedMoreBytes
        length = struct.unpack_from("<i", data, pos)[0]
        pos += 4
        if length < 0:
            raise ValueError(f"negative size for attribute {name!r}")
        if pos + length > len(data):
            raise _NeedMoreBytes
        value = data[pos : pos + length]
        pos += length
        if kind == "chlist":
            part.channels = _parse_chlist(value)
        elif name == "compression" and kind == "compression":
            part.compression = value[0]
        elif name == "dataWindow" and kind == "box2i":
            part.data_window = struct.unpack("<4i", value)
        elif name == "chunkCount" and kind == "int":
            part.chunk_count = struct.unpack("<i", value)[0]
        elif name == "tiles" and kind == "tiledesc":
            x_size, y_size, mode = struct.unpack("<IIB", value)
            part.tiles = (x_size, y_size, mode & 0x0F, mode >> 4)
        elif name == "type" and kind == "string":
            part.storage = value.decode("ascii", "replace")


def _parse_chlist(value: bytes) -> list[tuple[str, str]]:
    """Decode a ``chlist`` attribute into (channel name, pixel type) pairs."""
    channels, pos = [], 0
    while pos < len(value) and value[pos] != 0:
        end = value.index(b"\0", pos)
        name = value[pos:end].decode("utf-8", "replace")
        pixel_type = struct.unpack_from("<i", value, end + 1)[0]
        channels.append((name, _PIXEL_TYPES.get(pixel_type, f"type{pixel_type}")))
        pos = end + 1 + 16  # pixel type, pLinear + 3 reserved bytes, x and y sampling
    return channels


def _check_offset_tables(
    handle: BinaryIO, size: int, parts: list[tuple[_RawPart, int]], table_start: int
) -> None:
    """Raise ExtractionError when a chunk offset is missing or the last chunk runs past the end of the file.

    Parts whose chunk count cannot be derived (an unknown newer compression) are only range-checked as far as
    the offsets already read allow; that leaves such files unverified rather than wrongly rejected.
    """
    multipart = len(parts) > 1 or bool(parts[0][1] & _MULTIPART_FLAG)
    pos = table_start
    for part, _flags in parts:
        count = _chunk_count(part)
        if count is None:
            return
        handle.seek(pos)
        table = handle.read(8 * count)
        if len(table) < 8 * count:
            raise ExtractionError("truncated EXR: chunk offset table is cut short")
        offsets = struct.unpack(f"<{count}Q", table)
        pos += 8 * count
        if any(not table_start < offset < size for offset in offsets):
            raise ExtractionError("truncated or incomplete EXR: chunk offsets point outside the file")
        if part.storage.startswith("deep") or not offsets:
            continue
        last = max(offsets)
        leader = (4 if multipart else 0) + (16 if part.storage == "tiledimage" else 4)
        handle.seek(last + leader)
        packed = handle.read(4)
        if len(packed) < 4 or last + leader + 4 + struct.unpack("<i", packed)[0] > size:
            raise ExtractionError("truncated EXR: the last pixel chunk runs past the end of the file")


def _chunk_count(part: _RawPart) -> int | None:
    """How many chunks (scan-line blocks or tiles) a part's offset table lists, or None when unknown."""
    if part.chunk_count is not None:
        return part.chunk_count
    if part.data_window is None:
        return None
    x0, y0, x1, y1 = part.data_window
    width, height = x1 - x0 + 1, y1 - y0 + 1
    if width <= 0 or height <= 0:
        raise ValueError("empty data window")
    if part.storage == "tiledimage" and part.tiles:
        return _tile_count(width, height, *part.tiles)
    lines = _LINES_PER_CHUNK.get(part.compression if part.compression is not None else -1)
    return math.ceil(height / lines) if lines else None


def _tile_count(
    width: int, height: int, tile_x: int, tile_y: int, level_mode: int, rounding: int
) -> int | None:
    """Total tiles over all levels (one level, mip-map or rip-map), as the OpenEXR library counts them."""
    if tile_x <= 0 or tile_y <= 0:
        raise ValueError("bad tile size")

    def levels(n: int) -> int:
        log = n.bit_length() - 1
        return (log + (1 if rounding and (1 << log) < n else 0)) + 1

    def level_size(n: int, level: int) -> int:
        return max(1, ((n + (1 << level) - 1) if rounding else n) >> level)

    def tiles(w: int, h: int) -> int:
        return math.ceil(w / tile_x) * math.ceil(h / tile_y)

    if level_mode == 0:
        return tiles(width, height)
    if level_mode == 1:
        return sum(
            tiles(level_size(width, i), level_size(height, i)) for i in range(levels(max(width, height)))
        )
    if level_mode == 2:
        return sum(
            tiles(level_size(width, i), level_size(height, j))
            for i in range(levels(width))
            for j in range(levels(height))
        )
    return None


def _cstring(data: bytes, pos: int) -> tuple[str, int]:
    """Read a null-terminated string starting at ``pos``; returns it and the position after the null."""
    end = data.find(b"\0", pos)
    if end < 0:
        raise _NeedMoreBytes
    if end - pos > 255:
        raise ValueError("attribute name too long")
    return data[pos:end].decode("utf-8"), end + 1


def _byte(data: bytes, pos: int) -> int:
    if pos >= len(data):
        raise _NeedMoreBytes
    return data[pos]


def _layer_names(channels: list[tuple[str, str]], part_name: str | None) -> list[str]:
    """Layer names: channel-name prefixes ("ViewLayer.Depth"); a multi-part file's unprefixed channels
    belong to a layer named after their part."""
    names = []
    for channel, _ in channels:
        prefix = channel.rpartition(".")[0] or part_name
        if prefix and prefix not in names:
            names.append(prefix)
    return names


def _mode(channels: list[tuple[str, str]]) -> tuple[str, list[str]]:
    """The colour layout of the primary layer ("RGBA", "RGB", "YA", "Y") and its channel names.

    The primary layer is the unprefixed one, else a beauty layer (Blender's "<view layer>.Combined"),
    else the first layer with colour channels (channels are stored sorted, so "AO" would come before
    "Combined"). Without any, the mode is the channel-suffix summary of the first layer, e.g. "Z".
    """
    by_layer: dict[str, dict[str, str]] = {}
    for name, _ in channels:
        prefix, _, suffix = name.rpartition(".")
        by_layer.setdefault(prefix, {})[suffix] = name

    def rank(layer: str) -> int:
        if not layer:
            return 0
        return 1 if layer.rsplit(".", 1)[-1].lower() in _BEAUTY_LAYER_NAMES else 2

    ordered = sorted(by_layer, key=rank)  # stable: file order within a rank
    for layer in ordered:
        suffixes = by_layer[layer]
        for mode in ("RGBA", "RGB", "YA", "Y"):
            if all(c in suffixes for c in mode):
                return mode, [suffixes[c] for c in mode]
    if not ordered:
        return "", []
    first = by_layer[ordered[0]]
    return "".join(first)[:16], list(first.values())


def _compression_name(value: Any) -> str | None:
    name = getattr(value, "name", None)
    return name.removesuffix("_COMPRESSION") if isinstance(name, str) else None


def _window(value: Any) -> list[list[int]] | None:
    """A box2i attribute as [[xmin, ymin], [xmax, ymax]]."""
    try:
        low, high = value
        return [[int(low[0]), int(low[1])], [int(high[0]), int(high[1])]]
    except (TypeError, ValueError, IndexError):
        return None


def _window_size(window: list[list[int]] | None) -> tuple[int, int]:
    if not window:
        return 0, 0
    (x0, y0), (x1, y1) = window
    return x1 - x0 + 1, y1 - y0 + 1


def _jsonable(value: Any) -> Any:
    """Convert a header attribute value to JSON-safe data, or None to leave it out (opaque, previews, NaN)."""
    if isinstance(value, str):
        if len(value) > _MAX_ATTRIBUTE_CHARS:
            return value[:_MAX_ATTRIBUTE_CHARS] + f"... ({len(value):,} characters)"
        return value
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy arrays: vectors, matrices, rationals
        if value.dtype.kind == "f":
            return (
                _jsonable([float(f"{x:.7g}") for x in value.ravel().tolist()])
                if value.ndim == 1
                else [_jsonable(row) for row in value]
            )
        return value.tolist() if value.dtype.kind in "iub" else None
    if isinstance(value, list | tuple):
        items = [_jsonable(item) for item in value]
        return None if any(item is None for item in items) else items
    if isinstance(getattr(value, "name", None), str) and hasattr(value, "value"):  # bound enums
        return value.name
    if all(hasattr(value, a) for a in ("hours", "minutes", "seconds", "frame")):  # TimeCode
        return f"{value.hours:02d}:{value.minutes:02d}:{value.seconds:02d}:{value.frame:02d}"
    if hasattr(value, "n") and hasattr(value, "d"):  # Rational
        return [value.n, value.d]
    return None
