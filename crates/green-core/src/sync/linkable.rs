//! gevent's `AbstractLinkable`: the waiting and notifying that Event,
//! AsyncResult, Waiter and the semaphores share (L1-L5).
//!
//! * **L1.** An object that becomes ready with waiters queues one
//!   notifier on the hub's callback queue (`Entry::Notify`); whoever made
//!   it ready does not switch. While a notifier is pending, no second one
//!   is queued.
//! * **L2.** The notifier wakes, FIFO, the waiters linked before it
//!   started (the chain's serials below its limit), then those that
//!   arrived while it was pending (L3). An object that notifies all
//!   (Event, AsyncResult) goes on even if it became unready meanwhile; one
//!   that does not (a semaphore) stops as soon as it is unready.
//! * **L3.** A wait on a ready object returns at once, without switching,
//!   unless a notifier is pending: then it queues behind the earlier
//!   waiters (the late chain) and returns when the notifier reaches it.
//! * **L4.** When the notifier is over, late arrivals it did not cover join
//!   the main chain; if the object is ready and waiters are left, a new
//!   notifier is queued at the back.
//! * **L5.** A waiter knows it was notified by its node being gone (W4); a
//!   wait that times out or unwinds removes its node (W2), so it is never
//!   notified afterwards and consumes nothing.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use super::waitlist::{WaitKey, WaitList, Wake};
use crate::greenlet::state::CoreRef;
use crate::hub::{deadline_after, existing_hub, hub, Notify, Step, TimerWake};
use crate::LinkId;

/// The chain of waiters linked while the object was not ready.
pub(crate) const LINKS: usize = 0;
/// The chain of waiters that found it ready with a notifier pending (L3).
pub(crate) const LATE: usize = 1;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Idle,
    /// Queued, not started.
    Queued,
    /// Waking the main chain below `limit`.
    Links {
        limit: u64,
    },
    /// Waking the late chain below `limit`.
    Late {
        limit: u64,
    },
}

/// The wait list and notifier state of one primitive.
pub(crate) struct Linkable {
    list: RefCell<WaitList>,
    phase: Cell<Phase>,
    /// The epoch of the hub the notifier was queued on: a notifier a torn
    /// down hub dropped unrun is not pending on the next hub.
    epoch: Cell<u64>,
    notify_all: bool,
}

/// A primitive built on a [`Linkable`].
pub(crate) trait Linked: 'static {
    fn linkable(&self) -> &Linkable;
    /// Whether a waiter may be woken now.
    fn is_ready(&self) -> bool;
    /// What it is, for reports.
    fn kind(&self) -> &'static str;
}

impl<L: Linked> Notify for L {
    fn step(&self, in_hub: bool) -> Step {
        self.linkable().step(in_hub, || self.is_ready())
    }

    fn what(&self) -> &'static str {
        self.kind()
    }
}

/// L1 and L4: queues `this`'s notifier if it is ready, has waiters and has
/// none pending (gevent's `_check_and_notify`).
pub(crate) fn check_and_notify<L: Linked>(this: &Rc<L>) {
    let linkable = this.linkable();
    // Cheapest first: most calls find no waiter.
    if !linkable.list.borrow().is_empty(LINKS) && this.is_ready() && !linkable.notifier_pending() {
        let hub = hub();
        linkable.phase.set(Phase::Queued);
        linkable.epoch.set(hub.epoch());
        hub.queue_notify(Rc::clone(this) as Rc<dyn Notify>);
    }
}

/// [`Waitable::link_ready`](crate::Waitable::link_ready) for a linked
/// primitive: `callback` joins its waiters.
pub(crate) fn link_ready<L: Linked>(this: &Rc<L>, callback: Box<dyn FnOnce()>) -> LinkId {
    let key = this
        .linkable()
        .list
        .borrow_mut()
        .push(LINKS, Wake::Call(callback), ());
    check_and_notify(this);
    LinkId::from_raw(key.to_raw())
}

impl Linkable {
    pub(crate) fn new(notify_all: bool) -> Linkable {
        Linkable {
            list: RefCell::new(WaitList::new()),
            phase: Cell::new(Phase::Idle),
            epoch: Cell::new(0),
            notify_all,
        }
    }

    /// Whether a notifier is queued or running (on this thread's hub: one
    /// a torn-down hub dropped unrun does not count).
    pub(crate) fn notifier_pending(&self) -> bool {
        self.phase.get() != Phase::Idle
            && existing_hub().is_some_and(|hub| hub.epoch() == self.epoch.get())
    }

    /// How many waiters (greenlets and callbacks) are linked.
    pub(crate) fn waiter_count(&self) -> usize {
        let list = self.list.borrow();
        list.len(LINKS) + list.len(LATE)
    }

    /// Takes the first waiter of the main chain if it is a parked greenlet
    /// (for a wake-up at the caller's place instead of through a notifier).
    pub(crate) fn take_first_greenlet(&self) -> Option<CoreRef> {
        let mut list = self.list.borrow_mut();
        match list.front(LINKS) {
            Some((_, false)) => match list.pop_front(LINKS) {
                Some((Wake::Greenlet(core), ())) => Some(core),
                _ => None,
            },
            _ => None,
        }
    }

