"""Scale: full-ranking evaluation at 10k-1M items (one score matrix vs item chunks) and one training epoch at
10k-100k items, one process vs two (torchrun, gloo); prints seconds and peak memory.

Usage: python bench/scale.py [--users 300] [--eval-items 10000,100000,1000000] [--train-items 10000,100000]
       [--hidden 64] [--chunk-mb 64] [--skip-train]
Evaluation: an untrained SASRec (the cost does not depend on the weights) ranks `--users` random histories
of length <= 50 in one user batch. Peak memory is the rise of the process's peak RSS (VmHWM, reset through
/proc/self/clear_refs, Linux) over its RSS before the call: the score matrices, not the model.
Training: SASRec on random walks of `--users` users (~30 targets each) over a catalogue of N items (full
softmax over all N), one epoch, each process on one thread (OMP_NUM_THREADS=1); the peak is each rank's
whole-process maximum RSS. `--worker` is the per-rank entry torchrun starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from sicsrec import dist  # noqa: E402
from sicsrec.config import ModelConfig, TrainConfig  # noqa: E402
from sicsrec.data.schema import Dataset, ValidationReport  # noqa: E402
from sicsrec.data.split import EvalSet, Split, build_split  # noqa: E402
from sicsrec.eval.evaluate import EVAL_MEMORY_MB, evaluate_model, item_chunk  # noqa: E402
from sicsrec.model import SASRec  # noqa: E402
from sicsrec.train.trainer import Trainer  # noqa: E402
from sicsrec.utils import release_memory  # noqa: E402

MAX_LEN = 50


def rss_mb(field: str) -> float:
    """VmRSS / VmHWM of this process in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_rise(fn) -> tuple[float, float]:
    """(seconds, MiB the peak RSS rose above the RSS before) of one call."""
    release_memory()  # freed heap pages of earlier calls would hide this call's rise
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    base = rss_mb("VmRSS")
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start, rss_mb("VmHWM") - base


