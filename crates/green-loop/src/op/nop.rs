//! `IORING_OP_NOP`: completes with 0 and touches no memory.
//!
//! It exists to measure the loop itself (the `loop/nop_batch*` benchmarks)
//! and as the simplest op for lifecycle tests. On epoll it completes
//! immediately, queued for the next dispatch.

use io_uring::{opcode, squeue};

/// The SQE. A Nop points at nothing, so L1 is trivially satisfied.
pub(crate) fn sqe() -> squeue::Entry {
    opcode::Nop::new().build()
}
