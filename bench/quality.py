"""SICSRec vs SASRec, content-only, step 2's ID-only control and popularity on the shared datasets, five
seeds: each model's test HR/NDCG@5/10 (full ranking, ties against the target) as mean ± sample std,
SICSRec's per-seed gain with a 95% t-interval, and a paired bootstrap over test users.

    python bench/quality.py [--datasets food,dance,ml] [--seeds 2025,...,2029] [--out runs/quality] [--threads 1]
        [--json bench/results/quality.json] [--write-docs] [--finished-only] [-- extra compare flags, e.g. --hidden 64]

Each (dataset, seed) is one run of `sicsrec.run.run_experiment` (same split, features and evaluation
code for every model), resumed: a finished run is reused, a partial one keeps its finished models and
continues the interrupted one from its last finished epoch, so an interrupted bench picks up where it stopped.
Every finished (dataset, seed) also leaves a record in git, bench/results/quality_runs/<dataset>/seed<S>.json
(its results.json and every model's per-user test rank), so seeds run on another machine, whose run folders are
gone, still join the summary and its paired test. `--finished-only` trains nothing: it reports, per dataset, the
seeds whose run folder or record holds every asked model (the JSON's `seeds` says which), so a partial bench can
be reported as what it is; a dataset with neither keeps its entry of the JSON file. The best baseline is the one of popularity, SASRec and
content-only with the highest mean over seeds (chosen per metric); the control is reported beside it.

The JSON file (schema "sicsrec-quality/1", documented in docs/BENCHMARKS.md) holds every figure; with
--write-docs the tables also replace the blocks between `<!-- quality:begin -->` and `<!-- quality:end -->`
in README.md and docs/BENCHMARKS.md. No asserts: this script reports what it measured.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sicsrec.checkpoint import load_checkpoint  # noqa: E402
from sicsrec.cli import build_parser, run_config  # noqa: E402
from sicsrec.config import RunConfig  # noqa: E402
from sicsrec.eval.evaluate import user_ranks  # noqa: E402
from sicsrec.eval.metrics import TIE_RULE, ndcg_per_user  # noqa: E402
from sicsrec.eval.results import BASELINES, METRICS, MODEL_ORDER, Results  # noqa: E402
from sicsrec.eval.stats import paired_bootstrap, summarise  # noqa: E402
from sicsrec.run.experiment import run_experiment  # noqa: E402
from sicsrec.run.prepare import load_data, split_data  # noqa: E402
from sicsrec.utils import atomic_write_text, setup_logging  # noqa: E402

SHARED = (ROOT.parent / "shared" / "data").resolve()  # resolved: run configs record the path, resume compares it
DATASETS = {
    "food": ["--data", str(SHARED / "ninerec_bili_text" / "Bili_Food")],
    "dance": ["--data", str(SHARED / "ninerec_bili_text" / "Bili_Dance")],
    "ml": ["--data", str(SHARED / "movielens_small_posters")],
    "demo": ["--data", "demo"],  # the embedded MovieLens demo: a quick check of the script itself
}
SCHEMA = "sicsrec-quality/1"
RECORD_SCHEMA = "sicsrec-quality-run/1"
RECORDS = ROOT / "bench" / "results" / "quality_runs"
PAIRED_METRIC = "ndcg@5"


@dataclass
class SeedRun:
    """One finished (dataset, seed): its results and each model's (U,) 0-based test rank per user."""

    results: Results
    ranks: dict[str, np.ndarray]


def compact_json(obj: object) -> str:
    """JSON indented by one space, with each list of numbers on one line (per-user ranks would otherwise take a
    line each)."""
    number = r"-?[\d.eE+-]+"
    return re.sub(
        rf"\[\n\s*({number}(?:,\n\s*{number})*)\n\s*\]",
        lambda m: "[" + re.sub(r",\n\s*", ", ", m.group(1)) + "]",
        json.dumps(obj, indent=1),
    )


def run_one(name: str, seed: int, out: Path, models: str, extra: list[str]) -> Results:
    """One (dataset, seed) run through the run layer, resumed."""
    args = build_parser().parse_args(
        ["compare", *DATASETS[name], "--out", str(out), "--seed", str(seed), "--models", models, *extra]
    )
    # continue_run: a model stopped mid-training continues from its last epoch's saved state (the same figures
    # as an uninterrupted run, tests/train/test_resume.py): a MovieLens model is an hour on one core
    return run_experiment(run_config(args), out, args.models.split(","), resume=True, continue_run=True).results


def finished(folder: Path, models: str) -> bool:
    """Whether the run in `folder` holds every model of `models` (its results.json lists them all)."""
    results = Results.read(folder / "results.json")
    return results is not None and all(m in results.models for m in models.split(","))


