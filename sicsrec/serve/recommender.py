"""Serving: load a checkpoint, score a new click history without retraining, explain the scores.

Attribution is exact: with u = W_id h_id + W_c h_c + W_mix h_mix + b (the fusion before
normalisation) and e_i the scored item vector, score_i = u·e_i/||u|| splits into
behavior_i + content_i + mixed_i + bias_i, where behavior_i = (W_id h_id)·e_i/||u||, and so on.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sicsrec.checkpoint import ItemTable, load_checkpoint
from sicsrec.model.base import SeqRecModel
from sicsrec.model.content_seq import ContentItems
from sicsrec.serve.history import History, parse_history
from sicsrec.serve.index import IndexConfig, ItemIndex
from sicsrec.serve.response import DEFAULT_K, resolve_k

PARTS = ("behavior", "content", "mixed", "bias")
NOT_PERSONALISED = {  # why a list is only the most popular items, by its source
    "popular": "Empty history: showing the most popular items (not personalised).",
    "cold_start": "Cold start: no item of the history is in the catalogue, so showing the most popular items "
    "(not personalised).",
    "no_model": "No trained model is loaded: showing the most popular items (not personalised).",
}


def popular_items(
    item_ids: list[str], titles: list[str], popularity: np.ndarray, k: int, exclude: Set[str] = frozenset()
) -> list[dict[str, Any]]:
    """The k most interacted items not in `exclude`, shaped like recommendations (score = share of the
    top count, every attribution part 0): the answer to an empty history, with or without a model."""
    top = float(popularity.max()) if len(popularity) else 1.0
    order = [i for i in np.argsort(-popularity, kind="stable") if item_ids[i] not in exclude][:k]
    return [
        {
            "item_id": item_ids[i],
            "title": titles[i],
            "score": float(popularity[i] / (top or 1.0)),
            **dict.fromkeys(PARTS, 0.0),
        }
        for i in order
    ]


@dataclass
class RecResult:
    """Ranked items (dicts with item_id, title, score and its four parts), what happened to the input,
    and the one forward pass behind them (user vector, stream parts), so callers never rerun the model."""

    items: list[dict[str, Any]]
    source: str  # "model", or why the items are the most popular ones: a key of NOT_PERSONALISED
    used_history: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    truncated: int = 0  # history items beyond the model's max length (the oldest are dropped)
    influence: np.ndarray | None = None  # (len(used_history), k): score drop when that item is removed
    repeats: int = 0  # repeated clicks counted once
    user: np.ndarray | None = None  # (d,) the scored user vector (None for popular answers)
    parts: dict[str, np.ndarray] = field(default_factory=dict)  # stream -> (d,) its share of the user vector
    k: int = DEFAULT_K  # the k served (serve.response.resolve_k)
    k_note: str = ""  # what was done to the requested k
    history: list[str] = field(default_factory=list)  # every known id of the input by the history rule (oldest first)

    @property
    def notes(self) -> list[str]:
        """What was done with the input (history rule, model window, k), one sentence each."""
        notes = History(self.used_history, self.unknown, self.repeats).notes()
        if self.truncated:
            notes.append(f"Only the last {len(self.used_history)} items are used; {self.truncated} older ones dropped.")
        if self.k_note:
            notes.append(self.k_note)
        if len(self.items) < self.k:
            notes.append(f"Only {len(self.items)} item(s) left to recommend.")
        return notes

    @property
    def warnings(self) -> list[str]:
        """Why the list is not personalised (when it is not), then the notes: the response's warnings."""
        return ([NOT_PERSONALISED[self.source]] if self.source in NOT_PERSONALISED else []) + self.notes

    @property
    def message(self) -> str:
        """The warnings as one paragraph (empty when the input was used as given)."""
        return " ".join(self.warnings)


