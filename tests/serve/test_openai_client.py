#!/usr/bin/env python3
"""Compatibility test of `anllm serve` against the official `openai` Python client.

A plain script (no pytest): runs every `test_*` function below in file order (or only those named
on the command line), prints PASS/FAIL/SKIP per test with the reason, closes with the line
`openai-client: N passed, N failed[, N skipped]` and exits 1 if any test failed.

Environment:
  ANLLM_SERVE_URL  the server's OpenAI base URL, e.g. http://127.0.0.1:8080/v1 (required)
  ANLLM_API_KEY    the key the server was started with (optional; the 401 test is skipped without)

Usually run through tests/serve/openai_client.sh, which sets up the pinned venv and the server.
Generation lengths stay small (max_tokens 2-24): the model runs on two CPU cores.
"""
import json
import os
import sys
import time
import traceback
import urllib.error
import urllib.request
import uuid

import openai

BASE = os.environ.get("ANLLM_SERVE_URL", "").rstrip("/")
if not BASE:
    sys.exit("test_openai_client: set ANLLM_SERVE_URL (e.g. http://127.0.0.1:8080/v1)")
KEY = os.environ.get("ANLLM_API_KEY") or None
# The root of the server (where /health lives): the base URL without its /v1.
ROOT = BASE[: -len("/v1")] if BASE.endswith("/v1") else BASE

client = openai.OpenAI(base_url=BASE, api_key=KEY or "no-key", max_retries=0, timeout=120)

# Prompts chosen so that a greedy answer is long (hits max_tokens, not the end of turn).
SEA = [{"role": "user", "content": "Write a long paragraph about the sea and the ships on it."}]
COUNT = [{"role": "user", "content": "Count from one to fifty in words, separated by commas."}]
FRANCE = "The capital of France is"


class Skip(Exception):
    """Raised by a test that does not apply (reported as SKIP)."""


_cache = {}


def model():
    """The first model the server lists; used as the model name everywhere."""
    if "model" not in _cache:
        _cache["model"] = client.models.list().data[0].id
    return _cache["model"]


def chat(messages, **kw):
    kw.setdefault("max_tokens", 16)
    kw.setdefault("temperature", 0)
    return client.chat.completions.create(model=model(), messages=messages, **kw)


def greedy_sea():
    """The non-streamed greedy answer to SEA (max_tokens 16), shared by several tests."""
    if "sea" not in _cache:
        _cache["sea"] = chat(SEA)
    return _cache["sea"]


def check_usage(usage, what):
    assert usage is not None, f"{what}: usage is missing"
    assert usage.prompt_tokens > 0, f"{what}: usage.prompt_tokens = {usage.prompt_tokens}"
    assert usage.completion_tokens > 0, f"{what}: usage.completion_tokens = {usage.completion_tokens}"
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens, (
        f"{what}: total_tokens {usage.total_tokens} != {usage.prompt_tokens} + {usage.completion_tokens}")


def cached_tokens(usage):
    details = usage.prompt_tokens_details
    return None if details is None else details.cached_tokens


def check_error_body(err, what):
    """The error JSON is {"error": {"message", "type", "param", "code"}}; the client unwraps it."""
    body = err.body
    assert isinstance(body, dict), f"{what}: error body is not an object: {body!r}"
    for field in ("message", "type", "param", "code"):
        assert field in body, f"{what}: error object lacks {field!r}: {body!r}"
    assert isinstance(body["message"], str) and body["message"], f"{what}: empty message: {body!r}"


def expect_error(cls, what, fn):
    """Runs fn, which must raise `cls`; returns the exception."""
    try:
        fn()
    except cls as e:
        check_error_body(e, what)
        return e
    except openai.APIStatusError as e:
        raise AssertionError(f"{what}: expected {cls.__name__}, got {type(e).__name__} "
                             f"(HTTP {e.status_code}): {e.body!r}") from None
    raise AssertionError(f"{what}: expected {cls.__name__}, the request succeeded")


