#!/usr/bin/env bash
# The `clickhouse` step of run.sh for one build, with where the CPU went: acknowledged spans/s
# (the load generator), stored spans/s (load start until the spool is drained), and the CPU of
# the server's busiest threads and of ClickHouse over that time. Run it under the machine lock.
#
#   bench/clickhouse.sh                       target/release, 30 s
#   BIN=/tmp/old/bin DURATION=60 bench/clickhouse.sh
#   CONFIG=spanhouse.toml bench/clickhouse.sh   with a config file (say, [clickhouse] settings)
#   SPLIT=1 bench/clickhouse.sh               ClickHouse stopped (SIGSTOP) during the load, so
#                                             that the two are measured apart: what the server
#                                             acknowledges alone, then how fast the spool drains
#   PERF=1 bench/clickhouse.sh                also `perf record -g` the server for 10 s mid-load
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${BIN:-target/release}"
SPANHOUSE="$BIN/spanhouse"
LOADGEN="$BIN/loadgen"
[ -x "$LOADGEN" ] || LOADGEN="$BIN/examples/loadgen"
DURATION="${DURATION:-30}"
CONNECTIONS="${CONNECTIONS:-8}"
DATABASE="${DATABASE:-spanhouse_bench_ch}"
PORT="${PORT:-14950}"
WORK=$(mktemp -d)
chpid=""
trap '[ -n "$chpid" ] && kill -CONT "$chpid"; kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

url=$(scripts/clickhouse.sh start)
curl -sf "$url" --data-binary "DROP DATABASE IF EXISTS $DATABASE" >/dev/null
data="$WORK/data"
"$SPANHOUSE" ${CONFIG:+--config "$CONFIG"} serve --data-dir "$data" --http-listen "127.0.0.1:$PORT" \
  --grpc-listen "127.0.0.1:$((PORT + 1))" --storage clickhouse --clickhouse-url "$url" \
  --clickhouse-database "$DATABASE" 2>"$WORK/server.log" &
pid=$!
for _ in $(seq 1 100); do
  [ -f "$data/bootstrap-token" ] && curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
  sleep 0.1
done
token=$(cat "$data/bootstrap-token")
chpid=$(pgrep -o -f "clickhouse-server.*config" || pgrep -o clickhouse || echo "")

threads() { for task in /proc/"${1:-$pid}"/task/*; do
  echo "$(basename "$task") $(tr ' ' _ <"$task/comm") $(awk '{print $14 + $15}' "$task/stat")"
done; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

echo "--> $SPANHOUSE: $(uptime)"
threads >"$WORK/threads0"
threads "$chpid" >"$WORK/chthreads0"
ch_events() { curl -s "$url" --data-binary "SELECT event, value FROM system.events WHERE event IN ('InsertQuery', 'InsertedRows', 'MergedRows', 'MergesTimeMilliseconds', 'SelectQuery') FORMAT TSV"; }
ch_events >"$WORK/events0"
ch0=$(ticks "$chpid")
cpu0=$(head -1 /proc/stat)
[ -n "${SPLIT:-}" ] && kill -STOP "$chpid"
start=$(date +%s.%N)
if [ -n "${PERF:-}" ]; then
  (sleep $((DURATION / 3)); perf record ${PERF_ARGS:--g} -F 499 -p "$pid" -o "${PERF_OUT:-$WORK/perf.data}" -- sleep 10 \
    >/dev/null 2>&1) &
fi
TIMEFORMAT="    load generator: %U s user + %S s system over %R s"
time ("$LOADGEN" --url "http://127.0.0.1:$PORT" --token "$token" --connections "$CONNECTIONS" \
  --duration "$DURATION" --json "$WORK/load.json" | grep -E '^acknowledged' || true)
load_end=$(date +%s.%N)
threads >"$WORK/threads1"
threads "$chpid" >"$WORK/chthreads1"
ch1=$(ticks "$chpid")
cpu1=$(head -1 /proc/stat)
if [ -n "${SPLIT:-}" ]; then
  kill -CONT "$chpid"
fi
while [ "$(curl -s "http://127.0.0.1:$PORT/readyz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["buffered"])')" != 0 ]; do
  sleep 0.2
done
end=$(date +%s.%N)
ch_events >"$WORK/events1"
stored=$(curl -s "$url" --data-binary "SELECT count() FROM $DATABASE.spans FINAL")
python3 - "$WORK" "$start" "$load_end" "$end" "$(getconf CLK_TCK)" "$stored" "$ch0" "$ch1" "$cpu0" "$cpu1" <<'PY'
import json, os, sys
work, start, load_end, end, hz, stored, ch0, ch1, cpu0, cpu1 = sys.argv[1:]
cpu = [int(b) - int(a) for a, b in zip(cpu0.split()[1:], cpu1.split()[1:])]
idle = (cpu[3] + cpu[4]) / sum(cpu)
start, load_end, end, hz, stored = float(start), float(load_end), float(end), int(hz), int(stored)
load = json.load(open(f"{work}/load.json"))
print(f"    acknowledged {load['acknowledged_spans']} spans: {load['spans_per_second']:.0f} spans/s")
drain_from = load_end if os.environ.get("SPLIT") else start
print(f"    stored {stored} spans in {end - drain_from:.1f} s from the {'end' if os.environ.get('SPLIT') else 'start'} of the load: {stored / (end - drain_from):.0f} spans/s "
      f"(drained {end - load_end:.1f} s after the load)")
def read(path):
    return {f[0]: (f[1], int(f[2])) for f in (line.split() for line in open(path)) if len(f) == 3}
before, after = read(f"{work}/threads0"), read(f"{work}/threads1")
cores = {}
for tid, (name, t) in after.items():
    cores[name] = cores.get(name, 0) + (t - before.get(tid, (0, 0))[1]) / hz / (load_end - start)
top = sorted(((c, n) for n, c in cores.items()), reverse=True)[:4]
chb, cha = read(f"{work}/chthreads0"), read(f"{work}/chthreads1")
chcores = {}
for tid, (name, t) in cha.items():
    chcores[name] = chcores.get(name, 0) + (t - chb.get(tid, (0, 0))[1]) / hz / (load_end - start)
chtop = sorted(((c, n) for n, c in chcores.items()), reverse=True)[:4]
ev0 = dict(line.split() for line in open(f"{work}/events0"))
ev1 = dict(line.split() for line in open(f"{work}/events1"))
print("    ClickHouse until drained: " + ", ".join(f"{k} {int(ev1.get(k, 0)) - int(ev0.get(k, 0))}" for k in sorted(ev1)))
print(f"    during the load: server {sum(cores.values()):.2f} cores ("
      + ", ".join(f"{n} {c:.2f}" for c, n in top)
      + f"), ClickHouse {(int(ch1) - int(ch0)) / hz / (load_end - start):.2f} cores; "
      f"machine {100 * idle:.0f}% idle")
print("    ClickHouse threads during the load: " + ", ".join(f"{n} {c:.2f}" for c, n in chtop))
PY
kill "$pid"
wait "$pid" 2>/dev/null || true
curl -sf "$url" --data-binary "DROP DATABASE IF EXISTS $DATABASE" >/dev/null
