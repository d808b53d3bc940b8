"""Search at scale: cgchat's own search() over 100k and 1M synthetic studio assets, in an isolated database.

    python bench/search_scale.py [--sizes 100000 1000000] [--queries 200] [--write docs/benchmarks.md]
    python bench/search_scale.py --verify [--verify-rows 2000]

Rows: a base set of ``--base`` assets generated like a studio library (shot and asset folders, project /
sequence / shot / department / version, frame numbers, extensions; per-type metadata as the extractors
write it), described by cgchat's own ``describe()`` and embedded by the real text encoder. Every further
row is a variant of a base asset: another project, sequence, shot, version and frame, so names and paths
(the keyword statistics) vary as in a real library, and its vector is the base vector plus the real encoder
difference of a variant description (one of ``--deltas`` re-encoded variants) and a little gaussian noise,
renormalised (re-encoding a million descriptions would take hours on two cores). ``--variation gaussian``
uses isotropic noise only, a harder case for HNSW than real text vectors (see variant_deltas).

Loading: COPY into a staging table, then one INSERT ... SELECT that computes ``search_tsv`` with the write
path's own expression (read from ``store._UPSERT_FILE``), type rows by COPY; then the BM25 postings with
migration 006's set-based backfill statements (read from the migration file), the indexes the migrations
define rebuilt from their own definitions (timed), VACUUM ANALYZE. ``--verify`` writes the same rows through
``store.write_asset`` into a second database and checks that both give the same rows and the same results.

Measured: p50/p95 of ``search(conn, SearchRequest(...))`` per mode (semantic, keyword, hybrid, filtered),
recall@10 of HNSW against exact search (the same search() calls run before the HNSW index is built, so
nothing but the k-NN differs), build time and size of each index, EXPLAIN (ANALYZE, BUFFERS) of the slowest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

REPO = Path(__file__).resolve().parents[1]
HEADING = "## Search at scale"
CACHE = Path(tempfile.gettempdir()) / "cgchat-bench-cache"
ROOT = Path("/studio")
CHUNK = 20_000  # rows per COPY transaction, and per noise draw (so any loader gets the same vectors)

PROJECTS = ["dragonfall", "moonrise", "ironharbor", "tidewater", "emberwood", "skyreach", "glasslake", "stormveil",
            "redcanyon", "nightjar", "silverpine", "coldforge", "brightwater", "ashenvale", "lumen", "wildmere",
            "oakhollow", "starfall", "greywind", "copperhill", "frostgate", "sunspire", "deepmoor", "kestrel"]
SUBJECTS = ["dragon", "knight", "castle", "forest", "tower", "ship", "horse", "wolf", "village", "bridge", "cave",
            "waterfall", "robot", "spaceship", "tree", "rock", "sword", "shield", "crown", "lantern", "wizard",
            "goblin", "city", "street", "car", "train", "harbor", "lighthouse", "desert", "mountain", "river",
            "temple", "statue", "armor", "cloak", "phoenix", "serpent", "owl", "deer", "fox", "market", "tavern",
            "mech", "drone", "asteroid", "planet", "cliff", "glacier", "volcano", "swamp"]
DESCRIPTORS = ["turntable", "beauty", "hero", "bg", "fg", "matte", "previz", "wip", "final", "crowd", "destruction",
               "explosion", "smoke", "fire", "rain", "snow", "fog", "dust", "splash", "flight", "walk", "run",
               "idle", "attack", "closeup", "wide", "establishing", "night", "sunset", "dawn", "storm", "interior"]
TEXTURE_MAPS = ["albedo", "diffuse", "roughness", "normal", "specular", "displacement", "metallic", "ao", "emission"]
SHOT_DEPTS = ["anim", "lighting", "comp", "fx", "layout", "matchmove", "roto", "cfx", "render"]
ASSET_DEPTS = ["model", "rig", "lookdev", "texturing", "groom", "concept"]
ASSET_KINDS = ["chr", "env", "props"]
RESOLUTIONS = [(1920, 1080), (3840, 2160), (4096, 2160), (2048, 1080), (1280, 720), (2048, 2048), (4096, 4096),
               (1024, 1024), (2560, 1440), (7680, 4320)]
# extension -> weight; asset types follow from cgchat's own classify.
EXTENSIONS = {"exr": 22, "png": 10, "jpg": 5, "tif": 3, "mp4": 7, "mov": 5, "blend": 18, "fbx": 4, "glb": 3,
              "usd": 3, "abc": 2, "obj": 1, "md": 3, "txt": 3, "csv": 2, "nk": 4, "py": 2, "pdf": 2, "hdr": 1}
CODECS = [("h264", "H.264 / AVC / MPEG-4 AVC / MPEG-4 part 10"), ("prores", "Apple ProRes (iCodec Pro)"),
          ("hevc", "H.265 / HEVC (High Efficiency Video Coding)"), ("dnxhd", "VC3/DNxHD")]
ENGINES = [("CYCLES", "Cycles", 55), ("BLENDER_EEVEE_NEXT", "Eevee", 35), ("BLENDER_WORKBENCH", "Workbench", 10)]
NOTES = ["increase the fog density", "client wants a warmer key light", "retime the landing by six frames",
         "fix the flicker on the wing membrane", "approved for final", "render at full resolution overnight",
         "motion blur too strong on the fast pan", "add rim light from the window", "cache the cloth sim again",
         "match the plate grain", "the horizon tilts in the last second", "replace the placeholder sky"]
NOT_FILTER_WORDS = {"video", "clip", "image", "texture", "picture", "cycles", "eevee", "workbench", "4k", "blend"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- the library generator ----------------------------------------------------------------------------


@dataclass(slots=True)
class Asset:
    """What the ingest pipeline would hand to ``store.write_asset`` for one file."""

    facts: Any  # store.FileFacts
    description: Any  # describe.Description
    extraction: Any  # Extraction
    base: int  # the base asset this one varies (its vector's centre)
    name_trigrams: list[str]


class Library:
    """Deterministic synthetic studio assets: asset ``i`` is a variant of base asset ``i % base``."""

    def __init__(self, base: int, seed: int = 7) -> None:
        self.base, self.seed = base, seed
        self._exts = list(EXTENSIONS)
        self._weights = [EXTENSIONS[e] for e in self._exts]
        self._seen: dict[str, int] = {}

    def asset(self, i: int) -> Asset:
        from cgchat.ingest import store
        from cgchat.ingest.classify import asset_type_of, mime_type_of
        from cgchat.ingest.describe import describe
        from cgchat.tokens import trigrams

        b = i % self.base
        spec = random.Random(self.seed * 1_000_003 + b)  # what the asset is: kept by all its variants
        var = random.Random(self.seed * 7_919 + i * 104_729 + 1)  # where and which version: per asset
        ext = spec.choices(self._exts, self._weights)[0]
        subject, descriptor = spec.choice(SUBJECTS), spec.choice(DESCRIPTORS)
        shot_layout = spec.random() < 0.7
        k = i // self.base  # which variant of its base: project and version follow from it, so no two collide
        project = PROJECTS[(b + k) % len(PROJECTS)]
        version = f"v{(k // len(PROJECTS) + b) % 30 + 1:03d}"
        if shot_layout:
            seq = f"sq{var.randint(1, 30) * 10:03d}"
            shot = f"sh{var.randint(1, 200) * 10:04d}"
            dept = spec.choice(SHOT_DEPTS)
            folders = [project, "seq", seq, shot, dept, var.choice(["publish", "work"])]
            stem = f"{shot}_{subject}_{descriptor}_{version}"
        else:
            dept = spec.choice(ASSET_DEPTS)
            folders = [project, "assets", spec.choice(ASSET_KINDS), subject, dept]
            part = spec.choice(TEXTURE_MAPS) if ext in ("exr", "png", "jpg", "tif") else descriptor
            stem = f"{subject}_{part}_{version}"
        if ext in ("exr", "png") and shot_layout and spec.random() < 0.6:
            stem += f".{var.randint(1001, 1240):04d}"  # a frame of a render sequence
        path = ROOT.joinpath(*folders, f"{stem}.{ext}")
        if self._seen.setdefault(str(path), i) != i:  # two bases that happen to share a path: keep both
            path = ROOT.joinpath(*folders, f"{stem}_alt{i}.{ext}")
        asset_type = asset_type_of(path)
        extraction = _extraction(asset_type, ext, spec, var, subject, descriptor)
        description = describe(path, ROOT, asset_type, extraction.text, extraction.body)
        size = var.randint(20_000, 900_000_000)
        facts = store.FileFacts(
            path=str(path), name=path.name, extension=ext, size_bytes=size, mtime_ns=1_700_000_000_000_000_000 + i,
            sha256=hashlib.sha256(str(path).encode()).hexdigest(), mime_type=mime_type_of(path), asset_type=asset_type,
        )
        return Asset(facts, description, extraction, b, trigrams(path.stem))

    def assets(self, start: int, stop: int) -> Iterator[Asset]:
        for i in range(start, stop):
            yield self.asset(i)


def _extraction(asset_type: str, ext: str, spec: random.Random, var: random.Random, subject: str,
                descriptor: str) -> Any:
    """Metadata, phrases and type row as cgchat's extractors write them for such a file."""
    from cgchat.ingest.extractors.base import Extraction

    w, h = spec.choice(RESOLUTIONS)
    if asset_type == "image":
        fmt = {"exr": "OpenEXR", "png": "PNG", "jpg": "JPEG", "tif": "TIFF", "hdr": "HDR"}[ext]
        depth = {"exr": 32, "hdr": 32, "tif": 16}.get(ext, 8)
        alpha = ext in ("exr", "png") and spec.random() < 0.5
        info = {"width": w, "height": h, "mode": "RGBA" if alpha else "RGB", "channels": 4 if alpha else 3,
                "format": fmt, "bit_depth": depth, "has_alpha": alpha}
        text = [f"{fmt} image {w}x{h}", ", ".join(p for p in ("with alpha transparency" if alpha else "",
                                                              f"{depth}-bit" if depth >= 16 else "") if p)]
        if ext == "exr":
            text += ["layers: beauty, diffuse, specular, emission, Z", "compression ZIP"]
        row = {k: info[k] for k in ("width", "height", "mode", "channels", "format", "bit_depth")}
        return Extraction(metadata={"image": info}, text=[t for t in text if t], type_row=row)
    if asset_type == "video":
        codec, codec_long = spec.choice(CODECS)
        fps = spec.choice([24.0, 25.0, 30.0, 23.976])
        duration = round(spec.uniform(2, 120) * var.uniform(0.8, 1.2), 3)
        audio = spec.random() < 0.3
        info = {"duration_s": duration, "fps": fps, "codec": codec, "codec_long": codec_long, "width": w, "height": h,
                "frame_count": int(duration * fps), "audio_streams": int(audio)}
        text = [f"{codec_long} video {w}x{h}", f"{fps:g} fps", f"{duration:.1f} seconds",
                "with audio" if audio else "no audio"]
        row = {k: info[k] for k in ("duration_s", "fps", "codec", "width", "height", "frame_count")}
        return Extraction(metadata={"video": info}, text=text, type_row=row)
    if asset_type == "blend":
        engine, engine_name, _ = spec.choices(ENGINES, [e[2] for e in ENGINES])[0]
        start = 1001
        end = start + spec.randint(24, 240) + var.randint(0, 24)
        fps = spec.choice([24.0, 25.0, 30.0])
        version = spec.choice(["3.6.5", "4.1.1", "4.2.0", "4.3.2"])
        cap = subject.capitalize()
        objects = [{"name": n, "type": t} for n, t in [(f"{cap}_Body", "MESH"), (f"{cap}_Rig", "ARMATURE"),
                                                       ("Camera", "CAMERA"), ("Key_Light", "LIGHT"),
                                                       (f"{cap}_{descriptor.capitalize()}", "MESH")][: spec.randint(3, 5)]]
        materials = [f"{subject}_{m}" for m in spec.sample(["skin", "metal", "cloth", "eyes", "base", "glass"], 2)]
        textures = [f"{subject}_{m}_v{spec.randint(1, 9):03d}.png" for m in spec.sample(TEXTURE_MAPS, 2)]
        row = {"render_engine": engine, "resolution_x": w, "resolution_y": h, "resolution_percentage": 100,
               "frame_start": start, "frame_end": end, "fps": fps, "blender_version": version, "compression": "none",
               "scene_names": ["Scene"], "objects": objects, "materials": materials, "has_preview": False}
        text = [f"{engine_name} render", f"{w}x{h}", f"frames {start}-{end}", f"{fps:g} fps", f"Blender {version}",
                "camera: Camera", "objects: " + ", ".join(o["name"] for o in objects),
                "object types: " + ", ".join(sorted({o["type"].lower() for o in objects})),
                "materials: " + ", ".join(materials), "textures: " + ", ".join(textures)]
        return Extraction(metadata={"blend": {**row, "has_preview": False}}, text=text, type_row=row)
    if asset_type == "model":
        fmt = {"fbx": "FBX", "glb": "glTF", "usd": "USD", "abc": "Alembic", "obj": "OBJ"}[ext]
        meshes = [f"{subject}_{p}" for p in spec.sample(["body", "head", "base", "detail", "lod0", "lod1"], 3)]
        faces = spec.randint(500, 2_000_000)
        row = {"format": fmt, "mesh_count": len(meshes), "face_count": faces, "vertex_count": faces // 2 + 3,
               "material_count": 2, "node_count": len(meshes) + 1}
        text = [f"{fmt} 3D model", "meshes: " + ", ".join(meshes), f"{faces} faces", "exported by Blender 4.1"]
        return Extraction(metadata={"model": row}, text=text, type_row=row)
    if asset_type == "document":
        body = " ".join(f"{subject} {descriptor}: {spec.choice(NOTES)}." for _ in range(spec.randint(2, 6)))
        return Extraction(metadata={"document": {"chars": len(body)}}, text=[f"{ext} text, {len(body)} characters"],
                          body=body)
    return Extraction()


