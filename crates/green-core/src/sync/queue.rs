//! The queue family: [`Queue`] (also [`JoinableQueue`]), [`LifoQueue`],
//! [`PriorityQueue`] and [`Channel`], gevent's `gevent.queue`.
//!
//! Blocked getters and putters park on one wait list (getters on one
//! chain, putters on the other, W1). A put that finds getters waiting, or
//! a get that finds putters waiting, queues the queue's hand-off on the
//! hub's callback queue (gevent's `_unlock`); the caller does not switch.
//! The hand-off admits waiting putters' items while there is room and
//! wakes getters while there are items, one each, FIFO; a woken getter
//! takes whatever is at the head when it runs, at the hand-off's place.
//!
//! A queue's hand-off that runs a waiter and would have nothing to do at
//! its next move (no putter it could admit, no getter it could serve)
//! waits out that waiter's window out of the callback queue (N5, `ran`):
//! every change it would act on while the window is open (a hand-off
//! scheduled, the queue closed, the room a woken getter makes) puts it back
//! at the front first, where it would have been all along.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::linkable::{check_and_notify, link_ready, Linkable, Linked};
use super::waitlist::{WaitKey, WaitList, Wake};
use super::Event;
use crate::greenlet::state::CoreRef;
use crate::hub::{deadline_after, existing_hub, hub, Hub, Notify, Step, TimerWake};
use crate::{LinkId, Waitable};

const GETTERS: usize = 0;
const PUTTERS: usize = 1;

/// Why a put failed; the item comes back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum PutError<T> {
    /// The queue stayed full (a put that does not block, or whose timeout
    /// passed).
    Full(T),
    /// The queue is closed.
    Closed(T),
}

impl<T> PutError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        match self {
            PutError::Full(item) | PutError::Closed(item) => item,
        }
    }

    /// Whether the queue was full (not closed).
    pub fn is_full(&self) -> bool {
        matches!(self, PutError::Full(_))
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("Full(..)"),
            PutError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("queue is full"),
            PutError::Closed(_) => f.write_str("queue is closed: nothing more can be put in it"),
        }
    }
}

impl<T> std::error::Error for PutError<T> {}

/// Why a get (or peek) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetError {
    /// No item came (a get that does not block, or whose timeout passed).
    Empty,
    /// The queue is closed and drained.
    Closed,
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetError::Empty => f.write_str("queue is empty"),
            GetError::Closed => f.write_str("queue is closed and drained"),
        }
    }
}

impl std::error::Error for GetError {}

/// How a queue orders its items.
pub(crate) trait Storage<T>: Default + 'static {
    fn push(&mut self, item: T);
    fn pop(&mut self) -> Option<T>;
    fn peek(&self) -> Option<&T>;
    fn len(&self) -> usize;
}

impl<T: 'static> Storage<T> for VecDeque<T> {
    fn push(&mut self, item: T) {
        self.push_back(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.pop_front()
    }
    fn peek(&self) -> Option<&T> {
        self.front()
    }
    fn len(&self) -> usize {
        VecDeque::len(self)
    }
}

/// Last in, first out.
pub(crate) struct Lifo<T>(Vec<T>);

impl<T> Default for Lifo<T> {
    fn default() -> Self {
        Lifo(Vec::new())
    }
}

