//! From flags to a ready trainer: the model (checkpoint, random init or the run's own latest
//! checkpoint), the vocabulary extension, the data, the optimizer and the schedule.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use candle_core::Device;
use serde_json::{Value, json};

use anllm::chat::ChatTemplate;
use anllm::tokenizer::Tokenizer;
use anllm::{AnchorSet, AnchorSpec, MaskRule, TokenId};
use anllm_train::batch::{BatchRule, TokenWeight};
use anllm_train::checkpoint::{self, LoadedCheckpoint, TrainerState};
use anllm_train::data::{AnchorData, BlockMode, DataConfig, DataPosition, DocSplit, TrainData};
use anllm_train::distill::Teacher;
use anllm_train::optim::{AdamW, AdamWConfig};
use anllm_train::schedule::{Decay, LrSchedule};
use anllm_train::setup::{self as start, RunStart};
use anllm_train::trainer::{TrainOptions, Trainer, unigram_loss};
use anllm_train::vocab::NewRowInit;

use crate::config::{anllm_home, resolve_model};
use crate::train_args::{
    BlockModeArg, DocSplitArg, NewRowsArg, ScheduleArg, TrainAnchorsArg, TrainArgs,
};

use super::eval_batches;

/// Everything the loop needs.
pub struct Prepared {
    pub trainer: Trainer,
    pub data: TrainData,
    pub eval_rows: Vec<anllm_train::data::Batch>,
    pub tokenizer_files: Vec<(String, Vec<u8>)>,
    pub state: TrainerState,
    pub total_steps: u64,
    pub unigram: Option<f64>,
}

/// Loads or creates the model, extends the vocabulary, reads the data and builds the trainer.
pub fn prepare(args: &TrainArgs, device: &Device) -> Result<Prepared> {
    check_flags(args)?;
    let run = run_json(args);
    let resumed = resume_point(args, &run)?;
    let start_model = match args.init_from_scratch {
        true => None,
        false => Some(resolve_model(&crate::args::CommonArgs {
            model: args.model.clone(),
            dtype: crate::args::DtypeArg::F32,
            kv_dtype: None,
            threads: None,
            json: false,
        })?),
    };
    let mut begin = match &resumed {
        Some(ck) => start::open_checkpoint(&ck.dir, device)?,
        None if args.init_from_scratch => {
            let (config, tok) = (args.config.as_ref(), args.tokenizer.as_ref());
            let (Some(config), Some(tok)) = (config, tok) else {
                bail!("--init-from-scratch needs --config and --tokenizer");
            };
            start::from_scratch(config, tok, args.seed, device)?
        }
        None => match &start_model {
            Some(path) => start::open_checkpoint(path, device)?,
            None => bail!("no model to start from"),
        },
    };
    if resumed.is_none() {
        begin = extend_vocab(args, begin)?;
    }
    check_context(args, begin.model.config())?;
    let (anchors, rule, anchor_data) = anchors_of(args, &begin)?;
    let config = data_config(args, &begin, anchor_data);
    let splitter = match anchor_data {
        AnchorData::Ac { .. } => Some(anllm::sentence::load_english(&anllm_home())?),
        _ => None,
    };
    let tok = &begin.tokenizer;
    let up = (args.end_of_turn_weight != 1.0)
        .then(|| end_of_turn_weight(args, tok))
        .transpose()?;
    let data = TrainData::from_files(&args.data, tok, splitter.as_ref(), config.clone())
        .context("reading the training data")?;
    if args.pin_prompts > 0.0 {
        let pinned = data
            .documents()
            .iter()
            .filter(|d| d.pinned.contains(&true))
            .count();
        eprintln!("anllm: --pin-prompts: {pinned} conversations train with their prompt pinned");
    }
    if let Some(note) = data.block_note() {
        eprintln!("anllm: {note}");
    }
    let (eval_rows, unigram) = if args.eval_data.is_empty() {
        (Vec::new(), None)
    } else {
        let eval_config = config.held_out();
        let eval = TrainData::from_files(&args.eval_data, tok, splitter.as_ref(), eval_config)
            .context("reading the held-out data")?;
        let rows = eval_batches(&eval, args.eval_rows);
        let vocab = begin.model.config().vocab_size;
        let train = data
            .documents()
            .iter()
            .map(|d| (&d.tokens[..], &d.loss_mask[..]));
        let held = rows.iter().flat_map(|b| &b.examples);
        let u = unigram_loss(
            train,
            held.map(|e| (&e.tokens[..], &e.loss_mask[..])),
            vocab,
        );
        (rows, Some(u))
    };
    let total_steps = total_steps(args, &data)?;
    let (mut trainer, state) =
        build_trainer(args, begin.model, resumed, rule, anchors, total_steps, run)?;
    if let Some(up) = up {
        trainer = trainer.with_token_weight(up)?;
    }
    if args.distill {
        let Some(path) = args.teacher.as_ref().or(start_model.as_ref()) else {
            bail!("--distill needs a starting model (not --init-from-scratch)");
        };
        trainer = trainer.with_teacher(load_teacher(args, path)?)?;
        eprintln!(
            "anllm: distilling from {} (KL weight {})",
            path.display(),
            args.distill_alpha
        );
    }
    Ok(Prepared {
        trainer,
        data,
        eval_rows,
        tokenizer_files: begin.tokenizer_files,
        state,
        total_steps,
        unigram,
    })
}

