#!/usr/bin/env bash
# Serving benchmark: `anllm serve` and llama.cpp's llama-server under the same client
# (benches/serve_bench.py), one server at a time, on 127.0.0.1:$PORT.
#
#   benches/serve_bench.sh [sweep] [ARGS...]  # anllm serve, then llama-server: the same closed-loop
#                                             # sweep; writes $OUT/sweep.{json,md}, both side by side
#   benches/serve_bench.sh turns [ARGS...]    # anllm serve --anchors ep: $TURNS turns without and with
#                                             # sessions (X-Session-Id), then the restart check: turns
#                                             # 1..$SPLIT, kill -9, restart on the same --session-dir,
#                                             # turns $SPLIT+1..$TURNS; every turn's greedy text must
#                                             # equal the uninterrupted run's; $OUT/turns.{json,md}
#   benches/serve_bench.sh fill [ARGS...]     # anllm serve: ~4096-token conversations, each its own
#                                             # session, until 429: how many are held; $OUT/fill.*
# ARGS go to serve_bench.py (e.g. --duration 30, --endpoint completions). Exit status 1 when the
# restart check finds a difference.
#
# Environment: ANLLM_HOME (~/.cache/anllm), MODEL (the fetched SmolLM2-135M-Instruct Q4_1 GGUF),
# ANLLM_BIN (target/release/anllm), THREADS (2), PORT (18080), OUT (target/serve-bench/DATE),
# SERVERS (sweep: "anllm llamacpp"; either alone runs only that one),
# CONCURRENCY (1,2,4,8,16), PARALLEL (server slots; default the largest concurrency),
# REQUESTS (per level; default 4*c), MAX_TOKENS (128), PROMPT_WORDS (128),
# CTX (llama-server context per slot, 2048; -c is CTX*PARALLEL),
# CONVERSATIONS (2), TURNS (20), SPLIT (10), TURN_WORDS (60), TURN_MAX_TOKENS (48),
# FILL_PROMPT_TOKENS (4096), FILL_MAX (1000), ANLLM_SERVE_ARGS / LLAMA_SERVER_ARGS (extra flags),
# READY_TIMEOUT (s to wait for /health, 300), MIN_IDLE (busy-machine warning, percent, 90).
# llama-server is built on first use by `benches/llamacpp.sh build-server` (JOBS build jobs).
set -euo pipefail
cd "$(dirname "$0")/.."
HERE=benches

ANLLM_HOME="${ANLLM_HOME:-$HOME/.cache/anllm}"
MODEL="${MODEL:-$ANLLM_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
ANLLM_BIN="${ANLLM_BIN:-target/release/anllm}"
THREADS="${THREADS:-2}"
PORT="${PORT:-18080}"
OUT="${OUT:-target/serve-bench/$(date +%Y%m%d-%H%M%S)}"
SERVERS="${SERVERS:-anllm llamacpp}"
CONCURRENCY="${CONCURRENCY:-1,2,4,8,16}"
PARALLEL="${PARALLEL:-$(tr , '\n' <<<"$CONCURRENCY" | sort -n | tail -1)}"
REQUESTS="${REQUESTS:-0}"
MAX_TOKENS="${MAX_TOKENS:-128}"
PROMPT_WORDS="${PROMPT_WORDS:-128}"
CTX="${CTX:-2048}"
CONVERSATIONS="${CONVERSATIONS:-2}"
TURNS="${TURNS:-20}"
SPLIT="${SPLIT:-10}"
TURN_WORDS="${TURN_WORDS:-60}"
TURN_MAX_TOKENS="${TURN_MAX_TOKENS:-48}"
FILL_PROMPT_TOKENS="${FILL_PROMPT_TOKENS:-4096}"
FILL_MAX="${FILL_MAX:-1000}"
READY_TIMEOUT="${READY_TIMEOUT:-300}"
URL="http://127.0.0.1:$PORT"
read -ra ANLLM_EXTRA <<<"${ANLLM_SERVE_ARGS:-}"
read -ra LLAMA_EXTRA <<<"${LLAMA_SERVER_ARGS:-}"

