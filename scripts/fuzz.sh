#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 20): the short run CI does. The long run is the same
# command with 3600 (docs/fuzzing.md). Uses nightly with the address sanitizer where it is installed, else stable
# without a sanitizer; installs cargo-fuzz into ~/.cargo when it is missing (skips with a message when it cannot).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Seeds are read from fuzz/seeds/TARGET (kept in the repo); the growing corpus and any crash go under
# $TUNEUP_FUZZ_DIR (default ~/.cache/tuneup/fuzz), outside the clone. A crash fails the script and names the
# input file (TUNEUP_FUZZ_SEED=N fixes libFuzzer's seed, as CI does; 0 = random); reproduce it with
# `cargo +nightly fuzz run TARGET FILE` in fuzz/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${1:-20}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(gguf_header safetensors_header tokenizer_json chat_template tool_calls dataset_readers sql_guard)
fi

# Nightly gives the address sanitizer; without it, stable builds the targets with `--sanitizer none` (panics,
# aborts, timeouts and memory blow-ups are still found; out-of-bounds reads in unsafe code need the sanitizer).
toolchain=(+nightly)
sanitizer=(--sanitizer address)
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly' &&
  ! timeout 300 rustup toolchain install nightly --profile minimal >/dev/null 2>&1; then
  echo "fuzz: no nightly toolchain: stable, without the address sanitizer" >&2
  toolchain=()
  sanitizer=(--sanitizer none)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz into ~/.cargo" >&2
  if ! cargo install --locked cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz: skipped: cargo-fuzz is not installed and could not be installed" >&2
    exit 0
  fi
fi

work="${TUNEUP_FUZZ_DIR:-${TUNEUP_HOME:-$HOME/.cache/tuneup}/fuzz}"
export CARGO_TARGET_DIR="${TUNEUP_FUZZ_TARGET_DIR:-$work/target}"
mkdir -p "$work"

echo "== fuzz: building the targets (${toolchain[*]:-stable} ${sanitizer[*]}; the first build takes a while)"
if ! cargo "${toolchain[@]}" fuzz build "${sanitizer[@]}" >"$work/build.log" 2>&1; then
  tail -n 40 "$work/build.log" >&2
  echo "fuzz: the targets did not build (log: $work/build.log)" >&2
  exit 1
fi

failed=()
for t in "${targets[@]}"; do
  corpus="$work/corpus/$t"
  artifacts="$work/artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  echo "== fuzz: $t for ${seconds}s"
  # -rss_limit_mb: an input that makes a parser allocate more than this is a finding too.
  seeds=()
  [ -d "seeds/$t" ] && seeds=("seeds/$t")
  if ! cargo "${toolchain[@]}" fuzz run "${sanitizer[@]}" "$t" "$corpus" "${seeds[@]}" -- \
      -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=30 -seed="${TUNEUP_FUZZ_SEED:-0}" \
      -artifact_prefix="$artifacts/" -print_final_stats=1 >"$work/$t.log" 2>&1; then
    echo "fuzz: $t FAILED; the crashing input is in $artifacts (log: $work/$t.log)" >&2
    tail -n 30 "$work/$t.log" >&2
    failed+=("$t")
  else
    grep -aE '^stat::number_of_executed_units|^#[0-9]+ *DONE' "$work/$t.log" | tail -n 2 || true
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashes in: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, no crashes"
