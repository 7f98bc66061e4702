"""The ID-only control of step 2: SICSRec without its content and mix streams.

It starts from step 1's SASRec and trains exactly like step 2 (frozen ID Transformer with
adapters, fusion layer, cosine/tau scoring with item dropout, the L2 term on E) but never sees
content, so SICSRec's gain over it is the content's, not the step-2 recipe's.

    u   = W h_id + b;   s_u = u / ||u||;   score_i = s_u · normalize(E_i) / tau
"""

from __future__ import annotations

import torch

from sicsrec.config import ModelConfig
from sicsrec.model.base import SeqOutput
from sicsrec.model.layers import init_weights
from sicsrec.model.losses import embedding_l2
from sicsrec.model.step2 import Step2Model


class IDControl(Step2Model):
    """Step 2's recipe on the ID stream alone."""

    name = "id_control"
    uses_content = False

    def __init__(self, cfg: ModelConfig, n_items: int, **_: object) -> None:
        super().__init__(cfg, n_items)
        self.add_fusion(n_streams=1)
        init_weights(self)
        self.init_fusion()

    def forward(self, seq: torch.Tensor) -> SeqOutput:
        h_id = self.id_encoder(seq)  # (B, T, d)
        parts = {"behavior": h_id @ self.fusion.weight.T, "bias": self.fusion.bias.expand_as(h_id)}
        u = parts["behavior"] + parts["bias"]  # (B, T, d)
        inv_norm = 1.0 / u.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return SeqOutput(u * inv_norm, parts, inv_norm)

    def aux_losses(self, seq: torch.Tensor, user: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.cfg.reg_lambda > 0:
            return {"reg": self.cfg.reg_lambda * embedding_l2(self.id_encoder.item_emb.weight)}
        return {}
