#!/usr/bin/env python3
"""The recipe's few-shot text (fewshot.py's JSONL) as chat conversations, for
`benches/anllm-ep-135m.sh --fewshot chat`.

As plain text, a few-shot document teaches that a `Question: …` line follows a finished answer;
under anchors the trained model then writes such lines into its chat answers (the second
stage's runs: up to 16 of 24 probe answers). As a conversation, each item is a user turn (its
passage and question) and an assistant turn (its answer): the demonstrations still reach the
later answers only through their anchors, the loss is on the answers, and an answer is followed
by the end of its turn. Items without an `Answer:` line (COPA's plain sentences) are left out;
a document with fewer than two items left is dropped.

Usage: fewshot_chat.py FEWSHOT.jsonl > FEWSHOT-CHAT.jsonl   (lines {"messages": [...]})
"""
import json
import sys


def turns(item):
    """(user, assistant) of one `…Question: …\\nAnswer: …` item, or None."""
    head, sep, answer = item.rpartition("\nAnswer: ")
    if not sep or not head.strip() or not answer.strip():
        return None
    return head.strip(), answer.strip()


def conversation(text):
    pairs = [t for t in (turns(item) for item in text.split("\n\n")) if t]
    messages = []
    for user, assistant in pairs:
        messages += [{"role": "user", "content": user},
                     {"role": "assistant", "content": assistant}]
    return messages if len(pairs) >= 2 else None


def main():
    kept = dropped = 0
    for line in open(sys.argv[1], encoding="utf-8"):
        messages = conversation(json.loads(line)["text"])
        if messages is None:
            dropped += 1
            continue
        print(json.dumps({"messages": messages}, ensure_ascii=False))
        kept += 1
    print(f"fewshot_chat.py: {kept} conversations, {dropped} documents dropped", file=sys.stderr)


if __name__ == "__main__":
    main()
