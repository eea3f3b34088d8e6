//! A two-turn chat through the library on one session: turn 2 prefills only its own tokens,
//! and the anchor-pruned cache carries the conversation.
//!
//! ```sh
//! scripts/fetch-assets.sh
//! cargo run --release -p anllm --example two_turns -- [MODEL] [--anchors none|ep]
//! ```
//! MODEL defaults to the fetched SmolLM2-135M-Instruct GGUF.

use std::path::PathBuf;
use std::sync::Arc;

use anllm::chat::{ChatTemplate, Message};
use anllm::{
    AnchorSet, AnchorSpec, Flow, GenerateRequest, Sampling, Session, SessionConfig, TokenId,
    TokenSink, WeightDtype,
};

/// Prints tokens as they come and keeps the answer's text.
struct Print(String);

impl TokenSink for Print {
    fn token(&mut self, _id: TokenId, text: &str) -> anllm::Result<Flow> {
        print!("{text}");
        self.0.push_str(text);
        Ok(Flow::Continue)
    }
}

fn message(role: &str, content: &str) -> Message {
    Message {
        role: role.into(),
        content: content.into(),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let anchored = args.windows(2).any(|w| w[0] == "--anchors" && w[1] == "ep");
    let path = match args.first().filter(|a| !a.starts_with("--")) {
        Some(p) => PathBuf::from(p),
        None => {
            let home = std::env::var_os("ANLLM_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/anllm")
                });
            home.join("models/SmolLM2-135M-Instruct.Q4_1.gguf")
        }
    };
    let model = anllm::load_model(&path, WeightDtype::Auto, &candle_core::Device::Cpu)?;
    let tok = &model.tokenizer;
    let template = ChatTemplate::of(tok)?;
    let cfg = match anchored {
        true => SessionConfig::anchored(AnchorSet::from_spec(&AnchorSpec::Ep, tok)?, 64),
        false => SessionConfig::causal(64),
    };
    let mut session = Session::new(Arc::clone(&model.llama), cfg, 512)?;
    let mut messages = Vec::new();
    let turns = [
        "Tell me a short story about a fox. Use short sentences.",
        "Now give the fox a name and tell me one more thing it did.",
    ];
    for (i, user) in turns.iter().enumerate() {
        messages.push(message("user", user));
        let prompt = match i {
            0 => tok.encode(&template.render(&messages)?, true)?,
            // Only the new turn: the session already holds the conversation so far.
            _ => template.next_turn(&mut session, &messages)?,
        };
        let req = GenerateRequest {
            prompt,
            max_tokens: 96,
            sampling: Sampling::default(),
        };
        println!("--- turn {} (user: {user})", i + 1);
        let mut answer = Print(String::new());
        let stats = anllm::generate(&mut session, tok, &req, &mut answer)?;
        let c = &stats.cache;
        println!(
            "\n[turn {}: prefilled {} tokens, {} already cached | generated {} ({:?}) | \
             KV {} entries of {} tokens seen, peak {}, C⇓ {:.1}%]",
            i + 1,
            stats.prompt_tokens,
            stats.cached_tokens,
            stats.generated_tokens,
            stats.stop_reason,
            c.entries,
            c.tokens_seen,
            c.peak_entries,
            100.0 * c.reduction
        );
        messages.push(message("assistant", &answer.0));
    }
    Ok(())
}
