//! Turning flags into validated runtime values: the model path, dtype, threads.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use candle_core::Device;

use anllm::loader::ModelInfo;
use anllm::tokenizer::Tokenizer;
use anllm::{
    AnchorSet, AnchorSpec, KeepWarm, KvDtype, LoadedModel, MaskRule, PolicyConfig, PositionMode,
    SessionConfig, WeightDtype, load_model,
};

use crate::args::{CommonArgs, DtypeArg, KvDtypeArg, MaskRuleArg, PositionModeArg, SessionArgs};

/// File name of the default model inside `$ANLLM_HOME/models`.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// `$ANLLM_HOME`, default `~/.cache/anllm`.
pub fn anllm_home() -> PathBuf {
    if let Some(home) = std::env::var_os("ANLLM_HOME") {
        return PathBuf::from(home);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cache").join("anllm")
}

/// The model path: `--model`, or the fetched default model.
pub fn resolve_model(common: &CommonArgs) -> Result<PathBuf> {
    if let Some(path) = &common.model {
        if !path.exists() {
            bail!("model path {} does not exist", path.display());
        }
        return Ok(path.clone());
    }
    let path = anllm_home().join("models").join(DEFAULT_MODEL_FILE);
    if !path.exists() {
        bail!(
            "no --model given and the default model {} is missing: run scripts/fetch-assets.sh",
            path.display()
        );
    }
    Ok(path)
}

/// Sets the CPU thread count for candle (gemm and rayon) before any tensor work.
pub fn set_threads(threads: Option<usize>) -> Result<()> {
    let Some(n) = threads else { return Ok(()) };
    if n == 0 {
        bail!("--threads must be at least 1");
    }
    // candle's CPU kernels read RAYON_NUM_THREADS, and rayon's global pool reads it too.
    // SAFETY: called at the top of main, before any other thread exists.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    Ok(())
}

/// Loads the model named by the shared flags, to run with `--anchors anchors` and
/// `--anchor-window window`.
pub fn load(common: &CommonArgs, anchors: &str, window: u32) -> Result<LoadedModel> {
    let path = resolve_model(common)?;
    let dtype = match common.dtype {
        DtypeArg::Auto => WeightDtype::Auto,
        DtypeArg::F32 => WeightDtype::F32,
    };
    let mut model = load_model(&path, dtype, &Device::Cpu)
        .with_context(|| format!("loading model {}", path.display()))?;
    let kv = kv_dtype(common.kv_dtype, common.dtype, &model.info);
    model.llama = Arc::new(model.llama.as_ref().clone().with_kv_dtype(kv));
    if let Some(warning) = other_anchors(&model.info, &anchor_flags(anchors, window)) {
        eprintln!("anllm: warning: {warning}");
    }
    Ok(model)
}

/// How a model records the anchors it was trained with: the `--anchors` preset, followed by
/// ` --anchor-window W` when it had a window (full attention, `none`, has none).
pub fn anchor_flags(anchors: &str, window: u32) -> String {
    match window {
        0 => anchors.to_string(),
        _ if anchors == "none" => anchors.to_string(),
        w => format!("{anchors} --anchor-window {w}"),
    }
}

/// A warning when the model records the anchor flags it was trained with and `anchors` (as
/// [`anchor_flags`] writes them) are other anchored ones: the model would run under segments
/// or a window it was not trained on. Full attention (`none`) is a fair way to run any model.
fn other_anchors(info: &ModelInfo, anchors: &str) -> Option<String> {
    let trained = info.trained_anchors.as_deref()?;
    (anchors != "none" && anchors != trained).then(|| {
        format!(
            "this model was trained with --anchors {trained}, and runs with --anchors {anchors}"
        )
    })
}

/// `--kv-dtype`, or its default: f16 when the weights stay quantized (their rounding is
/// already far above f16's), f32 for dense weights and `--dtype f32`.
fn kv_dtype(flag: Option<KvDtypeArg>, dtype: DtypeArg, info: &ModelInfo) -> KvDtype {
    match (flag, dtype) {
        (Some(KvDtypeArg::F16), _) => KvDtype::F16,
        (Some(KvDtypeArg::F32), _) => KvDtype::F32,
        (None, DtypeArg::Auto) if info.is_quantized() => KvDtype::F16,
        (None, _) => KvDtype::F32,
    }
}

/// The session of `generate`/`score`: anchors resolved against `tokenizer`, the rule and policy
/// they imply (unless overridden), positions and pins (`prompt_len` for `--pin-prompt`).
pub fn session_config(
    args: &SessionArgs,
    tokenizer: &Tokenizer,
    prompt_len: usize,
) -> Result<SessionConfig> {
    if args.chunk_size == 0 {
        bail!("--chunk-size must be at least 1");
    }
    let spec: AnchorSpec = args.anchors.parse()?;
    let anchors = AnchorSet::from_spec(&spec, tokenizer)?;
    let anchored = spec != AnchorSpec::None;
    let rule = match anchored {
        false => MaskRule::Causal,
        true => mask_rule(args.mask_rule, args.anchor_window)?,
    };
    let policy = match (&args.kv_policy, args.kv_budget) {
        (Some(name), Some(budget)) if !name.contains(':') => {
            PolicyConfig::with_budget(name, budget)?
        }
        (Some(_), Some(_)) => {
            bail!("--kv-budget goes with a bare --kv-policy name (h2o), not NAME:PARAMS")
        }
        (None, Some(_)) => bail!("--kv-budget needs --kv-policy (e.g. --kv-policy snapkv)"),
        (Some(spec), None) => spec.parse()?,
        (None, None) if anchored => PolicyConfig::Anchor,
        (None, None) => PolicyConfig::Full,
    };
    let mut pins = args
        .pin
        .iter()
        .map(|p| parse_pin(p))
        .collect::<Result<Vec<_>>>()?;
    if args.pin_prompt {
        pins.push(0..prompt_len as u32);
    }
    Ok(SessionConfig {
        anchors,
        rule,
        policy,
        positions: match args.position_mode {
            PositionModeArg::Absolute => PositionMode::Absolute,
            PositionModeArg::Compressed => PositionMode::Compressed,
        },
        pins,
        chunk_size: args.chunk_size,
        // One stream owns the machine: keep the pool's workers awake through decode steps.
        keep_warm: KeepWarm::Spin,
    })
}

/// The rule of `--mask-rule` with `--anchor-window`: the window goes with AnSAN only.
pub fn mask_rule(arg: MaskRuleArg, window: u32) -> Result<MaskRule> {
    Ok(match (arg, window) {
        (MaskRuleArg::Ansan, w) => MaskRule::ansan_window(w),
        (_, w) if w > 0 => bail!("--anchor-window {w} goes with --mask-rule ansan"),
        (MaskRuleArg::Legacy, _) => MaskRule::AnSanLegacy,
        (MaskRuleArg::Causal, _) => MaskRule::Causal,
    })
}

/// `START:END` → `START..END`.
fn parse_pin(text: &str) -> Result<std::ops::Range<u32>> {
    let parsed = text
        .split_once(':')
        .and_then(|(a, b)| Some((a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?)));
    match parsed {
        Some((start, end)) if start < end => Ok(start..end),
        _ => bail!("--pin {text}: expected START:END with START < END (token positions)"),
    }
}

/// One line of cache statistics for stderr.
pub fn cache_line(c: &anllm::CacheStats) -> String {
    let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
    format!(
        "tokens processed: {} | KV cache: {} entries now, {} peak | KV bytes ({}): {:.2} MiB \
         now, {:.2} MiB peak (full cache: {:.2} MiB) | C⇓ = {:.1}%",
        c.tokens_seen,
        c.entries,
        c.peak_entries,
        c.kv_dtype.name(),
        mib(c.kv_bytes),
        mib(c.peak_kv_bytes),
        mib(c.full_kv_bytes),
        100.0 * c.reduction
    )
}

/// Token ids of `text` with `<AC>` after every sentence when `--insert-anchors` is set, else
/// `None` (the caller tokenizes as usual).
pub fn encode_with_anchors(
    args: &SessionArgs,
    tokenizer: &Tokenizer,
    text: &str,
) -> Result<Option<Vec<anllm::TokenId>>> {
    if !args.insert_anchors {
        return Ok(None);
    }
    let spec: AnchorSpec = args.anchors.parse()?;
    if spec != AnchorSpec::Ac {
        bail!("--insert-anchors needs --anchors ac (EP anchors are already in the text)");
    }
    let anchors = AnchorSet::from_spec(&spec, tokenizer)?;
    let ac = anchors.ids()[0];
    let splitter = anllm::sentence::load_english(&anllm_home())
        .context("loading the Punkt English parameters (run scripts/fetch-assets.sh)")?;
    let spans = splitter.sentence_spans(text);
    let last = anllm::anchor::insert::FinalSentence::Open;
    Ok(Some(anllm::anchor::insert::insert_after_sentences(
        tokenizer, text, &spans, ac, last,
    )?))
}