/// The frozen teacher of --distill (`--teacher`, else the starting model) as the inference
/// engine runs it (a quantized GGUF keeps its quantized kernels: about half the time of f32 per
/// step; a student starting from the same GGUF gets its weights dequantized).
fn load_teacher(args: &TrainArgs, path: &std::path::Path) -> Result<Teacher> {
    let loaded = anllm::load_model(path, anllm::WeightDtype::Auto, &Device::Cpu)
        .with_context(|| format!("loading the teacher {}", path.display()))?;
    Ok(Teacher::new((*loaded.llama).clone(), args.distill_alpha)?)
}

fn check_flags(args: &TrainArgs) -> Result<()> {
    if args.init_from_scratch && args.model.is_some() {
        bail!("--init-from-scratch and --model exclude each other");
    }
    if args.save_every == 0 {
        bail!("--save-every must be at least 1");
    }
    if args.grad_accum == 0 || args.batch_size == 0 {
        bail!("--batch-size and --grad-accum must be at least 1");
    }
    if !(args.lr.is_finite() && args.lr > 0.0) {
        bail!("--lr must be a positive number");
    }
    if args.distill && args.anchors == TrainAnchorsArg::Ac {
        bail!("--distill with --anchors ac: the teacher has no `<AC>` token (use ep)");
    }
    if !(0.0..=1.0).contains(&args.distill_alpha) {
        bail!("--distill-alpha {} is not in [0, 1]", args.distill_alpha);
    }
    if args.stop_at == Some(0) {
        bail!("--stop-at must be at least 1");
    }
    if args.steps.is_none() && args.epochs.is_none() && args.max_minutes.is_none() {
        bail!("say how long to train: --steps, --epochs or --max-minutes");
    }
    Ok(())
}

/// Rows must fit the model's context: a row past it would fail at its first long document,
/// perhaps hours into the run.
fn check_context(args: &TrainArgs, cfg: &anllm::LlamaConfig) -> Result<()> {
    // A row of n tokens feeds n - 1 positions.
    if args.block_size < 2 || args.block_size - 1 > cfg.max_position_embeddings {
        bail!(
            "--block-size {} must be in 2..={} (the model's max_position_embeddings {} + 1)",
            args.block_size,
            cfg.max_position_embeddings + 1,
            cfg.max_position_embeddings
        );
    }
    Ok(())
}