log() { printf 'serve_bench: %s\n' "$*" >&2; }
die() { printf 'serve_bench: error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=peer_env.sh
. "$HERE/peer_env.sh"

bench() { python3 "$HERE/serve_bench.py" "$@"; }

# 0 when GET /health on $PORT answers 200 (bash's /dev/tcp: no curl needed).
health_ok() {
  timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3; head -n1 <&3' _ "$PORT" \
    2>/dev/null | grep -q '^HTTP/[0-9.]* 200'
}

SERVER_PID=""
# start_server NAME LOGFILE CMD...: starts CMD in the background and waits for /health.
start_server() {
  local name="$1" logf="$2" i; shift 2
  if health_ok; then die "something already answers on port $PORT: stop it or set PORT"; fi
  log "starting $name: $*"
  "$@" >>"$logf" 2>&1 &
  SERVER_PID=$!
  for ((i = 0; i < READY_TIMEOUT * 2; i++)); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      tail -n 20 "$logf" >&2; SERVER_PID=""; die "$name exited before it was ready (log: $logf)"
    fi
    if health_ok; then log "$name ready (pid $SERVER_PID) after $((i / 2)) s"; return; fi
    sleep 0.5
  done
  tail -n 20 "$logf" >&2; die "$name not ready after $READY_TIMEOUT s (log: $logf)"
}

# stop_server [SIGNAL]: TERM (default; KILL after 10 s) or KILL, then waits for the exit.
stop_server() {
  local pid="$SERVER_PID" i; SERVER_PID=""
  [ -n "$pid" ] || return 0
  {
    kill -"${1:-TERM}" "$pid" || true
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" || break; sleep 0.1; done
    kill -KILL "$pid" || true
    wait "$pid" || true
  } 2>/dev/null  # also hides bash's "Killed" notice
}
trap stop_server EXIT

anllm_cmd() {
  [ -x "$ANLLM_BIN" ] || die "missing $ANLLM_BIN: cargo build --release first (or set ANLLM_BIN)"
  CMD=("$ANLLM_BIN" serve --model "$MODEL" --host 127.0.0.1 --port "$PORT" --threads "$THREADS"
       --parallel "$PARALLEL" "$@" "${ANLLM_EXTRA[@]}")
}

llama_cmd() {
  local bin; bin=$("$HERE/llamacpp.sh" serve-path)
  if [ ! -x "$bin" ]; then
    log "building llama-server first (benches/llamacpp.sh build-server; log on stderr)"
    "$HERE/llamacpp.sh" build-server
  fi
  CMD=("$bin" -m "$MODEL" -t "$THREADS" --parallel "$PARALLEL" -c "$((CTX * PARALLEL))"
       --host 127.0.0.1 --port "$PORT" --no-webui "${LLAMA_EXTRA[@]}")
}

sweep() {
  local s label files=() sweep_args=(--concurrency "$CONCURRENCY" --max-tokens "$MAX_TOKENS"
    --prompt-words "$PROMPT_WORDS" --requests-per-level "$REQUESTS" --base-url "$URL")
  for s in $SERVERS; do
    case "$s" in
      anllm) anllm_cmd; label=anllm ;;
      llamacpp) llama_cmd; label=llama.cpp ;;
      *) die "SERVERS: unknown server '$s' (anllm, llamacpp)" ;;
    esac
    warn_if_busy
    start_server "$label" "$OUT/$s-sweep.log" "${CMD[@]}"
    bench sweep "${sweep_args[@]}" --label "$label" --server-pid "$SERVER_PID" \
      --json "$OUT/sweep-$s.json" "$@" | tee "$OUT/sweep-$s.md"
    stop_server
    files+=("$OUT/sweep-$s.json")
  done
  if [ "${#files[@]}" = 2 ]; then
    bench merge "${files[@]}" --json "$OUT/sweep.json" >"$OUT/sweep.md"
    printf '\n## Side by side (ratio = the first / the second)\n\n'; cat "$OUT/sweep.md"
  fi
  log "results in $OUT"
}

