#!/usr/bin/env python3
"""Chat probes of docs/anllm-ep-135m.md: three prompts (a short story, an explanation, a list),
greedy, 150 tokens, for each model x {full attention, --anchors ep, --anchors ep --pin-prompt
(the prompt's KV kept, the answer's sentences pruned)}; prints a markdown table, then the
answers with their KV lines.

The table has, per row, distinct-2 (distinct word bigrams / bigrams) of each answer and their
mean, and two scores of the answers by the original model with full attention as the judge
(`anllm score --chat --dtype f32 --requests -`, one model load, the answer as the assistant's
reply):
- judge nats/token: the answer's negative log-likelihood per token given its own prompt. About
  0.6 for the original's own greedy answers, 1-1.5 for fluent text by another writer, 2.5 and
  up for word salad; a loop scores low, which distinct-2 catches.
- relevance: the mean NLL per token of the answer given each of the two other prompts minus
  that given its own, in nats/token. An answer about its prompt scores clearly above 0; an
  answer that left its topic (or ignores every prompt alike) scores near 0.

Usage: chat.py ANLLM BASE_MODEL TRAINED_MODEL [--json-out FILE] [--anchors PRESET] [GENERATE_FLAGS...]
(--anchors: the anchored rows' preset, ep by default, e.g. ep-nodigit or "ep --anchor-window 32"; GENERATE_FLAGS, e.g. `--repeat-penalty 1.1`, are passed to every `anllm generate`; the
table's title line names them.) TRAINED_MODEL may be `-` for the original model's rows only.
--json-out writes the table's means as JSON: {"flags": [...], "rows": {"trained, anchors ep":
{"distinct2": …, "judge": …, "relevance": …}, …}} (the recipe's result JSON carries them).
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


def run(anllm, model, anchors, pin, prompt, extra, max_tokens=150):
    """One greedy answer; `anchors` is an `--anchors` preset (e.g. "ep"), with its window if
    any ("ep --anchor-window 32", as a model records it), or None."""
    args = [anllm, "generate", "-m", model, "--dtype", "f32", "--chat", "-p", prompt,
            "--max-tokens", str(max_tokens), "--temperature", "0", "--json", *extra]
    # Full attention says so: a trained model runs with its recorded anchors by default.
    args += ["--anchors", *anchors.split()] if anchors else ["--anchors", "none"]
    if pin:
        args += ["--pin-prompt"]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    kv = [l for l in out.stderr.splitlines() if "KV cache" in l]
    return stats["text"], stats["stats"], kv[-1] if kv else ""


def judge_all(anllm, judge, answers, prompts=PROMPTS):
    """(NLL per token given its own prompt, relevance, whether its own prompt gives the lowest
    NLL) of every (prompt index, answer) pair, by one `anllm score --requests` run (one model
    load); None for an empty answer."""
    kept = [(i, answer.strip()) for i, answer in answers if answer.strip()]
    requests = "".join(json.dumps({"context": prompt, "continuation": answer}) + "\n"
                       for _, answer in kept for prompt in prompts)
    out = subprocess.run([anllm, "score", "-m", judge, "--dtype", "f32", "--chat",
                          "--anchors", "none", "--requests", "-"], input=requests, capture_output=True, text=True,
                         check=True)
    nll = [-r["logprob"] / r["tokens"] for r in map(json.loads, out.stdout.splitlines())]
    assert len(nll) == len(kept) * len(prompts), out.stderr
    judged = []
    for k, (i, _) in enumerate(kept):
        row = nll[k * len(prompts):(k + 1) * len(prompts)]
        others = [x for j, x in enumerate(row) if j != i]
        judged.append((row[i], sum(others) / len(others) - row[i], row[i] < min(others)))
    scores = iter(judged)
    return [next(scores) if answer.strip() else None for _, answer in answers]


def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else float("nan")


def main():
    anllm, base, trained = sys.argv[1:4]
    extra = sys.argv[4:]
    json_out, preset = None, "ep"
    while extra[:1] in (["--json-out"], ["--anchors"]):
        if extra[0] == "--json-out":
            json_out = extra[1]
        else:
            preset = extra[1]
        extra = extra[2:]
    models = [("original", base)] + ([("trained", trained)] if trained != "-" else [])
    configs = [(name, model, anchors, pin) for name, model in models
               for anchors, pin in ((None, False), (preset, False), (preset, True))]
    rows, answers = [], []
    for name, model, anchors, pin in configs:
        attention = f"anchors {anchors}" if anchors else "full attention"
        label = f"{name}, {attention}{', pinned prompt' if pin else ''}"
        scores, texts = [], []
        for i, prompt in enumerate(PROMPTS):
            text, stats, kv = run(anllm, model, anchors, pin, prompt, extra)
            d2 = distinct2(text)
            scores.append(d2)
            texts.append((i, text))
            stop = stats.get("stop_reason")
            answers.append(f"**{label}** — {prompt}\n\n> " + text.strip().replace("\n", "\n> ")
                           + f"\n\n`{kv.strip()}` · distinct-2 {d2:.2f} · stop {stop}\n")
        rows.append((label, scores, texts))
    judged = judge_all(anllm, base, [t for _, _, texts in rows for t in texts])
    rows = [(label, scores, judged[r * len(PROMPTS):(r + 1) * len(PROMPTS)])
            for r, (label, scores, _) in enumerate(rows)]
    print(f"Greedy, 150 tokens{', ' + ' '.join(extra) if extra else ''}:")
    print()
    print("| model, attention | story | explanation | list | mean distinct-2 "
          "| judge nats/token | relevance |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    means = {}
    for label, s, judged in rows:
        own = mean([j[0] if j else None for j in judged])
        rel = mean([j[1] if j else None for j in judged])
        means[label] = {"distinct2": sum(s) / len(s), "judge": own, "relevance": rel}
        print(f"| {label} | " + " | ".join(f"{x:.2f}" for x in s)
              + f" | {sum(s) / len(s):.2f} | {own:.2f} | {rel:.2f} |")
    if json_out:
        with open(json_out, "w") as f:
            json.dump({"flags": extra, "rows": means}, f, indent=1)
    print()
    print("\n".join(answers))


if __name__ == "__main__":
    main()
