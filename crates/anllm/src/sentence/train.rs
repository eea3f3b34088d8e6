//! Unsupervised Punkt training (NLTK `PunktTrainer` with its default hyper-parameters), used
//! to reproduce NLTK's reference splits of a document trained on itself.

use std::collections::{HashMap, HashSet};

use super::annotate::{first_pass, ortho};
use super::punkt::PunktParams;
use super::words::{Token, is_letter, tokenize_words};

/// Minimal abbreviation score (NLTK `ABBREV`).
const ABBREV: f64 = 0.3;
/// Upper frequency bound for rare abbreviations (NLTK `ABBREV_BACKOFF`).
const ABBREV_BACKOFF: usize = 5;
/// Minimal collocation log-likelihood (NLTK `COLLOCATION`).
const COLLOCATION: f64 = 7.88;
/// Minimal sentence-starter log-likelihood (NLTK `SENT_STARTER`).
const SENT_STARTER: f64 = 30.0;

/// Type frequencies of the training text.
struct Counts {
    types: HashMap<String, usize>,
    /// Number of tokens (NLTK `FreqDist.N()`).
    n: usize,
    period_toks: usize,
}

impl Counts {
    fn new(tokens: &[Token<'_>]) -> Self {
        let mut types: HashMap<String, usize> = HashMap::new();
        for t in tokens {
            *types.entry(t.typ.clone()).or_default() += 1;
        }
        let period_toks = tokens.iter().filter(|t| t.period_final()).count();
        Counts {
            types,
            n: tokens.len(),
            period_toks,
        }
    }

    fn get(&self, typ: &str) -> usize {
        self.types.get(typ).copied().unwrap_or(0)
    }

    /// Count of `typ` with and without a final period.
    fn with_period(&self, typ: &str) -> usize {
        self.get(typ) + self.get(&format!("{typ}."))
    }
}

/// Python's `math.log`, which raises (here: `None`) outside its domain.
fn log(x: f64) -> Option<f64> {
    (x > 0.0).then(|| x.ln())
}

/// NLTK `_dunning_log_likelihood` (modified Dunning ratio for abbreviations).
fn dunning_log_likelihood(a: f64, b: f64, ab: f64, n: f64) -> f64 {
    let p1 = b / n;
    let p2: f64 = 0.99;
    let null = ab * p1.ln() + (a - ab) * (1.0 - p1).ln();
    let alt = ab * p2.ln() + (a - ab) * (1.0 - p2).ln();
    -2.0 * (null - alt)
}

/// NLTK `_col_log_likelihood` (Dunning log-likelihood for collocations and starters).
fn col_log_likelihood(a: f64, b: f64, ab: f64, n: f64) -> f64 {
    let p = b / n;
    let p1 = ab / a;
    let p2 = if n == a { 1.0 } else { (b - ab) / (n - a) };
    let term = |k1: f64, q: f64, k2: f64| Some(k1 * log(q)? + k2 * log(1.0 - q)?);
    let s1 = term(ab, p, a - ab).unwrap_or(0.0);
    let s2 = term(b - ab, p, n - a - b + ab).unwrap_or(0.0);
    let s3 = if a == ab || p1 == 0.0 || p1 == 1.0 {
        None
    } else {
        term(ab, p1, a - ab)
    };
    let s4 = if b == ab || p2 == 0.0 || p2 == 1.0 {
        None
    } else {
        term(b - ab, p2, n - a - b + ab)
    };
    -2.0 * (s1 + s2 - s3.unwrap_or(0.0) - s4.unwrap_or(0.0))
}

/// Abbreviation score of `typ` (NLTK `_reclassify_abbrev_types` for a period-final type).
fn abbrev_score(typ: &str, c: &Counts) -> f64 {
    let periods = typ.matches('.').count() + 1;
    let nonperiods = typ.chars().count() + 1 - periods;
    let with = c.get(&format!("{typ}.")) as f64;
    let without = c.get(typ) as f64;
    let ll = dunning_log_likelihood(with + without, c.period_toks as f64, with, c.n as f64);
    let f_length = (-(nonperiods as f64)).exp();
    let f_penalty = (nonperiods as f64).powf(-without);
    ll * f_length * periods as f64 * f_penalty
}

/// Abbreviation types found from type frequencies.
fn find_abbrevs(c: &Counts) -> HashSet<String> {
    c.types
        .keys()
        .filter(|typ| typ.chars().any(is_letter) && typ.as_str() != "##number##")
        .filter_map(|typ| typ.strip_suffix('.'))
        .filter(|typ| abbrev_score(typ, c) >= ABBREV)
        .map(str::to_string)
        .collect()
}

/// Where a token stands in its sentence, for the orthographic context.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Position {
    Initial,
    Internal,
    Unknown,
}

fn ortho_flag(pos: Position, t: &Token<'_>) -> u32 {
    let (upper, lower) = match pos {
        Position::Initial => (ortho::BEG_UC, ortho::BEG_LC),
        Position::Internal => (ortho::MID_UC, ortho::MID_LC),
        Position::Unknown => (ortho::UNK_UC, ortho::UNK_LC),
    };
    if t.first_lower() {
        lower
    } else if t.first_upper() {
        upper
    } else {
        0
    }
}

