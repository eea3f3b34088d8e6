#!/usr/bin/env python3
"""Recompute NLTK_ENGLISH_SPLITS of crates/anllm/tests/punkt.rs with NLTK itself.

For every reference text of the `punkt` crate (`$ANLLM_HOME/punkt/test/raw/*.txt`, fetched by
scripts/fetch-punkt.sh), split it with NLTK's Punkt and NLTK's English model, and print the
sentence count and the FNV-1a 64 hash of the sentences (UTF-8, joined by NUL bytes), as the
Rust test computes them:

    params    = PunktParameters filled from $ANLLM_HOME/punkt/english.json (the `punkt` crate's
                JSON of NLTK's English model: abbrev_types, collocations, sentence_starters,
                ortho_context), nothing added
    sentences = [text[a:b].strip() for a, b in PunktSentenceTokenizer(params).span_tokenize(text)]
                with the empty ones dropped

Texts are read as UTF-8 with newlines kept as they are (no \\r\\n translation), as Rust's
read_to_string does.

    benches/punkt_hashes.sh            # the Rust table on stdout
    benches/punkt_hashes.sh --check    # also compare with the table in crates/anllm/tests/punkt.rs

--check also confirms REFERENCE_EXCEPTIONS of punkt.rs: Punkt trained on the text itself
(`PunktSentenceTokenizer(text).span_tokenize(text, realign_boundaries=False)`, as the `punkt`
crate's reference splits were made) ends a sentence right after the dateline "SAN JOSE, Calif."
of ny-times-article-01.txt, where the published reference does not.

The hashes in punkt.rs were made with NLTK 3.10.4 (`pip install nltk==3.10.4`; Punkt needs no
NLTK data download, the parameters come from english.json).
"""

import argparse
import json
import os
import re
import sys
from collections import defaultdict

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK = (1 << 64) - 1


def fnv1a(sentences):
    """FNV-1a 64 over the sentences' UTF-8 bytes, a NUL byte between two sentences."""
    h = FNV_OFFSET
    for k, s in enumerate(sentences):
        data = (b"" if k == 0 else b"\0") + s.encode("utf-8")
        for b in data:
            h = ((h ^ b) * FNV_PRIME) & MASK
    return h


def load_params(path):
    from nltk.tokenize.punkt import PunktParameters
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    p = PunktParameters()
    p.abbrev_types = set(d["abbrev_types"])
    p.collocations = {tuple(c) for c in d["collocations"]}
    p.sent_starters = set(d["sentence_starters"])
    p.ortho_context = defaultdict(int, {k: int(v) for k, v in d["ortho_context"].items()})
    return p


# REFERENCE_EXCEPTIONS of punkt.rs: (file, where NLTK ends the sentence the reference runs on).
EXCEPTIONS = [("ny-times-article-01.txt", "SAN JOSE, Calif.")]


def check_exceptions(raw_dir):
    """True when NLTK, trained on each excepted text, ends a sentence exactly at `first`."""
    from nltk.tokenize.punkt import PunktSentenceTokenizer
    ok = True
    for name, first in EXCEPTIONS:
        with open(os.path.join(raw_dir, name), encoding="utf-8", newline="") as f:
            text = f.read()
        trained = PunktSentenceTokenizer(text)
        spans = trained.span_tokenize(text, realign_boundaries=False)
        found = any(text[s:e].strip() == first for s, e in spans)
        print(f"punkt_hashes: exception {name}: NLTK ends a sentence at {first!r}: {found}",
              file=sys.stderr)
        ok &= found
    return ok


def rust_hex(h):
    """0x5d0a_650a_9f10_2a2a, as rustfmt / clippy want long literals."""
    s = f"{h:016x}"
    return "0x" + "_".join(s[i:i + 4] for i in range(0, 16, 4))


def rust_table(punkt_rs):
    """(name, count, hash) rows of NLTK_ENGLISH_SPLITS in punkt.rs."""
    with open(punkt_rs, encoding="utf-8") as f:
        src = f.read()
    body = src.split("NLTK_ENGLISH_SPLITS", 1)[1].split("];", 1)[0]
    rows = re.findall(r'\("([^"]+)",\s*(\d+),\s*(0x[0-9a-f_]+)\)', body)
    return [(n, int(c), int(h.replace("_", ""), 16)) for n, c, h in rows]


def main():
    home = os.environ.get("ANLLM_HOME") or os.path.expanduser("~/.cache/anllm")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--punkt-dir", default=os.path.join(home, "punkt"),
                    help="the fetched punkt data (default $ANLLM_HOME/punkt)")
    ap.add_argument("--check", action="store_true",
                    help="compare with NLTK_ENGLISH_SPLITS in crates/anllm/tests/punkt.rs; "
                         "exit status 1 on any difference")
    a = ap.parse_args()

    import nltk
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    english = os.path.join(a.punkt_dir, "english.json")
    raw_dir = os.path.join(a.punkt_dir, "test", "raw")
    for p in (english, raw_dir):
        if not os.path.exists(p):
            sys.exit(f"punkt_hashes: missing {p}: run scripts/fetch-assets.sh")
    tok = PunktSentenceTokenizer(load_params(english))
    print(f"punkt_hashes: NLTK {nltk.__version__}, params {english}", file=sys.stderr)

    rows = []
    for name in sorted(os.listdir(raw_dir)):
        if not name.endswith(".txt"):
            continue
        with open(os.path.join(raw_dir, name), encoding="utf-8", newline="") as f:
            text = f.read()
        sentences = [text[s:e].strip() for s, e in tok.span_tokenize(text)]
        sentences = [s for s in sentences if s]
        rows.append((name, len(sentences), fnv1a(sentences)))

    print(f"// NLTK {nltk.__version__}")
    print("const NLTK_ENGLISH_SPLITS: &[(&str, usize, u64)] = &[")
    for name, count, h in rows:
        print(f'    ("{name}", {count}, {rust_hex(h)}),')
    print("];")

    if a.check:
        want = rust_table(os.path.join(repo, "crates", "anllm", "tests", "punkt.rs"))
        exceptions_ok = check_exceptions(raw_dir)
        if want == rows and exceptions_ok:
            print(f"punkt_hashes: all {len(rows)} rows equal punkt.rs", file=sys.stderr)
        else:
            for w, g in zip(want, rows):
                if w != g:
                    print(f"punkt_hashes: differs: punkt.rs {w[0]} {w[1]} {rust_hex(w[2])}, "
                          f"NLTK {g[0]} {g[1]} {rust_hex(g[2])}", file=sys.stderr)
            if len(want) != len(rows):
                print(f"punkt_hashes: punkt.rs has {len(want)} rows, NLTK gave {len(rows)}",
                      file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
