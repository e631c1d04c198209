//! The loop: one iteration = submit + wait (one syscall), dispatch
//! completions, fire timers, drain callbacks.
//!
//! # The clock
//!
//! [`Loop::now`] is read lazily: each iteration marks the cached instant
//! stale (at its start and again after its wait), and the first `now()`
//! after that reads the clock; later calls in the iteration return that
//! reading. An iteration with no timer pending never reads it (a loop
//! driving only I/O pays no clock read per iteration); one with timers reads
//! it to bound the wait and again to fire what came due.
//!
//! # Reference counting
//!
//! The loop is *alive* while any of these exist (gevent's `ref`):
//! referenced timers, referenced in-flight ops, pending callbacks, and
//! explicit holds ([`Loop::add_ref`]). Internal watchers (the wakeup eventfd
//! read, signalfd reads) are unreferenced. green-core's "this operation would
//! block forever" check relies on [`Loop::is_alive`] being exact.
//!
//! # Borrowing
//!
//! All methods take `&self`. State lives in `RefCell`s that are borrowed only
//! for short, handler-free sections, so a handler may call back into the
//! loop (submit, add timers, queue callbacks) and green-core may switch
//! fibers from inside a handler.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::{sys, Backend, BackendChoice, BackendKind, Features};
use crate::callback::{CallbackHandler, Callbacks};
use crate::op::{Completion, OpSlot, CQE_F_MORE};
use crate::signal::SignalState;
use crate::timer::{TimerHandler, Wheel};
use crate::token::{CallbackId, Key, OpId, Slab, TimerId};
use crate::wakeup;

/// Counters for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// `run_once` iterations completed.
    pub iterations: u64,
    /// `io_uring_enter` (or `epoll_wait`) syscalls, including extra ones
    /// forced by a full SQ.
    pub enter_calls: u64,
    /// Ops submitted (including internal ones).
    pub submitted: u64,
    /// Completions dispatched to handlers.
    pub completed: u64,
    /// Timers fired.
    pub timers_fired: u64,
    /// Callbacks run.
    pub callbacks_run: u64,
    /// Sum of [`Remote::wake`](crate::Remote::wake)/`run` calls observed
    /// (eventfd counter values read).
    pub wakeups: u64,
}

/// Configures and builds a [`Loop`].
#[derive(Clone, Debug)]
pub struct Builder {
    entries: u32,
    backend: BackendChoice,
    callback_count: usize,
    callback_time: Duration,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder {
            entries: 256,
            backend: BackendChoice::Auto,
            callback_count: 1024,
            callback_time: Duration::from_millis(2),
        }
    }
}

impl Builder {
    /// io_uring SQ size (rounded up to a power of two by the kernel).
    pub fn entries(mut self, entries: u32) -> Builder {
        self.entries = entries.max(1);
        self
    }

    /// Which backend to use (default: [`BackendChoice::Auto`]).
    pub fn backend(mut self, choice: BackendChoice) -> Builder {
        self.backend = choice;
        self
    }

    /// Bounds one callback drain: at most `count` callbacks and about
    /// `time` (checked every 64 callbacks), after which timers and
    /// completions are polled again.
    pub fn callback_budget(mut self, count: usize, time: Duration) -> Builder {
        self.callback_count = count.max(1);
        self.callback_time = time;
        self
    }

