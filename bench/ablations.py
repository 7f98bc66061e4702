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
Every run goes through `sicsrec.run.run_experiment`: step 1 once into OUT/step1, then each variant's
step 2 into OUT/<variant>/ (results.json + checkpoints/sicsrec) starting from that step 1; finished
runs are current and skipped, so the script resumes. Prints a markdown table; no asserts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sicsrec.checkpoint import load_checkpoint  # noqa: E402
from sicsrec.cli import build_parser, run_config  # noqa: E402
from sicsrec.config import RunConfig  # noqa: E402
from sicsrec.eval.results import Results  # noqa: E402
from sicsrec.run.experiment import read_fits, run_experiment  # noqa: E402
from sicsrec.run.prepare import Prepared, prepare  # noqa: E402
from sicsrec.utils import resolve_device, setup_logging  # noqa: E402

VARIANTS: dict[str, list[str]] = {
    "full": [],
    "no_cl": ["--no-cl"],
    "no_mix_decoder": ["--no-mix-decoder"],
    "no_content_encoder": ["--no-content-encoder"],
    "one_step": ["--one-step"],
    "content_items": ["--content-items"],
    "content_items_gated": ["--content-items", "--content-items-gate", "10"],
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
        raise SystemExit(
            f"variant {name!r}: not a valid compare setting (see python -m sicsrec compare --help)"
        ) from None


def _row(results: Results, model: str, checkpoint: Path) -> dict:
    """One table row: test and valid metrics, the kept epoch of the model's last fit, training seconds."""
    m = results.models[model]
    fits = read_fits(load_checkpoint(checkpoint)[1])
    return {
        "test": m.test,
        "valid": m.valid,
        "epochs": fits[-1].best_epoch if fits else 0,
        "seconds": round(fits[-1].seconds if fits else m.train_seconds, 1),
    }


def run_seed(base: list[str], names: list[str], out: Path, preps: dict[str, Prepared]) -> dict[str, dict]:
    """Step 1 and every variant for the seed in `base`; rows {variant: {test, valid, epochs, seconds}}."""
    cfg0 = variant_config(base, "full")
    step1 = run_experiment(
        cfg0, out / "step1", ("sasrec",), prepared=preps[cfg0.features.source], show_bar=False, resume=True
    )
    step1_ckpt = out / "step1" / "checkpoints" / "sasrec"
    rows = {"sasrec (step 1)": _row(step1.results, "sasrec", step1_ckpt)}
    for name in names:
        cfg = variant_config(base, name)
        source = cfg.features.source
        if source not in preps:
            preps[source] = prepare(cfg.data, cfg.features, str(resolve_device(cfg.train.device)), show_bar=False)
        # Kept for inspection (bench/learning_curves.py, bench/fusion_attribution.py, the app).
        done = run_experiment(
            cfg,
            out / name,
            ("sicsrec",),
            prepared=preps[source],
            show_bar=False,
            resume=True,
            step1=step1_ckpt if cfg.train.two_step else None,
        )
        rows[name] = _row(done.results, "sicsrec", out / name / "checkpoints" / "sicsrec")
    return rows


def seed_table(base: list[str], rows: dict[str, dict]) -> None:
    """One seed: each variant's figures and its NDCG@5 relative to the full model."""
    full = rows.get("full")
    print(f"\n{' '.join(base)}\n")
    # valid HR@10 is what the paper selects on (alpha grid); test columns are what it reports
    print(
        "| variant | valid HR@10 | "
        + " | ".join(f"test {m.upper()}" for m in METRICS)
        + " | NDCG@5 vs full | best epoch | s |"
    )
    print("|---" * (len(METRICS) + 5) + "|")
    for name, r in rows.items():
        rel = f"{r['test']['ndcg@5'] / full['test']['ndcg@5'] - 1:+.1%}" if full and name != "full" else ""
        print(
            f"| {name} | {r['valid']['hr@10']:.4f} | "
            + " | ".join(f"{r['test'][m]:.4f}" for m in METRICS)
            + f" | {rel} | {r['epochs']} | {r['seconds']:.0f} |"
        )


def seeds_table(base: list[str], per_seed: dict[int, dict[str, dict]], baselines: Path | None) -> None:
    """Several seeds: mean ± std per variant; NDCG@5 vs full and vs the best baseline are taken per
    seed (same split and seed on both sides) and then averaged, as bench/quality.py does."""
    seeds = sorted(per_seed)
    names = list(per_seed[seeds[0]])
    base_runs = {s: Results.read(baselines / f"seed{s}") for s in seeds} if baselines else {}
    if any(r is None for r in base_runs.values()):
        raise SystemExit(f"--baselines {baselines}: a seed<S>/results.json is missing or unreadable")
    best = (
        max(("sasrec", "content"), key=lambda b: np.mean([base_runs[s].metric(b, "ndcg@5") for s in seeds]))
        if baselines
        else ""
    )
    print(f"\n{' '.join(base)}; seeds {', '.join(map(str, seeds))}\n")
    extra = f" | NDCG@5 vs best baseline ({best}) |" if baselines else " |"
    print("| variant | valid HR@10 | " + " | ".join(f"test {m.upper()}" for m in METRICS) + " | NDCG@5 vs full" + extra)
    print("|---" * (len(METRICS) + 3 + bool(baselines)) + "|")
    for name in names:
        rs = [per_seed[s][name] for s in seeds]
        ndcg5 = [r["test"]["ndcg@5"] for r in rs]
        vs_full = (
            _gain(ndcg5, [per_seed[s]["full"]["test"]["ndcg@5"] for s in seeds])
            if name != "full" and "full" in names
            else ""
        )
        vs_best = f" {_gain(ndcg5, [base_runs[s].metric(best, 'ndcg@5') for s in seeds])} |" if baselines else ""
        print(
            f"| {name} | {_cell([r['valid']['hr@10'] for r in rs])} | "
            + " | ".join(_cell([r["test"][m] for r in rs]) for m in METRICS)
            + f" | {vs_full} |{vs_best}"
        )


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
    ap.add_argument(
        "--baselines",
        type=Path,
        default=None,
        help="a bench/quality.py dataset folder (seed<S>/results.json) for NDCG@5 vs the best baseline",
    )
    ap.add_argument("base", nargs=argparse.REMAINDER, help="compare flags shared by all variants (--data ...)")
    args = ap.parse_args()
    base = [a for a in args.base if a != "--"]
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    setup_logging()
    cfg0 = variant_config(base, "full")
    preps = {
        cfg0.features.source: prepare(cfg0.data, cfg0.features, str(resolve_device(cfg0.train.device)), show_bar=False)
    }
    if not args.seeds:
        seed_table(base, run_seed(base, names, Path(args.out), preps))
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    per_seed = {s: run_seed([*base, "--seed", str(s)], names, Path(args.out) / f"seed{s}", preps) for s in seeds}
    seeds_table(base, per_seed, args.baselines)


if __name__ == "__main__":
    main()
