//! The green data-moving calls every socket type shares, over a borrowed
//! fd and the socket's timeouts. Each parks the running greenlet until the
//! op completes (see `io.rs` for what a kill or timeout does meanwhile).

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::BorrowedFd;

use green_loop::SockAddr;

use super::timeouts::Timeouts;
use crate::io::{run, Direction};

/// `recv` into `buf` (`flags`: 0 or `MSG_PEEK`).
#[track_caller]
pub(crate) fn recv(
    fd: BorrowedFd<'_>,
    t: &Timeouts,
    buf: &mut [u8],
    flags: i32,
) -> io::Result<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    run(fd, Direction::Read, t.get(Direction::Read), |lp, w| {
        lp.recv_borrowed(fd, buf, flags, w)
    })
}

/// `send` of `buf`.
///
/// When no other greenlet is ready to run, there is nothing to batch the
/// send with: a direct nonblocking `send` then saves the loop turn (and the
/// enter) an op would cost; with others ready, or a full socket buffer, the
/// op goes through the ring as usual.
#[track_caller]
pub(crate) fn send(fd: BorrowedFd<'_>, t: &Timeouts, buf: &[u8]) -> io::Result<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    let hub = crate::hub::hub();
    if hub.nothing_else_ready() {
        // A blocking call like any other: refused inside the hub, and a kill
        // held from an uninterruptible section is raised first.
        let me = hub.current_for_blocking();
        hub.raise_if_held(me.core());
        match green_loop::sock::send_nonblocking(fd, buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            done => return done,
        }
    }
    run(fd, Direction::Write, t.get(Direction::Write), |lp, w| {
        lp.send_borrowed(fd, buf, 0, w)
    })
}

/// `recvmsg` into `bufs`, the sender's address into `from` when given.
#[track_caller]
pub(crate) fn recvmsg(
    fd: BorrowedFd<'_>,
    t: &Timeouts,
    bufs: &mut [IoSliceMut<'_>],
    mut from: Option<&mut SockAddr>,
    flags: i32,
) -> io::Result<(usize, i32)> {
    run(fd, Direction::Read, t.get(Direction::Read), |lp, w| {
        lp.recvmsg_borrowed(fd, bufs, from.as_deref_mut(), flags, w)
    })
}

/// `sendmsg` of `bufs`, to `to` when given.
#[track_caller]
pub(crate) fn sendmsg(
    fd: BorrowedFd<'_>,
    t: &Timeouts,
    bufs: &[IoSlice<'_>],
    to: Option<&SockAddr>,
) -> io::Result<usize> {
    run(fd, Direction::Write, t.get(Direction::Write), |lp, w| {
        lp.sendmsg_borrowed(fd, bufs, to, 0, w)
    })
}

/// A vectored read: `recvmsg` unless every buffer is empty.
#[track_caller]
pub(crate) fn read_vectored(
    fd: BorrowedFd<'_>,
    t: &Timeouts,
    bufs: &mut [IoSliceMut<'_>],
) -> io::Result<usize> {
    if bufs.iter().all(|b| b.is_empty()) {
        return Ok(0);
    }
    recvmsg(fd, t, bufs, None, 0).map(|(n, _)| n)
}

/// A vectored write: `sendmsg` unless every buffer is empty.
#[track_caller]
pub(crate) fn write_vectored(
    fd: BorrowedFd<'_>,
    t: &Timeouts,
    bufs: &[IoSlice<'_>],
) -> io::Result<usize> {
    if bufs.iter().all(|b| b.is_empty()) {
        return Ok(0);
    }
    sendmsg(fd, t, bufs, None)
}

/// `connect` to `addr` (no timeout: the kernel's own connect timeout, or a
/// `Timeout` around the call, bounds it).
#[track_caller]
pub(crate) fn connect(
    fd: BorrowedFd<'_>,
    addr: &SockAddr,
    timeout: Option<std::time::Duration>,
) -> io::Result<()> {
    let r = run(fd, Direction::Write, timeout, |lp, w| {
        lp.connect_borrowed(fd, addr, w)
    });
    match r {
        // std's `connect_timeout` reports `TimedOut`.
        Err(e) if timeout.is_some() && e.kind() == io::ErrorKind::WouldBlock => Err(
            io::Error::new(io::ErrorKind::TimedOut, "connection timed out"),
        ),
        other => other,
    }
}

/// `accept4` on a listener, the peer's address into `peer` when given.
#[track_caller]
pub(crate) fn accept(
    fd: BorrowedFd<'_>,
    mut peer: Option<&mut SockAddr>,
) -> io::Result<std::os::fd::OwnedFd> {
    run(fd, Direction::Read, None, |lp, w| {
        lp.accept_borrowed(fd, peer.as_deref_mut(), w)
    })
}
