#!/usr/bin/env python3
"""The local window at inference: perplexity of one model under the anchor-pruned cache with
several `--anchor-window W`, on the recipe's two texts (window 512, the first 2,048 tokens),
against the same model with full attention.

A model trained with `--anchor-window 32` records W = 32 and runs with it by default; a larger
W at inference keeps more of the recent tokens, so the tax falls and so does C⇓ (the mean over
the windows of the share of the window's tokens pruned at its end). The issue's goal asks for
C⇓ ≥ 85%: the table marks the rows below it.

usage: window_sweep.py ANLLM MODEL [--windows 32,40,48,56,60,64] [--anchors "ep-list --mask-rule legacy"]
       [--base BASE]
prints a markdown table (and, with --json-out F, the numbers as JSON).
"""

import argparse
import json
import os
import subprocess
import sys

HOME = os.path.expanduser(os.environ.get("ANLLM_HOME", "~/.cache/anllm"))
TEXTS = {
    "held-out": os.path.join(HOME, "corpus", "heldout.txt"),
    "GPL": "/usr/share/common-licenses/GPL-3",
}


def ppl(anllm, model, text, flags, threads):
    cmd = [anllm, "eval", "ppl", "--model", model, "--dtype", "f32", *flags, "--text", text,
           "--max-tokens", "2048", "--window", "512", "--threads", str(threads), "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"window_sweep: {' '.join(cmd)} failed:\n{out.stderr.strip()}")
    result = json.loads(out.stdout.strip().splitlines()[-1])["result"]
    c = result["c_window"]
    cdown = c["ratio_sum"] / c["items"] if c["items"] else 0.0
    return result["ppl"], cdown


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("anllm")
    ap.add_argument("model")
    ap.add_argument("--windows", default="32,40,48,56,60,64")
    ap.add_argument("--anchors", default="ep-list --mask-rule legacy",
                    help="the anchor flags besides --anchor-window")
    ap.add_argument("--base", help="the original model: its full attention gives the net ratio")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json-out")
    args = ap.parse_args()
    for path in TEXTS.values():
        if not os.path.isfile(path):
            sys.exit(f"window_sweep: {path} is missing (run scripts/fetch-assets.sh)")
    windows = [int(w) for w in args.windows.split(",")]
    full = {name: ppl(args.anllm, args.model, path, ["--anchors", "none"], args.threads)[0]
            for name, path in TEXTS.items()}
    base = {name: ppl(args.anllm, args.base, path, ["--anchors", "none"], args.threads)[0]
            for name, path in TEXTS.items()} if args.base else None
    rows = []
    for w in windows:
        row = {"window": w}
        for name, path in TEXTS.items():
            flags = ["--anchors", *args.anchors.split(), "--anchor-window", str(w), "--mode", "cache"]
            p, cdown = ppl(args.anllm, args.model, path, flags, args.threads)
            row[name] = {"ppl": p, "tax": p / full[name], "c_down": cdown}
            if base:
                row[name]["net"] = p / base[name]
        rows.append(row)
    head = "| W |" + "".join(f" {n} anchored | tax |{' net |' if base else ''} C⇓ |" for n in TEXTS)
    print(f"full attention: " + ", ".join(f"{n} {full[n]:.2f}" for n in TEXTS)
          + (("; original: " + ", ".join(f"{n} {base[n]:.2f}" for n in TEXTS)) if base else ""))
    print()
    print(head)
    print("|" + "---:|" * (head.count("|") - 1))
    for row in rows:
        cells = []
        for n in TEXTS:
            r = row[n]
            mark = "" if r["c_down"] >= 0.85 else " (< 85%)"
            net = f" {r['net']:.3f} |" if base else ""
            cells.append(f" {r['ppl']:.2f} | {r['tax']:.3f} |{net} {100 * r['c_down']:.1f}%{mark} |")
        print(f"| {row['window']} |" + "".join(cells))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"model": args.model, "full": full, "base": base, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
