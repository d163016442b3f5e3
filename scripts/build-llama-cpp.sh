#!/usr/bin/env bash
# Build llama.cpp (as vendored by the llama-cpp-python sdist) as the numeric
# reference for tuneup's fixtures and benchmarks.
#
# Idempotent: re-running reuses the downloaded sdist, the extracted tree and the
# cmake build directory (cmake/ninja-style incremental rebuild).
#
# Layout (TUNEUP_HOME defaults to ~/.cache/tuneup):
#   $TUNEUP_HOME/llama.cpp/llama_cpp_python-<ver>.tar.gz      the sdist
#   $TUNEUP_HOME/llama.cpp/llama_cpp_python-<ver>/             extracted sdist
#       llama_cpp/                                             python bindings (same version)
#       vendor/llama.cpp/                                      llama.cpp sources
#   $TUNEUP_HOME/llama.cpp/build-<ver>/bin/                    llama-bench, llama-tokenize, ...
#   $TUNEUP_HOME/llama.cpp/build-<ver>/bin/libllama.so         + libggml*.so
#   $TUNEUP_HOME/llama.cpp/env.sh                              exports LLAMA_CPP_* paths
#
# Environment knobs:
#   LLAMA_CPP_PYTHON_VERSION   sdist version to use (default: pinned below)
#   JOBS                       parallel build jobs (default: nproc)
#   LLAMA_CPP_TARGETS          which tools to build (default: all six)
#   TUNEUP_HOME                cache root
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
TUNEUP_HOME="${TUNEUP_HOME:-$HOME/.cache/tuneup}"
ROOT="$TUNEUP_HOME/llama.cpp"
SDIST="$ROOT/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz"
SRC="$ROOT/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION"
LLAMA_SRC="$SRC/vendor/llama.cpp"
BUILD="$ROOT/build-$LLAMA_CPP_PYTHON_VERSION"
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 2)}"
# LLAMA_CPP_TARGETS: space-separated subset to build (default: all the tools below;
# `llama-bench llama-cli` is enough for scripts/bench-vs-llama-cpp.sh).
read -r -a TARGETS <<<"${LLAMA_CPP_TARGETS:-llama llama-bench llama-tokenize llama-cli llama-simple llama-server}"

log() { printf '[build-llama-cpp] %s\n' "$*" >&2; }

mkdir -p "$ROOT"

# 1. sdist ---------------------------------------------------------------------
if [[ ! -f "$SDIST" ]]; then
  log "downloading llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION sdist into $ROOT"
  # `--no-binary llama-cpp-python` (not `:all:`) so pip may use wheels for the
  # build backend (scikit-build-core, cmake) while preparing metadata; with
  # `:all:` pip tries to compile cmake itself from source, which takes ages.
  python3 -m pip download --no-deps --no-binary llama-cpp-python \
    "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -d "$ROOT"
fi
[[ -f "$SDIST" ]] || { log "sdist $SDIST missing after download"; exit 1; }

# 2. extract -------------------------------------------------------------------
if [[ ! -f "$LLAMA_SRC/CMakeLists.txt" ]]; then
  log "extracting $SDIST"
  tar -xzf "$SDIST" -C "$ROOT"
fi

LLAMA_COMMIT="$(sed -n 's/.*update llama.cpp to ggml-org\/llama.cpp@\([0-9a-f]*\).*/\1/p' "$SRC/CHANGELOG.md" | head -n1)"
LLAMA_COMMIT="${LLAMA_COMMIT:-unknown}"
# The sdist also ships vendor/llama.cpp/.git (a depth-1 clone), which gives the
# full hash and date; its commit count is 1, so llama.cpp reports "build 1".
LLAMA_COMMIT_FULL="$(git -C "$LLAMA_SRC" log -1 --format=%H 2>/dev/null || true)"
LLAMA_COMMIT_DATE="$(git -C "$LLAMA_SRC" log -1 --format=%cI 2>/dev/null || true)"
log "llama-cpp-python $LLAMA_CPP_PYTHON_VERSION vendors llama.cpp @ $LLAMA_COMMIT"

# 3. toolchain -----------------------------------------------------------------
if ! command -v cmake >/dev/null 2>&1; then
  log "cmake not found; installing with apt-get"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get install -y cmake || { $SUDO apt-get update && $SUDO apt-get install -y cmake; }
fi
command -v c++ >/dev/null 2>&1 || { log "no C++ compiler (install build-essential)"; exit 1; }

