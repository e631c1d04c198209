//! `IORING_OP_READ`: read into a borrowed buffer.
//!
//! The buffer is borrowed from the caller (usually a greenlet's stack) for
//! the op's whole flight: L1 forbids freeing or reusing it until the final
//! CQE, which is why a killed greenlet waits for the cancel to complete.

use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};

use super::{attempt_from, Attempt};

/// The SQE. `offset == u64::MAX` means "current file position" (the kernel
/// reads `-1` as that; io-uring's `u64` field carries the same bits).
pub(crate) fn sqe(fd: RawFd, buf: *mut u8, len: u32, offset: u64) -> squeue::Entry {
    opcode::Read::new(types::Fd(fd), buf, len)
        .offset(offset)
        .build()
}

/// One nonblocking attempt (epoll backend).
///
/// # Safety
///
/// * `buf` is valid for writes of `len` bytes (L1).
pub(crate) unsafe fn attempt(fd: RawFd, buf: *mut u8, len: u32, offset: u64) -> Attempt {
    loop {
        let ret = if offset == u64::MAX {
            // SAFETY: the caller guarantees `buf..buf+len` is writable (L1).
            unsafe { libc::read(fd, buf.cast(), len as usize) }
        } else {
            // SAFETY: as above; pread does not move the file position.
            unsafe { libc::pread(fd, buf.cast(), len as usize, offset as libc::off_t) }
        };
        // EINTR: a signal interrupted the syscall before any data moved; retry.
        if let Some(a) = attempt_from(ret) {
            return a;
        }
    }
}
