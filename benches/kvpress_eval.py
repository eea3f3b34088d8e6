#!/usr/bin/env python3
"""kvpress quality peer: answer log-likelihood, agreement with the full cache and greedy accuracy under
NVIDIA kvpress presses on HF transformers (CPU, fp32), on items tokenized by anllm.

Run through benches/kvpress.sh (it sets up the pinned venv and the offline / thread environment):

    benches/kvpress.sh eval --items FILE.jsonl --ratios 0.9,0.75,0.5 \\
        --presses none,streaming_llm,snapkv,snapkv_qa,tova,knorm --threads 2 [--limit N] [--max-new-tokens 16]
    benches/kvpress.sh eval --make-demo-items demo.jsonl [--demo-length 300] [--demo-count 3] [--demo-template chat]

Input (--items): JSON lines, one item each, already tokenized (the model's own tokenizer and chat
template, by anllm), so that both engines see the same token ids:

    {"task": "passkey", "length": 1024, "id": 0, "depth": 0.5,
     "context_ids": [...], "question_ids": [...], "answer_ids": [...], "answer": "71432"}

context_ids and answer_ids must be non-empty; question_ids may be empty. task / length / id default to
"unknown" / len(context_ids) / the line's index; other keys (depth, ...) are ignored. No BOS is added.

Model: the GGUF (--model, default $MODEL or $ANLLM_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf)
through transformers' `gguf_file=` loader, dequantized to fp32, CPU, --threads torch threads,
transformers.DynamicCache. torch.manual_seed(0); everything is greedy / teacher-forced.

Per item, L = len(context_ids), Q = len(question_ids), A = len(answer_ids):
  reference (press `none`, computed once per item): one forward over context_ids (no press), then one
     forward over question_ids + answer_ids[:-1] (teacher forcing) at positions L, L+1, ...; the A
     "answer positions" are the positions whose logits predict answer token j: the last question
     token and the answer tokens but the last (the last context token when Q = 0). Their log-softmax
     distributions (the full cache's) are kept for the item.
  each press p in --presses (but none) and ratio r in --ratios (kvpress `compression_ratio`, the share
     of the prefilled KV entries REMOVED; kept = max(1, int(n * (1 - r))) per layer and KV head):
     prefill: one forward under `with press(model):` (kvpress's hooks compress each layer's cache at
        the end of that layer's prefill, as kvpress's pipeline does) over
          context_ids               for streaming_llm, snapkv, tova, knorm (query-agnostic:
                                    the question is not seen by the press)
          context_ids+question_ids  for snapkv_qa (query-aware SnapKV: the question is part of the
                                    compressed prefill, so it sits in SnapKV's observation window)
     teacher forcing (no press): the rest of question_ids + answer_ids[:-1] in one forward, at the
        ORIGINAL positions (position_ids continue at the uncompressed length: L, or L+Q for
        snapkv_qa, as kvpress's pipeline does). cache_position is left to transformers (it counts the
        compressed cache: it drives the causal mask, which must see the compressed length).
     generation (no press): from copy.deepcopy of the cache right after the prefill: feed the rest of
        question_ids (nothing for snapkv_qa), then greedy single-token steps at the original positions
        up to --max-new-tokens new tokens in all, stopping at EOS / <|im_end|> (not part of the text).
  Note: kvpress compresses a layer's cache in a hook AFTER that layer's attention ran, so the prefill's
     own hidden states and logits are those of the full cache; only later tokens see the compressed
     cache. Where the first answer token is predicted by the prefill's last token (snapkv_qa, or
     Q = 0), that answer position therefore matches the full cache (top1 1, kl ~0 there).
Row fields (one JSON line per (item, press, ratio); press none: once, ratio 0.0, it is the reference):
  gold_ll      sum over the A answer tokens of log p(answer token) under the compressed cache
  nll          -gold_ll / A
  top1         share of answer positions whose argmax equals the full cache's argmax (none: 1)
  kl           mean over answer positions of KL(full || compressed) = sum_v p_full (log p_full -
               log p_comp), natural log (none: 0)
  correct      1 if `answer`.strip() occurs in the decoded generation, else 0
  generated    the decoded generation (special tokens skipped)
  gen_tokens   number of generated tokens (the stop token included when hit)
  decode_tok_s (gen_tokens - 1) / time of the single-token steps after the first new token (that one
               comes from the question's forward and is not timed); null when gen_tokens < 2
  kv_entries   cached tokens per layer right after the prefill (compressed), mean over layers
  kv_bytes     sum over layers of key + value tensor bytes right after the prefill (fp32)
  prefill_s    seconds of the prefill forward (includes the press's scoring and pruning)
  plus task, length, id, press, press_class, ratio, n_context, n_question, n_answer, and `error`
  (with the metrics absent) when kvpress refused the item (e.g. SnapKV needs more prefill tokens than
  its 64-token window).
Then one summary JSON line per (task, length, press, ratio), `"summary": true`, with the means of
gold_ll, nll, top1, kl, correct, kv_entries, kv_bytes, decode_tok_s over the items without error
(decode_tok_s over those where it is not null), `n` (items averaged) and `errors`.
Logs (progress, elapsed times) on stderr. Exit status 1 when some row has an error.

--make-demo-items OUT writes a small synthetic passkey file instead (no model weights needed, only the
GGUF's tokenizer): --demo-count items (default 3) whose context is HEAD + a filler haystack ("The grass
is green. The sky is blue. ...") grown until the context has --demo-length tokens (default 300), with
"The pass key is NNNNN. Remember it." at depth (i+1)/(count+1) (0.25, 0.5, 0.75 for 3 items); question
"\\nWhat is the pass key?" + SUFFIX + "The pass key is"; answer " NNNNN" (5 random digits,
random.Random(0)). With --demo-template chat (default), HEAD and SUFFIX come from the tokenizer's chat
template split around the user's text, as kvpress's pipeline does (SmolLM2: HEAD = its default system
turn + "<|im_start|>user\\n", SUFFIX = "<|im_end|>\\n<|im_start|>assistant\\n"); with plain, HEAD =
"<|im_start|>user\\n" (no system turn), same SUFFIX. (Without the system turn SmolLM2-135M answers
"The pass key is a ..." even with the full cache.) For tokenizer.ggml.pre = smollm and the like, digits
are split one by one before the byte-level BPE, as the model's own tokenizer.json, llama.cpp and anllm
do (transformers' GGUF loader does not).
"""

