#!/usr/bin/env python3
"""A teacher-forced chat measure: how well each model, with full attention and anchored,
predicts the original model's own sampled answers to the 24 held-out probes
(benches/anllm-ep-135m/probes.txt). Greedy probes (chat_probes.py) turn small differences into
loops or no loops, so one answer can move a row's distinct-2 by a lot; this measure reads every
token of many answers under teacher forcing, with no decoding in the loop.

1. Answers: the original model (BASE as it is, the quantized GGUF the recipe distils from, full
   attention) answers each probe SAMPLES times (`--temperature 0.6 --top-p 0.9`, the recipe's
   transcript sampling, seeds 1..SAMPLES, at most 192 tokens), kept with each answer's stop
   reason in the --answers file (JSONL, made once and read again by later runs, so that every
   model is scored on the same text).
2. Scores: `anllm score --dtype f32 --chat --end-of-turn --requests` for every model row: each
   answer as the assistant's turn after its prompt, closed by the template's end-of-turn token
   when the answer stopped there (answers cut at the token limit are scored without it). The
   reference is BASE with `--dtype f32` and full attention.

Columns, per row:
- answer nats/token: the answers' negative log-likelihood per token (end-of-turn token left out);
- excess over the original: the mean over answers of (this row's nats/token minus the original's
  full attention's on the same answer), with its standard error over answers. On the original's
  own samples this is the cross-entropy the row adds to the original's: 0 for the original with
  full attention, an estimate of how far the row's next-token distributions are from it;
- by kind: the excess of the stories, explanations and lists;
- by token: the excess per token of the tokens predicted right after an anchor of the preset
  (the first token of each sentence: under AnSAN an anchor sees only its own segment, not the
  window, so that prediction is made without the prompt) and of the others;
- end of turn: the mean nats of the end-of-turn token where the original stopped, and the share
  of those answers whose end-of-turn token has probability above 0.5 (the row would likely stop
  there too).

Usage: chat_nll.py ANLLM BASE_MODEL LABEL=MODEL... [--anchors PRESET (ep)] [--answers FILE]
                   [--samples N (3)] [--attention both|full|anchored] [--json-out FILE]
                   [--probes FILE]
(BASE_MODEL writes the answers and is the reference; pass `original=BASE_MODEL` among the models
for its rows. --attention: which rows of each model, both by default; about a minute each on 2
threads. The JSON's rows are keyed "LABEL, full attention" and "LABEL, anchors PRESET".
--probes: the prompts to answer when the --answers file is made, one per line, in place of the
24 probes; val-probes.txt beside this script is a second set of 24 of the same three kinds, on
other topics, for choosing among checkpoints without looking at the probes that test them.)
"""
import json
import math
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chat_probes import PROBES, kind  # noqa: E402

MAX_TOKENS = 192


def make_answers(anllm, base, samples, path, probes):
    """The original model's sampled answers, one JSON object per line."""
    rows = []
    for seed in range(1, samples + 1):
        for i, prompt in enumerate(probes):
            out = subprocess.run(
                [anllm, "generate", "-m", base, "--chat", "-p", prompt,
                 "--anchors", "none", "--max-tokens", str(MAX_TOKENS), "--temperature", "0.6",
                 "--top-p", "0.9", "--seed", str(seed), "--json"],
                capture_output=True, text=True, check=True)
            stats = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append({"probe": i, "seed": seed, "prompt": prompt, "text": stats["text"].strip(),
                         "stop": stats["stats"].get("stop_reason")})
        print(f"chat_nll.py: {len(rows)} answers", file=sys.stderr)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    os.replace(path + ".tmp", path)


def score(anllm, model, anchors, answers):
    """For every answer, in order: its answer tokens' log-probabilities (end-of-turn token left
    out), the end-of-turn token's nats (None where the answer was cut) and the indices of its
    anchors by the preset (`anllm score`'s continuation_anchors; empty with full attention)."""
    result = [None] * len(answers)
    for turn in (True, False):
        picked = [k for k, a in enumerate(answers) if (a["stop"] == "eos") == turn and a["text"]]
        if not picked:
            continue
        requests = "".join(json.dumps({"context": answers[k]["prompt"],
                                       "continuation": answers[k]["text"]}) + "\n"
                           for k in picked)
        args = [anllm, "score", "-m", model, "--dtype", "f32", "--chat", "--requests", "-",
                "--anchors", *(anchors.split() if anchors else ["none"])]
        out = subprocess.run(args + (["--end-of-turn"] if turn else []), input=requests,
                             capture_output=True, text=True, check=True)
        lines = [json.loads(line) for line in out.stdout.splitlines()]
        assert len(lines) == len(picked), out.stderr
        for k, r in zip(picked, lines):
            lp = r["token_logprobs"]
            result[k] = {"lp": lp[:-1] if turn else lp, "eot": -lp[-1] if turn else None,
                         "anchors": set(r["continuation_anchors"])}
    return result


def nats(s):
    return -sum(s["lp"]) / len(s["lp"])


