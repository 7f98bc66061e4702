"""Seconds from `python app.py` to a served page and to the first recommendation, then the latency
of the `recommend` endpoint over HTTP (gradio_client) next to the library call behind it
(`sicsrec.serve.Recommender` in this process, with and without the influence attributions the
app's Explore tab also computes).

    python bench/bench_app.py [--calls 50] [--port 7871] [--checkpoint DIR] [-- extra app.py flags]

Starts the app as a user would (a fresh process on the embedded demo and the checkpoint) and talks
to it only over HTTP: nothing here imports the app's package. Prints figures; no asserts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HISTORY = ["1", "260", "1196", "2571", "356", "318", "296", "593", "480", "2959"]  # MovieLens movieIds


def _wait_for_page(url: str, proc: subprocess.Popen, limit: float = 300.0) -> None:
    """Poll until the page answers (or the app died / `limit` seconds passed)."""
    deadline = time.time() + limit
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"app.py exited with {proc.returncode}; see its log")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"no page at {url} after {limit:.0f} s")


@contextmanager
def served_app(
    port: int, checkpoint: Path, log_name: str, app_args: list[str]
) -> Iterator[tuple[str, subprocess.Popen]]:
    """`python app.py` in its own process on `port` (stderr to artifacts/<log_name>), until the page answers;
    yields (url, process) and stops the app on exit. The one way bench/ starts the app."""
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    log = ROOT / "artifacts" / log_name
    log.parent.mkdir(exist_ok=True)
    url = f"http://127.0.0.1:{port}/"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "app.py", "--checkpoint", str(checkpoint), *app_args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        _wait_for_page(url, proc)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait()


def _stats(seconds: list[float]) -> str:
    """Median and p95 of call times, in milliseconds."""
    ms = sorted(s * 1000 for s in seconds)
    return f"median {statistics.median(ms):.1f} ms, p95 {ms[int(0.95 * (len(ms) - 1))]:.1f} ms over {len(ms)} calls"


def main() -> None:
    """Start app.py, time it over HTTP, then time the library call in process; print the figures."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=50)
    p.add_argument("--port", type=int, default=7871)
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=ROOT / "checkpoints" / "demo",
        help="run folder served by the app and loaded in process [checkpoints/demo]",
    )
    p.add_argument("app_args", nargs="*", help="extra app.py flags (after --)")
    args = p.parse_args()

    t0 = time.perf_counter()
    with served_app(args.port, args.checkpoint, "bench_app.log", args.app_args) as (url, _):
        served = time.perf_counter() - t0
        from gradio_client import Client

        client = Client(url, verbose=False)
        first = client.predict(",".join(HISTORY[:3]), 10, api_name="/recommend")
        first_s = time.perf_counter() - t0
        http = []
        for i in range(args.calls):
            t = time.perf_counter()
            client.predict(",".join(HISTORY[: 1 + i % len(HISTORY)]), 10, api_name="/recommend")
            http.append(time.perf_counter() - t)

    from sicsrec.serve import Recommender

    rec = Recommender.load(args.checkpoint / "checkpoints" / "sicsrec")
    local: dict[bool, list[float]] = {False: [], True: []}
    for influence, times in local.items():
        for i in range(args.calls):
            t = time.perf_counter()
            rec.recommend(HISTORY[: 1 + i % len(HISTORY)], 10, influence=influence)
            times.append(time.perf_counter() - t)
    print(f"cpus={os.cpu_count()} (load average {os.getloadavg()[0]:.1f} during the run)")
    print(f"python app.py -> served page: {served:.1f} s; -> first recommendation ({first['source']}): {first_s:.1f} s")
    print(f"/recommend over HTTP (gradio_client): {_stats(http)}")
    print(f"Recommender.recommend in process (the endpoint's call): {_stats(local[False])}")
    print(f"Recommender.recommend in process with influence (one Explore click): {_stats(local[True])}")


if __name__ == "__main__":
    main()