impl<T: 'static> Storage<T> for Lifo<T> {
    fn push(&mut self, item: T) {
        self.0.push(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop()
    }
    fn peek(&self) -> Option<&T> {
        self.0.last()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Lowest first.
pub(crate) struct Lowest<T: Ord>(BinaryHeap<Reverse<T>>);

impl<T: Ord> Default for Lowest<T> {
    fn default() -> Self {
        Lowest(BinaryHeap::new())
    }
}

impl<T: Ord + 'static> Storage<T> for Lowest<T> {
    fn push(&mut self, item: T) {
        self.0.push(Reverse(item));
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop().map(|Reverse(item)| item)
    }
    fn peek(&self) -> Option<&T> {
        self.0.peek().map(|Reverse(item)| item)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// The callbacks `wait`/`iwait` link to a queue: ready = not empty, or
/// closed.
struct QueueLinks {
    ready: Cell<bool>,
    linkable: Linkable,
}

impl Linked for QueueLinks {
    fn linkable(&self) -> &Linkable {
        &self.linkable
    }
    fn is_ready(&self) -> bool {
        self.ready.get()
    }
    fn kind(&self) -> &'static str {
        "a queue"
    }
}

pub(crate) struct QueueInner<T, S> {
    items: RefCell<S>,
    /// `None`: unbounded.
    maxsize: Option<usize>,
    /// Getters (payload `None`) and putters (their item).
    waiters: RefCell<WaitList<Option<T>>>,
    /// A hand-off is queued and has not started (gevent's `_event_unlock`):
    /// the epoch of the hub it is queued on, 0 for none.
    unlock_queued: Cell<u64>,
    /// The hand-off's next move is a getter's (it alternates, as gevent's
    /// `_unlock` loop does).
    getter_turn: Cell<bool>,
    /// N5: the id of the waiter the hand-off ran, whose window it waits
    /// out of the callback queue; 0 for none.
    ran: Cell<u64>,
    closed: Cell<bool>,
    links: Rc<QueueLinks>,
    unfinished: Cell<usize>,
    all_done: Event,
}

impl<T: 'static, S: Storage<T>> Notify for QueueInner<T, S> {
    /// One move of gevent's `_unlock` loop: admit a putter while there is
    /// room, wake a getter while there is an item, alternating.
    fn step(&self, _in_hub: bool) -> Step {
        self.unlock_queued.set(0);
        for _ in 0..2 {
            if self.getter_turn.replace(!self.getter_turn.get()) {
                if self.has_waiting(GETTERS) && (self.len() > 0 || self.closed.get()) {
                    let taken = self.waiters.borrow_mut().pop_front(GETTERS);
                    if let Some((Wake::Greenlet(getter), _)) = taken {
                        return Step::Run(getter);
                    }
                }
            } else if self.has_waiting(PUTTERS) && self.has_room() && !self.closed.get() {
                // A closed queue admits nothing more: its blocked putters
                // get their items back.
                let taken = self.waiters.borrow_mut().pop_front(PUTTERS);
                if let Some((Wake::Greenlet(putter), item)) = taken {
                    if let Some(item) = item {
                        self.push_item(item);
                    }
                    return Step::Run(putter);
                }
            }
        }
        self.getter_turn.set(false);
        Step::Done { again: false }
    }

    fn leave_for(&self, waiter: u64) -> Option<u64> {
        if self.hand_off_would_act() {
            return None;
        }
        self.ran.set(waiter);
        Some(self.window_tag())
    }

    fn what(&self) -> &'static str {
        "a queue"
    }
}

