//! `IORING_OP_RECV`: receive from a socket into a borrowed buffer.
//!
//! This is the op `docs/design/DESIGN.md` §4's central test targets: a greenlet killed
//! while parked here first cancels, then waits for this op's CQE (L1), so
//! the kernel never writes into a stack that has been unwound.

use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};

use super::{attempt_from, Attempt};

/// The SQE.
pub(crate) fn sqe(fd: RawFd, buf: *mut u8, len: u32, flags: i32) -> squeue::Entry {
    opcode::Recv::new(types::Fd(fd), buf, len)
        .flags(flags)
        .build()
}

/// One nonblocking attempt (epoll backend). `MSG_DONTWAIT` makes this call
/// nonblocking even on a blocking socket, without touching the fd's flags.
///
/// # Safety
///
/// * `buf` is valid for writes of `len` bytes (L1).
pub(crate) unsafe fn attempt(fd: RawFd, buf: *mut u8, len: u32, flags: i32) -> Attempt {
    loop {
        // SAFETY: the caller guarantees `buf..buf+len` is writable (L1).
        let ret = unsafe { libc::recv(fd, buf.cast(), len as usize, flags | libc::MSG_DONTWAIT) };
        // EINTR: nothing was received; retry.
        if let Some(a) = attempt_from(ret) {
            return a;
        }
    }
}