def random_queries(n_items: int, users: int, seed: int = 0) -> EvalSet:
    """`users` right-padded random histories (1-50 items) with random targets."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, MAX_LEN + 1, (users,), generator=gen)
    history = torch.randint(1, n_items + 1, (users, MAX_LEN), generator=gen)
    history[torch.arange(MAX_LEN)[None, :] >= lengths[:, None]] = 0  # (U, L): padding after each history
    return EvalSet(history, lengths, torch.randint(1, n_items + 1, (users,), generator=gen))


def bench_eval(n_items: int, users: int, hidden: int, chunk_mb: float) -> None:
    """One line per evaluation mode at n_items: seconds, peak MiB, chunk width."""
    torch.manual_seed(0)
    model = SASRec(ModelConfig(hidden=hidden, ffn=hidden, max_len=MAX_LEN), n_items).eval()
    data = random_queries(n_items, users)
    whole_mb = users * (n_items + 1) * 9 / 2**20  # float32 product + scaled copy + the bool mask
    modes = [("chunked", chunk_mb), ("auto", EVAL_MEMORY_MB)]
    if whole_mb < 4096:  # the one-matrix path where it fits this machine
        modes.insert(0, ("one matrix", float("inf")))
    results = {}
    for name, budget in modes:
        chunk = item_chunk(users, n_items + 1, 4, budget)
        secs, peak = peak_rise(lambda b=budget: results.__setitem__(b, evaluate_model(model, data, users, b)))
        width = "all" if chunk > n_items else f"{chunk:,}"
        print(
            f"eval  N={n_items:>9,}  {name:<10} budget {budget:>6} MB  chunk {width:>9}  "
            f"{secs:7.2f} s  peak +{peak:8.1f} MiB  ({users} users, d {hidden})",
            flush=True,
        )
    assert len({json.dumps(m, sort_keys=True) for m in results.values()}) == 1, "modes disagree"


def walk_split(n_items: int, users: int, seed: int = 0) -> Split:
    """Random walks (+1 steps, 15% jumps) of `users` users over N items; the catalogue padded to all N."""
    rng = np.random.default_rng(seed)
    lens = rng.integers(10, MAX_LEN, users)
    pos = np.concatenate([np.arange(n) for n in lens])
    jumps = (rng.random(len(pos)) < 0.15) * rng.integers(0, n_items, len(pos))
    items = (np.repeat(rng.integers(0, n_items, users), lens) + pos + jumps) % n_items
    inter = pd.DataFrame({"user_id": np.repeat(np.arange(users), lens).astype(str), "item_id": items.astype(str)})
    inter["order"] = pos
    ids = [str(i) for i in range(n_items)]
    item_df = pd.DataFrame({"item_id": ids, "title": ids, "text": ids, "category": "", "image_path": ""})
    split = build_split(Dataset("walks", item_df, inter, ValidationReport()), max_len=MAX_LEN)
    unseen = np.asarray(sorted(set(ids) - set(split.item_ids)), dtype=object)  # never clicked, still ranked
    counts = torch.cat([split.item_counts, torch.zeros(len(unseen), dtype=split.item_counts.dtype)])
    return dataclasses.replace(split, item_ids=np.concatenate([split.item_ids, unseen]), item_counts=counts)


def worker(n_items: int, users: int, hidden: int, out: str) -> None:
    """One rank of a one-epoch SASRec fit (alone, or under torchrun); rank 0 writes its figures to `out`."""
    device = dist.init(torch.device("cpu"))
    split = walk_split(n_items, users)
    torch.manual_seed(0)
    model = SASRec(ModelConfig(hidden=hidden, ffn=hidden, max_len=MAX_LEN), split.n_items)
    fit = Trainer(TrainConfig(max_epochs=1, device="cpu"), device, show_bar=False).fit(model, split, "sasrec")
    peak = dist.all_reduce_sum(torch.zeros(dist.world_size()).index_fill_(0, torch.tensor(dist.rank()), rss_peak()))
    if dist.is_main():
        epoch = fit.history[0]
        figures = {"seconds": epoch.seconds, "eval_seconds": epoch.eval_seconds, "targets": split.n_train_targets}
        Path(out).write_text(json.dumps({**figures, "peak_mb": peak.tolist(), "loss": epoch.loss["rec"]}))


def rss_peak() -> float:
    """This process's maximum RSS so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_train(n_items: int, users: int, hidden: int) -> None:
    """One line per launch (1 process x 1 thread, 1 x 2 threads, 2 processes x 1 thread) at n_items."""
    me = [str(Path(__file__).resolve()), "--worker", "--users", str(users), "--hidden", str(hidden)]
    launches = [
        ("1 proc x 1 thread", [sys.executable], "1"),
        ("1 proc x 2 threads", [sys.executable], "2"),
        (
            "2 procs x 1 thread",
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
            "1",
        ),
    ]
    for name, launcher, threads in launches:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "fit.json"
            env = {**os.environ, "OMP_NUM_THREADS": threads}
            cmd = [*launcher, *me, "--train-items", str(n_items), "--out", str(out)]
            subprocess.run(cmd, check=True, env=env, cwd=ROOT, capture_output=True)
            r = json.loads(out.read_text())
        peaks = " + ".join(f"{p:.0f}" for p in r["peak_mb"])
        print(
            f"train N={n_items:>9,}  {name:<19} epoch {r['seconds']:7.2f} s  "
            f"({r['targets'] / r['seconds']:7.0f} targets/s)  valid {r['eval_seconds']:5.2f} s  "
            f"loss {r['loss']:.4f}  peak RSS {peaks} MiB",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=300)
    ap.add_argument("--eval-items", default="10000,100000,1000000")
    ap.add_argument("--train-items", default="10000,100000")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--chunk-mb", type=float, default=64.0, help="budget of the forced-chunked evaluation")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(int(args.train_items), args.users, args.hidden, args.out)
        return
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs; evaluation on 1 thread")
    for n in (int(x) for x in args.eval_items.split(",") if x):
        bench_eval(n, args.users, args.hidden, args.chunk_mb)
    if not args.skip_train:
        for n in (int(x) for x in args.train_items.split(",") if x):
            bench_train(n, args.users, args.hidden)


if __name__ == "__main__":
    main()
