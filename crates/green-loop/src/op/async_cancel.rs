//! `IORING_OP_ASYNC_CANCEL`: ask the kernel to cancel another op.
//!
//! The cancel's own CQE carries a reserved `user_data` and is ignored; what
//! matters is the target's CQE, which always arrives (L2). The loop's drop
//! drain uses the "cancel any" form (Linux 5.19+) as a safety net.

use io_uring::{opcode, squeue, types};

/// Cancel the op whose SQE carried `target`.
pub(crate) fn sqe(target: u64) -> squeue::Entry {
    opcode::AsyncCancel::new(target).build()
}

/// Cancel every op in the ring.
pub(crate) fn sqe_any() -> squeue::Entry {
    opcode::AsyncCancel2::new(types::CancelBuilder::any()).build()
}
