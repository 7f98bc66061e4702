"""Stage-B subcommands: prepare, train, compare, evaluate, recommend, add-items: each parses nothing and decides
nothing; it builds the configs (`cli.args`), calls the library and prints."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from sicsrec import dist
from sicsrec.cli.args import run_config
from sicsrec.config import RunConfig
from sicsrec.eval.results import Results
from sicsrec.events import ProgressEvent, ProgressHook, event_to_json


def print_results(results: Results, out: str | Path) -> None:
    """The comparison table of a finished run and where its results.json went."""
    print(f"\n{results.dataset}: {', '.join(f'{k}={v:,}' for k, v in results.split.items())}\n")
    print(results.markdown_table())
    print(f"\nranking: {results.ranking}")
    print(f"wrote {Path(out) / 'results.json'}")


def cmd_prepare(args: argparse.Namespace) -> int:
    """Load, validate and split a dataset, cache its features, print the report."""
    from sicsrec.run.prepare import prepare

    cfg = run_config(args)
    prep = prepare(cfg.data, None if args.no_features else cfg.features, args.device)
    print(prep.dataset.report.to_text())
    print("split: " + ", ".join(f"{k}={v:,}" for k, v in prep.split.counts().items()))
    if prep.features_meta:
        print("features: " + json.dumps(prep.features_meta, default=str)[:2000])
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Train the chosen models on one split and print their full-ranking metrics side by side."""
    from sicsrec.run.experiment import run_experiment

    models = tuple(m.strip() for m in args.models.split(","))
    cfg = run_config(args)
    if args.run_config:
        try:
            cfg = RunConfig.from_dict(json.loads(Path(args.run_config).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, AttributeError) as e:
            raise ValueError(f"--run-config {args.run_config}: not a run's settings as JSON ({e})") from None
    with event_log(args.events) as progress:
        done = run_experiment(
            cfg, args.out, models, resume=args.resume, continue_run=args.continue_run, progress=progress
        )
    print_results(done.results, args.out)
    return 0


@contextlib.contextmanager
def event_log(path: str | None) -> Iterator[ProgressHook | None]:
    """A progress hook appending each event as a JSON line to `path` (flushed per line: a reader follows it live),
    on the main rank only; no hook without a path."""
    if not path or not dist.is_main():
        yield None
        return
    with open(path, "a", encoding="utf-8") as f:

        def write(event: ProgressEvent) -> None:
            f.write(event_to_json(event) + "\n")
            f.flush()

        yield write


def cmd_train(args: argparse.Namespace) -> int:
    """Train one model (SICSRec with its step-1 SASRec) and print where its checkpoint went."""
    from sicsrec.model import MODELS
    from sicsrec.run.experiment import run_experiment

    two_step = MODELS[args.model].starts_from_step1 and not args.one_step
    models = ("sasrec", args.model) if two_step else (args.model,)
    done = run_experiment(run_config(args, args.model), args.out, models, continue_run=args.continue_run)
    print(done.results.markdown_table())
    print(f"checkpoint: {Path(args.out) / 'checkpoints' / args.model}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Re-rank the valid and test users of a checkpoint's dataset with its model."""
    from sicsrec.eval.evaluate import evaluate_model
    from sicsrec.eval.metrics import TIE_RULE
    from sicsrec.run.prepare import load_data, split_data
    from sicsrec.serve import Recommender

    rec = Recommender.load(args.checkpoint)
    run = rec.config.get("run", {})
    data = RunConfig.from_dict(run).data  # unknown keys (another version's checkpoint) ignored
    data.path = args.data or data.path
    split = split_data(load_data(data), data)
    if [str(x) for x in split.item_ids] != rec.item_ids:
        print("error: the checkpoint's item catalogue differs from this dataset's split", file=sys.stderr)
        return 2
    out = {s: evaluate_model(rec.model, getattr(split, s), memory_mb=args.eval_memory_mb) for s in ("valid", "test")}
    print(json.dumps({"checkpoint": str(args.checkpoint), "model": rec.name, **out, "ranking": TIE_RULE}, indent=2))
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    """Top-k recommendations for a click history from a checkpoint: a table, or the API's response object (--json)."""
    from sicsrec.serve import Recommender, response
    from sicsrec.serve.index import IndexConfig

    rec = Recommender.load(args.checkpoint, index=IndexConfig(kind=args.index))
    res = rec.recommend(args.history, args.k, exclude_history=not args.keep_history)
    if res.message:  # also with --json (where they are the object's warnings): a person may be reading stderr
        print(res.message, file=sys.stderr)
    if args.json:
        print(json.dumps(response(res), ensure_ascii=False, indent=2))
    else:
        for i, it in enumerate(res.items, 1):
            print(
                f"{i:2d}. {it['title'][:60]:60s} {it['score']:+.4f}  (behavior {it['behavior']:+.3f}, "
                f"content {it['content']:+.3f}, mixed {it['mixed']:+.3f}, bias {it['bias']:+.3f})"
                + ("  new: scored from content" if it.get("scored_by") == "content" else "")
            )
    return 0


def cmd_add_items(args: argparse.Namespace) -> int:
    """Write a checkpoint with new items added from their titles (and covers); print what was skipped and added."""
    from sicsrec.serve.add_items import add_items

    done = add_items(args.checkpoint, args.items, args.images, args.out)
    print("\n".join(done.messages), file=sys.stderr)
    print(f"checkpoint: {done.path}")
    return 0


__all__ = [
    "cmd_add_items",
    "cmd_compare",
    "cmd_evaluate",
    "cmd_prepare",
    "cmd_recommend",
    "cmd_train",
    "event_log",
    "print_results",
]
