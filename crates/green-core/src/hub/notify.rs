//! Notifier entries: the one generic entry of the callback queue through
//! which every synchronisation primitive wakes its waiters (N1-N4).
//!
//! gevent's primitives each queue a callback on the hub (`_notify_links`,
//! `Queue._unlock`) that switches into their waiters one by one. Here a
//! primitive implements [`Notify`] and queues itself as an
//! [`Entry::Notify`]; the hub knows nothing of what it is.
//!
//! * **N1.** A notifier entry is fired one step at a time: each step names
//!   one waiter to run (a parked greenlet, or a callback for the hub to
//!   call), or says the notifier is over.
//! * **N2.** A greenlet a step names runs at the notifier's place, as a
//!   waiter of a links entry does (Q2): the entry goes back to the front of
//!   the queue and the greenlet is switched to; the next step is taken as
//!   soon as it blocks again. A pass cut short (Q4) keeps such an entry at
//!   the front: gevent cuts only between callbacks, and a notifier is one.
//! * **N3.** A callback step runs only in the hub fiber, guarded (H1).
//!   Outside the hub the notifier answers `NeedsHub` without taking it.
//! * **N4.** A waiter a step names while a kill or timeout is queued for it
//!   first returns from its wait; the kill keeps its place (Q3), and a
//!   `Timeout` whose scope ends meanwhile withdraws it. One queued to resume
//!   by a plain wake-up (its wait's timer) runs at the notifier's place
//!   instead: its wait completed (a hand-off gave it an item or a slot), and
//!   nothing raised later may make it look as if it had not.

use std::panic::Location;
use std::rc::Rc;

use super::queue::{Entry, Next};
use super::Hub;
use crate::greenlet::state::{CoreRef, State};

/// One step of a notifier (N1).
pub(crate) enum Step {
    /// Run this waiter at the notifier's place (N2).
    Run(CoreRef),
    /// Call this callback in the hub (a `wait`/`iwait` link, N3).
    Call(Box<dyn FnOnce()>),
    /// The next waiter is a callback and this is not the hub (N3).
    NeedsHub,
    /// The notifier is over; `again` queues it anew at the back of the queue
    /// (waiters arrived that it did not cover, and the object is ready).
    Done { again: bool },
}

/// A primitive's notifier (see the module docs).
pub(crate) trait Notify {
    /// The next waiter to wake; `in_hub` says whether a callback may be
    /// taken (N3).
    fn step(&self, in_hub: bool) -> Step;

    /// What the primitive is, for a failure report of a callback it runs.
    fn what(&self) -> &'static str;
}

/// A queued notifier.
pub(crate) type NotifyRef = Rc<dyn Notify>;

impl Hub {
    /// Queues `notifier` at the back of the callback queue (Q1).
    pub(crate) fn queue_notify(&self, notifier: NotifyRef) {
        self.ready.borrow_mut().push_back(Entry::Notify(notifier));
    }

    /// Fires a notifier entry (N1-N4): `Some(next)` when a waiter is to run
    /// (the entry back at the front) or the hub is needed; `None` once the
    /// notifier is over.
    pub(super) fn fire_notify(&self, notifier: NotifyRef, in_hub: bool) -> Option<Next> {
        self.notify_in_progress.set(false);
        loop {
            match notifier.step(in_hub) {
                Step::Run(waiter) => {
                    let w = waiter.core();
                    if super::links::throw_queued(w) {
                        // N4: the kill queued for it came first.
                        self.defer_throw_behind_wake(&waiter);
                    } else if w.in_ready.get() && w.state.get() == State::Parked && !w.is_dead() {
                        // N4: queued to resume by a plain wake-up (its
                        // timer): it runs here, where its wait completed.
                        self.take_back_resume(&waiter);
                    }
                    if super::links::can_switch_to(waiter.core()) {
                        self.pause_notify(notifier);
                        return Some(Next::Run(waiter));
                    }
                    self.schedule(&waiter);
                }
                Step::Call(callback) => {
                    let what = notifier.what();
                    self.firing_rawlink.set(true);
                    let passed = self.guard_user_code(
                        || format!("a link of {what}"),
                        Location::caller(),
                        callback,
                    );
                    self.firing_rawlink.set(false);
                    self.pass_on(passed);
                    let woken = self.woken_by_rawlink.borrow_mut().take();
                    if let Some(waiter) = woken.filter(|w| super::links::can_switch_to(w.core())) {
                        self.pause_notify(notifier);
                        return Some(Next::Run(waiter));
                    }
                }
                Step::NeedsHub => {
                    self.ready.borrow_mut().push_front(Entry::Notify(notifier));
                    return Some(Next::Hub);
                }
                Step::Done { again } => {
                    if again {
                        self.queue_notify(notifier);
                    }
                    return None;
                }
            }
        }
    }

    /// N2: the notifier's entry goes back to the front while a waiter runs.
    fn pause_notify(&self, notifier: NotifyRef) {
        self.notify_in_progress.set(true);
        self.ready.borrow_mut().push_front(Entry::Notify(notifier));
    }
}
