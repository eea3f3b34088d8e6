#!/usr/bin/env python3
"""PyTorch training-step peer benchmark: HF LlamaForCausalLM, f32, CPU, forward + backward + AdamW.

Run through benches/train_torch.sh (it reuses the pinned kvpress venv and sets the thread / offline
environment):

    benches/train_torch.sh --config benches/tiny-llama.json --batch 1 --seq 255 --threads 2 --mask causal
    benches/train_torch.sh --mask ansan

Model: transformers' LlamaForCausalLM built from a HF LlamaConfig JSON (--config), float32, random
init after torch.manual_seed(--seed), attention implementation --attn (default eager: the mask is
added to the scores, softmax, matmul, as in our masked training path). torch.set_num_threads(--threads).

One timed step, on a batch of --batch x --seq random token ids (seeded; a fresh batch per step, all
generated before timing):
  forward    loss = model(input_ids, attention_mask=M, labels=input_ids).loss   (HF shifts the labels:
             mean cross-entropy over batch * (seq - 1) predictions)
  backward   loss.backward()
  optimizer  torch.nn.utils.clip_grad_norm_(params, 1.0); AdamW.step(); zero_grad()
             (torch.optim.AdamW lr 1e-3, betas 0.9/0.999, eps 1e-8, weight_decay 0, foreach default;
             zero_grad sets the grads to None, torch's default)
Each phase is timed separately (time.perf_counter; CPU only, so no synchronisation is needed); the
step time is the sum of the three. --warmup untimed steps first (AdamW allocates its state in the
first one), then --steps timed steps.

--mask causal (default): no attention_mask argument; transformers builds its own causal mask
(an additive f32 [b, 1, t, t] bias under eager attention).
--mask ansan: a 4-D additive f32 mask [b, 1, t, t] (0 = visible, finfo(f32).min = blocked), passed as
attention_mask (transformers uses a 4-D mask as-is). Every --anchor-every-th token is an anchor
(positions k*N - 1); seg(t) = number of anchors before t; query i sees key j iff j <= i and
  - i not an anchor: seg(j) == seg(i) or j is an anchor (own segment + every earlier anchor),
  - i an anchor:     seg(j) == seg(i)                      (own segment only).
(docs: ../shared/docs/anllm-method.md section 2.3.) Anchors are positional here; the token ids stay random,
which does not change the work. The per-step cost is the same as causal under eager attention (the
dense [t, t] bias is added either way); only the visibility differs.

Output: one JSON object on stdout; logs on stderr. step_ms {min, median, mean, max, all},
forward_ms / backward_ms / optimizer_ms {median, min} (optimizer_ms.clip_median: the
clip_grad_norm_ part of it), tokens_per_s = batch * seq / median step
seconds, params, loss (first / last timed step), versions, threads, loadavg before / after.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

T_START = time.perf_counter()


def log(msg):
    print(f"train_torch: {msg}", file=sys.stderr, flush=True)


def parse_args():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default=os.path.join(here, "tiny-llama.json"),
                   help="HF LlamaConfig JSON")
    p.add_argument("--batch", type=int, default=1, help="sequences per step")
    p.add_argument("--seq", type=int, default=255, help="tokens per sequence")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--mask", choices=["causal", "ansan"], default="causal",
                   help="causal: transformers' own mask; ansan: 4-D additive AnSAN mask")
    p.add_argument("--anchor-every", type=int, default=20,
                   help="--mask ansan: every N-th token (positions N-1, 2N-1, ...) is an anchor")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before timing")
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--seed", type=int, default=0, help="model init and token ids")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (constant)")
    p.add_argument("--clip", type=float, default=1.0, help="clip_grad_norm_ max norm (0 = off)")
    p.add_argument("--attn", choices=["eager", "sdpa"], default="eager",
                   help="transformers attention implementation")
    a = p.parse_args()
    if min(a.batch, a.seq, a.threads, a.steps, a.anchor_every) < 1 or a.warmup < 0:
        p.error("--batch, --seq, --threads, --steps, --anchor-every must be >= 1, --warmup >= 0")
    if a.seq < 2:
        p.error("--seq must be >= 2 (the loss needs a next token)")
    return a


def ansan_allowed(t, every, torch):
    """[t, t] bool: query i may attend key j (anllm-method.md 2.3, no padding)."""
    pos = torch.arange(t)
    anchor = (pos + 1) % every == 0
    # seg(t) = number of anchors at positions < t
    seg = torch.cumsum(anchor.long(), 0) - anchor.long()
    i, j = pos[:, None], pos[None, :]
    same = seg[:, None] == seg[None, :]
    non_anchor_row = same | anchor[None, :]
    allowed = torch.where(anchor[:, None], same, non_anchor_row)
    return allowed & (j <= i)


def self_check_ansan(torch):
    """The 9-token worked example of anllm-method.md 2.4 (anchors at 3 and 7) via the same rule."""
    t, anchors = 9, {3, 7}
    pos = torch.arange(t)
    anchor = torch.tensor([p in anchors for p in range(t)])
    seg = torch.cumsum(anchor.long(), 0) - anchor.long()
    same = seg[:, None] == seg[None, :]
    allowed = torch.where(anchor[:, None], same, same | anchor[None, :]) & (pos[None, :] <= pos[:, None])
    want = [".xxxxxxxx", "..xxxxxxx", "...xxxxxx", "....xxxxx", "xxx..xxxx",
            "xxx...xxx", "xxx....xx", "xxxx....x", "xxx.xxx.."]
    got = ["".join("." if v else "x" for v in row) for row in allowed.tolist()]
    assert got == want, f"AnSAN rule does not match the worked example: {got}"


def main():
    a = parse_args()
    import torch
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(a.threads)
    load_before = os.getloadavg()
    log(f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"threads {torch.get_num_threads()}, loadavg {load_before[0]:.2f}")

    with open(a.config) as f:
        cfg_dict = json.load(f)
    cfg_dict.pop("torch_dtype", None)
    cfg_dict.pop("dtype", None)
    config = LlamaConfig(**cfg_dict)
    config._attn_implementation = a.attn
    if a.seq > config.max_position_embeddings:
        sys.exit(f"train_torch: error: --seq {a.seq} > max_position_embeddings "
                 f"{config.max_position_embeddings}")

    torch.manual_seed(a.seed)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.train()
    assert model.config._attn_implementation == a.attn, model.config._attn_implementation
    params = [p for p in model.parameters() if p.requires_grad]
    n_params = sum(p.numel() for p in params)
    log(f"model: hidden {config.hidden_size}, layers {config.num_hidden_layers}, heads "
        f"{config.num_attention_heads}/{config.num_key_value_heads}, ffn {config.intermediate_size}, "
        f"vocab {config.vocab_size}, tied {config.tie_word_embeddings}, {n_params:,} params, "
        f"attn {model.config._attn_implementation}")

    opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)

    gen = torch.Generator().manual_seed(a.seed + 1)
    n_total = a.warmup + a.steps
    batches = [torch.randint(0, config.vocab_size, (a.batch, a.seq), generator=gen) for _ in range(n_total)]

    mask = None
    visible_frac = None
    if a.mask == "ansan":
        self_check_ansan(torch)
        allowed = ansan_allowed(a.seq, a.anchor_every, torch)
        visible_frac = allowed.sum().item() / (a.seq * (a.seq + 1) / 2)
        bias = torch.zeros(a.seq, a.seq, dtype=torch.float32)
        bias.masked_fill_(~allowed, torch.finfo(torch.float32).min)
        mask = bias[None, None].expand(a.batch, 1, a.seq, a.seq).contiguous()
        log(f"AnSAN mask: anchor every {a.anchor_every} tokens, "
            f"{visible_frac:.3f} of the causal pairs visible")

    fwd, bwd, optm, clip, step, losses = [], [], [], [], [], []
    for s in range(n_total):
        ids = batches[s]
        t0 = time.perf_counter()
        out = model(input_ids=ids, attention_mask=mask, labels=ids, use_cache=False)
        loss = out.loss
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        if a.clip > 0:
            torch.nn.utils.clip_grad_norm_(params, a.clip)
        t2c = time.perf_counter()
        opt.step()
        opt.zero_grad()
        t3 = time.perf_counter()
        lv = loss.item()
        if not (lv == lv) or lv in (float("inf"), float("-inf")):
            sys.exit(f"train_torch: error: loss is {lv} at step {s}")
        del out, loss
        ms = [(t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3]
        clip_ms = (t2c - t2) * 1e3
        if s < a.warmup:
            log(f"warmup {s + 1}/{a.warmup}: {sum(ms):.1f} ms (loss {lv:.4f})")
            continue
        fwd.append(ms[0]); bwd.append(ms[1]); optm.append(ms[2]); clip.append(clip_ms)
        step.append(sum(ms)); losses.append(lv)
        log(f"step {len(step)}/{a.steps}: {sum(ms):.1f} ms (fwd {ms[0]:.1f}, bwd {ms[1]:.1f}, "
            f"opt {ms[2]:.1f} of which clip {clip_ms:.1f}), loss {lv:.4f}")

    med = statistics.median(step)
    load_after = os.getloadavg()
    r2 = lambda x: round(x, 2)
    result = {
        "bench": "train_torch",
        "config": os.path.basename(a.config),
        "model": {"hidden": config.hidden_size, "layers": config.num_hidden_layers,
                  "heads": config.num_attention_heads, "kv_heads": config.num_key_value_heads,
                  "ffn": config.intermediate_size, "vocab": config.vocab_size,
                  "tied": bool(config.tie_word_embeddings)},
        "params": n_params,
        "dtype": "float32",
        "attn": model.config._attn_implementation,
        "mask": a.mask,
        "anchor_every": a.anchor_every if a.mask == "ansan" else None,
        "visible_frac_of_causal": round(visible_frac, 4) if visible_frac is not None else None,
        "batch": a.batch,
        "seq": a.seq,
        "tokens_per_step": a.batch * a.seq,
        "warmup": a.warmup,
        "steps": a.steps,
        "step_ms": {"min": r2(min(step)), "median": r2(med), "mean": r2(statistics.fmean(step)),
                    "max": r2(max(step)), "all": [r2(x) for x in step]},
        "forward_ms": {"median": r2(statistics.median(fwd)), "min": r2(min(fwd))},
        "backward_ms": {"median": r2(statistics.median(bwd)), "min": r2(min(bwd))},
        "optimizer_ms": {"median": r2(statistics.median(optm)), "min": r2(min(optm)),
                         "clip_median": r2(statistics.median(clip))},
        "tokens_per_s": round(a.batch * a.seq / (med / 1e3), 1),
        "tokens_per_s_best": round(a.batch * a.seq / (min(step) / 1e3), 1),
        "loss": {"first": round(losses[0], 4), "last": round(losses[-1], 4)},
        "optimizer": {"name": "torch.optim.AdamW", "lr": a.lr, "betas": [0.9, 0.999], "eps": 1e-8,
                      "weight_decay": 0.0, "foreach": "default", "clip_grad_norm": a.clip},
        "seed": a.seed,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "loadavg_before": [r2(x) for x in load_before],
        "loadavg_after": [r2(x) for x in load_after],
        "wall_s": r2(time.perf_counter() - T_START),
    }
    print(json.dumps(result), flush=True)
    log(f"{a.mask}: median step {med:.1f} ms -> {result['tokens_per_s']} tok/s "
        f"(fwd {result['forward_ms']['median']}, bwd {result['backward_ms']['median']}, "
        f"opt {result['optimizer_ms']['median']} ms)")


if __name__ == "__main__":
    main()
