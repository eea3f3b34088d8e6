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
  followed), not at the token limit;
- Q/A leak: the share of answers with a line that starts with `Question:` or `Answer:` (the
  shape of the second stage's few-shot text, which no probe asks for).

Usage: chat_probes.py ANLLM BASE_MODEL LABEL=MODEL... [--json-out FILE] [--max-tokens N]
                      [--anchors PRESET (ep)] [-- GENERATE_FLAGS...]
(BASE_MODEL is the judge; pass `original=BASE_MODEL` among the models for its rows.)
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chat import distinct2, judge_all, mean, run  # noqa: E402

def qa_leak(text):
    """Whether an answer has a line in the shape of few-shot text (`Question:` / `Answer:`)."""
    return any(line.strip().startswith(("Question:", "Answer:")) for line in text.splitlines())


PROBES = [line.strip() for line in open(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                      "probes.txt"), encoding="utf-8")
          if line.strip()]


def main():
    args = sys.argv[1:]
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
            texts, d2, eot, leak = [], [], [], []
            for i, prompt in enumerate(PROBES):
                text, stats, kv = run(anllm, model, anchors, False, prompt, extra, max_tokens)
                texts.append((i, text))
                d2.append(distinct2(text))
                eot.append(stats.get("stop_reason") == "eos")
                leak.append(float(qa_leak(text)))
                answers.append(f"**{name}** — {prompt}\n\n> "
                               + text.strip().replace("\n", "\n> ") + "\n")
            judged = judge_all(anllm, base, texts, PROBES)
            rows[name] = {
                "distinct2": mean(d2),
                "judge": mean([j[0] if j else None for j in judged]),
                "relevance": mean([j[1] if j else None for j in judged]),
                "on_topic": mean([float(j[2]) if j else 0.0 for j in judged]),
                "end_of_turn": mean([float(e) for e in eot]),
                "qa_leak": mean(leak),
            }
            print(f"chat_probes.py: {name}: {json.dumps(rows[name])}", file=sys.stderr)
    print(f"{len(PROBES)} probes (benches/anllm-ep-135m/probes.txt), greedy, {max_tokens} tokens"
          f"{', ' + ' '.join(extra) if extra else ''}; the original model with full attention "
          "judges:")
    print()
    print("| model, attention | distinct-2 | judge nats/token | relevance | on topic | end of turn "
          "| Q/A leak |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['distinct2']:.2f} | {r['judge']:.2f} | {r['relevance']:.2f} "
              f"| {r['on_topic']:.0%} | {r['end_of_turn']:.0%} | {r['qa_leak']:.0%} |")
    print()
    print("\n".join(answers))
    if json_out:
        with open(json_out, "w") as f:
            json.dump({"flags": extra, "max_tokens": max_tokens, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
