//! Callbacks: a FIFO of one-shot functions run by the loop.
//!
//! Callbacks queue in one ring buffer ([`VecDeque`]) of small `Copy`
//! entries, in the order they were queued. Each gets a sequence number,
//! counted from 0 for the loop's life; that number is its [`CallbackId`].
//! The callback with sequence number `s` sits at position `s - head` of the
//! ring, where `head` is the sequence number of the ring's front, so
//! cancelling is O(1): the entry becomes a tombstone, skipped when popped.
//! An id below `head` has already run or been skipped, an id at or past the
//! tail was never issued, and a 64-bit sequence never wraps, so a stale id
//! cannot reach a later callback.
//!
//! A boxed closure does not fit a `Copy` entry: closures wait in a second
//! ring, in the same order, and their entry in the first ring holds the
//! closure's own sequence number. Cancelling a closure drops it at once and
//! leaves `None` in its place; the drain pops both rings together, so they
//! stay in step.
//!
//! Why two rings and no slab (this module's hot path is the `loop/callback`
//! bench, issue 3: ≤ 10 ns per queued and dispatched `fn` callback):
//! * a `fn` callback is a `push_back` and a `pop_front` of 24 plain bytes,
//!   with no free list to chase and no generation to bump;
//! * entries have no drop glue, so queueing one compiles to direct stores
//!   into the ring; an enum holding a `Box` was built on the stack and
//!   copied in (for the unwind path), and that copy's 16-byte load over
//!   two 8-byte stores missed store-to-load forwarding on every call.
//!
//! Both rings keep their capacity, so `run_callback_fn` (and a zero-sized
//! closure) allocates nothing in steady state.
//!
//! `live` counts queued callbacks that are not cancelled: each one keeps the
//! loop alive, and [`Loop::is_alive`](crate::Loop::is_alive) must be exact.

use std::collections::VecDeque;

use crate::token::CallbackId;
use crate::Loop;

/// A queued closure.
type BoxedCallback = Box<dyn FnOnce(&Loop)>;

/// A callback ready to run, as [`Callbacks::pop`] returns it.
pub(crate) enum CallbackHandler {
    /// A plain function plus one word of data.
    Fn(fn(&Loop, u64), u64),
    /// A boxed closure (a zero-sized closure does not allocate).
    Closure(BoxedCallback),
}

/// One queued callback, in queue order.
#[derive(Clone, Copy)]
enum Entry {
    /// `f(loop, data)`.
    Fn(fn(&Loop, u64), u64),
    /// The closure with this sequence number in `Callbacks::closures`
    /// (`None` there once cancelled).
    Closure(u64),
    /// A cancelled `fn` callback.
    Cancelled,
}

/// The pending-callback queue.
pub(crate) struct Callbacks {
    ring: VecDeque<Entry>,
    /// Sequence number of `ring[0]`; `head + ring.len()` is the next id.
    head: u64,
    /// The closures of `Entry::Closure` entries, in the same order.
    closures: VecDeque<Option<BoxedCallback>>,
    /// Closure sequence number of `closures[0]`.
    closure_head: u64,
    /// Queued callbacks not cancelled.
    live: usize,
}

impl Callbacks {
    pub(crate) fn new() -> Callbacks {
        Callbacks {
            ring: VecDeque::new(),
            head: 0,
            closures: VecDeque::new(),
            closure_head: 0,
            live: 0,
        }
    }

    /// Callbacks queued and not cancelled: each keeps the loop alive.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    #[inline]
    fn push(&mut self, e: Entry) -> CallbackId {
        let id = self.head + self.ring.len() as u64;
        self.ring.push_back(e);
        self.live += 1;
        CallbackId(id)
    }

    /// Queues `f(loop, data)`: the hot path.
    #[inline]
    pub(crate) fn push_fn(&mut self, f: fn(&Loop, u64), data: u64) -> CallbackId {
        self.push(Entry::Fn(f, data))
    }

    /// Queues a boxed closure.
    pub(crate) fn push_closure(&mut self, c: BoxedCallback) -> CallbackId {
        let seq = self.closure_head + self.closures.len() as u64;
        self.closures.push_back(Some(c));
        self.push(Entry::Closure(seq))
    }

