#!/usr/bin/env bash
# Issue 16's measurement, as a new user would take it on a quiet machine:
#   1-3. `anllm bench --threads 2 --depths 0,4096 --decode-tokens 64 --repeat 3 --llamacpp
#        --bandwidth` three times back to back (each beside llama.cpp, FA off and on);
#   4.   anchored (`--anchors ep`, chunk 128) on real text: prefill of 4,096 tokens and decode
#        at depth 4096, against the full cache and llama.cpp in the same run;
#   5.   peak RSS (/usr/bin/time) of decoding 64 tokens at depth 4096: anllm (default f16 KV)
#        and llama-bench (f16 cache, FA on), each alone.
# Prints one line per test and run: anllm's median, llama.cpp's best median and the ratio.
# Writes OUT/run{1,2,3}.md, OUT/anchored.md (tables, JSON last line), OUT/*.rss (KiB).
#
#   benches/decode_runs.sh [OUT]      (default /tmp/decode-runs; ANLLM=binary, THREADS=2)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-/tmp/decode-runs}"
mkdir -p "$OUT"
H="${ANLLM_HOME:-$HOME/.cache/anllm}"
THREADS="${THREADS:-2}"
if [[ -z "${ANLLM:-}" ]]; then
  cargo build --profile ci -p anllm-cli >&2
  ANLLM=target/ci/anllm
fi
bench() { # name args...
  local name="$1"; shift
  "$ANLLM" bench --threads "$THREADS" --json "$@" > "$OUT/$name.md" 2> "$OUT/$name.err"
  echo "decode_runs: $name done" >&2
}
for i in 1 2 3; do
  bench "run$i" --depths 0,4096 --decode-tokens 64 --repeat 3 --llamacpp --bandwidth
done
bench anchored --anchors ep --prompt-file "$H/corpus/bench-prompt.txt" --prompt-tokens 4096 \
  --depths 4096 --decode-tokens 64 --repeat 3 --chunk-size 128 --llamacpp
/usr/bin/time -f "%M" -o "$OUT/anllm.rss" "$ANLLM" bench --threads "$THREADS" --depths 4096 \
  --decode-tokens 64 --repeat 1 --prompt-tokens 16 > /dev/null 2>&1
/usr/bin/time -f "%M" -o "$OUT/llamacpp.rss" "$(benches/llamacpp.sh path)" \
  -m "$H/models/SmolLM2-135M-Instruct.Q4_1.gguf" -t "$THREADS" -p 0 -n 64 -d 4096 -fa 1 -r 1 \
  > /dev/null 2>&1
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
for name in ["run1", "run2", "run3", "anchored"]:
    rows = json.loads(open(f"{out}/{name}.md").read().strip().splitlines()[-1])["results"]
    for r in rows:
        if not r["runtime"].startswith("anllm"):
            continue
        best = r.get("llamacpp_best") or {}
        ratio = r["median"] / best["median"] if best.get("median") else float("nan")
        print(f"{name}\t{r['test']}\t{r['runtime']}\t{r['median']:.1f}\t"
              f"{best.get('median', float('nan')):.1f} ({best.get('runtime', '-')})\t{ratio:.2f}x")
for name in ["anllm", "llamacpp"]:
    print(f"peak RSS {name}: {int(open(f'{out}/{name}.rss').read()) / 1024:.0f} MiB")
PY
