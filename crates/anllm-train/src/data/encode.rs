//! Tokenizing documents, with `<AC>` inserted for AnLLM-AC (spec §1.2, §1.3, §4.2).

use anllm::anchor::insert::{FinalSentence, insert_after_sentences, insert_at_ends};
use anllm::anchor::{AC_PIECE, AnchorSpec};
use anllm::chat::{ChatTemplate, Message};
use anllm::sentence::SentenceSplitter;
use anllm::tokenizer::Tokenizer;
use anllm::{Error, Result, TokenId};

use super::Document;

/// What the data pipeline inserts for the model's anchors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnchorData {
    /// No anchors (full-attention baseline): the text as is.
    #[default]
    None,
    /// AnLLM-EP: the anchors are periods already in the text; nothing is inserted (spec §1.2).
    Ep,
    /// AnLLM-AC: the `<AC>` token `ac` is inserted after sentences (spec §1.3).
    Ac {
        /// Id of `<AC>`.
        ac: TokenId,
    },
}

impl AnchorData {
    /// The data side of an anchor spec: [`AnchorSpec::Ac`] needs `<AC>` in `tokenizer`; every
    /// punctuation spec (`ep`, `ep-sentence`, `ep-nodigit`, ids) inserts nothing.
    pub fn from_spec(spec: &AnchorSpec, tokenizer: &Tokenizer) -> Result<Self> {
        Ok(match spec {
            AnchorSpec::None => Self::None,
            AnchorSpec::Ep
            | AnchorSpec::EpSentence
            | AnchorSpec::EpNoDigit
            | AnchorSpec::EpList
            | AnchorSpec::Ids(_) => Self::Ep,
            AnchorSpec::Ac => Self::Ac {
                ac: tokenizer.token_id(AC_PIECE).ok_or_else(|| {
                    Error::config(
                        "anchors",
                        format!("`ac` needs a `{AC_PIECE}` token in the vocabulary"),
                    )
                })?,
            },
        })
    }
}

/// A tokenized document: ids and, per id, whether it is a prediction target. The first token
/// is never a target (nothing before it predicts it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenizedDoc {
    /// Token ids (BOS first when the tokenizer adds one).
    pub tokens: Vec<TokenId>,
    /// `true` where the token is a prediction target.
    pub loss_mask: Vec<bool>,
    /// Per token, whether it is pinned: every later token of the document sees it, as
    /// `generate --pin-prompt` keeps a prompt's KV (a chat's prompts under `train
    /// --pin-prompts`). Empty: none is.
    pub pinned: Vec<bool>,
}

impl TokenizedDoc {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Number of prediction targets.
    pub fn target_count(&self) -> usize {
        self.loss_mask.iter().filter(|&&t| t).count()
    }

    /// Pins the prompts: every token that is not a target. For a chat, the rendered template
    /// but the answers: the first prompt up to its assistant header, as `generate --chat
    /// --pin-prompt` pins it, and each later turn's new tokens, as `serve --pin-prompt` does.
    pub fn pin_prompt(&mut self) {
        self.pinned = self.loss_mask.iter().map(|&t| !t).collect();
    }

    /// Whether token `i` is pinned.
    pub fn is_pinned(&self, i: usize) -> bool {
        self.pinned.get(i).copied().unwrap_or(false)
    }

    fn push(&mut self, tokens: &[TokenId], target: bool) {
        self.tokens.extend_from_slice(tokens);
        self.loss_mask
            .extend(std::iter::repeat_n(target, tokens.len()));
    }
}

/// Turns [`Document`]s into [`TokenizedDoc`]s for one tokenizer and anchor choice.
///
/// Layout (spec §4.1, §4.2): `BOS` (when [`Tokenizer::add_bos`]) + text tokens, no EOS, for
/// [`Document::Text`]; `BOS` + prompt + response + `EOS` for [`Document::Instruction`], the
/// targets being the response and EOS only. For AC, an `<AC>` follows every sentence of the
/// text, and of the prompt and of the response separately (the authors' `add_ac` treats the
/// `prefix` column like the text, spec §1.3); the last sentence of each part gets one only
/// with [`FinalSentence::Anchored`].
#[derive(Debug, Clone)]
pub struct Encoder<'a> {
    tokenizer: &'a Tokenizer,
    anchors: AnchorData,
    splitter: Option<&'a SentenceSplitter>,
    final_sentence: FinalSentence,
}

impl<'a> Encoder<'a> {
    /// An encoder; `splitter` is required for [`AnchorData::Ac`] (e.g.
    /// [`anllm::sentence::load_english`]) and ignored otherwise. The final sentence is
    /// [`FinalSentence::Open`], as in the authors' data (see [`Encoder::with_final_sentence`]).
    pub fn new(
        tokenizer: &'a Tokenizer,
        anchors: AnchorData,
        splitter: Option<&'a SentenceSplitter>,
    ) -> Result<Self> {
        if matches!(anchors, AnchorData::Ac { .. }) && splitter.is_none() {
            return Err(Error::config(
                "anchors",
                "AC data needs a sentence splitter (punkt/english.json)",
            ));
        }
        Ok(Self {
            tokenizer,
            anchors,
            splitter,
            final_sentence: FinalSentence::Open,
        })
    }

