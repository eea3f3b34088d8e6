//! A session on disk: [`Session::save`] writes a directory that [`Session::restore`] turns back
//! into a session that continues exactly where the saved one stopped (same cells, K/V, history,
//! pending tokens and counters), so a server can keep conversations across restarts.
//!
//! Layout of the directory: `session.json` (format version, the model's config, the session's
//! config, cells, history, pending tokens, peak) and `kv.safetensors` (`k.{layer}` /
//! `v.{layer}`, `[kv_heads, entries, head_dim]` in the cache's dtype: only the kept entries, so
//! an anchored session's file is as small as its pruned cache). A session whose layers or KV
//! heads hold different entries (`tova_layer`, `snapkv_head`, `knorm_head`) also saves its
//! lanes: per layer and KV head, the cells that head holds; layer `l`'s tensors then hold
//! that layer's entries. Written whole into `DIR.tmp`, then the old
//! `DIR` is renamed to `DIR.old` and `DIR.tmp` to `DIR`: a crash never leaves a half-written
//! `DIR` (between the two renames, the last complete state is `DIR.old`).
//!
//! Limits: the model is recognised by its config only (the same shape with other weights is
//! not detected); a policy's private state (H2O's accumulated attention, TOVA's last scores)
//! is not saved: the restored session starts its policy fresh from the saved `PolicyConfig`.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Session, SessionConfig};
use crate::anchor::AnchorSet;
use crate::cache::{Cell, Cells, KvCache, Lanes};
use crate::config::LlamaConfig;
use crate::mask::MaskRule;
use crate::policy::PolicyConfig;
use crate::session::PositionMode;
use crate::threads::KeepWarm;
use crate::token::{Pos, Role, SegmentId};
use crate::{Error, Llama, Result, TokenId};

const FORMAT: u32 = 1;
const STATE_FILE: &str = "session.json";
const KV_FILE: &str = "kv.safetensors";

#[derive(Serialize, Deserialize)]
struct Snapshot {
    format: u32,
    model: LlamaConfig,
    config: ConfigSnapshot,
    /// `[token, pos, rope, segment, role, pinned]` per cell, in slot order.
    cells: Vec<CellSnapshot>,
    next_pos: u32,
    open_segment: u32,
    peak_entries: usize,
    history: Vec<TokenId>,
    pending: Vec<TokenId>,
    /// Per layer and KV head (layer-major), the cells it holds, when they differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lanes: Option<Vec<Vec<u32>>>,
}

#[derive(Serialize, Deserialize)]
struct ConfigSnapshot {
    anchors: Vec<TokenId>,
    pad: Option<TokenId>,
    /// `ep-nodigit`'s digit ids (absent from sessions saved before it).
    #[serde(default)]
    not_after: Vec<TokenId>,
    /// `ep-list`'s pinned list marks (absent from sessions saved before it).
    #[serde(default)]
    pin_marks: bool,
    rule: MaskRule,
    policy: PolicyConfig,
    positions: PositionMode,
    pins: Vec<Range<u32>>,
    chunk_size: usize,
}

#[derive(Serialize, Deserialize)]
struct CellSnapshot(TokenId, u32, u32, u32, Role, bool);

