//! Cache hints for schedulers: start loading the memory a switch will touch
//! before the switch needs it.
//!
//! With thousands of fibers taking turns, each one's records and the top of
//! its stack are cold by the time its turn comes, and a switch reaches them
//! through a chain of dependent loads (the scheduler's record, the fiber's
//! slot, the saved context on its stack). A scheduler that knows which fibers
//! run next can ask for those lines a few turns ahead
//! ([`prefetch`], [`FiberRef::prefetch_slot`](crate::FiberRef::prefetch_slot),
//! [`FiberRef::prefetch_context`](crate::FiberRef::prefetch_context)), so that
//! the loads overlap instead of following one another.
//!
//! # Invariants
//!
//! * **P1.** A prefetch is only a hint: it never faults, whatever the
//!   address (unmapped, null, freed), and changes no program state. Every
//!   function here is therefore safe for any pointer.

/// Asks the CPU to start loading the cache line at `p` into all cache
/// levels. Does nothing on targets without a prefetch instruction we use.
#[inline(always)]
pub fn prefetch<T: ?Sized>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: P1: PREFETCHT0 is a hint that never faults and has no effect
    // on program state, for any address; SSE is part of the x86_64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// [`prefetch`] for `lines` consecutive cache lines from `p` upwards.
#[inline(always)]
pub(crate) fn prefetch_lines(p: usize, lines: usize) {
    for line in 0..lines {
        prefetch((p + line * 64) as *const u8);
    }
}
