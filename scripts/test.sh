#!/usr/bin/env bash
# The whole test suite, from a fresh checkout: installs what the end-to-end tests drive (the
# OpenTelemetry Python SDK into .e2e/venv, LLM instrumentation libraries into
# .e2e/instrumentation and pydantic-ai 1.x into .e2e/pydantic-ai-v1, the JS SDK and the Vercel
# AI SDK into tests/e2e/node/node_modules, Debian's chromium and
# playwright-core into tests/ui/node_modules for the web UI's browser tests), starts a throwaway
# ClickHouse (Debian's, installed by apt when missing), checks formatting and lints, then runs
# every Rust test of the workspace (the server and the spanhouse-otel crate: unit, integration,
# end-to-end, the docs' snippets), and the integration suite a second time on the ClickHouse
# backend.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# A venv per requirements file. pip runs every time: with every pin already satisfied it
# returns in seconds without downloading, and a stale or half-made venv (say, one copied from
# elsewhere) is repaired instead of trusted.
venv() {
  local dir=$1 requirements=$2
  if [ ! -x "$dir/bin/python" ]; then
    python3 -m venv "$dir"
  fi
  "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
}

step "OpenTelemetry Python SDK and chdb (.e2e/venv)"
venv .e2e/venv tests/e2e/requirements.txt

step "Instrumentation libraries (.e2e/instrumentation, .e2e/pydantic-ai-v1)"
venv .e2e/instrumentation tests/e2e/instrumentation/requirements.txt
# pydantic-ai 1.x cannot share a venv with the 2.x above.
venv .e2e/pydantic-ai-v1 tests/e2e/instrumentation/requirements-pydantic-ai-v1.txt

step "OpenTelemetry JS SDK (tests/e2e/node)"
(cd tests/e2e/node && npm ci --no-audit --no-fund --loglevel=error)

step "Chromium and playwright-core for the web UI's browser tests (tests/ui)"
if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian's chromium" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q chromium >/dev/null
fi
(cd tests/ui && npm ci --no-audit --no-fund --loglevel=error)

step "ClickHouse for the ClickHouse backend's tests (scripts/clickhouse.sh)"
clickhouse_started=false
if clickhouse_url=$(scripts/clickhouse.sh start); then
  clickhouse_started=true
  export SPANHOUSE_TEST_CLICKHOUSE_URL="$clickhouse_url"
  trap 'scripts/clickhouse.sh stop' EXIT
elif [ -n "${CI:-}" ]; then
  echo "ClickHouse could not be started; in CI its tests must run" >&2
  exit 1
else
  echo "ClickHouse could not be started: its tests will skip" >&2
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cargo test (the workspace: the server on SQLite, what is specific to ClickHouse, spanhouse-otel)"
cargo test --workspace --all-targets "$@"

if [ "$clickhouse_started" = true ]; then
  step "cargo test: the integration suite again, on the ClickHouse backend"
  SPANHOUSE_TEST_STORAGE=clickhouse cargo test \
    --test http_ingest --test query_api --test grpc_ingest --test corpus --test conventions --test semantics \
    --test logs --test metrics_signal --test hostile_clients --test ingestion_control --test stats_api --test tokens_api --test ui_session \
    --test ui_browser --test e2e_sdks --test e2e_instrumentations --test hostile_input --test rollups --test scores_api --test filter_language --test filter_stats \
    --test import --test lifecycle --test export --test redaction --test insights --test alerts "$@"
fi
