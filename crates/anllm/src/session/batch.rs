//! Several sessions advanced by one batched forward step ([`Llama::forward_batch`]): a server
//! decodes its conversations together, each weight read once per step.

use std::sync::Arc;

use candle_core::Tensor;

use super::{Session, dry_run};
use crate::cache::Cell;
use crate::mask::{self, Mask};
use crate::model::{BatchItem, ForwardInput, OutputRows, Visibility};
use crate::threads;
use crate::{Error, Pos, Result, TokenId};

/// What one session runs in the batched step.
struct Planned {
    tokens: Vec<TokenId>,
    cells: Vec<Cell>,
    positions: Vec<Pos>,
    grid: Mask,
}

impl Session {
    /// Runs one step for every `(session, tokens)` at once (each session's pending tokens
    /// first, as [`Session::forward`] does) and returns each one's last-row logits
    /// `[1, vocab]`: the same logits, cells and evictions as stepping each session alone. The
    /// sessions must share one model, and no policy may need attention observations. On an
    /// outer error every session is as it was; an inner error is one session's eviction that
    /// failed after the step (that session is poisoned, as after [`Session::forward`]).
    pub fn forward_batch(batch: &mut [(&mut Session, &[TokenId])]) -> Result<Vec<Result<Tensor>>> {
        let Some((first, _)) = batch.first() else {
            return Ok(Vec::new());
        };
        let model = Arc::clone(&first.model);
        let keep_warm = first.cfg.keep_warm;
        let mut planned = Vec::with_capacity(batch.len());
        for (session, tokens) in batch.iter() {
            session.check_usable()?;
            if !Arc::ptr_eq(&session.model, &model) {
                return Err(Error::unsupported("a batched step needs one shared model"));
            }
            if session.policy.needs_attention() {
                return Err(Error::unsupported(format!(
                    "the {} policy observes attention, which a batched step does not compute",
                    session.policy.name()
                )));
            }
            planned.push(session.plan_step(tokens)?);
        }
        let logits = {
            let mut items: Vec<BatchItem> = (batch.iter_mut())
                .zip(&planned)
                .map(|((session, _), p)| BatchItem {
                    input: ForwardInput {
                        tokens: &p.tokens,
                        positions: &p.positions,
                        visibility: match p.grid.is_causal() {
                            true => Visibility::Causal,
                            false => Visibility::Mask(&p.grid),
                        },
                        rows: OutputRows::Last,
                        cells: Some(&p.cells),
                    },
                    cache: &mut session.cache,
                })
                .collect();
            let rows = planned.iter().map(|p| p.tokens.len()).sum();
            threads::run_step(keep_warm, rows, || model.forward_batch(&mut items))?
        };
        let results = (batch.iter_mut().zip(planned).zip(logits))
            .map(|(((session, _), p), logits)| {
                session.pending.clear();
                session.after_step(&p.tokens).map(|()| logits)
            })
            .collect();
        Ok(results)
    }

    fn plan_step(&self, tokens: &[TokenId]) -> Result<Planned> {
        let tokens = [self.pending.as_slice(), tokens].concat();
        if tokens.is_empty() {
            return Err(Error::config(
                "tokens",
                "a batched step needs a token per session",
            ));
        }
        let prev = self.history.last().copied();
        let cells = dry_run::next_cells(&self.cfg, self.cache.cells(), prev, &tokens);
        let positions = cells.iter().map(|c| c.rope).collect();
        let grid = mask::step_mask(self.cfg.rule, self.cache.cells().as_slice(), &cells);
        Ok(Planned {
            tokens,
            cells,
            positions,
            grid,
        })
    }

    /// After a step's forward appended `tokens`: history, the policy's plan, the eviction.
    fn after_step(&mut self, tokens: &[TokenId]) -> Result<()> {
        self.history.extend_from_slice(tokens);
        self.plan_and_apply(tokens.len(), None)
    }
}
