#!/usr/bin/env python3
"""Serving benchmark client for any OpenAI-compatible server (anllm serve, llama-server). Stdlib only.

Modes (each has --help):
  sweep    closed-loop concurrency sweep over SSE: TTFT, TPOT, ITL, E2E percentiles, req/s, tok/s
  turns    multi-turn conversations (X-Session-Id with --sessions): per-turn TTFT, cached_tokens, texts
  fill     capacity: ~4k-token conversations, each its own session, until the server answers 429
  compare  greedy texts of turns runs against a reference turns run (exit 1 on any difference)
  merge    two sweep (or two turns) JSONs side by side with their ratio
Requests stream (stream_options.include_usage). TTFT: to the first non-empty content chunk;
TPOT = (E2E - TTFT) / (completion_tokens - 1), completion_tokens from the final usage chunk (the
number of content chunks when a server sends no usage); ITL: gaps between content chunks; E2E: to
`data: [DONE]` (a stream that ends without it is an error, "no_done"). A markdown table goes to
stdout, progress to stderr, everything (every request's record) to --json.
"""
import argparse, collections, http.client, json, random, statistics, sys, threading, time, urllib.parse

FALLBACK = ("the quick brown fox jumps over a lazy dog while seven wizards quietly judge boxing "
            "matches near old river banks under pale autumn skies").split()


def passage(words, seed, n):
    """n consecutive words (wrapping) from a seeded offset: the same text for the same seed."""
    off = random.Random(seed).randrange(len(words))
    return " ".join(words[(off + i) % len(words)] for i in range(n))


def pct(vals, q):
    v = sorted(x for x in vals if x is not None)
    if not v:
        return None
    k = (len(v) - 1) * q / 100.0
    lo = int(k)
    return v[lo] + (v[min(lo + 1, len(v) - 1)] - v[lo]) * (k - lo)


def med(vals):
    v = [x for x in vals if x is not None]
    return statistics.median(v) if v else None


fmt = lambda x, nd=1: "-" if x is None else f"{x:.{nd}f}"  # noqa: E731
mib = lambda kib: None if kib is None else kib / 1024  # noqa: E731


def rss_kib(pid):
    """(VmRSS, VmHWM) of pid in KiB from /proc/PID/status; Nones without a pid."""
    try:
        with open(f"/proc/{pid}/status") as f:
            kv = dict(line.split(":", 1) for line in f if ":" in line)
        return tuple(int(kv[k].split()[0]) if k in kv else None for k in ("VmRSS", "VmHWM"))
    except OSError:
        return None, None


