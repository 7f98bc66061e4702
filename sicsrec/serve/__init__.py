"""Serving: score new histories from a checkpoint, with exact attributions and item embeddings."""

from sicsrec.serve.recommender import PARTS, RecResult, Recommender, popular_items

__all__ = ["PARTS", "RecResult", "Recommender", "popular_items"]
