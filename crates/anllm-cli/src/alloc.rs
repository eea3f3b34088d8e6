//! Allocator settings for long compute-bound commands (`train`).
//!
//! A training step frees and allocates again the same large buffers every step: the logits
//! and their gradient, and the zero-filled gradient that candle's backward starts each
//! parameter with. glibc serves every allocation above its mmap threshold (at most 32 MiB)
//! with a fresh `mmap` and returns it with `munmap`, and trims the top of its heap above
//! 128 KiB, so each step page-faults those buffers in again. Measured on the tiny training
//! config (1 × 255 tokens, 1 thread, `/usr/bin/time`): 30,500 minor page faults and about 65 ms
//! of system time per step, against about 400 with the settings below (see
//! `docs/benchmarks.md`).

/// Serves large allocations from the heap and keeps freed memory there for reuse (up to
/// 2 GiB at the top of the heap). The peak resident memory stays what the work needs; only
/// its release back to the system is deferred until exit.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn keep_freed_memory() {
    // SAFETY: mallopt only changes allocator parameters; it is thread-safe and called before
    // the command's work starts. A rejected value leaves glibc's default in place.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
    }
}

/// Other platforms keep their allocator's defaults.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_freed_memory() {}
