//! The per-thread Hub: it owns the event loop, the ready queue and the stack
//! pools, and it decides which greenlet runs next.
//!
//! # Switching
//!
//! A greenlet that blocks calls [`Hub::park`]. If another greenlet is ready,
//! `park` switches straight to it (no detour through the hub fiber); only when
//! nothing is ready, or when [`DIRECT_SWITCH_BUDGET`] direct switches happened
//! since the loop was last polled, does it switch to the hub fiber, which polls
//! the loop (blocking only when nothing is ready) and switches to whatever the
//! loop's handlers scheduled. The budget is what keeps a greenlet spinning on
//! `yield_now` from starving timers and I/O.
//!
//! Loop handlers never switch: they only `schedule`. So the loop is never
//! re-entered, and a completion wakes its greenlet with one queue push.
//!
//! # Unwinding is per greenlet
//!
//! `std::thread::panicking()` answers for the OS thread, not for a greenlet:
//! while one greenlet is parked in a destructor halfway through its unwind,
//! every other greenlet of the thread would look as if it were unwinding too.
//! The hub therefore keeps its own count per greenlet and never decides
//! anything from the thread-wide flag alone:
//!
//! * **U1.** `Core::unwind_depth` is the number of unwinds in progress on a
//!   greenlet's stack as far as the hub can tell. It goes up when green-core
//!   raises a payload into the greenlet ([`Hub::raise`]) and when the chained
//!   panic hook (installed with the first hub) sees the greenlet panic; it
//!   goes down when `Timeout::run` catches its own timeout. [`Hub::unwind_depth`]
//!   corrects it whenever the thread-wide flag settles the question: not
//!   panicking means no greenlet unwinds (depth 0); panicking while no
//!   *other* greenlet is parked mid-unwind means this one does (depth >= 1).
//! * **U2.** `Hub::parked_mid_unwind` counts the suspended greenlets that
//!   parked while unwinding (`Core::parked_unwinding`); a greenlet leaves the
//!   count when it resumes. `Hub::leaked_mid_unwind` counts those teardown
//!   leaked, for the life of the thread (they keep it panicking). Only while
//!   either is non-zero does the hub rely on the counts of U1 alone.
//! * **U3.** A payload is raised only where something will catch it before it
//!   could leave a destructor (a panic escaping a destructor during an unwind
//!   aborts the process): a kill only into a greenlet that is not unwinding
//!   (depth 0, caught at its root), a `Timeout` only at the depth its scope
//!   started at (caught by that scope). Otherwise it waits in `throw`
//!   (`Core::throw_held`), and the greenlet's next blocking call raises it on
//!   the way in once the rule allows. So one greenlet parked mid-unwind never
//!   holds back another greenlet's kill, `Timeout` or `LoopExit`.
//! * **U4.** At teardown a greenlet parked mid-unwind is resumed once with
//!   its blocking call giving up (so its destructor can finish and its unwind
//!   end, which is what clears the thread's panicking state); only one that
//!   blocks again is leaked, and it is recorded dead so no later hub touches it.
//!
//! What the hub cannot see: a greenlet that starts unwinding with
//! `std::panic::resume_unwind` (no hook runs) or whose panic was caught by the
//! user's own `catch_unwind`, at a moment when another greenlet is parked
//! mid-unwind, is counted wrongly until the flag settles the question again;
//! and a program that replaces the panic hook after the first hub without
//! chaining to the previous one hides its panics from U1 (a kill may then be
//! raised out of a destructor: an abort). The limits are listed in
//! `docs/design/kill-and-timeout.md`.
//!
//! # User code in the hub
//!
//! * **H1.** The hub fiber never unwinds: everything it runs that may reach
//!   user code (a rawlink callback, the drop of a dead greenlet's record or
//!   of a link that did not fire) is wrapped in `catch_unwind`, the panic is
//!   reported naming its greenlet, and the hub goes on; `hub_main` catches
//!   anything else as a last resort. A dead greenlet's value is dropped on
//!   its own stack when nothing else can see it, and the hub's list of
//!   finished greenlets holds only their fibers, so reaping a stack runs no
//!   user code in whichever greenlet happens to reap.
//!
//! # Lifetime
//!
//! The `Hub` record is allocated once per thread and handed out as
//! `&'static Hub`, so that greenlet code (even code unwinding during thread
//! exit) reaches it without holding a borrow across a switch. What it owns
//! (the loop, the stacks, the greenlets) is released by [`Hub::teardown`], at
//! the end of [`run`](crate::run), by [`shutdown`](crate::shutdown) or at
//! thread exit, after which the next use builds it anew; the record itself
//! is freed at thread exit once teardown is over (`hub_record.rs`, R1-R2).

use std::cell::{Cell, Ref, RefCell};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::panic::{self, AssertUnwindSafe, Location};
use std::rc::Rc;
use std::time::{Duration, Instant};

use green_ctx::{Fiber, FiberRef, Stack, DEFAULT_STACK_SIZE};
use green_loop::{Loop, TimerId};

use crate::error::{payload_message, LoopExit};
use crate::greenlet::state::{Catcher, Core, CoreRef, LinkAction, LinkFilter, State, WeakCore};
use crate::greenlet::MainGreenlet;
use crate::slab::Slab;
use crate::stacks::StackPools;

/// How long teardown lets killed greenlets finish unwinding (their
/// destructors may block briefly) before giving up on them.
const TEARDOWN_GRACE: Duration = Duration::from_secs(1);

/// Fairness (Q4): every this many entries run in one pass, the hub looks at
/// the clock ...
const CALLBACK_CHECK_COUNT: u32 = 50;

/// ... and cuts the pass short, to run due timers and I/O, once this long has
/// passed since the pass began (gevent's switch interval).
const SWITCH_INTERVAL: Duration = Duration::from_millis(5);

/// One entry of the hub's callback queue (Q1): what happens next, in the
/// order it was caused.
pub(crate) enum Entry {
    /// Run a greenlet: its start, its resume after `sleep(0)`, a wake-up, the
    /// throw of a kill.
    Resume(CoreRef),
    /// Fire a finished greenlet's links, in registration order (Q2).
    Links(CoreRef),
}

impl Entry {
    #[inline(always)]
    fn record(&self) -> &CoreRef {
        match self {
            Entry::Resume(core) | Entry::Links(core) => core,
        }
    }
}

/// What the callback queue gives a greenlet (or the hub) that gives up the
/// CPU.
enum Next {
    /// Switch to this greenlet.
    Run(CoreRef),
    /// The front entry needs the hub fiber (a link callback to run, or the
    /// pass to cut short, Q4).
    Hub,
    /// The queue is empty: time to poll the loop.
    Empty,
}

/// S1: marks a greenlet ready unless it already is, or is dead; returns
/// whether the caller must put it in the ready queue.
#[inline(always)]
fn mark_ready(c: &Core) -> bool {
    if c.in_ready.get() || c.is_dead() {
        return false;
    }
    c.in_ready.set(true);
    true
}

/// Whether `waiter` is queued to resume only to have a kill or timeout
/// raised (Q3).
#[inline(always)]
fn throw_queued(waiter: &Core) -> bool {
    waiter.in_ready.get()
        && waiter.state.get() == State::Parked
        && !waiter.is_dead()
        && !waiter.throw_is_empty()
}

/// Whether a links entry may switch straight to `waiter` to fire its link
/// (Q2): it is suspended and nothing else is about to run it. One already
/// queued to resume runs at that place instead.
#[inline(always)]
fn can_switch_to(waiter: &Core) -> bool {
    waiter.state.get() == State::Parked && !waiter.in_ready.get() && !waiter.is_dead()
}

/// How far down the ready queue [`prefetch_ahead`] reaches for each of the
/// three records a switch walks through, farthest first: a greenlet's record,
/// then (read from the record) its fiber's slot, then (read from the slot)
/// the top of its saved stack. Each stage finds in cache what the stage
/// before asked for a few switches earlier. Measured with 10 000 yielding
/// greenlets (`core/yield_10k`); closer or farther did no better.
const PREFETCH_RECORD_AHEAD: usize = 8;
const PREFETCH_SLOT_AHEAD: usize = 5;
const PREFETCH_STACK_AHEAD: usize = 2;

/// Asks the CPU for what switching to the greenlets a few places down the
/// ready queue will touch. With thousands of greenlets taking turns each one
/// is cold when its turn comes, and a switch reaches its stack through two
/// dependent loads; prefetched in stages, the misses overlap instead of
/// following one another (measured: 1 000 greenlets yielding in turn went
/// from 72 to 40 ns per yield, 10 000 from about 125 to 103 ns). A short
/// queue makes this a few bounds checks.
#[inline(always)]
fn prefetch_ahead(ready: &VecDeque<Entry>) {
    if let Some(record) = ready.get(PREFETCH_RECORD_AHEAD).map(Entry::record) {
        // The record's hot fields span its first two lines (`Inner` and
        // `Core` are `repr(C)`, the hot fields first).
        let at = Rc::as_ptr(record).cast::<u8>();
        green_ctx::prefetch(at);
        green_ctx::prefetch(at.wrapping_add(64));
    }
    if let Some(record) = ready.get(PREFETCH_SLOT_AHEAD).map(Entry::record) {
        record.core().fref.prefetch_slot();
    }
    if let Some(record) = ready.get(PREFETCH_STACK_AHEAD).map(Entry::record) {
        record.core().fref.prefetch_context();
    }
}

