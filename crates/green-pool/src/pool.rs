//! `Pool`: a [`Group`] with a limit on how many members it holds at once
//! (gevent's `pool.Pool`).
//!
//! The pool is a `Group` made with a slot count; every method is the
//! group's (reached through `Deref`), and it is the group that takes a slot
//! when a member joins and gives it back when the member leaves. This file
//! holds only what is particular to a pool: its constructors and its
//! [`PoolFull`] error.

use std::fmt;
use std::io;
use std::ops::Deref;

use green_core::{LinkId, Waitable};

use crate::group::Group;

/// A [`Group`] that holds at most `size` members at once (gevent's
/// `Pool`): [`spawn`](Group::spawn) and [`add`](Group::add) block while it
/// is full, until a member finishes and leaves.
///
/// Every method is [`Group`]'s (a `Pool` dereferences to its group);
/// [`free_count`](Group::free_count), [`full`](Group::full) and
/// [`wait_available`](Group::wait_available) are the ones that matter here.
///
/// Two sizes are special:
///
/// * **0**: a pool that never admits anyone. `spawn` blocks forever (from
///   the main greenlet it panics with `LoopExit` once nothing else can
///   run); it is useful only to code that checks
///   [`free_count`](Group::free_count) or waits with
///   [`wait_available_timeout`](Group::wait_available_timeout) first, as in
///   gevent.
/// * **unbounded** ([`Pool::unbounded`], gevent's `Pool(None)`): never
///   full; it tracks members like a [`Group`]. Its `free_count` is
///   `usize::MAX` (gevent says 1).
///
/// # Examples
/// gevent's tutorial, limiting concurrency:
/// ```
/// use std::time::Duration;
/// use green_pool::Pool;
///
/// let pool = Pool::new(2);
/// let sizes = {
///     let pool = pool.clone();
///     pool.clone()
///         .map(move |_| pool.len(), 0..3)
///         .unwrap()
/// };
/// assert_eq!(sizes, [2, 2, 1]);
///
/// // A server that refuses work rather than queue it.
/// for ms in [5, 50] {
///     pool.spawn(move || green_core::sleep(Duration::from_millis(ms)));
/// }
/// assert!(pool.full());
/// assert_eq!(pool.free_count(), 0);
/// assert!(pool.wait_available() >= 1); // a member finished and left
/// pool.join();
/// ```
#[derive(Clone)]
pub struct Pool {
    group: Group,
}

impl Pool {
    /// A pool of at most `size` members. `0` is allowed and admits no one
    /// (see the type's docs).
    ///
    /// # Examples
    /// ```
    /// let pool = green_pool::Pool::new(3);
    /// assert_eq!(pool.size(), Some(3));
    /// assert_eq!(pool.free_count(), 3);
    /// ```
    pub fn new(size: usize) -> Pool {
        Pool {
            group: Group::with_limit(Some(size)),
        }
    }

    /// A pool without a limit (gevent's `Pool(None)`): never full.
    ///
    /// # Examples
    /// ```
    /// let pool = green_pool::Pool::unbounded();
    /// assert_eq!(pool.size(), None);
    /// assert!(!pool.full());
    /// ```
    pub fn unbounded() -> Pool {
        Pool {
            group: Group::with_limit(None),
        }
    }

    /// A pool whose size comes from elsewhere (a configuration file, a
    /// command line) as any integer type: a negative size, or one too
    /// large for `usize`, is an error (gevent raises `ValueError`).
    ///
    /// # Errors
    /// `InvalidInput`, naming the size and the fix.
    ///
    /// # Examples
    /// ```
    /// let pool = green_pool::Pool::try_new(4_i64).unwrap();
    /// assert_eq!(pool.size(), Some(4));
    /// let err = green_pool::Pool::try_new(-1).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// ```
    pub fn try_new<S>(size: S) -> io::Result<Pool>
    where
        S: TryInto<usize> + fmt::Display + Copy,
    {
        match size.try_into() {
            Ok(size) => Ok(Pool::new(size)),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "invalid pool size {size}: a pool's size must be between 0 and {} \
                     (use Pool::unbounded() for no limit)",
                    usize::MAX
                ),
            )),
        }
    }

    /// The group this pool is (also reachable through `Deref`).
    pub fn group(&self) -> &Group {
        &self.group
    }
}

impl Deref for Pool {
    type Target = Group;

    fn deref(&self) -> &Group {
        &self.group
    }
}

impl Waitable for Pool {
    fn is_ready(&self) -> bool {
        self.group.is_ready()
    }

    fn link_ready(&self, callback: Box<dyn FnOnce()>) -> LinkId {
        self.group.link_ready(callback)
    }

    fn unlink_ready(&self, id: LinkId) {
        self.group.unlink_ready(id);
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("size", &self.group.size())
            .field("len", &self.group.len())
            .finish()
    }
}

/// The pool had no free slot in time: from [`Group::try_add`] and
/// [`Group::add_timeout`] (gevent's `PoolFull`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolFull;

impl fmt::Display for PoolFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the pool is full: no member left in time to free a slot")
    }
}

impl std::error::Error for PoolFull {}
