#!/usr/bin/env bash
# The whole benchmark suite on this machine; writes bench/results/*.json and prints a summary
# that BENCHMARKS.md quotes. Loopback only. Each step can be shortened for a quick look:
#
#   bench/run.sh                       everything, at the durations of BENCHMARKS.md
#   DURATION=20 QUERY_SPANS=1000000 bench/run.sh
#   STEPS="criterion embedded" bench/run.sh
#
# Steps: criterion embedded split latency overload (OTLP/HTTP, then OTLP/gRPC) clickhouse queries
# reads (the reads users wait on at QUERY_SPANS spans, on READ_BACKENDS) lifecycle (export, import
# and an erasure at LIFECYCLE_SPANS spans) phoenix. Redaction's ingest cost: bench/redaction.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-60}"            # seconds of sustained load
CONNECTIONS="${CONNECTIONS:-8}"
QUERY_SPANS="${QUERY_SPANS:-5000000}" # spans stored before the query timings
LIFECYCLE_SPANS="${LIFECYCLE_SPANS:-500000}" # spans exported, imported back, erased from
STEPS="${STEPS:-criterion embedded split latency overload clickhouse queries reads lifecycle phoenix}"
READ_BACKENDS="${READ_BACKENDS:-embedded clickhouse}"
RESULTS=bench/results
mkdir -p "$RESULTS"
WORK=$(mktemp -d)
PORT=14800
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

step() { printf '\n==> %s\n' "$*"; }
wants() { [[ " $STEPS " == *" $1 "* ]]; }

step "build (release)"
cargo build --release --bin spanhouse --example loadgen --quiet
SPANHOUSE=target/release/spanhouse
LOADGEN=target/release/examples/loadgen

# Starts spanhouse with extra arguments on a fresh data dir; sets PID and TOKEN.
serve() {
  local data="$WORK/data-$1"; shift
  rm -rf "$data"
  "$SPANHOUSE" serve --data-dir "$data" --http-listen "127.0.0.1:$PORT" \
    --grpc-listen "127.0.0.1:$((PORT + 1))" "$@" 2>"$data.log" &
  PID=$!
  for _ in $(seq 1 100); do
    [ -f "$data/bootstrap-token" ] && curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
    sleep 0.1
  done
  TOKEN=$(cat "$data/bootstrap-token")
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; }
peak_rss_mib() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$PID/status"; }
load() { "$LOADGEN" --url "http://127.0.0.1:$PORT" --token "$TOKEN" "$@"; }

echo "machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, $(uname -sr)"
echo "rustc: $(rustc --version)"

if wants criterion; then
  step "criterion: decode, normalize, store batch write"
  cargo bench --bench ingest --quiet -- --warm-up-time 2 --measurement-time 8 2>/dev/null \
    | grep -E "^(ingest|store|store codec|redact)/|thrpt" | tee "$RESULTS/criterion.txt"
fi

if wants embedded; then
  step "embedded store: ${DURATION}s at full speed, ${CONNECTIONS} connections, 1000-span requests"
  serve embedded
  load --connections "$CONNECTIONS" --duration "$DURATION" --verify --json "$RESULTS/embedded.json"
  echo "peak resident memory: $(peak_rss_mib) MiB" | tee "$RESULTS/embedded-rss.txt"
  stop
fi

if wants split; then
  step "embedded store, traces split over two requests (roots late, as SDKs send them): ${DURATION}s"
  serve split
  load --connections "$CONNECTIONS" --duration "$DURATION" --late-roots --verify --json "$RESULTS/split.json"
  stop
fi

if wants latency; then
  max=$(python3 -c "import json; print(json.load(open('$RESULTS/embedded.json'))['spans_per_second'])")
  rate=$(python3 -c "print($max / 2 / 1000 / $CONNECTIONS)")
  step "latency at half the maximum rate ($(python3 -c "print(round($max / 2))") spans/s)"
  serve latency
  load --connections "$CONNECTIONS" --duration "$DURATION" --rate "$rate" --json "$RESULTS/latency.json"
  stop
fi