    /// Whether the last sentence of a text (or of a prompt or response) gets an `<AC>` too.
    /// The default, [`FinalSentence::Open`], is what the authors' `add_ac` produces: it joins
    /// the sentences with `<AC>`, so none follows the last one (spec §1.3, §9.7).
    pub fn with_final_sentence(mut self, last: FinalSentence) -> Self {
        self.final_sentence = last;
        self
    }

    /// The tokens and targets of `doc`.
    pub fn encode(&self, doc: &Document) -> Result<TokenizedDoc> {
        let mut out = TokenizedDoc::default();
        let bos = match (self.tokenizer.add_bos(), self.tokenizer.specials().bos) {
            (true, Some(bos)) => vec![bos],
            _ => Vec::new(),
        };
        match doc {
            Document::Chat { messages, cut } => out = self.encode_chat(messages, *cut)?,
            Document::Text(text) => {
                out.push(&bos, false);
                out.push(&self.text_tokens(text)?, true);
            }
            Document::Instruction { prompt, response } => {
                let eos =
                    self.tokenizer.specials().eos.ok_or_else(|| {
                        Error::config("eos", "instruction data needs an EOS token")
                    })?;
                let (prompt, response) = self.instruction_tokens(prompt, response)?;
                out.push(&bos, false);
                out.push(&prompt, false);
                out.push(&response, true);
                out.push(&[eos], true);
            }
        }
        if let Some(first) = out.loss_mask.first_mut() {
            *first = false;
        }
        Ok(out)
    }

    /// A conversation as `generate --chat` sees it: the template's rendering (no BOS of our
    /// own: the template writes what the model expects), special tokens parsed, the targets
    /// being the assistant answers and the end-of-answer token after each, but after the last
    /// answer when it was `cut`.
    fn encode_chat(&self, messages: &[Message], cut: bool) -> Result<TokenizedDoc> {
        if matches!(self.anchors, AnchorData::Ac { .. }) {
            return Err(Error::unsupported(
                "chat data with `<AC>` anchors (use ep, or render the chats as text)",
            ));
        }
        let mut out = TokenizedDoc::default();
        let template = ChatTemplate::of(self.tokenizer)?;
        for (text, answer) in template.answer_segments(messages)? {
            out.push(&self.tokenizer.encode(&text, true)?, answer);
        }
        if cut {
            // The last target is the end-of-turn token that closes the last answer.
            let last = out.loss_mask.iter().rposition(|&t| t);
            let eot = template.answer_terminator()?;
            if let Some(i) = last.filter(|&i| out.tokens[i] == eot) {
                out.loss_mask[i] = false;
            }
        }
        Ok(out)
    }

    fn text_tokens(&self, text: &str) -> Result<Vec<TokenId>> {
        match (self.anchors, self.splitter) {
            (AnchorData::Ac { ac }, Some(splitter)) => {
                let spans = splitter.sentence_spans(text);
                insert_after_sentences(self.tokenizer, text, &spans, ac, self.final_sentence)
            }
            _ => self.tokenizer.encode(text, false),
        }
    }

    /// Prompt and response tokens of `prompt + response`, tokenized as one text (so the ids
    /// are those the model sees at inference); a token holding text of both parts belongs to
    /// the response.
    fn instruction_tokens(
        &self,
        prompt: &str,
        response: &str,
    ) -> Result<(Vec<TokenId>, Vec<TokenId>)> {
        let tokens = self
            .tokenizer
            .encode_with_offsets(&format!("{prompt}{response}"))?;
        let split = tokens.partition_point(|&(_, end)| end <= prompt.len());
        let (head, tail) = tokens.split_at(split);
        Ok(match (self.anchors, self.splitter) {
            (AnchorData::Ac { ac }, Some(splitter)) => (
                insert_at_ends(head, self.anchor_ends(splitter, prompt, 0), ac),
                insert_at_ends(tail, self.anchor_ends(splitter, response, prompt.len()), ac),
            ),
            _ => (ids(head), ids(tail)),
        })
    }

    /// Byte offsets (shifted by `offset`) after which an anchor goes in `text`.
    fn anchor_ends(&self, splitter: &SentenceSplitter, text: &str, offset: usize) -> Vec<usize> {
        let spans = splitter.sentence_spans(text);
        let keep = match self.final_sentence {
            FinalSentence::Open => spans.len().saturating_sub(1),
            FinalSentence::Anchored => spans.len(),
        };
        spans[..keep].iter().map(|s| s.end + offset).collect()
    }
}

fn ids(tokens: &[(TokenId, usize)]) -> Vec<TokenId> {
    tokens.iter().map(|&(id, _)| id).collect()
}
