"""Peer parity: RecBole 1.2.1's SASRec vs ours on exactly our leave-one-out split, same settings, same
threads, measured in one run; plus metric parity (one score matrix through both evaluators) and
model parity (RecBole's trained weights run through our SASRec and our evaluator).

    python bench/recbole_parity.py --data ../shared/data/ninerec_bili_text/Bili_Food [--hidden 256]
        [--max-epochs 200] [--threads 2] [--train-rows windows|prefixes] [--out runs/parity]

RecBole is installed by this script into its own venv (torch 2.13.0, numpy 1.26.4); its files are
never edited (bench/recbole/runner.py patches at import time). Our split is exported as RecBole's
pre-split atomic files: one training row per prefix (the last 50 items), valid and test rows per
user, so both sides train and rank on identical data. Prints a markdown table; no asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from epoch_curve import print_blocks  # noqa: E402  (bench/ is on sys.path when this script runs)

from sicsrec.config import DataConfig, FeatureConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from sicsrec.data.split import Split  # noqa: E402
from sicsrec.eval.evaluate import evaluate_model  # noqa: E402
from sicsrec.eval.metrics import metrics_from_ranks, target_ranks  # noqa: E402
from sicsrec.model import SASRec  # noqa: E402
from sicsrec.run.experiment import run_experiment  # noqa: E402
from sicsrec.run.prepare import Prepared, load_data, split_data  # noqa: E402
from sicsrec.utils import setup_logging  # noqa: E402

VENV = Path(os.environ.get("SICSREC_RECBOLE_VENV", Path.home() / ".cache" / "sicsrec-recbole-venv"))
PINS = ["torch==2.13.0", "recbole==1.2.1", "numpy==1.26.4", "pandas==2.2.3"]


def ensure_venv() -> Path:
    """RecBole's own venv (created once)."""
    py = VENV / "bin" / "python"
    if not (VENV / ".ready").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *PINS], check=True)
        (VENV / ".ready").touch()
    return py


def training_parts(prep_ds, split: Split) -> list[np.ndarray]:
    """Each user's training part as item indices (the same sequences build_split used)."""
    index = split.index_of()
    inter = prep_ds.interactions
    idx = inter["item_id"].map(index).to_numpy()
    users = inter["user_id"].to_numpy()
    cuts = np.flatnonzero(users[1:] != users[:-1]) + 1
    return [seq[:-2] for seq in np.split(idx, cuts)]


def export_atomic(parts: list[np.ndarray], split: Split, folder: Path, name: str, max_len: int) -> int:
    """Write name.{train,valid,test}.inter (user_id, item_id_list, item_id); returns training rows."""
    folder.mkdir(parents=True, exist_ok=True)
    head = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
    rows = []
    for u, p in enumerate(parts):
        rows += [f"{u}\t{' '.join(map(str, p[max(0, t - max_len) : t]))}\t{p[t]}\n" for t in range(1, len(p))]
    (folder / f"{name}.train.inter").write_text(head + "".join(rows))
    for part in ("valid", "test"):
        ev = getattr(split, part)
        lines = [
            f"{u}\t{' '.join(map(str, ev.history[u, : ev.lengths[u]].tolist()))}\t{int(ev.targets[u])}\n"
            for u in range(len(ev.targets))
        ]
        (folder / f"{name}.{part}.inter").write_text(head + "".join(lines))
    return len(rows)


def run_recbole(py: Path, job: dict) -> dict:
    proc = subprocess.run(
        [str(py), str(ROOT / "bench" / "recbole" / "runner.py"), json.dumps(job)],
        capture_output=True,
        text=True,
        cwd=job.get("cwd", ROOT),
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"RecBole runner failed:\n{proc.stderr[-4000:]}")
    return json.loads(line[len("RESULT ") :])


RECBOLE_NAMES = {
    "attn.q": "multi_head_attention.query",
    "attn.k": "multi_head_attention.key",
    "attn.v": "multi_head_attention.value",
    "attn.out": "multi_head_attention.dense",
    "attn.norm": "multi_head_attention.LayerNorm",
    "ffn.fc1": "feed_forward.dense_1",
    "ffn.fc2": "feed_forward.dense_2",
    "ffn.norm": "feed_forward.LayerNorm",
}


