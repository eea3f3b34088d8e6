//! `anllm eval qa`, `ppl`, `overlap`, `mt`, `kv` and `rows`.

mod kv;
mod kv_report;
mod mt;
mod overlap;
mod ppl;
mod progress;
mod qa;
mod rows;

use anyhow::{Result, bail};

use anllm::tokenizer::Tokenizer;
use anllm::{AnchorSet, AnchorSpec, KeepWarm, MaskRule, PolicyConfig, PositionMode, SessionConfig};
use anllm_eval::EvalMode;

use crate::args::{EvalArgs, EvalCommand, EvalModeArg, EvalSessionArgs};

/// Runs the subcommand.
pub fn run(args: EvalArgs) -> Result<()> {
    match args.command {
        EvalCommand::Qa(a) => qa::run(a),
        EvalCommand::Ppl(a) => ppl::run(a),
        EvalCommand::Overlap(a) => overlap::run(a),
        EvalCommand::Mt(a) => mt::run_mt(a),
        EvalCommand::Kv(a) => kv::run_kv(a),
        EvalCommand::Rows(a) => rows::run(a),
    }
}

/// The mode, and the anchored session of the `mask`/`cache` modes (anchors resolved against
/// `tokenizer`; in `full` mode the anchors only count C⇓).
fn eval_session(
    args: &EvalSessionArgs,
    tokenizer: &Tokenizer,
) -> Result<(EvalMode, SessionConfig, AnchorSpec)> {
    if args.chunk_size == 0 {
        bail!("--chunk-size must be at least 1");
    }
    let spec: AnchorSpec = args.anchors.parse()?;
    let mode = match args.mode {
        EvalModeArg::Full => EvalMode::Full,
        EvalModeArg::Mask => EvalMode::Mask,
        EvalModeArg::Cache => EvalMode::Cache,
    };
    if mode != EvalMode::Full && spec == AnchorSpec::None {
        bail!("--mode mask and --mode cache need anchors: pass --anchors ep, ac, …");
    }
    let anchors = AnchorSet::from_spec(&spec, tokenizer)?;
    let rule = crate::config::mask_rule(args.rule(), args.window())?;
    let cfg = SessionConfig {
        anchors,
        rule: if spec == AnchorSpec::None {
            MaskRule::Causal
        } else {
            rule
        },
        policy: PolicyConfig::Anchor,
        positions: PositionMode::Absolute,
        pins: Vec::new(),
        chunk_size: args.chunk_size,
        keep_warm: KeepWarm::Spin,
    };
    Ok((mode, cfg, spec))
}
