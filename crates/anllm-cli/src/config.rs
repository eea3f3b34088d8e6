//! Turning flags into validated runtime values: the model path, dtype, threads.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use candle_core::Device;
use clap::ValueEnum;

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

/// Loads the model named by the shared flags, and resolves `--anchors auto` and an unset
/// `--anchor-window` and `--mask-rule` against the anchor flags the model records (see
/// [`resolve_anchors`]).
pub fn load(
    common: &CommonArgs,
    anchors: &mut String,
    window: &mut Option<u32>,
    rule: &mut Option<MaskRuleArg>,
) -> Result<LoadedModel> {
    let model = load_weights(common)?;
    let info = &model.info;
    let recorded = (info.default_anchors.as_deref()).or(info.trained_anchors.as_deref());
    if let Some(flags) = resolve_anchors(recorded, anchors, window, rule) {
        let source = match info.default_anchors {
            Some(_) => "records to run with by default",
            None => "was trained with",
        };
        eprintln!(
            "anllm: running with the anchors this model {source}: --anchors {flags} \
             (--anchors none: full attention)"
        );
    }
    let flags = anchor_flags(anchors, window.unwrap_or(0), rule.unwrap_or_default());
    warn_other_anchors(&model.info, &flags);
    Ok(model)
}

/// Loads the model named by the shared flags, to run with `--anchors anchors`,
/// `--anchor-window window` and `--mask-rule rule` as given (the commands that compare
/// settings: `eval mt`, `inspect`).
pub fn load_with(
    common: &CommonArgs,
    anchors: &str,
    window: u32,
    rule: MaskRuleArg,
) -> Result<LoadedModel> {
    let model = load_weights(common)?;
    warn_other_anchors(&model.info, &anchor_flags(anchors, window, rule));
    Ok(model)
}

fn load_weights(common: &CommonArgs) -> Result<LoadedModel> {
    let path = resolve_model(common)?;
    let dtype = match common.dtype {
        DtypeArg::Auto => WeightDtype::Auto,
        DtypeArg::F32 => WeightDtype::F32,
    };
    let mut model = load_model(&path, dtype, &Device::Cpu)
        .with_context(|| format!("loading model {}", path.display()))?;
    let kv = kv_dtype(common.kv_dtype, common.dtype, &model.info);
    model.llama = Arc::new(model.llama.as_ref().clone().with_kv_dtype(kv));
    Ok(model)
}

fn warn_other_anchors(info: &ModelInfo, flags: &str) {
    if let Some(warning) = other_anchors(info, flags) {
        eprintln!("anllm: warning: {warning}");
    }
}

/// `--anchors auto` and an unset `--anchor-window` or `--mask-rule` take what the model records
/// to run with (`recorded`, as [`anchor_flags`] writes it: its default, else the flags it was
/// trained with), as llama.cpp takes its
/// defaults from the GGUF: `auto` becomes the recorded preset (`none` when nothing is
/// recorded), and the window and rule the recorded ones when the anchors are the recorded
/// preset (else 0 and AnSAN). Returns the anchor flags when `auto` turned the anchors on (for
/// a note on stderr).
pub fn resolve_anchors(
    recorded: Option<&str>,
    anchors: &mut String,
    window: &mut Option<u32>,
    rule: &mut Option<MaskRuleArg>,
) -> Option<String> {
    let recorded = recorded.and_then(split_anchor_flags);
    let auto = anchors == AUTO_ANCHORS;
    if auto {
        *anchors = recorded.as_ref().map_or("none", |r| r.0).to_string();
    }
    let same = recorded.filter(|r| r.0 == anchors.as_str());
    window.get_or_insert(same.map_or(0, |r| r.1));
    rule.get_or_insert(same.map_or(MaskRuleArg::Ansan, |r| r.2));
    (auto && anchors != "none")
        .then(|| anchor_flags(anchors, window.unwrap_or(0), rule.unwrap_or_default()))
}

/// The default of `--anchors`: the model's recorded anchors, else none.
pub const AUTO_ANCHORS: &str = "auto";

/// `ep --anchor-window 32 --mask-rule legacy` → (`ep`, 32, legacy); `ep` → (`ep`, 0, ansan);
/// anything else → `None` (a recording this build does not understand is not applied, only
/// warned about).
pub fn split_anchor_flags(flags: &str) -> Option<(&str, u32, MaskRuleArg)> {
    let mut words = flags.split_whitespace();
    let preset = words.next()?;
    let (mut window, mut rule) = (None, None);
    while let Some(flag) = words.next() {
        let value = words.next()?;
        match flag {
            "--anchor-window" if window.is_none() => window = Some(value.parse().ok()?),
            "--mask-rule" if rule.is_none() => {
                rule = Some(MaskRuleArg::from_str(value, false).ok()?)
            }
            _ => return None,
        }
    }
    Some((preset, window.unwrap_or(0), rule.unwrap_or_default()))
}

/// How a model records the anchors it was trained with: the `--anchors` preset, followed by
/// ` --anchor-window W` when it had a window and ` --mask-rule R` when the rule is not AnSAN
/// (full attention, `none`, has neither).
pub fn anchor_flags(anchors: &str, window: u32, rule: MaskRuleArg) -> String {
    if anchors == "none" {
        return anchors.to_string();
    }
    let mut flags = anchors.to_string();
    if window > 0 {
        flags += &format!(" --anchor-window {window}");
    }
    if let Some(name) = (rule != MaskRuleArg::Ansan)
        .then(|| rule.to_possible_value())
        .flatten()
    {
        flags += &format!(" --mask-rule {}", name.get_name());
    }
    flags
}