impl<T: 'static, S: Storage<T>> QueueInner<T, S> {
    fn new(maxsize: Option<usize>) -> Rc<Self> {
        let all_done = Event::new();
        all_done.set();
        Rc::new(QueueInner {
            items: RefCell::new(S::default()),
            maxsize,
            waiters: RefCell::new(WaitList::new()),
            unlock_queued: Cell::new(0),
            getter_turn: Cell::new(false),
            ran: Cell::new(0),
            closed: Cell::new(false),
            links: Rc::new(QueueLinks {
                ready: Cell::new(false),
                linkable: Linkable::new(true),
            }),
            unfinished: Cell::new(0),
            all_done,
        })
    }

    fn len(&self) -> usize {
        self.items.borrow().len()
    }

    fn has_room(&self) -> bool {
        self.maxsize.is_none_or(|max| self.len() < max)
    }

    fn push_item(&self, item: T) {
        self.items.borrow_mut().push(item);
        self.unfinished.set(self.unfinished.get() + 1);
        if self.unfinished.get() == 1 {
            self.all_done.clear();
        }
        self.set_links_ready(true);
    }

    fn pop_item(&self) -> Option<T> {
        let (item, left) = {
            let mut items = self.items.borrow_mut();
            let item = items.pop();
            (item, items.len())
        };
        if item.is_some() {
            self.set_links_ready(left > 0 || self.closed.get());
        }
        item
    }

    /// Keeps the `wait`/`iwait` readiness current; wakes their callbacks
    /// when the queue turns ready.
    fn update_links(&self) {
        self.set_links_ready(self.len() > 0 || self.closed.get());
    }

    /// [`QueueInner::update_links`] for a caller that knows the readiness.
    #[inline]
    fn set_links_ready(&self, ready: bool) {
        let was = self.links.ready.replace(ready);
        if ready && !was {
            self.turned_ready();
        }
    }

    /// The queue just turned ready: the callbacks linked to it, if any,
    /// are to be called.
    #[inline(never)]
    fn turned_ready(&self) {
        if self.links.linkable.waiter_count() > 0 {
            check_and_notify(&self.links);
        }
    }

    /// gevent's `_schedule_unlock`.
    fn schedule_unlock(this: &Rc<Self>) {
        QueueInner::end_window(this);
        schedule_hand_off(&this.unlock_queued, || Rc::clone(this) as Rc<dyn Notify>);
    }

    /// Whether the hand-off's next move would admit a putter or wake a
    /// getter.
    fn hand_off_would_act(&self) -> bool {
        let list = self.waiters.borrow();
        let closed = self.closed.get();
        (!list.is_empty(PUTTERS) && !closed && self.has_room())
            || (!list.is_empty(GETTERS) && (closed || self.len() > 0))
    }

    /// What tells this hand-off's window from any other (N5).
    fn window_tag(&self) -> u64 {
        std::ptr::from_ref(self) as usize as u64
    }

    /// N5: before a change the hand-off would act on, a hand-off waiting
    /// out its waiter's window goes back to the front of the callback
    /// queue; one whose window has closed does what its skipped last move
    /// would have done.
    #[inline]
    fn end_window(this: &Rc<Self>) {
        let waiter = this.ran.get();
        if waiter == 0 {
            return;
        }
        this.ran.set(0);
        match existing_hub() {
            Some(hub) if hub.notify_window_open(this.window_tag(), waiter) => {
                hub.resume_notify(Rc::clone(this) as Rc<dyn Notify>);
            }
            _ => this.getter_turn.set(false),
        }
    }

    #[inline]
    fn has_waiting(&self, chain: usize) -> bool {
        !self.waiters.borrow().is_empty(chain)
    }

    /// gevent's `put`.
    #[track_caller]
    fn put(
        this: &Rc<Self>,
        item: T,
        block: bool,
        timeout: Option<Duration>,
    ) -> Result<(), PutError<T>> {
        if this.closed.get() {
            return Err(PutError::Closed(item));
        }
        if this.has_room() {
            this.push_item(item);
            if this.has_waiting(GETTERS) {
                QueueInner::schedule_unlock(this);
            }
            return Ok(());
        }
        if !block {
            return Err(PutError::Full(item));
        }
        let parked = ParkedOn::new(&this.waiters, &this.closed, PUTTERS, Some(item), timeout);
        if this.has_waiting(GETTERS) {
            QueueInner::schedule_unlock(this);
        }
        match parked.wait() {
            Woken::Taken => Ok(()),
            Woken::Left(item, closed) => {
                let item = item.expect("a putter's node holds its item");
                Err(if closed {
                    PutError::Closed(item)
                } else {
                    PutError::Full(item)
                })
            }
        }
    }

    /// gevent's `get` (`take`) and `peek`.
    #[track_caller]
    fn get_or_peek<R>(
        this: &Rc<Self>,
        take: impl Fn(&Self) -> Option<R>,
        block: bool,
        timeout: Option<Duration>,
    ) -> Result<R, GetError> {
        if let Some(found) = take(this) {
            if this.has_waiting(PUTTERS) {
                QueueInner::schedule_unlock(this);
            }
            return Ok(found);
        }
        if this.closed.get() {
            return Err(GetError::Closed);
        }
        if !block {
            return Err(GetError::Empty);
        }
        let deadline = timeout.map(deadline_after);
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let parked = ParkedOn::new(&this.waiters, &this.closed, GETTERS, None, left);
            if this.has_waiting(PUTTERS) {
                QueueInner::schedule_unlock(this);
            }
            let woken = parked.wait();
            drop(parked);
            if let Some(found) = take(this) {
                if this.ran.get() != 0 && this.hand_off_would_act() {
                    // N5: the room it made is the hand-off's to fill.
                    QueueInner::end_window(this);
                }
                return Ok(found);
            }
            match woken {
                _ if this.closed.get() => return Err(GetError::Closed),
                Woken::Left(..) => return Err(GetError::Empty),
                // Woken, but another greenlet took the item first: wait
                // again, behind the others.
                Woken::Taken => {
                    if deadline.is_some_and(|d| d <= Instant::now()) {
                        return Err(GetError::Empty);
                    }
                }
            }
        }
    }

    /// A put from another thread ([`super::RemotePutter`]): never blocks;
    /// past the bound on a full queue; dropped on a closed one.
    pub(crate) fn put_from_afar(this: &Rc<Self>, item: T) {
        if this.closed.get() {
            return;
        }
        this.push_item(item);
        if this.has_waiting(GETTERS) {
            QueueInner::schedule_unlock(this);
        }
    }

    fn close(this: &Rc<Self>) {
        if this.closed.get() {
            return;
        }
        QueueInner::end_window(this);
        this.closed.set(true);
        // Every waiter wakes and finds the queue closed: putters get their
        // items back; getters drain what is left, then see it closed.
        let waiting = {
            let list = this.waiters.borrow();
            let mut all = list.greenlets(GETTERS);
            all.extend(list.greenlets(PUTTERS));
            all
        };
        let hub = hub();
        for core in &waiting {
            hub.schedule(core);
        }
        this.update_links();
    }

    fn task_done(&self) -> Result<(), TaskDoneError> {
        let unfinished = self.unfinished.get();
        if unfinished == 0 {
            return Err(TaskDoneError(()));
        }
        self.unfinished.set(unfinished - 1);
        if unfinished == 1 {
            self.all_done.set();
        }
        Ok(())
    }
}

