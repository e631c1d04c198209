//! The wait list every primitive parks its greenlets on (W1-W4).
//!
//! * **W1.** Each list has two chains (a primitive's waiters and its late
//!   arrivals, or a queue's getters and putters); each chain is FIFO.
//! * **W2.** A waiter is removed by its key in O(1), wherever it is: a
//!   killed or timed-out waiter leaves no trace. A key carries its node's
//!   serial, so a stale key never matches a node that reused the slot.
//! * **W3.** No allocation per wait in steady state: nodes live in a slab
//!   whose freed slots are reused.
//! * **W4.** A node a notifier takes is gone from the list: a waiter knows
//!   it was woken by finding its key no longer there.

use crate::greenlet::state::CoreRef;
use crate::slab::Slab;

/// What waking a waiter means.
pub(crate) enum Wake {
    /// Switch to this parked greenlet.
    Greenlet(CoreRef),
    /// Call this from the hub (a `wait`/`iwait` link).
    Call(Box<dyn FnOnce()>),
}

const NIL: u32 = u32::MAX;

struct Node<P> {
    prev: u32,
    next: u32,
    chain: u8,
    serial: u64,
    wake: Wake,
    payload: P,
}

/// Where a waiter is in its list (W2).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct WaitKey {
    index: u32,
    serial: u64,
}

impl WaitKey {
    /// Packed into a `LinkId` number: the slot and the serial's low bits.
    pub(crate) fn to_raw(self) -> u64 {
        (u64::from(self.index) << 32) | (self.serial & 0xffff_ffff)
    }

    pub(crate) fn from_raw(raw: u64) -> WaitKey {
        WaitKey {
            index: (raw >> 32) as u32,
            serial: raw & 0xffff_ffff,
        }
    }
}

#[derive(Clone, Copy)]
struct Chain {
    head: u32,
    tail: u32,
    len: usize,
}

impl Chain {
    const EMPTY: Chain = Chain {
        head: NIL,
        tail: NIL,
        len: 0,
    };
}

/// Parked waiters in two FIFO chains, each carrying a payload `P` (a
/// putter's item). See the module docs.
pub(crate) struct WaitList<P = ()> {
    nodes: Slab<Node<P>>,
    chains: [Chain; 2],
    next_serial: u64,
}

impl<P> WaitList<P> {
    pub(crate) fn new() -> WaitList<P> {
        WaitList {
            nodes: Slab::new(),
            chains: [Chain::EMPTY; 2],
            next_serial: 1,
        }
    }

    /// The serial the next waiter will get: a notifier that starts now
    /// wakes only waiters below it.
    pub(crate) fn next_serial(&self) -> u64 {
        self.next_serial
    }

    pub(crate) fn len(&self, chain: usize) -> usize {
        self.chains[chain].len
    }

    #[inline]
    pub(crate) fn is_empty(&self, chain: usize) -> bool {
        self.chains[chain].len == 0
    }

    /// Appends a waiter to `chain`.
    pub(crate) fn push(&mut self, chain: usize, wake: Wake, payload: P) -> WaitKey {
        let serial = self.next_serial;
        self.next_serial += 1;
        let tail = self.chains[chain].tail;
        let index = self.nodes.insert(Node {
            prev: tail,
            next: NIL,
            chain: chain as u8,
            serial,
            wake,
            payload,
        });
        let index = u32::try_from(index)
            .ok()
            .filter(|&i| i != NIL)
            .expect("fewer than 2^32 - 1 waiters on one object");
        match self.nodes.get_mut(tail as usize) {
            Some(node) => node.next = index,
            None => self.chains[chain].head = index,
        }
        self.chains[chain].tail = index;
        self.chains[chain].len += 1;
        WaitKey { index, serial }
    }

    #[inline]
    fn node(&self, key: WaitKey) -> Option<&Node<P>> {
        self.nodes
            .get(key.index as usize)
            .filter(|n| n.serial & 0xffff_ffff == key.serial & 0xffff_ffff)
    }

    /// Whether the waiter at `key` is still waiting (W4).
    #[inline]
    pub(crate) fn contains(&self, key: WaitKey) -> bool {
        self.node(key).is_some()
    }

    /// Removes the waiter at `key`, if it is still there (W2).
    #[inline]
    pub(crate) fn remove(&mut self, key: WaitKey) -> Option<(Wake, P)> {
        self.node(key)?;
        Some(self.unlink(key.index))
    }

    fn unlink(&mut self, index: u32) -> (Wake, P) {
        let node = self
            .nodes
            .remove(index as usize)
            .expect("a linked node is in the slab");
        let chain = &mut self.chains[node.chain as usize];
        match self.nodes.get_mut(node.prev as usize) {
            Some(prev) => prev.next = node.next,
            None => chain.head = node.next,
        }
        match self.nodes.get_mut(node.next as usize) {
            Some(next) => next.prev = node.prev,
            None => chain.tail = node.prev,
        }
        chain.len -= 1;
        (node.wake, node.payload)
    }

