//! [`Semaphore`], [`BoundedSemaphore`], [`Lock`] and [`RLock`]: gevent's
//! `gevent.lock`, with RAII guards.

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::linkable::{self, check_and_notify, link_ready, Linkable, Linked};
use crate::hub::hub;
use crate::{LinkId, Waitable};

/// Why a manual release failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReleaseError {
    /// A bounded semaphore (or a lock) was released more often than it was
    /// acquired.
    TooManyReleases,
    /// An [`RLock`] was released by a greenlet that does not hold it.
    NotOwner,
}

impl fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReleaseError::TooManyReleases => f.write_str(
                "Semaphore released too many times (release only what was acquired, or let the \
                 guard release it)",
            ),
            ReleaseError::NotOwner => f.write_str(
                "cannot release un-acquired lock (only the greenlet that holds an RLock may \
                 release it)",
            ),
        }
    }
}

impl std::error::Error for ReleaseError {}

struct SemInner {
    counter: Cell<usize>,
    /// The initial value of a bounded semaphore.
    bound: Option<usize>,
    linkable: Linkable,
}

impl Linked for SemInner {
    fn linkable(&self) -> &Linkable {
        &self.linkable
    }

    fn is_ready(&self) -> bool {
        self.counter.get() > 0
    }

    fn kind(&self) -> &'static str {
        "a Semaphore"
    }
}

/// The state the semaphore types share.
#[derive(Clone)]
struct Sem {
    inner: Rc<SemInner>,
}

impl Sem {
    fn new(value: usize, bound: Option<usize>) -> Sem {
        Sem {
            inner: Rc::new(SemInner {
                counter: Cell::new(value),
                bound,
                // A semaphore wakes waiters only while it has a count (L2).
                linkable: Linkable::new(false),
            }),
        }
    }

    fn try_take(&self) -> bool {
        let counter = self.inner.counter.get();
        if counter == 0 {
            return false;
        }
        self.inner.counter.set(counter - 1);
        true
    }

    /// gevent's `acquire`: takes a count at once if there is one (even
    /// with waiters: no fairness against a greenlet that does not block),
    /// else waits to be woken with one.
    #[track_caller]
    fn take(&self, timeout: Option<Duration>) -> bool {
        if self.try_take() {
            return true;
        }
        let deadline = timeout.map(|d| Instant::now().checked_add(d));
        let mut wait_for = timeout;
        loop {
            let woken = linkable::wait(&self.inner, false, wait_for);
            if self.try_take() {
                return true;
            }
            if !woken {
                return false;
            }
            // Woken, but a greenlet that did not block took the count
            // first: wait again for what is left of the timeout.
            if let Some(deadline) = deadline {
                let left = deadline.map_or(Duration::MAX, |d| {
                    d.saturating_duration_since(Instant::now())
                });
                if left.is_zero() {
                    return false;
                }
                wait_for = Some(left);
            }
        }
    }

    fn give(&self) -> Result<(), ReleaseError> {
        let counter = self.inner.counter.get();
        if self.inner.bound.is_some_and(|bound| counter >= bound) {
            return Err(ReleaseError::TooManyReleases);
        }
        // Past `usize::MAX` free counts, one more is not kept (never a wrap
        // to 0, never a panic in a guard's drop).
        self.inner.counter.set(counter.saturating_add(1));
        check_and_notify(&self.inner);
        Ok(())
    }

    #[track_caller]
    fn wait(&self, timeout: Option<Duration>) -> bool {
        linkable::wait(&self.inner, self.inner.is_ready(), timeout);
        self.inner.is_ready()
    }

    fn link_ready(&self, callback: Box<dyn FnOnce()>) -> LinkId {
        link_ready(&self.inner, callback)
    }
}

/// A count held by a [`SemaphoreGuard`], [`LockGuard`] or the like: given
/// back when the guard is dropped (also when the greenlet unwinds from a
/// kill or timeout).
struct Held<'a> {
    /// `None`: a guard that took nothing (see [`acquire_gave_up`]).
    sem: Option<&'a Sem>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // A guard gives back only the count it took: never too many.
        if let Some(sem) = self.sem {
            let _ = sem.give();
        }
    }
}

