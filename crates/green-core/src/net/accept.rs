//! Multishot accept for `incoming()`: one armed op hands the kernel's
//! accepted connections to a queue, instead of one op per connection.
//!
//! The kernel accepts eagerly: one loop turn may bring many connections at
//! once. So the queue belongs to the listener (one per listening fd on this
//! thread), not to an iterator: connections accepted but not yet taken
//! survive the iterator and are handed out by the next `incoming()` or
//! `accept()` on the listener; only dropping the listener closes them.
//!
//! # Invariants
//!
//! * **A1** A queue's registry key stays valid until its multishot op's
//!   final shot: a queue is removed only when no op is armed on it, or by
//!   that final shot, so a shot never reaches another queue.
//! * **A2** The op is armed only while an iterator waits or holds it, and
//!   is cancelled once [`MAX_BUFFERED`] connections wait: a listener nobody
//!   iterates stops taking connections from the backlog.
//! * **A3** A connection in a queue is handed out once, or closed when its
//!   listener is dropped; never leaked.
//! * **A4** A multishot accept is armed on a listener only once any earlier
//!   one on it has delivered its final shot. Armed in the same submission
//!   as an earlier one's cancel, the new one was seen (Linux 6.x) never to
//!   be woken for later connections; waiting out the cancel avoids that.
//! * **A5** A queue belongs to one listener object, not to a descriptor
//!   number: it is found through the listener's guard (the same fd *and*
//!   the same guard token). A listener is `Send`, so it may be dropped on
//!   another thread than the one holding its queue; its guard then only
//!   marks the token closed, and the owning thread closes the queue's
//!   connections (A3) at its next lookup. A new listener that reuses the
//!   descriptor number never sees the old one's connections.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use green_loop::{AcceptShot, Loop, OpId};

use crate::hub::{existing_hub, hub, wake_registered};
use crate::slab::Slab;

/// How many accepted connections may wait before the op is cancelled (A2).
const MAX_BUFFERED: usize = 16;

struct AcceptQueue {
    listener: RawFd,
    /// The listener's guard token (A5): set once the listener is gone.
    owner: Arc<AtomicBool>,
    conns: RefCell<VecDeque<io::Result<OwnedFd>>>,
    /// The parked greenlet's live key.
    waiter: Cell<Option<u32>>,
    /// The armed multishot op.
    op: Cell<Option<OpId>>,
    /// How many iterators use the queue; none: the op is not re-armed.
    iterators: Cell<usize>,
    /// The listener is gone: shots close their connection (A3).
    dead: Cell<bool>,
    /// The kernel refused multishot: one accept per call instead.
    unsupported: Cell<bool>,
}

thread_local! {
    static QUEUES: RefCell<Slab<Rc<AcceptQueue>>> = RefCell::new(Slab::new());
}

fn find(listener: &ListenerQueueGuard) -> Option<(usize, Rc<AcceptQueue>)> {
    // `try_with`: a listener dropped during thread exit (a greenlet unwound
    // by the hub's teardown) may outlive the table, whose own drop closed
    // every queued connection already; a panic here would abort.
    let (found, orphans) = QUEUES
        .try_with(|qs| {
            let qs = qs.borrow();
            let found = qs
                .iter()
                .find(|(_, q)| {
                    q.listener == listener.fd
                        && Arc::ptr_eq(&q.owner, &listener.token)
                        && !q.dead.get()
                })
                .map(|(k, q)| (k, Rc::clone(q)));
            // A5: queues of listeners dropped on another thread.
            let orphans: Vec<(usize, Rc<AcceptQueue>)> = qs
                .iter()
                .filter(|(_, q)| !q.dead.get() && q.owner.load(Ordering::Acquire))
                .map(|(k, q)| (k, Rc::clone(q)))
                .collect();
            (found, orphans)
        })
        .unwrap_or((None, Vec::new()));
    for (key, q) in orphans {
        retire(key, &q);
    }
    found
}

/// Closes a queue whose listener is gone: its connections closed, its op
/// cancelled, the queue removed now or by the op's final shot (A1, A3).
fn retire(key: usize, q: &AcceptQueue) {
    q.dead.set(true);
    let conns = std::mem::take(&mut *q.conns.borrow_mut());
    drop(conns);
    let cancelling = q.op.get().is_some_and(|op| {
        existing_hub()
            .and_then(|hub| hub.lp_if_alive())
            // Finished now: the ring's hold on the listening socket would
            // otherwise keep its port bound after the close.
            .is_some_and(|lp| lp.op_in_flight(op) && lp.cancel_op_now(op).is_ok())
    });
    if !cancelling {
        let _ = QUEUES.try_with(|qs| qs.borrow_mut().remove(key)); // A1: nothing armed
    }
}

