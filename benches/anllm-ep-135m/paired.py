#!/usr/bin/env python3
"""Paired greedy-chat difference of two models on the same prompts: the mean distinct-2 of
each, and the mean of the per-prompt differences with its standard error (the SD of the
differences / sqrt(n)), per prompt set and over all of them. Pairing by prompt removes the
prompts' own spread (one answer's distinct-2 varies by about 0.2), which is what lets 48
answers tell models about 0.09 apart.

Each side is a list of answer sources, matched by position between the sides:
- a greedy_val.py transcripts file (`--dir DIR`'s LABEL.jsonl, the validation prompts);
- `PROBES_MD::ROW`: one row of a chat_probes.py markdown file (the test probes), ROW as its
  table names it, e.g. "s163, anchors ep-list --anchor-window 60 --mask-rule legacy".

Usage: paired.py --a SOURCE... --b SOURCE...
e.g.   paired.py --a val-greedy-anchored/new.jsonl "new/probes.md::new, anchors ep-list …" \\
                 --b val-greedy-anchored/old.jsonl "old/probes.md::old, anchors ep-list …"
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chat import distinct2  # noqa: E402
from chat_probes import read_md  # noqa: E402
from greedy_val import read_answers  # noqa: E402


def scores(source):
    """{prompt: distinct-2} of one source."""
    if "::" in source:
        path, row = source.split("::", 1)
        rows = read_md(path)
        if row not in rows:
            sys.exit(f"paired.py: no row {row!r} in {path}; rows: {', '.join(rows)}")
        pairs = rows[row]
    else:
        pairs = [(p, a) for p, a, _ in read_answers(source)]
    return {p: distinct2(a) for p, a in pairs}


def line(label, a, b):
    d = [x - y for x, y in zip(a, b)]
    se = statistics.stdev(d) / len(d) ** 0.5 if len(d) > 1 else float("nan")
    return (f"| {label} | {len(d)} | {statistics.mean(a):.3f} | {statistics.mean(b):.3f} | "
            f"{statistics.mean(d):+.3f} ± {se:.3f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", nargs="+", required=True)
    ap.add_argument("--b", nargs="+", required=True)
    args = ap.parse_args()
    if len(args.a) != len(args.b):
        sys.exit("paired.py: --a and --b need as many sources each")
    print("| prompts | n | a | b | a − b (paired, ± SE) |\n|---|---:|---:|---:|---:|")
    all_a, all_b = [], []
    for sa, sb in zip(args.a, args.b):
        a, b = scores(sa), scores(sb)
        common = [p for p in a if p in b]
        if not common:
            sys.exit(f"paired.py: {sa} and {sb} share no prompt")
        xa, xb = [a[p] for p in common], [b[p] for p in common]
        print(line(os.path.basename(sa.split("::")[0]), xa, xb))
        all_a += xa
        all_b += xb
    if len(args.a) > 1:
        print(line("all", all_a, all_b))


if __name__ == "__main__":
    main()
