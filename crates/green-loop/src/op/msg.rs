//! `IORING_OP_SENDMSG` / `IORING_OP_RECVMSG`: scatter/gather socket I/O with
//! an optional peer address (UDP `send_to`/`recv_from`, vectored reads and
//! writes).
//!
//! The `msghdr`, its iovec array, every buffer the iovecs name and the
//! address buffer are all borrowed until the op's final CQE (L1).

use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};

use super::{attempt_from, Attempt};

/// The SENDMSG SQE.
pub(crate) fn send_sqe(fd: RawFd, msg: *const libc::msghdr, flags: i32) -> squeue::Entry {
    opcode::SendMsg::new(types::Fd(fd), msg)
        .flags(flags as u32)
        .build()
}

/// The RECVMSG SQE.
pub(crate) fn recv_sqe(fd: RawFd, msg: *mut libc::msghdr, flags: i32) -> squeue::Entry {
    opcode::RecvMsg::new(types::Fd(fd), msg)
        .flags(flags as u32)
        .build()
}

/// One nonblocking `sendmsg` (epoll backend); `MSG_NOSIGNAL` as for `send`.
///
/// # Safety
///
/// * `msg` and everything it points at are valid for reads (L1).
pub(crate) unsafe fn send_attempt(fd: RawFd, msg: *const libc::msghdr, flags: i32) -> Attempt {
    loop {
        // SAFETY: the caller guarantees the header and its buffers are live (L1).
        let ret =
            unsafe { libc::sendmsg(fd, msg, flags | libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        // EINTR: nothing was sent; retry.
        if let Some(a) = attempt_from(ret) {
            return a;
        }
    }
}

/// One nonblocking `recvmsg` (epoll backend).
///
/// # Safety
///
/// * `msg` and everything it points at are valid for writes (L1).
pub(crate) unsafe fn recv_attempt(fd: RawFd, msg: *mut libc::msghdr, flags: i32) -> Attempt {
    loop {
        // SAFETY: the caller guarantees the header and its buffers are live (L1).
        let ret = unsafe { libc::recvmsg(fd, msg, flags | libc::MSG_DONTWAIT) };
        // EINTR: nothing was received; retry.
        if let Some(a) = attempt_from(ret) {
            return a;
        }
    }
}