# 4. CPU features ----------------------------------------------------------------
# A -DGGML_NATIVE=ON build dies with SIGILL on some VMs (the hypervisor reports
# features it does not deliver), so we enable x86 SIMD levels explicitly and
# switch off any AVX-512 subset /proc/cpuinfo does not list.
has_flag() { grep -qw "$1" /proc/cpuinfo 2>/dev/null; }
onoff() { if has_flag "$1"; then echo ON; else echo OFF; fi; }

ARCH="$(uname -m)"
CPU_FLAGS=()
if [[ "$ARCH" == "x86_64" ]]; then
  CPU_FLAGS+=(
    -DGGML_AVX="$(onoff avx)"
    -DGGML_AVX2="$(onoff avx2)"
    -DGGML_FMA="$(onoff fma)"
    -DGGML_F16C="$(onoff f16c)"
    -DGGML_BMI2="$(onoff bmi2)"
    -DGGML_AVX512="$(onoff avx512f)"
    -DGGML_AVX512_VBMI="$(onoff avx512vbmi)"
    -DGGML_AVX512_VNNI="$(onoff avx512_vnni)"
    -DGGML_AVX512_BF16="$(onoff avx512_bf16)"
    -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
  )
  log "AVX-512 subsets on this CPU: $(grep -o 'avx512[a-z_0-9]*' /proc/cpuinfo | sort -u | tr '\n' ' ' || true)"
fi

CMAKE_ARGS=(
  -DGGML_NATIVE=OFF
  "${CPU_FLAGS[@]}"
  -DBUILD_SHARED_LIBS=ON
  -DLLAMA_CURL=OFF
  -DLLAMA_OPENSSL=OFF
  -DLLAMA_BUILD_TESTS=OFF
  -DLLAMA_USE_PREBUILT_UI=OFF   # no web UI download for llama-server (offline builds)
  -DLLAMA_BUILD_COMMIT="$LLAMA_COMMIT"
  -DCMAKE_BUILD_TYPE=Release
)

# 5. configure + build ---------------------------------------------------------
log "cmake ${CMAKE_ARGS[*]}"
cmake -S "$LLAMA_SRC" -B "$BUILD" "${CMAKE_ARGS[@]}" >"$ROOT/cmake-configure.log" 2>&1 \
  || { cat "$ROOT/cmake-configure.log"; exit 1; }
grep -E 'Adding CPU backend variant|x86 detected|Including CPU backend' "$ROOT/cmake-configure.log" >&2 || true

log "building ${TARGETS[*]} with -j$JOBS (slow on few cores)"
cmake --build "$BUILD" --config Release -j"$JOBS" --target "${TARGETS[@]}"

BIN="$BUILD/bin"
LIB="$(dirname "$(find "$BUILD" -name 'libllama.so' -print -quit)")"

cat >"$ROOT/env.sh" <<EOF
# generated by scripts/build-llama-cpp.sh
export LLAMA_CPP_PYTHON_VERSION="$LLAMA_CPP_PYTHON_VERSION"
export LLAMA_CPP_COMMIT="$LLAMA_COMMIT"
export LLAMA_CPP_COMMIT_FULL="$LLAMA_COMMIT_FULL"
export LLAMA_CPP_COMMIT_DATE="$LLAMA_COMMIT_DATE"
export LLAMA_CPP_SRC="$LLAMA_SRC"
export LLAMA_CPP_BIN="$BIN"
export LLAMA_CPP_LIB_PATH="$LIB"
export LLAMA_CPP_PYTHON_SRC="$SRC"
EOF

# sanity check: the binary runs (no SIGILL) and reports the version
"$BIN/llama-cli" --version >&2 || { log "llama-cli --version failed"; exit 1; }

echo "llama-cpp-python : $LLAMA_CPP_PYTHON_VERSION"
echo "llama.cpp commit : $LLAMA_COMMIT ${LLAMA_COMMIT_FULL:+($LLAMA_COMMIT_FULL, $LLAMA_COMMIT_DATE)}"
echo "binaries         : $BIN"
ls -1 "$BIN" | sed 's/^/                   /'
echo "libllama.so      : $LIB/libllama.so"
echo "python bindings  : $SRC/llama_cpp  (use PYTHONPATH=$SRC LLAMA_CPP_LIB_PATH=$LIB)"
echo "env file         : $ROOT/env.sh   (source it)"
