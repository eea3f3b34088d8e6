//! A GGUF vocabulary: its pieces and their llama.cpp token types, the split of text on special
//! pieces, and the pieces joined back into text.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::{Content, Value};

use super::gguf::{as_i64, meta_array};
use crate::{Error, Result, TokenId};

/// GGUF `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TokenKind {
    Undefined,
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenKind {
    fn from_gguf(v: i64) -> Self {
        match v {
            1 => Self::Normal,
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => Self::Undefined,
        }
    }
}

/// A GGUF vocabulary: pieces, their kinds and the reverse index.
#[derive(Debug)]
pub(super) struct Vocab {
    pub(super) pieces: Vec<String>,
    kinds: Vec<TokenKind>,
    pub(super) index: HashMap<String, TokenId>,
    /// Control, user-defined and unknown ids, longest text first (llama.cpp's special cache).
    specials_longest_first: Vec<TokenId>,
}

/// A piece of input after matching special tokens.
pub(super) enum Fragment<'a> {
    Text(&'a str),
    Token(TokenId),
}

impl Vocab {
    pub(super) fn from_gguf(content: &Content) -> Result<Self> {
        let pieces = meta_array(content, "tokenizer.ggml.tokens")?
            .ok_or_else(|| Error::tokenizer("GGUF has no `tokenizer.ggml.tokens`"))?
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(Error::tokenizer(format!(
                    "`tokenizer.ggml.tokens` holds a non-string {other:?}"
                ))),
            })
            .collect::<Result<Vec<_>>>()?;
        if u32::try_from(pieces.len()).is_err() {
            return Err(Error::tokenizer("vocabulary larger than u32 ids"));
        }
        let kinds = match meta_array(content, "tokenizer.ggml.token_type")? {
            Some(types) if types.len() == pieces.len() => types
                .iter()
                .map(|v| as_i64(v).map(TokenKind::from_gguf))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| Error::tokenizer("`tokenizer.ggml.token_type` is not numeric"))?,
            Some(types) => {
                return Err(Error::tokenizer(format!(
                    "{} token types for {} tokens",
                    types.len(),
                    pieces.len()
                )));
            }
            None => vec![TokenKind::Normal; pieces.len()],
        };
        let mut index = HashMap::with_capacity(pieces.len());
        for (id, piece) in (0..).zip(&pieces) {
            index.insert(piece.clone(), id); // a later duplicate wins, as in llama.cpp
        }
        let mut specials_longest_first: Vec<TokenId> = (0..)
            .zip(&kinds)
            .filter(|(_, k)| {
                matches!(
                    k,
                    TokenKind::Control | TokenKind::UserDefined | TokenKind::Unknown
                )
            })
            .map(|(id, _)| id)
            .collect();
        specials_longest_first.sort_by_key(|&id| std::cmp::Reverse(pieces[id as usize].len()));
        Ok(Self {
            pieces,
            kinds,
            index,
            specials_longest_first,
        })
    }

    pub(super) fn kind(&self, id: TokenId) -> TokenKind {
        self.kinds
            .get(id as usize)
            .copied()
            .unwrap_or(TokenKind::Undefined)
    }

    /// Splits `text` on the special tokens' strings as llama.cpp's `tokenizer_st_partition`:
    /// longest token first, each over the raw fragments left so far. User-defined tokens are
    /// always matched, control and unknown ones only with `parse_special`.
    pub(super) fn partition<'a>(&self, text: &'a str, parse_special: bool) -> Vec<Fragment<'a>> {
        let mut fragments = if text.is_empty() {
            Vec::new()
        } else {
            vec![Fragment::Text(text)]
        };
        for &id in &self.specials_longest_first {
            if !parse_special && self.kind(id) != TokenKind::UserDefined {
                continue;
            }
            let piece = self.pieces[id as usize].as_str();
            let found = fragments
                .iter()
                .any(|f| matches!(f, Fragment::Text(t) if t.contains(piece)));
            if piece.is_empty() || !found {
                continue;
            }
            let mut next = Vec::with_capacity(fragments.len() + 2);
            for fragment in fragments {
                let Fragment::Text(mut rest) = fragment else {
                    next.push(fragment);
                    continue;
                };
                while let Some(at) = rest.find(piece) {
                    if at > 0 {
                        next.push(Fragment::Text(&rest[..at]));
                    }
                    next.push(Fragment::Token(id));
                    rest = &rest[at + piece.len()..];
                }
                if !rest.is_empty() {
                    next.push(Fragment::Text(rest));
                }
            }
            fragments = next;
        }
        fragments
    }

    /// llama.cpp's `token_to_piece` over `ids`, with `normal` writing a normal piece's bytes.
    pub(super) fn decode(
        &self,
        ids: &[TokenId],
        skip_special: bool,
        strip_first_space: bool,
        normal: impl Fn(&str, &mut Vec<u8>),
    ) -> Result<String> {
        let bytes = self.decode_bytes(ids, skip_special, strip_first_space, normal)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The bytes [`Vocab::decode`] joins into text.
    pub(super) fn decode_bytes(
        &self,
        ids: &[TokenId],
        skip_special: bool,
        strip_first_space: bool,
        normal: impl Fn(&str, &mut Vec<u8>),
    ) -> Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        let mut strip = strip_first_space;
        for &id in ids {
            let piece = self.pieces.get(id as usize).ok_or_else(|| {
                Error::tokenizer(format!("token id {id} is outside the vocabulary"))
            })?;
            let start = bytes.len();
            match self.kind(id) {
                TokenKind::Normal => normal(piece, &mut bytes),
                TokenKind::Byte => match byte_piece_value(piece) {
                    Some(b) => bytes.push(b),
                    None => normal(piece, &mut bytes),
                },
                TokenKind::UserDefined => bytes.extend_from_slice(piece.as_bytes()),
                TokenKind::Control | TokenKind::Unknown if !skip_special => {
                    bytes.extend_from_slice(piece.as_bytes());
                }
                _ => continue,
            }
            if std::mem::take(&mut strip) && bytes.get(start) == Some(&b' ') {
                bytes.remove(start);
            }
        }
        Ok(bytes)
    }
}

/// The byte of a `<0xXX>` piece.
fn byte_piece_value(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}
