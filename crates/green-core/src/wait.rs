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
use crate::greenlet::state::{CoreRef, LinkAction, LinkFilter};
use crate::greenlet::{Greenlet, GreenletRef, LinkId};
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
        link_ready_on(&self.core_ref_pub(), callback)
    }

    fn unlink_ready(&self, id: LinkId) {
        unlink(self.core_ref_pub().core(), id);
    }
}

/// A greenlet's [`Waitable::link_ready`]: a rawlink that fires however it
/// ends.
fn link_ready_on(core: &CoreRef, callback: Box<dyn FnOnce()>) -> LinkId {
    add_link(
        core,
        LinkFilter::Always,
        LinkAction::Raw(Box::new(move |_: &_| callback())),
    )
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
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// let slow = green_core::spawn(|| green_core::sleep(Duration::from_millis(5)));
/// let fast = green_core::spawn(|| ());
/// let objects: [&dyn green_core::Waitable; 2] = [&slow, &fast];
/// let order: Vec<usize> = green_core::iwait(&objects, None).collect();
/// assert_eq!(order, [1, 0]); // in the order they became ready
/// ```
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

    #[track_caller]
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
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// let a = green_core::spawn(|| green_core::sleep(Duration::from_secs(10)));
/// let b = green_core::spawn(|| ());
/// let ready = green_core::wait(&[&a, &b], Some(Duration::from_millis(5)), None);
/// assert_eq!(ready, [1]); // `a` was still sleeping when the time was up
/// a.kill();
/// ```
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

/// A handle to a greenlet of any result type: [`Greenlet<T>`] or
/// [`GreenletRef`]. [`joinall`] and [`killall`] take a slice of one of them;
/// for greenlets that return different types, pass their untyped handles
/// (`[a.as_ref(), b.as_ref()]`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a greenlet handle that `joinall`/`killall` take",
    note = "pass `Greenlet<T>`s of one type, or `GreenletRef`s (`g.as_ref()`) for mixed types: \
            `joinall(&[a.as_ref(), b.as_ref()])`"
)]
pub trait AnyGreenlet: Waitable + sealed::Sealed {
    /// The untyped handle.
    fn greenlet_ref(&self) -> GreenletRef;
}

mod sealed {
    /// Only green-core's handles are greenlets.
    pub trait Sealed {}
    impl<T: 'static> Sealed for crate::Greenlet<T> {}
    impl Sealed for crate::GreenletRef {}
    impl<G: Sealed> Sealed for &G {}
}

impl<W: Waitable + ?Sized> Waitable for &W {
    fn is_ready(&self) -> bool {
        (**self).is_ready()
    }

    fn link_ready(&self, callback: Box<dyn FnOnce()>) -> LinkId {
        (**self).link_ready(callback)
    }

    fn unlink_ready(&self, id: LinkId) {
        (**self).unlink_ready(id);
    }
}

impl<G: AnyGreenlet> AnyGreenlet for &G {
    fn greenlet_ref(&self) -> GreenletRef {
        (**self).greenlet_ref()
    }
}

impl<T: 'static> AnyGreenlet for Greenlet<T> {
    fn greenlet_ref(&self) -> GreenletRef {
        self.as_ref()
    }
}

impl AnyGreenlet for GreenletRef {
    fn greenlet_ref(&self) -> GreenletRef {
        self.clone()
    }
}

impl Waitable for GreenletRef {
    fn is_ready(&self) -> bool {
        self.dead()
    }

    fn link_ready(&self, callback: Box<dyn FnOnce()>) -> LinkId {
        link_ready_on(&self.core_ref_pub(), callback)
    }

    fn unlink_ready(&self, id: LinkId) {
        unlink(self.core_ref_pub().core(), id);
    }
}

/// Waits for every greenlet to finish (gevent's `joinall(greenlets)`).
/// Failures are not raised: ask each greenlet ([`Greenlet::get`]).
///
/// # Panics
/// With [`LoopExit`](crate::LoopExit) from the main greenlet when some can
/// never finish.
///
/// # Kill safety
/// As [`Iwait`].
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// let words = green_core::spawn(|| "two");
/// let number = green_core::spawn(|| 2);
/// let nap = green_core::spawn(|| green_core::sleep(Duration::from_millis(1)));
/// // Different result types: their untyped handles go in one slice.
/// green_core::joinall(&[words.as_ref(), number.as_ref(), nap.as_ref()]);
/// assert!(words.dead() && number.dead() && nap.dead());
/// ```
#[track_caller]
pub fn joinall<G: AnyGreenlet>(greenlets: &[G]) {
    let _ = joinall_with(greenlets, None, false, None);
}

