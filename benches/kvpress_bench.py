#!/usr/bin/env python3
"""kvpress peer benchmark: prefill + greedy decode with NVIDIA kvpress presses on HF transformers (CPU).

Run through benches/kvpress.sh (it sets up the pinned venv and the offline / thread environment):

    benches/kvpress.sh bench --prompt-file FILE --depths 1024,4096 --decode-tokens 64 --repeat 3 --threads 2

For each depth d and each press (none, knorm 0.5, streaming_llm 0.5), each repetition:
  1. prefill: one forward pass over the first d tokens of the prompt file (the model's own tokenizer,
     read from the GGUF; no BOS added), with the press applied as a context manager around it
     (`with press(model): model(...)`, as kvpress's pipeline does), which compresses the KV cache
     (transformers DynamicCache, fp32) to d * (1 - compression_ratio) tokens;
  2. decode: --decode-tokens single-token greedy forward passes with that cache, positions continuing
     at d, d+1, ... (the original positions, as kvpress's pipeline does); EOS does not stop it.
The first new token comes from the prefill logits and is not timed; the decode timer covers exactly
the decode_tokens forward passes, so decode_tokens_per_s = decode_tokens / decode_seconds.
Each repetition re-runs the prefill (so prefill_tokens_per_s has one sample per repetition; it
includes the press's compression work).

Output: one JSON object per (depth, press) on stdout; logs on stderr. kv_bytes = sum over layers of
key + value tensor bytes right after the prefill (compressed). peak_rss_bytes = peak resident set
of this process during that row (VmHWM, reset through /proc/self/clear_refs before each row where the
kernel allows it; else the process-wide peak, flagged by peak_rss_scope = "process").
"""

import argparse
import json
import os
import statistics
import sys
import time

T_START = time.perf_counter()


def log(msg):
    print(f"kvpress_bench: {msg}", file=sys.stderr, flush=True)