    /// The serial of `chain`'s first waiter, and whether it is a callback.
    #[inline]
    pub(crate) fn front(&self, chain: usize) -> Option<(u64, bool)> {
        let node = self.nodes.get(self.chains[chain].head as usize)?;
        Some((node.serial, matches!(node.wake, Wake::Call(_))))
    }

    /// Takes `chain`'s first waiter.
    pub(crate) fn pop_front(&mut self, chain: usize) -> Option<(Wake, P)> {
        let first = &mut self.chains[chain];
        let node = self.nodes.remove(first.head as usize)?;
        // The head has no predecessor: only its successor is relinked.
        first.head = node.next;
        first.len -= 1;
        match self.nodes.get_mut(node.next as usize) {
            Some(next) => next.prev = NIL,
            None => first.tail = NIL,
        }
        Some((node.wake, node.payload))
    }

    /// [`WaitList::pop_front`], with the key the waiter had.
    pub(crate) fn pop_front_keyed(&mut self, chain: usize) -> Option<(WaitKey, Wake, P)> {
        let head = self.chains[chain].head;
        let serial = self.nodes.get(head as usize)?.serial;
        let (wake, payload) = self.unlink(head);
        Some((
            WaitKey {
                index: head,
                serial,
            },
            wake,
            payload,
        ))
    }

    /// The greenlets waiting on `chain`, in order (to wake them all
    /// without taking them off: a queue being closed).
    pub(crate) fn greenlets(&self, chain: usize) -> Vec<CoreRef> {
        let mut found = Vec::new();
        let mut at = self.chains[chain].head;
        while let Some(node) = self.nodes.get(at as usize) {
            if let Wake::Greenlet(core) = &node.wake {
                found.push(std::rc::Rc::clone(core));
            }
            at = node.next;
        }
        found
    }

    /// Moves every waiter of chain `from` to the end of chain `to`, in
    /// order; their keys stay valid.
    pub(crate) fn append_chain(&mut self, from: usize, to: usize) {
        let moved = self.chains[from];
        if moved.len == 0 {
            return;
        }
        let mut at = moved.head;
        while let Some(node) = self.nodes.get_mut(at as usize) {
            node.chain = to as u8;
            at = node.next;
        }
        let tail = self.chains[to].tail;
        match self.nodes.get_mut(tail as usize) {
            Some(node) => node.next = moved.head,
            None => self.chains[to].head = moved.head,
        }
        if let Some(node) = self.nodes.get_mut(moved.head as usize) {
            node.prev = tail;
        }
        self.chains[to].tail = moved.tail;
        self.chains[to].len += moved.len;
        self.chains[from] = Chain::EMPTY;
    }
}

#[cfg(test)]
mod tests {
    use super::{WaitList, Wake};

    fn call() -> Wake {
        Wake::Call(Box::new(|| {}))
    }

    #[test]
    fn chains_are_fifo_and_removal_keeps_the_order() {
        let mut list = WaitList::new();
        let a = list.push(0, call(), 'a');
        let b = list.push(0, call(), 'b');
        let c = list.push(0, call(), 'c');
        let x = list.push(1, call(), 'x');
        assert_eq!(list.remove(b).map(|(_, p)| p), Some('b'));
        assert_eq!(list.remove(b).map(|(_, p)| p), None);
        assert!(list.contains(a) && list.contains(c) && list.contains(x));
        assert_eq!(list.len(0), 2);
        let d = list.push(0, call(), 'd');
        // `d` reuses `b`'s slot; `b`'s key must not match it.
        assert!(!list.contains(b) && list.contains(d));
        list.append_chain(1, 0);
        let order: Vec<char> = std::iter::from_fn(|| list.pop_front(0).map(|(_, p)| p)).collect();
        assert_eq!(order, ['a', 'c', 'd', 'x']);
        list.push(0, call(), 'a');
        list.push(0, call(), 'c');
        let d = list.push(0, call(), 'd');
        let x = list.push(0, call(), 'x');
        assert!(list.is_empty(1));
        assert_eq!(list.pop_front(0).map(|(_, p)| p), Some('a'));
        assert_eq!(list.remove(x).map(|(_, p)| p), Some('x'));
        assert_eq!(list.remove(d).map(|(_, p)| p), Some('d'));
        assert_eq!(list.pop_front(0).map(|(_, p)| p), Some('c'));
        assert!(list.pop_front(0).is_none());
        assert_eq!(list.front(0), None);
    }
}
