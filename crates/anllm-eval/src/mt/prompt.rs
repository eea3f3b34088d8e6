//! The authors' translation prompt (`applications/translation/inference_allmac.py` of
//! pangjh3/AnLLM): Stanford Alpaca's "prompt_input" template, whose instruction comes from
//! ParroT's `instruct_inf.txt` ("Translate the following sentences from [SRC] to [TGT]."), and
//! for AC models the "prompt_input_ac" variant with ` <AC> ` after the system sentence, the
//! instruction and the input, the input's sentences joined by ` <AC> `. The prompt ends with
//! `### Response:` and no newline, as theirs does.
//!
//! Few-shot demonstrations (ours; the authors ran zero-shot) are whole instruction / input /
//! response blocks between the system sentence and the item, each response followed by a blank
//! line (and ` <AC> ` for AC).

use std::ops::Range;

use anllm::sentence::SentenceSplitter;
use anllm::tokenizer::Tokenizer;
use anllm::{Error, Result, TokenId};

use super::data::Pair;

/// The `<AC>` token's text.
pub const AC: &str = "<AC>";

const SYSTEM: &str = "Below is an instruction that describes a task, paired with an input that \
                      provides further context. Write a response that appropriately completes \
                      the request.";

/// The English name of a language code, as the authors' `lang_instruction["en"]` table has them.
pub fn language_name(code: &str) -> Option<&'static str> {
    Some(match code {
        "de" => "German",
        "en" => "English",
        "ja" => "Japanese",
        "zh" => "Chinese",
        "he" => "Hebrew",
        "uk" => "Ukrainian",
        "fr" => "French",
        "es" => "Spanish",
        "cs" => "Czech",
        "ru" => "Russian",
        _ => return None,
    })
}

/// The instruction for translating from language `src` to `tgt` (codes).
pub fn instruction(src: &str, tgt: &str) -> Result<String> {
    let name = |code: &str| {
        language_name(code)
            .ok_or_else(|| Error::config("language", format!("unknown language code `{code}`")))
    };
    Ok(format!(
        "Translate the following sentences from {} to {}.",
        name(src)?,
        name(tgt)?
    ))
}

/// How the prompt marks anchors.
#[derive(Debug, Clone, Copy)]
pub enum Style<'a> {
    /// The plain template (full attention and AnLLM-EP, whose anchors are the periods).
    Plain,
    /// The AC template; the splitter cuts the input into sentences.
    Ac(&'a SentenceSplitter),
}

/// A rendered prompt and where the item's source sits in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtPrompt {
    /// The prompt text.
    pub text: String,
    /// Byte range of the item's input (the source, with its inserted `<AC>`s for AC) in `text`.
    pub source: Range<usize>,
}

/// Renders the prompt for `source` with `shots` demonstrations before it.
pub fn render(instruction: &str, source: &str, style: Style, shots: &[Pair]) -> MtPrompt {
    let sep = |text: &str| match style {
        Style::Plain => text.to_string(),
        Style::Ac(_) => format!("{text} {AC} "),
    };
    let input = |text: &str| match style {
        Style::Plain => text.trim().to_string(),
        Style::Ac(splitter) => splitter.sentences(text.trim()).join(&format!(" {AC} ")),
    };
    let mut text = format!("{}\n\n", sep(SYSTEM));
    for shot in shots {
        text.push_str(&format!(
            "### Instruction:\n{}\n\n### Input:\n{}\n\n### Response:\n{}\n\n",
            sep(instruction),
            sep(&input(&shot.source)),
            sep(shot.reference.trim()),
        ));
    }
    text.push_str(&format!(
        "### Instruction:\n{}\n\n### Input:\n",
        sep(instruction)
    ));
    let start = text.len();
    text.push_str(&input(source));
    let end = text.len();
    if let Style::Ac(_) = style {
        text.push_str(&format!(" {AC} "));
    }
    text.push_str("\n\n### Response:");
    MtPrompt {
        text,
        source: start..end,
    }
}

