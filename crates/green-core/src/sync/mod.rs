//! Synchronisation between greenlets: gevent's `gevent.event`,
//! `gevent.lock`, `gevent.queue` and `hub.Waiter`.
//!
//! Every type here parks greenlets on one internal wait list (FIFO, a
//! waiter removed in O(1) when it is killed or times out, no allocation per
//! wait) and wakes them through one generic notifier entry on the hub's
//! callback queue, in gevent's order:
//!
//! * Making an object ready (`Event::set`, `Semaphore::release`,
//!   `Queue::put` with getters waiting) queues its notifier; the caller does
//!   not switch. The notifier wakes waiters FIFO, each running at its
//!   place.
//! * An operation that can complete at once does, without switching, even
//!   when others wait (a `get` on a non-empty queue, an `acquire` of a free
//!   count): gevent's primitives are not fair to greenlets that do not
//!   block.
//! * A waiter that times out or is killed takes nothing and adds nothing.
//!
//! All of them work with [`wait`](crate::wait) and [`iwait`](crate::iwait).
//! Handles are cheap to clone and `!Send`; [`RemoteSetter`] and
//! [`RemotePutter`] are the `Send` handles that complete an [`AsyncResult`]
//! or put into a [`Queue`] from another thread.

mod event;
mod linkable;
mod queue;
mod remote;
mod semaphore;
mod waiter;
mod waitlist;

pub use event::{AsyncResult, Event};
pub use queue::{
    Channel, GetError, JoinableQueue, LifoQueue, PriorityQueue, PutError, Queue, QueueIter,
    TaskDoneError,
};
pub use remote::{HubGone, RemotePutter, RemoteSetter};
pub use semaphore::{
    BoundedSemaphore, BoundedSemaphoreGuard, Lock, LockGuard, RLock, RLockGuard, ReleaseError,
    Semaphore, SemaphoreGuard,
};
pub use waiter::Waiter;
