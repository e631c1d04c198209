//! Cross-thread wakeup: [`Remote`], a `Send + Sync` handle that wakes the
//! loop and runs closures on its thread.
//!
//! The loop keeps one unreferenced read of an eventfd in flight (through
//! the ring on io_uring, through readiness on epoll). `Remote::wake` adds 1
//! to the eventfd counter; the read completes, the loop re-arms the read and
//! runs the closures queued by then, up to a budget (the rest, and later
//! ones, wait for the next read, so threads that never stop sending cannot
//! keep the loop from its timers). Wakes are counted in `Shared::unread`,
//! and only the wake that raises it from zero writes the eventfd: the others
//! find a write already on its way and coalesce into it (one system call per
//! batch of wakes instead of one each). The read takes the whole count, so
//! no wake is lost however many threads race;
//! [`Stats::wakeups`](crate::Stats::wakeups) accumulates it.
//!
//! Lifetime: the eventfd is owned by the `Arc` shared with every `Remote`,
//! so it stays open (and its number is not reused) while any handle exists.
//! When the loop is dropped it marks the shared state closed; later calls
//! return [`LoopGone`].

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::backend::sys;
use crate::error::LoopGone;
use crate::op::Completion;
use crate::Loop;

type RemoteFn = Box<dyn FnOnce(&Loop) + Send>;

/// Most queued closures one completed wakeup read runs (as many as one
/// callback drain by default) before the loop turns to timers and I/O.
const DRAIN_BUDGET: usize = 1024;

struct State {
    alive: bool,
    queue: VecDeque<RemoteFn>,
}

pub(crate) struct Shared {
    fd: OwnedFd,
    state: Mutex<State>,
    /// Wakes signalled that no completed read has taken yet: raised by every
    /// wake, taken whole (swapped to zero) when the eventfd read completes,
    /// before the queued closures run. The wake that raises it from zero
    /// writes the eventfd; a wake that finds it non-zero knows a write is on
    /// its way whose read has not taken the count yet, and that the closures
    /// drained after that read include its own (its queue push happened
    /// before its raise, which the read's swap synchronizes with). While it
    /// is zero the eventfd read cannot complete, so a non-blocking poll may
    /// skip the kernel (`Loop::run_once`).
    unread: AtomicU64,
}

impl Shared {
    pub(crate) fn new() -> io::Result<Shared> {
        Ok(Shared {
            fd: sys::eventfd()?,
            state: Mutex::new(State {
                alive: true,
                queue: VecDeque::new(),
            }),
            unread: AtomicU64::new(0),
        })
    }

    /// Whether a wake was signalled that the loop has not read yet.
    pub(crate) fn has_unread(&self) -> bool {
        self.unread.load(Ordering::Acquire) != 0
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic never happens while the lock is held (closures run
        // outside it), but do not let poisoning turn into a second panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Called by the loop's drop: later calls get `LoopGone`.
    pub(crate) fn close(&self) {
        let dropped = {
            let mut st = self.lock();
            st.alive = false;
            std::mem::take(&mut st.queue)
        };
        drop(dropped);
    }
}

/// A handle that wakes a [`Loop`] from any thread. `Send + Sync + Clone`.
///
/// Using it after the loop is dropped returns [`LoopGone`]; it never crashes.
#[derive(Clone)]
pub struct Remote {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("alive", &self.is_alive())
            .finish()
    }
}

impl Remote {
    /// Wakes the loop (its current or next wait returns at once).
    ///
    /// # Errors
    ///
    /// [`LoopGone`] if the loop was dropped.
    pub fn wake(&self) -> Result<(), LoopGone> {
        if !self.shared.lock().alive {
            return Err(LoopGone(()));
        }
        self.signal()
    }

    /// Queues `f` to run on the loop's thread and wakes the loop.
    ///
    /// # Errors
    ///
    /// [`LoopGone`] if the loop was dropped (`f` is dropped, not run).
    pub fn run(&self, f: impl FnOnce(&Loop) + Send + 'static) -> Result<(), LoopGone> {
        {
            let mut st = self.shared.lock();
            if !st.alive {
                return Err(LoopGone(()));
            }
            st.queue.push_back(Box::new(f));
        }
        self.signal()
    }