fn on_shot(lp: &Loop, key: u64, shot: AcceptShot) {
    let q = QUEUES
        .try_with(|qs| qs.borrow().get(key as usize).cloned())
        .ok()
        .flatten();
    let Some(q) = q else {
        // A1 makes a missing key unreachable; a table already gone (a final
        // shot dispatched during thread exit) has nothing to update. The
        // shot's fd closes on drop.
        return;
    };
    if !shot.more {
        q.op.set(None);
        if q.dead.get() {
            let _ = QUEUES.try_with(|qs| qs.borrow_mut().remove(key as usize));
        }
    }
    if q.dead.get() {
        return; // A3: `shot.conn` closes here.
    }
    match shot.conn {
        Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => {}
        conn => {
            let mut conns = q.conns.borrow_mut();
            conns.push_back(conn);
            if conns.len() >= MAX_BUFFERED || q.iterators.get() == 0 {
                if let Some(op) = q.op.get() {
                    let _ = lp.cancel_op(op); // A2
                }
            }
        }
    }
    if let Some(waiter) = q.waiter.get() {
        wake_registered(lp, u64::from(waiter));
    }
}

/// A connection the ring already accepted for `listener` on this thread,
/// if one waits (`accept` takes these before asking the kernel).
pub(crate) fn take_queued(listener: &ListenerQueueGuard) -> Option<io::Result<OwnedFd>> {
    let (_, q) = find(listener)?;
    let conn = q.conns.borrow_mut().pop_front();
    conn
}

/// The listener `fd` is being dropped or given away: its queue's
/// connections are closed and its op cancelled (A3).
fn forget_listener(listener: &ListenerQueueGuard) {
    if let Some((key, q)) = find(listener) {
        retire(key, &q);
    }
}

/// Forgets the listener's queue when the listener goes (A3), on whichever
/// thread that happens (A5).
#[derive(Debug)]
pub(crate) struct ListenerQueueGuard {
    fd: RawFd,
    /// Identifies the listener to its queue; set when the listener goes.
    token: Arc<AtomicBool>,
}

impl ListenerQueueGuard {
    pub(crate) fn new(fd: RawFd) -> ListenerQueueGuard {
        ListenerQueueGuard {
            fd,
            token: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl Drop for ListenerQueueGuard {
    fn drop(&mut self) {
        // A5: seen by the queue's own thread even if this is another one.
        self.token.store(true, Ordering::Release);
        forget_listener(self);
    }
}

/// The accepting side of an `incoming()` iterator.
pub(crate) struct AcceptStream {
    key: usize,
    queue: Rc<AcceptQueue>,
}

impl AcceptStream {
    pub(crate) fn new(listener: BorrowedFd<'_>, guard: &ListenerQueueGuard) -> AcceptStream {
        let fd = listener.as_raw_fd();
        let (key, queue) = find(guard).unwrap_or_else(|| {
            let queue = Rc::new(AcceptQueue {
                listener: fd,
                owner: Arc::clone(&guard.token),
                conns: RefCell::new(VecDeque::new()),
                waiter: Cell::new(None),
                op: Cell::new(None),
                iterators: Cell::new(0),
                dead: Cell::new(false),
                unsupported: Cell::new(false),
            });
            let key = QUEUES.with(|qs| qs.borrow_mut().insert(Rc::clone(&queue)));
            (key, queue)
        });
        queue.iterators.set(queue.iterators.get() + 1);
        AcceptStream { key, queue }
    }

    /// The next accepted connection, parking the greenlet until one comes.
    /// `None` when multishot accept is unavailable (the caller then
    /// accepts one connection per call).
    ///
    /// Kill safety: interruptible; connections stay queued for the listener.
    #[track_caller]
    pub(crate) fn next(&self, listener: BorrowedFd<'_>) -> Option<io::Result<OwnedFd>> {
        if self.queue.unsupported.get() {
            return None;
        }
        let hub = hub();
        let me = hub.current_for_blocking();
        loop {
            if let Some(conn) = self.queue.conns.borrow_mut().pop_front() {
                return Some(conn);
            }
            if self.queue.op.get().is_none() {
                match hub.with_loop(|lp| lp.accept_multishot(listener, on_shot, self.key as u64)) {
                    Ok(op) => self.queue.op.set(Some(op)),
                    Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                        self.queue.unsupported.set(true);
                        return None;
                    }
                    Err(e) => return Some(Err(e)),
                }
            }
            // Parked until a shot arrives; an op being cancelled (A2, A4)
            // delivers its final shot, and the loop above re-arms.
            self.queue.waiter.set(Some(hub.register_live(&me)));
            struct ClearWaiter<'a>(&'a Cell<Option<u32>>);
            impl Drop for ClearWaiter<'_> {
                fn drop(&mut self) {
                    self.0.set(None);
                }
            }
            let _clear = ClearWaiter(&self.queue.waiter);
            if !hub.park_as(&me) {
                return Some(Err(io::Error::other(
                    "green-core: accept abandoned while the hub tears down",
                )));
            }
        }
    }
}

impl Drop for AcceptStream {
    fn drop(&mut self) {
        let left = self.queue.iterators.get() - 1;
        self.queue.iterators.set(left);
        if left == 0 {
            // A2: stop taking connections nobody will ask for; those already
            // queued wait for the listener's next accept.
            if let Some(op) = self.queue.op.get() {
                if let Some(lp) = existing_hub().and_then(|hub| hub.lp_if_alive()) {
                    if lp.op_in_flight(op) {
                        let _ = lp.cancel_op(op);
                    }
                }
            }
        }
    }
}
