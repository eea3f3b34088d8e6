#!/usr/bin/env python3
"""Greedy chat on the validation prompts: what choose_stop.py's `--by greedy` scores each
checkpoint with, and a table of it for any models.

Each model answers the 24 validation prompts (val-probes.txt beside this script: 8 stories,
8 explanations, 8 lists, on topics neither the test probes' nor the training prompts') greedy,
150 tokens, in one `anllm generate --chat --prompts-file … --transcripts … --temperature 0`
run (one model load; the answers are kept in a JSONL file per model, so a killed run resumes
where it stopped). Per model: distinct-2 (distinct word bigrams / bigrams, the mean over
answers; loops score low), end of turn (the share of answers that stopped at the end of their
turn, not at the token limit), loops (answers below 0.3), and chat_probes.py's columns by
kind and list items. No judge (chat_probes.py reads on-topic answers on the test probes),
so a row costs only the generation: about 1.5 minutes on 2 quiet threads.

Usage: greedy_val.py ANLLM LABEL=MODEL... --anchors FLAGS --dir DIR [--json-out FILE]
(--anchors: the anchored flags, e.g. "ep-list --anchor-window 60 --mask-rule legacy", or
`none` for full attention; DIR keeps the answers, LABEL.jsonl each.)
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chat import mean  # noqa: E402
from chat_nll import pop_flags  # noqa: E402
from chat_probes import KINDS, text_columns  # noqa: E402

VAL_PROBES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "val-probes.txt")
MAX_TOKENS = 150


def answers(anllm, model, anchors, path, threads="2"):
    """The (prompt, answer, stopped at end of turn) triples of `model` on the validation
    prompts, greedy; made (or completed) into `path` first."""
    flags = anchors.split() if anchors else ["none"]
    prompts = sum(1 for line in open(VAL_PROBES, encoding="utf-8") if line.strip())
    done = sum(1 for line in open(path, encoding="utf-8") if line.strip()) if os.path.exists(path) else 0
    if done < prompts:  # complete answers are read as they are, without loading the model again
        subprocess.run([anllm, "generate", "-m", model, "--dtype", "f32", "--chat", "--anchors", *flags,
                        "--prompts-file", VAL_PROBES, "--transcripts", path,
                        "--max-tokens", str(MAX_TOKENS), "--temperature", "0", "--threads", threads],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return read_answers(path)


def read_answers(path):
    """The (prompt, answer, stopped at end of turn) triples of a transcripts file."""
    out = []
    for line in open(path, encoding="utf-8"):
        if line.strip():
            record = json.loads(line)
            turns = {m["role"]: m["content"] for m in record["messages"]}
            out.append((turns["user"], turns["assistant"], record["finish_reason"] == "stop"))
    return out


def row(triples):
    """The greedy columns of one model's answers."""
    r = text_columns([(p, a) for p, a, _ in triples])
    r["end_of_turn"] = mean([float(e) for _, _, e in triples])
    r["loops"] = sum(r.get(f"loops_{k}", 0) for k in KINDS.values())
    return r


def table(rows, mark=None):
    """A markdown table of `rows` ({label: row}); `mark` labels one row as chosen."""
    kinds = " | ".join(KINDS.values())
    lines = [f"| model | distinct-2 | end of turn | loops (below 0.3) | {kinds} | worded list items |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, r in rows.items():
        name = f"**{label}** (chosen)" if label == mark else label
        cells = " | ".join(f"{r.get(f'distinct2_{k}', 0):.2f}" for k in KINDS.values())
        lines.append(f"| {name} | {r['distinct2']:.2f} | {r['end_of_turn']:.0%} | {r['loops']} "
                     f"| {cells} | {r['worded_items']:.2f} |")
    return "\n".join(lines)


def main():
    args = sys.argv[1:]
    opts = pop_flags(args, {"--anchors": None, "--dir": None, "--json-out": None},
                     required=("--anchors", "--dir"), script="greedy_val.py")
    if len(args) < 2 or any("=" not in a for a in args[1:]):
        sys.exit("usage: greedy_val.py ANLLM LABEL=MODEL... --anchors FLAGS --dir DIR [--json-out FILE]")
    anllm, models = args[0], [a.split("=", 1) for a in args[1:]]
    anchors = None if opts["--anchors"] == "none" else opts["--anchors"]
    os.makedirs(opts["--dir"], exist_ok=True)
    rows = {}
    for label, model in models:
        rows[label] = row(answers(anllm, model, anchors, os.path.join(opts["--dir"], f"{label}.jsonl")))
        print(f"greedy_val.py: {label}: {json.dumps(rows[label])}", file=sys.stderr)
    print(table(rows))
    if opts["--json-out"]:
        with open(opts["--json-out"], "w") as f:
            json.dump({"anchors": opts["--anchors"], "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
