#!/usr/bin/env bash
# Peer benchmark for `anllm train` (not part of CI): PyTorch training-step time on the same Llama
# config, batch and sequence length. Builds HF transformers' LlamaForCausalLM from a LlamaConfig JSON
# (f32, random init, eager attention, CPU) and times forward with labels (cross-entropy) + backward +
# clip_grad_norm_(1.0) + torch.optim.AdamW step + zero_grad. Runs benches/train_torch.py with the
# python of the kvpress venv ("$ANLLM_HOME/peers/kvpress-venv", default ANLLM_HOME: ~/.cache/anllm;
# torch 2.15.0, transformers 5.2.0), through `benches/kvpress.sh setup`, which is idempotent: it
# reuses an existing venv and installs (several GB) only when the venv is missing or its pins changed.
#
#   benches/train_torch.sh [--config benches/tiny-llama.json] [--batch 1] [--seq 255] [--threads 2]
#                          [--mask causal|ansan] [--anchor-every 20] [--warmup 3] [--steps 20]
#                          [--seed 0] [--lr 1e-3] [--clip 1.0] [--attn eager|sdpa]
#   benches/train_torch.sh --help        # this text, then train_torch.py --help (if the venv exists)
#
# --mask ansan passes a 4-D additive mask [b, 1, t, t] from the AnSAN rule (every --anchor-every-th
# token an anchor; a token sees its own segment and every earlier anchor, an anchor only its own
# segment); the default causal lets transformers build its causal mask. One JSON object on stdout
# (step_ms min/median/mean, forward/backward/optimizer ms, tokens_per_s = batch*seq / median step,
# params, versions, threads, loadavg), progress on stderr. See benches/train_torch.py --help.
# Environment: ANLLM_HOME, MIN_IDLE (warn when the CPU is less idle than this percent before a run,
# default 90).
set -euo pipefail

ANLLM_HOME="${ANLLM_HOME:-$HOME/.cache/anllm}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="$ANLLM_HOME/peers/kvpress-venv/bin/python"

log() { printf 'train_torch: %s\n' "$*" >&2; }

for a in "$@"; do
  case "$a" in
    -h|--help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      if [ -x "$PY" ]; then echo; "$PY" "$HERE/train_torch.py" --help; fi
      exit 0 ;;
  esac
done

# Same venv (and the same pins) as kvpress.sh / eval_hf.sh: nothing is downloaded twice.
ANLLM_HOME="$ANLLM_HOME" "$HERE/kvpress.sh" setup

# Percent of CPU time idle over one second (as in benches/llamacpp.sh).
idle_pct() {
  local a b c d t i
  read -r _ a b c d _ < /proc/stat; t=$((a + b + c + d)); i=$d; sleep 1
  read -r _ a b c d _ < /proc/stat; echo $((100 * (d - i) / (a + b + c + d - t + 1)))
}
idle=$(idle_pct 2>/dev/null || echo 100)
[ "$idle" -ge "${MIN_IDLE:-90}" ] || log "warning: machine only ${idle}% idle; results will be slow and noisy"

# Threads: --threads sets torch.set_num_threads; OMP/MKL follow it (default 2 when not given).
threads=2 prev=""
for a in "$@"; do
  case "$prev" in --threads) threads=$a ;; esac
  case "$a" in --threads=*) threads=${a#--threads=} ;; esac
  prev=$a
done
export OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TQDM_DISABLE=1
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export ANLLM_HOME
exec "$PY" "$HERE/train_torch.py" "$@"
