"""Render one markdown table from several `compare` runs' results.json (for README / BENCHMARKS).

python bench/results_table.py runs/food runs/dance runs/ml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sicsrec.eval.results import Results


def main(paths: list[str]) -> None:
    print("| dataset | model | test HR@5 | test HR@10 | test NDCG@5 | test NDCG@10 | epochs | train s |")
    print("|---|---|---|---|---|---|---|---|")
    for p in paths:
        res = Results.read(p)
        if res is None:
            raise SystemExit(f"{p}: no readable results.json")
        for name in res.model_names(with_pop=True):
            m = res.models[name]
            t = m.test
            print(
                f"| {res.dataset} | {name} | {t['hr@5']:.4f} | {t['hr@10']:.4f} | {t['ndcg@5']:.4f} | "
                f"{t['ndcg@10']:.4f} | {m.epochs} | {m.train_seconds:.0f} |"
            )
        gain = res.gain("sicsrec", metric="ndcg@5")
        if gain is not None:
            print(f"| {res.dataset} | SICSRec NDCG@5 vs best baseline | | | {100 * gain:+.1f}% | | | |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="One markdown table from several compare runs' results.json.")
    ap.add_argument("runs", nargs="+", help="compare --out folders (each holding results.json)")
    main(ap.parse_args().runs)
