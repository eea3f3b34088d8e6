//! From a [`data::Batch`](super::data::Batch) of token rows to the tensors of one training step:
//! inputs and shifted targets, loss weights, RoPE positions and the AnSAN mask.
//!
//! The mask of a row is [`mask::packed_training_mask`]: each document's block is
//! [`mask::training_mask`], built from [`mask::visible`], the rule that cached inference prunes
//! by, and attention never crosses a document boundary in a packed row. Positions restart at 0 with every document
//! piece of a row, as if the piece were a row of its own.

use candle_core::{Device, Tensor};

use super::data::{Batch, Example};
use super::model::TrainBatch;
use anllm::anchor::AnchorSet;
use anllm::cache::Cell;
use anllm::mask::{self, MaskRule};
use anllm::token::{Pos, Role, SegmentId};
use anllm::{Error, Result, TokenId};

/// How the rows of a batch are seen: the mask rule and which tokens are anchors.
#[derive(Debug, Clone)]
pub struct BatchRule {
    /// [`MaskRule::Causal`] for full-attention training, [`MaskRule::AnSan`] for AnLLM.
    pub rule: MaskRule,
    /// The anchor ids (period for EP, `<AC>` for AC; empty for full attention).
    pub anchors: AnchorSet,
}

impl BatchRule {
    /// The cells of one row: anchors close segments, pads (tokens of no document) are
    /// [`Role::Pad`], positions and segments restart with every document, and a pinned
    /// prompt's tokens ([`Example::pinned`]) stay visible to the rest of their document.
    pub fn cells(&self, row: &Example) -> Vec<Cell> {
        let mut out = Vec::with_capacity(row.len());
        let (mut pos, mut segment) = (0u32, 0u32);
        for (i, (&token, &doc)) in row.tokens.iter().zip(&row.doc).enumerate() {
            if i > 0 && row.doc[i - 1] != doc {
                pos = 0;
                segment += 1;
            }
            // A pad id inside a document (e.g. pad = EOS) is an ordinary token there.
            let prev = (i > 0 && row.doc[i - 1] == doc).then(|| row.tokens[i - 1]);
            let role = match (doc == Example::PAD_DOC, self.anchors.classify(prev, token)) {
                (true, _) => Role::Pad,
                (false, Role::Pad) => Role::Token,
                (false, role) => role,
            };
            out.push(Cell {
                token,
                pos: Pos(pos),
                rope: Pos(pos),
                segment: SegmentId(segment),
                role,
                pinned: row.is_pinned(i) || (role != Role::Pad && self.anchors.pins(prev, token)),
            });
            pos += 1;
            if role == Role::Anchor {
                segment += 1;
            }
        }
        out
    }

    /// The additive mask `[t, t]` of the first `t` cells of a row, flattened: each document
    /// sees only itself, through the inference rule ([`mask::packed_training_mask`]).
    pub fn row_mask(&self, cells: &[Cell], doc: &[u32], t: usize) -> Vec<f32> {
        mask::packed_training_mask(self.rule, &cells[..t], &doc[..t]).additive()
    }

    /// The tensors of `batch` on `device`. Rows must have the same length (≥ 2).
    pub fn to_tensors(&self, batch: &Batch, device: &Device) -> Result<TrainBatch> {
        let n = batch.seq_len();
        if n < 2 || batch.examples.iter().any(|e| e.len() != n) {
            return Err(Error::Shape {
                op: "training batch".into(),
                expected: "rows of one length ≥ 2".into(),
                got: format!(
                    "{:?}",
                    batch.examples.iter().map(Example::len).collect::<Vec<_>>()
                ),
            });
        }
        let (b, t) = (batch.examples.len(), n - 1);
        let (mut inputs, mut targets) = (Vec::with_capacity(b * t), Vec::with_capacity(b * t));
        let (mut weights, mut positions) = (Vec::with_capacity(b * t), Vec::with_capacity(b * t));
        let mut masks = Vec::with_capacity(b * t * t);
        for row in &batch.examples {
            let cells = self.cells(row);
            inputs.extend_from_slice(&row.tokens[..t]);
            targets.extend_from_slice(&row.tokens[1..]);
            weights.extend(row.loss_mask[1..].iter().map(|&w| f32::from(u8::from(w))));
            positions.extend(cells[..t].iter().map(|c| c.rope.0));
            masks.extend(self.row_mask(&cells, &row.doc, t));
        }
        Ok(TrainBatch {
            inputs: Tensor::from_vec(inputs, (b, t), device)?,
            targets: Tensor::from_vec(targets, (b, t), device)?,
            weights: Tensor::from_vec(weights, (b, t), device)?,
            positions: Tensor::from_vec(positions, (b, t), device)?,
            mask: Tensor::from_vec(masks, (b, t, t), device)?,
        })
    }
}

/// A loss weight for the targets of one token (`train --end-of-turn-weight`): a target equal to
/// `token` weighs `weight` in the training loss, every other target 1 (a target outside the loss
/// mask stays 0). The loss stays a weighted mean, the sum of `weight · loss` over the sum of the
/// weights ([`TrainModel::loss`](super::model::TrainModel::loss)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenWeight {
    /// The weighted target token (the chat template's end-of-turn token).
    pub token: TokenId,
    /// Its weight (finite, ≥ 0).
    pub weight: f32,
}