    /// Builds the loop.
    ///
    /// # Errors
    ///
    /// With [`BackendChoice::IoUring`], an error naming why io_uring is
    /// unavailable and how to fix it; otherwise syscall failures (epoll,
    /// eventfd).
    pub fn build(self) -> io::Result<Loop> {
        let backend = Backend::open(self.backend, self.entries)?;
        let features = backend.features();
        let kind = features.backend;
        let now = Instant::now();
        let inner = Rc::new(Inner {
            backend: RefCell::new(backend),
            ops: RefCell::new(Slab::new()),
            op_refs: Cell::new(0),
            timers: RefCell::new(Wheel::new(now)),
            callbacks: RefCell::new(Callbacks::new()),
            external_refs: Cell::new(0),
            now: Cell::new(now),
            now_stale: Cell::new(false),
            running: Cell::new(false),
            stop: Cell::new(false),
            stats: RefCell::new(Stats::default()),
            features,
            kind,
            callback_count: self.callback_count,
            callback_time: self.callback_time,
            remote: Arc::new(wakeup::Shared::new()?),
            wake_buf: Box::new(Cell::new(0)),
            wake_armed: Cell::new(false),
            wake_resignalled: Cell::new(0),
            signals: RefCell::new(Slab::new()),
            accept_handlers: RefCell::new(Slab::new()),
        });
        let lp = Loop { inner };
        lp.arm_wakeup()?;
        tracing::debug!(backend = ?kind, "event loop created");
        Ok(lp)
    }
}

pub(crate) struct Inner {
    pub(crate) backend: RefCell<Backend>,
    pub(crate) ops: RefCell<Slab<OpSlot>>,
    pub(crate) op_refs: Cell<usize>,
    timers: RefCell<Wheel>,
    callbacks: RefCell<Callbacks>,
    external_refs: Cell<usize>,
    now: Cell<Instant>,
    /// `now` predates this iteration's wait: the next [`Loop::now`] reads
    /// the clock (see the module docs).
    now_stale: Cell<bool>,
    running: Cell<bool>,
    stop: Cell<bool>,
    /// Borrowed only inside `stats_mut` and `Loop::stats` (no handler runs
    /// meanwhile). A `RefCell`, not a `Cell`: bumping one counter then
    /// writes one word, where a `Cell<Stats>` copies all seven out and back.
    stats: RefCell<Stats>,
    features: Features,
    kind: BackendKind,
    callback_count: usize,
    callback_time: Duration,
    pub(crate) remote: Arc<wakeup::Shared>,
    /// The wakeup eventfd read lands here (L4: freed after the drain).
    pub(crate) wake_buf: Box<Cell<u64>>,
    /// The wakeup eventfd read is in flight (one of `ops`).
    pub(crate) wake_armed: Cell<bool>,
    /// Wakes the loop sent itself for remote closures a drain left over
    /// (`wakeup.rs`): they raise the shared unread count like a `Remote`'s,
    /// and are taken out of `Stats::wakeups` again, since no `Remote` call
    /// made them. Only this thread touches it, so it lives here.
    pub(crate) wake_resignalled: Cell<u64>,
    pub(crate) signals: RefCell<Slab<SignalState>>,
    /// Handlers of multishot accepts (`op/borrowed.rs`), by the op's data.
    pub(crate) accept_handlers: RefCell<Slab<crate::op::borrowed::AcceptHandler>>,
}

impl Inner {
    pub(crate) fn stats_mut(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.stats.borrow_mut());
    }
}

/// The event loop. `!Send + !Sync`: it belongs to the thread that made it.
///
/// See the [crate docs](crate) for an overview and an example.
pub struct Loop {
    pub(crate) inner: Rc<Inner>,
}

impl std::fmt::Debug for Loop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loop")
            .field("backend", &self.inner.kind)
            .field("ref_count", &self.ref_count())
            .field("pending_callbacks", &self.inner.callbacks.borrow().len())
            .field("timers", &self.inner.timers.borrow().len())
            .field("ops", &self.inner.ops.borrow().len())
            .finish()
    }
}

/// Resets the re-entrancy flag even if a handler unwinds.
struct Running<'a>(&'a Cell<bool>);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

impl Loop {
    /// A loop with default settings ([`BackendChoice::Auto`]).
    ///
    /// # Errors
    ///
    /// Syscall failures while setting up the backend.
    pub fn new() -> io::Result<Loop> {
        Builder::default().build()
    }

