//! One task of the QA evaluation: format each item, tokenize, score in the chosen mode, and
//! gather accuracy, C⇓ and (in `cache` mode) T⇑ (spec §6).

use std::time::Instant;

use serde::Serialize;

use super::metrics::{self, Reduction};
use super::prompt::{self, FewShot, Request};
use super::scoring::{score_each, score_shared};
use super::tasks::{Doc, Task};
use anllm::model::Llama;
use anllm::policy::PolicyConfig;
use anllm::session::{CacheStats, SessionConfig};
use anllm::tokenizer::Tokenizer;
use anllm::{MaskRule, Result, TokenId};
use std::sync::Arc;

/// How requests are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EvalMode {
    /// Full causal attention; the choices share the context's (full) cache.
    Full,
    /// One AnSAN-masked forward per request, nothing cached: the paper's accuracy.
    Mask,
    /// The context prefilled once with anchor pruning; every choice scored against the pruned
    /// cache. Equals `mask` up to float rounding.
    Cache,
}

/// What a QA run needs besides the data.
#[derive(Debug, Clone)]
pub struct QaConfig {
    /// The mode.
    pub mode: EvalMode,
    /// Anchors, rule and chunk size of the anchored modes (`mask`, `cache`).
    pub anchored: SessionConfig,
    /// `<AC>` id to insert after each demonstration (AC models), else `None`.
    pub insert: Option<TokenId>,
    /// In `cache` mode, also time the non-caching and full-caching runs on the first this many
    /// items of each task (T⇑ and the mask/cache agreement over them; 0 turns it off).
    pub speedup_items: usize,
}

/// The scored items of one task and its demonstration pool.
#[derive(Debug, Clone)]
pub struct TaskData {
    /// The task.
    pub task: Task,
    /// Items to score, in order (their index is the `doc_id`).
    pub docs: Vec<Doc>,
    /// Demonstrations.
    pub shots: FewShot,
}

/// One scored item, as written to the results JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// Task name.
    pub task: &'static str,
    /// Index of the item among the scored items.
    pub doc_id: usize,
    /// The exact context string scored: one string, or one per choice (WinoGrande).
    pub context: serde_json::Value,
    /// The continuations, one per choice.
    pub continuations: Vec<String>,
    /// Summed log-likelihood of each continuation.
    pub loglikelihoods: Vec<f64>,
    /// argmax of `loglikelihoods`.
    pub pred: usize,
    /// argmax of the per-character log-likelihoods (`acc_norm`), where defined.
    pub pred_norm: Option<usize>,
    /// The correct choice.
    pub gold: usize,
    /// Context tokens (first choice), of which `demo_tokens` are demonstrations.
    pub context_tokens: usize,
    /// Tokens of the demonstrations prefix.
    pub demo_tokens: usize,
    /// Entries an anchor-pruned cache keeps after the demonstrations / after the context.
    pub demo_kept: usize,
    /// See `demo_kept`.
    pub context_kept: usize,
    /// Measured cache after the shared prefix (modes `full` and `cache`).
    pub cache: Option<CacheStats>,
    /// `cache` mode with timing: the non-caching (mask) log-likelihoods of the same requests.
    pub mask_loglikelihoods: Option<Vec<f64>>,
}

/// A task's summary.
#[derive(Debug, Clone, Serialize)]
pub struct TaskSummary {
    /// Task name.
    pub task: &'static str,
    /// Scored items.
    pub items: usize,
    /// Accuracy.
    pub acc: f64,
    /// Length-normalized accuracy, where defined.
    pub acc_norm: Option<f64>,
    /// C⇓ over the demonstrations prefix.
    pub c_demos: Reduction,
    /// C⇓ over the whole context before the answer.
    pub c_context: Reduction,
    /// Wall seconds of the scoring in the run's mode.
    pub seconds: f64,
    /// `cache` mode, timed items: wall seconds without caching (every request recomputed).
    pub seconds_nocache: Option<f64>,
    /// `cache` mode, timed items: wall seconds with the full (unpruned) cache shared.
    pub seconds_fullcache: Option<f64>,
    /// T⇑ = `seconds_nocache` / the anchor-caching seconds of the same (timed) items.
    pub speedup: Option<f64>,
    /// `seconds_fullcache` / the anchor-caching seconds of the same items: anchor caching
    /// against full caching.
    pub full_vs_anchor_cache: Option<f64>,
    /// Items timed for T⇑ (the first `speedup_items`).
    pub timed_items: usize,
    /// `cache` mode with timing: share of timed items whose mask and cache predictions agree.
    pub mask_agreement: Option<f64>,
    /// … and the largest |Δ log-likelihood| between them.
    pub mask_max_diff: Option<f64>,
    /// Items whose prompt was left-truncated to fit the context.
    pub truncated: usize,
}

