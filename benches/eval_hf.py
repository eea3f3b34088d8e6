#!/usr/bin/env python3
"""Peer check of `anllm eval qa`: recompute the multiple-choice log-likelihoods with HF transformers.

Run through benches/eval_hf.sh (it uses the kvpress venv and sets the offline / thread environment):

    anllm eval qa --tasks arc_easy,piqa --limit 500 --output /tmp/qa.json
    benches/eval_hf.sh --results /tmp/qa.json [--model GGUF] [--threads 2] [--limit N] [--out FILE]

For every record of the results file (written by `anllm eval qa --output`) and every choice i, the
scored tokens are, as lm-evaluation-harness v0.3 builds them:

    ctx  = tok(context_i, add_special_tokens=False)   ([eos_token_id] when that is empty)
    cont = tok(continuation_i, add_special_tokens=False)
    inp  = (ctx + cont)[-(max_len + 1):][:-1]         (no BOS; max_len = max_position_embeddings)

One forward pass over inp (fp32, torch.no_grad) and loglikelihood_i = the sum of the log-softmax
log-probabilities of the cont tokens. pred = argmax over the choices (the first on ties), acc =
pred == gold. acc_norm (the harness's: argmax of loglikelihood / len(choice) in characters, i.e. the
continuation without its leading space)
is also computed, for both anllm's and HF's log-likelihoods; it is shown as "-" for BoolQ and
WinoGrande, where the harness defines none.

The model and tokenizer come from the GGUF through transformers' `gguf_file=` loader (as
benches/kvpress_bench.py does): weights dequantized to fp32, CPU, torch threads = --threads.
`context` of a record is a string shared by all choices, or (WinoGrande) a list, one per choice.

Output: a markdown table per task on stdout (items, anllm acc, HF acc, prediction agreement, max and
mean |delta loglikelihood| over all choices); progress on stderr every 50 records; with --out, a
JSON file with the per-task summary and per-record HF log-likelihoods.
"""

import argparse
import json
import math
import os
import sys

from peer_common import DIGIT_PRE, argmax, gguf_tokenizer_meta
import time

PROG = "eval_hf"
# Tasks for which lm-evaluation-harness v0.3 reports no acc_norm.
NO_ACC_NORM = {"boolq", "winogrande"}