def base_vectors(library: Library, encoder: Any) -> np.ndarray:
    """The real text encoder's vectors of the base assets' descriptions (cached on disk by content)."""
    return _encoded([library.asset(b).description.text for b in range(library.base)], encoder)


def variant_deltas(library: Library, encoder: Any, base: np.ndarray, n: int) -> np.ndarray:
    """Real differences (encoder vector of a variant's description - its base's vector) for ``n`` variants:
    what another project, sequence, shot and version do to a description's vector. Measured on this
    library: cosine(variant, base) 0.87 on average, and the differences are low-dimensional (20 principal
    directions hold ~77 % of their variance), which isotropic gaussian noise is not."""
    rng = np.random.default_rng(library.seed)
    bases = rng.integers(0, library.base, n)
    ids = bases + library.base * rng.integers(1, 250, n)
    return _encoded([library.asset(int(i)).description.text for i in ids], encoder) - base[bases]


def _encoded(texts: list[str], encoder: Any) -> np.ndarray:
    key = hashlib.sha256(("\n".join(texts) + encoder.model_id).encode()).hexdigest()[:16]
    cached = CACHE / f"search_scale_{key}.npy"
    if cached.exists():
        return np.load(cached)
    t = time.perf_counter()
    vectors = encoder.encode(texts, batch_size=32)
    log(f"  encoded {len(texts)} descriptions in {time.perf_counter() - t:.0f} s")
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(cached, vectors)
    return vectors


