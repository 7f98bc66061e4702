"""Command-line interface: one subcommand per pipeline stage, each a thin call into the library.
`sicsrec` (the console script `pip install .` gives) and `python -m sicsrec` are the same command.

python -m sicsrec prepare   --data PATH        load, validate (report), split, extract features
python -m sicsrec train     --data PATH --model sicsrec --out DIR
python -m sicsrec evaluate  --checkpoint DIR --data PATH
python -m sicsrec compare   --data PATH --out DIR          SICSRec vs baselines, results.json
python -m sicsrec recommend --checkpoint DIR --history ID,ID --json
python -m sicsrec add-items --checkpoint DIR --items new.csv --out NEW_DIR   new items scored from their content
python -m sicsrec mine-pairs | align | pipeline            stage A (see sicsrec.cli.stage_a)
"""

from __future__ import annotations

import argparse
import sys

from sicsrec import __version__
from sicsrec.checkpoint import CheckpointError
from sicsrec.cli import stage_a
from sicsrec.cli.args import data_args, eval_memory_arg, run_config, train_args
from sicsrec.cli.commands import cmd_add_items, cmd_compare, cmd_evaluate, cmd_prepare, cmd_recommend, cmd_train
from sicsrec.data.schema import DataError
from sicsrec.features.encoders import EncoderUnavailableError
from sicsrec.model import MODELS
from sicsrec.serve.response import DEFAULT_K, MAX_K
from sicsrec.stage_a.llm import BackendError
from sicsrec.utils import setup_logging


def build_parser() -> argparse.ArgumentParser:
    """The `sicsrec` (= `python -m sicsrec`) parser: one sub-command per pipeline stage."""
    p = argparse.ArgumentParser(
        prog="sicsrec", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--version", action="version", version=f"sicsrec {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("prepare", help="load + validate a dataset, print the report and split, cache features")
    data_args(s)
    s.add_argument("--no-features", action="store_true", help="skip content feature extraction")
    s.set_defaults(fn=cmd_prepare)

    s = sub.add_parser("train", help="train one model (sicsrec: step 1 SASRec, then step 2) and save its checkpoint")
    data_args(s)
    train_args(s)
    s.add_argument("--model", default="sicsrec", choices=list(MODELS))
    s.add_argument("--out", required=True, help="run folder (checkpoints/<model>/, results.json)")
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("compare", help="train SASRec, ContentSeq and SICSRec on one split; print the table")
    data_args(s)
    train_args(s)
    s.add_argument("--out", required=True)
    s.add_argument(
        "--models",
        default="sasrec,content,sicsrec",
        help="comma list of sasrec, content, sicsrec and id_control (step 2's recipe without content, "
        "a control); popularity is always evaluated [sasrec,content,sicsrec]",
    )
    s.add_argument(
        "--resume", action="store_true", help="reuse finished checkpoints in --out trained with identical settings"
    )
    s.add_argument(
        "--run-config",
        default=None,
        help="a run's settings as JSON (the `config` of a results.json or checkpoint): used instead of the "
        "data, feature, model and training flags (how the app hands a job to torchrun)",
    )
    s.add_argument(
        "--events",
        default=None,
        help="append every progress event as a JSON line to this file (rank 0 only): how another process follows",
    )
    s.set_defaults(fn=cmd_compare)

    s = sub.add_parser("evaluate", help="full-ranking HR/NDCG@5/10 of a checkpoint on its dataset's split")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--data", default=None, help="dataset (default: the one the checkpoint was trained on)")
    eval_memory_arg(s)
    s.add_argument("-v", "--verbose", action="store_true")
    s.set_defaults(fn=cmd_evaluate)

    s = sub.add_parser("recommend", help="score a new click history with a checkpoint")
    s.add_argument("--checkpoint", required=True)
    s.add_argument(
        "--history",
        default="",
        help="comma-separated item ids (the dataset's own), oldest first; "
        "unknown ids are reported and skipped, a repeated id counts once at its latest position",
    )
    s.add_argument(
        "--k",
        default=DEFAULT_K,
        help=f"how many items: a whole number from 1 to {MAX_K} (a fraction is "
        "rounded, a number outside the range clamped, with a warning) [%(default)s]",
    )
    s.add_argument("--keep-history", action="store_true", help="allow already-watched items")
    s.add_argument(
        "--index",
        default="exact",
        choices=["exact", "flat", "ivf", "hnsw"],
        help="top-k search: exact (default) or a faiss index for catalogues of 10^5+ items",
    )
    s.add_argument("--json", action="store_true")
    s.add_argument("-v", "--verbose", action="store_true")
    s.set_defaults(fn=cmd_recommend)

    s = sub.add_parser(
        "add-items", help="add new items (item_id,title[,image] rows) to a checkpoint, scored from their content"
    )
    s.add_argument("--checkpoint", required=True, help="the trained checkpoint folder (left as it is)")
    s.add_argument(
        "--items",
        required=True,
        help="CSV with columns item_id,title[,text][,image] (UTF-8; image paths relative to --images or the CSV)",
    )
    s.add_argument("--images", default=None, help="folder of covers: <item_id>.jpg, or the image column's paths")
    s.add_argument("--out", required=True, help="the new checkpoint folder (written atomically)")
    s.add_argument("-v", "--verbose", action="store_true")
    s.set_defaults(fn=cmd_add_items)
    stage_a.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run a sub-command; known failures print one `error:` line and exit 2, Ctrl-C exits 130."""
    args = build_parser().parse_args(argv)
    setup_logging(getattr(args, "verbose", False))
    try:
        return args.fn(args)
    except (DataError, CheckpointError, EncoderUnavailableError, BackendError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


__all__ = ["build_parser", "main", "run_config"]
