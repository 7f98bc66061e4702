"""A class of thirty: concurrent gradio_client sessions against one `python app.py`, each building its own
watch history through the UI's own (undocumented) events, with and without a training job running.

    python bench/bench_class.py [--sessions 30] [--clicks 5] [--think 2] [--train] [--port 7872] [-- app.py flags]

One click = what the browser sends when a title is watched: `/watch` (the history grows by the same
append rule as a card click, and the model, explanations and side by side are recomputed in the same
event), then the embedding map the UI redraws after it (`/embedding_map`, with lines); the
click-to-answer latency spans both. Every answer is checked against the
session's own clicks (its history as ids, the count in the status line, and a final `/recommend`
with that history): any mismatch is cross-talk. With --train, a tiny job (hidden 16, batch 512, the
Train tab's default stages, on --data) is started through the Train tab's own `start` event, the
class runs again once an epoch is under way, and the job is cancelled after. The app runs in a
fresh process with a temporary --workdir; nothing here imports the app. Prints figures; no asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from bench_app import served_app  # bench/ is on sys.path when this script runs; it puts the repo there too

from sicsrec.serve.history import append_click

ROOT = Path(__file__).resolve().parents[1]
K = 10  # recommendations asked (the UI's default); run "" = the app's --checkpoint, history and last are state
MAP_ARGS = ("", "ID space", "PCA", True)  # run, map space, projection, lines: the UI's defaults
TINY_JOB = {"hidden size d": 16, "batch (targets)": 512}  # Train-form labels -> values; the rest as the form shows


SKIP = {"state", "tab", "tabs", "tabitem", "row", "column", "group", "accordion", "form", "sidebar", "dataset"}


class LightClient:
    """One browser session speaking Gradio's queue protocol over plain HTTP, as the page does: join the queue with
    the event's inputs (gr.State slots left empty: the server keeps them per session), read the session's event
    stream until the event completes. gradio_client does the same with a heartbeat thread, a cancel-watch
    thread and an API-info request per client, which on a 2-core box costs the class more CPU than the app."""

    def __init__(self, url: str, config: dict) -> None:
        self.url, self.session = url.rstrip("/"), uuid.uuid4().hex
        kinds = {c["id"]: c["type"] for c in config["components"]}
        self.endpoints = {
            d["api_name"]: (d.get("id", i), [kinds.get(c) for c in d["inputs"]], [kinds.get(c) for c in d["outputs"]])
            for i, d in enumerate(config["dependencies"])
            if d.get("api_name")
        }
        self.http = httpx.Client(timeout=120)  # a browser waits for a busy server

    def predict(self, *data: Any, api_name: str) -> Any:
        """The event's outputs (layout and state outputs dropped, one output unwrapped), like gradio_client's."""
        fn, inputs, outputs = self.endpoints[api_name.lstrip("/")]
        given = iter(data)
        payload = [None if kind == "state" else next(given) for kind in inputs]
        body = {"data": payload, "fn_index": fn, "session_hash": self.session, "event_data": None, "trigger_id": None}
        event = self.http.post(f"{self.url}/gradio_api/queue/join", json=body).raise_for_status().json()["event_id"]
        params = {"session_hash": self.session}
        with self.http.stream("GET", f"{self.url}/gradio_api/queue/data", params=params) as stream:
            for line in stream.iter_lines():
                msg = json.loads(line[5:]) if line.startswith("data:") else {}
                if msg.get("event_id") == event and msg.get("msg") == "process_completed":
                    if not msg.get("success", False):
                        raise RuntimeError(str(msg.get("output", {}).get("error") or msg)[:300])
                    values = [v for v, k in zip(msg["output"]["data"], outputs, strict=False) if k not in SKIP]
                    return values[0] if len(values) == 1 else tuple(values)
        raise RuntimeError(f"{api_name}: the event stream ended before the event completed")


def session(
    url: str, seed: int, pool: list[str], clicks: int, think: float, start: threading.Barrier, light: dict | None
) -> dict[str, Any]:
    """One student: `clicks` clicks on titles from `pool`; the latencies, errors and cross-talk seen. `light`:
    the page's config, to click through LightClient (else gradio_client)."""
    from gradio_client import Client

    rng, mine = random.Random(seed), []
    out: dict[str, Any] = {"latency": [], "errors": [], "crosstalk": []}
    client: Any = (
        LightClient(url, light)
        if light is not None
        else Client(url, verbose=False, download_files=False, httpx_kwargs={"timeout": 120})
    )
    start.wait()
    for _ in range(clicks):
        time.sleep(rng.uniform(0, 2 * think))
        item = rng.choice(pool)
        mine = append_click(mine, item, limit=200)
        try:
            t = time.perf_counter()
            _, ids_box, status, *_ = client.predict(item, "", K, api_name="/watch")
            client.predict(*MAP_ARGS, api_name="/embedding_map")
            out["latency"].append(time.perf_counter() - t)
        except Exception as e:
            out["errors"].append(f"{type(e).__name__}: {e}")
            continue
        if ids_box != ",".join(mine) or f"your {len(mine)} watched" not in status:
            out["crosstalk"].append(f"session {seed}: clicked {mine}, /watch answered for {ids_box}")
    try:
        used = client.predict(",".join(mine), 10, api_name="/recommend")["used_ids"]
        if used != mine:
            out["crosstalk"].append(f"session {seed}: /recommend used {used} for {mine}")
    except Exception as e:
        out["errors"].append(f"{type(e).__name__}: {e}")
    return out


