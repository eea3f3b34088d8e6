#!/usr/bin/env bash
# The Table-1-shaped QA results of docs/results.md: the eight tasks, zero- and five-shot, with
# full attention and with the anchor-pruned cache (EP anchors), for one model.
#
#   benches/eval_table.sh OUT_DIR [extra anllm flags, e.g. --model M --dtype f32]
#
# Environment (defaults in brackets): LIMIT0 [200] and LIMIT5 [50] items per task for zero- and
# five-shot; SPEEDUP0 [50] and SPEEDUP5 [25] items per task timed for T⇑ (the non-caching and
# full-caching runs); ANCHORS [ep]; ANLLM [target/release/anllm]; RUNS [full-0 cache-0 full-5
# cache-5], the runs to do.
# Writes OUT_DIR/{full,cache}-{0,5}shot.{json,md}. Run alone: T⇑ is a wall-time ratio.
set -euo pipefail
OUT=${1:?usage: benches/eval_table.sh OUT_DIR [anllm flags...]}
shift
mkdir -p "$OUT"
ANLLM=${ANLLM:-target/release/anllm}
ANCHORS=${ANCHORS:-ep}
declare -A LIMIT=([0]=${LIMIT0:-200} [5]=${LIMIT5:-50})
declare -A SPEEDUP=([0]=${SPEEDUP0:-50} [5]=${SPEEDUP5:-25})
for run in ${RUNS:-full-0 cache-0 full-5 cache-5}; do
  mode=${run%-*} shots=${run#*-}
  name="$mode-${shots}shot"
  echo "eval_table: $name (limit ${LIMIT[$shots]})" >&2
  "$ANLLM" eval qa --tasks all --shots "$shots" --limit "${LIMIT[$shots]}" --anchors "$ANCHORS" \
    --mode "$mode" --speedup-items "${SPEEDUP[$shots]}" --output "$OUT/$name.json" "$@" \
    > "$OUT/$name.md"
  cat "$OUT/$name.md"
done
