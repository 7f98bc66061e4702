"""Shared builders for the app tests: a ~100-user slice of the demo, its zip, a tiny trained run."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import socket
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "checkpoints" / "demo"
SLICE_USERS = 100
_lock = threading.Lock()
_built: dict[str, Path] = {}


def load_app_module() -> ModuleType:
    """Import the repo's app.py by path (the name `app` would be ambiguous next to tests/app/)."""
    spec = importlib.util.spec_from_file_location("sicsrec_studio_app", ROOT / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def demo_slice(folder: Path) -> Path:
    """The demo's first SLICE_USERS users as a csv dataset (items.csv + interactions.csv)."""
    from sicsrec.data import load_demo

    if (folder / "interactions.csv").is_file():
        return folder
    ds = load_demo()
    users = sorted(ds.interactions["user_id"].unique(), key=int)[:SLICE_USERS]
    inter = ds.interactions[ds.interactions["user_id"].isin(users)]
    items = ds.items[ds.items["item_id"].isin(inter["item_id"])]
    folder.mkdir(parents=True, exist_ok=True)
    items[["item_id", "title", "category"]].to_csv(folder / "items.csv", index=False)
    inter.rename(columns={"order": "timestamp"}).to_csv(folder / "interactions.csv", index=False)
    return folder


def zip_folder(folder: Path, out: Path, extra: dict[str, bytes] | None = None) -> Path:
    """Zip a dataset folder under a top-level directory, plus `extra` {arcname: bytes} entries."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return out


def tiny_run(base: Path) -> Path:
    """The shipped demo checkpoint when present, else SASRec + SICSRec (d 16, 1 epoch) on the slice, built once."""
    if (SHIPPED / "results.json").is_file():
        return SHIPPED
    with _lock:
        if "run" not in _built:
            from sicsrec.config import DataConfig, ModelConfig, RunConfig, TrainConfig
            from sicsrec.run.experiment import run_experiment

            cfg = RunConfig(
                "sicsrec",
                DataConfig(path=str(demo_slice(base / "slice"))),
                model_cfg=ModelConfig(hidden=16, ffn=16),
                train=TrainConfig(max_epochs=1, patience=1, batch_size=512, threads=1),
            )
            run_experiment(cfg, base / "tiny-run", ("sasrec", "sicsrec"), show_bar=False)
            _built["run"] = base / "tiny-run"
        return _built["run"]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served_app(studio: Any) -> Iterator[str]:
    """The app over `studio` on a free local port, launched without blocking; yields its URL."""
    app = load_app_module()
    demo = app.build_demo(studio)
    port = free_port()
    demo.launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **app.launch_options(studio)
    )
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


OUT = ["history", "strip", "ids", "status", "recs", "summary", "attribution", "because", "sbs", "shown"]


def named(outputs: tuple) -> dict:
    """A history event's outputs by name."""
    return dict(zip(OUT, outputs, strict=True))


def card_ids(html: str) -> list[str]:
    """The item ids of a card grid's buttons (cards, or the history's remove buttons), in order."""
    return re.findall(r'<button[^>]*data-item="([^"]*)"', html)


def as_figure(value: Any) -> Any:
    """The map as the page receives it (Gradio's PlotData: the spec's JSON) as a validated plotly Figure; any other
    value as it is (a Figure, gr.skip())."""
    import json

    import plotly.graph_objects as go
    from gradio.components.plot import PlotData

    return go.Figure(json.loads(value.plot)) if isinstance(value, PlotData) else value
