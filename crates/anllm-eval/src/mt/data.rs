//! Source/reference sentence pairs: the example sentences of the Ding German–English dictionary
//! (Debian package `trans-de-en`, fetched by `scripts/fetch-mt.sh`), or a TSV / JSONL file of
//! the user's, and the fixed test / training split.
//!
//! A Ding line is `German :: English`; each side holds the same number of sub-entries separated
//! by ` | `, aligned by position. Most sub-entries are words and phrases; the example sentences
//! among them are what we keep (see [`parse_ding`] for the exact rule).

use std::collections::HashSet;
use std::path::Path;

use serde_json::Value;

use anllm::{Error, Result};

use crate::data::{read_rows, row_error};

/// One source sentence and its reference translation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pair {
    /// The sentence to translate.
    pub source: String,
    /// Its reference translation.
    pub reference: String,
}

impl Pair {
    /// The same pair with source and reference swapped (English→German from Ding).
    pub fn swapped(self) -> Self {
        Self {
            source: self.reference,
            reference: self.source,
        }
    }

    /// Words of the source (whitespace-separated).
    pub fn source_words(&self) -> usize {
        self.source.split_whitespace().count()
    }
}

/// The German→English sentence pairs of a Ding dictionary file, in file order, each source once
/// (the first pair wins). A pair is kept when, on a line with exactly one ` :: ` whose two sides
/// have the same number of ` | ` sub-entries, both aligned sub-entries
///
/// * start with an upper-case letter and end with `.`, `!` or `?` (the English side may close a
///   quotation after it),
/// * contain no `; ` (Ding's separator of alternatives) and no `{}` / `[]` (grammar and usage
///   labels such as `{f}` or `[coll.]`).
pub fn parse_ding(content: &str) -> Vec<Pair> {
    let mut seen = HashSet::new();
    let mut pairs = Vec::new();
    for line in content.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut sides = line.split(" :: ");
        let (Some(de), Some(en), None) = (sides.next(), sides.next(), sides.next()) else {
            continue;
        };
        let (de, en): (Vec<&str>, Vec<&str>) =
            (de.split(" | ").collect(), en.split(" | ").collect());
        if de.len() != en.len() {
            continue;
        }
        for (d, e) in de.iter().zip(&en) {
            let (d, e) = (d.trim(), e.trim());
            if is_sentence(d, false) && is_sentence(e, true) && seen.insert(d.to_string()) {
                pairs.push(Pair {
                    source: d.to_string(),
                    reference: e.to_string(),
                });
            }
        }
    }
    pairs
}

/// Whether a Ding sub-entry is a clean example sentence (see [`parse_ding`]).
fn is_sentence(text: &str, allow_closing_quote: bool) -> bool {
    let starts_upper = text.chars().next().is_some_and(char::is_uppercase);
    let body = match allow_closing_quote {
        true => text.trim_end_matches(['"', '”', '’', '\'']),
        false => text,
    };
    let ends = body.ends_with(['.', '!', '?']);
    let labelled = text.contains("; ") || text.contains(['{', '}', '[', ']']);
    starts_upper && ends && !labelled
}

/// How the test set is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitSpec {
    /// Seed of the shuffle.
    pub seed: u64,
    /// Pairs in the test set.
    pub test_size: usize,
    /// Fewest source words a test pair has.
    pub min_words: usize,
}

impl Default for SplitSpec {
    /// The fixed split of `anllm eval mt`: seed 34 (the authors' training seed), 500 pairs,
    /// sources of at least 6 words.
    fn default() -> Self {
        Self {
            seed: 34,
            test_size: 500,
            min_words: 6,
        }
    }
}

/// A test set and a training set that shares no source or reference sentence with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// The scored pairs.
    pub test: Vec<Pair>,
    /// Every other pair, less those that repeat a test source or reference.
    pub train: Vec<Pair>,
}

