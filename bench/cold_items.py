"""New items without retraining, measured: hold out a random share of items from training entirely, add them
afterwards through the content-to-ID bridge (`sicsrec.serve.bridge`), and rank every test target among all
items (full ranking, ties against the target), cold targets and warm targets apart.

    python bench/cold_items.py [--data demo|food|dance|ml|PATH] [--seeds 2025,2026,2027] [--cold-share 0.1] [--threads 2]
        [--out runs/cold_items] [--json bench/results/cold_items.json] [-- extra compare flags, e.g. --hidden 64]

Protocol per seed: the cold items (a seeded random 10% of the items) lose every interaction except where one
is a user's validation or test target; users left with < 3 interactions are dropped. Models train on the
warm items only (a catalogue without the cold ones; early stopping on the users whose validation target is
warm), then the cold items are appended with rows from their content (the bridge fitted on the warm items),
and the test users are ranked over warm + cold items. Methods: popularity (cold items have count 0),
SASRec / content-only / SICSRec through the bridge (the default: deviations matched to the trained rows'
spread), the same with the plain ridge prediction ("shrunk"), SICSRec with uniform fit weights, content-only
with its raw encoder features as the new rows (what the bridge replaces), and SICSRec with random rows drawn
with each warm table's per-dimension mean and sd (the control). No asserts: the script reports what it measured.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from quality import DATASETS, compact_json  # noqa: E402  bench/ is on sys.path when this script runs

from sicsrec.checkpoint import item_table, load_checkpoint, save_checkpoint  # noqa: E402
from sicsrec.cli import build_parser, run_config  # noqa: E402
from sicsrec.data.schema import Dataset  # noqa: E402
from sicsrec.data.split import EvalSet, Split, build_split  # noqa: E402
from sicsrec.eval.evaluate import rank_all, user_ranks  # noqa: E402
from sicsrec.eval.metrics import TIE_RULE, metrics_from_ranks, ndcg_per_user  # noqa: E402
from sicsrec.eval.stats import paired_bootstrap, summarise  # noqa: E402
from sicsrec.model import ItemTables, SeqRecModel  # noqa: E402
from sicsrec.run.experiment import fits_record, read_fits  # noqa: E402
from sicsrec.run.prepare import prepare  # noqa: E402
from sicsrec.serve.bridge import BridgeConfig, content_matrix, extend_model, fit_bridge, item_tables  # noqa: E402
from sicsrec.train.trainer import Trainer, set_threads  # noqa: E402
from sicsrec.train.two_step import Trained, tables_for_split, train_model  # noqa: E402
from sicsrec.utils import atomic_write_text, resolve_device, seed_everything, setup_logging  # noqa: E402

SCHEMA = "sicsrec-cold-items/1"
REPORTED = ("hr@10", "ndcg@10")
METHODS = (
    "pop",
    "sasrec+bridge",
    "content+bridge",
    "sicsrec+bridge",
    "sasrec+bridge(shrunk)",
    "content+bridge(shrunk)",
    "sicsrec+bridge(shrunk)",
    "sicsrec+bridge(uniform)",
    "content+raw",
    "sicsrec+random",
)
# the paired comparisons over cold test users: each bridged model against the two methods it must beat
PAIRED = tuple((a, b) for a in ("sicsrec+bridge", "sasrec+bridge", "content+bridge") for b in ("sicsrec+random", "pop"))
DIFFERENCE = ("users", "mean_a", "mean_b", "mean_diff", "diff_low", "diff_high", "resamples")  # no ratio: B is often 0
KEPT_RANKS = tuple(dict.fromkeys(m for pair in PAIRED for m in pair))  # methods whose cold users' ranks are kept


def data_path(name: str) -> str:
    """--data as `compare` reads it: a shared dataset's folder for its short name (bench/quality.py's names; the
    results file is keyed by the name given), else as given."""
    return DATASETS[name][-1] if name in DATASETS else name


def cold_dataset(ds: Dataset, share: float, seed: int) -> tuple[Dataset, set[str]]:
    """The dataset without the cold items' interactions, except those that are a user's last two
    (validation and test targets); users left with fewer than 3 interactions are dropped."""
    items = np.asarray(sorted(ds.interactions["item_id"].unique()))
    rng = np.random.default_rng(seed)
    cold = set(rng.choice(items, size=max(1, round(share * len(items))), replace=False).tolist())
    inter = ds.interactions
    from_end = inter.groupby("user_id", sort=False).cumcount(ascending=False)  # 0 = test, 1 = validation target
    inter = inter[~inter["item_id"].isin(cold) | (from_end < 2)]
    sizes = inter.groupby("user_id")["item_id"].transform("size")
    inter = inter[sizes >= 3].reset_index(drop=True)
    return Dataset(f"{ds.name}-cold", ds.items, inter, ds.report, ds.has_images), cold & set(inter["item_id"])


def warm_first(split: Split, cold: set[str]) -> tuple[Split, Split, int]:
    """(the split with warm items at indices 1..W and cold ones after, its training view over the W warm items
    only (validation restricted to warm targets), W)."""
    is_cold = np.array([iid in cold for iid in split.item_ids])
    order = np.concatenate([np.flatnonzero(~is_cold), np.flatnonzero(is_cold)])  # old row per new row
    remap = torch.zeros(split.n_items + 1, dtype=torch.long)
    remap[torch.as_tensor(order + 1)] = torch.arange(1, split.n_items + 1)  # old index -> new index (0 stays 0)
    w = int((~is_cold).sum())

    def ev(e: EvalSet) -> EvalSet:
        return EvalSet(remap[e.history], e.lengths, remap[e.targets])

    full = Split(
        split.name,
        split.item_ids[order],
        split.user_ids,
        remap[split.train_inputs],
        remap[split.train_targets],
        split.train_lengths,
        ev(split.valid),
        ev(split.test),
        torch.cat([split.item_counts[:1], split.item_counts[1:][torch.as_tensor(order)]]),
        split.max_len,
    )
    assert int(full.train_inputs.max()) <= w and int(full.train_targets.max()) <= w, "a cold item left in training"
    keep = full.valid.targets <= w
    valid = EvalSet(full.valid.history[keep], full.valid.lengths[keep], full.valid.targets[keep])
    train = Split(
        full.name,
        full.item_ids[:w],
        full.user_ids,
        full.train_inputs,
        full.train_targets,
        full.train_lengths,
        valid,
        valid,
        full.item_counts[: w + 1],
        full.max_len,
    )
    return full, train, w


def cut(tables: ItemTables, rows: int) -> ItemTables:
    """The first `rows` rows of each feature table (padding + warm items)."""
    img = tables.image[:rows] if tables.image is not None else None
    mask = tables.image_mask[:rows] if tables.image_mask is not None else None
    return ItemTables(tables.text[:rows], img, mask)


def random_rows(model: SeqRecModel, m: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """Rows drawn with each trained table's per-dimension mean and sd: the control with no content in it."""
    return {
        k: torch.as_tensor(rng.normal(t.mean(0).numpy(), t.std(0).numpy(), size=(m, t.shape[1])), dtype=torch.float32)
        for k, t in item_tables(model).items()
    }


