#!/usr/bin/env python3
"""sacrebleu peer of `anllm eval mt` (run through benches/sacrebleu.sh, in its pinned venv).

  sacrebleu_peer.py check RESULTS.json          sacrebleu's corpus BLEU / chrF of the records of
                                                an `anllm eval mt --output` file beside ours
  sacrebleu_peer.py golden --out PATH [--check] the golden corpora of
                                                crates/anllm-eval/tests/mt_metrics.rs

Both metrics are sacrebleu's defaults: `corpus_bleu(hyps, [refs])` (tokenize='13a',
smooth_method='exp', no lowercasing, no effective order) and `corpus_chrf(hyps, [refs])`
(chrF2: character 6-grams, no word n-grams, whitespace removed, no eps smoothing).
"""

import argparse
import json
import platform
import sys

import sacrebleu
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

# Largest |ours - sacrebleu| that `check` accepts, in score points (0-100).
TOLERANCE = 0.01
# `golden --check`: floats may move in the last bits between Pythons (3.12 made `sum()` of floats
# compensated, and sacrebleu sums the BLEU log-precisions with it); the Rust test allows 1e-9.
FLOAT_SLACK = 1e-11

# Small corpora (hypotheses, references), each aimed at one tricky part of the two metrics.
CORPORA = {
    # The 13a regexes: '.' and ',' split unless between digits, '-' split after a digit, the
    # punctuation class, HTML entities, '<skipped>', '-\n' joins, '\n' becomes a space.
    "punctuation_13a": (
        [
            "It costs 3.5 euros, not 1,000.",
            "See a.b and x,y (also e.g. U.S.A.).",
            "Pages 10-20 &amp; 30 - 40 were well-\nknown.",
            "He said &quot;hi&quot; &lt;b&gt;loudly&lt;/b&gt;... ok?!",
            "<skipped>The rate was 5.5% -- or $1,5.",
            "Items: [a] {b} `c` ~d |e\\f ^g _h @i #j",
        ],
        [
            "It costs 3.5 euro, not 1,000 .",
            "See a.b and x, y (also e.g. U.S.A.).",
            "Pages 10-20 & 30-40 were well-known.",
            'He said "hi" <b>loudly</b>... okay?!',
            "The rate was 5.5 % -- or $ 1,5.",
            "Items: [a] {b} `c` ~d |e\\f ^g _h @i #j",
        ],
    ),
    # Non-ASCII letters and punctuation: 13a leaves them alone, chrF counts code points.
    "german_umlauts": (
        [
            "Die Größe der Straße ist übermäßig.",
            "„Übersetzung“ ist schwierig – sagt sie.",
            "Café, naïve façade; Ærø ø å.",
            "Er aß 3,5 Äpfel für 2€.",
            "東京は大きい。 Emoji 🙂 here.",
        ],
        [
            "Die Größe der Strasse ist übermässig.",
            "„Die Übersetzung“ ist schwierig — sagt sie.",
            "Café, naive façade; Ærø ø å.",
            "Er aß 3,5 Äpfel für 2 €.",
            "東京は大きい。 Emoji 🙂 there.",
        ],
    ),
    # Empty (and whitespace-only) hypotheses among normal ones.
    "empty_hypotheses": (
        ["", "the house is small", "   ", "a cat sat on the mat"],
        ["there is nothing here", "the house is small", "it is raining today", "the cat sat on the mat"],
    ),
    # A system of empty outputs: sys_len 0, brevity penalty 0, every count 0.
    "empty_system": (
        ["", ""],
        ["a reference sentence", "another one here"],
    ),
    # Matches up to trigrams but no 4-gram: the exponential smoothing of the 4-gram precision.
    "no_4gram_matches": (
        ["the quick brown dog leaps over the lazy fox", "we will see you later today"],
        ["the quick brown fox jumps over the lazy dog", "we shall see you later on today"],
    ),
    # Hypotheses much shorter than the references: brevity penalty below 1.
    "short_system": (
        ["the cat sat", "he went home early", "prices rose"],
        [
            "the cat sat on the mat all day long",
            "he went home early because he was tired",
            "prices rose sharply in the last quarter of the year",
        ],
    ),
    # Segments under 4 tokens (no 4-grams at all: BLEU stops at the empty order and is 0) and
    # under 6 characters (chrF ignores the hypothesis n-grams of orders the reference lacks).
    "short_segments": (
        ["yes", "no way", "ok then go"],
        ["yes", "no way", "okay go"],
    ),
    # Trailing (and leading, inner) whitespace of every kind Python's str.split() knows,
    # including the \x1c-\x1f separators that Rust's char::is_whitespace does not.
    "trailing_whitespace": (
        [
            "the weather is fine today  \t\n",
            "  leading and inner   spaces\u00a0here\u3000",
            "file\x1cgroup\x1drecord\x1eunit\x1fseparators \x1f",
            "carriage\rreturn and line\nbreak\x0b\x0c\u2028",
        ],
        [
            "the weather is fine today",
            "leading and inner spaces here",
            "file group record unit separators",
            "carriage return and line break",
        ],
    ),
    # A realistic test set: 20 English reference translations and plausible system outputs.
    "realistic_en": (
        [
            "The government announced new measures against inflation on Monday.",
            "According to the police, nobody was injured in the accident.",
            "The museum will be closed for renovation until next spring.",
            "She has been working as a teacher for over twenty years.",
            "Prices for energy have risen by 12.5 percent since January.",
            "The match ended 2-1 after extra time.",
            "We are looking forward to welcome you in our hotel.",
            "The train to Berlin is delayed by about 30 minutes.",
            "Scientists discovered a new species of frog in the rainforest.",
            "The company plans to hire 1,500 new employees this year.",
            "Could you please tell me the way to the station?",
            "The negotiations were broken off without a result.",
            "Children under six years travel for free.",
            "The festival attracts thousands of visitors each summer.",
            "He apologized for the mistake in a short statement.",
            "The new bridge should be finished in 2027.",
            "Many people work from home since the pandemic.",
            "The weather service warns of heavy storms in the north.",
            "The book was translated into more than 40 languages.",
            "I did not expect that the exam would be so difficult.",
        ],
        [
            "On Monday, the government announced new measures against inflation.",
            "According to police, nobody was injured in the accident.",
            "The museum will be closed for renovation until next spring.",
            "She has worked as a teacher for more than twenty years.",
            "Energy prices have risen by 12.5 percent since January.",
            "The match ended 2-1 after extra time.",
            "We look forward to welcoming you to our hotel.",
            "The train to Berlin is running about 30 minutes late.",
            "Scientists have discovered a new species of frog in the rainforest.",
            "The company plans to hire 1,500 new employees this year.",
            "Could you please tell me the way to the station?",
            "The negotiations were broken off without result.",
            "Children under the age of six travel free of charge.",
            "The festival attracts thousands of visitors every summer.",
            "In a short statement, he apologised for the error.",
            "The new bridge is due to be completed in 2027.",
            "Since the pandemic, many people have been working from home.",
            "The weather service is warning of severe storms in the north.",
            "The book has been translated into more than 40 languages.",
            "I did not expect the exam to be so difficult.",
        ],
    ),
    # Identical hypotheses and references: 100 for both metrics.
    "identical": (
        ["A perfect translation.", "Nothing to improve here, 3.5 times over."],
        ["A perfect translation.", "Nothing to improve here, 3.5 times over."],
    ),
}