    /// Queues `f(loop, value)` to run on the loop's thread and wakes the
    /// loop, or hands `value` back, untouched, if the loop was dropped: what
    /// a cross-thread send carries is never lost on the way.
    ///
    /// # Errors
    ///
    /// `value` if the loop was dropped.
    pub fn try_run_with<V: Send + 'static>(&self, value: V, f: fn(&Loop, V)) -> Result<(), V> {
        {
            let mut st = self.shared.lock();
            if !st.alive {
                return Err(value);
            }
            st.queue.push_back(Box::new(move |lp: &Loop| f(lp, value)));
        }
        // Queued: should the loop die before it wakes, the closure goes with
        // the loop's queue, like any queued closure.
        let _ = self.signal();
        Ok(())
    }

    /// Whether the loop still exists.
    pub fn is_alive(&self) -> bool {
        self.shared.lock().alive
    }

    fn signal(&self) -> Result<(), LoopGone> {
        // Counted before the write, so the loop never sees a written wake
        // that is not counted (it would skip the kernel and miss it).
        if self.shared.unread.fetch_add(1, Ordering::AcqRel) != 0 {
            // A write is already on its way and its read has not taken the
            // count: that read's drain runs what this wake queued.
            return Ok(());
        }
        // The fd is open while `shared` lives, even if the loop just died:
        // the write is then harmless. It cannot fail short of a closed fd
        // (the counter would need 2^64 - 1 unread writes to be full).
        sys::eventfd_add(self.shared.fd.as_raw_fd(), 1).map_err(|e| {
            tracing::error!(error = %e, "eventfd write failed");
            LoopGone(())
        })
    }
}

impl Loop {
    /// A cross-thread handle to this loop.
    pub fn remote(&self) -> Remote {
        Remote {
            shared: self.inner.remote.clone(),
        }
    }

    /// Puts the (unreferenced) eventfd read in flight.
    pub(crate) fn arm_wakeup(&self) -> io::Result<()> {
        let fd = self.inner.remote.fd.as_raw_fd();
        let buf = self.inner.wake_buf.as_ptr().cast::<u8>();
        self.submit_owned_read(fd, buf, 8, on_wake, 0)?;
        self.inner.wake_armed.set(true);
        Ok(())
    }
}

/// The eventfd read completed: count, run queued closures, re-arm.
fn on_wake(lp: &Loop, c: Completion) {
    lp.inner.wake_armed.set(false);
    if c.result == 8 {
        // Taken whole, before the drain below: a wake raised after this
        // swap writes the eventfd again (its read completes after the
        // re-arm), one raised before it is drained now.
        let n = lp.inner.remote.unread.swap(0, Ordering::AcqRel);
        // The loop's own wakes (below) raised it too, before this swap.
        let own = lp.inner.wake_resignalled.replace(0);
        lp.inner.stats_mut(|s| s.wakeups += n.saturating_sub(own));
    } else if c.result < 0 && c.result != -libc::EAGAIN && c.result != -libc::EINTR {
        tracing::error!(result = c.result, "wakeup eventfd read failed");
    }
    // Re-arm first so wakes that race the closures below are not missed.
    if let Err(e) = lp.arm_wakeup() {
        tracing::error!(error = %e, "could not re-arm the wakeup read");
    }
    // At most a budget of the closures queued by now (counted after the
    // swap, so every wake the swap took has its closure among them), then
    // timers and I/O get their turn: threads sending faster than the
    // closures run would otherwise keep the loop here, every timer late by
    // however long they keep it up. Closures queued later raised `unread`
    // from zero, or behind a wake that did, so a read brings them.
    let queued = lp.inner.remote.lock().queue.len();
    for _ in 0..queued.min(DRAIN_BUDGET) {
        let Some(f) = lp.inner.remote.lock().queue.pop_front() else {
            break;
        };
        f(lp);
    }
    if queued > DRAIN_BUDGET {
        // The rest wait for the next read: make sure there is one, as a
        // thread's wake would (uncounted in `Stats::wakeups`).
        lp.inner
            .wake_resignalled
            .set(lp.inner.wake_resignalled.get() + 1);
        let _ = lp.remote().signal();
    }
}
