#!/usr/bin/env bash
# Peer benchmark: NVIDIA kvpress (KV-cache compression presses for HF transformers) on the default
# model, CPU, fp32 (transformers dequantizes the Q4_1 GGUF), so that anllm's own rows and kvpress
# rows can be measured in one run. Everything lands in "$ANLLM_HOME/peers/kvpress-venv"
# (default ANLLM_HOME: ~/.cache/anllm), outside the repository.
#
#   benches/kvpress.sh setup                # create the venv, pip-install the pinned versions (idempotent)
#   benches/kvpress.sh bench [ARGS...]      # run benches/kvpress_bench.py (JSON lines on stdout, logs on stderr)
#   benches/kvpress.sh eval [ARGS...]       # run benches/kvpress_eval.py (quality: JSON lines on stdout, logs on stderr)
#   benches/kvpress.sh python               # print the venv's python path
#
# bench ARGS (see benches/kvpress_bench.py --help):
#   --prompt-file FILE   (default $ANLLM_HOME/corpus/bench-prompt.txt, from scripts/fetch-corpus.sh)
#   --depths 1024,4096   --decode-tokens 64   --repeat 3   --threads 2   [--presses none,knorm,streaming_llm]
#   [--model GGUF]       (default $MODEL or $ANLLM_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf)
#
# eval ARGS (see benches/kvpress_eval.py --help): per item of a tokenized JSON-lines file (written by
# anllm), full-cache reference vs each press / ratio: answer log-likelihood, top-1 agreement, KL to the
# full cache, greedy passkey-style accuracy, kv entries / bytes, decode rate; then per-(task, length,
# press, ratio) summary lines.
#   --items FILE.jsonl   --ratios 0.9,0.75,0.5   --presses none,streaming_llm,snapkv,snapkv_qa,tova,knorm
#   --threads 2   [--limit N]   [--max-new-tokens 16]   [--model GGUF]
#   --make-demo-items OUT [--demo-length 300] [--demo-count 3] [--demo-template chat|plain]  # synthetic passkey file
#
# Cost: the registry's torch wheel for Linux x86_64 is the CUDA build; it pulls the nvidia-* / cuda-*
# packages (the CUDA libraries must be present for `import torch`, even on CPU) — several GB of
# wheels to download and about 6 GB on disk; installing took about 3 min here. Not part of CI.
#
# Environment: ANLLM_HOME, MODEL, MIN_IDLE (warn when the CPU is less idle than this percent
# before a run, default 90), KVPRESS_MIN_FREE_GB (setup refuses below this much free disk, default 12).
set -euo pipefail

ANLLM_HOME="${ANLLM_HOME:-$HOME/.cache/anllm}"
PEERS="$ANLLM_HOME/peers"
VENV="$PEERS/kvpress-venv"
PY="$VENV/bin/python"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MARKER="$VENV/.anllm-kvpress-setup"

# Pinned versions: kvpress 0.5.5 requires transformers <5.3, so 5.2.0 (as in
# docs/peer-baselines.md); torch 2.15.0; gguf for transformers' GGUF loader.
KVPRESS_VER=0.5.5
TRANSFORMERS_VER=5.2.0
TORCH_VER=2.15.0
GGUF_VER=0.19.0
REQUIREMENTS="kvpress==$KVPRESS_VER
transformers==$TRANSFORMERS_VER
torch==$TORCH_VER
gguf==$GGUF_VER"
# Every other package pinned too (pip freeze of a working install, Python 3.11, Linux x86_64), used
# as pip constraints so that the venv is the same wherever it is built.
CONSTRAINTS="accelerate==1.15.0
annotated-doc==0.0.7
annotated-types==0.8.0
anyio==4.16.0
cachetools==5.5.2
certifi==2026.10.18
charset-normalizer==3.5.2
click==8.5.1
cuda-bindings==13.5.0
cuda-pathfinder==1.9.0
cuda-toolkit==13.2.2
datasets==5.2.0
dill==0.4.1
filelock==4.2.11
fire==0.6.0
fsspec==2026.9.0
gguf==0.19.0
h11==0.16.0
hf-xet==1.8.0
httpcore==1.0.9
httpx==0.28.1
huggingface_hub==1.33.0
idna==3.20
Jinja2==3.1.6
kvpress==0.5.5
markdown-it-py==4.3.0
MarkupSafe==3.0.4
mdurl==0.1.2
mpmath==1.3.0
multiprocess==0.70.19
networkx==3.6.1
numpy==2.4.6
nvidia-cublas==13.4.1.3
nvidia-cuda-cccl==13.3.5.0.6
nvidia-cuda-cupti==13.2.86
nvidia-cuda-nvrtc==13.2.86
nvidia-cuda-runtime==13.2.86
nvidia-cudnn-cu13==9.26.0.51
nvidia-cufft==12.2.0.57
nvidia-cufile==1.17.1.22
nvidia-cusolver==12.2.0.11
nvidia-cusparse==12.7.10.12
nvidia-cusparselt-cu13==0.8.1
nvidia-nccl-cu13==2.30.7
nvidia-nvjitlink==13.5.37
nvidia-nvshmem-cu13==3.7.2
nvidia-nvtx==13.2.86
packaging==26.3
pandas==2.3.3
peft==0.21.2
psutil==7.2.2
pyarrow==26.0.1
pydantic==2.14.3
pydantic_core==2.50.4
Pygments==2.21.0
python-dateutil==4.0.0
pytz==2026.6
PyYAML==6.0.3
regex==2026.11.15
requests==2.34.2
rich==15.0.0
safetensors==0.8.0
setuptools==84.2.1
shellingham==1.5.4
six==1.17.0
sympy==1.14.0
termcolor==3.3.0
tokenizers==0.22.2
torch==2.15.0
tqdm==4.70.1
transformers==5.2.0
triton==3.9.0
typer==0.29.2
typer-slim==0.24.0
typing-inspection==0.4.5
typing_extensions==4.16.0
tzdata==2026.6
urllib3==2.8.0
xxhash==4.1.0"

