//! Waiting on several objects: the [`Waitable`] protocol, [`wait`],
//! [`iwait`], [`joinall`] and [`killall`].
//!
//! `Waitable` is gevent's rawlink/unlink protocol: an object that becomes
//! ready calls the callbacks linked to it, from the hub, in the order they
//! were linked. Greenlets implement it; the synchronisation primitives will.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::error::GreenletError;
use crate::greenlet::state::{LinkAction, LinkFilter};
use crate::greenlet::{add_link, kill_core, unlink, Greenlet, LinkId};
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
    /// When the wait ends; checked against the clock, because the consumer's
    /// own sleeps between `next` calls reuse its timer-wake slot.
    deadline: Option<Instant>,
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
                hub.schedule(&waiter);
            }
        }))));
    }
    let deadline = timeout.map(deadline_after);
    let wake = deadline.map(|at| hub.wake_at(&me, at, true));
    Iwait {
        objects,
        links,
        ready,
        yielded: 0,
        deadline,
        wake,
        timed_out: false,
    }
}

impl Iterator for Iwait<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
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
            if self.deadline.is_some_and(|at| Instant::now() >= at) {
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
    iwait(objects, timeout).take(want).collect()
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
    for i in iwait(&objects, timeout) {
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
/// # Kill safety
/// As [`wait`].
#[track_caller]
pub fn killall<T: 'static>(
    greenlets: &[Greenlet<T>],
    block: bool,
    timeout: Option<Duration>,
) -> bool {
    for g in greenlets {
        kill_core(&g.core_ref_pub(), Box::new(GreenletExit), false);
    }
    if block {
        let objects: Vec<&dyn Waitable> = greenlets.iter().map(|g| g as &dyn Waitable).collect();
        let pending = greenlets.iter().filter(|g| !g.dead()).count();
        if pending > 0 {
            wait(&objects, timeout, None);
        }
    }
    greenlets.iter().all(|g| g.dead())
}

/// Kills one greenlet and waits for it (gevent's `gevent.kill`).
#[track_caller]
pub fn kill<T: 'static>(greenlet: &Greenlet<T>) {
    greenlet.kill();
}
