//! Chat templates: the Jinja template from the model's metadata, rendered with minijinja the
//! way Hugging Face's `apply_chat_template` does.

use minijinja::{Environment, context};
use serde::{Deserialize, Serialize};

use crate::session::Session;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result, TokenId};

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// "system", "user" or "assistant".
    pub role: String,
    /// The text.
    pub content: String,
}

/// Renders `messages` with `template`, ending with the assistant's generation prompt.
pub fn apply_chat_template(
    template: &str,
    messages: &[Message],
    bos_token: &str,
    eos_token: &str,
) -> Result<String> {
    render(template, messages, true, bos_token, eos_token)
}

/// The text that continues a conversation whose token stream ends with the end-of-turn token
/// `end_of_turn` closing the assistant's last answer (the last assistant message of
/// `messages`): the template's rendering of all `messages`, with the generation prompt, from
/// just after that token. Tokenized (special tokens parsed), it is all a continued session
/// has to prefill for the new turn.
pub fn next_turn_text(
    template: &str,
    messages: &[Message],
    end_of_turn: &str,
    bos_token: &str,
    eos_token: &str,
) -> Result<String> {
    let bad = |reason: &str| Error::config("chat_template", reason);
    let last_answer = messages
        .iter()
        .rposition(|m| m.role == "assistant")
        .ok_or_else(|| bad("a next turn needs an assistant message before it"))?;
    let before = render(
        template,
        &messages[..=last_answer],
        false,
        bos_token,
        eos_token,
    )?;
    let full = render(template, messages, true, bos_token, eos_token)?;
    if !full.starts_with(&before) || end_of_turn.is_empty() {
        return Err(bad(
            "the template does not render a conversation as a prefix of its continuation",
        ));
    }
    let cut = before
        .rfind(end_of_turn)
        .ok_or_else(|| bad("the rendered answer does not end with the end-of-turn token"))?;
    Ok(full[cut + end_of_turn.len()..].to_string())
}

/// A conversation's rendering cut into pieces: `answer` is true for the text an assistant
/// wrote, up to and including the template's end-of-answer piece `terminator`, and false for
/// everything the template or the other roles wrote. The pieces concatenate to the rendering
/// of the whole conversation without the generation prompt. Training puts the loss on the
/// answer pieces only.
pub fn answer_segments(
    template: &str,
    messages: &[Message],
    terminator: &str,
    bos_token: &str,
    eos_token: &str,
) -> Result<Vec<(String, bool)>> {
    let bad = |reason: &str| Error::config("chat_template", reason);
    let mut out = Vec::new();
    let mut done = String::new();
    for (k, message) in messages.iter().enumerate() {
        if message.role != "assistant" {
            continue;
        }
        let prompt = render(template, &messages[..k], true, bos_token, eos_token)?;
        let full = render(template, &messages[..=k], false, bos_token, eos_token)?;
        if !prompt.starts_with(&done) || !full.starts_with(&prompt) {
            return Err(bad(
                "the template does not render a conversation as a prefix of its continuation",
            ));
        }
        out.push((prompt[done.len()..].to_string(), false));
        let answer = &full[prompt.len()..];
        let cut = answer
            .find(terminator)
            .filter(|_| !terminator.is_empty())
            .map_or(answer.len(), |i| i + terminator.len());
        out.push((answer[..cut].to_string(), true));
        out.push((answer[cut..].to_string(), false));
        done = full;
    }
    if out.is_empty() {
        return Err(bad("a training conversation needs an assistant message"));
    }
    // Adjacent pieces of the same kind become one.
    let mut merged: Vec<(String, bool)> = Vec::with_capacity(out.len());
    for (text, answer) in out.into_iter().filter(|(t, _)| !t.is_empty()) {
        match merged.last_mut() {
            Some((last, kind)) if *kind == answer => last.push_str(&text),
            _ => merged.push((text, answer)),
        }
    }
    Ok(merged)
}

/// Which of `candidates` (special-token pieces, e.g. the tokenizer's EOS and end-of-turn pieces)
/// the template writes right after an assistant answer: ChatML's `<|im_end|>`. A session whose
/// answer was cut off is closed with it before the next turn; `None` when the template writes
/// none of them there.
pub fn answer_terminator<'a>(
    template: &str,
    candidates: &[&'a str],
    bos_token: &str,
    eos_token: &str,
) -> Result<Option<&'a str>> {
    const MARK: &str = "\u{E000}answer\u{E000}";
    let probe = [
        Message {
            role: "user".into(),
            content: "question".into(),
        },
        Message {
            role: "assistant".into(),
            content: MARK.into(),
        },
    ];
    let text = render(template, &probe, false, bos_token, eos_token)?;
    let after = text.rfind(MARK).map_or("", |i| {
        text[i + MARK.len()..].trim_start_matches([' ', '\n'])
    });
    Ok(candidates
        .iter()
        .copied()
        .find(|c| !c.is_empty() && after.starts_with(c)))
}

/// A model's chat template with its tokenizer: renders a conversation's first turn, and the
/// tokens that continue a [`Session`] with a later turn.
#[derive(Debug, Clone, Copy)]
pub struct ChatTemplate<'t> {
    tokenizer: &'t Tokenizer,
    template: &'t str,
}

impl<'t> ChatTemplate<'t> {
    /// The chat template of `tokenizer`'s metadata; an error when the model has none.
    pub fn of(tokenizer: &'t Tokenizer) -> Result<Self> {
        let template = tokenizer.chat_template().ok_or_else(|| {
            Error::config(
                "chat_template",
                "the model has no chat template in its metadata",
            )
        })?;
        Ok(Self {
            tokenizer,
            template,
        })
    }