@dataclass(slots=True)
class VectorModel:
    """Asset i's vector: its base asset's encoder vector plus a variation, renormalised. The base assets
    themselves keep their encoder vector."""

    base: np.ndarray
    deltas: np.ndarray | None  # real variant differences (one drawn per asset), or None: gaussian noise only
    noise: float  # per-dimension std of gaussian noise added on top
    seed: int

    def vectors(self, ids: range) -> np.ndarray:
        """``ids`` is one CHUNK-aligned chunk: the variation is drawn per chunk, so any loader gets the same."""
        assert ids.start % CHUNK == 0 and len(ids) <= CHUNK, ids
        idx = np.array(ids)
        rng = np.random.default_rng([self.seed, ids.start])
        out = self.base[idx % len(self.base)]
        if self.deltas is not None:
            out = out + self.deltas[rng.integers(0, len(self.deltas), len(idx))]
        out = out + rng.standard_normal(out.shape, dtype=np.float32) * self.noise
        out[idx < len(self.base)] = self.base[idx[idx < len(self.base)]]
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def vector_model(library: Library, encoder: Any, args: argparse.Namespace) -> VectorModel:
    base = base_vectors(library, encoder)
    deltas = variant_deltas(library, encoder, base, args.deltas) if args.variation == "deltas" else None
    return VectorModel(base, deltas, args.noise, library.seed)


# -- bulk load ------------------------------------------------------------------------------------------

_STAGE = """CREATE UNLOGGED TABLE bench_stage (
    id bigint, path text, name text, extension text, size_bytes bigint, mtime_ns bigint, sha256 text,
    mime_type text, asset_type text, description text, metadata_json jsonb, metadata_embedding vector(384),
    embedding_model text, name_text text, path_text text, meta_text text, body_text text,
    name_trigrams text[], tokens text[], visual_status text)"""
_STAGE_TYPES = ["int8", "text", "text", "text", "int8", "int8", "text", "text", "text", "text", "jsonb", "vector",
                "text", "text", "text", "text", "text", "text[]", "text[]", "text"]


def write_path_tsv() -> str:
    """The write path's search_tsv expression (store._UPSERT_FILE), over the staging table's columns."""
    from cgchat.ingest import store

    m = re.search(r"setweight\(to_tsvector\(.*?'D'\)", store._UPSERT_FILE, re.DOTALL)
    if not m:
        raise RuntimeError("store._UPSERT_FILE no longer computes search_tsv with setweight(...): update the bench")
    return re.sub(r"%\((\w+)\)s", r"s.\1", m.group(0))


def stage_row(asset: Asset, asset_id: int, vector: np.ndarray, model_id: str) -> tuple:
    """The values write_asset binds for this asset, in the staging table's column order."""
    from cgchat.ingest import store

    d, f = asset.description, asset.facts
    visual_status = store.visual_status_of(f.asset_type, asset.extraction)
    metadata = store.clean({**asset.extraction.metadata, "path_info": d.path_info})
    if visual_status == "no_picture":
        metadata["visual"] = store.NO_PREVIEW_NOTE
    return (asset_id, f.path, f.name, f.extension, f.size_bytes, f.mtime_ns, f.sha256, f.mime_type, f.asset_type,
            store.clean(d.text), metadata, vector, model_id, store.clean(d.name_text), store.clean(d.path_text),
            store.clean(d.meta_text), store.clean(d.body_text), asset.name_trigrams, d.tokens, visual_status)


