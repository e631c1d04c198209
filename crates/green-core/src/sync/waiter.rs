//! [`Waiter`]: gevent's `hub.Waiter`, the one-shot slot primitives are
//! built from.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use super::linkable::{self, check_and_notify, link_ready, wait_gave_up, Linkable, Linked};
use crate::hub::existing_hub;
use crate::{GreenletError, LinkId, Waitable};

/// A one-shot slot a greenlet blocks on until someone on the same thread
/// (another greenlet, a link callback, a loop handler) fills it with a
/// value or an error (gevent's `hub.Waiter`).
///
/// [`get`](Waiter::get) takes what was put in, so the waiter is empty and
/// reusable afterwards. Filled from the hub (a link callback, a loop
/// handler), it wakes the waiting greenlet to run right after that callback,
/// as gevent's `Waiter.switch` does; filled from a greenlet (which gevent
/// refuses), it queues the wake-up and does not switch. Handles are cheap
/// to clone and all refer to the same slot. Name the type where it is made
/// (`let w: Waiter<u32> = Waiter::new();`), as for
/// [`AsyncResult`](super::AsyncResult).
///
/// # Examples
/// A primitive of one's own: a "first of two" race built on a `Waiter`.
/// ```
/// use green_core::sync::Waiter;
/// use std::time::Duration;
///
/// let first: Waiter<&str> = Waiter::new();
/// for (name, delay) in [("slow", 20), ("fast", 1)] {
///     let first = first.clone();
///     green_core::spawn(move || {
///         green_core::sleep(Duration::from_millis(delay));
///         if !first.ready() {
///             first.switch(name);
///         }
///     });
/// }
/// assert_eq!(first.get().unwrap(), "fast");
/// ```
pub struct Waiter<T, E = GreenletError> {
    inner: Rc<WaiterInner<T, E>>,
}

struct WaiterInner<T, E> {
    slot: RefCell<Option<Result<T, E>>>,
    linkable: Linkable,
}

impl<T: 'static, E: 'static> Linked for WaiterInner<T, E> {
    fn linkable(&self) -> &Linkable {
        &self.linkable
    }

    fn is_ready(&self) -> bool {
        self.slot.borrow().is_some()
    }

    fn kind(&self) -> &'static str {
        "a Waiter"
    }
}

impl<T, E> Clone for Waiter<T, E> {
    fn clone(&self) -> Self {
        Waiter {
            inner: Rc::clone(&self.inner),
        }
    }
}

impl<T: 'static, E: 'static> Default for Waiter<T, E> {
    fn default() -> Self {
        Waiter::new()
    }
}

impl<T: 'static, E: 'static> Waiter<T, E> {
    /// An empty waiter.
    pub fn new() -> Self {
        Waiter {
            inner: Rc::new(WaiterInner {
                slot: RefCell::new(None),
                linkable: Linkable::new(true),
            }),
        }
    }

    /// Fills the slot with `value` (replacing what a `get` has not taken
    /// yet) and queues the wake-up of the greenlet waiting; does not
    /// switch.
    pub fn switch(&self, value: T) {
        self.fill(Ok(value));
    }

    /// Fills the slot with `error`, which the waiting `get` returns.
    pub fn throw(&self, error: E) {
        self.fill(Err(error));
    }

    fn fill(&self, outcome: Result<T, E>) {
        let old = self.inner.slot.replace(Some(outcome));
        drop(old);
        if let Some(hub) = existing_hub() {
            if hub.with_current(|_| ()).is_none() {
                // Filled from the hub (a link callback, a loop handler): the
                // waiting greenlet runs right after the callback, as
                // gevent's `Waiter.switch` from the hub switches to it.
                if let Some(waiting) = self.inner.linkable.take_first_greenlet() {
                    hub.wake_waiter(&waiting);
                }
            }
        }
        check_and_notify(&self.inner);
    }

    /// Whether the slot is filled.
    pub fn ready(&self) -> bool {
        self.inner.is_ready()
    }

    /// Whether the slot holds a value (not an error).
    pub fn successful(&self) -> bool {
        matches!(&*self.inner.slot.borrow(), Some(Ok(_)))
    }

    /// Empties the slot.
    pub fn clear(&self) {
        let old = self.inner.slot.borrow_mut().take();
        drop(old);
    }

    /// Blocks until the slot is filled and takes what is in it.
    ///
    /// # Panics
    /// If the hub gives up on the wait while tearing down (the main
    /// greenlet's wait panics with `LoopExit` before that).
    ///
    /// # Kill safety
    /// Interruptible; a value that arrives after the kill stays in the
    /// slot for the next `get`.
    #[track_caller]
    pub fn get(&self) -> Result<T, E> {
        loop {
            if let Some(outcome) = self.inner.slot.borrow_mut().take() {
                return outcome;
            }
            if !linkable::wait(&self.inner, false, None) && !self.ready() {
                wait_gave_up("Waiter::get");
            }
        }
    }

    /// [`Waiter::get`] for at most `timeout`: `None` if it passed first.
    ///
    /// # Kill safety
    /// As [`Waiter::get`].
    #[track_caller]
    pub fn get_timeout(&self, timeout: Duration) -> Option<Result<T, E>> {
        if let Some(outcome) = self.inner.slot.borrow_mut().take() {
            return Some(outcome);
        }
        linkable::wait(&self.inner, false, Some(timeout));
        self.inner.slot.borrow_mut().take()
    }
}

impl<T: 'static, E: 'static> Waitable for Waiter<T, E> {
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

impl<T, E> fmt::Debug for Waiter<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiter")
            .field("ready", &self.inner.slot.borrow().is_some())
            .finish()
    }
}
