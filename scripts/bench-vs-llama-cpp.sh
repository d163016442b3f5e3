#!/usr/bin/env bash
# Side-by-side speed of tuneup and llama.cpp on the same GGUF, same machine,
# same thread count, in one run (numbers for docs/performance.md).
#
#   scripts/build-llama-cpp.sh          # once: builds the llama.cpp anchor
#   scripts/bench-vs-llama-cpp.sh [MODEL_ALIAS...]    # default: both default models
#
# Env: THREADS (2), PROMPTS (128,512), GEN (128), REPS (3). Also compares plain
# greedy decoding with prompt-lookup speculative decoding on SQL/code prompts.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS="${THREADS:-2}"; PROMPTS="${PROMPTS:-128,512}"; GEN="${GEN:-128}"; REPS="${REPS:-3}"
TUNEUP_HOME="${TUNEUP_HOME:-$HOME/.cache/tuneup}"
source "$TUNEUP_HOME/llama.cpp/env.sh" || { echo "run scripts/build-llama-cpp.sh first" >&2; exit 1; }
export LD_LIBRARY_PATH="$LLAMA_CPP_LIB_PATH:${LD_LIBRARY_PATH:-}"
if [ -n "${TUNEUP_BIN:-}" ]; then T="$TUNEUP_BIN"; else
  cargo build --release --locked -p tuneup >&2
  T=target/release/tuneup
fi
models=("$@"); [ ${#models[@]} -gt 0 ] || models=(smollm2-135m qwen2.5-coder-0.5b)
echo "cpu: $(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n1), threads $THREADS, $(date -u +%F)"
for m in "${models[@]}"; do
  path="$($T pull "$m" --quiet)"
  echo; echo "## $m"
  echo "### llama.cpp"; "$LLAMA_CPP_BIN/llama-bench" -m "$path" -p "$PROMPTS" -n "$GEN" -r "$REPS" -t "$THREADS" 2>/dev/null
  echo "### tuneup";    "$T" bench -m "$path" -p "$PROMPTS" -n "$GEN" -r "$REPS" -t "$THREADS"
  echo "### speculative decoding (greedy, same output)"
  sys="You write SQLite queries. Schema: CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT, created_at DATE); CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), amount REAL, ordered_at DATE);"
  for q in "List the 10 users with the highest total order amount in the last 30 days, with their email." \
           "Rewrite this query to also return each user's number of orders: SELECT users.name, SUM(orders.amount) FROM users JOIN orders ON orders.user_id = users.id GROUP BY users.id;"; do
    for mode in plain lookup; do
      flag=(); [ "$mode" = lookup ] && flag=(--lookup)
      printf '%-7s ' "$mode"
      "$T" chat -m "$path" -t "$THREADS" --temperature 0 -n 128 --system "$sys" -p "$q" "${flag[@]}" 2>&1 >/dev/null | tail -n1
    done
  done
done