def raw(method, path, key=KEY):
    """A plain HTTP request to BASE + path (or ROOT + path for /health); returns (status, JSON or text)."""
    url = (ROOT if path == "/health" else BASE) + path
    req = urllib.request.Request(url, method=method)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            status, data = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, data = e.code, e.read()
    try:
        return status, json.loads(data) if data else None
    except ValueError:
        return status, data.decode("utf-8", "replace")


# ---- tests, run in this order ----


def test_health():
    status, body = raw("GET", "/health", key=None)
    assert status == 200, f"GET /health (no key) -> {status} {body!r}"
    assert isinstance(body, dict) and body.get("status") == "ok", f"GET /health body {body!r}"


def test_models_list():
    models = client.models.list()
    assert len(models.data) >= 1, f"no models listed: {models!r}"
    first = models.data[0]
    assert isinstance(first.id, str) and first.id, f"model id {first.id!r}"
    assert first.object == "model", f"model object {first.object!r}"
    _cache["model"] = first.id


def test_chat():
    r = greedy_sea()
    assert r.object == "chat.completion", f"object {r.object!r}"
    assert isinstance(r.id, str) and r.id, f"id {r.id!r}"
    assert len(r.choices) == 1, f"{len(r.choices)} choices"
    c = r.choices[0]
    assert c.index == 0, f"choice index {c.index}"
    assert c.message.role == "assistant", f"role {c.message.role!r}"
    assert isinstance(c.message.content, str) and c.message.content, f"content {c.message.content!r}"
    assert c.finish_reason in ("stop", "length"), f"finish_reason {c.finish_reason!r}"
    check_usage(r.usage, "chat")


