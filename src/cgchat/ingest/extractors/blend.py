"""Blender (.blend) files: scenes, render settings, objects, materials, external files, preview.

The file is parsed with blender-asset-tracer's DNA reader and never handed to Blender, so nothing in
it (drivers, scripts, add-ons) can run. Only the structure is read: block headers, the DNA catalogue
and the few fields we index. Every field read is guarded because struct and field names drift
between Blender 2.4x and 4.x; a field that is missing or unreadable becomes None, it never fails the
file. Only content that is not a whole .blend (empty, garbage, truncated, broken compression) raises
:class:`ExtractionError`.

We open and decompress the file ourselves instead of calling ``blendfile.open_cached`` or
``BlendFile(path)``: BAT keeps opened files in a process-wide cache and, when parsing fails, leaves
the file (and the temporary copy of a compressed one) open. An ingest run over thousands of files
must not accumulate descriptors, so this module owns every handle and closes it before returning.
"""

from __future__ import annotations

import contextlib
import glob
import gzip
import hashlib
import io
import math
import os
import re
import shutil
import struct
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import zstandard
from blender_asset_tracer import blendfile
from blender_asset_tracer.blendfile import BlendFileBlock
from blender_asset_tracer.trace import asset_holding_blocks, blocks2assets
from blender_asset_tracer.trace.result import BlockUsage
from PIL import Image

from cgchat.ingest.extractors.base import Dependency, Extraction, ExtractionError

__all__ = ["extract_blend"]

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_ZSTD_SKIPPABLE_MAGIC_LOW = 0x184D2A50  # skippable frames: 0x184D2A50..0x184D2A5F (little endian)
_BLEND_MAGIC = b"BLENDER"

# Uncompressed files are walked by seeking from block header to block header; a small read buffer
# keeps that from pulling in megabytes of mesh data we skip anyway.
_HEADER_READ_BUFFER = 64 * 1024
_COPY_CHUNK = 1024 * 1024
_MAX_LIST_ITEMS = 1_000_000  # guards linked-list walks against pointer cycles in corrupt files
_MAX_POINTER_HOPS_PER_BLOCK = 1_000_000  # the same guard for BAT's dependency walkers
_MAX_THUMBNAIL_SIDE = 4096
_TEXT_NAME_LIMIT = 30  # names per search phrase; the full lists stay in metadata

# DNA_object_types.h, Object.type -> the RNA enum identifiers users know from bpy.
_OBJECT_TYPES: dict[int, str] = {
    0: "EMPTY",
    1: "MESH",
    2: "CURVE",
    3: "SURFACE",
    4: "FONT",
    5: "META",
    10: "LIGHT",
    11: "CAMERA",
    12: "SPEAKER",
    13: "LIGHT_PROBE",
    21: "WAVE",  # 2.4x only
    22: "LATTICE",
    25: "ARMATURE",
    26: "GPENCIL",
    27: "CURVES",
    28: "POINTCLOUD",
    29: "VOLUME",
    30: "GREASEPENCIL",
}

_ENGINE_NAMES: dict[str, str] = {
    "CYCLES": "Cycles",
    "BLENDER_EEVEE": "Eevee",
    "BLENDER_EEVEE_NEXT": "Eevee",
    "BLENDER_WORKBENCH": "Workbench",
    "BLENDER_RENDER": "Blender Internal",
    "BLENDER_GAME": "Blender Game",
}

# DNA_image_types.h, Image.source
_IMAGE_SOURCES: dict[int, str] = {
    1: "FILE",
    2: "SEQUENCE",
    3: "MOVIE",
    4: "GENERATED",
    5: "VIEWER",
    6: "TILED",
}

# Two-letter ID codes counted in metadata["counts"], named like bpy.data collections.
_ID_COUNT_NAMES: dict[bytes, str] = {
    b"SC": "scenes",
    b"OB": "objects",
    b"ME": "meshes",
    b"CU": "curves",
    b"MB": "metaballs",
    b"MA": "materials",
    b"TE": "textures",
    b"IM": "images",
    b"LA": "lights",
    b"CA": "cameras",
    b"WO": "worlds",
    b"GR": "collections",
    b"AR": "armatures",
    b"AC": "actions",
    b"NT": "node_groups",
    b"PA": "particles",
    b"GD": "grease_pencils",
    b"LI": "libraries",
    b"SO": "sounds",
    b"VF": "fonts",
    b"MC": "movie_clips",
    b"CF": "cache_files",
    b"VO": "volumes",
    b"TX": "texts",
    b"LT": "lattices",
    b"SK": "shape_keys",
}

