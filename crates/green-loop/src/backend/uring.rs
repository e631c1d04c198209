//! The io_uring backend: ring setup and probe, submission, reaping, drain.
//!
//! # SQ/CQ flow
//!
//! ```text
//!  Loop::submit ──push──► SQ ring (shared mmap) ─┐
//!    (any number per iteration; a full SQ is    │ one io_uring_enter per iteration:
//!     flushed with an extra enter, never dropped)│ to_submit = SQ len, GETEVENTS,
//!                                                │ min_complete = 1 (if blocking),
//!                                                ▼ EXT_ARG timespec = next timer
//!                                            [ kernel ]
//!                                                │
//!  Loop dispatch ◄──pop── CQ ring (shared mmap), one CQE at a time
//!    handler(&Loop, Completion)  │   reserved user_data CQEs are dropped here
//!                                └── ready (VecDeque) first: CQEs reaped
//!                                    early, to make CQ room (EBUSY) or by a
//!                                    synchronous cancel
//! ```
//!
//! # `user_data` encoding
//!
//! ```text
//!   63  62                      32 31                       0
//!  +---+--------------------------+--------------------------+
//!  | 0 |  slab generation (31 b)  |   slab index (32 bits)   |   an op's token (OpId)
//!  +---+--------------------------+--------------------------+
//!  | 1 |  1 1 1 ...                                    1  x  |   reserved: see below
//!  +---+-----------------------------------------------------+
//! ```
//!
//! Tokens never have the top bit set (token.rs masks generations to 31
//! bits), so the reserved values below can never collide with an op.
//!
//! # Setup flags
//!
//! Tried from best to plainest, each degrading on `EINVAL`:
//! 1. `SINGLE_ISSUER | DEFER_TASKRUN | SUBMIT_ALL` (6.1+): completions are
//!    posted only when we enter with GETEVENTS (we always do), no IPIs.
//! 2. `COOP_TASKRUN | SUBMIT_ALL` (5.19+).
//! 3. No flags.
//!
//! # Why it is built this way
//!
//! * **One enter per iteration.** Pushing never enters the kernel (except
//!   on a full SQ); the iteration's `enter` submits the whole batch and
//!   waits in the same syscall, which is where batching beats epoll: N
//!   greenlets' sends cost one syscall.
//! * **Our own `io_uring_getevents_arg`.** io-uring's `SubmitArgs` does not
//!   let us force GETEVENTS for a zero-wait poll, which DEFER_TASKRUN needs
//!   to post completions; calling `Submitter::enter` directly does.
//! * **Popping one CQE at a time.** Each CQE is copied out and its slot
//!   handed back to the kernel before its handler runs, so handlers run with
//!   no ring borrow held, may submit more, and may switch fibers. Copying
//!   them into a queue at every enter cost a push and a pop per completion;
//!   the queue (`ready`) now holds only what must leave the CQ early: a
//!   submit that finds the CQ full (EBUSY) reaps to make room, and a
//!   synchronous cancel reaps its target's CQE.
//! * **Draining on drop (L3).** The kernel would cancel requests when the
//!   ring fd closes, but asynchronously: a buffer on a greenlet stack could
//!   be written after our `Drop` returned. So we cancel and wait ourselves.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, IoUring, Probe};

use super::{diagnose_setup_error, io_uring_disabled_sysctl, BackendKind, Cqe, Features};
use crate::op::{async_cancel, Timespec};

/// `user_data` of our own `ASYNC_CANCEL` SQEs; their CQEs are ignored (the
/// target's own CQE is what matters, L2).
pub(crate) const CANCEL_USERDATA: u64 = u64::MAX;
/// `user_data` of the timeout SQE that bounds a wait when the kernel lacks
/// `IORING_FEAT_EXT_ARG`; its CQE is ignored.
pub(crate) const TIMEOUT_USERDATA: u64 = u64::MAX - 1;

/// `IORING_ENTER_GETEVENTS`: wait for / flush completions (and run deferred
/// task work under DEFER_TASKRUN).
const ENTER_GETEVENTS: u32 = 1 << 0;
/// `IORING_ENTER_EXT_ARG`: the last argument is an `io_uring_getevents_arg`.
const ENTER_EXT_ARG: u32 = 1 << 3;

/// The kernel's `struct io_uring_getevents_arg` (24 bytes). We build it
/// ourselves so the timespec pointer we pass is one we own (L1).
#[repr(C)]
#[derive(Default)]
struct GetEventsArg {
    sigmask: u64,
    sigmask_sz: u32,
    min_wait_usec: u32,
    ts: u64,
}