class Client:
    def __init__(self, base_url, api_key=None, timeout=600.0):
        u = urllib.parse.urlsplit(base_url if "://" in base_url else "http://" + base_url)
        self.cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
        self.host, self.port = u.hostname, u.port or (443 if u.scheme == "https" else 80)
        self.prefix = u.path.rstrip("/")
        self.prefix = self.prefix[:-3] if self.prefix.endswith("/v1") else self.prefix
        self.api_key, self.timeout = api_key, timeout

    def headers(self, session=None):
        h = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.api_key:
            h["Authorization"] = "Bearer " + self.api_key
        if session:
            h["X-Session-Id"] = session
        return h

    def first_model(self):
        c = self.cls(self.host, self.port, timeout=30)
        c.request("GET", self.prefix + "/v1/models", headers=self.headers())
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            sys.exit(f"GET /v1/models: HTTP {r.status}: {body[:200]!r}")
        return json.loads(body)["data"][0]["id"]

    def stream(self, path, body, session=None):
        """One streamed request: its record (timings, text, usage, status, error)."""
        rec = {"status": None, "error": None, "ttft": None, "e2e": None, "tpot": None, "itl": [],
               "text": "", "out_tokens": None, "prompt_tokens": None, "cached_tokens": None,
               "finish_reason": None, "content_chunks": 0, "usage_seen": False, "t_start": time.time()}
        chat, parts, last, done_seen = path.endswith("/chat/completions"), [], None, False
        c = self.cls(self.host, self.port, timeout=self.timeout)
        t0 = time.perf_counter()
        try:
            c.request("POST", self.prefix + path, body=json.dumps(body).encode(),
                      headers=self.headers(session))
            r = c.getresponse()
            rec["status"] = r.status
            if r.status != 200:
                rec["error"] = r.read()[:500].decode("utf-8", "replace")
                return rec
            data, eof = [], False
            while not eof and not done_seen:
                raw = r.readline()
                eof = not raw  # at EOF a last event without its blank line still counts
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line.startswith(":"):
                    continue  # SSE comment (keep-alive)
                if line.startswith("error:"):  # llama-server's in-stream error line
                    rec["status"], rec["error"] = "stream_error", line[6:].strip()[:500]
                    break
                if line.startswith("data:"):
                    data.append(line[6:] if line.startswith("data: ") else line[5:])
                    continue
                if line or not data:
                    continue  # event:/id: fields, or a blank line with no event pending
                payload, data, now = "\n".join(data), [], time.perf_counter()
                if payload.strip() == "[DONE]":
                    done_seen = True
                    break
                ev = json.loads(payload)
                if ev.get("error"):
                    rec["status"], rec["error"] = "stream_error", json.dumps(ev["error"])[:500]
                    break
                for ch in ev.get("choices") or []:
                    piece = (ch.get("delta") or {}).get("content") if chat else ch.get("text")
                    if piece:
                        parts.append(piece)
                        rec["content_chunks"] += 1
                        if last is None:
                            rec["ttft"] = now - t0
                        else:
                            rec["itl"].append(now - last)
                        last = now
                    rec["finish_reason"] = ch.get("finish_reason") or rec["finish_reason"]
                u = ev.get("usage")
                if u:
                    rec["usage_seen"], rec["out_tokens"] = True, u.get("completion_tokens")
                    rec["prompt_tokens"] = u.get("prompt_tokens")
                    rec["cached_tokens"] = (u.get("prompt_tokens_details") or {}).get("cached_tokens")
            rec["e2e"] = time.perf_counter() - t0
            if not done_seen and rec["error"] is None:
                rec["status"], rec["error"] = "no_done", "stream ended without data: [DONE]"
        except (OSError, http.client.HTTPException, ValueError) as e:
            rec["status"] = "conn_error" if rec["status"] in (None, 200) else rec["status"]
            rec["error"] = f"{type(e).__name__}: {e}"
        finally:
            c.close()
        rec["text"] = "".join(parts)
        if rec["out_tokens"] is None:
            rec["out_tokens"] = rec["content_chunks"]
        if rec["error"] is None and rec["ttft"] is not None and rec["out_tokens"] > 1:
            rec["tpot"] = (rec["e2e"] - rec["ttft"]) / (rec["out_tokens"] - 1)
        return rec


def request(a, cl, model, content, session=None):
    body = {"model": model, "max_tokens": a.max_tokens, "temperature": a.temperature,
            "seed": a.seed, "stream": True, "stream_options": {"include_usage": True}}
    if a.endpoint == "chat":
        user = [{"role": "user", "content": content}]
        body["messages"] = content if isinstance(content, list) else user
        return cl.stream("/v1/chat/completions", body, session)
    body["prompt"] = content if isinstance(content, str) else "\n\n".join(m["content"] for m in content)
    return cl.stream("/v1/completions", body, session)


