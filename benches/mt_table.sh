#!/usr/bin/env bash
# The Table-2-shaped translation results of docs/results.md for one model: German→English on
# the fixed 500 test pairs of the Ding dictionary, with full attention, with the anchor-pruned
# cache, and with the anchor-pruned cache plus the pinned source ("Src Cach"), then one table
# with BLEU, chrF, MaxKV, C⇓ and T⇑.
#
#   benches/mt_table.sh OUT_DIR [extra anllm flags, e.g. --model M --shots 1]
#
# Environment (defaults in brackets): LIMIT [500] pairs; SPEEDUP [100] items timed again with a
# full cache for T⇑; ANCHORS [ep]; ANLLM [target/release/anllm]; RUNS [full anchors pinned].
# Writes OUT_DIR/{full,anchors,pinned}.json and OUT_DIR/table.md. Run alone: T⇑ is a wall-time
# ratio. Check the scores against sacrebleu with `benches/sacrebleu.sh check OUT_DIR/full.json`.
set -euo pipefail
OUT=${1:?usage: benches/mt_table.sh OUT_DIR [anllm flags...]}
shift
mkdir -p "$OUT"
ANLLM=${ANLLM:-target/release/anllm}
ANCHORS=${ANCHORS:-ep}
for run in ${RUNS:-full anchors pinned}; do
  case $run in
    full) flags=(--anchors none) ;;
    anchors) flags=(--anchors "$ANCHORS") ;;
    pinned) flags=(--anchors "$ANCHORS" --pin-source) ;;
    *) echo "mt_table: unknown run $run" >&2; exit 2 ;;
  esac
  echo "mt_table: $run (${flags[*]}, ${LIMIT:-500} pairs)" >&2
  "$ANLLM" eval mt --limit "${LIMIT:-500}" --speedup-items "${SPEEDUP:-100}" "${flags[@]}" \
    --output "$OUT/$run.json" "$@" > "$OUT/$run.md"
done
python3 - "$OUT" ${RUNS:-full anchors pinned} > "$OUT/table.md" <<'PY'
import json, os, sys
out, runs = sys.argv[1], sys.argv[2:]
print("| model | anchors | Src Cach | items | BLEU | chrF | MaxKV | all KV | C⇓ | T⇑ |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
for run in runs:
    s = json.load(open(os.path.join(out, run + ".json")))["summary"]
    t = s["t_speedup"]
    print(f"| {os.path.basename(str(s['model']))} | {s['anchors']} | "
          f"{'yes' if s['pin_source'] else 'no'} | {s['items']} | {s['bleu']:.2f} | "
          f"{s['chrf']:.2f} | {s['max_kv']:.1f} | {s['scores']['all_kv']:.1f} | "
          f"{100 * s['c_reduction']:.1f}% | {'—' if t is None else f'{t:.2f}×'} |")
PY
cat "$OUT/table.md"