# Extra inputs of the 13a tokenizer alone (the corpus segments are tokenized as well).
TOKENIZER_EXTRA = [
    "", " ", "a.b", "3.5", "1,000", "1.000,50", ".5", "5.", "5,", ",5", "..5", "9.,x", "a,1",
    "1,a", "A.B.C.", "...", ".,;", "10-20", "10 - 20", "-5", "5-", "5--6", "a-b", "e-mail",
    "&amp;amp;", "&quot;&quot;", "&lt;b&gt;", "&AMP; &#39;", "<skipped>x<skipped>", "x-\ny",
    "x\ny", "x-\n", "tab\there", "\x1cfs\x1dgs\x1ers\x1fus", "nbsp\u00a0here",
    "Größe: 3,5 m.", "„Zitat“ – Ende…", "it's don't", "$100 50% #1 @me", "a:b;c=d?e!f",
    "{curly} [square] `tick` ~tilde |pipe \\back ^caret _under", "٣.٥ ３.５ 3.５ ３,5",
    "x.\u00a0y", "end .", "(1.5)", "1.5.", "2-3-4", "Mr.Smith,Jr.",
]


def bleu_entry(hyps, refs):
    """sacrebleu's BLEUScore as a dict: score, statistics, precisions, brevity penalty."""
    b = sacrebleu.corpus_bleu(hyps, [refs])
    return {
        "score": b.score,
        "counts": [int(c) for c in b.counts],
        "totals": [int(t) for t in b.totals],
        "precisions": list(b.precisions),
        "bp": b.bp,
        "sys_len": int(b.sys_len),
        "ref_len": int(b.ref_len),
    }


