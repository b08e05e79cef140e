#!/usr/bin/env bash
# Evaluates a trained LeRobot peer with vlaworks' own evaluator on the demo's protocol: serves
# the checkpoint from the peers venv (serve_peer.py), runs `vlaworks eval --policy ws://...`
# from vlaworks' venv on the spatial suite, fixed layouts, 10 seeded episodes per task from
# seed 10000 at 64 px (the demo's held-out episodes), then stops the server; its last line
# gives the model calls and the mean latency per call.
#   bash bench/peers/eval_peer.sh CHECKPOINT OUT [CHUNK_EXEC] [PORT]
#   CHECKPOINT: .../lerobot/checkpoints/last/pretrained_model; CHUNK_EXEC: full | ensemble | ...
# Environment: PEERS_VENV (default .venv-peers), VLAWORKS_PY (default .venv/bin/python),
# THREADS (torch threads of the server, default 1), WORKERS x ENVS (eval processes x envs each,
# default 2 x 5 as the demo), MAX_BATCH (observations per model call, default 8), EVAL_ARGS
# (extra `vlaworks eval` flags). The episodes and their seeds do not depend on WORKERS x ENVS.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: bash bench/peers/eval_peer.sh CHECKPOINT OUT [CHUNK_EXEC] [PORT]" >&2
  exit 2
fi
checkpoint=$1 out=$2 chunk_exec=${3:-ensemble} port=${4:-8765}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
peers_python=${PEERS_VENV:-$root/.venv-peers}/bin/python
vlaworks_python=${VLAWORKS_PY:-$root/.venv/bin/python}
threads=${THREADS:-1} workers=${WORKERS:-2} envs=${ENVS:-5} max_batch=${MAX_BATCH:-8}
mkdir -p "$out"

OMP_NUM_THREADS=$threads HF_HUB_OFFLINE=1 PYTHONPATH=$root \
  "$peers_python" "$root/bench/peers/serve_peer.py" --checkpoint "$checkpoint" --port "$port" \
  --threads "$threads" --max-batch "$max_batch" > "$out/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 300); do
  grep -q "^serving on" "$out/server.log" && break
  kill -0 "$server" 2>/dev/null || { cat "$out/server.log" >&2; exit 1; }
  sleep 1
done
grep -q "^serving on" "$out/server.log" || { echo "server did not start in 300 s" >&2; exit 1; }

cd "$root"
# shellcheck disable=SC2086  # EVAL_ARGS is a list of flags
OMP_NUM_THREADS=$threads MUJOCO_GL=${MUJOCO_GL:-egl} PYTHONPATH=$root "$vlaworks_python" -m vlaworks.cli eval \
  --policy "ws://127.0.0.1:$port" --suite spatial --layout fixed --episodes 10 --seed 10000 \
  --image-size 64 --chunk-exec "$chunk_exec" --workers "$workers" --envs-per-worker "$envs" --out "$out" ${EVAL_ARGS:-}
kill "$server"
wait "$server" || true
trap - EXIT
tail -n 1 "$out/server.log"
