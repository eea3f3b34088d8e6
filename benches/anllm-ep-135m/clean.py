#!/usr/bin/env python3
"""Find the conversations whose assistant answer loops, and replace them by answers sampled
again: the teacher's sampled transcripts (temperature 0.6, top-p 0.9) include answers that
repeat one line or sentence until the token limit ("A gentle breeze, a gentle breeze, / A
gentle breeze, ..."). Distilled on them, the student may learn to go on repeating once a
sentence has repeated, which an anchor-pruned cache, seeing only the sentences' anchors, may
fall into sooner than full attention.

An answer loops when one sentence or line of at least three words occurs three times or more
(after lowercasing and dropping punctuation), or when its distinct-2 (distinct word bigrams /
bigrams, chat.py's) is below 0.4 (an answer of fewer than two words counts as looping too).
Lists keep their shape: "1. Apples are red." and "2. Pears are green." are different lines.
Not caught: a list that counts on with one item ("17. Grapes / 18. Grapes"), whose numbers make
every line and bigram new.

Usage: clean.py loops CHAT_JSONL PROMPTS_TXT > LOOP_PROMPTS_TXT
           (the prompts, one per line as in PROMPTS_TXT, whose answer loops)
       clean.py merge CHAT_JSONL [RESAMPLED_JSONL...] > CLEAN_JSONL   (the counts on stderr)
           (each looping conversation replaced by the first answer that does not loop from
           the RESAMPLED files, which answer LOOP_PROMPTS_TXT in order; dropped if none)
"""
import collections
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chat import distinct2  # noqa: E402

MIN_WORDS, MAX_REPEATS, MIN_DISTINCT2 = 3, 3, 0.4


def most_repeated(text):
    """How often the most frequent sentence or line (of MIN_WORDS words or more) occurs."""
    parts = (re.sub(r"\W+", " ", p).strip().lower() for p in re.split(r"(?<=[.!?])\s+|\n+", text))
    counts = collections.Counter(p for p in parts if len(p.split()) >= MIN_WORDS)
    return max(counts.values(), default=0)


def loops(text):
    return most_repeated(text) >= MAX_REPEATS or distinct2(text) < MIN_DISTINCT2


def conversations(path):
    return [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]


def row_loops(row):
    return any(loops(m["content"]) for m in row["messages"] if m["role"] == "assistant")


def main():
    args = sys.argv[1:]
    if args[:1] == ["loops"] and len(args) == 3:
        # The prompt lines (as prompts.txt spells them) whose conversation loops: the
        # transcripts answer prompts.txt line by line, in order.
        prompts = open(args[2], encoding="utf-8").read().splitlines()
        for prompt, row in zip(prompts, conversations(args[1])):
            if row_loops(row):
                print(prompt)
        return
    if args[:1] != ["merge"] or len(args) < 2:
        sys.exit(__doc__)
    # Each looping conversation is replaced by the first answer to its prompt that does not
    # loop, from RESAMPLED files that answer the `loops` prompts in order; dropped if none.
    resampled = [conversations(path) for path in args[2:]]
    kept = replaced = dropped = 0
    at = 0  # index among the looping conversations
    for row in conversations(args[1]):
        if not row_loops(row):
            kept += 1
        else:
            tries = [rows[at] for rows in resampled if at < len(rows)]
            at += 1
            row = next((r for r in tries if not row_loops(r)), None)
            if row is None:
                dropped += 1
                continue
            replaced += 1
        print(json.dumps(row, ensure_ascii=False))
    print(f"clean.py: {kept} conversations kept, {replaced} whose answer looped answered again, "
          f"{dropped} dropped", file=sys.stderr)


if __name__ == "__main__":
    main()