    /// `messages` rendered with the generation prompt (the first turn's text).
    pub fn render(&self, messages: &[Message]) -> Result<String> {
        let (bos, eos) = self.bos_eos();
        apply_chat_template(self.template, messages, bos, eos)
    }

    /// The tokens that continue `session` with the last message of `messages` (whose
    /// assistant answers are already in the stream). A cut-off answer is first closed with
    /// the template's end-of-answer token ([`answer_terminator`]), pending in the session.
    pub fn next_turn(&self, session: &mut Session, messages: &[Message]) -> Result<Vec<TokenId>> {
        let end = self.answer_terminator()?;
        if session.last_token() != Some(end) {
            session.accept(end);
        }
        let (bos, eos) = self.bos_eos();
        let end_piece = self.piece(Some(end));
        let text = next_turn_text(self.template, messages, end_piece, bos, eos)?;
        self.tokenizer.encode(&text, true)
    }

    /// The conversation cut into template text and assistant answers ([`answer_segments`]),
    /// each answer closed by [`ChatTemplate::answer_terminator`].
    pub fn answer_segments(&self, messages: &[Message]) -> Result<Vec<(String, bool)>> {
        let end = self.answer_terminator()?;
        let (bos, eos) = self.bos_eos();
        answer_segments(self.template, messages, self.piece(Some(end)), bos, eos)
    }

    /// The id of the token the template writes after an answer, among EOS and the
    /// end-of-turn tokens (SmolLM2: `<|im_end|>`, its EOS, not its "end of turn").
    pub fn answer_terminator(&self) -> Result<TokenId> {
        let specials = self.tokenizer.specials();
        let ids: Vec<TokenId> = specials.eos.iter().chain(&specials.eot).copied().collect();
        let pieces: Vec<&str> = ids.iter().map(|&id| self.piece(Some(id))).collect();
        let (bos, eos) = self.bos_eos();
        let found = answer_terminator(self.template, &pieces, bos, eos)?.ok_or_else(|| {
            Error::config(
                "chat_template",
                "writes no end-of-turn token after an answer",
            )
        })?;
        let index = pieces.iter().position(|p| *p == found).unwrap_or_default();
        Ok(ids[index])
    }

    fn piece(&self, id: Option<TokenId>) -> &'t str {
        id.and_then(|i| self.tokenizer.piece(i)).unwrap_or_default()
    }

    fn bos_eos(&self) -> (&'t str, &'t str) {
        let specials = self.tokenizer.specials();
        (self.piece(specials.bos), self.piece(specials.eos))
    }
}

fn render(
    template: &str,
    messages: &[Message],
    add_generation_prompt: bool,
    bos_token: &str,
    eos_token: &str,
) -> Result<String> {
    let mut env = Environment::new();
    minijinja_contrib::add_to_environment(&mut env);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function(
        "raise_exception",
        |msg: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                msg,
            ))
        },
    );
    let bad = |e: minijinja::Error| Error::config("chat_template", e);
    env.add_template("chat", template).map_err(bad)?;
    let tmpl = env.get_template("chat").map_err(bad)?;
    tmpl.render(context! {
        messages => messages,
        add_generation_prompt => add_generation_prompt,
        bos_token => bos_token,
        eos_token => eos_token,
    })
    .map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content | trim }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

    fn msg(role: &str, content: &str) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }

    #[test]
    fn next_turn_text_starts_right_after_the_end_of_turn_token() {
        let messages = [
            msg("user", "Hi"),
            msg("assistant", "Hello!"),
            msg("user", "Bye"),
        ];
        let text = next_turn_text(CHATML, &messages, "<|im_end|>", "", "").unwrap();
        // Hand-derived: the stream already holds "...assistant\nHello!<|im_end|>".
        assert_eq!(
            text,
            "\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn answer_segments_mark_each_answer_through_its_terminator() {
        let messages = [
            msg("user", "Hi"),
            msg("assistant", "Hello!"),
            msg("user", "Bye"),
            msg("assistant", "See you."),
        ];
        let segs = answer_segments(CHATML, &messages, "<|im_end|>", "", "").unwrap();
        // Hand-derived from the ChatML template above.
        let expected = [
            (
                "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
                false,
            ),
            ("Hello!<|im_end|>", true),
            (
                "\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n",
                false,
            ),
            ("See you.<|im_end|>", true),
            ("\n", false),
        ];
        let got: Vec<(&str, bool)> = segs.iter().map(|(t, a)| (t.as_str(), *a)).collect();
        assert_eq!(got, expected);
        let joined: String = segs.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(joined, render(CHATML, &messages, false, "", "").unwrap());
        assert!(answer_segments(CHATML, &messages[..1], "<|im_end|>", "", "").is_err());
    }

    #[test]
    fn answer_terminator_is_the_piece_after_an_answer() {
        let pieces = ["<|endoftext|>", "<|im_end|>"];
        let found = answer_terminator(CHATML, &pieces, "", "").unwrap();
        assert_eq!(found, Some("<|im_end|>"));
        let plain = "{% for m in messages %}{{ m.content }}\n{% endfor %}";
        assert_eq!(answer_terminator(plain, &pieces, "", "").unwrap(), None);
    }

    #[test]
    fn next_turn_text_without_an_answer_is_an_error() {
        let err = next_turn_text(CHATML, &[msg("user", "Hi")], "<|im_end|>", "", "");
        assert!(err.unwrap_err().to_string().contains("assistant"));
    }

    #[test]
    fn chatml_template_renders_generation_prompt() {
        let t = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content | trim }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
        let msgs = [Message {
            role: "user".into(),
            content: " Hi ".into(),
        }];
        let out = apply_chat_template(t, &msgs, "", "").unwrap();
        assert_eq!(
            out,
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }
}