def split_metrics(ranks: torch.Tensor, is_cold: torch.Tensor) -> dict[str, dict[str, float]]:
    """Metrics over the test users whose target is cold, and over those whose target is warm."""
    return {"cold": metrics_from_ranks(ranks[is_cold]), "warm": metrics_from_ranks(ranks[~is_cold])}


def run_seed(args: argparse.Namespace, seed: int, extra: list[str]) -> dict:
    """Train the three models on the warm items of one seed's cold split and rank its test users by every method."""
    cfg = run_config(
        build_parser().parse_args(
            ["compare", "--data", data_path(args.data), "--out", "-", "--seed", str(seed), *extra]
        )
    )
    set_threads(args.threads)
    prep = prepare(cfg.data, cfg.features, "cpu", show_bar=False)
    ds, cold = cold_dataset(prep.dataset, args.cold_share, seed)
    full, train, w = warm_first(build_split(ds, cfg.data.max_len, cfg.data.window_stride, cfg.data.train_rows), cold)
    raw = prep.tables
    assert raw is not None
    ids = [str(x) for x in prep.split.item_ids]
    img = raw.image[1:].numpy() if raw.image is not None else None
    mask = raw.image_mask[1:].numpy() if raw.image_mask is not None else None
    tables = tables_for_split(full, ids, raw.text[1:].numpy(), img, mask)  # (N+1, .) in warm-first order
    x = content_matrix(
        tables.text[1:].numpy(),
        None if tables.image is None else tables.image[1:].numpy(),
        None if tables.image_mask is None else tables.image_mask[1:].numpy(),
    )  # (N, p)
    counts = full.item_counts[1 : w + 1].numpy()
    new_mask = tables.image_mask[w + 1 :] if tables.image_mask is not None else None
    test = full.test
    is_cold = test.targets > w
    device = resolve_device("cpu")
    trainer = Trainer(cfg.train, device, show_bar=False)
    warm_tables = cut(tables, w + 1)
    folder = Path(args.out) / args.data.replace("/", "_") / str(seed)
    trained: dict[str, Trained] = {}
    for name in ("sasrec", "content", "sicsrec"):  # each saved, so a rerun reuses the models already trained
        path = folder / name
        if (path / "config.json").exists():
            model, config, _ = load_checkpoint(path)
            trained[name] = Trained(model, read_fits(config))
            continue
        seed_everything(seed)
        feats = warm_tables if name != "sasrec" else None
        step1 = trained["sasrec"] if name == "sicsrec" else None
        trained[name] = train_model(name, train, feats, cfg.model_cfg, cfg.train, trainer, step1=step1)
        save_checkpoint(path, trained[name].model, item_table(train, ds.items), {"fits": fits_record(trained[name])})
    seconds = trained["content"].seconds + trained["sicsrec"].seconds  # SICSRec's fits include its step 1

    def bridged(name: str, weights: str = "log_count", matched: bool = True) -> SeqRecModel:
        model = trained[name].model.eval()
        fit = fit_bridge(model, x[:w], counts, BridgeConfig(weights, match_spread=matched))
        return extend_model(model, fit.rows(x[w:]), new_mask)

    pop = full.item_counts.double().clone()
    pop[0] = float("-inf")
    pop_fn = lambda hist, lengths: pop.expand(hist.shape[0], -1)
    content = trained["content"].model
    rng = np.random.default_rng(seed)
    methods: dict[str, Callable[[], torch.Tensor]] = {"pop": lambda: rank_all(pop_fn, test)}
    methods |= {f"{m}+bridge": partial(lambda m: user_ranks(bridged(m), test), m) for m in trained}
    methods |= {
        f"{m}+bridge(shrunk)": partial(lambda m: user_ranks(bridged(m, matched=False), test), m) for m in trained
    }
    methods |= {
        "sicsrec+bridge(uniform)": lambda: user_ranks(bridged("sicsrec", "uniform"), test),
        "content+raw": lambda: user_ranks(
            extend_model(content, {"content.text.weight": tables.text[w + 1 :]} | _raw_image(tables, w), new_mask),
            test,
        ),
        "sicsrec+random": lambda: user_ranks(
            extend_model(
                trained["sicsrec"].model, random_rows(trained["sicsrec"].model, full.n_items - w, rng), new_mask
            ),
            test,
        ),
    }
    fit = fit_bridge(trained["sicsrec"].model, x[:w], counts)
    ranks = {m: fn() for m, fn in methods.items()}
    out = {m: split_metrics(r, is_cold) for m, r in ranks.items()}
    print(
        f"seed {seed}: {w} warm + {full.n_items - w} cold items, {int(is_cold.sum())} cold / "
        f"{int((~is_cold).sum())} warm test targets, trained in {seconds:.0f}s"
    )
    for m, r in out.items():
        print(
            f"  {m:24s} cold "
            + " ".join(f"{k}={r['cold'][k]:.4f}" for k in REPORTED)
            + "  warm "
            + " ".join(f"{k}={r['warm'][k]:.4f}" for k in REPORTED)
        )
    return {
        "warm_items": w,
        "cold_items": full.n_items - w,
        "cold_targets": int(is_cold.sum()),
        "warm_targets": int((~is_cold).sum()),
        "train_seconds": seconds,
        "epochs": {k: t.epochs for k, t in trained.items()},
        "bridge": fit.stats,
        "methods": out,
        # the 0-based rank of every cold test user's target (in test order), for the paired comparison
        "cold_ranks": {m: ranks[m][is_cold].tolist() for m in KEPT_RANKS},
    }


