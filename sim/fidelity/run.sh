#!/usr/bin/env bash
# Builds and starts hubspot-sim (debug, in $CARGO_TARGET_DIR or target/) on a free port, runs the fidelity check, stops it.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
if ! python3 -c 'import jsonschema, hubspot' 2>/dev/null; then
  PIP=(python3 -m pip install --quiet --disable-pip-version-check jsonschema hubspot-api-client)
  "${PIP[@]}" 2>/dev/null || "${PIP[@]}" --break-system-packages
fi
cargo build -q -p hubspot-sim
LOG="$(mktemp)"
"${CARGO_TARGET_DIR:-$ROOT/target}/debug/hubspot-sim" --port 0 --contacts 3000 --deals 800 --calls 1500 --owners 25 --seed 7 --association-page-size 3 >"$LOG" 2>/dev/null &
PID=$!
trap 'kill "$PID" 2>/dev/null || true; rm -f "$LOG"' EXIT
for _ in $(seq 1 100); do
  grep -q 'listening on' "$LOG" && break
  sleep 0.1
done
SIM_URL="$(sed -n 's/^hubspot-sim listening on //p' "$LOG")"
[ -n "$SIM_URL" ] || { echo "hubspot-sim did not start"; exit 1; }
SIM_URL="$SIM_URL" python3 "$ROOT/sim/fidelity/check.py"
