//! The OpenAI wire types the server reads and writes: our own serde structs, tolerant of unknown
//! fields (clients send many we do not use), with the server's extensions (`session_id`,
//! `top_k`, `repeat_penalty`, `repeat_last_n`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `stop`: one string or a list of up to four.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StopField {
    /// `"stop": "\n"`.
    One(String),
    /// `"stop": ["\n", "User:"]`.
    Many(Vec<String>),
}

/// A chat message's content: a string, or a list of parts of which only text is supported.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// `"content": "hello"`.
    Text(String),
    /// `"content": [{"type": "text", "text": "hello"}]`.
    Parts(Vec<ContentPart>),
}

/// One part of a list content.
#[derive(Debug, Clone, Deserialize)]
pub struct ContentPart {
    /// Must be "text".
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a text part.
    #[serde(default)]
    pub text: Option<String>,
}

/// One message of a chat request.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatMessage {
    /// system, developer, user or assistant.
    pub role: String,
    /// The text; `null` is accepted for an assistant message.
    #[serde(default)]
    pub content: Option<Content>,
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    /// Send one last chunk with the usage before `[DONE]`.
    #[serde(default)]
    pub include_usage: bool,
}

/// The sampling and stopping fields shared by both endpoints.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CommonParams {
    /// The model id (must be the served one).
    pub model: Option<String>,
    /// Deprecated by OpenAI for chat, still the completions field.
    pub max_tokens: Option<i64>,
    /// Wins over `max_tokens` when both are given.
    pub max_completion_tokens: Option<i64>,
    /// 0 is greedy; default 1.
    pub temperature: Option<f64>,
    /// Nucleus threshold; default 1.
    pub top_p: Option<f64>,
    /// Extension: keep the k most likely tokens.
    pub top_k: Option<i64>,
    /// RNG seed.
    pub seed: Option<i64>,
    /// Token ids (as strings) to biases from -100 to 100, added to their logits.
    pub logit_bias: Option<std::collections::BTreeMap<String, f64>>,
    /// -2 to 2: subtracted from a token's logit per occurrence in the penalty window.
    pub frequency_penalty: Option<f64>,
    /// -2 to 2: subtracted once from the logit of every token in the penalty window.
    pub presence_penalty: Option<f64>,
    /// Extension (llama-server's `repeat_penalty`, vLLM's `repetition_penalty`): > 0, divides
    /// positive and multiplies negative logits of tokens in the penalty window; 1 is off.
    #[serde(alias = "repetition_penalty")]
    pub repeat_penalty: Option<f64>,
    /// Extension (llama-server's): the penalty window, the conversation's last N tokens
    /// (default 64; 0 turns penalties off; -1 is the whole conversation).
    pub repeat_last_n: Option<i64>,
    /// Stop strings (not returned).
    pub stop: Option<StopField>,
    /// Only 1 is supported.
    pub n: Option<i64>,
    /// Stream over SSE.
    #[serde(default)]
    pub stream: bool,
    /// SSE options.
    pub stream_options: Option<StreamOptions>,
    /// Extension: the session to continue (the `X-Session-Id` header wins).
    pub session_id: Option<String>,
    /// Extension (as vLLM's): return `prompt_token_ids` and each choice's `token_ids`.
    #[serde(default)]
    pub return_token_ids: bool,
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Shared fields.
    #[serde(flatten)]
    pub common: CommonParams,
    /// Return log-probabilities of the chosen tokens.
    #[serde(default)]
    pub logprobs: bool,
    /// How many alternatives per position (0–20; needs `logprobs`).
    pub top_logprobs: Option<i64>,
    /// Tools are not supported: a non-empty list is refused.
    pub tools: Option<Vec<Value>>,
}

/// A completions prompt: text, or token ids.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    /// One text.
    Text(String),
    /// A batch of texts (only one is supported).
    Texts(Vec<String>),
    /// Token ids.
    Tokens(Vec<i64>),
}

/// `POST /v1/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    /// The prompt.
    pub prompt: Prompt,
    /// Shared fields.
    #[serde(flatten)]
    pub common: CommonParams,
    /// Alternatives per position (0–5).
    pub logprobs: Option<i64>,
    /// Echo the prompt (unsupported when true).
    #[serde(default)]
    pub echo: bool,
    /// Text after the completion (unsupported).
    pub suffix: Option<String>,
    /// Only 1 is supported.
    pub best_of: Option<i64>,
}

/// `usage`.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Usage {
    /// Tokens of the rendered prompt.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Their sum.
    pub total_tokens: usize,
    /// The prompt tokens the session already held (not prefilled again).
    pub prompt_tokens_details: PromptDetails,
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct PromptDetails {
    /// Prompt tokens served from the session's cache.
    pub cached_tokens: usize,
}

impl Usage {
    /// Usage of a request whose prompt had `prompt` tokens, `cached` of them reused.
    pub fn new(prompt: usize, cached: usize, completion: usize) -> Self {
        Self {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            prompt_tokens_details: PromptDetails {
                cached_tokens: cached,
            },
        }
    }
}

/// One alternative of `top_logprobs` (chat).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TopLogprob {
    /// The token's text.
    pub token: String,
    /// Its log-probability.
    pub logprob: f32,
    /// The UTF-8 bytes of its text.
    pub bytes: Vec<u8>,
}

/// One entry of `logprobs.content` (chat).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TokenLogprob {
    /// The chosen token's text.
    pub token: String,
    /// Its log-probability.
    pub logprob: f32,
    /// Its UTF-8 bytes.
    pub bytes: Vec<u8>,
    /// The most likely alternatives, best first.
    pub top_logprobs: Vec<TopLogprob>,
}
