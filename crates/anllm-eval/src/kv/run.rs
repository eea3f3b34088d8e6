//! One item of `anllm eval kv` under many KV policies and budgets, against the full cache.
//!
//! The protocol is kvpress's: the context is prefilled in one step with nothing evicted, then
//! compressed once to the budget ([`Session::compress`]); the question and the answer follow.
//! What a cell measures, from the same compressed cache:
//!
//! * teacher-forced, against the full cache: the log-likelihood of the gold answer, top-1
//!   agreement and KL(full ‖ policy) of the next-token distributions at the answer positions;
//! * generated: greedy decoding after the question (the policy evicting after every step, so the
//!   cache stays within its budget), correct when the answer's text is in the output.
//!
//! Prefills are shared: one causal prefill (the separators marked for SepLLM) serves `full`,
//! `streaming`, `knorm` and `sepllm` at every budget; each attention-scored policy (`h2o`,
//! `tova`, `snapkv`) needs the statistics of its own query rows, so it gets one prefill that
//! every budget of it shares; `anchor` prefills with its own mask in chunks.
//!
//! A query-aware cell (`snapkv+q`, kvpress's SnapKV with the question in its window) compresses
//! the context and the question together, to a share of both; the answer follows.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use anllm::policy::{Eviction, KvPolicy, Observation, PolicyConfig};
use anllm::{
    AnchorSet, AttentionStats, Llama, MaskRule, OutputRows, Session, SessionConfig, TokenId,
};
use candle_core::Tensor;
use serde::Serialize;

use super::KvItem;
use super::metrics::{answer_recall, compare};

/// An item rendered to token ids (the file `benches/kvpress_eval.py` reads).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Prepared {
    /// The generated item.
    #[serde(flatten)]
    pub item: KvItem,
    /// The compressed part: chat template start and the context.
    pub context_ids: Vec<TokenId>,
    /// The question, the end of the user turn, the assistant header and the answer prefix.
    pub question_ids: Vec<TokenId>,
    /// The gold answer.
    pub answer_ids: Vec<TokenId>,
}

/// One column of the table: a policy at a budget.
#[derive(Debug, Clone)]
pub struct Cell {
    /// The policy.
    pub policy: PolicyConfig,
    /// Budget as a share of the context (`None`: the policy's own rule, `full` and `anchor`).
    pub share: Option<f64>,
    /// The question is prefilled and compressed with the context (query-aware), and the share
    /// counts both.
    pub query_aware: bool,
}

impl Cell {
    /// The policy's name, `+q` when query-aware.
    pub fn label(&self) -> String {
        match self.query_aware {
            true => format!("{}+q", self.policy.name()),
            false => self.policy.name().to_string(),
        }
    }
}

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct KvRunConfig {
    /// Separator tokens for `sepllm` (marked as anchors under the causal rule).
    pub separators: AnchorSet,
    /// The anchored session of the `anchor` cell (AnSAN and the anchor policy).
    pub anchored: SessionConfig,
    /// Most tokens generated after the question.
    pub max_new_tokens: usize,
    /// Tokens that end generation.
    pub stop: Vec<TokenId>,
    /// `Some(c)`: every budgeted cell prefills its own context in chunks of `c` tokens under
    /// its policy, evicting after every chunk (memory bounded during the prefill too; one
    /// prefill per cell) instead of the one-shot compression.
    pub chunked: Option<usize>,
}

