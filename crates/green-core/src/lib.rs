//! gevent's programming model in Rust: greenlets, the hub, and the basic
//! utilities around them.
//!
//! A greenlet is a function running on its own small stack. It blocks in
//! plain sequential code (`sleep`, `join`, a socket read); the blocking call
//! suspends it and the thread's **hub** switches to another greenlet, or runs
//! the event loop until something wakes one. Thousands of greenlets share one
//! OS thread; none of them is `async`.
//!
//! * [`spawn`], [`Greenlet`], [`Builder`]: make and start greenlets;
//!   `join`, `get`, `kill`, `link` them.
//! * [`sleep`], [`yield_now`], [`idle`]: give way.
//! * [`Timeout`]: unwind a greenlet's blocking call after a deadline.
//! * [`wait`], [`iwait`], [`joinall`], [`joinall_timeout`], [`killall`]
//!   (and their `_with` forms with every option): many at once, of any
//!   result types ([`AnyGreenlet`]).
//! * [`run`]: a scoped hub that is torn down cleanly when it returns (the hub
//!   is also created lazily on first use); [`run_with`] chooses its loop
//!   backend.
//! * [`spawn_link`] and friends, [`Greenlet::link_to`]: a supervisor learns
//!   that a worker ended as a [`LinkedExited`] raised where it blocks.
//! * [`add_spawn_callback`], [`Greenlet::spawning_greenlet`],
//!   [`spawn_tree_locals`]: the spawn tree, for tracing and context.
//! * [`catch_unwind`], [`set_failure_reporter`]: panics without swallowing
//!   kills, and where failures are reported.
//! * [`sync`]: [`Event`](sync::Event), [`AsyncResult`](sync::AsyncResult),
//!   [`Semaphore`](sync::Semaphore) and the locks, the
//!   [`Queue`](sync::Queue) family and [`Channel`](sync::Channel),
//!   [`Waiter`](sync::Waiter) for primitives of one's own, and `Send`
//!   handles that complete a result or feed a queue from another thread.
//! * [`Local`]: a value per greenlet (gevent's `local`).
//! * [`net`]: `std::net`'s sockets (and Unix-domain ones) whose blocking
//!   calls park the greenlet on the ring, with borrowed buffers that a kill
//!   never leaves to the kernel; names resolve off the hub.
//! * [`fs`]: files, pipes and any descriptor through the ring.
//! * [`process`]: `std::process::Command` with children waited on greenly
//!   (a pidfd), green pipes, and `Child` usable in [`wait`].
//! * [`signal`]: a handler run in a new greenlet per delivered signal.
//! * [`os`]: `fork` and `reinit`: the child gets a clean hub.
//!
//! Semantics follow gevent (spawn order, kill delivery, links after death,
//! `LoopExit` instead of a hang). Greenlet and synchronisation handles are
//! `!Send`: greenlets never leave their thread. Sockets and files are
//! `Send`, as std's are; each call parks on the calling thread's hub.
//!
//! Killing a greenlet or firing a `Timeout` unwinds its stack, so the crate
//! requires `panic = "unwind"`.
//!
//! # The order things happen in
//!
//! The hub keeps gevent's one FIFO callback queue, and every gevent program
//! that depends on its order behaves the same here (a suite of small gevent
//! programs, ported line for line, checks the traces against gevent 26.9):
//!
//! * `spawn` does not switch; greenlets start in the order spawned.
//! * A greenlet's start, its resume after [`yield_now`] or a wake-up, the
//!   raise of a kill, and the firing of a finished greenlet's links are each
//!   an entry in that queue, run in the order they were caused.
//! * Links fire in registration order, from the finished greenlet's entry. A
//!   greenlet blocked in `join`, `get`, [`wait`], [`iwait`] or a blocking
//!   `kill` is itself one of the links: it runs at its place, until it
//!   blocks again, before the later links fire.
//! * A blocking `kill` returns once its kill has been raised (the target ran
//!   until it blocked again or ended), before the target's links fire. A
//!   kill aimed at a greenlet already queued to resume, or at the running
//!   greenlet itself, waits for its own turn in the queue: the greenlet runs
//!   on, and the kill is raised wherever it is blocked when that turn comes.
//! * Timers and I/O that are due when a pass is cut short (above) run
//!   before what the cut pass left over, as libev runs them under gevent.
//! * `sleep(Duration::ZERO)` is [`yield_now`]: back of the queue. A
//!   [`Timeout`] of zero is a real timer: it fires after the greenlets
//!   already ready have run, at the next turn of the event loop.
//! * A greenlet that spins on [`yield_now`] cannot starve timers or I/O:
//!   after 50 queue entries, once 5 ms have passed, the hub polls the loop.
//! * Making a synchronisation object ready ([`sync::Event::set`],
//!   [`sync::Semaphore::release`], a [`sync::Queue::put`] with getters
//!   waiting) queues one notifier entry; the caller does not switch. The
//!   notifier wakes the waiters in the order they began to wait, each
//!   running at its place until it blocks again. An [`Event`](sync::Event)'s
//!   waiters return `true` even if it was cleared before they ran.
//! * An operation that can complete at once does, without switching, even
//!   when others are waiting: a `get` on a non-empty queue takes the head, an
//!   `acquire` of a free count takes it (gevent's primitives are not fair to
//!   greenlets that do not block). A `wait` on a set event returns at once,
//!   unless its notifier is still pending: then it queues behind the earlier
//!   waiters.
//! * A waiter that times out or is killed takes nothing and adds nothing.
//!
//! # Kills, timeouts and `catch_unwind`
//!
//! A kill ([`Greenlet::kill`]) and a [`Timeout`] reach a greenlet by
//! unwinding it from its blocking call, as a panic does, so that its
//! destructors run. **`std::panic::catch_unwind` around a blocking call
//! therefore catches them too**: a kill caught that way is lost (the
//! greenlet carries on), and an outer `Timeout::run` returns `Ok` because its
//! timeout never reached it. Use [`catch_unwind`] instead (it catches your
//! code's panics and lets kills and timeouts continue), or resume what
//! [`is_kill_or_timeout`] recognises. A supervisor catches only a linked
//! greenlet's end with [`catch_linked`]:
//!
//! ```
//! use std::time::Duration;
//!
//! let g = green_core::spawn(|| loop {
//!     // A handler that must survive bad input, but not a kill.
//!     let _ = green_core::catch_unwind(|| green_core::sleep(Duration::from_secs(1)));
//! });
//! green_core::yield_now();
//! g.kill(); // returns: the kill went through `catch_unwind`
//! assert!(g.dead());
//! ```
//!
//! # Failures are reported once
//!
//! A greenlet that panics is reported once, naming it, where it was spawned
//! and where it panicked (gevent prints the traceback and carries on); the
//! standard panic hook does not print it a second time. By default the
//! report is one line on stderr, or one `tracing` error event when a
//! subscriber is set. [`set_failure_reporter`] sends it where the
//! application wants, [`silence_failures`] drops it; [`Greenlet::get`] and
//! the links still see the failure either way.
//!
//! # Differences from gevent
//!
//! Deliberate, where gevent's behaviour is a trap in Rust:
//!
//! * A greenlet that joins itself panics with a clear message; in gevent it
//!   would block until the hub reports `LoopExit`.
//! * [`Greenlet::get`] on a greenlet killed with [`GreenletExit`] returns an
//!   error of kind [`ErrorKind::Exited`] (gevent returns the `GreenletExit`
//!   instance as its value); `successful()` is still true, as in gevent.
//! * [`killall_with`] with a timeout returns `false` when some greenlets outlive
//!   it, instead of raising `Timeout`.
//! * A greenlet's [`spawn_tree_locals`] are found when first asked for,
//!   through its spawner (gevent links them at spawn). The one case that
//!   differs: a greenlet whose spawner never used its tree and is gone by
//!   the time the greenlet asks starts a new, empty tree.
//! * The linked spawns ([`spawn_link`] and friends, [`LinkedExited`]) are
//!   the gevent tutorial's; modern gevent dropped them. Unlike a kill, a
//!   `LinkedExited` may be raised in the main greenlet.
//! * The locks hand out RAII guards. A greenlet killed after a semaphore's
//!   notifier handed it a count, but before its `acquire` returned, gives
//!   the count back when its guard drops; in gevent that count is lost and
//!   the next waiter can starve.
//! * [`sync::Lock::try_acquire`] on a held lock returns `None` without
//!   switching; gevent's failed `Lock.acquire(False)` yields once first.
//! * [`sync::Waiter::get`] takes the value, leaving the waiter empty (gevent's
//!   keeps it until `clear()`), and [`sync::Waiter::switch`] may be called
//!   from a greenlet as well as from the hub (gevent asserts the hub).
//! * A second `set` or `set_exception` on an [`AsyncResult`](sync::AsyncResult)
//!   replaces the outcome, as in gevent, but whole: gevent keeps a value and
//!   an exception side by side and its `get` returns the value.
//! * A queue can be [`close`](sync::Queue::close)d: iteration then ends once
//!   it is drained, and a put fails (gevent's `shutdown` raises `ShutDown`
//!   in blocked callers instead). [`sync::Queue::bounded`] refuses a bound of
//!   0 (gevent turns it into an unbounded queue with a warning).
//! * [`os::fork`] runs only the forking main greenlet on in the child: the
//!   parent's greenlets are discarded unrun (gevent's keep running in both
//!   processes, flushing shared buffers and sockets twice).
//! * [`signal::signal`] refuses signals no handler could ever see, or that
//!   mean a crash (SIGKILL, SIGSTOP, SIGSEGV, ...), with `InvalidInput`;
//!   gevent accepts them and never calls the handler.
//! * A green socket's I/O op whose result raced a kill or `Timeout` returns
//!   its result (bytes read, a count written, a connection); the kill is
//!   raised at the next blocking call. gevent waits for readiness and only
//!   then reads, so a kill during its wait leaves the bytes in the socket;
//!   on io_uring the read itself is in flight, and green hands over what
//!   it moved rather than drop it.
//! * A greenlet's [`Local`] values are dropped as it finishes, on its own
//!   stack (gevent drops them from its links, in the hub), so their
//!   destructors may block and are reported against it if they panic.
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![deny(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod catch;
mod error;
pub mod fs;
mod greenlet;
mod hub;
mod io;
// The one module with `unsafe`: it frees each thread's hub record at thread
// exit (see its invariants R1 and R2).
#[allow(unsafe_code)]
mod hub_record;
mod linked;
mod local;
pub mod net;
pub mod os;
pub mod process;
mod report;
pub mod signal;
mod slab;
mod sleep;
mod stacks;
pub mod sync;
mod timeout;
mod tree;
mod wait;

pub use catch::{catch_unwind, is_kill_or_timeout, panic_message};
pub use error::{ErrorKind, GreenletError, GreenletExit, LoopExit};
pub use green_ctx::switch_saves_fp_control;
pub use green_loop::{BackendChoice, BackendKind, Stats as LoopStats};
pub use greenlet::{
    current, spawn, spawn_after_local, spawn_later, spawn_raw, Builder, Greenlet, GreenletRef,
    KillPayload, LinkId,
};
pub use linked::{catch_linked, spawn_link, spawn_link_exception, spawn_link_value, LinkedExited};
pub use local::Local;
pub use report::{
    default_failure_reporter, reset_failure_reporter, set_failure_reporter, silence_failures,
    Failure,
};
pub use sleep::{idle, sleep, sleep_unref, yield_now};
pub use timeout::{with_timeout, with_timeout_or, Timeout};
pub use tree::{
    add_spawn_callback, remove_spawn_callback, spawn_tree_locals, SpawnCallbackId, SpawnTreeLocals,
};
pub use wait::{
    iwait, joinall, joinall_timeout, joinall_with, kill, killall, killall_with, wait, AnyGreenlet,
    Iwait, Waitable,
};

/// Runs `f` on this thread's hub and tears the hub down when it returns:
/// every greenlet still alive is unwound with [`GreenletExit`] (its
/// destructors run, its stack goes back to the pool), then the event loop is
/// closed. Without `run`, the hub is created on first use and torn down at
/// thread exit.
///
/// # Panics
/// When called from inside a greenlet (only the thread's main greenlet may
/// own the hub's lifetime), or inside another `run` on the same thread (the
/// inner one's teardown would kill the outer one's greenlets). A panic of `f`
/// is passed on after the teardown.
///
/// # Examples
/// ```
/// let answer = green_core::run(|| {
///     let g = green_core::spawn(|| 40 + 2);
///     g.get().unwrap()
/// });
/// assert_eq!(answer, 42);
/// ```
pub fn run<R>(f: impl FnOnce() -> R) -> R {
    let hub = hub::hub();
    if hub.current().is_some_and(|c| !c.core().is_main) {
        panic!(
            "green_core::run must be called from the thread's main greenlet, not from a greenlet"
        );
    }
    if hub.in_run.get() {
        panic!(
            "green_core::run cannot be nested: a run is already in progress on this thread, \
             and the inner run's teardown would kill the outer run's greenlets; call the \
             closure directly instead"
        );
    }
    hub.in_run.set(true);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    if let Err(payload) = &result {
        hub.caught_in_current(&**payload);
    }
    // Reset even if the teardown panics, so the thread can run again.
    struct EndRun(&'static hub::Hub);
    impl Drop for EndRun {
        fn drop(&mut self) {
            self.0.in_run.set(false);
        }
    }
    let end = EndRun(hub);
    hub.teardown();
    drop(end);
    match result {
        Ok(value) => value,
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

/// How [`run_with`] sets up this thread's hub.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    backend: BackendChoice,
}

impl RunOptions {
    /// The defaults: [`BackendChoice::Auto`] (io_uring, or epoll where
    /// io_uring cannot be set up; `GREEN_LOOP_BACKEND` overrides).
    ///
    /// # Examples
    /// ```
    /// let options = green_core::RunOptions::new();
    /// assert_eq!(green_core::run_with(options, || 1 + 1), 2);
    /// ```
    pub fn new() -> RunOptions {
        RunOptions::default()
    }

    /// The event loop's backend: [`BackendChoice::Epoll`] to run on epoll,
    /// [`BackendChoice::IoUring`] to fail (with the cause and the fix)
    /// rather than fall back.
    ///
    /// # Examples
    /// ```
    /// use green_core::{BackendChoice, RunOptions};
    ///
    /// let on_epoll = RunOptions::new().backend(BackendChoice::Epoll);
    /// green_core::run_with(on_epoll, || green_core::sleep(std::time::Duration::from_millis(1)));
    /// ```
    pub fn backend(mut self, backend: BackendChoice) -> RunOptions {
        self.backend = backend;
        self
    }
}

/// [`run`] on a hub set up with `options` (for example its loop backend).
///
/// # Panics
/// As [`run`]; and when this thread's hub already exists on another backend
/// than the one demanded (the message says to call `run_with` first).
///
/// # Examples
/// ```
/// use green_core::{BackendChoice, BackendKind, RunOptions};
///
/// let options = RunOptions::new().backend(BackendChoice::Epoll);
/// let backend = green_core::run_with(options, || {
///     green_core::sleep(std::time::Duration::from_millis(1));
///     green_core::loop_backend()
/// });
/// assert_eq!(backend, BackendKind::Epoll);
/// ```
#[track_caller]
pub fn run_with<R>(options: RunOptions, f: impl FnOnce() -> R) -> R {
    if hub::existing_hub().is_some_and(|hub| hub.in_run.get()) {
        // `run` says why runs cannot nest; the backend is beside the point.
        return run(f);
    }
    if let Err(message) = hub::request_backend(options.backend) {
        panic!("{message}");
    }
    run(f)
}

/// The backend this thread's hub's event loop runs on (creating the hub if
/// there is none yet).
///
/// # Examples
/// ```
/// let backend = green_core::loop_backend();
/// println!("this thread's hub runs on {backend:?}");
/// ```
pub fn loop_backend() -> BackendKind {
    hub::hub().lp().backend()
}

/// The counters of this thread's hub's event loop (creating the hub if
/// there is none yet): loop iterations, `io_uring_enter` (or `epoll_wait`)
/// calls, ops submitted and completed. Read-only; for benchmarks and
/// diagnostics, such as how many enter calls a request costs under load.
///
/// # Examples
/// ```
/// let before = green_core::hub_stats().enter_calls;
/// green_core::sleep(std::time::Duration::from_millis(1));
/// // The hub waited for the timer in the kernel at least once.
/// assert!(green_core::hub_stats().enter_calls > before);
/// ```
pub fn hub_stats() -> LoopStats {
    hub::hub().with_loop(|lp| lp.stats())
}

/// Tears down this thread's hub now, as [`run`] does at its end: kills every
/// live greenlet and closes the loop. The next use builds a new hub.
///
/// # Examples
/// ```
/// let g = green_core::spawn(|| green_core::sleep(std::time::Duration::from_secs(10)));
/// green_core::yield_now();
/// green_core::shutdown(); // kills `g` and closes the loop
/// assert!(g.dead());
/// ```
pub fn shutdown() {
    if let Some(hub) = hub::existing_hub() {
        hub.teardown();
    }
}