/// The prompt's token ids (`<AC>` parsed as its token when `parse_special`) and the token
/// positions that cover its source: every token whose text overlaps the source's bytes.
pub fn encode(
    tokenizer: &Tokenizer,
    prompt: &MtPrompt,
    parse_special: bool,
) -> Result<(Vec<TokenId>, Range<u32>)> {
    let ids = tokenizer.encode(&prompt.text, parse_special)?;
    let ends = token_ends(tokenizer, &ids, &prompt.text)?;
    let mut first = None;
    let mut last = 0;
    let mut start = 0;
    for (i, &end) in ends.iter().enumerate() {
        if start < prompt.source.end && end > prompt.source.start {
            first.get_or_insert(i);
            last = i + 1;
        }
        start = end;
    }
    let first = first.ok_or_else(|| Error::config("source", "is empty"))?;
    Ok((ids, first as u32..last as u32))
}

/// Where each token's text ends in `text` (bytes), from the decoded prefixes; fails unless
/// the ids decode back to `text` exactly.
fn token_ends(tokenizer: &Tokenizer, ids: &[TokenId], text: &str) -> Result<Vec<usize>> {
    let whole = tokenizer.decode(ids, false)?;
    if whole != text {
        return Err(Error::config(
            "prompt",
            "the tokenizer does not decode the prompt back to its text, so the source's \
             tokens cannot be located",
        ));
    }
    (1..=ids.len())
        .map(|n| Ok(tokenizer.decode(&ids[..n], false)?.len().min(text.len())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_shot_plain_prompt_is_the_authors_template() {
        let ins = instruction("de", "en").unwrap();
        let p = render(&ins, " Guten Morgen. ", Style::Plain, &[]);
        let expected = "Below is an instruction that describes a task, paired with an input that \
            provides further context. Write a response that appropriately completes the \
            request.\n\n### Instruction:\nTranslate the following sentences from German to \
            English.\n\n### Input:\nGuten Morgen.\n\n### Response:";
        assert_eq!(p.text, expected);
        assert_eq!(&p.text[p.source.clone()], "Guten Morgen.");
    }

    #[test]
    fn ac_prompt_inserts_anchors_as_the_authors_did() {
        let splitter = SentenceSplitter::new(anllm::sentence::PunktParams::english_minimal());
        let ins = instruction("de", "en").unwrap();
        let p = render(&ins, "Es regnet. Wir bleiben.", Style::Ac(&splitter), &[]);
        let expected = "Below is an instruction that describes a task, paired with an input that \
            provides further context. Write a response that appropriately completes the \
            request. <AC> \n\n### Instruction:\nTranslate the following sentences from German \
            to English. <AC> \n\n### Input:\nEs regnet. <AC> Wir bleiben. <AC> \n\n\
            ### Response:";
        assert_eq!(p.text, expected);
        assert_eq!(&p.text[p.source.clone()], "Es regnet. <AC> Wir bleiben.");
    }

    #[test]
    fn shots_come_before_the_item() {
        let ins = instruction("de", "en").unwrap();
        let shot = Pair {
            source: "Ja.".into(),
            reference: "Yes.".into(),
        };
        let p = render(&ins, "Nein.", Style::Plain, &[shot]);
        let tail = "### Instruction:\nTranslate the following sentences from German to \
            English.\n\n### Input:\nJa.\n\n### Response:\nYes.\n\n### Instruction:\nTranslate \
            the following sentences from German to English.\n\n### Input:\nNein.\n\n\
            ### Response:";
        assert!(p.text.ends_with(tail), "{}", p.text);
        assert_eq!(&p.text[p.source.clone()], "Nein.");
    }

    #[test]
    fn unknown_language_is_an_error() {
        assert!(instruction("de", "xx").is_err());
    }
}