# Which Dependency.kind an asset gets, by the code of the block BAT found it in.
_KIND_BY_BLOCK_CODE: dict[bytes, str] = {
    b"IM": "image",
    b"LI": "library",
    b"CF": "cache",
    b"ME": "cache",  # external mesh CustomData
    b"SO": "sound",
    b"VF": "font",
    b"MC": "movie",
    b"VO": "volume",
}
_SOUND_EXTENSIONS = frozenset({".wav", ".mp3", ".ogg", ".flac", ".aac", ".m4a", ".aif", ".aiff", ".opus"})
_IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".exr", ".tif", ".tiff", ".tga", ".bmp", ".dpx", ".hdr", ".webp", ".jp2"}
)

# Field reads on untrusted bytes through BAT can fail in all of these ways; each means "unknown".
_READ_ERRORS: tuple[type[BaseException], ...] = (
    KeyError,
    IndexError,
    ValueError,
    TypeError,
    AssertionError,
    OSError,
    struct.error,
    UnicodeDecodeError,
    RecursionError,
    blendfile.exceptions.SegmentationFault,
    blendfile.exceptions.NoReaderImplemented,
    blendfile.exceptions.BlendFileError,
)


def extract_blend(path: Path) -> Extraction:
    """Read one .blend file without Blender.

    Raises ExtractionError when the file is empty, not a .blend (plain, gzip or zstd), cannot be
    read, or is truncated (no ``ENDB`` marker after the last block).
    """
    path = Path(path)
    with _open_blend(path) as (bfile, compression):
        return _extract(bfile, path, compression)


# --------------------------------------------------------------------------------------------------
# Opening: sniff compression, decompress to an anonymous temp file, parse defensively.


class _Truncated(Exception):
    """Raised while loading blocks when the data stops before the ENDB marker."""


class _PointerBudgetExceeded(RuntimeError):
    """Too many pointer hops for one datablock: a cycle in a corrupt file's linked lists."""


_TRACE_ERRORS: tuple[type[BaseException], ...] = (*_READ_ERRORS, _PointerBudgetExceeded)


# Decoded DNA catalogues by (content hash, endianness, pointer size). Every file saved by the same
# Blender build carries the same catalogue, and decoding it is most of the cost of reading a .blend
# (≈ 50 ms of ≈ 60 ms here), so a library of thousands of files decodes it a handful of times.
_DNA_CACHE: dict[tuple[bytes, bytes, int], tuple[list[Any], dict[bytes, int]]] = {}
_DNA_CACHE_SIZE = 32