/// gevent's `_schedule_unlock`: queues the hand-off unless one is queued
/// and has not started (on this hub: one a torn-down hub dropped unrun does
/// not count).
fn schedule_hand_off(queued: &Cell<u64>, notifier: impl FnOnce() -> Rc<dyn Notify>) {
    let hub = hub();
    if queued.get() != hub.epoch() {
        queued.set(hub.epoch());
        hub.queue_notify(notifier());
    }
}

/// How a parked getter or putter came back.
enum Woken<T> {
    /// The hand-off took its node.
    Taken,
    /// It left on its own (timeout, or the queue closed), with its node's
    /// payload.
    Left(Option<T>, bool),
}

/// A getter or putter parked on a queue or channel; dropping it (on
/// return or unwind) takes its node off and cancels its timer, so one that
/// timed out or was killed consumes nothing and adds nothing.
struct ParkedOn<'a, T> {
    waiters: &'a RefCell<WaitList<Option<T>>>,
    closed: &'a Cell<bool>,
    hub: &'static Hub,
    me: CoreRef,
    key: WaitKey,
    wake: Option<TimerWake>,
}

impl<'a, T> ParkedOn<'a, T> {
    #[track_caller]
    fn new(
        waiters: &'a RefCell<WaitList<Option<T>>>,
        closed: &'a Cell<bool>,
        chain: usize,
        item: Option<T>,
        timeout: Option<Duration>,
    ) -> Self {
        let hub = hub();
        let me = hub.current_for_blocking();
        let key = waiters
            .borrow_mut()
            .push(chain, Wake::Greenlet(Rc::clone(&me)), item);
        let wake = timeout.map(|d| hub.wake_at(&me, deadline_after(d), true));
        ParkedOn {
            waiters,
            closed,
            hub,
            me,
            key,
            wake,
        }
    }

    #[track_caller]
    fn wait(&self) -> Woken<T> {
        let hub = self.hub;
        loop {
            let gave_up = !hub.park_as(&self.me);
            if !self.waiters.borrow().contains(self.key) {
                return Woken::Taken;
            }
            let closed = self.closed.get();
            if gave_up || closed || self.wake.as_ref().is_some_and(|w| w.fired(hub)) {
                let payload = self.waiters.borrow_mut().remove(self.key);
                return Woken::Left(payload.and_then(|(_, item)| item), closed);
            }
        }
    }
}

impl<T> Drop for ParkedOn<'_, T> {
    fn drop(&mut self) {
        let removed = self.waiters.borrow_mut().remove(self.key);
        if let Some((_, Some(item))) = removed {
            // A putter unwinding (killed) drops its item here: a panic in
            // its destructor would abort the process mid-unwind, so it is
            // caught and reported.
            if let Some(hub) = existing_hub() {
                let passed = hub.guard_user_code(
                    || "dropping the item of a putter that was killed".to_string(),
                    std::panic::Location::caller(),
                    move || drop(item),
                );
                drop(passed);
            }
        }
        // The hub is looked up only for a timed wait.
        if let Some(wake) = &self.wake {
            if let Some(hub) = existing_hub() {
                hub.cancel_wake(wake);
            }
        }
    }
}

/// `task_done` was called more often than items were put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskDoneError(());

impl fmt::Display for TaskDoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task_done() called too many times (once per item taken, at most)")
    }
}

impl std::error::Error for TaskDoneError {}

