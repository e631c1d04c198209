//! `IORING_OP_CONNECT`.
//!
//! The kernel reads `addr` at submission or later (L1: keep it alive until
//! the CQE). The epoll backend uses the classic nonblocking dance: the first
//! `connect(2)` returns `EINPROGRESS`, writability signals the end, and
//! `SO_ERROR` carries the result.

use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};

use super::Attempt;

/// The SQE.
pub(crate) fn sqe(
    fd: RawFd,
    addr: *const libc::sockaddr,
    addrlen: libc::socklen_t,
) -> squeue::Entry {
    opcode::Connect::new(types::Fd(fd), addr, addrlen).build()
}

/// One attempt (epoll backend). `started` is false on the first call; after
/// `EINPROGRESS` it becomes true and later calls read `SO_ERROR` instead of
/// connecting again.
///
/// # Safety
///
/// * `addr` is valid for reads of `addrlen` bytes (L1).
pub(crate) unsafe fn attempt(
    fd: RawFd,
    addr: *const libc::sockaddr,
    addrlen: libc::socklen_t,
    started: &mut bool,
) -> Attempt {
    if *started {
        // Writability arrived: the handshake finished one way or the other.
        let mut err: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `err`/`len` are live locals of the sizes getsockopt expects.
        let ret = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut err as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if ret < 0 {
            return Attempt::Done(
                -std::io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EIO),
            );
        }
        return Attempt::Done(-err);
    }
    // SAFETY: the caller guarantees `addr` is readable (L1).
    let ret = unsafe { libc::connect(fd, addr, addrlen) };
    if ret == 0 {
        return Attempt::Done(0);
    }
    let errno = std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO);
    match errno {
        // In progress: wait for writability, then read SO_ERROR. An
        // interrupted connect (EINTR) also continues asynchronously (POSIX),
        // so the same wait applies; it must not be retried.
        libc::EINPROGRESS | libc::EALREADY | libc::EINTR => {
            *started = true;
            Attempt::WouldBlock
        }
        e => Attempt::Done(-e),
    }
}