/// An `acquire` whose wait the hub gave up on: the hub is tearing down, or
/// the main greenlet would wait forever while it unwinds. Outside an unwind
/// it panics with a clear message. Inside one (a destructor), where a panic
/// would abort the process, it gives up quietly as `Greenlet::join` does:
/// the guard returned holds no count and gives none back.
#[track_caller]
fn acquire_gave_up() -> Held<'static> {
    if !std::thread::panicking() {
        panic!(
            "green-core: acquire gave up: the hub is tearing down (or the main greenlet would \
             wait forever while unwinding)"
        );
    }
    tracing::warn!(
        "green-core: an acquire in a destructor during an unwind gave up: nothing could ever \
         release the count; the destructor goes on without it"
    );
    Held { sem: None }
}

macro_rules! semaphore_common {
    ($ty:ident, $guard:ident) => {
        impl $ty {
            /// Takes a count, blocking while there is none. Waiters are
            /// woken in the order they began to wait; a greenlet that finds
            /// a count free takes it at once, without waiting its turn
            /// (gevent's order).
            ///
            /// # Panics
            /// If the hub gives up on the wait (it is tearing down, or the
            /// main greenlet would wait forever while unwinding); inside a
            /// destructor during an unwind it returns a guard that holds no
            /// count instead, as `Greenlet::join` gives up quietly there.
            ///
            /// # Kill safety
            /// Interruptible; a greenlet killed or timed out while waiting
            /// takes nothing, and one killed after it was handed the count
            /// gives it back when its guard drops.
            #[track_caller]
            pub fn acquire(&self) -> $guard<'_> {
                if !self.sem.take(None) {
                    return $guard {
                        _held: acquire_gave_up(),
                    };
                }
                $guard {
                    _held: Held {
                        sem: Some(&self.sem),
                    },
                }
            }

            /// [`acquire`](Self::acquire) for at most `timeout`: `None` if
            /// it passed first. A zero timeout is a real zero-second timer.
            ///
            /// # Kill safety
            /// As [`acquire`](Self::acquire).
            #[track_caller]
            pub fn acquire_timeout(&self, timeout: Duration) -> Option<$guard<'_>> {
                self.sem.take(Some(timeout)).then(|| $guard {
                    _held: Held {
                        sem: Some(&self.sem),
                    },
                })
            }

            /// Takes a count if one is free, without blocking or switching.
            pub fn try_acquire(&self) -> Option<$guard<'_>> {
                self.sem.try_take().then(|| $guard {
                    _held: Held {
                        sem: Some(&self.sem),
                    },
                })
            }

            /// Blocks until a count is free, without taking it; returns
            /// whether one is (gevent's `wait`).
            ///
            /// # Kill safety
            /// Interruptible; leaves nothing behind.
            #[track_caller]
            pub fn wait(&self) -> bool {
                self.sem.wait(None)
            }

            /// [`wait`](Self::wait) for at most `timeout`.
            ///
            /// # Kill safety
            /// As [`wait`](Self::wait).
            #[track_caller]
            pub fn wait_timeout(&self, timeout: Duration) -> bool {
                self.sem.wait(Some(timeout))
            }

            /// The counts free.
            pub fn counter(&self) -> usize {
                self.sem.inner.counter.get()
            }

            /// Whether no count is free.
            pub fn locked(&self) -> bool {
                self.counter() == 0
            }
        }

        impl Waitable for $ty {
            fn is_ready(&self) -> bool {
                !self.locked()
            }

            fn link_ready(&self, callback: Box<dyn FnOnce()>) -> LinkId {
                self.sem.link_ready(callback)
            }

            fn unlink_ready(&self, id: LinkId) {
                self.sem.inner.linkable.unlink(id);
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("counter", &self.counter())
                    .field("waiters", &self.sem.inner.linkable.waiter_count())
                    .finish()
            }
        }

        impl<'a> $guard<'a> {
            /// Keeps the count taken after the guard is gone; give it back
            /// later with `release`.
            pub fn forget(self) {
                std::mem::forget(self);
            }
        }

        impl fmt::Debug for $guard<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(stringify!($guard))
            }
        }
    };
}

