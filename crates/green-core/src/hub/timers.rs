//! Timers that wake or start greenlets, and zero delays (Q6).

use std::time::{Duration, Instant};

use green_loop::{Loop, TimerId};

use super::{existing_hub, Hub};
use crate::greenlet::state::{Catcher, CoreRef, DelayedStart, WeakCore};

/// A timer armed by [`Hub::wake_at`].
#[derive(Clone, Copy)]
pub(crate) struct TimerWake {
    pub(crate) timer: TimerId,
}

impl TimerWake {
    /// Whether this timer has fired (it is no longer pending in the loop;
    /// a waiter that cancelled it does not ask). Each wait asks about its
    /// own timer, so one greenlet's several timers never mask each other.
    pub(crate) fn fired(&self, hub: &Hub) -> bool {
        hub.lp
            .borrow()
            .as_ref()
            .is_none_or(|lp| !lp.timer_pending(self.timer))
    }
}

/// What the hub's timeout slab remembers for one started `Timeout`.
pub(crate) struct TimeoutEntry {
    /// The greenlet that started it, where it fires.
    pub(crate) core: WeakCore,
    pub(crate) id: u64,
    pub(crate) duration: Option<Duration>,
    /// Unique per start on this hub: a `Timeout` recognises its own entry by
    /// it after the slab key may have gone to another.
    pub(crate) serial: u64,
    pub(crate) deadline: Instant,
    /// Where its scope started (its greenlet's unwind and uninterruptible
    /// depths then): where it may be raised (U3).
    pub(crate) catcher: Catcher,
    /// Its loop timer, once armed: a timeout's timer is only inserted when
    /// its greenlet first blocks (`arm_started_timeouts`), so a scope whose
    /// body never blocks costs no timer at all.
    pub(crate) timer: Option<TimerId>,
}

/// Loop handler for [`Hub::start_at`] timers: the greenlet's start is due.
fn start_delayed(_lp: &Loop, _timer: TimerId, key: u64) {
    let Some(hub) = existing_hub() else { return };
    let core = hub.delayed.borrow_mut().remove(key as usize);
    if let Some(core) = core {
        core.core().take_start_timer();
        hub.schedule(&core);
    }
}

/// Loop handler for [`Hub::wake_at`] timers. A key whose greenlet died and
/// was replaced can at worst wake the new one early; every wait re-checks
/// its condition (and dying greenlets cancel their timers first).
fn wake_timer_waiter(lp: &Loop, _timer: TimerId, key: u64) {
    wake_registered(lp, key);
}

/// Loop handler that schedules the live greenlet registered at `key`
/// ([`Hub::register_live`]); I/O completions use it as their waker. As for
/// timers, a stale key can at worst wake another greenlet early.
pub(crate) fn wake_registered(_lp: &Loop, key: u64) {
    let Some(hub) = existing_hub() else { return };
    let core = hub
        .live
        .borrow()
        .get(key as usize)
        .and_then(|w| w.upgrade());
    if let Some(core) = core {
        hub.schedule(&core);
    }
}

/// Deadline `d` from now, saturating far in the future. A zero delay is
/// due at the loop's cached clock (Q6): every zero timer started in one pass
/// fires at the next poll, in the order started, after the pass.
pub(crate) fn deadline_after(d: Duration) -> Instant {
    if d.is_zero() {
        if let Some(hub) = existing_hub() {
            return hub.with_loop(|lp| lp.now());
        }
    }
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30))
}

impl Hub {
    /// Arms a timer that schedules `core` at `deadline`. The timer carries
    /// the greenlet's key in the registry of live greenlets, so arming one
    /// allocates nothing; the waiter learns that it fired from
    /// [`TimerWake::fired`].
    pub(crate) fn wake_at(&self, core: &CoreRef, deadline: Instant, referenced: bool) -> TimerWake {
        let key = self.register_live(core);
        let lp = self.lp();
        let timer = lp.add_timer(deadline, wake_timer_waiter, u64::from(key));
        if !referenced {
            lp.set_timer_ref(timer, false);
        }
        TimerWake { timer }
    }

    /// Starts `core` at `deadline` (`start_later`). The hub holds it
    /// strongly until then, so a greenlet whose handles were all dropped
    /// (gevent's fire-and-forget `spawn_later`) still runs.
    pub(crate) fn start_at(&self, core: CoreRef, deadline: Instant) -> DelayedStart {
        let key = self.delayed.borrow_mut().insert(core);
        let timer = self.with_loop(|lp| lp.add_timer(deadline, start_delayed, key as u64));
        DelayedStart { timer, key }
    }

    /// Withdraws a delayed start that has not happened (a kill before start).
    pub(crate) fn cancel_start(&self, start: DelayedStart) {
        let cancelled = self
            .lp
            .borrow()
            .as_ref()
            .is_some_and(|lp| lp.cancel_timer(start.timer));
        if cancelled {
            self.delayed.borrow_mut().remove(start.key);
        }
    }

    /// Disarms a timer from [`Hub::wake_at`] that may or may not have fired.
    pub(crate) fn cancel_wake(&self, wake: &TimerWake) {
        let lp = self.lp.borrow().clone();
        if let Some(lp) = lp {
            lp.cancel_timer(wake.timer);
        }
    }
}
