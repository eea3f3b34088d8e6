//! Vocabulary types shared by every module.

/// Id of a vocabulary entry.
pub type TokenId = u32;

/// Absolute position of a token in the stream: what RoPE sees by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos(pub u32);

/// The paper's "sequence": tokens up to and including the anchor that closes it. Segment ids
/// count the anchors before a token, so they start at 0 and grow by one after every anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SegmentId(pub u32);

/// What a token is to the visibility rule (spec §2.3).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An ordinary token.
    #[default]
    Token,
    /// A token that closes its segment (`.` for AnLLM-EP, `<AC>` for AnLLM-AC).
    Anchor,
    /// Padding: never visible, never sees anything.
    Pad,
}
