#!/usr/bin/env bash
# Test suite: set up, lint, then pytest (extra arguments go to pytest).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh"
cd "$root"
.venv/bin/ruff check vlaworks tests bench
exec .venv/bin/python -m pytest -q "$@"