def test_ranks(folder: Path, model: str, split_cache: dict) -> np.ndarray:
    """(U,) 0-based test rank of every user's target under the checkpoint folder/checkpoints/<model>."""
    net, config, _ = load_checkpoint(folder / "checkpoints" / model)
    data = RunConfig.from_dict(config["run"]).data
    key = json.dumps(data.__dict__, sort_keys=True, default=str)
    if key not in split_cache:
        split_cache[key] = split_data(load_data(data), data)
    return user_ranks(net, split_cache[key].test).numpy()


def record_path(name: str, seed: int, root: Path = RECORDS) -> Path:
    return root / name / f"seed{seed}.json"


def write_record(path: Path, run: SeedRun) -> None:
    """The seed's record: results.json and the per-user test ranks of every trained model (ints, one line each)."""
    ranks = {m: r.astype(int).tolist() for m, r in run.ranks.items()}
    record = {"schema": RECORD_SCHEMA, "results": run.results.to_dict(), "test_ranks": ranks}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, compact_json(record))


def read_record(path: Path) -> SeedRun | None:
    """A seed's record, or None when absent or of another schema."""
    if not path.exists():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    if record.get("schema") != RECORD_SCHEMA:
        return None
    ranks = {m: np.asarray(r, dtype=np.int64) for m, r in record["test_ranks"].items()}
    return SeedRun(Results.from_dict(record["results"]), ranks)


def seed_run(folder: Path, models: str, record: Path, split_cache: dict) -> SeedRun | None:
    """A finished seed from its run folder (its record rewritten from it), else from its record, else None."""
    if finished(folder, models):
        results = Results.read(folder / "results.json")
        assert results is not None  # finished() read it
        trained = [m for m in models.split(",") if m != "pop"]
        run = SeedRun(results, {m: test_ranks(folder, m, split_cache) for m in trained})
        write_record(record, run)
        return run
    stored = read_record(record)
    if stored is None or not all(m in stored.results.models for m in models.split(",")):
        return None
    return stored


def gain(results: Results, over: str, metric: str) -> float:
    """SICSRec's relative test gain over `over` in one seed (NaN when either model is missing)."""
    g = results.gain("sicsrec", over, metric)
    return math.nan if g is None else g


def dataset_summary(seed_runs: dict[int, SeedRun]) -> dict:
    """Every figure of one dataset: per-model summaries, SICSRec's per-seed gains, the paired bootstrap."""
    runs = {s: r.results for s, r in seed_runs.items()}
    seeds = sorted(runs)
    models = [m for m in MODEL_ORDER if all(m in runs[s].models for s in seeds)]
    # Every model of a run early-stops on the same validation metric: the run's TrainConfig.stop_metric.
    selected_on = sorted({str(runs[s].config.get("train", {}).get("stop_metric", "hr@10")) for s in seeds})
    out: dict = {
        "seeds": seeds,
        "dataset": runs[seeds[0]].dataset,
        "selected_on": selected_on,
        "models": {},
        "gains": {},
    }
    for m in models:
        out["models"][m] = {
            part: {k: summarise([runs[s].metric(m, k, part) for s in seeds]).to_dict() for k in METRICS}
            for part in ("test", "valid")
        }
        out["models"][m]["epochs"] = [runs[s].models[m].epochs for s in seeds]
    if "sicsrec" not in models:
        return out
    present = [b for b in BASELINES if b in models]
    best = {k: max(present, key=lambda b: out["models"][b]["test"][k]["mean"]) for k in METRICS}
    out["best_baseline"] = best
    for k in METRICS:
        refs = {"best": best[k], **{b: b for b in models if b not in ("sicsrec", "pop")}}
        out["gains"][k] = {
            label: {"over": b, **summarise([gain(runs[s], b, k) for s in seeds]).to_dict()} for label, b in refs.items()
        }
    cutoff = int(PAIRED_METRIC.split("@")[1])

    def per_user(model: str) -> np.ndarray:  # (U,) per-user metric, mean over seeds
        return np.mean(
            [ndcg_per_user(torch.from_numpy(seed_runs[s].ranks[model]), cutoff).numpy() for s in seeds], axis=0
        )

    a = per_user("sicsrec")
    out["paired"] = {}
    for label, b in {
        "best": best[PAIRED_METRIC],
        **({"id_control": "id_control"} if "id_control" in models else {}),
    }.items():
        if b != "pop":
            out["paired"][label] = {"over": b, "metric": PAIRED_METRIC, **paired_bootstrap(a, per_user(b)).to_dict()}
    return out


def _cell(s: dict) -> str:
    return f"{s['mean']:.4f}" + (f" ± {s['std']:.4f}" if s["n"] > 1 else "")


def _gain(g: dict) -> str:
    interval = f" [{100 * g['low']:+.1f}, {100 * g['high']:+.1f}]" if g["n"] > 1 else " (one seed: no interval)"
    return f"{100 * g['mean']:+.1f}%" + interval


