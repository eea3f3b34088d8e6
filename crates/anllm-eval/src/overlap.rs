//! Contamination check: does any scored evaluation item appear in a training text?
//!
//! As GPT-3's and the Llama papers' checks: texts are cut into lower-case alphanumeric words,
//! and an item is contaminated when a run of [`NGRAM`] consecutive words of it (the whole item
//! when it is shorter, down to [`MIN_WORDS`]) occurs in the training text. An item's text is
//! its context and its gold continuation.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::tasks::{Doc, Task};

/// Words per compared run.
pub const NGRAM: usize = 13;
/// Items shorter than this many words are not checked (too common to mean anything).
pub const MIN_WORDS: usize = 8;

/// One contaminated item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    /// The task.
    pub task: Task,
    /// Index of the item in the scored split.
    pub item: usize,
    /// The shared words.
    pub words: String,
}

/// Lower-case alphanumeric words of `text`.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn gram_hash(words: &[String]) -> u64 {
    let mut h = DefaultHasher::new();
    words.hash(&mut h);
    h.finish()
}

/// The runs of the items to look for, by length.
#[derive(Debug, Default)]
pub struct ItemGrams {
    /// (run length) → (hash → (task, item, words)).
    by_len: HashMap<usize, HashMap<u64, (Task, usize, String)>>,
    /// Items too short to check.
    pub skipped: usize,
    /// Items indexed.
    pub items: usize,
}

impl ItemGrams {
    /// Indexes the items `docs` of `task`.
    pub fn add(&mut self, task: Task, docs: &[Doc]) {
        for (i, doc) in docs.iter().enumerate() {
            let gold = doc.choices.get(doc.gold);
            let text = match gold {
                Some(c) => format!("{} {} {}", doc.text, c.context, c.continuation),
                None => doc.text.clone(),
            };
            let w = words(&text);
            if w.len() < MIN_WORDS {
                self.skipped += 1;
                continue;
            }
            self.items += 1;
            let n = w.len().min(NGRAM);
            let grams = self.by_len.entry(n).or_default();
            for run in w.windows(n) {
                grams.insert(gram_hash(run), (task, i, run.join(" ")));
            }
        }
    }

    /// The items that share a run with `text` (each item once).
    pub fn find_in(&self, text: &str) -> Vec<Overlap> {
        let w = words(text);
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (&n, grams) in &self.by_len {
            for run in w.windows(n) {
                if let Some((task, item, words)) = grams.get(&gram_hash(run))
                    && words == &run.join(" ")
                    && seen.insert((*task, *item))
                {
                    out.push(Overlap {
                        task: *task,
                        item: *item,
                        words: words.clone(),
                    });
                }
            }
        }
        out.sort_by_key(|o| (o.task, o.item));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::Choice;

    fn doc(text: &str, answer: &str) -> Doc {
        Doc {
            text: text.into(),
            target: answer.into(),
            choices: vec![Choice {
                context: String::new(),
                continuation: answer.into(),
            }],
            gold: 0,
        }
    }

    #[test]
    fn an_item_copied_into_the_training_text_is_found_and_others_are_not() {
        let mut grams = ItemGrams::default();
        let docs = [
            doc(
                "Question: Which gas do plants take in from the air to make their food?",
                " carbon dioxide",
            ),
            doc("Question: What is two plus two?", " four"),
            doc(
                "The quick brown fox jumps over the lazy dog while the cat sleeps on the warm mat.",
                " yes",
            ),
        ];
        grams.add(Task::ArcEasy, &docs);
        assert_eq!((grams.items, grams.skipped), (2, 1));
        let train = "Notes. which gas do plants take in from the AIR to make their food, \
                     carbon dioxide! More notes about foxes and dogs.";
        let hits = grams.find_in(train);
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!((hits[0].task, hits[0].item), (Task::ArcEasy, 0));
        assert!(
            grams
                .find_in("The quick brown fox jumps over the dog.")
                .is_empty()
        );
    }
}