    /// Removes a callback [`link_ready`] added, if it has not run.
    pub(crate) fn unlink(&self, id: LinkId) {
        let removed = self
            .list
            .borrow_mut()
            .remove(WaitKey::from_raw(id.as_raw()));
        // Dropped outside the borrow: the callback may own anything.
        drop(removed);
    }

    /// One step of the notifier (L2, L4), `ready` asked before each waiter
    /// (it must not touch the wait list).
    fn step(&self, in_hub: bool, ready: impl Fn() -> bool) -> Step {
        let mut list = self.list.borrow_mut();
        loop {
            let (chain, limit) = match self.phase.get() {
                Phase::Idle => return Step::Done { again: false },
                Phase::Queued => {
                    let limit = list.next_serial();
                    self.phase.set(Phase::Links { limit });
                    (LINKS, limit)
                }
                Phase::Links { limit } => (LINKS, limit),
                Phase::Late { limit } => (LATE, limit),
            };
            match list.front(chain) {
                Some((serial, is_call)) if serial < limit && (self.notify_all || ready()) => {
                    if is_call && !in_hub {
                        return Step::NeedsHub;
                    }
                    match list.pop_front(chain) {
                        Some((Wake::Greenlet(core), ())) => return Step::Run(core),
                        Some((Wake::Call(f), ())) => return Step::Call(f),
                        None => continue,
                    }
                }
                _ if chain == LINKS => {
                    let limit = list.next_serial();
                    self.phase.set(Phase::Late { limit });
                }
                _ => {
                    list.append_chain(LATE, LINKS);
                    let again = !list.is_empty(LINKS) && ready();
                    self.phase
                        .set(if again { Phase::Queued } else { Phase::Idle });
                    return Step::Done { again };
                }
            }
        }
    }

    /// gevent's `_wait` (L3, L5): `true` once ready (at once if it is and
    /// no notifier is pending), `false` if `timeout` passed first or the
    /// wait gave up (teardown).
    #[track_caller]
    pub(crate) fn wait(&self, ready: bool, timeout: Option<Duration>) -> bool {
        if ready {
            if self.notifier_pending() {
                return self.park(LATE, timeout);
            }
            return true;
        }
        self.park(LINKS, timeout)
    }

    /// Parks the running greenlet on `chain` until a notifier takes it
    /// (`true`), `timeout` passes or the wait gives up (`false`). A kill or
    /// timeout raised meanwhile unwinds out of here with the node removed.
    #[track_caller]
    pub(crate) fn park(&self, chain: usize, timeout: Option<Duration>) -> bool {
        let hub = hub();
        let me = hub.current_for_blocking();
        let key = self
            .list
            .borrow_mut()
            .push(chain, Wake::Greenlet(Rc::clone(&me)), ());
        let wake = timeout.map(|d| hub.wake_at(&me, deadline_after(d), true));
        let parked = Parked {
            linkable: self,
            key,
            wake,
        };
        parked.wait(&me)
    }
}

/// A blocking call with a value to return (`AsyncResult::get`,
/// `Waiter::get`) whose wait the hub gave up on: the hub is tearing down, or
/// the main greenlet would wait forever while it unwinds. Outside an unwind
/// this panics with a clear message. Inside one (a destructor), a panic
/// would abort the process: a greenlet the teardown is unwinding parks
/// again instead (the teardown then leaves it suspended for good, as it does
/// any greenlet that blocks a second time); the main greenlet, which nothing
/// could ever wake, aborts with a message naming the cause.
#[track_caller]
pub(crate) fn wait_gave_up(what: &str) {
    if !std::thread::panicking() {
        panic!(
            "green-core: {what} gave up: the hub is tearing down (or the main greenlet \
             would wait forever while unwinding)"
        );
    }
    let hub = hub();
    if hub.with_current(|c| c.core().is_main) != Some(false) {
        eprintln!(
            "green-core: {what} in a destructor of the unwinding main greenlet can never \
             return: nothing left could wake it; aborting"
        );
        std::process::abort();
    }
    hub.park();
}

/// A greenlet parked on a [`Linkable`]; dropping it (on return or unwind)
/// removes its node and cancels its timer (L5).
struct Parked<'a> {
    linkable: &'a Linkable,
    key: WaitKey,
    wake: Option<TimerWake>,
}

impl Parked<'_> {
    #[track_caller]
    fn wait(&self, me: &CoreRef) -> bool {
        let hub = hub();
        loop {
            if !hub.park_as(me) {
                return !self.linkable.list.borrow().contains(self.key);
            }
            if !self.linkable.list.borrow().contains(self.key) {
                return true;
            }
            if self.wake.as_ref().is_some_and(|w| w.fired(hub)) {
                return false;
            }
        }
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        let removed = self.linkable.list.borrow_mut().remove(self.key);
        drop(removed);
        if let (Some(wake), Some(hub)) = (&self.wake, existing_hub()) {
            hub.cancel_wake(wake);
        }
    }
}
