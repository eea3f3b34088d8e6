//! Named sessions: held in RAM under a byte budget and a count limit, written to the session
//! directory after every turn (atomically, by [`Session::save`]), dropped from RAM least
//! recently used first once they are safe on disk, and restored on demand, also after a
//! restart. A session is matched by its exact id only, never by similarity.
//!
//! On disk: `DIR/<model fingerprint>/<id>/` ([`Session::save`]'s layout). The fingerprint
//! hashes the model file, so another model never sees these sessions.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anllm::{KeepWarm, Llama, Session};
use serde::Serialize;

use crate::error::ApiError;

/// What `GET /v1/sessions/{id}` shows.
#[derive(Debug, Clone, Serialize, Default)]
pub struct SessionInfo {
    /// The session id.
    pub id: String,
    /// "ram", "disk" or "busy" (answering a request now).
    pub location: &'static str,
    /// Tokens of the conversation (None for a session found on disk and not loaded yet).
    pub tokens: Option<usize>,
    /// Entries in its pruned cache.
    pub kv_entries: Option<usize>,
    /// Bytes of its K/V memory.
    pub kv_bytes: Option<usize>,
    /// Bytes a full cache of the same conversation would hold.
    pub full_kv_bytes: Option<usize>,
    /// Turns answered since the server started.
    pub turns: usize,
}

struct Entry {
    session: Option<Session>,
    /// Whether the session's last turn was written to disk.
    saved: bool,
    busy: bool,
    deleted: bool,
    info: SessionInfo,
    last_used: u64,
}

/// Spare K/V entries an idle session keeps reserved for its next turn.
const IDLE_HEADROOM: usize = 64;

/// The session store.
pub struct SessionStore {
    entries: HashMap<String, Entry>,
    dir: Option<PathBuf>,
    budget_bytes: usize,
    max_sessions: usize,
    clock: u64,
}

/// A session taken out of the store for one request.
pub enum Taken {
    /// The stored session.
    Found(Box<Session>),
    /// The id is new: start a fresh session.
    New,
}

impl SessionStore {
    /// A store spilling to `dir` (already including the model fingerprint), holding at most
    /// `budget_bytes` of K/V and `max_sessions` sessions in RAM. Sessions already in `dir`
    /// are listed as on disk.
    pub fn new(dir: Option<PathBuf>, budget_bytes: usize, max_sessions: usize) -> Self {
        let mut store = Self {
            entries: HashMap::new(),
            dir,
            budget_bytes,
            max_sessions,
            clock: 0,
        };
        store.scan_disk();
        store
    }