    pub(crate) fn cancel(&mut self, id: CallbackId) -> bool {
        // An id below `head` (already run or skipped) wraps to a huge
        // offset; one at or past the tail was never issued (forged).
        let pos = id.0.wrapping_sub(self.head);
        if pos >= self.ring.len() as u64 {
            return false;
        }
        let entry = &mut self.ring[pos as usize];
        let cancelled = match *entry {
            Entry::Fn(..) => {
                *entry = Entry::Cancelled;
                true
            }
            Entry::Closure(seq) => {
                let slot = &mut self.closures[(seq - self.closure_head) as usize];
                // Drops the closure now, not when the drain reaches it.
                slot.take().is_some()
            }
            Entry::Cancelled => false,
        };
        if cancelled {
            self.live -= 1;
        }
        cancelled
    }

    /// The oldest live callback.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<CallbackHandler> {
        while let Some(e) = self.ring.pop_front() {
            self.head += 1;
            match e {
                Entry::Fn(f, data) => {
                    self.live -= 1;
                    return Some(CallbackHandler::Fn(f, data));
                }
                Entry::Closure(seq) => {
                    debug_assert_eq!(seq, self.closure_head, "closure ring out of step");
                    self.closure_head += 1;
                    let slot = self.closures.pop_front().expect("closure ring out of step");
                    if let Some(c) = slot {
                        self.live -= 1;
                        return Some(CallbackHandler::Closure(c));
                    }
                }
                Entry::Cancelled => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::{CallbackHandler, Callbacks};
    use crate::token::CallbackId;
    use crate::Loop;

    fn nop(_: &Loop, _: u64) {}

    /// Pops everything, as tags: `fn` data, or 1000 + n for closure n.
    fn drain(cbs: &mut Callbacks, ran: &Rc<RefCell<Vec<u64>>>) -> Vec<u64> {
        let lp = Loop::new().expect("loop");
        let mut seen = Vec::new();
        while let Some(h) = cbs.pop() {
            match h {
                CallbackHandler::Fn(_, data) => seen.push(data),
                CallbackHandler::Closure(c) => {
                    c(&lp);
                    seen.push(ran.borrow_mut().pop().expect("closure ran"));
                }
            }
        }
        seen
    }

    #[test]
    fn fn_and_closure_callbacks_keep_one_fifo_and_exact_counts() {
        let ran = Rc::new(RefCell::new(Vec::new()));
        let mut cbs = Callbacks::new();
        let mut ids = Vec::new();
        for i in 0..6u64 {
            ids.push(if i % 2 == 0 {
                cbs.push_fn(nop, i)
            } else {
                let r = ran.clone();
                cbs.push_closure(Box::new(move |_| r.borrow_mut().push(1000 + i)))
            });
        }
        assert_eq!(cbs.len(), 6);
        // Cancel one of each kind; a second cancel is a no-op.
        assert!(cbs.cancel(ids[2]));
        assert!(cbs.cancel(ids[3]));
        assert!(!cbs.cancel(ids[2]));
        assert!(!cbs.cancel(ids[3]));
        assert_eq!(cbs.len(), 4);
        assert_eq!(drain(&mut cbs, &ran), vec![0, 1001, 4, 1005]);
        assert_eq!(cbs.len(), 0);
        // Ids of callbacks that ran, and ids never issued, are unknown.
        for id in &ids {
            assert!(!cbs.cancel(*id));
        }
        assert!(!cbs.cancel(CallbackId(ids[5].0 + 1)));
        assert!(!cbs.cancel(CallbackId(u64::MAX)));
        // Later ids do not collide with earlier ones.
        let next = cbs.push_fn(nop, 7);
        assert!(ids.iter().all(|id| *id != next));
        assert!(!cbs.cancel(ids[0]));
        assert!(cbs.cancel(next));
        assert_eq!(cbs.len(), 0);
        assert!(cbs.pop().is_none());
    }

    #[test]
    fn cancelling_a_closure_drops_it_at_once() {
        let token = Rc::new(());
        let mut cbs = Callbacks::new();
        let t = token.clone();
        let id = cbs.push_closure(Box::new(move |_| drop(t)));
        assert_eq!(Rc::strong_count(&token), 2);
        assert!(cbs.cancel(id));
        assert_eq!(Rc::strong_count(&token), 1);
        assert!(cbs.pop().is_none());
    }
}
