//! One running request: its session, the prompt tokens still to prefill, sampling, stop
//! strings and the events it sends.

use std::sync::Arc;
use std::time::Instant;

use anllm::generate::Detokenizer;
use anllm::model::OutputRows;
use anllm::sample::Sampler;
use anllm::{Session, TokenId};
use candle_core::Tensor;
use tokio::sync::mpsc;

use super::prompt::{Prepared, prepare};
use super::{Event, Finish, GenParams, Job, LogprobEntry, Shared, TokenIds};
use crate::error::ApiError;
use crate::store::Taken;
use crate::text::{StopFilter, logprobs};
use crate::types::Usage;

enum Outcome {
    Finished(Finish),
    Failed(ApiError),
    Cancelled,
}

/// A request being answered.
pub struct Slot {
    events: mpsc::UnboundedSender<Event>,
    id: Option<String>,
    session: Session,
    /// Prompt tokens not prefilled yet.
    queue: Vec<TokenId>,
    params: GenParams,
    sampler: Sampler,
    detok: Detokenizer,
    stop: StopFilter,
    generated: usize,
    prompt_tokens: usize,
    cached_tokens: usize,
    enqueued: Instant,
    last_token: Option<Instant>,
    outcome: Option<Outcome>,
}

impl Slot {
    /// Takes the job's session and prepares its prompt; `None` (after sending the error)
    /// when the request cannot start.
    pub fn start(shared: &Shared, job: Job) -> Option<Self> {
        if job.events.is_closed() {
            shared.metrics.cancelled.inc();
            return None;
        }
        let session = match acquire(shared, job.session_id.as_deref()) {
            Ok(s) => s,
            Err(e) => return refuse(shared, &job, e),
        };
        let mut slot = Self {
            sampler: Sampler::new(job.params.sampling.clone()),
            stop: StopFilter::new(job.params.stop.clone()),
            events: job.events,
            id: job.session_id,
            session,
            queue: Vec::new(),
            params: job.params,
            detok: Detokenizer::default(),
            generated: 0,
            prompt_tokens: 0,
            cached_tokens: 0,
            enqueued: job.received,
            last_token: None,
            outcome: None,
        };
        match slot.prepare(shared, &job.prompt) {
            Ok(()) => Some(slot),
            Err(e) => {
                slot.outcome = Some(Outcome::Failed(e));
                slot.finish_or_keep(shared)
            }
        }
    }

    fn prepare(&mut self, shared: &Shared, prompt: &super::PromptInput) -> Result<(), ApiError> {
        let prepared = prepare(&mut self.session, &shared.tokenizer, prompt)?;
        self.check_context(&prepared)?;
        if shared.pin_prompts && !prepared.new_tokens.is_empty() {
            // The new tokens follow the stream: its run and pending tokens.
            let start = self.session.stream_len() as u32;
            let end = start + prepared.new_tokens.len() as u32;
            self.session.pin(start..end);
        }
        let m = &shared.metrics;
        if self.id.is_some() {
            match prepared.reused {
                true => m.session_hits.inc(),
                false => m.session_misses.inc(),
            };
        }
        // The penalty window sees the whole conversation, as llama-server's does.
        let stream = [
            self.session.history(),
            self.session.pending(),
            &prepared.new_tokens,
        ];
        self.sampler.accept_stream(&stream);
        m.prompt_tokens.inc_by(prepared.prompt_tokens as u64);
        m.cached_tokens.inc_by(prepared.cached_tokens as u64);
        self.prompt_tokens = prepared.prompt_tokens;
        self.cached_tokens = prepared.cached_tokens;
        self.queue = prepared.new_tokens;
        let _ = self.events.send(Event::Started {
            prompt_tokens: self.prompt_tokens,
            cached_tokens: self.cached_tokens,
        });
        Ok(())
    }

