#!/usr/bin/env bash
# The OpenAI-compatibility test of `anllm serve`: starts BINARY's server on a free loopback port
# (default model, API key "test-key", 2 threads, a throwaway session directory), waits for
# GET /health, runs tests/serve/test_openai_client.py with the official `openai` Python client
# (pinned venv from tests/serve/openai-venv.sh), stops the server, and exits with the test's
# status. On a failure the tail of the server's log is printed.
#
#   tests/serve/openai_client.sh target/ci/anllm                  # every test
#   tests/serve/openai_client.sh target/ci/anllm test_sessions    # only the tests named
#
# Needs the default model (scripts/fetch-assets.sh). Environment: ANLLM_HOME (venv, model),
# ANLLM_SERVE_STARTUP (seconds to wait for /health, default 120), ANLLM_SERVE_TEST_TIMEOUT
# (seconds for the whole test run, default 1200), ANLLM_SERVE_KEEP=1 (keep the log and sessions).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN="${1:?usage: tests/serve/openai_client.sh BINARY [test_name ...]}"
shift
STARTUP="${ANLLM_SERVE_STARTUP:-120}"
TEST_TIMEOUT="${ANLLM_SERVE_TEST_TIMEOUT:-1200}"
KEY=test-key

log() { printf 'openai_client: %s\n' "$*" >&2; }
die() { printf 'openai_client: error: %s\n' "$*" >&2; exit 1; }

[ -x "$BIN" ] || die "$BIN is not an executable (build it first: the anllm binary)"
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"

PY="$("$HERE/openai-venv.sh")" || die "could not set up the openai venv (see above)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/anllm-serve-test.XXXXXX")"
LOG="$WORK/server.log"
SESSIONS="$WORK/sessions"
mkdir -p "$SESSIONS"
SERVER_PID=""

show_log() {
  if [ -s "$LOG" ]; then
    log "last 80 lines of the server's log ($LOG):"
    tail -n 80 "$LOG" | sed 's/^/  | /' >&2
  else
    log "the server's log is empty"
  fi
}

cleanup() {
  local rc=$?
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      log "the server did not stop on SIGTERM within 10 s; killing it"
      kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ "${ANLLM_SERVE_KEEP:-0}" = 1 ]; then
    log "kept $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
ROOT="http://127.0.0.1:$PORT"

log "starting $BIN serve on $ROOT (log: $LOG)"
"$BIN" serve --host 127.0.0.1 --port "$PORT" --api-key "$KEY" --threads 2 \
  --session-dir "$SESSIONS" </dev/null >"$LOG" 2>&1 &
SERVER_PID=$!

# Wait for GET /health -> 200, while the server lives, at most $STARTUP seconds.
if ! "$PY" - "$ROOT/health" "$SERVER_PID" "$STARTUP" <<'PY'; then
import os, sys, time, urllib.error, urllib.request
url, pid, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
t0, last = time.monotonic(), "no answer"
while time.monotonic() - t0 < limit:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(f"openai_client: error: the server exited before answering /health (last: {last})")
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            if r.status == 200:
                print(f"openai_client: server up after {time.monotonic() - t0:.1f} s", file=sys.stderr)
                sys.exit(0)
            last = f"HTTP {r.status}"
    except urllib.error.HTTPError as e:
        last = f"HTTP {e.code}"
    except (OSError, ValueError) as e:
        last = f"{type(e).__name__}: {e}"
    time.sleep(0.5)
sys.exit(f"openai_client: error: GET {url} gave no 200 within {limit:.0f} s (last: {last})")
PY
  show_log
  die "the server did not come up (is the default model fetched? scripts/fetch-assets.sh)"
fi

status=0
ANLLM_SERVE_URL="$ROOT/v1" ANLLM_API_KEY="$KEY" PYTHONUNBUFFERED=1 \
  timeout --kill-after=10 "$TEST_TIMEOUT" "$PY" "$HERE/test_openai_client.py" "$@" || status=$?

if [ "$status" -ne 0 ]; then
  [ "$status" -eq 124 ] && log "the test run took over $TEST_TIMEOUT s and was stopped"
  kill -0 "$SERVER_PID" 2>/dev/null || log "the server is no longer running"
  show_log
  log "FAILED (status $status)"
fi
exit "$status"