impl TokenWeight {
    /// The loss weights of `batch`'s targets, row by row, as [`BatchRule::to_tensors`] lays
    /// them out (`[b, t]` flattened).
    pub fn weights(&self, batch: &Batch) -> Vec<f32> {
        let mut out = Vec::new();
        for row in &batch.examples {
            let targets = row.tokens.iter().zip(&row.loss_mask).skip(1);
            out.extend(
                targets.map(|(&tok, &counts)| match (counts, tok == self.token) {
                    (false, _) => 0.0,
                    (true, true) => self.weight,
                    (true, false) => 1.0,
                }),
            );
        }
        out
    }
}

/// `tensors` with their loss weights replaced by `weights` (laid out as theirs, e.g.
/// [`TokenWeight::weights`] of the batch they were made from).
pub fn with_weights(mut tensors: TrainBatch, weights: Vec<f32>) -> Result<TrainBatch> {
    let shape = tensors.weights.dims2()?;
    let device = tensors.weights.device().clone();
    tensors.weights = Tensor::from_vec(weights, shape, &device)?;
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(tokens: &[u32], doc: &[u32]) -> Example {
        Example {
            tokens: tokens.to_vec(),
            loss_mask: (0..tokens.len())
                .map(|i| i > 0 && doc[i] != Example::PAD_DOC && doc[i] == doc[i - 1])
                .collect(),
            doc: doc.to_vec(),
            pinned: Vec::new(),
        }
    }

    fn render(m: &[f32], t: usize) -> String {
        m.chunks(t)
            .map(|r| {
                r.iter()
                    .map(|&v| if v == 0.0 { '.' } else { 'x' })
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    const PERIOD: u32 = 9;
    const PAD: u32 = 0;

    fn ansan() -> BatchRule {
        BatchRule {
            rule: MaskRule::AnSan,
            anchors: AnchorSet::new([PERIOD], Some(PAD)),
        }
    }

    #[test]
    fn ansan_row_matches_the_spec_grid_and_never_crosses_documents() {
        // doc 0: a b . c d   doc 1: e . f   then one pad
        let ex = row(
            &[1, 2, PERIOD, 3, 4, 5, PERIOD, 6, PAD],
            &[0, 0, 0, 0, 0, 1, 1, 1, u32::MAX],
        );
        let rule = ansan();
        let cells = rule.cells(&ex);
        let positions: Vec<u32> = cells.iter().map(|c| c.pos.0).collect();
        assert_eq!(positions, [0, 1, 2, 3, 4, 0, 1, 2, 0]);
        let grid = render(&rule.row_mask(&cells, &ex.doc, 9), 9);
        let expected = [
            ".xxxxxxxx", // a
            "..xxxxxxx", // b
            "...xxxxxx", // . sees its own segment
            "xx..xxxxx", // c sees the anchor and itself
            "xx...xxxx", // d
            "xxxxx.xxx", // e: new document, sees nothing of doc 0
            "xxxxx..xx", // . (anchor of doc 1)
            "xxxxxx..x", // f sees the anchor and itself
            "xxxxxxxxx", // pad sees nothing
        ]
        .join("\n");
        assert_eq!(grid, expected);
    }

    #[test]
    fn a_pinned_prompt_stays_visible_after_the_answer_closes_a_segment() {
        // prompt: a . b (pinned)   answer: c . d
        let mut ex = row(&[1, PERIOD, 2, 3, PERIOD, 4], &[0; 6]);
        ex.pinned = vec![true, true, true, false, false, false];
        let rule = ansan();
        let grid = render(&rule.row_mask(&rule.cells(&ex), &ex.doc, 6), 6);
        let expected = [
            ".xxxxx", // a
            "..xxxx", // . (anchor of the prompt)
            "...xxx", // b sees the pinned a (unpinned: only the anchor and itself)
            "....xx", // c: pinned a . b, own segment
            ".....x", // . (the answer's anchor) sees the pinned prompt and its segment
            "...x..", // d: the pinned prompt, the answer's anchor, itself; not c
        ]
        .join("\n");
        assert_eq!(grid, expected);
    }

    #[test]
    fn a_period_after_a_digit_of_the_same_document_does_not_close_a_segment() {
        // ep-nodigit with 7 as the digit. doc 0: 7 . a .   doc 1: . b (its first period
        // follows doc 0's last token, not a digit of its own document, so it is an anchor).
        const DIGIT: u32 = 7;
        let rule = BatchRule {
            rule: MaskRule::AnSan,
            anchors: AnchorSet::new([PERIOD], Some(PAD)).with_not_after([DIGIT]),
        };
        let ex = row(&[DIGIT, PERIOD, 1, PERIOD, PERIOD, 2], &[0, 0, 0, 0, 1, 1]);
        let roles: Vec<Role> = rule.cells(&ex).iter().map(|c| c.role).collect();
        let (t, a) = (Role::Token, Role::Anchor);
        assert_eq!(roles, [t, t, t, a, a, t]);
        let ex = row(&[DIGIT, PERIOD, DIGIT, PERIOD, 1], &[0, 0, 1, 1, 1]);
        let roles: Vec<Role> = rule.cells(&ex).iter().map(|c| c.role).collect();
        assert_eq!(roles, [t, t, t, t, t]);
        let grid = render(&rule.row_mask(&rule.cells(&ex), &ex.doc, 5), 5);
        assert_eq!(grid, ".xxxx\n..xxx\nxx.xx\nxx..x\nxx...");
    }

    #[test]
    fn ep_list_pins_a_period_after_a_digit_for_the_rest_of_its_document() {
        // ep-list with 7 as the digit. doc 0: 7 . a . b   doc 1: c 7 .
        const DIGIT: u32 = 7;
        let rule = BatchRule {
            rule: MaskRule::AnSan,
            anchors: AnchorSet::new([PERIOD], Some(PAD))
                .with_not_after([DIGIT])
                .with_pinned_marks(true),
        };
        let ex = row(
            &[DIGIT, PERIOD, 1, PERIOD, 2, 3, DIGIT, PERIOD],
            &[0, 0, 0, 0, 0, 1, 1, 1],
        );
        let cells = rule.cells(&ex);
        let pinned: Vec<bool> = cells.iter().map(|c| c.pinned).collect();
        assert_eq!(
            pinned,
            [false, true, false, false, false, false, false, true]
        );
        // b (4) sees the mark (1), the anchor (3) and itself; the closed 7 and a stay hidden.
        // Doc 1 sees nothing of doc 0, its mark included.
        let grid = render(&rule.row_mask(&cells, &ex.doc, 8), 8);
        let expected = [
            ".xxxxxxx", // 7
            "..xxxxxx", // . (the mark)
            "...xxxxx", // a
            "....xxxx", // . (the anchor sees its own segment)
            "x.x..xxx", // b
            "xxxxx.xx", // c
            "xxxxx..x", // 7
            "xxxxx...", // .
        ]
        .join("\n");
        assert_eq!(grid, expected);
    }

    #[test]
    fn causal_rule_is_causal_within_a_document() {
        let ex = row(&[1, PERIOD, 2, 3], &[0, 0, 0, 0]);
        let rule = BatchRule {
            rule: MaskRule::Causal,
            anchors: AnchorSet::default(),
        };
        let grid = render(&rule.row_mask(&rule.cells(&ex), &ex.doc, 4), 4);
        assert_eq!(grid, ".xxx\n..xx\n...x\n....");
    }

    #[test]
    fn tensors_are_shifted_and_weighted() -> Result<()> {
        let batch = Batch {
            examples: vec![
                row(&[1, 2, PERIOD, 3], &[0, 0, 0, 0]),
                row(&[4, 5, PAD, PAD], &[1, 1, u32::MAX, u32::MAX]),
            ],
            position: Default::default(),
            next: Default::default(),
        };
        let tb = ansan().to_tensors(&batch, &Device::Cpu)?;
        assert_eq!(tb.inputs.to_vec2::<u32>()?, [[1, 2, PERIOD], [4, 5, PAD]]);
        assert_eq!(
            tb.targets.to_vec2::<u32>()?,
            [[2, PERIOD, 3], [5, PAD, PAD]]
        );
        assert_eq!(
            tb.weights.to_vec2::<f32>()?,
            [[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]
        );
        assert_eq!(tb.positions.to_vec2::<u32>()?, [[0, 1, 2], [0, 1, 0]]);
        assert_eq!(tb.mask.dims(), [2, 3, 3]);
        Ok(())
    }

    #[test]
    fn a_token_weight_scales_only_its_counted_targets() -> Result<()> {
        // Targets (hand-derived): row 0 → 2, 7, 3, 7 (all counted); row 1 → 7, PAD, PAD with
        // only the first counted. Token 7 weighs 4, the pads' 0 stays 0.
        let batch = Batch {
            examples: vec![
                row(&[1, 2, 7, 3, 7], &[0, 0, 0, 0, 0]),
                row(
                    &[4, 7, PAD, PAD, PAD],
                    &[1, 1, u32::MAX, u32::MAX, u32::MAX],
                ),
            ],
            position: Default::default(),
            next: Default::default(),
        };
        let up = TokenWeight {
            token: 7,
            weight: 4.0,
        };
        let tb = with_weights(
            ansan().to_tensors(&batch, &Device::Cpu)?,
            up.weights(&batch),
        )?;
        assert_eq!(
            tb.weights.to_vec2::<f32>()?,
            [[1.0, 4.0, 1.0, 4.0], [4.0, 0.0, 0.0, 0.0]]
        );
        Ok(())
    }

    #[test]
    fn ragged_rows_are_an_error() {
        let batch = Batch {
            examples: vec![row(&[1, 2, 3], &[0, 0, 0]), row(&[1, 2], &[1, 1])],
            position: Default::default(),
            next: Default::default(),
        };
        assert!(ansan().to_tensors(&batch, &Device::Cpu).is_err());
    }
}
