//! Words of the KV tasks: the repeated "grass is green" haystack (RULER's `noise` haystack), the
//! adjective and noun lists whose pairs name the multi-key needles, and the word and sentence
//! boundaries of a real text (Agreement windows).

use rand::Rng;
use rand::rngs::StdRng;

/// The sentences of the noise haystack, repeated in this order and joined by single spaces.
pub(super) const HAYSTACK: [&str; 5] = [
    "The grass is green.",
    "The sky is blue.",
    "The sun is yellow.",
    "Here we go.",
    "There and back again.",
];

/// First halves of the multi-key keys (`{adjective}-{noun}`): 100 distinct lowercase words.
pub(super) const ADJECTIVES: [&str; 100] = [
    "fluffy", "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "kind", "lively",
    "nice", "proud", "silly", "witty", "zealous", "ancient", "bitter", "bright", "broad", "chilly",
    "clean", "clever", "cozy", "crisp", "curly", "damp", "dark", "deep", "dizzy", "dusty", "early",
    "empty", "faint", "fierce", "flat", "fresh", "frosty", "fuzzy", "giant", "glossy", "golden",
    "grand", "green", "grumpy", "hollow", "huge", "icy", "jagged", "large", "lazy", "little",
    "loud", "lucky", "mellow", "messy", "mighty", "misty", "modern", "muddy", "narrow", "noisy",
    "odd", "orange", "plain", "polite", "purple", "quick", "quiet", "rapid", "rare", "rich",
    "rocky", "rough", "round", "royal", "rusty", "salty", "scary", "shiny", "short", "silent",
    "silver", "sleepy", "slow", "small", "smooth", "soft", "sour", "spicy", "steep", "sticky",
    "stormy", "sunny", "sweet", "swift", "tall", "tame", "tiny", "vivid", "wild",
];

/// Second halves of the multi-key keys: 100 distinct lowercase words.
pub(super) const NOUNS: [&str; 100] = [
    "pancake", "apple", "badger", "balloon", "banana", "basket", "beacon", "bicycle", "blanket",
    "bottle", "bucket", "button", "cabin", "candle", "canyon", "carpet", "castle", "cactus",
    "cherry", "cloud", "comet", "cookie", "cottage", "crayon", "dolphin", "dragon", "drum",
    "eagle", "engine", "falcon", "feather", "forest", "fountain", "garden", "giraffe", "glacier",
    "guitar", "hammer", "harbor", "helmet", "island", "jacket", "kettle", "kitten", "ladder",
    "lantern", "lemon", "lizard", "magnet", "meadow", "mirror", "monkey", "mountain", "mushroom",
    "needle", "octopus", "orchard", "otter", "paddle", "parrot", "peach", "pebble", "pencil",
    "pepper", "piano", "pillow", "planet", "pocket", "pumpkin", "puzzle", "rabbit", "raccoon",
    "ribbon", "river", "rocket", "saddle", "sandal", "scarf", "shadow", "shovel", "spider",
    "sponge", "squirrel", "statue", "teapot", "tiger", "tomato", "trumpet", "tunnel", "turtle",
    "umbrella", "valley", "violin", "wagon", "walrus", "whistle", "window", "wizard", "zebra",
    "compass",
];

/// How many distinct keys there are (adjective × noun).
pub(super) const KEY_SPACE: usize = ADJECTIVES.len() * NOUNS.len();

/// A random order of distinct keys: `j ↦ (a·j + b) mod KEY_SPACE` with `a` coprime to
/// [`KEY_SPACE`], so the first [`KEY_SPACE`] keys of an order are all different.
pub(super) struct KeyOrder {
    a: usize,
    b: usize,
}

impl KeyOrder {
    /// A seeded order.
    pub(super) fn draw(rng: &mut StdRng) -> Self {
        let mut a = rng.random_range(1..KEY_SPACE);
        while gcd(a, KEY_SPACE) != 1 {
            a = rng.random_range(1..KEY_SPACE);
        }
        let b = rng.random_range(0..KEY_SPACE);
        Self { a, b }
    }

    /// Key `j` of the order: `{adjective}-{noun}`, e.g. `fluffy-pancake`.
    pub(super) fn key(&self, j: usize) -> String {
        let k = (self.a * (j % KEY_SPACE) + self.b) % KEY_SPACE;
        format!("{}-{}", ADJECTIVES[k / NOUNS.len()], NOUNS[k % NOUNS.len()])
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// How far (in bytes) an Agreement start may move forward to reach a paragraph or sentence.
pub(super) const SNAP_BYTES: usize = 1_000;

/// The largest char boundary of `text` at or before `i` (clamped to its length).
pub(super) fn floor_boundary(text: &str, i: usize) -> usize {
    let mut i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A window start at or after byte `p`: just after the first paragraph break (`\n\n`) within
/// [`SNAP_BYTES`], else after the first sentence end (`.`, `!` or `?` then whitespace) there,
/// else after the next whitespace; then past any whitespace. Position 0 stays the text start.
pub(super) fn snap_start(text: &str, p: usize) -> usize {
    let p = floor_boundary(text, p);
    if p == 0 {
        return skip_space(text, 0);
    }
    let near = &text[p..floor_boundary(text, p + SNAP_BYTES)];
    let bytes = near.as_bytes();
    let sentence = (1..bytes.len())
        .find(|&i| matches!(bytes[i - 1], b'.' | b'!' | b'?') && bytes[i].is_ascii_whitespace());
    let cut = (near.find("\n\n").map(|i| i + 2))
        .or(sentence)
        .or_else(|| text[p..].find(char::is_whitespace))
        .map_or(text.len(), |i| p + i);
    skip_space(text, cut)
}

fn skip_space(text: &str, i: usize) -> usize {
    text[i..]
        .find(|c: char| !c.is_whitespace())
        .map_or(text.len(), |k| i + k)
}

/// Byte offsets just past each whitespace-separated word of `body`; a last word running into
/// the end of `body` counts only when `body` ends the whole text (`complete`).
pub(super) fn word_ends(body: &str, complete: bool) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut in_word = false;
    for (i, c) in body.char_indices() {
        let space = c.is_whitespace();
        if space && in_word {
            ends.push(i);
        }
        in_word = !space;
    }
    if in_word && complete {
        ends.push(body.len());
    }
    ends
}
