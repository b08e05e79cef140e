#!/usr/bin/env bash
# Creates (or brings up to date) the peers benchmark's virtual environment: LeRobot 0.4.4 with
# the torch it supports, apart from vlaworks' own .venv (which LeRobot's torch pin would break).
# Idempotent: an existing venv is reused and pip only installs what is missing.
#   bash bench/peers/setup.sh            # -> .venv-peers at the repository root
#   PEERS_VENV=/path bash bench/peers/setup.sh
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=${PEERS_VENV:-$root/.venv-peers}
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
fi
"$venv/bin/pip" install -r "$here/requirements.txt"
"$venv/bin/python" -c "import lerobot, torch, torchvision; print('lerobot', lerobot.__version__, \
'torch', torch.__version__, 'torchvision', torchvision.__version__)"
echo "peers venv ready: $venv ($(du -sh "$venv" | cut -f1))"