    /// A [`Builder`].
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The backend this loop runs on.
    pub fn backend(&self) -> BackendKind {
        self.inner.kind
    }

    /// What the backend's probe found.
    pub fn features(&self) -> &Features {
        &self.inner.features
    }

    /// Counters (iterations, syscalls, ops); see [`Stats`].
    pub fn stats(&self) -> Stats {
        let mut s = *self.inner.stats.borrow();
        s.enter_calls = self.inner.backend.borrow().enter_calls();
        s
    }

    // ===== time =====

    /// The cached monotonic clock: the first call after an iteration's
    /// wait reads the clock, later ones in the same iteration return that
    /// reading (see the module docs).
    pub fn now(&self) -> Instant {
        if self.inner.now_stale.get() {
            self.update_now();
        }
        self.inner.now.get()
    }

    /// Refreshes [`Loop::now`] from the clock.
    pub fn update_now(&self) {
        self.inner.now.set(Instant::now());
        self.inner.now_stale.set(false);
    }

    // ===== liveness =====

    /// Whether anything referenced remains: timers, ops, callbacks, holds.
    pub fn is_alive(&self) -> bool {
        self.ref_count() > 0
    }

    /// Referenced timers + referenced ops + pending callbacks + holds.
    pub fn ref_count(&self) -> usize {
        self.inner.timers.borrow().referenced()
            + self.inner.op_refs.get()
            + self.inner.callbacks.borrow().len()
            + self.inner.external_refs.get()
    }

    /// Keeps the loop alive until a matching [`Loop::release_ref`] (e.g.
    /// while waiting for a [`Remote`](crate::Remote) to deliver a result).
    pub fn add_ref(&self) {
        self.inner
            .external_refs
            .set(self.inner.external_refs.get() + 1);
    }

    /// Drops a hold taken with [`Loop::add_ref`].
    ///
    /// # Panics
    ///
    /// If there is no hold to release.
    pub fn release_ref(&self) {
        let n = self.inner.external_refs.get();
        assert!(n > 0, "Loop::release_ref without a matching add_ref");
        self.inner.external_refs.set(n - 1);
    }

    /// Whether callbacks are queued.
    pub fn has_pending_callbacks(&self) -> bool {
        self.inner.callbacks.borrow().len() > 0
    }

    // ===== driving =====

    /// Runs iterations until the loop is no longer alive or [`Loop::stop`]
    /// is called.
    ///
    /// # Errors
    ///
    /// An unrecoverable backend error (the ring or epoll instance failed).
    pub fn run(&self) -> io::Result<()> {
        loop {
            if self.inner.stop.replace(false) {
                return Ok(());
            }
            if !self.is_alive() {
                return Ok(());
            }
            self.run_once(true)?;
        }
    }

    /// One iteration: submit everything pending and, if `block` and the
    /// loop is alive with no callbacks queued, wait (bounded by the nearest
    /// timer) in the *same* syscall; then dispatch completions, fire due
    /// timers and drain callbacks (bounded by count and time).
    ///
    /// # Errors
    ///
    /// An unrecoverable backend error; completions reaped before it are
    /// still dispatched.
    ///
    /// # Panics
    ///
    /// If called re-entrantly (from inside a handler).
    pub fn run_once(&self, block: bool) -> io::Result<()> {
        assert!(
            !self.inner.running.replace(true),
            "Loop::run_once called re-entrantly (from a handler running inside the loop)"
        );
        let _running = Running(&self.inner.running);
        self.inner.now_stale.set(true);
        let timeout = if !block
            || self.inner.stop.get()
            || self.has_pending_callbacks()
            || !self.is_alive()
        {
            Some(Duration::ZERO)
        } else {
            // No timer pending: an unbounded wait, and no clock read.
            self.inner
                .timers
                .borrow()
                .next_deadline()
                .map(|d| d.saturating_duration_since(self.now()))
        };
        // A non-blocking poll with nothing that could complete can only come
        // back empty: skip the system call. Every SQE the loop submits
        // belongs to an op in `ops` until its final CQE (L1), and the one op
        // always there, the wakeup read, cannot complete while no wake is
        // unread (its SQE, if just re-armed, then waits for the next enter,
        // which the first unread wake forces). A greenlet spinning on
        // `yield_now` polls every few dozen switches; the call was about a
        // tenth of each switch.
        let only_wakeup_in_flight =
            self.inner.ops.borrow().len() == usize::from(self.inner.wake_armed.get());
        let res = if timeout == Some(Duration::ZERO)
            && only_wakeup_in_flight
            && !self.inner.remote.has_unread()
        {
            Ok(())
        } else {
            let res = self.inner.backend.borrow_mut().enter(timeout);
            self.inner.now_stale.set(true);
            res
        };
        self.dispatch_completions();
        self.fire_timers();
        self.drain_callbacks();
        self.inner.stats_mut(|s| s.iterations += 1);
        tracing::trace!(?timeout, "loop iteration");
        res
    }