def test_chat_stream():
    ref = greedy_sea()
    stream = chat(SEA, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks, "no chunks"
    for ch in chunks:
        assert ch.object == "chat.completion.chunk", f"chunk object {ch.object!r}"
    assert len({ch.id for ch in chunks}) == 1, f"chunk ids differ: {sorted({ch.id for ch in chunks})}"
    first = chunks[0]
    assert first.choices and first.choices[0].delta.role == "assistant", (
        f"first chunk's delta has no role assistant: {first!r}")
    with_choices = [ch for ch in chunks if ch.choices]
    text = "".join(ch.choices[0].delta.content or "" for ch in with_choices)
    want = ref.choices[0].message.content
    assert text == want, f"streamed text {text!r} != non-streamed {want!r}"
    finishes = [ch.choices[0].finish_reason for ch in with_choices if ch.choices[0].finish_reason]
    assert len(finishes) == 1, f"{len(finishes)} chunks carry a finish_reason: {finishes}"
    assert finishes[0] == ref.choices[0].finish_reason, (
        f"finish_reason {finishes[0]!r} != non-streamed {ref.choices[0].finish_reason!r}")
    last = chunks[-1]
    assert last.choices == [], f"last chunk has choices (include_usage wants []): {last!r}"
    check_usage(last.usage, "stream usage")
    assert last.usage.completion_tokens == ref.usage.completion_tokens, (
        f"streamed completion_tokens {last.usage.completion_tokens} != {ref.usage.completion_tokens}")
    assert last.usage.prompt_tokens == ref.usage.prompt_tokens, (
        f"streamed prompt_tokens {last.usage.prompt_tokens} != {ref.usage.prompt_tokens}")
    early = [i for i, ch in enumerate(chunks[:-1]) if ch.usage is not None]
    assert not early, f"chunks {early} before the last carry usage"


def test_max_tokens():
    for kw, n in (({"max_tokens": 3}, 3), ({"max_completion_tokens": 2}, 2),
                  ({"max_tokens": 5, "max_completion_tokens": 2}, 2)):
        r = chat(COUNT, **kw)
        c = r.choices[0]
        assert c.finish_reason == "length", f"{kw}: finish_reason {c.finish_reason!r}"
        assert r.usage.completion_tokens == n, f"{kw}: completion_tokens {r.usage.completion_tokens} != {n}"


def test_stop():
    full = chat(SEA, max_tokens=24).choices[0].message.content
    words = [w.strip(".,;:!?\"'()") for w in full.split()]
    # Words that first occur (as a substring) strictly inside the answer, nearest the middle first.
    cands = [w for w in words if len(w) >= 3 and w.isalpha() and full.find(w) > 0]
    assert cands, f"no usable stop word in {full!r}"
    word = min(cands, key=lambda w: abs(full.find(w) - len(full) // 2))
    want = full[: full.find(word)]
    r = chat(SEA, max_tokens=24, stop=[word])
    got, reason = r.choices[0].message.content, r.choices[0].finish_reason
    assert word not in got, f"stop={word!r}: answer still contains it: {got!r}"
    assert got == want, f"stop={word!r}: answer {got!r} != prefix {want!r} (full: {full!r})"
    assert reason == "stop", f"stop={word!r}: finish_reason {reason!r}"


def test_seed():
    a = chat(SEA, temperature=0.9, seed=7).choices[0].message.content
    b = chat(SEA, temperature=0.9, seed=7).choices[0].message.content
    assert a == b, f"seed 7 at temperature 0.9 gave {a!r} then {b!r}"


def test_penalties():
    """OpenAI's frequency/presence penalties (and llama-server's repeat fields, as extra_body)
    reach the sampler: the greedy answer changes, and repeats fewer of its tokens."""
    def tokens(**kw):
        r = chat(SEA, max_tokens=32, logprobs=True, **kw)
        return [e.token for e in r.choices[0].logprobs.content]
    plain = tokens()
    pen = tokens(frequency_penalty=1.5, presence_penalty=1.5,
                 extra_body={"repeat_penalty": 1.3, "repeat_last_n": -1})
    assert pen != plain, f"penalties changed nothing: {plain!r}"
    repeats = lambda t: len(t) - len(set(t))
    assert repeats(pen) < repeats(plain), f"penalized {pen!r} repeats no less than {plain!r}"
    expect_error(openai.BadRequestError, "frequency_penalty=3",
                 lambda: chat(SEA, max_tokens=4, frequency_penalty=3))


def test_logit_bias():
    """logit_bias +100 on one token id makes greedy decoding write only that token."""
    r = chat(SEA, max_tokens=4, logprobs=True, logit_bias={"1000": 100})
    toks = [e.token for e in r.choices[0].logprobs.content]
    assert len(toks) == 4 and len(set(toks)) == 1, f"logit_bias 1000:+100 gave {toks!r}"
    expect_error(openai.BadRequestError, "logit_bias=101",
                 lambda: chat(SEA, max_tokens=4, logit_bias={"1000": 101}))


def test_chat_logprobs():
    r = chat(COUNT, max_tokens=8, logprobs=True, top_logprobs=2)
    c = r.choices[0]
    assert c.logprobs is not None and c.logprobs.content is not None, f"no logprobs.content: {c!r}"
    entries = c.logprobs.content
    assert len(entries) == r.usage.completion_tokens, (
        f"{len(entries)} logprob entries != completion_tokens {r.usage.completion_tokens}")
    joined = b""
    for i, e in enumerate(entries):
        assert isinstance(e.token, str), f"entry {i}: token {e.token!r}"
        assert e.logprob <= 0, f"entry {i}: logprob {e.logprob} > 0"
        assert isinstance(e.bytes, list), f"entry {i}: bytes {e.bytes!r}"
        joined += bytes(e.bytes)
        assert len(e.top_logprobs) == 2, f"entry {i}: {len(e.top_logprobs)} top_logprobs"
        best = max(t.logprob for t in e.top_logprobs)
        assert all(t.logprob <= 0 for t in e.top_logprobs), f"entry {i}: top logprob > 0"
        assert abs(e.logprob - best) <= 1e-4, (
            f"entry {i} ({e.token!r}): greedy token logprob {e.logprob} != best top logprob {best}")
    text = joined.decode("utf-8", "replace")
    assert text == c.message.content, f"token bytes spell {text!r}, content is {c.message.content!r}"


def test_completions():
    r = client.completions.create(model=model(), prompt=FRANCE, max_tokens=8, temperature=0)
    assert r.object == "text_completion", f"object {r.object!r}"
    assert len(r.choices) == 1, f"{len(r.choices)} choices"
    c = r.choices[0]
    assert isinstance(c.text, str) and c.text, f"text {c.text!r}"
    assert c.finish_reason in ("stop", "length"), f"finish_reason {c.finish_reason!r}"
    check_usage(r.usage, "completions")
    _cache["france"] = r


def test_completions_stream():
    ref = _cache.get("france") or client.completions.create(
        model=model(), prompt=FRANCE, max_tokens=8, temperature=0)
    chunks = list(client.completions.create(model=model(), prompt=FRANCE, max_tokens=8,
                                            temperature=0, stream=True))
    assert chunks, "no chunks"
    text = "".join(ch.choices[0].text for ch in chunks if ch.choices)
    assert text == ref.choices[0].text, f"streamed {text!r} != non-streamed {ref.choices[0].text!r}"
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert len(finishes) == 1, f"{len(finishes)} chunks carry a finish_reason: {finishes}"


def test_completions_logprobs():
    r = client.completions.create(model=model(), prompt=FRANCE, max_tokens=8, temperature=0, logprobs=2)
    c = r.choices[0]
    lp = c.logprobs
    assert lp is not None, "no logprobs"
    n = r.usage.completion_tokens
    lens = {k: len(getattr(lp, k) or []) for k in ("tokens", "token_logprobs", "top_logprobs", "text_offset")}
    assert set(lens.values()) == {n}, f"lengths {lens} != completion_tokens {n}"
    assert "".join(lp.tokens) == c.text, f"tokens {lp.tokens!r} do not spell {c.text!r}"
    assert all(x <= 0 for x in lp.token_logprobs), f"token_logprobs > 0: {lp.token_logprobs}"
    for i, (lpv, top) in enumerate(zip(lp.token_logprobs, lp.top_logprobs)):
        assert isinstance(top, dict) and 1 <= len(top) <= 3, f"top_logprobs[{i}] = {top!r}"
        assert abs(lpv - max(top.values())) <= 1e-4, f"greedy token {i}: {lpv} != best {max(top.values())}"
    offs = lp.text_offset
    assert all(isinstance(o, int) for o in offs) and offs == sorted(offs), f"text_offset {offs}"


def test_error_n():
    e = expect_error(openai.BadRequestError, "n=2", lambda: chat(SEA, max_tokens=4, n=2))
    assert e.status_code == 400


def test_error_unknown_model():
    expect_error(openai.NotFoundError, "unknown model", lambda: client.chat.completions.create(
        model="no-such-model-" + uuid.uuid4().hex[:8], messages=SEA, max_tokens=4))


def test_error_auth():
    if not KEY:
        raise Skip("ANLLM_API_KEY not set")
    bad = openai.OpenAI(base_url=BASE, api_key="wrong", max_retries=0, timeout=120)
    expect_error(openai.AuthenticationError, "wrong key", lambda: bad.models.list())
    expect_error(openai.AuthenticationError, "wrong key (chat)",
                 lambda: bad.chat.completions.create(model=model(), messages=SEA, max_tokens=4))
    status, body = raw("GET", "/models", key=None)
    assert status == 401, f"GET /models without a key -> {status} {body!r}"


def test_error_context_length():
    e = expect_error(openai.BadRequestError, "over-long prompt", lambda: client.completions.create(
        model=model(), prompt="word " * 10000, max_tokens=8))
    assert e.code == "context_length_exceeded", f"code {e.code!r} (body {e.body!r})"


def test_error_temperature():
    expect_error(openai.BadRequestError, "temperature=-1", lambda: chat(SEA, max_tokens=4, temperature=-1))


def _session_turns(sid, how):
    """Two chat turns in session `sid` (named by header or body, per `how`); returns both usages."""
    kw = {"extra_headers": {"X-Session-Id": sid}} if how == "header" else {"extra_body": {"session_id": sid}}
    u1 = {"role": "user", "content": "My name is Ada and I like boats. Say hello to me."}
    r1 = chat([u1], max_tokens=12, **kw)
    a1 = {"role": "assistant", "content": r1.choices[0].message.content}
    u2 = {"role": "user", "content": "What is my name?"}
    r2 = chat([u1, a1, u2], max_tokens=12, **kw)
    c1, c2 = cached_tokens(r1.usage), cached_tokens(r2.usage)
    assert c1 in (0, None), f"{how}: turn 1 of a new session has cached_tokens {c1}"
    assert c2 is not None and c2 > 0, (
        f"{how}: turn 2 has cached_tokens {c2!r} (usage {r2.usage!r}); the session cache was not reused")
    assert c2 <= r2.usage.prompt_tokens, f"{how}: cached_tokens {c2} > prompt_tokens {r2.usage.prompt_tokens}"
    check_usage(r2.usage, f"{how}: turn 2")


def _session_ids(body):
    """Session ids in a GET /sessions body: {"data": [...]}, {"sessions": [...]} or a bare list."""
    items = body
    if isinstance(body, dict):
        items = body.get("data", body.get("sessions"))
    assert isinstance(items, list), f"GET /sessions body is not a list of sessions: {body!r}"
    return [it.get("id") if isinstance(it, dict) else it for it in items]


def test_sessions():
    sid, sid2 = "test-" + uuid.uuid4().hex, "test-" + uuid.uuid4().hex
    _session_turns(sid, "header")
    _session_turns(sid2, "body")
    status, body = raw("GET", f"/sessions/{sid}")
    assert status == 200, f"GET /sessions/{sid} -> {status} {body!r}"
    assert isinstance(body, dict) and body.get("id") == sid, f"GET /sessions/{sid} body {body!r}"
    status, body = raw("GET", "/sessions")
    assert status == 200, f"GET /sessions -> {status} {body!r}"
    ids = _session_ids(body)
    assert sid in ids and sid2 in ids, f"GET /sessions lacks {sid} or {sid2}: {ids}"
    for s in (sid, sid2):
        status, body = raw("DELETE", f"/sessions/{s}")
        assert status == 200, f"DELETE /sessions/{s} -> {status} {body!r}"
        status, body = raw("GET", f"/sessions/{s}")
        assert status == 404, f"GET /sessions/{s} after DELETE -> {status} {body!r}"
    status, body = raw("GET", "/sessions")
    assert status == 200 and sid not in _session_ids(body), f"deleted {sid} still listed: {body!r}"
    if KEY:
        status, body = raw("GET", "/sessions", key=None)
        assert status == 401, f"GET /sessions without a key -> {status} {body!r}"


def test_stream_abort():
    stream = chat(SEA, max_tokens=24, stream=True)
    got = 0
    for _ in stream:
        got += 1
        if got == 2:
            break
    stream.close()
    assert got == 2, f"stream ended after {got} chunks"
    time.sleep(0.5)
    r = chat(COUNT, max_tokens=4)
    assert r.choices[0].message.content, f"request after an aborted stream: {r!r}"
    status, body = raw("GET", "/health", key=None)
    assert status == 200, f"GET /health after an aborted stream -> {status} {body!r}"


def main(argv):
    tests = [(n, f) for n, f in globals().items() if n.startswith("test_") and callable(f)]
    if argv:
        unknown = set(argv) - {n for n, _ in tests}
        if unknown:
            sys.exit(f"test_openai_client: no such test: {', '.join(sorted(unknown))}")
        tests = [(n, f) for n, f in tests if n in argv]
    print(f"openai {openai.__version__} against {BASE}", flush=True)
    counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
    for name, fn in tests:
        t0 = time.monotonic()
        try:
            fn()
            verdict, why = "PASS", ""
        except Skip as e:
            verdict, why = "SKIP", str(e)
        except AssertionError as e:
            verdict, why = "FAIL", str(e) or traceback.format_exc(limit=-1).strip()
        except Exception as e:  # noqa: BLE001 - any error of the client or server is a failure
            verdict, why = "FAIL", f"{type(e).__name__}: {e}"
            if not isinstance(e, openai.APIError):
                why += "\n" + traceback.format_exc(limit=-3).rstrip()
        counts[verdict] += 1
        line = f"{verdict} {name} ({time.monotonic() - t0:.1f}s)"
        print(line + (f": {why}" if why else ""), flush=True)
    tail = f", {counts['SKIP']} skipped" if counts["SKIP"] else ""
    print(f"openai-client: {counts['PASS']} passed, {counts['FAIL']} failed{tail}", flush=True)
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
