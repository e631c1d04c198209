//! `IORING_OP_CLOSE`.
//!
//! Borrows no memory. Closing an fd that other in-flight ops use is legal:
//! io_uring ops hold their own file reference, so they finish (or can be
//! cancelled) normally.

use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};

use super::Attempt;

/// The SQE.
pub(crate) fn sqe(fd: RawFd) -> squeue::Entry {
    opcode::Close::new(types::Fd(fd)).build()
}

/// `close(2)` (epoll backend). Never retried on EINTR: Linux releases the
/// fd even then, and retrying could close a reused number.
pub(crate) fn attempt(fd: RawFd) -> Attempt {
    // SAFETY: closing is the op's whole purpose; the caller gave up the fd.
    let ret = unsafe { libc::close(fd) };
    if ret == 0 {
        Attempt::Done(0)
    } else {
        Attempt::Done(
            -std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        )
    }
}
