#!/usr/bin/env bash
# Peer check of `anllm eval qa` (not part of CI): recompute the multiple-choice log-likelihoods of a
# results file with HF transformers (the GGUF dequantized to fp32, CPU) and compare accuracy,
# predictions and log-likelihoods, per task. Runs benches/eval_hf.py with the python of the kvpress
# venv ("$ANLLM_HOME/peers/kvpress-venv", default ANLLM_HOME: ~/.cache/anllm), which
# `benches/kvpress.sh setup` creates (several GB; run here when the venv's python is missing).
#
#   anllm eval qa --tasks arc_easy,piqa --limit 500 --output /tmp/qa.json
#   benches/eval_hf.sh --results /tmp/qa.json [--model GGUF] [--threads 2] [--limit N] [--out FILE]
#                      [--no-batch] [--tokens]
#
# --model defaults to $ANLLM_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf; --limit N scores the first
# N records of each task; --out writes the per-task summary and per-record HF log-likelihoods (JSON).
# Markdown table on stdout, progress on stderr. See benches/eval_hf.py --help.
# Environment: ANLLM_HOME.
set -euo pipefail

ANLLM_HOME="${ANLLM_HOME:-$HOME/.cache/anllm}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=peer_env.sh
. "$HERE/peer_env.sh"
PY="$(kvpress_python)"
torch_env "$@"
exec "$PY" "$HERE/eval_hf.py" "$@"
