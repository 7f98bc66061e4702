"""The Train tab's time estimate against the job it estimates, driven over HTTP like a lecturer's clicks.

    python bench/bench_train_estimate.py [--preset "Quick demo (~1 min)"] [--epochs 3,8] [--port 7873] [-- app.py flags]

For each epoch count: the preset button's own event fills the form (`/preset`), the form's estimate is read
as the page shows it (`/estimated`), the job is started (`/start`) and polled (`/poll`) until it has
finished; the wall time from the start click to "Finished" is set against the estimate. Each model's own
training seconds and epochs come from the run's results.json (a file the app writes; nothing here imports
the app). Two epoch counts separate the fixed cost of a job from its cost per epoch, the two constants the
estimate needs; from the second job on, the estimate is the one the app scaled to the first job's measured speed.
CPU steal (the hypervisor's share, /proc/stat) is printed: on a shared VM it moves every timing. The app runs in a fresh process with a temporary --workdir. Prints figures; no asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_app import served_app  # bench/ is on sys.path when this script runs

ROOT = Path(__file__).resolve().parents[1]
CLOCK = re.compile(r"(?:(\d+):)?(\d+):(\d\d)")


def seconds_of(clock: str) -> float:
    """'m:ss' or 'h:mm:ss' as seconds."""
    m = CLOCK.fullmatch(clock)
    if m is None:
        raise ValueError(f"not a clock: {clock!r}")
    h, mm, ss = m.groups()
    return 3600 * int(h or 0) + 60 * int(mm) + int(ss)


def cpu_times() -> list[int]:
    """The machine's cumulative CPU jiffies (/proc/stat: user nice system idle iowait irq softirq steal ...)."""
    return [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]


def steal_share(before: list[int], after: list[int]) -> float:
    """The share of CPU time the hypervisor took from this VM between two readings (0 on bare metal)."""
    delta = [b - a for a, b in zip(before, after, strict=True)]
    return delta[7] / max(1, sum(delta[:8]))


def dependency(config: dict, name: str) -> dict:
    """The event of the page whose (undocumented) api name is `name`."""
    return next(d for d in config["dependencies"] if d.get("api_name") == name)


def form_values(client: Any, preset: str, epochs: int) -> dict[int, Any]:
    """Component id -> value: the page's defaults, then what the preset button sets, then `epochs` as max epochs
    and patience (every epoch runs: the estimate is an upper bound)."""
    config = client.config
    values = {c["id"]: c.get("props", {}).get("value") for c in config["components"]}
    dep = dependency(config, "preset")
    filled = client.predict(preset, api_name="/preset")
    values.update(zip(dep["outputs"], filled if isinstance(filled, (list, tuple)) else [filled], strict=True))
    labels = {c["id"]: c.get("props", {}).get("label") for c in config["components"]}
    for cid, label in labels.items():
        if label in ("max epochs", "patience"):
            values[cid] = epochs
    return values


def call(client: Any, name: str, values: dict[int, Any]) -> Any:
    """Call the page's event `name` with the form's values in the order of its inputs."""
    dep = dependency(client.config, name)
    return client.predict(*[values[i] for i in dep["inputs"]], api_name=f"/{name}")


def wait_finished(client: Any, limit: float) -> str:
    """Poll the Train tab until the job has ended; its last status."""
    deadline, status = time.time() + limit, ""
    while time.time() < deadline:
        status = client.predict(api_name="/poll")[0]
        if any(w in status for w in ("**Finished", "**Cancelled", "**Training stopped")):
            return status
        time.sleep(0.5)
    raise SystemExit(f"the job did not end within {limit:.0f} s: {status[:200]}")


def run_models(workdir: Path) -> dict[str, dict]:
    """Each trained model's seconds and epochs, from the newest run's results.json."""
    found = sorted(workdir.rglob("results.json"), key=lambda p: p.stat().st_mtime)
    if not found:
        return {}
    models = json.loads(found[-1].read_text())["models"]
    return {m: {"seconds": v.get("train_seconds", 0.0), "epochs": v.get("epochs", 0)} for m, v in models.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="Quick demo (~1 min)")
    p.add_argument("--epochs", default="3,8", help="comma list: one job per epoch count (patience = epochs)")
    p.add_argument("--port", type=int, default=7873)
    p.add_argument("--limit", type=float, default=1800, help="seconds a job may take before the bench gives up")
    p.add_argument("app_args", nargs="*", help="extra app.py flags (after --)")
    args = p.parse_args()
    load = os.getloadavg()[0]
    print(f"cpus={os.cpu_count()}, load average {load:.1f} at the start; preset {args.preset!r}")
    rows = []
    with (
        tempfile.TemporaryDirectory() as work,
        served_app(args.port, ROOT / "checkpoints" / "demo", "bench_train_estimate.log", ["--workdir", work]) as (
            url,
            _,
        ),
    ):
        from gradio_client import Client

        client = Client(url, verbose=False, download_files=False, httpx_kwargs={"timeout": 120})
        for epochs in (int(e) for e in args.epochs.split(",")):
            values = form_values(client, args.preset, epochs)
            text = call(client, "estimated", values)
            est = re.search(
                r"at most ≈ (\d+(?::\d\d)+)\*\* \(preparing the data ≈ (\d+(?::\d\d)+), training ≈ (\d+(?::\d\d)+)",
                text,
            )
            if est is None:
                raise SystemExit(f"no estimate on the page: {text[:200]}")
            total, prep, train = (seconds_of(g) for g in est.groups())
            t, cpu = time.perf_counter(), cpu_times()
            started = call(client, "start", values)[0]
            status = wait_finished(client, args.limit)
            wall, steal = time.perf_counter() - t, steal_share(cpu, cpu_times())
            models = run_models(Path(work))
            fitted = sum(m["seconds"] for m in models.values())
            rows.append((epochs, total, prep, train, wall, fitted, models))
            scaled = "this machine's last job" if "Scaled to this machine" in text else "reference timings"
            print(f"\n{epochs} epochs: {started.splitlines()[0][:100]}")
            print(f"  {status.splitlines()[0][:110]}")
            print(f"  estimate from {scaled}: at most {total:.0f} s (prepare {prep:.0f}, train {train:.0f})")
            print(f"  measured: {wall:.1f} s start click to Finished; models' own training {fitted:.1f} s")
            for name, m in models.items():
                print(f"    {name}: {m['seconds']:.1f} s, {m['epochs']} epochs")
            print(f"  measured / estimate = {wall / total:.2f}; CPU steal by the host during the job {steal:.0%}")
    if len(rows) >= 2:
        (e0, *_, w0, _, _), (e1, *_, w1, _, _) = rows[0], rows[-1]
        per_epoch = (w1 - w0) / (e1 - e0)
        print(f"\nper epoch (all models) {per_epoch:.1f} s; fixed cost of a job {w0 - per_epoch * e0:.1f} s")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
