//! The epoll fallback: readiness plus nonblocking syscalls.
//!
//! Used where io_uring cannot be set up (`docs/design/DESIGN.md` §4). It offers the same
//! methods as `uring.rs`, so the loop above is identical on both.
//!
//! # How an op runs
//!
//! ```text
//!  push ──► attempt the syscall now ──Done──► ready queue (CQE-like)
//!                 │ EAGAIN
//!                 ▼
//!           fd's waiter list ──► epoll interest = union of waiters' directions
//!                 ▲                      │ readiness (epoll_wait, one per iteration)
//!                 └──── still EAGAIN ◄── attempt again ──Done──► ready queue
//! ```
//!
//! * Recv/Send use `MSG_DONTWAIT`; Read/Write/Accept/Connect need the fd in
//!   `O_NONBLOCK` mode, which push sets (readiness-based runtimes all do).
//! * `Timeout` ops are deadlines checked around each wait; `Nop` and
//!   `Close` complete at once; multishot accept accepts until EAGAIN on each
//!   readiness and stays armed.
//! * Cancel removes the op from its waiter list and completes it with
//!   `-ECANCELED`; no kernel object refers to user memory, so L3's drain is
//!   immediate. L1 still binds: until the completion is popped, the backend
//!   may read or write the op's memory in a syscall.
//! * Nothing here allocates per op in steady state: op records are indexed
//!   by the op's slab index, waiter lists are inline `SmallVec`s.
//!
//! # Differences from io_uring a caller may notice
//!
//! * **fd flags.** io_uring works on blocking fds; readiness cannot, so
//!   Read/Write/Accept/Connect switch the fd to `O_NONBLOCK` (a property of
//!   the open file description, shared with `dup`s). green-core owns its
//!   sockets, so this is invisible there.
//! * **Ordering.** Two ops waiting on one fd are attempted in submission
//!   order on each readiness event; io_uring gives no stronger promise.
//! * **Regular files.** They are always "ready" and cannot be registered
//!   with epoll; their reads and writes simply run (and may block briefly)
//!   at push time, as they would in any readiness-based runtime.
//! * **Cancel.** Always wins unless the op already completed: nothing is
//!   half-done in a kernel queue, so `-ECANCELED` arrives on the next
//!   iteration. io_uring may instead deliver the real result (the race the
//!   loop's contract allows).
//! * **Timeout ops.** Checked around each wait, whose timeout is exact with
//!   `epoll_pwait2` (Linux 5.11) and rounded up to 1 ms before it; they
//!   never fire early.
//! * **Raw SQEs.** `Loop::submit_entry` is refused with `Unsupported`.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use io_uring::opcode;
use smallvec::SmallVec;

use super::{sys, BackendKind, Cqe, Features};
use crate::op::{
    accept, close, connect, msg, poll_add, read, recv, send, timeout, write, Attempt, Op,
    CQE_F_MORE,
};
use crate::token::Key;

/// One op the backend is responsible for.
struct EOp {
    user_data: u64,
    op: Op,
    /// Connect: the first `connect(2)` returned EINPROGRESS.
    connect_started: bool,
    /// Listed in its fd's waiter list.
    waiting: bool,
    /// Timeout ops: when to complete with `-ETIME`.
    deadline: Option<Instant>,
}

/// Waiters of one fd and what epoll currently watches for it.
#[derive(Default)]
struct FdState {
    waiters: SmallVec<[u32; 4]>,
    registered: u32,
}

/// The epoll backend.
pub(crate) struct Epoll {
    /// The epoll instance. Level-triggered: an fd stays reported while it is
    /// ready, so a waiter that did not drain it is simply retried next time
    /// (edge-triggered mode would need every waiter to read to EAGAIN).
    epfd: OwnedFd,
    /// Indexed by the op's slab index (low 32 bits of its user_data).
    ops: Vec<Option<EOp>>,
    /// Indexed by fd number.
    fds: Vec<FdState>,
    /// Pending `Timeout` ops (slab indices); scanned around each wait.
    timeouts: Vec<u32>,
    /// Completions not yet dispatched, in completion order. Preallocated
    /// so the first iterations do not allocate either.
    pub(crate) ready: VecDeque<Cqe>,
    /// The `epoll_wait` output buffer. A fixed size is fine: events left
    /// over stay ready (level-triggered) and come back next iteration.
    events: Vec<libc::epoll_event>,
    /// `epoll_wait` calls, reported as `Stats::enter_calls`.
    pub(crate) enter_calls: u64,
    /// Whether `epoll_pwait2` (Linux 5.11, a nanosecond timeout) may be
    /// tried; cleared for good by its first `ENOSYS`, after which waits
    /// round up to whole milliseconds.
    pwait2: bool,
    /// Ops pushed and not yet completed; must be zero after `shutdown` (L3).
    in_flight: usize,
    /// The fork generation this instance was created in (F1, `sys.rs`).
    pub(crate) born: u64,
}