/// A warning when the model records the anchor flags it was trained with and `anchors` (as
/// [`anchor_flags`] writes them) are other anchored ones: the model would run under segments
/// or a window it was not trained on. Full attention (`none`) is a fair way to run any model.
fn other_anchors(info: &ModelInfo, anchors: &str) -> Option<String> {
    let trained = info.trained_anchors.as_deref()?;
    let default = info.default_anchors.as_deref();
    (anchors != "none" && anchors != trained && Some(anchors) != default).then(|| {
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
        true => mask_rule(args.rule(), args.window())?,
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

/// The rule of `--mask-rule` with `--anchor-window`: the window goes with AnSAN and the
/// legacy rule, not with plain causal attention.
pub fn mask_rule(arg: MaskRuleArg, window: u32) -> Result<MaskRule> {
    Ok(match (arg, window) {
        (MaskRuleArg::Ansan, w) => MaskRule::ansan_window(w),
        (MaskRuleArg::Legacy, 0) => MaskRule::AnSanLegacy,
        (MaskRuleArg::Legacy, w) => MaskRule::AnSanLegacyWindow(w),
        (_, w) if w > 0 => bail!("--anchor-window {w} goes with --mask-rule ansan or legacy"),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Resolves (`--anchors`, `--anchor-window`) against a recording: what runs, and the note.
    fn resolve(trained: Option<&str>, anchors: &str, window: Option<u32>) -> (String, u32, bool) {
        let (a, w, rule, note) = resolve_rule(trained, anchors, window, None);
        assert_eq!(rule, MaskRuleArg::Ansan, "{trained:?} records no rule");
        (a, w, note)
    }

    /// As `resolve`, with `--mask-rule`: what runs (anchors, window, rule), and the note.
    fn resolve_rule(
        trained: Option<&str>,
        anchors: &str,
        window: Option<u32>,
        rule: Option<MaskRuleArg>,
    ) -> (String, u32, MaskRuleArg, bool) {
        let (mut a, mut w, mut r) = (anchors.to_string(), window, rule);
        let note = resolve_anchors(trained, &mut a, &mut w, &mut r);
        (a, w.unwrap(), r.unwrap(), note.is_some())
    }

    #[test]
    fn the_recorded_legacy_rule_goes_with_the_recorded_preset_unless_given() {
        use MaskRuleArg::{Ansan, Legacy};
        let legacy = "ep-list --anchor-window 32 --mask-rule legacy";
        let rec = Some(legacy);
        let ep_list = |w, r| ("ep-list".to_string(), w, r, true);
        assert_eq!(resolve_rule(rec, "auto", None, None), ep_list(32, Legacy));
        assert_eq!(
            resolve_rule(rec, "auto", None, Some(Ansan)),
            ep_list(32, Ansan)
        );
        assert_eq!(
            resolve_rule(rec, "ep", None, None),
            ("ep".into(), 0, Ansan, false)
        );
        // The order of the recorded flags does not matter; each at most once.
        let swapped = Some("ep --mask-rule legacy --anchor-window 8");
        assert_eq!(
            resolve_rule(swapped, "auto", None, None),
            ("ep".into(), 8, Legacy, true)
        );
        let twice = "ep --mask-rule legacy --mask-rule ansan";
        assert_eq!(split_anchor_flags(twice), None);
        assert_eq!(anchor_flags("ep-list", 32, Legacy), legacy);
        assert_eq!(anchor_flags("none", 32, Legacy), "none");
    }

    #[test]
    fn auto_anchors_take_the_recorded_preset_and_window() {
        let ep32 = Some("ep --anchor-window 32");
        assert_eq!(resolve(ep32, "auto", None), ("ep".into(), 32, true));
        assert_eq!(
            resolve(Some("ep-nodigit"), "auto", None),
            ("ep-nodigit".into(), 0, true)
        );
        // Nothing recorded (the original SmolLM2): full attention, as before, and no note.
        assert_eq!(resolve(None, "auto", None), ("none".into(), 0, false));
        // A window given by hand wins over the recording.
        assert_eq!(resolve(ep32, "auto", Some(0)), ("ep".into(), 0, true));
    }

    #[test]
    fn explicit_anchors_take_the_recorded_window_only_when_they_are_the_recorded_preset() {
        let ep32 = Some("ep --anchor-window 32");
        assert_eq!(resolve(ep32, "ep", None), ("ep".into(), 32, false));
        assert_eq!(
            resolve(ep32, "ep-sentence", None),
            ("ep-sentence".into(), 0, false)
        );
        assert_eq!(resolve(ep32, "none", None), ("none".into(), 0, false));
        assert_eq!(resolve(ep32, "ep", Some(8)), ("ep".into(), 8, false));
        assert_eq!(resolve(None, "ep", None), ("ep".into(), 0, false));
    }

    #[test]
    fn a_recording_this_build_cannot_read_is_not_applied() {
        for odd in [
            "",
            "ep --window 3",
            "ep --anchor-window x",
            "ep --anchor-window 3 more",
            "ep --mask-rule sideways",
        ] {
            assert_eq!(
                resolve(Some(odd), "auto", None),
                ("none".into(), 0, false),
                "{odd:?}"
            );
        }
        // anchor_flags and the split are inverses.
        for (preset, w, rule) in [
            ("ep", 0, MaskRuleArg::Ansan),
            ("ep-nodigit", 32, MaskRuleArg::Ansan),
            ("ac", 7, MaskRuleArg::Legacy),
            ("ep", 0, MaskRuleArg::Legacy),
        ] {
            assert_eq!(
                split_anchor_flags(&anchor_flags(preset, w, rule)),
                Some((preset, w, rule))
            );
        }
    }
}
