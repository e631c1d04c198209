//! `IORING_OP_POLL_ADD`: one-shot readiness.
//!
//! Completes with the `revents` mask. It borrows no memory, so L1 is
//! trivial; green-core uses it for "wait until readable" on fds it does not
//! read through the ring.

use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};

use super::Attempt;

/// The SQE.
pub(crate) fn sqe(fd: RawFd, events: u32) -> squeue::Entry {
    opcode::PollAdd::new(types::Fd(fd), events).build()
}

/// One check with `poll(2)` and a zero timeout (epoll backend).
pub(crate) fn attempt(fd: RawFd, events: u32) -> Attempt {
    let mut p = libc::pollfd {
        fd,
        events: events as i16,
        revents: 0,
    };
    loop {
        // SAFETY: `p` is one live pollfd and we pass nfds = 1.
        let ret = unsafe { libc::poll(&mut p, 1, 0) };
        if ret > 0 {
            return Attempt::Done(i32::from(p.revents as u16));
        }
        if ret == 0 {
            return Attempt::WouldBlock;
        }
        let errno = std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        // EINTR: nothing was consumed; retry.
        if errno != libc::EINTR {
            return Attempt::Done(-errno);
        }
    }
}