thread_local! {
    static HUB: Cell<Option<&'static Hub>> = const { Cell::new(None) };
}

/// At thread exit: tears the hub down, then returns its record for
/// `hub_record` to free (R2), clearing the thread's slot. `None` when the
/// record must stay: teardown did not finish, or this runs off the thread's
/// own stack (a process exit called inside a greenlet runs thread-local
/// destructors there).
pub(crate) fn teardown_at_exit() -> Option<&'static Hub> {
    let hub = HUB.with(Cell::get)?;
    if !FiberRef::current().is_root() {
        // A process exit called inside a greenlet: nothing to tear down from
        // here, and the process is ending anyway.
        return None;
    }
    if hub.is_initialised() {
        // Never let a panic escape a TLS destructor: that aborts.
        let _ = panic::catch_unwind(AssertUnwindSafe(|| hub.teardown()));
    }
    if hub.is_initialised() || hub.tearing_down.get() {
        return None;
    }
    HUB.with(|slot| slot.set(None));
    Some(hub)
}

/// Chains a panic hook, once per process, that counts a panic in the
/// greenlet it happens in (U1): the only way to see a user's `panic!` start
/// in one greenlet while another is parked mid-unwind.
fn install_panic_hook() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            note_panic_in_current_greenlet();
            previous(info);
        }));
    });
}

/// The panic hook's part (U1). It may run anywhere, even while the hub's
/// cells are borrowed or this thread's locals are being destroyed: it only
/// ever tries.
fn note_panic_in_current_greenlet() {
    let Ok(Some(hub)) = HUB.try_with(Cell::get) else {
        return;
    };
    if !hub.initialised.get() {
        return;
    }
    if let Ok(current) = hub.current.try_borrow() {
        if let Some(core) = current.as_ref() {
            let depth = &core.core().unwind_depth;
            depth.set(depth.get() + 1);
        }
    }
}

/// The hub of the current thread, built on first use.
pub(crate) fn hub() -> &'static Hub {
    let hub = match HUB.with(Cell::get) {
        Some(hub) => hub,
        None => new_hub(),
    };
    if !hub.initialised.get() {
        hub.initialise();
    }
    hub
}

/// Allocates this thread's hub record (once per thread).
#[cold]
#[inline(never)]
fn new_hub() -> &'static Hub {
    let hub = crate::hub_record::allocate();
    HUB.with(|slot| slot.set(Some(hub)));
    hub
}

/// The hub if one is running on this thread; never builds one.
pub(crate) fn existing_hub() -> Option<&'static Hub> {
    HUB.with(Cell::get).filter(|h| h.initialised.get())
}

/// A `start_later` in waiting: its timer and the key of the hub's strong
/// reference to the greenlet.
#[derive(Clone, Copy)]
pub(crate) struct DelayedStart {
    timer: TimerId,
    key: usize,
}

/// A timer armed by [`Hub::wake_at`].
#[derive(Clone, Copy)]
pub(crate) struct TimerWake {
    pub(crate) timer: TimerId,
}

impl TimerWake {
    /// Whether this timer has fired (it is no longer pending in the loop;
    /// a waiter that cancelled it does not ask). Each wait asks about its
    /// own timer, so one greenlet's several timers never mask each other.
    pub(crate) fn fired(&self, hub: &Hub) -> bool {
        hub.lp
            .borrow()
            .as_ref()
            .is_none_or(|lp| !lp.timer_pending(self.timer))
    }
}

/// What the hub's timeout slab remembers for one started `Timeout`.
pub(crate) struct TimeoutEntry {
    /// The greenlet that started it, where it fires.
    pub(crate) core: WeakCore,
    pub(crate) id: u64,
    pub(crate) duration: Option<Duration>,
    /// Unique per start on this hub: a `Timeout` recognises its own entry by
    /// it after the slab key may have gone to another.
    pub(crate) serial: u64,
    pub(crate) deadline: Instant,
    /// Where its scope started (its greenlet's unwind and uninterruptible
    /// depths then): where it may be raised (U3).
    pub(crate) catcher: Catcher,
    /// Its loop timer, once armed: a timeout's timer is only inserted when
    /// its greenlet first blocks (`arm_started_timeouts`), so a scope whose
    /// body never blocks costs no timer at all.
    pub(crate) timer: Option<TimerId>,
}

/// One thread's hub. See the module docs.
pub(crate) struct Hub {
    initialised: Cell<bool>,
    /// Unique per initialisation across the process: handles that outlive a
    /// hub (a started `Timeout`) recognise their own hub by it.
    epoch: Cell<u64>,
    tearing_down: Cell<bool>,
    /// End of teardown's grace period, while tearing down.
    teardown_deadline: Cell<Option<Instant>>,
    teardown_timer_armed: Cell<bool>,
    /// Teardown is finishing off a straggler (unwinding it by force, or
    /// resuming one parked mid-unwind, U4).
    forced_unwinding: Cell<bool>,
    /// The straggler being finished off has had its one blocking call that
    /// gives up at once.
    forced_gave_up: Cell<bool>,
    /// Suspended greenlets that parked while unwinding (U2).
    parked_mid_unwind: Cell<u32>,
    /// Greenlets teardown leaked mid-unwind on this thread, ever: each keeps
    /// the thread panicking for good, so they count as parked mid-unwind
    /// for every later hub of the thread (U2). Never reset.
    leaked_mid_unwind: Cell<u32>,
    /// Past teardown's point of no return: a greenlet started now (by a
    /// destructor run by the last drops) is killed before it runs.
    closing: Cell<bool>,
    /// Inside `green_core::run` (a nested `run` is refused).
    pub(crate) in_run: Cell<bool>,
    lp: RefCell<Option<Rc<Loop>>>,
    /// The hub's own fiber; it runs `hub_main`.
    fiber: RefCell<Option<Fiber>>,
    hub_ref: RefCell<Option<FiberRef>>,
    main: RefCell<Option<CoreRef>>,
    /// The running greenlet; `None` while the hub fiber runs.
    current: RefCell<Option<CoreRef>>,
    /// The callback queue (Q1).
    ready: RefCell<VecDeque<Entry>>,
    /// Entries run since the pass began or was last checked (Q4).
    pass_count: Cell<u32>,
    /// When the current pass began: the last poll of the loop (Q4).
    pass_started: Cell<Instant>,
    /// A greenlet found the pass overdue: the hub polls before going on.
    cut_due: Cell<bool>,
    /// A rawlink is running (the hub fires a link): a waiter it wakes is
    /// switched to right after it, at the link's place (Q2).
    firing_rawlink: Cell<bool>,
    /// The waiter such a rawlink woke.
    woken_by_rawlink: RefCell<Option<CoreRef>>,
    /// The front of the ready queue is a greenlet blocked in `kill()` whose
    /// kill was just raised: it runs next, before the hub fires any links
    /// (gevent's blocking kill returns before the target's links).
    urgent: Cell<bool>,
    /// Fibers of finished greenlets, whose stacks go back to the pool once
    /// nothing runs on them (H1: fibers only, so reaping runs no user code).
    dead: RefCell<Vec<Fiber>>,
    /// Last references to records of greenlets killed before they started,
    /// found in the ready queue, for the hub to drop (H1).
    dead_records: RefCell<Vec<CoreRef>>,
    /// Greenlets waiting in `idle()`.
    idle_waiters: RefCell<VecDeque<CoreRef>>,
    /// The stack pools (stacks.rs): closed outside initialise..teardown.
    stacks: RefCell<StackPools>,
    /// Started or scheduled greenlets, for teardown.
    live: RefCell<Slab<WeakCore>>,
    pub(crate) timeouts: RefCell<Slab<TimeoutEntry>>,
    /// Slab keys of started timeouts whose timers are not inserted yet, in
    /// the order they were started: the running greenlet's, plus those of a
    /// greenlet that finished without blocking since (they can no longer be
    /// raised). The next park of any greenlet arms them all.
    pub(crate) unarmed_timeouts: RefCell<Vec<usize>>,
    pub(crate) next_timeout_serial: Cell<u64>,
    /// Its timeouts cancelled from other threads.
    foreign_cancels: RefCell<Option<std::sync::Arc<crate::timeout::ForeignCancels>>>,
    /// Greenlets waiting for a `start_later` timer, held strongly.
    delayed: RefCell<Slab<CoreRef>>,
    free_idents: RefCell<BinaryHeap<Reverse<usize>>>,
    next_ident: Cell<usize>,
    next_link: Cell<u64>,
}

thread_local! {
    static NEXT_GREENLET_ID: Cell<u64> = const { Cell::new(1) };
}

