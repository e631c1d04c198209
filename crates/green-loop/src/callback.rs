//! Callbacks: a FIFO of one-shot functions run by the loop.
//!
//! Callbacks live in a [`Slab`] (so a [`CallbackId`] can cancel one in O(1))
//! and their keys queue in a ring buffer. Cancelling frees the slab entry and
//! leaves a stale key in the ring, skipped when popped. Both containers keep
//! their capacity, so `run_callback_fn` allocates nothing in steady state.

use std::collections::VecDeque;

use crate::token::{CallbackId, Key, Slab};
use crate::Loop;

/// What a callback runs.
pub(crate) enum CallbackHandler {
    /// A plain function plus one word of data.
    Fn(fn(&Loop, u64), u64),
    /// A boxed closure (a zero-sized closure does not allocate).
    Closure(Box<dyn FnOnce(&Loop)>),
}

/// The pending-callback queue.
pub(crate) struct Callbacks {
    slab: Slab<CallbackHandler>,
    queue: VecDeque<Key>,
}

impl Callbacks {
    pub(crate) fn new() -> Callbacks {
        Callbacks {
            slab: Slab::new(),
            queue: VecDeque::new(),
        }
    }

    /// Callbacks queued and not cancelled: each keeps the loop alive.
    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    pub(crate) fn push(&mut self, h: CallbackHandler) -> CallbackId {
        let key = self.slab.insert(h);
        self.queue.push_back(key);
        CallbackId(key.pack())
    }

    pub(crate) fn cancel(&mut self, id: CallbackId) -> bool {
        self.slab.remove(id.key()).is_some()
    }

    /// The oldest live callback.
    pub(crate) fn pop(&mut self) -> Option<CallbackHandler> {
        while let Some(key) = self.queue.pop_front() {
            if let Some(h) = self.slab.remove(key) {
                return Some(h);
            }
        }
        None
    }
}