def drop_indexes(conn: Any, tables: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """Drop the secondary indexes (and the keyword postings' primary key) of ``tables``; return
    (table, name, definition) to rebuild them after the load exactly as the migrations define them."""
    rows = conn.execute(
        """SELECT i.tablename, i.indexname, i.indexdef, c.conname, pg_get_constraintdef(c.oid) AS condef
           FROM pg_indexes i LEFT JOIN pg_constraint c ON c.conname = i.indexname
           WHERE i.schemaname = 'public' AND i.tablename = ANY(%s)
             AND (c.conname IS NULL AND i.indexdef NOT LIKE '%%UNIQUE%%' OR i.tablename = 'keyword_postings')
           ORDER BY i.tablename, i.indexname""", (list(tables),)).fetchall()
    out = []
    with conn.transaction():
        for r in rows:
            if r["conname"]:
                conn.execute(f'ALTER TABLE {r["tablename"]} DROP CONSTRAINT {r["conname"]}')
                out.append((r["tablename"], r["indexname"],
                            f'ALTER TABLE {r["tablename"]} ADD CONSTRAINT {r["conname"]} {r["condef"]}'))
            else:
                conn.execute(f'DROP INDEX {r["indexname"]}')
                out.append((r["tablename"], r["indexname"], r["indexdef"]))
    return out


def bulk_load(conn: Any, library: Library, n: int, vecs: VectorModel, model_id: str, chunk: int = CHUNK) -> dict[str, float]:
    """files + type rows for assets 0..n-1 by COPY; search_tsv computed by the write path's expression."""
    from psycopg import sql
    from psycopg.types.json import Jsonb

    from cgchat.ingest import store

    tsv = write_path_tsv()
    timing = {"generate": 0.0, "copy": 0.0, "insert": 0.0}
    conn.execute("DROP TABLE IF EXISTS bench_stage")
    conn.execute(_STAGE)
    conn.commit()
    for start in range(0, n, chunk):
        ids = range(start, min(n, start + chunk))
        t = time.perf_counter()
        assets = list(library.assets(ids.start, ids.stop))
        vectors = vecs.vectors(ids)
        rows = [stage_row(a, i + 1, v, model_id) for a, i, v in zip(assets, ids, vectors, strict=True)]
        timing["generate"] += time.perf_counter() - t
        t = time.perf_counter()
        with conn.transaction():
            with conn.cursor().copy("COPY bench_stage FROM STDIN WITH (FORMAT BINARY)") as copy:
                copy.set_types(_STAGE_TYPES)
                for row in rows:
                    copy.write_row(row)
            timing["copy"] += time.perf_counter() - t
            t = time.perf_counter()
            conn.execute(f"""INSERT INTO files (id, path, name, extension, size_bytes, mtime_ns, sha256, mime_type,
                                asset_type, status, description, metadata_json, metadata_embedding, embedding_model,
                                search_tsv, name_trigrams, tokens, visual_status, indexed_at, missing_since)
                             SELECT s.id, s.path, s.name, s.extension, s.size_bytes, s.mtime_ns, s.sha256,
                                s.mime_type, s.asset_type, 'indexed', s.description, s.metadata_json,
                                s.metadata_embedding, s.embedding_model, {tsv}, s.name_trigrams, s.tokens,
                                s.visual_status, now(), NULL
                             FROM bench_stage s""")
            conn.execute("TRUNCATE bench_stage")
            by_type: dict[str, list[tuple[int, dict]]] = {}
            for a, i in zip(assets, ids, strict=True):
                if a.facts.asset_type in store.TYPE_TABLES:
                    by_type.setdefault(a.facts.asset_type, []).append((i + 1, a.extraction.type_row))
            for asset_type, items in by_type.items():
                table, allowed = store.TYPE_TABLES[asset_type]
                columns = [c for c in allowed if c in items[0][1]]
                query = sql.SQL("COPY {} ({}) FROM STDIN").format(
                    sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, ["file_id", *columns])))
                with conn.cursor().copy(query) as copy:
                    for file_id, row in items:
                        copy.write_row([file_id, *(Jsonb(row[c]) if c in store._JSON_COLUMNS else row[c]
                                                   for c in columns)])
            timing["insert"] += time.perf_counter() - t
        if (start // chunk) % 10 == 9:
            log(f"    {ids.stop} rows")
    conn.execute("DROP TABLE bench_stage")
    conn.execute("SELECT setval(pg_get_serial_sequence('files', 'id'), %s)", (n,))
    conn.commit()
    return timing


def keyword_backfill(conn: Any) -> float:
    """Migration 006's own set-based backfill (its statements after '-- Backfill'), on an emptied index."""
    text = (REPO / "src/cgchat/db/migrations/006_keyword_bm25.sql").read_text()
    marker = text.find("-- Backfill")
    if marker == -1:
        raise RuntimeError("migration 006 has no '-- Backfill' section any more: update the bench")
    body = "\n".join(line for line in text[marker:].splitlines() if not line.lstrip().startswith("--"))
    statements = [s.strip() for s in body.split(";") if s.strip()]
    t = time.perf_counter()
    with conn.transaction():
        conn.execute("DELETE FROM keyword_postings")
        conn.execute("DELETE FROM keyword_terms")
        conn.execute("DELETE FROM keyword_stats")
        for statement in statements:
            conn.execute(statement)
    return time.perf_counter() - t


def rebuild_indexes(conn: Any, dropped: list[tuple[str, str, str]], maintenance_mem: str) -> list[tuple[str, float]]:
    conn.execute(f"SET maintenance_work_mem = '{maintenance_mem}'")
    out = []
    for _table, name, definition in dropped:
        t = time.perf_counter()
        with conn.transaction():
            conn.execute(definition)
        out.append((name, time.perf_counter() - t))
        log(f"    {name}: {out[-1][1]:.1f} s")
    conn.execute("RESET maintenance_work_mem")
    conn.commit()
    return out


def build_database(conn: Any, library: Library, n: int, vecs: VectorModel, model_id: str, maintenance_mem: str,
                   defer: tuple[str, ...] = ()) -> dict[str, Any]:
    """Load n assets, backfill BM25, rebuild every index (timed) but those in ``defer``, VACUUM ANALYZE."""
    dropped = drop_indexes(conn, ("files", "keyword_postings"))
    deferred = [d for d in dropped if d[1] in defer]
    dropped = [d for d in dropped if d[1] not in defer]
    t = time.perf_counter()
    timing = bulk_load(conn, library, n, vecs, model_id)
    load_s = time.perf_counter() - t
    log(f"  loaded {n} files in {load_s:.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in timing.items())})")
    backfill_s = keyword_backfill(conn)
    log(f"  BM25 backfill (migration 006) in {backfill_s:.0f} s")
    builds = rebuild_indexes(conn, dropped, maintenance_mem)
    conn.autocommit = True
    t = time.perf_counter()
    conn.execute("VACUUM ANALYZE")
    vacuum_s = time.perf_counter() - t
    conn.autocommit = False
    return {"load_s": load_s, "load_split": timing, "backfill_s": backfill_s, "builds": builds, "vacuum_s": vacuum_s,
            "deferred": deferred}


def write_through_store(conn: Any, library: Library, n: int, vecs: VectorModel, model_id: str) -> None:
    """The same assets through the real write path, one transaction each (for --verify)."""
    from cgchat.ingest import store

    for start in range(0, n, CHUNK):
        ids = range(start, min(n, start + CHUNK))
        vectors = vecs.vectors(ids)
        for asset, vector in zip(library.assets(ids.start, ids.stop), vectors, strict=True):
            store.write_asset(conn, asset.facts, asset.description, asset.extraction, vector, model_id,
                              asset.name_trigrams)


def sizes(conn: Any) -> dict[str, int]:
    rows = conn.execute(
        """SELECT c.relname, pg_relation_size(c.oid) AS bytes FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i')
             AND (c.relname LIKE 'files%%' OR c.relname LIKE 'keyword%%')""").fetchall()
    out = {r["relname"]: r["bytes"] for r in rows}
    out["files (with TOAST)"] = conn.execute("SELECT pg_table_size('files') AS b").fetchone()["b"]
    return out


# -- queries --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Query:
    text: str
    mode: str
    filters: Any  # Filters
    kind: str  # the row of the report it counts in


def make_queries(n: int, seed: int = 11) -> dict[str, list[Query]]:
    """Natural-language, keyword (IDs and names) and filtered queries from the library's vocabulary."""
    from cgchat.search.filters import Filters

    rng = random.Random(seed)
    nl_templates = ["{s} {d}", "{d} shot of the {s}", "the {s} {d} from {p}", "{s} {m} map", "{s} {dept} {d}",
                    "{d} {s} for {p}", "where is the {s} {dept} for {p}", "{s} {d} {sq}"]
    kw_templates = ["{sq} {sh} {dept}", "{s}_{d}", "{sh} {s} {v}", "{p} {s} {dept}", "{s} {m} {v}", "{sh} {d}"]
    filter_choices = [Filters(asset_types=["video"]), Filters(asset_types=["image"]), Filters(asset_types=["blend"]),
                      Filters(engines=["cycles"]), Filters(engines=["eevee"]), Filters(resolution="4k"),
                      Filters(resolution="1080p"), Filters(min_duration_s=30), Filters(max_duration_s=10),
                      Filters(asset_types=["image"], resolution="4k"), Filters(engines=["eevee"], resolution="1080p"),
                      Filters(min_duration_s=10, resolution="4k"), Filters(extensions=["exr"])]

    def fill(template: str) -> str:
        return template.format(s=rng.choice(SUBJECTS), d=rng.choice(DESCRIPTORS), p=rng.choice(PROJECTS),
                               m=rng.choice(TEXTURE_MAPS), dept=rng.choice(SHOT_DEPTS + ASSET_DEPTS),
                               sq=f"sq{rng.randint(1, 30) * 10:03d}", sh=f"sh{rng.randint(1, 200) * 10:04d}",
                               v=f"v{rng.randint(1, 30):03d}")

    natural = [fill(rng.choice(nl_templates)) for _ in range(n)]
    keyword = [fill(rng.choice(kw_templates)) for _ in range(n)]
    natural = [q if not (set(q.split()) & NOT_FILTER_WORDS) else q + " asset" for q in natural]
    plain = Filters()
    return {
        "semantic": [Query(q, "semantic", plain, "semantic") for q in natural],
        "keyword": [Query(q, "keyword", plain, "keyword") for q in keyword],
        "hybrid": [Query(q, "hybrid", plain, "hybrid") for q in natural],
        "hybrid (keyword-style)": [Query(q, "hybrid", plain, "hybrid (keyword-style)") for q in keyword],
        "semantic + filter": [Query(q, "semantic", rng.choice(filter_choices), "semantic + filter") for q in natural],
        "hybrid + filter": [Query(q, "hybrid", rng.choice(filter_choices), "hybrid + filter") for q in natural],
    }


def run_query(conn: Any, q: Query, encoder: Any, limit: int = 10) -> list[Any]:
    from cgchat.search.engine import SearchRequest, search

    return search(conn, SearchRequest(query=q.text, mode=q.mode, filters=q.filters, limit=limit,
                                      use_visual=False), encoder).results


def time_queries(conn: Any, queries: list[Query], encoder: Any) -> dict[str, float]:
    """p50/p95 of search() end to end (encoding the query included), and of the encoding alone."""
    for q in queries[:10]:
        run_query(conn, q, encoder)  # warm-up
    samples, empty = [], 0
    for q in queries:
        t = time.perf_counter()
        results = run_query(conn, q, encoder)
        samples.append((time.perf_counter() - t) * 1000)
        empty += not results
    s = sorted(samples)
    return {"p50": statistics.median(s), "p95": s[max(0, round(len(s) * 0.95) - 1)], "max": s[-1],
            "empty": empty, "n": len(s)}


def exact(conn: Any) -> Any:
    """A context in which the planner cannot use the HNSW index (search() then runs an exact scan)."""
    from contextlib import contextmanager

    @contextmanager
    def ctx() -> Iterator[None]:
        conn.execute("SET enable_indexscan = off")
        conn.commit()
        try:
            yield
        finally:
            conn.execute("RESET enable_indexscan")
            conn.commit()

    return ctx()


def result_ids(conn: Any, queries: list[Query], encoder: Any) -> tuple[list[list[int]], float]:
    t = time.perf_counter()
    ids = [[r.id for r in run_query(conn, q, encoder)] for q in queries]
    return ids, (time.perf_counter() - t) / len(queries) * 1000


def recall(approx: list[list[int]], truth: list[list[int]]) -> dict[str, float]:
    """Mean recall@10 of the HNSW results against the exact ones; also how many results each returned (a
    filtered HNSW scan can come back short: pgvector 0.6 filters the ef_search nearest, it does not search on)."""
    hits = [len(set(a) & set(e)) / len(e) for a, e in zip(approx, truth, strict=True) if e]
    return {"recall": statistics.mean(hits) if hits else float("nan"),
            "min": min(hits) if hits else float("nan"),
            "approx_results": statistics.mean(len(a) for a in approx),
            "exact_results": statistics.mean(len(e) for e in truth), "n": len(hits)}


def explain(conn: Any, q: Query, encoder: Any) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the SQL search() sends for this query, built by the engine's own parts."""
    from cgchat.search import engine
    from cgchat.search import filters as filters_mod
    from cgchat.search.query_parser import parse_filters
    from cgchat.search.retrievers import keyword_cte, keyword_params, semantic_cte, semantic_params
    from cgchat.settings import get_settings

    settings = get_settings()
    applied = parse_filters(q.text).merged(q.filters)
    where, params = filters_mod.to_sql(applied)
    params.update(k=max(settings.search_candidates, 10), limit=10, rrf_k=settings.rrf_k,
                  **{f"rrf_w_{a}": w for a, w in engine.RRF_WEIGHTS.items()})
    ctes = []
    if q.mode in ("hybrid", "semantic"):
        params.update(semantic_params(encoder.encode_one(q.text), encoder.model_id))
        ctes.append(("semantic", semantic_cte(where)))
    if q.mode in ("hybrid", "keyword"):
        params.update(keyword_params(q.text))
        ctes.append(("keyword", keyword_cte(where)))
    from psycopg import sql

    query = sql.SQL("EXPLAIN (ANALYZE, BUFFERS) ") + engine._fused_query(ctes)
    with conn.transaction():
        ef = settings.hnsw_ef_search
        if not applied.is_empty():
            ef = max(ef, getattr(engine, "FILTERED_EF_SEARCH", ef))
        conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(ef),))
        plan = "\n".join(r["QUERY PLAN"] for r in conn.execute(query, params).fetchall())
    return plan