/// A greenlet id, unique on this thread. Ids are only ever compared between
/// greenlets of one thread (handles are `!Send`), so a thread-local counter
/// does, without an atomic on every spawn.
pub(crate) fn next_greenlet_id() -> u64 {
    NEXT_GREENLET_ID.with(|next| {
        let id = next.get();
        next.set(id + 1);
        id
    })
}

impl Hub {
    pub(crate) fn empty() -> Hub {
        Hub {
            initialised: Cell::new(false),
            epoch: Cell::new(0),
            tearing_down: Cell::new(false),
            teardown_deadline: Cell::new(None),
            teardown_timer_armed: Cell::new(false),
            forced_unwinding: Cell::new(false),
            forced_gave_up: Cell::new(false),
            parked_mid_unwind: Cell::new(0),
            leaked_mid_unwind: Cell::new(0),
            closing: Cell::new(false),
            in_run: Cell::new(false),
            lp: RefCell::new(None),
            fiber: RefCell::new(None),
            hub_ref: RefCell::new(None),
            main: RefCell::new(None),
            current: RefCell::new(None),
            ready: RefCell::new(VecDeque::new()),
            pass_count: Cell::new(0),
            pass_started: Cell::new(Instant::now()),
            cut_due: Cell::new(false),
            firing_rawlink: Cell::new(false),
            woken_by_rawlink: RefCell::new(None),
            urgent: Cell::new(false),
            dead: RefCell::new(Vec::new()),
            dead_records: RefCell::new(Vec::new()),
            idle_waiters: RefCell::new(VecDeque::new()),
            stacks: RefCell::new(StackPools::new()),
            live: RefCell::new(Slab::new()),
            timeouts: RefCell::new(Slab::new()),
            unarmed_timeouts: RefCell::new(Vec::new()),
            next_timeout_serial: Cell::new(0),
            foreign_cancels: RefCell::new(None),
            delayed: RefCell::new(Slab::new()),
            free_idents: RefCell::new(BinaryHeap::new()),
            next_ident: Cell::new(1),
            next_link: Cell::new(1),
        }
    }

    fn is_initialised(&self) -> bool {
        self.initialised.get()
    }

    /// Builds the loop, the main greenlet and the hub fiber. Kept out of
    /// line: inlined into `hub()`, the loop's large setup frame would make
    /// every `hub()` call on a greenlet's small stack probe (and so commit)
    /// extra stack pages.
    #[cold]
    #[inline(never)]
    fn initialise(&'static self) {
        if !FiberRef::current().is_root() {
            panic!("green-core: the hub must be created from the thread's own stack, not from inside a fiber");
        }
        green_ctx::set_number_prefix("Greenlet");
        static NEXT_EPOCH: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        self.epoch
            .set(NEXT_EPOCH.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        *self.foreign_cancels.borrow_mut() = Some(crate::timeout::register_hub(self.epoch.get()));
        let lp = Loop::new().unwrap_or_else(|e| {
            panic!("green-core: cannot create the event loop for this thread's hub: {e}")
        });
        *self.lp.borrow_mut() = Some(Rc::new(lp));
        self.stacks.borrow_mut().open();
        let main: CoreRef = Rc::new(MainGreenlet::new(Core::new(
            next_greenlet_id(),
            None,
            FiberRef::root(),
            None,
            Location::caller(),
            true,
        )));
        *self.main.borrow_mut() = Some(Rc::clone(&main));
        *self.current.borrow_mut() = Some(main);
        let stack = Stack::new(DEFAULT_STACK_SIZE)
            .unwrap_or_else(|e| panic!("green-core: cannot map the hub's stack: {e}"));
        let fiber = Fiber::new(stack, |_| hub_main());
        fiber.set_name("hub");
        fiber.set_parent(&FiberRef::root());
        *self.hub_ref.borrow_mut() = Some(fiber.handle());
        *self.fiber.borrow_mut() = Some(fiber);
        self.initialised.set(true);
        install_panic_hook();
        // A hub built by a thread-local destructor that runs after ours has
        // no exit guard left to tear it down; it still works, and is torn
        // down by `run` or `shutdown` if the destructor uses them.
        if !crate::hub_record::tear_down_at_exit() {
            tracing::debug!(
                "green-core: hub created during thread exit; it is not torn down at exit"
            );
        }
        // Start the hub fiber so that it is suspended inside its loop; every
        // later switch to it is then a plain resume.
        let hub_fiber = self.hub_ref();
        *self.current.borrow_mut() = None;
        hub_fiber.switch(0);
    }

    /// This hub's epoch (see the field).
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.get()
    }

    /// The live greenlet registered at `key`, if it is still the one with `id`.
    pub(crate) fn live_greenlet(&self, key: u32, id: u64) -> Option<CoreRef> {
        let live = self.live.borrow();
        let core = live.get(key as usize)?.upgrade()?;
        (core.core().id == id).then_some(core)
    }

    /// Runs `f` with the event loop, without taking a reference to it.
    /// `f` must not tear the hub down.
    #[inline]
    pub(crate) fn with_loop<R>(&self, f: impl FnOnce(&Loop) -> R) -> R {
        let lp = self.lp.borrow();
        f(lp.as_ref()
            .expect("the hub's loop exists while it is initialised"))
    }

    /// The event loop.
    pub(crate) fn lp(&self) -> Rc<Loop> {
        Rc::clone(
            self.lp
                .borrow()
                .as_ref()
                .expect("the hub's loop exists while it is initialised"),
        )
    }

    /// The hub fiber, parent of every greenlet's fiber.
    pub(crate) fn hub_fiber_ref(&self) -> FiberRef {
        self.hub_ref()
    }

    fn hub_ref(&self) -> FiberRef {
        self.hub_ref
            .borrow()
            .as_ref()
            .expect("the hub fiber exists")
            .clone()
    }

    pub(crate) fn main_core(&self) -> CoreRef {
        Rc::clone(
            self.main
                .borrow()
                .as_ref()
                .expect("the main greenlet exists"),
        )
    }

    /// The record of this hub's timeouts cancelled from other threads, if
    /// it holds any request (one atomic load otherwise).
    pub(crate) fn foreign_cancels(&self) -> Option<std::sync::Arc<crate::timeout::ForeignCancels>> {
        self.foreign_cancels
            .borrow()
            .as_ref()
            .filter(|c| c.is_pending())
            .cloned()
    }

    /// Runs `f` with the running greenlet, without taking a reference to
    /// it; `None` inside the hub (a rawlink, a loop handler). `f` must not
    /// switch greenlets.
    #[inline]
    pub(crate) fn with_current<R>(&self, f: impl FnOnce(&CoreRef) -> R) -> Option<R> {
        self.current.borrow().as_ref().map(f)
    }

    /// Whether `core` is the running greenlet.
    pub(crate) fn is_current(&self, core: &Core) -> bool {
        self.current
            .borrow()
            .as_ref()
            .is_some_and(|c| std::ptr::eq(c.core(), core))
    }

    /// The running greenlet, or `None` inside the hub (rawlinks, handlers).
    pub(crate) fn current(&self) -> Option<CoreRef> {
        self.current.borrow().clone()
    }

    #[cold]
    #[track_caller]
    fn current_for_blocking_failed(&self) -> ! {
        panic!(
            "green-core: a blocking call was made inside the hub (a rawlink callback or an \
             event-loop handler); these must not block: use link() or spawn a greenlet"
        )
    }

    /// The running greenlet; a clear panic if called from the hub itself,
    /// where nothing may block.
    #[track_caller]
    pub(crate) fn current_for_blocking(&self) -> CoreRef {
        match self.current() {
            Some(core) => core,
            None => self.current_for_blocking_failed(),
        }
    }

    pub(crate) fn next_link_id(&self) -> u64 {
        let id = self.next_link.get();
        self.next_link.set(id + 1);
        id
    }

    // ===== stacks =====

    /// A stack of at least `size` bytes (default if `None`), guarded or not.
    #[inline]
    pub(crate) fn take_stack(&self, size: Option<usize>, guarded: bool) -> std::io::Result<Stack> {
        self.stacks.borrow_mut().take(size, guarded)
    }

    #[inline]
    pub(crate) fn give_back_stack(&self, stack: Stack) {
        self.stacks.borrow_mut().give_back(stack);
    }

    // ===== registry and idents =====

    /// Enters a greenlet in the registry of live greenlets (teardown kills
    /// them; timers find them by key); returns its key.
    pub(crate) fn register_live(&self, core: &CoreRef) -> u32 {
        let c = core.core();
        if let Some(key) = c.live_key() {
            return key;
        }
        // Its minimal ident is given now, so that it keeps one number for
        // life (and after death, while that number may go to a newcomer).
        if c.ident().is_none() {
            let ident = self.allocate_ident();
            c.set_ident(ident);
            // The overflow report names an unnamed greenlet `Greenlet-<ident>`.
            c.with_fiber(|f| f.set_number(ident as u32));
        }
        let key = self.live.borrow_mut().insert(Rc::downgrade(core));
        let key = u32::try_from(key)
            .ok()
            .filter(|&k| k != u32::MAX)
            .expect("fewer than 2^32 - 1 live greenlets");
        c.set_live_key(Some(key));
        key
    }

