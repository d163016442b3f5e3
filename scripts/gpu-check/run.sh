#!/usr/bin/env bash
# The GPU check, on a machine with an NVIDIA GPU, from the folder that
# scripts/gpu-check/prepare.sh made (default .gpu-check). Run from the checkout:
#
#   bash scripts/gpu-check/run.sh [IN] [LOG_DIR]
#
# 1. random-weight models with the real SmolLM2-135M and Qwen2.5-Coder-0.5B
#    configs (transformers), and their Q8_0 GGUFs (llama.cpp's converter);
# 2. greedy generation: tuneup on the CPU, tuneup --gpu (dense and Q8_0), and
#    transformers on the GPU;
# 3. LoRA and QLoRA training, CPU against GPU with the same seed (same
#    dropout masks): the losses must agree to float rounding;
# 4. `tuneup bench train --gpu` against HF PEFT on the same GPU, and
#    `tuneup bench --gpu`.
# The CUDA libraries are taken from PyTorch's nvidia-* wheels and the driver.
set -u
IN="${1:-.gpu-check}"
LOGS="${2:-${OUT:-$IN/logs}}"
mkdir -p "$LOGS"
exec > >(tee "$LOGS/gpu-check.log") 2>&1
HERE="$(dirname "$0")"
M=/tmp/tuneup-gpu-check
mkdir -p "$M"
T="$M/tuneup"
gunzip -c "$IN/tuneup.gz" >"$T" && chmod +x "$T"
step() { echo; echo "=== $(date +%T) $*"; }
LIBDIRS=$(find /usr /opt -xdev \( -name 'libcublas.so.13' -o -name 'libcurand.so.10' -o -name 'libnvrtc.so.13' \
  -o -name 'libcuda.so.1' -o -name 'libcudart.so.13' \) 2>/dev/null | xargs -n1 dirname | sort -u | tr '\n' ':')
export LD_LIBRARY_PATH="${LIBDIRS}${LD_LIBRARY_PATH:-}"
export PYTHONPATH="$PWD/$IN/llama/gguf-py${PYTHONPATH:+:$PYTHONPATH}"
step gpu
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
ldd "$T" | grep -E "not found|libcu|nvrtc"

step "random models"
for m in smollm2 qwen05; do
  python3 "$HERE/make_random_model.py" "$IN/$m" "$M/$m" 2>&1 | tail -n 1
  timeout 120 python3 "$IN/llama/convert_hf_to_gguf.py" "$M/$m" --outtype q8_0 --outfile "$M/$m-q8_0.gguf" 2>&1 | tail -n 1
done

P="def fibonacci(n):"
GEN=(--no-bos --temperature 0 -n 32 -p "$P")
step "greedy 32 tokens of the random SmolLM2: tuneup CPU, tuneup GPU, transformers GPU (f32)"
echo "[tuneup cpu] $(timeout 120 "$T" generate -m "$M/smollm2" "${GEN[@]}")"
echo "[tuneup gpu] $(timeout 120 "$T" generate -m "$M/smollm2" "${GEN[@]}" --gpu)"
echo "[hf     gpu] $(timeout 120 python3 "$HERE/hf_generate.py" "$M/smollm2" "$P" 32 2>/dev/null)"
step "the same from the Q8_0 GGUF: CPU kernels, candle's CUDA QMatMul"
echo "[tuneup cpu] $(timeout 120 "$T" generate -m "$M/smollm2-q8_0.gguf" "${GEN[@]}")"
echo "[tuneup gpu] $(timeout 120 "$T" generate -m "$M/smollm2-q8_0.gguf" "${GEN[@]}" --gpu)"

TR=(--train "$IN/train.jsonl" --validation "$IN/val.jsonl" --max-steps 4 --batch-size 4 --max-seq-len 256
  --eval-every 2 --lr 1e-3 --seed 1 --precision f32)
for method in lora qlora; do
  model="$M/smollm2"
  [ "$method" = qlora ] && model="$M/smollm2-q8_0.gguf"
  step "train $method (dropout 0.05): CPU against GPU, same seed"
  timeout 180 "$T" train -m "$model" "${TR[@]}" --method "$method" -o "$M/train-$method-cpu" 2>&1 | tail -n 1
  timeout 180 "$T" train -m "$model" "${TR[@]}" --method "$method" -o "$M/train-$method-gpu" --gpu 2>&1 | tail -n 1
  python3 "$HERE/compare_losses.py" "$M/train-$method-cpu" "$M/train-$method-gpu"
done
step "the GPU-trained adapter, applied on the GPU and on the CPU"
timeout 60 "$T" generate -m "$M/smollm2" --adapter "$M/train-lora-gpu/adapter" --no-bos --temperature 0 -n 12 -p "$P" --gpu; echo
timeout 60 "$T" generate -m "$M/smollm2" --adapter "$M/train-lora-gpu/adapter" --no-bos --temperature 0 -n 12 -p "$P"; echo

# Peak memory of the whole card while one command runs (sampled every 100 ms).
gpumem() {
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$M/mem.txt" &
  local sampler=$!
  "$@"
  kill "$sampler"
  echo "peak GPU memory used: $(sort -n "$M/mem.txt" | tail -n 1) MiB"
}
B=(--gpu --steps 5 --json)
step "bench train --gpu, HF PEFT on the same GPU"
timeout 150 "$T" bench train -m "$M/smollm2" --method lora --batch 4 --seq 256 "${B[@]}" --anchor-python python3
timeout 150 "$T" bench train -m "$M/smollm2" --method lora --batch 16 --seq 512 "${B[@]}" --anchor-python python3
gpumem timeout 150 "$T" bench train -m "$M/smollm2" --method lora --batch 16 --seq 512 "${B[@]}"
gpumem timeout 150 "$T" bench train -m "$M/smollm2" --method lora --batch 16 --seq 512 "${B[@]}" --no-gradient-checkpointing
timeout 150 "$T" bench train -m "$M/qwen05" --method lora --batch 8 --seq 512 "${B[@]}" --anchor-python python3
gpumem timeout 150 "$T" bench train -m "$M/qwen05-q8_0.gguf" --method qlora --batch 8 --seq 512 "${B[@]}"
step "bench --gpu (inference)"
for m in smollm2-q8_0.gguf qwen05-q8_0.gguf qwen05; do timeout 120 "$T" bench -m "$M/$m" --gpu -p 512 -n 128 -r 2; done
echo "[hf] $(timeout 120 python3 "$HERE/hf_generate.py" "$M/qwen05" "$P" 128 2>&1 >/dev/null | tail -n 1)"
step done
