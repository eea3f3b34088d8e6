#!/usr/bin/env python3
"""Side by side: anllm eval kv records and benches/kvpress.sh eval rows on the same items.

    python3 benches/kv_compare.py --anllm records.jsonl --kvpress kvpress.jsonl [--pair tova=tova_layer]

Only items present in both files count (matched by task, length, id). Policies are paired by name
(kvpress `streaming_llm` = anllm `streaming`, kvpress `snapkv_qa` = anllm `snapkv+q`),
budgets by share kept = 1 - kvpress ratio. Prints one markdown row per (task, length, policy, kept)
with the item count, then for each engine: accuracy, mean gold NLL, top-1 and KL against its own
full cache, KV entries kept and decode tok/s; and the mean |difference| of the per-item gold NLL.
Standard library only.
"""

import argparse
import collections
import json
import math
import sys

PAIR = {"streaming_llm": "streaming", "snapkv": "snapkv", "tova": "tova", "knorm": "knorm",
        "none": "full", "snapkv_qa": "snapkv+q"}


def load(path, peer):
    rows = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"kv_compare: {path}:{n}: bad JSON: {e}")
            if r.get("summary") or "error" in r:
                continue
            if peer:
                policy = PAIR.get(r["press"], r["press"])
                kept = None if r["press"] == "none" else round(1.0 - r["ratio"], 4)
            else:
                policy = r["policy"]
                kept = None if r["share"] is None else round(r["share"], 4)
            rows[(r["task"], r["length"], r["id"], policy, kept)] = r
    return rows


def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else float("nan")


def fmt(x, d=3):
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{d}f}"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--anllm", required=True)
    p.add_argument("--kvpress", required=True)
    p.add_argument("--pair", action="append", default=[], metavar="PRESS=POLICY",
                   help="compare kvpress PRESS with anllm POLICY (e.g. tova=tova_layer)")
    a = p.parse_args()
    for spec in a.pair:
        press, _, policy = spec.partition("=")
        if not policy:
            sys.exit(f"kv_compare: --pair {spec!r}: expected PRESS=POLICY")
        PAIR[press] = policy
    ours, theirs = load(a.anllm, False), load(a.kvpress, True)
    items = {k[:3] for k in theirs} & {k[:3] for k in ours}
    if not items:
        sys.exit("kv_compare: no item is in both files")
    cells = collections.defaultdict(list)
    for key, r in theirs.items():
        if key[:3] in items:
            cells[(key[0], key[1], key[3], key[4])].append((ours.get(key), r))
    print("| task | length | policy | kept | items | acc anllm / kvpress | gold NLL anllm / kvpress | "
          "mean abs NLL diff | top-1 anllm / kvpress | KL anllm / kvpress | KV entries anllm / kvpress "
          "| decode tok/s anllm / kvpress |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    order = lambda k: (k[0], k[1], k[2] != "full", k[2], k[3] or 1.0)
    for key in sorted(cells, key=order):
        pairs = cells[key]
        o = [x for x, _ in pairs if x is not None]
        t = [y for _, y in pairs]
        # Accuracy only where anllm generated (items with a question; kvpress always generates).
        asked = [(x, y) for x, y in pairs if x is not None and x.get("correct") is not None]
        acc = lambda rs: mean([float(r["correct"]) for r in rs])
        diff = mean([abs(x["nll"] - y["nll"]) for x, y in pairs if x is not None])
        print(f"| {key[0]} | {key[1]} | {key[2]} | {fmt(key[3] if key[3] else 1.0, 2)} | {len(t)} | "
              f"{fmt(acc([x for x, _ in asked]), 2)} / {fmt(acc([y for _, y in asked]), 2)} | "
              f"{fmt(mean([r['nll'] for r in o]))} / {fmt(mean([r['nll'] for r in t]))} | {fmt(diff)} | "
              f"{fmt(mean([r['top1'] for r in o]), 2)} / {fmt(mean([r['top1'] for r in t]), 2)} | "
              f"{fmt(mean([r['kl'] for r in o]))} / {fmt(mean([r['kl'] for r in t]))} | "
              f"{fmt(mean([r['kv_entries'] for r in o]), 0)} / {fmt(mean([r['kv_entries'] for r in t]), 0)} | "
              f"{fmt(mean([r.get('decode_tok_s') for r in o]), 1)} / {fmt(mean([r.get('decode_tok_s') for r in t]), 1)} |")


if __name__ == "__main__":
    main()
