#!/usr/bin/env python3
"""A larger chat probe set than chat.py's three: 24 prompts (benches/anllm-ep-135m/probes.txt,
8 stories, 8 explanations, 8 lists; the three of chat.py among them, no topic of the training
prompts), greedy, for each model x {full attention, --anchors ep (or --anchors PRESET)}. Each answer is judged by the
original model with full attention against all 24 prompts (`anllm score --chat --requests`),
so that "stays on topic" is measured over more than three answers:

- distinct-2: distinct word bigrams / bigrams (loops score low);
- judge nats/token: the answer's NLL per token given its own prompt;
- relevance: the mean NLL per token given the 23 other prompts minus that given its own;
- on topic: the share of answers whose own prompt gives the judge's lowest NLL of all 24
  (chance: 1/24 = 4%);
- end of turn: the share of answers that stopped at the end of their turn (the chat template
  followed), not at the token limit (each answer's stop reason is printed under it: `eos` or
  `length`; `--max-tokens` raises the limit, which counts long answers as not stopping);
- Q/A leak: the share of answers with a line that starts with `Question:` or `Answer:` (the
  shape of the second stage's few-shot text, which no probe asks for);
- by kind: the mean distinct-2 of the stories, explanations and lists, and how many of each
  fall below 0.3 (loops);
- list items: the mean number of distinct line-start numbers (`1.`, `2.`, ...) of the list
  answers, each capped at the five the prompts ask for (a list that counts on in a loop
  scores 5, so read it with the lists' distinct-2);
- worded items: the same, counting only numbered lines with a letter after the number (a list
  that counts on with bare numbers, `1.` / `2.` / … `40.`, scores 0, not 5).

`chat_probes.py --from-md OUT/probes.md` prints the columns that need no model (distinct-2, by
kind, list items, worded items, Q/A leak) again from a finished run's answers.

Usage: chat_probes.py ANLLM BASE_MODEL LABEL=MODEL... [--json-out FILE] [--max-tokens N]
                      [--anchors PRESET (ep)] [-- GENERATE_FLAGS...]
       chat_probes.py --from-md PROBES_MD
(BASE_MODEL is the judge; pass `original=BASE_MODEL` among the models for its rows.)
"""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chat import distinct2, judge_all, mean, run  # noqa: E402

def qa_leak(text):
    """Whether an answer has a line in the shape of few-shot text (`Question:` / `Answer:`)."""
    return any(line.strip().startswith(("Question:", "Answer:")) for line in text.splitlines())


KINDS = {"Tell": "stories", "Explain": "explanations", "List": "lists"}


def kind(prompt):
    """The probe's kind from its first word: stories, explanations, lists (or other)."""
    return KINDS.get(prompt.split()[0], "other")


def numbered_items(text, cap=5, worded=False):
    """How many distinct numbers start a line of `text` (`1.`, ` 2.`), at most `cap`; with
    `worded`, only lines with a letter after the number."""
    rest = r"[^\n]*[^\W\d_]" if worded else ""
    return min(cap, len({int(n) for n in re.findall(rf"(?m)^[ \t]*(\d+)\.{rest}", text)}))


def text_columns(pairs):
    """The columns of one row that need no model, from its (prompt, answer) pairs."""
    by_kind = {}
    for prompt, text in pairs:
        by_kind.setdefault(kind(prompt), []).append(distinct2(text))
    row = {"distinct2": mean([distinct2(t) for _, t in pairs]),
           "qa_leak": mean([float(qa_leak(t)) for _, t in pairs]),
           "list_items": mean([float(numbered_items(t)) for p, t in pairs if kind(p) == "lists"]),
           "worded_items": mean([float(numbered_items(t, worded=True)) for p, t in pairs
                                 if kind(p) == "lists"])}
    for k, xs in by_kind.items():
        row[f"distinct2_{k}"] = mean(xs)
        row[f"loops_{k}"] = sum(x < 0.3 for x in xs)
    return row


def kind_cells(r):
    """The by-kind and list-item cells of a table row."""
    cells = [f"{r[f'distinct2_{k}']:.2f} ({r[f'loops_{k}']})" if f"loops_{k}" in r else "–"
             for k in KINDS.values()]
    return " | ".join(cells) + f" | {r['list_items']:.2f} | {r['worded_items']:.2f}"