/// The flags a resumed run must share with the run it continues.
fn run_json(args: &TrainArgs) -> Value {
    let mut run = json!({
        "model": args.model, "init_from_scratch": args.init_from_scratch,
        "config": args.config, "tokenizer": args.tokenizer,
        "data": args.data, "eval_data": args.eval_data,
        "anchors": format!("{:?}", args.anchors), "mask_rule": format!("{:?}", args.mask_rule),
        "doc_split": format!("{:?}", args.doc_split), "block_size": args.block_size,
        "block_mode": format!("{:?}", args.block_mode), "batch_size": args.batch_size,
        "grad_accum": args.grad_accum, "lr": args.lr, "warmup": args.warmup,
        "schedule": format!("{:?}", args.schedule), "min_lr_ratio": args.min_lr_ratio,
        "weight_decay": args.weight_decay, "max_grad_norm": args.max_grad_norm,
        "seed": args.seed, "init_new_rows": format!("{:?}", args.init_new_rows),
        "distill": args.distill.then_some(args.distill_alpha),
    });
    // Only when given, so that runs saved before `--teacher` existed still resume.
    if let Some(teacher) = &args.teacher {
        run["teacher"] = json!(teacher);
    }
    if args.pin_prompts > 0.0 {
        run["pin_prompts"] = json!(args.pin_prompts);
    }
    if args.end_of_turn_weight != 1.0 {
        run["end_of_turn_weight"] = json!(args.end_of_turn_weight);
    }
    run
}

/// `--end-of-turn-weight` on the token the model's chat template closes an answer with.
fn end_of_turn_weight(args: &TrainArgs, tok: &anllm::Tokenizer) -> Result<TokenWeight> {
    let token = ChatTemplate::of(tok)
        .and_then(|t| t.answer_terminator())
        .context("--end-of-turn-weight needs a chat template that ends each answer with a token")?;
    let piece = tok.piece(token).unwrap_or_default();
    eprintln!(
        "anllm: the end-of-turn token {piece:?} (id {token}) weighs {} in the loss",
        args.end_of_turn_weight
    );
    Ok(TokenWeight {
        token,
        weight: args.end_of_turn_weight,
    })
}

/// The checkpoint to continue from (with --resume), after checking that --out is usable.
fn resume_point(args: &TrainArgs, run: &Value) -> Result<Option<LoadedCheckpoint>> {
    let latest = checkpoint::load_latest(&args.out)
        .with_context(|| format!("reading the checkpoints in {}", args.out.display()))?;
    match (args.resume, latest) {
        (false, Some(ck)) => bail!(
            "{} already holds a run (step {}): pass --resume to continue it, or another --out",
            args.out.display(),
            ck.state.step
        ),
        (false, None) => Ok(None),
        (true, None) => bail!("--resume: no checkpoint in {}", args.out.display()),
        (true, Some(ck)) => {
            if &ck.state.run != run {
                bail!(
                    "--resume: the flags differ from the run saved in {} (saved: {})",
                    ck.dir.display(),
                    ck.state.run
                );
            }
            eprintln!(
                "anllm: resuming from {} (step {})",
                ck.dir.display(),
                ck.state.step
            );
            Ok(Some(ck))
        }
    }
}

/// `<AC>` for AnLLM-AC, and `[PAD]` when rows must be padded and the vocabulary has no pad.
fn extend_vocab(args: &TrainArgs, begin: RunStart) -> Result<RunStart> {
    let mut pieces = Vec::new();
    let needs_pad = args.block_mode == BlockModeArg::Truncate && args.batch_size > 1;
    if needs_pad && begin.tokenizer.specials().pad.is_none() {
        pieces.push("[PAD]");
    }
    if args.anchors == TrainAnchorsArg::Ac {
        pieces.push("<AC>");
    }
    if pieces.is_empty() {
        return Ok(begin);
    }
    let init = match args.init_new_rows {
        NewRowsArg::CopyPeriod => NewRowInit::CopyPeriod,
        NewRowsArg::Mean => NewRowInit::Mean,
    };
    let dir: PathBuf = super::plan::vocab_dir(args);
    let (begin, ids) = start::add_tokens(begin, &pieces, init, &dir)?;
    eprintln!("anllm: added {pieces:?} to the vocabulary as ids {ids:?}");
    Ok(begin)
}