if wants overload; then
  step "overload: 4x the connections, 1000-span requests, for 20 s"
  serve overload
  load --connections $((CONNECTIONS * 4)) --duration 20 --json "$RESULTS/overload.json"
  echo "peak resident memory: $(peak_rss_mib) MiB" | tee "$RESULTS/overload-rss.txt"
  stop
  step "overload over OTLP/gRPC: 4x the connections, 1000-span requests, for 20 s"
  serve overload-grpc
  "$LOADGEN" --url "http://127.0.0.1:$((PORT + 1))" --protocol grpc --token "$TOKEN" \
    --connections $((CONNECTIONS * 4)) --duration 20 --json "$RESULTS/overload-grpc.json"
  echo "peak resident memory: $(peak_rss_mib) MiB" | tee "$RESULTS/overload-grpc-rss.txt"
  stop
fi

if wants clickhouse; then
  step "ClickHouse backend (local ClickHouse): ${DURATION}s at full speed"
  url=$(scripts/clickhouse.sh start)
  curl -s "$url" --data-binary "DROP DATABASE IF EXISTS spanhouse_bench" >/dev/null
  serve clickhouse --storage clickhouse --clickhouse-url "$url" --clickhouse-database spanhouse_bench
  start=$(date +%s.%N)
  load --connections "$CONNECTIONS" --duration "$DURATION" --json "$RESULTS/clickhouse.json"
  while [ "$(curl -s "http://127.0.0.1:$PORT/readyz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["buffered"])')" != 0 ]; do
    sleep 0.5
  done
  end=$(date +%s.%N)
  stored=$(curl -s "$url" --data-binary "SELECT count() FROM spanhouse_bench.spans FINAL")
  echo "stored in ClickHouse: $stored spans in $(python3 -c "print(round($end - $start, 1))") s: $(python3 -c "print(round($stored / ($end - $start)))") spans/s; peak resident memory $(peak_rss_mib) MiB" \
    | tee "$RESULTS/clickhouse-stored.txt"
  stop
fi

if wants queries; then
  step "queries with $QUERY_SPANS spans stored (embedded store)"
  serve queries
  load --connections "$CONNECTIONS" --spans "$QUERY_SPANS" --json "$RESULTS/queries-load.json" >/dev/null
  trace=$(curl -s -H "authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/traces?limit=1" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["traces"][0]["trace_id"])')
  timing() { # NAME PATH: the best of 5, in ms
    local best=999999
    for _ in 1 2 3 4 5; do
      t=$(curl -s -o /dev/null -w "%{time_total}" -H "authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT$2")
      best=$(python3 -c "print(min($best, $t * 1000))")
    done
    echo "$1: $(python3 -c "print(round($best, 1))") ms"
  }
  {
    timing "trace by id" "/api/v1/traces/$trace"
    timing "first page, last 24 h" "/api/v1/traces"
    timing "q text search, frequent phrase" "/api/v1/traces?q=the%20result"
    timing "q text search, no match (scans the window)" "/api/v1/traces?q=no-such-phrase-anywhere"
  } | tee "$RESULTS/queries.txt"
  stop
fi

if wants reads; then
  rss_mib() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$PID/status"; }
  best_ms() { # PATH: the best of 5 answers, in ms
    local best=999999
    for _ in 1 2 3 4 5; do
      t=$(curl -s -o /dev/null -w "%{time_total}" -H "authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT$1")
      best=$(python3 -c "print(min($best, $t * 1000))")
    done
    python3 -c "print(round($best, 1))"
  }
  once_ms() { # PATH: one answer, in ms, and its status when not 200
    local out
    out=$(curl -s -o /dev/null -w "%{http_code} %{time_total}" -H "authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT$1")
    python3 -c "import sys; c, t = sys.argv[1].split(); print(round(float(t) * 1000, 1), '' if c == '200' else f'(status {c})')" "$out"
  }
  for backend in $READ_BACKENDS; do
    step "reads with $QUERY_SPANS spans stored ($backend)"
    if [ "$backend" = clickhouse ]; then
      url=$(scripts/clickhouse.sh start)
      curl -s "$url" --data-binary "DROP DATABASE IF EXISTS spanhouse_reads" >/dev/null
      serve "reads-$backend" --storage clickhouse --clickhouse-url "$url" --clickhouse-database spanhouse_reads
    else
      serve "reads-$backend"
    fi
    # ClickHouse stores slower than it acknowledges: pace the load (READ_RATE requests per
    # second per connection) so that the spool does not fill and every span is stored.
    rate=0
    [ "$backend" = clickhouse ] && rate="${READ_RATE:-0.75}"
    load --connections "$CONNECTIONS" --spans "$QUERY_SPANS" --rate "$rate" \
      --json "$RESULTS/reads-$backend-load.json" >/dev/null
    # Until the spool is delivered (ClickHouse); at once on the embedded store.
    for _ in $(seq 1 3600); do
      left=$(curl -s -H "authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/ingestion" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["buffered"])')
      [ "$left" = 0 ] && break
      sleep 1
    done
    traces=$(curl -s -H "authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/stats?bucket=1d" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["totals"]["traces"])')
    trace=$(curl -s -H "authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/traces?limit=1" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["traces"][0]["trace_id"])')
    month_start=$(date -u -d '30 days ago' +%Y-%m-%dT%H:00:00Z)
    rss_before=$(rss_mib)
    {
      echo "backend: $backend, spans: $QUERY_SPANS, traces in the last 24 h: $traces"
      echo "first page, last 24 h: $(best_ms /api/v1/traces) ms"
      echo "status=error: $(best_ms '/api/v1/traces?status=error') ms"
      echo "user_id=nobody (no match): $(best_ms '/api/v1/traces?user_id=nobody') ms"
      echo "model=no-such-model (no match): $(best_ms '/api/v1/traces?model=no-such-model') ms"
      echo "trace by id: $(best_ms "/api/v1/traces/$trace") ms"
      echo "dashboard, 24 h: $(best_ms /api/v1/stats) ms"
      echo "dashboard, 30 days in days: $(best_ms "/api/v1/stats?start=$month_start&bucket=1d") ms"
      echo "dashboard, 30 days in hours: $(best_ms "/api/v1/stats?start=$month_start&bucket=1h") ms"
      # The filter language (issue 22) over the synthetic segments: 50 tenants (2 % each),
      # 1,000 customers in the trace metadata, root durations 0.8-10.7 s, 500 thumbs-down scores.
      python3 - "http://127.0.0.1:$PORT" "$TOKEN" <<'PY'
import json, sys, urllib.request
base, token = sys.argv[1], sys.argv[2]
def call(path, body=None):
    request = urllib.request.Request(base + path, data=body and json.dumps(body).encode(),
        headers={"authorization": "Bearer " + token, "content-type": "application/json"})
    return json.load(urllib.request.urlopen(request))
traces = call("/api/v1/traces?limit=1000")["traces"]
call("/api/v1/scores", {"scores": [{"trace_id": t["trace_id"], "name": "thumbs", "value": False}
    for t in traces[::2]]})
PY
      f() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$1"; }
      echo "filter, tenant (2 %): $(best_ms "/api/v1/traces?filter=$(f 'span.attributes["tenant"] == "tenant-7"')") ms"
      echo "filter, tenant and slow: $(best_ms "/api/v1/traces?filter=$(f 'span.attributes["tenant"] == "tenant-7" and duration_ms > 5000')") ms"
      echo "filter, tenant (no match): $(best_ms "/api/v1/traces?filter=$(f 'span.attributes["tenant"] == "nobody"')") ms"
      echo "filter, metadata customer (0.1 %): $(best_ms "/api/v1/traces?filter=$(f 'metadata["customer"] == "customer-42"')") ms"
      echo "filter, score thumbs down (500 traces): $(best_ms "/api/v1/traces?filter=$(f 'scores["thumbs"] == false')") ms"
      echo "filter, duration_ms > 10500 (1 %): $(best_ms "/api/v1/traces?filter=$(f 'duration_ms > 10500')") ms"
      echo "filtered dashboard 24 h, tenant (2 %): $(best_ms "/api/v1/stats?filter=$(f 'span.attributes["tenant"] == "tenant-7"')") ms"
      echo "filtered dashboard 24 h, duration_ms > 5000 (~40 %): $(best_ms "/api/v1/stats?filter=$(f 'duration_ms > 5000')") ms"
      echo "spans, LLM calls of a model: $(best_ms "/api/v1/spans?filter=$(f 'llm.model == "gpt-4o-mini-2024-07-18"')") ms"
      echo "spans, tenant (2 %): $(best_ms "/api/v1/spans?filter=$(f 'attributes["tenant"] == "tenant-7"')") ms"
      # Insights (issue 24) scan both periods' traces: every trace of the load is in the window.
      echo "insights, last 24 h against the 24 before: $(once_ms /api/v1/insights) ms"
      echo "insights, last hour against the hour before: $(once_ms "/api/v1/insights?start=$(date -u -d '1 hour ago' +%Y-%m-%dT%H:%M:%SZ)") ms"
      echo "resident memory: $rss_before MiB before the reads, $(rss_mib) MiB after"
      if [ "$backend" = clickhouse ]; then
        bytes=$(curl -s "$url" --data-binary "SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND database = 'spanhouse_reads'")
      else
        bytes=$(du -sb "$WORK/data-reads-$backend" | cut -f1)
      fi
      stored=$(python3 -c "import json; print(json.load(open('$RESULTS/reads-$backend-load.json'))['acknowledged_spans'])")
      echo "spans acknowledged: $stored; bytes on disk per span: $(python3 -c "print(round($bytes / $stored))")"
    } | tee "$RESULTS/reads-$backend.txt"
    stop
  done
fi

if wants lifecycle; then
  step "data lifecycle: export, import, erasure at $LIFECYCLE_SPANS spans (embedded store)"
  serve lifecycle
  load --connections "$CONNECTIONS" --spans "$LIFECYCLE_SPANS" --json "$RESULTS/lifecycle-load.json" >/dev/null
  # SECONDS FORMAT: time and size of a whole export to a file.
  export_timing() {
    local start end
    start=$(date +%s.%N)
    SPANHOUSE_TOKEN=$TOKEN "$SPANHOUSE" export --url "http://127.0.0.1:$PORT" --format "$1" >"$WORK/export.$1"
    end=$(date +%s.%N)
    echo "export $1: $(python3 -c "print(round($end - $start, 1))") s, $(du -m "$WORK/export.$1" | cut -f1) MiB" \
      | tee -a "$RESULTS/lifecycle.txt"
  }
  : >"$RESULTS/lifecycle.txt"
  for format in csv jsonl otlp; do export_timing "$format"; done
  rm -f "$WORK/export.jsonl" "$WORK/export.csv"
  stop
  step "import of the otlp export into a fresh server"
  serve lifecycle-import
  start=$(date +%s.%N)
  SPANHOUSE_TOKEN=$TOKEN "$SPANHOUSE" import --url "http://127.0.0.1:$PORT" "$WORK/export.otlp" 2>"$WORK/import.log"
  end=$(date +%s.%N)
  tail -1 "$WORK/import.log"
  spans=$(grep -o '[0-9]* spans sent' "$WORK/import.log" | tail -1 | cut -d' ' -f1)
  echo "import: $spans spans in $(python3 -c "print(round($end - $start, 1))") s: $(python3 -c "print(round($spans / ($end - $start)))") spans/s; server peak resident memory $(peak_rss_mib) MiB" \
    | tee -a "$RESULTS/lifecycle.txt"
  step "erasure of a tenant (2 % of the traces) and the purge"
  start=$(date +%s.%N)
  deleted=$(curl -s -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -d '{"filter": "span.attributes[\"tenant\"] == \"tenant-7\""}' "http://127.0.0.1:$PORT/api/v1/traces/delete")
  end=$(date +%s.%N)
  echo "erasure: $deleted in $(python3 -c "print(round($end - $start, 2))") s" | tee -a "$RESULTS/lifecycle.txt"
  stop
  rm -f "$WORK/export.otlp"
fi

if wants phoenix; then
  step "Arize Phoenix, same load, ${DURATION}s"
  if [ ! -x .bench/phoenix/bin/phoenix ]; then
    python3 -m venv .bench/phoenix
    .bench/phoenix/bin/pip install --quiet --disable-pip-version-check arize-phoenix
  fi
  export PHOENIX_WORKING_DIR="$WORK/phoenix"
  PHOENIX_PORT=16006 .bench/phoenix/bin/phoenix serve >"$WORK/phoenix.log" 2>&1 &
  PHOENIX=$!
  for _ in $(seq 1 120); do curl -sf http://127.0.0.1:16006/ >/dev/null && break; sleep 0.5; done
  count() { python3 -c "import sqlite3; print(sqlite3.connect('$PHOENIX_WORKING_DIR/phoenix.db').execute('select count(*) from spans').fetchone()[0])" 2>/dev/null || echo 0; }
  start=$(date +%s.%N)
  "$LOADGEN" --url http://127.0.0.1:16006 --connections "$CONNECTIONS" --duration "$DURATION" \
    --json "$RESULTS/phoenix.json"
  end_load=$(date +%s.%N)
  at_end=$(count)
  sleep 30
  after=$(count)
  echo "phoenix stored $at_end spans during the ${DURATION}s load ($(python3 -c "print(round($at_end / ($end_load - $start)))") spans/s), $after 30 s later" \
    | tee "$RESULTS/phoenix-stored.txt"
  kill $PHOENIX
fi

step "done: $RESULTS"
