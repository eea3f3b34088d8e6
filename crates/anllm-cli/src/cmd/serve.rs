//! `anllm serve`: the OpenAI-compatible HTTP server (crate `anllm-serve`). The port is bound
//! first and `/health` answers 503 while the model loads in the background.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

use anllm::KeepWarm;
use anllm_serve::{AppState, Loaded, ServeOptions, store};

use crate::args::{CommonArgs, SessionArgs};
use crate::config;

/// `anllm serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Shared flags.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Anchors, KV policy and prefill of every session.
    #[command(flatten)]
    pub session: SessionArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port, printed on stderr).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Directory where named sessions are written after every turn and restored from, also
    /// after a restart [default: sessions live in RAM only].
    #[arg(long)]
    pub session_dir: Option<PathBuf>,
    /// MiB of K/V that stored sessions may hold in RAM; past it, sessions already on disk are
    /// dropped from RAM (least recently used first), else new requests get 429.
    #[arg(long, default_value_t = 1024)]
    pub kv_budget_mib: usize,
    /// Sessions held in RAM at most.
    #[arg(long, default_value_t = 10_000)]
    pub max_sessions: usize,
    /// Require `Authorization: Bearer KEY` (also read from $ANLLM_API_KEY).
    #[arg(long, env = "ANLLM_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Requests generating at once; more wait in the queue.
    #[arg(long, default_value_t = 8)]
    pub parallel: usize,
    /// Requests waiting for a slot before new ones get 429.
    #[arg(long, default_value_t = 256)]
    pub max_queue: usize,
    /// Largest request body, bytes.
    #[arg(long, default_value_t = 4 << 20)]
    pub max_body_bytes: usize,
    /// Seconds a request may take until its response starts (a stream may then run longer).
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Model id reported by /v1/models and expected in requests [default: the file name
    /// without extension].
    #[arg(long)]
    pub model_alias: Option<String>,
}

/// Runs the subcommand.
pub fn run(args: ServeArgs) -> Result<()> {
    if args.parallel == 0 {
        bail!("--parallel must be at least 1");
    }
    let s = &args.session;
    // --pin-prompt pins every request's new prompt tokens (ServeOptions::pin_prompts).
    if !s.pin.is_empty() || s.insert_anchors || args.common.json {
        bail!("--pin, --insert-anchors and --json do not apply to `serve`");
    }
    config::set_threads(args.common.threads)?;
    init_logging();
    let path = config::resolve_model(&args.common)?;
    let model_id = match &args.model_alias {
        Some(alias) => alias.clone(),
        None => {
            (path.file_stem()).map_or_else(|| "model".into(), |s| s.to_string_lossy().to_string())
        }
    };
    let state = AppState::new(ServeOptions {
        model_id,
        api_key: args.api_key.clone(),
        parallel: args.parallel,
        max_queue: args.max_queue,
        session_dir: args.session_dir.clone(),
        kv_budget_bytes: args.kv_budget_mib << 20,
        max_sessions: args.max_sessions,
        max_body_bytes: args.max_body_bytes,
        timeout: Duration::from_secs(args.timeout),
        pin_prompts: s.pin_prompt,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args, path, state))
}

/// Log lines on stderr at the level of `$ANLLM_LOG` (error, warn, info, debug, trace;
/// default warn; debug shows every HTTP request).
fn init_logging() {
    use tracing_subscriber::filter::LevelFilter;
    let level = std::env::var("ANLLM_LOG")
        .ok()
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::WARN);
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_max_level(level)
        .try_init();
}

async fn serve(args: ServeArgs, path: PathBuf, state: Arc<AppState>) -> Result<()> {
    let addr = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let local: SocketAddr = listener.local_addr()?;
    eprintln!(
        "anllm serve: listening on http://{local} (loading {})",
        path.display()
    );
    let loading = Arc::clone(&state);
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<anyhow::Error>();
    tokio::task::spawn_blocking(move || {
        let mut args = args;
        let started = load(&mut args, &path)
            .and_then(|loaded| loading.start(loaded).context("starting the engine"));
        match started {
            Ok(()) => eprintln!("anllm serve: ready"),
            Err(e) => {
                let _ = failed_tx.send(e);
            }
        }
    });
    let (err_tx, err_rx) = tokio::sync::oneshot::channel();
    // Stops the server when loading failed; a loader that succeeded drops its sender.
    let stop = async move {
        match failed_rx.await {
            Ok(e) => {
                let _ = err_tx.send(e);
            }
            Err(_) => std::future::pending().await,
        }
    };
    anllm_serve::serve(listener, state, stop)
        .await
        .context("serving")?;
    match err_rx.await {
        Ok(e) => Err(e),
        Err(_) => Ok(()),
    }
}

fn load(args: &mut ServeArgs, path: &std::path::Path) -> Result<Loaded> {
    let model = config::load(
        &args.common,
        &mut args.session.anchors,
        &mut args.session.anchor_window,
        &mut args.session.mask_rule,
    )?;
    // One engine thread runs every step: the pool's workers may spin through them.
    let session =
        config::session_config(&args.session, &model.tokenizer, 0)?.with_keep_warm(KeepWarm::Spin);
    let fingerprint =
        store::fingerprint(path).with_context(|| format!("fingerprinting {}", path.display()))?;
    Ok(Loaded {
        model: model.llama,
        tokenizer: model.tokenizer,
        session,
        fingerprint,
    })
}
