"""Nothing is lost: a writer killed with SIGKILL mid-write (a real signal, in a subprocess) leaves the previous
version loadable and the new one complete or absent; temp leftovers are never read as the real file."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sicsrec.checkpoint import item_table, load_checkpoint, save_checkpoint
from sicsrec.config import ModelConfig
from sicsrec.eval.results import Results
from sicsrec.features import FeatureCache, cache_key
from sicsrec.stage_a.llm import ReplyCache
from sicsrec.train.two_step import build_model
from sicsrec.utils import atomic_dir, committed_dir
from tests.helpers import synthetic_dataset, synthetic_split

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

ROOT = Path(__file__).resolve().parents[1]
KEY = cache_key("atomic", 1)

# Run first in every child: `hang(owner, name, nth)` makes the nth call of owner.name signal the parent
# (the marker file) and wait there to be killed, so the kill lands at a chosen point of the write.
PRELUDE = """
import os, pathlib, sys, time
MARKER, TARGET = sys.argv[1], sys.argv[2]

def signal_parent():
    open(MARKER, "w").close()

def hang(owner, name, nth=1):
    real, calls = getattr(owner, name), [0]
    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] == nth:
            signal_parent()
            time.sleep(120)
        return real(*args, **kwargs)
    setattr(owner, name, wrapper)
"""


def kill_child(code: str, target: Path, marker: Path, delay: float = 0.0) -> None:
    """Run `code` in a fresh interpreter, SIGKILL it `delay` seconds after it touches `marker`, reap it."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", PRELUDE + code, str(marker), str(target)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"the child ended before the kill point: {proc.stderr.read().decode()[-2000:]}")
        assert time.monotonic() < deadline, "the child never reached the kill point"
        time.sleep(0.01)
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "child-reached-the-kill-point"


# --- results.json (Results.write is atomic_write_text; the children call it without loading torch) -------------

RESULTS_CHILD = """
import json
from sicsrec.utils import atomic_write_text

def results_json(version):
    return json.dumps({"dataset": f"v{version}", "config": {"version": version, "pad": "x" * 4_000_000}})
"""


def _results(version: int) -> Results:
    """A results.json of a few MB, so a kill at a random moment often lands inside the write."""
    return Results(f"v{version}", config={"version": version, "pad": "x" * 4_000_000})


@pytest.mark.slow
def test_results_json_killed_at_random_moments_is_old_or_new_never_torn(tmp_path: Path, marker: Path) -> None:
    target = tmp_path / "results.json"
    _results(0).write(target)
    code = (
        RESULTS_CHILD
        + """
for version in range(1, 10_000):
    atomic_write_text(TARGET, results_json(version))
    if version == 1:
        signal_parent()
"""
    )
    for _ in range(3):
        marker.unlink(missing_ok=True)
        kill_child(code, target, marker, delay=random.uniform(0.05, 0.4))
        got = Results.read(target)
        assert got is not None and got.config["pad"] == "x" * 4_000_000  # complete
        assert got.dataset == f"v{got.config['version']}"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("results.json", marker.name)]
    assert all(name.startswith(".results.json.") and name.endswith(".tmp") for name in leftovers)


