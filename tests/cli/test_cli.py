"""End-to-end CLI: compare on a slice of the embedded demo, then recommend/evaluate from its checkpoints."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # trains models or serves the app for every test here

ROOT = Path(__file__).resolve().parents[2]
# the `compared` run's settings; the resume test repeats them exactly
COMPARE_ARGS = ["--hidden", "32", "--dropout", "0.2", "--max-epochs", "6", "--patience", "6", "--max-len", "20"]
COMPARE_ARGS += ["--batch-size", "256", "--device", "cpu"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """`python -m sicsrec ARGS` in its own process, as a user types it."""
    return subprocess.run(
        [sys.executable, "-m", "sicsrec", *args], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=900
    )


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """(exit code, stderr) of the same command through `sicsrec.cli.main` in this process: for failures that end
    before any work (one process start each would cost seconds; `run_cli` covers the process wrapper)."""
    from sicsrec.cli import main

    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as e:  # argparse's usage errors
        code = int(e.code or 0)
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def compared(demo_slice, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("run")
    proc = run_cli("compare", "--data", str(demo_slice), "--out", str(out), *COMPARE_ARGS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| sicsrec |" in proc.stdout and "| pop |" in proc.stdout
    return out, json.loads((out / "results.json").read_text())


def test_compare_writes_the_contract_and_models_beat_popularity(compared):
    out, res = compared
    assert set(res["models"]) == {"pop", "sasrec", "content", "sicsrec"}
    assert res["split"]["users"] == 150
    for name, m in res["models"].items():
        for part in ("valid", "test"):
            assert set(m[part]) == {"hr@5", "hr@10", "ndcg@5", "ndcg@10"}
        assert isinstance(m["epochs"], int) and isinstance(m["train_seconds"], float)
        if name != "pop":
            assert (out / "checkpoints" / name / "model.safetensors").is_file()
    pop = res["models"]["pop"]["test"]["ndcg@10"]
    assert res["models"]["sasrec"]["test"]["ndcg@10"] > pop
    assert res["models"]["sicsrec"]["test"]["ndcg@10"] > pop


def test_recommend_cli_json_matches_the_contract(compared):
    out, _ = compared
    items = json.loads((out / "checkpoints" / "sicsrec" / "items.json").read_text())
    history = ",".join(items["item_ids"][:3])
    proc = run_cli(
        "recommend", "--checkpoint", str(out / "checkpoints" / "sicsrec"), "--history", history, "--k", "5", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) == {"items", "source", "k", "used_ids", "unknown_ids", "warnings"}
    assert out["source"] == "model" and out["used_ids"] == history.split(",") and out["warnings"] == []
    recs = out["items"]
    assert len(recs) == 5
    for r in recs:
        assert {"item_id", "title", "score", "behavior", "content", "mixed", "bias"} <= set(r)
        assert math.isclose(r["behavior"] + r["content"] + r["mixed"] + r["bias"], r["score"], abs_tol=1e-5)
        assert r["item_id"] not in history.split(",")


def test_evaluate_cli_reproduces_the_saved_test_metrics(compared, capsys):
    out, res = compared
    proc = run_cli("evaluate", "--checkpoint", str(out / "checkpoints" / "sicsrec"))
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    for k, v in res["models"]["sicsrec"]["test"].items():
        assert math.isclose(got["test"][k], v, abs_tol=1e-9)
    # a budget far below one score matrix ranks in item chunks: the same figures
    proc = run_cli("evaluate", "--checkpoint", str(out / "checkpoints" / "sicsrec"), "--eval-memory-mb", "0.01")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["test"] == got["test"]
    for bad in ("0", "-1", "nan", "lots"):
        code, err = run_main(
            capsys, "evaluate", "--checkpoint", str(out / "checkpoints" / "sicsrec"), "--eval-memory-mb", bad
        )
        assert code == 2 and "--eval-memory-mb" in err


def test_bad_inputs_give_clear_errors_not_tracebacks(tmp_path, demo_slice, capsys):
    proc = run_cli("compare", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "error:" in proc.stderr and "Traceback" not in proc.stderr
    code, err = run_main(capsys, "recommend", "--checkpoint", str(tmp_path), "--history", "1")
    assert code == 2 and "config.json" in err and "Traceback" not in err
    for encoder, message in [("clip", "needs its pretrained"), (f"clip:{tmp_path / 'none.safetensors'}", "not found")]:
        code, err = run_main(capsys, "prepare", "--data", str(demo_slice), "--text-encoder", encoder)
        assert code == 2 and message in err, err[-2000:]
    code, err = run_main(
        capsys, "compare", "--data", str(demo_slice), "--out", str(tmp_path / "o"), "--models", "pop,gru4rec"
    )
    assert code == 2 and "unknown model(s) 'gru4rec'" in err


def test_resume_reuses_finished_checkpoints_with_identical_settings(compared, demo_slice):
    out, res = compared
    common = ["compare", "--data", str(demo_slice), "--out", str(out), *COMPARE_ARGS, "--models", "sasrec", "--resume"]
    proc = run_cli(*common, "--threads", "1", "--eval-memory-mb", "64")  # how it runs: still current
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "reusing the finished checkpoint" in proc.stderr
    again = json.loads((out / "results.json").read_text())
    assert again["models"]["sasrec"]["test"] == res["models"]["sasrec"]["test"]
    proc = run_cli(*[a if a != "0.2" else "0.3" for a in common], "--max-epochs", "1")  # other settings: retrain
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "reusing" not in proc.stderr and "sasrec epoch 1" in proc.stderr


def test_prefix_rows_train_one_row_per_target_and_are_recorded(demo_slice, tmp_path):
    proc = run_cli(
        "compare",
        "--data",
        str(demo_slice),
        "--out",
        str(tmp_path),
        "--hidden",
        "16",
        "--max-epochs",
        "1",
        "--max-len",
        "20",
        "--models",
        "sasrec",
        "--device",
        "cpu",
        "--train-rows",
        "prefixes",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    n_targets, n_rows = map(int, re.search(r"(\d+) train targets in (\d+) windows", proc.stderr).groups())
    assert n_targets == n_rows == 150 * (40 - 3)  # every user: 40 ratings, 38 in training, 37 targets
    cfg = json.loads((tmp_path / "checkpoints" / "sasrec" / "config.json").read_text())
    assert cfg["run"]["data"]["train_rows"] == "prefixes"


def test_the_evaluation_memory_budget_reaches_the_run_config():
    from sicsrec.cli import build_parser, run_config

    args = build_parser().parse_args(["compare", "--data", "demo", "--out", "unused", "--eval-memory-mb", "64"])
    assert run_config(args).train.eval_memory_mb == 64.0
    default = build_parser().parse_args(["compare", "--data", "demo", "--out", "unused"])
    assert run_config(default).train.eval_memory_mb == 512.0