impl Epoll {
    /// Creates the epoll instance. Close-on-exec, like every fd the loop
    /// creates, so a forked-and-exec'd child does not inherit it.
    pub(crate) fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointers; returns a new fd or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        tracing::debug!("epoll backend ready");
        Ok(Epoll {
            // SAFETY: `fd` is a fresh descriptor nobody else owns.
            epfd: unsafe { OwnedFd::from_raw_fd(fd) },
            ops: Vec::new(),
            fds: Vec::new(),
            timeouts: Vec::new(),
            ready: VecDeque::with_capacity(256),
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 256],
            enter_calls: 0,
            pwait2: true,
            in_flight: 0,
            born: super::sys::fork_generation(),
        })
    }

    /// What the emulation supports, reported like io_uring's probe.
    pub(crate) fn features() -> Features {
        let mut f = Features::empty(BackendKind::Epoll);
        for code in [
            opcode::Nop::CODE,
            opcode::Read::CODE,
            opcode::Write::CODE,
            opcode::Recv::CODE,
            opcode::Send::CODE,
            opcode::SendMsg::CODE,
            opcode::RecvMsg::CODE,
            opcode::Accept::CODE,
            opcode::Connect::CODE,
            opcode::PollAdd::CODE,
            opcode::Timeout::CODE,
            opcode::Close::CODE,
            opcode::AsyncCancel::CODE,
        ] {
            f.set_supported(code);
        }
        // Multishot accept is emulated (accept until EAGAIN per readiness),
        // so green-core can use one code path on both backends.
        f.multishot_accept = true;
        f
    }

    /// Takes over `op` under `user_data` and makes a first attempt.
    ///
    /// # Safety
    ///
    /// * The op's memory stays valid until its final completion is popped (L1).
    pub(crate) unsafe fn push(&mut self, user_data: u64, op: &Op) -> io::Result<()> {
        let idx = Key::unpack(user_data).idx as usize;
        // Readiness-driven syscalls must not block the loop's thread.
        match *op {
            Op::Read { fd, .. }
            | Op::Write { fd, .. }
            | Op::Accept { fd, .. }
            | Op::AcceptMulti { fd, .. }
            | Op::Connect { fd, .. } => {
                sys::set_nonblocking(fd)?;
            }
            _ => {}
        }
        // A Timeout's timespec is read once, now: after this the backend
        // holds no pointer into caller memory for it.
        let deadline = match *op {
            // SAFETY: the caller keeps `ts` valid (L1); it is read only here.
            Op::Timeout { ts } => Some(Instant::now() + unsafe { timeout::read(ts) }.to_duration()),
            _ => None,
        };
        // The op table mirrors the loop's slab, so it grows to the same
        // high-water mark and then never allocates again.
        if self.ops.len() <= idx {
            self.ops.resize_with(idx + 1, || None);
        }
        debug_assert!(
            self.ops[idx].is_none(),
            "op slot {idx} reused while in flight (L2)"
        );
        // Copy the description: the pointers inside stay borrowed (L1),
        // the enum itself is ours.
        self.ops[idx] = Some(EOp {
            user_data,
            op: *op,
            connect_started: false,
            waiting: false,
            deadline,
        });
        self.in_flight += 1;
        // Timeouts wait for the clock, not for an fd: they are checked
        // around each `epoll_wait` instead of being attempted.
        if deadline.is_some() {
            self.timeouts.push(idx as u32);
            return Ok(());
        }
        // First attempt right away: a socket with data already buffered
        // completes without an epoll round trip (its completion is still
        // only dispatched by the next iteration, like io_uring's).
        self.drive(idx as u32);
        Ok(())
    }

    /// Attempts op `idx` until it would block; completes or (re)parks it.
    ///
    /// Loops only for multishot accept, which keeps accepting until the
    /// backlog is empty; every other op makes exactly one attempt.
    fn drive(&mut self, idx: u32) {
        loop {
            let Some(e) = self.ops[idx as usize].as_mut() else {
                return;
            };
            // SAFETY: the op is in flight, so its memory is valid (L1).
            let attempt = unsafe { attempt_op(&e.op, &mut e.connect_started) };
            match (attempt, e.op) {
                // Multishot accept: report this connection and keep going.
                (Attempt::Done(fd), Op::AcceptMulti { .. }) if fd >= 0 => {
                    let user_data = e.user_data;
                    self.ready.push_back(Cqe {
                        user_data,
                        result: fd,
                        flags: CQE_F_MORE,
                    });
                }
                (Attempt::Done(res), _) => {
                    self.complete(idx, res);
                    return;
                }
                (Attempt::WouldBlock, _) => {
                    if let Err(err) = self.park(idx) {
                        // Not pollable (e.g. EPERM for a regular file, which
                        // never returns EAGAIN anyway): report the error.
                        self.complete(idx, -err.raw_os_error().unwrap_or(libc::EIO));
                    }
                    return;
                }
            }
        }
    }

    /// Removes op `idx` and queues its final completion.
    fn complete(&mut self, idx: u32, result: i32) {
        // `take` ends the backend's use of the op's memory: after this no
        // syscall here touches it again (L1 is released with the CQE).
        let Some(e) = self.ops[idx as usize].take() else {
            return;
        };
        if e.waiting {
            if let Some(fd) = op_fd(&e.op) {
                self.unpark(fd, idx);
            }
        }
        if e.deadline.is_some() {
            self.timeouts.retain(|&i| i != idx);
        }
        self.in_flight -= 1;
        // Flags 0: no MORE, so the loop frees the op's slot (L2).
        self.ready.push_back(Cqe {
            user_data: e.user_data,
            result,
            flags: 0,
        });
    }

    /// Lists op `idx` as waiting for readiness on its fd.
    fn park(&mut self, idx: u32) -> io::Result<()> {
        let e = self.ops[idx as usize].as_mut().expect("parking a live op");
        if e.waiting {
            return Ok(());
        }
        let fd = op_fd(&e.op).expect("only fd ops wait for readiness");
        e.waiting = true;
        let slot = fd as usize;
        if self.fds.len() <= slot {
            self.fds.resize_with(slot + 1, FdState::default);
        }
        // Ops already waiting on this fd number may have waited on a file
        // that was closed behind the loop's back (the kernel then dropped
        // its registration) while the number now names another file: they
        // would read the new file's data. Fail them with EBADF instead.
        if self.fds[slot].registered != 0
            && !self.fds[slot].waiters.is_empty()
            && self.registration_vanished(fd)
        {
            let stale: SmallVec<[u32; 4]> = self.fds[slot].waiters.drain(..).collect();
            self.fds[slot].registered = 0;
            for old in stale {
                self.complete(old, -libc::EBADF);
            }
        }
        // Inline capacity 4 covers the usual reader + writer per fd; more
        // waiters spill to the heap once and keep that capacity.
        self.fds[slot].waiters.push(idx);
        // Re-register even if the interest looks unchanged: the fd may have
        // been closed (the kernel then drops its registration) and its
        // number reused by another file since we last registered it.
        let res = self.update(fd, true);
        // Registration failed: undo the bookkeeping so the op is not left
        // waiting for an event that can never come.
        if res.is_err() {
            self.unpark(fd, idx);
            if let Some(e) = self.ops[idx as usize].as_mut() {
                e.waiting = false;
            }
        }
        res
    }

    /// Whether epoll no longer knows `fd` under our registration: the file
    /// it named was closed (a MOD with the same interest fails with ENOENT).
    fn registration_vanished(&self, fd: RawFd) -> bool {
        let mut ev = libc::epoll_event {
            events: self.fds[fd as usize].registered,
            u64: fd as u64,
        };
        // SAFETY: `ev` is a live epoll_event; epfd is our epoll instance.
        let r = unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), libc::EPOLL_CTL_MOD, fd, &mut ev) };
        r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOENT)
    }

    /// Removes op `idx` from `fd`'s waiters and shrinks the interest set
    /// (an fd with no waiters is removed from epoll altogether, so a closed
    /// and reused fd number never inherits a stale registration).
    fn unpark(&mut self, fd: RawFd, idx: u32) {
        if let Some(st) = self.fds.get_mut(fd as usize) {
            st.waiters.retain(|i| *i != idx);
        }
        if let Some(e) = self.ops[idx as usize].as_mut() {
            e.waiting = false;
        }
        let _ = self.update(fd, false);
    }

    /// Makes epoll's interest for `fd` the union of its waiters' directions.
    ///
    /// ADD/MOD/DEL are chosen from what we last registered; EEXIST and
    /// ENOENT repair the cases where the kernel's view drifted because the
    /// user closed an fd behind our back.
    fn update(&mut self, fd: RawFd, force: bool) -> io::Result<()> {
        let Some(st) = self.fds.get(fd as usize) else {
            return Ok(());
        };
        let want = st
            .waiters
            .iter()
            .filter_map(|&i| self.ops[i as usize].as_ref())
            .fold(0u32, |acc, e| acc | interest(&e.op));
        // Unchanged interest: skip the syscall (the common case when a
        // reader re-parks after a partial read).
        if want == st.registered && !force {
            return Ok(());
        }
        // The event's data is the fd itself: readiness is per fd, and the
        // fd table says which ops wait on it.
        let mut ev = libc::epoll_event {
            events: want,
            u64: fd as u64,
        };
        let epfd = self.epfd.as_raw_fd();
        let ctl = |op: libc::c_int, ev: &mut libc::epoll_event| {
            // SAFETY: `ev` is a live epoll_event; epfd is our epoll instance.
            let r = unsafe { libc::epoll_ctl(epfd, op, fd, ev) };
            if r < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        let res = if want == 0 {
            // A closed fd was already dropped from the set by the kernel.
            let _ = ctl(libc::EPOLL_CTL_DEL, &mut ev);
            Ok(())
        } else if st.registered == 0 && !force {
            match ctl(libc::EPOLL_CTL_ADD, &mut ev) {
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                    ctl(libc::EPOLL_CTL_MOD, &mut ev)
                }
                r => r,
            }
        } else {
            // ENOENT: the fd was closed and its number reused; add afresh.
            match ctl(libc::EPOLL_CTL_MOD, &mut ev) {
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    ctl(libc::EPOLL_CTL_ADD, &mut ev)
                }
                r => r,
            }
        };
        // Remember what epoll now watches only if the call worked, so a
        // failed MOD is retried (as ADD or MOD) the next time.
        match res {
            Ok(()) => {
                self.fds[fd as usize].registered = want;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Completes op `user_data` with `-ECANCELED` unless it already finished.
    pub(crate) fn cancel(&mut self, user_data: u64) {
        // The full user_data (index + generation) must match: a cancel for
        // an op that already completed must not hit the slot's next tenant.
        let idx = Key::unpack(user_data).idx;
        match self.ops.get(idx as usize) {
            Some(Some(e)) if e.user_data == user_data => self.complete(idx, -libc::ECANCELED),
            _ => {}
        }
    }

    /// One `epoll_wait` bounded by `timeout` and by pending `Timeout` ops,
    /// then attempts for every op whose fd became ready.
    pub(crate) fn enter(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        // Expired op timeouts complete before we decide whether to sleep.
        self.expire_timeouts();
        // Undispatched completions mean there is work now: poll, don't sleep.
        let mut timeout = if self.ready.is_empty() {
            timeout
        } else {
            Some(Duration::ZERO)
        };
        // A pending Timeout op may be due before the loop's own deadline;
        // the wait must not overshoot it.
        if let Some(first) = self
            .timeouts
            .iter()
            .filter_map(|&i| self.ops[i as usize].as_ref()?.deadline)
            .min()
        {
            let d = first.saturating_duration_since(Instant::now());
            timeout = Some(timeout.map_or(d, |t| t.min(d)));
        }
        self.enter_calls += 1;
        let n = self.wait(timeout);
        // EINTR (a signal handler ran) is an ordinary early wake-up; any
        // other error means the epoll fd itself is broken.
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                tracing::error!(error = %e, "epoll_wait failed");
                return Err(e);
            }
        }
        // Attempt every waiter of every ready fd. Copying the waiter list
        // (inline, no allocation) lets `drive` edit the original.
        for i in 0..n.max(0) as usize {
            let ev = self.events[i];
            let (fd, revents) = (ev.u64 as RawFd, ev.events);
            let waiters: SmallVec<[u32; 4]> = match self.fds.get(fd as usize) {
                Some(st) => st.waiters.clone(),
                None => continue,
            };
            for idx in waiters {
                let Some(e) = self.ops[idx as usize].as_ref() else {
                    continue;
                };
                // Errors and hang-ups wake everyone: the syscall reports them.
                let wake = revents & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0
                    || revents & interest(&e.op) != 0;
                if wake {
                    self.drive(idx);
                }
            }
        }
        // The wait may have ended because an op timeout came due.
        self.expire_timeouts();
        Ok(())
    }

    /// One wait for readiness: `epoll_pwait2` with the exact timeout where
    /// the kernel has it (a timer 65 µs away is not slept as 1 ms), else
    /// `epoll_wait` with the timeout rounded up to whole milliseconds
    /// (waking early would only spin until the deadline). Returns the
    /// number of events, or -1 with `errno` set.
    fn wait(&mut self, timeout: Option<Duration>) -> libc::c_int {
        let max = self.events.len() as libc::c_int;
        if self.pwait2 {
            let ts = timeout.map(|d| libc::timespec {
                tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: libc::c_long::from(d.subsec_nanos() as i32), // < 10^9
            });
            let ts_ptr = ts
                .as_ref()
                .map_or(std::ptr::null(), |t| t as *const libc::timespec);
            tracing::trace!(?timeout, "epoll_pwait2");
            // Called through syscall(2) rather than glibc's wrapper, which
            // older C libraries lack. No signal mask (null), as epoll_wait.
            // `ts_ptr` is null or points at `ts`, alive for the call.
            // SAFETY: `events` is a live buffer of `max` epoll_events.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_epoll_pwait2,
                    self.epfd.as_raw_fd(),
                    self.events.as_mut_ptr(),
                    max,
                    ts_ptr,
                    std::ptr::null::<libc::sigset_t>(),
                    0usize,
                )
            };
            if n >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ENOSYS) {
                return n as libc::c_int;
            }
            tracing::debug!("epoll_pwait2 unavailable (ENOSYS); waits round up to 1 ms");
            self.pwait2 = false;
        }
        let ms: libc::c_int = match timeout {
            None => -1,
            Some(d) => {
                // From nanoseconds: microseconds would truncate a remainder under
                // 1 µs to a 0 ms wait, a spin until the deadline.
                let ms = d.as_nanos().div_ceil(1_000_000);
                ms.min(i32::MAX as u128) as libc::c_int
            }
        };
        tracing::trace!(ms, "epoll_wait");
        // SAFETY: `events` is a live buffer of `max` epoll_events.
        unsafe { libc::epoll_wait(self.epfd.as_raw_fd(), self.events.as_mut_ptr(), max, ms) }
    }

    /// Completes `Timeout` ops whose deadline has passed, with `-ETIME`.
    ///
    /// A linear scan: op timeouts are rare (the loop's own timers live in
    /// the wheel), so a heap would cost more than it saves.
    fn expire_timeouts(&mut self) {
        if self.timeouts.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut i = 0;
        while i < self.timeouts.len() {
            let idx = self.timeouts[i];
            let due = self.ops[idx as usize]
                .as_ref()
                .and_then(|e| e.deadline)
                .is_some_and(|d| d <= now);
            if due {
                // `complete` removes it from `timeouts`.
                self.complete(idx, -libc::ETIME);
            } else {
                i += 1;
            }
        }
    }

    /// L3 on epoll: cancel everything still waiting. Nothing is in the
    /// kernel, so this finishes at once.
    pub(crate) fn shutdown(&mut self, targets: &[u64]) {
        for &t in targets {
            self.cancel(t);
        }
        debug_assert_eq!(self.in_flight, 0, "epoll ops left after shutdown");
    }
}