/// Shuffles `pairs` with `spec.seed` and takes the first `spec.test_size` pairs whose source has
/// at least `spec.min_words` words as the test set, in shuffled order; the rest, in shuffled
/// order, less any pair whose source or reference is also a test source or reference, is the
/// training set. The shuffle is our own (SplitMix64 + Fisher–Yates), so the split never changes
/// with a crate version.
pub fn split(pairs: &[Pair], spec: SplitSpec) -> Split {
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    shuffle(&mut order, spec.seed);
    let mut test = Vec::new();
    let mut is_test = vec![false; pairs.len()];
    for &i in &order {
        if test.len() == spec.test_size {
            break;
        }
        if pairs[i].source_words() >= spec.min_words {
            is_test[i] = true;
            test.push(pairs[i].clone());
        }
    }
    let held: HashSet<&str> = test
        .iter()
        .flat_map(|p| [p.source.as_str(), p.reference.as_str()])
        .collect();
    let train = order
        .iter()
        .filter(|&&i| !is_test[i])
        .map(|&i| &pairs[i])
        .filter(|p| !held.contains(p.source.as_str()) && !held.contains(p.reference.as_str()))
        .cloned()
        .collect();
    Split { test, train }
}

/// `k` demonstrations for item `item` from `pool`: distinct pairs drawn with `seed` and the
/// item's index, none equal to `exclude` (the item itself, should the pool hold it).
pub fn demonstrations(
    pool: &[Pair],
    k: usize,
    seed: u64,
    item: usize,
    exclude: &Pair,
) -> Vec<Pair> {
    let mut order: Vec<usize> = (0..pool.len()).collect();
    shuffle(
        &mut order,
        seed ^ (item as u64).wrapping_mul(0x2545_F491_4F6C_DD1D),
    );
    order
        .into_iter()
        .map(|i| &pool[i])
        .filter(|p| p.source != exclude.source)
        .take(k)
        .cloned()
        .collect()
}

