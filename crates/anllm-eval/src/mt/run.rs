//! One translation on a fresh session, with the cache statistics of the paper's Table 2, and
//! the run over a test set: hypotheses, corpus BLEU / chrF, MaxKV, C⇓ and T⇑.
//!
//! * MaxKV of a sentence: the most entries the cache holds after any step of the prefill or
//!   the decoding (after the step's eviction; the authors' `maxkvl`). The transient peak
//!   inside a step (kept entries + one chunk) is reported too (`peak_kv`).
//! * all_kv: the tokens whose K/V were computed (prompt + output, less the last output token,
//!   which is never run), so full attention has MaxKV = all_kv and C⇓ = 0 exactly.
//! * C⇓ = mean over sentences of 1 − MaxKV / all_kv (the definition); the ratio of
//!   the means, 1 − mean MaxKV / mean all_kv (the spec's reading of the paper), is reported too.
//! * T⇑ = time of the same work with a full cache / time of this run, over the first
//!   `speedup_items` items: the full-cache replay prefills the same prompt and runs the same
//!   output tokens one step at a time, so both sides do the same number of steps.

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use anllm::generate::Detokenizer;
use anllm::sample::{Sampler, Sampling};
use anllm::tokenizer::Tokenizer;
use anllm::{Llama, OutputRows, Result, Session, SessionConfig, StopReason, TokenId};

use super::bleu::{Bleu, corpus_bleu};
use super::chrf::corpus_chrf;
use super::data::Pair;
use super::prompt::AC;

/// How each sentence is translated.
#[derive(Debug, Clone)]
pub struct MtConfig {
    /// Anchors, rule, policy, positions and chunk size of every session.
    pub session: SessionConfig,
    /// Keep the source's entries (pinned, visible to every later token): "Src Cach".
    pub pin_source: bool,
    /// Most tokens generated per sentence.
    pub max_tokens: usize,
    /// Greedy by default.
    pub sampling: Sampling,
}

/// One item: a pair and its encoded prompt.
#[derive(Debug, Clone)]
pub struct Item {
    /// The pair.
    pub pair: Pair,
    /// The prompt text.
    pub prompt: String,
    /// Its token ids (BOS included when the model wants one).
    pub ids: Vec<TokenId>,
    /// Token positions of the source in `ids`.
    pub source_tokens: Range<u32>,
}

/// One translation and what it cost.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Record {
    /// The sentence translated.
    pub source: String,
    /// Its reference.
    pub reference: String,
    /// The first line of the answer, `<AC>`s removed.
    pub hypothesis: String,
    /// Everything generated, as decoded.
    pub raw_output: String,
    /// The exact prompt.
    pub prompt: String,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens (the stop token included).
    pub output_tokens: usize,
    /// Pinned token positions `[start, end)`, with `--pin-source`.
    pub pinned: Option<[u32; 2]>,
    /// Most entries held after any step.
    pub max_kv: usize,
    /// Most entries held at once, inside a step included.
    pub peak_kv: usize,
    /// Tokens whose K/V were computed.
    pub all_kv: usize,
    /// 1 − max_kv / all_kv.
    pub c_reduction: f64,
    /// Wall time of prefill + decoding, seconds.
    pub seconds: f64,
    /// Wall time of the full-cache replay of the same tokens, seconds (first items only).
    pub full_cache_seconds: Option<f64>,
    /// Why generation stopped: `sink` = end of the answer's first line.
    pub stop: StopReason,
}

/// The run's scores and cache statistics.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// Items translated.
    pub items: usize,
    /// Corpus BLEU (sacrebleu defaults).
    pub bleu: f64,
    /// Corpus chrF (sacrebleu defaults).
    pub chrf: f64,
    /// BLEU's details.
    pub bleu_detail: Bleu,
    /// Mean MaxKV.
    pub max_kv: f64,
    /// Mean all_kv.
    pub all_kv: f64,
    /// Mean over sentences of 1 − MaxKV / all_kv.
    pub c_reduction: f64,
    /// 1 − mean MaxKV / mean all_kv.
    pub c_reduction_of_means: f64,
    /// Full-cache time / this run's time over the timed items (None when none were timed).
    pub t_speedup: Option<f64>,
    /// Items timed for T⇑.
    pub speedup_items: usize,
    /// Wall time of all translations, seconds.
    pub seconds: f64,
}

/// Translates every item; the first `speedup_items` are replayed with a full cache for T⇑.
pub fn run(
    llama: &Arc<Llama>,
    tokenizer: &Tokenizer,
    items: &[Item],
    cfg: &MtConfig,
    speedup_items: usize,
    progress: &mut dyn FnMut(),
) -> Result<(Summary, Vec<Record>)> {
    let mut records = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let (mut record, output) = translate(llama, tokenizer, cfg, item)?;
        if i < speedup_items {
            record.full_cache_seconds = Some(replay_full(llama, cfg, &item.ids, &output)?);
        }
        records.push(record);
        progress();
    }
    Ok((summarize(&records)?, records))
}

