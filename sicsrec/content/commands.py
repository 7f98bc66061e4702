"""Stage-A subcommands: `mine-pairs`, `align` and the whole `pipeline`, registered into the main CLI.

    python -m sicsrec mine-pairs --data PATH --out DIR [--backend smollm2|openai|hf|embedding] [--max-users 200]
    python -m sicsrec align      --data PATH --pairs DIR [--optimizer adamw --lr 1e-4]
    python -m sicsrec pipeline   --data PATH --out DIR     mine-pairs -> align -> step 1 -> step 2 -> evaluate

`pipeline` skips a stage whose output is current: pairs.json with the same settings and data,
aligned features cached for the same provenance, results.json for the same run config.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sicsrec.content.llm import BACKENDS, BackendError, BackendOptions, PairBackend

if TYPE_CHECKING:
    from sicsrec.config import RunConfig
    from sicsrec.content.align import AlignConfig, AlignResult
    from sicsrec.content.pairs import MiningResult, MiningSettings
    from sicsrec.data.schema import Dataset

ArgsAdder = Callable[[argparse.ArgumentParser], None]


def _mining_args(p: argparse.ArgumentParser) -> None:
    """Options of A1 (pair mining)."""
    d = BackendOptions()
    g = p.add_argument_group("pair mining (stage A1)")
    g.add_argument("--backend", default="smollm2", choices=list(BACKENDS),
                   help="smollm2 (offline LLM, default) | openai (any compatible server) | hf (local model folder) "
                        "| embedding (no LLM: a labelled FALLBACK)")
    g.add_argument("--llm-model", default=None, help="openai: model name on the server; hf: local model folder")
    g.add_argument("--base-url", default=d.base_url, help=f"openai: server base URL [{d.base_url}]")
    g.add_argument("--api-key-env", default=d.api_key_env, help="openai: env var holding the API key")
    g.add_argument("--concurrency", type=int, default=d.concurrency, help="openai: requests in flight")
    g.add_argument("--request-timeout", type=float, default=d.timeout, help="openai: seconds per request")
    g.add_argument("--retries", type=int, default=d.retries, help="openai: retries with exponential backoff")
    g.add_argument("--margin", type=float, default=d.margin,
                   help="smollm2/hf: nats the best candidate must beat -1 by [0]")
    g.add_argument("--length-norm", action="store_true", help="smollm2/hf: mean per-token log-likelihood")
    g.add_argument("--similarity-threshold", type=float, default=d.similarity_threshold,
                   help="embedding: minimum cosine similarity")
    g.add_argument("--max-candidates", type=int, default=10, help="most recent training-part items shown [10]")
    g.add_argument("--max-users", type=int, default=None, help="ask only this many (seeded) users: a quick run")
    g.add_argument("--sample-seed", type=int, default=2025, help="seed of the --max-users sample")
    g.add_argument("--replies", default=None, help="reply cache (JSONL) [<pairs dir>/replies.jsonl]")


def _align_args(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """Options of A2 (encoder alignment); `prefix` keeps them apart from stage B's --lr/--batch-size."""
    from sicsrec.content.align import AlignConfig

    d = AlignConfig()
    g = p.add_argument_group("encoder alignment (stage A2; defaults = the spec)")
    g.add_argument(f"--{prefix}optimizer", dest="align_optimizer", default=d.optimizer, choices=["sgd", "adamw"])
    g.add_argument(f"--{prefix}lr", dest="align_lr", type=float, default=d.lr, metavar="LR",
                   help=f"[{d.lr:g}; SGD at 1e-5 barely moves the encoders: try --{prefix}optimizer adamw "
                        f"--{prefix}lr 1e-4]")
    g.add_argument(f"--{prefix}batch-size", dest="align_batch_size", type=int, default=d.batch_size, metavar="N")
    g.add_argument(f"--{prefix}epochs", dest="align_epochs", type=int, default=d.epochs, metavar="N")
    g.add_argument(f"--{prefix}temperature", dest="align_temperature", type=float, default=d.temperature,
                   metavar="TAU")
    g.add_argument(f"--{prefix}weight-decay", dest="align_weight_decay", type=float, default=d.weight_decay,
                   metavar="WD")
    g.add_argument("--no-t2t", action="store_true", help="ablation: drop the text-text loss")
    g.add_argument("--no-i2i", action="store_true", help="ablation: drop the image-image loss")
    g.add_argument("--no-t2i", action="store_true", help="ablation: drop the text-image loss")
    g.add_argument("--workers", type=int, default=None, help="image-decoding processes [min(2, CPUs)]")


