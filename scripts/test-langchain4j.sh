#!/usr/bin/env bash
# The Kotlin / Spring Boot + LangChain4j example (examples/spring-langchain4j) against a real
# `tuneup serve -m qwen2.5-coder-0.5b`: starts the server on a free loopback port, runs the example's
# JUnit tests with `mvn test` (TUNEUP_BASE_URL pointing at it), then stops the server.
#
# Needs Java 17+ and Maven: when missing they are installed with apt-get (as root), and when that is not
# possible the test is skipped with a message — unless CI=true or TUNEUP_REQUIRE_LANGCHAIN4J=1, where a
# missing tool is a failure. Maven keeps its downloads in ~/.m2 (outside the clone).
#
# Environment: TUNEUP_BIN (the tuneup binary; default: built with cargo), TUNEUP_QWEN_GGUF (the model file;
# default: `tuneup pull qwen2.5-coder-0.5b`, cached in ${TUNEUP_HOME:-~/.cache/tuneup}).
set -euo pipefail
cd "$(dirname "$0")/.."
EXAMPLE=examples/spring-langchain4j
MODEL_ID=qwen2.5-coder-0.5b

log() { echo "test-langchain4j: $*" >&2; }
need() { command -v "$1" >/dev/null 2>&1; }
required() { [ "${CI:-}" = true ] || [ "${TUNEUP_REQUIRE_LANGCHAIN4J:-}" = 1 ]; }
java_major() { java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1; }
java_ok() { need java && need mvn && [ "$(java_major)" -ge 17 ] 2>/dev/null; }

if ! java_ok && need apt-get && [ "$(id -u)" = 0 ]; then
  log "installing OpenJDK 17 and Maven with apt-get"
  { apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless maven >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless maven >/dev/null 2>&1; }; } ||
    log "apt-get could not install openjdk-17-jdk-headless and maven"
fi
if ! java_ok; then
  msg="Java 17+ and Maven (java, mvn) are needed for the LangChain4j example test"
  if required; then
    log "$msg"
    exit 1
  fi
  log "skipped: $msg"
  exit 0
fi

if [ -z "${TUNEUP_BIN:-}" ]; then
  cargo build --locked -q -p tuneup
  TUNEUP_BIN="${CARGO_TARGET_DIR:-target}/debug/tuneup"
fi
MODEL="${TUNEUP_QWEN_GGUF:-$("$TUNEUP_BIN" pull "$MODEL_ID" --quiet)}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tuneup-langchain4j.XXXXXX")"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

"$TUNEUP_BIN" serve -m "$MODEL" --model-id "$MODEL_ID" --port 0 \
  --feedback-db "$WORK/feedback.sqlite" >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
BASE_URL=""
for _ in $(seq 1 240); do
  BASE_URL="$(grep -o 'http://[^ ]*/v1' "$WORK/serve.log" | head -n1 || true)"
  [ -n "$BASE_URL" ] && break
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    log "tuneup serve exited before it was ready:"
    cat "$WORK/serve.log" >&2
    exit 1
  fi
  sleep 0.5
done
if [ -z "$BASE_URL" ]; then
  log "tuneup serve was not ready after 120 s:"
  cat "$WORK/serve.log" >&2
  exit 1
fi
log "tuneup serve ($MODEL_ID) at $BASE_URL; running mvn test in $EXAMPLE"

status=0
(cd "$EXAMPLE" && TUNEUP_BASE_URL="$BASE_URL" TUNEUP_MODEL="$MODEL_ID" mvn -B -ntp test) || status=$?
if [ "$status" -ne 0 ]; then
  log "mvn test failed (exit $status); the server's log:"
  tail -n 50 "$WORK/serve.log" >&2
fi
exit "$status"
