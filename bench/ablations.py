"""SICSRec ablations and the alpha grid: each variant is one switch on top of the same step-1 SASRec,
split, features, seed and evaluation code; test HR/NDCG@5/10 (full ranking) per variant.

    python bench/ablations.py [--variants full,no_cl,alpha=0.5,...] [--out runs/ablations] -- --data demo --hidden 64
        [any further compare flags shared by every variant, e.g. --max-epochs 30]
    python bench/ablations.py --seeds 2025,2026,2027 [--baselines runs/quality/dance] --variants ... -- --data ...
        (one run per seed under OUT/seed<S>; mean ± std per variant, NDCG@5 vs full and vs the best
        baseline of bench/quality.py's run of the same seed, both taken per seed)

Variants (default: all named ones): full (the spec), no_cl, no_mix_decoder, no_content_encoder, one_step
(no frozen pre-trained ID encoder), unfrozen (step 2 fine-tunes step 1's ID Transformer),
identity_fusion (step 2 starts from step 1's user vector: fusion W_id = I, content blocks 0),
identity_fusion_matched (the same with W_id at a random block's norm, 0.02·sqrt(d)·I), aligned
(stage-A features instead of raw; needs `align` run first), ref5..ref8 (the authors' code for that
decision), and any step-2 setting as flag=value (alpha=X for the paper's 0.1..1.0 grid, lora-rank=8,
dropout=0.3, ...: the compare flag of that name).
Step 1 is trained once and reused; finished variants are kept in OUT/<variant>.json (figures) and
OUT/<variant>/ (checkpoint), so the script resumes. Prints a markdown table; no asserts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sicsrec.checkpoint import CheckpointError, item_table, load_checkpoint, save_checkpoint  # noqa: E402
from sicsrec.cli import build_parser, run_config  # noqa: E402
from sicsrec.config import RunConfig  # noqa: E402
from sicsrec.run.experiment import fits_record  # noqa: E402
from sicsrec.eval.evaluate import evaluate_model  # noqa: E402
from sicsrec.run.prepare import Prepared, prepare  # noqa: E402
from sicsrec.train.trainer import FitResult, Trainer, set_threads  # noqa: E402
from sicsrec.train.two_step import Trained, train_model  # noqa: E402
from sicsrec.utils import atomic_write_text, resolve_device, setup_logging  # noqa: E402

VARIANTS: dict[str, list[str]] = {
    "full": [],
    "no_cl": ["--no-cl"],
    "no_mix_decoder": ["--no-mix-decoder"],
    "no_content_encoder": ["--no-content-encoder"],
    "one_step": ["--one-step"],
    "unfrozen": ["--unfreeze-step1"],
    "aligned": ["--features", "aligned"],
    "identity_fusion": ["--fusion-init", "identity"],
    "identity_fusion_matched": ["--fusion-init", "identity_matched"],
    **{f"ref{n}": ["--reference", str(n)] for n in (5, 6, 7, 8)},
    **{f"alpha={a}": ["--alpha", a] for a in ("0.1", "0.4", "0.6", "0.8", "1.0")},
}
METRICS = ("hr@5", "hr@10", "ndcg@5", "ndcg@10")


def variant_config(base: list[str], name: str) -> RunConfig:
    """The compare flags of the base run plus the variant's switch, parsed by the CLI itself."""
    flag, _, value = name.partition("=")
    extra = VARIANTS.get(name, [f"--{flag}", value] if value else None)
    if extra is None:
        raise SystemExit(f"unknown variant {name!r}; known: {', '.join(VARIANTS)} or flag=value (e.g. lora-rank=8)")
    parser = build_parser()
    try:
        return run_config(parser.parse_args(["compare", "--out", "unused", *base, *extra]))
    except SystemExit:
        raise SystemExit(f"variant {name!r}: not a valid compare setting (see python -m sicsrec compare --help)")


def step1_model(cfg: RunConfig, prep: Prepared, trainer: Trainer, out: Path) -> Trained:
    """Step 1 (SASRec) trained once per base config, checkpointed under OUT/step1 and reused."""
    path = out / "step1"
    try:
        model, config, _ = load_checkpoint(path)
        stored = RunConfig.from_dict(config["run"]).to_dict()  # fields added since then take their defaults
        if json.loads(json.dumps(stored)) == json.loads(json.dumps(cfg.to_dict())):
            return Trained(model, [FitResult("sasrec", config["fits"][0]["best_epoch"], {})])
    except (CheckpointError, KeyError) as e:  # absent, unreadable or without its run record: train it
        print(f"step 1: {e}; training it", file=sys.stderr)
    trained = train_model("sasrec", prep.split, None, cfg.model_cfg, cfg.train, trainer)
    fit = trained.fits[0]
    save_checkpoint(path, trained.model, item_table(prep.split, prep.dataset.items),
                    {"run": cfg.to_dict(), "fits": [{"best_epoch": fit.best_epoch}]})
    return trained