def run_class(url: str, pool: list[str], args: argparse.Namespace, seed: int, config: dict) -> dict[str, Any]:
    """`args.sessions` concurrent sessions (one thread and one client each, started together); merged results."""
    start = threading.Barrier(args.sessions)
    results: list[dict[str, Any]] = [{}] * args.sessions
    light = config if args.client == "light" else None

    def one(i: int) -> None:
        results[i] = session(url, seed + i, pool, args.clicks, args.think, start, light)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(args.sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {key: [x for r in results for x in r.get(key, [])] for key in ("latency", "errors", "crosstalk")}


def start_training(client: Any, epochs: int) -> str:
    """Start a tiny job through the Train tab's own `start` event (the form's other values as it shows them)."""
    config = client.config
    dep = next(d for d in config["dependencies"] if d.get("api_name") == "start")
    props = {c["id"]: c.get("props", {}) for c in config["components"]}
    job = {**TINY_JOB, "max epochs": epochs, "patience": epochs}
    values = [job.get(props[i].get("label"), props[i].get("value")) for i in dep["inputs"]]
    return client.predict(*values, api_name="/start")[0]


def wait_for_status(client: Any, words: tuple[str, ...], limit: float) -> str:
    """Poll the Train tab's status (its own `poll` event) until it holds one of `words`; the last status."""
    deadline = time.time() + limit
    status = ""
    while time.time() < deadline:
        status = client.predict(api_name="/poll")[0]
        if any(w in status for w in words):
            break
        time.sleep(1.0)
    return status


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User + system CPU seconds used so far by process `pid` (Linux /proc) and by this one (the clients)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = resource.getrusage(resource.RUSAGE_SELF)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), own.ru_utime + own.ru_stime


def since(before: tuple[float, float], after: tuple[float, float]) -> tuple[float, float]:
    """CPU seconds used between two `cpu_seconds` readings."""
    return after[0] - before[0], after[1] - before[1]


def report(name: str, res: dict[str, Any], seconds: float, cpu: tuple[float, float]) -> None:
    """Print one phase's figures (`cpu`: CPU seconds the app process, a training job's included, and the clients
    used meanwhile)."""
    ms = sorted(s * 1000 for s in res["latency"])
    p95 = ms[int(0.95 * (len(ms) - 1))] if ms else float("nan")
    print(
        f"{name}: {len(ms)} clicks in {seconds:.0f} s, {len(res['errors'])} errors, "
        f"{len(res['crosstalk'])} cross-talk; click-to-answer median {statistics.median(ms) if ms else 0:.0f} ms, "
        f"p95 {p95:.0f} ms, max {ms[-1] if ms else 0:.0f} ms; CPU: app {cpu[0]:.0f} s "
        f"({1000 * cpu[0] / max(1, len(ms)):.0f} ms a click), clients {cpu[1]:.0f} s; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    for line in (res["errors"] + res["crosstalk"])[:5]:
        print(f"  {line[:300]}")


def main() -> None:
    """Start app.py, run the class (then again during a training job with --train); print the figures."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=30)
    p.add_argument("--clicks", type=int, default=5, help="clicks per session")
    p.add_argument(
        "--think",
        type=float,
        default=2.0,
        help="mean seconds a student looks before the next click (uniform on [0, 2 think]); 0 = back to back",
    )
    p.add_argument("--train", action="store_true", help="run the class again while a tiny training job runs")
    p.add_argument(
        "--client",
        default="light",
        choices=["light", "gradio"],
        help="light: the queue protocol over plain HTTP, as a browser speaks it [light]; gradio: gradio_client "
        "(its threads per client cost more CPU than the app on this box)",
    )
    p.add_argument("--epochs", type=int, default=50, help="the job's max epochs (it is cancelled after the class)")
    p.add_argument("--port", type=int, default=7872)
    p.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "demo")
    p.add_argument("app_args", nargs="*", help="extra app.py flags (after --)")
    args = p.parse_args()

    with (
        tempfile.TemporaryDirectory() as work,
        served_app(args.port, args.checkpoint, "bench_class.log", ["--workdir", work, *args.app_args]) as (url, proc),
    ):
        from gradio_client import Client

        admin = Client(url, verbose=False, download_files=False)
        pool = [it["item_id"] for it in admin.predict("", 100, api_name="/recommend")["items"]]
        t = time.perf_counter()
        admin.predict(pool[0], "", K, api_name="/watch")
        admin.predict(*MAP_ARGS, api_name="/embedding_map")  # the run's first map fits its projection once
        print(
            f"cpus={os.cpu_count()}; {args.sessions} sessions x {args.clicks} clicks, think {args.think:g} s; "
            f"warm-up click (fits the map once) {time.perf_counter() - t:.1f} s"
        )
        t, cpu = time.perf_counter(), cpu_seconds(proc.pid)
        res = run_class(url, pool, args, seed=0, config=admin.config)
        report("idle app", res, time.perf_counter() - t, since(cpu, cpu_seconds(proc.pid)))
        if args.train:
            print(f"training: {start_training(admin, args.epochs)}")
            status = wait_for_status(admin, ("**Training", "Finished", "stopped"), 900)
            t, cpu = time.perf_counter(), cpu_seconds(proc.pid)
            res = run_class(url, pool, args, seed=1000, config=admin.config)
            seconds, cpu = time.perf_counter() - t, since(cpu, cpu_seconds(proc.pid))
            after = admin.predict(api_name="/poll")[0]
            print(f"  job when the class started: {status.splitlines()[0][:120]}")
            print(f"  job when it ended: {after.splitlines()[0][:120]}")
            report("during training", res, seconds, cpu)
            admin.predict(api_name="/cancel")
            wait_for_status(admin, ("Cancelled", "Finished", "stopped"), 300)


if __name__ == "__main__":
    main()