    fn unregister_live(&self, core: &Core) {
        if let Some(key) = core.live_key() {
            core.set_live_key(None);
            self.live.borrow_mut().remove(key as usize);
        }
    }

    pub(crate) fn allocate_ident(&self) -> usize {
        if let Some(Reverse(ident)) = self.free_idents.borrow_mut().pop() {
            return ident;
        }
        let ident = self.next_ident.get();
        self.next_ident.set(ident + 1);
        ident
    }

    /// Makes a dead greenlet's ident available again; the dead greenlet
    /// keeps reporting it.
    pub(crate) fn release_ident(&self, core: &Core) {
        if let Some(ident) = core.ident() {
            self.free_idents.borrow_mut().push(Reverse(ident));
        }
    }

    // ===== scheduling =====

    /// Queues a greenlet's resume at the back of the callback queue (S1: at
    /// most once).
    #[inline]
    pub(crate) fn schedule(&self, core: &CoreRef) {
        if mark_ready(core.core()) {
            self.ready
                .borrow_mut()
                .push_back(Entry::Resume(Rc::clone(core)));
        }
    }

    /// Wakes a greenlet waiting on something a rawlink reports ready (`wait`,
    /// `iwait`, later the sync primitives). Called by a rawlink the hub is
    /// firing, the waiter runs right after it, before the later links (Q2,
    /// gevent's `waiter.switch` inside a link); called from anywhere else, it
    /// is queued like any wake-up.
    pub(crate) fn wake_waiter(&self, waiter: &CoreRef) {
        if self.firing_rawlink.get() {
            let mut woken = self.woken_by_rawlink.borrow_mut();
            if woken.is_none() && can_switch_to(waiter.core()) {
                *woken = Some(Rc::clone(waiter));
                return;
            }
        }
        self.schedule(waiter);
    }

    /// Moves `core`'s queued resume to the front of the callback queue: it
    /// runs next (a `throw` that gevent does on the spot).
    pub(crate) fn run_next(&self, core: &CoreRef) {
        let mut ready = self.ready.borrow_mut();
        let at = ready
            .iter()
            .position(|e| matches!(e, Entry::Resume(c) if std::ptr::eq(c.core(), core.core())));
        if let Some(entry) = at.and_then(|at| ready.remove(at)) {
            ready.push_front(entry);
        }
    }

    /// Q4: counts one more entry run in this pass; every
    /// [`CALLBACK_CHECK_COUNT`] entries, says whether the pass has run for
    /// its [`SWITCH_INTERVAL`] and must be cut short.
    #[inline(always)]
    fn pass_overdue(&self) -> bool {
        let count = self.pass_count.get() + 1;
        self.pass_count.set(count);
        count >= CALLBACK_CHECK_COUNT && self.check_pass_clock()
    }

    #[cold]
    #[inline(never)]
    fn check_pass_clock(&self) -> bool {
        self.pass_count.set(0);
        Instant::now().saturating_duration_since(self.pass_started.get()) >= SWITCH_INTERVAL
    }

    /// Takes the callback queue's next entry (Q1-Q3). A resume gives its
    /// greenlet. A links entry is fired here as far as it only wakes
    /// waiters (switching to one is the firing of its link); a rawlink or
    /// `link` callback needs the hub fiber, so outside the hub (`in_hub`
    /// false) the entry goes back to the front and the answer is
    /// [`Next::Hub`]. `fair` is false for the killer a blocking kill resumes
    /// (Q5): nothing may come between its target's throw and it.
    #[inline(always)]
    fn pop_next(&self, in_hub: bool, fair: bool) -> Next {
        loop {
            let entry = {
                let mut ready = self.ready.borrow_mut();
                if ready.is_empty() {
                    return Next::Empty;
                }
                if fair && self.pass_overdue() {
                    drop(ready);
                    if in_hub {
                        self.poll(false);
                        continue;
                    }
                    self.cut_due.set(true);
                    return Next::Hub;
                }
                let entry = ready.pop_front();
                prefetch_ahead(&ready);
                entry
            };
            match entry {
                Some(Entry::Resume(next)) => {
                    let c = next.core();
                    c.in_ready.set(false);
                    if !c.is_dead() {
                        return Next::Run(next);
                    }
                    // Killed before it started.
                    self.release_record(next, in_hub);
                }
                Some(Entry::Links(dead)) => {
                    if let Some(next) = self.fire_links(dead, in_hub) {
                        return next;
                    }
                }
                None => return Next::Empty,
            }
        }
    }

    /// Lets go of a reference to a dead greenlet's record. Its last
    /// reference may hold user data (a value, a kill payload): the hub drops
    /// it, guarded (H1), not whichever greenlet is switching.
    fn release_record(&self, core: CoreRef, in_hub: bool) {
        if Rc::strong_count(&core) > 1 {
            return;
        }
        if in_hub {
            self.drop_record(core);
        } else {
            self.dead_records.borrow_mut().push(core);
        }
    }

    /// Switches from the running context (a greenlet or the hub) to `next`.
    #[inline(always)]
    fn switch_into(&self, next: CoreRef) {
        let c = next.core();
        if c.state.get() == State::Scheduled {
            c.state.set(State::Running);
        }
        *self.current.borrow_mut() = Some(next);
        // Through `current`, without cloning the target's `FiberRef`.
        let target = Ref::map(self.current.borrow(), |cur| match cur {
            Some(next) => &next.core().fref,
            None => unreachable!("`current` was just set"),
        });
        FiberRef::switch_guarded(target, 0);
    }

    /// Suspends the running greenlet until something schedules it.
    ///
    /// Returns `false` only when the wait cannot go on: the main greenlet
    /// would block forever while it is already unwinding or while the hub is
    /// tearing down. Otherwise, a pending kill or timeout (S2) is raised here,
    /// and a main greenlet that would block forever panics with [`LoopExit`].
    #[track_caller]
    pub(crate) fn park(&self) -> bool {
        let me = self.current_for_blocking();
        self.park_as(&me)
    }

    /// [`Hub::park`] for a caller that already holds the current greenlet.
    ///
    /// Only the direct switch to another ready greenlet is inline; every
    /// other case is out of line, so that the frame left on a parked
    /// greenlet's stack stays small (fewer cold cache lines to reload when
    /// it resumes).
    #[inline(always)]
    pub(crate) fn park_as(&self, me: &CoreRef) -> bool {
        let core = me.core();
        if self.forced_unwinding.get() {
            return self.park_forced(core);
        }
        if core.throw_held.get() {
            self.raise_held(core);
        }
        if !self.unarmed_timeouts.borrow().is_empty() {
            crate::timeout::arm_started(self);
        }
        core.state.set(State::Parked);
        if core.has_kill_waiters.get() {
            self.parked_after_kill(core);
        }
        if std::thread::panicking() {
            self.note_parking_while_panicking(core);
        } else if core.unwind_depth.get() != 0 {
            // A count left from an unwind the user's code caught (U1).
            self.unwind_depth(core);
        }
        let fair = !self.urgent.replace(false);
        match self.pop_next(false, fair) {
            Next::Run(next) if !Rc::ptr_eq(&next, me) => self.switch_into(next),
            // `sleep(0)` with nothing else queued: it goes on at once.
            Next::Run(_) => {}
            Next::Hub | Next::Empty => self.park_via_hub(),
        }
        // Whoever switched back to us made us current again. A greenlet that
        // finished may have switched straight here: give its stack back.
        core.state.set(State::Running);
        if core.parked_unwinding.get() {
            self.resumed_mid_unwind(core);
        }
        self.reap_dead();
        if core.loop_exit.get() {
            return self.park_loop_exit(core);
        }
        if let Some(payload) = core.throw.take() {
            self.park_throw(core, payload);
        }
        true
    }

    /// A blocking call of a greenlet that holds a payload back (S2): raise
    /// it now, before parking, if it may be raised by now (U3); nothing
    /// would wake the greenlet to raise it later.
    #[cold]
    #[inline(never)]
    fn raise_held(&self, core: &Core) {
        if core.throw_is_empty() {
            // Withdrawn meanwhile, or a kill set aside behind a resume.
            core.restore_set_aside();
        }
        let Some(payload) = core.throw.take() else {
            core.throw_held.set(false);
            return;
        };
        self.park_throw(core, payload);
    }

    /// Whether a payload caught by `catcher` may be raised in `core` now:
    /// it is no deeper in an unwind or an uninterruptible wait than where
    /// the catcher started (U3, S2).
    fn may_raise(&self, core: &Core, catcher: Catcher) -> bool {
        self.unwind_depth(core); // corrects the count first (U1)
        core.catcher_admits(catcher)
    }