/// The io_uring backend.
pub(crate) struct Uring {
    ring: IoUring,
    /// Completions taken out of the CQ before their turn (see the module
    /// docs), dispatched before the CQ's own: a submit that hits EBUSY makes
    /// room without calling user handlers.
    ready: VecDeque<Cqe>,
    pub(crate) features: Features,
    pub(crate) enter_calls: u64,
    /// Ops pushed whose final CQE has not been reaped (L1, L3).
    in_flight: usize,
    /// The wait bound handed to the kernel. Boxed so its address is stable
    /// while the kernel may read it (L1, for the fallback timeout SQE).
    wait_ts: Box<Timespec>,
    /// The fork generation this ring was set up in (F1, `sys.rs`).
    pub(crate) born: u64,
}

impl Uring {
    /// Sets up a ring of `entries` SQEs, using the best flags the kernel
    /// accepts, and probes it.
    ///
    /// # Errors
    ///
    /// A message naming the cause and the fix (sysctl, seccomp, kernel).
    pub(crate) fn new(entries: u32) -> io::Result<Uring> {
        let mut last = None;
        for level in 0..3 {
            let mut b = IoUring::builder();
            match level {
                0 => {
                    b.setup_single_issuer()
                        .setup_defer_taskrun()
                        .setup_submit_all();
                }
                1 => {
                    b.setup_coop_taskrun().setup_submit_all();
                }
                _ => {}
            }
            // EINVAL is how older kernels reject unknown setup flags; any
            // other error is not about flags and is reported at once.
            match b.build(entries) {
                Ok(ring) => return Ok(Uring::from_ring(ring, level)),
                // EINVAL: this kernel does not know a flag; try plainer.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) && level < 2 => {
                    tracing::debug!(level, "io_uring setup flags rejected; degrading");
                    last = Some(e);
                }
                Err(e) => {
                    let msg = diagnose_setup_error(e.raw_os_error(), io_uring_disabled_sysctl());
                    return Err(io::Error::new(e.kind(), msg));
                }
            }
        }
        let e = last.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EINVAL));
        Err(io::Error::new(
            e.kind(),
            diagnose_setup_error(e.raw_os_error(), io_uring_disabled_sysctl()),
        ))
    }

    fn from_ring(ring: IoUring, level: u32) -> Uring {
        let mut features = Features::empty(BackendKind::IoUring);
        features.single_issuer = level == 0;
        features.defer_taskrun = level == 0;
        features.coop_taskrun = level == 1;
        features.submit_all = level <= 1;
        features.ext_arg = ring.params().is_feature_ext_arg();
        features.sq_entries = ring.params().sq_entries();
        // The probe lists the opcodes this kernel implements; green-core
        // consults it (through `Features::supports`) before using one.
        let mut probe = Probe::new();
        if ring.submitter().register_probe(&mut probe).is_ok() {
            for code in 0..=255u8 {
                if probe.is_supported(code) {
                    features.set_supported(code);
                }
            }
        } else {
            // Pre-5.6 kernels cannot be probed; they have at least these.
            for code in [
                opcode::Nop::CODE,
                opcode::Timeout::CODE,
                opcode::PollAdd::CODE,
                opcode::AsyncCancel::CODE,
            ] {
                features.set_supported(code);
            }
        }
        // Multishot accept arrived in 5.19 together with IORING_OP_SOCKET,
        // which the probe can see.
        features.multishot_accept = features.supports(opcode::Socket::CODE);
        tracing::debug!(?features, "io_uring backend ready");
        Uring {
            ring,
            ready: VecDeque::with_capacity(256),
            features,
            enter_calls: 0,
            in_flight: 0,
            wait_ts: Box::new(Timespec::default()),
            born: super::sys::fork_generation(),
        }
    }

    /// Queues an op's SQE (its `user_data` already set). A full SQ is
    /// flushed to the kernel and the push retried: ops are never dropped (L6).
    pub(crate) fn push(&mut self, entry: squeue::Entry) -> io::Result<()> {
        // Count only after the SQE is really in the SQ (L6): a failed push
        // leaves nothing for the drain to wait for.
        self.push_raw(&entry)?;
        self.in_flight += 1;
        Ok(())
    }

    fn push_raw(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: the memory `entry` points at is kept alive until its
            // CQE by the caller's contract (L1); only this thread touches
            // the SQ (L5).
            let pushed = unsafe { self.ring.submission().push(entry) };
            if pushed.is_ok() {
                return Ok(());
            }
            // SQ full: hand what is queued to the kernel, then retry.
            self.flush()?;
        }
    }

    /// Submits the SQ without waiting (used only when the SQ is full).
    fn flush(&mut self) -> io::Result<()> {
        loop {
            self.enter_calls += 1;
            match self.ring.submitter().submit() {
                Ok(_) => return Ok(()),
                Err(e) => match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    // EBUSY: the CQ (or its overflow list) is full. Reap to
                    // make room; the SQEs are still queued (L6), retry.
                    Some(libc::EBUSY) => self.reap_with_getevents(),
                    _ => {
                        tracing::error!(error = %e, "io_uring submit failed; ops stay queued");
                        return Err(e);
                    }
                },
            }
        }
    }

    /// Enters once with GETEVENTS (flushes overflowed CQEs), then reaps
    /// into `ready`.
    fn reap_with_getevents(&mut self) {
        self.enter_calls += 1;
        // SAFETY: no argument pointer; submits nothing, waits for nothing.
        let _ = unsafe {
            self.ring
                .submitter()
                .enter::<libc::sigset_t>(0, 0, ENTER_GETEVENTS, None)
        };
        self.reap();
    }

    /// Pushes an `ASYNC_CANCEL` for `target`. Its own CQE is ignored.
    pub(crate) fn cancel(&mut self, target: u64) -> io::Result<()> {
        self.push_raw(&async_cancel::sqe(target).user_data(CANCEL_USERDATA))
    }

    /// Cancels `target` before returning, as far as the kernel allows: the
    /// queued SQEs are submitted (the target's own, and any earlier
    /// `ASYNC_CANCEL`), `IORING_REGISTER_SYNC_CANCEL` (6.0+) removes the
    /// request, and one GETEVENTS enter runs the task work that frees it,
    /// so the files it held are released now (a listening socket's port
    /// with them). Its CQE is reaped into `ready` and dispatched as usual.
    /// On older kernels this is [`cancel`](UringBackend::cancel) plus the
    /// submission, and the request goes when the kernel gets to it.
    pub(crate) fn cancel_now(&mut self, target: u64) -> io::Result<()> {
        self.flush()?;
        let synced = self.ring.submitter().register_sync_cancel(
            Some(io_uring::types::Timespec::new().sec(1)),
            io_uring::types::CancelBuilder::user_data(target),
        );
        match synced {
            Ok(()) => {}
            // Already gone (completed, or cancelled by an earlier request).
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => {
                tracing::debug!(error = %e, "sync cancel unavailable; cancelling asynchronously");
                self.cancel(target)?;
                self.flush()?;
            }
        }
        self.reap_with_getevents();
        Ok(())
    }

    /// One iteration's single `io_uring_enter`: submit everything queued and
    /// wait for at least one completion, bounded by `timeout`.
    pub(crate) fn enter(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        // Undispatched completions: do not sleep. CQEs already posted need
        // no check here: the kernel counts them against `min_complete` and
        // returns at once.
        let mut timeout = timeout;
        if !self.ready.is_empty() {
            timeout = Some(Duration::ZERO);
        }
        let wait = !matches!(timeout, Some(d) if d.is_zero());
        let mut flags = ENTER_GETEVENTS;
        let mut arg = GetEventsArg::default();
        if let (true, Some(d)) = (wait, timeout) {
            *self.wait_ts = Timespec::from(d);
            if self.features.ext_arg {
                flags |= ENTER_EXT_ARG;
                arg.ts = (&*self.wait_ts as *const Timespec) as u64;
            } else {
                // No EXT_ARG: a timeout SQE bounds the wait. The kernel
                // copies the timespec during this very enter; a stale one
                // firing later only causes a spurious wake-up.
                let sqe = crate::op::timeout::sqe(&*self.wait_ts).user_data(TIMEOUT_USERDATA);
                self.push_raw(&sqe)?;
            }
        }
        // `submission()` syncs the SQ tail on drop, so the kernel sees every
        // SQE pushed this iteration; all of them go in this one enter.
        let to_submit = self.ring.submission().len() as u32;
        // Blocking waits want one completion; the EXT_ARG timespec (or the
        // timeout SQE) ends the wait at the nearest timer.
        let min_complete = u32::from(wait);
        self.enter_calls += 1;
        tracing::trace!(to_submit, min_complete, ?timeout, "io_uring_enter");
        let res = if flags & ENTER_EXT_ARG != 0 {
            // SAFETY: `arg` is a live io_uring_getevents_arg and its `ts`
            // points at `self.wait_ts`, alive for the whole call.
            unsafe {
                self.ring
                    .submitter()
                    .enter(to_submit, min_complete, flags, Some(&arg))
            }
        } else {
            // SAFETY: no argument pointer is passed.
            unsafe {
                self.ring
                    .submitter()
                    .enter::<libc::sigset_t>(to_submit, min_complete, flags, None)
            }
        };
        let out = match res {
            Ok(_) => Ok(()),
            Err(e) => match e.raw_os_error() {
                // Timed out, interrupted by a signal, or the CQ is full: all
                // normal; the loop pops what is there and goes on.
                Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN) => {
                    Ok(())
                }
                _ => {
                    tracing::error!(error = %e, "io_uring_enter failed");
                    Err(e)
                }
            },
        };
        out
    }

    /// Completions waiting to be popped: an upper bound, since reserved
    /// CQEs in the ring are counted and then dropped by [`Uring::pop`].
    pub(crate) fn pending(&mut self) -> usize {
        self.ready.len() + self.ring.completion().len()
    }

    /// The next completion to dispatch: those reaped early first, then the
    /// CQ ring's in order.
    pub(crate) fn pop(&mut self) -> Option<Cqe> {
        if let Some(cqe) = self.ready.pop_front() {
            return Some(cqe);
        }
        // `completion()` syncs the CQ head on drop, handing the slot back to
        // the kernel as soon as the entry is copied out.
        let mut cq = self.ring.completion();
        cq.find_map(|cqe| take_cqe(&mut self.in_flight, &cqe))
    }

    /// Moves every CQE in the ring to `ready` (see the module docs).
    fn reap(&mut self) {
        let mut cq = self.ring.completion();
        for cqe in &mut cq {
            if let Some(cqe) = take_cqe(&mut self.in_flight, &cqe) {
                self.ready.push_back(cqe);
            }
        }
    }

    /// L3: cancel `targets` and reap until no op is in flight.
    pub(crate) fn shutdown(&mut self, targets: &[u64]) {
        for &t in targets {
            if let Err(e) = self.cancel(t) {
                tracing::error!(error = %e, "could not queue a cancel during drain");
            }
        }
        self.drain();
    }

    /// Waits until every pushed op's final CQE has been reaped. Never gives
    /// up silently: unmapping the ring or returning early while the kernel
    /// may still write into user memory would break L1.
    fn drain(&mut self) {
        let mut failures = 0u32;
        let mut rounds = 0u32;
        while self.in_flight > 0 {
            rounds += 1;
            if rounds % 50 == 0 {
                tracing::warn!(
                    in_flight = self.in_flight,
                    "still draining io_uring ops on drop"
                );
                // Re-cancel everything in case a cancel raced a re-arm.
                if self.features.supports(opcode::AsyncCancel::CODE) {
                    let _ = self.push_raw(&async_cancel::sqe_any().user_data(CANCEL_USERDATA));
                }
            }
            let entered = self.enter(Some(Duration::from_millis(100)));
            // The caller pops these after the drain (L7 closes their fds).
            self.reap();
            match entered {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures += 1;
                    if failures > 1000 {
                        // L1 would be violated by returning; aborting is the
                        // only safe exit (std does the same for poisoned TLS).
                        eprintln!("green-loop: cannot drain io_uring on drop ({e}); aborting");
                        std::process::abort();
                    }
                }
            }
        }
    }
}

/// A CQE copied out of the ring, or `None` for a reserved one (our own
/// cancels' and wait timeouts'). A final CQE leaves `in_flight`: from here on
/// the kernel holds nothing of its op (L1).
fn take_cqe(in_flight: &mut usize, cqe: &cqueue::Entry) -> Option<Cqe> {
    let user_data = cqe.user_data();
    if user_data >= TIMEOUT_USERDATA {
        return None;
    }
    if !cqueue::more(cqe.flags()) {
        *in_flight -= 1;
    }
    Some(Cqe {
        user_data,
        result: cqe.result(),
        flags: cqe.flags(),
    })
}

impl Drop for Uring {
    fn drop(&mut self) {
        // Safety net for L3: the loop normally drained already. A ring
        // inherited across fork is the parent's: its ops are not ours to
        // cancel, and nothing of this process is in flight on it (F1).
        if self.in_flight > 0 && self.born == super::sys::fork_generation() {
            let _ = self.push_raw(&async_cancel::sqe_any().user_data(CANCEL_USERDATA));
            self.drain();
        }
        // Only now does IoUring's own Drop unmap the rings and close the fd.
    }
}
