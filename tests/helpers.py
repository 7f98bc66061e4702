"""Small synthetic datasets for fast model/train/serve tests (real-data tests live beside them), and a local
OpenAI-compatible chat server standing in for an external LLM service."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd

from sicsrec.data.schema import Dataset, ValidationReport
from sicsrec.data.split import Split, build_split
from sicsrec.model import ItemTables
from sicsrec.train.two_step import tables_for_split


def synthetic_dataset(n_users: int = 200, n_items: int = 60, seed: int = 0, max_len_seq: int = 40) -> Dataset:
    """Users walk the catalogue mostly in steps of +1, so the next item is learnable."""
    rng = np.random.default_rng(seed)
    lens = rng.integers(5, max_len_seq, n_users)
    starts = rng.integers(0, n_items, n_users)
    users = np.repeat(np.arange(n_users), lens)
    pos = np.concatenate([np.arange(n) for n in lens])
    jumps = (rng.random(len(pos)) < 0.15) * rng.integers(0, n_items, len(pos))
    items = (np.repeat(starts, lens) + pos + jumps) % n_items
    inter = pd.DataFrame({"user_id": users.astype(str), "item_id": items.astype(str), "order": pos})
    genres = ["Drama", "Comedy", "Action"]
    item_df = pd.DataFrame(
        {
            "item_id": [str(i) for i in range(n_items)],
            "title": [f"Item {i}" for i in range(n_items)],
            "text": [f"Item {i}" for i in range(n_items)],
            "category": [genres[i % 3] for i in range(n_items)],
            "image_path": "",
        }
    )
    return Dataset("synthetic", item_df, inter, ValidationReport())


def synthetic_split(**kw: int) -> Split:
    return build_split(synthetic_dataset(**kw), max_len=20, window_stride=10)


def synthetic_tables(split: Split, dim: int = 16, image_dim: int | None = None, seed: int = 0) -> ItemTables:
    """Content features where neighbouring items are similar (a smooth walk), plus optional images."""
    rng = np.random.default_rng(seed)
    ids = [str(x) for x in split.item_ids]
    text = np.cumsum(rng.normal(size=(len(ids), dim)), axis=0).astype(np.float32)
    image = mask = None
    if image_dim:
        image = rng.normal(size=(len(ids), image_dim)).astype(np.float32)
        mask = rng.random(len(ids)) > 0.2
        image[~mask] = 0.0
    return tables_for_split(split, ids, text, image, mask)


class ChatServer:
    """A minimal OpenAI-compatible chat-completions server: answers the second candidate line of the prompt,
    `-1` when the target mentions 'Premier', and fails the next `fail` requests with HTTP 503; a stand-in
    for an external LLM service (records each request's headers and model name). Use as a context manager."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail = 0
        self.headers: list[dict] = []
        self.models: list[str] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.calls += 1
                    server.headers.append(dict(self.headers))
                    server.models.append(body.get("model", ""))
                    failing = server.fail > 0
                    server.fail -= failing
                if failing or self.path != "/v1/chat/completions":
                    self.send_response(503 if failing else 404)
                    self.end_headers()
                    return
                prompt = body["messages"][-1]["content"]
                first = prompt.split("Candidates (id-title):\n", 1)[1].splitlines()[1]
                answer = "-1" if "Premier" in prompt.split("Target item:", 1)[1].splitlines()[0] else first
                payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": answer}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> ChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


REPO = Path(__file__).resolve().parents[1]


def torchrun(module: str, args: list[str], env: dict[str, str], nproc: int = 2) -> subprocess.CompletedProcess[str]:
    """`python -m <module> args` in `nproc` processes under torchrun (standalone rendezvous, from the repo root):
    the suite's one launcher of a data-parallel run."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    return subprocess.run(
        [*launcher, "-m", module, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=240
    )
