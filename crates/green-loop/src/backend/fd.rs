//! Safe wrappers for plain descriptors green-core's `fs` module needs.
//! Re-exported as `green_loop::fd`.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// A close-on-exec pipe: `(read end, write end)`, both in blocking mode
/// (io_uring parks reads and writes in the kernel; the epoll backend
/// switches an end to nonblocking itself when it first waits on it).
///
/// # Errors
///
/// `pipe2(2)`'s error, e.g. `EMFILE`.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is two live c_ints, which pipe2 fills on success.
    let ret = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
