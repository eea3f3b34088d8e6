#!/usr/bin/env python3
"""Drop the conversations whose assistant answer loops: the teacher's sampled transcripts
(temperature 0.6, top-p 0.9) include answers that repeat one line or sentence until the token
limit ("A gentle breeze, a gentle breeze, / A gentle breeze, ..."). Distilled on them, the
student learns to go on repeating once a sentence has repeated, which an anchor-pruned cache,
seeing only the sentences' anchors, falls into sooner than full attention.

An answer loops when one sentence or line of at least three words occurs three times or more
(after lowercasing and dropping punctuation), or when its distinct-2 (distinct word bigrams /
bigrams) is below 0.4. Lists keep their shape: "1. Apples are red." and "2. Pears are green."
are different lines, and a list's distinct-2 stays above 0.4 unless its items repeat.

Usage: clean.py CHAT_JSONL > CLEAN_JSONL   (the counts on stderr)
"""
import collections
import json
import re
import sys

MIN_WORDS, MAX_REPEATS, MIN_DISTINCT2 = 3, 3, 0.4


def distinct2(text):
    words = text.split()
    bigrams = list(zip(words, words[1:]))
    return len(set(bigrams)) / len(bigrams) if bigrams else 1.0


def most_repeated(text):
    """How often the most frequent sentence or line (of MIN_WORDS words or more) occurs."""
    parts = (re.sub(r"\W+", " ", p).strip().lower() for p in re.split(r"(?<=[.!?])\s+|\n+", text))
    counts = collections.Counter(p for p in parts if len(p.split()) >= MIN_WORDS)
    return max(counts.values(), default=0)


def loops(text):
    return most_repeated(text) >= MAX_REPEATS or distinct2(text) < MIN_DISTINCT2


def main():
    kept = dropped = 0
    for line in open(sys.argv[1], encoding="utf-8"):
        if not line.strip():
            continue
        row = json.loads(line)
        answers = [m["content"] for m in row["messages"] if m["role"] == "assistant"]
        if any(loops(a) for a in answers):
            dropped += 1
            continue
        kept += 1
        sys.stdout.write(line if line.endswith("\n") else line + "\n")
    print(f"clean.py: kept {kept} conversations, dropped {dropped} whose answer loops", file=sys.stderr)


if __name__ == "__main__":
    main()
