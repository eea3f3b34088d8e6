#!/usr/bin/env bash
# The sacrebleu peer of `anllm eval mt`: sacrebleu 2.4.3 (default corpus_bleu: 13a tokenization,
# exponential smoothing; default corpus_chrf: chrF2, character 6-grams, whitespace removed) in a
# venv at "$ANLLM_HOME/peers/sacrebleu-venv" (default ANLLM_HOME: ~/.cache/anllm), built from the
# hash-pinned wheels of benches/sacrebleu-requirements.txt. Logs on stderr.
#
#   benches/sacrebleu.sh setup               # create the venv (idempotent); prints its python
#   benches/sacrebleu.sh check RESULTS.json  # sacrebleu's BLEU and chrF of an `anllm eval mt
#                                            # --output` file beside ours; exit 1 if either
#                                            # differs by more than 0.01
#   benches/sacrebleu.sh golden              # rewrite crates/anllm-eval/tests/golden/sacrebleu.json
#   benches/sacrebleu.sh golden --check      # write nothing, compare (exit 1 on a difference)
#
# check and golden run setup first when the venv is missing or outdated. Needs python3 (>= 3.11,
# with the venv module; on Debian: apt-get install python3-venv) and the package registry the
# machine's pip uses (setup only). Everything else runs offline, in well under a second.
# Environment: ANLLM_HOME; PYTHON (the interpreter to build the venv from, default python3).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
REQS="$HERE/sacrebleu-requirements.txt"
GOLDEN="$ROOT/crates/anllm-eval/tests/golden/sacrebleu.json"
ANLLM_HOME="${ANLLM_HOME:-$HOME/.cache/anllm}"
VENV="$ANLLM_HOME/peers/sacrebleu-venv"
PY="$VENV/bin/python"
PYTHON="${PYTHON:-python3}"

log() { printf 'sacrebleu: %s\n' "$*" >&2; }
die() { printf 'sacrebleu: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,17s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; exit 2; }

[ -f "$REQS" ] || die "missing $REQS"
# The versions the venv must have, read from the pins.
pin() { sed -n "s/^$1==\([^ ]*\).*/\1/p" "$REQS"; }
SB_VERSION="$(pin sacrebleu)"
NUMPY_VERSION="$(pin numpy)"
[ -n "$SB_VERSION" ] && [ -n "$NUMPY_VERSION" ] || die "no sacrebleu / numpy pin in $REQS"

# ok: the venv imports sacrebleu and numpy at the pinned versions.
ok() {
  [ -x "$PY" ] && "$PY" - "$SB_VERSION" "$NUMPY_VERSION" >/dev/null 2>&1 <<'PY'
import sys
import numpy, sacrebleu
sys.exit(not (sacrebleu.__version__ == sys.argv[1] and numpy.__version__ == sys.argv[2]))
PY
}

setup() {
  ok && return 0
  command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (needs Python >= 3.11)"
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "$PYTHON is too old: the pinned numpy 2.4.6 needs Python >= 3.11"
  if [ -e "$VENV" ]; then
    log "rebuilding $VENV (missing, broken or not sacrebleu==$SB_VERSION)"
    rm -rf "$VENV"
  else
    log "creating $VENV (sacrebleu==$SB_VERSION)"
  fi
  mkdir -p "$ANLLM_HOME/peers"
  "$PYTHON" -m venv "$VENV" >&2 ||
    die "'$PYTHON -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)"
  # --only-binary: every pin is a wheel; a source build would mean a Python or platform whose
  # wheels are not pinned (the hash check would fail anyway, with a less clear message).
  if ! "$PY" -m pip install --quiet --disable-pip-version-check --no-input \
    --require-hashes --no-deps --only-binary=:all: -r "$REQS" >&2; then
    rm -rf "$VENV"
    die "pip install -r $REQS failed (see above). A hash mismatch or 'no matching distribution'
  for numpy, lxml or regex means no wheel is pinned for this Python ($("$PYTHON" -c \
    'import sys, platform; print(sys.version.split()[0], platform.machine())')): add its hashes there"
  fi
  ok || {
    rm -rf "$VENV"
    die "installed, but 'import sacrebleu' fails or reports the wrong version"
  }
  log "ready: sacrebleu==$SB_VERSION in $VENV"
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  setup)
    setup
    echo "$PY"
    ;;
  check)
    [ $# -eq 1 ] || usage
    setup
    exec "$PY" "$HERE/sacrebleu_peer.py" check "$1"
    ;;
  golden)
    setup
    exec "$PY" "$HERE/sacrebleu_peer.py" golden --out "$GOLDEN" "$@"
    ;;
  *) usage ;;
esac