class Recommender:
    """A loaded checkpoint ready to score histories given in the dataset's own item ids."""

    def __init__(
        self,
        model: SeqRecModel,
        config: dict[str, Any],
        items: dict[str, list],
        path: Path | None = None,
        index: IndexConfig | None = None,
    ) -> None:
        self.model, self.config, self.items, self.path = model.eval(), config, items, path
        self.index_cfg = index  # kept so a recommender grown by added items builds the same kind of index
        self.table = ItemTable.from_dict(items)
        self.item_ids, self.titles, self.popularity = self.table.item_ids, self.table.titles, self.table.popularity
        self.index = {iid: i + 1 for i, iid in enumerate(self.item_ids)}
        self.device = next(model.parameters()).device
        with torch.no_grad():
            self._table = model.item_table().detach()  # (N+1, d) scored item vectors, computed once
        # An approximate index (faiss IVF/HNSW) for large catalogues; exact scoring when None or "exact".
        self.ann = (
            ItemIndex(self._table[1:].cpu().numpy(), index) if index is not None and index.kind != "exact" else None
        )

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", index: IndexConfig | None = None) -> Recommender:
        """Load a checkpoint folder (safetensors + JSON only) for serving."""
        model, config, items = load_checkpoint(path, device)
        return cls(model, config, items, Path(path), index)

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def max_len(self) -> int:
        return self.model.cfg.max_len

    def _item(self, idx: int, score: float, parts: dict[str, float]) -> dict[str, Any]:
        i = idx - 1
        return {
            "item_id": self.item_ids[i],
            "title": self.titles[i],
            "score": score,
            **parts,
            "scored_by": self.table.scored_by[i],
        }

    @torch.no_grad()
    def recommend(
        self,
        history: str | list[str],
        k: float | str | None = DEFAULT_K,
        exclude_history: bool = True,
        influence: bool = False,
    ) -> RecResult:
        """Top-k items for a click history (oldest first), each with its exact score attribution.

        The history follows `serve.history`'s rule and k `serve.response.resolve_k`'s (ValueError when k is no
        number). One forward pass of the model: the result carries its user vector and stream parts, and the
        leave-one-out influence (one batched pass more) reuses it. A history with no known item gets the most
        popular items, labelled "popular" (empty) or "cold_start" (only unknown ids)."""
        k, k_note = resolve_k(k)
        parsed = parse_history(history, self.index)
        idx, known, unknown = [self.index[i] for i in parsed.known], parsed.known, parsed.unknown
        if not idx:
            return RecResult(
                popular_items(self.item_ids, self.titles, self.popularity, k),
                "cold_start" if unknown else "popular",
                unknown=unknown,
                k=k,
                k_note=k_note,
            )
        truncated = max(0, len(idx) - self.max_len)
        seen = idx  # every clicked item is excluded, also those older than the model's window
        idx, known = idx[-self.max_len :], known[-self.max_len :]
        seq = torch.tensor([idx], device=self.device)  # (1, T)
        out = self.model.user_vectors(seq, torch.tensor([len(idx)], device=self.device))
        if self.ann is None:
            scores = (out.user @ self._table.T)[0]  # (N+1,) = u·e_i / ||u||
            scores[0] = float("-inf")
            if exclude_history:
                scores[torch.tensor(seen, device=self.device)] = float("-inf")
            top_scores, top = torch.topk(scores, min(k, int(torch.isfinite(scores).sum())))  # (k,), (k,)
        else:
            top, top_scores = self._approximate_top(out.user, seen if exclude_history else [], k)
        e = self._table[top]  # (k, d)
        scale = out.part_scale[0] if out.part_scale is not None else torch.ones(1, device=self.device)
        parts = {p: (out.parts[p][0] @ e.T * scale) if p in out.parts else torch.zeros(len(top)) for p in PARTS}
        items = [
            self._item(int(i), float(top_scores[j]), {p: float(parts[p][j]) for p in PARTS}) for j, i in enumerate(top)
        ]
        res = RecResult(
            items,
            "model",
            known,
            unknown,
            truncated,
            repeats=parsed.repeats,
            history=parsed.known,
            user=out.user[0].cpu().numpy(),
            parts={p: v[0].cpu().numpy() for p, v in out.parts.items()},
            k=k,
            k_note=k_note,
        )
        if influence:
            res.influence = self._influence(idx, top, out.user)
        return res

    def _approximate_top(self, user: torch.Tensor, exclude: list[int], k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k rows from the approximate index (asked for k + |distinct exclusions| so they leave k),
        re-ranked by their exact scores; returns (rows, scores), both (k,)."""
        assert self.ann is not None, "only called with an approximate index"
        banned = set(exclude)  # a history repeats items: count each once
        _, rows = self.ann.search(user.cpu().numpy(), min(k + len(banned), len(self.item_ids)))  # (1, k')
        top = torch.tensor(
            [r + 1 for r in rows[0].tolist() if r >= 0 and r + 1 not in banned][:k],
            dtype=torch.long,
            device=self.device,
        )  # +1: row 0 of the table is padding
        scores, order = torch.sort((user @ self._table[top].T)[0], descending=True)  # (k,)
        return top[order], scores

    def _influence(self, idx: list[int], top: torch.Tensor, user: torch.Tensor) -> np.ndarray:
        """Leave-one-out influence: score of each top item minus its score without history item j
        (`user` (1, d) is the full history's vector, already computed)."""
        n = len(idx)
        full = torch.tensor([idx], device=self.device)
        base = (user @ self._table[top].T)[0]  # (k,)
        if n == 1:
            return base.cpu().numpy()[None, :]
        keep = ~torch.eye(n, dtype=torch.bool)  # row j keeps every position but j
        seqs = full.cpu().expand(n, n)[keep].view(n, n - 1).to(self.device)  # (n, n-1)
        without = self.model.user_vectors(seqs, torch.full((n,), n - 1, device=self.device)).user @ self._table[top].T
        return (base[None, :] - without).cpu().numpy()  # (n, k)

    def embeddings(self, space: str = "id") -> np.ndarray:
        """(N, d) item vectors: 'id' = the scored item table, 'content' = c_i (content models only)."""
        with torch.no_grad():
            if space == "content":
                content = getattr(self.model, "content", None)
                if not isinstance(content, ContentItems):
                    raise ValueError(f"{self.name} has no content space")
                return content()[1:].cpu().numpy()
            return self._table[1:].cpu().numpy()
