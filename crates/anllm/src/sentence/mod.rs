//! English sentence splitting (Punkt-class), used to insert `<AC>` anchors after sentences.
//!
//! [`SentenceSplitter`] ports the decision algorithm of NLTK's `PunktSentenceTokenizer`;
//! [`PunktParams`] holds a Punkt model: NLTK's English model is fetched as JSON by
//! `scripts/fetch-punkt.sh` into `<anllm home>/punkt/english.json`.
//!
//! ```no_run
//! let home = std::path::Path::new("/home/me/.cache/anllm");
//! let splitter = anllm::sentence::load_english(home)?;
//! let text = "Mr. Smith arrived at 3.14 p.m. on Monday. He left.";
//! assert_eq!(splitter.sentences(text), ["Mr. Smith arrived at 3.14 p.m. on Monday.", "He left."]);
//! # Ok::<(), anllm::Error>(())
//! ```

mod annotate;
mod context;
mod punkt;
mod train;
mod words;

use std::path::{Path, PathBuf};

pub use punkt::{ENGLISH_EXTRA_ABBREVIATIONS, PunktParams, SentenceSplitter};

/// Path of the English parameters under an anllm home: `<home>/punkt/english.json`.
pub fn english_params_path(anllm_home: &Path) -> PathBuf {
    anllm_home.join("punkt").join("english.json")
}

/// The recommended English splitter: NLTK's English model from
/// [`english_params_path`] plus [`ENGLISH_EXTRA_ABBREVIATIONS`] (NLTK's model lacks `e.g`,
/// `i.e` and `etc`, so NLTK itself breaks after them).
pub fn load_english(anllm_home: &Path) -> crate::Result<SentenceSplitter> {
    let mut params = PunktParams::from_json_file(&english_params_path(anllm_home))?;
    params.add_abbreviations(ENGLISH_EXTRA_ABBREVIATIONS);
    Ok(SentenceSplitter::new(params))
}
