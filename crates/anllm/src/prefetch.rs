//! Software prefetch of a stream read once (decode reads every weight once per token).
//!
//! The hardware prefetchers alone left the decode kernels waiting on memory at about half the
//! bandwidth one core streams; a hint [`AHEAD`] bytes in front of the read fixed that
//! (`docs/benchmarks.md`, issue 16). `anllm bench --bandwidth` reads its buffer the same way,
//! so the share of bandwidth a decode step reaches compares like with like.

/// How far ahead of a stream's read position to prefetch, in bytes (measured on the decode
/// kernels, 1 thread, depth 0: none 63, 512 ~90, 2048 ~105, 4096 ~120, 8192 ~117 tok/s).
pub const AHEAD: usize = 4096;

/// Hints the cache to fetch the line at `p`. Any address is allowed (a prefetch never
/// faults), so callers form it with `wrapping_add` and may point past their slice.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    // SAFETY: a prefetch has no architectural effect and never faults.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