# -- one size -------------------------------------------------------------------------------------------


def run_size(server_url: str, n: int, args: argparse.Namespace, library: Library, vecs: VectorModel,
             encoder: Any) -> dict[str, Any]:
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    from cgchat.db import migrate
    from cgchat.db.connection import open_connection
    from cgchat.search import engine
    from cgchat.settings import get_settings

    db = f"search_scale_{n}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(db)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    url = make_conninfo(server_url, dbname=db)
    migrate(url)
    out: dict[str, Any] = {"n": n, "load_before": os.getloadavg()}
    with open_connection(url) as conn:
        out["server_mwm"] = conn.execute("SHOW maintenance_work_mem").fetchone()["maintenance_work_mem"]
        out["workers"] = conn.execute("SHOW max_parallel_maintenance_workers").fetchone()[
            "max_parallel_maintenance_workers"]
        out["shared_buffers"] = conn.execute("SHOW shared_buffers").fetchone()["shared_buffers"]
        log(f"{n} assets: loading (server maintenance_work_mem {out['server_mwm']}, build with {args.maintenance_mem})")
        out["build"] = build_database(conn, library, n, vecs, encoder.model_id, args.maintenance_mem,
                                      defer=("files_embedding_hnsw",))
        # The exact answers first, while no HNSW index exists: the same search(), the same plans for
        # everything else (the keyword part breaks BM25 ties by plan order), only the k-NN is exact.
        queries = make_queries(args.queries)
        recall_kinds = ("semantic", "hybrid", "semantic + filter", "hybrid + filter")
        truth = {}
        for kind in recall_kinds:
            truth[kind], exact_ms = result_ids(conn, queries[kind][: args.recall_queries], encoder)
            log(f"  exact {kind}: {exact_ms:.0f} ms/query")
            out.setdefault("exact_ms", {})[kind] = exact_ms
        out["build"]["builds"] += rebuild_indexes(conn, out["build"]["deferred"], args.maintenance_mem)
        conn.autocommit = True
        conn.execute("ANALYZE files")
        conn.autocommit = False
        out["sizes"] = sizes(conn)
        out["postings"] = conn.execute("SELECT count(*) AS c FROM keyword_postings").fetchone()["c"]
        out["terms"] = conn.execute("SELECT count(*) AS c FROM keyword_terms").fetchone()["c"]
        out["ef_search"] = str(get_settings().hnsw_ef_search)
        if getattr(engine, "FILTERED_EF_SEARCH", None):
            out["ef_search"] += f" ({max(get_settings().hnsw_ef_search, engine.FILTERED_EF_SEARCH)} with a filter)"
        out["candidates"] = get_settings().search_candidates
        out["latency"] = {}
        out["load_during"] = []
        for kind, qs in queries.items():
            out["latency"][kind] = time_queries(conn, qs, encoder)
            out["load_during"].append(os.getloadavg()[0])
            lat = out["latency"][kind]
            log(f"  {kind:24s} p50 {lat['p50']:6.1f} ms  p95 {lat['p95']:6.1f} ms  (empty {lat['empty']})")
        out["encode_ms"] = statistics.median(_timed_ms(lambda q=q: encoder.encode_one(q.text))
                                             for q in queries["semantic"][:50])
        out["recall"] = {}
        for kind in recall_kinds:
            out["recall"][kind] = recall(result_ids(conn, queries[kind][: args.recall_queries], encoder)[0],
                                         truth[kind])
            r = out["recall"][kind]
            log(f"  recall@10 {kind:20s} {r['recall']:.3f} (min {r['min']:.2f}; results {r['approx_results']:.1f} "
                f"vs exact {r['exact_results']:.1f})")
        out["load_during"].append(os.getloadavg()[0])
        slowest = {kind: max(qs[: 40], key=lambda q: _timed_ms(lambda q=q: run_query(conn, q, encoder)))
                   for kind, qs in queries.items() if kind in ("hybrid", "keyword", "hybrid + filter")}
        out["plans"] = {kind: (q, explain(conn, q, encoder)) for kind, q in slowest.items()}
    if not args.keep:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(db)))
    return out


