#!/usr/bin/env bash
# Decode with an f16 against an f32 KV cache, beside llama.cpp, in one run (issue 16):
#   1. `anllm bench` with the default f16 cache, llama.cpp (FA off/on) and the read bandwidth;
#   2. the same with --kv-dtype f32;
#   3. anchored (--anchors ep) at depth 4096 on real text with the default prefill chunk (512).
#   4. peak RSS (/usr/bin/time) of decoding 64 tokens at depth 4096: anllm f16, anllm f32 and
#      llama-bench (its default f16 cache, flash attention on), each alone.
# Writes OUT/*.md (tables, JSON last line), OUT/*.err and OUT/*.rss (KiB).
#
#   benches/kv_dtype.sh [OUT]      (default /tmp/kv-dtype; ANLLM=binary, THREADS=2)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-/tmp/kv-dtype}"
mkdir -p "$OUT"
H="${ANLLM_HOME:-$HOME/.cache/anllm}"
THREADS="${THREADS:-2}"
if [[ -z "${ANLLM:-}" ]]; then
  cargo build --profile ci -p anllm-cli >&2
  ANLLM=target/ci/anllm
fi
run() { # name args...
  local name="$1"; shift
  "$ANLLM" bench --threads "$THREADS" --json "$@" > "$OUT/$name.md" 2> "$OUT/$name.err"
  echo "kv_dtype: $name done" >&2
}
rss() { # name command...
  local name="$1"; shift
  /usr/bin/time -f "%M" -o "$OUT/$name.rss" "$@" > /dev/null 2>&1
  echo "kv_dtype: $name peak RSS $(cat "$OUT/$name.rss") KiB" >&2
}
COMMON=(--depths 0,4096 --decode-tokens 64 --repeat 3)
run f16 "${COMMON[@]}" --llamacpp --bandwidth
run f32 "${COMMON[@]}" --kv-dtype f32 --bandwidth
run anchored --anchors ep --prompt-file "$H/corpus/bench-prompt.txt" --depths 4096 \
  --decode-tokens 64 --repeat 3 --chunk-size 512
D4K=(--depths 4096 --decode-tokens 64 --repeat 1 --prompt-tokens 16)
rss rss-f16 "$ANLLM" bench --threads "$THREADS" "${D4K[@]}"
rss rss-f32 "$ANLLM" bench --threads "$THREADS" "${D4K[@]}" --kv-dtype f32
rss rss-llamacpp "$(benches/llamacpp.sh path)" -m "$H/models/SmolLM2-135M-Instruct.Q4_1.gguf" \
  -t "$THREADS" -p 0 -n 64 -d 4096 -fa 1 -r 1
for f in f16 f32 anchored; do echo "== $f"; grep '^|' "$OUT/$f.md"; grep '^streaming' "$OUT/$f.md" || true; done
for f in rss-f16 rss-f32 rss-llamacpp; do echo "$f: $(cat "$OUT/$f.rss") KiB"; done
