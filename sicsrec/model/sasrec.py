"""SASRec (Kang & McAuley 2018): the ID-only baseline and SICSRec's step-1 model."""

from __future__ import annotations

import torch
from torch import nn

from sicsrec.config import ModelConfig
from sicsrec.model.base import SeqOutput, SeqRecModel
from sicsrec.model.layers import SequenceEncoder, init_weights


class IDEncoder(nn.Module):
    """Item-ID embedding E, position table P and the causal Transformer over E[i_t] + P_t."""

    def __init__(self, cfg: ModelConfig, n_items: int) -> None:
        super().__init__()
        self.item_emb = nn.Embedding(n_items + 1, cfg.hidden, padding_idx=0)
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.hidden)
        self.encoder = SequenceEncoder(cfg.hidden, cfg.layers, cfg.heads, cfg.ffn, cfg.dropout, cfg.attn_dropout)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:  # (B, T) -> H_id (B, T, d)
        return self.encoder(self.item_emb(seq), self.pos_emb.weight[: seq.shape[1]])


class SASRec(SeqRecModel):
    """Scores s_u · E_i with full-softmax CE (RecBole's SASRec with loss_type CE)."""

    name = "sasrec"

    def __init__(self, cfg: ModelConfig, n_items: int, **_: object) -> None:
        super().__init__(cfg, n_items)
        self.id_encoder = IDEncoder(cfg, n_items)
        init_weights(self)

    def forward(self, seq: torch.Tensor) -> SeqOutput:
        h = self.id_encoder(seq)
        return SeqOutput(h, {"behavior": h})

    def item_table(self) -> torch.Tensor:
        return self.id_encoder.item_emb.weight
