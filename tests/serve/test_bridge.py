"""The content-to-ID bridge: the ridge fit, growing a model by new items, and where a bridged item ranks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sicsrec.config import ModelConfig
from sicsrec.data.split import Split
from sicsrec.model import MODELS, SeqRecModel
from sicsrec.serve.bridge import (
    IMAGE_MASK,
    ITEM_TABLES,
    BridgeConfig,
    content_matrix,
    extend_model,
    fit_bridge,
    fit_ridge,
    item_tables,
)
from sicsrec.train.two_step import build_model
from tests.conftest import SAVED_CFG
from tests.helpers import synthetic_tables


def test_ridge_recovers_a_linear_map_and_reports_its_fit() -> None:
    rng = np.random.default_rng(0)
    x, lift, w = rng.normal(size=(400, 12)), rng.normal(size=(12, 5)), rng.uniform(0.5, 2.0, 400)
    y = x @ lift + 3.0 + 0.01 * rng.normal(size=(400, 5))
    fit = fit_ridge(x, y, w)
    assert fit.loo_r2 > 0.99 and fit.spread == 1.0
    x_new = rng.normal(size=(7, 12))
    assert np.allclose(fit(x_new), x_new @ lift + 3.0, atol=0.05)
    noise = fit_ridge(x, rng.normal(size=(400, 5)), np.ones(400))  # content that says nothing about the table
    assert noise.loo_r2 < 0.05 and noise.lam > fit.lam
    # matched spread: the fitted deviations get the targets' spread (a near-perfect fit barely moves)
    assert 1.0 <= fit_ridge(x, y, w, match_spread=True).spread < 1.01
    noise_y = rng.normal(size=(400, 5))
    matched = fit_ridge(x, noise_y, np.ones(400), match_spread=True)
    dev = matched(x) - matched.y_mean  # (400, 5)
    assert matched.spread > 3 and np.isclose((dev**2).sum(), ((noise_y - noise_y.mean(0)) ** 2).sum())


def test_every_per_item_row_of_every_model_is_bridged() -> None:
    """A model added later with another per-item table must be listed, or new items would miss its rows."""
    n = 13  # an (n + 1)-row tensor is per item (max_len differs)
    cfg = ModelConfig(hidden=16, ffn=16, max_len=7, id_adapters=True)
    dims = {"text_dim": 8, "image_dim": 4}  # read by the content models
    for name, cls in MODELS.items():
        state = cls(cfg, n, **dims).state_dict()
        per_item = {k for k, v in state.items() if v.shape[:1] == (n + 1,)}
        assert per_item <= {*ITEM_TABLES, IMAGE_MASK}, name


@pytest.fixture(params=["sasrec", "content", "sicsrec"])
def linear_model(request: pytest.FixtureRequest, split: Split) -> tuple[SeqRecModel, np.ndarray]:
    """A model whose trained rows are exact linear functions of its items' content (x (N, p)), and x."""
    torch.manual_seed(0)
    tables = synthetic_tables(split, image_dim=12)
    model = build_model(request.param, SAVED_CFG, split, tables).eval()
    assert tables.image is not None and tables.image_mask is not None
    x = content_matrix(tables.text[1:].numpy(), tables.image[1:].numpy(), tables.image_mask[1:].numpy())
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for k, t in item_tables(model).items():
            lift = torch.randn(x.shape[1], t.shape[1], generator=gen) / x.shape[1] ** 0.5
            model.state_dict()[k][1:] = torch.as_tensor(x, dtype=torch.float32) @ lift
    return model, x


def _scores(model: SeqRecModel, histories: torch.Tensor) -> torch.Tensor:
    return model.score(histories, torch.full((len(histories),), histories.shape[1]))


def test_new_items_leave_existing_scores_unchanged(linear_model: tuple[SeqRecModel, np.ndarray]) -> None:
    model, x = linear_model
    counts = np.ones(len(x))
    grown = extend_model(model, fit_bridge(model, x, counts).rows(x[[4, 9, 30]] + 0.1), torch.tensor([1, 0, 1]) > 0)
    assert grown.n_items == model.n_items + 3
    hist = torch.tensor([[3, 4, 5, 6], [10, 11, 12, 13], [40, 41, 2, 7]])
    before, after = _scores(model, hist), _scores(grown, hist)
    assert after.shape == (3, model.n_items + 4)
    assert torch.allclose(after[:, : model.n_items + 1], before, atol=1e-6)


def test_a_new_item_copying_a_known_items_content_ranks_beside_it(linear_model: tuple[SeqRecModel, np.ndarray]) -> None:
    model, x = linear_model
    copied = 17
    bridge = fit_bridge(model, x, np.arange(len(x)) % 5 + 1.0, BridgeConfig(weights="log_count"))
    assert all(s["loo_r2"] > 0.9 for s in bridge.stats.values())
    grown = extend_model(model, bridge.rows(x[[copied - 1]]), torch.tensor([bool(x[copied - 1, -1])]))
    new = grown.n_items
    hist = torch.tensor([[3, 4, 5, 6], [15, 16, 18, 19], [40, 41, 2, 7], [50, 51, 52, 53]])
    scores = _scores(grown, hist)
    ranks = scores.argsort(dim=1, descending=True).argsort(dim=1)  # (B, N+2) rank of every item
    assert (ranks[:, new] - ranks[:, copied]).abs().max() <= 2
    spread = scores[:, 1:].max(dim=1).values - scores[:, 1:].min(dim=1).values
    assert ((scores[:, new] - scores[:, copied]).abs() < 0.02 * spread).all()


def test_counts_of_zero_teach_nothing_and_unknown_weights_are_refused(
    linear_model: tuple[SeqRecModel, np.ndarray],
) -> None:
    model, x = linear_model
    with pytest.raises(ValueError, match="at least 2 items"):
        fit_bridge(model, x, np.zeros(len(x)))
    with pytest.raises(ValueError, match="unknown bridge weights"):
        fit_bridge(model, x, np.ones(len(x)), BridgeConfig(weights="nope"))
    assert fit_bridge(model, x, np.r_[np.ones(30), np.zeros(len(x) - 30)]).n_fit == 30
