#!/usr/bin/env python3
"""Chooses where the second stage stops, on validation chat (early stopping on a held-out set,
the recipe's --choose-stop), by one of two rules:

- `--by greedy`: the checkpoint whose greedy anchored answers to the 24 validation prompts have
  the highest mean distinct-2 (to two decimals), then the most answers ending their turn, then
  the later step (greedy_val.py: one `anllm generate --prompts-file` run per checkpoint, about
  1.5 minutes on 2 quiet threads, 3 beside a training run; the answers are kept in val-greedy/
  beside --json-out, one file per checkpoint name, so a killed run resumes: delete it when the
  run is trained again). It scores
  greedy chat itself, but 24 answers are too few to rank checkpoints (one answer's distinct-2
  varies by about 0.2): on seed 36 it chose step 20, whose test probes read 86% of the
  original's distinct-2 against the last checkpoint's 97% (docs/anllm-ep-135m.md, "Greedy chat
  on the validation prompts").
- `--by eot` (the rule first measured): the checkpoint whose anchored end of turn is most
  likely on the original's sampled answers, as below.

Along one second stage the end-of-turn token moves far from step to step (on the original's
answers to the 24 test probes, one run read 3.3, 1.0, 1.6, 3.0 and 2.4 nats at steps 20, 60,
80, 120 and 163), and greedy anchored chat stops at the end of its turn or runs on with it.
Every checkpoint of RUN is scored (`chat_nll.py`'s teacher-forced `anllm score`, anchored) on
the original model's sampled answers to the 24 validation prompts (val-probes.txt beside this
script: the same three kinds as the test probes, on other topics, never trained on); the one
with the lowest mean end-of-turn nats is chosen, the later one on a tie.

A proxy, measured on three seeds of the best preset (docs/anllm-ep-135m.md, "A third seed of the
whole best preset"): it chose a better checkpoint for greedy anchored chat than the last on one,
the last on one, and a worse one on one (seed 36: step 80, four loops, where step 163 had none).

Usage: choose_stop.py ANLLM BASE_MODEL RUN --anchors FLAGS --answers FILE --json-out FILE
                      [--by eot|greedy]
(--by: eot by default; --answers, read by `--by eot` only, is made once from val-probes.txt
when it is missing. Prints the chosen checkpoint's path on stdout; the JSON holds every checkpoint's row and the choice; a markdown table goes to
stderr.)
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chat_nll import make_answers, pop_flags, score, summary  # noqa: E402
import greedy_val  # noqa: E402
from greedy_val import VAL_PROBES  # noqa: E402


def step(name):
    return int(name.split("-")[-1])


def choose(rows):
    """The chosen checkpoint name: the lowest end-of-turn nats, the later one on a tie."""
    return min(sorted(rows), key=lambda name: (rows[name]["eot_nats"], -step(name)))


def choose_greedy(rows):
    """The chosen checkpoint name: the highest greedy distinct-2 (to two decimals), then the
    most answers ending their turn, then the later step."""
    return max(sorted(rows), key=lambda name: (round(rows[name]["distinct2"], 2),
                                               rows[name]["end_of_turn"], step(name)))


def by_greedy(anllm, base, run, checkpoints, opts):
    """Scores every checkpoint (and the original, for reference) greedy on the validation
    prompts; prints the table to stderr and returns (rows, chosen)."""
    folder = os.path.join(os.path.dirname(os.path.abspath(opts["--json-out"])), "val-greedy")
    os.makedirs(folder, exist_ok=True)
    reference = greedy_val.row(greedy_val.answers(anllm, base, None, os.path.join(folder, "original.jsonl")))
    rows = {}
    for name in checkpoints:
        path = os.path.join(folder, f"{name}.jsonl")
        rows[name] = greedy_val.row(greedy_val.answers(anllm, os.path.join(run, name), opts["--anchors"], path))
        print(f"choose_stop.py: {name}: distinct-2 {rows[name]['distinct2']:.2f}, end of turn "
              f"{rows[name]['end_of_turn']:.0%}, loops {rows[name]['loops']}", file=sys.stderr)
    chosen = choose_greedy(rows)
    table_rows = {"original, full attention": reference, **rows}
    print(greedy_val.table(table_rows, chosen), file=sys.stderr)
    return table_rows, chosen


def main():
    args = sys.argv[1:]
    opts = pop_flags(args, {"--anchors": None, "--answers": None, "--json-out": None, "--by": "eot"},
                     required=("--anchors", "--json-out"), script="choose_stop.py")
    if len(args) != 3 or opts["--by"] not in ("eot", "greedy"):
        sys.exit("usage: choose_stop.py ANLLM BASE_MODEL RUN --anchors FLAGS --answers FILE --json-out FILE [--by eot|greedy]")
    anllm, base, run = args
    checkpoints = sorted(d for d in os.listdir(run) if d.startswith("checkpoint-"))
    if not checkpoints:
        sys.exit(f"choose_stop.py: no checkpoint in {run}")
    if opts["--by"] == "greedy":
        rows, chosen = by_greedy(anllm, base, run, checkpoints, opts)
        with open(opts["--json-out"], "w") as f:
            json.dump({"by": "greedy", "anchors": opts["--anchors"], "rows": rows, "chosen": chosen}, f, indent=1)
        print(os.path.join(run, chosen))
        return
    if opts["--answers"] is None:
        sys.exit("choose_stop.py: --by eot needs --answers")
    if not os.path.exists(opts["--answers"]):
        probes = [line.strip() for line in open(VAL_PROBES, encoding="utf-8") if line.strip()]
        make_answers(anllm, base, 3, opts["--answers"], probes)
    answers = [json.loads(line) for line in open(opts["--answers"], encoding="utf-8") if line.strip()]
    reference = score(anllm, base, None, answers)
    rows = {}
    for name in checkpoints:
        scores = score(anllm, os.path.join(run, name), opts["--anchors"], answers)
        anchored_at = [s["anchors"] if s else set() for s in scores]
        rows[name] = summary(scores, reference, answers, anchored_at)
        print(f"choose_stop.py: {name}: end of turn {rows[name]['eot_nats']:.2f} nats, "
              f"excess {rows[name]['excess']:+.3f}", file=sys.stderr)
    chosen = choose(rows)
    print(f"| checkpoint | excess (nats/token) | end-of-turn nats | end of turn likely |\n"
          f"|---|---:|---:|---:|", file=sys.stderr)
    for name, r in rows.items():
        mark = " (chosen)" if name == chosen else ""
        print(f"| {name}{mark} | {r['excess']:+.3f} ± {r['excess_se']:.3f} | {r['eot_nats']:.2f} "
              f"| {r['eot_likely']:.0%} |", file=sys.stderr)
    with open(opts["--json-out"], "w") as f:
        json.dump({"answers": opts["--answers"], "anchors": opts["--anchors"], "rows": rows,
                   "chosen": chosen}, f, indent=1)
    print(os.path.join(run, chosen))


if __name__ == "__main__":
    main()