/// Scores the first `limit` items of `data`; `on_item` is called after each.
pub fn run_task(
    model: &Arc<Llama>,
    tokenizer: &Tokenizer,
    data: &TaskData,
    cfg: &QaConfig,
    limit: Option<usize>,
    on_item: &mut dyn FnMut(),
) -> Result<(TaskSummary, Vec<Record>)> {
    let n = limit.map_or(data.docs.len(), |l| l.min(data.docs.len()));
    let mut tally = Tally::new();
    let mut records = Vec::with_capacity(n);
    for (doc_id, doc) in data.docs[..n].iter().enumerate() {
        let demos = data.shots.demos(doc_id);
        let prompt = prompt::build_prompt(doc, &demos);
        let eos = tokenizer.specials().eos.unwrap_or(0);
        let max = model.config().max_position_embeddings;
        let requests = prompt::tokenize(tokenizer, &prompt, cfg.insert, eos, max)?;
        let truncated = requests.iter().any(|r| r.dropped > 0);
        let timed = cfg.mode == EvalMode::Cache && doc_id < cfg.speedup_items;
        let scored = score_item(model, cfg, &requests, timed)?;
        let first = &requests[0];
        let kept = (
            metrics::anchor_kept(&cfg.anchored, &first.context[..first.demo_tokens])?,
            metrics::anchor_kept(&cfg.anchored, &first.context)?,
        );
        let item = Item {
            doc_id,
            doc,
            prompt: &prompt,
            requests: &requests,
            scored,
            kept,
        };
        let record = tally.add(data.task, item);
        tally.truncated += usize::from(truncated);
        records.push(record);
        on_item();
    }
    Ok((tally.summary(data.task), records))
}

/// The log-likelihoods of one item, with timings.
struct Scored {
    main: Vec<f64>,
    cache: Option<CacheStats>,
    seconds: f64,
    nocache: Option<(Vec<f64>, f64)>,
    fullcache: Option<f64>,
}

fn score_item(
    model: &Arc<Llama>,
    cfg: &QaConfig,
    requests: &[Request],
    baselines: bool,
) -> Result<Scored> {
    let timed = |f: &mut dyn FnMut() -> Result<()>| -> Result<f64> {
        let t = Instant::now();
        f()?;
        Ok(t.elapsed().as_secs_f64())
    };
    let anchored = &cfg.anchored;
    let (mut main, mut cache) = (Vec::new(), None);
    let seconds = match cfg.mode {
        EvalMode::Full => {
            let causal = SessionConfig {
                rule: MaskRule::Causal,
                policy: PolicyConfig::Full,
                ..anchored.clone()
            };
            timed(&mut || {
                let (s, c) = score_shared(model, &causal, requests)?;
                (main, cache) = (s, Some(c));
                Ok(())
            })?
        }
        EvalMode::Mask => timed(&mut || {
            main = score_each(model, anchored, requests)?;
            Ok(())
        })?,
        EvalMode::Cache => {
            let pruned = SessionConfig {
                policy: PolicyConfig::Anchor,
                ..anchored.clone()
            };
            timed(&mut || {
                let (s, c) = score_shared(model, &pruned, requests)?;
                (main, cache) = (s, Some(c));
                Ok(())
            })?
        }
    };
    let (mut nocache, mut fullcache) = (None, None);
    if baselines {
        let mut lls = Vec::new();
        let t = timed(&mut || {
            lls = score_each(model, anchored, requests)?;
            Ok(())
        })?;
        nocache = Some((lls, t));
        let full = SessionConfig {
            policy: PolicyConfig::Full,
            ..anchored.clone()
        };
        fullcache = Some(timed(&mut || {
            score_shared(model, &full, requests).map(|_| ())
        })?);
    }
    Ok(Scored {
        main,
        cache,
        seconds,
        nocache,
        fullcache,
    })
}