/// A counting semaphore (gevent's `Semaphore`).
///
/// # Examples
/// ```
/// let sem = green_core::sync::Semaphore::new(2);
/// let a = sem.acquire();
/// let _b = sem.acquire();
/// assert!(sem.try_acquire().is_none());
/// drop(a);
/// assert_eq!(sem.counter(), 1);
/// ```
#[derive(Clone)]
pub struct Semaphore {
    sem: Sem,
}

/// A count of a [`Semaphore`], given back on drop.
#[must_use = "the count is given back as soon as the guard is dropped"]
pub struct SemaphoreGuard<'a> {
    _held: Held<'a>,
}

impl Semaphore {
    /// A semaphore with `value` counts free.
    pub fn new(value: usize) -> Semaphore {
        Semaphore {
            sem: Sem::new(value, None),
        }
    }

    /// Adds a count (one a guard was told to [`forget`](SemaphoreGuard::forget),
    /// or a new one) and queues the wake-up of a waiter; does not switch.
    /// The counter saturates at `usize::MAX`.
    pub fn release(&self) {
        let _ = self.sem.give();
    }
}

semaphore_common!(Semaphore, SemaphoreGuard);

/// A semaphore that cannot be released above its initial value (gevent's
/// `BoundedSemaphore`).
///
/// # Examples
/// ```
/// let sem = green_core::sync::BoundedSemaphore::new(1);
/// let err = sem.release().unwrap_err();
/// assert!(err.to_string().starts_with("Semaphore released too many times"));
/// ```
#[derive(Clone)]
pub struct BoundedSemaphore {
    sem: Sem,
}

/// A count of a [`BoundedSemaphore`], given back on drop.
#[must_use = "the count is given back as soon as the guard is dropped"]
pub struct BoundedSemaphoreGuard<'a> {
    _held: Held<'a>,
}

impl BoundedSemaphore {
    /// A bounded semaphore with `value` counts, all free.
    pub fn new(value: usize) -> BoundedSemaphore {
        BoundedSemaphore {
            sem: Sem::new(value, Some(value)),
        }
    }

    /// Gives back a count taken with a forgotten guard.
    ///
    /// # Errors
    /// [`ReleaseError::TooManyReleases`] if every count is already free.
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.sem.give()
    }
}

semaphore_common!(BoundedSemaphore, BoundedSemaphoreGuard);

/// A mutual-exclusion lock for greenlets (gevent's `Lock`): a bounded
/// semaphore of one.
///
/// # Examples
/// ```
/// let lock = green_core::sync::Lock::new();
/// {
///     let _held = lock.acquire();
///     assert!(lock.locked());
/// }
/// assert!(!lock.locked());
/// ```
#[derive(Clone)]
pub struct Lock {
    sem: Sem,
}

/// A held [`Lock`], released on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    _held: Held<'a>,
}

impl Default for Lock {
    fn default() -> Lock {
        Lock::new()
    }
}

impl Lock {
    /// An unlocked lock.
    pub fn new() -> Lock {
        Lock {
            sem: Sem::new(1, Some(1)),
        }
    }

    /// Releases a lock held through a forgotten guard.
    ///
    /// # Errors
    /// [`ReleaseError::TooManyReleases`] if it is not locked.
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.sem.give()
    }
}

semaphore_common!(Lock, LockGuard);

/// A re-entrant lock: the greenlet that holds it may acquire it again, and
/// it is free once every acquire is released (gevent's `RLock`).
///
/// # Examples
/// ```
/// let lock = green_core::sync::RLock::new();
/// let outer = lock.acquire();
/// let inner = lock.acquire(); // the same greenlet: no deadlock
/// drop(inner);
/// assert!(lock.locked());
/// drop(outer);
/// assert!(!lock.locked());
/// ```
#[derive(Clone)]
pub struct RLock {
    inner: Rc<RLockInner>,
}

