//! How a step waits for the thread pool: an option of the caller, not of the model.
//!
//! A decode step is a chain of small matmuls; between two of them rayon's idle workers fall
//! asleep and must be woken by a futex round trip. [`KeepWarm::Spin`] keeps the other workers
//! awake for the duration of one step (measured: +15–35% decode tok/s on 2 threads). It pays
//! for one stream that owns the machine; with several sessions sharing the pool the spinners
//! would multiply and steal cores from each other, so it is off by default.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

// Steps short enough for the decode-attention kernel spin; longer (prefill) steps are
// GEMM-bound and ran 10% slower with spinning.
use crate::model::MAX_ROWS;

/// Whether idle pool workers spin during a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepWarm {
    /// Workers sleep between parallel regions (several streams share the pool).
    #[default]
    Off,
    /// Workers spin through short steps (one stream owns the pool: the CLI).
    Spin,
}

/// Longest a worker keeps itself awake for one step. The bound also makes the scheme safe: a
/// worker that picked this job up while inside a task the step waits for gives up and lets
/// that task finish.
const MAX_KEEP_WARM: Duration = Duration::from_millis(50);

/// Runs `step` (over `rows` new tokens) on a rayon worker, with the other workers spinning when
/// `mode` asks for it and the step is short.
pub(crate) fn run_step<R: Send>(mode: KeepWarm, rows: usize, step: impl FnOnce() -> R + Send) -> R {
    if mode == KeepWarm::Off {
        return step();
    }
    // Spinning only pays with a core per worker; an oversubscribed pool goes without.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let helpers = match rayon::current_num_threads() {
        n if n <= cores && rows <= MAX_ROWS => n,
        _ => 1,
    };
    // Run the step on a rayon worker: the kernels' parallel loops then start by work
    // stealing instead of waking the pool from outside.
    let done = AtomicBool::new(false);
    rayon::scope(|s| {
        let (owner, done) = (rayon::current_thread_index(), &done);
        for _ in 1..helpers {
            s.spawn(move |_| keep_warm(done, owner));
        }
        let out = step();
        done.store(true, Ordering::Release);
        out
    })
}

/// Runs the pool's pending work until `done` (or [`MAX_KEEP_WARM`]), spinning in between.
/// Returns at once on the thread that runs the step (`owner`), which may pick this job up
/// while it waits for its own.
fn keep_warm(done: &AtomicBool, owner: Option<usize>) {
    if rayon::current_thread_index() == owner {
        return;
    }
    let start = Instant::now();
    let mut rounds = 0u32;
    while !done.load(Ordering::Acquire) {
        if rayon::yield_now() != Some(rayon::Yield::Executed) {
            std::hint::spin_loop();
        }
        rounds = rounds.wrapping_add(1);
        if rounds.is_multiple_of(256) && start.elapsed() > MAX_KEEP_WARM {
            return;
        }
    }
}
