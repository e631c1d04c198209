//! Thin safe wrappers over the few raw syscalls the loop's upper modules
//! need (eventfd, signalfd, signal masks, fd flags), and [`fork`] with its
//! [`wait_child`].
//!
//! They live here because unsafe code in green-loop is confined to
//! `backend/` and `op/` (STYLE rule 6). Each wrapper owns its invariants:
//! fds come back as `OwnedFd`, so they are closed exactly once.
//!
//! * **F1.** A loop's backend (an io_uring ring, whose queues are memory
//!   shared with the kernel, or an epoll instance, whose interest list is
//!   shared by every process holding it) is used only by the process that
//!   built it. [`fork`] bumps the child's fork generation; a backend built
//!   in an earlier generation refuses to submit, cancel or wait (an error
//!   naming the fix), and its drop waits for nothing, since what it has in
//!   flight is the parent's. A child touching the parent's ring would
//!   corrupt the parent's queues and hand the parent completions it never
//!   asked for.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

/// How many [`fork`]s this process descends through (F1): 0 in the
/// original process, the parent's count plus one in a child.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

/// This process's fork generation (F1).
#[inline]
pub(crate) fn fork_generation() -> u64 {
    FORK_GENERATION.load(Ordering::Relaxed)
}

/// Which side of a [`fork`] this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fork {
    /// The original process; `child` is the new process's pid.
    Parent {
        /// The child's process id (for [`wait_child`]).
        child: i32,
    },
    /// The new process.
    Child,
}

/// `fork(2)`: a new process, a copy of this one with only the calling
/// thread.
///
/// Every [`Loop`](crate::Loop) that exists at the fork is the parent's: in
/// the child it refuses to run, submit or cancel (an error saying to build
/// a new loop), and dropping it waits for nothing (F1). The child builds
/// new loops as it needs them.
///
/// # Threads
///
/// The child has one thread, the caller. Whatever the other threads held
/// stays held forever in the child: a `Mutex` locked by another thread at
/// the fork deadlocks the child that locks it, and work queued to another
/// thread (a thread pool) is never done. That is the caller's concern:
/// fork before starting threads, or have the child touch nothing the other
/// threads share (exec, or exit, soon). Memory stays sound: a thread that
/// vanished is, to the child, a thread stalled forever, which Rust code
/// must already tolerate. glibc's fork resets its own allocator locks, so
/// the child can allocate.
///
/// # Errors
///
/// `fork(2)`'s: `WouldBlock` (EAGAIN, the process limit), `OutOfMemory`.
pub fn fork() -> io::Result<Fork> {
    // What fork means for the rest of the program is the documented
    // contract above: other threads' locks stay held in the child (a
    // deadlock, not undefined behaviour: a vanished thread is one stalled
    // forever), and the memory shared with the kernel or with the parent
    // (io_uring rings, epoll interest lists) is protected by F1, set up
    // right below in the child before anything else can run.
    // SAFETY: F1; fork takes no arguments and touches no memory of ours.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
            Ok(Fork::Child)
        }
        child => Ok(Fork::Parent { child }),
    }
}

/// How a child process ended (see [`wait_child`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildExit {
    /// It exited with this code.
    Exited(i32),
    /// A signal killed it.
    Signaled(i32),
}

/// Waits, blocking the calling thread, for child `pid` to end and reaps it
/// (`waitpid(pid, 0)`, retried on EINTR).
///
/// # Errors
///
/// `waitpid(2)`'s: ECHILD (`pid` is not a child of this process, or was
/// already reaped), EINVAL.
pub fn wait_child(pid: i32) -> io::Result<ChildExit> {
    if pid <= 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("wait_child({pid}): pass the positive pid that fork returned to the parent"),
        ));
    }
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: `status` is a live c_int for waitpid to fill.
        let ret = unsafe { libc::waitpid(pid, &mut status, 0) };
        if ret < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(err);
        }
        if libc::WIFEXITED(status) {
            return Ok(ChildExit::Exited(libc::WEXITSTATUS(status)));
        }
        if libc::WIFSIGNALED(status) {
            return Ok(ChildExit::Signaled(libc::WTERMSIG(status)));
        }
        // Stopped or continued (not asked for): keep waiting for the end.
    }
}

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
