"""One smoke test per model, plus the properties the trainer and serving rely on."""

import dataclasses
import logging
import math

import pytest
import torch

from sicsrec.config import ModelConfig, TrainConfig
from sicsrec.eval.evaluate import evaluate_model, evaluate_popularity
from sicsrec.model import MODELS, SASRec, SICSRec
from sicsrec.train.trainer import Trainer
from sicsrec.train.two_step import build_model, train_model
from tests.helpers import synthetic_split, synthetic_tables

CFG = ModelConfig(hidden=32, ffn=32, max_len=20, dropout=0.1, attn_dropout=0.1)


@pytest.fixture(scope="module")
def split():
    return synthetic_split()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_smoke_each_model_forward_loss_and_score(name, split):
    torch.manual_seed(0)
    model = build_model(name, CFG, split, synthetic_tables(split, image_dim=12))
    seq, tgt = split.train_inputs[:8, :15], split.train_targets[:8, :15]
    out = model(seq)
    assert out.user.shape == (8, 15, 32)
    loss = model.calculate_loss(seq, tgt)
    assert torch.isfinite(loss.total) and loss.total.requires_grad
    loss.total.backward()
    model.eval()
    scores = model.score(split.test.history[:5, :20], split.test.lengths[:5])
    assert scores.shape == (5, split.n_items + 1) and torch.isinf(scores[:, 0]).all()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_outputs_are_causal_and_ignore_right_padding(name, split):
    torch.manual_seed(0)
    model = build_model(name, CFG, split, synthetic_tables(split)).eval()
    seq = torch.tensor([[3, 5, 7, 9, 0, 0]])
    changed = torch.tensor([[3, 5, 7, 11, 4, 2]])
    with torch.no_grad():
        a, b = model(seq).user, model(changed).user
    assert torch.allclose(a[:, :3], b[:, :3], atol=1e-6)  # positions before the change are unaffected
    assert not torch.allclose(a[:, 3], b[:, 3])


def test_attribution_parts_sum_to_the_user_vector(split):
    torch.manual_seed(0)
    model = build_model("sicsrec", CFG, split, synthetic_tables(split, image_dim=12)).eval()
    out = model.user_vectors(split.test.history[:4], split.test.lengths[:4])
    total = sum(out.parts.values()) * out.part_scale
    assert torch.allclose(total, out.user, atol=1e-6)
    assert torch.allclose(out.user.norm(dim=-1), torch.ones(4), atol=1e-5)


def test_text_only_model_has_no_image_branch(split):
    model = build_model("sicsrec", CFG, split, synthetic_tables(split))
    assert model.content.image is None
    assert not any("image" in k or "mlp_v" in k for k in model.state_dict())


def _fit(name, split, epochs=8, **train_kw):
    cfg = TrainConfig(max_epochs=epochs, patience=epochs, batch_size=256, device="cpu", **train_kw)
    trainer = Trainer(cfg, torch.device("cpu"), show_bar=False)
    return train_model(name, split, synthetic_tables(split), CFG, cfg, trainer)


@pytest.mark.slow
def test_sasrec_learns_the_walk_and_beats_popularity(split):
    trained = _fit("sasrec", split)
    losses = [h.loss["rec"] for h in trained.fits[0].history]
    assert losses[-1] < losses[0] * 0.8
    assert evaluate_model(trained.model, split.test)["ndcg@10"] > 2 * evaluate_popularity(split)["test"]["ndcg@10"]


@pytest.mark.slow
def test_two_step_freezes_the_id_transformer_and_trains_adapters(split):
    trained = _fit("sicsrec", split, epochs=3)
    model = trained.model
    assert isinstance(model, SICSRec) and len(trained.fits) == 2
    assert [f.stage for f in trained.fits] == ["sasrec", "sicsrec step 2"]
    # Re-train step 1 (seeded, so identical) to compare the frozen weights with what step 2 ended with.
    cfg = TrainConfig(max_epochs=3, patience=3, batch_size=256, device="cpu")
    ref = train_model("sasrec", split, None, CFG, cfg, Trainer(cfg, torch.device("cpu"), show_bar=False)).model
    assert isinstance(ref, SASRec)
    ref_blocks = ref.id_encoder.encoder.blocks.state_dict()
    frozen = {k: v for k, v in model.id_encoder.encoder.blocks.state_dict().items() if "adapter" not in k}
    assert frozen.keys() == ref_blocks.keys()
    for k, v in frozen.items():
        assert torch.equal(v, ref_blocks[k]), k
    adapters = [p for n, p in model.named_parameters() if "adapter" in n]
    assert len(adapters) == 2 * 2 * CFG.layers  # down+up, after attention and after FFN, per layer
    assert all(p.requires_grad for p in adapters)
    assert any(p.abs().sum() > 0 for n, p in model.named_parameters() if "adapter.up" in n)  # moved from zero-init