def mean_se(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return float("nan"), float("nan")
    m = sum(xs) / len(xs)
    var = sum((x - m) ** 2 for x in xs) / (len(xs) - 1) if len(xs) > 1 else 0.0
    return m, math.sqrt(var / len(xs))


def summary(scores, reference, answers, anchored_at):
    """One table row's numbers from the per-answer scores. `anchored_at` holds each answer's
    anchor indices by the preset: the tokens right after one are predicted at an anchor, which
    under AnSAN sees only its own segment."""
    excess = [nats(s) - nats(r) if s and r else None for s, r in zip(scores, reference)]
    eot = [s["eot"] for s in scores if s and s["eot"] is not None]
    excess_mean, excess_se = mean_se(excess)
    row = {"nats": mean_se([nats(s) if s else None for s in scores])[0],
           "excess": excess_mean, "excess_se": excess_se,
           "eot_nats": mean_se(eot)[0],
           "eot_likely": sum(math.exp(-x) > 0.5 for x in eot) / len(eot) if eot else float("nan"),
           "answers": sum(s is not None for s in scores), "eot_answers": len(eot)}
    for k in ("stories", "explanations", "lists"):
        row[f"excess_{k}"] = mean_se([x for x, a in zip(excess, answers)
                                      if kind(a["prompt"]) == k])[0]
    # Token-level excess, split by where the token is predicted: right after an anchor, or not.
    split = {True: [], False: []}
    for s, r, at in zip(scores, reference, anchored_at):
        if s and r:
            for i, (a, b) in enumerate(zip(s["lp"], r["lp"])):
                split[i > 0 and (i - 1) in at].append(b - a)
    row["after_anchor_share"] = len(split[True]) / max(1, len(split[True]) + len(split[False]))
    row["excess_after_anchor"] = mean_se(split[True])[0]
    row["excess_elsewhere"] = mean_se(split[False])[0]
    return row


def pop_flags(args, opts, required=(), script="chat_nll.py"):
    """Moves each `--flag VALUE` named in opts out of args into opts (a flag left out keeps its
    default); exits with one line when a flag has no value or a required one is missing."""
    for flag in opts:
        if flag not in args:
            if flag in required:
                sys.exit(f"{script}: {flag} is required (see the usage in its docstring)")
            continue
        k = args.index(flag)
        if k + 1 == len(args):
            sys.exit(f"{script}: {flag} needs a value")
        opts[flag] = args.pop(k + 1)
        args.pop(k)
    return opts


def main():
    args = sys.argv[1:]
    opts = pop_flags(args, {"--anchors": "ep", "--answers": None, "--samples": "3",
                            "--json-out": None, "--attention": "both", "--probes": None})
    anllm, base, models = args[0], args[1], [m.split("=", 1) for m in args[2:]]
    attention = {"both": (None, opts["--anchors"]), "full": (None,),
                 "anchored": (opts["--anchors"],)}[opts["--attention"]]
    path = opts["--answers"] or "chat-nll-answers.jsonl"
    if not os.path.exists(path):
        probes = PROBES
        if opts["--probes"]:
            probes = [line.strip() for line in open(opts["--probes"], encoding="utf-8") if line.strip()]
        make_answers(anllm, base, int(opts["--samples"]), path, probes)
    answers = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    scored = {(base, None): score(anllm, base, None, answers),
              (base, opts["--anchors"]): score(anllm, base, opts["--anchors"], answers)}
    reference = scored[(base, None)]
    # Where the preset puts anchors depends on the tokens only: the same for every model.
    anchored_at = [s["anchors"] if s else set() for s in scored[(base, opts["--anchors"])]]
    rows = {}
    for label, model in models:
        for anchors in attention:
            name = f"{label}, {'anchors ' + anchors if anchors else 'full attention'}"
            if (model, anchors) not in scored:
                scored[(model, anchors)] = score(anllm, model, anchors, answers)
            rows[name] = summary(scored[(model, anchors)], reference, answers, anchored_at)
            print(f"chat_nll.py: {name}: {json.dumps(rows[name])}", file=sys.stderr)
    stopped = sum(a["stop"] == "eos" for a in answers)
    prompts = len({a["prompt"] for a in answers})
    print(f"Teacher-forced on the original's {len(answers)} sampled answers to {prompts} probes "
          f"({path}; temperature 0.6, top-p 0.9, at most {MAX_TOKENS} tokens; {stopped} end "
          "their turn); excess = row minus the original with full attention, nats/token, "
          "± standard error over answers:")
    print()
    share = next(iter(rows.values()))["after_anchor_share"] if rows else 0.0
    print(f"By token: predicted right after an anchor of `--anchors {opts['--anchors']}` (the "
          f"first token of each sentence, {share:.0%} of the tokens), or elsewhere.")
    print()
    print("| model, attention | answer nats/token | excess | stories | explanations | lists "
          "| after an anchor | elsewhere | end-of-turn nats | end of turn likely |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['nats']:.3f} | {r['excess']:+.3f} ± {r['excess_se']:.3f} "
              f"| {r['excess_stories']:+.3f} | {r['excess_explanations']:+.3f} "
              f"| {r['excess_lists']:+.3f} | {r['excess_after_anchor']:+.3f} "
              f"| {r['excess_elsewhere']:+.3f} | {r['eot_nats']:.2f} | {r['eot_likely']:.0%} |")
    if opts["--json-out"]:
        with open(opts["--json-out"], "w") as f:
            json.dump({"answers": path, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
