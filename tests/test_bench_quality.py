"""bench/quality.py's seed records: a finished seed kept in git (results and per-user test ranks) reads back
exactly and joins the summary and its paired test when its run folder is gone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sicsrec.eval.metrics import metrics_from_ranks
from sicsrec.eval.results import ModelResult, Results

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))  # bench/ is a folder of scripts
import quality

ROOT = Path(__file__).resolve().parents[1]

MODELS = "sasrec,content,id_control,sicsrec"


def seed_run(seed: int, n_users: int = 200) -> quality.SeedRun:
    """A seed whose SICSRec ranks users' targets better than the baselines, with metrics taken from the ranks."""
    rng = np.random.default_rng(seed)
    scale = {"pop": 400, "sasrec": 40, "content": 50, "id_control": 45, "sicsrec": 4}
    ranks = {m: rng.geometric(1 / s, n_users) - 1 for m, s in scale.items()}
    models = {}
    for m, r in ranks.items():
        test = metrics_from_ranks(torch.from_numpy(r))
        models[m] = ModelResult(valid=test, test=test, epochs=3)
    results = Results("Tiny", config={"train": {"stop_metric": "hr@10"}}, models=models)
    return quality.SeedRun(results, {m: r for m, r in ranks.items() if m != "pop"})


def test_a_record_reads_back_exactly(tmp_path: Path) -> None:
    run = seed_run(2025)
    path = quality.record_path("tiny", 2025, tmp_path)
    quality.write_record(path, run)
    back = quality.read_record(path)
    assert back is not None and back.results.to_dict() == run.results.to_dict()
    assert set(back.ranks) == set(run.ranks) and all(np.array_equal(back.ranks[m], run.ranks[m]) for m in run.ranks)
    assert max(len(line) for line in path.read_text().splitlines()) > 200 * 2  # the ranks on one line each
    path.write_text(json.dumps({"schema": "something else"}))
    assert quality.read_record(path) is None


def test_a_seed_with_no_run_folder_comes_from_its_record(tmp_path: Path) -> None:
    record = quality.record_path("tiny", 2026, tmp_path)
    assert quality.seed_run(tmp_path / "gone", MODELS, record, {}) is None  # neither folder nor record
    quality.write_record(record, seed_run(2026))
    got = quality.seed_run(tmp_path / "gone", MODELS, record, {})
    assert got is not None and got.results.dataset == "Tiny"
    assert quality.seed_run(tmp_path / "gone", MODELS + ",other", record, {}) is None  # a model it lacks


def test_records_give_the_summary_and_the_paired_test() -> None:
    runs = {s: seed_run(s) for s in (2025, 2026, 2027)}
    out = quality.dataset_summary(runs)
    assert out["seeds"] == [2025, 2026, 2027] and out["best_baseline"]["ndcg@5"] == "sasrec"
    paired = out["paired"]["best"]
    expected = np.mean(
        [np.where(runs[s].ranks["sicsrec"] < 5, 1 / np.log2(runs[s].ranks["sicsrec"] + 2), 0) for s in runs], axis=0
    )
    assert paired["users"] == 200 and paired["mean_a"] == pytest.approx(expected.mean())
    assert paired["diff_low"] > 0  # ranks 4 vs 40 on average: the interval excludes zero
    gain = out["gains"]["ndcg@5"]["best"]
    assert gain["n"] == 3 and gain["mean"] > 0


def test_finished_only_keeps_a_dataset_it_finds_nothing_for(tmp_path: Path) -> None:
    stored = {"schema": quality.SCHEMA, "datasets": {"demo": {"seeds": [1], "models": {}}}}
    json_path = tmp_path / "quality.json"
    json_path.write_text(json.dumps(stored))
    cmd = [sys.executable, str(ROOT / "bench" / "quality.py"), "--datasets", "demo", "--seeds", "7"]
    cmd += ["--out", str(tmp_path / "runs"), "--json", str(json_path), "--finished-only"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "kept from" in done.stderr
    assert json.loads(json_path.read_text())["datasets"]["demo"] == stored["datasets"]["demo"]
