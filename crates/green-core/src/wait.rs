//! Waiting on several objects: the [`Waitable`] protocol, [`wait`],
//! [`iwait`], [`joinall`] and [`killall`].
//!
//! `Waitable` is gevent's rawlink/unlink protocol: an object that becomes
//! ready calls the callbacks linked to it, from the hub, in the order they
//! were linked. Greenlets implement it; the synchronisation primitives will.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use crate::error::GreenletError;
use crate::greenlet::state::{LinkAction, LinkFilter};
use crate::greenlet::{Greenlet, LinkId};
use crate::hub::{add_link, kill_core, throw_each, unlink};
use crate::hub::{deadline_after, existing_hub, hub, TimerWake};
use crate::GreenletExit;

/// Something a greenlet can wait for: it becomes ready once, and calls the
/// callbacks linked to it (from the hub, in link order) when it does.
pub trait Waitable {
    /// Whether it is ready now.
    fn is_ready(&self) -> bool;
    /// Calls `callback` from the hub once ready (at once, later, if it
    /// already is). The callback must not block.
    fn link_ready(&self, callback: Box<dyn FnOnce()>) -> LinkId;
    /// Removes a callback that has not run.
    fn unlink_ready(&self, id: LinkId);
}

impl<T: 'static> Waitable for Greenlet<T> {
    fn is_ready(&self) -> bool {
        self.ready()
    }

    fn link_ready(&self, callback: Box<dyn FnOnce()>) -> LinkId {
        add_link(
            &self.core_ref_pub(),
            LinkFilter::Always,
            LinkAction::Raw(Box::new(move |_: &_| callback())),
        )
    }

    fn unlink_ready(&self, id: LinkId) {
        unlink(self.core_ref_pub().core(), id);
    }
}

/// Yields the indices of `objects` as they become ready, waiting at most
/// `timeout` in all; ends when all are ready or the time is up.
///
/// # Kill safety
/// Interruptible; dropping the iterator unlinks every callback it made.
pub struct Iwait<'a> {
    objects: &'a [&'a dyn Waitable],
    links: Vec<Option<LinkId>>,
    ready: Rc<RefCell<VecDeque<usize>>>,
    yielded: usize,
    /// Its timer, when it has a timeout. The wait has timed out once the
    /// timer fired, not when the clock says so: a zero timeout still sees
    /// what finishes in the callback pass before it fires (gevent's order).
    wake: Option<TimerWake>,
    timed_out: bool,
}

/// Starts an [`Iwait`] over `objects` (gevent's `iwait`).
#[track_caller]
pub fn iwait<'a>(objects: &'a [&'a dyn Waitable], timeout: Option<Duration>) -> Iwait<'a> {
    let hub = hub();
    let me = hub.current_for_blocking();
    let ready = Rc::new(RefCell::new(VecDeque::new()));
    let mut links = Vec::with_capacity(objects.len());
    for (i, object) in objects.iter().enumerate() {
        let queue = Rc::clone(&ready);
        let waiter = Rc::clone(&me);
        links.push(Some(object.link_ready(Box::new(move || {
            queue.borrow_mut().push_back(i);
            if let Some(hub) = existing_hub() {
                hub.wake_waiter(&waiter);
            }
        }))));
    }
    let wake = timeout.map(|d| hub.wake_at(&me, deadline_after(d), true));
    Iwait {
        objects,
        links,
        ready,
        yielded: 0,
        wake,
        timed_out: false,
    }
}

impl Iterator for Iwait<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        self.next_here()
    }
}

impl Iwait<'_> {
    /// [`Iterator::next`], locating a `LoopExit` at the caller (`wait` and
    /// `joinall` use it so the panic names the user's line).
    #[track_caller]
    fn next_here(&mut self) -> Option<usize> {
        if self.yielded == self.objects.len() || self.timed_out {
            return None;
        }
        let hub = hub();
        loop {
            if let Some(i) = self.ready.borrow_mut().pop_front() {
                self.links[i] = None;
                self.yielded += 1;
                return Some(i);
            }
            if self.wake.as_ref().is_some_and(|wake| wake.fired(hub)) {
                self.timed_out = true;
                return None;
            }
            if !hub.park() {
                self.timed_out = true;
                return None;
            }
        }
    }
}

impl Drop for Iwait<'_> {
    fn drop(&mut self) {
        for (object, link) in self.objects.iter().zip(&self.links) {
            if let Some(id) = link {
                object.unlink_ready(*id);
            }
        }
        if let (Some(wake), Some(hub)) = (&self.wake, existing_hub()) {
            hub.cancel_wake(wake);
        }
    }
}

