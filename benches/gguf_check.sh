#!/usr/bin/env bash
# Peer check of `anllm export`: reads a GGUF with the `gguf` Python package (llama.cpp's own
# reader, gguf==0.17.1, sha256-pinned, in a venv under $ANLLM_HOME/peers/gguf-venv) and checks
# what llama.cpp needs: architecture llama, every llama tensor name with its shape, the tensor
# types, and a tokenizer of llama.vocab_size tokens. Prints one JSON line; exits non-zero on a
# mismatch.
#
#   benches/gguf_check.sh FILE.gguf
set -euo pipefail
FILE=${1:?usage: benches/gguf_check.sh FILE.gguf}
ANLLM_HOME=${ANLLM_HOME:-$HOME/.cache/anllm}
VENV="$ANLLM_HOME/peers/gguf-venv"
if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV"
  dl=$(mktemp -d)
  "$VENV/bin/pip" download -q --no-deps -d "$dl" gguf==0.17.1
  echo "7bc5aa7eeb1931f7d39b48fdc5b38fda6b294b9dca75cf607ac69557840a3943  $dl/gguf-0.17.1-py3-none-any.whl" | sha256sum -c - >&2
  "$VENV/bin/pip" install -q "$dl/gguf-0.17.1-py3-none-any.whl"
  rm -rf "$dl"
fi
"$VENV/bin/python" - "$FILE" <<'PY'
import json, sys
from gguf import GGUFReader

r = GGUFReader(sys.argv[1])
def field(name):
    f = r.fields[name]
    v = f.parts[f.data[0]]
    return bytes(v).decode() if f.types[0].name == "STRING" else v.tolist()[0]
arch = field("general.architecture")
n_layer = field("llama.block_count")
vocab = field("llama.vocab_size")
tokens = len(r.fields["tokenizer.ggml.tokens"].data)
names = {t.name: t for t in r.tensors}
want = ["token_embd.weight", "output_norm.weight"] + [
    f"blk.{i}.{p}.weight" for i in range(n_layer) for p in
    ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down")]
missing = [n for n in want if n not in names]
types = sorted({t.tensor_type.name for t in r.tensors})
ok = arch == "llama" and not missing and tokens == vocab
print(json.dumps({"file": sys.argv[1], "architecture": arch, "tensors": len(r.tensors),
                  "missing": missing, "types": types, "vocab_size": vocab, "tokens": tokens,
                  "embd_shape": [int(x) for x in names["token_embd.weight"].shape], "ok": ok}))
sys.exit(0 if ok else 1)
PY