def _raw_image(tables: ItemTables, w: int) -> dict[str, torch.Tensor]:
    """The raw image rows of the cold items, when the features have images."""
    return {"content.image.weight": tables.image[w + 1 :]} if tables.image is not None else {}


def summary(per_seed: dict[int, dict]) -> dict:
    """mean ± sd over seeds of the cold and warm metrics of every method measured on every seed."""
    methods = [m for m in METHODS if all(m in r["methods"] for r in per_seed.values())]
    return {
        m: {
            part: {k: asdict(summarise([per_seed[s]["methods"][m][part][k] for s in per_seed])) for k in REPORTED}
            for part in ("cold", "warm")
        }
        for m in methods
    }


def paired(per_seed: dict[int, dict]) -> dict:
    """Each bridged method against the random control and popularity on the same cold test users, pooled over
    the seeds that kept their ranks: per-user HR@10 and NDCG@10 differences with a 95% bootstrap interval. The
    interval speaks for these trained models and new users, not for another training run (the t-interval
    over seeds does)."""
    kept = [r["cold_ranks"] for r in per_seed.values() if "cold_ranks" in r]
    if not kept:
        return {}
    per_user = {"hr@10": lambda r: (r < 10).double(), "ndcg@10": lambda r: ndcg_per_user(r, 10)}
    out: dict[str, Any] = {"seeds": len(kept)}
    for a, b in PAIRED:
        ra, rb = (torch.as_tensor([x for seed in kept for x in seed[m]]) for m in (a, b))  # (U,) pooled cold users
        out[f"{a} vs {b}"] = {
            k: {n: v for n, v in paired_bootstrap(f(ra).numpy(), f(rb).numpy()).to_dict().items() if n in DIFFERENCE}
            for k, f in per_user.items()
        }
    return out


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="demo", help="demo, food, dance, ml (the shared datasets) or a dataset path")
    p.add_argument("--seeds", default="2025,2026,2027")
    p.add_argument("--cold-share", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "runs" / "cold_items"), help="trained models, reused by a rerun")
    p.add_argument("--json", default=str(ROOT / "bench" / "results" / "cold_items.json"))
    args = p.parse_args(argv)
    setup_logging(False)
    seeds = [int(s) for s in args.seeds.split(",")]
    path = Path(args.json)
    stored: dict[str, Any] = {"schema": SCHEMA, "datasets": {}}
    per_seed: dict[int, dict] = {}
    for seed in seeds:
        result = run_seed(args, seed, extra) | {"flags": extra, "cold_share": args.cold_share}
        # Seeds run elsewhere (another process) with the same flags join the summary.
        if path.exists():
            stored = json.loads(path.read_text(encoding="utf-8"))
        done = stored["datasets"].get(args.data, {}).get("per_seed", {})
        per_seed = {
            int(s): r for s, r in done.items() if r.get("flags") == extra and r.get("cold_share") == args.cold_share
        }
        per_seed[seed] = result
        stored["datasets"][args.data] = {
            "seeds": sorted(per_seed),
            "cold_share": args.cold_share,
            "command": f"python bench/cold_items.py --data {args.data} --seeds ... -- " + " ".join(extra),
            "summary": summary(per_seed),
            "paired": paired(per_seed),
            "per_seed": {str(s): per_seed[s] for s in sorted(per_seed)},
        }
        stored |= {
            "created": time.strftime("%Y-%m-%d %H:%M"),
            "ranking": TIE_RULE,
            "machine": f"{platform.machine()}, {platform.python_version()}, torch {torch.__version__}",
        }
        atomic_write_text(path, compact_json(stored))  # after every seed: an interrupted bench keeps its part
    print(f"\n{args.data}: mean ± sd over seeds {sorted(per_seed)} (test, full ranking, {TIE_RULE})")
    print("| method | cold HR@10 | cold NDCG@10 | warm HR@10 | warm NDCG@10 |\n|---|---|---|---|---|")
    for m, r in summary(per_seed).items():
        cells = [f"{r[part][k]['mean']:.4f} ± {r[part][k]['std']:.4f}" for part in ("cold", "warm") for k in REPORTED]
        print(f"| {m} | " + " | ".join(cells) + " |")
    pairs = paired(per_seed)
    if pairs:
        print(f"\npaired over the cold test users of {pairs['seeds']} seed(s), pooled (95% bootstrap over users)")
        print("| method | vs | users | HR@10 difference | NDCG@10 difference |\n|---|---|---|---|---|")
        for label, r in pairs.items():
            if label != "seeds":
                a, b = label.split(" vs ")
                cells = [
                    f"{r[k]['mean_diff']:+.4f} [{r[k]['diff_low']:+.4f}, {r[k]['diff_high']:+.4f}]" for k in REPORTED
                ]
                print(f"| {a} | {b} | {r['hr@10']['users']:,} | " + " | ".join(cells) + " |")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