    /// Raises a payload taken from `throw`; the next payload set aside is
    /// pending again as it goes (U3).
    #[inline(always)]
    fn raise_pending(&self, core: &Core, payload: green_ctx::Payload) -> ! {
        core.throw_held.set(false);
        core.restore_set_aside();
        self.raise(core, payload)
    }

    /// U1: how many unwinds are in progress on `core`'s stack (the running
    /// greenlet's, or one about to park), corrected by the thread-wide flag
    /// where that flag is conclusive.
    #[inline]
    pub(crate) fn unwind_depth(&self, core: &Core) -> u32 {
        if core.unwind_depth.get() == 0 && !std::thread::panicking() {
            return 0;
        }
        self.unwind_depth_slow(core)
    }

    #[cold]
    #[inline(never)]
    fn unwind_depth_slow(&self, core: &Core) -> u32 {
        let depth = &core.unwind_depth;
        if !std::thread::panicking() {
            // No unwind anywhere on the thread, so none here.
            if depth.replace(0) != 0 {
                self.count_was_too_high(core);
            }
        } else if self.parked_mid_unwind.get() == 0
            && self.leaked_mid_unwind.get() == 0
            && depth.get() == 0
        {
            // The thread unwinds and no other greenlet is parked mid-unwind
            // (U2): the unwind is this greenlet's.
            depth.set(1);
        }
        depth.get()
    }

    /// [`Hub::unwind_depth`] found a count above zero on a greenlet that is
    /// not unwinding (the user's own `catch_unwind` caught a panic). The
    /// depths its started timeouts and its pending payload recorded came from
    /// that count; with no unwind in progress every live scope of it started
    /// outside any unwind, so they are all 0 too (U3).
    #[cold]
    #[inline(never)]
    fn count_was_too_high(&self, core: &Core) {
        let mut catcher = core.throw_catcher.get();
        catcher.unwind_depth = 0;
        core.throw_catcher.set(catcher);
        for (_, entry) in self.timeouts.borrow_mut().iter_mut() {
            let owner = entry.core.upgrade();
            if owner.is_some_and(|owner| std::ptr::eq(owner.core(), core)) {
                entry.catcher.unwind_depth = 0;
            }
        }
    }

    /// Raises `payload` in the running greenlet, counting the unwind (U1).
    /// Inlined: every frame between a blocking call and the greenlet's root
    /// is one more the unwinder walks, twice.
    #[inline(always)]
    pub(crate) fn raise(&self, core: &Core, payload: green_ctx::Payload) -> ! {
        core.unwind_depth.set(core.unwind_depth.get() + 1);
        panic::resume_unwind(payload)
    }

    /// [`Hub::park_as`] with the thread panicking: record whether it is this
    /// greenlet that unwinds, so that others are not taken for it (U2).
    #[cold]
    #[inline(never)]
    fn note_parking_while_panicking(&self, core: &Core) {
        if self.unwind_depth(core) > 0 {
            core.parked_unwinding.set(true);
            self.parked_mid_unwind.set(self.parked_mid_unwind.get() + 1);
        }
    }

    /// [`Hub::park_as`] of a greenlet that greenlets blocked in `kill()`
    /// wait on: once no kill is left to raise in it, they run next.
    #[cold]
    #[inline(never)]
    fn parked_after_kill(&self, core: &Core) {
        if !core.has_payload_waiting() {
            self.wake_kill_waiters(core);
        }
    }

    /// Puts the greenlets blocked in `kill()` on `core` at the front of the
    /// ready queue, in the order they waited: they run next (see `urgent`).
    pub(crate) fn wake_kill_waiters(&self, core: &Core) {
        let waiters = core.take_kill_waiters();
        let mut ready = self.ready.borrow_mut();
        for waiter in waiters.into_iter().rev() {
            if mark_ready(waiter.core()) {
                ready.push_front(Entry::Resume(waiter));
                self.urgent.set(true);
            }
        }
    }

    /// A greenlet that parked mid-unwind runs again (U2).
    #[cold]
    #[inline(never)]
    fn resumed_mid_unwind(&self, core: &Core) {
        core.parked_unwinding.set(false);
        self.parked_mid_unwind
            .set(self.parked_mid_unwind.get().saturating_sub(1));
    }

    /// [`Hub::park_as`] while teardown finishes off a straggler: something
    /// in it blocks, and nothing will ever wake it. The first such wait gives
    /// up at once (its caller sees `false`), so a destructor that blocks once
    /// can finish and its unwind end (U4); a second one suspends it for good
    /// by switching back to the teardown (which then leaks it) rather than
    /// returning, which a polling destructor would turn into a spin.
    #[cold]
    #[inline(never)]
    fn park_forced(&self, core: &Core) -> bool {
        if !self.forced_gave_up.replace(true) {
            return false;
        }
        core.state.set(State::Parked);
        FiberRef::root().switch(0);
        false
    }

    /// [`Hub::park_as`] when it does not switch straight to another
    /// greenlet: the queue is empty, its front needs the hub, or the pass is
    /// to be cut short (Q4).
    #[cold]
    #[inline(never)]
    fn park_via_hub(&self) {
        *self.current.borrow_mut() = None;
        self.hub_ref().switch(0);
    }

    /// [`Hub::park_as`] resumed by the hub finding nothing left that could
    /// wake the main greenlet (or by teardown giving up on a greenlet, U4).
    #[cold]
    #[inline(never)]
    fn park_loop_exit(&self, core: &Core) -> bool {
        core.loop_exit.set(false);
        // Raising while this greenlet unwinds would abort (U3): the wait
        // gives up instead, and the caller sees it unfinished.
        if self.tearing_down.get() || self.unwind_depth(core) > 0 {
            return false;
        }
        panic!("{}", LoopExit);
    }

    /// [`Hub::park_as`] resumed with a kill or timeout to raise (S2): raised
    /// where its catcher is sure to catch it, else kept for later (U3).
    #[cold]
    #[inline(never)]
    fn park_throw(&self, core: &Core, payload: green_ctx::Payload) {
        // A timeout another thread cancelled after it fired is withdrawn
        // here, before it could be raised.
        if payload.is::<crate::Timeout>()
            && self.foreign_cancels().is_some_and(|c| {
                crate::timeout::cancelled_elsewhere_after_firing(self, &c, &*payload)
            })
        {
            core.restore_set_aside();
            return;
        }
        // A scope cannot have started deeper than the greenlet unwinds now,
        // so a depth below the payload's (a count corrected since) is safe.
        if self.may_raise(core, core.throw_catcher.get()) {
            self.raise_pending(core, payload);
        }
        core.throw.set(Some(payload));
        core.throw_held.set(true);
    }

