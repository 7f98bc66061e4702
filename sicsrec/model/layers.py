"""Transformer building blocks shared by every sequence model (post-LN, as RecBole's SASRec).

Sequences are right-padded and position ids count from the first item, so a causal mask alone
keeps every valid position from seeing padding: no key-padding mask is needed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LowRankAdapter(nn.Module):
    """LoRA-style parallel branch x -> B(A(x)) with B zero-initialised, so it starts as a no-op."""

    def __init__(self, hidden: int, rank: int) -> None:
        super().__init__()
        self.down = nn.Linear(hidden, rank, bias=False)
        self.up = nn.Linear(rank, hidden, bias=False)
        nn.init.normal_(self.down.weight, std=0.02)
        nn.init.zeros_(self.up.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))


class Attention(nn.Module):
    """Causal multi-head attention sublayer: LN(q + dropout(Wo · attn(q, kv)) [+ adapter(q)])."""

    def __init__(self, hidden: int, heads: int, attn_dropout: float, dropout: float) -> None:
        super().__init__()
        assert hidden % heads == 0, "hidden must be divisible by heads"
        self.heads = heads
        self.q = nn.Linear(hidden, hidden)
        self.k = nn.Linear(hidden, hidden)
        self.v = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, hidden)
        self.attn_dropout = attn_dropout
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        self.adapter: LowRankAdapter | None = None

    def forward(self, q_in: torch.Tensor, kv_in: torch.Tensor) -> torch.Tensor:
        b, t, d = q_in.shape
        h = self.heads
        # (B, T, d) -> (B, heads, T, d/heads)
        q = self.q(q_in).view(b, t, h, d // h).transpose(1, 2)
        k = self.k(kv_in).view(b, t, h, d // h).transpose(1, 2)
        v = self.v(kv_in).view(b, t, h, d // h).transpose(1, 2)
        p = self.attn_dropout if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        a = a.transpose(1, 2).reshape(b, t, d)  # (B, heads, T, d/heads) -> (B, T, d)
        y = self.dropout(self.out(a))
        if self.adapter is not None:
            y = y + self.adapter(q_in)
        return self.norm(q_in + y)


class FeedForward(nn.Module):
    """Position-wise FFN sublayer: LN(x + dropout(W2 gelu(W1 x)) [+ adapter(x)])."""

    def __init__(self, hidden: int, inner: int, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(hidden, inner)
        self.fc2 = nn.Linear(inner, hidden)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        self.adapter: LowRankAdapter | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dropout(self.fc2(F.gelu(self.fc1(x))))
        if self.adapter is not None:
            y = y + self.adapter(x)
        return self.norm(x + y)


class Block(nn.Module):
    """One Transformer layer: (self- or cross-) attention then FFN."""

    def __init__(self, hidden: int, heads: int, ffn: int, dropout: float, attn_dropout: float) -> None:
        super().__init__()
        self.attn = Attention(hidden, heads, attn_dropout, dropout)
        self.ffn = FeedForward(hidden, ffn, dropout)

    def forward(self, x: torch.Tensor, kv: torch.Tensor | None = None) -> torch.Tensor:
        return self.ffn(self.attn(x, x if kv is None else kv))

    def add_adapters(self, rank: int, both: bool) -> list[nn.Parameter]:
        """Attach rank-r adapters (after attention; after FFN too when `both`) and return their params."""
        hidden = self.attn.out.out_features
        self.attn.adapter = LowRankAdapter(hidden, rank)
        params = list(self.attn.adapter.parameters())
        if both:
            self.ffn.adapter = LowRankAdapter(hidden, rank)
            params += list(self.ffn.adapter.parameters())
        return params


def init_weights(module: nn.Module) -> None:
    """RecBole's initialisation: N(0, 0.02) for linear/embedding weights, LN at (1, 0).

    Call it at construction, before adapters are attached or feature tables are loaded.
    """
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class SequenceEncoder(nn.Module):
    """LN(x_t + P_t) -> dropout -> causal self-attention layers; P is passed in so encoders can share it."""

    def __init__(self, hidden: int, layers: int, heads: int, ffn: int, dropout: float, attn_dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(hidden, heads, ffn, dropout, attn_dropout) for _ in range(layers))

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:  # (B, T, d), (T, d) -> (B, T, d)
        h = self.dropout(self.norm(x + pos[None]))
        for block in self.blocks:
            h = block(h)
        return h
