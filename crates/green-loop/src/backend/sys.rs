//! Thin safe wrappers over the few raw syscalls the loop's upper modules
//! need (eventfd, signalfd, signal masks, fd flags).
//!
//! They live here because unsafe code in green-loop is confined to
//! `backend/` and `op/` (STYLE rule 6). Each wrapper owns its invariants:
//! fds come back as `OwnedFd`, so they are closed exactly once.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Turns a `-1` return into the thread's `errno` as an `io::Error`.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A nonblocking, close-on-exec eventfd (the loop's wakeup counter).
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes no pointers; a fresh fd is returned or -1.
    let fd = check(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
    // SAFETY: `fd` was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds `n` to an eventfd's counter. Safe to call from any thread while
/// the `OwnedFd` is alive (the caller holds it through an `Arc`).
pub(crate) fn eventfd_add(fd: RawFd, n: u64) -> io::Result<()> {
    let buf = n.to_ne_bytes();
    loop {
        // SAFETY: `buf` is 8 live bytes, which is what eventfd expects.
        let ret = unsafe { libc::write(fd, buf.as_ptr().cast(), 8) };
        if ret == 8 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        // EINTR: nothing was added; retry. (EAGAIN would mean the counter
        // is at u64::MAX - 1, i.e. the loop is already certain to wake.)
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return Ok(()),
            _ => return Err(err),
        }
    }
}

/// A signal set holding one signal.
fn sigset_of(signum: i32) -> io::Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it fully.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live, exclusively borrowed sigset_t.
    check(unsafe { libc::sigemptyset(&mut set) })?;
    // SAFETY: as above; an invalid signum is reported as EINVAL.
    check(unsafe { libc::sigaddset(&mut set, signum) })?;
    Ok(set)
}

/// Blocks `signum` for the calling thread; returns whether it was already
/// blocked (so the watcher can restore the mask exactly on drop).
pub(crate) fn block_signal(signum: i32) -> io::Result<bool> {
    let set = sigset_of(signum)?;
    // SAFETY: sigset_t is plain data; pthread_sigmask fills it.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are live sigsets; SIG_BLOCK only adds `set`.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    // SAFETY: `old` was filled by pthread_sigmask.
    Ok(unsafe { libc::sigismember(&old, signum) } == 1)
}

/// Unblocks `signum` for the calling thread.
pub(crate) fn unblock_signal(signum: i32) -> io::Result<()> {
    let set = sigset_of(signum)?;
    // SAFETY: `set` is a live sigset; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// A nonblocking signalfd for one signal.
pub(crate) fn signalfd(signum: i32) -> io::Result<OwnedFd> {
    let set = sigset_of(signum)?;
    // SAFETY: `set` is a live sigset; -1 asks for a new fd.
    let fd = check(unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) })?;
    // SAFETY: `fd` was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sets `O_NONBLOCK` on `fd` (epoll backend: readiness-based I/O must never
/// block the loop's thread).
pub(crate) fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL takes no pointer; a bad fd yields EBADF.
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: F_SETFL with an int argument.
        check(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    }
    Ok(())
}

/// Closes an fd that the loop received from an op nobody will see (L7).
pub(crate) fn close_orphan_fd(fd: RawFd) {
    // SAFETY: the fd came from a completed accept whose result was never
    // handed to anyone, so the loop is its only owner.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
}
