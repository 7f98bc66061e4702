#!/usr/bin/env bash
# Installs everything the tests need (venv, Debian's Chromium), checks lint, format and types, runs the whole suite.
# Extra arguments go to pytest: `bash scripts/test.sh -m "not slow"` is the quick loop. The tests run on every core
# (pytest-xdist, one test file per worker so a module's fixtures are built once); SICSREC_TEST_WORKERS=0 runs them
# in this one process.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
venv=$(bash scripts/env.sh requirements-dev.txt)
if ! command -v chromium >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 \
    || echo "warning: could not install Debian chromium; the browser test will skip" >&2
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False
# lint, format and types first: a few seconds for ruff, under a minute for mypy on a cold cache
"$venv/bin/ruff" check --quiet .
"$venv/bin/ruff" format --check --quiet .
"$venv/bin/mypy"
exec "$venv/bin/python" -m pytest -q -n "${SICSREC_TEST_WORKERS:-auto}" --dist loadfile "$@" tests
