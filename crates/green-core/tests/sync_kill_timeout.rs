//! Every kind of wait in `green_core::sync`, interrupted: its greenlet is
//! killed (`kill`, `kill_nowait`, `killall`) or times out (the `_timeout`
//! form, or an enclosing `Timeout::run`) while it waits, also in the same
//! turn of the loop as the item it waits for arrives. Whatever the order,
//! nothing may be lost or duplicated:
//!
//! * a waiter that returned an error (or was unwound) consumed nothing: the
//!   item, count or value is still there for the next waiter;
//! * a waiter that returned `Ok` got its item exactly once;
//! * no waiter is left linked: the later offers wake exactly the waiters
//!   still there, in order, and the counts that show links (`balance()`,
//!   the `waiters` of `Debug`) drop back to zero;
//! * the interrupted greenlet's RAII guards gave back what they held.
//!
//! Each kind of wait is driven by one generic scenario ([`scenario`]); the
//! [`Plan`] says how its first waiter (the victim, `A`) is interrupted. Two
//! bystanders (`B`, `C`) wait behind it and hold what they get until the
//! scenario ends, so each offer can be traced to the one waiter it woke.

#[allow(unreachable_pub)] // The shared fixtures are `pub` for every test binary.
mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use green_core::sync::{
    AsyncResult, BoundedSemaphore, Channel, Event, GetError, LifoQueue, Lock, PriorityQueue,
    PutError, Queue, RLock, Semaphore, Waiter,
};
use green_core::{
    joinall_timeout, killall, run, sleep, spawn, yield_now, ErrorKind, Greenlet, Timeout,
};
use support::{within, OnDrop};

/// Far longer than any scenario: a wait of this length only ends by an
/// interruption.
const LONG: Duration = Duration::from_secs(60);
/// The victim's timeout when it is to time out before anything is offered.
const SHORT: Duration = Duration::from_millis(20);
/// How long one scenario may take before it counts as hung.
const HANG: Duration = Duration::from_secs(30);

/// What an offer does for the waiters of a kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Economy {
    /// One offer is one item that one waiter takes (a queue's get).
    Consume,
    /// One offer wakes every waiter and stays (an event's set).
    Broadcast,
    /// One offer is one count a waiter holds while it runs and gives back
    /// (a semaphore's release).
    Count,
    /// The waiters bring the items (blocked putters); an offer makes room
    /// for one, and what it takes out is recorded by the kind.
    Produce,
}

/// One kind of blocking wait, on a fresh primitive set up so that a waiter
/// blocks.
trait Kind: Clone + 'static {
    const ECONOMY: Economy;
    /// Whether [`Kind::offer`] hands the item over by itself. A channel's
    /// offer is a greenlet that has to run first: a kill queued meanwhile
    /// comes before it.
    const OFFER_IS_IMMEDIATE: bool = true;

    fn new() -> Self;
    /// Blocks until it gets what it waits for, then calls `holding` with
    /// the item (a count: 1; a put: `mine`, its own item) while it still
    /// holds it (a guard is released when `holding` returns).
    fn wait(&self, mine: u64, holding: &mut dyn FnMut(u64));
    /// [`Kind::wait`] in its `_timeout` form: `false` if the timeout passed
    /// first (then `holding` is not called and nothing was taken).
    fn wait_timeout(&self, mine: u64, d: Duration, holding: &mut dyn FnMut(u64)) -> bool;
    /// Makes item `n` available to a waiter (all of them, for a broadcast),
    /// without switching.
    fn offer(&self, n: u64);
    /// Takes what is available now (a broadcast: sees it), if anything.
    fn take_now(&self) -> Option<u64>;
    /// How many waiters are linked, where the API shows it.
    fn linked(&self) -> Option<usize>;
    /// What the offers took out (`Produce`).
    fn received(&self) -> Vec<u64> {
        Vec::new()
    }
    /// The items in it from the start (`Produce`).
    fn prefilled(&self) -> Vec<u64> {
        Vec::new()
    }
}

