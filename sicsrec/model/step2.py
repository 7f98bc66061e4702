"""The ID side of step 2, shared by SICSRec and its ID-only control: step 1's encoder frozen with
low-rank adapters, a fusion layer W, and items scored as s_u · normalize(dropout(E)) / tau."""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from sicsrec.config import FUSION_INITS, ModelConfig
from sicsrec.model.base import SeqRecModel
from sicsrec.model.layers import Block
from sicsrec.model.sasrec import IDEncoder, SASRec


class Step2Model(SeqRecModel):
    """A model that starts from step 1's SASRec (`load_step1`) and scores like step 2."""

    starts_from_step1 = True

    def __init__(self, cfg: ModelConfig, n_items: int) -> None:
        super().__init__(cfg, n_items)
        if cfg.fusion_init not in FUSION_INITS:
            raise ValueError(f"fusion_init must be one of {FUSION_INITS}, got {cfg.fusion_init!r}")
        self.id_encoder = IDEncoder(cfg, n_items)

    def add_fusion(self, n_streams: int) -> None:
        """The fusion layer W over the streams' last states, and the item dropout of the scored table.

        Called by the subclass after its own modules: registration order fixes the seeded init."""
        self.fusion = nn.Linear(n_streams * self.cfg.hidden, self.cfg.hidden)  # W = [W_id | W_c | W_mix]
        self.item_dropout = nn.Dropout(self.cfg.dropout)

    def init_fusion(self) -> None:
        """Apply `fusion_init` after init_weights: "identity" starts u at step 1's user vector."""
        cfg, d = self.cfg, self.cfg.hidden
        if cfg.fusion_init.startswith("identity"):
            # u ∝ h_id until the content side learns a non-zero W_c, W_mix. "identity_matched" scales
            # W_id to a random N(0, 0.02) block's norm (||g·I||_F = 0.02·d): Adam grows W_c and W_mix
            # by ~lr per step either way, so a unit W_id leaves them too small to matter for long.
            gain = 1.0 if cfg.fusion_init == "identity" else 0.02 * d**0.5
            with torch.no_grad():
                self.fusion.weight.zero_()
                self.fusion.weight[:, :d] = gain * torch.eye(d)
                self.fusion.bias.zero_()
        if cfg.id_adapters:
            self.add_id_adapters()

    def add_id_adapters(self) -> list[nn.Parameter]:
        """Attach rank-r adapters to every ID Transformer layer (decision 6: after attention and FFN)."""
        self.cfg.id_adapters = True
        params: list[nn.Parameter] = []
        for block in cast(list[Block], self.id_encoder.encoder.blocks):
            params += block.add_adapters(self.cfg.lora_rank, self.cfg.lora_both_sublayers)
        return params

    def load_step1(self, sasrec: SASRec, freeze: bool = True) -> None:
        """Step 2 start: copy step 1's ID encoder, freeze its Transformer (unless told not to), add adapters."""
        self.id_encoder.load_state_dict(sasrec.id_encoder.state_dict())
        for p in self.id_encoder.encoder.blocks.parameters():
            p.requires_grad_(not freeze)
        if not self.cfg.id_adapters:
            self.add_id_adapters()

    @property
    def logit_scale(self) -> float:
        return 1.0 / self.cfg.temperature

    def item_table(self) -> torch.Tensor:
        e = self.id_encoder.item_emb.weight
        if self.training:
            return F.normalize(self.item_dropout(e), dim=-1)
        return F.normalize(e, dim=-1) if self.cfg.normalized_item_scoring else e
