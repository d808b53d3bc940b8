"""Retrieval over the asset index: semantic, keyword, visual (CLIP) and hybrid (RRF), filters inside the SQL.

Usage: ``search(conn, SearchRequest("Blender files rendered with Cycles"))``.
"""

from cgchat.search.engine import (
    MODES,
    SearchError,
    SearchRequest,
    SearchResponse,
    SearchResult,
    VisualModelMissing,
    search,
)
from cgchat.search.filters import ASSET_TYPES, Filters

__all__ = ["ASSET_TYPES", "MODES", "Filters", "SearchError", "SearchRequest", "SearchResponse", "SearchResult", "VisualModelMissing",
           "search"]
