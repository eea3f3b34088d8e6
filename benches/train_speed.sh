#!/usr/bin/env bash
# Training speed of `anllm train` beside PyTorch (benches/train_torch.sh) on the same Llama config,
# batch and sequence length, interleaved in one run (not part of CI).
#
#   benches/train_speed.sh [--repeat 3] [--steps 20] [--warmup 3] [--threads 2] [--batch 1]
#                          [--seq 255] [--config benches/tiny-llama.json] [--anchors none|ep]
#
# Each repeat runs, one after the other:
#   anllm  `anllm train --init-from-scratch --config CONFIG --tokenizer <Llama-2 SPM vocabulary>
#          --data <corpus train split> --block-size SEQ+1 --batch-size BATCH --anchors ANCHORS`
#          for WARMUP+STEPS optimizer steps; the step time is `step_s` of the JSONL log (forward,
#          cross-entropy, backward, clipping and AdamW), the first WARMUP steps dropped.
#   torch  benches/train_torch.sh with the same config, batch, seq, threads, warmup and steps
#          (--mask causal for --anchors none, --mask ansan for ep).
# Prints one line per repeat and a summary: median / min step ms of each, tokens/s from the median,
# and the ratio anllm tok/s ÷ torch tok/s (per repeat, then min / median over repeats).
# Needs: scripts/fetch-assets.sh (vocabulary, corpus), `cargo build --release`, and the kvpress venv
# (benches/kvpress.sh setup, called by train_torch.sh). Environment: ANLLM_HOME, ANLLM_BIN.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
ANLLM_HOME="${ANLLM_HOME:-$HOME/.cache/anllm}"
BIN="${ANLLM_BIN:-$ROOT/target/release/anllm}"

repeat=3 steps=20 warmup=3 threads=2 batch=1 seq=255 config="$HERE/tiny-llama.json" anchors=none
while [ $# -gt 0 ]; do
  case "$1" in
    --repeat) repeat=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --seq) seq=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --anchors) anchors=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "train_speed: unknown flag $1" >&2; exit 2 ;;
  esac
done
case "$anchors" in none) mask=causal ;; ep) mask=ansan ;; *) echo "train_speed: --anchors none|ep" >&2; exit 2 ;; esac

vocab="$ANLLM_HOME/vocab/ggml-vocab-llama-spm.gguf"
corpus="$ANLLM_HOME/corpus/train.txt"
for f in "$vocab" "$corpus" "$BIN"; do
  [ -e "$f" ] || { echo "train_speed: missing $f (scripts/fetch-assets.sh, cargo build --release)" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
total=$((warmup + steps))
results="$work/results.jsonl"

for r in $(seq 1 "$repeat"); do
  out="$work/anllm-$r"
  "$BIN" train --init-from-scratch --config "$config" --tokenizer "$vocab" --data "$corpus" \
    --anchors "$anchors" --block-size $((seq + 1)) --batch-size "$batch" --steps "$total" \
    --warmup 0 --lr 1e-3 --save-every 1000000 --threads "$threads" --seed "$r" --out "$out" \
    2> "$work/anllm-$r.err" || { cat "$work/anllm-$r.err" >&2; exit 1; }
  python3 - "$out/train_log.jsonl" "$warmup" "$batch" "$seq" >> "$results" <<'EOF'
import json, statistics, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()][int(sys.argv[2]):]
ms = [r["step_s"] * 1e3 for r in recs]
print(json.dumps({"who": "anllm", "median": statistics.median(ms), "min": min(ms),
                  "tps": int(sys.argv[3]) * int(sys.argv[4]) / (statistics.median(ms) / 1e3)}))
EOF
  "$HERE/train_torch.sh" --config "$config" --batch "$batch" --seq "$seq" --threads "$threads" \
    --mask "$mask" --warmup "$warmup" --steps "$steps" --seed "$r" > "$work/torch-$r.json" \
    2> "$work/torch-$r.err" || { cat "$work/torch-$r.err" >&2; exit 1; }
  python3 - "$work/torch-$r.json" >> "$results" <<'EOF'
import json, sys
j = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(json.dumps({"who": "torch", "median": j["step_ms"]["median"], "min": j["step_ms"]["min"],
                  "tps": j["tokens_per_s"], "fwd": j["forward_ms"]["median"],
                  "bwd": j["backward_ms"]["median"], "opt": j["optimizer_ms"]["median"]}))
EOF
  tail -n 2 "$results" | python3 -c "
import json, sys
a, t = (json.loads(l) for l in sys.stdin)
print(f'repeat $r: anllm {a[\"median\"]:.1f} ms/step (min {a[\"min\"]:.1f}, {a[\"tps\"]:.0f} tok/s)'
      f'  torch {t[\"median\"]:.1f} ms/step (min {t[\"min\"]:.1f}, {t[\"tps\"]:.0f} tok/s;'
      f' fwd {t[\"fwd\"]:.0f} bwd {t[\"bwd\"]:.0f} opt {t[\"opt\"]:.0f})  ratio {a[\"tps\"] / t[\"tps\"]:.2f}x')"
done

python3 - "$results" "$anchors" "$batch" "$seq" "$threads" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
a = [r for r in rows if r["who"] == "anllm"]
t = [r for r in rows if r["who"] == "torch"]
ratios = [x["tps"] / y["tps"] for x, y in zip(a, t)]
print(f"summary (anchors {sys.argv[2]}, batch {sys.argv[3]} x {sys.argv[4]}, {sys.argv[5]} threads, "
      f"{len(a)} repeats): anllm median {statistics.median(x['median'] for x in a):.1f} ms/step, "
      f"torch median {statistics.median(y['median'] for y in t):.1f} ms/step; "
      f"anllm/torch tok/s min {min(ratios):.2f}x median {statistics.median(ratios):.2f}x")
EOF
