"""Helpers shared by the HF transformers peer scripts (eval_hf.py, golden_hf.py, kvpress_eval.py)."""

# tokenizer.ggml.pre values whose llama.cpp pre-tokenizer splits every digit off before the GPT-2
# regex (llama-vocab.cpp; crates/anllm/src/tokenizer/bpe.rs); the HF tokenizer.json of these models
# has pre_tokenizer Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False)].
DIGIT_PRE = {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"}


def argmax(xs):
    """Index of the first maximum (ties -> the first, as numpy.argmax)."""
    best = 0
    for i, x in enumerate(xs):
        if x > xs[best]:
            best = i
    return best


def gguf_tokenizer_meta(path):
    """(tokenizer.ggml.pre, tokenizer.ggml.eos_token_id) from the GGUF header (None where absent)."""
    try:
        import gguf
    except ImportError:
        return None, None
    reader = gguf.GGUFReader(path)
    out = []
    for key in ("tokenizer.ggml.pre", "tokenizer.ggml.eos_token_id"):
        field = reader.fields.get(key)
        if field is None:
            out.append(None)
            continue
        val = field.parts[field.data[0]]
        out.append(bytes(val).decode("utf-8") if key.endswith(".pre") else int(val[0]))
    return tuple(out)