log() { printf 'kvpress: %s\n' "$*" >&2; }
die() { printf 'kvpress: error: %s\n' "$*" >&2; exit 1; }

stamp() {
  printf 'kvpress==%s transformers==%s torch==%s gguf==%s constraints-sha256=%s\n' \
    "$KVPRESS_VER" "$TRANSFORMERS_VER" "$TORCH_VER" "$GGUF_VER" \
    "$(printf '%s\n' "$CONSTRAINTS" | sha256sum | cut -d' ' -f1)"
}

setup() {
  if [ -x "$PY" ] && [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$(stamp)" ]; then
    log "already set up: $VENV"; return
  fi
  command -v python3 >/dev/null || die "python3 not found"
  mkdir -p "$PEERS"
  local free_gb; free_gb=$(df -P -B1G "$PEERS" | awk 'NR==2 {print $4}')
  if [ ! -x "$PY" ] && [ "$free_gb" -lt "${KVPRESS_MIN_FREE_GB:-12}" ]; then
    die "only ${free_gb} GB free under $PEERS; the venv needs about 6 GB (+ room for the downloads)"
  fi
  log "setting up $VENV (${free_gb} GB free; several GB to download, about 6 GB on disk)"
  [ -x "$PY" ] || python3 -m venv "$VENV" >&2 || die "python3 -m venv failed"
  rm -f "$MARKER"
  printf '%s\n' "$REQUIREMENTS" > "$VENV/anllm-requirements.txt"
  printf '%s\n' "$CONSTRAINTS" > "$VENV/anllm-constraints.txt"
  local t0=$SECONDS
  # --no-cache-dir: the wheels are large; do not keep a second copy in pip's cache.
  "$PY" -m pip install --no-cache-dir --quiet --disable-pip-version-check \
    -r "$VENV/anllm-requirements.txt" -c "$VENV/anllm-constraints.txt" >&2 \
    || die "pip install failed (see above)"
  "$PY" -c 'import torch, transformers, kvpress, gguf' >&2 || die "the venv does not import"
  stamp > "$MARKER"
  log "set up in $((SECONDS - t0)) s; $(du -sh "$VENV" | cut -f1) in $VENV"
}

# shellcheck source=peer_env.sh
. "$HERE/peer_env.sh"

bench() {
  setup
  warn_if_busy
  torch_env "$@"
  export KVPRESS_VERSION="$KVPRESS_VER"
  exec "$PY" "$HERE/kvpress_bench.py" "$@"
}

# (not named `eval`: that is a shell builtin)
run_eval() {
  setup
  warn_if_busy
  torch_env "$@"
  export KVPRESS_VERSION="$KVPRESS_VER"
  exec "$PY" "$HERE/kvpress_eval.py" "$@"
}

case "${1:-}" in
  setup) setup ;;
  bench) shift; bench "$@" ;;
  eval) shift; run_eval "$@" ;;
  python) echo "$PY" ;;
  *) die "usage: $0 setup | bench [--prompt-file F --depths D,.. --decode-tokens N --repeat R --threads T] | eval [--items F.jsonl --ratios R,.. --presses P,.. --threads T --limit N --max-new-tokens N | --make-demo-items OUT] | python" ;;
esac
