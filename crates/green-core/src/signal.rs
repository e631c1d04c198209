//! Signal handlers that run in greenlets (gevent's `gevent.signal_handler`).
//!
//! [`signal`] registers a handler for a signal on this thread's hub: each
//! time the signal arrives, the handler runs in a **new greenlet**, so it may
//! block (sleep, use sockets, join) without holding up the hub, and it is
//! not limited to async-signal-safe code as a classic handler is.
//!
//! The common signal numbers are re-exported here ([`SIGINT`], [`SIGTERM`],
//! ...), so no `libc` dependency is needed for them.
//!
//! As in gevent, a handler does **not** keep the loop alive: a main
//! greenlet that only waits for Ctrl-C would see `LoopExit` at once. Call
//! [`SignalHandle::set_ref`]`(true)` on the handle of a signal the program
//! waits for.
//!
//! ```
//! use std::cell::Cell;
//! use std::rc::Rc;
//!
//! let seen = Rc::new(Cell::new(0));
//! let counter = Rc::clone(&seen);
//! let handle = green_core::signal::signal(libc::SIGUSR2, move || counter.set(counter.get() + 1))?;
//! // SAFETY: raise only sends a signal to this thread, where it is blocked
//! // and read by the handler's watcher.
//! unsafe { libc::raise(libc::SIGUSR2) };
//! while seen.get() == 0 {
//!     green_core::sleep(std::time::Duration::from_millis(1));
//! }
//! handle.cancel();
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # How signals reach the hub
//!
//! The hub reads signals from a `signalfd` on its event loop. To be read
//! there, a signal must be **blocked** in the hub's thread: `signal` blocks
//! it (for that thread only) while a handler for it is registered, and
//! restores the thread's mask when the last handler for it is cancelled (a
//! signal that was already blocked stays blocked). The signal's disposition
//! (`sigaction`) is never changed, so after [`SignalHandle::cancel`] the
//! signal does what it did before, and a signal still pending then is
//! delivered that way.
//!
//! A signal sent to the **thread** (`raise`, `pthread_kill`) is always seen.
//! A signal sent to the **process** (`kill`, Ctrl-C, a service manager's
//! SIGTERM) goes to any one thread that does not block it: it reaches the
//! hub only if every other thread blocks it. Threads inherit the mask of
//! the thread that starts them, so register handlers on the main thread
//! before starting other threads (a thread pool, a runtime), or block the
//! signals in those threads yourself. Otherwise another thread takes the
//! signal with its default action (for SIGINT and SIGTERM: the process
//! ends).
//!
//! # Like gevent
//!
//! * A handler does not keep the hub's loop alive (gevent's watcher is
//!   created with `ref=False`): a program whose only remaining work is
//!   waiting for a signal ends its wait with [`LoopExit`](crate::LoopExit),
//!   as in gevent, unless it asks with [`SignalHandle::set_ref`].
//! * Dropping the [`SignalHandle`] does not stop the handler: it stays
//!   registered until [`SignalHandle::cancel`] or the hub's teardown (gevent
//!   keeps a started watcher alive until `cancel`).
//! * Several handlers of one signal all run, each in its own greenlet, in
//!   the order registered. Deliveries that arrive while the signal is
//!   already pending merge into one, as the kernel merges standard signals.
//! * A handler's panic is reported as a greenlet's failure; the handler
//!   stays registered.
//! * In the child of [`os::fork`](crate::os::fork), the handlers registered
//!   before the fork go on (on the child's new loop).
//!
//! # Differences from gevent
//!
//! * Signal numbers that cannot be handled are refused with an
//!   [`InvalidInput`](std::io::ErrorKind::InvalidInput) error: SIGKILL and
//!   SIGSTOP (gevent accepts them and the handler never runs), and the
//!   synchronous fault signals SIGSEGV, SIGBUS, SIGILL and SIGFPE (a fault
//!   with its signal blocked kills the process, and green uses SIGSEGV to
//!   report stack overflows).
//! * Handlers belong to the thread that registered them and run on its
//!   hub; gevent's run on the thread that owns the hub it was given.

use std::cell::{Cell, RefCell};
use std::io;
use std::marker::PhantomData;
use std::rc::Rc;

use green_loop::{Loop, SignalWatcher};

/// One registered handler.
struct Handler {
    id: u64,
    f: Rc<dyn Fn()>,
    /// Holds a reference on the loop ([`SignalHandle::set_ref`]).
    referenced: bool,
}

/// The handlers of one signal, behind one watcher: a signal is read once,
/// so one signalfd per signal, and every handler of it runs.
struct Slot {
    signum: i32,
    watcher: SignalWatcher,
    handlers: Vec<Handler>,
}