def run_seed(base: list[str], names: list[str], out: Path, trainer: Trainer, preps: dict[str, Prepared]) -> dict[str, dict]:
    """Step 1 and every variant for the seed in `base`; rows {variant: {test, valid, epochs, seconds}}."""
    out.mkdir(parents=True, exist_ok=True)
    cfg0 = variant_config(base, "full")
    trainer.cfg = cfg0.train
    step1 = step1_model(cfg0, preps[cfg0.features.source], trainer, out)
    split = preps[cfg0.features.source].split
    rows = {"sasrec (step 1)": {"test": evaluate_model(step1.model, split.test),
                                "valid": evaluate_model(step1.model, split.valid),
                                "epochs": step1.fits[0].best_epoch, "seconds": 0.0}}
    for name in names:
        done = out / f"{name}.json"
        if done.is_file():
            rows[name] = json.loads(done.read_text())
            continue
        cfg = variant_config(base, name)
        source = cfg.features.source
        if source not in preps:
            preps[source] = prepare(cfg.data, cfg.features, str(trainer.device), show_bar=False)
        prep = preps[source]
        trainer.cfg = cfg.train
        t = time.time()
        trained = train_model("sicsrec", prep.split, prep.tables, cfg.model_cfg, cfg.train, trainer,
                              step1=step1 if cfg.train.two_step else None)
        with torch.no_grad():
            row = {"test": evaluate_model(trained.model, prep.split.test), "valid": trained.fits[-1].best_valid,
                   "epochs": trained.fits[-1].best_epoch, "seconds": round(time.time() - t, 1)}
        # Kept for inspection (bench/learning_curves.py, bench/fusion_attribution.py, the app).
        save_checkpoint(out / name, trained.model, item_table(prep.split, prep.dataset.items),
                        {"dataset": prep.dataset.name, "run": cfg.to_dict(), "metrics": {"test": row["test"], "valid": row["valid"]},
                         "features": prep.features_meta, "fits": fits_record(trained)})
        atomic_write_text(done, json.dumps(row, indent=2))  # the resume mark: never half-written
        rows[name] = row
    return rows


def seed_table(base: list[str], rows: dict[str, dict]) -> None:
    """One seed: each variant's figures and its NDCG@5 relative to the full model."""
    full = rows.get("full")
    print(f"\n{' '.join(base)}\n")
    # valid HR@10 is what the paper selects on (alpha grid); test columns are what it reports
    print("| variant | valid HR@10 | " + " | ".join(f"test {m.upper()}" for m in METRICS)
          + " | NDCG@5 vs full | best epoch | s |")
    print("|---" * (len(METRICS) + 5) + "|")
    for name, r in rows.items():
        rel = f"{r['test']['ndcg@5'] / full['test']['ndcg@5'] - 1:+.1%}" if full and name != "full" else ""
        print(f"| {name} | {r['valid']['hr@10']:.4f} | " + " | ".join(f"{r['test'][m]:.4f}" for m in METRICS)
              + f" | {rel} | {r['epochs']} | {r['seconds']:.0f} |")


def seeds_table(base: list[str], per_seed: dict[int, dict[str, dict]], baselines: Path | None) -> None:
    """Several seeds: mean ± std per variant; NDCG@5 vs full and vs the best baseline are taken per
    seed (same split and seed on both sides) and then averaged, as bench/quality.py does."""
    seeds = sorted(per_seed)
    names = list(per_seed[seeds[0]])
    base_runs = {s: json.loads((baselines / f"seed{s}" / "results.json").read_text())["models"] for s in seeds} if baselines else {}
    best = max(("sasrec", "content"), key=lambda b: np.mean([base_runs[s][b]["test"]["ndcg@5"] for s in seeds])) if baselines else ""
    print(f"\n{' '.join(base)}; seeds {', '.join(map(str, seeds))}\n")
    extra = f" | NDCG@5 vs best baseline ({best}) |" if baselines else " |"
    print("| variant | valid HR@10 | " + " | ".join(f"test {m.upper()}" for m in METRICS) + " | NDCG@5 vs full" + extra)
    print("|---" * (len(METRICS) + 3 + bool(baselines)) + "|")
    for name in names:
        rs = [per_seed[s][name] for s in seeds]
        ndcg5 = [r["test"]["ndcg@5"] for r in rs]
        vs_full = _gain(ndcg5, [per_seed[s]["full"]["test"]["ndcg@5"] for s in seeds]) if name != "full" and "full" in names else ""
        vs_best = f" {_gain(ndcg5, [base_runs[s][best]['test']['ndcg@5'] for s in seeds])} |" if baselines else ""
        print(f"| {name} | {_cell([r['valid']['hr@10'] for r in rs])} | "
              + " | ".join(_cell([r["test"][m] for r in rs]) for m in METRICS) + f" | {vs_full} |{vs_best}")


def _cell(values: list[float]) -> str:
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}"


def _gain(values: list[float], refs: list[float]) -> str:
    """Per-seed relative gain, then its mean ± std in percent."""
    g = 100 * (np.array(values) / np.array(refs) - 1)
    return f"{g.mean():+.1f}% ± {g.std():.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out", default="runs/ablations")
    ap.add_argument("--seeds", default="", help="comma list: one run per seed under OUT/seed<S>, mean ± std table")
    ap.add_argument("--baselines", type=Path, default=None,
                    help="a bench/quality.py dataset folder (seed<S>/results.json) for NDCG@5 vs the best baseline")
    ap.add_argument("base", nargs=argparse.REMAINDER, help="compare flags shared by all variants (--data ...)")
    args = ap.parse_args()
    base = [a for a in args.base if a != "--"]
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    setup_logging()
    cfg0 = variant_config(base, "full")
    set_threads(cfg0.train.threads)
    device = resolve_device(cfg0.train.device)
    trainer = Trainer(cfg0.train, device, show_bar=False)
    preps = {cfg0.features.source: prepare(cfg0.data, cfg0.features, str(device), show_bar=False)}
    if not args.seeds:
        seed_table(base, run_seed(base, names, Path(args.out), trainer, preps))
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    per_seed = {s: run_seed([*base, "--seed", str(s)], names, Path(args.out) / f"seed{s}", trainer, preps) for s in seeds}
    seeds_table(base, per_seed, args.baselines)


if __name__ == "__main__":
    main()