KIND_HEADER = ("stories (below 0.3) | explanations (below 0.3) | lists (below 0.3) | list items | worded items",
               "---:|---:|---:|---:|---:")


def read_md(path):
    """The (prompt, answer) pairs of every row of a finished run's probes.md: {row: pairs}."""
    blocks = re.split(r"\n\*\*(.+?)\*\* — (.+?)\n\n", open(path, encoding="utf-8").read())
    rows = {}
    for i in range(1, len(blocks) - 2, 3):
        name, prompt, body = blocks[i], blocks[i + 1], blocks[i + 2]
        quoted = [line[2:] if line.startswith("> ") else line[1:]
                  for line in body.splitlines() if line.startswith(">")]
        rows.setdefault(name, []).append((prompt, "\n".join(quoted)))
    return rows


def from_md(path):
    """Prints the model-free columns of every row of a finished run's probes.md."""
    rows = read_md(path)
    print(f"| model, attention | distinct-2 | {KIND_HEADER[0]} | Q/A leak |")
    print(f"|---|---:|{KIND_HEADER[1]}|---:|")
    for name, pairs in rows.items():
        r = text_columns(pairs)
        print(f"| {name} | {r['distinct2']:.2f} | {kind_cells(r)} | {r['qa_leak']:.0%} |")


PROBES = [line.strip() for line in open(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                      "probes.txt"), encoding="utf-8")
          if line.strip()]


def main():
    args = sys.argv[1:]
    if args[:1] == ["--from-md"] and len(args) == 2:
        return from_md(args[1])
    extra = args[args.index("--") + 1:] if "--" in args else []
    args = args[:args.index("--")] if "--" in args else args
    json_out, max_tokens = None, 150
    if "--json-out" in args:
        k = args.index("--json-out")
        json_out = args.pop(k + 1)
        args.pop(k)
    preset = "ep"
    if "--anchors" in args:
        k = args.index("--anchors")
        preset = args.pop(k + 1)
        args.pop(k)
    if "--max-tokens" in args:
        k = args.index("--max-tokens")
        max_tokens = int(args.pop(k + 1))
        args.pop(k)
    anllm, base, models = args[0], args[1], [m.split("=", 1) for m in args[2:]]
    rows, answers = {}, []
    for label, model in models:
        for anchors in (None, preset):
            name = f"{label}, {'anchors ' + anchors if anchors else 'full attention'}"
            texts, eot = [], []
            for i, prompt in enumerate(PROBES):
                text, stats, kv = run(anllm, model, anchors, False, prompt, extra, max_tokens)
                texts.append((i, text))
                eot.append(stats.get("stop_reason") == "eos")
                answers.append(f"**{name}** — {prompt}\n\n> "
                               + text.strip().replace("\n", "\n> ")
                               + f"\n\n`stop {stats.get('stop_reason')}` · distinct-2 "
                               f"{distinct2(text):.2f}\n")
            judged = judge_all(anllm, base, texts, PROBES)
            rows[name] = {
                **text_columns([(PROBES[i], t) for i, t in texts]),
                "judge": mean([j[0] if j else None for j in judged]),
                "relevance": mean([j[1] if j else None for j in judged]),
                "on_topic": mean([float(j[2]) if j else 0.0 for j in judged]),
                "end_of_turn": mean([float(e) for e in eot]),
            }
            print(f"chat_probes.py: {name}: {json.dumps(rows[name])}", file=sys.stderr)
    print(f"{len(PROBES)} probes (benches/anllm-ep-135m/probes.txt), greedy, {max_tokens} tokens"
          f"{', ' + ' '.join(extra) if extra else ''}; the original model with full attention "
          "judges:")
    print()
    print("| model, attention | distinct-2 | judge nats/token | relevance | on topic | end of turn "
          f"| Q/A leak | {KIND_HEADER[0]} |")
    print(f"|---|---:|---:|---:|---:|---:|---:|{KIND_HEADER[1]}|")
    for name, r in rows.items():
        print(f"| {name} | {r['distinct2']:.2f} | {r['judge']:.2f} | {r['relevance']:.2f} "
              f"| {r['on_topic']:.0%} | {r['end_of_turn']:.0%} | {r['qa_leak']:.0%} "
              f"| {kind_cells(r)} |")
    print()
    print("\n".join(answers))
    if json_out:
        with open(json_out, "w") as f:
            json.dump({"flags": extra, "max_tokens": max_tokens, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
