//! Trailing-row attention statistics, key norms and the one-shot compression of a prefilled
//! session (`Session::fork_with_policy` + `Session::compress`), on the tiny seeded model.
//! Oracles: the same token decoded on its own (a causal step's last row is that token's
//! attention), the cache's own K tensors read back, and a session of the policy itself run
//! over the prompt as one step.

use std::sync::{Arc, Mutex};

use anllm::policy::{Budget, Eviction, KvPolicy, Observation, PolicyConfig};
use anllm::testutil::tiny_model;
use anllm::{AttentionStats, OutputRows, Session, SessionConfig, TokenId};

fn prompt() -> Vec<TokenId> {
    (0..24u32).map(|i| 20 + (i * 53) % 300).collect()
}

/// The attention statistics and key norms a step showed its policy.
type Seen = (AttentionStats, Vec<f32>);

/// Keeps everything and records the statistics and key norms of the last step.
#[derive(Debug, Clone, Default)]
struct Record {
    rows: Option<usize>,
    norms: bool,
    last: Arc<Mutex<Option<Seen>>>,
}

impl KvPolicy for Record {
    fn name(&self) -> &'static str {
        "record"
    }
    fn plan(&mut self, obs: &Observation<'_>) -> Eviction {
        let stats = obs.attention.cloned().unwrap_or_default();
        let norms = obs
            .key_norms
            .map(|k| k.per_cell().to_vec())
            .unwrap_or_default();
        *self.last.lock().unwrap() = Some((stats, norms));
        Eviction::default()
    }
    fn fork(&self) -> Box<dyn KvPolicy> {
        Box::new(self.clone())
    }
    fn needs_attention(&self) -> bool {
        true
    }
    fn attention_rows(&self) -> Option<usize> {
        self.rows
    }
    fn needs_key_norms(&self) -> bool {
        self.norms
    }
}

/// A causal session with chunks of `chunk` tokens under `policy`.
fn session(policy: Box<dyn KvPolicy>, chunk: usize) -> Session {
    let llama = Arc::clone(&tiny_model().llama);
    Session::with_policy(llama, SessionConfig::causal(chunk), policy, 32).unwrap()
}

fn recorded(r: &Record) -> Seen {
    r.last.lock().unwrap().clone().unwrap()
}

#[test]
fn the_last_row_of_a_chunk_attends_like_that_token_decoded_alone() {
    let p = prompt();
    let last_row = Record {
        rows: Some(1),
        ..Default::default()
    };
    let mut chunked = session(Box::new(last_row.clone()), 64);
    chunked.forward(&p, OutputRows::Last).unwrap();
    let alone = Record::default();
    let mut decoded = session(Box::new(alone.clone()), 64);
    decoded.forward(&p[..23], OutputRows::Last).unwrap();
    decoded.forward(&p[23..], OutputRows::Last).unwrap();
    let ((a, _), (b, _)) = (recorded(&last_row), recorded(&alone));
    assert_eq!((a.queries(), b.queries()), (1, 1));
    for l in 0..a.num_layers() {
        let (x, y) = (a.layer(l).unwrap(), b.layer(l).unwrap());
        assert_eq!(x.len(), 24);
        for (u, v) in x.iter().zip(y) {
            assert!((u - v).abs() < 1e-5, "layer {l}: {u} vs {v}");
        }
    }
    // A window wider than the step counts every row: mass = rows × heads per layer.
    let wide = Record {
        rows: Some(1000),
        ..Default::default()
    };
    session(Box::new(wide.clone()), 64)
        .forward(&p[..5], OutputRows::Last)
        .unwrap();
    let (w, _) = recorded(&wide);
    assert_eq!(w.queries(), 5);
    let sum: f32 = w.layer(0).unwrap().iter().sum();
    assert!((sum - (5 * w.heads()) as f32).abs() < 1e-3);
}

#[test]
fn key_norms_are_the_mean_l2_norm_of_the_cached_keys() {
    let norms = Record {
        norms: true,
        ..Default::default()
    };
    let mut s = session(Box::new(norms.clone()), 64);
    s.forward(&prompt(), OutputRows::Last).unwrap();
    let (_, got) = recorded(&norms);
    // Oracle: the cached keys read back, norm per head, mean over layers × heads.
    let cfg = s.model().config();
    let (layers, heads) = (cfg.num_hidden_layers, cfg.kv_heads());
    let views = s.cache().layer_views().unwrap();
    assert_eq!(views.len(), layers);
    let mut want = vec![0.0f32; 24];
    for (k, _) in &views {
        let k: Vec<Vec<Vec<f32>>> = k.to_vec3().unwrap();
        for head in &k {
            for (slot, key) in head.iter().enumerate() {
                want[slot] += key.iter().map(|x| x * x).sum::<f32>().sqrt();
            }
        }
    }
    for (g, w) in got.iter().zip(&want) {
        let w = w / (layers * heads) as f32;
        assert!((g - w).abs() < 1e-5 * w.max(1.0), "{g} vs {w}");
    }
}

#[test]
fn one_shot_compression_after_a_prefill_equals_the_policy_run_as_one_step() {
    let p = prompt();
    for config in [
        PolicyConfig::Tova {
            budget: Budget::Entries(7),
        },
        PolicyConfig::Snapkv {
            budget: Budget::Entries(9),
            window: 3,
        },
        PolicyConfig::H2o {
            budget: Budget::Entries(8),
            recent: 2,
        },
        PolicyConfig::Knorm {
            budget: Budget::Entries(6),
        },
        PolicyConfig::Streaming {
            sinks: 2,
            window: 5,
        },
    ] {
        let policy = config.build();
        // The policy itself over the prompt as one step.
        let mut direct = session(config.build(), 64);
        direct.forward(&p, OutputRows::Last).unwrap();
        // A full prefill recording what the policy asks for, then a one-shot compression.
        let record = Record {
            rows: policy.attention_rows(),
            norms: policy.needs_key_norms(),
            ..Default::default()
        };
        let mut base = session(Box::new(record.clone()), 64);
        base.forward(&p, OutputRows::Last).unwrap();
        let (stats, _) = recorded(&record);
        let mut fork = base.fork_with_policy(config.build(), config).unwrap();
        let stats = policy.needs_attention().then_some(&stats);
        fork.compress(stats).unwrap();
        let pos = |s: &Session| -> Vec<u32> {
            s.cache()
                .cells()
                .as_slice()
                .iter()
                .map(|c| c.pos.0)
                .collect()
        };
        assert_eq!(pos(&fork), pos(&direct), "{config:?}");
        assert_eq!(fork.config().policy, config);
        assert_eq!(base.cache().len(), p.len(), "the base keeps its cache");
        // The compressed fork continues like the direct session (same cache, same policy).
        let a = fork.forward(&[77], OutputRows::Last).unwrap();
        let b = direct.forward(&[77], OutputRows::Last).unwrap();
        let d = (a - b).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-5, "{config:?}");
    }
}
