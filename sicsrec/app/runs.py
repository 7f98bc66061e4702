"""The run catalogue: run folders loaded for serving (models, item catalogue, 2-D maps, results via `Results`),
their friendly names (dataset · width · epochs, or one a person gave), the run selector's choices, and renaming and
deleting a run folder (only a direct child of the runs folder, never the shipped default)."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sicsrec.checkpoint import CheckpointError, ItemTable
from sicsrec.data import Dataset
from sicsrec.eval.results import Results
from sicsrec.serve import Recommender, popular_items
from sicsrec.serve.projection import Projection, project
from sicsrec.utils import atomic_write_text

MAIN_PREFERENCE = ("sicsrec", "content", "sasrec")  # the model Explore serves, best first
BASELINE = "sasrec"  # the behavior-only model shown side by side
SPACES = {"ID space": "id", "content space": "content"}
NAME_FILE = "name.json"  # {"name": ...}: the name a person gave a run folder
MAX_NAME = 60
STAMP = re.compile(r"^(\d{8})-(\d{6})(?:-\d+)?$")  # new_run_folder's <YYYYmmdd-HHMMSS>[-n]


class RunError(Exception):
    """A run that cannot be renamed or deleted; the message says why in plain words (no server paths)."""


@dataclass
class Catalogue:
    """The items Explore shows (index order = the model's item order) with their popularity."""

    item_ids: list[str]
    titles: list[str]
    categories: list[str]
    image_paths: list[str]
    popularity: np.ndarray
    scored_by: list[str] = field(default_factory=list)  # per item "id" | "content" (added later); empty: all "id"

    def __post_init__(self) -> None:
        self.position = {iid: i for i, iid in enumerate(self.item_ids)}
        self.by_popularity = np.argsort(-self.popularity, kind="stable")
        self._lower = [t.lower() for t in self.titles]

    @classmethod
    def from_items(cls, items: ItemTable) -> Catalogue:
        """From a checkpoint's item table (`Recommender.table`)."""
        return cls(items.item_ids, items.titles, items.categories, items.image_paths, items.popularity, items.scored_by)

    @classmethod
    def from_dataset(cls, ds: Dataset) -> Catalogue:
        """From a loaded dataset (no checkpoint): popularity = interactions per item."""
        counts = ds.interactions["item_id"].value_counts()
        items = ds.items
        return cls(
            items["item_id"].tolist(),
            items["title"].tolist(),
            items["category"].tolist(),
            items["image_path"].tolist(),
            items["item_id"].map(counts).fillna(0).to_numpy(np.float64),
        )

    def __len__(self) -> int:
        return len(self.item_ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.position

    def is_new(self, i: int) -> bool:
        """Whether item `i` was added after training (scored from its content alone, `sicsrec.serve.add_items`)."""
        return bool(self.scored_by) and self.scored_by[i] == "content"

    def genres(self) -> list[str]:
        """Distinct non-empty categories, sorted."""
        return sorted({c for c in self.categories if c})

    def search(self, query: str = "", category: str = "") -> list[int]:
        """Positions of items whose title contains `query` (any case) in `category`, most popular first."""
        q = query.strip().lower()
        return [
            int(i)
            for i in self.by_popularity
            if (not q or q in self._lower[i]) and (not category or self.categories[i] == category)
        ]

    def popular(self, k: int, exclude: set[str] = frozenset()) -> list[dict[str, Any]]:  # type: ignore[assignment]  # read-only default
        """The k most popular items not in `exclude`, shaped like the serving API's items (parts 0)."""
        return popular_items(self.item_ids, self.titles, self.popularity, k, exclude)


@dataclass
class LoadedRun:
    """One run folder ready to serve: the main model, the SASRec baseline, the catalogue, results."""

    label: str
    catalogue: Catalogue
    main: Recommender | None = None
    baseline: Recommender | None = None
    results: Results | None = None
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
        folders = {(read_json(path / "config.json") or {}).get("model", path.name): path}
    results = Results.read(path / "results.json")
    main_name = next((m for m in MAIN_PREFERENCE if m in folders), None)
    try:
        if main_name is None:
            raise CheckpointError(
                f"Checkpoint {path} " + ("is missing." if not path.exists() else "holds no trained model.")
            )
        main = Recommender.load(folders[main_name])
        base = Recommender.load(folders[BASELINE]) if BASELINE in folders and main_name != BASELINE else None
    except CheckpointError as e:
        if fallback is None:
            raise
        return LoadedRun("no trained model (popular items)", fallback(), results=results, problem=str(e))
    return LoadedRun(run_label(path, results), Catalogue.from_items(main.table), main, base, results)


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file (config.json, an upload's mark, ...), or None when absent, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # ValueError: not JSON, or not UTF-8
        return None
    return data if isinstance(data, dict) else None


def auto_name(path: Path, results: Results | None) -> str:
    """'<dataset> · d<hidden> · ≤<epochs> epochs/stage · <month-day hour:minute>' from a run's results.json and folder
    (the most each stage may train: SICSRec's step 1 and step 2 each train up to that many)."""
    parts = [] if STAMP.match(path.name) else [path.name]
    if results is not None:
        hidden = (results.config.get("model_cfg") or {}).get("hidden")
        epochs = (results.config.get("train") or {}).get("max_epochs")
        parts += [
            results.dataset,
            *([f"d{hidden}"] if hidden else []),
            *([f"≤{epochs} epoch" + ("s" if epochs != 1 else "") + "/stage"] if epochs else []),
        ]
    if stamp := STAMP.match(path.name):
        day, clock = stamp.groups()
        parts.append(f"{day[4:6]}-{day[6:]} {clock[:2]}:{clock[2:4]}")
    return " · ".join(p for p in parts if p)


def run_name(path: Path, results: Results | None) -> str:
    """The name a person gave the run, else `auto_name`."""
    given = (read_json(path / NAME_FILE) or {}).get("name")
    return given.strip() if isinstance(given, str) and given.strip() else auto_name(path, results)


def run_label(path: Path, results: Results | None) -> str:
    """'<run name> · <models>' for the run dropdown."""
    parts = [run_name(path, results)]
    if results is not None:
        parts.append(", ".join(results.model_names()))
    return " · ".join(p for p in parts if p)


def owned_run(folder: str | Path, workdir: Path, protected: tuple[Path, ...] = ()) -> Path:
    """The run folder `folder` when it is a direct child of `workdir` (not a link, not uploads, not `protected`);
    RunError otherwise. Every rename and delete goes through here, so nothing outside the runs folder is touched."""
    if not str(folder or "").strip():
        raise RunError("Pick one of your training runs first.")
    path = Path(folder)
    root = workdir.resolve()
    if path.is_symlink() or not path.is_dir() or path.resolve().parent != root or path.name == "uploads":
        raise RunError("Only runs trained in this app (in its runs folder) can be renamed or deleted.")
    if any(path.resolve() == p.resolve() for p in protected):
        raise RunError("The shipped demo run and a run that is training cannot be renamed or deleted.")
    return path.resolve()


def rename_run(folder: str | Path, name: str, workdir: Path, protected: tuple[Path, ...] = ()) -> str:
    """Give a run a name (shown in the run list; the folder keeps its name); returns the name. RunError when the
    run is not one of `workdir`'s or the name is empty, too long or has control characters."""
    path = owned_run(folder, workdir, protected)
    name = " ".join((name or "").split())
    if not name:
        raise RunError("Type a name first.")
    if len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
        raise RunError(f"A run name has at most {MAX_NAME} printable characters.")
    atomic_write_text(path / NAME_FILE, json.dumps({"name": name, "renamed": time.strftime("%Y-%m-%d %H:%M")}))
    return name


def delete_run(folder: str | Path, workdir: Path, protected: tuple[Path, ...] = ()) -> str:
    """Delete a run folder of `workdir` (see `owned_run`); returns the name it had. The folder is first renamed
    to a hidden sibling, so a delete cut short leaves no half run in the run list."""
    path = owned_run(folder, workdir, protected)
    name = run_name(path, Results.read(path / "results.json"))
    trash = path.with_name(f".deleting-{path.name}")
    path.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)
    return name


def run_choices(default: LoadedRun, workdir: Path, checkpoint: Path) -> list[tuple[str, str]]:
    """(label, value) of every servable run: the default run (''), then the runs under `workdir`, newest first."""
    first = f"{default.label} (default)" if default.main is not None else default.label
    runs = (
        sorted((p for p in workdir.glob("[!.]*") if (p / "checkpoints").is_dir()), reverse=True)
        if workdir.is_dir()
        else []
    )
    return [(first, "")] + [
        (run_label(p, Results.read(p / "results.json")), str(p)) for p in runs if p.resolve() != checkpoint.resolve()
    ]


__all__ = [
    "BASELINE",
    "MAIN_PREFERENCE",
    "NAME_FILE",
    "SPACES",
    "Catalogue",
    "LoadedRun",
    "RunError",
    "auto_name",
    "delete_run",
    "load_run",
    "owned_run",
    "read_json",
    "rename_run",
    "run_choices",
    "run_label",
    "run_name",
]
