//! [`Local`]: a value per greenlet (gevent's `local.local`).

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::greenlet::state::{CoreRef, WeakCore};
use crate::hub::hub;

/// A value per greenlet: each greenlet that uses it gets its own, made by
/// the initialiser on its first access, and dropped when that greenlet ends
/// (returns, panics, is killed, or is unwound by the hub's teardown), or
/// when the `Local` itself (its last clone) is dropped, whichever comes
/// first. The main greenlet's values live until the hub is torn down.
///
/// Values are handed out as shared references; for a value a greenlet
/// changes, put a `Cell` or `RefCell` in it, or use [`Local::set`].
/// A `Local` is cheap to clone (clones are the same local); it is usually a
/// `thread_local!` or owned by the code that spawns the greenlets.
///
/// # Examples
/// ```
/// use std::cell::Cell;
/// use green_core::Local;
///
/// let requests: Local<Cell<u32>> = Local::new(|| Cell::new(0));
/// let worker = {
///     let requests = requests.clone();
///     green_core::spawn(move || {
///         requests.with(|n| n.set(n.get() + 1));
///         requests.with(|n| n.get())
///     })
/// };
/// assert_eq!(worker.get().unwrap(), 1);
/// assert_eq!(requests.with(|n| n.get()), 0); // the main greenlet's own
/// ```
pub struct Local<T: 'static> {
    shared: Rc<Shared<T>>,
}

/// What the clones of one `Local` share.
struct Shared<T> {
    id: u64,
    init: Box<dyn Fn() -> T>,
    /// The greenlets that made a value of it (pruned of dead ones as it
    /// grows): its values go when it does, not when they end.
    holders: RefCell<Vec<WeakCore>>,
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        for holder in self.holders.take() {
            if let Some(core) = holder.upgrade() {
                let value = core.core().take_local(self.id);
                drop(core);
                drop(value);
            }
        }
    }
}

/// A clone is the same greenlet-local: it sees the same values.
impl<T: 'static> Clone for Local<T> {
    fn clone(&self) -> Self {
        Local {
            shared: Rc::clone(&self.shared),
        }
    }
}

impl<T: 'static> Local<T> {
    /// A greenlet-local whose value, in each greenlet, starts as `init()`.
    pub fn new(init: impl Fn() -> T + 'static) -> Local<T> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Local {
            shared: Rc::new(Shared {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                init: Box::new(init),
                holders: RefCell::new(Vec::new()),
            }),
        }
    }

    #[track_caller]
    fn current() -> CoreRef {
        match hub().current() {
            Some(core) => core,
            None => panic!(
                "green-core: a greenlet-local was used inside the hub (a rawlink callback or an \
                 event-loop handler), where no greenlet runs; use it from a greenlet"
            ),
        }
    }

    fn value_in(&self, core: &CoreRef) -> Rc<T> {
        if let Some(value) = core.core().local(self.shared.id) {
            if let Ok(value) = value.downcast::<T>() {
                return value;
            }
        }
        // The initialiser may use other greenlet-locals. One that uses this
        // same local makes a nested value, replaced by this one; it must not
        // do so unconditionally (each use would start another
        // initialisation).
        let value = Rc::new((self.shared.init)());
        self.store(core, Rc::clone(&value) as Rc<dyn Any>);
        value
    }

    /// Stores `core`'s value, noting `core` among the holders.
    fn store(&self, core: &CoreRef, value: Rc<dyn Any>) {
        let old = core.core().set_local(self.shared.id, value);
        if old.is_none() {
            let mut holders = self.shared.holders.borrow_mut();
            if holders.len() == holders.capacity() {
                // Before growing: forget the greenlets that are gone.
                holders.retain(|h| h.strong_count() > 0);
            }
            holders.push(Rc::downgrade(core));
        }
        drop(old);
    }

    /// Calls `f` with the running greenlet's value, made first if it has
    /// none.
    ///
    /// # Panics
    /// Inside the hub (a rawlink callback, a loop handler), where no
    /// greenlet runs.
    #[track_caller]
    pub fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        let core = Self::current();
        let value = self.value_in(&core);
        drop(core);
        f(&value)
    }

    /// Replaces the running greenlet's value.
    ///
    /// # Panics
    /// As [`Local::with`].
    #[track_caller]
    pub fn set(&self, value: T) {
        let core = Self::current();
        self.store(&core, Rc::new(value));
    }

    /// Takes the running greenlet's value away, if it has one (its next
    /// access makes a new one).
    ///
    /// # Panics
    /// As [`Local::with`].
    #[track_caller]
    pub fn take(&self) -> Option<Rc<T>> {
        let core = Self::current();
        let old = core.core().take_local(self.shared.id);
        old.and_then(|value| value.downcast::<T>().ok())
    }
}

impl<T: Clone + 'static> Local<T> {
    /// A copy of the running greenlet's value.
    ///
    /// # Panics
    /// As [`Local::with`].
    #[track_caller]
    pub fn get(&self) -> T {
        self.with(T::clone)
    }
}

impl<T: 'static> fmt::Debug for Local<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Local")
            .field("id", &self.shared.id)
            .finish()
    }
}