macro_rules! queue_type {
    ($(#[$doc:meta])* $name:ident, $storage:ty, [$($bound:tt)*]) => {
        $(#[$doc])*
        pub struct $name<T: $($bound)*> {
            inner: Rc<QueueInner<T, $storage>>,
        }

        impl<T: $($bound)*> Clone for $name<T> {
            fn clone(&self) -> Self {
                $name { inner: Rc::clone(&self.inner) }
            }
        }

        impl<T: $($bound)*> Default for $name<T> {
            fn default() -> Self {
                $name::new()
            }
        }

        impl<T: $($bound)*> $name<T> {
            /// An unbounded queue.
            pub fn new() -> Self {
                $name { inner: QueueInner::new(None) }
            }

            /// A queue that holds at most `maxsize` items; puts block while
            /// it is full.
            ///
            /// # Panics
            /// If `maxsize` is 0: such a queue could never hold an item. Use
            /// [`Channel`] for a rendezvous, or [`new`](Self::new) for an
            /// unbounded queue.
            #[track_caller]
            pub fn bounded(maxsize: usize) -> Self {
                assert!(
                    maxsize > 0,
                    "green-core: a queue bounded to 0 items could never hold one: use Channel \
                     for a rendezvous, or new() for an unbounded queue"
                );
                $name { inner: QueueInner::new(Some(maxsize)) }
            }

            /// Puts `item`, blocking while the queue is full. A getter
            /// waiting is woken after the caller blocks (the put does not
            /// switch).
            ///
            /// # Errors
            /// [`PutError::Closed`] if the queue is (or gets) closed.
            ///
            /// # Kill safety
            /// Interruptible: a putter killed or timed out while waiting has
            /// added nothing (its item is dropped with it).
            #[track_caller]
            pub fn put(&self, item: T) -> Result<(), PutError<T>> {
                QueueInner::put(&self.inner, item, true, None)
            }

            /// [`put`](Self::put) for at most `timeout`; [`PutError::Full`]
            /// with the item if it passed first.
            ///
            /// # Kill safety
            /// As [`put`](Self::put).
            #[track_caller]
            pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutError<T>> {
                QueueInner::put(&self.inner, item, true, Some(timeout))
            }

            /// Puts `item` if there is room, without blocking or switching.
            pub fn put_nowait(&self, item: T) -> Result<(), PutError<T>> {
                QueueInner::put(&self.inner, item, false, None)
            }

            /// Takes the item at the head, blocking while the queue is
            /// empty. On a non-empty queue it takes the head at once, even
            /// when other getters are waiting (gevent's order).
            ///
            /// # Errors
            /// [`GetError::Closed`] once the queue is closed and drained.
            ///
            /// # Kill safety
            /// Interruptible: a getter killed or timed out while waiting
            /// has taken nothing.
            #[track_caller]
            pub fn get(&self) -> Result<T, GetError> {
                QueueInner::get_or_peek(&self.inner, QueueInner::pop_item, true, None)
            }

            /// [`get`](Self::get) for at most `timeout`;
            /// [`GetError::Empty`] if it passed first. A zero timeout is a
            /// real zero-second timer.
            ///
            /// # Kill safety
            /// As [`get`](Self::get).
            #[track_caller]
            pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
                QueueInner::get_or_peek(&self.inner, QueueInner::pop_item, true, Some(timeout))
            }

            /// Takes the head if there is one, without blocking or switching.
            pub fn get_nowait(&self) -> Result<T, GetError> {
                QueueInner::get_or_peek(&self.inner, QueueInner::pop_item, false, None)
            }

            /// The number of items in the queue.
            pub fn qsize(&self) -> usize {
                self.inner.len()
            }

            /// Whether the queue holds no item.
            pub fn empty(&self) -> bool {
                self.inner.len() == 0
            }

            /// Whether a put would block.
            pub fn full(&self) -> bool {
                !self.inner.has_room()
            }

            /// The bound given to [`bounded`](Self::bounded), if any.
            pub fn maxsize(&self) -> Option<usize> {
                self.inner.maxsize
            }

            /// Closes the queue: puts fail from now on, blocked putters get
            /// their items back, and getters drain what is left, then get
            /// [`GetError::Closed`] (iteration ends).
            pub fn close(&self) {
                QueueInner::close(&self.inner);
            }

            /// Whether [`close`](Self::close) was called.
            pub fn is_closed(&self) -> bool {
                self.inner.closed.get()
            }

            /// Putters blocked minus getters blocked (gevent's `balance`):
            /// positive while putters wait for room, negative while getters
            /// wait for items.
            pub fn balance(&self) -> isize {
                let list = self.inner.waiters.borrow();
                list.len(PUTTERS) as isize - list.len(GETTERS) as isize
            }

            /// Marks one item taken from the queue as processed
            /// (`JoinableQueue`).
            ///
            /// # Errors
            /// [`TaskDoneError`] if every item put is already marked done.
            pub fn task_done(&self) -> Result<(), TaskDoneError> {
                self.inner.task_done()
            }

            /// Items put and not yet marked done with
            /// [`task_done`](Self::task_done).
            pub fn unfinished_tasks(&self) -> usize {
                self.inner.unfinished.get()
            }

            /// Blocks until every item put has been marked done; `true` then
            /// (`false` only when the hub gave up on the wait while tearing
            /// down).
            ///
            /// # Kill safety
            /// Interruptible; leaves nothing behind.
            #[track_caller]
            pub fn join(&self) -> bool {
                self.inner.all_done.wait()
            }

            /// [`join`](Self::join) for at most `timeout`; `false` if it
            /// passed first.
            ///
            /// # Kill safety
            /// As [`join`](Self::join).
            #[track_caller]
            pub fn join_timeout(&self, timeout: Duration) -> bool {
                self.inner.all_done.wait_timeout(timeout)
            }

            /// An iterator that takes items until the queue is closed and
            /// drained.
            pub fn iter(&self) -> QueueIter<'_, T> {
                QueueIter { next: Box::new(move || self.get().ok()) }
            }

            /// A `Send` handle that puts into this queue from another
            /// thread.
            pub fn remote_putter(&self) -> super::RemotePutter<T>
            where
                T: Send,
            {
                super::remote::remote_putter(&self.inner)
            }
        }

        impl<T: Clone + $($bound)*> $name<T> {
            /// A copy of the head, without taking it, blocking while the
            /// queue is empty.
            ///
            /// # Errors
            /// [`GetError::Closed`] once the queue is closed and drained.
            ///
            /// # Kill safety
            /// Interruptible; leaves nothing behind.
            #[track_caller]
            pub fn peek(&self) -> Result<T, GetError> {
                QueueInner::get_or_peek(&self.inner, |q| q.items.borrow().peek().cloned(), true, None)
            }

            /// [`peek`](Self::peek) for at most `timeout`.
            ///
            /// # Kill safety
            /// As [`peek`](Self::peek).
            #[track_caller]
            pub fn peek_timeout(&self, timeout: Duration) -> Result<T, GetError> {
                QueueInner::get_or_peek(&self.inner, |q| q.items.borrow().peek().cloned(), true, Some(timeout))
            }

            /// A copy of the head if there is one, without blocking.
            pub fn peek_nowait(&self) -> Result<T, GetError> {
                QueueInner::get_or_peek(&self.inner, |q| q.items.borrow().peek().cloned(), false, None)
            }
        }

        impl<T: $($bound)*> Waitable for $name<T> {
            /// Ready while it holds an item (or is closed).
            fn is_ready(&self) -> bool {
                self.inner.links.ready.get()
            }

            fn link_ready(&self, callback: Box<dyn FnOnce()>) -> LinkId {
                link_ready(&self.inner.links, callback)
            }

            fn unlink_ready(&self, id: LinkId) {
                self.inner.links.linkable.unlink(id);
            }
        }

        impl<'a, T: $($bound)*> IntoIterator for &'a $name<T> {
            type Item = T;
            type IntoIter = QueueIter<'a, T>;

            fn into_iter(self) -> QueueIter<'a, T> {
                self.iter()
            }
        }

        impl<T: $($bound)*> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let list = self.inner.waiters.borrow();
                f.debug_struct(stringify!($name))
                    .field("qsize", &self.inner.len())
                    .field("maxsize", &self.inner.maxsize)
                    .field("getters", &list.len(GETTERS))
                    .field("putters", &list.len(PUTTERS))
                    .field("closed", &self.inner.closed.get())
                    .finish()
            }
        }
    };
}