def recbole_weights_in_ours(path: Path, split: Split, cfg: ModelConfig) -> dict[str, dict[str, float]]:
    """RecBole's trained SASRec loaded into our SASRec, valid/test by our evaluator: equal numbers
    prove the forward pass and the evaluation identical, so any gap lies in training."""
    w = np.load(path)
    t = lambda k: torch.from_numpy(w[k])
    model = SASRec(cfg, split.n_items)
    emb = torch.zeros_like(model.id_encoder.item_emb.weight)
    emb[torch.tensor([0] + [int(x) for x in w["tokens"][1:]])] = t("item_embedding.weight")  # RecBole id -> ours
    state = {
        "id_encoder.item_emb.weight": emb,
        "id_encoder.pos_emb.weight": t("position_embedding.weight"),
        "id_encoder.encoder.norm.weight": t("LayerNorm.weight"),
        "id_encoder.encoder.norm.bias": t("LayerNorm.bias"),
    }
    for i in range(cfg.layers):
        for ours, theirs in RECBOLE_NAMES.items():
            for p in ("weight", "bias"):
                state[f"id_encoder.encoder.blocks.{i}.{ours}.{p}"] = t(f"trm_encoder.layer.{i}.{theirs}.{p}")
    model.load_state_dict(state)
    model.eval()
    return {part: evaluate_model(model, getattr(split, part)) for part in ("valid", "test")}


