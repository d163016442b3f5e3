#!/usr/bin/env bash
# Compiles tuneup with `--features cuda` on a machine without a GPU or a
# system CUDA toolkit: NVIDIA's own PyPI wheels supply nvcc, the CUDA headers
# and the runtime library (a virtual environment under $TUNEUP_HOME), candle's
# kernels are compiled for CUDA_COMPUTE_CAP (default 90, H100/H200), and cudarc
# loads libcuda at run time, so nothing here needs a driver.
#
#   scripts/check-cuda-build.sh            # cargo check (type-checks everything, compiles the kernels)
#   MODE=build scripts/check-cuda-build.sh # full release build of the binary, to copy to a GPU machine
#
# The binary links libcuda (the NVIDIA driver), cuBLAS, cuBLASLt, cuRAND and
# NVRTC. Where they are not installed, the link uses stand-ins made from
# cudarc's bindings (same library names and symbols, no code); the binary then
# loads the real libraries on the GPU machine (put their folders on
# LD_LIBRARY_PATH there, e.g. those of PyTorch's nvidia-* wheels).
#
# Where a CUDA toolkit is installed (nvcc on PATH), it is used as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
TUNEUP_HOME="${TUNEUP_HOME:-$HOME/.cache/tuneup}"
MODE="${MODE:-check}"
# The toolkit version the kernels are compiled with (cudarc 0.19 knows CUDA up
# to 13.4). candle embeds PTX, which the driver compiles at start and which a
# driver older than the compiler refuses: 13.0 runs on every CUDA 13 driver
# (580 and later).
CUDA_VERSION="${CUDA_VERSION:-13.0}"
CUDA_WHEELS=("nvidia-cuda-nvcc==$CUDA_VERSION.*" "nvidia-cuda-runtime==$CUDA_VERSION.*"
  "nvidia-cuda-crt==$CUDA_VERSION.*" "nvidia-nvvm==$CUDA_VERSION.*" "nvidia-cuda-cccl==$CUDA_VERSION.*")
if ! command -v nvcc >/dev/null 2>&1; then
  VENV="$TUNEUP_HOME/venv-cuda-$CUDA_VERSION"
  if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
  if ! "$VENV/bin/python" -c "import importlib.metadata as m; assert m.version('nvidia-cuda-nvcc').startswith('$CUDA_VERSION.')" 2>/dev/null; then
    "$VENV/bin/pip" install -q "${CUDA_WHEELS[@]}"
  fi
  CUDA_ROOT="$("$VENV/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')"
  export CUDA_ROOT CUDA_PATH="$CUDA_ROOT" PATH="$CUDA_ROOT/bin:$PATH"
fi
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
nvcc --version | tail -n 2
TARGET_DIR="${CUDA_TARGET_DIR:-target/cuda}"
# Stand-in libraries for the link: every function cudarc declares, under the
# library's versioned name (its SONAME), so the binary asks for the real one.
link_stand_ins() {
  local out="$1" cudarc src lib soname module version
  version="$(grep -A1 '^name = "cudarc"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')"
  cudarc="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"cudarc-$version" | head -n 1)"
  mkdir -p "$out"
  for spec in driver:cuda:libcuda.so.1 nvrtc:nvrtc:libnvrtc.so.13 curand:curand:libcurand.so.10 \
    cublas:cublas:libcublas.so.13 cublaslt:cublasLt:libcublasLt.so.13; do
    IFS=: read -r module lib soname <<<"$spec"
    src="$out/$lib.c"
    grep -ho '^pub unsafe fn [A-Za-z0-9_]*' "$cudarc/src/$module"/sys/*.rs | awk '{print $4}' | sort -u |
      sed 's/.*/void &(void) {}/' >"$src"
    cc -shared -fPIC -o "$out/lib$lib.so" -Wl,-soname,"$soname" "$src"
  done
  # cudart is a real library of the toolkit; the wheels lack its unversioned name.
  local root="${CUDA_ROOT:-$(dirname "$(dirname "$(command -v nvcc)")")}"
  ln -sf "$(ls "$root"/lib*/libcudart.so.1[0-9]* | head -n 1)" "$out/libcudart.so"
}

if [ "$MODE" = build ]; then
  if ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so '; then
    STAND_INS="$(pwd)/$TARGET_DIR/cuda-link-stand-ins"
    link_stand_ins "$STAND_INS"
    # The C compiler that links for rustc searches LIBRARY_PATH (RUSTFLAGS
    # would rebuild every crate).
    export LIBRARY_PATH="$STAND_INS${LIBRARY_PATH:+:$LIBRARY_PATH}"
    echo "no libcuda here: linking against stand-ins in $STAND_INS"
  fi
  cargo build --release --locked -p tuneup --features cuda --target-dir "$TARGET_DIR"
  echo "built $TARGET_DIR/release/tuneup (run with --gpu on a machine with an NVIDIA driver)"
else
  cargo check --locked -p tuneup --features cuda --all-targets --target-dir "$TARGET_DIR"
  echo "tuneup with --features cuda type-checks and its CUDA kernels compile"
fi