def _timed_ms(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def ef_sweep(server_url: str, n: int, args: argparse.Namespace, vecs: VectorModel, encoder: Any) -> str:
    """recall@10 and latency of the bare k-NN (the semantic CTE's ORDER BY ... LIMIT k) against hnsw.ef_search,
    on the same n vectors in a vectors-only table with migration 001's HNSW definition; exact by numpy."""
    from pgvector.psycopg import register_vector
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    db = f"search_scale_ef_{n}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(db)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    lines = [(f"hnsw.ef_search sweep, {n:,} vectors, k-NN LIMIT {args.candidates_k} (first 10 kept), "
             f"{args.recall_queries} natural-language queries:")]
    with psycopg.connect(make_conninfo(server_url, dbname=db), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(conn)
        conn.execute("CREATE TABLE v (id bigint, e vector(384))")
        all_vectors = np.empty((n, vecs.base.shape[1]), dtype=np.float32)
        for start in range(0, n, CHUNK):
            ids = range(start, min(n, start + CHUNK))
            all_vectors[ids.start:ids.stop] = vecs.vectors(ids)
            with conn.cursor().copy("COPY v FROM STDIN WITH (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "vector"])
                for i in ids:
                    copy.write_row((i, all_vectors[i]))
        conn.execute(f"SET maintenance_work_mem = '{args.maintenance_mem}'")
        t = time.perf_counter()
        with_ = f" WITH ({args.hnsw_with})" if args.hnsw_with else ""
        conn.execute(f"CREATE INDEX ON v USING hnsw (e vector_cosine_ops){with_}")
        lines.append(f"HNSW build{with_ or ' (pgvector defaults m 16, ef_construction 64)'} "
                     f"{time.perf_counter() - t:.0f} s.")
        conn.execute("VACUUM ANALYZE v")
        texts = [q.text for q in make_queries(args.recall_queries)["semantic"]]
        qv = encoder.encode(texts)
        truth = [set(np.argsort(-(all_vectors @ q))[:10].tolist()) for q in qv]
        for ef in (100, 200, 400, 1000):
            conn.execute(f"SET hnsw.ef_search = {ef}")
            got, ms = [], []
            for q in qv:
                t = time.perf_counter()
                rows = conn.execute("SELECT id FROM v ORDER BY e <=> %s LIMIT %s", (q, args.candidates_k)).fetchall()
                ms.append((time.perf_counter() - t) * 1000)
                got.append({r[0] for r in rows[:10]})
            rec = [len(g & t) / 10 for g, t in zip(got, truth, strict=True)]
            ms.sort()
            lines.append(f"ef_search {ef}: recall@10 {statistics.mean(rec):.3f} (worst {min(rec):.1f}), k-NN "
                         f"p50 {statistics.median(ms):.1f} ms, p95 {ms[max(0, round(len(ms) * 0.95) - 1)]:.1f} ms")
            log(lines[-1])
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(db)))
    return "\n".join(lines)