def _backend(args: argparse.Namespace) -> PairBackend:
    """The pair-mining backend the arguments name (models load lazily, on the first uncached query)."""
    from sicsrec.content.llm import get_backend

    return get_backend(args.backend, BackendOptions(
        model=args.llm_model, device=args.device, margin=args.margin, length_norm=args.length_norm,
        similarity_threshold=args.similarity_threshold, base_url=args.base_url, api_key_env=args.api_key_env,
        timeout=args.request_timeout, retries=args.retries, concurrency=args.concurrency))


def _mining_settings(args: argparse.Namespace) -> MiningSettings:
    from sicsrec.cli import reference_decisions
    from sicsrec.content.pairs import MiningSettings

    ref = reference_decisions(args.reference, ("mining",))
    return MiningSettings(max_candidates=args.max_candidates, max_users=args.max_users, seed=args.sample_seed,
                          training_part_only=1 not in ref, candidate_titles_aligned=2 not in ref)


def _align_config(args: argparse.Namespace, use_images: bool | None) -> AlignConfig:
    from sicsrec.cli import reference_decisions
    from sicsrec.content.align import AlignConfig

    return AlignConfig(t2t=not args.no_t2t, i2i=not args.no_i2i, t2i=not args.no_t2i,
                       temperature=args.align_temperature, optimizer=args.align_optimizer, lr=args.align_lr,
                       weight_decay=args.align_weight_decay, batch_size=args.align_batch_size,
                       epochs=args.align_epochs, seed=args.seed,
                       train_heads=3 not in reference_decisions(args.reference, ("align",)), use_images=use_images,
                       device=args.device, num_workers=args.workers)


def _print_mining(result: MiningResult, path: Path) -> None:
    """Counts of one mining run, with the fallback label when no LLM answered."""
    meta = result.meta
    label = "  [FALLBACK: no LLM, MiniLM title similarity]" if meta["fallback"] else ""
    print(f"mine-pairs: backend {meta['backend']} ({meta['model']}){label}")
    print("counts: " + ", ".join(f"{k}={v}" for k, v in result.counts.items()))
    print(f"wrote {path / 'pairs.csv'} ({len(result.pairs)} pairs) and {path / 'pairs.json'}")


def _print_align(result: AlignResult) -> None:
    """Source, counts and the loss curve of one alignment run."""
    state = "already cached, not retrained" if result.skipped else f"{result.seconds:.0f} s"
    print(f"align: {result.source} ({state})")
    if result.counts:
        print("counts: " + ", ".join(f"{k}={v}" for k, v in result.counts.items()))
    for h in result.history:
        losses = " ".join(f"{k}={v:.4f}" for k, v in h.items() if k not in ("epoch", "steps"))
        print(f"  epoch {h['epoch']:3d}: {losses}")


def _load(args: argparse.Namespace) -> tuple[RunConfig, Dataset]:
    """(run config, dataset) from the common data flags; applies --threads."""
    from sicsrec.cli import run_config
    from sicsrec.pipeline import load_data
    from sicsrec.train.trainer import set_threads

    set_threads(args.threads)
    cfg = run_config(args)
    return cfg, load_data(cfg.data)


def cmd_mine_pairs(args: argparse.Namespace) -> int:
    """Ask the LLM backend for each user's next-item pair and write pairs.csv (stage A, step 1)."""
    from sicsrec.content.pairs import mine_pairs

    _, ds = _load(args)
    result = mine_pairs(ds, args.out, _backend(args), settings=_mining_settings(args), replies_path=args.replies)
    _print_mining(result, Path(args.out))
    return 0


def cmd_align(args: argparse.Namespace) -> int:
    """Fine-tune the encoders on mined pairs and cache the aligned features (stage A, step 2)."""
    from sicsrec.content.align import align

    cfg, ds = _load(args)
    pairs = Path(args.pairs)
    out = Path(args.out) if args.out else (pairs if pairs.is_dir() else pairs.parent)
    result = align(ds, pairs, out, _align_config(args, cfg.features.use_images), cfg.features.text_encoder,
                   cfg.features.image_encoder, force=args.force)
    _print_align(result)
    print(f"wrote {out / 'align.json'}; use it with --features aligned")
    return 0


