#!/usr/bin/env bash
# Generator of the HF transformers goldens in tests/golden/ (smollm2-hf.json, smollm2-tokens.json;
# not part of CI): recomputes them from the default GGUF, dequantized to fp32, CPU. Runs
# benches/golden_hf.py with the python of the kvpress venv ("$ANLLM_HOME/peers/kvpress-venv",
# default ANLLM_HOME: ~/.cache/anllm: transformers 5.2.0, torch 2.15.0, gguf 0.19.0), which
# `benches/kvpress.sh setup` creates (several GB; run here when the venv's python is missing).
#
#   benches/golden_hf.sh                    # rewrite tests/golden/smollm2-{hf,tokens}.json
#   benches/golden_hf.sh --check            # write nothing, compare (exit status 1 on a difference)
#   benches/golden_hf.sh [--model GGUF] [--out-dir DIR] [--threads 2]
#
# --model defaults to $ANLLM_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch-assets.sh).
# About a minute on 2 cores (loading dequantizes the GGUF). See benches/golden_hf.py --help.
# Environment: ANLLM_HOME.
set -euo pipefail

ANLLM_HOME="${ANLLM_HOME:-$HOME/.cache/anllm}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=peer_env.sh
. "$HERE/peer_env.sh"
PY="$(kvpress_python)"
torch_env "$@"
exec "$PY" "$HERE/golden_hf.py" "$@"