    /// With absolute positions the stream's length is bounded by the context; with
    /// compressed positions only the kept entries are (checked by the model at each step).
    fn check_context(&self, prepared: &Prepared) -> Result<(), ApiError> {
        let ctx = self.session.model().config().max_position_embeddings;
        let used = self.session.context_used();
        let needed = self.session.pending().len() + prepared.new_tokens.len();
        if used + needed >= ctx {
            return Err(ApiError::context(format!(
                "this model's maximum context length is {ctx} tokens; the conversation \
                 needs {} ({used} already in the session + {needed} new) and at least one \
                 to generate",
                used + needed
            )));
        }
        Ok(())
    }

    /// Bytes of K/V this request's session holds now.
    pub fn allocated_kv_bytes(&self) -> usize {
        self.session.stats().allocated_kv_bytes
    }

    /// The tokens of this round: the next prefill chunk, or none (decode: the pending
    /// sampled token runs).
    fn round_tokens(&mut self) -> Vec<TokenId> {
        let n = self.queue.len().min(self.session.config().chunk_size);
        self.queue.drain(..n).collect()
    }

    /// Handles the logits of this round's step (`Last` row), or its error.
    fn after_forward(&mut self, shared: &Shared, result: anllm::Result<Tensor>) {
        match result {
            Ok(logits) if self.queue.is_empty() => self.on_logits(shared, &logits),
            Ok(_) => {}
            Err(e) => self.outcome = Some(Outcome::Failed(e.into())),
        }
    }

    fn on_logits(&mut self, shared: &Shared, logits: &Tensor) {
        match self.next_token(shared, logits) {
            Ok(Some(finish)) => self.outcome = Some(Outcome::Finished(finish)),
            Ok(None) => {}
            Err(e) => self.outcome = Some(Outcome::Failed(e)),
        }
    }

    /// Samples, sends the token's text, and says whether the generation ends here.
    fn next_token(&mut self, shared: &Shared, logits: &Tensor) -> Result<Option<Finish>, ApiError> {
        let row: Vec<f32> = logits
            .squeeze(0)
            .and_then(|r| r.to_vec1())
            .map_err(anllm::Error::from)?;
        let next = self.sampler.sample(&row)?;
        self.observe_timing(shared);
        self.generated += 1;
        shared.metrics.generated_tokens.inc();
        self.session.accept(next);
        let tok = &shared.tokenizer;
        if tok.specials().is_end_of_generation(next) {
            return Ok(Some(Finish::Stop));
        }
        let logprob = self.params.logprobs.map(|k| {
            let (lp, top) = logprobs(&row, next, k);
            let piece = |id: TokenId| tok.decode(&[id], false).unwrap_or_default();
            LogprobEntry {
                token: piece(next),
                logprob: lp,
                top: top.into_iter().map(|(id, lp)| (piece(id), lp)).collect(),
            }
        });
        let text = self.detok.push(tok, next)?;
        let (text, hit) = self.stop.push(&text);
        let _ = self.events.send(Event::Token { text, logprob });
        if hit {
            return Ok(Some(Finish::Stop));
        }
        let ctx = self.session.model().config().max_position_embeddings;
        let full = self.session.context_used() + self.session.pending().len() >= ctx;
        if self.params.max_tokens.is_some_and(|m| self.generated >= m) || full {
            return Ok(Some(Finish::Length));
        }
        Ok(None)
    }

    fn observe_timing(&mut self, shared: &Shared) {
        let now = Instant::now();
        match self.last_token {
            None => shared
                .metrics
                .ttft
                .observe((now - self.enqueued).as_secs_f64()),
            Some(t) => shared.metrics.inter_token.observe((now - t).as_secs_f64()),
        }
        self.last_token = Some(now);
    }