def markdown(report: dict) -> str:
    """The tables: per-model mean ± std; SICSRec's per-seed gains with 95% t-intervals; the paired bootstrap."""
    lines = [
        "| dataset | model | HR@5 | HR@10 | NDCG@5 | NDCG@10 | seeds | kept epoch selected on |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, d in report["datasets"].items():
        for m, s in d["models"].items():
            on = "—" if m == "pop" else "valid " + ", ".join(x.upper() for x in d.get("selected_on", ["hr@10"]))
            lines.append(
                f"| {name} | {m} | "
                + " | ".join(_cell(s["test"][k]) for k in METRICS)
                + f" | {len(d['seeds'])} | {on} |"
            )
    lines += [
        "",
        "SICSRec's test gain, taken per seed, mean and 95% t-interval over seeds:",
        "",
        "| dataset | over | HR@5 | HR@10 | NDCG@5 | NDCG@10 |",
        "|---|---|---|---|---|---|",
    ]
    for name, d in report["datasets"].items():
        for label in d.get("gains", {}).get("ndcg@5", {}):
            over = {k: d["gains"][k][label]["over"] for k in METRICS}
            who = "best baseline (" + ", ".join(dict.fromkeys(over.values())) + ")" if label == "best" else label
            lines.append(f"| {name} | {who} | " + " | ".join(_gain(d["gains"][k][label]) for k in METRICS) + " |")
    lines += [
        "",
        f"Paired over test users (per-user {PAIRED_METRIC.upper()} averaged over seeds; 10,000 bootstrap "
        "resamples of users):",
        "",
        "| dataset | SICSRec vs | users | mean difference [95%] | relative [95%] |",
        "|---|---|---|---|---|",
    ]
    for name, d in report["datasets"].items():
        for p in d.get("paired", {}).values():
            lines.append(
                f"| {name} | {p['over']} | {p['users']:,} | {p['mean_diff']:+.4f} [{p['diff_low']:+.4f}, "
                f"{p['diff_high']:+.4f}] | {100 * p['relative']:+.1f}% [{100 * p['relative_low']:+.1f}, "
                f"{100 * p['relative_high']:+.1f}] |"
            )
    return "\n".join(lines)


def write_docs(table: str, files: list[Path]) -> None:
    """Replace the quality block of each file (between the markers) with `table`."""
    block = re.compile(r"(<!-- quality:begin -->\n)(?:.*?\n)?(<!-- quality:end -->)", re.S)
    for f in files:
        text = f.read_text(encoding="utf-8")
        if not block.search(text):
            print(f"{f}: no quality markers, not written", file=sys.stderr)
            continue
        atomic_write_text(f, block.sub(lambda m: m.group(1) + table + "\n" + m.group(2), text))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="food,dance,ml")
    ap.add_argument("--seeds", default="2025,2026,2027,2028,2029")
    ap.add_argument("--models", default="sasrec,content,id_control,sicsrec")
    ap.add_argument("--out", default="runs/quality")
    ap.add_argument("--threads", default="1")
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "quality.json")
    ap.add_argument(
        "--write-docs", action="store_true", help="also rewrite the quality blocks of README and BENCHMARKS"
    )
    ap.add_argument(
        "--finished-only", action="store_true", help="train nothing: report the seeds each dataset has finished"
    )
    ap.add_argument("extra", nargs="*", help="extra compare flags after --, e.g. -- --hidden 64")
    args = ap.parse_args()
    setup_logging()
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%d %H:%M"),
        "ranking": TIE_RULE,
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, threads {args.threads}",
        "command": " ".join(sys.argv),
        "datasets": {},
    }
    previous = json.loads(args.json.read_text(encoding="utf-8")) if args.json.exists() else {}
    split_cache: dict = {}
    for name in args.datasets.split(","):
        folders = {int(s): Path(args.out) / name / f"seed{s}" for s in args.seeds.split(",")}
        if not args.finished_only:
            for s, f in folders.items():
                run_one(name, s, f, args.models, ["--threads", args.threads, *args.extra])
        runs = {s: seed_run(f, args.models, record_path(name, s), split_cache) for s, f in folders.items()}
        found = {s: r for s, r in runs.items() if r is not None}
        if not found:
            kept = previous.get("datasets", {}).get(name)
            print(
                f"{name}: no finished seed here" + (f", kept from {args.json}" if kept else ", left out"),
                file=sys.stderr,
            )
            if kept:
                report["datasets"][name] = kept
            continue
        report["datasets"][name] = dataset_summary(found)
        print(markdown(report), flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.json, json.dumps(report, indent=2))
    print(f"\nwrote {args.json}")
    if args.write_docs:
        write_docs(markdown(report), [ROOT / "README.md", ROOT / "docs" / "BENCHMARKS.md"])


if __name__ == "__main__":
    main()
