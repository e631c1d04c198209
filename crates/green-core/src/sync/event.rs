//! [`Event`] and [`AsyncResult`]: gevent's `gevent.event`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use super::linkable::{self, check_and_notify, link_ready, wait_gave_up, Linkable, Linked};
use crate::{Greenlet, GreenletError, LinkId, Waitable};

/// A flag greenlets wait on (gevent's `Event`).
///
/// [`set`](Event::set) wakes every greenlet waiting; they run in the order
/// they began to wait, once the setter blocks (it does not switch). A
/// waiter woken returns `true` even if the event was cleared before it ran.
/// Handles are cheap to clone and all refer to the same event.
///
/// # Examples
/// ```
/// let ready = green_core::sync::Event::new();
/// let waiter = {
///     let ready = ready.clone();
///     green_core::spawn(move || ready.wait())
/// };
/// green_core::yield_now(); // the waiter blocks
/// ready.set();
/// assert!(waiter.get().unwrap());
/// ```
#[derive(Clone, Default)]
pub struct Event {
    inner: Rc<EventInner>,
}

struct EventInner {
    flag: Cell<bool>,
    linkable: Linkable,
}

impl Default for EventInner {
    fn default() -> EventInner {
        EventInner {
            flag: Cell::new(false),
            linkable: Linkable::new(true),
        }
    }
}

impl Linked for EventInner {
    fn linkable(&self) -> &Linkable {
        &self.linkable
    }

    fn is_ready(&self) -> bool {
        self.flag.get()
    }

    fn kind(&self) -> &'static str {
        "an Event"
    }
}

impl Event {
    /// A new event, not set.
    pub fn new() -> Event {
        Event::default()
    }

    /// Sets the flag and queues the wake-up of every waiter; does not
    /// switch.
    pub fn set(&self) {
        self.inner.flag.set(true);
        check_and_notify(&self.inner);
    }

    /// Clears the flag. Waiters already being woken still return `true`.
    pub fn clear(&self) {
        self.inner.flag.set(false);
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.inner.flag.get()
    }

    /// Blocks until the flag is set; returns `true` (`false` only when the
    /// hub gives up on the wait while tearing down). On a set event it
    /// returns at once, unless a wake-up is pending: then it queues behind
    /// the earlier waiters.
    ///
    /// # Kill safety
    /// Interruptible: a kill or `Timeout` unwinds out of it and leaves
    /// nothing behind (the waiter is unlinked).
    #[track_caller]
    pub fn wait(&self) -> bool {
        linkable::wait(&self.inner, self.is_set(), None)
    }

    /// [`Event::wait`] for at most `timeout`; `false` if it passed first.
    /// A zero timeout on an unset event is a real zero-second timer: the
    /// greenlets already ready run before it returns.
    ///
    /// # Kill safety
    /// As [`Event::wait`].
    #[track_caller]
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        linkable::wait(&self.inner, self.is_set(), Some(timeout))
    }
}

impl Waitable for Event {
    fn is_ready(&self) -> bool {
        self.is_set()
    }

    fn link_ready(&self, callback: Box<dyn FnOnce()>) -> LinkId {
        link_ready(&self.inner, callback)
    }

    fn unlink_ready(&self, id: LinkId) {
        self.inner.linkable.unlink(id);
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .field("waiters", &self.inner.linkable.waiter_count())
            .finish()
    }
}

/// A value or an error that greenlets wait for (gevent's `AsyncResult`).
///
/// It wakes its waiters as [`Event`] does. A second `set` (or
/// `set_exception`) replaces the outcome without waking anyone again, as
/// in gevent: waiters that have not run yet see the newest outcome.
/// `E` defaults to [`GreenletError`], so a greenlet's outcome can be linked
/// into one with [`AsyncResult::link_greenlet`]. Name the type where it is
/// made (`let r: AsyncResult<u32> = AsyncResult::new();`): Rust does not
/// fill a default type parameter in from `new()` alone.
///
/// To complete one from another OS thread, hand that thread a
/// [`remote_setter`](AsyncResult::remote_setter).
///
/// # Examples
/// ```
/// use green_core::sync::AsyncResult;
///
/// let result: AsyncResult<u32> = AsyncResult::new();
/// let reader = {
///     let result = result.clone();
///     green_core::spawn(move || result.get())
/// };
/// result.set(7);
/// assert_eq!(reader.get().unwrap().unwrap(), 7);
/// ```
pub struct AsyncResult<T, E = GreenletError> {
    inner: Rc<ResultInner<T, E>>,
}

impl<T, E> Clone for AsyncResult<T, E> {
    fn clone(&self) -> Self {
        AsyncResult {
            inner: Rc::clone(&self.inner),
        }
    }
}

impl<T: 'static, E: 'static> Default for AsyncResult<T, E> {
    fn default() -> Self {
        AsyncResult::new()
    }
}

pub(crate) struct ResultInner<T, E> {
    outcome: RefCell<Option<Result<T, E>>>,
    linkable: Linkable,
}

impl<T: 'static, E: 'static> Linked for ResultInner<T, E> {
    fn linkable(&self) -> &Linkable {
        &self.linkable
    }

    fn is_ready(&self) -> bool {
        self.outcome.borrow().is_some()
    }