def run_parallel(n, fn):
    ts = [threading.Thread(target=fn, daemon=True) for _ in range(max(1, n))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def sweep_prompt(a, words, i):
    return (f"Here are some notes:\n\n{passage(words, f'{a.seed}-req{i}', a.prompt_words)}\n\n"
            f"Write a long, detailed essay of at least {2 * a.max_tokens} words that expands on "
            "these notes. Do not stop early.")


def summarize_level(recs, wall, c):
    ok = [r for r in recs if r["error"] is None]
    errors = dict(collections.Counter(str(r["status"]) for r in recs if r["error"] is not None))
    ms = lambda xs: [x * 1000 for x in xs if x is not None]  # noqa: E731
    s = {"concurrency": c, "requests": len(recs), "ok": len(ok), "errors": errors,
         "n_429": errors.get("429", 0), "wall_s": wall, "req_per_s": len(ok) / wall,
         "out_tok_per_s": sum(r["out_tokens"] for r in ok) / wall,
         "out_tokens_p50": med([r["out_tokens"] for r in ok]),
         "prompt_tokens_p50": med([r["prompt_tokens"] for r in ok]),
         "no_usage": sum(1 for r in ok if not r["usage_seen"])}
    series = {"ttft_ms": ms(r["ttft"] for r in ok), "tpot_ms": ms(r["tpot"] for r in ok),
              "itl_ms": ms(g for r in ok for g in r["itl"]), "e2e_ms": ms(r["e2e"] for r in ok)}
    for name, vals in series.items():
        s[name] = {f"p{q}": pct(vals, q) for q in (50, 90, 99)}
    return s


def run_sweep(a, cl, model, words):
    levels, next_i = [], [0]
    for i in range(a.warmup):
        request(a, cl, model, sweep_prompt(a, words, -1 - i))
    for c in [int(x) for x in a.concurrency.split(",")]:
        n_req = a.requests_per_level or (0 if a.duration else 4 * c)
        recs, lock, issued = [], threading.Lock(), [0]
        rss0, _ = rss_kib(a.server_pid)
        t0 = time.perf_counter()
        deadline = t0 + a.duration if a.duration else None

        def worker():
            while True:
                with lock:
                    if (n_req and issued[0] >= n_req) or (deadline and time.perf_counter() >= deadline):
                        return
                    issued[0], i = issued[0] + 1, next_i[0]
                    next_i[0] += 1
                r = request(a, cl, model, sweep_prompt(a, words, i))
                r.update(concurrency=c, index=i)
                with lock:
                    recs.append(r)

        run_parallel(c, worker)
        s = summarize_level(recs, time.perf_counter() - t0, c)
        rss1, hwm = rss_kib(a.server_pid)
        s.update(rss_before_kib=rss0, rss_after_kib=rss1, hwm_after_kib=hwm)
        levels.append({"summary": s, "records": sorted(recs, key=lambda r: r["index"])})
        print(f"c={c}: {s['ok']}/{s['requests']} ok, {fmt(s['req_per_s'], 2)} req/s, "
              f"{fmt(s['out_tok_per_s'])} tok/s, errors {s['errors']}", file=sys.stderr)
    return {"levels": levels}


def sweep_table(res):
    out = ["| c | ok/n | errors | 429 | req/s | out tok/s | out tok p50 | TTFT p50/p90/p99 ms "
           "| TPOT p50/p90/p99 ms | ITL p50/p90/p99 ms | E2E p50 ms | RSS MiB before/after |",
           "|" + "---:|" * 12]
    for lv in res["levels"]:
        s = lv["summary"]
        trio = lambda k: "/".join(fmt(s[k][f"p{q}"]) for q in (50, 90, 99))  # noqa: E731
        err = ", ".join(f"{k}: {v}" for k, v in sorted(s["errors"].items())) or "0"
        out.append(f"| {s['concurrency']} | {s['ok']}/{s['requests']} | {err} | {s['n_429']} "
                   f"| {fmt(s['req_per_s'], 2)} | {fmt(s['out_tok_per_s'])} "
                   f"| {fmt(s['out_tokens_p50'], 0)} | {trio('ttft_ms')} | {trio('tpot_ms')} "
                   f"| {trio('itl_ms')} | {fmt(s['e2e_ms']['p50'])} "
                   f"| {fmt(mib(s['rss_before_kib']))}/{fmt(mib(s['rss_after_kib']))} |")
    return "\n".join(out)


def turn_message(a, words, conv, turn):
    text = passage(words, f"{a.seed}-conv{conv}-turn{turn}", a.turn_words)
    return f"{text}\n\nIn a few sentences, what is the passage above about?"


def run_turns(a, cl, model, words):
    if a.resume:
        with open(a.resume) as f:
            convs = json.load(f)["conversations"]
    else:
        convs = [{"id": i, "session": f"{a.session_prefix}-conv{i}", "messages": [], "turns_done": 0}
                 for i in range(a.conversations)]
    recs, lock, todo = [], threading.Lock(), list(convs)

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                cv = todo.pop(0)
            for t in range(cv["turns_done"] + 1, a.turns + 1):
                user = turn_message(a, words, cv["id"], t)
                msgs = cv["messages"] + [{"role": "user", "content": user}]
                r = request(a, cl, model, msgs, cv["session"] if a.sessions else None)
                r.update(conv=cv["id"], turn=t, sessions=a.sessions)
                with lock:
                    recs.append(r)
                print(f"conv {cv['id']} turn {t}: HTTP {r['status']}, TTFT "
                      f"{fmt(r['ttft'] and r['ttft'] * 1000)} ms, cached {r['cached_tokens']} of "
                      f"{r['prompt_tokens']}", file=sys.stderr)
                if r["error"] is not None:
                    break
                cv["messages"] = msgs + [{"role": "assistant", "content": r["text"]}]
                cv["turns_done"] = t

    run_parallel(a.concurrency, worker)
    recs.sort(key=lambda r: (r["conv"], r["turn"]))
    per_turn = []
    for t in sorted({r["turn"] for r in recs}):
        rs = [r for r in recs if r["turn"] == t]
        ok = [r for r in rs if r["error"] is None]
        per_turn.append({"turn": t, "n": len(rs), "ok": len(ok),
                         "ttft_ms_p50": med([r["ttft"] * 1000 for r in ok if r["ttft"] is not None]),
                         "cached_tokens_p50": med([r["cached_tokens"] for r in ok]),
                         "cached_tokens": [r["cached_tokens"] for r in ok],
                         "prompt_tokens_p50": med([r["prompt_tokens"] for r in ok]),
                         "out_tokens_p50": med([r["out_tokens"] for r in ok])})
    return {"sessions": a.sessions, "conversations": convs, "records": recs, "per_turn": per_turn}


def turns_table(res):
    out = ["| turn | ok/n | TTFT p50 ms | cached tokens p50 (each conversation) | prompt tokens p50 "
           "| out tokens p50 |", "|---:|---:|---:|---:|---:|---:|"]
    for p in res["per_turn"]:
        out.append(f"| {p['turn']} | {p['ok']}/{p['n']} | {fmt(p['ttft_ms_p50'])} | "
                   f"{fmt(p['cached_tokens_p50'], 0)} ({', '.join(map(str, p['cached_tokens']))}) | "
                   f"{fmt(p['prompt_tokens_p50'], 0)} | {fmt(p['out_tokens_p50'], 0)} |")
    return "\n".join(out)


def run_fill(a, cl, model, words):
    held, recs, wpt, seen = 0, [], 1 / 1.4, [0, 0]  # words per token, calibrated on each answer
    a.max_tokens = 1
    for i in range(a.max_conversations):
        n_words = max(1, int(a.prompt_tokens * wpt))
        text = passage(words, f"{a.seed}-fill{i}", n_words) + "\n\nSummarize."
        msgs = [{"role": "user", "content": text}]
        r = request(a, cl, model, msgs, f"{a.session_prefix}-fill{i}")
        r.update(conv=i, session=f"{a.session_prefix}-fill{i}", messages=msgs)
        r["rss_kib"], r["hwm_kib"] = rss_kib(a.server_pid)
        recs.append(r)
        print(f"fill {i}: HTTP {r['status']}, {r['prompt_tokens']} prompt tokens, E2E "
              f"{fmt(r['e2e'] and r['e2e'] * 1000)} ms, RSS {fmt(mib(r['rss_kib']))} MiB",
              file=sys.stderr)
        if r["error"] is not None:
            break
        held += 1
        if r["prompt_tokens"]:
            seen = [seen[0] + n_words, seen[1] + r["prompt_tokens"]]
            wpt = seen[0] / seen[1]
    probe = None
    if held and not a.no_probe:  # is the first (oldest) conversation still held?
        first = recs[0]
        msgs = first["messages"] + [{"role": "assistant", "content": first["text"]},
                                    {"role": "user", "content": "Thanks."}]
        probe = request(a, cl, model, msgs, first["session"])
    stop = recs[-1]["status"] if recs and recs[-1]["error"] is not None else "max_conversations"
    return {"held": held, "stopped_by": stop, "records": recs, "probe_first": probe}


def fill_table(res):
    ok = [r for r in res["records"] if r["error"] is None]
    last, p = (res["records"] or [{}])[-1], res["probe_first"]
    return "\n".join([
        "| held conversations | stopped by | prompt tokens p50 | E2E p50 ms | RSS MiB at end "
        "| follow-up on the first: HTTP, cached/prompt |", "|---:|---|---:|---:|---:|---|",
        f"| {res['held']} | {res['stopped_by']} | {fmt(med([r['prompt_tokens'] for r in ok]), 0)} "
        f"| {fmt(med([r['e2e'] * 1000 for r in ok]))} | {fmt(mib(last.get('rss_kib')))} | "
        + (f"{p['status']}, {p['cached_tokens']}/{p['prompt_tokens']} |" if p else "- |")])


def run_compare(a):
    with open(a.ref) as f:
        ref = {(r["conv"], r["turn"]): r for r in json.load(f)["records"] if r["error"] is None}
    got = {}
    for name in a.runs:
        with open(name) as f:
            got.update({(r["conv"], r["turn"]): r for r in json.load(f)["records"]})
    rows = []
    for k in sorted(ref):
        g = got.get(k) or {}
        rows.append({"conv": k[0], "turn": k[1], "ref_cached": ref[k]["cached_tokens"],
                     "equal": g.get("error", 1) is None and g["text"] == ref[k]["text"],
                     "cached": g.get("cached_tokens"), "prompt_tokens": g.get("prompt_tokens")})
    bad = sum(not r["equal"] for r in rows)
    lines = ["| conv | turn | text equal | cached (reference) | cached (run) | prompt tokens (run) |",
             "|---:|---:|---|---:|---:|---:|"]
    lines += [f"| {r['conv']} | {r['turn']} | {'yes' if r['equal'] else 'NO'} | {r['ref_cached']} "
              f"| {r['cached']} | {r['prompt_tokens']} |" for r in rows]
    lines.append(f"\n{len(rows) - bad}/{len(rows)} turns equal to the reference")
    return {"rows": rows, "mismatches": bad, "turns": len(rows)}, "\n".join(lines), 1 if bad else 0


def run_merge(a):
    runs = []
    for name in a.files:
        with open(name) as f:
            runs.append(json.load(f))
    la, lb = a.labels.split(",") if a.labels else [r.get("label") or n for r, n in zip(runs, a.files)]
    if runs[0]["mode"] == "turns":
        return merge_turns(runs, la, lb)
    metrics = [("req/s", lambda s: s["req_per_s"]), ("out tok/s", lambda s: s["out_tok_per_s"])]
    for k in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
        metrics += [(f"{k[:-3].upper()} p{q} ms", lambda s, k=k, q=q: s[k][f"p{q}"])
                    for q in (50, 90, 99)]
    metrics += [("out tokens p50", lambda s: s["out_tokens_p50"]),
                ("prompt tokens p50", lambda s: s["prompt_tokens_p50"]),
                ("errors", lambda s: sum(s["errors"].values())), ("429s", lambda s: s["n_429"]),
                ("RSS after MiB", lambda s: mib(s["rss_after_kib"]))]
    by_c = [{lv["summary"]["concurrency"]: lv["summary"] for lv in r["levels"]} for r in runs]
    lines, rows = [f"| c | metric | {la} | {lb} | {la}/{lb} |", "|---:|---|---:|---:|---:|"], []
    for c in sorted(set(by_c[0]) & set(by_c[1])):
        for name, f in metrics:
            x, y = f(by_c[0][c]), f(by_c[1][c])
            ratio = x / y if x is not None and y else None
            rows.append({"concurrency": c, "metric": name, la: x, lb: y, "ratio": ratio})
            lines.append(f"| {c} | {name} | {fmt(x, 2)} | {fmt(y, 2)} | {fmt(ratio, 2)} |")
    return {"labels": [la, lb], "rows": rows, "runs": runs}, "\n".join(lines), 0


def merge_turns(runs, la, lb):
    by_t = [{p["turn"]: p for p in r["per_turn"]} for r in runs]
    lines, rows = [f"| turn | TTFT p50 ms {la} | {lb} | {la}/{lb} | cached p50 {la} | {lb} "
                   f"| prompt tokens p50 {la} | {lb} |", "|" + "---:|" * 8], []
    for t in sorted(set(by_t[0]) & set(by_t[1])):
        x, y = by_t[0][t], by_t[1][t]
        ratio = x["ttft_ms_p50"] / y["ttft_ms_p50"] if x["ttft_ms_p50"] and y["ttft_ms_p50"] else None
        rows.append({"turn": t, la: x, lb: y, "ttft_ratio": ratio})
        lines.append(f"| {t} | {fmt(x['ttft_ms_p50'])} | {fmt(y['ttft_ms_p50'])} | {fmt(ratio, 2)} "
                     f"| {fmt(x['cached_tokens_p50'], 0)} | {fmt(y['cached_tokens_p50'], 0)} "
                     f"| {fmt(x['prompt_tokens_p50'], 0)} | {fmt(y['prompt_tokens_p50'], 0)} |")
    return {"labels": [la, lb], "rows": rows, "runs": runs}, "\n".join(lines), 0


# (flag, default, help): type from the default; False = a switch; a positional's "default" = nargs
NET = [("--base-url", "http://127.0.0.1:8080", None),
       ("--model", None, "default: the first id of GET /v1/models"),
       ("--api-key", None, None), ("--json", None, "write every record and the summary here"),
       ("--label", None, "name of this run (merge shows it)"),
       ("--server-pid", 0, "report this process's VmRSS before/after"), ("--seed", 1, None),
       ("--endpoint", "chat", "chat (messages) or completions (prompt)"), ("--temperature", 0.0, None),
       ("--timeout", 600.0, "socket timeout, s"),
       ("--words-file", "/usr/share/common-licenses/GPL-3", "seeded text is drawn from its words"),
       ("--session-prefix", "bench", "X-Session-Id = PREFIX-convI (turns), PREFIX-fillI (fill)")]
MODES = {
    "sweep": ("closed-loop concurrency sweep", True, [
        ("--concurrency", "1,2,4,8,16", None),
        ("--requests-per-level", 0, "default 4*c (none with --duration)"),
        ("--duration", 0.0, "seconds per level"), ("--max-tokens", 128, None),
        ("--prompt-words", 128, None),
        ("--warmup", 1, "unrecorded requests before the sweep")]),
    "turns": ("multi-turn conversations", True, [
        ("--conversations", 2, None), ("--turns", 20, "the last turn to run (1-based)"),
        ("--turn-words", 60, None), ("--max-tokens", 48, None),
        ("--concurrency", 1, "conversations at once"),
        ("--sessions", False, "send X-Session-Id"),
        ("--resume", None, "a turns JSON: continue its conversations after their last turn")]),
    "fill": ("conversations held until 429", True, [
        ("--prompt-tokens", 4096, None), ("--max-conversations", 1000, None),
        ("--no-probe", False, "no follow-up on the first conversation at the end")]),
    "compare": ("turns runs (merged) against a reference turns run", False, [
        ("ref", None, None), ("runs", "+", None), ("--json", None, None)]),
    "merge": ("two sweep (or two turns) JSONs side by side", False, [
        ("files", 2, None), ("--labels", None, "A,B (default: their --label)"), ("--json", None, None)]),
}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    for mode, (helptext, net, args) in MODES.items():
        p = sub.add_parser(mode, help=helptext)
        for flag, default, h in (NET if net else []) + args:
            if not flag.startswith("-"):
                p.add_argument(flag, **({"nargs": default} if default else {}))
            elif default is False:
                p.add_argument(flag, action="store_true", help=h)
            elif default is None:
                p.add_argument(flag, help=h)
            else:
                p.add_argument(flag, type=type(default), default=default, help=h)
    return ap.parse_args()


def main():
    a = parse_args()
    if getattr(a, "endpoint", "chat") not in ("chat", "completions"):
        sys.exit(f"--endpoint must be chat or completions, not {a.endpoint!r}")
    if a.mode in ("compare", "merge"):
        res, table, rc = (run_compare if a.mode == "compare" else run_merge)(a)
    else:
        cl = Client(a.base_url, a.api_key, a.timeout)
        try:
            with open(a.words_file, encoding="utf-8", errors="replace") as f:
                words = f.read().split() or FALLBACK
        except OSError:
            words = FALLBACK
        model, t0 = a.model or cl.first_model(), time.time()
        res = {"sweep": run_sweep, "turns": run_turns, "fill": run_fill}[a.mode](a, cl, model, words)
        res.update(mode=a.mode, label=a.label, model=model, base_url=a.base_url, started=t0,
                   wall_s=time.time() - t0, config={k: v for k, v in vars(a).items() if k != "api_key"})
        table, rc = {"sweep": sweep_table, "turns": turns_table, "fill": fill_table}[a.mode](res), 0
    print(table)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    return rc


if __name__ == "__main__":
    sys.exit(main())
