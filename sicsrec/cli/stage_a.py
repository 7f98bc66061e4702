"""Stage-A subcommands: `mine-pairs`, `align` and the whole `pipeline`.

    python -m sicsrec mine-pairs --data PATH --out DIR [--backend smollm2|openai|hf|embedding] [--max-users 200]
    python -m sicsrec align      --data PATH --pairs DIR [--optimizer adamw --lr 1e-4]
    python -m sicsrec pipeline   --data PATH --out DIR     mine-pairs -> align -> step 1 -> step 2 -> evaluate

`pipeline` is `run_experiment` with stage A and `resume`: it skips a stage whose output is current
(pairs.json with the same settings and data, aligned features cached for the same provenance,
results.json for the same run config).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sicsrec.cli.args import (
    align_args,
    align_config,
    backend_from,
    data_args,
    mining_args,
    mining_settings,
    run_config,
    train_args,
)
from sicsrec.cli.commands import print_results
from sicsrec.features.encoders import trainable_text_encoder
from sicsrec.stage_a.align import AlignResult
from sicsrec.stage_a.pairs import MiningResult


def print_mining(result: MiningResult, path: Path) -> None:
    """Counts of one mining run, with the fallback label when no LLM answered."""
    meta = result.meta
    label = "  [FALLBACK: no LLM, MiniLM title similarity]" if meta["fallback"] else ""
    print(f"mine-pairs: backend {meta['backend']} ({meta['model']}){label}")
    print("counts: " + ", ".join(f"{k}={v}" for k, v in result.counts.items()))
    print(f"wrote {path / 'pairs.csv'} ({len(result.pairs)} pairs) and {path / 'pairs.json'}")


def print_align(result: AlignResult) -> None:
    """Source, counts and the loss curve of one alignment run."""
    state = "already cached, not retrained" if result.skipped else f"{result.seconds:.0f} s"
    print(f"align: {result.source} ({state})")
    if result.counts:
        print("counts: " + ", ".join(f"{k}={v}" for k, v in result.counts.items()))
    for h in result.history:
        losses = " ".join(f"{k}={v:.4f}" for k, v in h.items() if k not in ("epoch", "steps"))
        print(f"  epoch {h['epoch']:3d}: {losses}")


def cmd_mine_pairs(args: argparse.Namespace) -> int:
    """Ask the LLM backend for each user's next-item pair and write pairs.csv (stage A, step 1)."""
    from sicsrec.run.prepare import load_data
    from sicsrec.stage_a.pairs import mine_pairs

    cfg = run_config(args, stage_a=True)
    result = mine_pairs(
        load_data(cfg.data), args.out, backend_from(args), settings=mining_settings(args), replies_path=args.replies
    )
    print_mining(result, Path(args.out))
    return 0


def cmd_align(args: argparse.Namespace) -> int:
    """Fine-tune the encoders on mined pairs and cache the aligned features (stage A, step 2)."""
    from sicsrec.run.prepare import load_data
    from sicsrec.stage_a.align import align
    from sicsrec.train.trainer import set_threads

    set_threads(args.threads)
    cfg = run_config(args, stage_a=True)
    pairs = Path(args.pairs)
    out = Path(args.out) if args.out else (pairs if pairs.is_dir() else pairs.parent)
    text_encoder, note = trainable_text_encoder(cfg.features.text_encoder)
    if note:
        print(note)
    result = align(
        load_data(cfg.data),
        pairs,
        out,
        align_config(args, cfg.features.use_images),
        text_encoder,
        cfg.features.image_encoder,
        force=args.force,
    )
    print_align(result)
    print(f"wrote {out / 'align.json'}; use it with --features aligned")
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    """Stage A then stage B in one command: mine pairs, align, train and compare on aligned features."""
    from sicsrec.run.experiment import StageAPlan, run_experiment

    cfg = run_config(args, stage_a=True)
    plan = StageAPlan(
        mine=True,
        align=True,
        backend=backend_from(args),
        mining=mining_settings(args),
        align_cfg=align_config(args, cfg.features.use_images),
        replies=args.replies,
    )
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    done = run_experiment(
        cfg, args.out, models, stage_a=plan, resume=not args.force, force=args.force, continue_run=args.continue_run
    )
    out = Path(args.out)
    if done.mining is not None:
        print_mining(done.mining, out / "pairs")
    if done.aligned is not None:
        print_align(done.aligned)
    for stage in done.skipped:
        print(f"{stage}: current, skipped")
    print_results(done.results, out)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the mine-pairs, align and pipeline subcommands to the CLI's subparsers."""
    s = sub.add_parser("mine-pairs", help="stage A1: one LLM query per user -> positive item pairs (pairs.csv)")
    data_args(s)
    mining_args(s)
    s.add_argument(
        "--reference",
        default="",
        help="1,2: run spec decision 1 (leaky target) / 2 (misaligned titles) as the authors' code did",
    )
    s.add_argument("--out", required=True, help="folder for pairs.csv, pairs.json and the reply cache")
    s.set_defaults(fn=cmd_mine_pairs)

    s = sub.add_parser("align", help="stage A2: fine-tune the encoders on the pairs, cache aligned features")
    data_args(s)
    align_args(s)
    s.add_argument("--pairs", required=True, help="pairs.csv or the mine-pairs folder")
    s.add_argument("--out", default=None, help="folder for align.json [the pairs folder]")
    s.add_argument("--seed", type=int, default=2025)
    s.add_argument(
        "--reference", default="", help="3: run spec decision 3 (untrained projection heads) as the authors' code did"
    )
    s.add_argument("--force", action="store_true", help="retrain even when the aligned features are cached")
    s.set_defaults(fn=cmd_align)

    s = sub.add_parser("pipeline", help="mine-pairs -> align -> step 1 -> step 2 -> evaluate (current stages skipped)")
    data_args(s)
    train_args(s)
    mining_args(s)
    align_args(s, prefix="align-")
    s.add_argument("--out", required=True, help="run folder: pairs/, align/, checkpoints/, results.json")
    s.add_argument("--models", default="sasrec,sicsrec", help="models to train and evaluate [sasrec,sicsrec]")
    s.add_argument("--force", action="store_true", help="redo every stage")
    s.set_defaults(fn=cmd_pipeline)
