"""`pip install .` gives a working `sicsrec` command that finds the demo wherever it is installed.

The package is built offline from a copy of the sources (pyproject.toml, README.md, sicsrec/) into a
fresh venv; the venv sees this test environment's packages through a .pth file, because a venv made
from inside another venv with --system-site-packages only sees the base interpreter's.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import sicsrec

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(cmd: list[str | Path], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a command, failing the test with its output when it exits non-zero."""
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{cmd} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """(venv, env): the project pip-installed (no deps, no build isolation, offline) into a fresh venv."""
    base = tmp_path_factory.mktemp("install")
    src = base / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "sicsrec", src / "sicsrec", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    (purelib / "outer.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", SICSREC_CACHE=str(base / "cache"), PIP_NO_INDEX="1")
    pip = [sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--quiet"]
    _run([*pip, "--no-deps", "--no-build-isolation", src], cwd=base, env=env)
    return venv, env


def test_console_script_reports_the_package_version(installed: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    venv, env = installed
    done = _run([venv / "bin" / "sicsrec", "--version"], cwd=tmp_path, env=env)
    assert done.stdout.strip() == f"sicsrec {sicsrec.__version__}"


def test_installed_command_prepares_the_bundled_demo_from_another_directory(
    installed: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    venv, env = installed
    where = _run([venv / "bin" / "python", "-c", "import sicsrec; print(sicsrec.__file__)"], cwd=tmp_path, env=env)
    assert Path(where.stdout.strip()).is_relative_to(venv), "imported the repository's copy, not the installed one"
    done = _run([venv / "bin" / "sicsrec", "prepare", "--data", "demo", "--no-features"], cwd=tmp_path, env=env)
    assert "split: " in done.stdout and "users" in done.stdout.lower()
    assert not list(tmp_path.iterdir()), "prepare --no-features wrote into the working directory"