    /// Runs `f` with kills and timeouts held back (S2); they are raised at the
    /// first blocking point after it returns. A `Timeout` started inside `f`
    /// (by a destructor it runs) is caught inside it too, so it is raised
    /// there as usual (its catcher records the wait's depth, U3).
    pub(crate) fn uninterruptible<R>(&self, f: impl FnOnce() -> R) -> R {
        let me = self.current_for_blocking();
        let depth = &me.core().uninterruptible;
        depth.set(depth.get() + 1);
        struct Restore<'a>(&'a Cell<u32>);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                self.0.set(self.0.get() - 1);
            }
        }
        let _restore = Restore(depth);
        f()
    }

    /// Yields to every greenlet already ready, then resumes.
    #[inline]
    #[track_caller]
    pub(crate) fn yield_now(&self) {
        let me = self.current_for_blocking();
        self.schedule(&me);
        self.park_as(&me);
    }

    /// Parks until the loop has nothing else to do.
    #[track_caller]
    pub(crate) fn idle(&self) {
        let me = self.current_for_blocking();
        self.idle_waiters.borrow_mut().push_back(Rc::clone(&me));
        struct Remove<'a>(&'a Hub, CoreRef);
        impl Drop for Remove<'_> {
            fn drop(&mut self) {
                let id = self.1.core().id;
                self.0
                    .idle_waiters
                    .borrow_mut()
                    .retain(|c| c.core().id != id);
            }
        }
        let _remove = Remove(self, me);
        self.park();
    }

    // ===== the hub fiber =====

    /// One round of the hub's work; returns after switching to a greenlet
    /// that later switched back, or after polling the loop.
    fn run_once(&self) {
        if self.urgent.replace(false) {
            // A greenlet blocked in `kill()` runs before anything else (Q5).
            if let Next::Run(next) = self.pop_next(true, false) {
                self.switch_into(next);
                return;
            }
        }
        self.drop_dead_records();
        if let Some(cancels) = self.foreign_cancels() {
            crate::timeout::withdraw_foreign_cancels(self, &cancels);
        }
        self.reap_dead();
        if self.tearing_down.get() && self.teardown_grace_over() {
            // Teardown gives greenlets a grace period to finish unwinding
            // (a destructor may sleep briefly); past it, whatever still runs
            // is given up on: the main greenlet's join sees LoopExit, and the
            // stragglers are force-unwound or leaked.
            self.give_up_on_stragglers();
            if let Next::Run(next) = self.pop_next(true, false) {
                self.switch_into(next);
            }
            return;
        }
        if self.cut_due.replace(false) {
            // A greenlet found the pass overdue (Q4): timers and I/O first.
            self.poll(false);
        }
        match self.pop_next(true, true) {
            Next::Run(next) => {
                self.switch_into(next);
                return;
            }
            Next::Hub => unreachable!("the hub fires every entry itself"),
            Next::Empty => {}
        }
        if !self.dead.borrow().is_empty() || !self.dead_records.borrow().is_empty() {
            return;
        }
        let lp = self.lp();
        if !self.idle_waiters.borrow().is_empty() {
            self.poll(false);
            if self.ready.borrow().is_empty() {
                let waiters: Vec<CoreRef> = self.idle_waiters.borrow_mut().drain(..).collect();
                for w in &waiters {
                    self.schedule(w);
                }
            }
            return;
        }
        if self.tearing_down.get() {
            // Within the grace period: wait for timers and I/O, but no
            // longer than the grace period's end.
            self.arm_teardown_deadline();
            self.poll(true);
            return;
        }
        if !lp.is_alive() {
            // Nothing referenced can ever wake anyone: the main greenlet's
            // blocking call fails with LoopExit; others stay suspended.
            let main = self.main_core();
            if main.core().state.get() == State::Parked {
                main.core().loop_exit.set(true);
                self.schedule(&main);
                return;
            }
        }
        self.poll(true);
    }

    /// Whether teardown's grace period has ended.
    fn teardown_grace_over(&self) -> bool {
        self.teardown_deadline
            .get()
            .is_some_and(|at| Instant::now() >= at)
    }

    /// Makes sure a blocking poll during teardown wakes up by the end of the
    /// grace period (one timer, armed once).
    fn arm_teardown_deadline(&self) {
        if !self.teardown_timer_armed.replace(true) {
            if let Some(at) = self.teardown_deadline.get() {
                self.with_loop(|lp| lp.add_timer(at, |_, _, _| {}, 0));
            }
        }
    }

    /// Past teardown's grace period: the main greenlet stops waiting.
    fn give_up_on_stragglers(&self) {
        let main = self.main_core();
        if main.core().state.get() == State::Parked {
            main.core().loop_exit.set(true);
            self.schedule(&main);
        }
    }

    fn poll(&self, block: bool) {
        let lp = self.lp();
        if let Err(e) = lp.run_once(block) {
            tracing::error!(error = %e, "green-core: the event loop failed an iteration");
            eprintln!("green-core: the event loop failed an iteration: {e}");
        }
        // A new pass of the callback queue begins (Q4).
        self.pass_count.set(0);
        self.pass_started.set(Instant::now());
    }

    /// Gives finished greenlets' stacks back to the pool.
    #[inline]
    pub(crate) fn reap_dead(&self) {
        if !self.dead.borrow().is_empty() {
            self.reap_dead_slow();
        }
    }

    #[cold]
    fn reap_dead_slow(&self) {
        loop {
            let Some(fiber) = self.dead.borrow_mut().pop() else {
                return;
            };
            // A finished fiber's entry is gone: this runs no user code (H1).
            if let Some(stack) = fiber.take_stack() {
                self.give_back_stack(stack);
            }
        }
    }

    /// Runs user code (a destructor) on behalf of greenlet `whose`, so that
    /// a panic in it is reported against that greenlet instead of unwinding
    /// the caller: the hub, a teardown, a killer (H1). A kill or timeout of
    /// the running greenlet that unwinds out of it is not the destructor's
    /// failure: it is handed back, for the caller to pass on with
    /// [`Hub::pass_on`] (or to drop, where the greenlet is finishing anyway).
    #[must_use]
    ///
    /// `whose` names the code for the report; it is only called on failure.
    pub(crate) fn guard_user_code(
        &self,
        whose: impl FnOnce() -> String,
        site: &'static Location<'static>,
        f: impl FnOnce(),
    ) -> Option<green_ctx::Payload> {
        let payload = panic::catch_unwind(AssertUnwindSafe(f)).err()?;
        self.caught_in_current(&*payload);
        if crate::error::is_green_core_payload(&*payload) {
            return Some(payload);
        }
        report_failure(&whose(), Some(site), &payload_message(&*payload));
        None
    }

    /// [`Hub::guard_user_code`] dropping `value`, which belongs to `whose`.
    #[must_use]
    pub(crate) fn drop_guarded<V>(
        &self,
        value: V,
        whose: &Core,
        what: &str,
    ) -> Option<green_ctx::Payload> {
        let name = || {
            format!(
                "{what} of greenlet '{}'",
                crate::greenlet::display_name(whose)
            )
        };
        self.guard_user_code(name, whose.spawn_site, move || drop(value))
    }

    /// Raises in the running greenlet a kill or timeout that
    /// [`Hub::guard_user_code`] handed back; in the hub, where no greenlet
    /// runs, there is nothing to raise it in.
    pub(crate) fn pass_on(&self, payload: Option<green_ctx::Payload>) {
        let Some(payload) = payload else { return };
        let current = self.current();
        match current {
            Some(core) => self.raise(core.core(), payload),
            None => drop(payload),
        }
    }

    /// Drops a reference to a dead greenlet's record; if it is the last one,
    /// the value and payload it still holds are dropped under
    /// [`Hub::guard_user_code`] (H1).
    pub(crate) fn drop_record(&self, core: CoreRef) {
        if Rc::strong_count(&core) > 1 {
            return;
        }
        let name = format!(
            "dropping the value of greenlet '{}'",
            crate::greenlet::display_name(core.core())
        );
        let site = core.core().spawn_site;
        let passed = self.guard_user_code(|| name, site, move || drop(core));
        self.pass_on(passed);
    }

    /// Something green-core wrapped in `catch_unwind` caught an unwind in the
    /// running greenlet: that unwind is over (U1).
    pub(crate) fn caught_in_current(&self, _payload: &(dyn std::any::Any + Send)) {
        if let Ok(current) = self.current.try_borrow() {
            if let Some(core) = current.as_ref() {
                let depth = &core.core().unwind_depth;
                depth.set(depth.get().saturating_sub(1));
            }
        }
    }

    /// Drops the records [`Hub::pop_ready`] set aside (H1).
    fn drop_dead_records(&self) {
        loop {
            let Some(core) = self.dead_records.borrow_mut().pop() else {
                return;
            };
            self.drop_record(core);
        }
    }

    /// Fires a links entry of the callback queue (Q2): the dead greenlet's
    /// links in registration order, including those added while it fires.
    /// A link that wakes a waiter is fired by switching to the waiter, with
    /// the entry put back at the front of the queue, so that the later links
    /// fire as soon as the waiter blocks again: the `Next::Run` returned.
    /// `None` once every link has fired. Outside the hub a callback link
    /// stops it (`Next::Hub`, the entry back at the front); in the hub every
    /// piece of user code it runs or drops is guarded (H1).
    fn fire_links(&self, dead: CoreRef, in_hub: bool) -> Option<Next> {
        let c = dead.core();
        loop {
            let link = {
                let mut links = c.links.borrow_mut();
                match links.first() {
                    None => None,
                    Some(first) if !in_hub && !matches!(first.action, LinkAction::Wake(_)) => {
                        drop(links);
                        self.ready.borrow_mut().push_front(Entry::Links(dead));
                        return Some(Next::Hub);
                    }
                    Some(_) => Some(links.remove(0)),
                }
            };
            let Some(link) = link else {
                c.links_queued.set(false);
                self.release_record(dead, in_hub);
                return None;
            };
            let fire = match link.filter() {
                LinkFilter::Always => true,
                LinkFilter::OnSuccess => c.successful(),
                LinkFilter::OnFailure => !c.successful(),
            };
            if !fire {
                // Outside the hub only waiters' links get here: nothing of
                // the user's to drop.
                let passed = self.drop_guarded(link, c, "dropping a link that did not fire");
                self.pass_on(passed);
                continue;
            }
            match link.action {
                LinkAction::Wake(waiter) => {
                    if throw_queued(waiter.core()) {
                        self.defer_throw_behind_wake(waiter.core());
                    }
                    if can_switch_to(waiter.core()) {
                        self.ready.borrow_mut().push_front(Entry::Links(dead));
                        return Some(Next::Run(waiter));
                    }
                }
                LinkAction::Raw(f) => {
                    let name = || format!("a rawlink of {}", crate::greenlet::display_name(c));
                    self.firing_rawlink.set(true);
                    let passed = self.guard_user_code(name, c.spawn_site, || f(&dead));
                    self.firing_rawlink.set(false);
                    self.pass_on(passed);
                    let woken = self.woken_by_rawlink.borrow_mut().take();
                    if let Some(waiter) = woken.filter(|w| can_switch_to(w.core())) {
                        self.ready.borrow_mut().push_front(Entry::Links(dead));
                        return Some(Next::Run(waiter));
                    }
                }
                LinkAction::Green(f) => {
                    if let Some(started) = self.start_link_greenlet(&dead, f, false) {
                        // It runs now, in the entry's place; when it blocks
                        // or ends, the later links fire.
                        self.ready.borrow_mut().push_front(Entry::Links(dead));
                        return Some(Next::Run(started));
                    }
                }
            }
        }
    }

    /// Q3: a waiter whose link fires while a kill (or timeout) is queued
    /// for it: the kill's entry came later, so it first returns from its
    /// wait, and the kill is raised at its next blocking call (gevent's
    /// order; rule 4 of `kill_core` from the other side).
    #[cold]
    #[inline(never)]
    fn defer_throw_behind_wake(&self, waiter: &Core) {
        self.ready.borrow_mut().retain(|entry| match entry {
            Entry::Resume(core) => !std::ptr::eq(core.core(), waiter),
            Entry::Links(_) => true,
        });
        waiter.in_ready.set(false);
        if let Some(payload) = waiter.throw.take() {
            waiter.set_aside_first(payload, waiter.throw_catcher.get());
            waiter.throw_held.set(true);
        }
    }

    /// Fires every links entry left in the queue without the hub fiber, for
    /// teardown: waiters are queued, link greenlets queued to start (and die
    /// unrun once teardown is closing); resumes stay where they are.
    fn fire_links_in_teardown(&self) {
        loop {
            let dead = {
                let mut ready = self.ready.borrow_mut();
                let Some(at) = ready.iter().position(|e| matches!(e, Entry::Links(_))) else {
                    return;
                };
                match ready.remove(at) {
                    Some(Entry::Links(dead)) => dead,
                    _ => unreachable!("the entry found is a links entry"),
                }
            };
            let c = dead.core();
            c.links_queued.set(false);
            loop {
                let link = {
                    let mut links = c.links.borrow_mut();
                    if links.is_empty() {
                        break;
                    }
                    links.remove(0)
                };
                let fire = match link.filter() {
                    LinkFilter::Always => true,
                    LinkFilter::OnSuccess => c.successful(),
                    LinkFilter::OnFailure => !c.successful(),
                };
                if !fire {
                    let passed = self.drop_guarded(link, c, "dropping a link that did not fire");
                    self.pass_on(passed);
                    continue;
                }
                match link.action {
                    LinkAction::Wake(waiter) => self.schedule(&waiter),
                    LinkAction::Raw(f) => {
                        let name = || format!("a rawlink of {}", crate::greenlet::display_name(c));
                        let passed = self.guard_user_code(name, c.spawn_site, || f(&dead));
                        self.pass_on(passed);
                    }
                    LinkAction::Green(f) => {
                        // Started the usual way (refused once closing).
                        let _ = self.start_link_greenlet(&dead, f, true);
                    }
                }
            }
            self.drop_record(dead);
        }
    }

    /// Makes the greenlet that runs a `link` callback of the dead greenlet
    /// `core`: ready to be switched to (returned), or `queued` to start the
    /// usual way. One that cannot get a stack is
    /// reported as a failure of that link, never of the hub (H1).
    fn start_link_greenlet(
        &self,
        core: &CoreRef,
        f: crate::greenlet::state::LinkFn,
        queued: bool,
    ) -> Option<CoreRef> {
        let dead = Rc::clone(core);
        let f: Box<dyn FnOnce()> = Box::new(move || f(&dead));
        match crate::greenlet::try_start_link(f, Location::caller(), queued) {
            Ok(started) => started,
            Err((e, f)) => {
                report_failure(
                    &format!(
                        "a link of greenlet '{}'",
                        crate::greenlet::display_name(core.core())
                    ),
                    Some(core.core().spawn_site),
                    &format!("its greenlet could not be started: {e}"),
                );
                let passed =
                    self.drop_guarded(f, core.core(), "dropping a link that could not start");
                self.pass_on(passed);
                None
            }
        }
    }

    /// Queues a dead greenlet's links entry at the back of the callback
    /// queue, unless one is queued or firing already (it picks up links
    /// added meanwhile).
    pub(crate) fn queue_links(&self, core: &CoreRef) {
        if !core.core().links_queued.replace(true) {
            self.ready
                .borrow_mut()
                .push_back(Entry::Links(Rc::clone(core)));
        }
    }

    /// Records a greenlet's death: ident released, links queued. (Its stack is
    /// reaped once nothing runs on it: see [`Hub::leave_finished`].)
    pub(crate) fn on_death(&self, core: &CoreRef) {
        let c = core.core();
        c.state.set(State::Dead);
        self.release_ident(c);
        self.unregister_live(c);
        if let Some(start) = c.take_start_timer() {
            self.cancel_start(start);
        }
        if !c.links.borrow().is_empty() {
            self.queue_links(core);
        }
        if c.has_kill_waiters.get() {
            self.wake_kill_waiters(c);
        }
    }

    /// A finished greenlet's last act: pick where its fiber's final switch
    /// goes. Straight to the greenlet the callback queue gives next; to the
    /// hub fiber when the queue is empty or its front needs the hub.
    pub(crate) fn leave_finished(&self, core: &Core) {
        // A greenlet blocked in `kill()` on this one runs next (Q5).
        let fair = !self.urgent.replace(false);
        let next = match self.pop_next(false, fair) {
            Next::Run(next) => Some(next),
            Next::Hub | Next::Empty => None,
        };
        match next {
            Some(next)
                if core
                    .with_fiber(|f| f.set_parent(&next.core().fref))
                    .is_some() =>
            {
                let c = next.core();
                if c.state.get() == State::Scheduled {
                    c.state.set(State::Running);
                }
                *self.current.borrow_mut() = Some(next);
            }
            next => {
                if let Some(next) = next {
                    // No fiber to redirect (teardown took it to unwind it by
                    // force, and its parent is teardown's): let the hub run it.
                    next.core().in_ready.set(true);
                    self.ready.borrow_mut().push_front(Entry::Resume(next));
                }
                let hub_fiber = self.hub_ref();
                core.with_fiber(|f| f.set_parent(&hub_fiber));
                *self.current.borrow_mut() = None;
            }
        }
        // Its stack goes back to the pool once the final switch is done:
        // whoever runs next reaps it.
        if let Some(fiber) = core.take_fiber() {
            self.dead.borrow_mut().push(fiber);
        }
    }

    // ===== timers =====

    /// Arms a timer that schedules `core` at `deadline`. The timer carries
    /// the greenlet's key in the registry of live greenlets, so arming one
    /// allocates nothing; the waiter learns that it fired from
    /// [`TimerWake::fired`].
    pub(crate) fn wake_at(&self, core: &CoreRef, deadline: Instant, referenced: bool) -> TimerWake {
        let key = self.register_live(core);
        let lp = self.lp();
        let timer = lp.add_timer(deadline, wake_timer_waiter, u64::from(key));
        if !referenced {
            lp.set_timer_ref(timer, false);
        }
        TimerWake { timer }
    }

    /// Starts `core` at `deadline` (`start_later`). The hub holds it
    /// strongly until then, so a greenlet whose handles were all dropped
    /// (gevent's fire-and-forget `spawn_later`) still runs.
    pub(crate) fn start_at(&self, core: CoreRef, deadline: Instant) -> DelayedStart {
        let key = self.delayed.borrow_mut().insert(core);
        let timer = self.with_loop(|lp| lp.add_timer(deadline, start_delayed, key as u64));
        DelayedStart { timer, key }
    }

    /// Withdraws a delayed start that has not happened (a kill before start).
    pub(crate) fn cancel_start(&self, start: DelayedStart) {
        let cancelled = self
            .lp
            .borrow()
            .as_ref()
            .is_some_and(|lp| lp.cancel_timer(start.timer));
        if cancelled {
            self.delayed.borrow_mut().remove(start.key);
        }
    }

    /// Disarms a timer from [`Hub::wake_at`] that may or may not have fired.
    pub(crate) fn cancel_wake(&self, wake: &TimerWake) {
        let lp = self.lp.borrow().clone();
        if let Some(lp) = lp {
            lp.cancel_timer(wake.timer);
        }
    }

    // ===== teardown =====

    /// The live greenlets other than the main one.
    fn live_greenlets(&self) -> Vec<CoreRef> {
        self.live
            .borrow()
            .iter()
            .filter_map(|(_, w)| w.upgrade())
            .filter(|c| !c.core().is_main && !c.core().is_dead())
            .collect()
    }

    /// Unwinds every live greenlet with `GreenletExit`, then releases the
    /// loop, the stacks and the hub fiber. Runs on the thread's own stack.
    pub(crate) fn teardown(&self) {
        if !self.initialised.get() || self.tearing_down.get() {
            return;
        }
        if !FiberRef::current().is_root() {
            panic!("green-core: the hub can only be torn down from the main greenlet");
        }
        self.tearing_down.set(true);
        self.teardown_deadline
            .set(Some(Instant::now() + TEARDOWN_GRACE));
        self.teardown_timer_armed.set(false);
        // Kill in rounds: a greenlet's destructors may spawn or wake others.
        // The main greenlet waits for them uninterruptibly (S2): a kill or a
        // `Timeout` of its own firing meanwhile must not unwind out of the
        // middle of the teardown; it stays pending instead.
        self.uninterruptible(|| {
            for _round in 0..8 {
                let live = self.live_greenlets();
                if live.is_empty() {
                    break;
                }
                for core in &live {
                    crate::greenlet::kill_core(core, Box::new(crate::GreenletExit), false);
                }
                for core in &live {
                    if !crate::greenlet::join_core(core, None) {
                        break; // nothing can make progress any more
                    }
                }
            }
        });
        self.reap_dead();
        self.fire_links_in_teardown();
        self.reap_dead();
        // The point of no return: a greenlet started from here on (by a
        // destructor that finishing off a straggler or the last drops run)
        // dies before it runs, so that nothing of this hub reaches the next
        // one.
        self.closing.set(true);
        // Greenlets that refused to die are finished off one by one (U4).
        for core in self.live_greenlets() {
            self.finish_off(core);
        }
        *self.current.borrow_mut() = Some(self.main_core());
        self.fire_links_in_teardown();
        self.reap_dead();
        // Take each collection out before dropping it: what it holds may run
        // destructors that come back to the hub.
        let ready = std::mem::take(&mut *self.ready.borrow_mut());
        let idle = std::mem::take(&mut *self.idle_waiters.borrow_mut());
        let records = std::mem::take(&mut *self.dead_records.borrow_mut());
        let delayed = std::mem::replace(&mut *self.delayed.borrow_mut(), Slab::new());
        let ready = ready.into_iter().map(|entry| match entry {
            Entry::Resume(core) | Entry::Links(core) => core,
        });
        for core in ready.chain(idle).chain(records) {
            self.drop_record(core);
        }
        for core in delayed.into_values() {
            self.drop_record(core);
        }
        let dead = std::mem::take(&mut *self.dead.borrow_mut());
        let live = std::mem::replace(&mut *self.live.borrow_mut(), Slab::new());
        let timeouts = std::mem::replace(&mut *self.timeouts.borrow_mut(), Slab::new());
        self.unarmed_timeouts.borrow_mut().clear();
        drop((dead, live, timeouts));
        self.reap_dead();
        *self.current.borrow_mut() = None;
        let hub_fiber = self.fiber.borrow_mut().take();
        drop(hub_fiber);
        *self.hub_ref.borrow_mut() = None;
        *self.main.borrow_mut() = None;
        self.stacks.borrow_mut().close();
        let lp = self.lp.borrow_mut().take();
        // From here the hub is gone for everyone: what the loop's drop runs
        // (closures it held) finds no hub rather than a half-torn-down one.
        self.initialised.set(false);
        drop(lp);
        crate::timeout::unregister_hub(self.epoch.get());
        *self.foreign_cancels.borrow_mut() = None;
        // A destructor run by the drops above may have started a timeout in
        // the fresh collections: nothing of it may reach the next hub.
        *self.timeouts.borrow_mut() = Slab::new();
        self.unarmed_timeouts.borrow_mut().clear();
        *self.free_idents.borrow_mut() = BinaryHeap::new();
        self.next_ident.set(1);
        self.pass_count.set(0);
        self.cut_due.set(false);
        self.teardown_deadline.set(None);
        self.parked_mid_unwind.set(0);
        self.closing.set(false);
        self.initialised.set(false);
        self.tearing_down.set(false);
    }

    /// Teardown's last resort for a greenlet still alive after the kill
    /// rounds. One parked mid-unwind cannot be unwound again (a second panic
    /// during an unwind aborts), so it is resumed once with its blocking call
    /// giving up, to let its destructor finish (U4); any other is unwound by
    /// force (green-ctx's `ForcedUnwind`, dropping its fiber), and its first
    /// blocking call gives up likewise. One that blocks again is leaked and
    /// recorded dead.
    fn finish_off(&self, core: CoreRef) {
        let c = core.core();
        let Some(fiber) = c.take_fiber() else {
            return;
        };
        self.forced_unwinding.set(true);
        *self.current.borrow_mut() = Some(Rc::clone(&core));
        // Either way its last switch comes back here, to the teardown.
        fiber.set_parent(&FiberRef::root());
        if c.parked_unwinding.get() {
            self.forced_gave_up.set(true);
            c.loop_exit.set(true);
            fiber.switch(0);
            if fiber.state() == green_ctx::FiberState::Finished {
                drop(fiber);
            } else {
                std::mem::forget(fiber);
            }
        } else {
            self.forced_gave_up.set(false);
            // green-ctx keeps the fiber alive forever if it blocks again.
            drop(fiber);
        }
        self.forced_unwinding.set(false);
        if !c.is_dead() {
            self.record_leaked(&core);
        }
    }

    /// A greenlet teardown had to give up on: its stack stays allocated
    /// forever, and its record says it is dead so that no later hub ever
    /// switches to it (a kill is a no-op, a join returns at once).
    fn record_leaked(&self, core: &CoreRef) {
        let c = core.core();
        let name = crate::greenlet::display_name(c);
        tracing::warn!(greenlet = %name, "leaked at hub teardown: it blocked again while being unwound");
        eprintln!(
            "green-core: greenlet '{name}' blocked again while being unwound at hub teardown; \
             its stack is leaked rather than unwound a second time (which would abort)"
        );
        c.set_outcome(
            true,
            Some(crate::error::GreenletError::new(
                crate::ErrorKind::Exited,
                "greenlet leaked at hub teardown: it blocked again while being unwound",
            )),
        );
        c.state.set(State::Dead);
        if c.parked_unwinding.replace(false) {
            self.parked_mid_unwind
                .set(self.parked_mid_unwind.get().saturating_sub(1));
        }
        // Suspended for good in the middle of an unwind (its own, or the
        // forced one): the thread stays panicking because of it (U2).
        self.leaked_mid_unwind
            .set(self.leaked_mid_unwind.get().saturating_add(1));
        self.release_ident(c);
        self.unregister_live(c);
        let links = std::mem::take(&mut *c.links.borrow_mut());
        let passed = self.drop_guarded(links, c, "dropping the links");
        self.pass_on(passed);
    }

    /// Past teardown's point of no return (see [`Hub::teardown`]).
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.get()
    }
}