    fn scan_disk(&mut self) {
        let Some(dir) = &self.dir else { return };
        let Ok(read) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in read.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if valid_id(&name) && entry.path().join("session.json").exists() {
                let info = SessionInfo {
                    id: name.clone(),
                    location: "disk",
                    ..SessionInfo::default()
                };
                let entry = Entry {
                    saved: true,
                    ..idle(None, info, 0)
                };
                self.entries.insert(name, entry);
            }
        }
    }

    /// Takes session `id` for a request: from RAM, else from disk, else [`Taken::New`].
    pub fn take(
        &mut self,
        id: &str,
        model: &Arc<Llama>,
        keep_warm: KeepWarm,
    ) -> Result<Taken, ApiError> {
        self.clock += 1;
        let clock = self.clock;
        let entry = self.entries.entry(id.to_string()).or_insert_with(|| {
            let info = SessionInfo {
                id: id.to_string(),
                ..SessionInfo::default()
            };
            idle(None, info, clock)
        });
        if entry.busy {
            return Err(ApiError::busy(id));
        }
        entry.busy = true;
        entry.deleted = false;
        entry.last_used = clock;
        entry.info.location = "busy";
        if let Some(session) = entry.session.take() {
            return Ok(Taken::Found(Box::new(session)));
        }
        let on_disk = (self.dir.as_ref())
            .filter(|_| entry.saved)
            .map(|d| d.join(id));
        match on_disk {
            Some(path) => match Session::restore(Arc::clone(model), &path, keep_warm) {
                Ok(session) => Ok(Taken::Found(Box::new(session))),
                Err(e) => {
                    self.release(id);
                    Err(ApiError::internal(format!("restoring session {id:?}: {e}")))
                }
            },
            None => Ok(Taken::New),
        }
    }

    /// Gives back session `id` after a turn: written to disk (when the store has a
    /// directory), kept in RAM, then the budget is enforced.
    pub fn put(&mut self, id: &str, mut session: Session) -> Result<(), ApiError> {
        let deleted = self.entries.get(id).is_none_or(|e| e.deleted);
        if deleted {
            self.entries.remove(id);
            return Ok(());
        }
        let saved = match &self.dir {
            Some(dir) => session
                .save(&dir.join(id))
                .map_err(|e| ApiError::internal(format!("writing session {id:?} to disk: {e}"))),
            None => Ok(()),
        };
        // An idle session holds only its entries (plus room for a short turn).
        if let Err(e) = session.shrink_to_fit(IDLE_HEADROOM) {
            tracing::warn!(session = %id, "shrinking its cache: {e}");
        }
        let stats = session.stats();
        if let Some(entry) = self.entries.get_mut(id) {
            entry.busy = false;
            entry.info.location = "ram";
            entry.info.tokens = Some(stats.tokens_seen + session.pending().len());
            entry.info.kv_entries = Some(stats.entries);
            entry.info.kv_bytes = Some(stats.allocated_kv_bytes);
            entry.info.full_kv_bytes = Some(stats.full_kv_bytes);
            entry.info.turns += 1;
            entry.saved = saved.is_ok() && self.dir.is_some();
            entry.session = Some(session);
        }
        self.spill(0);
        saved
    }

    /// Ends a request on `id` that gives no session back (it failed before the session
    /// changed, or the session must start over): a stored copy on disk stays valid.
    pub fn release(&mut self, id: &str) {
        if let Some(entry) = self.entries.get_mut(id) {
            entry.busy = false;
            entry.info.location = if entry.saved { "disk" } else { "ram" };
            if entry.deleted || (!entry.saved && entry.session.is_none()) {
                self.entries.remove(id);
            }
        }
    }

    /// Makes room for one more request: drops idle sessions that are safe on disk, least
    /// recently used first; a 429 when the RAM budget or the session limit is still reached.
    pub fn admit(&mut self) -> Result<(), ApiError> {
        self.spill(1);
        let (bytes, count) = (self.ram_bytes(), self.ram_sessions());
        if bytes >= self.budget_bytes || count >= self.max_sessions {
            return Err(ApiError::overloaded(format!(
                "the session store is full ({count} sessions, {:.1} MiB of K/V in RAM; \
                 budget {:.1} MiB, {} sessions): delete sessions{}",
                mib(bytes),
                mib(self.budget_bytes),
                self.max_sessions,
                match self.dir {
                    Some(_) => "",
                    None => " or start the server with --session-dir",
                }
            )));
        }
        Ok(())
    }

    /// Drops idle RAM copies of sessions already on disk until the store is under its
    /// limits with room for `extra` more sessions.
    fn spill(&mut self, extra: usize) {
        let (mut bytes, mut count) = (self.ram_bytes(), self.ram_sessions());
        if bytes <= self.budget_bytes && count + extra <= self.max_sessions {
            return;
        }
        // Only a session whose last turn is on disk may leave RAM.
        let mut victims: Vec<(&String, &mut Entry)> = (self.entries.iter_mut())
            .filter(|(_, e)| !e.busy && e.session.is_some() && e.saved)
            .collect();
        victims.sort_by_key(|(_, e)| e.last_used);
        for (_, entry) in victims {
            if bytes <= self.budget_bytes && count + extra <= self.max_sessions {
                return;
            }
            entry.session = None;
            entry.info.location = "disk";
            bytes -= entry.info.kv_bytes.unwrap_or(0);
            count -= 1;
        }
    }

    /// Deletes session `id` (from RAM and disk); false when it does not exist.
    pub fn delete(&mut self, id: &str) -> bool {
        let Some(entry) = self.entries.get_mut(id) else {
            return false;
        };
        if let Some(path) = self.dir.as_ref().map(|d| d.join(id)) {
            let _ = std::fs::remove_dir_all(path);
        }
        match entry.busy {
            // The running request gives it back; `put` then drops it.
            true => entry.deleted = true,
            false => {
                self.entries.remove(id);
            }
        }
        true
    }

    /// Whether session `id` is held in RAM now (idle).
    pub fn in_ram(&self, id: &str) -> bool {
        self.entries.get(id).is_some_and(|e| e.session.is_some())
    }

    /// Information on session `id`.
    pub fn info(&self, id: &str) -> Option<SessionInfo> {
        self.entries
            .get(id)
            .filter(|e| !e.deleted)
            .map(|e| e.info.clone())
    }

    /// Every session, sorted by id.
    pub fn list(&self) -> Vec<SessionInfo> {
        let mut all: Vec<_> = (self.entries.keys())
            .filter_map(|id| self.info(id))
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Bytes of K/V held in RAM by stored sessions (busy ones counted at their last size).
    pub fn ram_bytes(&self) -> usize {
        (self.entries.values())
            .filter(|e| e.session.is_some() || e.busy)
            .map(|e| e.info.kv_bytes.unwrap_or(0))
            .sum()
    }

    /// Sessions in RAM (busy ones included).
    pub fn ram_sessions(&self) -> usize {
        (self.entries.values())
            .filter(|e| e.session.is_some() || e.busy)
            .count()
    }

    /// Sessions known only on disk.
    pub fn disk_sessions(&self) -> usize {
        (self.entries.values())
            .filter(|e| e.session.is_none() && !e.busy)
            .count()
    }

    /// Tokens seen and entries kept over the sessions in RAM (for the retained ratio).
    pub fn retained(&self) -> (usize, usize) {
        (self.entries.values())
            .filter_map(|e| e.session.as_ref())
            .map(|s| s.stats())
            .fold((0, 0), |(seen, kept), s| {
                (seen + s.tokens_seen, kept + s.entries)
            })
    }
}

