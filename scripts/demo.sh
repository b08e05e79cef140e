#!/usr/bin/env bash
# Main job on the built-in default: set up, then generate -> train -> evaluate -> report.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh"
exec "$root/.venv/bin/vlaworks" demo "$@"
