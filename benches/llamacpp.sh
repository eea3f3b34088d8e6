#!/usr/bin/env bash
# Peer benchmark: llama.cpp's llama-bench, built from the llama.cpp source vendored in the
# llama-cpp-python 0.3.36 sdist that scripts/fetch-assets.sh downloads (pinned, sha256-checked).
# Everything lands in "$ANLLM_HOME/peers" (default ~/.cache/anllm/peers), outside the repository.
#
#   benches/llamacpp.sh build               # unpack + configure + build (idempotent, output on stderr)
#   benches/llamacpp.sh bench [ARGS...]     # llama-bench -m $MODEL -t $THREADS -o json ARGS (JSON on stdout)
#   benches/llamacpp.sh path                # print the llama-bench binary path
#   benches/llamacpp.sh build-server        # also build llama-server in the same build folder
#   benches/llamacpp.sh serve-path          # print the llama-server binary path
#
# Examples:
#   benches/llamacpp.sh bench -p 512 -n 0 -r 2                    # prompt processing (pp512)
#   benches/llamacpp.sh bench -p 0 -n 128 -d 0,1024,4096 -fa 0,1  # generation (tg128) at depths
# Note: llama-bench runs its default tests (-p 512, -n 128) for any of -p/-n not given, so pass
# -n 0 or -p 0 to skip one. -m and -t append in llama-bench, so ours are added only when absent.
#
# Environment: ANLLM_HOME, MODEL (gguf path), THREADS (default 2), JOBS (build jobs, default 2),
# MIN_IDLE (warn when the CPU is less idle than this percent before a run, default 90),
# LCPP_ISA (auto|avx2|avx512; default auto = avx512 when the CPU has AVX512F/CD/VL/DQ/BW).
set -euo pipefail

ANLLM_HOME="${ANLLM_HOME:-$HOME/.cache/anllm}"
VER=0.3.36
SDIST="$ANLLM_HOME/downloads/llama_cpp_python-$VER.tar.gz"
SDIST_SHA=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
PEERS="$ANLLM_HOME/peers"
SRC="$PEERS/llama.cpp-$VER"     # the llama.cpp tree; build folders go inside it
CMAKE_PIN=3.31.10               # from PyPI into $PEERS/venv, only when no cmake is on PATH
MODEL="${MODEL:-$ANLLM_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf}"

log() { printf 'llamacpp: %s\n' "$*" >&2; }
die() { printf 'llamacpp: error: %s\n' "$*" >&2; exit 1; }

CPU_FLAGS=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2 || true) "
has() { [[ "$CPU_FLAGS" == *" $1 "* ]]; }
onoff() { if has "$1"; then echo ON; else echo OFF; fi; }

# Instruction sets. Never -march=native (GGML_NATIVE): it would switch on AMX, whose
# instructions fault on these machines even where the CPU reports them; AMX is forced OFF.
# The AVX2 baseline (AVX, AVX2, FMA, F16C, BMI2) is always on; AVX512 (+VBMI/VNNI/BF16 when
# reported) is added by default where the CPU has it, which llama.cpp uses for faster kernels.
ISA="${LCPP_ISA:-auto}"
if [ "$ISA" = auto ]; then
  ISA=avx2
  if has avx512f && has avx512cd && has avx512vl && has avx512dq && has avx512bw; then ISA=avx512; fi
fi
case "$ISA" in avx2|avx512) ;; *) die "LCPP_ISA must be auto, avx2 or avx512 (got '$ISA')" ;; esac
BUILD="$SRC/build-$ISA"
BIN="$BUILD/bin/llama-bench"

# cmake: the one on PATH, else a pinned one from PyPI in a venv of ours.
find_cmake() {
  if command -v cmake >/dev/null; then command -v cmake; return; fi
  if [ ! -x "$PEERS/venv/bin/cmake" ]; then
    log "no cmake on PATH: installing cmake==$CMAKE_PIN into $PEERS/venv"
    python3 -m venv "$PEERS/venv" >&2
    "$PEERS/venv/bin/python" -m pip install --quiet "cmake==$CMAKE_PIN" >&2 || die "pip install cmake failed"
  fi
  echo "$PEERS/venv/bin/cmake"
}

SERVER_BIN="$BUILD/bin/llama-server"

# Builds in $BUILD take turns (build and build-server share it): an exclusive lock on fd 9.
lock_build() {
  mkdir -p "$PEERS"; exec 9>"$PEERS/build-$ISA.lock"
  flock -n 9 || { log "waiting for another build in $BUILD"; flock 9; }
}