class _StreamBlendFile(blendfile.BlendFile):
    """BAT's BlendFile, hardened for untrusted input and bound to a stream the caller owns.

    Overrides, all tied to blender-asset-tracer 1.23 (pinned):
    - ``_open_file``: use the given stream; BAT's opens the path itself and leaks it when parsing fails.
    - ``_load_blocks``: same walk as BAT's, but a short read or a block reaching past the end is an
      error (BAT silently treats it as the end), a negative size cannot seek backwards forever, and
      every block's struct index must exist (BAT would raise IndexError on first access instead).
    - ``decode_structs``: the DNA catalogue is checked first; corrupt counts or a name like
      ``foo[12`` make BAT's parser loop for billions of iterations or forever. Decoded catalogues
      are cached (see _DNA_CACHE).
    - ``dereference_pointer``: counts hops against a budget so a pointer cycle cannot hang a walk.
    """

    def __init__(self, path: Path, stream: IO[bytes], compressed: bool) -> None:
        self._given_stream = stream
        self._given_compressed = compressed
        self.pointer_budget: int | None = None
        super().__init__(path, mode="rb")

    def _open_file(self, path: Path, mode: str) -> IO[bytes]:
        self.filepath = path
        self.raw_filepath = path
        self.is_compressed = self._given_compressed
        return self._given_stream

    def _load_blocks(self) -> None:
        fileobj = self.fileobj
        file_size = os.fstat(fileobj.fileno()).st_size
        header_size = self.block_header_struct.size
        self.structs.clear()
        self.sdna_index_from_id.clear()
        while True:
            remaining = file_size - fileobj.tell()
            if remaining < header_size:
                if remaining >= 4 and fileobj.read(4) == b"ENDB":
                    break
                raise _Truncated("no ENDB marker after the last block")
            block = BlendFileBlock(self)
            if block.code == b"ENDB":
                break
            if block.size < 0 or block.file_offset + block.size > file_size:
                raise _Truncated(f"block {block.code!r} reaches past the end of the file")
            if block.code == b"DNA1":
                self.decode_structs(block)
            elif block.code == b"GLOB":
                self.decode_glob(block)
                # BAT returns early without skipping the block for files from Blender <= 2.42.
                fileobj.seek(block.file_offset + block.size, os.SEEK_SET)
            else:
                fileobj.seek(block.size, os.SEEK_CUR)
            self.blocks.append(block)
            self.code_index[block.code].append(block)
            self.block_from_addr[block.addr_old] = block
        if not self.structs:
            raise blendfile.exceptions.NoDNA1Block("no DNA1 block", self.filepath)
        struct_count = len(self.structs)
        if any(not 0 <= block.sdna_index < struct_count for block in self.blocks):
            raise ValueError("a block refers to a DNA struct that does not exist")

    def decode_structs(self, block: BlendFileBlock) -> None:
        start = self.fileobj.tell()
        data = self.fileobj.read(block.size)
        key = (hashlib.sha1(data).digest(), self.header.endian_str, self.header.pointer_size)
        cached = _DNA_CACHE.get(key)
        if cached is not None:  # position is already past the block, as after BAT's own decode
            self.structs.extend(cached[0])
            self.sdna_index_from_id.update(cached[1])
            return
        _check_dna(data, self.header.endian_str.decode())
        self.fileobj.seek(start, os.SEEK_SET)
        super().decode_structs(block)
        if len(_DNA_CACHE) >= _DNA_CACHE_SIZE:
            _DNA_CACHE.pop(next(iter(_DNA_CACHE)))
        _DNA_CACHE[key] = (list(self.structs), dict(self.sdna_index_from_id))

    def dereference_pointer(self, address: int) -> BlendFileBlock | None:
        if self.pointer_budget is not None:
            self.pointer_budget -= 1
            if self.pointer_budget < 0:
                raise _PointerBudgetExceeded("pointer cycle or runaway list")
        return super().dereference_pointer(address)


# A DNA field name: anything without brackets, then zero or more [N] array dimensions.
_DNA_NAME = re.compile(rb"[^\[\]]*(?:\[[0-9]+\])*")


def _check_dna(data: bytes, endian: str) -> None:
    """Walk the SDNA names and types sections the way BAT will, failing fast on what would hang it."""
    if data[:8] != b"SDNANAME":
        raise ValueError("DNA1 block does not start with SDNA/NAME")
    offset = 8
    for section in (b"NAME", b"TYPE"):
        if section == b"TYPE":
            offset = (offset + 3) & ~3
            if data[offset : offset + 4] != b"TYPE":
                raise ValueError("DNA1 block has no TYPE section where expected")
            offset += 4
        (count,) = struct.unpack_from(endian + "I", data, offset)
        offset += 4
        if count > len(data) - offset:
            raise ValueError(f"DNA1 {section.decode()} count {count} exceeds the block")
        for _ in range(count):
            end = data.find(b"\0", offset)
            if end < 0:
                raise ValueError(f"DNA1 {section.decode()} section runs past the block")
            if section == b"NAME" and not _DNA_NAME.fullmatch(data, offset, end):
                raise ValueError(f"malformed DNA field name {data[offset:end]!r}")
            offset = end + 1


@contextlib.contextmanager
def _open_blend(path: Path) -> Iterator[tuple[_StreamBlendFile, str]]:
    """Yield the parsed file and its compression ("none" | "gzip" | "zstd"); close everything after."""
    with contextlib.ExitStack() as stack:
        try:
            raw = stack.enter_context(open(path, "rb", buffering=_HEADER_READ_BUFFER))
            head = raw.read(len(_BLEND_MAGIC))
        except OSError as exc:
            raise ExtractionError(f"cannot read {path}: {exc}") from exc
        compression = _sniff_compression(head, path)
        stream: IO[bytes] = raw
        if compression != "none":
            stream = stack.enter_context(_decompressed(raw, compression, path))
        yield _parse(path, stream, compression), compression


def _sniff_compression(head: bytes, path: Path) -> str:
    """Tell plain, gzip (Blender <= 2.9x) and zstd (Blender >= 3.0) files apart by their magic bytes."""
    if not head:
        raise ExtractionError(f"empty file, not a .blend: {path}")
    if head.startswith(_BLEND_MAGIC):
        return "none"
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    if len(head) >= 4 and (int.from_bytes(head[:4], "little") & 0xFFFFFFF0) == _ZSTD_SKIPPABLE_MAGIC_LOW:
        return "zstd"
    raise ExtractionError(f"not a .blend file (starts with {head[:7]!r}): {path}")