/// NLTK `_get_orthography_data`.
fn orthography(tokens: &[Token<'_>], params: &mut PunktParams) {
    let mut pos = Position::Internal;
    for t in tokens {
        if t.parastart && pos != Position::Unknown {
            pos = Position::Initial;
        }
        if t.linestart && pos == Position::Internal {
            pos = Position::Unknown;
        }
        let flag = ortho_flag(pos, t);
        if flag != 0 {
            *params
                .ortho_context
                .entry(t.type_no_sentperiod().to_string())
                .or_default() |= flag;
        }
        pos = if t.sentbreak {
            if t.is_number() || t.is_initial() {
                Position::Unknown
            } else {
                Position::Initial
            }
        } else if t.ellipsis || t.abbr {
            Position::Unknown
        } else {
            Position::Internal
        };
    }
}

/// NLTK `_is_rare_abbrev_type`.
fn is_rare_abbrev(cur: &Token<'_>, next: &Token<'_>, c: &Counts, params: &PunktParams) -> bool {
    if cur.abbr || !cur.sentbreak {
        return false;
    }
    let typ = cur.type_no_sentperiod();
    // NLTK adds the count of the type minus its last character (a quirk kept as is).
    let chopped = typ.char_indices().last().map_or("", |(i, _)| &typ[..i]);
    if params.abbrev_types.contains(typ) || c.get(typ) + c.get(chopped) >= ABBREV_BACKOFF {
        return false;
    }
    if next.tok.starts_with([',', ':', ';']) {
        return true;
    }
    let ctx = params.ortho(next.type_no_sentperiod());
    next.first_lower() && ctx & ortho::BEG_UC != 0 && ctx & ortho::MID_UC == 0
}

/// Pair statistics gathered after the first pass.
#[derive(Default)]
struct PairStats {
    starters: HashMap<String, usize>,
    collocations: HashMap<(String, String), usize>,
}

fn gather_pairs(tokens: &[Token<'_>], c: &Counts, params: &mut PunktParams) -> PairStats {
    let mut stats = PairStats::default();
    for w in tokens.windows(2) {
        let (t1, t2) = (&w[0], &w[1]);
        if !t1.period_final() {
            continue;
        }
        if is_rare_abbrev(t1, t2, c, params) {
            params.abbrev_types.insert(t1.type_no_period().to_string());
        }
        let ordinal_or_initial = t1.is_number() || t1.is_initial();
        if t1.sentbreak && !ordinal_or_initial && t2.is_alpha() {
            *stats.starters.entry(t2.typ.clone()).or_default() += 1;
        }
        if t1.sentbreak && ordinal_or_initial && t1.is_non_punct() && t2.is_non_punct() {
            let key = (
                t1.type_no_period().to_string(),
                t2.type_no_sentperiod().to_string(),
            );
            *stats.collocations.entry(key).or_default() += 1;
        }
    }
    stats
}

fn find_sent_starters(stats: &PairStats, c: &Counts, breaks: usize) -> HashSet<String> {
    let n = c.n as f64;
    let mut out = HashSet::new();
    for (typ, &at_break) in &stats.starters {
        let count = c.with_period(typ);
        if count < at_break {
            continue;
        }
        let ll = col_log_likelihood(breaks as f64, count as f64, at_break as f64, n);
        if ll >= SENT_STARTER && n / breaks as f64 > count as f64 / at_break as f64 {
            out.insert(typ.clone());
        }
    }
    out
}

fn find_collocations(stats: &PairStats, c: &Counts, params: &mut PunktParams) {
    let n = c.n as f64;
    for ((t1, t2), &col) in &stats.collocations {
        if params.sent_starters.contains(t2) {
            continue;
        }
        let (c1, c2) = (c.with_period(t1), c.with_period(t2));
        if c1 > 1 && c2 > 1 && 1 < col && col <= c1.min(c2) {
            let ll = col_log_likelihood(c1 as f64, c2 as f64, col as f64, n);
            if ll >= COLLOCATION && n / c1 as f64 > c2 as f64 / col as f64 {
                params.add_collocation(t1.clone(), t2.clone());
            }
        }
    }
}

impl PunktParams {
    /// Learns parameters from `text` alone, like NLTK's `PunktTrainer(text)` with default
    /// hyper-parameters (`PunktSentenceTokenizer(text)` in NLTK). Small texts give weak
    /// parameters; prefer the English model for general use.
    pub fn train(text: &str) -> Self {
        let mut tokens = tokenize_words(text);
        let counts = Counts::new(&tokens);
        let mut params = PunktParams {
            abbrev_types: find_abbrevs(&counts),
            ..PunktParams::default()
        };
        for t in tokens.iter_mut() {
            first_pass(t, &params);
        }
        orthography(&tokens, &mut params);
        let breaks = tokens.iter().filter(|t| t.sentbreak).count();
        let stats = gather_pairs(&tokens, &counts, &mut params);
        params.sent_starters = find_sent_starters(&stats, &counts, breaks);
        find_collocations(&stats, &counts, &mut params);
        params
    }
}