    fn kind(&self) -> &'static str {
        "an AsyncResult"
    }
}

impl<T: 'static, E: 'static> ResultInner<T, E> {
    pub(crate) fn set_outcome(this: &Rc<Self>, outcome: Result<T, E>) {
        let old = this.outcome.replace(Some(outcome));
        drop(old);
        check_and_notify(this);
    }
}

impl<T: 'static, E: 'static> AsyncResult<T, E> {
    /// A new result, not ready.
    pub fn new() -> Self {
        AsyncResult {
            inner: Rc::new(ResultInner {
                outcome: RefCell::new(None),
                linkable: Linkable::new(true),
            }),
        }
    }

    pub(crate) fn inner(&self) -> &Rc<ResultInner<T, E>> {
        &self.inner
    }

    /// Stores `value` and queues the wake-up of every waiter.
    pub fn set(&self, value: T) {
        ResultInner::set_outcome(&self.inner, Ok(value));
    }

    /// Stores `error` and queues the wake-up of every waiter.
    pub fn set_exception(&self, error: E) {
        ResultInner::set_outcome(&self.inner, Err(error));
    }

    /// Stores `outcome`, a value or an error.
    pub fn set_result(&self, outcome: Result<T, E>) {
        ResultInner::set_outcome(&self.inner, outcome);
    }

    /// Whether a value or an error is stored.
    pub fn ready(&self) -> bool {
        self.inner.is_ready()
    }

    /// Whether a value is stored.
    pub fn successful(&self) -> bool {
        matches!(&*self.inner.outcome.borrow(), Some(Ok(_)))
    }

    /// Blocks until ready; `true` (`false` only when the hub gives up on
    /// the wait while tearing down).
    ///
    /// # Kill safety
    /// Interruptible; leaves nothing behind.
    #[track_caller]
    pub fn wait(&self) -> bool {
        linkable::wait(&self.inner, self.ready(), None)
    }

    /// [`AsyncResult::wait`] for at most `timeout`; `false` if it passed.
    ///
    /// # Kill safety
    /// As [`AsyncResult::wait`].
    #[track_caller]
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        linkable::wait(&self.inner, self.ready(), Some(timeout))
    }

    /// Takes the outcome out, if ready (for values that are not `Clone`);
    /// the result is not ready afterwards.
    pub fn take(&self) -> Option<Result<T, E>> {
        self.inner.outcome.borrow_mut().take()
    }

    /// Links the outcome of `greenlet` into this result: its value, or its
    /// error, is stored (moved out of the greenlet) when it finishes.
    pub fn link_greenlet(&self, greenlet: &Greenlet<T>) -> LinkId
    where
        E: From<GreenletError>,
    {
        let inner = Rc::clone(&self.inner);
        greenlet.rawlink(move |g| {
            ResultInner::set_outcome(&inner, g.take().map_err(E::from));
        })
    }
}

impl<T: Clone + 'static, E: Clone + 'static> AsyncResult<T, E> {
    /// Blocks until ready and returns a copy of the outcome; at once if it
    /// is ready.
    ///
    /// # Panics
    /// If the hub gives up on the wait while tearing down (the main
    /// greenlet's wait panics with `LoopExit` before that).
    ///
    /// # Kill safety
    /// Interruptible; leaves nothing behind.
    #[track_caller]
    pub fn get(&self) -> Result<T, E> {
        loop {
            if let Some(outcome) = self.try_get() {
                return outcome;
            }
            if !self.wait() && !self.ready() {
                wait_gave_up("AsyncResult::get");
            }
        }
    }

    /// The outcome if ready, without blocking.
    pub fn try_get(&self) -> Option<Result<T, E>> {
        self.inner.outcome.borrow().clone()
    }

    /// [`AsyncResult::get`] for at most `timeout`: `None` if it passed.
    ///
    /// # Kill safety
    /// As [`AsyncResult::get`].
    #[track_caller]
    pub fn get_timeout(&self, timeout: Duration) -> Option<Result<T, E>> {
        if let Some(outcome) = self.try_get() {
            return Some(outcome);
        }
        self.wait_timeout(timeout);
        self.try_get()
    }

    /// A copy of the value, if one is stored.
    pub fn value(&self) -> Option<T> {
        match &*self.inner.outcome.borrow() {
            Some(Ok(value)) => Some(value.clone()),
            _ => None,
        }
    }

    /// A copy of the error, if one is stored.
    pub fn exception(&self) -> Option<E> {
        match &*self.inner.outcome.borrow() {
            Some(Err(error)) => Some(error.clone()),
            _ => None,
        }
    }
}

impl<T: 'static, E: 'static> Waitable for AsyncResult<T, E> {
    fn is_ready(&self) -> bool {
        self.ready()
    }

    fn link_ready(&self, callback: Box<dyn FnOnce()>) -> LinkId {
        link_ready(&self.inner, callback)
    }

    fn unlink_ready(&self, id: LinkId) {
        self.inner.linkable.unlink(id);
    }
}

impl<T, E> fmt::Debug for AsyncResult<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &*self.inner.outcome.borrow() {
            None => "pending",
            Some(Ok(_)) => "value",
            Some(Err(_)) => "error",
        };
        f.debug_struct("AsyncResult")
            .field("state", &state)
            .finish()
    }
}