queue_type!(
    /// A FIFO queue for greenlets (gevent's `Queue`, which is also its
    /// `JoinableQueue`).
    ///
    /// Handles are cheap to clone and stay on their thread (`!Send`); to put
    /// from another thread, hand it a [`remote_putter`](Queue::remote_putter).
    ///
    /// # Examples
    /// ```
    /// let q = green_core::sync::Queue::new();
    /// let consumer = {
    ///     let q = q.clone();
    ///     green_core::spawn(move || q.iter().sum::<u32>())
    /// };
    /// for i in 1..=3 {
    ///     q.put(i).unwrap();
    /// }
    /// q.close();
    /// assert_eq!(consumer.get().unwrap(), 6);
    /// ```
    Queue, VecDeque<T>, ['static]
);

queue_type!(
    /// A last-in, first-out queue (gevent's `LifoQueue`).
    ///
    /// # Examples
    /// ```
    /// let q = green_core::sync::LifoQueue::new();
    /// q.put(1).unwrap();
    /// q.put(2).unwrap();
    /// assert_eq!(q.get().unwrap(), 2);
    /// ```
    LifoQueue, Lifo<T>, ['static]
);

queue_type!(
    /// A queue that gives its lowest item first (gevent's
    /// `PriorityQueue`); wrap items in `std::cmp::Reverse` for highest
    /// first.
    ///
    /// # Examples
    /// ```
    /// let q = green_core::sync::PriorityQueue::new();
    /// q.put((2, "later")).unwrap();
    /// q.put((1, "sooner")).unwrap();
    /// assert_eq!(q.get().unwrap(), (1, "sooner"));
    /// ```
    PriorityQueue, Lowest<T>, [Ord + 'static]
);

/// gevent's `JoinableQueue`: a [`Queue`] (every queue here counts
/// [`task_done`](Queue::task_done) and can be [`join`](Queue::join)ed).
pub type JoinableQueue<T> = Queue<T>;

/// Takes items from a queue until it is closed and drained.
pub struct QueueIter<'a, T> {
    next: Box<dyn FnMut() -> Option<T> + 'a>,
}

impl<T> Iterator for QueueIter<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        (self.next)()
    }
}