/// Translates one item on a fresh session: its record and the generated ids.
pub fn translate(
    llama: &Arc<Llama>,
    tokenizer: &Tokenizer,
    cfg: &MtConfig,
    item: &Item,
) -> Result<(Record, Vec<TokenId>)> {
    let expected = item.ids.len() + cfg.max_tokens;
    let mut session = Session::new(Arc::clone(llama), cfg.session.clone(), expected)?;
    let pinned = cfg.pin_source.then(|| item.source_tokens.clone());
    if let Some(range) = &pinned {
        session.pin(range.clone());
    }
    anllm::generate::check_context(llama, 0, item.ids.len() + cfg.max_tokens)?;
    cfg.sampling.validate()?;
    let mut sampler = Sampler::new(cfg.sampling.clone());
    // The penalty window holds the prompt too, as `generate`'s and llama.cpp's.
    sampler.accept(&item.ids);
    let mut detok = Detokenizer::default();
    let started = Instant::now();
    let mut logits = session.prefill(&item.ids, item.ids.len() - 1)?;
    let mut max_kv = session.cache().len();
    let (mut raw, mut output) = (String::new(), Vec::new());
    let stop = loop {
        let row: Vec<f32> = logits.squeeze(0)?.to_vec1()?;
        let next = sampler.sample(&row)?;
        output.push(next);
        session.accept(next);
        if tokenizer.specials().is_end_of_generation(next) {
            break StopReason::Eos;
        }
        raw.push_str(&detok.push(tokenizer, next)?);
        if raw.trim_start().contains('\n') {
            break StopReason::Sink;
        }
        if output.len() == cfg.max_tokens {
            break StopReason::Length;
        }
        logits = session.forward(&[], OutputRows::Last)?;
        max_kv = max_kv.max(session.cache().len());
    };
    let seconds = started.elapsed().as_secs_f64();
    let stats = session.stats();
    let all_kv = stats.tokens_seen;
    let record = Record {
        source: item.pair.source.clone(),
        reference: item.pair.reference.clone(),
        hypothesis: first_line(&raw),
        raw_output: raw,
        prompt: item.prompt.clone(),
        prompt_tokens: item.ids.len(),
        output_tokens: output.len(),
        pinned: pinned.map(|r| [r.start, r.end]),
        max_kv,
        peak_kv: stats.peak_entries,
        all_kv,
        c_reduction: 1.0 - max_kv as f64 / all_kv.max(1) as f64,
        seconds,
        full_cache_seconds: None,
        stop,
    };
    Ok((record, output))
}

/// Seconds a full cache takes for the same work: prefill `prompt`, then run every output token
/// but the last one step at a time, reading each step's logits row as decoding does.
pub fn replay_full(
    llama: &Arc<Llama>,
    cfg: &MtConfig,
    prompt: &[TokenId],
    output: &[TokenId],
) -> Result<f64> {
    let full = SessionConfig::causal(cfg.session.chunk_size).with_keep_warm(cfg.session.keep_warm);
    let mut session = Session::new(Arc::clone(llama), full, prompt.len() + output.len())?;
    let started = Instant::now();
    let mut logits = session.prefill(prompt, prompt.len() - 1)?;
    for &token in output.iter().take(output.len().saturating_sub(1)) {
        let _row: Vec<f32> = logits.squeeze(0)?.to_vec1()?;
        logits = session.forward(&[token], OutputRows::Last)?;
    }
    let _row: Vec<f32> = logits.squeeze(0)?.to_vec1()?;
    Ok(started.elapsed().as_secs_f64())
}

/// The answer's first non-empty line, `<AC>`s removed and spaces collapsed (the authors'
/// `post_process`, which also drops `<AC>`).
pub fn first_line(raw: &str) -> String {
    let line = raw.trim_start().lines().next().unwrap_or_default();
    line.replace(AC, " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The summary of `records`.
pub fn summarize(records: &[Record]) -> Result<Summary> {
    let hyps: Vec<&str> = records.iter().map(|r| r.hypothesis.as_str()).collect();
    let refs: Vec<&str> = records.iter().map(|r| r.reference.as_str()).collect();
    let bleu = corpus_bleu(&hyps, &refs)?;
    let n = records.len().max(1) as f64;
    let mean = |f: &dyn Fn(&Record) -> f64| records.iter().map(f).sum::<f64>() / n;
    let max_kv = mean(&|r| r.max_kv as f64);
    let all_kv = mean(&|r| r.all_kv as f64);
    let timed: Vec<(f64, f64)> = records
        .iter()
        .filter_map(|r| Some((r.full_cache_seconds?, r.seconds)))
        .collect();
    let (full, ours) = timed
        .iter()
        .fold((0.0, 0.0), |(a, b), (f, s)| (a + f, b + s));
    Ok(Summary {
        items: records.len(),
        bleu: bleu.score,
        chrf: corpus_chrf(&hyps, &refs)?,
        bleu_detail: bleu,
        max_kv,
        all_kv,
        c_reduction: mean(&|r| r.c_reduction),
        c_reduction_of_means: 1.0 - max_kv / all_kv.max(1.0),
        t_speedup: (!timed.is_empty() && ours > 0.0).then(|| full / ours),
        speedup_items: timed.len(),
        seconds: records.iter().map(|r| r.seconds).sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_skips_leading_blank_lines_and_anchors() {
        assert_eq!(
            first_line("\n The cat sleeps.\n### Next"),
            "The cat sleeps."
        );
        assert_eq!(
            first_line(" It rains. <AC> We stay. <AC> "),
            "It rains. We stay."
        );
        assert_eq!(first_line(""), "");
    }
}
