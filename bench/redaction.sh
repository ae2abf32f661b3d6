#!/usr/bin/env bash
# Ingest throughput of the embedded store with redaction off and with every detector on (and a
# custom pattern), alternating so that both see the same machine: the end-to-end check that
# redaction costs less than 15 % (SPEC §9, issue 23). Loopback only.
#
#   bench/redaction.sh                 3 rounds of 30 s each way, 8 connections
#   ROUNDS=2 DURATION=20 CONNECTIONS=4 bench/redaction.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-30}"
CONNECTIONS="${CONNECTIONS:-8}"
ROUNDS="${ROUNDS:-3}"
TARGET="${CARGO_TARGET_DIR:-target}"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

cargo build --release --bin spanhouse --example loadgen --quiet
SPANHOUSE="$TARGET/release/spanhouse"
LOADGEN="$TARGET/release/examples/loadgen"

# One run on a fresh data dir; prints spans/s. $1: off or on.
run() {
  local data="$WORK/data-$1-$2"
  # A port of its own each run: another server of this machine may hold a fixed one.
  local PORT=$((20000 + RANDOM % 20000))
  "$SPANHOUSE" serve --data-dir "$data" --http-listen "127.0.0.1:$PORT" \
    --grpc-listen "127.0.0.1:$((PORT + 1))" 2>"$data.log" &
  local pid=$!
  for _ in $(seq 1 100); do
    [ -f "$data/bootstrap-token" ] && curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
    sleep 0.1
  done
  local token
  token=$(cat "$data/bootstrap-token")
  if [ "$1" = on ]; then
    curl -sf -X PUT "http://127.0.0.1:$PORT/api/v1/project/settings" \
      -H "authorization: Bearer $token" -H 'content-type: application/json' \
      -d '{"redact": ["email", "phone", "credit_card", "ip_address", "secret", {"pattern": "cust-\\d{6}"}]}' >/dev/null
  fi
  "$LOADGEN" --url "http://127.0.0.1:$PORT" --token "$token" --connections "$CONNECTIONS" \
    --duration "$DURATION" --json "$WORK/$1-$2.json" >/dev/null
  if ! kill "$pid" 2>/dev/null; then
    echo "the server of run $1 $2 died:" >&2
    tail -5 "$data.log" >&2
  fi
  wait "$pid" 2>/dev/null || true
  rm -rf "$data"
  python3 -c "import json; print(round(json.load(open('$WORK/$1-$2.json'))['spans_per_second']))"
}

echo "machine: $(nproc) cores; ${DURATION}s runs, ${CONNECTIONS} connections"
off=(); on=()
for round in $(seq 1 "$ROUNDS"); do
  off+=("$(run off "$round")")
  on+=("$(run on "$round")")
  echo "round $round: redaction off ${off[-1]} spans/s, every detector on ${on[-1]} spans/s"
done
python3 - "${off[*]}" "${on[*]}" <<'PY'
import sys, statistics
off = [int(x) for x in sys.argv[1].split()]
on = [int(x) for x in sys.argv[2].split()]
m_off, m_on = statistics.median(off), statistics.median(on)
print(f"median: off {m_off:.0f} spans/s, on {m_on:.0f} spans/s: {100 * (m_on - m_off) / m_off:+.1f} %")
PY
