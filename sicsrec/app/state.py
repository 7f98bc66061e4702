"""Process-wide app state: loaded runs (models, catalogue, 2-D maps), thumbnails, datasets, the training job.

Everything here is heavy or shared and built once per process; per-user state (the watch history)
lives in `gr.State` in the UI, never here.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from sicsrec.checkpoint import CheckpointError
from sicsrec.config import DataConfig
from sicsrec.data import Dataset
from sicsrec.app.thumbnails import thumbnail_for
from sicsrec.serve import Recommender, popular_items
from sicsrec.serve.projection import Projection, project
from sicsrec.utils import atomic_write_bytes

log = logging.getLogger("sicsrec.app")

REPO = Path(__file__).resolve().parents[2]
MAIN_PREFERENCE = ("sicsrec", "content", "sasrec")  # the model Explore serves, best first
BASELINE = "sasrec"  # the behavior-only model shown side by side
SPACES = {"ID space": "id", "content space": "content"}
THUMB_SIZE = (200, 300)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
READY_MARK = ".sicsrec-dataset.json"  # written into an uploaded dataset folder once it validated


@dataclass
class AppConfig:
    """Where the app reads and writes: dataset, shipped checkpoint, posters, runs and caches."""

    data: str = "demo"
    checkpoint: Path = REPO / "checkpoints" / "demo"
    images: Path | None = None
    workdir: Path = REPO / "runs"  # training runs: workdir/<timestamp>/; uploads: workdir/uploads/<name>/
    cache_dir: Path = REPO / ".cache" / "app"
    train_threads: int = field(default_factory=torch.get_num_threads)  # torch threads of training jobs (all cores)

    @property
    def uploads(self) -> Path:
        """Where uploaded datasets are extracted."""
        return self.workdir / "uploads"

    @property
    def thumbs(self) -> Path:
        """Where display thumbnails are cached."""
        return self.cache_dir / "thumbnails"


@dataclass
class Catalogue:
    """The items Explore shows (index order = the model's item order) with their popularity."""

    item_ids: list[str]
    titles: list[str]
    categories: list[str]
    image_paths: list[str]
    popularity: np.ndarray

    def __post_init__(self) -> None:
        self.position = {iid: i for i, iid in enumerate(self.item_ids)}
        self.by_popularity = np.argsort(-self.popularity, kind="stable")
        self._lower = [t.lower() for t in self.titles]

    @classmethod
    def from_items(cls, items: dict[str, list]) -> "Catalogue":
        """From a checkpoint's items.json."""
        n = len(items["item_ids"])
        return cls([str(x) for x in items["item_ids"]], list(items.get("titles", [""] * n)),
                   list(items.get("categories", [""] * n)), list(items.get("image_paths", [""] * n)),
                   np.asarray(items.get("popularity", [0] * n), dtype=np.float64))

    @classmethod
    def from_dataset(cls, ds: Dataset) -> "Catalogue":
        """From a loaded dataset (no checkpoint): popularity = interactions per item."""
        counts = ds.interactions["item_id"].value_counts()
        items = ds.items
        return cls(items["item_id"].tolist(), items["title"].tolist(), items["category"].tolist(),
                   items["image_path"].tolist(), items["item_id"].map(counts).fillna(0).to_numpy(np.float64))

    def __len__(self) -> int:
        return len(self.item_ids)

    def genres(self) -> list[str]:
        """Distinct non-empty categories, sorted."""
        return sorted({c for c in self.categories if c})

    def search(self, query: str = "", category: str = "") -> list[int]:
        """Positions of items whose title contains `query` (any case) in `category`, most popular first."""
        q = query.strip().lower()
        return [int(i) for i in self.by_popularity
                if (not q or q in self._lower[i]) and (not category or self.categories[i] == category)]

    def known(self, ids: list[str]) -> list[str]:
        """The ids that are in this catalogue, order kept."""
        return [i for i in ids if i in self.position]

    def popular(self, k: int, exclude: set[str] = frozenset()) -> list[dict[str, Any]]:  # type: ignore[assignment]
        """The k most popular items not in `exclude`, shaped like the serving API's items (parts 0)."""
        return popular_items(self.item_ids, self.titles, self.popularity, k, exclude)


class Thumbnails:
    """Display images for items: a resized copy of the real poster/cover, else a generated title card."""

    def __init__(self, cache_dir: Path, images_dir: Path | None = None) -> None:
        self.cache_dir = Path(cache_dir)
        self.override = _image_listing(images_dir) if images_dir is not None else {}
        self._memo: dict[tuple[str, str, str, str], str] = {}

    def path(self, cat: Catalogue, i: int) -> str:
        """Cached PNG/JPEG path of item `i` of `cat` (built on first use, safe across threads)."""
        iid = cat.item_ids[i]
        key = (iid, cat.titles[i], cat.categories[i], self.override.get(iid, cat.image_paths[i]))
        if key not in self._memo:
            row = {"item_id": iid, "title": key[1], "category": key[2], "image_path": key[3]}
            out = thumbnail_for(row, self.cache_dir, THUMB_SIZE)
            self._memo[key] = out if Path(out).parent == self.cache_dir else self._resized(out)
        return self._memo[key]

    def _resized(self, source: str) -> str:
        """A JPEG copy of a real image at thumbnail size, cached by its path and modification time."""
        src = Path(source)
        digest = hashlib.sha1(f"{src.resolve()}\0{src.stat().st_mtime_ns}".encode()).hexdigest()[:16]
        out = self.cache_dir / f"real-{digest}.jpg"
        if not out.is_file():
            with Image.open(src) as im:
                im = im.convert("RGB")
                im.thumbnail((THUMB_SIZE[0] * 2, THUMB_SIZE[1] * 2))
                buf = io.BytesIO()
                im.save(buf, format="JPEG", quality=85)
            atomic_write_bytes(out, buf.getvalue())
        return str(out)


def serving_threads() -> None:
    """Use one intra-op torch thread in this request thread (single queries are tiny)."""
    # More threads only contend with training: on 2 shared cores, 5 ms instead of 230 ms per recommend call.
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def _image_listing(folder: Path) -> dict[str, str]:
    """Item id (file stem) -> image path for the images directly in `folder`."""
    rank = {ext: i for i, ext in enumerate(IMAGE_EXTENSIONS)}
    files = sorted((p for p in Path(folder).iterdir() if p.suffix.lower() in rank and p.is_file()),
                   key=lambda p: -rank[p.suffix.lower()])
    return {p.stem: str(p.resolve()) for p in files}


@dataclass
class LoadedRun:
    """One run folder ready to serve: the main model, the SASRec baseline, the catalogue, results."""

    label: str
    catalogue: Catalogue
    main: Recommender | None = None
    baseline: Recommender | None = None
    results: dict[str, Any] | None = None
    problem: str = ""  # why no model is loaded, shown in Explore
    _maps: dict[tuple[str, str], Projection] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def spaces(self) -> list[str]:
        """Embedding spaces the main model has (labels of SPACES)."""
        if self.main is None:
            return []
        return [s for s, v in SPACES.items() if v == "id" or self.main.model.uses_content]

    def projection(self, space: str, method: str = "PCA") -> Projection:
        """The 2-D map of the main model's items in `space`, fitted once per run and method."""
        if self.main is None:
            raise ValueError("no trained model: nothing to map")
        with self._lock:
            if (space, method) not in self._maps:
                self._maps[(space, method)] = project(self.main.embeddings(SPACES[space]), method)
            return self._maps[(space, method)]


def load_run(path: str | Path, fallback: Callable[[], Catalogue] | None = None) -> LoadedRun:
    """Load a run folder (results.json + checkpoints/<model>/) or a single checkpoint folder.

    With `fallback`, a missing or broken checkpoint gives a run without a model (catalogue from
    `fallback()`) whose `problem` says why, so the app still starts; without it, CheckpointError.
    """
    path = Path(path)
    folders = {p.name: p for p in sorted((path / "checkpoints").glob("*")) if (p / "config.json").is_file()}
    if not folders and (path / "config.json").is_file():
        folders = {(_read_json(path / "config.json") or {}).get("model", path.name): path}
    results = _read_json(path / "results.json")
    main_name = next((m for m in MAIN_PREFERENCE if m in folders), None)
    try:
        if main_name is None:
            raise CheckpointError(f"Checkpoint {path} " + ("is missing." if not path.exists() else "holds no trained model."))
        main = Recommender.load(folders[main_name])
        base = Recommender.load(folders[BASELINE]) if BASELINE in folders and main_name != BASELINE else None
    except CheckpointError as e:
        if fallback is None:
            raise
        return LoadedRun("no trained model (popular items)", fallback(), results=results, problem=str(e))
    return LoadedRun(run_label(path, results), Catalogue.from_items(main.items), main, base, results)


def _read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file (results.json, config.json, ...), or None when absent, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # ValueError: not JSON, or not UTF-8
        return None
    return data if isinstance(data, dict) else None


def run_label(path: Path, results: dict[str, Any] | None) -> str:
    """'<folder> · <dataset> · <models>' for the run dropdown."""
    parts = [path.name]
    if results:
        parts.append(str(results.get("dataset", "")))
        parts.append(", ".join(m for m in results.get("models", {}) if m != "pop"))
    return " · ".join(p for p in parts if p)


class Studio:
    """The shared heavy objects of one app process: runs, thumbnails, datasets, the training job."""

    def __init__(self, config: AppConfig | None = None) -> None:
        self.config = config or AppConfig()
        self.thumbs = Thumbnails(self.config.thumbs, self.config.images)
        self.job: Any = None  # the current or last sicsrec.app.train.TrainJob
        self.job_lock = threading.Lock()
        self._runs: dict[str, tuple[int | None, LoadedRun]] = {}  # folder -> (results.json stamp, run)
        self._lock = threading.Lock()
        self._fallback: Catalogue | None = None
        self.datasets: dict[str, str] = {"demo": "demo", **self._previous_uploads()}  # name -> load_dataset path
        if self.config.data not in ("", "demo"):
            self.datasets[Path(self.config.data).name] = self.config.data
        self.default = self.run("")

    def fallback_catalogue(self) -> Catalogue:
        """The catalogue of the --data dataset, used when no model is loaded."""
        if self._fallback is None:
            from sicsrec.run.prepare import load_data

            images = None if self.config.images is None else str(self.config.images)
            self._fallback = Catalogue.from_dataset(load_data(DataConfig(path=self.config.data, images=images)))
        return self._fallback

    def run(self, key: str | None) -> LoadedRun:
        """The run behind a dropdown value ('' = the --checkpoint default), loaded once and shared.

        A run is reloaded only when its results.json changed (a training job added a model to it).
        """
        key = key or str(self.config.checkpoint)
        results = Path(key) / "results.json"
        stamp = results.stat().st_mtime_ns if results.is_file() else None
        with self._lock:
            if key not in self._runs or self._runs[key][0] != stamp:
                self._runs[key] = (stamp, load_run(key, self.fallback_catalogue))
            return self._runs[key][1]

    def run_choices(self) -> list[tuple[str, str]]:
        """(label, value) of every servable run: the --checkpoint default (''), then new runs newest first."""
        default = self.run("")
        first = f"{default.label} (default)" if default.main is not None else default.label
        workdir = self.config.workdir
        runs = sorted((p for p in workdir.glob("*") if (p / "checkpoints").is_dir()), reverse=True) if workdir.is_dir() else []
        return [(first, "")] + [(run_label(p, _read_json(p / "results.json")), str(p)) for p in runs
                                if p.resolve() != self.config.checkpoint.resolve()]

    @property
    def default_dataset(self) -> str:
        """The Train tab's initial dataset: --data when given, else the demo."""
        return "demo" if self.config.data in ("", "demo") else Path(self.config.data).name

    def dataset_choices(self) -> list[tuple[str, str]]:
        """(label, name) of the datasets a training job can use."""
        return [("demo (embedded MovieLens)" if n == "demo" else n, n) for n in self.datasets]

    def _previous_uploads(self) -> dict[str, str]:
        """Uploaded datasets of earlier sessions that validated (they carry READY_MARK)."""
        up = self.config.uploads
        found = sorted(p for p in up.glob("*") if (p / READY_MARK).is_file()) if up.is_dir() else []
        return {p.name: str((_read_json(p / READY_MARK) or {}).get("root", p)) for p in found}

    def warm_thumbnails(self) -> threading.Thread:
        """Build every thumbnail of the default catalogue in a background thread (paging stays instant)."""
        cat = self.default.catalogue

        def work() -> None:
            """Touch every thumbnail, most popular first."""
            for i in cat.by_popularity:
                self.thumbs.path(cat, int(i))

        thread = threading.Thread(target=work, name="thumbnails", daemon=True)
        thread.start()
        return thread


def safe_name(text: str) -> str:
    """A short file-system-safe name made from `text`."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[:40] or "dataset"


__all__ = ["AppConfig", "Catalogue", "LoadedRun", "SPACES", "Studio", "Thumbnails", "load_run", "run_label", "safe_name",
           "serving_threads"]