impl<T> fmt::Debug for QueueIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueueIter")
    }
}

/// An unbuffered rendezvous (gevent's `Channel`): a put blocks until a
/// getter takes the item, a get until a putter brings one.
///
/// # Examples
/// ```
/// let ch = green_core::sync::Channel::new();
/// let sender = {
///     let ch = ch.clone();
///     green_core::spawn(move || ch.put("hello").is_ok())
/// };
/// assert_eq!(ch.get().unwrap(), "hello");
/// assert!(sender.get().unwrap());
/// ```
pub struct Channel<T: 'static> {
    inner: Rc<ChannelInner<T>>,
}

struct ChannelInner<T> {
    waiters: RefCell<WaitList<Option<T>>>,
    /// Items the hand-off gave getters that have not run yet, by the
    /// getter's key.
    delivered: RefCell<Vec<(WaitKey, T)>>,
    /// The putter whose item the getter now running took: it runs next.
    next_putter: RefCell<Option<CoreRef>>,
    /// As `QueueInner::unlock_queued`.
    unlock_queued: Cell<u64>,
    closed: Cell<bool>,
    links: Rc<QueueLinks>,
}

impl<T: 'static> Notify for ChannelInner<T> {
    /// One move of gevent's `Channel._unlock`: hand the first putter's item
    /// to the first getter and run the getter, then the putter.
    fn step(&self, _in_hub: bool) -> Step {
        self.unlock_queued.set(0);
        if let Some(putter) = self.next_putter.borrow_mut().take() {
            return Step::Run(putter);
        }
        let mut list = self.waiters.borrow_mut();
        if list.is_empty(GETTERS) || list.is_empty(PUTTERS) {
            return Step::Done { again: false };
        }
        let getter = list.pop_front_keyed(GETTERS);
        let putter = list.pop_front_keyed(PUTTERS);
        drop(list);
        self.update_links();
        match (getter, putter) {
            (Some((key, Wake::Greenlet(getter), _)), Some((_, Wake::Greenlet(putter), item))) => {
                if let Some(item) = item {
                    self.delivered.borrow_mut().push((key, item));
                }
                *self.next_putter.borrow_mut() = Some(putter);
                Step::Run(getter)
            }
            _ => Step::Done { again: false },
        }
    }

    fn what(&self) -> &'static str {
        "a Channel"
    }
}

impl<T: 'static> ChannelInner<T> {
    fn schedule_unlock(this: &Rc<Self>) {
        schedule_hand_off(&this.unlock_queued, || Rc::clone(this) as Rc<dyn Notify>);
    }

    /// Ready for `wait`/`iwait`: a putter waits (a get would not block),
    /// or it is closed.
    fn update_links(&self) {
        let ready = !self.waiters.borrow().is_empty(PUTTERS) || self.closed.get();
        let was = self.links.ready.replace(ready);
        if ready && !was && self.links.linkable.waiter_count() > 0 {
            check_and_notify(&self.links);
        }
    }

    fn take_delivered(&self, key: WaitKey) -> Option<T> {
        let mut delivered = self.delivered.borrow_mut();
        let at = delivered.iter().position(|(k, _)| *k == key)?;
        Some(delivered.swap_remove(at).1)
    }

    #[track_caller]
    fn put(this: &Rc<Self>, item: T, timeout: Option<Duration>) -> Result<(), PutError<T>> {
        if this.closed.get() {
            return Err(PutError::Closed(item));
        }
        let parked = ParkedOn::new(&this.waiters, &this.closed, PUTTERS, Some(item), timeout);
        this.update_links();
        if !this.waiters.borrow().is_empty(GETTERS) {
            ChannelInner::schedule_unlock(this);
        }
        let woken = parked.wait();
        drop(parked);
        this.update_links();
        match woken {
            Woken::Taken => Ok(()),
            Woken::Left(item, closed) => {
                let item = item.expect("a putter's node holds its item");
                Err(if closed {
                    PutError::Closed(item)
                } else {
                    PutError::Full(item)
                })
            }
        }
    }

    #[track_caller]
    fn get(this: &Rc<Self>, timeout: Option<Duration>) -> Result<T, GetError> {
        if this.closed.get() {
            return Err(GetError::Closed);
        }
        let parked = ParkedOn::new(&this.waiters, &this.closed, GETTERS, None, timeout);
        if !this.waiters.borrow().is_empty(PUTTERS) {
            ChannelInner::schedule_unlock(this);
        }
        let woken = parked.wait();
        let key = parked.key;
        drop(parked);
        match woken {
            Woken::Taken => this.take_delivered(key).ok_or(GetError::Empty),
            Woken::Left(_, true) => Err(GetError::Closed),
            Woken::Left(_, false) => Err(GetError::Empty),
        }
    }
}

