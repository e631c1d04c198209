//! Safe wrappers over the socket syscalls green-core's sockets need that
//! std does not offer (an unconnected socket, `SO_REUSEPORT` before `bind`,
//! the names of a socket as a [`SockAddr`]). Re-exported as
//! `green_loop::sock`.
//!
//! Every fd comes back as an `OwnedFd` created with `SOCK_CLOEXEC`, so it
//! is closed exactly once and never leaks into a child process.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::op::borrowed::SockAddr;

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A new close-on-exec socket (`domain`: `AF_INET`, `AF_INET6`, `AF_UNIX`;
/// `ty`: `SOCK_STREAM`, `SOCK_DGRAM`), in blocking mode: io_uring parks the
/// op in the kernel, and the epoll backend switches it to nonblocking
/// itself.
///
/// # Errors
///
/// `socket(2)`'s error, e.g. `EMFILE` when the process is out of fds.
pub fn socket(domain: i32, ty: i32) -> io::Result<OwnedFd> {
    // SAFETY: socket takes no pointers; it returns a new fd or -1.
    let fd = check(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sets a boolean `SOL_SOCKET` option (`SO_REUSEADDR`, `SO_REUSEPORT`, ...).
///
/// # Errors
///
/// `setsockopt(2)`'s error.
pub fn set_bool_option(fd: BorrowedFd<'_>, option: i32, on: bool) -> io::Result<()> {
    let value: libc::c_int = on.into();
    // SAFETY: `value` is a live c_int and its size is passed with it.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `bind(2)`.
///
/// # Errors
///
/// `bind(2)`'s error (`EADDRINUSE`, `EACCES`, ...).
pub fn bind(fd: BorrowedFd<'_>, addr: &SockAddr) -> io::Result<()> {
    let (ptr, len) = addr.raw();
    // SAFETY: `ptr..ptr+len` lies inside `addr`'s storage (B4).
    check(unsafe { libc::bind(fd.as_raw_fd(), ptr, len) }).map(drop)
}

/// `listen(2)`.
///
/// # Errors
///
/// `listen(2)`'s error.
pub fn listen(fd: BorrowedFd<'_>, backlog: i32) -> io::Result<()> {
    // SAFETY: listen takes no pointers.
    check(unsafe { libc::listen(fd.as_raw_fd(), backlog) }).map(drop)
}

/// `getsockname(2)` or, with `peer`, `getpeername(2)`.
///
/// # Errors
///
/// The syscall's error (`ENOTCONN` for the peer of an unconnected socket).
pub fn name(fd: BorrowedFd<'_>, peer: bool) -> io::Result<SockAddr> {
    let mut addr = SockAddr::empty();
    let (ptr, len) = addr.raw_mut();
    // SAFETY: `ptr` points at the storage and `len` holds its capacity;
    // the kernel writes at most that much and updates `len` (B4).
    let ret = unsafe {
        if peer {
            libc::getpeername(fd.as_raw_fd(), ptr, len)
        } else {
            libc::getsockname(fd.as_raw_fd(), ptr, len)
        }
    };
    check(ret)?;
    addr.clamp_len();
    Ok(addr)
}

/// One nonblocking `send(2)` (`MSG_DONTWAIT | MSG_NOSIGNAL`): the bytes the
/// socket buffer took, or `WouldBlock`. For callers that try the direct
/// syscall before queueing an op.
///
/// # Errors
///
/// `send(2)`'s error; `WouldBlock` when the buffer is full.
pub fn send_nonblocking(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is a live slice for the whole call; the kernel only
        // reads `buf.len()` bytes from it.
        let ret = unsafe {
            libc::send(
                fd.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if ret >= 0 {
            return Ok(ret as usize);
        }
        let err = io::Error::last_os_error();
        // EINTR: nothing was sent; retry.
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}
