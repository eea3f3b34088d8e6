#!/usr/bin/env bash
# Fetch the German–English sentence pairs of `anllm eval mt` through Debian's package client,
# pinned and sha256-checked: the Ding dictionary (Debian package trans-de-en 1.9-6, GPL-2+,
# Frank Richter, TU Chemnitz), whose example sentences with their translations give about 17k
# aligned pairs. `anllm eval mt` cuts them into the fixed test and training sets.
#
# Output: "$ANLLM_HOME/mt/de-en" (default ANLLM_HOME: ~/.cache/anllm), the dictionary file as
# shipped in the package (/usr/share/trans/de-en), plus its copyright file. The .deb is kept in
# "$ANLLM_HOME/downloads". Nothing is installed: `apt-get download` only fetches the archive,
# and `dpkg-deb -x` unpacks it into a temporary folder.
#
# Idempotent: when the output exists with the right checksum, nothing is downloaded.
#
#   scripts/fetch-mt.sh
set -euo pipefail

ANLLM_HOME="${ANLLM_HOME:-$HOME/.cache/anllm}"
DL="$ANLLM_HOME/downloads"
OUT="$ANLLM_HOME/mt"
PKG=trans-de-en
VERSION=1.9-6
DEB="${PKG}_${VERSION}_all.deb"
DEB_SHA=45f6b4cf1c434776fba6811d7bc522efabb5425c43ba8afd0e289bf9e2e53df4
DING_SHA=34052c6021d09eadfee7a893a789204265954df70fe9c36d38fa00058d79d326

log() { printf 'fetch-mt: %s\n' "$*" >&2; }
die() { printf 'fetch-mt: error: %s\n' "$*" >&2; exit 1; }
sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

if sha_ok "$OUT/de-en" "$DING_SHA"; then
  exit 0
fi
mkdir -p "$DL" "$OUT"
command -v apt-get >/dev/null || die "apt-get not found (a Debian-based system is needed; or pass your own pairs to anllm eval mt --data)"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found"

# apt-get download writes into the current folder; the package lists may be missing on a fresh
# machine, so one `apt-get update` is tried when the first download fails.
download() { (cd "$DL" && apt-get download -q "$PKG=$VERSION" >&2); }
if ! sha_ok "$DL/$DEB" "$DEB_SHA"; then
  log "downloading $PKG=$VERSION"
  if ! download; then
    log "apt-get download failed; updating the package lists once"
    if [ "$(id -u)" = 0 ]; then apt-get update -q >&2 || true
    elif command -v sudo >/dev/null; then sudo -n apt-get update -q >&2 || true
    fi
    download || die "apt-get download $PKG=$VERSION failed"
  fi
  sha_ok "$DL/$DEB" "$DEB_SHA" || die "checksum mismatch for $DL/$DEB"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$DL/$DEB" "$tmp"
cp "$tmp/usr/share/doc/$PKG/copyright" "$OUT/copyright.trans-de-en"
cp "$tmp/usr/share/trans/de-en" "$OUT/de-en.part"
sha_ok "$OUT/de-en.part" "$DING_SHA" || die "checksum mismatch for the extracted de-en"
mv "$OUT/de-en.part" "$OUT/de-en"
log "ready: $OUT/de-en"