/// The fd an op waits on, if it waits at all.
fn op_fd(op: &Op) -> Option<RawFd> {
    match *op {
        Op::Read { fd, .. }
        | Op::Write { fd, .. }
        | Op::Recv { fd, .. }
        | Op::Send { fd, .. }
        | Op::SendMsg { fd, .. }
        | Op::RecvMsg { fd, .. }
        | Op::Accept { fd, .. }
        | Op::AcceptMulti { fd, .. }
        | Op::Connect { fd, .. }
        | Op::PollAdd { fd, .. } => Some(fd),
        Op::Nop | Op::Timeout { .. } | Op::Close { .. } => None,
    }
}

/// The epoll events an op waits for.
fn interest(op: &Op) -> u32 {
    match *op {
        Op::Read { .. }
        | Op::Recv { .. }
        | Op::RecvMsg { .. }
        | Op::Accept { .. }
        | Op::AcceptMulti { .. } => libc::EPOLLIN as u32,
        Op::Write { .. } | Op::Send { .. } | Op::SendMsg { .. } | Op::Connect { .. } => {
            libc::EPOLLOUT as u32
        }
        // POLL* and EPOLL* share values for these bits.
        // EPOLLHUP is reported whether asked for or not, but asking makes
        // the interest non-zero, so even a poll for no event (or only for
        // hang-up and error) is registered and completes on hang-up.
        Op::PollAdd { events, .. } => {
            events & (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLPRI | libc::EPOLLRDHUP) as u32
                | libc::EPOLLHUP as u32
        }
        Op::Nop | Op::Timeout { .. } | Op::Close { .. } => 0,
    }
}

