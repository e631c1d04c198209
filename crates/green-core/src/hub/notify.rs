//! Notifier entries: the one generic entry of the callback queue through
//! which every synchronisation primitive wakes its waiters (N1-N5).
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
//! * **N5.** A notifier whose next step would end it, unless the waiter it
//!   runs changes something first, need not go back to the front (N2): it
//!   opens that waiter's window instead (the links window's record, tagged
//!   with the notifier, `LinksWindow`), which the waiter's next park
//!   closes, and the notifier is over then. A change it would act on made
//!   while the window is open puts it back at the front
//!   ([`Hub::resume_notify`]), where it would have been all along: the
//!   hub queues at the front only when a greenlet blocks or ends (or after
//!   `killall`'s own yield), which closes the window, so nothing can have
//!   gone ahead of it meanwhile. The links window (Q2) rests on the same.

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

    /// N5: the last step named the waiter with id `waiter`, to which the hub
    /// is about to switch. If the next step would end the notifier unless
    /// something changes before that waiter blocks again, the notifier
    /// records the window and returns the tag that tells its window from
    /// others (its address: `open_notify_window` sets the top bit, so it
    /// is never a greenlet's id); `None` to go back to the front.
    fn leave_for(&self, waiter: u64) -> Option<u64> {
        let _ = waiter;
        None
    }

    /// What the primitive is, for a failure report of a callback it runs.
    fn what(&self) -> &'static str;
}

/// A queued notifier.
pub(crate) type NotifyRef = Rc<dyn Notify>;

impl Hub {
    /// Queues `notifier` at the back of the callback queue (Q1).
    #[inline]
    pub(crate) fn queue_notify(&self, notifier: NotifyRef) {
        self.ready.borrow_mut().push_back(Entry::Notify(notifier));
    }

    /// Fires a notifier entry (N1-N5): `Some(next)` when a waiter is to run
    /// (the entry back at the front, or out of the queue for the waiter's
    /// window) or the hub is needed; `None` once the notifier is over.
    pub(super) fn fire_notify(&self, notifier: NotifyRef, in_hub: bool) -> Option<Next> {
        self.notify_in_progress.set(false);
        loop {
            match notifier.step(in_hub) {
                Step::Run(waiter) => {
                    let w = waiter.core();
                    // Both cases of N4 are of a waiter queued to resume.
                    if w.in_ready.get() {
                        self.waiter_queued_already(&waiter);
                    }
                    if super::links::can_switch_to(w) {
                        let id = w.id;
                        match notifier.leave_for(id) {
                            Some(tag) => self.open_notify_window(tag, id),
                            None => self.pause_notify(notifier),
                        }
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

    /// N4: a waiter a step names is queued to resume already.
    #[cold]
    #[inline(never)]
    fn waiter_queued_already(&self, waiter: &CoreRef) {
        let w = waiter.core();
        if super::links::throw_queued(w) {
            // The kill queued for it came first.
            self.defer_throw_behind_wake(waiter);
        } else if w.in_ready.get() && w.state.get() == State::Parked && !w.is_dead() {
            // Queued to resume by a plain wake-up (its timer): it runs
            // here, where its wait completed.
            self.take_back_resume(waiter);
        }
    }

    /// N2: the notifier's entry goes back to the front while a waiter runs.
    fn pause_notify(&self, notifier: NotifyRef) {
        self.notify_in_progress.set(true);
        self.ready.borrow_mut().push_front(Entry::Notify(notifier));
    }

    /// N5: the window of `waiter`, run by the notifier tagged `tag`, until
    /// `waiter` next parks (`park_as` closes the links window). The tag
    /// (an address) has its top bit set, so it is never a dead greenlet's
    /// id (which `queue_links` looks for).
    #[inline(always)]
    fn open_notify_window(&self, tag: u64, waiter: u64) {
        self.links_window.set(super::LinksWindow {
            dead: tag | NOTIFY_WINDOW_BIT,
            waiter,
        });
    }

    /// N5: whether the window the notifier tagged `tag` opened for `waiter`
    /// is still open: `waiter` runs and has not parked since.
    pub(crate) fn notify_window_open(&self, tag: u64, waiter: u64) -> bool {
        self.links_window.get()
            == super::LinksWindow {
                dead: tag | NOTIFY_WINDOW_BIT,
                waiter,
            }
            && self.is_current_id(waiter)
    }

    /// N5: a notifier out of the queue in its waiter's window goes back to
    /// the front, as if it had been paused there (N2); the window is over.
    pub(crate) fn resume_notify(&self, notifier: NotifyRef) {
        self.links_window.set(super::LinksWindow::CLOSED);
        self.pause_notify(notifier);
    }
}

/// Marks a links window as a notifier's (N5): greenlet ids never reach it.
const NOTIFY_WINDOW_BIT: u64 = 1 << 63;