@pytest.mark.slow
def test_unfreezing_step1_lets_step_2_move_the_id_transformer(split):
    cfg = TrainConfig(max_epochs=2, patience=2, batch_size=256, device="cpu", freeze_step1=False)
    trainer = Trainer(cfg, torch.device("cpu"), show_bar=False)
    step1 = train_model("sasrec", split, None, CFG, cfg, trainer)
    before = {k: v.clone() for k, v in step1.model.id_encoder.encoder.blocks.state_dict().items()}
    model = train_model("sicsrec", split, synthetic_tables(split), CFG, cfg, trainer, step1=step1).model
    after = model.id_encoder.encoder.blocks.state_dict()
    assert all(p.requires_grad for p in model.id_encoder.encoder.blocks.parameters())
    assert any(not torch.equal(after[k], v) for k, v in before.items())  # step 2 trained them


@pytest.mark.slow
@pytest.mark.parametrize("init", ["identity", "identity_matched"])
def test_identity_fusion_starts_step_2_at_step_1s_cosine_ranking(init, split):
    cfg = TrainConfig(max_epochs=2, patience=2, batch_size=256, device="cpu")
    step1 = train_model("sasrec", split, None, CFG, cfg, Trainer(cfg, torch.device("cpu"), show_bar=False))
    ident = dataclasses.replace(CFG, fusion_init=init)
    model = build_model("sicsrec", ident, split, synthetic_tables(split))
    model.load_step1(step1.model)
    model.eval()
    step1.model.eval()
    seq, lengths = split.test.history, split.test.lengths
    step1_user = step1.model.user_vectors(seq, lengths).user
    out = model.user_vectors(seq, lengths)
    torch.testing.assert_close(out.user, torch.nn.functional.normalize(step1_user, dim=-1))
    assert out.parts["content"].abs().max() == 0 and out.parts["mixed"].abs().max() == 0
    gain = model.fusion.weight[0, 0].item()
    assert gain == pytest.approx(1.0 if init == "identity" else 0.02 * CFG.hidden**0.5)
    # The default random fusion mixes all three streams: its start is not step 1's user vector.
    random_start = build_model("sicsrec", CFG, split, synthetic_tables(split))
    random_start.load_step1(step1.model)
    random_start.eval()
    assert not torch.allclose(random_start.user_vectors(seq, lengths).user, out.user, atol=1e-3)
    with pytest.raises(ValueError, match="fusion_init"):
        build_model("sicsrec", dataclasses.replace(CFG, fusion_init="eye"), split, synthetic_tables(split))


@pytest.mark.parametrize("image_dim", [None, 12])
def test_content_rows_of_a_batch_equal_the_full_table_rows(image_dim, split):
    """The content branch computes each distinct item once per batch; the rows must be the table's."""
    torch.manual_seed(0)
    model = build_model("content", CFG, split, synthetic_tables(split, image_dim=image_dim))
    seq = split.train_inputs[:16, :15]  # repeats and padding
    rows, table = model.content(seq), model.content()
    assert rows.shape == (*seq.shape, 32)
    torch.testing.assert_close(rows, table[seq], rtol=1e-5, atol=1e-6)
    rows.sum().backward()  # gradients reach the feature tables through the distinct rows
    assert model.content.text.weight.grad[seq.unique()].abs().sum() > 0


@pytest.mark.slow
def test_the_kept_epoch_is_the_best_on_the_stop_metric(split, caplog):
    # lr 3e-3 over 8 seeded epochs: valid HR@10 and NDCG@5 peak at different epochs on this split
    kept = {}
    for metric in ("hr@10", "ndcg@5"):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="sicsrec"):
            trained = _fit("sasrec", split, epochs=8, lr=3e-3, stop_metric=metric)
        epoch_lines = [r.getMessage() for r in caplog.records if " epoch " in r.getMessage()]
        assert len(epoch_lines) == 8 and all("valid hr@10 " in ln and f" {metric} " in ln for ln in epoch_lines)
        fit = trained.fits[0]
        scores = [h.valid[metric] for h in fit.history]
        assert fit.best_epoch == scores.index(max(scores)) + 1
        assert evaluate_model(trained.model, split.valid)[metric] == pytest.approx(max(scores))
        kept[metric] = fit.best_epoch
    assert kept["hr@10"] != kept["ndcg@5"]  # so the metric, not the epoch count, chose the epoch


def test_a_diverging_run_stops_with_a_clear_message(split):
    # Adam steps ~lr: at 1e10 the weights overflow in the first epoch, so there is no epoch to keep.
    with pytest.raises(ValueError, match=r"not finite at epoch 1.*lower --lr"):
        _fit("sasrec", split, epochs=2, lr=1e10)


