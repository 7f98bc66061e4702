"""Content-only sequence model (the reference's Content_SeqEncoder): items are represented only by
their content vector c_i, the baseline in the UniSRec/MISSRec family."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sicsrec.config import ModelConfig
from sicsrec.model.base import ItemTables, SeqOutput, SeqRecModel
from sicsrec.model.layers import SequenceEncoder, init_weights
from sicsrec.model.losses import content_infonce, embedding_l2


def _mlp(d_in: int, d_out: int) -> nn.Sequential:
    """Spec's projection: Linear(in, in/2), ReLU, Linear(in/2, d)."""
    return nn.Sequential(nn.Linear(d_in, d_in // 2), nn.ReLU(), nn.Linear(d_in // 2, d_out))


class ContentItems(nn.Module):
    """c_i = normalize(MLP_t(T_i) + m_i · MLP_v(V_i)); T and V start from the cached features and train.

    Text-only datasets have no image branch at all (not a zero-fed one); items missing an image in a
    dataset with images have mask m_i = 0.
    """

    image_mask: torch.Tensor  # (n_items + 1,) bool buffer, only with an image branch
    mlp_v: nn.Sequential

    def __init__(self, n_items: int, hidden: int, text_dim: int, image_dim: int | None) -> None:
        super().__init__()
        self.text = nn.Embedding(n_items + 1, text_dim, padding_idx=0)
        self.mlp_t = _mlp(text_dim, hidden)
        self.image: nn.Embedding | None = None
        if image_dim:
            self.image = nn.Embedding(n_items + 1, image_dim, padding_idx=0)
            self.mlp_v = _mlp(image_dim, hidden)
            self.register_buffer("image_mask", torch.zeros(n_items + 1, dtype=torch.bool))

    def load_tables(self, tables: ItemTables) -> None:
        """Copy feature tables in (after init_weights, which would overwrite them)."""
        with torch.no_grad():
            self.text.weight.copy_(tables.text)
            if self.image is not None:
                if tables.image is None or tables.image_mask is None:
                    raise ValueError("model has an image branch but no image features were given")
                self.image.weight.copy_(tables.image)
                self.image_mask.copy_(tables.image_mask)

    def forward(self, idx: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised content vectors c of items `idx` (any shape, -> (*idx.shape, d)), or of all items.

        Rows are independent, so computing only the needed rows is exact and keeps a forward pass
        independent of the catalogue size; each distinct item is computed once (a padded training
        batch repeats few items many times: Bili_Food ~8,500 positions hold ~520 items).
        """
        if idx is None:
            image = (self.image.weight, self.image_mask) if self.image is not None else (None, None)
            return self._rows(self.text.weight, *image)
        uniq, inv = torch.unique(idx, return_inverse=True)  # (U,), idx.shape
        image = (self.image(uniq), self.image_mask[uniq]) if self.image is not None else (None, None)
        return self._rows(self.text(uniq), *image)[inv]  # (U, d) -> (*idx.shape, d)

    def _rows(self, text: torch.Tensor, image: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor:
        """normalize(MLP_t(text) + mask * MLP_v(image)) row by row: (n, dt), (n, dv), (n,) -> (n, d)."""
        c = self.mlp_t(text)
        if image is not None and mask is not None:
            c = c + mask[:, None].to(c.dtype) * self.mlp_v(image)
        return F.normalize(c, dim=-1)

    def raw_tables(self) -> list[torch.Tensor]:
        return [self.text.weight] + ([self.image.weight] if self.image is not None else [])


class ContentSeq(SeqRecModel):
    """LN(c_{i_t} + P_t) -> 2 causal layers; user = normalize(h); score = user · c_i / tau."""

    name = "content"
    uses_content = True

    def __init__(
        self, cfg: ModelConfig, n_items: int, text_dim: int = 384, image_dim: int | None = None, **_: object
    ) -> None:
        super().__init__(cfg, n_items)
        self.content = ContentItems(n_items, cfg.hidden, text_dim, image_dim)
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.hidden)
        self.encoder = SequenceEncoder(cfg.hidden, cfg.layers, cfg.heads, cfg.ffn, cfg.dropout, cfg.attn_dropout)
        init_weights(self)

    @property
    def logit_scale(self) -> float:
        return 1.0 / self.cfg.temperature

    def forward(self, seq: torch.Tensor) -> SeqOutput:
        c = self.content(seq)  # (B, T, d)
        h = self.encoder(c, self.pos_emb.weight[: seq.shape[1]])
        return SeqOutput(F.normalize(h, dim=-1), {"content": h}, 1.0 / h.norm(dim=-1, keepdim=True).clamp_min(1e-12))

    def item_table(self) -> torch.Tensor:
        return self.content()

    def aux_losses(self, seq: torch.Tensor, user: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """The reference's extra terms (with `content_aux_losses`): alpha·L_CL and lambda·(||T|| + ||V||)."""
        cfg, terms = self.cfg, dict[str, torch.Tensor]()
        if not cfg.content_aux_losses:
            return terms
        if cfg.use_cl_loss and cfg.alpha > 0:
            uniq, inv = torch.unique(targets, return_inverse=True)
            terms["cl"] = cfg.alpha * content_infonce(
                user, self.content(uniq), inv, cfg.temperature, cfg.remove_false_negatives
            )
        if cfg.reg_lambda > 0:
            terms["reg"] = cfg.reg_lambda * embedding_l2(*self.content.raw_tables())
        return terms
