#!/usr/bin/env python3
"""Chat probes of docs/anllm-ep-135m.md: three prompts (a short story, an explanation, a list),
greedy, 150 tokens, for each model x {full attention, --anchors ep, --anchors ep --pin-prompt
(the prompt's KV kept, the answer's sentences pruned)}; prints a markdown table, then the
answers with their KV lines.

The table has, per row, distinct-2 (distinct word bigrams / bigrams) of each answer and their
mean, and two scores of the answers by the original model with full attention as the judge
(`anllm score --chat --dtype f32`, the answer as the assistant's reply):
- judge nats/token: the answer's negative log-likelihood per token given its own prompt. About
  0.6 for the original's own greedy answers, 1-1.5 for fluent text by another writer, 2.5 and
  up for word salad; a loop scores low, which distinct-2 catches.
- relevance: the mean NLL per token of the answer given each of the two other prompts minus
  that given its own, in nats/token. An answer about its prompt scores clearly above 0; an
  answer that left its topic (or ignores every prompt alike) scores near 0.

Usage: chat.py ANLLM BASE_MODEL TRAINED_MODEL [GENERATE_FLAGS...] > chat.md
(GENERATE_FLAGS, e.g. `--repeat-penalty 1.1`, are passed to every `anllm generate`; the
table's title line names them.) TRAINED_MODEL may be `-` for the original model's rows only.
"""
import json
import subprocess
import sys

PROMPTS = [
    "Tell me a short story about a fox. Use many short sentences.",
    "Explain why the sky is blue in a few sentences.",
    "List five fruits and say one thing about each.",
]


def distinct2(text):
    words = text.split()
    bigrams = list(zip(words, words[1:]))
    return len(set(bigrams)) / len(bigrams) if bigrams else 0.0


def run(anllm, model, anchors, pin, prompt, extra):
    args = [anllm, "generate", "-m", model, "--dtype", "f32", "--chat", "-p", prompt,
            "--max-tokens", "150", "--temperature", "0", "--json", *extra]
    if anchors:
        args += ["--anchors", "ep"]
    if pin:
        args += ["--pin-prompt"]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    kv = [l for l in out.stderr.splitlines() if "KV cache" in l]
    return stats["text"], stats["stats"], kv[-1] if kv else ""


def nll(anllm, judge, prompt, answer):
    """Negative log-likelihood per token of `answer` as the reply to `prompt` under `judge`."""
    out = subprocess.run([anllm, "score", "-m", judge, "--dtype", "f32", "--chat", "--context",
                          prompt, "--continuation", answer, "--json"],
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return -result["logprob"] / result["tokens"]


def judge_scores(anllm, judge, i, answer):
    """(NLL per token given prompt i, relevance); None for an empty answer."""
    if not answer.strip():
        return None
    own = nll(anllm, judge, PROMPTS[i], answer)
    others = [nll(anllm, judge, p, answer) for j, p in enumerate(PROMPTS) if j != i]
    return own, sum(others) / len(others) - own


def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else float("nan")


def main():
    anllm, base, trained = sys.argv[1:4]
    extra = sys.argv[4:]
    models = [("original", base)] + ([("trained", trained)] if trained != "-" else [])
    configs = [(name, model, anchors, pin) for name, model in models
               for anchors, pin in ((False, False), (True, False), (True, True))]
    rows, answers = [], []
    for name, model, anchors, pin in configs:
        attention = "anchors ep" if anchors else "full attention"
        label = f"{name}, {attention}{', pinned prompt' if pin else ''}"
        scores, judged = [], []
        for i, prompt in enumerate(PROMPTS):
            text, stats, kv = run(anllm, model, anchors, pin, prompt, extra)
            d2 = distinct2(text)
            scores.append(d2)
            judged.append(judge_scores(anllm, base, i, text.strip()))
            stop = stats.get("stop_reason")
            answers.append(f"**{label}** — {prompt}\n\n> " + text.strip().replace("\n", "\n> ")
                           + f"\n\n`{kv.strip()}` · distinct-2 {d2:.2f} · stop {stop}\n")
        rows.append((label, scores, judged))
    print(f"Greedy, 150 tokens{', ' + ' '.join(extra) if extra else ''}:")
    print()
    print("| model, attention | story | explanation | list | mean distinct-2 "
          "| judge nats/token | relevance |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, s, judged in rows:
        own = mean([j[0] if j else None for j in judged])
        rel = mean([j[1] if j else None for j in judged])
        print(f"| {label} | " + " | ".join(f"{x:.2f}" for x in s)
              + f" | {sum(s) / len(s):.2f} | {own:.2f} | {rel:.2f} |")
    print()
    print("\n".join(answers))


if __name__ == "__main__":
    main()
