//! `IORING_OP_SEND`: send a borrowed buffer on a socket.
//!
//! The kernel may read the buffer any time before the CQE (L1).

use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};

use super::{attempt_from, Attempt};

/// The SQE.
pub(crate) fn sqe(fd: RawFd, buf: *const u8, len: u32, flags: i32) -> squeue::Entry {
    opcode::Send::new(types::Fd(fd), buf, len)
        .flags(flags)
        .build()
}

/// One nonblocking attempt (epoll backend). `MSG_NOSIGNAL` turns a write to
/// a closed peer into `-EPIPE` instead of a process-killing SIGPIPE, which is
/// also what io_uring's send reports.
///
/// # Safety
///
/// * `buf` is valid for reads of `len` bytes (L1).
pub(crate) unsafe fn attempt(fd: RawFd, buf: *const u8, len: u32, flags: i32) -> Attempt {
    loop {
        // SAFETY: the caller guarantees `buf..buf+len` is readable (L1).
        let ret = unsafe {
            libc::send(
                fd,
                buf.cast(),
                len as usize,
                flags | libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        // EINTR: nothing was sent; retry.
        if let Some(a) = attempt_from(ret) {
            return a;
        }
    }
}