def parse_args():
    home = os.environ.get("ANLLM_HOME", os.path.expanduser("~/.cache/anllm"))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prompt-file", default=os.path.join(home, "corpus", "bench-prompt.txt"))
    p.add_argument("--model", default=os.environ.get("MODEL") or
                   os.path.join(home, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    p.add_argument("--depths", default="1024,4096", help="comma-separated prompt lengths in tokens")
    p.add_argument("--decode-tokens", type=int, default=64)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--presses", default="none,knorm,streaming_llm",
                   help="comma-separated subset of: none, knorm, streaming_llm, snapkv")
    p.add_argument("--compression-ratio", type=float, default=0.5)
    a = p.parse_args()
    a.depths = [int(x) for x in a.depths.split(",") if x.strip()]
    a.presses = [x.strip() for x in a.presses.split(",") if x.strip()]
    if not a.depths or min(a.depths) < 8:
        p.error("--depths: give positive token counts (>= 8)")
    if a.decode_tokens < 1 or a.repeat < 1 or a.threads < 1:
        p.error("--decode-tokens, --repeat and --threads must be >= 1")
    for name in a.presses:
        if name not in PRESS_CLASSES:
            p.error(f"unknown press {name!r}; known: {', '.join(PRESS_CLASSES)}")
    return a


# press name -> kvpress class name (None = no press)
PRESS_CLASSES = {"none": None, "knorm": "KnormPress", "streaming_llm": "StreamingLLMPress",
                 "snapkv": "SnapKVPress"}


def proc_status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return None


def reset_peak_rss():
    """Reset VmHWM to the current RSS (Linux >= 4.0). Returns False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def stats(xs):
    return {"min": min(xs), "median": statistics.median(xs), "max": max(xs), "runs": xs}


def main():
    args = parse_args()
    if not os.path.isfile(args.model):
        sys.exit(f"kvpress_bench: error: missing model {args.model}: run scripts/fetch-assets.sh")
    if not os.path.isfile(args.prompt_file):
        sys.exit(f"kvpress_bench: error: missing prompt file {args.prompt_file}: run scripts/fetch-corpus.sh")

    import torch
    torch.set_num_threads(args.threads)
    import transformers
    transformers.utils.logging.disable_progress_bar()
    from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache
    import kvpress

    versions = {
        "version": getattr(kvpress, "__version__", None) or os.environ.get("KVPRESS_VERSION"),
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }
    log(f"kvpress {versions['version']}, transformers {versions['transformers']}, torch "
        f"{versions['torch']}, threads {torch.get_num_threads()}")

    model_dir, model_file = os.path.split(os.path.abspath(args.model))
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(model_dir, gguf_file=model_file)
    model = AutoModelForCausalLM.from_pretrained(model_dir, gguf_file=model_file, dtype=torch.float32)
    model.eval()
    load_s = time.perf_counter() - t0
    attn = getattr(model.config, "_attn_implementation", None)
    log(f"loaded {model_file} in {load_s:.1f} s ({type(model).__name__}, attn {attn}, "
        f"rss {proc_status('VmRSS') / 2**20:.0f} MiB)")

    with open(args.prompt_file, encoding="utf-8") as f:
        prompt_ids = tok(f.read(), add_special_tokens=False, return_tensors="pt").input_ids
    n_avail = prompt_ids.shape[1]
    log(f"prompt {args.prompt_file}: {n_avail} tokens")

    eos = model.generation_config.eos_token_id

    def make_press(name):
        cls = PRESS_CLASSES[name]
        return None if cls is None else getattr(kvpress, cls)(compression_ratio=args.compression_ratio)

    @torch.inference_mode()
    def run_once(ids, press, n_decode):
        """Prefill ids (under press), then n_decode greedy single-token steps. Returns timings."""
        d = ids.shape[1]
        cache = DynamicCache()
        t0 = time.perf_counter()
        if press is None:
            out = model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        else:
            with press(model):
                out = model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        prefill_s = time.perf_counter() - t0
        kv_bytes = sum(layer.keys.numel() * layer.keys.element_size() +
                       layer.values.numel() * layer.values.element_size() for layer in cache.layers)
        kv_tokens = cache.get_seq_length()
        kv_dtype = str(cache.layers[0].keys.dtype).replace("torch.", "")
        nxt = out.logits[0, -1].argmax()
        generated = [int(nxt)]
        pos = torch.tensor([[d]], dtype=torch.long)
        t1 = time.perf_counter()
        for i in range(n_decode):
            out = model(input_ids=nxt.view(1, 1), past_key_values=cache, position_ids=pos + i,
                        use_cache=True)
            nxt = out.logits[0, -1].argmax()
            generated.append(int(nxt))
        decode_s = time.perf_counter() - t1
        return prefill_s, decode_s, kv_bytes, kv_tokens, kv_dtype, generated

    # Warm-up (untimed): allocator, oneDNN/MKL kernels, the kvpress hooks.
    run_once(prompt_ids[:, :min(64, n_avail)], make_press("streaming_llm"), 4)

    failed = False
    for depth in args.depths:
        for name in args.presses:
            row = {"peer": "kvpress", **versions, "press": name,
                   "press_class": PRESS_CLASSES[name],
                   "compression_ratio": 0.0 if name == "none" else args.compression_ratio,
                   "depth": depth, "decode_tokens": args.decode_tokens, "threads": args.threads,
                   "repeat": args.repeat}
            if depth > n_avail:
                row["error"] = f"prompt file has only {n_avail} tokens (< depth {depth})"
                print(json.dumps(row), flush=True)
                log(row["error"])
                failed = True
                continue
            ids = prompt_ids[:, :depth]
            scoped = reset_peak_rss()
            prefill, decode = [], []
            for r in range(args.repeat):
                press = make_press(name)
                p_s, d_s, kv_bytes, kv_tokens, kv_dtype, gen = run_once(ids, press, args.decode_tokens)
                prefill.append(depth / p_s)
                decode.append(args.decode_tokens / d_s)
                log(f"depth {depth} {name}: rep {r + 1}/{args.repeat}: prefill {p_s:.2f} s "
                    f"({depth / p_s:.0f} t/s), decode {args.decode_tokens} in {d_s:.2f} s "
                    f"({args.decode_tokens / d_s:.1f} t/s), kv {kv_tokens} tok / {kv_bytes / 2**20:.1f} MiB")
                if r == 0:
                    log(f"  greedy text: {tok.decode(gen)!r}")
            eos_hit = eos is not None and any(t in (eos if isinstance(eos, list) else [eos]) for t in gen)
            row.update({
                "kv_tokens": kv_tokens,
                "kv_bytes": kv_bytes,
                "decode_tokens_per_s": stats([round(x, 3) for x in decode]),
                "decode_rate": "decode_tokens / time of decode_tokens single-token steps after prefill "
                               "(first new token from prefill logits, untimed)",
                "prefill_tokens_per_s": round(statistics.median(prefill), 3),
                "prefill_tokens_per_s_runs": [round(x, 3) for x in prefill],
                "peak_rss_bytes": proc_status("VmHWM"),
                "peak_rss_scope": "row" if scoped else "process",
                "dtype": "fp32",
                "kv_dtype": kv_dtype,
                "attn": attn,
                "model": model_file,
                "prompt_file": os.path.abspath(args.prompt_file),
                "eos_in_output": eos_hit,
            })
            print(json.dumps(row), flush=True)

    log(f"done in {time.perf_counter() - T_START:.1f} s (model load {load_s:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