impl<T: 'static> Clone for Channel<T> {
    fn clone(&self) -> Self {
        Channel {
            inner: Rc::clone(&self.inner),
        }
    }
}

impl<T: 'static> Default for Channel<T> {
    fn default() -> Self {
        Channel::new()
    }
}

impl<T: 'static> Channel<T> {
    /// A new channel.
    pub fn new() -> Self {
        Channel {
            inner: Rc::new(ChannelInner {
                waiters: RefCell::new(WaitList::new()),
                delivered: RefCell::new(Vec::new()),
                next_putter: RefCell::new(None),
                unlock_queued: Cell::new(0),
                closed: Cell::new(false),
                links: Rc::new(QueueLinks {
                    ready: Cell::new(false),
                    linkable: Linkable::new(true),
                }),
            }),
        }
    }

    /// Hands `item` to a getter, blocking until one takes it.
    ///
    /// # Errors
    /// [`PutError::Closed`] if the channel is (or gets) closed.
    ///
    /// # Kill safety
    /// Interruptible: a putter killed before a getter took its item has
    /// given nothing (the item is dropped with it).
    #[track_caller]
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        ChannelInner::put(&self.inner, item, None)
    }

    /// [`put`](Self::put) for at most `timeout`; [`PutError::Full`] with
    /// the item if no getter took it in time.
    ///
    /// # Kill safety
    /// As [`put`](Self::put).
    #[track_caller]
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutError<T>> {
        ChannelInner::put(&self.inner, item, Some(timeout))
    }

    /// [`put_timeout`](Self::put_timeout) with a zero timeout, as gevent's
    /// `put_nowait` is: a real zero-second timer, so the greenlets already
    /// ready run first (a getter among them may take the item).
    ///
    /// # Kill safety
    /// As [`put`](Self::put).
    #[track_caller]
    pub fn put_nowait(&self, item: T) -> Result<(), PutError<T>> {
        ChannelInner::put(&self.inner, item, Some(Duration::ZERO))
    }

    /// Takes an item from a putter, blocking until one brings it.
    ///
    /// # Errors
    /// [`GetError::Closed`] once the channel is closed.
    ///
    /// # Kill safety
    /// Interruptible: a getter killed while waiting has taken nothing.
    #[track_caller]
    pub fn get(&self) -> Result<T, GetError> {
        ChannelInner::get(&self.inner, None)
    }

    /// [`get`](Self::get) for at most `timeout`.
    ///
    /// # Kill safety
    /// As [`get`](Self::get).
    #[track_caller]
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        ChannelInner::get(&self.inner, Some(timeout))
    }

    /// [`get_timeout`](Self::get_timeout) with a zero timeout (gevent's
    /// `get_nowait`).
    ///
    /// # Kill safety
    /// As [`get`](Self::get).
    #[track_caller]
    pub fn get_nowait(&self) -> Result<T, GetError> {
        ChannelInner::get(&self.inner, Some(Duration::ZERO))
    }

    /// Putters blocked minus getters blocked (gevent's `balance`).
    pub fn balance(&self) -> isize {
        let list = self.inner.waiters.borrow();
        list.len(PUTTERS) as isize - list.len(GETTERS) as isize
    }

    /// Closes the channel: puts fail, blocked putters get their items back,
    /// getters get [`GetError::Closed`].
    pub fn close(&self) {
        if self.inner.closed.replace(true) {
            return;
        }
        let waiting = {
            let list = self.inner.waiters.borrow();
            let mut all = list.greenlets(GETTERS);
            all.extend(list.greenlets(PUTTERS));
            all
        };
        let hub = hub();
        for core in &waiting {
            hub.schedule(core);
        }
        self.inner.update_links();
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.get()
    }

    /// An iterator that takes items until the channel is closed.
    pub fn iter(&self) -> QueueIter<'_, T> {
        QueueIter {
            next: Box::new(move || self.get().ok()),
        }
    }
}

impl<'a, T: 'static> IntoIterator for &'a Channel<T> {
    type Item = T;
    type IntoIter = QueueIter<'a, T>;

    fn into_iter(self) -> QueueIter<'a, T> {
        self.iter()
    }
}

impl<T: 'static> Waitable for Channel<T> {
    /// Ready while a putter waits (or it is closed).
    fn is_ready(&self) -> bool {
        self.inner.links.ready.get()
    }

    fn link_ready(&self, callback: Box<dyn FnOnce()>) -> LinkId {
        link_ready(&self.inner.links, callback)
    }

    fn unlink_ready(&self, id: LinkId) {
        self.inner.links.linkable.unlink(id);
    }
}

impl<T: 'static> fmt::Debug for Channel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("balance", &self.balance())
            .field("closed", &self.inner.closed.get())
            .finish()
    }
}