    /// Makes [`Loop::run`] return after the current iteration (and keeps
    /// the next `run_once` from blocking).
    pub fn stop(&self) {
        self.inner.stop.set(true);
    }

    fn dispatch_completions(&self) {
        // Only what is waiting when the dispatch starts: completions that
        // handlers cause (epoll's immediate ones) wait for the next round.
        let n = self.inner.backend.borrow_mut().ready_len();
        for _ in 0..n {
            let Some(cqe) = self.inner.backend.borrow_mut().pop_completion() else {
                break;
            };
            let key = Key::unpack(cqe.user_data);
            let found = {
                let mut ops = self.inner.ops.borrow_mut();
                if cqe.flags & CQE_F_MORE != 0 {
                    // More to come: the slot stays (L2).
                    ops.get(key).map(|slot| (slot.handler, slot.data))
                } else {
                    // The final completion frees the slot in the same lookup.
                    ops.remove(key).map(|slot| {
                        if slot.referenced {
                            self.inner.op_refs.set(self.inner.op_refs.get() - 1);
                        }
                        (slot.handler, slot.data)
                    })
                }
            };
            let Some((handler, data)) = found else {
                // L2 says this cannot happen; fail loudly in debug builds.
                debug_assert!(false, "completion for unknown op {:#x}", cqe.user_data);
                tracing::error!(user_data = cqe.user_data, "completion for unknown op");
                continue;
            };
            self.inner.stats_mut(|s| s.completed += 1);
            handler(
                self,
                Completion {
                    op: OpId(cqe.user_data),
                    data,
                    result: cqe.result,
                    flags: cqe.flags,
                },
            );
        }
    }

    fn fire_timers(&self) {
        if self.inner.timers.borrow().is_empty() {
            // Nothing can come due, so nothing to advance and no clock to
            // read; the wheel catches up when a timer is next added.
            return;
        }
        let now = self.now();
        self.inner.timers.borrow_mut().advance(now);
        loop {
            let Some(fired) = self.inner.timers.borrow_mut().pop_due() else {
                break;
            };
            self.inner.stats_mut(|s| s.timers_fired += 1);
            match fired.handler {
                TimerHandler::Fn(f, data) => f(self, fired.id, data),
                TimerHandler::Closure(c) => c(self),
            }
        }
    }

    fn drain_callbacks(&self) {
        if !self.has_pending_callbacks() {
            return;
        }
        let start = Instant::now();
        let mut n = 0usize;
        while n < self.inner.callback_count {
            // Checking the clock every 64 callbacks keeps it off the hot path.
            if n % 64 == 63 && start.elapsed() >= self.inner.callback_time {
                break;
            }
            let Some(h) = self.inner.callbacks.borrow_mut().pop() else {
                break;
            };
            n += 1;
            match h {
                CallbackHandler::Fn(f, data) => f(self, data),
                CallbackHandler::Closure(c) => c(self),
            }
        }
        if n > 0 {
            self.inner.stats_mut(|s| s.callbacks_run += n as u64);
        }
    }