/// The body of the hub fiber.
fn hub_main() -> usize {
    let hub = existing_hub().expect("the hub fiber runs only for an initialised hub");
    // First switch: hand control straight back to the thread's stack.
    *hub.current.borrow_mut() = Some(hub.main_core());
    FiberRef::root().switch(0);
    loop {
        // H1: user code the hub runs is guarded where it runs; this is the
        // last resort that keeps the hub fiber from ever unwinding.
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| hub.run_once())) {
            if payload.is::<green_ctx::ForcedUnwind>() {
                // Teardown drops the hub fiber: let it end.
                panic::resume_unwind(payload);
            }
            let message = payload_message(&*payload);
            tracing::error!("green-core: the hub caught a panic and goes on: {message}");
            eprintln!("green-core: the hub caught a panic and goes on: {message}");
        }
    }
}

/// Loop handler for [`Hub::start_at`] timers: the greenlet's start is due.
fn start_delayed(_lp: &Loop, _timer: TimerId, key: u64) {
    let Some(hub) = existing_hub() else { return };
    let core = hub.delayed.borrow_mut().remove(key as usize);
    if let Some(core) = core {
        core.core().take_start_timer();
        hub.schedule(&core);
    }
}

/// Loop handler for [`Hub::wake_at`] timers. A key whose greenlet died and
/// was replaced can at worst wake the new one early; every wait re-checks
/// its condition (and dying greenlets cancel their timers first).
fn wake_timer_waiter(_lp: &Loop, _timer: TimerId, key: u64) {
    let Some(hub) = existing_hub() else { return };
    let core = hub
        .live
        .borrow()
        .get(key as usize)
        .and_then(|w| w.upgrade());
    if let Some(core) = core {
        hub.schedule(&core);
    }
}

/// Reports a greenlet's failure once, on stderr and as a tracing event, the
/// way gevent prints a traceback and carries on.
pub(crate) fn report_failure(who: &str, site: Option<&Location<'_>>, message: &str) {
    match site {
        Some(site) => {
            tracing::error!(greenlet = who, spawned_at = %site, "greenlet failed: {message}");
            eprintln!("green: {who} (spawned at {site}) failed: {message}");
        }
        None => {
            tracing::error!(greenlet = who, "greenlet failed: {message}");
            eprintln!("green: {who} failed: {message}");
        }
    }
}

/// Deadline `d` from now, saturating far in the future. A zero delay is
/// due at the loop's cached clock (Q6): every zero timer started in one pass
/// fires at the next poll, in the order started, after the pass.
pub(crate) fn deadline_after(d: Duration) -> Instant {
    if d.is_zero() {
        if let Some(hub) = existing_hub() {
            return hub.with_loop(|lp| lp.now());
        }
    }
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30))
}