def metric_parity(py: Path, out: Path, n_items: int = 2000, n_users: int = 3000) -> dict[str, tuple[float, float]]:
    """The same random score matrix through RecBole's Hit/NDCG and ours."""
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(n_users, n_items, generator=g)
    targets = torch.randint(0, n_items, (n_users,), generator=g)
    scores[torch.arange(n_users), targets] += 2.5  # make hits common enough to compare
    np.savez(out / "scores.npz", scores=scores.numpy(), targets=targets.numpy())
    theirs = run_recbole(py, {"kind": "metrics", "scores": str(out / "scores.npz")})
    ours = metrics_from_ranks(target_ranks(scores, targets))
    return {k: (ours[k], theirs[k]) for k in ours}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--max-epochs", type=int, default=200)
    ap.add_argument("--patience", type=int, default=10)
    ap.add_argument(
        "--our-patience",
        type=int,
        default=None,
        help="our side's patience [--patience]: on long sequences (MovieLens) ours keeps improving "
        "after a short patience stops it, and its epochs cost ~1/20 of RecBole's",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=2025)
    ap.add_argument(
        "--length-pool",
        type=int,
        default=TrainConfig.length_pool,
        help="our trainer's length pools (0 = random batches, as RecBole's)",
    )
    ap.add_argument(
        "--train-rows",
        default="windows",
        choices=["windows", "prefixes"],
        help="our training rows: one causal pass per window, or RecBole's one row per target",
    )
    ap.add_argument(
        "--test-curve",
        action="store_true",
        help="also rank the test set after every RecBole epoch and print the curve (diagnosis only; "
        "our side: bench/epoch_curve.py)",
    )
    ap.add_argument("--out", default="runs/parity")
    args = ap.parse_args()
    setup_logging()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    py = ensure_venv()

    print("## metric parity (same scores, both evaluators)")
    for k, (a, b) in metric_parity(py, out).items():
        print(f"{k}: ours {a:.6f} recbole {b:.6f} diff {a - b:+.2e}")

    data = DataConfig(path=args.data, train_rows=args.train_rows)
    ds = load_data(data)
    split = split_data(ds, data)
    name = "parity"
    n_rows = export_atomic(training_parts(ds, split), split, out / "atomic" / name, name, data.max_len)
    rb_cfg = {
        "data_path": str(out / "atomic"),
        "benchmark_filename": ["train", "valid", "test"],
        "alias_of_item_id": ["item_id_list"],
        "load_col": {"inter": ["user_id", "item_id_list", "item_id"]},
        "MAX_ITEM_LIST_LENGTH": data.max_len,
        "hidden_size": args.hidden,
        "inner_size": args.hidden,
        "n_layers": 2,
        "n_heads": 2,
        "hidden_dropout_prob": 0.5,
        "attn_dropout_prob": 0.5,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-12,
        "initializer_range": 0.02,
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "train_batch_size": 1024,
        "eval_batch_size": 4096,
        "learning_rate": 1e-3,
        "epochs": args.max_epochs,
        "stopping_step": args.patience,
        "valid_metric": "Hit@10",
        "metrics": ["Hit", "NDCG"],
        "topk": [5, 10],
        "eval_args": {"order": "TO", "mode": "full", "group_by": "user"},
        "seed": args.seed,
        "reproducibility": True,
        "device": "cpu",
        "use_gpu": False,
        "worker": 0,
        "checkpoint_dir": str(out / "recbole_saved"),
        "show_progress": False,
    }
    t = time.time()
    rb = run_recbole(
        py,
        {
            "kind": "train",
            "dataset": name,
            "config": rb_cfg,
            "threads": args.threads,
            "cwd": str(out),
            "test_curve": args.test_curve,
        },
    )
    rb_wall = time.time() - t

    cfg = RunConfig(
        "sasrec",
        data,
        FeatureConfig(),
        ModelConfig(hidden=args.hidden, ffn=args.hidden),
        TrainConfig(
            max_epochs=args.max_epochs,
            patience=args.our_patience or args.patience,
            seed=args.seed,
            device="cpu",
            threads=args.threads,
            length_pool=args.length_pool,
        ),
    )
    ours = run_experiment(cfg, out / "ours", ("sasrec",), prepared=Prepared(ds, split, None, {}), show_bar=False)
    m = ours.results.models["sasrec"]
    fit = json.loads((out / "ours" / "checkpoints" / "sasrec" / "config.json").read_text())["fits"][0]
    ours_epoch_s = float(np.mean([h["seconds"] for h in fit["history"]]))
    rb_epoch_s = float(np.mean(rb["epoch_seconds"]))

    print(
        f"\n## SASRec parity on {ds.name} (hidden {args.hidden}, {args.threads} threads, {n_rows:,} training prefixes)"
    )
    print("| | ours | RecBole 1.2.1 | ratio |\n|---|---|---|---|")
    for k, rk in (("hr@10", "hit@10"), ("ndcg@10", "ndcg@10"), ("hr@5", "hit@5"), ("ndcg@5", "ndcg@5")):
        print(f"| test {k} | {m.test[k]:.4f} | {rb['test'][rk]:.4f} | {m.test[k] / max(rb['test'][rk], 1e-12):.3f} |")
    print(f"| epochs (best) | {m.epochs} ({fit['best_epoch']}) | {rb['epochs']} ({rb['best_epoch']}) | |")
    print(f"| seconds per epoch | {ours_epoch_s:.1f} | {rb_epoch_s:.1f} | {rb_epoch_s / ours_epoch_s:.1f}x faster |")
    print(f"| training samples/s | {n_rows / ours_epoch_s:,.0f} | {n_rows / rb_epoch_s:,.0f} | |")
    print(
        f"| seconds to best epoch | {sum(h['seconds'] for h in fit['history'][: fit['best_epoch']]):.0f} | "
        f"{sum(rb['epoch_seconds'][: rb['best_epoch']]):.0f} | |"
    )
    print(f"| wall seconds (incl. eval) | {m.train_seconds:.0f} | {rb_wall:.0f} | |")

    if rb["curve"]:
        rows = [
            {"epoch": c["epoch"], **{f"{p} {k}": c[p][k] for p in ("valid", "test") for k in ("hit@10", "ndcg@10")}}
            for c in rb["curve"]
        ]
        print_blocks("RecBole: valid and test after every epoch (means per block of epochs)", rows)
    swapped = recbole_weights_in_ours(out / "recbole_weights.npz", split, cfg.model_cfg)
    print("\n## RecBole's trained weights in our SASRec, our evaluator (should equal RecBole's own figures)")
    print("| | ours with RecBole's weights | RecBole 1.2.1 |\n|---|---|---|")
    for k, rk in (("hr@10", "hit@10"), ("ndcg@10", "ndcg@10")):
        print(f"| valid {k} | {swapped['valid'][k]:.4f} | {rb['valid'][rk]:.4f} |")
        print(f"| test {k} | {swapped['test'][k]:.4f} | {rb['test'][rk]:.4f} |")


if __name__ == "__main__":
    main()