@contextlib.contextmanager
def _decompressed(raw: IO[bytes], compression: str, path: Path) -> Iterator[IO[bytes]]:
    """Decompress into an anonymous temp file: blocks are read by seeking, and memory stays flat."""
    with tempfile.TemporaryFile(prefix="cgchat-blend-") as tmp:
        raw.seek(0)
        try:
            if compression == "gzip":
                with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                    shutil.copyfileobj(gz, tmp, _COPY_CHUNK)
            else:
                zstandard.ZstdDecompressor().copy_stream(
                    raw, tmp, read_size=_COPY_CHUNK, write_size=_COPY_CHUNK
                )
        except (OSError, EOFError, zlib.error, zstandard.ZstdError) as exc:
            raise ExtractionError(f"corrupt {compression}-compressed .blend: {path}: {exc}") from exc
        tmp.seek(0)
        if tmp.read(len(_BLEND_MAGIC)) != _BLEND_MAGIC:
            raise ExtractionError(f"{compression}-compressed file is not a .blend: {path}")
        tmp.seek(0)
        yield tmp


def _parse(path: Path, stream: IO[bytes], compression: str) -> _StreamBlendFile:
    """Parse block headers and DNA; any failure on these untrusted bytes means a corrupt file."""
    try:
        return _StreamBlendFile(path, stream, compressed=compression != "none")
    except (_Truncated, blendfile.exceptions.NoDNA1Block) as exc:
        raise ExtractionError(f"truncated .blend ({exc}): {path}") from exc
    except Exception as exc:  # BAT raises struct.error, ValueError, IndexError, ... on garbage
        raise ExtractionError(f"truncated or corrupt .blend: {path}: {exc!r}") from exc


# --------------------------------------------------------------------------------------------------
# Guarded field access.


def _get(block: BlendFileBlock | None, *path: bytes, default: Any = None) -> Any:
    """One field (nested path allowed), or ``default`` when absent in this version or unreadable."""
    if block is None:
        return default
    try:
        value = block.get(path if len(path) > 1 else path[0], default=default)
    except _READ_ERRORS:
        return default
    return default if value is None else value


def _get_first(block: BlendFileBlock | None, *names: bytes) -> Any:
    """The first of several field names that exists: DNA renames differ between versions."""
    for name in names:
        value = _get(block, name)
        if value is not None:
            return value
    return None


def _pointer(block: BlendFileBlock | None, *path: bytes) -> BlendFileBlock | None:
    """Dereference a pointer field; None for null, missing, or dangling pointers."""
    if block is None:
        return None
    try:
        target = block.get_pointer(path if len(path) > 1 else path[0], default=None)
    except _READ_ERRORS:
        return None
    return target if isinstance(target, BlendFileBlock) else None


def _has_pointer(block: BlendFileBlock, *path: bytes) -> bool:
    """Whether a pointer field is non-null (without dereferencing it)."""
    value = _get(block, *path, default=0)
    return isinstance(value, int) and value != 0


