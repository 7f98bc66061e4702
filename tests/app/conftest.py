"""Session fixtures of the app tests: the demo slice, its zip, a small trained run, a Studio over it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.app.helpers import demo_slice, tiny_run, zip_folder


@pytest.fixture(scope="session")
def slice_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ~100-user csv slice of the demo dataset."""
    return demo_slice(tmp_path_factory.getbasetemp() / "slice")


@pytest.fixture(scope="session")
def slice_zip(slice_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The slice as an uploadable zip (one folder inside, as when zipping a folder)."""
    return zip_folder(slice_dir, tmp_path_factory.mktemp("zips") / "slice.zip")


@pytest.fixture(scope="session")
def run_dir(slice_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """checkpoints/demo when shipped, else a tiny SASRec + SICSRec run trained once per session."""
    return tiny_run(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def studio(run_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """One Studio (shared state) over the run, writing runs and caches to a temp folder."""
    from sicsrec.app.studio import AppConfig, Studio

    work = tmp_path_factory.mktemp("studio")
    # one training thread: steady timings when other processes share the cores; training at the suite's priority:
    # a lowered process would wait for the other test worker (the lowered default has its own test)
    return Studio(
        AppConfig(checkpoint=run_dir, workdir=work / "runs", cache_dir=work / "cache", train_threads=1, train_nice=0)
    )
