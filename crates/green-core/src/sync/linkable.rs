//! gevent's `AbstractLinkable`: the waiting and notifying that Event,
//! AsyncResult, Waiter and the semaphores share (L1-L6).
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
//! * **L6.** A notifier that runs a waiter and has nothing left that its
//!   next step would do (both chains empty) is not put back in the queue
//!   (N5): it stays pending, as that waiter's window (`ran`), until the
//!   waiter next blocks, and is over then. A waiter added, or a waiter left
//!   and the object ready (`check_and_notify`), while the window is open puts
//!   it back at the front of the queue, the state it would have been in all
//!   along; so the order is the same as if it had never left.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use super::waitlist::{WaitKey, WaitList, Wake};
use crate::greenlet::state::CoreRef;
use crate::hub::{deadline_after, existing_hub, hub, Hub, Notify, Step, TimerWake};
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
    /// L6: the id of the waiter whose window the notifier waits in, out of
    /// the queue; 0 while it is queued (or idle).
    ran: Cell<u64>,
    notify_all: bool,
}

/// Whether a notifier is pending, and how.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pending {
    No,
    /// Queued, or back at the front of the queue while a waiter runs.
    Queued,
    /// Out of the queue in the window of the waiter it ran (L6).
    Window,
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

    fn leave_for(&self, waiter: u64) -> Option<u64> {
        let linkable = self.linkable();
        let list = linkable.list.borrow();
        if !list.is_empty(LINKS) || !list.is_empty(LATE) {
            return None;
        }
        linkable.ran.set(waiter);
        Some(linkable.window_tag())
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
    if linkable.list.borrow().is_empty(LINKS) || !this.is_ready() {
        return;
    }
    match linkable.pending() {
        Pending::No => {
            let hub = hub();
            linkable.ran.set(0);
            linkable.phase.set(Phase::Queued);
            linkable.epoch.set(hub.epoch());
            hub.queue_notify(Rc::clone(this) as Rc<dyn Notify>);
        }
        Pending::Queued => {}
        // L6: its next step queues it anew (L4): it goes back first.
        Pending::Window => requeue_from_window(this),
    }
}

/// L6: the notifier, out of the queue in its waiter's window, goes back to
/// the front of the queue, where it would have been all along.
#[cold]
#[inline(never)]
fn requeue_from_window<L: Linked>(this: &Rc<L>) {
    this.linkable().ran.set(0);
    hub().resume_notify(Rc::clone(this) as Rc<dyn Notify>);
}

/// gevent's `_wait` (L3, L5, L6): `true` once ready (at once if it is and
/// no notifier is pending), `false` if `timeout` passed first or the wait
/// gave up (teardown).
#[track_caller]
pub(crate) fn wait<L: Linked>(this: &Rc<L>, ready: bool, timeout: Option<Duration>) -> bool {
    let linkable = this.linkable();
    let chain = if ready {
        match linkable.pending() {
            Pending::No => return true,
            Pending::Queued => LATE,
            Pending::Window => {
                // L6: the notifier's next step wakes the late chain.
                requeue_from_window(this);
                LATE
            }
        }
    } else {
        // L6: a waiter that the notifier's next step would leave alone
        // (the object is not ready) keeps the window as it is.
        LINKS
    };
    linkable.park(chain, timeout)
}

/// [`Waitable::link_ready`](crate::Waitable::link_ready) for a linked
/// primitive: `callback` joins its waiters.
pub(crate) fn link_ready<L: Linked>(this: &Rc<L>, callback: Box<dyn FnOnce()>) -> LinkId {
    let linkable = this.linkable();
    let key = linkable
        .list
        .borrow_mut()
        .push(LINKS, Wake::Call(callback), ());
    // L6: only a ready object's notifier would act on it (L4).
    check_and_notify(this);
    LinkId::from_raw(key.to_raw())
}

impl Linkable {
    pub(crate) fn new(notify_all: bool) -> Linkable {
        Linkable {
            list: RefCell::new(WaitList::new()),
            phase: Cell::new(Phase::Idle),
            epoch: Cell::new(0),
            ran: Cell::new(0),
            notify_all,
        }
    }

    /// What tells this notifier's window from any other (L6, N5).
    fn window_tag(&self) -> u64 {
        std::ptr::from_ref(self) as usize as u64
    }

    /// Whether a notifier is queued or running (on this thread's hub: one
    /// a torn-down hub dropped unrun does not count), or waiting out its
    /// waiter's window (L6). A window found closed ends the notifier.
    #[inline]
    fn pending(&self) -> Pending {
        if self.phase.get() == Phase::Idle {
            return Pending::No;
        }
        let Some(hub) = existing_hub().filter(|hub| hub.epoch() == self.epoch.get()) else {
            return Pending::No;
        };
        match self.ran.get() {
            0 => Pending::Queued,
            waiter if hub.notify_window_open(self.window_tag(), waiter) => Pending::Window,
            _ => {
                // The waiter blocked with nothing added: the notifier's
                // next step, which it skipped, would have ended it.
                self.ran.set(0);
                self.phase.set(Phase::Idle);
                Pending::No
            }
        }
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
                    return match list.pop_front(chain) {
                        Some((Wake::Greenlet(core), ())) => Step::Run(core),
                        Some((Wake::Call(f), ())) => Step::Call(f),
                        None => unreachable!("the chain's front was just seen"),
                    };
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

    /// Parks the running greenlet on `chain` until a notifier takes it
    /// (`true`), `timeout` passes or the wait gives up (`false`). A kill or
    /// timeout raised meanwhile unwinds out of here with the node removed.
    #[track_caller]
    fn park(&self, chain: usize, timeout: Option<Duration>) -> bool {
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
        parked.wait(hub, &me)
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
    fn wait(&self, hub: &'static Hub, me: &CoreRef) -> bool {
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
        // The hub is looked up only for a timed wait.
        if let Some(wake) = &self.wake {
            if let Some(hub) = existing_hub() {
                hub.cancel_wake(wake);
            }
        }
    }
}