@pytest.mark.parametrize("where", ["mid-write", "before the rename"])
def test_results_json_killed_mid_write_keeps_the_previous_file(tmp_path: Path, marker: Path, where: str) -> None:
    target = tmp_path / "results.json"
    _results(0).write(target)
    kill_child(
        RESULTS_CHILD
        + (
            """
class HalfWriter:  # writes half of the data, flushes it to the temp file, then waits to be killed
    def __init__(self, f):
        self.f = f
    def write(self, data):
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        signal_parent()
        time.sleep(120)
    def __getattr__(self, name):
        return getattr(self.f, name)
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return self.f.__exit__(*exc)
real_fdopen = os.fdopen
os.fdopen = lambda fd, mode: HalfWriter(real_fdopen(fd, mode))
"""
            if where == "mid-write"
            else 'hang(os, "replace")  # the new file complete under its temp name\n'
        )
        + """
atomic_write_text(TARGET, results_json(1))
""",
        target,
        marker,
    )
    assert Results.read(target).to_dict() == _results(0).to_dict()
    (temp,) = [p for p in tmp_path.iterdir() if p.name.startswith(".results.json.")]  # never read as results.json
    new = len(json.dumps({"dataset": "v1", "config": {"version": 1, "pad": "x" * 4_000_000}}))  # results_json(1)
    assert temp.stat().st_size == (new // 2 if where == "mid-write" else new)


# --- the feature cache --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("nth_replace, survivor", [(1, 0), (2, 0), (3, 1)])
def test_feature_cache_entry_killed_mid_put_reads_old_or_new(
    tmp_path: Path, marker: Path, nth_replace: int, survivor: int
) -> None:
    """put's renames: (1) the staged tensors, (2) the sidecar (the commit), (3) the staged tensors over the old:
    killed before the commit the old entry reads, after it the new one."""
    cache = FeatureCache(tmp_path / "fc")
    cache.put(KEY, np.zeros((50, 8)), meta={"version": 0})
    kill_child(
        f"""
import importlib.util
import numpy as np
# the module alone: importing the sicsrec.features package would load the encoders (and torch)
spec = importlib.util.spec_from_file_location("feature_cache", "sicsrec/features/cache.py")
cache = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cache)
hang(os, "replace", {nth_replace})
cache.FeatureCache(TARGET).put({KEY!r}, np.ones((50, 8)), meta={{"version": 1}})
""",
        tmp_path / "fc",
        marker,
    )
    entry = cache.get(KEY)
    assert entry is not None and entry.meta["version"] == survivor
    assert np.array_equal(entry.features, np.full((50, 8), float(survivor), dtype=np.float32))
    cache.put(KEY, np.full((50, 8), 2.0), meta={"version": 2})  # the next put completes cleanly
    assert cache.get(KEY).meta["version"] == 2
    assert sorted(p.name for p in (tmp_path / "fc").rglob("*") if p.is_file() and not p.name.endswith(".tmp")) == [
        f"{KEY}.json",
        f"{KEY}.safetensors",
    ]


# --- checkpoints and atomic folders -------------------------------------------------------------------

CHECKPOINT_CHILD = """
import torch
from sicsrec.checkpoint import item_table, save_checkpoint
from sicsrec.config import ModelConfig
from sicsrec.train.two_step import build_model
from tests.helpers import synthetic_dataset, synthetic_split
split = synthetic_split()
torch.manual_seed(1)
model = build_model("sasrec", ModelConfig(hidden=16, ffn=16, max_len=20), split, None)
items = item_table(split, synthetic_dataset().items)
{hang}
save_checkpoint(TARGET, model, items, {{"version": 1}})
"""


@pytest.mark.parametrize(
    "hang",
    [
        'hang(os, "fsync")',  # model.safetensors written to the temp folder, config.json being written
        'hang(pathlib.Path, "rename", 2)',  # the old folder parked aside, the new one not yet renamed in
    ],
)
@pytest.mark.slow
def test_checkpoint_killed_mid_save_loads_the_previous_one(tmp_path: Path, marker: Path, hang: str) -> None:
    split = synthetic_split()
    torch.manual_seed(0)
    model = build_model("sasrec", ModelConfig(hidden=16, ffn=16, max_len=20), split, None)
    path = save_checkpoint(tmp_path / "ckpt", model, item_table(split, synthetic_dataset().items), {"version": 0})
    kill_child(CHECKPOINT_CHILD.format(hang=hang), path, marker)
    loaded, config, _ = load_checkpoint(path)
    assert config["version"] == 0
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


def test_atomic_folder_killed_between_its_renames_keeps_the_previous_folder(tmp_path: Path, marker: Path) -> None:
    """The training state's writer: `committed_dir` finds the parked previous folder, the next swap restores it."""
    target = tmp_path / "state"
    with atomic_dir(target) as tmp:
        (tmp / "a.json").write_text('{"version": 0}')
    kill_child(
        """
from sicsrec.utils import atomic_dir
hang(pathlib.Path, "rename", 2)
with atomic_dir(TARGET) as tmp:
    (tmp / "a.json").write_text('{"version": 1}')
""",
        target,
        marker,
    )
    found = committed_dir(target)
    assert found is not None and json.loads((found / "a.json").read_text()) == {"version": 0}
    with atomic_dir(target) as tmp:
        (tmp / "a.json").write_text('{"version": 2}')
    assert committed_dir(target) == target and json.loads((target / "a.json").read_text()) == {"version": 2}


# --- the reply cache (append-only) --------------------------------------------------------------------


@pytest.mark.slow
def test_reply_cache_killed_mid_append_keeps_every_complete_line(tmp_path: Path, marker: Path) -> None:
    target = tmp_path / "replies.jsonl"
    kill_child(
        """
from sicsrec.stage_a.llm import ReplyCache
cache = ReplyCache(TARGET)
for i in range(100_000):
    cache.append(f"k{i}", {"i": i, "pad": "y" * 200_000})
    if i == 0:
        signal_parent()
""",
        target,
        marker,
        delay=random.uniform(0.05, 0.3),
    )
    cache = ReplyCache(target)
    records = list(cache.records.values())
    assert records and all(r["pad"] == "y" * 200_000 and r["key"] == f"k{r['i']}" for r in records)
    cache.append("after", {"i": -1})  # a torn last line stays on its own line: the next append is readable
    cache.close()
    assert ReplyCache(target).get("after") == {"key": "after", "i": -1}