/// A number from a `Debug` rendering (`waiters: 3`): the link count of
/// the types that show it there only.
fn debug_number(rendered: &str, field: &str) -> usize {
    let key = format!("{field}: ");
    let at = rendered
        .find(&key)
        .unwrap_or_else(|| panic!("no `{field}` in {rendered}"))
        + key.len();
    rendered[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

/// Getters linked to a queue or channel, from its balance (putters minus
/// getters).
fn getters(balance: isize) -> usize {
    usize::try_from(-balance).unwrap_or_else(|_| panic!("balance {balance}: putters are waiting"))
}

// ===== the kinds =====

#[derive(Clone)]
struct EventWait(Event);

impl Kind for EventWait {
    const ECONOMY: Economy = Economy::Broadcast;
    fn new() -> Self {
        EventWait(Event::new())
    }
    fn wait(&self, _: u64, holding: &mut dyn FnMut(u64)) {
        assert!(self.0.wait());
        holding(1);
    }
    fn wait_timeout(&self, _: u64, d: Duration, holding: &mut dyn FnMut(u64)) -> bool {
        let set = self.0.wait_timeout(d);
        if set {
            holding(1);
        }
        set
    }
    fn offer(&self, _: u64) {
        self.0.set();
    }
    fn take_now(&self) -> Option<u64> {
        self.0.is_set().then_some(1)
    }
    fn linked(&self) -> Option<usize> {
        Some(debug_number(&format!("{:?}", self.0), "waiters"))
    }
}

#[derive(Clone)]
struct AsyncResultGet(AsyncResult<u64>);

impl Kind for AsyncResultGet {
    const ECONOMY: Economy = Economy::Broadcast;
    fn new() -> Self {
        AsyncResultGet(AsyncResult::new())
    }
    fn wait(&self, _: u64, holding: &mut dyn FnMut(u64)) {
        holding(self.0.get().unwrap());
    }
    fn wait_timeout(&self, _: u64, d: Duration, holding: &mut dyn FnMut(u64)) -> bool {
        match self.0.get_timeout(d) {
            Some(outcome) => {
                holding(outcome.unwrap());
                true
            }
            None => false,
        }
    }
    fn offer(&self, n: u64) {
        self.0.set(n);
    }
    fn take_now(&self) -> Option<u64> {
        self.0.try_get().map(Result::unwrap)
    }
    fn linked(&self) -> Option<usize> {
        None
    }
}

#[derive(Clone)]
struct WaiterGet(Waiter<u64>);

impl Kind for WaiterGet {
    const ECONOMY: Economy = Economy::Consume;
    fn new() -> Self {
        WaiterGet(Waiter::new())
    }
    fn wait(&self, _: u64, holding: &mut dyn FnMut(u64)) {
        holding(self.0.get().unwrap());
    }
    fn wait_timeout(&self, _: u64, d: Duration, holding: &mut dyn FnMut(u64)) -> bool {
        match self.0.get_timeout(d) {
            Some(outcome) => {
                holding(outcome.unwrap());
                true
            }
            None => false,
        }
    }
    fn offer(&self, n: u64) {
        // Our Waiter::get takes the value (gevent's keeps it until
        // clear()), so one slot serves its waiters one value at a time.
        assert!(!self.0.ready(), "an offer would replace a value not taken");
        self.0.switch(n);
    }
    fn take_now(&self) -> Option<u64> {
        self.0.ready().then(|| self.0.get().unwrap())
    }
    fn linked(&self) -> Option<usize> {
        None
    }
}

macro_rules! semaphore_kind {
    ($name:ident, $ty:ty, $make:expr, $release:expr) => {
        #[derive(Clone)]
        struct $name($ty);

        impl Kind for $name {
            const ECONOMY: Economy = Economy::Count;
            fn new() -> Self {
                $name($make)
            }
            fn wait(&self, _: u64, holding: &mut dyn FnMut(u64)) {
                let _guard = self.0.acquire();
                holding(1);
            }
            fn wait_timeout(&self, _: u64, d: Duration, holding: &mut dyn FnMut(u64)) -> bool {
                match self.0.acquire_timeout(d) {
                    Some(_guard) => {
                        holding(1);
                        true
                    }
                    None => false,
                }
            }
            fn offer(&self, _: u64) {
                #[allow(clippy::redundant_closure_call)]
                ($release)(&self.0);
            }
            fn take_now(&self) -> Option<u64> {
                self.0.try_acquire().map(|guard| {
                    guard.forget();
                    1
                })
            }
            fn linked(&self) -> Option<usize> {
                Some(debug_number(&format!("{:?}", self.0), "waiters"))
            }
        }
    };
}

semaphore_kind!(
    SemaphoreAcquire,
    Semaphore,
    Semaphore::new(0),
    |s: &Semaphore| s.release()
);
semaphore_kind!(
    BoundedSemaphoreAcquire,
    BoundedSemaphore,
    {
        let s = BoundedSemaphore::new(1);
        s.acquire().forget();
        s
    },
    |s: &BoundedSemaphore| s.release().unwrap()
);
semaphore_kind!(
    LockAcquire,
    Lock,
    {
        let l = Lock::new();
        l.acquire().forget();
        l
    },
    |l: &Lock| l.release().unwrap()
);

/// An `RLock` the main greenlet holds (it makes every offer: only the owner
/// may release).
#[derive(Clone)]
struct RLockAcquire(RLock);

impl Kind for RLockAcquire {
    const ECONOMY: Economy = Economy::Count;
    fn new() -> Self {
        let lock = RLock::new();
        lock.acquire().forget();
        RLockAcquire(lock)
    }
    fn wait(&self, _: u64, holding: &mut dyn FnMut(u64)) {
        let _guard = self.0.acquire();
        holding(1);
    }
    fn wait_timeout(&self, _: u64, d: Duration, holding: &mut dyn FnMut(u64)) -> bool {
        match self.0.acquire_timeout(d) {
            Some(_guard) => {
                holding(1);
                true
            }
            None => false,
        }
    }
    fn offer(&self, _: u64) {
        self.0.release().unwrap();
    }
    fn take_now(&self) -> Option<u64> {
        // Re-entrant: once the main greenlet holds it, it would get it
        // again and again.
        if self.0.locked() {
            return None;
        }
        self.0.try_acquire().map(|guard| {
            guard.forget();
            1
        })
    }
    fn linked(&self) -> Option<usize> {
        None
    }
}

macro_rules! queue_get_kind {
    ($name:ident, $queue:ident) => {
        #[derive(Clone)]
        struct $name($queue<u64>);

        impl Kind for $name {
            const ECONOMY: Economy = Economy::Consume;
            fn new() -> Self {
                $name($queue::new())
            }
            fn wait(&self, _: u64, holding: &mut dyn FnMut(u64)) {
                holding(self.0.get().unwrap());
            }
            fn wait_timeout(&self, _: u64, d: Duration, holding: &mut dyn FnMut(u64)) -> bool {
                match self.0.get_timeout(d) {
                    Ok(item) => {
                        holding(item);
                        true
                    }
                    Err(GetError::Empty) => false,
                    Err(e) => panic!("get_timeout: {e}"),
                }
            }
            fn offer(&self, n: u64) {
                self.0.put(n).unwrap();
            }
            fn take_now(&self) -> Option<u64> {
                self.0.get_nowait().ok()
            }
            fn linked(&self) -> Option<usize> {
                Some(getters(self.0.balance()))
            }
        }
    };
}

queue_get_kind!(QueueGet, Queue);
queue_get_kind!(LifoQueueGet, LifoQueue);
queue_get_kind!(PriorityQueueGet, PriorityQueue);

#[derive(Clone)]
struct QueuePeek(Queue<u64>);

impl Kind for QueuePeek {
    const ECONOMY: Economy = Economy::Broadcast;
    fn new() -> Self {
        QueuePeek(Queue::new())
    }
    fn wait(&self, _: u64, holding: &mut dyn FnMut(u64)) {
        holding(self.0.peek().unwrap());
    }
    fn wait_timeout(&self, _: u64, d: Duration, holding: &mut dyn FnMut(u64)) -> bool {
        match self.0.peek_timeout(d) {
            Ok(item) => {
                holding(item);
                true
            }
            Err(GetError::Empty) => false,
            Err(e) => panic!("peek_timeout: {e}"),
        }
    }
    fn offer(&self, n: u64) {
        self.0.put(n).unwrap();
    }
    fn take_now(&self) -> Option<u64> {
        let seen = self.0.peek_nowait().ok();
        assert!(seen.is_none() || self.0.qsize() == 1, "peeks took nothing");
        seen
    }
    fn linked(&self) -> Option<usize> {
        Some(getters(self.0.balance()))
    }
}

/// `Queue::join` with one task unfinished; an offer marks it done.
#[derive(Clone)]
struct QueueJoin(Queue<u64>);

impl Kind for QueueJoin {
    const ECONOMY: Economy = Economy::Broadcast;
    fn new() -> Self {
        let q = Queue::new();
        q.put(0).unwrap();
        q.get().unwrap();
        QueueJoin(q)
    }
    fn wait(&self, _: u64, holding: &mut dyn FnMut(u64)) {
        assert!(self.0.join());
        holding(1);
    }
    fn wait_timeout(&self, _: u64, d: Duration, holding: &mut dyn FnMut(u64)) -> bool {
        let done = self.0.join_timeout(d);
        if done {
            holding(1);
        }
        done
    }
    fn offer(&self, _: u64) {
        self.0.task_done().unwrap();
    }
    fn take_now(&self) -> Option<u64> {
        (self.0.unfinished_tasks() == 0).then_some(1)
    }
    fn linked(&self) -> Option<usize> {
        None
    }
}

/// `Channel::get`; an offer is a greenlet putting the item (a channel's put
/// blocks until a getter takes it).
#[derive(Clone)]
struct ChannelGet(Channel<u64>);

impl Kind for ChannelGet {
    const ECONOMY: Economy = Economy::Consume;
    const OFFER_IS_IMMEDIATE: bool = false;
    fn new() -> Self {
        ChannelGet(Channel::new())
    }
    fn wait(&self, _: u64, holding: &mut dyn FnMut(u64)) {
        holding(self.0.get().unwrap());
    }
    fn wait_timeout(&self, _: u64, d: Duration, holding: &mut dyn FnMut(u64)) -> bool {
        match self.0.get_timeout(d) {
            Ok(item) => {
                holding(item);
                true
            }
            Err(GetError::Empty) => false,
            Err(e) => panic!("get_timeout: {e}"),
        }
    }
    fn offer(&self, n: u64) {
        let ch = self.0.clone();
        spawn(move || ch.put(n).expect("a getter takes every item offered"));
    }
    fn take_now(&self) -> Option<u64> {
        self.0.get_nowait().ok()
    }
    fn linked(&self) -> Option<usize> {
        Some(getters(self.0.balance()))
    }
}

/// `Queue::put` on a bounded queue kept full; an offer takes the head out.
#[derive(Clone)]
struct QueuePut {
    q: Queue<u64>,
    received: Rc<RefCell<Vec<u64>>>,
}

impl Kind for QueuePut {
    const ECONOMY: Economy = Economy::Produce;
    fn new() -> Self {
        let q = Queue::bounded(1);
        q.put(0).unwrap();
        QueuePut {
            q,
            received: Rc::default(),
        }
    }
    fn wait(&self, mine: u64, holding: &mut dyn FnMut(u64)) {
        self.q.put(mine).unwrap();
        holding(mine);
    }
    fn wait_timeout(&self, mine: u64, d: Duration, holding: &mut dyn FnMut(u64)) -> bool {
        match self.q.put_timeout(mine, d) {
            Ok(()) => {
                holding(mine);
                true
            }
            Err(PutError::Full(back)) => {
                assert_eq!(back, mine, "a put that timed out gives its own item back");
                false
            }
            Err(e) => panic!("put_timeout: {e}"),
        }
    }
    fn offer(&self, _: u64) {
        let head = self.q.get_nowait().expect("the queue is kept full");
        self.received.borrow_mut().push(head);
    }
    fn take_now(&self) -> Option<u64> {
        self.q.get_nowait().ok()
    }
    fn linked(&self) -> Option<usize> {
        Some(usize::try_from(self.q.balance()).expect("no getter waits"))
    }
    fn received(&self) -> Vec<u64> {
        self.received.borrow().clone()
    }
    fn prefilled(&self) -> Vec<u64> {
        vec![0]
    }
}

/// `Channel::put`; an offer is a greenlet that gets one item.
#[derive(Clone)]
struct ChannelPut {
    ch: Channel<u64>,
    received: Rc<RefCell<Vec<u64>>>,
}

impl Kind for ChannelPut {
    const ECONOMY: Economy = Economy::Produce;
    const OFFER_IS_IMMEDIATE: bool = false;
    fn new() -> Self {
        ChannelPut {
            ch: Channel::new(),
            received: Rc::default(),
        }
    }
    fn wait(&self, mine: u64, holding: &mut dyn FnMut(u64)) {
        self.ch.put(mine).unwrap();
        holding(mine);
    }
    fn wait_timeout(&self, mine: u64, d: Duration, holding: &mut dyn FnMut(u64)) -> bool {
        match self.ch.put_timeout(mine, d) {
            Ok(()) => {
                holding(mine);
                true
            }
            Err(PutError::Full(back)) => {
                assert_eq!(back, mine, "a put that timed out gives its own item back");
                false
            }
            Err(e) => panic!("put_timeout: {e}"),
        }
    }
    fn offer(&self, _: u64) {
        let (ch, received) = (self.ch.clone(), Rc::clone(&self.received));
        spawn(move || {
            let item = ch.get().expect("a putter waits for every getter offered");
            received.borrow_mut().push(item);
        });
    }
    fn take_now(&self) -> Option<u64> {
        self.ch.get_nowait().ok()
    }
    fn linked(&self) -> Option<usize> {
        Some(usize::try_from(self.ch.balance()).expect("no getter waits"))
    }
    fn received(&self) -> Vec<u64> {
        self.received.borrow().clone()
    }
}

// ===== the scenario =====

/// How the victim waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// The blocking call.
    Blocking,
    /// Its `_timeout` form.
    WithTimeout,
    /// The blocking call inside `Timeout::run`.
    InTimeoutRun,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KillHow {
    Kill,
    KillNowait,
    Killall,
}

/// How the victim is interrupted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plan {
    /// Killed while it waits first in line, before anything is offered.
    Killed(KillHow),
    /// Killed while it waits second in line (`B`, `A`, `C`).
    KilledInTheMiddle,
    /// Times out while it waits first in line, before anything is offered.
    TimedOut(Form),
    /// `kill_nowait`, then an offer, in the same step of the main greenlet:
    /// the kill comes first, so the victim consumes nothing.
    KillThenOffer,
    /// An offer, then a kill, in the same step: the victim is woken with the
    /// item first, holds it, and dies at its next blocking point.
    OfferThenKill(KillHow),
    /// The victim's zero timeout and an offer come due in the same pass of
    /// the loop, the offer's first (`offer_first`) or the timeout's.
    ZeroTimeoutRace { form: Form, offer_first: bool },
}

/// Who got what, in the order they got it.
type Records = Rc<RefCell<Vec<(char, u64)>>>;

/// Items of the waiters that put (`Produce`): `A` 100, `B` 200, `C` 300.
fn own_item(name: char) -> u64 {
    100 * (u64::from(name) - u64::from('A') + 1)
}

/// Counts how many waiters hold what they got at once.
#[derive(Clone, Default)]
struct Holders {
    now: Rc<Cell<usize>>,
    most: Rc<Cell<usize>>,
}

impl Holders {
    /// One more holder, until the returned guard drops (also when its
    /// greenlet unwinds).
    fn hold(&self) -> OnDrop<impl FnMut()> {
        self.now.set(self.now.get() + 1);
        self.most.set(self.most.get().max(self.now.get()));
        let now = Rc::clone(&self.now);
        OnDrop(move || now.set(now.get() - 1))
    }
}

/// Lets every greenlet that is ready (and every notifier chain) run: each
/// `yield_now` is a full turn of the callback queue.
fn settle() {
    for _ in 0..20 {
        yield_now();
    }
}

fn names(records: &Records) -> Vec<char> {
    records.borrow().iter().map(|&(name, _)| name).collect()
}

/// Runs `plan` for kind `K` on a hub of its own, failing if it hangs.
fn check<K: Kind>(plan: Plan) {
    within(HANG, move || run(|| scenario::<K>(plan)));
}

fn scenario<K: Kind>(plan: Plan) {
    let kind = K::new();
    let records: Records = Rc::default();
    let finish = Event::new();
    let holders = Holders::default();
    // The victim holds a count of this while it waits: its guard must give
    // it back however the wait ends.
    let side = Semaphore::new(1);
    let timed_out = Rc::new(Cell::new(false));
    let ran_past_next_block = Rc::new(Cell::new(false));

    let form = match plan {
        Plan::TimedOut(form) | Plan::ZeroTimeoutRace { form, .. } => form,
        _ => Form::Blocking,
    };
    let timeout = match plan {
        Plan::ZeroTimeoutRace { .. } => Duration::ZERO,
        _ => SHORT,
    };
    // Woken with the item and then killed: it must block again to be
    // killed at that point, holding its item.
    let block_after = matches!(plan, Plan::OfferThenKill(_));

    let spawn_victim = || {
        let (kind, records, holders, side) = (
            kind.clone(),
            Rc::clone(&records),
            holders.clone(),
            side.clone(),
        );
        let (timed_out, ran_past) = (Rc::clone(&timed_out), Rc::clone(&ran_past_next_block));
        spawn(move || {
            let _side = side.acquire();
            let mut holding = |item: u64| {
                let _held = holders.hold();
                records.borrow_mut().push(('A', item));
                if block_after {
                    sleep(LONG);
                    ran_past.set(true);
                }
            };
            let mine = own_item('A');
            match form {
                Form::Blocking => kind.wait(mine, &mut holding),
                Form::WithTimeout => {
                    if !kind.wait_timeout(mine, timeout, &mut holding) {
                        timed_out.set(true);
                    }
                }
                Form::InTimeoutRun => {
                    if Timeout::run(timeout, || kind.wait(mine, &mut holding)).is_err() {
                        timed_out.set(true);
                    }
                }
            }
        })
    };
    let spawn_bystander = |name: char| {
        let (kind, records, holders, finish) = (
            kind.clone(),
            Rc::clone(&records),
            holders.clone(),
            finish.clone(),
        );
        spawn(move || {
            kind.wait(own_item(name), &mut |item| {
                let _held = holders.hold();
                records.borrow_mut().push((name, item));
                finish.wait();
            });
        })
    };

    let mut offered: Vec<u64> = Vec::new();
    let offer = |offered: &mut Vec<u64>| {
        let n = match K::ECONOMY {
            Economy::Consume => offered.len() as u64 + 1,
            _ => 1,
        };
        offered.push(n);
        kind.offer(n);
    };

    // Line up: A first (or second), then the bystanders.
    let (a, bystanders): (Greenlet<()>, Vec<Greenlet<()>>) = if plan == Plan::KilledInTheMiddle {
        let b = spawn_bystander('B');
        let a = spawn_victim();
        let c = spawn_bystander('C');
        (a, vec![b, c])
    } else {
        let a = spawn_victim();
        (a, vec![spawn_bystander('B'), spawn_bystander('C')])
    };

    match plan {
        Plan::Killed(how) | Plan::OfferThenKill(how) => {
            settle();
            assert_eq!(kind.linked().unwrap_or(3), 3, "all three wait");
            if matches!(plan, Plan::OfferThenKill(_)) {
                offer(&mut offered);
            }
            match how {
                KillHow::Kill => a.kill(),
                KillHow::KillNowait => {
                    a.kill_nowait();
                    a.join();
                }
                KillHow::Killall => killall(std::slice::from_ref(&a)),
            }
        }
        Plan::KilledInTheMiddle => {
            settle();
            assert_eq!(kind.linked().unwrap_or(3), 3, "all three wait");
            a.kill();
        }
        Plan::TimedOut(_) => {
            settle();
            assert_eq!(kind.linked().unwrap_or(3), 3, "all three wait");
            a.join();
        }
        Plan::KillThenOffer => {
            settle();
            assert_eq!(kind.linked().unwrap_or(3), 3, "all three wait");
            a.kill_nowait();
            offer(&mut offered);
            a.join();
        }
        Plan::ZeroTimeoutRace { offer_first, .. } => {
            // Zero timers started in one pass fire at the next poll in the
            // order started: the main greenlet's first (it blocks before the
            // victim runs), or the victim's (it ran first).
            let never = Event::new();
            if offer_first {
                assert!(!never.wait_timeout(Duration::ZERO));
            } else {
                yield_now();
                assert!(!never.wait_timeout(Duration::ZERO));
            }
            offer(&mut offered);
            a.join();
        }
    }
    assert!(a.dead(), "{plan:?}: the victim is dead");
    assert_eq!(
        side.counter(),
        1,
        "{plan:?}: the victim's guard gave its count back"
    );
    let victim_got: Vec<u64> = records
        .borrow()
        .iter()
        .filter(|&&(name, _)| name == 'A')
        .map(|&(_, item)| item)
        .collect();
    assert!(victim_got.len() <= 1, "{plan:?}: A got {victim_got:?}");

    match plan {
        Plan::Killed(_) | Plan::KilledInTheMiddle | Plan::KillThenOffer => {
            assert!(
                victim_got.is_empty(),
                "{plan:?}: killed, A got {victim_got:?}"
            );
            let outcome = a.get().unwrap_err();
            assert_eq!(outcome.kind(), ErrorKind::Exited, "{plan:?}: A was killed");
        }
        Plan::TimedOut(_) => {
            assert!(timed_out.get(), "{plan:?}: A timed out");
            assert!(
                victim_got.is_empty(),
                "{plan:?}: timed out, A got {victim_got:?}"
            );
        }
        Plan::OfferThenKill(_) => {
            if K::OFFER_IS_IMMEDIATE {
                // The wake-up was queued before the kill: A returns from its
                // wait with the item, and the kill is raised at its next
                // blocking call.
                let expected = match K::ECONOMY {
                    Economy::Produce => own_item('A'),
                    _ => offered[0],
                };
                assert_eq!(victim_got, [expected], "{plan:?}: A got the item first");
            }
            assert!(
                !ran_past_next_block.get(),
                "{plan:?}: A was killed at its next blocking call"
            );
            let outcome = a.get().unwrap_err();
            assert_eq!(outcome.kind(), ErrorKind::Exited, "{plan:?}: A was killed");
        }
        Plan::ZeroTimeoutRace { .. } => {
            assert_ne!(
                timed_out.get(),
                !victim_got.is_empty(),
                "{plan:?}: A either timed out or got the item (got {victim_got:?}, timed out {})",
                timed_out.get()
            );
        }
    }
    if matches!(
        plan,
        Plan::Killed(_) | Plan::KilledInTheMiddle | Plan::TimedOut(_)
    ) {
        assert_eq!(
            kind.linked().unwrap_or(2),
            2,
            "{plan:?}: the victim left no link behind"
        );
    }

    // The bystanders still waiting: each later offer wakes exactly the next
    // one in line (a broadcast: all of them).
    settle();
    let waiting = |records: &Records| -> Vec<char> {
        let got = names(records);
        ['B', 'C']
            .into_iter()
            .filter(|n| !got.contains(n))
            .collect()
    };
    loop {
        let missing = waiting(&records);
        let Some(&next) = missing.first() else { break };
        let before = records.borrow().len();
        match K::ECONOMY {
            Economy::Consume | Economy::Produce => {
                offer(&mut offered);
                settle();
                let got = names(&records)[before..].to_vec();
                assert_eq!(
                    got,
                    [next],
                    "{plan:?}: one offer wakes the next waiter only"
                );
            }
            Economy::Broadcast => {
                assert!(
                    offered.is_empty(),
                    "{plan:?}: {missing:?} missed the broadcast"
                );
                offer(&mut offered);
                settle();
                assert!(
                    waiting(&records).is_empty(),
                    "{plan:?}: one broadcast wakes every waiter"
                );
            }
            Economy::Count => {
                if offered.is_empty() {
                    offer(&mut offered);
                    settle();
                    let got = names(&records)[before..].to_vec();
                    assert_eq!(got, [next], "{plan:?}: one count wakes one waiter");
                }
                // The others get it in turn as the holders give it back.
                break;
            }
        }
    }
    finish.set();
    assert!(
        joinall_timeout(&bystanders, Duration::from_secs(10)),
        "{plan:?}: every bystander ends"
    );
    for b in &bystanders {
        assert!(b.successful(), "{plan:?}: {:?}", b.exception());
    }
    let mut got = names(&records);
    got.sort_unstable();
    got.dedup();
    assert_eq!(
        got.len(),
        records.borrow().len(),
        "{plan:?}: nobody got twice: {:?}",
        records.borrow()
    );
    assert!(
        got.contains(&'B') && got.contains(&'C'),
        "{plan:?}: every bystander got something: {:?}",
        records.borrow()
    );

    // The ledger: nothing lost, nothing duplicated.
    match K::ECONOMY {
        Economy::Consume => {
            let mut seen: Vec<u64> = records.borrow().iter().map(|&(_, item)| item).collect();
            seen.extend(std::iter::from_fn(|| kind.take_now()).take(10));
            seen.sort_unstable();
            assert_eq!(
                seen, offered,
                "{plan:?}: what the waiters got and what is left is what was offered (records {:?})",
                records.borrow()
            );
        }
        Economy::Broadcast => {
            assert_eq!(offered, [1], "{plan:?}");
            assert!(
                records.borrow().iter().all(|&(_, item)| item == 1),
                "{plan:?}: {:?}",
                records.borrow()
            );
            assert_eq!(kind.take_now(), Some(1), "{plan:?}: a broadcast stays");
        }
        Economy::Count => {
            assert_eq!(offered.len(), 1, "{plan:?}");
            assert_eq!(
                holders.most.get(),
                1,
                "{plan:?}: one count, one holder at a time"
            );
            let back = std::iter::from_fn(|| kind.take_now()).take(10).count();
            assert_eq!(back, 1, "{plan:?}: the count offered is free again, once");
        }
        Economy::Produce => {
            let mut sent = kind.prefilled();
            sent.extend(records.borrow().iter().map(|&(_, item)| item));
            sent.sort_unstable();
            let mut out = kind.received();
            out.extend(std::iter::from_fn(|| kind.take_now()).take(10));
            out.sort_unstable();
            assert_eq!(
                out,
                sent,
                "{plan:?}: what came out is what was in it plus what the putters put (records {:?})",
                records.borrow()
            );
        }
    }
    assert_eq!(
        kind.linked().unwrap_or(0),
        0,
        "{plan:?}: no waiter is left linked"
    );
    assert_eq!(holders.now.get(), 0, "{plan:?}");
}

macro_rules! kind_tests {
    ($($module:ident: $kind:ty,)*) => {$(
        mod $module {
            use super::*;

            #[test]
            fn killed_with_kill() {
                check::<$kind>(Plan::Killed(KillHow::Kill));
            }
            #[test]
            fn killed_with_kill_nowait() {
                check::<$kind>(Plan::Killed(KillHow::KillNowait));
            }
            #[test]
            fn killed_with_killall() {
                check::<$kind>(Plan::Killed(KillHow::Killall));
            }
            #[test]
            fn killed_in_the_middle_of_the_line() {
                check::<$kind>(Plan::KilledInTheMiddle);
            }
            #[test]
            fn timed_out_with_the_timeout_form() {
                check::<$kind>(Plan::TimedOut(Form::WithTimeout));
            }
            #[test]
            fn timed_out_with_timeout_run() {
                check::<$kind>(Plan::TimedOut(Form::InTimeoutRun));
            }
            #[test]
            fn kill_nowait_then_offer_in_one_step() {
                check::<$kind>(Plan::KillThenOffer);
            }
            #[test]
            fn offer_then_kill_nowait_in_one_step() {
                check::<$kind>(Plan::OfferThenKill(KillHow::KillNowait));
            }
            #[test]
            fn offer_then_kill_in_one_step() {
                check::<$kind>(Plan::OfferThenKill(KillHow::Kill));
            }
            #[test]
            fn offer_then_killall_in_one_step() {
                check::<$kind>(Plan::OfferThenKill(KillHow::Killall));
            }
            #[test]
            fn zero_timeout_form_due_with_an_offer_made_first() {
                check::<$kind>(Plan::ZeroTimeoutRace { form: Form::WithTimeout, offer_first: true });
            }
            #[test]
            fn zero_timeout_form_due_with_an_offer_made_after() {
                check::<$kind>(Plan::ZeroTimeoutRace { form: Form::WithTimeout, offer_first: false });
            }
            #[test]
            fn zero_timeout_run_due_with_an_offer_made_first() {
                check::<$kind>(Plan::ZeroTimeoutRace { form: Form::InTimeoutRun, offer_first: true });
            }
            #[test]
            fn zero_timeout_run_due_with_an_offer_made_after() {
                check::<$kind>(Plan::ZeroTimeoutRace { form: Form::InTimeoutRun, offer_first: false });
            }
        }
    )*};
}

kind_tests! {
    event_wait: EventWait,
    async_result_get: AsyncResultGet,
    waiter_get: WaiterGet,
    semaphore_acquire: SemaphoreAcquire,
    bounded_semaphore_acquire: BoundedSemaphoreAcquire,
    lock_acquire: LockAcquire,
    rlock_acquire: RLockAcquire,
    queue_get: QueueGet,
    lifo_queue_get: LifoQueueGet,
    priority_queue_get: PriorityQueueGet,
    queue_peek: QueuePeek,
    queue_join: QueueJoin,
    channel_get: ChannelGet,
    queue_put_on_a_full_queue: QueuePut,
    channel_put: ChannelPut,
}

// ===== a timeout due while its waiter is being woken =====
//
// A notifier that wakes many waiters runs each at its place; when a pass of
// the callback queue is cut short (Q4: after 50 entries and 5 ms) while it
// is paused for a waiter, due timers fire, and a `Timeout` of a waiter
// further down its list is set on that waiter while the notifier is about
// to wake it (N4). Whichever wins, the `Timeout` must stay inside its
// `Timeout::run`: either the wait ends with it (`Err`), or the wait returns
// what it was woken with and the timeout is withdrawn with its scope. It
// must never be raised later, at a blocking call outside its scope.

/// Waiters ahead of the timed one, each spinning this long when woken: the
/// pass that wakes them lasts well over the 5 ms after which it is cut.
const SPIN: Duration = Duration::from_micros(200);

/// Runs `scenario` with `ahead` waiters ahead of the timed one, for every
/// `ahead` in a range wide enough that the cut falls on the timed waiter's
/// turn (the cut comes every 50 entries); returns what went wrong.
fn timed_waiter_behind_a_crowd(scenario: fn(usize) -> Result<(), String>) {
    let failures = within(HANG, move || {
        (20..80)
            .filter_map(|ahead| scenario(ahead).err().map(|e| format!("{ahead} ahead: {e}")))
            .collect::<Vec<_>>()
    });
    assert!(
        failures.is_empty(),
        "{} of 60 runs failed, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
}

#[test]
fn a_timeout_due_while_an_event_wakes_its_waiter_stays_inside_its_scope() {
    timed_waiter_behind_a_crowd(|ahead| {
        run(|| {
            let ev = Event::new();
            let crowd: Vec<Greenlet<()>> = (0..ahead)
                .map(|_| {
                    let ev = ev.clone();
                    spawn(move || {
                        ev.wait();
                        std::thread::sleep(SPIN);
                    })
                })
                .collect();
            let outcome = Rc::new(Cell::new(None));
            let timed = {
                let (ev, outcome) = (ev.clone(), Rc::clone(&outcome));
                spawn(move || {
                    let r = Timeout::run(Duration::from_millis(1), || ev.wait());
                    outcome.set(Some(r.is_ok()));
                    // A blocking call outside the scope: nothing may be
                    // raised here.
                    sleep(Duration::from_millis(5));
                })
            };
            yield_now();
            ev.set();
            timed.join();
            joinall_timeout(&crowd, Duration::from_secs(5));
            match (timed.successful(), outcome.get()) {
                (true, Some(_)) => Ok(()),
                (ok, scope) => Err(format!(
                    "Timeout::run returned {scope:?} (Some(true): woken), then the greenlet \
                     succeeded: {ok}, {:?}",
                    timed.exception().map(|e| e.message().to_string())
                )),
            }
        })
    });
}

#[test]
fn a_timeout_due_while_a_queue_hands_its_getter_an_item_stays_inside_its_scope() {
    timed_waiter_behind_a_crowd(|ahead| {
        run(|| {
            let q: Queue<u64> = Queue::new();
            let got: Records = Rc::default();
            let crowd: Vec<Greenlet<()>> = (0..ahead)
                .map(|i| {
                    let (q, got) = (q.clone(), Rc::clone(&got));
                    spawn(move || {
                        let item = q.get().unwrap();
                        got.borrow_mut()
                            .push((char::from(b'a' + (i % 26) as u8), item));
                        std::thread::sleep(SPIN);
                    })
                })
                .collect();
            let timed = {
                let (q, got) = (q.clone(), Rc::clone(&got));
                spawn(move || {
                    if let Ok(item) = Timeout::run(Duration::from_millis(1), || q.get().unwrap()) {
                        got.borrow_mut().push(('T', item));
                    }
                    sleep(Duration::from_millis(5));
                })
            };
            yield_now();
            for item in 0..=ahead as u64 {
                q.put(item).unwrap();
            }
            timed.join();
            joinall_timeout(&crowd, Duration::from_secs(5));
            let mut items: Vec<u64> = got.borrow().iter().map(|&(_, item)| item).collect();
            items.extend(std::iter::from_fn(|| q.get_nowait().ok()));
            items.sort_unstable();
            if items != (0..=ahead as u64).collect::<Vec<_>>() {
                return Err(format!("items lost or duplicated: {items:?}"));
            }
            if !timed.successful() {
                return Err(format!(
                    "the timed getter failed after its Timeout::run returned: {:?}",
                    timed.exception().map(|e| e.message().to_string())
                ));
            }
            Ok(())
        })
    });
}

/// Runs `scenario(ahead)` for `ahead` in a range wide enough that the two
/// cuts of [`twice_cut_hand_off`] fall around the timed waiter's turn.
fn timed_waiter_in_a_long_hand_off(scenario: fn(usize) -> Result<(), String>) {
    let failures = within(HANG, move || {
        (20..120)
            .step_by(3)
            .filter_map(|ahead| scenario(ahead).err().map(|e| format!("{ahead} ahead: {e}")))
            .collect::<Vec<_>>()
    });
    assert!(
        failures.is_empty(),
        "{} of 34 runs failed, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
}

/// How many waiters follow the timed one in a long hand-off: enough for a
/// second cut of the pass after its turn.
const BEHIND: usize = 100;

/// A long hand-off that wakes `ahead` waiters, then the timed one `T`, then
/// [`BEHIND`] more, each spinning [`SPIN`] at its place: the pass is cut
/// about every 50 waiters. At a first cut the timer of `T`'s `_timeout`
/// form (1 ms) fires: `T` is queued to resume, so the hand-off, reaching
/// it, can only leave it queued; at a second cut the `Timeout::run` around
/// it (15 ms) fires, before it has resumed.
///
/// The hand-off had already completed `T`'s operation for it (a putter's
/// item admitted, an item delivered to a channel getter); then the
/// `Timeout` must not unwind `T` as if its operation had failed.
#[test]
fn a_putter_whose_item_the_hand_off_admitted_is_not_unwound_by_a_later_timeout() {
    timed_waiter_in_a_long_hand_off(|ahead| {
        run(|| {
            let room = ahead + 1 + BEHIND;
            let q: Queue<u64> = Queue::bounded(room);
            for i in 0..room as u64 {
                q.put(1_000_000 + i).unwrap();
            }
            let spinner = |item: u64| {
                let q = q.clone();
                spawn(move || {
                    q.put(item).unwrap();
                    std::thread::sleep(SPIN);
                })
            };
            let mut crowd: Vec<Greenlet<()>> = (0..ahead as u64).map(spinner).collect();
            let outcome = Rc::new(RefCell::new(String::new()));
            let timed = {
                let (q, outcome) = (q.clone(), Rc::clone(&outcome));
                spawn(move || {
                    let r = Timeout::run(Duration::from_millis(15), || {
                        q.put_timeout(777, Duration::from_millis(1))
                    });
                    *outcome.borrow_mut() = match r {
                        Ok(Ok(())) => "put".into(),
                        Ok(Err(e)) => format!("{e:?} (item back: {})", e.into_inner()),
                        Err(_) => "Timeout".into(),
                    };
                })
            };
            crowd.extend((0..BEHIND as u64).map(|i| spinner(10_000 + i)));
            yield_now();
            for _ in 0..room {
                q.get_nowait().unwrap();
            }
            timed.join();
            joinall_timeout(&crowd, Duration::from_secs(5));
            let in_queue = std::iter::from_fn(|| q.get_nowait().ok()).any(|i| i == 777);
            let outcome = outcome.borrow().clone();
            if (outcome == "put") != in_queue {
                return Err(format!(
                    "the put ended with {outcome}, and its item is in the queue: {in_queue}"
                ));
            }
            Ok(())
        })
    });
}

#[test]
fn a_channel_getter_handed_an_item_is_not_unwound_by_a_later_timeout() {
    timed_waiter_in_a_long_hand_off(|ahead| {
        run(|| {
            let ch: Channel<u64> = Channel::new();
            let got: Records = Rc::default();
            let spinner = |name: char| {
                let (ch, got) = (ch.clone(), Rc::clone(&got));
                spawn(move || {
                    let item = ch.get().unwrap();
                    got.borrow_mut().push((name, item));
                    std::thread::sleep(SPIN);
                })
            };
            let mut crowd: Vec<Greenlet<()>> = (0..ahead).map(|_| spinner('a')).collect();
            let timed = {
                let (ch, got) = (ch.clone(), Rc::clone(&got));
                spawn(move || {
                    let r = Timeout::run(Duration::from_millis(15), || {
                        ch.get_timeout(Duration::from_millis(1))
                    });
                    if let Ok(Ok(item)) = r {
                        got.borrow_mut().push(('T', item));
                    }
                })
            };
            crowd.extend((0..BEHIND).map(|_| spinner('b')));
            yield_now();
            // Every getter parked; now the putters, all parked before the
            // hand-off starts (it is queued behind their starts).
            let total = ahead + 1 + BEHIND;
            let putters: Vec<Greenlet<bool>> = (0..total as u64)
                .map(|item| {
                    let ch = ch.clone();
                    spawn(move || ch.put_timeout(item, Duration::from_secs(2)).is_ok())
                })
                .collect();
            timed.join();
            joinall_timeout(&crowd, Duration::from_secs(5));
            // A putter left over (the timed getter timed out before any
            // was handed to it) gets its item back.
            ch.close();
            joinall_timeout(&putters, Duration::from_secs(5));
            let delivered: Vec<u64> = putters
                .iter()
                .enumerate()
                .filter(|(_, p)| p.get().unwrap_or(false))
                .map(|(i, _)| i as u64)
                .collect();
            let mut received: Vec<u64> = got.borrow().iter().map(|&(_, item)| item).collect();
            received.sort_unstable();
            if delivered != received {
                let lost: Vec<_> = delivered.iter().filter(|i| !received.contains(i)).collect();
                return Err(format!(
                    "{} puts returned Ok, {} items were received; lost: {lost:?}",
                    delivered.len(),
                    received.len()
                ));
            }
            Ok(())
        })
    });
}
