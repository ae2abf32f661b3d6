#!/usr/bin/env bash
# The `embedded` step of run.sh for two builds back to back: a git revision (built from
# `git archive` into a temporary directory) and the working tree. Run it on an otherwise idle
# machine; it alternates old, new, new, old so that drift shows.
#
#   bench/compare.sh 0573d65                  # 30 s a run
#   DURATION=60 ROUNDS=1 bench/compare.sh HEAD~2
#
# Prints, per run, acknowledged spans/s and latency (the load generator's summary), the server's
# CPU in cores over the load, its busiest threads, and, when the build has the text indexer,
# whether it had caught up 2 s after the load.
set -euo pipefail
cd "$(dirname "$0")/.."

OLD="${1:?usage: bench/compare.sh GIT_REVISION}"
DURATION="${DURATION:-30}"
CONNECTIONS="${CONNECTIONS:-8}"
ROUNDS="${ROUNDS:-2}"
WORK=$(mktemp -d)
PORT=14900
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

echo "==> build $OLD and the working tree (release)"
mkdir -p "$WORK/old-src" "$WORK/old" "$WORK/new"
git archive "$OLD" | tar -x -C "$WORK/old-src"
# A target directory of its own: sharing this one would leave target/release/spanhouse the old
# build while cargo believes it current.
OLD_TARGET="$PWD/target/compare-old"
(cd "$WORK/old-src" && CARGO_TARGET_DIR="$OLD_TARGET" \
  cargo build --release --bin spanhouse --example loadgen --quiet)
cp "$OLD_TARGET/release/spanhouse" "$OLD_TARGET/release/examples/loadgen" "$WORK/old/"
cargo build --release --bin spanhouse --example loadgen --quiet
cp target/release/spanhouse target/release/examples/loadgen "$WORK/new/"
if cmp -s "$WORK/old/spanhouse" "$WORK/new/spanhouse"; then
  echo "the two builds are the same binary" >&2
  exit 1
fi

run() { # old|new
  local label bin=$WORK/$1 data="$WORK/data-$1-$RANDOM"
  if [ "$1" = old ]; then label="old ($OLD)"; else label="new (working tree)"; fi
  "$bin/spanhouse" serve --data-dir "$data" --http-listen "127.0.0.1:$PORT" \
    --grpc-listen "127.0.0.1:$((PORT + 1))" 2>"$data.log" &
  local pid=$!
  for _ in $(seq 1 100); do
    [ -f "$data/bootstrap-token" ] && curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
    sleep 0.1
  done
  local token
  token=$(cat "$data/bootstrap-token")
  threads() { for task in /proc/"$pid"/task/*; do
    echo "$(basename "$task") $(tr ' ' _ <"$task/comm") $(awk '{print $14 + $15}' "$task/stat")"
  done; }
  threads >"$data.threads0"
  local start
  start=$(date +%s.%N)
  echo "--> $label: $(uptime)"
  "$bin/loadgen" --url "http://127.0.0.1:$PORT" --token "$token" --connections "$CONNECTIONS" \
    --duration "$DURATION" --verify | grep -E '^acknowledged'
  threads >"$data.threads1"
  python3 - "$data" "$start" "$(date +%s.%N)" "$(getconf CLK_TCK)" <<'PY'
import sqlite3, sys
data, start, end, hz = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
def read(path):
    return {f[0]: (f[1], int(f[2])) for f in (line.split() for line in open(path)) if len(f) == 3}
before, after = read(data + ".threads0"), read(data + ".threads1")
cores = sorted(((ticks - before.get(tid, (0, 0))[1]) / hz / (end - start), name)
               for tid, (name, ticks) in after.items())
print(f"    server CPU {sum(c for c, _ in cores):.2f} cores; busiest threads:",
      ", ".join(f"{name} {c:.2f}" for c, name in cores[::-1][:3]))
PY
  if [ -f "$data/search.sqlite" ]; then
    sleep 2
    python3 - "$data" <<'PY'
import sqlite3, sys
d = sys.argv[1]
newest = sqlite3.connect(f"file:{d}/spanhouse.db?mode=ro", uri=True).execute(
    "SELECT MAX(text_seq) FROM traces").fetchone()[0]
mark = sqlite3.connect(f"file:{d}/search.sqlite?mode=ro", uri=True).execute(
    "SELECT indexed_seq FROM index_state").fetchone()[0]
print(f"    2 s after the load: newest text_seq {newest}, indexed_seq {mark}")
PY
  fi
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  # A 60 s run leaves ~4 GiB: keep the disk for the next one.
  rm -rf "$data" "$data".*
}

for _ in $(seq 1 "$ROUNDS"); do
  run old
  run new
  run new
  run old
done
