"""The one model contract: every sequence model (SASRec, ContentSeq, SICSRec) implements it, so one
trainer and one evaluator serve them all (as RecBole's SequentialRecommender does).

Batches are right-padded item-index sequences (0 = padding). `forward` returns a user vector at
EVERY position, so training scores all prefixes of a sequence in one causal pass.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from sicsrec.config import ModelConfig
from sicsrec.model.losses import full_softmax_ce


@dataclass
class SeqOutput:
    """user: (B, T, d) vectors scored against `item_table()`; parts: named (B, T, d) terms whose sum,
    scaled by `part_scale`, is `user` (for the exact behaviour/content attribution)."""

    user: torch.Tensor
    parts: dict[str, torch.Tensor] = field(default_factory=dict)
    part_scale: torch.Tensor | None = None  # (B, T, 1): 1/||u|| when `user` is a normalised sum


@dataclass
class LossOutput:
    total: torch.Tensor
    parts: dict[str, float]


@dataclass
class ItemTables:
    """Content feature tables aligned with item indices (row 0 = padding, zeros)."""

    text: torch.Tensor  # (N+1, dt)
    image: torch.Tensor | None = None  # (N+1, dv)
    image_mask: torch.Tensor | None = None  # (N+1,) bool

    @classmethod
    def from_arrays(cls, text: np.ndarray, image: np.ndarray | None, mask: np.ndarray | None) -> ItemTables:
        """Prepend the padding row to (N, d) arrays ordered by item index 1..N."""
        pad = lambda a: torch.cat([torch.zeros(1, a.shape[1]), torch.as_tensor(a, dtype=torch.float32)])
        img = pad(image) if image is not None else None
        m = (
            torch.cat([torch.zeros(1, dtype=torch.bool), torch.as_tensor(mask, dtype=torch.bool)])
            if mask is not None
            else None
        )
        return cls(pad(text), img, m)


class SeqRecModel(nn.Module):
    """Base class: subclasses define forward, item_table and (optionally) aux_losses."""

    name: ClassVar[str] = "base"
    uses_content: ClassVar[bool] = False
    starts_from_step1: ClassVar[bool] = False  # trained as step 2 on top of step 1's SASRec (two_step)

    def __init__(self, cfg: ModelConfig, n_items: int) -> None:
        super().__init__()
        self.cfg = dataclasses.replace(cfg)  # its own copy: step 2 sets id_adapters on it
        self.n_items = n_items  # real items; index 0 is padding

    def forward(self, seq: torch.Tensor) -> SeqOutput:  # (B, T) -> user (B, T, d)
        raise NotImplementedError

    def item_table(self) -> torch.Tensor:
        """(N+1, d) vectors every user is scored against (dropout applies in training mode)."""
        raise NotImplementedError

    def set_item_counts(self, counts: torch.Tensor) -> None:
        """Each item's count among the training targets ((N+1,), row 0 padding), for models whose scoring uses
        it; the others ignore it."""

    @property
    def logit_scale(self) -> float:
        return 1.0

    def aux_losses(self, seq: torch.Tensor, user: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """Extra weighted loss terms for the (M, d) user vectors at target positions."""
        return {}

    def calculate_loss(self, seq: torch.Tensor, targets: torch.Tensor, chunk: int = 4096) -> LossOutput:
        """Full-softmax CE at every position with a target (targets: (B, T), 0 = no loss) + aux terms."""
        out = self(seq)
        sel = targets > 0
        user = out.user[sel]  # (M, d)
        tgt = targets[sel]  # (M,)
        terms = {"rec": full_softmax_ce(user, self.item_table(), tgt, self.logit_scale, chunk)}
        terms.update(self.aux_losses(seq, user, tgt))
        total = functools.reduce(operator.add, terms.values())  # a tensor, summed in insertion order
        return LossOutput(total, {k: float(v.detach()) for k, v in terms.items()})

    @torch.no_grad()
    def user_vectors(self, seq: torch.Tensor, lengths: torch.Tensor) -> SeqOutput:
        """The output at each sequence's last valid position: user (B, d), parts (B, d)."""
        out = self(seq)
        idx = torch.arange(seq.shape[0], device=seq.device)
        last = lengths - 1
        scale = out.part_scale[idx, last] if out.part_scale is not None else None
        return SeqOutput(out.user[idx, last], {k: v[idx, last] for k, v in out.parts.items()}, scale)

    @torch.no_grad()
    def score(self, seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, N+1) scores of every item for each sequence's next step; padding gets -inf."""
        user = self.user_vectors(seq, lengths).user
        scores = (user @ self.item_table().T) * self.logit_scale
        scores[:, 0] = float("-inf")
        return scores

    def trainable_summary(self) -> str:
        """One log line: trainable vs all parameters."""
        n_train = sum(p.numel() for p in self.parameters() if p.requires_grad)
        n_all = sum(p.numel() for p in self.parameters())
        return f"{self.name}: {n_train:,} trainable of {n_all:,} parameters"