    /// The slot while its request runs; once it has ended, sends the last events, gives the
    /// session back and returns `None`.
    pub fn finish_or_keep(mut self, shared: &Shared) -> Option<Self> {
        let Some(outcome) = self.outcome.take() else {
            return Some(self);
        };
        let m = &shared.metrics;
        let last = match outcome {
            Outcome::Finished(finish) => {
                let rest = self.stop.flush();
                if !rest.is_empty() && finish == Finish::Length {
                    let _ = self.events.send(Event::Token {
                        text: rest,
                        logprob: None,
                    });
                }
                let usage = Usage::new(self.prompt_tokens, self.cached_tokens, self.generated);
                m.requests.inc();
                let token_ids = self.params.token_ids.then(|| self.token_ids());
                Some(Event::Done {
                    finish,
                    usage,
                    token_ids,
                })
            }
            Outcome::Failed(e) => {
                m.requests.inc();
                Some(Event::Error(e))
            }
            Outcome::Cancelled => {
                m.cancelled.inc();
                None
            }
        };
        // The session is on disk before the client hears the end of the turn, so a server
        // killed right after still has it.
        let events = self.events.clone();
        self.give_back(shared);
        if let Some(event) = last {
            let _ = events.send(event);
        }
        None
    }

    fn token_ids(&self) -> TokenIds {
        let all = self.session.tokens();
        let cut = all.len().saturating_sub(self.generated);
        TokenIds {
            prompt: all[..cut].to_vec(),
            output: all[cut..].to_vec(),
        }
    }

    fn give_back(self, shared: &Shared) {
        let Some(id) = self.id else { return };
        let Ok(mut store) = shared.store.lock() else {
            return;
        };
        // A new session that never ran anything is not worth keeping.
        if self.session.last_token().is_none() {
            store.release(&id);
        } else if let Err(e) = store.put(&id, self.session) {
            tracing::warn!(session = %id, "{}", e.message);
        }
    }
}

/// Runs one round of every slot that is still going: one batched forward step over all of
/// them (each weight read once per round), or one step each when a batch cannot be formed.
pub fn step_all(shared: &Shared, active: &mut [Slot]) {
    let mut live: Vec<&mut Slot> = Vec::with_capacity(active.len());
    for slot in active.iter_mut().filter(|s| s.outcome.is_none()) {
        match slot.events.is_closed() {
            true => slot.outcome = Some(Outcome::Cancelled),
            false => live.push(slot),
        }
    }
    let rounds: Vec<Vec<TokenId>> = live.iter_mut().map(|s| s.round_tokens()).collect();
    if live.len() > 1 {
        let mut batch: Vec<(&mut Session, &[TokenId])> = (live.iter_mut())
            .zip(&rounds)
            .map(|(s, t)| (&mut s.session, t.as_slice()))
            .collect();
        // On an outer error no session changed: step them one by one instead.
        if let Ok(results) = Session::forward_batch(&mut batch) {
            for (slot, result) in live.into_iter().zip(results) {
                slot.after_forward(shared, result);
            }
            return;
        }
    }
    for (slot, tokens) in live.into_iter().zip(rounds) {
        let result = slot.session.forward(&tokens, OutputRows::Last);
        slot.after_forward(shared, result);
    }
}

/// The session of a request: the named one (from RAM or disk, or new), or a fresh one.
fn acquire(shared: &Shared, id: Option<&str>) -> Result<Session, ApiError> {
    let mut store = shared
        .store
        .lock()
        .map_err(|_| ApiError::internal("the session store is poisoned"))?;
    // A conversation already in RAM may continue past the budget; anything new must fit.
    if !id.is_some_and(|id| store.in_ram(id)) {
        store.admit()?;
    }
    let taken = match id {
        Some(id) => store.take(id, &shared.model, shared.session.keep_warm)?,
        None => Taken::New,
    };
    drop(store);
    match taken {
        Taken::Found(session) => Ok(*session),
        Taken::New => Ok(fresh(shared)?),
    }
}

fn fresh(shared: &Shared) -> Result<Session, ApiError> {
    Ok(Session::new(
        Arc::clone(&shared.model),
        shared.session.clone(),
        0,
    )?)
}

fn refuse(shared: &Shared, job: &Job, e: ApiError) -> Option<Slot> {
    if e.status == axum::http::StatusCode::TOO_MANY_REQUESTS {
        shared.metrics.rejected.inc();
    }
    let _ = job.events.send(Event::Error(e));
    None
}
