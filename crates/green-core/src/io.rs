//! How a greenlet waits for an I/O op: the greenlet side of green-loop's
//! borrowed ops, and the one place that decides what a kill, a `Timeout`
//! or a socket timeout does to an op in flight.
//!
//! # Invariants
//!
//! * **IO1** (`docs/design/DESIGN.md` §4, the I/O layer's central rule) A
//!   greenlet never leaves an op (returns, unwinds, dies) before the op's
//!   final completion: the wait is uninterruptible (S2), so a kill or a
//!   `Timeout` that arrives is *held*; the wait then asks the kernel to
//!   cancel the op and keeps waiting for its completion. green-loop's
//!   runner enforces the same rule from below (B1, B3), so the kernel never
//!   writes into a stack that has been unwound or reused.
//! * **IO2** A result that won the race against a cancel is never lost: the
//!   op's own completion decides. A read that completed returns its bytes, a
//!   write its count, an accept its connection, and a held kill or timeout is
//!   raised at the greenlet's next blocking point instead. Only when the
//!   kernel reports that the cancel cut the op short (nothing happened:
//!   `ECANCELED`, or `EINTR`/`EAGAIN`, see `cut_short`) is the held kill or
//!   timeout raised at once, or a socket timeout reported as `WouldBlock`;
//!   such an op is never retried.
//! * **IO3** An op that fails with `EAGAIN` (a socket a user set nonblocking)
//!   waits for readiness with a poll op and is tried again, so a nonblocking
//!   fd still parks the greenlet instead of surfacing `WouldBlock`.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use green_loop::{Loop, OpId, OpWait};

use crate::greenlet::state::CoreRef;
use crate::hub::{deadline_after, hub, wake_registered, Hub, TimerWake};

/// Which way an op moves data: what a socket timeout is called and what
/// readiness an `EAGAIN` waits for (IO3).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Direction {
    Read,
    Write,
}

impl Direction {
    fn poll_events(self) -> u32 {
        match self {
            Direction::Read => libc::POLLIN as u32,
            Direction::Write => libc::POLLOUT as u32,
        }
    }
}

/// The running greenlet's side of one op in flight.
pub(crate) struct GreenWait {
    hub: &'static Hub,
    me: CoreRef,
    key: u32,
    /// The socket timeout's timer, if the socket has one.
    timer: Option<TimerWake>,
    /// The op was asked to cancel (a held throw or the timer).
    cancelled: bool,
    /// The socket timeout fired before the op completed.
    timed_out: bool,
}

impl GreenWait {
    fn new(hub: &'static Hub, me: CoreRef, timeout: Option<Duration>) -> GreenWait {
        let key = hub.register_live(&me);
        let timer = timeout.map(|d| hub.wake_at(&me, deadline_after(d), true));
        GreenWait {
            hub,
            me,
            key,
            timer,
            cancelled: false,
            timed_out: false,
        }
    }
}

impl Drop for GreenWait {
    fn drop(&mut self) {
        if let Some(t) = &self.timer {
            self.hub.cancel_wake(t);
        }
    }
}

impl OpWait for GreenWait {
    fn waker(&self) -> (fn(&Loop, u64), u64) {
        (wake_registered, u64::from(self.key))
    }

    fn wait(&mut self, lp: &Loop, op: OpId) {
        if !self.cancelled {
            let interrupted = self.hub.holds_throw(self.me.core());
            let timed_out = self.timer.as_ref().is_some_and(|t| t.fired(self.hub));
            if interrupted || timed_out {
                self.timed_out = timed_out && !interrupted;
                // IO1: the op's own completion still ends the wait. A cancel
                // that could not be queued leaves the op simply in flight; it
                // is tried again at the next wake.
                self.cancelled = lp.cancel_op(op).is_ok();
            }
        }
        // Held kills and timeouts do not unwind out of here (S2); a `false`
        // (teardown giving up on this wait) is answered by waiting again,
        // since the op still owns the buffer.
        let _ = self.hub.park_as(&self.me);
    }
}

/// Runs one op for the running greenlet: `op` submits it through the loop's
/// borrowed runner with the wait it is given. `timeout` is the socket's
/// timeout for this direction; `fd` is polled on `EAGAIN` (IO3).
///
/// # Panics
/// Inside the hub (a rawlink or loop handler), where nothing may block.
#[track_caller]
pub(crate) fn run<R>(
    fd: BorrowedFd<'_>,
    direction: Direction,
    timeout: Option<Duration>,
    mut op: impl FnMut(&Loop, &mut GreenWait) -> io::Result<R>,
) -> io::Result<R> {
    let hub = hub();
    let me = hub.current_for_blocking();
    // A kill held from an earlier uninterruptible section is raised at this
    // blocking point, before anything is submitted.
    hub.raise_if_held(me.core());
    let lp = hub.lp();
    loop {
        let mut wait = GreenWait::new(hub, me.clone(), timeout);
        let result = hub.uninterruptible(|| op(&lp, &mut wait));
        let result = match result {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && !wait.cancelled => {
                // IO3: a nonblocking fd; wait for readiness, then retry (the
                // timeout restarts with the retry, as a fresh syscall's
                // SO_RCVTIMEO would).
                let ready = hub
                    .uninterruptible(|| lp.poll_borrowed(fd, direction.poll_events(), &mut wait));
                match ready {
                    Ok(_) => continue,
                    Err(e) => Err(e),
                }
            }
            other => other,
        };
        match result {
            Err(e) if wait.cancelled && cut_short(&e) => {
                let timed_out = wait.timed_out;
                drop(wait);
                if timed_out {
                    return Err(timed_out_error(direction));
                }
                // IO2: nothing happened; the kill or timeout that asked for
                // the cancel is raised now.
                hub.raise_if_held(me.core());
                // It could not be raised here (this greenlet is already
                // unwinding, U3): report the op as cut short.
                return Err(io::Error::other(
                    "green I/O op cancelled: its greenlet was killed or timed out",
                ));
            }
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            other => return other,
        }
    }
}

/// Whether an op that was asked to cancel failed because of the cancel,
/// having done nothing (IO2): `ECANCELED`; `EINTR` from an op io_uring ran
/// blocking on one of its worker threads and interrupted to cancel it (a
/// Unix-domain connect waiting for room in a full backlog); `EAGAIN` from
/// a nonblocking attempt the epoll backend made before the cancel. Retrying
/// such an op instead would resubmit it with the kill or timeout still
/// held (a resubmitted io_uring connect then never answered the next
/// cancel), and returning the `EAGAIN` would hand the caller `WouldBlock`
/// in place of its kill or timeout.
fn cut_short(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECANCELED | libc::EINTR | libc::EAGAIN)
    )
}

/// std's error for a socket timeout on Unix: `WouldBlock` (EAGAIN).
fn timed_out_error(direction: Direction) -> io::Error {
    let what = match direction {
        Direction::Read => "read timed out (the socket's read timeout expired)",
        Direction::Write => "write timed out (the socket's write timeout expired)",
    };
    io::Error::new(io::ErrorKind::WouldBlock, what)
}