def signature(metric):
    """The metric's reproducibility signature (it knows the reference count only after a run)."""
    metric.corpus_score(["a"], [["a"]])
    return str(metric.get_signature())


def golden():
    """The golden document: every corpus with its scores, and the 13a tokenizations."""
    corpora = []
    seen = []
    for name, (hyps, refs) in CORPORA.items():
        assert len(hyps) == len(refs), name
        corpora.append({
            "name": name,
            "hypotheses": hyps,
            "references": refs,
            "bleu": bleu_entry(hyps, refs),
            "chrf": sacrebleu.corpus_chrf(hyps, [refs]).score,
        })
        seen += hyps + refs
    tok = Tokenizer13a()
    inputs = list(dict.fromkeys(TOKENIZER_EXTRA + seen))
    return {
        "made_by": "benches/sacrebleu.sh golden (benches/sacrebleu_peer.py)",
        "sacrebleu": sacrebleu.__version__,
        "python": platform.python_version(),
        "bleu_signature": signature(sacrebleu.BLEU()),
        "chrf_signature": signature(sacrebleu.CHRF()),
        "corpora": corpora,
        "tokenize_13a": [{"input": s, "output": tok(s)} for s in inputs],
    }


def differences(old, new, path="$"):
    """Where two golden documents differ: floats beyond FLOAT_SLACK, anything else at all."""
    if isinstance(old, float) or isinstance(new, float):
        ok = isinstance(old, (int, float)) and isinstance(new, (int, float))
        return [] if ok and abs(old - new) <= FLOAT_SLACK else [f"{path}: {old!r} -> {new!r}"]
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted((set(old) | set(new)) - {"python"})
        return [d for k in keys for d in differences(old.get(k), new.get(k), f"{path}.{k}")]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in differences(a, b, f"{path}[{i}]")]
    return [] if old == new else [f"{path}: {old!r} -> {new!r}"]


def cmd_golden(args):
    doc = golden()
    if args.check:
        with open(args.out, encoding="utf-8") as f:
            diffs = differences(json.load(f), doc)
        for d in diffs:
            print(d)
        print(f"{args.out}: {'DIFFERS' if diffs else 'reproduced'} (Python {doc['python']})")
        return 1 if diffs else 0
    text = json.dumps(doc, ensure_ascii=False, indent=1) + "\n"
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def cmd_check(args):
    with open(args.results, encoding="utf-8") as f:
        doc = json.load(f)
    records = doc["records"]
    if not records:
        print(f"{args.results}: no records", file=sys.stderr)
        return 1
    hyps = [r["hypothesis"] for r in records]
    refs = [r["reference"] for r in records]
    peer = {
        "bleu": sacrebleu.corpus_bleu(hyps, [refs]).score,
        "chrf": sacrebleu.corpus_chrf(hyps, [refs]).score,
    }
    ours = doc["summary"]
    print(f"{len(records)} segments, sacrebleu {sacrebleu.__version__}")
    print(f"{'metric':<6} {'anllm':>12} {'sacrebleu':>12} {'diff':>12}")
    bad = 0
    for name, theirs in peer.items():
        mine = float(ours[name])
        diff = mine - theirs
        flag = "" if abs(diff) <= TOLERANCE else f"  > {TOLERANCE}"
        bad += bool(flag)
        print(f"{name:<6} {mine:>12.6f} {theirs:>12.6f} {diff:>+12.6f}{flag}")
    return 1 if bad else 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="compare an `anllm eval mt --output` file with sacrebleu")
    c.add_argument("results")
    g = sub.add_parser("golden", help="write (or --check) the golden corpora")
    g.add_argument("--out", required=True)
    g.add_argument("--check", action="store_true", help="compare with --out, write nothing")
    args = p.parse_args()
    return cmd_check(args) if args.cmd == "check" else cmd_golden(args)


if __name__ == "__main__":
    sys.exit(main())
