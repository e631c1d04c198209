//! `IORING_OP_ACCEPT`, single-shot and multishot.
//!
//! The result is a new fd. If the loop is torn down after the kernel
//! accepted but before anyone received the fd, the loop closes it (L7).
//! Multishot accept (Linux 5.19+) posts one CQE per connection with
//! `IORING_CQE_F_MORE` set until the last; the epoll backend emulates it by
//! accepting in a loop on each readiness event.

use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};

use super::{attempt_from, Attempt};

/// The single-shot SQE. `addr`/`addrlen` are out-parameters the kernel
/// writes at completion time (L1 applies to both).
pub(crate) fn sqe(
    fd: RawFd,
    addr: *mut libc::sockaddr,
    addrlen: *mut libc::socklen_t,
    flags: i32,
) -> squeue::Entry {
    opcode::Accept::new(types::Fd(fd), addr, addrlen)
        .flags(flags)
        .build()
}

/// The multishot SQE: no address out-parameters (there would be one per
/// shot), so nothing is borrowed.
pub(crate) fn sqe_multi(fd: RawFd, flags: i32) -> squeue::Entry {
    opcode::AcceptMulti::new(types::Fd(fd)).flags(flags).build()
}

/// One nonblocking attempt (epoll backend). The listener has been switched
/// to `O_NONBLOCK` by the backend, so this never blocks.
///
/// # Safety
///
/// * `addr`/`addrlen` are null or valid for writes, as `accept4(2)` requires (L1).
pub(crate) unsafe fn attempt(
    fd: RawFd,
    addr: *mut libc::sockaddr,
    addrlen: *mut libc::socklen_t,
    flags: i32,
) -> Attempt {
    loop {
        // SAFETY: the caller guarantees the out-parameters are valid or null (L1).
        let ret = unsafe { libc::accept4(fd, addr, addrlen, flags) };
        // EINTR: no connection was taken off the queue; retry.
        if let Some(a) = attempt_from(ret as isize) {
            return a;
        }
    }
}