impl Session {
    /// Writes this session to the directory `dir` (replacing it atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.check_usable()?;
        let cells = self.cache.cells();
        let snapshot = Snapshot {
            format: FORMAT,
            model: self.model.config().clone(),
            config: ConfigSnapshot {
                anchors: self.cfg.anchors.ids().to_vec(),
                pad: self.cfg.anchors.pad(),
                not_after: self.cfg.anchors.not_after().to_vec(),
                pin_marks: self.cfg.anchors.pinned_marks(),
                rule: self.cfg.rule,
                policy: self.cfg.policy,
                positions: self.cfg.positions,
                pins: self.cfg.pins.clone(),
                chunk_size: self.cfg.chunk_size,
            },
            cells: (cells.as_slice().iter())
                .map(|c| CellSnapshot(c.token, c.pos.0, c.rope.0, c.segment.0, c.role, c.pinned))
                .collect(),
            next_pos: cells.next_pos().0,
            open_segment: cells.open_segment().0,
            peak_entries: self.cache.peak_entries(),
            history: self.history.clone(),
            pending: self.pending.clone(),
            lanes: self.cache.lanes().map(|l| l.all().to_vec()),
        };
        let mut tensors = HashMap::new();
        for (i, (k, v)) in self.cache.store_views()?.into_iter().enumerate() {
            tensors.insert(format!("k.{i}"), k.contiguous()?);
            tensors.insert(format!("v.{i}"), v.contiguous()?);
        }
        let tmp = sibling(dir, "tmp")?;
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let state = serde_json::to_vec(&snapshot).map_err(|e| Error::config("session", e))?;
        let state_path = tmp.join(STATE_FILE);
        std::fs::write(&state_path, state).map_err(|e| Error::io(&state_path, e))?;
        candle_core::safetensors::save(&tensors, tmp.join(KV_FILE))?;
        replace_dir(&tmp, dir)
    }

    /// The session saved in `dir`, on `model` (which must have the saved config).
    pub fn restore(model: Arc<Llama>, dir: &Path, keep_warm: KeepWarm) -> Result<Self> {
        let state_path = dir.join(STATE_FILE);
        let bytes = std::fs::read(&state_path).map_err(|e| Error::io(&state_path, e))?;
        let snap: Snapshot = serde_json::from_slice(&bytes).map_err(|e| Error::Format {
            path: state_path.clone(),
            reason: e.to_string(),
        })?;
        if snap.format != FORMAT {
            return Err(Error::unsupported(format!(
                "session format {} (this build reads {FORMAT})",
                snap.format
            )));
        }
        if &snap.model != model.config() {
            return Err(Error::config(
                "session",
                "it was saved with a model of another configuration",
            ));
        }
        let c = snap.config;
        let cfg = SessionConfig {
            anchors: AnchorSet::new(c.anchors, c.pad)
                .with_not_after(c.not_after)
                .with_pinned_marks(c.pin_marks),
            rule: c.rule,
            policy: c.policy,
            positions: c.positions,
            pins: c.pins,
            chunk_size: c.chunk_size,
            keep_warm,
        };
        cfg.policy.validate()?;
        let cells: Vec<Cell> = (snap.cells.into_iter())
            .map(
                |CellSnapshot(token, pos, rope, segment, role, pinned)| Cell {
                    token,
                    pos: Pos(pos),
                    rope: Pos(rope),
                    segment: SegmentId(segment),
                    role,
                    pinned,
                },
            )
            .collect();
        let cells = Cells::from_parts(cells, Pos(snap.next_pos), SegmentId(snap.open_segment));
        let kv_path = dir.join(KV_FILE);
        let mut tensors =
            candle_core::safetensors::load(&kv_path, model.device()).map_err(|e| {
                Error::Format {
                    path: kv_path.clone(),
                    reason: e.to_string(),
                }
            })?;
        let layers = (0..model.config().num_hidden_layers)
            .map(|i| {
                let mut take = |name: String| {
                    tensors.remove(&name).ok_or_else(|| Error::MissingTensor {
                        name,
                        path: kv_path.clone(),
                    })
                };
                Ok((take(format!("k.{i}"))?, take(format!("v.{i}"))?))
            })
            .collect::<Result<Vec<_>>>()?;
        let lanes = (snap.lanes).map(|l| Lanes::from_slots(model.config().kv_heads(), l));
        let cache = KvCache::from_parts(
            model.config(),
            cells,
            lanes,
            &layers,
            snap.peak_entries,
            model.kv_dtype(),
            model.device(),
        )?;
        let policy = cfg.build_policy();
        Ok(Self {
            model,
            cache,
            cfg,
            policy,
            history: snap.history,
            pending: snap.pending,
            poisoned: false,
        })
    }
}

/// `dir` with `.{suffix}` appended to its file name.
fn sibling(dir: &Path, suffix: &str) -> Result<PathBuf> {
    let name = dir
        .file_name()
        .ok_or_else(|| Error::config("session", format!("{} has no name", dir.display())))?;
    Ok(dir.with_file_name(format!("{}.{suffix}", name.to_string_lossy())))
}

/// Moves the finished `tmp` directory to `dir`, replacing an older `dir`.
fn replace_dir(tmp: &Path, dir: &Path) -> Result<()> {
    if dir.exists() {
        let old = sibling(dir, "old")?;
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(dir, &old).map_err(|e| Error::io(dir, e))?;
        std::fs::rename(tmp, dir).map_err(|e| Error::io(dir, e))?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    } else {
        std::fs::rename(tmp, dir).map_err(|e| Error::io(dir, e))
    }
}
