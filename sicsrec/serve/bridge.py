"""Content-to-ID bridge: an item with no interactions gets every trained per-item row from its content alone.

A model holds per item some trained rows: the ID embedding E_i (SASRec, the ID control, SICSRec) and the
content tables T_i, V_i (content-only, SICSRec), which training moves far from the encoder features they
start from (cosine ~0.06 on the shipped demo). A ridge regression fitted in closed form on the items that
have interactions maps an item's raw content features x (text, [image, has-image]) to each of these
tables; a new item's rows are the map's prediction, appended to the tables, so the model scores and
reads it exactly where a known item's rows enter (score_i = s_u · E_i, c_i = normalize(MLP(T_i) + ...)).
Each table's ridge strength is the one of a grid with the least exact leave-one-out error (closed form).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from sicsrec.model import MODELS, SeqRecModel

# The per-item trained tables a new item needs a row of (row 0 = padding), and the image mask buffer.
ITEM_TABLES = ("id_encoder.item_emb.weight", "content.text.weight", "content.image.weight")
IMAGE_MASK = "content.image_mask"
ITEM_GATE = "item_gate"  # SICSRec with a count-gated item side: a new item's ID part weighs 0 (never seen)
LAMBDAS = tuple(10.0 ** np.arange(-4.0, 2.5, 0.5))  # ridge strengths, times the mean squared singular value
WEIGHTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {  # fit weight of a known item from its training count
    "log_count": np.log1p,  # a vector trained on more interactions is a more reliable target
    "uniform": lambda counts: np.ones_like(counts, dtype=np.float64),
}


@dataclass
class BridgeConfig:
    weights: str = "log_count"  # a key of WEIGHTS
    lambdas: tuple[float, ...] = LAMBDAS
    # Ridge predictions shrink toward the mean row: under cosine scoring a shrunk row points at the mean, under
    # SASRec's dot product it has a small norm; so the predicted deviations are scaled to the trained rows'
    # spread (weighted mean squared norm). Measured: docs/NEW_ITEMS.md (SASRec cold HR@10 0 -> 0.13).
    match_spread: bool = True


@dataclass
class RidgeMap:
    """y ≈ spread · (x - x_mean) @ coef + y_mean, fitted on known items; what was chosen, for the record."""

    x_mean: np.ndarray  # (p,)
    y_mean: np.ndarray  # (q,)
    coef: np.ndarray  # (p, q)
    lam: float  # the chosen strength (absolute)
    loo_r2: float  # 1 - leave-one-out error / total variance (weighted): how much of the table content explains
    spread: float = 1.0  # deviations from the mean row scaled by this (BridgeConfig.match_spread)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.spread * ((x - self.x_mean) @ self.coef) + self.y_mean


def fit_ridge(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray, lambdas: tuple[float, ...] = LAMBDAS, match_spread: bool = False
) -> RidgeMap:
    """Weighted ridge from (n, p) x to (n, q) y, its strength chosen by exact leave-one-out error over `lambdas`.

    With sw = sqrt(w), centred X' = sw·(x - x̄), Y' = sw·(y - ȳ) and X' = U S V^T: the fit at strength lam is
    U diag(s²/(s²+lam)) U^T Y', the leverages h = U² s²/(s²+lam), and the leave-one-out residual r/(1 - h).
    With `match_spread` the fitted deviations are scaled to Y's total spread: sqrt(||Y'||² / ||fit||²)."""
    w = weights / weights.sum()
    x_mean, y_mean = w @ x, w @ y  # (p,), (q,)
    sw = np.sqrt(weights)[:, None]
    xs, ys = sw * (x - x_mean), sw * (y - y_mean)  # (n, p), (n, q)
    u, s, vt = np.linalg.svd(xs, full_matrices=False)  # (n, r), (r,), (r, p)
    uty = u.T @ ys  # (r, q)
    scale = float(np.mean(s**2)) or 1.0
    total = float((ys**2).sum()) or 1.0
    best: tuple[float, float] = (np.inf, 0.0)
    for lam in (scale * r for r in lambdas):
        shrink = s**2 / (s**2 + lam)  # (r,)
        resid = ys - u @ (shrink[:, None] * uty)  # (n, q)
        lev = (u**2) @ shrink  # (n,)
        loo = float(((resid / np.maximum(1.0 - lev, 1e-9)[:, None]) ** 2).sum())
        best = min(best, (loo, lam))
    loo, lam = best
    coef = vt.T @ ((s / (s**2 + lam))[:, None] * uty)  # (p, q)
    fitted = float((((s**2 / (s**2 + lam))[:, None] * uty) ** 2).sum()) or total  # ||U diag U^T Y'||², U orthonormal
    spread = float(np.sqrt(total / fitted)) if match_spread else 1.0
    return RidgeMap(x_mean, y_mean, coef, lam, 1.0 - loo / total, spread)


@dataclass
class Bridge:
    """One ridge map per trained item table of a model: `rows(x)` gives new items' rows of every table."""

    maps: dict[str, RidgeMap]
    n_fit: int  # known items the maps were fitted on
    weights: str = "log_count"
    stats: dict[str, dict[str, float]] = field(init=False)

    def __post_init__(self) -> None:
        self.stats = {k: {"lambda": m.lam, "loo_r2": m.loo_r2, "spread": m.spread} for k, m in self.maps.items()}

    def rows(self, x: np.ndarray) -> dict[str, torch.Tensor]:
        """(M, p) content features -> {table name: (M, d_table) rows}."""
        return {k: torch.as_tensor(m(x), dtype=torch.float32) for k, m in self.maps.items()}