/// What one cell measured on one item.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CellRecord {
    /// Task name.
    pub task: String,
    /// Target length.
    pub length: usize,
    /// Item index.
    pub id: usize,
    /// Policy name (`+q`: query-aware).
    pub policy: String,
    /// The policy's configuration.
    pub config: PolicyConfig,
    /// Budget as a share of the context, if the cell has one.
    pub share: Option<f64>,
    /// The attention rule of the `anchor` cell (AnSAN, with its local window if any); `None`
    /// for the other policies (and in records written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_rule: Option<MaskRule>,
    /// Tokens compressed: the context (and the question, when query-aware).
    pub context: usize,
    /// Whether the question was compressed with the context.
    #[serde(default)]
    pub query_aware: bool,
    /// Entries held after the context was compressed.
    pub kv_entries: usize,
    /// Most entries held at once after the compression (the question step included); with a
    /// chunked prefill, at any time.
    pub kv_peak_entries: usize,
    /// Bytes of `kv_peak_entries` entries.
    pub kv_peak_bytes: usize,
    /// Sum of the log-probabilities of the gold answer's tokens (teacher-forced).
    pub gold_ll: f64,
    /// Mean negative log-likelihood per answer token.
    pub nll: f64,
    /// Share of answer positions whose most likely token is the full cache's.
    pub top1: f64,
    /// Mean KL(full ‖ this) over the answer positions, in nats.
    pub kl: f64,
    /// Greedy output after the question (empty when the item has no question).
    pub generated: String,
    /// Whether the answer's text occurs in `generated` (`None` without generation).
    pub correct: Option<bool>,
    /// Share of the answer's words (the variables of `vt`; the one key elsewhere) that occur
    /// in `generated`: RULER's `string_match_all` (`None` without generation; absent from
    /// records written before it existed).
    #[serde(default)]
    pub recall: Option<f64>,
    /// Decode steps per second of the generation (`None` without generation).
    pub decode_tok_s: Option<f64>,
}

/// Budget of `share` of a context of `n` tokens, in entries (at least 2).
pub fn budget_entries(share: f64, n: usize) -> usize {
    ((share * n as f64).round() as usize).max(2)
}

/// Keeps everything and records the last step's attention statistics (a prefill that an
/// attention-scored policy then compresses).
#[derive(Debug, Clone)]
struct Recorder {
    rows: Option<usize>,
    last: Arc<Mutex<Option<AttentionStats>>>,
}

impl KvPolicy for Recorder {
    fn name(&self) -> &'static str {
        "full"
    }
    fn plan(&mut self, obs: &Observation<'_>) -> Eviction {
        if let Ok(mut last) = self.last.lock() {
            *last = obs.attention.cloned();
        }
        Eviction::default()
    }
    fn fork(&self) -> Box<dyn KvPolicy> {
        Box::new(self.clone())
    }
    fn needs_attention(&self) -> bool {
        true
    }
    fn attention_rows(&self) -> Option<usize> {
        self.rows
    }
}

/// A prefilled context: the session, the last row's logits, and the statistics recorded.
struct Base {
    session: Session,
    last_logits: Tensor,
    stats: Option<AttentionStats>,
}

/// How a cell's context is prefilled (cells with equal kinds share the prefill).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prefill {
    Plain,
    Observed(Option<usize>),
    Anchored,
}

fn prefill_kind(policy: &PolicyConfig) -> Prefill {
    let built = policy.build();
    match policy {
        PolicyConfig::Anchor => Prefill::Anchored,
        _ if built.needs_attention() => Prefill::Observed(built.attention_rows()),
        _ => Prefill::Plain,
    }
}

fn prefill(
    model: &Arc<Llama>,
    p: &Prepared,
    kind: Prefill,
    cfg: &KvRunConfig,
) -> anllm::Result<Base> {
    let n = p.context_ids.len();
    let expected = n + p.question_ids.len() + p.answer_ids.len() + cfg.max_new_tokens;
    let causal = SessionConfig {
        anchors: cfg.separators.clone(),
        ..SessionConfig::causal(n.max(1))
    };
    let last = Arc::new(Mutex::new(None));
    let mut session = match kind {
        Prefill::Plain => Session::new(Arc::clone(model), causal, expected)?,
        Prefill::Observed(rows) => {
            let rec = Recorder {
                rows,
                last: Arc::clone(&last),
            };
            Session::with_policy(Arc::clone(model), causal, Box::new(rec), expected)?
        }
        Prefill::Anchored => Session::new(Arc::clone(model), cfg.anchored.clone(), expected)?,
    };
    let last_logits = session.prefill(&p.context_ids, n - 1)?;
    let stats = last.lock().ok().and_then(|mut s| s.take());
    Ok(Base {
        session,
        last_logits,
        stats,
    })
}

