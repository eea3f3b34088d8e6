//! The default model's tokenizer extended with `[PAD]` and `<AC>` (`anllm_train::vocab`): new
//! ids after the 49,152, the rest of the tokenizer unchanged. Needs the fetched assets
//! (`scripts/fetch-assets.sh`); a missing asset fails.

use anllm::testutil::{asset, gguf_tokenizer};
use anllm::tokenizer::Tokenizer;

fn write_files(dir: &std::path::Path, files: &[(String, Vec<u8>)]) {
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// Texts on which `source` and `loaded` give different ids (no special-token parsing).
fn mismatches<'a>(
    source: &Tokenizer,
    loaded: &Tokenizer,
    texts: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    texts
        .into_iter()
        .filter(|t| source.encode(t, false).unwrap() != loaded.encode(t, false).unwrap())
        .map(|t| t.chars().take(120).collect())
        .collect()
}

/// The default model's files extended with `[PAD]` and `<AC>`: new ids after the 49,152, the
/// rest of the tokenizer unchanged.
#[test]
fn smollm2_extended_with_pad_and_ac() {
    use anllm_train::vocab::{AC_TOKEN, PAD_TOKEN, extend_tokenizer};
    let source = gguf_tokenizer("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let mut files = source.to_hf_files().unwrap();
    let ids = extend_tokenizer(&mut files, &[PAD_TOKEN, AC_TOKEN]).unwrap();
    assert_eq!(ids, [49152, 49153]);
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), &files);
    let loaded = Tokenizer::from_hf_dir(dir.path()).unwrap();
    assert_eq!(loaded.vocab_size(), 49154);
    assert_eq!(loaded.token_id(AC_TOKEN), Some(49153));
    let specials = loaded.specials();
    assert_eq!(specials.pad, Some(49152));
    assert_eq!(
        (specials.bos, specials.eos, specials.unk, &specials.eot),
        (
            source.specials().bos,
            source.specials().eos,
            source.specials().unk,
            &source.specials().eot
        )
    );
    let ids = loaded.encode("Hello there.<AC> Bye.", true).unwrap();
    assert!(ids.contains(&49153), "{ids:?}");
    let heldout = std::fs::read_to_string(asset("corpus/heldout.txt")).unwrap();
    let failures = mismatches(&source, &loaded, heldout.lines());
    assert!(
        failures.is_empty(),
        "{} held-out lines differ: {failures:?}",
        failures.len()
    );
}
