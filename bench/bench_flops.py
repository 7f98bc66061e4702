"""How close a training step gets to the machine: FLOPs per epoch (counted by torch's FlopCounterMode
over forward + backward) against the measured dense matmul rate, for SASRec and SICSRec step 2.

    python bench/bench_flops.py [--data demo] [--hidden 256] [--threads 2] [--batches 10] [--length-pools 0]

Each length pool (`--length-pool` of the trainer; 0 = random batches) gets its own rows and the
epoch's padded positions per target. Also counts what RecBole's one-row-per-prefix layout (every
prefix padded to 50) would cost for the same targets, the FLOPs our one-causal-pass windows save.
Prints figures; no asserts.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sicsrec.config import DataConfig, FeatureConfig, ModelConfig, TrainConfig
from sicsrec.run.prepare import prepare
from sicsrec.train.trainer import padded_width, target_batches
from sicsrec.train.two_step import build_model


def matmul_gflops(n: int = 1024, repeats: int = 20) -> float:
    """Best-of dense fp32 matmul rate (GFLOP/s) at the current thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def step_cost(
    model: torch.nn.Module, seq: torch.Tensor, tgt: torch.Tensor, opt: torch.optim.Optimizer
) -> tuple[int, float]:
    """(FLOPs, seconds) of one forward + backward + optimiser step."""
    with FlopCounterMode(display=False) as counter:
        out = model.calculate_loss(seq, tgt)
        out.total.backward()
    opt.zero_grad(set_to_none=True)
    t = time.perf_counter()
    out = model.calculate_loss(seq, tgt)
    out.total.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return counter.get_total_flops(), time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="demo")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", type=int, default=10, help="batches timed per model")
    ap.add_argument("--length-pools", default="0", help="comma list of trainer length pools to compare [0]")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    prep = prepare(DataConfig(path=args.data), FeatureConfig(), show_bar=False)
    split, cfg = prep.split, TrainConfig()
    peak = matmul_gflops()
    print(f"threads={args.threads}; dense fp32 matmul (1024^3): {peak:.1f} GFLOP/s")
    n_targets = (split.train_targets > 0).sum(dim=1)
    print(f"{split.n_train_targets:,} training targets in batches of ~{cfg.batch_size} targets\n")
    print(
        "| length pool | positions per target | model | GFLOP per epoch (fwd+bwd) | s per batch | s per epoch "
        "| achieved GFLOP/s | share of matmul peak |"
    )
    print("|---|---|---|---|---|---|---|---|")
    per_target = {}
    for pool in (int(p) for p in args.length_pools.split(",")):
        batches = target_batches(n_targets, cfg.batch_size, torch.Generator().manual_seed(0), split.train_lengths, pool)
        widths = [padded_width(int(split.train_lengths[idx].max()), split.max_len) for idx in batches]
        positions = sum(len(idx) * w for idx, w in zip(batches, widths)) / split.n_train_targets
        for name in ("sasrec", "sicsrec"):
            model = build_model(name, ModelConfig(hidden=args.hidden, ffn=args.hidden), split, prep.tables)
            model.train()
            opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
            flops, seconds, targets = 0, 0.0, 0
            for idx, width in zip(batches[: args.batches], widths):
                seq, tgt = split.train_inputs[idx, :width], split.train_targets[idx, :width]  # (B, width)
                f, s = step_cost(model, seq, tgt, opt)
                flops, seconds, targets = flops + f, seconds + s, targets + int((tgt > 0).sum())
            epoch_gflop = flops / targets * split.n_train_targets / 1e9
            per_target.setdefault(name, flops / targets)  # the first pool's (random batches by default)
            rate = flops / seconds / 1e9
            epoch_s = seconds / targets * split.n_train_targets
            print(
                f"| {pool} | {positions:.2f} | {name} | {epoch_gflop:,.0f} | {seconds / min(args.batches, len(batches)):.3f} "
                f"| {epoch_s:.1f} | {rate:.1f} | {rate / peak:.0%} |"
            )

    # One row per prefix, each padded to max_len (RecBole's layout): the encoder runs L positions per target.
    width = split.max_len
    model = build_model("sasrec", ModelConfig(hidden=args.hidden, ffn=args.hidden), split, None)
    seq = split.train_inputs[:64, :width]  # (64, L): 64 prefix rows
    tgt = torch.zeros_like(seq)
    tgt[:, -1] = split.train_targets[:64, 0].clamp_min(1)  # one target per row, as in a prefix expansion
    with FlopCounterMode(display=False) as counter:
        model.calculate_loss(seq, tgt).total.backward()
    prefix = counter.get_total_flops() / 64
    print(
        f"\nSASRec FLOPs per target: ours {per_target['sasrec'] / 1e6:.1f} M vs one padded row per prefix "
        f"{prefix / 1e6:.1f} M ({prefix / per_target['sasrec']:.1f}x)"
    )


if __name__ == "__main__":
    main()