    // ===== callbacks =====

    /// Queues `f` to run in this or the next iteration (FIFO). Boxes the
    /// closure (a zero-sized closure does not allocate).
    pub fn run_callback(&self, f: impl FnOnce(&Loop) + 'static) -> CallbackId {
        self.inner.callbacks.borrow_mut().push_closure(Box::new(f))
    }

    /// Queues `f(loop, data)` (FIFO). Never allocates in steady state.
    pub fn run_callback_fn(&self, f: fn(&Loop, u64), data: u64) -> CallbackId {
        self.inner.callbacks.borrow_mut().push_fn(f, data)
    }

    /// Cancels a queued callback; false if it already ran or was cancelled.
    pub fn cancel_callback(&self, id: CallbackId) -> bool {
        self.inner.callbacks.borrow_mut().cancel(id)
    }

    // ===== timers =====

    /// Calls `f(loop, id, data)` at or after `deadline` (1 ms resolution).
    /// O(1); equal deadlines fire in insertion order; referenced by default.
    pub fn add_timer(&self, deadline: Instant, f: fn(&Loop, TimerId, u64), data: u64) -> TimerId {
        self.insert_timer(deadline, TimerHandler::Fn(f, data))
    }

    /// Runs `f` at or after `deadline`.
    pub fn add_timer_closure(&self, deadline: Instant, f: impl FnOnce(&Loop) + 'static) -> TimerId {
        self.insert_timer(deadline, TimerHandler::Closure(Box::new(f)))
    }

    fn insert_timer(&self, deadline: Instant, handler: TimerHandler) -> TimerId {
        let mut timers = self.inner.timers.borrow_mut();
        if timers.is_empty() {
            // An empty wheel is not advanced (`fire_timers`): bring it to
            // the present first, so the new timer is placed from here.
            timers.catch_up(self.now());
        }
        timers.insert(deadline, handler)
    }

    /// Whether a timer is still pending: it has neither fired nor been
    /// cancelled (a stale id, from a fired timer whose slot was reused, is
    /// not pending: ids carry a generation).
    pub fn timer_pending(&self, id: TimerId) -> bool {
        self.inner.timers.borrow().contains(id)
    }

    /// Cancels a timer in O(1); false if it already fired or was cancelled.
    pub fn cancel_timer(&self, id: TimerId) -> bool {
        self.inner.timers.borrow_mut().cancel(id)
    }

    /// Whether a timer keeps the loop alive (gevent's `ref`).
    pub fn set_timer_ref(&self, id: TimerId, referenced: bool) {
        self.inner.timers.borrow_mut().set_ref(id, referenced);
    }

    /// Timers pending (fired and cancelled ones excluded).
    pub fn timer_count(&self) -> usize {
        self.inner.timers.borrow().len()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Remote handles now get `LoopGone`.
        self.remote.close();
        // L3: cancel and drain every in-flight op before anything it may
        // point at (the ring, loop-owned buffers) is freed.
        let targets: Vec<u64> = self.ops.get_mut().keys().iter().map(|k| k.pack()).collect();
        if !targets.is_empty() {
            tracing::debug!(in_flight = targets.len(), "draining ops on loop drop");
        }
        let backend = self.backend.get_mut();
        backend.shutdown(&targets);
        // L7: fds accepted by completions nobody will see are closed.
        while let Some(c) = backend.pop_completion() {
            let key = Key::unpack(c.user_data);
            if let Some(slot) = self.ops.get_mut().get(key) {
                if slot.yields_fd && c.result >= 0 {
                    sys::close_orphan_fd(c.result);
                }
            }
        }
    }
}