struct RLockInner {
    lock: Lock,
    /// The holder's greenlet id (0: none).
    owner: Cell<u64>,
    count: Cell<usize>,
}

/// One acquire of an [`RLock`], released on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
}

fn current_id() -> u64 {
    hub().with_current(|c| c.core().id).unwrap_or(0)
}

impl Default for RLock {
    fn default() -> RLock {
        RLock::new()
    }
}

impl RLock {
    /// An unlocked re-entrant lock.
    pub fn new() -> RLock {
        RLock {
            inner: Rc::new(RLockInner {
                lock: Lock::new(),
                owner: Cell::new(0),
                count: Cell::new(0),
            }),
        }
    }

    fn enter(&self, me: u64) -> RLockGuard<'_> {
        self.inner.owner.set(me);
        self.inner.count.set(self.inner.count.get() + 1);
        RLockGuard { lock: self }
    }

    /// Acquires it, blocking while another greenlet holds it; at once if
    /// this greenlet does.
    ///
    /// # Kill safety
    /// As [`Lock::acquire`].
    #[track_caller]
    pub fn acquire(&self) -> RLockGuard<'_> {
        let me = current_id();
        if self.inner.owner.get() != me || self.inner.count.get() == 0 {
            self.inner.lock.acquire().forget();
        }
        self.enter(me)
    }

    /// [`RLock::acquire`] for at most `timeout`: `None` if it passed.
    ///
    /// # Kill safety
    /// As [`Lock::acquire`].
    #[track_caller]
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<RLockGuard<'_>> {
        let me = current_id();
        if self.inner.owner.get() != me || self.inner.count.get() == 0 {
            self.inner.lock.acquire_timeout(timeout)?.forget();
        }
        Some(self.enter(me))
    }

    /// Acquires it if it is free or held by this greenlet, without blocking.
    pub fn try_acquire(&self) -> Option<RLockGuard<'_>> {
        let me = current_id();
        if self.inner.owner.get() != me || self.inner.count.get() == 0 {
            self.inner.lock.try_acquire()?.forget();
        }
        Some(self.enter(me))
    }

    /// Releases one acquire held through a forgotten guard.
    ///
    /// # Errors
    /// [`ReleaseError::NotOwner`] unless this greenlet holds it.
    pub fn release(&self) -> Result<(), ReleaseError> {
        if self.inner.count.get() == 0 || self.inner.owner.get() != current_id() {
            return Err(ReleaseError::NotOwner);
        }
        self.leave();
        Ok(())
    }

    fn leave(&self) {
        let count = self.inner.count.get() - 1;
        self.inner.count.set(count);
        if count == 0 {
            self.inner.owner.set(0);
            let _ = self.inner.lock.release();
        }
    }

    /// Whether some greenlet holds it.
    pub fn locked(&self) -> bool {
        self.inner.count.get() > 0
    }

    /// Whether the running greenlet holds it.
    pub fn is_owned(&self) -> bool {
        self.locked() && self.inner.owner.get() == current_id()
    }
}

impl RLockGuard<'_> {
    /// Keeps the lock held after the guard is gone; release it later with
    /// [`RLock::release`].
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        // The guard is the acquire: it releases it whichever greenlet drops it.
        self.lock.leave();
    }
}

impl Waitable for RLock {
    fn is_ready(&self) -> bool {
        !self.locked()
    }

    fn link_ready(&self, callback: Box<dyn FnOnce()>) -> LinkId {
        self.inner.lock.link_ready(callback)
    }

    fn unlink_ready(&self, id: LinkId) {
        self.inner.lock.unlink_ready(id);
    }
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLock")
            .field("count", &self.inner.count.get())
            .finish()
    }
}

impl fmt::Debug for RLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RLockGuard")
    }
}
