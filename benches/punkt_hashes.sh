#!/usr/bin/env bash
# Generator of the NLTK hashes in crates/anllm/tests/punkt.rs (NLTK_ENGLISH_SPLITS; not part of
# CI): runs benches/punkt_hashes.py with NLTK 3.10.4 from a small venv in
# "$ANLLM_HOME/peers/nltk-venv" (default ANLLM_HOME: ~/.cache/anllm), created here on first use
# (pip, pinned versions, a few MB). The Punkt parameters and texts come from
# `scripts/fetch-assets.sh` ($ANLLM_HOME/punkt); NLTK's own data is not needed.
#
#   benches/punkt_hashes.sh            # the Rust table on stdout
#   benches/punkt_hashes.sh --check    # and compare with punkt.rs (exit status 1 on a difference)
#
# Environment: ANLLM_HOME.
set -euo pipefail

ANLLM_HOME="${ANLLM_HOME:-$HOME/.cache/anllm}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$ANLLM_HOME/peers/nltk-venv"
PY="$VENV/bin/python"
# nltk 3.10.4 and everything it pulls in (pip freeze of a working install, Python 3.11).
PINS="nltk==3.10.4 click==8.5.1 cloudpickle==3.1.3 defusedxml==0.7.1 joblib==1.6.0
regex==2026.11.19 tqdm==4.70.1"

log() { printf 'punkt_hashes: %s\n' "$*" >&2; }

if ! [ -x "$PY" ] || ! "$PY" -c 'import nltk, sys; sys.exit(nltk.__version__ != "3.10.4")' 2>/dev/null; then
  log "setting up $VENV (nltk 3.10.4)"
  mkdir -p "$ANLLM_HOME/peers"
  [ -x "$PY" ] || python3 -m venv "$VENV" >&2
  # shellcheck disable=SC2086
  "$PY" -m pip install --quiet --disable-pip-version-check $PINS >&2
fi

export ANLLM_HOME PYTHONUNBUFFERED=1
exec "$PY" "$HERE/punkt_hashes.py" "$@"