thread_local! {
    /// This thread's registered signals (few: a linear search does).
    static SLOTS: RefCell<Vec<Slot>> = const { RefCell::new(Vec::new()) };
    static NEXT_ID: Cell<u64> = const { Cell::new(1) };
}

/// A registered signal handler (see [`signal`]). Dropping it leaves the
/// handler registered, as in gevent; [`cancel`](SignalHandle::cancel)
/// removes it. `!Send`: the handler belongs to this thread's hub.
#[derive(Debug)]
pub struct SignalHandle {
    signum: i32,
    id: u64,
    _thread: PhantomData<Rc<()>>,
}

/// The highest signal number Linux has (`SIGRTMAX`).
const MAX_SIGNAL: i32 = 64;

/// Refuses what cannot be a handled signal, naming the cause.
fn check_signum(signum: i32) -> io::Result<()> {
    let refuse = |why: &str| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("green_core::signal::signal({signum}): {why}"),
        ))
    };
    match signum {
        s if !(1..=MAX_SIGNAL).contains(&s) => refuse(&format!(
            "not a signal number (signals are 1..={MAX_SIGNAL}; use the libc::SIG* constants)"
        )),
        libc::SIGKILL | libc::SIGSTOP => {
            refuse("SIGKILL and SIGSTOP cannot be caught, blocked or handled")
        }
        libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE => refuse(
            "a synchronous fault signal cannot be handled in a greenlet: it must run on the \
             faulting instruction, and blocking it makes a fault kill the process",
        ),
        _ => Ok(()),
    }
}

/// Runs `handler` in a new greenlet each time signal `signum` arrives at
/// this thread's hub (gevent's `gevent.signal_handler`); see the [module
/// docs](self) for how signals reach the hub, threads, and what `cancel`
/// restores.
///
/// Registering does not block or switch.
///
/// # Errors
///
/// [`InvalidInput`](io::ErrorKind::InvalidInput) for a number that is not
/// a signal or cannot be handled (0, 999, SIGKILL, SIGSTOP, SIGSEGV, SIGBUS,
/// SIGILL, SIGFPE, and 32 and 33, which the C library keeps for itself);
/// the signalfd's or the mask's error otherwise (for example
/// `EMFILE`: out of file descriptors).
///
/// # Examples
///
/// ```no_run
/// let stop = green_core::sync::Event::new();
/// let setter = stop.clone();
/// let on_term = green_core::signal::signal(libc::SIGTERM, move || setter.set())?;
/// on_term.set_ref(true); // waiting for the signal is this program's work
/// stop.wait();
/// on_term.cancel();
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn signal(signum: i32, handler: impl Fn() + 'static) -> io::Result<SignalHandle> {
    check_signum(signum)?;
    let hub = crate::hub::hub();
    let id = NEXT_ID.with(|n| n.replace(n.get() + 1));
    let handler = Handler {
        id,
        f: Rc::new(handler),
        referenced: false,
    };
    let known = SLOTS.with(|s| s.borrow().iter().any(|slot| slot.signum == signum));
    if known {
        SLOTS.with(|s| {
            if let Some(slot) = s.borrow_mut().iter_mut().find(|x| x.signum == signum) {
                slot.handlers.push(handler);
            }
        });
    } else {
        let watcher = hub
            .with_loop(|lp| lp.watch_signal(signum, on_signal, signum as u64))
            .map_err(|e| {
                let hint = if e.raw_os_error() == Some(libc::EINVAL) {
                    " (32 and 33 are kept by the C library for its threads; \
                     real-time signals start at libc::SIGRTMIN())"
                } else {
                    ""
                };
                io::Error::new(
                    e.kind(),
                    format!(
                        "green_core::signal::signal({signum}): cannot watch the signal: {e}{hint}"
                    ),
                )
            })?;
        SLOTS.with(|s| {
            s.borrow_mut().push(Slot {
                signum,
                watcher,
                handlers: vec![handler],
            })
        });
    }
    Ok(SignalHandle {
        signum,
        id,
        _thread: PhantomData,
    })
}

/// The loop read `signum`: one new greenlet per handler (loop handlers
/// never switch: `spawn` only queues the start).
fn on_signal(_lp: &Loop, _signo: i32, data: u64) {
    let signum = data as i32;
    let handlers: Vec<Rc<dyn Fn()>> = SLOTS.with(|s| {
        s.borrow()
            .iter()
            .find(|slot| slot.signum == signum)
            .map(|slot| slot.handlers.iter().map(|h| Rc::clone(&h.f)).collect())
            .unwrap_or_default()
    });
    for f in handlers {
        drop(crate::spawn(move || f()));
    }
}

impl SignalHandle {
    /// The signal this handler is for.
    pub fn signum(&self) -> i32 {
        self.signum
    }

