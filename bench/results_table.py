"""Render one markdown table from several `compare` runs' results.json (for README / BENCHMARKS).

    python bench/results_table.py runs/food runs/dance runs/ml
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sicsrec.run.experiment import MODEL_ORDER  # noqa: E402


def main(paths: list[str]) -> None:
    print("| dataset | model | test HR@5 | test HR@10 | test NDCG@5 | test NDCG@10 | epochs | train s |")
    print("|---|---|---|---|---|---|---|---|")
    for p in paths:
        res = json.loads((Path(p) / "results.json").read_text())
        ms = res["models"]
        baselines = [ms[b]["test"]["ndcg@5"] for b in ("pop", "sasrec", "content") if b in ms]
        for name in MODEL_ORDER:
            if name not in ms:
                continue
            t = ms[name]["test"]
            print(f"| {res['dataset']} | {name} | {t['hr@5']:.4f} | {t['hr@10']:.4f} | {t['ndcg@5']:.4f} | "
                  f"{t['ndcg@10']:.4f} | {ms[name]['epochs']} | {ms[name]['train_seconds']:.0f} |")
        if "sicsrec" in ms and baselines:
            gain = 100 * (ms["sicsrec"]["test"]["ndcg@5"] / max(baselines) - 1)
            print(f"| {res['dataset']} | SICSRec NDCG@5 vs best baseline | | | {gain:+.1f}% | | | |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="One markdown table from several compare runs' results.json.")
    ap.add_argument("runs", nargs="+", help="compare --out folders (each holding results.json)")
    main(ap.parse_args().runs)
