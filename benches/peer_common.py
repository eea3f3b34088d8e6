"""Helpers shared by the HF transformers peer scripts (eval_hf.py, golden_hf.py)."""

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
