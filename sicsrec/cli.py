"""Command-line interface: one subcommand per pipeline stage, each a thin call into the library.

    python -m sicsrec prepare   --data PATH        load, validate (report), split, extract features
    python -m sicsrec train     --data PATH --model sicsrec --out DIR
    python -m sicsrec evaluate  --checkpoint DIR --data PATH
    python -m sicsrec compare   --data PATH --out DIR          SICSRec vs baselines, results.json
    python -m sicsrec recommend --checkpoint DIR --history ID,ID --json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from sicsrec.config import FUSION_INITS, STOP_METRICS, DataConfig, FeatureConfig, ModelConfig, RunConfig, TrainConfig

log = logging.getLogger("sicsrec")

# Spec decision number -> (config section, field) whose False reproduces the reference code. "mining"
# (MiningSettings) and "align" (AlignConfig) are stage A's, applied by mine-pairs / align / pipeline.
# Not switchable: 4 (the reference fine-tuned BERT's pooler, then extracted the raw CLS state; our
# encoders have no pooler to discard) and 9 (the reference's 300-d step 1 cannot load into its 256-d step 2).
REFERENCE_SWITCHES = {
    1: ("mining", "training_part_only"),
    2: ("mining", "candidate_titles_aligned"),
    3: ("align", "train_heads"),
    5: ("model_cfg", "chain_mix_decoder"),
    6: ("model_cfg", "lora_both_sublayers"),
    7: ("train", "remove_false_negatives"),
    8: ("model_cfg", "normalized_item_scoring"),
}


def _data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data", default="demo", help="dataset folder, or 'demo' (embedded MovieLens) [demo]")
    g.add_argument("--format", default="auto", choices=["auto", "csv", "recbole", "ninerec", "movielens"])
    g.add_argument("--images", default=None, help="folder of <item_id>.jpg covers/posters (turns the image branch on)")
    g.add_argument("--min-user-interactions", type=int, default=5)
    g.add_argument("--min-item-interactions", type=int, default=0)
    g.add_argument("--max-len", type=int, default=50, help="history length L [50]")
    g.add_argument("--window-stride", type=int, default=None, help="window advance for sequences longer than L [L/2]")
    g.add_argument("--train-rows", default="windows", choices=["windows", "prefixes"],
                   help="one causal pass per window [windows], or RecBole's one row per target (slower; "
                        "more progress per epoch on long sequences)")
    f = p.add_argument_group("content features")
    f.add_argument("--text-encoder", default="minilm",
                   help="minilm [default] | clip:<local weights file> (open_clip ViT-B-32 text tower)")
    f.add_argument("--image-encoder", default="efficientnet-lite0",
                   help="efficientnet-lite0 [default] | clip:<local weights file> (open_clip ViT-B-32 image tower)")
    f.add_argument("--no-images", action="store_true", help="ignore images even when the dataset has them")
    f.add_argument("--features", default="raw", choices=["raw", "aligned"], help="raw encoder features or stage-A aligned ones")
    f.add_argument("--image-norm", default="center_l2", choices=["center_l2", "none"],
                   help="image feature rows: centred + unit norm like the text rows [center_l2], or raw")
    p.add_argument("--device", default="auto", help="auto (CUDA when present) | cpu | cuda[:N]")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("-v", "--verbose", action="store_true")


def _train_args(p: argparse.ArgumentParser) -> None:
    d, t = ModelConfig(), TrainConfig()
    g = p.add_argument_group("model and training (defaults = the spec)")
    g.add_argument("--hidden", type=int, default=d.hidden)
    g.add_argument("--layers", type=int, default=d.layers)
    g.add_argument("--heads", type=int, default=d.heads)
    g.add_argument("--dropout", type=float, default=d.dropout)
    g.add_argument("--lora-rank", type=int, default=d.lora_rank)
    g.add_argument("--lr", type=float, default=t.lr)
    g.add_argument("--batch-size", type=int, default=t.batch_size, help="prediction targets per batch")
    g.add_argument("--length-pool", type=int, default=t.length_pool,
                   help=f"sort windows by length within pools of this many batches (fewer padded positions; "
                        f"0 = random batches) [{t.length_pool}]")
    g.add_argument("--max-epochs", type=int, default=t.max_epochs)
    g.add_argument("--patience", type=int, default=t.patience)
    g.add_argument("--stop-metric", default=t.stop_metric, choices=list(STOP_METRICS),
                   help=f"validation metric for early stopping and the kept epoch [{t.stop_metric}]")
    g.add_argument("--alpha", type=float, default=t.alpha, help="weight of the content-aware contrastive loss")
    g.add_argument("--reg-lambda", type=float, default=t.reg_lambda)
    g.add_argument("--seed", type=int, default=t.seed)
    a = p.add_argument_group("ablations and reference behaviour")
    a.add_argument("--no-content-encoder", action="store_true")
    a.add_argument("--no-mix-decoder", action="store_true")
    a.add_argument("--no-cl", action="store_true", help="drop L_CL")
    a.add_argument("--one-step", action="store_true", help="train SICSRec from scratch (no frozen step-1 encoder)")
    a.add_argument("--unfreeze-step1", action="store_true",
                   help="step 2 starts from step 1 but fine-tunes its ID Transformer too (diagnostic)")
    a.add_argument("--fusion-init", default=d.fusion_init, choices=list(FUSION_INITS),
                   help="fusion layer at the start of step 2: random N(0, 0.02), or identity on the ID part "
                        "(identity_matched: scaled to a random block's norm) and zero on the content parts "
                        "(step 2 starts from step 1's user vector)")
    a.add_argument("--reference", default="", help="comma list of spec decisions to run as the authors' code did: "
                   "5,6,7,8 (stage B); 1,2,3 (stage A: mine-pairs, align, pipeline)")


def run_config(args: argparse.Namespace, model: str = "sicsrec") -> RunConfig:
    """Build the RunConfig from parsed arguments (unset training flags keep the spec's defaults)."""
    data = DataConfig(args.data, args.format, args.images, args.min_user_interactions, args.min_item_interactions,
                      args.max_len, args.window_stride, args.train_rows)
    feats = FeatureConfig(args.text_encoder, None if args.no_images else args.image_encoder,
                          False if args.no_images else None, args.features, args.image_norm)
    cfg = RunConfig(model, data, feats, ModelConfig(max_len=args.max_len), TrainConfig(device=args.device, threads=args.threads))
    if hasattr(args, "hidden"):
        m, t = cfg.model_cfg, cfg.train
        m.hidden, m.ffn, m.layers, m.heads, m.dropout, m.attn_dropout = args.hidden, args.hidden, args.layers, args.heads, args.dropout, args.dropout
        m.lora_rank, m.fusion_init = args.lora_rank, args.fusion_init
        m.use_content_encoder, m.use_mix_decoder = not args.no_content_encoder, not args.no_mix_decoder
        t.lr, t.batch_size, t.max_epochs, t.patience = args.lr, args.batch_size, args.max_epochs, args.patience
        t.length_pool, t.stop_metric = args.length_pool, args.stop_metric
        t.alpha, t.reg_lambda, t.seed = args.alpha, args.reg_lambda, args.seed
        t.use_cl_loss, t.two_step, t.freeze_step1 = not args.no_cl, not args.one_step, not args.unfreeze_step1
        stage_a = hasattr(args, "max_candidates") or hasattr(args, "align_lr")  # a command that runs stage A
        for num in reference_decisions(args.reference):
            section, name = REFERENCE_SWITCHES[num]
            if hasattr(cfg, section):
                setattr(getattr(cfg, section), name, False)
            elif not stage_a:
                raise SystemExit(f"--reference {num}: a stage-A decision; use it with mine-pairs, align or pipeline")
    return cfg


def reference_decisions(text: str, sections: tuple[str, ...] | None = None) -> set[int]:
    """The decision numbers of a --reference list ("5,7"), optionally only those of `sections`."""
    nums = set()
    for num in filter(None, (s.strip() for s in text.split(","))):
        if not num.isdigit() or int(num) not in REFERENCE_SWITCHES:
            raise SystemExit(f"--reference: unknown decision {num!r}; switchable: {sorted(REFERENCE_SWITCHES)}")
        nums.add(int(num))
    return {n for n in nums if sections is None or REFERENCE_SWITCHES[n][0] in sections}


def cmd_prepare(args: argparse.Namespace) -> int:
    """Load, validate and split a dataset, cache its features, print the report."""
    from sicsrec.pipeline import prepare

    cfg = run_config(args)
    prep = prepare(cfg.data, None if args.no_features else cfg.features, args.device)
    print(prep.dataset.report.to_text())
    print("split: " + ", ".join(f"{k}={v:,}" for k, v in prep.split.counts().items()))
    if prep.features_meta:
        print("features: " + json.dumps(prep.features_meta, default=str)[:2000])
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Train the chosen models on one split and print their full-ranking metrics side by side."""
    from sicsrec.eval.compare import markdown_table, run_compare

    models = tuple(m.strip() for m in args.models.split(","))
    results = run_compare(run_config(args), args.out, models, resume=args.resume)
    print(f"\n{results['dataset']}: {', '.join(f'{k}={v:,}' for k, v in results['split'].items())}\n")
    print(markdown_table(results))
    print(f"\nwrote {Path(args.out) / 'results.json'}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train one model (SICSRec with its step-1 SASRec) and print where its checkpoint went."""
    from sicsrec.eval.compare import markdown_table, run_compare

    models = ("sasrec", "sicsrec") if args.model == "sicsrec" and not args.one_step else (args.model,)
    results = run_compare(run_config(args, args.model), args.out, models)
    print(markdown_table(results))
    print(f"checkpoint: {Path(args.out) / 'checkpoints' / args.model}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Re-rank the valid and test users of a checkpoint's dataset with its model."""
    from sicsrec.eval.evaluate import evaluate_model
    from sicsrec.pipeline import load_data, split_data
    from sicsrec.serve import Recommender

    rec = Recommender.load(args.checkpoint)
    run = rec.config.get("run", {})
    data = RunConfig.from_dict(run).data  # unknown keys (another version's checkpoint) ignored
    data.path = args.data or data.path
    split = split_data(load_data(data), data)
    if [str(x) for x in split.item_ids] != rec.item_ids:
        print("error: the checkpoint's item catalogue differs from this dataset's split", file=sys.stderr)
        return 2
    out = {s: evaluate_model(rec.model, getattr(split, s)) for s in ("valid", "test")}
    print(json.dumps({"checkpoint": str(args.checkpoint), "model": rec.name, **out}, indent=2))
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    """Top-k recommendations for a click history from a checkpoint, as JSON."""
    from sicsrec.serve import Recommender
    from sicsrec.serve.index import IndexConfig

    rec = Recommender.load(args.checkpoint, index=IndexConfig(kind=args.index))
    history = [h for h in args.history.split(",") if h.strip()]
    res = rec.recommend(history, args.k, exclude_history=not args.keep_history)
    if res.message:
        print(res.message, file=sys.stderr)
    if args.json:
        print(json.dumps(rec.to_json(res), ensure_ascii=False, indent=2))
    else:
        for i, it in enumerate(res.items, 1):
            print(f"{i:2d}. {it['title'][:60]:60s} {it['score']:+.4f}  (behavior {it['behavior']:+.3f}, "
                  f"content {it['content']:+.3f}, mixed {it['mixed']:+.3f}, bias {it['bias']:+.3f})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The `python -m sicsrec` parser: one sub-command per pipeline stage."""
    p = argparse.ArgumentParser(prog="python -m sicsrec", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("prepare", help="load + validate a dataset, print the report and split, cache features")
    _data_args(s)
    s.add_argument("--no-features", action="store_true", help="skip content feature extraction")
    s.set_defaults(fn=cmd_prepare)

    s = sub.add_parser("train", help="train one model (sicsrec: step 1 SASRec, then step 2) and save its checkpoint")
    _data_args(s)
    _train_args(s)
    s.add_argument("--model", default="sicsrec", choices=["sasrec", "content", "sicsrec"])
    s.add_argument("--out", required=True, help="run folder (checkpoints/<model>/, results.json)")
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("compare", help="train SASRec, ContentSeq and SICSRec on one split; print the table")
    _data_args(s)
    _train_args(s)
    s.add_argument("--out", required=True)
    s.add_argument("--models", default="sasrec,content,sicsrec",
                   help="comma list of sasrec, content, sicsrec (popularity is always evaluated) [all three]")
    s.add_argument("--resume", action="store_true", help="reuse finished checkpoints in --out trained with identical settings")
    s.set_defaults(fn=cmd_compare)

    s = sub.add_parser("evaluate", help="full-ranking HR/NDCG@5/10 of a checkpoint on its dataset's split")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--data", default=None, help="dataset (default: the one the checkpoint was trained on)")
    s.add_argument("-v", "--verbose", action="store_true")
    s.set_defaults(fn=cmd_evaluate)

    s = sub.add_parser("recommend", help="score a new click history with a checkpoint")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--history", default="", help="comma-separated item ids (the dataset's own), oldest first")
    s.add_argument("--k", type=int, default=10)
    s.add_argument("--keep-history", action="store_true", help="allow already-watched items")
    s.add_argument("--index", default="exact", choices=["exact", "flat", "ivf", "hnsw"],
                   help="top-k search: exact (default) or a faiss index for catalogues of 10^5+ items")
    s.add_argument("--json", action="store_true")
    s.add_argument("-v", "--verbose", action="store_true")
    s.set_defaults(fn=cmd_recommend)
    __import__("sicsrec.content.commands", fromlist=["register"]).register(sub, _data_args, _train_args)  # stage A
    return p


def main(argv: list[str] | None = None) -> int:
    """Run a sub-command; known failures print one `error:` line and exit 2, Ctrl-C exits 130."""
    from sicsrec.checkpoint import CheckpointError
    from sicsrec.content.encoders import EncoderUnavailableError
    from sicsrec.data.schema import DataError
    from sicsrec.utils import setup_logging

    args = build_parser().parse_args(argv)
    setup_logging(getattr(args, "verbose", False))
    try:
        return args.fn(args)
    except (DataError, CheckpointError, EncoderUnavailableError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


__all__ = ["main", "build_parser", "run_config"]