import argparse
import copy
import json
import math
import os
import sys
import time

from peer_common import DIGIT_PRE, gguf_tokenizer_meta

T_START = time.perf_counter()
PROG = "kvpress_eval"

# press name -> (kvpress class name, whether the question is part of the compressed prefill)
PRESSES = {
    "none": (None, False),
    "streaming_llm": ("StreamingLLMPress", False),
    "snapkv": ("SnapKVPress", False),
    "snapkv_qa": ("SnapKVPress", True),
    "tova": ("TOVAPress", False),
    "knorm": ("KnormPress", False),
}
METRICS = ("gold_ll", "nll", "top1", "kl", "correct", "kv_entries", "kv_bytes", "decode_tok_s")


def log(msg):
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def die(msg):
    print(f"{PROG}: error: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def elapsed():
    return f"[{time.perf_counter() - T_START:.1f} s]"


def parse_args():
    home = os.environ.get("ANLLM_HOME") or os.path.expanduser("~/.cache/anllm")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--items", help="JSON lines of tokenized items (see the module docstring)")
    p.add_argument("--model", default=os.environ.get("MODEL") or
                   os.path.join(home, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    p.add_argument("--ratios", default="0.9,0.75,0.5",
                   help="comma-separated kvpress compression ratios (share of KV entries removed), in [0, 1)")
    p.add_argument("--presses", default="none,streaming_llm,snapkv,snapkv_qa,tova,knorm",
                   help=f"comma-separated subset of: {', '.join(PRESSES)}")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit", type=int, default=None, help="only the first N items of the file")
    p.add_argument("--max-new-tokens", type=int, default=16, help="greedy generation length cap")
    p.add_argument("--make-demo-items", metavar="OUT",
                   help="write a synthetic passkey items file to OUT and exit (only the tokenizer is loaded)")
    p.add_argument("--demo-length", type=int, default=300, help="demo: context length target in tokens")
    p.add_argument("--demo-count", type=int, default=3, help="demo: number of items")
    p.add_argument("--demo-template", choices=("chat", "plain"), default="chat",
                   help="demo: chat = the tokenizer's chat template (SmolLM2's adds its default system "
                        "prompt); plain = '<|im_start|>user\\n' + haystack, no system prompt")
    a = p.parse_args()
    if a.threads < 1 or a.max_new_tokens < 1:
        p.error("--threads and --max-new-tokens must be >= 1")
    if a.limit is not None and a.limit < 1:
        p.error("--limit must be >= 1")
    if a.make_demo_items:
        if a.demo_length < 40 or a.demo_count < 1:
            p.error("--demo-length must be >= 40 and --demo-count >= 1")
        return a
    if not a.items:
        p.error("give --items FILE.jsonl (or --make-demo-items OUT)")
    try:
        a.ratios = [float(x) for x in a.ratios.split(",") if x.strip()]
    except ValueError:
        p.error(f"--ratios: not a comma-separated list of numbers: {a.ratios!r}")
    if not a.ratios or not all(0.0 <= r < 1.0 for r in a.ratios):
        p.error("--ratios: give compression ratios in [0, 1) (the share of KV entries removed)")
    a.presses = [x.strip() for x in a.presses.split(",") if x.strip()]
    if not a.presses:
        p.error(f"--presses: give at least one of: {', '.join(PRESSES)}")
    for name in a.presses:
        if name not in PRESSES:
            p.error(f"unknown press {name!r}; known: {', '.join(PRESSES)}")
    a.presses = list(dict.fromkeys(a.presses))
    return a


def load_items(path, limit):
    if not os.path.isfile(path):
        die(f"missing items file {path} (write one with anllm, or --make-demo-items OUT)")
    items = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                it = json.loads(line)
            except json.JSONDecodeError as e:
                die(f"{where}: not valid JSON: {e}")
            if not isinstance(it, dict):
                die(f"{where}: not a JSON object")
            for key in ("context_ids", "question_ids", "answer_ids"):
                v = it.get(key)
                if not isinstance(v, list) or not all(isinstance(x, int) and x >= 0 for x in v):
                    die(f"{where}: `{key}` must be a list of token ids (non-negative integers)")
            if not it["context_ids"]:
                die(f"{where}: `context_ids` is empty")
            if not it["answer_ids"]:
                die(f"{where}: `answer_ids` is empty")
            if not isinstance(it.get("answer"), str) or not it["answer"].strip():
                die(f"{where}: `answer` must be a non-empty string")
            it.setdefault("task", "unknown")
            it.setdefault("length", len(it["context_ids"]))
            it.setdefault("id", len(items))
            it["_where"] = where
            items.append(it)
            if limit is not None and len(items) >= limit:
                break
    if not items:
        die(f"{path}: no items")
    return items


def load_tokenizer(model_path):
    """The GGUF's tokenizer, with the digit-splitting pre-tokenizer where the GGUF asks for it
    (as benches/eval_hf.py does), and the GGUF's eos id."""
    from transformers import AutoTokenizer
    model_dir, model_file = os.path.split(os.path.abspath(model_path))
    tok = AutoTokenizer.from_pretrained(model_dir, gguf_file=model_file)
    pre, gguf_eos = gguf_tokenizer_meta(model_path)
    if pre in DIGIT_PRE:
        from tokenizers import pre_tokenizers
        tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
        log(f"tokenizer.ggml.pre = {pre}: pre-tokenizer set to Digits(individual) + ByteLevel")
    return tok, gguf_eos


def make_demo_items(args):
    import random
    tok, _ = load_tokenizer(args.model)

    def enc(text):
        return tok(text, add_special_tokens=False)["input_ids"]

    rng = random.Random(0)
    fillers = ["The grass is green.", "The sky is blue.", "The sun is yellow.", "Here we go.",
               "There and back again."]
    if args.demo_template == "chat" and tok.chat_template:
        # As kvpress's pipeline splits a chat-templated prompt (pipeline.py preprocess): everything
        # before the user's text is the context's head, what follows it opens the question's suffix.
        sep = "#" * 64
        s = tok.apply_chat_template([{"role": "user", "content": "HAYSTACK" + sep}],
                                    add_generation_prompt=True, tokenize=False)
        head, suffix = s.split(sep)
        head = head[:-len("HAYSTACK")]
    else:
        head, suffix = "<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n"
    question = "\nWhat is the pass key?" + suffix + "The pass key is"
    log(f"demo template {args.demo_template}: context = {head!r} + haystack; question = {question!r}")
    q_ids = enc(question)
    with open(args.make_demo_items, "w", encoding="utf-8") as out:
        for i in range(args.demo_count):
            key = str(rng.randint(10000, 99999))
            needle = f"The pass key is {key}. Remember it."
            depth = (i + 1) / (args.demo_count + 1)
            # Grow the filler until head + haystack reaches --demo-length tokens.
            sentences = []
            while True:
                k = round(depth * len(sentences))
                text = head + " ".join(sentences[:k] + [needle] + sentences[k:])
                ids = enc(text)
                if len(ids) >= args.demo_length:
                    break
                sentences.append(fillers[len(sentences) % len(fillers)])
            a_ids = enc(" " + key)
            item = {"task": "passkey", "length": args.demo_length, "id": i, "depth": round(depth, 4),
                    "context_ids": ids, "question_ids": q_ids, "answer_ids": a_ids, "answer": key}
            out.write(json.dumps(item) + "\n")
            log(f"demo item {i}: key {key}, depth {depth:.2f}, context {len(ids)} tokens, question "
                f"{len(q_ids)}, answer {len(a_ids)} {tok.convert_ids_to_tokens(a_ids)}")
    log(f"wrote {args.demo_count} items to {args.make_demo_items} {elapsed()}")
    return 0


def main():
    args = parse_args()
    if not os.path.isfile(args.model):
        die(f"missing model {args.model}: run scripts/fetch-assets.sh (or pass --model)")
    if args.make_demo_items:
        return make_demo_items(args)
    items = load_items(args.items, args.limit)

    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    import transformers
    transformers.utils.logging.disable_progress_bar()
    from transformers import AutoModelForCausalLM, DynamicCache
    import kvpress

    version = getattr(kvpress, "__version__", None) or os.environ.get("KVPRESS_VERSION")
    log(f"kvpress {version}, transformers {transformers.__version__}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}")
    model_dir, model_file = os.path.split(os.path.abspath(args.model))
    t0 = time.perf_counter()
    tok, gguf_eos = load_tokenizer(args.model)
    model = AutoModelForCausalLM.from_pretrained(model_dir, gguf_file=model_file, dtype=torch.float32)
    model.eval()
    load_s = time.perf_counter() - t0
    vocab = model.config.vocab_size
    max_pos = getattr(model.config, "max_position_embeddings", None)
    stop = set()
    for e in (gguf_eos, model.generation_config.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")):
        for x in (e if isinstance(e, (list, tuple)) else [e]):
            if isinstance(x, int) and 0 <= x < vocab and x != tok.unk_token_id:
                stop.add(x)
    log(f"loaded {model_file} in {load_s:.1f} s ({type(model).__name__}, attn "
        f"{getattr(model.config, '_attn_implementation', None)}, vocab {vocab}); stop ids "
        f"{sorted(stop)} {tok.convert_ids_to_tokens(sorted(stop))}; {len(items)} items from {args.items}")
    for it in items:
        ids = it["context_ids"] + it["question_ids"] + it["answer_ids"]
        if max(ids) >= vocab:
            die(f"{it['_where']}: token id {max(ids)} >= vocab size {vocab} (tokenized for another model?)")
        if max_pos and len(ids) + args.max_new_tokens > max_pos:
            log(f"warning: {it['_where']}: {len(ids)} tokens + {args.max_new_tokens} new > "
                f"max_position_embeddings {max_pos}")

    def make_press(name, ratio):
        cls = PRESSES[name][0]
        return None if cls is None else getattr(kvpress, cls)(compression_ratio=ratio)

    def fwd(ids, cache, start, keep_all=True):
        """One forward of ids (list) at original positions start, start+1, ...; returns logits [n, V]."""
        x = torch.tensor([ids], dtype=torch.long)
        pos = torch.arange(start, start + len(ids), dtype=torch.long).unsqueeze(0)
        out = model(input_ids=x, past_key_values=cache, position_ids=pos, use_cache=True,
                    logits_to_keep=0 if keep_all else 1)
        return out.logits[0].float()

    @torch.inference_mode()
    def run(item, press, with_question):
        """Prefill (under press), then teacher forcing and greedy generation from a copy of the cache.
        Returns (log-softmax [A, V] at the answer positions, generation dict, kv stats, prefill_s)."""
        c, q, a = item["context_ids"], item["question_ids"], item["answer_ids"]
        pre = c + q if with_question else c
        rest_q = [] if with_question else q
        cache = DynamicCache()
        t0 = time.perf_counter()
        x = torch.tensor([pre], dtype=torch.long)
        if press is None:
            out = model(input_ids=x, past_key_values=cache, use_cache=True, logits_to_keep=1)
        else:
            with press(model):
                out = model(input_ids=x, past_key_values=cache, use_cache=True, logits_to_keep=1)
        prefill_s = time.perf_counter() - t0
        last = out.logits[0, -1:].float()
        layers = cache.layers
        kv = {"kv_entries": sum(l.keys.shape[-2] for l in layers) / len(layers),
              "kv_bytes": sum(l.keys.numel() * l.keys.element_size() +
                              l.values.numel() * l.values.element_size() for l in layers)}
        gen_cache = copy.deepcopy(cache)
        # Teacher forcing: logits predicting answer token j sit at combined index len(rest_q) + j.
        rest = rest_q + a[:-1]
        logits = torch.cat([last, fwd(rest, cache, len(pre))]) if rest else last
        logp = torch.log_softmax(logits[len(rest_q):len(rest_q) + len(a)], dim=-1)
        # Greedy generation from the copy.
        nxt = int(last[0].argmax()) if not rest_q else int(fwd(rest_q, gen_cache, len(pre), False)[-1].argmax())
        gen = [nxt]
        pos = len(pre) + len(rest_q)
        t1 = time.perf_counter()
        while gen[-1] not in stop and len(gen) < args.max_new_tokens:
            nxt = int(fwd([gen[-1]], gen_cache, pos)[-1].argmax())
            pos += 1
            gen.append(nxt)
        dec_s = time.perf_counter() - t1
        text = tok.decode([t for t in gen if t not in stop], skip_special_tokens=True)
        g = {"generated": text, "gen_tokens": len(gen),
             "decode_tok_s": round((len(gen) - 1) / dec_s, 3) if len(gen) > 1 and dec_s > 0 else None,
             "correct": int(item["answer"].strip() in text)}
        return logp, g, kv, prefill_s

    # Warm-up (untimed): allocator, oneDNN/MKL kernels, the kvpress hooks.
    w = (items[0]["context_ids"] * 64)[:64]
    run({"context_ids": w[:-4], "question_ids": w[-4:-2], "answer_ids": w[-2:], "answer": "x"},
        make_press("streaming_llm", 0.5), False)

    rows = {}  # (task, length, press, ratio) -> list of rows
    failed = False
    combos = [(p, 0.0) for p in args.presses if p == "none"] + \
             [(p, r) for p in args.presses if p != "none" for r in args.ratios]
    for n, item in enumerate(items, 1):
        a = item["answer_ids"]
        base = {"task": item["task"], "length": item["length"], "id": item["id"]}
        t_item = time.perf_counter()
        ref_lp, ref_g, ref_kv, ref_s = run(item, None, False)  # the reference, once per item
        ref_p = ref_lp.exp()
        ref_top = ref_lp.argmax(-1)
        log(f"item {n}/{len(items)} ({item['task']} {item['length']} id {item['id']}): reference "
            f"prefill {len(item['context_ids'])} tok in {ref_s:.2f} s, gen {ref_g['generated']!r} "
            f"(correct {ref_g['correct']}) {elapsed()}")
        for name, ratio in combos:
            cls, with_q = PRESSES[name]
            row = {**base, "press": name, "press_class": cls, "ratio": ratio,
                   "n_context": len(item["context_ids"]), "n_question": len(item["question_ids"]),
                   "n_answer": len(a)}
            t_row = time.perf_counter()
            try:
                if name == "none":
                    lp, g, kv, pre_s = ref_lp, ref_g, ref_kv, ref_s
                else:
                    lp, g, kv, pre_s = run(item, make_press(name, ratio), with_q)
            except Exception as e:  # kvpress asserts on too-short inputs (SnapKV window, n_sink)
                row["error"] = f"{type(e).__name__}: {e}"
                failed = True
                log(f"  {name} {ratio}: error: {row['error']}")
                print(json.dumps(row), flush=True)
                rows.setdefault((item["task"], item["length"], name, ratio), []).append(row)
                continue
            gold = lp.gather(1, torch.tensor(a).unsqueeze(1)).squeeze(1)
            gold_ll = float(gold.double().sum())
            kl = (ref_p.double() * (ref_lp.double() - lp.double())).sum(-1).mean()
            row.update({
                "gold_ll": round(gold_ll, 6),
                "nll": round(-gold_ll / len(a), 6),
                "top1": round(float((lp.argmax(-1) == ref_top).double().mean()), 6),
                "kl": round(max(float(kl), 0.0), 8),
                **g, **kv, "prefill_s": round(pre_s, 4),
            })
            print(json.dumps(row), flush=True)
            rows.setdefault((item["task"], item["length"], name, ratio), []).append(row)
            log(f"  {name} {ratio}: kv {kv['kv_entries']:.0f}/{len(item['context_ids'])}, nll "
                f"{row['nll']:.3f}, top1 {row['top1']:.2f}, kl {row['kl']:.4f}, gen {g['generated']!r} "
                f"(correct {g['correct']}), {time.perf_counter() - t_row:.2f} s")
        log(f"item {n} done in {time.perf_counter() - t_item:.1f} s {elapsed()}")

    for (task, length, name, ratio), rs in rows.items():
        ok = [r for r in rs if "error" not in r]
        s = {"summary": True, "task": task, "length": length, "press": name,
             "press_class": PRESSES[name][0], "ratio": ratio, "n": len(ok), "errors": len(rs) - len(ok)}
        for m in METRICS:
            xs = [r[m] for r in ok if r.get(m) is not None]
            s[m] = round(sum(xs) / len(xs), 6) if xs else None
        print(json.dumps(s), flush=True)
    log(f"done in {time.perf_counter() - T_START:.1f} s (model load {load_s:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
