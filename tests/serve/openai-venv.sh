#!/usr/bin/env bash
# Sets up the Python venv that tests/serve/test_openai_client.py runs in: the official `openai`
# client and its dependencies, exactly as pinned (with sha256 hashes) in
# tests/serve/requirements.txt, in "$ANLLM_HOME/peers/openai-venv" (default ANLLM_HOME:
# ~/.cache/anllm), outside the repository. Prints the venv's python on stdout; logs on stderr.
#
# Idempotent: a venv whose openai and pydantic-core have the pinned versions is left alone. A
# broken or outdated one is rebuilt from scratch. Needs python3 (>= 3.11, with the venv module;
# on Debian: apt-get install python3-venv) and the package registry the machine's pip uses.
#
#   tests/serve/openai-venv.sh     # prints $ANLLM_HOME/peers/openai-venv/bin/python
#
# Environment: ANLLM_HOME; PYTHON (the interpreter to build the venv from, default python3).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REQS="$HERE/requirements.txt"
ANLLM_HOME="${ANLLM_HOME:-$HOME/.cache/anllm}"
VENV="$ANLLM_HOME/peers/openai-venv"
PY="$VENV/bin/python"
PYTHON="${PYTHON:-python3}"

log() { printf 'openai-venv: %s\n' "$*" >&2; }
die() { printf 'openai-venv: error: %s\n' "$*" >&2; exit 1; }

[ -f "$REQS" ] || die "missing $REQS"
# The versions the venv must have, read from the pins.
pin() { sed -n "s/^$1==\([^ ]*\).*/\1/p" "$REQS"; }
OPENAI_VERSION="$(pin openai)"
CORE_VERSION="$(pin pydantic-core)"
[ -n "$OPENAI_VERSION" ] && [ -n "$CORE_VERSION" ] || die "no openai / pydantic-core pin in $REQS"

# ok: the venv imports openai and pydantic_core at the pinned versions.
ok() {
  [ -x "$PY" ] && "$PY" - "$OPENAI_VERSION" "$CORE_VERSION" >/dev/null 2>&1 <<'PY'
import sys
import openai, pydantic_core
sys.exit(not (openai.__version__ == sys.argv[1] and pydantic_core.__version__ == sys.argv[2]))
PY
}

if ok; then
  echo "$PY"
  exit 0
fi

command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (needs Python >= 3.11)"
"$PYTHON" - <<'PY' || die "$PYTHON is too old: the pinned httpx2/jiter need Python >= 3.11"
import sys
sys.exit(sys.version_info < (3, 11))
PY

if [ -e "$VENV" ]; then
  log "rebuilding $VENV (missing, broken or not openai==$OPENAI_VERSION)"
  rm -rf "$VENV"
else
  log "creating $VENV (openai==$OPENAI_VERSION)"
fi
mkdir -p "$ANLLM_HOME/peers"
"$PYTHON" -m venv "$VENV" >&2 ||
  die "'$PYTHON -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)"

# --only-binary: every pin is a wheel; a source build would mean a Python or platform whose
# wheels are not pinned (the hash check would fail anyway, with a less clear message).
if ! "$PY" -m pip install --quiet --disable-pip-version-check --no-input \
  --require-hashes --no-deps --only-binary=:all: -r "$REQS" >&2; then
  rm -rf "$VENV"
  die "pip install -r $REQS failed (see above). A hash mismatch or 'no matching distribution' for
  pydantic-core or jiter means no wheel is pinned for this Python ($("$PYTHON" -c \
  'import sys, platform; print(sys.version.split()[0], platform.machine())')): add its hashes there"
fi

ok || {
  rm -rf "$VENV"
  die "installed, but 'import openai' fails or reports the wrong version"
}
log "ready: openai==$OPENAI_VERSION in $VENV"
echo "$PY"
