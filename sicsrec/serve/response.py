"""The one answer of `recommend --json` and of the app's `recommend` API, and the rule for k they share.

    {"items": [{"item_id", "title", "score", "behavior", "content", "mixed", "bias", "scored_by", "source"}, ...],
     "source": "model" | "popular" | "cold_start" | "no_model",
     "k": the k served, "used_ids": the history ids the model read, "unknown_ids": [...], "warnings": [...]}

source: "model" = personalised; the other three are the most popular items, not personalised, because
the history is empty ("popular"), none of its ids is in the catalogue ("cold_start"), or no trained
model is loaded ("no_model", the app only). warnings: what was done with the input, one sentence each
(empty when it was used as given). scored_by (model answers): "id" when the item's vector was trained on its
interactions, "content" when it was predicted from its title and cover (an item added without retraining,
`sicsrec.serve.add_items`).

k is a whole number from 1 to MAX_K: a fraction is rounded, a number outside the range is clamped
(a warning says which), and a value that is no number is refused.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sicsrec.serve.recommender import RecResult

DEFAULT_K = 10
MAX_K = 100  # a list, not a catalogue dump: the full ranking is `evaluate`'s job


def resolve_k(value: object) -> tuple[int, str]:
    """(the k served for a requested `value`, what was done to it or ""); ValueError when it is no number."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return DEFAULT_K, ""
    try:
        number = float(value)  # type: ignore[arg-type]  # any object: what float() refuses is caught below
    except (TypeError, ValueError):
        number = math.nan
    if math.isnan(number) or isinstance(value, bool):
        raise ValueError(f"k must be a whole number from 1 to {MAX_K}, got {value!r}")
    shown = str(value).strip()
    if not 1 <= number <= MAX_K:
        k = 1 if number < 1 else MAX_K
        return k, f"k={shown} is outside 1-{MAX_K}: clamped to {k}."
    k = math.floor(number + 0.5)  # half up, not Python's half-to-even
    return k, "" if k == number else f"k={shown} is not a whole number: rounded to {k}."


def response(res: RecResult) -> dict[str, Any]:
    """The response object (see the module docstring) of one recommendation result."""
    return {
        "items": [{**it, "source": res.source} for it in res.items],
        "source": res.source,
        "k": res.k,
        "used_ids": list(res.used_history),
        "unknown_ids": list(res.unknown),
        "warnings": res.warnings,
    }


__all__ = ["DEFAULT_K", "MAX_K", "resolve_k", "response"]
