//! The KV task items, their seeded generation and their JSONL files (see the [module docs](super)).

use std::fmt;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::str::FromStr;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::words::{self, HAYSTACK, KEY_SPACE, KeyOrder};
use super::{Miss, Rate, Window, fit, interleave, real_window};

/// Shortest target length [`generate`] accepts: room for the needles and some haystack.
pub const MIN_LENGTH: usize = 64;

/// Tokens (window `[55, 64]`, as for contexts) of an Agreement item's answer: the real text
/// that follows its context.
pub const AGREEMENT_ANSWER_TOKENS: usize = 64;

/// First guess of tokens per noise-haystack sentence, refined by measurement.
const NOISE_TOKENS_GUESS: usize = 5;
/// First guess of tokens per multi-key needle, refined by measurement.
const MAGIC_TOKENS_GUESS: usize = 20;
/// Variables of the variable-tracking chain (one chain, four hops).
const VT_VARS: usize = 5;

/// One generated item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KvItem {
    /// The task (snake_case name in JSON).
    pub task: KvTask,
    /// Target context length in tokens.
    pub length: usize,
    /// Index within (task, length).
    pub id: usize,
    /// The long text to be compressed (the haystack with the needle(s), or real text).
    pub context: String,
    /// Asked after the context ("" for Agreement).
    pub question: String,
    /// Start of the answer the model continues, e.g. "The pass key is" ("" for Agreement).
    pub answer_prefix: String,
    /// Gold continuation of `answer_prefix`, with a leading space (" 71432"); for Agreement the
    /// real text that follows the context, its leading whitespace included.
    pub answer: String,
    /// Needle depth in `0..=1` (Vt: its chain spans `0.5·depth ..= 0.5·depth + 0.5`; 0 for
    /// Agreement).
    pub depth: f32,
}

/// A long-context task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KvTask {
    /// One pass-key needle in the noise haystack (RULER `niah_single_1`).
    Passkey,
    /// A haystack of distractor magic-number needles, one asked for (`niah_multikey_2`).
    Multikey,
    /// Variable tracking: one chain of five variables (four hops) in the noise haystack.
    Vt,
    /// A window of real text; the answer is its real continuation.
    Agreement,
}

impl KvTask {
    /// The task's name: `passkey`, `multikey`, `vt` or `agreement`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Passkey => "passkey",
            Self::Multikey => "multikey",
            Self::Vt => "vt",
            Self::Agreement => "agreement",
        }
    }

    /// The task named `s` (case-insensitive).
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::all()
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown KV task `{s}` (expected passkey, multikey, vt or agreement)")
            })
    }

    /// Every task, in a fixed order.
    pub fn all() -> [Self; 4] {
        [Self::Passkey, Self::Multikey, Self::Vt, Self::Agreement]
    }
}

impl FromStr for KvTask {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

impl fmt::Display for KvTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct GenSpec<'a> {
    /// The task.
    pub task: KvTask,
    /// Target context length in tokens (at least [`MIN_LENGTH`]).
    pub length: usize,
    /// Items to generate.
    pub items: usize,
    /// The seed; each item's RNG mixes it with the task, the length and the item index.
    pub seed: u64,
    /// The real text Agreement windows come from (unused by the other tasks).
    pub real_text: Option<&'a str>,
}

/// The strings of one item.
struct Parts {
    context: String,
    question: String,
    answer_prefix: String,
    answer: String,
}

impl Parts {
    fn into_item(self, spec: &GenSpec, id: usize, depth: f32) -> KvItem {
        KvItem {
            task: spec.task,
            length: spec.length,
            id,
            context: self.context,
            question: self.question,
            answer_prefix: self.answer_prefix,
            answer: self.answer,
            depth,
        }
    }
}

/// Counts a text's tokens.
type Count<'c> = &'c dyn Fn(&str) -> usize;

/// Generates `spec.items` items; `count` returns the number of tokens of a text (the real
/// tokenizer in production, a word count in tests). Item `i` of `n` has depth `i / (n − 1)`
/// (0.5 when `n` is 1). Errors when the length is under [`MIN_LENGTH`] or cannot hold the
/// needles, and for Agreement without a long enough `real_text`.
pub fn generate(spec: &GenSpec, count: &dyn Fn(&str) -> usize) -> Result<Vec<KvItem>, String> {
    if spec.length < MIN_LENGTH {
        return Err(format!(
            "length {} is too small for the {} task: at least {MIN_LENGTH} tokens are needed",
            spec.length, spec.task
        ));
    }
    let make: fn(&mut StdRng, usize, f32, Count) -> Result<Parts, String> = match spec.task {
        KvTask::Passkey => passkey,
        KvTask::Multikey => multikey,
        KvTask::Vt => vt,
        KvTask::Agreement => return agreement(spec, count),
    };
    (0..spec.items)
        .map(|id| {
            let depth = item_depth(id, spec.items);
            let parts = make(&mut item_rng(spec, id), spec.length, depth, count)
                .map_err(|e| format!("{} item {id} at length {}: {e}", spec.task, spec.length))?;
            Ok(parts.into_item(spec, id, depth))
        })
        .collect()
}