/// One scored item, with what the anchor policy keeps of its demonstrations and context.
struct Item<'a> {
    doc_id: usize,
    doc: &'a Doc,
    prompt: &'a prompt::Prompt,
    requests: &'a [Request],
    scored: Scored,
    kept: (usize, usize),
}

/// Running totals of a task.
struct Tally {
    items: usize,
    correct: usize,
    correct_norm: usize,
    c_demos: Reduction,
    c_context: Reduction,
    seconds: f64,
    seconds_nocache: f64,
    seconds_fullcache: f64,
    seconds_timed: f64,
    timed_items: usize,
    agree: usize,
    max_diff: f64,
    truncated: usize,
}

impl Tally {
    fn new() -> Self {
        Tally {
            items: 0,
            correct: 0,
            correct_norm: 0,
            c_demos: Reduction::default(),
            c_context: Reduction::default(),
            seconds: 0.0,
            seconds_nocache: 0.0,
            seconds_fullcache: 0.0,
            seconds_timed: 0.0,
            timed_items: 0,
            agree: 0,
            max_diff: 0.0,
            truncated: 0,
        }
    }

    fn add(&mut self, task: Task, item: Item<'_>) -> Record {
        let Item {
            doc_id,
            doc,
            prompt,
            requests,
            scored,
            kept: (demo_kept, context_kept),
        } = item;
        let pred = metrics::argmax(&scored.main);
        let pred_norm = task
            .has_acc_norm()
            .then(|| metrics::argmax_norm(&scored.main, &prompt.continuations));
        self.items += 1;
        self.correct += usize::from(pred == doc.gold);
        self.correct_norm += usize::from(pred_norm == Some(doc.gold));
        let first = &requests[0];
        self.c_demos.add(demo_kept, first.demo_tokens);
        self.c_context.add(context_kept, first.context.len());
        self.seconds += scored.seconds;
        let mask_lls = scored.nocache.map(|(lls, t)| {
            self.seconds_nocache += t;
            self.seconds_timed += scored.seconds;
            self.timed_items += 1;
            self.agree += usize::from(metrics::argmax(&lls) == pred);
            for (a, b) in lls.iter().zip(&scored.main) {
                self.max_diff = self.max_diff.max((a - b).abs());
            }
            lls
        });
        self.seconds_fullcache += scored.fullcache.unwrap_or(0.0);
        let shared = prompt.contexts.iter().all(|c| c == &prompt.contexts[0]);
        Record {
            task: task.name(),
            doc_id,
            context: if shared {
                prompt.contexts[0].clone().into()
            } else {
                prompt.contexts.clone().into()
            },
            continuations: prompt.continuations.clone(),
            loglikelihoods: scored.main,
            pred,
            pred_norm,
            gold: doc.gold,
            context_tokens: first.context.len(),
            demo_tokens: first.demo_tokens,
            demo_kept,
            context_kept,
            cache: scored.cache,
            mask_loglikelihoods: mask_lls,
        }
    }

    fn summary(&self, task: Task) -> TaskSummary {
        let n = self.items.max(1) as f64;
        let timed = self.timed_items > 0;
        TaskSummary {
            task: task.name(),
            items: self.items,
            acc: self.correct as f64 / n,
            acc_norm: task.has_acc_norm().then(|| self.correct_norm as f64 / n),
            c_demos: self.c_demos,
            c_context: self.c_context,
            seconds: self.seconds,
            seconds_nocache: timed.then_some(self.seconds_nocache),
            seconds_fullcache: timed.then_some(self.seconds_fullcache),
            speedup: timed
                .then(|| metrics::speedup(self.seconds_nocache, self.seconds_timed))
                .flatten(),
            full_vs_anchor_cache: timed
                .then(|| metrics::speedup(self.seconds_fullcache, self.seconds_timed))
                .flatten(),
            timed_items: self.timed_items,
            mask_agreement: timed.then(|| self.agree as f64 / self.timed_items as f64),
            mask_max_diff: timed.then_some(self.max_diff),
            truncated: self.truncated,
        }
    }
}
