#!/usr/bin/env python3
"""Summarises an anllm-ep-135m.sh run: prints the perplexity curves (one line per checkpoint,
both stages; the second stage's tokens and seconds continue the first's) to stderr, writes
OUT/curves.json, and prints the result JSON as the last line of stdout.

Usage: report.py OUT LAST_CHECKPOINT_DIR [ANCHORS (the anchored rows' preset, ep)] [AVERAGE_DIR]

With AVERAGE_DIR (the recipe's AVERAGE_LAST=N: `anllm average` of the last stage's newest
checkpoints, evaluated under its directory name), the trained model's perplexities are the
average's, `checkpoint` names it and `averaged_from` its sources; tokens, steps and minutes are
those of LAST_CHECKPOINT_DIR, the newest checkpoint averaged.
"""
import glob
import json
import os
import sys


def load(path):
    try:
        with open(path) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def ppl(out, name, text, anchors):
    r = load(os.path.join(out, "eval", f"{name}-{text}-{anchors}.json"))
    return None if r is None else r["result"]["ppl"]


def kv_reduction(out, name, text):
    r = load(os.path.join(out, "eval", f"{name}-{text}-ep.json"))
    if r is None:
        return None
    c = r["result"]["c_window"]
    return c["ratio_sum"] / c["items"]


def state_of(ck):
    return json.load(open(os.path.join(ck, "trainer_state.json")))


def stages(out):
    """(eval-name prefix, checkpoint dir, steps/tokens/seconds before it) of every checkpoint."""
    first = sorted(glob.glob(os.path.join(out, "run", "checkpoint-*")))
    rows = [("", ck, (0, 0, 0.0)) for ck in first]
    start = os.path.join(out, "stage2-start.txt")
    if os.path.exists(start):
        s = state_of(open(start).read().strip())
        offset = (s["step"], s["tokens_seen"], s["elapsed_s"])
        rows += [("s2-", ck, offset)
                 for ck in sorted(glob.glob(os.path.join(out, "run2", "checkpoint-*")))]
    return rows


def main():
    out, last = sys.argv[1], sys.argv[2]
    preset = sys.argv[3] if len(sys.argv) > 3 else "ep"  # the anchored rows' --anchors
    curves = []
    offsets = {}
    for prefix, ck, (steps0, tokens0, secs0) in stages(out):
        name = prefix + os.path.basename(ck)
        offsets[os.path.abspath(ck)] = (name, steps0, tokens0, secs0)
        state = state_of(ck)
        row = {"checkpoint": name, "step": steps0 + state["step"],
               "tokens": tokens0 + state["tokens_seen"], "train_s": secs0 + state["elapsed_s"]}
        for text in ("heldout", "gpl3"):
            for a, key in (("none", "full"), ("ep", "anchor")):
                row[f"ppl_{key}_{text}"] = ppl(out, name, text, a)
        curves.append(row)
        print(json.dumps(row), file=sys.stderr)
    json.dump(curves, open(os.path.join(out, "curves.json"), "w"), indent=1)
    average = sys.argv[4] if len(sys.argv) > 4 else None
    name, steps0, tokens0, secs0 = offsets[os.path.abspath(last)]
    if average:
        name = os.path.basename(os.path.normpath(average))
    state = state_of(last)
    wall = secs0 + state["elapsed_s"]  # training step time, both stages, resumed invocations
    res = {}
    for text, suffix in (("heldout", ""), ("gpl3", "_gpl3")):
        b_full, b_anc = ppl(out, "base", text, "none"), ppl(out, "base", text, "ep")
        t_full, t_anc = ppl(out, name, text, "none"), ppl(out, name, text, "ep")
        res.update({
            f"ppl_full_base{suffix}": b_full, f"ppl_anchor_base{suffix}": b_anc,
            f"ppl_full_trained{suffix}": t_full, f"ppl_anchor_trained{suffix}": t_anc,
            f"tax{suffix}": t_anc / t_full if t_anc and t_full else None,
            f"net{suffix}": t_anc / b_full if t_anc and b_full else None,
            f"kv_reduction{suffix}": kv_reduction(out, name, text),
        })
    res.update({"anchors": preset, "tokens_trained": tokens0 + state["tokens_seen"], "steps": steps0 + state["step"],
                "minutes": round(wall / 60, 1), "checkpoint": os.path.abspath(average or last)})
    if average:
        res["averaged_from"] = load_json(os.path.join(average, "anllm_average.json"))["averaged_from"]
    # The chat probes' means (chat.py --json-out): distinct-2, judge nats/token, relevance.
    # And of the 24 probes (chat_probes.py): also on topic and end of turn; chat_nll.py's
    # teacher-forced nats/token and excess over the original on its sampled answers.
    for key, file in (("chat", "chat.json"), ("chat_rp1.1", "chat-rp1.1.json"),
                      ("probes", "probes.json"), ("chat_nll", "chat-nll.json")):
        chat = load_json(os.path.join(out, file))
        if chat is not None:
            res[key] = {label: {k: round(v, 3) for k, v in row.items()}
                        for label, row in chat["rows"].items()}
    # window_sweep.py: the anchored perplexity, tax and C⇓ of each --anchor-window at inference.
    sweep = load_json(os.path.join(out, "window-sweep.json"))
    if sweep is not None:
        res["window_sweep"] = {str(row["window"]): {text: {k: round(v, 4) for k, v in r.items()}
                                                    for text, r in row.items() if text != "window"}
                               for row in sweep["rows"]}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