def _text(value: Any) -> str | None:
    """Decode a char[] field; Blender stores UTF-8 but old files may hold anything."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        return value
    return None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _id_name(block: BlendFileBlock | None) -> str | None:
    """The ID name without its two-letter type prefix ("OBDragon_Body" -> "Dragon_Body")."""
    if block is None:
        return None
    raw = _get(block, b"id", b"name")
    if raw is None and block.dna_type_name == "ID":  # linked-ID placeholder blocks are bare IDs
        raw = _get(block, b"name")
    name = _text(raw)
    return name[2:] if name and len(name) > 2 else None


def _blocks(bfile: _StreamBlendFile, code: bytes) -> list[BlendFileBlock]:
    # code_index is a defaultdict: .get() avoids growing it with empty lists.
    return list(bfile.code_index.get(code, ()))


def _listbase(first: BlendFileBlock | None) -> Iterator[BlendFileBlock]:
    """Walk a ListBase, stopping on pointer cycles that corrupt files can contain."""
    seen: set[int] = set()
    block = first
    while block is not None and block.file_offset not in seen and len(seen) < _MAX_LIST_ITEMS:
        seen.add(block.file_offset)
        yield block
        block = _pointer(block, b"next")


# --------------------------------------------------------------------------------------------------
# Extraction.


def _extract(bfile: _StreamBlendFile, path: Path, compression: str) -> Extraction:
    """Assemble the Extraction from the parsed file."""
    blend_dir = os.path.dirname(os.path.abspath(path))
    warnings: list[str] = []
    version = _version_string(bfile.header.version)
    scenes = [_scene_settings(sc) for sc in _blocks(bfile, b"SC")]
    active = _active_scene(bfile, scenes)
    objects = _objects(bfile)
    materials = [n for n in (_id_name(b) for b in _blocks(bfile, b"MA")) if n]
    images = _images(bfile)
    packed, packed_offsets = _packed_files(bfile)
    dependencies, dep_details = _dependencies(bfile, blend_dir, packed_offsets, warnings)
    thumbnail = _thumbnail_png(bfile, warnings)

    type_row: dict[str, Any] = {
        "render_engine": active.get("render_engine"),
        "resolution_x": active.get("resolution_x"),
        "resolution_y": active.get("resolution_y"),
        "resolution_percentage": active.get("resolution_percentage"),
        "frame_start": active.get("frame_start"),
        "frame_end": active.get("frame_end"),
        "fps": active.get("fps"),
        "blender_version": version,
        "compression": compression,
        "scene_names": [s["name"] for s in scenes if s.get("name")],
        "objects": objects,
        "materials": materials,
        "has_preview": thumbnail is not None,
    }
    metadata: dict[str, Any] = {
        **type_row,
        **_file_info(bfile),
        "active_scene": active.get("name"),
        "scenes": scenes,
        "collections": _collections(bfile),
        "images": images,
        "libraries": _libraries(bfile, blend_dir),
        "packed_files": packed,
        "dependencies": dep_details,
        "missing_dependencies": [d.raw_path for d in dependencies if not d.exists],
        "counts": _counts(bfile),
    }
    if warnings:
        metadata["warnings"] = warnings
    return Extraction(
        metadata={"blend": metadata},
        text=_phrases(type_row, active, dependencies, metadata),
        type_row=type_row,
        dependencies=dependencies,
        thumbnail_png=thumbnail,
    )


def _version_string(version: Any) -> str | None:
    """Header version 304 -> "3.4", 279 -> "2.79", 402 -> "4.2" (2.x minors are two digits)."""
    if not isinstance(version, int) or version <= 0:
        return None
    major, minor = divmod(version, 100)
    return f"{major}.{minor:02d}" if major < 3 else f"{major}.{minor}"


def _file_info(bfile: _StreamBlendFile) -> dict[str, Any]:
    """Header and GLOB facts: which Blender wrote the file and what it needs to open it."""
    header = bfile.header
    glob_block = next(iter(_blocks(bfile, b"GLOB")), None)
    min_version = _int(_get(glob_block, b"minversion"))
    return {
        "file_version": header.version,
        "file_subversion": bfile.file_subversion,
        "min_blender_version": _version_string(min_version) if min_version else None,
        "build_hash": _text(_get(glob_block, b"build_hash")) or None,
        "pointer_size": header.pointer_size,
        "endian": "little" if header.is_little_endian else "big",
        "block_count": len(bfile.blocks),
    }


def _scene_settings(scene: BlendFileBlock) -> dict[str, Any]:
    """RenderData of one scene. ``r.engine`` exists since 2.5; older files leave it None."""
    frs_sec = _int(_get(scene, b"r", b"frs_sec"))
    frs_sec_base = _get(scene, b"r", b"frs_sec_base")
    return {
        "name": _id_name(scene),
        "render_engine": _text(_get(scene, b"r", b"engine")) or None,
        "resolution_x": _int(_get(scene, b"r", b"xsch")),
        "resolution_y": _int(_get(scene, b"r", b"ysch")),
        "resolution_percentage": _int(_get(scene, b"r", b"size")),
        "frame_start": _int(_get(scene, b"r", b"sfra")),
        "frame_end": _int(_get(scene, b"r", b"efra")),
        "frame_step": _int(_get(scene, b"r", b"frame_step")),
        "fps": _fps(frs_sec, frs_sec_base),
        "camera": _id_name(_pointer(scene, b"camera")),
        "world": _id_name(_pointer(scene, b"world")),
        "output_path": _text(_get(scene, b"r", b"pic")) or None,
    }


def _fps(frs_sec: int | None, frs_sec_base: Any) -> float | None:
    """frs_sec / frs_sec_base, rounded: the base is a float32, so 24/1.001 carries noise digits."""
    if not frs_sec:
        return None
    base = float(frs_sec_base) if isinstance(frs_sec_base, (int, float)) else 1.0
    fps = frs_sec / base if math.isfinite(base) and base > 0 else float(frs_sec)
    return round(fps, 3) if math.isfinite(fps) else None


def _active_scene(bfile: _StreamBlendFile, scenes: list[dict[str, Any]]) -> dict[str, Any]:
    """The scene the file was saved with (GLOB.curscene), else the first one."""
    glob_block = next(iter(_blocks(bfile, b"GLOB")), None)
    current = _id_name(_pointer(glob_block, b"curscene"))
    for scene in scenes:
        if current and scene.get("name") == current:
            return scene
    return scenes[0] if scenes else {}


def _objects(bfile: _StreamBlendFile) -> list[dict[str, str]]:
    """Local objects with their bpy type identifier (unknown ints kept as "TYPE_<n>")."""
    objects = []
    for block in _blocks(bfile, b"OB"):
        name = _id_name(block)
        if not name:
            continue
        type_int = _int(_get(block, b"type"))
        type_name = _OBJECT_TYPES.get(type_int, f"TYPE_{type_int}") if type_int is not None else "UNKNOWN"
        objects.append({"name": name, "type": type_name})
    return objects


def _collections(bfile: _StreamBlendFile) -> list[dict[str, Any]]:
    """Collections (2.8+) or groups (2.7x) with member objects and child collections."""
    result = []
    for block in _blocks(bfile, b"GR"):
        result.append(
            {
                "name": _id_name(block),
                "objects": _names_in_list(block, b"gobject", b"ob"),
                "children": _names_in_list(block, b"children", b"collection"),
            }
        )
    return result


def _names_in_list(owner: BlendFileBlock, list_field: bytes, item_pointer: bytes) -> list[str]:
    """ID names referenced by the items of a ListBase (e.g. Collection.gobject -> CollectionObject.ob)."""
    names = (
        _id_name(_pointer(item, item_pointer)) for item in _listbase(_pointer(owner, list_field, b"first"))
    )
    return [name for name in names if name]


def _is_packed(block: BlendFileBlock) -> bool:
    """``packedfile`` in all versions; 2.8+ images keep theirs in the ``packedfiles`` list."""
    return _has_pointer(block, b"packedfile") or _has_pointer(block, b"packedfiles", b"first")


def _images(bfile: _StreamBlendFile) -> list[dict[str, Any]]:
    """Image datablocks; the on-disk DNA still calls Image.filepath ``name``."""
    result = []
    for block in _blocks(bfile, b"IM"):
        source = _int(_get(block, b"source"))
        result.append(
            {
                "name": _id_name(block),
                "filepath": _text(_get_first(block, b"name", b"filepath")) or None,
                "source": _IMAGE_SOURCES.get(source, source) if source is not None else None,
                "packed": _is_packed(block),
            }
        )
    return result


def _library_path(block: BlendFileBlock) -> str | None:
    """The path as the user set it (``//`` relative); Library.filepath is Blender's absolute copy."""
    return _text(_get_first(block, b"name", b"filepath")) or None


def _libraries(bfile: _StreamBlendFile, blend_dir: str) -> list[dict[str, Any]]:
    """Linked .blend files and which IDs this file takes from each (bare ``ID`` placeholder blocks)."""
    linked: dict[int, list[dict[str, str]]] = {}
    for block in _blocks(bfile, b"ID"):
        lib = _pointer(block, b"lib")
        raw_name = _text(_get(block, b"name")) or ""
        if lib is not None and len(raw_name) > 2:
            linked.setdefault(lib.addr_old, []).append({"type": raw_name[:2], "name": raw_name[2:]})
    result = []
    for block in _blocks(bfile, b"LI"):
        raw = _library_path(block)
        resolved = _resolve(raw, blend_dir) if raw else None
        result.append(
            {
                "name": _id_name(block),
                "filepath": raw,
                "resolved_path": resolved,
                "exists": _exists(resolved),
                "packed": _is_packed(block),
                "linked_ids": linked.get(block.addr_old, []),
            }
        )
    return result


def _packed_files(bfile: _StreamBlendFile) -> tuple[list[dict[str, Any]], set[int]]:
    """Datablocks whose file lives inside the .blend (for metadata) and their block offsets.

    They are not dependencies; the offsets let the dependency walk skip them.
    """
    kinds = {b"IM": "image", b"SO": "sound", b"VF": "font", b"LI": "library", b"VO": "volume"}
    items: list[dict[str, Any]] = []
    offsets: set[int] = set()
    for code, kind in kinds.items():
        for block in _blocks(bfile, code):
            if _is_packed(block):
                offsets.add(block.file_offset)
                items.append({"kind": kind, "name": _id_name(block), "filepath": _text(_get(block, b"name"))})
    return items, offsets


def _counts(bfile: _StreamBlendFile) -> dict[str, int]:
    """Datablock counts by bpy.data name, plus IDs linked from libraries."""
    counter = Counter(block.code for block in bfile.blocks)
    counts = {name: counter[code] for code, name in _ID_COUNT_NAMES.items() if counter[code]}
    if counter[b"ID"]:
        counts["linked_ids"] = counter[b"ID"]
    return counts


# --------------------------------------------------------------------------------------------------
# Dependencies: BAT's per-block walkers, run on this file only (no recursion into libraries).


def _dependencies(
    bfile: _StreamBlendFile, blend_dir: str, packed_offsets: set[int], warnings: list[str]
) -> tuple[list[Dependency], list[dict[str, Any]]]:
    """External files this .blend references directly; packed ones are left to metadata."""
    deps: list[Dependency] = []
    details: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for usage in _usages(bfile, warnings):
        if usage.block.file_offset in packed_offsets:
            continue
        raw = _stored_path(usage)
        if not raw:
            continue
        kind = _dependency_kind(usage, raw)
        if (kind, raw) in seen:
            continue
        seen.add((kind, raw))
        resolved = _resolve(raw, blend_dir)
        dep = Dependency(kind=kind, raw_path=raw, resolved_path=resolved, exists=_exists(resolved))
        deps.append(dep)
        details.append(
            {
                "kind": kind,
                "raw_path": raw,
                "resolved_path": resolved,
                "exists": dep.exists,
                "owner": bytes(usage.block_name).decode("utf-8", errors="replace"),
                "sequence": usage.is_sequence,
            }
        )
    return deps, details


def _usages(bfile: _StreamBlendFile, warnings: list[str]) -> Iterator[BlockUsage]:
    """BAT asset usages, block by block, so one unreadable block only loses its own assets.

    BAT's walkers follow linked lists without cycle checks; the pointer budget bounds each block.
    """
    for block in asset_holding_blocks(bfile.blocks):
        bfile.pointer_budget = _MAX_POINTER_HOPS_PER_BLOCK
        try:
            usages = list(blocks2assets.iter_assets(block))
        except _TRACE_ERRORS as exc:
            warnings.append(f"could not trace {block.code.decode('ascii', 'replace')} block: {exc!r}")
            continue
        finally:
            bfile.pointer_budget = None
        yield from usages


def _stored_path(usage: BlockUsage) -> str:
    """The path exactly as the file stores it.

    BAT turns backslashes into slashes; a Windows artist's ``//..\\tex\\a.png`` is kept as written.
    Paths BAT derives (point-cache globs) have no stored counterpart and are taken as BAT gives them.
    """
    derived = bytes(usage.asset_path)
    field = usage.path_full_field
    if field is not None:
        stored = _get(usage.block, field.name.name_only)
        if isinstance(stored, bytes) and stored.replace(b"\\", b"/") == derived:
            derived = stored
    return derived.decode("utf-8", errors="replace")


def _dependency_kind(usage: BlockUsage, raw_path: str) -> str:
    """Classify by datablock type; sequencer strips by file extension; the rest are sim caches."""
    kind = _KIND_BY_BLOCK_CODE.get(usage.block.code)
    if kind:
        return kind
    type_name = usage.block.dna_type_name
    if type_name == "NodeShaderTexIES":
        return "other"
    if type_name in {"Strip", "StripData", "Sequence"}:
        ext = os.path.splitext(raw_path)[1].lower()
        if ext in _SOUND_EXTENSIONS:
            return "sound"
        return "image" if ext in _IMAGE_EXTENSIONS else "movie"
    return "cache"  # point caches, mesh cache / ocean / fluid / geometry-nodes bake directories


def _resolve(raw: str, blend_dir: str) -> str | None:
    """Absolute, normalised path; ``//`` is the .blend's folder. None when not resolvable here.

    Windows drive paths on POSIX and paths relative to Blender's working directory cannot be
    located from the file alone.
    """
    if raw.startswith("//"):
        return os.path.normpath(os.path.join(blend_dir, raw[2:].replace("\\", "/")))
    if os.path.isabs(raw):
        return os.path.normpath(raw)
    return None


def _exists(resolved: str | None) -> bool:
    """Existence on this machine; UDIM tokens and BAT's cache globs exist if anything matches."""
    if not resolved:
        return False
    if any(token in resolved for token in ("<UDIM>", "<UVTILE>", "*")):
        pattern = glob.escape(resolved)
        for token in ("<UDIM>", "<UVTILE>", "[*]"):
            pattern = pattern.replace(token, "*")
        return any(True for _ in glob.iglob(pattern))
    return os.path.exists(resolved)


# --------------------------------------------------------------------------------------------------
# Preview and search text.


def _thumbnail_png(bfile: _StreamBlendFile, warnings: list[str]) -> bytes | None:
    """The TEST block: int width, int height, then RGBA rows bottom-up. Re-encoded as PNG."""
    test = next(iter(_blocks(bfile, b"TEST")), None)
    if test is None:
        return None
    try:
        data = test.raw_data()
        width, height = struct.unpack_from(bfile.header.endian_str.decode() + "ii", data, 0)
        if not (0 < width <= _MAX_THUMBNAIL_SIDE and 0 < height <= _MAX_THUMBNAIL_SIDE):
            raise ValueError(f"implausible preview size {width}x{height}")
        pixels = data[8 : 8 + width * height * 4]
        if len(pixels) != width * height * 4:
            raise ValueError("preview pixel data is short")
        image = Image.frombytes("RGBA", (width, height), pixels).transpose(Image.Transpose.FLIP_TOP_BOTTOM)
        out = io.BytesIO()
        image.save(out, format="PNG")
        return out.getvalue()
    except _READ_ERRORS as exc:
        warnings.append(f"unreadable preview: {exc}")
        return None


def _name_list(names: list[str]) -> str:
    """Comma-joined names, capped so a file with thousands of objects keeps short phrases."""
    shown = ", ".join(names[:_TEXT_NAME_LIMIT])
    extra = len(names) - _TEXT_NAME_LIMIT
    return f"{shown} (+{extra} more)" if extra > 0 else shown


def _phrases(
    row: dict[str, Any], active: dict[str, Any], deps: list[Dependency], metadata: dict[str, Any]
) -> list[str]:
    """Short human phrases for the search description."""
    text: list[str] = []
    engine = row["render_engine"]
    if engine:
        text.append(f"{_ENGINE_NAMES.get(engine, engine)} render")
    if row["resolution_x"] and row["resolution_y"]:
        percent = row["resolution_percentage"]
        suffix = f" at {percent}%" if percent and percent != 100 else ""
        text.append(f"{row['resolution_x']}x{row['resolution_y']}{suffix}")
    if row["frame_start"] is not None and row["frame_end"] is not None:
        text.append(f"frames {row['frame_start']}-{row['frame_end']}")
    if row["fps"]:
        text.append(f"{row['fps']:g} fps")
    if row["blender_version"]:
        text.append(f"Blender {row['blender_version']}")
    if row["compression"] != "none":
        text.append(f"compressed ({row['compression']})")
    if len(row["scene_names"]) > 1:
        text.append(f"scenes: {_name_list(row['scene_names'])}")
    if active.get("camera"):
        text.append(f"camera: {active['camera']}")
    _append_list(text, "objects", [o["name"] for o in row["objects"]])
    _append_list(text, "object types", sorted({o["type"].lower() for o in row["objects"]}))
    _append_list(text, "materials", row["materials"])
    _append_list(text, "collections", [c["name"] for c in metadata["collections"] if c.get("name")])
    _append_list(text, "textures", _basenames(d.raw_path for d in deps if d.kind == "image"))
    _append_list(text, "linked libraries", _basenames(d.raw_path for d in deps if d.kind == "library"))
    _append_list(text, "caches", _basenames(d.raw_path for d in deps if d.kind in {"cache", "volume"}))
    _append_list(text, "sounds", _basenames(d.raw_path for d in deps if d.kind == "sound"))
    _append_list(text, "movies", _basenames(d.raw_path for d in deps if d.kind == "movie"))
    _append_list(text, "fonts", _basenames(d.raw_path for d in deps if d.kind == "font"))
    _append_list(text, "missing", _basenames(d.raw_path for d in deps if not d.exists))
    _append_list(text, "packed", [p["name"] for p in metadata["packed_files"] if p.get("name")])
    if row["has_preview"]:
        text.append("has preview thumbnail")
    return text


def _append_list(text: list[str], label: str, names: list[str]) -> None:
    if names:
        text.append(f"{label}: {_name_list(names)}")


def _basenames(paths: Iterable[str]) -> list[str]:
    """File names for search phrases; Blender paths may use either slash."""
    names = []
    for raw in paths:
        name = raw.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
        if name and name not in names:
            names.append(name)
    return names
