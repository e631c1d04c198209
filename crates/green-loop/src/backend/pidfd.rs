//! `pidfd_open(2)`: a descriptor that refers to one process and becomes
//! readable once that process has exited, so a child's exit can be polled
//! through the loop like any other fd. Re-exported as `green_loop::pidfd`.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// A pidfd for process `pid` (close-on-exec, as every pidfd is). It becomes
/// readable (`POLLIN`) once the process has exited; it does not reap it.
///
/// The caller must make sure `pid` still names the process it means: for a
/// child, that it has not been reaped yet (a zombie keeps its pid).
///
/// # Errors
///
/// `pidfd_open(2)`'s error: `ENOSYS` before Linux 5.3 (or under a seccomp
/// profile that refuses it), `ESRCH` when no such process exists,
/// `EMFILE` when the process is out of fds; `InvalidInput` for a pid that
/// does not fit a `pid_t`.
pub fn open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("pidfd_open: pid {pid} does not fit a pid_t"),
        )
    })?;
    // SAFETY: pidfd_open takes a pid and flags, no pointers; it returns a
    // new fd or -1.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(ret).map_err(|_| io::Error::other("pidfd_open returned a bad fd"))?;
    // SAFETY: `fd` was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