# -- verify: bulk rows == write_asset rows --------------------------------------------------------------


_COMPARE = {
    "files": """SELECT path, name, extension, size_bytes, mtime_ns, sha256, mime_type, asset_type, status, description,
                       metadata_json::text, metadata_embedding::text, embedding_model, search_tsv::text,
                       name_trigrams, tokens, visual_status FROM files ORDER BY path""",
    "types": """SELECT f.path, to_jsonb(i) - 'file_id', to_jsonb(v) - 'file_id', to_jsonb(b) - 'file_id',
                       to_jsonb(m) - 'file_id'
                FROM files f LEFT JOIN images i ON i.file_id = f.id LEFT JOIN videos v ON v.file_id = f.id
                LEFT JOIN blend_files b ON b.file_id = f.id LEFT JOIN models_3d m ON m.file_id = f.id ORDER BY f.path""",
    # impact is left out: the write path computes it at the average length of its moment, the backfill at the
    # final one; it only orders a term's postings (all of them are read at this size), the score uses tf and dl.
    "postings": "SELECT f.path, p.term, p.tf, p.dl FROM keyword_postings p JOIN files f ON f.id = p.file_id "
                "ORDER BY 1, 2",
    "terms": "SELECT term, df FROM keyword_terms WHERE df > 0 ORDER BY term",
    "stats": "SELECT n_docs, round(total_length::numeric, 3), k1, b FROM keyword_stats",
}


def verify(server_url: str, n: int, args: argparse.Namespace, library: Library, vecs: VectorModel,
           encoder: Any) -> dict[str, Any]:
    """Two databases, the same n assets: bulk-loaded here, written by store.write_asset there; the same rows and
    the same search results (HNSW disabled in both: the two graphs are built differently, the data is the test)."""
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    from cgchat.db import migrate
    from cgchat.db.connection import open_connection

    urls = {}
    for name in ("bulk", "store"):
        db = f"search_scale_verify_{name}"
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(db)))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
        urls[name] = make_conninfo(server_url, dbname=db)
        migrate(urls[name])
    t = time.perf_counter()
    with open_connection(urls["bulk"]) as conn:
        build_database(conn, library, n, vecs, encoder.model_id, args.maintenance_mem)
    bulk_s = time.perf_counter() - t
    t = time.perf_counter()
    with open_connection(urls["store"]) as conn:
        write_through_store(conn, library, n, vecs, encoder.model_id)
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    store_s = time.perf_counter() - t
    log(f"verify: {n} assets bulk-loaded in {bulk_s:.1f} s, written by store.write_asset in {store_s:.1f} s")
    tables: dict[str, dict[str, Any]] = {"bulk": {}, "store": {}}
    results: dict[str, list] = {"bulk": [], "store": []}
    queries = [q for qs in make_queries(args.verify_queries).values() for q in qs]
    for name, url in urls.items():
        with open_connection(url) as conn:
            for key, query in _COMPARE.items():
                tables[name][key] = [tuple(r.values()) for r in conn.execute(query).fetchall()]
            with exact(conn):
                for q in queries:
                    results[name].append([(r.path, round(r.score, 4), sorted(r.matched_by))
                                          for r in run_query(conn, q, encoder)])
    mismatches = [key for key in _COMPARE if tables["bulk"][key] != tables["store"][key]]
    differing = [(q.kind, q.text, a[:3], b[:3]) for q, a, b in zip(queries, results["bulk"], results["store"],
                                                                    strict=True) if a != b]
    for key in mismatches:
        diff = next((a, b) for a, b in zip(tables["bulk"][key], tables["store"][key], strict=False) if a != b)
        log(f"  {key} differ, first: {diff}")
    for d in differing[:5]:
        log(f"  results differ: {d}")
    with psycopg.connect(server_url, autocommit=True) as admin:
        for name in urls:
            admin.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(f"search_scale_verify_{name}")))
    report = {"rows": n, "queries": len(queries), "tables_differ": mismatches, "results_differ": len(differing),
              "nonempty": sum(bool(r) for r in results["bulk"]), "bulk_s": bulk_s, "store_s": store_s}
    log(f"verify: {json.dumps(report)}")
    return report


# -- report ---------------------------------------------------------------------------------------------


def plan_excerpt(plan: str, share: float = 0.1, max_lines: int = 45) -> str:
    """The plan nodes that took at least ``share`` of the execution time (costs dropped), their conditions,
    and the totals: the full plans are in the run's output."""
    total = float(re.search(r"Execution Time: ([\d.]+)", plan).group(1))
    keep: list[str] = []
    node_kept = False
    for line in plan.splitlines():
        m = re.search(r"actual time=[\d.]+\.\.([\d.]+) rows=\d+ loops=(\d+)", line)
        if m or "(never executed)" in line:
            node_kept = bool(m) and float(m.group(1)) * int(m.group(2)) >= share * total
            if node_kept:
                keep.append(re.sub(r"  \(cost=[^)]*\)", "", line).rstrip())
        elif line.startswith(("Planning Time", "Execution")):
            keep.append(line)
        elif node_kept and re.match(r"\s+(Filter|Index Cond|Rows Removed|Heap Fetches|Hash Cond|Join Filter)", line):
            keep.append(line.rstrip())
    return "\n".join(keep[: max_lines - 2] + keep[-2:] if len(keep) > max_lines else keep)


def mb(b: int) -> str:
    return f"{b / 2**20:,.0f} MB"