/// Teacher-forced log-softmax rows `[answer, vocab]` predicting each answer token, and the
/// most entries held during the step.
fn answer_rows(s: &mut Session, p: &Prepared, last: &Tensor) -> anllm::Result<(Tensor, usize)> {
    let a = &p.answer_ids;
    let q = &p.question_ids;
    let tokens = [q.as_slice(), &a[..a.len() - 1]].concat();
    let held = s.cache().held_entries() + tokens.len();
    let logits = match (q.is_empty(), tokens.is_empty()) {
        (_, true) => last.clone(),
        (false, false) => s.forward(&tokens, OutputRows::From(q.len() - 1))?,
        (true, false) => {
            let rest = s.forward(&tokens, OutputRows::All)?;
            Tensor::cat(&[last, &rest], 0)?
        }
    };
    Ok((candle_nn::ops::log_softmax(&logits, 1)?, held))
}

/// Greedy generation after the question: the text, and decode steps per second.
fn generate(
    s: &mut Session,
    p: &Prepared,
    last: &Tensor,
    cfg: &KvRunConfig,
    tokenizer: &anllm::Tokenizer,
) -> anllm::Result<(String, f64)> {
    let mut logits = match p.question_ids.is_empty() {
        true => last.clone(), // query-aware: the question is already in the cache
        false => s.forward(&p.question_ids, OutputRows::Last)?,
    };
    let mut out: Vec<TokenId> = Vec::new();
    let start = Instant::now();
    for _ in 0..cfg.max_new_tokens {
        let next = logits.flatten_all()?.argmax(0)?.to_scalar::<u32>()?;
        if cfg.stop.contains(&next) {
            break;
        }
        out.push(next);
        if out.len() == cfg.max_new_tokens {
            break;
        }
        logits = s.forward(&[next], OutputRows::Last)?;
    }
    let secs = start.elapsed().as_secs_f64();
    let rate = (out.len().saturating_sub(1)) as f64 / secs.max(1e-9);
    Ok((tokenizer.decode(&out, true)?, rate))
}

/// The session of a cell with its context compressed (a fork of the shared prefill, or its own
/// chunked prefill), and the logits of the context's last row.
fn cell_session(
    model: &Arc<Llama>,
    p: &Prepared,
    cell: &Cell,
    kind: Prefill,
    base: &Base,
    cfg: &KvRunConfig,
) -> anllm::Result<(Session, Tensor)> {
    match (cfg.chunked, kind) {
        (_, Prefill::Anchored) => Ok((base.session.fork()?, base.last_logits.clone())),
        (_, _) if cell.policy == PolicyConfig::Full => {
            Ok((base.session.fork()?, base.last_logits.clone()))
        }
        (Some(chunk), _) => prefill_chunked(model, p, cell.policy, chunk, cfg),
        (None, _) => {
            let mut s = base
                .session
                .fork_with_policy(cell.policy.build(), cell.policy)?;
            s.compress(base.stats.as_ref())?;
            Ok((s, base.last_logits.clone()))
        }
    }
}

/// A session of `policy` that prefilled the context in chunks of `chunk`, evicting after each,
/// and the last context row's logits.
fn prefill_chunked(
    model: &Arc<Llama>,
    p: &Prepared,
    policy: PolicyConfig,
    chunk: usize,
    cfg: &KvRunConfig,
) -> anllm::Result<(Session, Tensor)> {
    let n = p.context_ids.len();
    let sc = SessionConfig {
        anchors: cfg.separators.clone(),
        ..SessionConfig::causal(chunk.max(1))
    }
    .with_policy(policy);
    let mut s = Session::new(Arc::clone(model), sc, n + p.question_ids.len())?;
    let last = s.prefill(&p.context_ids, n - 1)?;
    Ok((s, last))
}