/// Runs one nonblocking attempt of `op`.
///
/// # Safety
///
/// * The op is in flight, so the memory it points at is valid (L1).
unsafe fn attempt_op(op: &Op, connect_started: &mut bool) -> Attempt {
    match *op {
        Op::Nop => Attempt::Done(0),
        Op::Read {
            fd,
            buf,
            len,
            offset,
        } => {
            // SAFETY: the buffer is valid for the op's flight (L1, this fn's contract).
            unsafe { read::attempt(fd, buf, len, offset) }
        }
        Op::Write {
            fd,
            buf,
            len,
            offset,
        } => {
            // SAFETY: the buffer is valid for the op's flight (L1, this fn's contract).
            unsafe { write::attempt(fd, buf, len, offset) }
        }
        Op::Recv {
            fd,
            buf,
            len,
            flags,
        } => {
            // SAFETY: the buffer is valid for the op's flight (L1, this fn's contract).
            unsafe { recv::attempt(fd, buf, len, flags) }
        }
        Op::Send {
            fd,
            buf,
            len,
            flags,
        } => {
            // SAFETY: the buffer is valid for the op's flight (L1, this fn's contract).
            unsafe { send::attempt(fd, buf, len, flags) }
        }
        Op::SendMsg { fd, msg, flags } => {
            // SAFETY: the header and its buffers are valid for the op's flight (L1).
            unsafe { msg::send_attempt(fd, msg, flags) }
        }
        Op::RecvMsg { fd, msg, flags } => {
            // SAFETY: the header and its buffers are valid for the op's flight (L1).
            unsafe { msg::recv_attempt(fd, msg, flags) }
        }
        Op::Accept {
            fd,
            addr,
            addrlen,
            flags,
        } => {
            // SAFETY: addr/addrlen are valid or null for the op's flight (L1).
            unsafe { accept::attempt(fd, addr, addrlen, flags) }
        }
        Op::AcceptMulti { fd, flags } => {
            // SAFETY: null out-parameters are allowed by accept4(2); nothing is borrowed (L1 trivially).
            unsafe { accept::attempt(fd, std::ptr::null_mut(), std::ptr::null_mut(), flags) }
        }
        Op::Connect { fd, addr, addrlen } => {
            // SAFETY: addr is valid for the op's flight (L1, this fn's contract).
            unsafe { connect::attempt(fd, addr, addrlen, connect_started) }
        }
        Op::PollAdd { fd, events } => poll_add::attempt(fd, events),
        Op::Close { fd } => close::attempt(fd),
        // Timeouts never reach here: they complete from `expire_timeouts`.
        Op::Timeout { .. } => Attempt::WouldBlock,
    }
}
