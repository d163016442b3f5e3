#!/usr/bin/env bash
# The server under load (docs/reliability.md): a release `tuneup serve` on loopback gets 1,000 malformed and
# hostile requests from 8 threads while a well-formed client keeps asking (scripts/load_hostile.py), then 64
# streaming clients for SOAK_SECONDS with its resident memory sampled (scripts/bench_serve.py --duration).
#
#   scripts/reliability.sh [SOAK_SECONDS]    # default 600; results in runs/reliability/*.json
#
# Traffic goes to 127.0.0.1 only and every loop is bounded in count and time.
set -euo pipefail
cd "$(dirname "$0")/.."
soak="${1:-600}"
model="${TUNEUP_MODEL:-smollm2-135m}"
port="${TUNEUP_RELIABILITY_PORT:-18391}"
out="${TUNEUP_RELIABILITY_OUT:-runs/reliability}"
mkdir -p "$out"

cargo build --release --locked -p tuneup
tuneup=target/release/tuneup
"$tuneup" pull "$model" --quiet >/dev/null

venv="${TUNEUP_HOME:-$HOME/.cache/tuneup}/venv-test"
if ! "$venv/bin/python" -c "import openai" >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "openai==3.57.0"
fi

"$tuneup" serve -m "$model" --port "$port" --feedback-db "$out/feedback.sqlite" >"$out/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$out/server.log" >&2; exit 1; }
  sleep 1
done

echo "== hostile: 1000 malformed and hostile requests, 8 threads, one well-formed client alongside"
status=0
python3 scripts/load_hostile.py --base-url "http://127.0.0.1:$port" --model "$model" \
  --requests 1000 --threads 8 --json "$out/hostile.json" >/dev/null || status=1
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print({k: v for k, v in r.items() if k != 'by_kind'})" \
  "$out/hostile.json"

echo "== soak: 64 streaming clients for ${soak} s"
rm -f "$out/soak.json"
"$venv/bin/python" scripts/bench_serve.py --base-url "http://127.0.0.1:$port/v1" --model "$model" \
  --clients 64 --duration "$soak" --max-tokens 64 --server-pid "$server" --label soak --json "$out/soak.json"
python3 - "$out/soak.json" <<'EOF' || status=1
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
if r["errors"]:
    sys.exit(f"soak: {r['errors']} failures other than 429, first: {r['first_error']}")
EOF
kill -0 "$server" 2>/dev/null || { echo "the server died" >&2; status=1; }
exit "$status"
