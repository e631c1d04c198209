//! Where each thread's hub record lives: allocated on the thread's first use
//! of green-core, released when the thread exits.
//!
//! This is green-core's one module allowed `unsafe` (ARCHITECTURE.md). The
//! hub hands its record out as `&'static Hub`, so that code on any greenlet's
//! stack can reach it without holding a borrow of a thread-local across a
//! switch (a greenlet parked with such a borrow would block every other
//! greenlet's access). A leaked `Box` gives that lifetime; without a release
//! it costs about a kilobyte per thread that ever used green-core, which a
//! program churning threads (a thread pool, a test harness) accumulates.
//! Releasing it means turning the leaked reference back into its `Box`, and
//! that is sound only under the rules below.
//!
//! # Invariants
//!
//! * **R1.** A record is made only by [`allocate`], which leaks a `Box`; the
//!   thread's `HUB` slot (in `hub/mod.rs`) is the only place that keeps the
//!   reference beyond a call. Every other `&'static Hub` lives in a frame of
//!   code running on that thread (records are `!Send`: they never leave it).
//! * **R2.** [`release`] is called only by the thread-exit guard, on the
//!   thread's own stack, after the hub's teardown has finished (or the hub
//!   was never initialised, or already torn down) and after the `HUB` slot
//!   was cleared. By then no greenlet can run again: teardown finished every
//!   greenlet, or left it suspended for good and recorded dead, so the frames
//!   that hold the reference never resume; and a later use of green-core on
//!   the thread (another thread-local destructor) allocates a new record.

use crate::hub::Hub;

thread_local! {
    /// Tears the hub down at thread exit, then frees its record (R2). The
    /// `HUB` slot itself has no destructor, so it stays readable while this
    /// and other thread-local destructors run.
    static EXIT_GUARD: ExitGuard = const { ExitGuard };
}

struct ExitGuard;

impl Drop for ExitGuard {
    fn drop(&mut self) {
        if let Some(hub) = crate::hub::teardown_at_exit() {
            // SAFETY: R2: this is the exit guard; `teardown_at_exit` returned
            // the record only after teardown finished on the thread's own
            // stack and the slot was cleared; it came from `allocate` (R1).
            unsafe { release(hub) };
        }
    }
}

/// Makes sure the hub is torn down (and its record freed) at thread exit;
/// `false` if the thread is exiting already and that can no longer be
/// arranged (a hub built by a late thread-local destructor).
pub(crate) fn tear_down_at_exit() -> bool {
    EXIT_GUARD.try_with(|_| ()).is_ok()
}

/// A new hub record for this thread, leaked until [`release`] (R1).
pub(crate) fn allocate() -> &'static Hub {
    Box::leak(Box::new(Hub::empty()))
}

/// Frees a record made by [`allocate`].
///
/// # Safety
/// * `hub` came from [`allocate`] on this thread, and is released once.
/// * R2 holds: the caller is the thread-exit guard, teardown is over, the
///   `HUB` slot no longer holds `hub`, and no code that could still run
///   holds a reference to it.
unsafe fn release(hub: &'static Hub) {
    let record = std::ptr::from_ref(hub).cast_mut();
    // SAFETY: R1: `record` is the pointer `Box::leak` returned in `allocate`;
    // R2 (the caller's contract): nothing that will run again refers to it,
    // so the `Box` is unique again and freeing it leaves no dangling use.
    drop(unsafe { Box::from_raw(record) });
}
