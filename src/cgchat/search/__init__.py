"""Retrieval over the asset index: semantic, keyword and hybrid (RRF), with filters inside the SQL.

Usage: ``search(conn, SearchRequest("Blender files rendered with Cycles"))``.
"""

from cgchat.search.engine import MODES, SearchError, SearchRequest, SearchResponse, SearchResult, search
from cgchat.search.filters import ASSET_TYPES, Filters

__all__ = ["ASSET_TYPES", "MODES", "Filters", "SearchError", "SearchRequest", "SearchResponse", "SearchResult", "search"]