impl std::fmt::Debug for Iwait<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iwait")
            .field("objects", &self.objects.len())
            .field("yielded", &self.yielded)
            .finish()
    }
}

/// Waits until `count` of `objects` (all if `None`) are ready, or `timeout`
/// passes; returns the indices of those that became ready, in that order
/// (gevent's `wait`).
///
/// # Kill safety
/// As [`Iwait`].
#[track_caller]
pub fn wait(
    objects: &[&dyn Waitable],
    timeout: Option<Duration>,
    count: Option<usize>,
) -> Vec<usize> {
    let want = count.unwrap_or(objects.len()).min(objects.len());
    if want == 0 {
        return Vec::new();
    }
    let mut ready = iwait(objects, timeout);
    let mut done = Vec::with_capacity(want);
    while done.len() < want {
        match ready.next_here() {
            Some(i) => done.push(i),
            None => break,
        }
    }
    done
}

/// Waits for greenlets to finish (gevent's `joinall`): all of them, or
/// `count`, or until `timeout`. Returns the indices of those that finished,
/// in finishing order.
///
/// # Errors
/// With `raise_error`, the first failure among them (a greenlet killed with
/// `GreenletExit` did not fail).
///
/// # Kill safety
/// As [`Iwait`].
#[track_caller]
pub fn joinall<T: 'static>(
    greenlets: &[Greenlet<T>],
    timeout: Option<Duration>,
    raise_error: bool,
    count: Option<usize>,
) -> Result<Vec<usize>, GreenletError> {
    let objects: Vec<&dyn Waitable> = greenlets.iter().map(|g| g as &dyn Waitable).collect();
    let want = count.unwrap_or(objects.len()).min(objects.len());
    let mut done = Vec::with_capacity(want);
    if want == 0 {
        return Ok(done);
    }
    let mut ready = iwait(&objects, timeout);
    while let Some(i) = ready.next_here() {
        let g = &greenlets[i];
        if raise_error && !g.successful() {
            if let Some(error) = g.exception() {
                return Err(error);
            }
        }
        done.push(i);
        if done.len() == want {
            break;
        }
    }
    Ok(done)
}

/// Kills every greenlet with `GreenletExit` (gevent's `killall`); with
/// `block`, waits for them to die, at most `timeout`. Returns whether all
/// are dead.
///
/// In gevent's order: those that never ran die at once, without running
/// (their links are queued now). With `block`, the others are then killed
/// one after the other from the callback queue's place behind what is
/// queued already, each running until its kill has been raised, before
/// `killall` waits for those that survived; without it, each one's kill is
/// queued like `kill_nowait`'s.
///
/// # Kill safety
/// As [`wait`].
#[track_caller]
pub fn killall<T: 'static>(
    greenlets: &[Greenlet<T>],
    block: bool,
    timeout: Option<Duration>,
) -> bool {
    let mut need_killed = Vec::with_capacity(greenlets.len());
    for g in greenlets {
        if g.dead() {
            continue;
        }
        if g.has_started() {
            need_killed.push(g);
        } else {
            kill_core(&g.core_ref_pub(), Box::new(GreenletExit), false);
        }
    }
    if need_killed.is_empty() {
        return greenlets.iter().all(|g| g.dead());
    }
    if !block {
        for g in need_killed {
            kill_core(&g.core_ref_pub(), Box::new(GreenletExit), false);
        }
        return greenlets.iter().all(|g| g.dead());
    }
    // gevent queues one callback that throws into each in turn: this
    // greenlet takes that place in the queue, then delivers each kill
    // straight away.
    hub().yield_now();
    let targets: Vec<_> = need_killed.iter().map(|g| g.core_ref_pub()).collect();
    throw_each(&targets);
    let diehards: Vec<&dyn Waitable> = need_killed
        .into_iter()
        // The caller itself, when among them and its kill is held back,
        // is not waited for (it would join itself).
        .filter(|g| !g.dead() && !hub().is_current(g.core_ref_pub().core()))
        .map(|g| g as &dyn Waitable)
        .collect();
    if !diehards.is_empty() {
        wait(&diehards, timeout, None);
    }
    greenlets.iter().all(|g| g.dead())
}

/// Kills one greenlet and waits for it (gevent's `gevent.kill`).
#[track_caller]
pub fn kill<T: 'static>(greenlet: &Greenlet<T>) {
    greenlet.kill();
}