def content_matrix(text: np.ndarray, image: np.ndarray | None = None, mask: np.ndarray | None = None) -> np.ndarray:
    """The bridge's input per item: [text | image · has-image | has-image] ((n, dt [+ dv + 1])), or text alone."""
    if image is None:
        return np.asarray(text, dtype=np.float64)
    has = np.ones(len(image)) if mask is None else np.asarray(mask, dtype=np.float64)  # (n,)
    return np.concatenate([text, image * has[:, None], has[:, None]], axis=1).astype(np.float64)


def item_tables(model: SeqRecModel) -> dict[str, torch.Tensor]:
    """The model's trained per-item tables (of ITEM_TABLES), rows 1..N (padding dropped)."""
    state = model.state_dict()
    return {k: state[k][1:].detach().cpu() for k in ITEM_TABLES if k in state}


def fit_bridge(model: SeqRecModel, x: np.ndarray, counts: np.ndarray, cfg: BridgeConfig | None = None) -> Bridge:
    """Fit the bridge on the model's items 1..N with content features `x` (N, p) and training counts (N,):
    only items with interactions (count > 0) teach it; their weight is WEIGHTS[cfg.weights](count)."""
    cfg = cfg or BridgeConfig()
    if cfg.weights not in WEIGHTS:
        raise ValueError(f"unknown bridge weights {cfg.weights!r}; known: {sorted(WEIGHTS)}")
    known = counts > 0
    if known.sum() < 2:
        raise ValueError("the bridge needs at least 2 items with interactions to learn from")
    w = WEIGHTS[cfg.weights](counts[known].astype(np.float64))
    maps = {
        k: fit_ridge(x[known].astype(np.float64), t.numpy()[known].astype(np.float64), w, cfg.lambdas, cfg.match_spread)
        for k, t in item_tables(model).items()
    }
    return Bridge(maps, int(known.sum()), cfg.weights)


def extend_model(
    model: SeqRecModel, rows: dict[str, torch.Tensor], image_mask: torch.Tensor | None = None
) -> SeqRecModel:
    """A copy of `model` with M new items appended (indices N+1..N+M): each table of ITEM_TABLES gets its
    (M, d) rows from `rows`, the image mask `image_mask` (M,) (False where a new item has no usable image).
    Every other weight is shared by value, so existing items score exactly as before."""
    state = model.state_dict()
    tables = [k for k in ITEM_TABLES if k in state]
    if sorted(tables) != sorted(rows):
        raise ValueError(f"rows must be given for exactly {tables}, got {sorted(rows)}")
    m = len(next(iter(rows.values())))
    if IMAGE_MASK in state:
        mask = image_mask if image_mask is not None else torch.zeros(m, dtype=torch.bool)
        state[IMAGE_MASK] = torch.cat([state[IMAGE_MASK], mask.to(state[IMAGE_MASK])])  # (N+1+M,)
    if ITEM_GATE in state:
        state[ITEM_GATE] = torch.cat([state[ITEM_GATE], state[ITEM_GATE].new_zeros(m)])  # (N+1+M,)
    for k in tables:
        state[k] = torch.cat([state[k], rows[k].to(state[k])])  # (N+1, d) + (M, d) -> (N+1+M, d)
    dims = {}
    if "content.text.weight" in state:  # a content model: its feature widths
        image = state.get("content.image.weight")
        dims = {
            "text_dim": state["content.text.weight"].shape[1],
            "image_dim": None if image is None else image.shape[1],
        }
    device = next(model.parameters()).device
    grown = MODELS[model.name](model.cfg, model.n_items + m, **dims)
    grown.load_state_dict(state, strict=True)
    return grown.to(device).eval()


__all__ = [
    "ITEM_TABLES",
    "LAMBDAS",
    "WEIGHTS",
    "Bridge",
    "BridgeConfig",
    "RidgeMap",
    "content_matrix",
    "extend_model",
    "fit_bridge",
    "fit_ridge",
    "item_tables",
]
