//! `anllm inspect`: what a model is.

use anyhow::Result;

use crate::args::{InspectArgs, MaskRuleArg};
use crate::config;

/// Runs the subcommand.
pub fn run(args: InspectArgs) -> Result<()> {
    config::set_threads(args.common.threads)?;
    let model = config::load_with(&args.common, "none", 0, MaskRuleArg::Ansan)?;
    let cfg = model.llama.config();
    let tok = &model.tokenizer;
    let sp = tok.specials();
    let name = |id: Option<u32>| id.map(|i| format!("{i} {:?}", tok.piece(i).unwrap_or("?")));
    let json = serde_json::json!({
        "path": model.info.path,
        "format": model.info.format,
        "architecture": model.info.architecture,
        "config": cfg,
        "head_dim": cfg.head_dim(),
        "kv_heads": cfg.kv_heads(),
        "parameters": cfg.parameter_count(),
        "storage": model.info.storage.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        "compute": model.info.compute,
        "rope_style": model.info.rope_style,
        "trained_anchors": model.info.trained_anchors,
        "default_anchors": model.info.default_anchors,
        "tokenizer": tok.kind(),
        "vocab_size": tok.vocab_size(),
        "add_bos": tok.add_bos(),
        "special_tokens": {
            "bos": name(sp.bos), "eos": name(sp.eos), "unk": name(sp.unk), "pad": name(sp.pad),
            "end_of_turn": sp.eot.iter().map(|&i| name(Some(i))).collect::<Vec<_>>(),
        },
        "chat_template": tok.chat_template().is_some(),
        "kv_bytes_per_token": model.llama.new_cache(1)?.bytes_per_entry(),
        "kv_dtype": model.llama.kv_dtype().name(),
    });
    if args.common.json {
        println!("{json}");
        return Ok(());
    }
    println!("path:          {}", model.info.path.display());
    println!(
        "format:        {} ({})",
        model.info.format, model.info.architecture
    );
    println!(
        "sizes:         {} layers, hidden {}, ffn {}, {} heads / {} kv heads, head_dim {}",
        cfg.num_hidden_layers,
        cfg.hidden_size,
        cfg.intermediate_size,
        cfg.num_attention_heads,
        cfg.kv_heads(),
        cfg.head_dim()
    );
    println!(
        "context:       {} (rope_theta {}, {} rope)",
        cfg.max_position_embeddings, cfg.rope_theta, model.info.rope_style
    );
    println!("parameters:    {}", cfg.parameter_count());
    let storage: Vec<String> = model
        .info
        .storage
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!("stored as:     {}", storage.join(" "));
    println!("compute:       {}", model.info.compute);
    println!("tied lm_head:  {}", cfg.tie_word_embeddings);
    if let Some(anchors) = &model.info.trained_anchors {
        match &model.info.default_anchors {
            Some(default) => {
                println!("trained with:  --anchors {anchors}");
                println!("runs with:     --anchors {default} (by default)");
            }
            None => println!("trained with:  --anchors {anchors} (run it with the same)"),
        }
    }
    println!(
        "tokenizer:     {} with {} tokens (add_bos: {})",
        tok.kind(),
        tok.vocab_size(),
        tok.add_bos()
    );
    println!("special:       {}", json["special_tokens"]);
    println!(
        "chat template: {}",
        if tok.chat_template().is_some() {
            "yes"
        } else {
            "no"
        }
    );
    println!(
        "KV bytes/token:{} ({})",
        json["kv_bytes_per_token"],
        model.llama.kv_dtype().name()
    );
    Ok(())
}