/// Fisher–Yates with SplitMix64 (Steele et al. 2014): portable and version-proof.
fn shuffle(items: &mut [usize], seed: u64) {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for i in (1..items.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// Reads the pairs of a user's file: `.tsv` (`source<TAB>reference` per line) or JSON Lines
/// with `source`/`reference`, `src`/`tgt`, `<src>`/`<tgt>` language codes (`"de"`/`"en"`), or
/// a `translation` object keyed by language codes (Hugging Face's WMT rows).
pub fn read_pairs(path: &Path, src: &str, tgt: &str) -> Result<Vec<Pair>> {
    if path.extension().is_some_and(|e| e == "tsv") {
        let content = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        return parse_tsv(path, &content);
    }
    read_rows(path)?
        .iter()
        .enumerate()
        .map(|(i, row)| {
            json_pair(row, src, tgt).ok_or_else(|| {
                let keys = format!(
                    "expected string fields source/reference, src/tgt, {src}/{tgt} \
                     or translation.{src}/translation.{tgt}"
                );
                row_error(path, i + 1, keys)
            })
        })
        .collect()
}

fn parse_tsv(path: &Path, content: &str) -> Result<Vec<Pair>> {
    let mut pairs = Vec::new();
    for (i, line) in content.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((source, reference)) = line.split_once('\t') else {
            return Err(row_error(path, i + 1, "expected source<TAB>reference"));
        };
        if reference.contains('\t') {
            return Err(row_error(path, i + 1, "more than two tab-separated fields"));
        }
        pairs.push(Pair {
            source: source.trim().to_string(),
            reference: reference.trim().to_string(),
        });
    }
    Ok(pairs)
}

fn json_pair(row: &serde_json::Map<String, Value>, src: &str, tgt: &str) -> Option<Pair> {
    let text = |obj: &serde_json::Map<String, Value>, key: &str| {
        obj.get(key).and_then(Value::as_str).map(str::to_string)
    };
    let both = |obj: &serde_json::Map<String, Value>, a: &str, b: &str| {
        Some(Pair {
            source: text(obj, a)?,
            reference: text(obj, b)?,
        })
    };
    both(row, "source", "reference")
        .or_else(|| both(row, "src", "tgt"))
        .or_else(|| both(row, src, tgt))
        .or_else(|| both(row.get("translation")?.as_object()?, src, tgt))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DING: &str = "# Version :: devel\n\
        Abpfiff {m} [sport] | Der Schiedsrichter gab den Schlusspfiff. :: final whistle | The referee blew for full-time.\n\
        Ärger {m} | Willst du Ärger haben? | Ich will keinen Ärger. :: trouble | Are you looking for trouble? | I don't want \"trouble.\"\n\
        Satz | Wie geht's?; Wie geht es dir? :: sentence | How are you?\n\
        Satz | Das ist {n} falsch. :: sentence | This is wrong.\n\
        eins | zwei :: one\n\
        Ärger | Willst du Ärger haben? :: trouble | Do you want trouble?\n";

    #[test]
    fn ding_keeps_aligned_clean_sentences_once() {
        let pairs = parse_ding(DING);
        let sources: Vec<&str> = pairs.iter().map(|p| p.source.as_str()).collect();
        assert_eq!(
            sources,
            [
                "Der Schiedsrichter gab den Schlusspfiff.",
                "Willst du Ärger haben?",
                "Ich will keinen Ärger."
            ]
        );
        assert_eq!(pairs[1].reference, "Are you looking for trouble?");
        assert_eq!(pairs[2].reference, "I don't want \"trouble.\"");
    }

    fn numbered(n: usize) -> Vec<Pair> {
        (0..n)
            .map(|i| Pair {
                source: format!("w{i} {}", "x ".repeat(i % 8)),
                reference: format!("r{i}"),
            })
            .collect()
    }

    #[test]
    fn split_is_seeded_disjoint_and_respects_min_words() {
        let mut pairs = numbered(200);
        // A training pair that repeats a test reference must leave the training set.
        pairs.push(Pair {
            source: "other".into(),
            reference: "r7".into(),
        });
        let spec = SplitSpec {
            seed: 3,
            test_size: 20,
            min_words: 6,
        };
        let a = split(&pairs, spec);
        assert_eq!(a, split(&pairs, spec));
        assert_ne!(a.test, split(&pairs, SplitSpec { seed: 4, ..spec }).test);
        assert_eq!(a.test.len(), 20);
        assert!(a.test.iter().all(|p| p.source_words() >= 6));
        for t in &a.train {
            assert!(
                !a.test
                    .iter()
                    .any(|p| p.source == t.source || p.reference == t.reference)
            );
        }
        let held_out = a.test.iter().any(|p| p.reference == "r7");
        let removed = usize::from(held_out);
        assert_eq!(a.test.len() + a.train.len() + removed, pairs.len());
    }

    #[test]
    fn tsv_and_jsonl_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let tsv = dir.path().join("p.tsv");
        std::fs::write(&tsv, "Hallo Welt.\tHello world.\n\nJa.\tYes.\n").unwrap();
        let pairs = read_pairs(&tsv, "de", "en").unwrap();
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[1].reference, "Yes.");
        let jsonl = dir.path().join("p.jsonl");
        let rows = "{\"de\": \"Ja.\", \"en\": \"Yes.\"}\n\
                    {\"translation\": {\"de\": \"Nein.\", \"en\": \"No.\"}}\n\
                    {\"source\": \"A.\", \"reference\": \"B.\"}\n";
        std::fs::write(&jsonl, rows).unwrap();
        let pairs = read_pairs(&jsonl, "de", "en").unwrap();
        assert_eq!(pairs[1].source, "Nein.");
        assert_eq!(pairs[2].reference, "B.");
        std::fs::write(&jsonl, "{\"de\": \"Ja.\"}\n").unwrap();
        let err = read_pairs(&jsonl, "de", "en").unwrap_err().to_string();
        assert!(err.contains("row 1"), "{err}");
        std::fs::write(&tsv, "no tab here\n").unwrap();
        assert!(read_pairs(&tsv, "de", "en").is_err());
    }
}