def test_an_unknown_stop_metric_is_refused(split):
    with pytest.raises(ValueError, match="stop_metric 'mrr'"):
        _fit("sasrec", split, epochs=1, stop_metric="mrr")


@pytest.mark.slow
def test_the_id_control_trains_like_step_2_without_content(split):
    trained = _fit("id_control", split, epochs=2)
    model = trained.model
    assert [f.stage for f in trained.fits] == ["sasrec", "id_control step 2"]
    assert not model.uses_content and not any("content" in n for n, _ in model.named_parameters())
    assert model.cfg.id_adapters and model.logit_scale == 1 / CFG.temperature  # step 2's adapters and cosine/tau
    loss = model.train().calculate_loss(split.train_inputs[:8, :15], split.train_targets[:8, :15])
    assert set(loss.parts) == {"rec", "reg"}  # no L_CL: there is no content to contrast with


def test_the_content_baseline_trains_with_the_references_terms_unless_switched_off(split):
    seq, tgt = split.train_inputs[:8, :15], split.train_targets[:8, :15]
    tables = synthetic_tables(split)
    torch.manual_seed(0)
    full = build_model("content", CFG, split, tables).calculate_loss(seq, tgt)
    torch.manual_seed(0)
    ce_only = build_model("content", dataclasses.replace(CFG, content_aux_losses=False), split, tables)
    plain = ce_only.calculate_loss(seq, tgt)
    assert set(full.parts) == {"rec", "cl", "reg"} and set(plain.parts) == {"rec"}
    assert math.isclose(full.parts["rec"], plain.parts["rec"], rel_tol=1e-6)  # the same model, more terms


def test_content_items_scores_items_by_id_and_content_together(split):
    """Beyond the paper, off by default: the spec's model scores normalize(E) alone; `content_items` scores
    normalize(normalize(E) + c), so two items with one ID vector but different content rank apart."""
    torch.manual_seed(0)
    tables = synthetic_tables(split, image_dim=12)
    spec = build_model("sicsrec", CFG, split, tables).eval()
    both = build_model("sicsrec", dataclasses.replace(CFG, content_items=True), split, tables).eval()
    both.load_state_dict(spec.state_dict())
    e = torch.nn.functional.normalize(spec.id_encoder.item_emb.weight, dim=-1)
    with torch.no_grad():
        torch.testing.assert_close(spec.item_table(), e)
        c = both.content()
        torch.testing.assert_close(both.item_table(), torch.nn.functional.normalize(e + c, dim=-1))
        both.id_encoder.item_emb.weight[2] = both.id_encoder.item_emb.weight[1]  # one ID vector, two contents
        scores = both.score(split.test.history[:3, :20], split.test.lengths[:3])
    assert not torch.allclose(scores[:, 1], scores[:, 2])


def test_content_items_flag_reaches_the_model_config():
    from sicsrec.cli import build_parser, run_config

    on = run_config(build_parser().parse_args(["compare", "--out", "x", "--content-items"]))
    off = run_config(build_parser().parse_args(["compare", "--out", "x"]))
    assert on.model_cfg.content_items and not off.model_cfg.content_items


def test_a_gated_item_side_trusts_ids_by_their_training_count(split):
    """content_items_gate K: an item's ID part weighs n/(n+K); a never-seen item (n = 0), such as one added
    after training through the bridge, is scored by its content alone."""
    from sicsrec.serve.bridge import ITEM_TABLES, extend_model

    torch.manual_seed(0)
    cfg = dataclasses.replace(CFG, content_items=True, content_items_gate=10.0)
    model = build_model("sicsrec", cfg, split, synthetic_tables(split)).eval()
    n = torch.bincount(split.train_targets.flatten(), minlength=split.n_items + 1).float()
    n[0] = 0
    torch.testing.assert_close(model.item_gate, n / (n + 10.0))
    with torch.no_grad():
        e, c = torch.nn.functional.normalize(model.id_encoder.item_emb.weight, dim=-1), model.content()
        expected = torch.nn.functional.normalize(model.item_gate[:, None] * e + c, dim=-1)
        torch.testing.assert_close(model.item_table(), expected)
        rows = {k: torch.randn(2, t.shape[1]) for k, t in model.state_dict().items() if k in ITEM_TABLES}
        grown = extend_model(model, rows)
        assert grown.item_gate[-2:].tolist() == [0.0, 0.0]
        torch.testing.assert_close(grown.item_table()[-2:], grown.content()[-2:])  # content alone
        torch.testing.assert_close(grown.item_table()[: split.n_items + 1], model.item_table())
    assert not hasattr(build_model("sicsrec", CFG, split, synthetic_tables(split)), "item_gate")  # the spec's
