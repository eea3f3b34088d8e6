//! Where each token's text ends in the input: what inserting tokens after a sentence needs.

use super::{Engine, Tokenizer, bpe, spm};
use crate::{Result, TokenId};

impl Tokenizer {
    /// Ids of `text` (as [`Tokenizer::encode`] without special-token parsing), each with the
    /// byte offset in `text` where its text ends. Offsets never decrease and never pass
    /// `text.len()`; a token that straddles a boundary ends after it.
    pub fn encode_with_offsets(&self, text: &str) -> Result<Vec<(TokenId, usize)>> {
        let (vocab, strip_first, normal): (_, bool, fn(&str, &mut Vec<u8>)) = match &self.engine {
            Engine::Hf(hf) => return hf.encode_with_offsets(text),
            Engine::Spm(vocab, spm) => (vocab, spm.add_space_prefix(), spm::unescape_whitespace),
            Engine::Bpe(vocab, _) => (vocab, false, bpe::decode_byte_level),
        };
        let ids = self.encode(text, false)?;
        let mut end = 0usize;
        let mut out = Vec::with_capacity(ids.len());
        for (i, &id) in ids.iter().enumerate() {
            let bytes = vocab.decode_bytes(&[id], false, strip_first && i == 0, normal)?;
            end = (end + bytes.len()).min(text.len());
            out.push((id, end));
        }
        Ok(out)
    }
}
