"""Search filters, and how they become SQL conditions applied inside each retriever.

Filtering inside the SQL (not after the top-k) means "4K Eevee .blend files" returns the best
4K Eevee files, not the 4K Eevee files that happened to be in the unfiltered top ten.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from psycopg import sql

ASSET_TYPES = ("image", "video", "blend", "model", "document", "other")
ENGINES = {"cycles": ["CYCLES"], "eevee": ["BLENDER_EEVEE", "BLENDER_EEVEE_NEXT"], "workbench": ["BLENDER_WORKBENCH"]}
RESOLUTIONS = ("8k", "6k", "5k", "4k", "2k", "1440p", "1080p", "720p", "480p")

# The resolution of any visual asset, wherever its type keeps it.
_WIDTH = sql.SQL("COALESCE(i.width, v.width, b.resolution_x)")
_HEIGHT = sql.SQL("COALESCE(i.height, v.height, b.resolution_y)")
_FPS = sql.SQL("COALESCE(v.fps, b.fps, m.fps)")


@dataclass(slots=True)
class Filters:
    asset_types: list[str] = field(default_factory=list)  # any of ASSET_TYPES; "other" = not image/video/blend
    engines: list[str] = field(default_factory=list)  # cycles | eevee | workbench
    resolution: str | None = None  # one of RESOLUTIONS, or "WxH"
    fps: float | None = None
    min_duration_s: float | None = None
    max_duration_s: float | None = None
    extensions: list[str] = field(default_factory=list)
    include_missing: bool = False

    def is_empty(self) -> bool:
        return not (self.asset_types or self.engines or self.resolution or self.fps is not None
                    or self.min_duration_s is not None or self.max_duration_s is not None or self.extensions)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, [], False)}

    def merged(self, other: Filters) -> Filters:
        """``other``'s explicit values win; list filters take ``other``'s when it has any."""
        return Filters(
            asset_types=other.asset_types or self.asset_types,
            engines=other.engines or self.engines,
            resolution=other.resolution or self.resolution,
            fps=other.fps if other.fps is not None else self.fps,
            min_duration_s=other.min_duration_s if other.min_duration_s is not None else self.min_duration_s,
            max_duration_s=other.max_duration_s if other.max_duration_s is not None else self.max_duration_s,
            extensions=other.extensions or self.extensions,
            include_missing=other.include_missing or self.include_missing,
        )


def validate(filters: Filters) -> None:
    """Raise ValueError naming the bad value and the accepted ones."""
    for t in filters.asset_types:
        if t not in ASSET_TYPES:
            raise ValueError(f"unknown asset type {t!r}; use one of {', '.join(ASSET_TYPES)}")
    for e in filters.engines:
        if e.lower() not in ENGINES:
            raise ValueError(f"unknown render engine {e!r}; use one of {', '.join(ENGINES)}")
    if filters.resolution and filters.resolution.lower() not in RESOLUTIONS and _parse_wxh(filters.resolution) is None:
        raise ValueError(f"unknown resolution {filters.resolution!r}; use WIDTHxHEIGHT or one of {', '.join(RESOLUTIONS)}")
    if filters.fps is not None and not 0 < filters.fps <= 1000:
        raise ValueError("fps must be between 0 and 1000")
    for ext in filters.extensions:
        if not ext.lstrip(".").isalnum() or len(ext) > 16:
            raise ValueError(f"bad extension {ext!r}: letters and digits only, like exr or mp4")


def to_sql(filters: Filters) -> tuple[sql.Composable, dict[str, Any]]:
    """A WHERE condition over ``files f`` (and the type tables joined as i, v, b, m) plus its parameters."""
    conds: list[sql.Composable] = []
    params: dict[str, Any] = {}
    if not filters.include_missing:
        conds.append(sql.SQL("f.status = 'indexed'"))
    if filters.asset_types:
        named = [t for t in filters.asset_types if t != "other"]
        parts = [sql.SQL("f.asset_type = ANY(%(f_types)s)")] if named else []
        if "other" in filters.asset_types:
            parts.append(sql.SQL("f.asset_type NOT IN ('image', 'video', 'blend')"))
        params["f_types"] = named
        conds.append(sql.SQL("({})").format(sql.SQL(" OR ").join(parts)))
    if filters.engines:
        conds.append(sql.SQL("b.render_engine = ANY(%(f_engines)s)"))
        params["f_engines"] = [name for e in filters.engines for name in ENGINES[e.lower()]]
    if filters.resolution:
        cond, res_params = _resolution_condition(filters.resolution)
        conds.append(cond)
        params.update(res_params)
    if filters.fps is not None:
        conds.append(sql.SQL("abs({} - %(f_fps)s) < 0.05").format(_FPS))
        params["f_fps"] = float(filters.fps)
    if filters.min_duration_s is not None:
        conds.append(sql.SQL("v.duration_s >= %(f_min_dur)s"))
        params["f_min_dur"] = float(filters.min_duration_s)
    if filters.max_duration_s is not None:
        conds.append(sql.SQL("v.duration_s <= %(f_max_dur)s"))
        params["f_max_dur"] = float(filters.max_duration_s)
    if filters.extensions:
        conds.append(sql.SQL("f.extension = ANY(%(f_exts)s)"))
        params["f_exts"] = sorted({alias for e in filters.extensions for alias in _ext_aliases(e)})
    where = sql.SQL(" AND ").join(conds) if conds else sql.SQL("TRUE")
    return where, params


JOINS = sql.SQL(
    " LEFT JOIN images i ON i.file_id = f.id LEFT JOIN videos v ON v.file_id = f.id"
    " LEFT JOIN blend_files b ON b.file_id = f.id LEFT JOIN models_3d m ON m.file_id = f.id"
)


def _resolution_condition(value: str) -> tuple[sql.Composable, dict[str, Any]]:
    long_edge = sql.SQL("GREATEST({}, {})").format(_WIDTH, _HEIGHT)
    short_edge = sql.SQL("LEAST({}, {})").format(_WIDTH, _HEIGHT)
    wxh = _parse_wxh(value)
    if wxh:
        return sql.SQL("({} = %(f_w)s AND {} = %(f_h)s)").format(_WIDTH, _HEIGHT), {"f_w": wxh[0], "f_h": wxh[1]}
    key = value.lower()
    if key.endswith("k"):  # 4k: at least 3840 px on the long edge (DCI 4096 too)
        minimum = {"2k": 2048, "4k": 3840, "5k": 5120, "6k": 6144, "8k": 7680}[key]
        return sql.SQL("{} >= %(f_long)s").format(long_edge), {"f_long": minimum}
    return sql.SQL("{} = %(f_short)s").format(short_edge), {"f_short": int(key.rstrip("p"))}


_EXT_ALIASES = [{"jpg", "jpeg"}, {"tif", "tiff"}, {"usd", "usda", "usdc", "usdz"}, {"gltf", "glb"}, {"blend", "blend1"}]


def _ext_aliases(ext: str) -> set[str]:
    ext = ext.lower().lstrip(".")
    return next((group for group in _EXT_ALIASES if ext in group), {ext})


def _parse_wxh(value: str) -> tuple[int, int] | None:
    parts = value.lower().split("x")
    if len(parts) == 2 and all(p.isdigit() and 0 < len(p) <= 5 for p in parts):
        return int(parts[0]), int(parts[1])
    return None