turns() {
  local dir_ref="$OUT/sessions-ref" dir_rs="$OUT/sessions-restart" rc=0
  local targs=(--base-url "$URL" --conversations "$CONVERSATIONS" --turn-words "$TURN_WORDS"
    --max-tokens "$TURN_MAX_TOKENS")
  [ "$SPLIT" -lt "$TURNS" ] || die "SPLIT ($SPLIT) must be below TURNS ($TURNS)"
  mkdir -p "$dir_ref" "$dir_rs"
  warn_if_busy
  log "1/3: $TURNS turns without sessions"
  anllm_cmd --anchors ep
  start_server "anllm (ep)" "$OUT/turns-nosessions.log" "${CMD[@]}"
  bench turns "${targs[@]}" --turns "$TURNS" --label no-sessions --server-pid "$SERVER_PID" \
    --json "$OUT/turns-nosessions.json" "$@" >/dev/null
  stop_server
  log "2/3: $TURNS turns with sessions, uninterrupted (the reference)"
  anllm_cmd --anchors ep --session-dir "$dir_ref"
  start_server "anllm (ep, sessions)" "$OUT/turns-sessions.log" "${CMD[@]}"
  bench turns "${targs[@]}" --turns "$TURNS" --sessions --session-prefix ref --label sessions \
    --server-pid "$SERVER_PID" --json "$OUT/turns-sessions.json" "$@" >/dev/null
  stop_server
  log "3/3: restart: turns 1-$SPLIT, kill -9, restart on the same --session-dir, turns $((SPLIT + 1))-$TURNS"
  anllm_cmd --anchors ep --session-dir "$dir_rs"
  start_server "anllm (ep, sessions)" "$OUT/turns-restart.log" "${CMD[@]}"
  bench turns "${targs[@]}" --turns "$SPLIT" --sessions --session-prefix restart --label restart-1 \
    --json "$OUT/turns-restart-1.json" "$@" >/dev/null
  stop_server KILL
  start_server "anllm (ep, sessions, restarted)" "$OUT/turns-restart.log" "${CMD[@]}"
  bench turns "${targs[@]}" --turns "$TURNS" --sessions --resume "$OUT/turns-restart-1.json" \
    --label restart-2 --json "$OUT/turns-restart-2.json" "$@" >/dev/null
  stop_server

  bench merge "$OUT/turns-nosessions.json" "$OUT/turns-sessions.json" --json "$OUT/turns.json" \
    >"$OUT/turns-merge.md"
  bench compare "$OUT/turns-sessions.json" "$OUT/turns-restart-1.json" "$OUT/turns-restart-2.json" \
    --json "$OUT/restart-compare.json" >"$OUT/restart-compare.md" || rc=1
  bench compare "$OUT/turns-sessions.json" "$OUT/turns-nosessions.json" \
    --json "$OUT/sessions-vs-none-compare.json" >"$OUT/sessions-vs-none-compare.md" || true
  python3 - "$OUT" "$((SPLIT + 1))" >"$OUT/turns.md" <<'EOF'
import json, sys
out, first = sys.argv[1], int(sys.argv[2])
rs = json.load(open(f"{out}/restart-compare.json"))
sv = json.load(open(f"{out}/sessions-vs-none-compare.json"))
after = [r for r in rs["rows"] if r["turn"] == first]
print("## anllm serve --anchors ep: per-turn TTFT without vs with sessions (median over conversations)\n")
print(open(f"{out}/turns-merge.md").read())
print(f"\nRestart check (kill -9 after turn {first - 1}, same --session-dir): "
      f"{rs['turns'] - rs['mismatches']}/{rs['turns']} turns' greedy text equal to the uninterrupted run"
      f"{'' if rs['mismatches'] == 0 else ' -- MISMATCH'}.")
print(f"Turn {first} after the restart: cached_tokens {[r['cached'] for r in after]} of prompt tokens "
      f"{[r['prompt_tokens'] for r in after]} (uninterrupted run: {[r['ref_cached'] for r in after]}).")
print(f"Sessions vs no sessions: {sv['turns'] - sv['mismatches']}/{sv['turns']} turns' text equal "
      "(informational).")
summary = json.load(open(f"{out}/turns.json"))
summary.update(restart=rs, sessions_vs_none=sv, restart_first_turn=first)
json.dump(summary, open(f"{out}/turns.json", "w"), indent=1)
EOF
  cat "$OUT/turns.md"
  log "results in $OUT"
  return "$rc"
}

fill() {
  warn_if_busy
  anllm_cmd
  start_server anllm "$OUT/fill.log" "${CMD[@]}"
  bench fill --base-url "$URL" --prompt-tokens "$FILL_PROMPT_TOKENS" --max-conversations "$FILL_MAX" \
    --server-pid "$SERVER_PID" --json "$OUT/fill.json" "$@" | tee "$OUT/fill.md"
  stop_server
  log "results in $OUT"
}

[ -f "$MODEL" ] || die "missing model $MODEL: run scripts/fetch-assets.sh first (or set MODEL)"
cmd=sweep
case "${1:-}" in
  sweep|turns|fill) cmd=$1; shift ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  -*|"") ;;
  *) die "usage: $0 [sweep|turns|fill] [serve_bench.py ARGS...]" ;;
esac
mkdir -p "$OUT"
"$cmd" "$@"