    /// Whether the handler is still registered (not cancelled, and its hub
    /// not torn down).
    pub fn is_active(&self) -> bool {
        SLOTS.with(|s| {
            s.borrow()
                .iter()
                .any(|slot| slot.handlers.iter().any(|h| h.id == self.id))
        })
    }

    /// Stops the handler: later deliveries do not run it (a greenlet already
    /// running it goes on). The last handler of a signal restores the
    /// thread's mask, so the signal again does what its disposition says
    /// (the default action, unless something else installed a handler).
    /// Calling it again does nothing. Does not block or switch.
    pub fn cancel(&self) {
        let (handler, watcher) = SLOTS.with(|s| {
            let mut slots = s.borrow_mut();
            let Some(at) = slots.iter().position(|x| x.signum == self.signum) else {
                return (None, None);
            };
            let slot = &mut slots[at];
            let handler = slot
                .handlers
                .iter()
                .position(|h| h.id == self.id)
                .map(|i| slot.handlers.remove(i));
            let watcher = slot.handlers.is_empty().then(|| slots.remove(at));
            (handler, watcher)
        });
        if let Some(handler) = &handler {
            if handler.referenced {
                crate::hub::hub().with_loop(|lp| lp.release_ref());
            }
        }
        // Dropped outside the borrow: the closure's destructors may register
        // handlers again; the watcher's drop restores the mask.
        drop((handler, watcher));
    }

    /// Whether this handler keeps the hub's loop alive (gevent's
    /// `signal_handler(...).ref`). Off by default, as in gevent: turn it on
    /// when waiting for the signal is all the program does, so that the
    /// wait does not end with [`LoopExit`](crate::LoopExit). Does nothing
    /// once cancelled.
    pub fn set_ref(&self, referenced: bool) {
        let changed = SLOTS.with(|s| {
            let mut slots = s.borrow_mut();
            let handler = slots
                .iter_mut()
                .filter(|slot| slot.signum == self.signum)
                .flat_map(|slot| slot.handlers.iter_mut())
                .find(|h| h.id == self.id)?;
            (handler.referenced != referenced).then(|| handler.referenced = referenced)
        });
        if changed.is_some() {
            crate::hub::hub().with_loop(|lp| {
                if referenced {
                    lp.add_ref();
                } else {
                    lp.release_ref();
                }
            });
        }
    }

    /// Whether this handler keeps the loop alive (see [`set_ref`](Self::set_ref)).
    pub fn is_ref(&self) -> bool {
        SLOTS.with(|s| {
            s.borrow()
                .iter()
                .flat_map(|slot| slot.handlers.iter())
                .any(|h| h.id == self.id && h.referenced)
        })
    }
}

/// The hub's loop is going away (teardown): every handler goes with it and
/// the thread's mask is restored.
pub(crate) fn hub_gone() {
    // At thread exit the table may already be gone (its own destructor
    // dropped the watchers then): nothing left to do.
    let slots = SLOTS
        .try_with(|s| std::mem::take(&mut *s.borrow_mut()))
        .unwrap_or_default();
    drop(slots);
}

/// In the child of a fork, on the fresh loop: each signal is watched again
/// (the mask, inherited, still blocks it) and the old watcher, on the
/// parent's loop, is let go without touching that loop's ring (green-loop's
/// F1). Handlers that held the loop alive hold the new one.
pub(crate) fn rearm_after_fork() {
    let hub = crate::hub::hub();
    let slots = SLOTS.with(|s| std::mem::take(&mut *s.borrow_mut()));
    let mut kept = Vec::with_capacity(slots.len());
    for mut slot in slots {
        let watched =
            hub.with_loop(|lp| lp.watch_signal(slot.signum, on_signal, slot.signum as u64));
        match watched {
            Ok(watcher) => {
                // New first, so the old one's drop does not unblock the signal.
                drop(std::mem::replace(&mut slot.watcher, watcher));
                let refs = slot.handlers.iter().filter(|h| h.referenced).count();
                hub.with_loop(|lp| (0..refs).for_each(|_| lp.add_ref()));
                kept.push(slot);
            }
            Err(e) => {
                tracing::error!(signum = slot.signum, error = %e, "after fork, cannot watch the signal again; its handlers are dropped");
                eprintln!(
                    "green-core: after fork, cannot watch signal {} again ({e}); its handlers \
                     are dropped",
                    slot.signum
                );
                drop(slot);
            }
        }
    }
    SLOTS.with(|s| s.borrow_mut().extend(kept));
}

/// Signal numbers, re-exported from `libc` for [`signal`].
pub use libc::{
    SIGALRM, SIGCHLD, SIGCONT, SIGHUP, SIGINT, SIGPIPE, SIGQUIT, SIGTERM, SIGTSTP, SIGUSR1,
    SIGUSR2, SIGWINCH,
};
