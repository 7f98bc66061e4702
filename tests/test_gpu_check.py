"""bench/gpu_check.sh: a clean skip (exit 0, one line saying why) without a GPU or data, and its whole path on the
CPU with a tiny budget (the GPU run itself needs the machine it is for)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import synthetic_dataset

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.sh"


def run(*args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow  # two torch imports in subprocesses: ~3 s idle, 25 s on the loaded project machine
@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the script would run its 5-minute check")
def test_without_cuda_it_says_so_and_exits_cleanly():
    done = run()
    assert done.returncode == 0, done.stderr
    assert "skipped:" in done.stdout and "sees no CUDA GPU" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.slow
def test_without_the_data_it_says_where_it_looked():
    done = run("--cpu", "--data-root", "/nonexistent")
    assert done.returncode == 0, done.stderr
    assert "no Bili_Food under --data-root (/nonexistent/ninerec_bili_text/Bili_Food)" in done.stdout


@pytest.mark.slow
def test_the_cpu_path_trains_reports_and_runs_the_train_job(tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    ds = synthetic_dataset(n_users=100, n_items=50)
    ds.items[["item_id", "title"]].to_csv(data / "items.csv", index=False)
    inter = ds.interactions.rename(columns={"order": "timestamp"})
    inter[["user_id", "item_id", "timestamp"]].to_csv(data / "interactions.csv", index=False)
    done = run(
        "--cpu", "--quick", "--small", str(data), "--budget-s", "300", "--out", str(tmp_path / "out"), timeout=400
    )
    assert done.returncode == 0, done.stderr
    assert "| small-cpu | sasrec |" in done.stdout and "| small-cpu | id_control |" in done.stdout
    assert '"error": ""' in done.stdout  # the TrainJob line: the app's job path finished without error
    assert (tmp_path / "out" / "job" / "results.json").exists()
