#!/usr/bin/env bash
# Compiles tuneup with `--features cuda` on a machine without a GPU or a
# system CUDA toolkit: NVIDIA's own PyPI wheels supply nvcc, the CUDA headers
# and the runtime library (a virtual environment under $TUNEUP_HOME), candle's
# kernels are compiled for CUDA_COMPUTE_CAP (default 90, H100/H200), and cudarc
# loads libcuda at run time, so nothing here needs a driver.
#
#   scripts/check-cuda-build.sh            # cargo check (type-checks everything, compiles the kernels)
#   MODE=build scripts/check-cuda-build.sh # full release build of the binary: every crate compiles to
#                                          # machine code; the final link needs libcuda (the NVIDIA
#                                          # driver), cuBLAS, cuRAND and NVRTC, i.e. a machine with CUDA
#
# Where a CUDA toolkit is installed (nvcc on PATH), it is used as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
TUNEUP_HOME="${TUNEUP_HOME:-$HOME/.cache/tuneup}"
MODE="${MODE:-check}"
# cudarc 0.19 knows CUDA up to 13.4: pin the toolkit wheels to it.
CUDA_WHEELS=("nvidia-cuda-nvcc==13.4.*" "nvidia-cuda-runtime==13.4.*" "nvidia-cuda-crt==13.4.*"
  "nvidia-nvvm==13.4.*" "nvidia-cuda-cccl")
if ! command -v nvcc >/dev/null 2>&1; then
  VENV="$TUNEUP_HOME/venv-cuda"
  if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
  if ! "$VENV/bin/python" -c "import importlib.metadata as m; assert m.version('nvidia-cuda-nvcc').startswith('13.4')" 2>/dev/null; then
    "$VENV/bin/pip" install -q "${CUDA_WHEELS[@]}"
  fi
  CUDA_ROOT="$("$VENV/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')"
  export CUDA_ROOT CUDA_PATH="$CUDA_ROOT" PATH="$CUDA_ROOT/bin:$PATH"
fi
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
nvcc --version | tail -n 2
TARGET_DIR="${CUDA_TARGET_DIR:-target/cuda}"
if [ "$MODE" = build ]; then
  cargo build --release --locked -p tuneup --features cuda --target-dir "$TARGET_DIR"
  echo "built $TARGET_DIR/release/tuneup (run with --gpu on a machine with an NVIDIA driver)"
else
  cargo check --locked -p tuneup --features cuda --all-targets --target-dir "$TARGET_DIR"
  echo "tuneup with --features cuda type-checks and its CUDA kernels compile"
fi
