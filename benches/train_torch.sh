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

# shellcheck source=peer_env.sh
. "$HERE/peer_env.sh"
warn_if_busy
torch_env "$@"
exec "$PY" "$HERE/train_torch.py" "$@"