/// Waits at most `timeout` for every greenlet to finish; returns whether
/// they all did.
///
/// # Kill safety
/// As [`Iwait`].
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// let quick = green_core::spawn(|| ());
/// let slow = green_core::spawn(|| green_core::sleep(Duration::from_secs(10)));
/// assert!(!green_core::joinall_timeout(&[quick.as_ref(), slow.as_ref()], Duration::from_millis(5)));
/// assert!(quick.dead() && !slow.dead());
/// ```
#[track_caller]
pub fn joinall_timeout<G: AnyGreenlet>(greenlets: &[G], timeout: Duration) -> bool {
    match joinall_with(greenlets, Some(timeout), false, None) {
        Ok(done) => done.len() == greenlets.len(),
        Err(_) => false,
    }
}

/// gevent's `joinall` with every option: waits for the greenlets to finish,
/// all of them or `count`, at most `timeout`. Returns the indices of those
/// that finished, in finishing order.
///
/// # Errors
/// With `raise_error`, the first failure among them (a greenlet killed with
/// `GreenletExit` did not fail).
///
/// # Kill safety
/// As [`Iwait`].
///
/// # Examples
/// ```
/// let gs: Vec<_> = (0..3).map(|i| green_core::spawn(move || i)).collect();
/// let first_two = green_core::joinall_with(&gs, None, false, Some(2)).unwrap();
/// assert_eq!(first_two, [0, 1]);
/// ```
#[track_caller]
pub fn joinall_with<G: AnyGreenlet>(
    greenlets: &[G],
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
        let g = greenlets[i].greenlet_ref();
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

/// Kills every greenlet with `GreenletExit` and waits for them to die
/// (gevent's `killall(greenlets)`). See [`killall_with`] for the order.
///
/// # Kill safety
/// As [`wait`].
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// let gs: Vec<_> = (0..3)
///     .map(|_| green_core::spawn(|| green_core::sleep(Duration::from_secs(10))))
///     .collect();
/// green_core::yield_now();
/// green_core::killall(&gs);
/// assert!(gs.iter().all(|g| g.dead()));
/// ```
#[track_caller]
pub fn killall<G: AnyGreenlet>(greenlets: &[G]) {
    killall_with(greenlets, true, None);
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
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// let gs: Vec<_> = (0..2)
///     .map(|_| green_core::spawn(|| green_core::sleep(Duration::from_secs(10))))
///     .collect();
/// green_core::yield_now();
/// assert!(green_core::killall_with(&gs, true, Some(Duration::from_secs(1))));
/// ```
#[track_caller]
pub fn killall_with<G: AnyGreenlet>(
    greenlets: &[G],
    block: bool,
    timeout: Option<Duration>,
) -> bool {
    let all: Vec<GreenletRef> = greenlets.iter().map(AnyGreenlet::greenlet_ref).collect();
    if all.iter().any(GreenletRef::is_main) {
        panic!("green-core: the main greenlet cannot be killed (it is among killall's greenlets)");
    }
    let mut need_killed = Vec::with_capacity(all.len());
    for g in &all {
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
        return all.iter().all(GreenletRef::dead);
    }
    if !block {
        for g in need_killed {
            kill_core(&g.core_ref_pub(), Box::new(GreenletExit), false);
        }
        return all.iter().all(GreenletRef::dead);
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
    all.iter().all(GreenletRef::dead)
}

/// Kills one greenlet and waits for it (gevent's `gevent.kill`).
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// let g = green_core::spawn(|| green_core::sleep(Duration::from_secs(10)));
/// green_core::yield_now();
/// green_core::kill(&g);
/// assert!(g.dead() && g.successful()); // a GreenletExit is not a failure
/// ```
#[track_caller]
pub fn kill<T: 'static>(greenlet: &Greenlet<T>) {
    greenlet.kill();
}
