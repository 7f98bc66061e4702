"""Serving: score new histories from a checkpoint, with exact attributions and item embeddings."""

from sicsrec.serve.recommender import NOT_PERSONALISED, PARTS, Recommender, RecResult, popular_items
from sicsrec.serve.response import DEFAULT_K, MAX_K, resolve_k, response

__all__ = [
    "DEFAULT_K",
    "MAX_K",
    "NOT_PERSONALISED",
    "PARTS",
    "RecResult",
    "Recommender",
    "popular_items",
    "resolve_k",
    "response",
]