/// Runs one item under every cell; the first record is always the full cache's.
pub fn run_item(
    model: &Arc<Llama>,
    tokenizer: &anllm::Tokenizer,
    p: &Prepared,
    cells: &[Cell],
    cfg: &KvRunConfig,
) -> anllm::Result<Vec<CellRecord>> {
    if p.context_ids.is_empty() || p.answer_ids.is_empty() {
        return Err(anllm::Error::config("kv item", "empty context or answer"));
    }
    let asks = !p.question_ids.is_empty();
    // The query-aware form: the question joins the compressed part.
    let with_question = Prepared {
        item: p.item.clone(),
        context_ids: [p.context_ids.as_slice(), &p.question_ids].concat(),
        question_ids: Vec::new(),
        answer_ids: p.answer_ids.clone(),
    };
    let mut bases: Vec<((Prefill, bool), Base)> = Vec::new();
    // The full cell runs first: its answer rows are every other cell's reference.
    let mut reference: Option<Tensor> = None;
    let full = Cell {
        policy: PolicyConfig::Full,
        share: None,
        query_aware: false,
    };
    let mut out = Vec::new();
    for cell in
        std::iter::once(&full).chain(cells.iter().filter(|c| c.policy != PolicyConfig::Full))
    {
        // A chunked run prefills each budgeted cell itself: no observed prefill to share.
        let kind = match (cfg.chunked, prefill_kind(&cell.policy)) {
            (Some(_), Prefill::Observed(_)) => Prefill::Plain,
            (_, kind) => kind,
        };
        let p = match cell.query_aware {
            true => &with_question,
            false => p,
        };
        let key = (kind, cell.query_aware);
        let at = match bases.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                bases.push((key, prefill(model, p, kind, cfg)?));
                bases.len() - 1
            }
        };
        let base = &bases[at].1;
        let (mut s, last) = cell_session(model, p, cell, kind, base, cfg)?;
        let kv_entries = s.cache().held_entries(); // per layer, mean over layers
        let prefill_peak = match cfg.chunked {
            Some(_) => s.stats().peak_entries,
            None => 0,
        };
        let mut tf = s.fork()?;
        let (rows, held) = answer_rows(&mut tf, p, &last)?;
        let held = held.max(prefill_peak);
        let ref_rows = reference.get_or_insert_with(|| rows.clone());
        let (gold_ll, top1, kl) = compare(&rows, ref_rows, &p.answer_ids)?;
        let (generated, correct, recall, rate) = match asks {
            false => (String::new(), None, None, None),
            true => {
                let (text, rate) = generate(&mut s, p, &last, cfg, tokenizer)?;
                let hit = text.contains(p.item.answer.trim());
                let recall = answer_recall(&p.item.answer, &text);
                (text, Some(hit), Some(recall), Some(rate))
            }
        };
        out.push(CellRecord {
            task: p.item.task.name().to_string(),
            length: p.item.length,
            id: p.item.id,
            policy: cell.label(),
            config: cell.policy,
            share: cell.share,
            mask_rule: (kind == Prefill::Anchored).then_some(cfg.anchored.rule),
            context: p.context_ids.len(),
            query_aware: cell.query_aware,
            kv_entries,
            kv_peak_entries: held,
            kv_peak_bytes: held * s.cache().bytes_per_entry(),
            gold_ll,
            nll: -gold_ll / p.answer_ids.len() as f64,
            top1,
            kl,
            generated,
            correct,
            recall,
            decode_tok_s: rate,
        });
    }
    Ok(out)
}
