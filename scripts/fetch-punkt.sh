#!/usr/bin/env bash
# Fetch the Punkt sentence-splitter parameters anllm uses (NLTK's English model, as compiled to
# JSON by the `punkt` Rust crate, version 1.0.5), plus that crate's licenses and the reference
# texts/splits that crates/anllm/tests/punkt.rs compares against.
#
# The crate is fetched with cargo itself (a throwaway manifest, `cargo fetch`), so cargo checks
# the crate's checksum against the registry index; english.json is then checked against a pinned
# sha256. Nothing is built. Everything lands in "$ANLLM_HOME/punkt" (default: ~/.cache/anllm).
# Idempotent: files already present with the right checksum are left alone.
#
#   scripts/fetch-punkt.sh            # fetch if needed, print where things are
#   scripts/fetch-punkt.sh --print    # only print where things are (no downloads)
set -euo pipefail

ANLLM_HOME="${ANLLM_HOME:-$HOME/.cache/anllm}"
PUNKT="$ANLLM_HOME/punkt"

PUNKT_CRATE_VERSION=1.0.5
ENGLISH_JSON_SHA=a913583684e3c1a5564df7e3afba595fc9963750704dcc2f0051e46ba0463901
# Texts with NLTK reference splits (test/raw + test/sentence) ...
REF_TEXTS=(history-of-china npr-article-01 ny-times-article-01 pride-and-prejudice
  the-sayings-of-confucius)
# ... and texts without (test/raw only).
RAW_ONLY_TEXTS=(ny-times-article-02 ny-times-article-03 sigma-wiki)
LICENSES=(LICENSE-MIT LICENSE-APACHE)
TMP_DIR=""

log() { printf 'fetch-punkt: %s\n' "$*" >&2; }
die() { printf 'fetch-punkt: error: %s\n' "$*" >&2; exit 1; }

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

# The files besides english.json that a complete install has.
other_files() {
  local name
  for name in "${LICENSES[@]}"; do echo "$name"; done
  for name in "${REF_TEXTS[@]}"; do echo "test/raw/$name.txt"; echo "test/sentence/$name.txt"; done
  for name in "${RAW_ONLY_TEXTS[@]}"; do echo "test/raw/$name.txt"; done
}

complete() {
  sha_ok "$PUNKT/english.json" "$ENGLISH_JSON_SHA" || return 1
  local f
  while read -r f; do [ -f "$PUNKT/$f" ] || return 1; done < <(other_files)
}

# crate_dir TMP: fetch the crate through a throwaway manifest in TMP and print its source folder.
crate_dir() {
  local tmp=$1
  cat >"$tmp/Cargo.toml" <<TOML
[package]
name = "anllm-fetch-punkt"
version = "0.0.0"
edition = "2021"
publish = false

[lib]
path = "lib.rs"

[dependencies]
punkt = "=$PUNKT_CRATE_VERSION"
TOML
  : >"$tmp/lib.rs"
  log "fetching the punkt crate $PUNKT_CRATE_VERSION with cargo"
  (cd "$tmp" && cargo fetch --quiet) || die "cargo fetch of punkt $PUNKT_CRATE_VERSION failed"
  local manifest
  manifest=$(cd "$tmp" && cargo metadata --offline --format-version 1 2>/dev/null \
    | grep -o "\"manifest_path\":\"[^\"]*/punkt-$PUNKT_CRATE_VERSION/Cargo.toml\"" | head -n1 \
    | cut -d'"' -f4) || true
  [ -n "$manifest" ] || die "cannot locate the fetched punkt $PUNKT_CRATE_VERSION sources"
  dirname "$manifest"
}

fetch_punkt() {
  if complete; then return 0; fi
  local src f
  TMP_DIR=$(mktemp -d)
  trap 'rm -rf "$TMP_DIR"' EXIT
  src=$(crate_dir "$TMP_DIR")
  mkdir -p "$PUNKT/test/raw" "$PUNKT/test/sentence"
  cp "$src/src/data/english.json" "$PUNKT/english.json.part"
  sha_ok "$PUNKT/english.json.part" "$ENGLISH_JSON_SHA" \
    || die "checksum mismatch for english.json of punkt $PUNKT_CRATE_VERSION"
  while read -r f; do
    [ -f "$src/$f" ] || die "punkt $PUNKT_CRATE_VERSION has no $f"
    cp "$src/$f" "$PUNKT/$f"
  done < <(other_files)
  mv "$PUNKT/english.json.part" "$PUNKT/english.json"
}

if [ "${1:-}" != "--print" ]; then
  fetch_punkt
fi

cat <<INFO
ANLLM_HOME=$ANLLM_HOME
punkt english model: $PUNKT/english.json (NLTK parameters via the punkt crate $PUNKT_CRATE_VERSION)
punkt licenses:      $PUNKT/LICENSE-MIT, $PUNKT/LICENSE-APACHE
punkt test texts:    $PUNKT/test/raw, $PUNKT/test/sentence
INFO