fn anchors_of(args: &TrainArgs, begin: &RunStart) -> Result<(AnchorSet, MaskRule, AnchorData)> {
    let rule = crate::config::mask_rule(args.mask_rule, args.anchor_window)?;
    let tok = &begin.tokenizer;
    Ok(match args.anchors {
        TrainAnchorsArg::None => (AnchorSet::default(), MaskRule::Causal, AnchorData::None),
        TrainAnchorsArg::Ep => (
            AnchorSet::from_spec(&AnchorSpec::Ep, tok)?,
            rule,
            AnchorData::Ep,
        ),
        TrainAnchorsArg::EpNodigit => (
            AnchorSet::from_spec(&AnchorSpec::EpNoDigit, tok)?,
            rule,
            AnchorData::Ep,
        ),
        TrainAnchorsArg::EpList => (
            AnchorSet::from_spec(&AnchorSpec::EpList, tok)?,
            rule,
            AnchorData::Ep,
        ),
        TrainAnchorsArg::Ac => {
            let set = AnchorSet::from_spec(&AnchorSpec::Ac, tok)?;
            let ac = set.ids()[0];
            (set, rule, AnchorData::Ac { ac })
        }
    })
}

fn data_config(args: &TrainArgs, begin: &RunStart, anchors: AnchorData) -> DataConfig {
    DataConfig {
        doc_split: match args.doc_split {
            DocSplitArg::BlankLine => DocSplit::BlankLine,
            DocSplitArg::File => DocSplit::File,
        },
        anchors,
        block_mode: match args.block_mode {
            BlockModeArg::Truncate => BlockMode::Truncate,
            BlockModeArg::Pack => BlockMode::Pack,
            BlockModeArg::Fit => BlockMode::Fit,
        },
        pad: pad_id(args, &begin.tokenizer),
        seed: args.seed,
        pin_prompts: args.pin_prompts,
        ..DataConfig::new(args.block_size, args.batch_size)
    }
}

/// The pad id: `[PAD]` or the vocabulary's own; under `--block-mode fit` the end-of-sequence
/// id when there is neither (a pad is never attended to or trained on, so its id does not
/// matter, and the vocabulary stays the starting model's).
fn pad_id(args: &TrainArgs, tok: &Tokenizer) -> Option<TokenId> {
    let pad = tok.token_id("[PAD]").or(tok.specials().pad);
    match args.block_mode {
        BlockModeArg::Fit => pad.or(tok.specials().eos),
        _ => pad,
    }
}

fn total_steps(args: &TrainArgs, data: &TrainData) -> Result<u64> {
    let per_epoch = (data.batches_per_epoch() as u64).div_ceil(args.grad_accum as u64);
    Ok(match (args.steps, args.epochs) {
        (Some(s), _) => s,
        (None, Some(e)) if e > 0.0 && e.is_finite() => (e * per_epoch as f64).ceil() as u64,
        (None, Some(e)) => bail!("--epochs {e} must be positive"),
        (None, None) => u64::MAX,
    })
}

fn build_trainer(
    args: &TrainArgs,
    model: anllm_train::model::TrainModel,
    resumed: Option<LoadedCheckpoint>,
    rule: MaskRule,
    anchors: AnchorSet,
    total: u64,
    run: Value,
) -> Result<(Trainer, TrainerState)> {
    let decay = match args.schedule {
        ScheduleArg::Constant => Decay::Constant,
        ScheduleArg::Cosine => Decay::Cosine {
            min_ratio: args.min_lr_ratio,
        },
    };
    let schedule = LrSchedule::new(decay, args.warmup, total)?;
    let adam = AdamWConfig {
        weight_decay: args.weight_decay,
        ..AdamWConfig::default()
    };
    let mut optimizer = AdamW::new(model.vars(), adam)?;
    let state = match resumed {
        Some(ck) => {
            optimizer.load_state(&ck.optimizer)?;
            ck.state
        }
        None => TrainerState {
            step: 0,
            data: DataPosition::default(),
            seed: args.seed,
            tokens_seen: 0,
            elapsed_s: 0.0,
            log_records: 0,
            run,
            extra: json!({}),
        },
    };
    let options = TrainOptions {
        steps: total,
        grad_accum: args.grad_accum,
        lr: args.lr,
        schedule,
        max_grad_norm: args.max_grad_norm,
    };
    let batch_rule = BatchRule { rule, anchors };
    let trainer = Trainer::new(model, optimizer, batch_rule, options, state.step)?;
    Ok((trainer, state))
}