/// Depth of item `id` of `n`: evenly spread over `[0, 1]`, 0.5 for a single item.
fn item_depth(id: usize, n: usize) -> f32 {
    if n <= 1 {
        0.5
    } else {
        id as f32 / (n - 1) as f32
    }
}

/// Item `id`'s own RNG: `seed ^ mix(task, length, id)` (SplitMix64 finalizers), so no item
/// depends on which items, lengths or tasks were generated before it.
fn item_rng(spec: &GenSpec, id: usize) -> StdRng {
    let code = spec.task as u64 + 1;
    let stream = splitmix(splitmix(code ^ splitmix(spec.length as u64)) ^ id as u64);
    StdRng::seed_from_u64(spec.seed ^ stream)
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `The pass key is 71432. Remember it. 71432 is the pass key.` at `depth` in the noise.
fn passkey(rng: &mut StdRng, length: usize, depth: f32, count: Count) -> Result<Parts, String> {
    let key: u32 = rng.random_range(10_000..100_000);
    let needle = format!("The pass key is {key}. Remember it. {key} is the pass key.");
    Ok(Parts {
        context: noise_context(length, &[(depth, &needle)], count)?,
        question: "What is the pass key?".into(),
        answer_prefix: "The pass key is".into(),
        answer: format!(" {key}"),
    })
}

/// Distractor needles `One of the special magic numbers for {key} is: {7 digits}.` with
/// distinct keys and values other than the target's, the target needle at `depth`.
fn multikey(rng: &mut StdRng, length: usize, depth: f32, count: Count) -> Result<Parts, String> {
    let keys = KeyOrder::draw(rng);
    let value: u32 = rng.random_range(1_000_000..10_000_000);
    let max_n = (length / 8 + 1).min(KEY_SPACE - 1);
    let distractors: Vec<String> = (1..=max_n)
        .map(|j| {
            let mut v: u32 = rng.random_range(1_000_000..10_000_000);
            while v == value {
                v = rng.random_range(1_000_000..10_000_000);
            }
            magic_needle(&keys.key(j), v)
        })
        .collect();
    let key = keys.key(0);
    let target = magic_needle(&key, value);
    let inserts = [(depth, target.as_str())];
    let win = Window::for_length(length);
    let build = |n: usize| interleave(&distractors, n, &inserts);
    let context = match fit(win, max_n, length / MAGIC_TOKENS_GUESS, &build, count) {
        Ok(fitted) => fitted.text,
        // Needles are coarse: close the gap with noise sentences in front.
        Err(Miss::Short { n, .. }) => pad_with_noise(win, &build(n), count)?,
        Err(miss) => return Err(miss.message(win)),
    };
    Ok(Parts {
        context,
        question: format!("What is the special magic number for {key}?"),
        answer_prefix: format!("The special magic number for {key} is"),
        answer: format!(" {value}"),
    })
}

fn magic_needle(key: &str, value: u32) -> String {
    format!("One of the special magic numbers for {key} is: {value}.")
}

/// Variable tracking: `VAR ABCDE = 12345 .`, then `VAR FGHIJ = VAR ABCDE .` and so on, five
/// statements in the noise evenly spaced from depth `0.5·depth` to `0.5·depth + 0.5` (the
/// chain covers half the context, its start moving with `depth`).
fn vt(rng: &mut StdRng, length: usize, depth: f32, count: Count) -> Result<Parts, String> {
    let value: u32 = rng.random_range(10_000..100_000);
    let names = var_names(rng);
    let mut statements = vec![format!("VAR {} = {value} .", names[0])];
    statements.extend(
        names
            .windows(2)
            .map(|w| format!("VAR {} = VAR {} .", w[1], w[0])),
    );
    let step = 0.5 / (VT_VARS - 1) as f32;
    let inserts: Vec<(f32, &str)> = (statements.iter().enumerate())
        .map(|(k, s)| (0.5 * depth + k as f32 * step, s.as_str()))
        .collect();
    Ok(Parts {
        context: noise_context(length, &inserts, count)?,
        question: format!(
            "Find all variables that are assigned the value {value} in the text above."
        ),
        answer_prefix: format!(
            "Answer: According to the chain(s) of variables assigned in the text above, \
             {VT_VARS} variables are assigned the value {value}, they are:"
        ),
        answer: names.iter().map(|n| format!(" {n}")).collect(),
    })
}

/// [`VT_VARS`] distinct names of five random uppercase letters.
fn var_names(rng: &mut StdRng) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(VT_VARS);
    while names.len() < VT_VARS {
        let name: String = (0..5)
            .map(|_| char::from(rng.random_range(b'A'..=b'Z')))
            .collect();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// The noise haystack fitted to `length` tokens, the inserts at their depths (sentence
/// boundaries).
fn noise_context(length: usize, inserts: &[(f32, &str)], count: Count) -> Result<String, String> {
    let units: Vec<&str> = HAYSTACK.iter().copied().cycle().take(length).collect();
    let build = |n: usize| interleave(&units, n, inserts);
    let win = Window::for_length(length);
    fit(win, units.len(), length / NOISE_TOKENS_GUESS, &build, count)
        .map(|fitted| fitted.text)
        .map_err(|miss| miss.message(win))
}

/// Noise sentences before `core` until the whole lands in `win`.
fn pad_with_noise(win: Window, core: &str, count: Count) -> Result<String, String> {
    let units: Vec<&str> = HAYSTACK.iter().copied().cycle().take(win.hi).collect();
    let build = |m: usize| match m {
        0 => core.to_string(),
        _ => format!("{} {core}", interleave(&units, m, &[])),
    };
    fit(win, units.len(), 1, &build, count)
        .map(|fitted| fitted.text)
        .map_err(|miss| miss.message(win))
}

/// Agreement: item `i` of `n` starts at a seeded position in the `i`-th of `n` equal strata of
/// the possible starts, moved forward to a paragraph or sentence boundary within
/// [`words::SNAP_BYTES`] bytes (else to the next word), so windows are distinct and spread out.
fn agreement(spec: &GenSpec, count: Count) -> Result<Vec<KvItem>, String> {
    let text =
        (spec.real_text).ok_or("the agreement task needs a real text (real_text is None)")?;
    let rate = Rate::measure(text, count);
    let need = rate.bytes_for(spec.length + AGREEMENT_ANSWER_TOKENS) + words::SNAP_BYTES;
    let Some(span) = text.len().checked_sub(need) else {
        let (len, length) = (text.len(), spec.length);
        return Err(format!(
            "the real text ({len} bytes) is too short for agreement windows of {length} tokens (about {need} bytes needed)"
        ));
    };
    let mut items: Vec<KvItem> = Vec::with_capacity(spec.items);
    let mut prev: Option<usize> = None;
    for id in 0..spec.items {
        let start = agreement_start(spec, id, span, text);
        if prev.is_some_and(|q| start <= q) {
            let n = spec.items;
            return Err(format!(
                "the real text is too short for {n} distinct agreement windows"
            ));
        }
        prev = Some(start);
        let (context, answer) = real_window(text, start, spec.length, &rate, count)
            .map_err(|e| format!("agreement item {id} at length {}: {e}", spec.length))?;
        let (question, answer_prefix) = (String::new(), String::new());
        let parts = Parts {
            context,
            question,
            answer_prefix,
            answer,
        };
        items.push(parts.into_item(spec, id, 0.0));
    }
    Ok(items)
}

/// Where Agreement item `id` starts: seeded in its stratum of `0..span`, then snapped.
fn agreement_start(spec: &GenSpec, id: usize, span: usize, text: &str) -> usize {
    let (lo, hi) = (span * id / spec.items, span * (id + 1) / spec.items);
    let p = if hi > lo {
        item_rng(spec, id).random_range(lo..hi)
    } else {
        lo
    };
    words::snap_start(text, p)
}

/// Writes `items` to `path`, one JSON object a line.
pub fn write_jsonl(items: &[KvItem], path: &Path) -> std::io::Result<()> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    for item in items {
        serde_json::to_writer(&mut out, item)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Reads items written by [`write_jsonl`]; blank lines are skipped, a bad line is reported with
/// its (1-based) number.
pub fn read_jsonl(path: &Path) -> Result<Vec<KvItem>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    (text.lines().enumerate())
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line)
                .map_err(|e| format!("{}:{}: bad KV item: {e}", path.display(), i + 1))
        })
        .collect()
}
