# Shared by the peer benchmark scripts (sourced, never run): the busy-machine warning and the
# environment of the PyTorch peers. The sourcing script defines `log`.

# Percent of CPU time idle over one second. A neighbour's build on these 2 cores makes
# multi-threaded runs collapse (OpenMP barriers stall): warn so results are not trusted.
idle_pct() {
  local a b c d t i
  read -r _ a b c d _ < /proc/stat; t=$((a + b + c + d)); i=$d; sleep 1
  read -r _ a b c d _ < /proc/stat; echo $((100 * (d - i) / (a + b + c + d - t + 1)))
}

# Warns when the CPU is less idle than MIN_IDLE percent (default 90).
warn_if_busy() {
  local idle; idle=$(idle_pct 2>/dev/null || echo 100)
  [ "$idle" -ge "${MIN_IDLE:-90}" ] || log "warning: machine only ${idle}% idle; results will be slow and noisy"
}

# torch_env ARGS...: OMP/MKL threads from the peer's --threads N / --threads=N (default 2, as
# torch.set_num_threads gets it), HF offline, no telemetry or progress bars. Exports ANLLM_HOME.
torch_env() {
  local a prev="" threads=2
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
}

# kvpress_python: prints the kvpress venv's python ("$ANLLM_HOME/peers/kvpress-venv"),
# creating the venv first with `benches/kvpress.sh setup` (several GB) when it is missing.
# Needs HERE (the benches folder) and ANLLM_HOME.
kvpress_python() {
  local py="$ANLLM_HOME/peers/kvpress-venv/bin/python"
  if [ ! -x "$py" ]; then
    printf '%s missing; running benches/kvpress.sh setup\n' "$py" >&2
    ANLLM_HOME="$ANLLM_HOME" "$HERE/kvpress.sh" setup >&2
  fi
  echo "$py"
}
