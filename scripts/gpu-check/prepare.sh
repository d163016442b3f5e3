#!/usr/bin/env bash
# Prepares the GPU check: what a machine with an NVIDIA GPU (and no Rust, no
# network, a Python with torch, transformers and peft) needs to run
# scripts/gpu-check/run.sh, in one folder small enough to copy (~50 MB):
#   tuneup.gz          the release binary built with --features cuda (scripts/check-cuda-build.sh)
#   smollm2/, qwen05/  the default models' configs and tokenizers (weights are made random there)
#   llama/             llama.cpp's HF → GGUF converter (the Q8_0 GGUF for QLoRA and quantized decoding)
#   train.jsonl, val.jsonl   400 Spider training questions as chat records
#
#   scripts/gpu-check/prepare.sh [OUT]      # OUT defaults to .gpu-check (git-ignored)
#   then, on the GPU machine, from a checkout with OUT beside it: bash scripts/gpu-check/run.sh OUT
#
# Needs: the CUDA build's prerequisites (see check-cuda-build.sh), the llama.cpp
# sources (scripts/build-llama-cpp.sh fetches them), the default models
# (`tuneup pull`), the Spider data ($TUNEUP_DATA, default ../shared/data) and
# a Python ($PYTHON) with transformers and gguf.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${1:-.gpu-check}"
TUNEUP_HOME="${TUNEUP_HOME:-$HOME/.cache/tuneup}"
PYTHON="${PYTHON:-$TUNEUP_HOME/venv-st/bin/python}"
DATA="${TUNEUP_DATA:-../shared/data}"
mkdir -p "$OUT"
MODE=build scripts/check-cuda-build.sh
strip -o "$OUT/tuneup" target/cuda/release/tuneup
gzip -f -1 "$OUT/tuneup"
pull() { cargo run --quiet --release --locked -p tuneup -- pull "$1" --quiet; }
"$PYTHON" scripts/gpu-check/make_inputs.py "$OUT" "$(pull smollm2-135m)" "$(pull qwen2.5-coder-0.5b)" \
  "$DATA/text2sql/spider_train.jsonl"
LLAMA_SRC="$(ls -d "$TUNEUP_HOME"/llama.cpp/llama_cpp_python-*/vendor/llama.cpp | tail -n 1)"
mkdir -p "$OUT/llama"
cp -r "$LLAMA_SRC/convert_hf_to_gguf.py" "$LLAMA_SRC/conversion" "$LLAMA_SRC/gguf-py" "$OUT/llama/"
du -sh "$OUT"