def _results_current(path: Path, cfg: RunConfig, models: tuple[str, ...], source: str) -> dict | None:
    """The results.json at `path` when it holds every model for this exact config and feature source."""
    try:
        res = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    same = (res.get("config") == json.loads(json.dumps(cfg.to_dict()))
            and res.get("features", {}).get("source") == source)
    return res if same and not res.get("cancelled") and set(models) <= set(res.get("models", {})) else None


def cmd_pipeline(args: argparse.Namespace) -> int:
    """Stage A then stage B in one command: mine pairs, align, train and compare on aligned features."""
    from sicsrec.content.align import align
    from sicsrec.content.pairs import mine_pairs, pairs_current
    from sicsrec.eval.compare import markdown_table, run_compare

    cfg, ds = _load(args)
    out = Path(args.out)
    backend, settings = _backend(args), _mining_settings(args)
    if not args.force and pairs_current(out / "pairs", ds, settings, backend):
        print(f"[1/3] mine-pairs: {out / 'pairs'} is current, skipped")
    else:
        print("[1/3] mine-pairs")
        _print_mining(mine_pairs(ds, out / "pairs", backend, settings=settings, replies_path=args.replies),
                      out / "pairs")
    print("[2/3] align")
    aligned = align(ds, out / "pairs", out / "align", _align_config(args, cfg.features.use_images),
                    cfg.features.text_encoder, cfg.features.image_encoder, force=args.force)
    _print_align(aligned)
    cfg.features.source = "aligned"
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    results = None if args.force else _results_current(out / "results.json", cfg, models, aligned.source)
    if results is not None:
        print(f"[3/3] train + evaluate: {out / 'results.json'} is current, skipped")
    else:
        print(f"[3/3] train ({', '.join(models)}) + evaluate on aligned features")
        results = run_compare(cfg, out, models)
    print(markdown_table(results))
    print(f"wrote {out / 'results.json'}")
    return 0


def _guarded(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A command that reports a backend failure (e.g. the LLM package missing) as an error line."""

    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except BackendError as exc:
            print(f"error: {exc}")
            return 2

    return run


def register(sub: argparse._SubParsersAction, data_args: ArgsAdder, train_args: ArgsAdder) -> None:
    """Add the mine-pairs, align and pipeline subcommands to the CLI's subparsers."""
    s = sub.add_parser("mine-pairs", help="stage A1: one LLM query per user -> positive item pairs (pairs.csv)")
    data_args(s)
    _mining_args(s)
    s.add_argument("--reference", default="", help="1,2: run spec decision 1 (leaky target) / 2 (misaligned "
                   "titles) as the authors' code did")
    s.add_argument("--out", required=True, help="folder for pairs.csv, pairs.json and the reply cache")
    s.set_defaults(fn=_guarded(cmd_mine_pairs))

    s = sub.add_parser("align", help="stage A2: fine-tune the encoders on the pairs, cache aligned features")
    data_args(s)
    _align_args(s)
    s.add_argument("--pairs", required=True, help="pairs.csv or the mine-pairs folder")
    s.add_argument("--out", default=None, help="folder for align.json [the pairs folder]")
    s.add_argument("--seed", type=int, default=2025)
    s.add_argument("--reference", default="", help="3: run spec decision 3 (untrained projection heads) as the "
                   "authors' code did")
    s.add_argument("--force", action="store_true", help="retrain even when the aligned features are cached")
    s.set_defaults(fn=_guarded(cmd_align))

    s = sub.add_parser("pipeline", help="mine-pairs -> align -> step 1 -> step 2 -> evaluate (current stages skipped)")
    data_args(s)
    train_args(s)
    _mining_args(s)
    _align_args(s, prefix="align-")
    s.add_argument("--out", required=True, help="run folder: pairs/, align/, checkpoints/, results.json")
    s.add_argument("--models", default="sasrec,sicsrec", help="models to train and evaluate [sasrec,sicsrec]")
    s.add_argument("--force", action="store_true", help="redo every stage")
    s.set_defaults(fn=_guarded(cmd_pipeline))
