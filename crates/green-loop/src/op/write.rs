//! `IORING_OP_WRITE`: write from a borrowed buffer.
//!
//! The kernel reads the buffer at an unspecified time between push and CQE,
//! so the caller must keep it alive and unchanged until then (L1).

use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};

use super::{attempt_from, Attempt};

/// The SQE. `offset == u64::MAX` means "current file position".
pub(crate) fn sqe(fd: RawFd, buf: *const u8, len: u32, offset: u64) -> squeue::Entry {
    opcode::Write::new(types::Fd(fd), buf, len)
        .offset(offset)
        .build()
}

/// One nonblocking attempt (epoll backend).
///
/// # Safety
///
/// * `buf` is valid for reads of `len` bytes (L1).
pub(crate) unsafe fn attempt(fd: RawFd, buf: *const u8, len: u32, offset: u64) -> Attempt {
    loop {
        let ret = if offset == u64::MAX {
            // SAFETY: the caller guarantees `buf..buf+len` is readable (L1).
            unsafe { libc::write(fd, buf.cast(), len as usize) }
        } else {
            // SAFETY: as above.
            unsafe { libc::pwrite(fd, buf.cast(), len as usize, offset as libc::off_t) }
        };
        // EINTR means nothing was written; retry.
        if let Some(a) = attempt_from(ret) {
            return a;
        }
    }
}
