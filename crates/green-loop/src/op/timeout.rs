//! `IORING_OP_TIMEOUT`: completes with `-ETIME` after a relative timeout.
//!
//! The kernel copies the timespec while preparing the SQE, but L1 is kept
//! anyway (the copy happens inside `io_uring_enter`, after the push). The
//! loop's own wait bound uses EXT_ARG when the kernel has it, and otherwise
//! a timeout SQE with a reserved `user_data` (see `backend/uring.rs`).

use io_uring::{opcode, squeue, types};

use super::Timespec;

/// The SQE. `Timespec` has `__kernel_timespec`'s layout, which is also
/// io-uring's `types::Timespec` (a `repr(transparent)` wrapper of it), so the
/// pointer cast is a reinterpretation of identical layouts.
pub(crate) fn sqe(ts: *const Timespec) -> squeue::Entry {
    opcode::Timeout::new(ts.cast::<types::Timespec>()).build()
}

/// Reads the timespec (epoll backend, at push time).
///
/// # Safety
///
/// * `ts` points at a live `Timespec` (L1).
pub(crate) unsafe fn read(ts: *const Timespec) -> Timespec {
    // SAFETY: the caller guarantees `ts` is valid for reads (L1).
    unsafe { ts.read() }
}