fn idle(session: Option<Session>, info: SessionInfo, last_used: u64) -> Entry {
    Entry {
        session,
        saved: false,
        busy: false,
        deleted: false,
        info,
        last_used,
    }
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Whether `id` may name a session: 1–128 characters of `[A-Za-z0-9_.-]`, not starting with
/// a dot (it becomes a directory name).
pub fn valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// A fingerprint of the model: FNV-1a 64 over the size and the first and last MiB of the
/// file, or of every file of a model directory (by name order, names included).
pub fn fingerprint(path: &Path) -> std::io::Result<String> {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    if path.is_dir() {
        let mut files: Vec<_> = (std::fs::read_dir(path)?.flatten())
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for file in files {
            let name = file.file_name().unwrap_or_default().to_string_lossy();
            fnv(&mut hash, name.as_bytes());
            feed_file(&mut hash, &file)?;
        }
    } else {
        feed_file(&mut hash, path)?;
    }
    Ok(format!("{hash:016x}"))
}

fn feed_file(hash: &mut u64, path: &Path) -> std::io::Result<()> {
    const MIB: u64 = 1 << 20;
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    fnv(hash, &len.to_le_bytes());
    let mut buf = vec![0u8; MIB.min(len) as usize];
    file.read_exact(&mut buf)?;
    fnv(hash, &buf);
    file.seek(SeekFrom::Start(len.saturating_sub(MIB)))?;
    file.read_exact(&mut buf)?;
    fnv(hash, &buf);
    Ok(())
}

fn fnv(hash: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *hash = (*hash ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_stable_and_tells_files_and_directories_apart() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a.gguf"), tmp.path().join("b.gguf"));
        std::fs::write(&a, vec![1u8; 3 << 20]).unwrap();
        let mut other = vec![1u8; 3 << 20];
        other[(3 << 20) - 1] = 2; // differs only in the last MiB
        std::fs::write(&b, other).unwrap();
        assert_eq!(fingerprint(&a).unwrap(), fingerprint(&a).unwrap());
        assert_ne!(fingerprint(&a).unwrap(), fingerprint(&b).unwrap());
        let dir = fingerprint(tmp.path()).unwrap();
        std::fs::write(tmp.path().join("config.json"), "{}").unwrap();
        assert_ne!(fingerprint(tmp.path()).unwrap(), dir);
    }

    #[test]
    fn session_ids_that_could_escape_the_directory_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            ".hidden",
            "sp ace",
            &"x".repeat(129),
        ] {
            assert!(!valid_id(bad), "{bad:?}");
        }
        for good in ["alice", "conv-1", "A_b.c", &"x".repeat(128)] {
            assert!(valid_id(good), "{good:?}");
        }
    }
}