def report(results: list[dict[str, Any]], args: argparse.Namespace, machine: str, command: str,
           verified: dict[str, Any] | None) -> str:
    kinds = list(results[0]["latency"])
    variation = (f"the real encoder difference of one of {args.deltas:,} re-encoded variant descriptions and their "
                 f"base (cosine variant-base 0.87 on average)" if args.variation == "deltas" else "nothing else")
    head = "| | " + " | ".join(f"{r['n']:,} assets" for r in results) + " |"
    sep = "|---" * (len(results) + 1) + "|"
    lines = [HEADING, "",
             f"Date {date.today().isoformat()} · machine: {machine} · command: `{command}`", "",
             f"cgchat's own `search(conn, SearchRequest(...))` end to end (query encoding by the real MiniLM included, "
             f"visual retriever off: no CLIP model), {args.queries} queries per row after 10 warm-up queries, "
             f"limit 10, hnsw.ef_search {results[0]['ef_search']} and {results[0]['candidates']} candidates per "
             f"retriever (cgchat's settings). Rows: {args.base:,} base assets generated like a studio library "
             f"(shot and asset folders, project/sequence/shot/department/version, frame numbers; per-type metadata "
             f"as the extractors write it) described by cgchat's `describe()` and embedded by the real text encoder; "
             f"the other rows are variants (other project, sequence, shot, version, frame) whose vector is the base "
             f"vector + {variation} + N(0, {args.noise}²) per dimension, renormalised. Loaded by COPY with the write path's "
             f"search_tsv expression, BM25 postings by migration 006's backfill, then every index rebuilt from "
             f"the migrations' definitions and VACUUM ANALYZE."
             + (f" `--verify` ({verified['rows']:,} assets, {verified['queries']} queries, exact search): bulk-loaded "
                f"rows and store.write_asset rows are identical (files, type rows, postings, terms, statistics) and "
                f"give identical results" if verified and not verified["tables_differ"]
                and not verified["results_differ"] else ""), "",
             "**Latency of search() (ms, p50 / p95)**", "", head, sep]
    for kind in kinds:
        lines.append(f"| {kind} | " + " | ".join(
            f"{r['latency'][kind]['p50']:.1f} / {r['latency'][kind]['p95']:.1f}"
            + (f" ({r['latency'][kind]['empty']} of {r['latency'][kind]['n']} empty)"
               if r["latency"][kind]["empty"] else "") for r in results) + " |")
    lines.append("| query encoding alone (p50) | " + " | ".join(f"{r['encode_ms']:.1f}" for r in results) + " |")
    lines += ["", (f"**recall@10 of HNSW against exact search**: the same search() calls ({args.recall_queries} per "
              "row) run before the HNSW index was built, so only the k-NN differs (mean, worst query; mean results "
              "returned HNSW / exact; exact search's time per query)"), "", head, sep]
    for kind in results[0]["recall"]:
        lines.append(f"| {kind} | " + " | ".join(
            f"{r['recall'][kind]['recall']:.3f} (worst {r['recall'][kind]['min']:.2f}; "
            f"{r['recall'][kind]['approx_results']:.1f} / {r['recall'][kind]['exact_results']:.1f}; "
            f"exact {r['exact_ms'][kind]:.0f} ms)" for r in results) + " |")
    lines += ["", "**Build and size**", "", head, sep,
              "| load (generate + COPY + INSERT with to_tsvector) | " + " | ".join(
                  f"{r['build']['load_s']:.0f} s" for r in results) + " |",
              "| BM25 backfill (migration 006 statements) | " + " | ".join(
                  f"{r['build']['backfill_s']:.0f} s ({r['postings']:,} postings, {r['terms']:,} terms)"
                  for r in results) + " |"]
    for name, _ in results[0]["build"]["builds"]:
        lines.append(f"| index {name} | " + " | ".join(
            f"{dict(r['build']['builds'])[name]:.1f} s, {mb(r['sizes'].get(name, 0))}" for r in results) + " |")
    for rel in ("files (with TOAST)", "keyword_postings", "keyword_terms"):
        lines.append(f"| table {rel} | " + " | ".join(mb(r["sizes"].get(rel, 0)) for r in results) + " |")
    lines.append("| VACUUM ANALYZE | " + " | ".join(f"{r['build']['vacuum_s']:.0f} s" for r in results) + " |")
    lines.append("| load average (1 min) before / during queries | " + " | ".join(
        f"{r['load_before'][0]:.1f} / {max(r['load_during']):.1f}" for r in results) + " |")
    r0 = results[0]
    lines += ["", (f"Index builds with maintenance_work_mem {args.maintenance_mem} (the embedded server's default is "
              f"{r0['server_mwm']}), max_parallel_maintenance_workers {r0['workers']}, shared_buffers "
              f"{r0['shared_buffers']}."), ""]
    for r in results:
        for kind, (q, plan) in r["plans"].items():
            lines += [(f"<details><summary>EXPLAIN (ANALYZE, BUFFERS), {r['n']:,} assets, slowest of 40 {kind} queries:"
                      f" <code>{q.text}</code> {q.filters.as_dict() or ''}</summary>"), "", "```",
                      plan_excerpt(plan), "```", "</details>", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--base", type=int, default=4000, help="Assets whose descriptions the encoder embeds.")
    parser.add_argument("--variation", choices=("deltas", "gaussian"), default="deltas",
                        help="deltas: a real variant's encoder difference per asset (+ --noise); gaussian: noise only.")
    parser.add_argument("--deltas", type=int, default=1500, help="Variant descriptions encoded for --variation deltas.")
    parser.add_argument("--noise", type=float, default=0.005,
                        help="Per-dimension std of gaussian noise on top (0.02 ~ cosine 0.93 to the base).")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--recall-queries", type=int, default=50)
    parser.add_argument("--maintenance-mem", default="2GB", help="maintenance_work_mem for the index builds.")
    parser.add_argument("--verify", action="store_true", help="Check bulk rows == store.write_asset rows, then exit.")
    parser.add_argument("--verify-rows", type=int, default=2000)
    parser.add_argument("--verify-queries", type=int, default=10, help="Queries per kind in --verify.")
    parser.add_argument("--ef-sweep", type=int, metavar="N",
                        help="Only recall@10 / latency of the bare k-NN against hnsw.ef_search on N vectors, then exit.")
    parser.add_argument("--hnsw-with", help='Index options for --ef-sweep, e.g. "m = 16, ef_construction = 128".')
    parser.add_argument("--candidates-k", type=int, default=100, help="k-NN LIMIT in --ef-sweep (search_candidates).")
    parser.add_argument("--keep", action="store_true", help="Keep the databases (and the server's data dir).")
    parser.add_argument("--write", type=Path, help="Replace this benchmark's section in a markdown file.")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO / "bench"))
    server_url = os.environ.get("DATABASE_URL")
    if not server_url:
        from workspace import embedded_workdir

        work = embedded_workdir(keep=args.keep)
        log(f"embedded PostgreSQL in {work}")

    from cgchat.db.connection import database_url
    from cgchat.db.embedded import release_embedded
    from cgchat.models.text_encoder import get_text_encoder

    os.environ.pop("CLIP_MODEL_DIR", None)
    encoder = get_text_encoder()
    library = Library(args.base)
    log(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    try:
        server_url = server_url or database_url()
        vecs = vector_model(library, encoder, args)
        verified = verify(server_url, args.verify_rows, args, library, vecs, encoder) if args.verify else None
        if args.verify:
            if verified["tables_differ"] or verified["results_differ"]:
                sys.exit(1)
            return
        if args.ef_sweep:
            print(ef_sweep(server_url, args.ef_sweep, args, vecs, encoder))
            return
        results = []
        command = "python bench/search_scale.py " + " ".join(sys.argv[1:])
        machine = (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
                   f"embedded PostgreSQL 16 + pgvector")
        for n in args.sizes:
            results.append(run_size(server_url, n, args, library, vecs, encoder))
            body = report(results, args, machine, command, None)
            print(body)
            if args.write:
                from report import write_section

                write_section(args.write, HEADING, body)
    finally:
        release_embedded()


if __name__ == "__main__":
    main()
