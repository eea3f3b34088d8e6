//! A request's prompt against a session's history: the tokens to prefill.
//!
//! The whole conversation is rendered (chat template, or the text) and tokenized. When the
//! session's token stream is a prefix of those tokens, only the rest is prefilled. Generated
//! tokens are often not what the tokenizer would make of their text, so a second, text-level
//! test follows: when the session's stream, decoded with its special tokens, is a prefix of
//! the rendered text, the rest of the text is tokenized after it (what `anllm generate`'s
//! later turns do). Anything else starts the session over: never a similarity match.

use anllm::chat::ChatTemplate;
use anllm::tokenizer::Tokenizer;
use anllm::{Session, TokenId};

use super::PromptInput;
use crate::error::ApiError;

/// The tokens a request prefills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// Tokens to run now (after the session's pending tokens).
    pub new_tokens: Vec<TokenId>,
    /// Tokens of the whole conversation's prompt.
    pub prompt_tokens: usize,
    /// Of those, tokens the session had already run.
    pub cached_tokens: usize,
    /// Whether the session's history was reused (false: it started over).
    pub reused: bool,
}

/// The rendered prompt: its text (None for token input) and its token ids.
struct Rendered {
    text: Option<String>,
    ids: Vec<TokenId>,
    parse_special: bool,
}

fn render(tok: &Tokenizer, input: &PromptInput) -> Result<Rendered, ApiError> {
    match input {
        PromptInput::Chat(messages) => {
            let template =
                ChatTemplate::of(tok).map_err(|e| ApiError::invalid("messages", e.to_string()))?;
            let text = template.render(messages)?;
            let ids = tok.encode(&text, true)?;
            Ok(Rendered {
                text: Some(text),
                ids,
                parse_special: true,
            })
        }
        PromptInput::Text(text) => {
            let mut ids = tok.encode(text, false)?;
            if tok.add_bos()
                && let Some(bos) = tok.specials().bos
            {
                ids.insert(0, bos);
            }
            Ok(Rendered {
                text: Some(text.clone()),
                ids,
                parse_special: false,
            })
        }
        PromptInput::Tokens(ids) => Ok(Rendered {
            text: None,
            ids: ids.clone(),
            parse_special: false,
        }),
    }
}

/// The tokens `input` prefills on `session` (which is reset when its history does not
/// continue into the prompt).
pub fn prepare(
    session: &mut Session,
    tok: &Tokenizer,
    input: &PromptInput,
) -> Result<Prepared, ApiError> {
    let rendered = render(tok, input)?;
    if rendered.ids.is_empty() {
        return Err(ApiError::invalid(
            "prompt",
            "the prompt is empty after tokenization",
        ));
    }
    let history = session.tokens();
    let ran = history.len() - session.pending().len();
    if let Some(rest) = continuation(tok, &history, &rendered)? {
        // A prompt equal to the history leaves nothing to run unless a token is pending.
        if !rest.is_empty() || !session.pending().is_empty() {
            return Ok(Prepared {
                prompt_tokens: history.len() + rest.len(),
                new_tokens: rest,
                cached_tokens: ran,
                reused: true,
            });
        }
    }
    session.reset();
    Ok(Prepared {
        prompt_tokens: rendered.ids.len(),
        new_tokens: rendered.ids,
        cached_tokens: 0,
        reused: false,
    })
}

/// The tokens after `history` when the prompt continues it (token-level, then text-level).
fn continuation(
    tok: &Tokenizer,
    history: &[TokenId],
    rendered: &Rendered,
) -> Result<Option<Vec<TokenId>>, ApiError> {
    if history.is_empty() {
        return Ok(None);
    }
    if rendered.ids.starts_with(history) {
        return Ok(Some(rendered.ids[history.len()..].to_vec()));
    }
    let Some(text) = &rendered.text else {
        return Ok(None);
    };
    // The BOS the text prompt got is not part of its text.
    let bos = tok.specials().bos;
    let body = match (history.first(), rendered.ids.first()) {
        (Some(&h), Some(&r)) if Some(h) == bos && h == r && !rendered.parse_special => {
            &history[1..]
        }
        _ => history,
    };
    // A chat rendering spells its special tokens out; a text prompt's answer was returned
    // without them.
    let before = tok.decode(body, !rendered.parse_special)?;
    match text.strip_prefix(before.as_str()) {
        Some(rest) if !rest.is_empty() => Ok(Some(tok.encode(rest, rendered.parse_special)?)),
        _ => Ok(None),
    }
}
