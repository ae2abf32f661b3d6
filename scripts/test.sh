#!/usr/bin/env bash
# The whole test suite, from a fresh checkout: installs what the end-to-end tests drive (the
# OpenTelemetry Python SDK into .e2e/venv, five LLM instrumentation libraries into
# .e2e/instrumentation, the JS SDK into tests/e2e/node/node_modules), checks
# formatting and lints, then runs every Rust test (unit, integration, end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "OpenTelemetry Python SDK (.e2e/venv)"
requirements=tests/e2e/requirements.txt
stamp=.e2e/venv/.requirements
if [ ! -x .e2e/venv/bin/python ] || ! cmp -s "$requirements" "$stamp"; then
  python3 -m venv .e2e/venv
  .e2e/venv/bin/pip install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$stamp"
fi

step "Instrumentation libraries (.e2e/instrumentation)"
requirements=tests/e2e/instrumentation/requirements.txt
stamp=.e2e/instrumentation/.requirements
if [ ! -x .e2e/instrumentation/bin/python ] || ! cmp -s "$requirements" "$stamp"; then
  python3 -m venv .e2e/instrumentation
  .e2e/instrumentation/bin/pip install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$stamp"
fi

step "OpenTelemetry JS SDK (tests/e2e/node)"
(cd tests/e2e/node && npm ci --no-audit --no-fund --loglevel=error)

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings

step "cargo test"
cargo test --all-targets "$@"