# build_target BIN WHAT SERVER TARGET...: configures (server ON|OFF) and builds TARGETs until
# BIN exists; a no-op when it already does.
build_target() {
  local bin=$1 what=$2 server=$3; shift 3
  if [ -x "$bin" ]; then log "already built: $bin"; return; fi
  lock_build
  if [ -x "$bin" ]; then log "already built: $bin"; return; fi
  configure "$server"
  log "building $what with ${JOBS:-2} jobs"
  "$cmake" --build "$BUILD" --target "$@" -j "${JOBS:-2}" >&2
  [ -x "$bin" ] || die "build finished but $bin is missing"
  log "built $bin"
}

build() {
  build_target "$BIN" "llama-bench, llama-simple (about 8-9 min on 2 free cores)" OFF \
    llama-bench llama-simple
}

# llama-server (the HTTP peer of `anllm serve`), in the same build folder so the ggml/llama
# objects are shared with llama-bench. No network: no OpenSSL, no Web UI (neither the npm
# build nor the prebuilt-asset download; the server then runs without its UI page).
build_server() {
  build_target "$SERVER_BIN" "llama-server (longer than llama-bench: server, mtmd, httplib)" ON \
    llama-server
}

# configure ON|OFF: unpacks the source when needed and configures $BUILD, with the server
# (LLAMA_BUILD_SERVER) on or off. Sets the global `cmake`.
configure() {
  local server="$1"
  [ -f "$SDIST" ] || die "missing $SDIST: run scripts/fetch-assets.sh first"
  if [ ! -f "$SRC/CMakeLists.txt" ]; then
    [ "$(sha256sum "$SDIST" | cut -d' ' -f1)" = "$SDIST_SHA" ] \
      || die "checksum mismatch for $SDIST: delete it and run scripts/fetch-assets.sh"
    log "unpacking llama.cpp into $SRC"
    rm -rf "$SRC.part" && mkdir -p "$SRC.part"
    tar -xzf "$SDIST" -C "$SRC.part" --strip-components=3 "llama_cpp_python-$VER/vendor/llama.cpp"
    rm -f "$SRC.part/.git"  # a dangling submodule gitfile: git lookups would only warn
    rm -rf "$SRC" && mv "$SRC.part" "$SRC"
  fi
  local a512=OFF vbmi=OFF vnni=OFF bf16=OFF; cmake=$(find_cmake)
  if [ "$ISA" = avx512 ]; then
    a512=ON; vbmi=$(onoff avx512vbmi); vnni=$(onoff avx512_vnni); bf16=$(onoff avx512_bf16)
  fi
  log "configuring $BUILD (ISA=$ISA, server=$server)"
  # CPU only, static, Release, OpenMP threads; no OpenSSL/download support, no tests; the server
  # only for build-server, without its Web UI and without fetching anything.
  "$cmake" -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
    -DGGML_AVX512="$a512" -DGGML_AVX512_VBMI="$vbmi" -DGGML_AVX512_VNNI="$vnni" -DGGML_AVX512_BF16="$bf16" \
    -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
    -DGGML_OPENMP=ON -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER="$server" \
    -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_EXAMPLES=ON \
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_BORINGSSL=OFF -DLLAMA_BUILD_LIBRESSL=OFF >&2
}

# shellcheck source=peer_env.sh
. "$(dirname "${BASH_SOURCE[0]}")/peer_env.sh"

bench() {
  [ -x "$BIN" ] || build
  warn_if_busy
  [ -f "$MODEL" ] || die "missing model $MODEL: run scripts/fetch-assets.sh first (or set MODEL)"
  local a defaults=(-o json) has_m=0 has_t=0
  for a in "$@"; do
    case "$a" in -m|--model) has_m=1 ;; -t|--threads) has_t=1 ;; esac
  done
  [ "$has_m" = 1 ] || defaults+=(-m "$MODEL")
  [ "$has_t" = 1 ] || defaults+=(-t "${THREADS:-2}")
  exec "$BIN" "${defaults[@]}" "$@"   # a later -o in "$@" overrides ours
}

case "${1:-}" in
  build) build ;;
  bench) shift; bench "$@" ;;
  path) echo "$BIN" ;;
  build-server) build_server ;;
  serve-path) echo "$SERVER_BIN" ;;
  *) die "usage: $0 build | bench [llama-bench args...] | path | build-server | serve-path" ;;
esac