def log(msg):
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def die(msg):
    print(f"{PROG}: error: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def parse_args():
    home = os.environ.get("ANLLM_HOME") or os.path.expanduser("~/.cache/anllm")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--results", required=True,
                   help="JSON written by `anllm eval qa --output FILE`")
    p.add_argument("--model", default=os.path.join(home, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"),
                   help="GGUF model (default: $ANLLM_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--limit", type=int, default=None,
                   help="score at most the first N records of each task (file order)")
    p.add_argument("--out", default=None,
                   help="write the per-task summary and per-record HF log-likelihoods here (JSON)")
    p.add_argument("--no-batch", action="store_true",
                   help="one forward pass per choice (default: the choices of a record are batched, "
                        "right-padded; the causal mask keeps padding out of the scored positions)")
    p.add_argument("--tokens", action="store_true",
                   help="with --out: also write the context / continuation token ids of each choice")
    p.add_argument("--gguf-pretokenizer", action="store_true",
                   help="keep the pre-tokenizer transformers' GGUF loader builds (plain GPT-2 byte-level); "
                        "by default, for tokenizer.ggml.pre = smollm/starcoder/..., digits are split "
                        "one by one first, as the model's own tokenizer.json, llama.cpp and anllm do")
    a = p.parse_args()
    if a.threads < 1:
        p.error("--threads must be >= 1")
    if a.limit is not None and a.limit < 1:
        p.error("--limit must be >= 1")
    return a


def load_records(path, limit):
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        die(f"{path} is not valid JSON: {e}")
    records = data.get("records") if isinstance(data, dict) else None
    if not isinstance(records, list):
        die(f"{path}: no `records` list (expected the JSON of `anllm eval qa --output FILE`)")
    out, per_task = [], {}
    for k, r in enumerate(records):
        where = f"{path}: records[{k}]"
        if not isinstance(r, dict):
            die(f"{where} is not an object")
        for field in ("task", "context", "continuations", "loglikelihoods", "pred", "gold"):
            if field not in r:
                die(f"{where} has no `{field}`")
        conts, lls, ctx = r["continuations"], r["loglikelihoods"], r["context"]
        if not isinstance(conts, list) or not conts or not all(isinstance(c, str) for c in conts):
            die(f"{where}: `continuations` must be a non-empty list of strings")
        if not isinstance(lls, list) or len(lls) != len(conts):
            die(f"{where}: `loglikelihoods` must be a list as long as `continuations`")
        if isinstance(ctx, str):
            ctxs = [ctx] * len(conts)
        elif isinstance(ctx, list) and len(ctx) == len(conts) and all(isinstance(c, str) for c in ctx):
            ctxs = list(ctx)
        else:
            die(f"{where}: `context` must be a string or a list of strings, one per continuation")
        task = str(r["task"])
        n = per_task.get(task, 0)
        if limit is not None and n >= limit:
            continue
        per_task[task] = n + 1
        out.append({"task": task, "doc_id": r.get("doc_id", k), "contexts": ctxs,
                    "continuations": conts, "anllm_ll": [float(x) for x in lls],
                    "anllm_pred": int(r["pred"]), "gold": int(r["gold"])})
    if not out:
        die(f"{path}: no records")
    return out


def main():
    args = parse_args()
    if not os.path.isfile(args.results):
        die(f"missing results file {args.results}: write it with `anllm eval qa --output FILE`")
    if not os.path.isfile(args.model):
        die(f"missing model {args.model}: run scripts/fetch-assets.sh (or pass --model)")
    records = load_records(args.results, args.limit)

    import torch
    torch.set_num_threads(args.threads)
    import transformers
    transformers.utils.logging.disable_progress_bar()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log(f"transformers {transformers.__version__}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}")
    model_dir, model_file = os.path.split(os.path.abspath(args.model))
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(model_dir, gguf_file=model_file)
    model = AutoModelForCausalLM.from_pretrained(model_dir, gguf_file=model_file, dtype=torch.float32)
    model.eval()
    pre, gguf_eos = gguf_tokenizer_meta(args.model)
    # transformers 5.2's GGUF loader gives SmolLM2 a tokenizer whose eos_token is <|im_start|> (id 1),
    # while the GGUF (and the model's own tokenizer_config) says <|im_end|> (id 2): use the GGUF's.
    eos = gguf_eos if gguf_eos is not None else tok.eos_token_id
    if eos is None:
        die("no eos_token_id in the GGUF or the tokenizer (needed for empty contexts)")
    if tok.eos_token_id != eos:
        log(f"note: the HF tokenizer's eos_token_id is {tok.eos_token_id}; using the GGUF's {eos} "
            f"({tok.convert_ids_to_tokens(eos)!r}) for empty contexts")
    # The pre-tokenizer transformers builds from the GGUF is plain GPT-2 byte-level (no digit split).
    raw_tok = None
    if pre in DIGIT_PRE and not args.gguf_pretokenizer:
        import copy
        from tokenizers import pre_tokenizers
        raw_tok = copy.deepcopy(tok.backend_tokenizer)
        tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
        log(f"tokenizer.ggml.pre = {pre}: pre-tokenizer set to Digits(individual) + ByteLevel "
            f"(the loader's: {raw_tok.pre_tokenizer})")
    else:
        log(f"tokenizer.ggml.pre = {pre}; pre-tokenizer as loaded: {tok.backend_tokenizer.pre_tokenizer}")
    max_len = getattr(model.config, "max_position_embeddings", None) or 2048
    log(f"loaded {model_file} in {time.perf_counter() - t0:.1f} s ({type(model).__name__}, "
        f"attn {getattr(model.config, '_attn_implementation', None)}, eos {eos}, max_len {max_len}); "
        f"{len(records)} records")

    enc_cache = {}
    pre_diff = []  # texts that the loader's own pre-tokenizer would have tokenized differently

    def encode(text):
        ids = enc_cache.get(text)
        if ids is None:
            ids = tok(text, add_special_tokens=False)["input_ids"]
            enc_cache[text] = ids
            if raw_tok is not None and raw_tok.encode(text, add_special_tokens=False).ids != ids:
                pre_diff.append(text)
        return ids

    def score_batch(pairs):
        """pairs: [(ctx_ids, cont_ids)] -> [sum of log-probs of cont_ids] (one padded forward)."""
        rows = []
        for ctx, cont in pairs:
            whole = (ctx + cont)[-(max_len + 1):]
            inp = whole[:-1]
            # logits at inp position j predict whole[j + 1]; cont occupies the last len(cont) slots.
            rows.append((inp, len(cont), cont))
        width = max(len(inp) for inp, _, _ in rows)
        ids = torch.full((len(rows), width), eos, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for b, (inp, _, _) in enumerate(rows):
            ids[b, :len(inp)] = torch.tensor(inp, dtype=torch.long)
            mask[b, :len(inp)] = 1
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        out = []
        for b, (inp, n_cont, cont) in enumerate(rows):
            pos = torch.arange(len(inp) - n_cont, len(inp))
            # log-softmax and sum in float64 (the forward pass itself is fp32).
            lp = torch.log_softmax(logits[b, pos].double(), dim=-1)
            target = torch.tensor(cont, dtype=torch.long)
            out.append(float(lp.gather(1, target.unsqueeze(1)).sum()))
        return out

    results = []
    t_start = time.perf_counter()
    for k, rec in enumerate(records):
        pairs = []
        for ctx_text, cont_text in zip(rec["contexts"], rec["continuations"]):
            ctx = encode(ctx_text) if ctx_text != "" else [eos]
            cont = encode(cont_text)
            if not cont:
                die(f"task {rec['task']} doc {rec['doc_id']}: continuation {cont_text!r} has no tokens")
            pairs.append((ctx, cont))
        if args.no_batch:
            lls = [score_batch([p])[0] for p in pairs]
        else:
            lls = score_batch(pairs)
        pred = argmax(lls)
        # The harness divides by len(choice): the continuation without its leading space.
        lens = [max(1, len(c[1:] if c.startswith(" ") else c)) for c in rec["continuations"]]
        res = {
            "task": rec["task"], "doc_id": rec["doc_id"], "gold": rec["gold"],
            "hf_loglikelihoods": lls, "hf_pred": pred,
            "hf_pred_norm": argmax([ll / n for ll, n in zip(lls, lens)]),
            "anllm_loglikelihoods": rec["anllm_ll"], "anllm_pred": rec["anllm_pred"],
            "anllm_pred_norm": argmax([ll / n for ll, n in zip(rec["anllm_ll"], lens)]),
            "context_tokens": [len(c) for c, _ in pairs],
            "continuation_tokens": [len(c) for _, c in pairs],
        }
        if args.tokens:
            res["context_ids"] = [c for c, _ in pairs]
            res["continuation_ids"] = [c for _, c in pairs]
        results.append(res)
        done = k + 1
        if done % 50 == 0 or done == len(records):
            el = time.perf_counter() - t_start
            hf_acc = sum(r["hf_pred"] == r["gold"] for r in results) / done
            agree = sum(r["hf_pred"] == r["anllm_pred"] for r in results) / done
            log(f"{done}/{len(records)} records ({rec['task']}), {el:.1f} s, "
                f"{done / el:.2f} rec/s; HF acc {100 * hf_acc:.1f}%, agreement {100 * agree:.1f}%")

    # Per-task summary, in the order the tasks first appear in the file.
    tasks = []
    for r in results:
        if r["task"] not in tasks:
            tasks.append(r["task"])
    summary = {}
    for task in tasks:
        rs = [r for r in results if r["task"] == task]
        n = len(rs)
        deltas = [abs(a - h) for r in rs
                  for a, h in zip(r["anllm_loglikelihoods"], r["hf_loglikelihoods"])]
        s = {
            "items": n,
            "anllm_acc": sum(r["anllm_pred"] == r["gold"] for r in rs) / n,
            "hf_acc": sum(r["hf_pred"] == r["gold"] for r in rs) / n,
            "agreement": sum(r["anllm_pred"] == r["hf_pred"] for r in rs) / n,
            "max_abs_delta_ll": max(deltas),
            "mean_abs_delta_ll": sum(deltas) / len(deltas),
        }
        if task not in NO_ACC_NORM:
            s["anllm_acc_norm"] = sum(r["anllm_pred_norm"] == r["gold"] for r in rs) / n
            s["hf_acc_norm"] = sum(r["hf_pred_norm"] == r["gold"] for r in rs) / n
        # anllm's pred should be the argmax of its own log-likelihoods; flag it when it is not.
        s["anllm_pred_not_argmax"] = sum(
            r["anllm_pred"] != argmax(r["anllm_loglikelihoods"]) for r in rs)
        summary[task] = s

    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}"

    print("| task | items | anllm acc | HF acc | Δ acc | agreement % | max abs Δll | mean abs Δll "
          "| anllm acc_norm | HF acc_norm |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for task in tasks:
        s = summary[task]
        print(f"| {task} | {s['items']} | {pct(s['anllm_acc'])} | {pct(s['hf_acc'])} "
              f"| {100 * (s['anllm_acc'] - s['hf_acc']):+.1f} | {pct(s['agreement'])} "
              f"| {s['max_abs_delta_ll']:.4f} | {s['mean_abs_delta_ll']:.4f} "
              f"| {pct(s.get('anllm_acc_norm'))} | {pct(s.get('hf_acc_norm'))} |")
    if raw_tok is not None:
        log(f"{len(pre_diff)} of {len(enc_cache)} distinct texts tokenize differently with the "
            f"loader's pre-tokenizer (--gguf-pretokenizer)"
            + (f", e.g. {pre_diff[0][:80]!r}" if pre_diff else ""))
    for task in tasks:
        if summary[task]["anllm_pred_not_argmax"]:
            log(f"warning: {task}: {summary[task]['anllm_pred_not_argmax']} records whose anllm `pred` "
                f"is not the argmax of its `loglikelihoods`")

    if args.out:
        meta = {"results": os.path.abspath(args.results), "model": os.path.abspath(args.model),
                "transformers": transformers.__version__, "torch": torch.__version__,
                "threads": args.threads, "limit": args.limit, "batched": not args.no_batch,
                "max_len": max_len, "eos_token_id": eos, "dtype": "float32",
                "tokenizer_pre": pre, "digit_split": raw_tok is not None,
                "texts_pre_tokenizer_differs": len(pre_diff),
                "seconds": round(time.perf_counter() - t_start, 3)}
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({"meta": meta, "summary": summary, "records": results}, f, indent=1)
            f.write("\n")
        log(f"wrote {args.out}")
    if any(math.isnan(x) for r in results for x in r["hf_loglikelihoods"]):
        die("NaN log-likelihoods from HF")


if __name__ == "__main__":
    main()
