"""How well the Train tab's time estimate matches a real job: the "Quick demo" preset on the embedded demo.

    python bench/bench_estimate.py [--preset "Quick demo (~1 min)"] [--threads 2]

Prints the form's estimate (`sicsrec.app.jobs.estimate_seconds`, preparing + training at most) and the wall
time of the same job through `run_experiment` (features cached, as on a dataset's second use), on this machine
as it is now (its load average is printed: the estimate is for an idle machine). No asserts.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sicsrec.app.jobs import estimate_seconds  # noqa: E402
from sicsrec.app.tabs.train import PRESETS, STAGES  # noqa: E402
from sicsrec.config import DataConfig, FeatureConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from sicsrec.run.experiment import run_experiment  # noqa: E402
from sicsrec.run.prepare import load_data, prepare  # noqa: E402


def main() -> None:
    """Estimate, then run and time the preset's job."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default=next(iter(PRESETS)), choices=list(PRESETS))
    ap.add_argument("--threads", type=int, default=2, help="torch threads, as the app's training job uses")
    args = ap.parse_args()
    p = PRESETS[args.preset]
    models = tuple(STAGES[s] for s in p["stages"])
    data = DataConfig(path="demo")
    ds = load_data(data)
    est = estimate_seconds(len(ds.interactions), ds.interactions["user_id"].nunique(), models, p["hidden"], p["epochs"])
    cfg = RunConfig(
        model="sicsrec",
        data=data,
        features=FeatureConfig(),
        model_cfg=ModelConfig(hidden=p["hidden"], ffn=p["hidden"], alpha=p["alpha"]),
        train=TrainConfig(
            lr=p["lr"], batch_size=p["batch"], max_epochs=p["epochs"], patience=p["patience"], threads=args.threads
        ),
    )
    prepare(data, cfg.features, "cpu", show_bar=False)  # caches the content features: the estimate assumes them
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        run_experiment(cfg, out, models, show_bar=False)
    took = time.perf_counter() - t0
    print(
        f"{args.preset}: {', '.join(models)}, d {p['hidden']}, {p['epochs']} epochs, threads {args.threads}; "
        f"load average {load:.1f} on {os.cpu_count()} cores before the run"
    )
    print(f"  estimate: {est.total:.0f} s at most (preparing {est.prepare:.0f} s, training {est.train:.0f} s)")
    print(f"  measured: {took:.0f} s ({took / est.total:.2f}x the estimate)")


if __name__ == "__main__":
    main()
