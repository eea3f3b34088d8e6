//! Vocabulary types shared by every module.

/// Id of a vocabulary entry.
pub type TokenId = u32;

/// Absolute position of a token in the stream: what RoPE sees by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos(pub u32);
