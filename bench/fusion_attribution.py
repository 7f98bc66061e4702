"""How much of SICSRec's score comes from each stream: behaviour (ID encoder), content, mixed.

    python bench/fusion_attribution.py runs/dance/checkpoints/sicsrec runs/ablations/seed2025/identity_fusion ...

For every SICSRec checkpoint: the Frobenius norm of each block of the fusion layer W = [W_id | W_c |
W_mix], and, over the test users, the mean contribution of each part of the user vector to the
test target's score (the app's exact attribution: part · e_target / ||u||, before 1/tau; the
parts plus the bias sum to the cosine score). No training; prints a markdown table, no asserts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sicsrec.checkpoint import load_checkpoint  # noqa: E402
from sicsrec.config import RunConfig  # noqa: E402
from sicsrec.eval.evaluate import evaluate_model  # noqa: E402
from sicsrec.model import SICSRec  # noqa: E402
from sicsrec.pipeline import load_data, split_data  # noqa: E402

PARTS = ("behavior", "content", "mixed", "bias")


@torch.no_grad()
def target_contributions(model: SICSRec, history: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor,
                         batch_size: int = 2048) -> dict[str, float]:
    """Mean over users of each part's share of the target's cosine score (part · e_t / ||u||)."""
    table = model.item_table()  # (N+1, d), normalised as at inference
    sums = dict.fromkeys(PARTS, 0.0)
    for s in range(0, len(lengths), batch_size):
        n = lengths[s : s + batch_size]
        out = model.user_vectors(history[s : s + batch_size, : int(n.max())], n)
        e = table[targets[s : s + batch_size]]  # (B, d)
        for p in PARTS:
            sums[p] += float(((out.parts[p] * e).sum(-1) * out.part_scale[:, 0]).sum())  # (B,) summed
    return {p: v / len(lengths) for p, v in sums.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+", help="SICSRec checkpoint folders")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    splits = {}
    print("| checkpoint | ‖W_id‖ | ‖W_c‖ | ‖W_mix‖ | " + " | ".join(f"target score: {p}" for p in PARTS)
          + " | test NDCG@5 |")
    print("|---" * (5 + len(PARTS)) + "|")
    for path in args.checkpoints:
        model, config, _ = load_checkpoint(path)
        if not isinstance(model, SICSRec):
            print(f"| {path} | not a SICSRec checkpoint ({config.get('model')}) |")
            continue
        run = RunConfig.from_dict(config["run"])
        key = (run.data.path, run.data.max_len)
        if key not in splits:
            splits[key] = split_data(load_data(run.data), run.data)
        test = splits[key].test
        model.eval()
        d = model.cfg.hidden
        w = model.fusion.weight.detach()  # (d, 3d)
        norms = [float(w[:, i * d : (i + 1) * d].norm()) for i in range(3)]
        contrib = target_contributions(model, test.history, test.lengths, test.targets)
        ndcg5 = evaluate_model(model, test)["ndcg@5"]
        print(f"| {path} | " + " | ".join(f"{x:.2f}" for x in norms) + " | "
              + " | ".join(f"{contrib[p]:+.3f}" for p in PARTS) + f" | {ndcg5:.4f} |")


if __name__ == "__main__":
    main()
