"""SICSRec: ID encoder + content encoder + mix-modality decoder, fused into one user vector.

H_id  = IDEncoder(E[i_t] + P_t)                 behaviour (step 1's SASRec, frozen + adapters in step 2)
H_c   = ContentEncoder(c_{i_t} + P_t)           content, same position table P
H_mix = CrossDecoder(q = H_id, kv = H_c)        causal cross-attention
u     = W_id h_id + W_c h_c + W_mix h_mix + b   (W = Linear(3d, d) split in three blocks)
s_u   = u / ||u||;   score_i = s_u · normalize(E_i) / tau
        (content_items, beyond the paper: score_i = s_u · normalize(normalize(E_i) + c_i) / tau)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sicsrec.config import ModelConfig
from sicsrec.model.base import SeqOutput
from sicsrec.model.content_seq import ContentItems
from sicsrec.model.layers import Block, SequenceEncoder, init_weights
from sicsrec.model.losses import content_infonce, embedding_l2
from sicsrec.model.step2 import Step2Model


class MixDecoder(nn.Module):
    """Causal cross-attention layers over LN+dropout of both streams (as the reference);
    chained (decision 5) or each fed the original query (reference)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.chain = cfg.chain_mix_decoder
        self.query_norm = nn.LayerNorm(cfg.hidden, eps=1e-12)
        self.value_norm = nn.LayerNorm(cfg.hidden, eps=1e-12)
        self.dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            Block(cfg.hidden, cfg.heads, cfg.ffn, cfg.dropout, cfg.attn_dropout) for _ in range(cfg.layers)
        )

    def forward(self, h_id: torch.Tensor, h_c: torch.Tensor) -> torch.Tensor:  # (B, T, d) x2 -> (B, T, d)
        h_id = self.dropout(self.query_norm(h_id))
        h_c = self.dropout(self.value_norm(h_c))
        q = h_id
        for block in self.blocks:
            q = block(q if self.chain else h_id, kv=h_c)
        return q


class SICSRec(Step2Model):
    """The full model of the paper (stage B)."""

    name = "sicsrec"
    uses_content = True
    item_gate: torch.Tensor  # (N+1,) buffer, only with content_items and a gate

    def __init__(
        self, cfg: ModelConfig, n_items: int, text_dim: int = 384, image_dim: int | None = None, **_: object
    ) -> None:
        super().__init__(cfg, n_items)
        d = cfg.hidden
        self.content = ContentItems(n_items, d, text_dim, image_dim)
        # Without the content encoder (ablation) H_c is just LN(c + P): zero Transformer layers.
        n_c = cfg.layers if cfg.use_content_encoder else 0
        self.content_encoder = SequenceEncoder(d, n_c, cfg.heads, cfg.ffn, cfg.dropout, cfg.attn_dropout)
        self.mix_decoder = MixDecoder(cfg)
        self.add_fusion(n_streams=3)
        init_weights(self)
        self.init_fusion()
        if cfg.content_items and cfg.content_items_gate > 0:  # (N+1,) weight of each item's ID part
            self.register_buffer("item_gate", torch.ones(n_items + 1))

    def forward(self, seq: torch.Tensor) -> SeqOutput:
        t = seq.shape[1]
        pos = self.id_encoder.pos_emb.weight[:t]  # (T, d), shared by both encoders
        h_id = self.id_encoder.encoder(self.id_encoder.item_emb(seq), pos)  # (B, T, d)
        h_c = self.content_encoder(self.content(seq), pos)  # (B, T, d)
        h_mix = self.mix_decoder(h_id, h_c) if self.cfg.use_mix_decoder else torch.zeros_like(h_id)
        d = self.cfg.hidden
        w = self.fusion.weight  # (d, 3d) = [W_id | W_c | W_mix]
        parts = {
            "behavior": h_id @ w[:, :d].T,
            "content": h_c @ w[:, d : 2 * d].T,
            "mixed": h_mix @ w[:, 2 * d :].T,
            "bias": self.fusion.bias.expand_as(h_id),
        }
        u = parts["behavior"] + parts["content"] + parts["mixed"] + parts["bias"]  # (B, T, d)
        inv_norm = 1.0 / u.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return SeqOutput(u * inv_norm, parts, inv_norm)

    def set_item_counts(self, counts: torch.Tensor) -> None:
        if hasattr(self, "item_gate"):
            n = counts.to(self.item_gate)
            self.item_gate.copy_(n / (n + self.cfg.content_items_gate))

    def item_table(self) -> torch.Tensor:
        e = super().item_table()  # (N+1, d): normalize(dropout(E)) in training
        if not self.cfg.content_items:
            return e
        if hasattr(self, "item_gate"):
            e = e * self.item_gate[:, None]  # (N+1, d): a rarely seen item's ID row counts less
        # Both sides unit-norm before the sum, so neither dominates by scale; the padding row stays
        # harmless (it is never ranked).
        return F.normalize(e + self.content(), dim=-1)

    def aux_losses(self, seq: torch.Tensor, user: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        terms: dict[str, torch.Tensor] = {}
        cfg = self.cfg
        if cfg.use_cl_loss and cfg.alpha > 0:
            uniq, inv = torch.unique(targets, return_inverse=True)
            terms["cl"] = cfg.alpha * content_infonce(
                user, self.content(uniq), inv, cfg.temperature, cfg.remove_false_negatives
            )
        if cfg.reg_lambda > 0:
            terms["reg"] = cfg.reg_lambda * embedding_l2(self.id_encoder.item_emb.weight, *self.content.raw_tables())
        return terms
