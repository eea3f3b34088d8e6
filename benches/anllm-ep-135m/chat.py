#!/usr/bin/env python3
"""Chat probes of docs/anllm-ep-135m.md: three prompts (a short story, an explanation, a list),
greedy, 150 tokens, for each model x {full attention, --anchors ep, --anchors ep --pin-prompt
(the prompt's KV kept, the answer's sentences pruned)}; prints a markdown table of
distinct-2 (distinct word bigrams / bigrams) and the KV line, then the answers.

Usage: chat.py ANLLM BASE_MODEL TRAINED_MODEL [GENERATE_FLAGS...] > chat.md
(GENERATE_FLAGS, e.g. `--repeat-penalty 1.3`, are passed to every `anllm generate`; the
table's title line names them.)
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


def main():
    anllm, base, trained = sys.argv[1:4]
    extra = sys.argv[4:]
    configs = [(name, model, anchors, pin) for name, model in (("original", base), ("trained", trained))
               for anchors, pin in ((False, False), (True, False), (True, True))]
    rows, answers = [], []
    for name, model, anchors, pin in configs:
        attention = "anchors ep" if anchors else "full attention"
        label = f"{name}, {attention}{', pinned prompt' if pin else ''}"
        scores = []
        for prompt in PROMPTS:
            text, stats, kv = run(anllm, model, anchors, pin, prompt, extra)
            d2 = distinct2(text)
            scores.append(d2)
            stop = stats.get("stop_reason")
            answers.append(f"**{label}** — {prompt}\n\n> " + text.strip().replace("\n", "\n> ")
                           + f"\n\n`{kv.strip()}` · distinct-2 {d2:.2f} · stop {stop}\n")
        rows.append((label, scores))
    print(f"Greedy, 150 tokens{', ' + ' '.join(extra) if extra else ''}:")
    print()
    print("| model, attention | story | explanation | list | mean distinct-2 |")
    print("|---|---:|---:|---:|---:|")
    for label, s in rows:
        print(f"| {label} | " + " | ".join(f"{x:.2f}" for x in s) + f" | {sum(s) / len(s):.2f} |")
    print()
    print("\n".join(answers))


if __name__ == "__main__":
    main()
