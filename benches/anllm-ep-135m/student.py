#!/usr/bin/env python3
"""On-policy transcripts for the recipe's second stage (benches/anllm-ep-135m.sh --student-share).

  student.py pick PROMPTS SHARE SEED   prints a seeded share of the prompt lines (file order kept)
  student.py mix TEACHER STUDENT       prints TEACHER's JSONL conversations with every one whose
                                       user prompt STUDENT answers replaced by STUDENT's record

The student (the first stage's checkpoint, anchor-pruned cache) answers the picked prompts, and
the second stage distils the teacher's distributions on those answers: the KL is then also taken
on text the student writes, loops and drift included (on-policy distillation, as GKD).
"""
import json
import random
import sys


def first_user(record):
    return next(m["content"] for m in record["messages"] if m["role"] == "user")


def pick(prompts, share, seed):
    lines = [line for line in open(prompts, encoding="utf-8").read().splitlines() if line.strip()]
    n = round(float(share) * len(lines))
    chosen = set(random.Random(int(seed)).sample(range(len(lines)), n))
    for i, line in enumerate(lines):
        if i in chosen:
            print(line)


def mix(teacher, student):
    answers = {}
    for line in open(student, encoding="utf-8"):
        if line.strip():
            record = json.loads(line)
            answers[first_user(record)] = line.strip()
    used = 0
    for line in open(teacher, encoding="utf-8"):
        if not line.strip():
            continue
        replacement = answers.get(first_user(json.loads(line)))
        used += replacement is not None
        print(replacement or line.strip())
    if used != len(answers):
        sys.exit(f"student.py: {len(answers) - used} student prompts are not in {teacher}")
    print(f"student.py: {used} of the conversations are the student's", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "pick":
        pick(*sys.argv[2:])
    elif len(sys.argv) == 4 and sys.argv[1] == "mix":
        mix(*sys.argv[2:])
    else:
        sys.exit(__doc__)
