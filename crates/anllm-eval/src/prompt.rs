//! Few-shot prompts and their tokens: k demonstrations from a pool disjoint from the scored
//! items, chosen by a fixed seed, joined by a blank line (spec §6.2); context and continuation
//! tokenized separately without BOS; for AC models one `<AC>` after each demonstration (§6.3).

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::tasks::Doc;
use anllm::anchor::insert::insert_at_ends;
use anllm::tokenizer::Tokenizer;
use anllm::{Result, TokenId};

/// Where demonstrations come from and how many.
#[derive(Debug, Clone)]
pub struct FewShot {
    /// The demonstration pool (never scored).
    pub pool: Vec<Doc>,
    /// Demonstrations per prompt.
    pub k: usize,
    /// The sampling seed.
    pub seed: u64,
}

impl FewShot {
    /// The demonstrations of scored item `doc_id`: k distinct pool docs drawn by an RNG seeded
    /// from (`seed`, `doc_id`), so a prompt does not depend on `--limit` or on task order.
    pub fn demos(&self, doc_id: usize) -> Vec<&Doc> {
        let k = self.k.min(self.pool.len());
        if k == 0 {
            return Vec::new();
        }
        let mix = (doc_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut rng = StdRng::seed_from_u64(self.seed ^ mix);
        rand::seq::index::sample(&mut rng, self.pool.len(), k)
            .into_iter()
            .map(|i| &self.pool[i])
            .collect()
    }
}

/// The strings of one scored item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// The context of each choice: demonstrations, then the item's own context.
    pub contexts: Vec<String>,
    /// The continuation of each choice.
    pub continuations: Vec<String>,
    /// Byte offset just after each demonstration (before its blank-line separator).
    pub demo_ends: Vec<usize>,
    /// Byte length of the demonstrations prefix, separators included (0 for zero-shot).
    pub demo_len: usize,
}

/// `demo₁\n\ndemo₂\n\n…demoₖ\n\n` + each choice's context, as the v0.3 harness joins them.
pub fn build_prompt(doc: &Doc, demos: &[&Doc]) -> Prompt {
    let mut prefix = String::new();
    let mut demo_ends = Vec::with_capacity(demos.len());
    for demo in demos {
        prefix.push_str(&demo.demonstration());
        demo_ends.push(prefix.len());
        prefix.push_str("\n\n");
    }
    Prompt {
        contexts: doc
            .choices
            .iter()
            .map(|c| format!("{prefix}{}", c.context))
            .collect(),
        continuations: doc.choices.iter().map(|c| c.continuation.clone()).collect(),
        demo_ends,
        demo_len: prefix.len(),
    }
}

/// The token ids of one choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Context ids (anchors inserted, left-truncated to fit).
    pub context: Vec<TokenId>,
    /// Continuation ids.
    pub continuation: Vec<TokenId>,
    /// How many leading context ids belong to the demonstrations prefix.
    pub demo_tokens: usize,
    /// Context ids dropped from the left to fit the model's context.
    pub dropped: usize,
}

impl Request {
    /// A request with no demonstrations and nothing truncated.
    pub fn new(context: &[TokenId], continuation: &[TokenId]) -> Self {
        Self {
            context: context.to_vec(),
            continuation: continuation.to_vec(),
            demo_tokens: 0,
            dropped: 0,
        }
    }
}

/// Tokenizes each choice of `prompt`: context and continuation separately, no BOS; with
/// `insert`, that id goes right after the last token of each demonstration. A context left
/// empty gets `empty_context` (EOS, as lm-eval). The pair is left-truncated to `max_tokens`
/// (+1, since the last id is never an input), as lm-eval does.
pub fn tokenize(
    tokenizer: &Tokenizer,
    prompt: &Prompt,
    insert: Option<TokenId>,
    empty_context: TokenId,
    max_tokens: usize,
) -> Result<Vec<Request>> {
    let mut out = Vec::with_capacity(prompt.contexts.len());
    for (ctx, cont) in prompt.contexts.iter().zip(&prompt.continuations) {
        let with_offsets = tokenizer.encode_with_offsets(ctx)?;
        let demo_tokens = with_offsets
            .iter()
            .take_while(|(_, end)| *end <= prompt.demo_len)
            .count();
        let mut context = match insert {
            Some(anchor) => insert_at_ends(&with_offsets, prompt.demo_ends.iter().copied(), anchor),
            None => with_offsets.iter().map(|&(id, _)| id).collect(),
        };
        let demo_tokens = demo_tokens + insert.map_or(0, |_| prompt.demo_ends.len());
        if context.is_empty() {
            context.push(empty_context);
        }
        let continuation = tokenizer.encode(cont, false)?;
        let excess = (context.len() + continuation.len()).saturating_sub(max_tokens + 1);
        let cut = excess.min(context.len() - 1);
        context.drain(..cut);
        out.push(Request {
            context,
            continuation,
            demo_tokens: demo_tokens.saturating_sub(cut),
            dropped: cut,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::Choice;

    fn doc(text: &str, target: &str) -> Doc {
        Doc {
            text: text.into(),
            target: target.into(),
            choices: vec![
                Choice {
                    context: text.into(),
                    continuation: " a".into(),
                },
                Choice {
                    context: text.into(),
                    continuation: " b".into(),
                },
            ],
            gold: 0,
        }
    }

    #[test]
    fn demonstrations_are_joined_by_blank_lines() {
        let d1 = doc("Q1\nA:", " x");
        let d2 = doc("Q2\nA:", " y");
        let item = doc("Q3\nA:", " z");
        let p = build_prompt(&item, &[&d1, &d2]);
        assert_eq!(p.contexts[0], "Q1\nA: x\n\nQ2\nA: y\n\nQ3\nA:");
        assert_eq!(p.contexts[1], p.contexts[0]);
        assert_eq!(p.continuations, vec![" a", " b"]);
        assert_eq!(p.demo_ends, vec![7, 16]);
        assert_eq!(p.demo_len, 18);
        assert_eq!(&p.contexts[0][..p.demo_len], "Q1\nA: x\n\nQ2\nA: y\n\n");

        let zero = build_prompt(&item, &[]);
        assert_eq!(zero.contexts[0], "Q3\nA:");
        assert_eq!(zero.demo_len, 0);
    }

    #[test]
    fn demonstrations_are_seeded_distinct_and_independent_of_order() {
        let pool: Vec<Doc> = (0..20).map(|i| doc(&format!("q{i}"), " t")).collect();
        let shots = FewShot {
            pool,
            k: 5,
            seed: 1234,
        };
        let a = shots.demos(7);
        let b = shots.demos(7);
        assert_eq!(a, b);
        let mut texts: Vec<_> = a.iter().map(|d| d.text.clone()).collect();
        texts.sort();
        texts.dedup();
        assert_eq!(texts.len(), 5);
        assert_ne!(shots.demos(8), a);
    }
}
