//! The per-thread Hub: it owns the event loop, the callback queue and the
//! stack pools, and it decides which greenlet runs next.
//!
//! The hub is split by concern, each file an `impl Hub` block with its own
//! invariants:
//!
//! * `queue.rs`: the callback queue and switching (Q1, Q4-Q5): `schedule`,
//!   `park`, `yield_now`, the hub fiber's `run_once`.
//! * `links.rs`: a finished greenlet's links entry and the waiters it
//!   switches to (Q2-Q3), deaths and kill waiters.
//! * `notify.rs`: the generic notifier entry the synchronisation
//!   primitives queue to wake their waiters (N1-N5).
//! * `timers.rs`: timers that wake or start greenlets; zero delays (Q6).
//! * `unwind.rs`: kills and timeouts raised per greenlet (U1-U4).
//! * `guard.rs`: user code the hub runs, always guarded (H1), and failure
//!   reports.
//! * `teardown.rs`: unwinding what is left when the hub goes away.
//! * `fork.rs`: a fresh hub in the child of a fork, the parent's left
//!   unrun (K1-K2).
//!
//! # The callback queue
//!
//! The hub follows gevent's scheduler, whose one FIFO callback queue orders
//! everything that "happens soon"; gevent programs depend on that order.
//!
//! * **Q1.** One FIFO queue (`Hub::ready`) holds every entry, in the order it
//!   was caused: a greenlet's start, its resume after `sleep(0)` or a
//!   wake-up, the throw of a kill ([`queue::Entry::Resume`], at most one per
//!   greenlet, S1), and the firing of a finished greenlet's links
//!   ([`queue::Entry::Links`], one per finished greenlet with links, queued
//!   when it dies or when a link is added to it afterwards), and the
//!   notifier of a synchronisation primitive ([`queue::Entry::Notify`],
//!   `notify.rs`).
//! * **Q2.** A links entry fires the links in registration order, including
//!   links added while it fires. A greenlet waiting on the dead one (join,
//!   `wait`, `iwait`, a blocking kill) is itself a link: it is switched to at
//!   its link's place, with the entry put back at the front of the queue, so
//!   the later links fire as soon as it blocks again. A rawlink that wakes a
//!   waiter (`iwait`'s) does the same through `wake_waiter`.
//! * **Q3.** A kill of a started greenlet (parked, or the running greenlet
//!   itself) waits for its own turn: it is queued as an
//!   [`queue::Entry::Throw`] holding the payload, and when that entry comes
//!   up the payload is raised wherever the greenlet is blocked then. So a
//!   resume, an earlier kill or a `Timeout` that comes first keeps its place.
//!   A kill already queued for a waiter whose link fires first becomes such
//!   an entry at its place, and the waiter returns from its wait. `killall`
//!   alone throws at once (gevent's `_killall3`), each target in turn.
//! * **Q4.** Fairness: every `CALLBACK_CHECK_COUNT` entries the hub
//!   looks at the clock, and once a pass has run for
//!   `SWITCH_INTERVAL` it polls timers and I/O before going on
//!   (gevent's `switch_interval`); what the poll wakes runs before the
//!   entries the cut pass left over. A greenlet spinning on `yield_now` thus
//!   never starves a sleeper or a socket.
//! * **Q5.** A greenlet blocked in `kill()` whose kill has been raised runs
//!   next, before any links entry and without a fairness check: a blocking
//!   kill returns before the target's links fire.
//! * **Q6.** A zero delay is due at the loop's cached clock: every zero timer
//!   started in one pass fires at the next poll, after the pass, in the order
//!   started.
//!
//! Direct switching keeps that order. A greenlet that blocks takes the
//! queue's front entry itself: a resume is a switch straight to that
//! greenlet, with no detour through the hub fiber; a links entry whose next
//! link wakes a waiter is fired on the spot by switching to the waiter. Only
//! an entry that runs user code in the hub (a rawlink, a `link` callback's
//! start), an empty queue, or a pass due to be cut short (Q4) goes through
//! the hub fiber. Either way the entries run in queue order.
//!
//! Loop handlers never switch: they only `schedule`. So the loop is never
//! re-entered, and a completion wakes its greenlet with one queue push.
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

mod fork;
mod guard;
mod kill;
mod links;
mod notify;
mod queue;
mod teardown;
mod timers;
mod unwind;

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::panic::{self, AssertUnwindSafe, Location};
use std::rc::Rc;
use std::time::Instant;

use green_ctx::{Fiber, FiberRef, Stack, DEFAULT_STACK_SIZE};
use green_loop::{BackendChoice, BackendKind, Loop};

use crate::error::payload_message;
use crate::greenlet::state::{Core, CoreRef, MainGreenlet, WeakCore};
use crate::slab::Slab;
use crate::stacks::StackPools;

pub(crate) use guard::report_failure;
pub(crate) use kill::{
    add_link, join_core, kill_core, kill_core_timeout, record_death, throw_each, throw_linked,
    unlink,
};
pub(crate) use notify::{Notify, Step};
pub(crate) use teardown::teardown_at_exit;
pub(crate) use timers::{deadline_after, wake_registered, TimeoutEntry, TimerWake};

use queue::Entry;
use unwind::install_panic_hook;

thread_local! {
    static HUB: Cell<Option<&'static Hub>> = const { Cell::new(None) };
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

thread_local! {
    /// The backend the next hub of this thread is built on (`run_with`).
    static REQUESTED_BACKEND: Cell<BackendChoice> = const { Cell::new(BackendChoice::Auto) };
}

/// Chooses the loop backend of this thread's hub, before it exists
/// ([`crate::run_with`]). A hub already running on another backend than the
/// one demanded is an error naming both; `Auto` accepts whatever runs.
pub(crate) fn request_backend(choice: BackendChoice) -> Result<(), String> {
    if let Some(hub) = existing_hub() {
        let running = hub.lp().backend();
        let matches = match choice {
            BackendChoice::Auto => true,
            BackendChoice::IoUring => running == BackendKind::IoUring,
            BackendChoice::Epoll => running == BackendKind::Epoll,
        };
        if !matches {
            return Err(format!(
                "green-core: this thread's hub already runs on {running:?}, so it cannot be \
                 switched to {choice:?}: call `run_with` before anything on this thread uses \
                 green (spawn, sleep, a Timeout), or after `shutdown()`"
            ));
        }
        return Ok(());
    }
    REQUESTED_BACKEND.with(|c| c.set(choice));
    Ok(())
}

/// Logs, once per process, the backend the first hub runs on, and warns when
/// the context switch is the slow stock build (`green_ctx`'s
/// `switch_saves_fp_control`).
fn announce_once(backend: BackendKind) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        tracing::info!(
            ?backend,
            "green-core: the hub's event loop runs on {backend:?}"
        );
        if green_ctx::switch_saves_fp_control() {
            tracing::warn!(
                "green-core: the context switch saves the FP control words on every switch \
                 (the stock `context` build), which costs a few ns per switch; add \
                 `CFLAGS_x86_64_unknown_linux_gnu = \"-DBOOST_USE_TSX\"` under `[env]` in \
                 your .cargo/config.toml for the fast switch"
            );
        }
    });
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

/// Whose links entry a waiter is firing (Q2): ids of the dead greenlet and
/// of the waiter a links entry switched to. A notifier's window (N5) uses
/// the same record, `dead` then being the notifier's tag (top bit set).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct LinksWindow {
    pub(super) dead: u64,
    pub(super) waiter: u64,
}

impl LinksWindow {
    pub(super) const CLOSED: LinksWindow = LinksWindow { dead: 0, waiter: 0 };
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
    /// A links entry, fired empty, paused for a waiter that has not blocked
    /// since: links that waiter adds to the dead greenlet go to the front
    /// (Q2, `pause_firing`). Closed when the waiter parks. Also a
    /// notifier's window (N5).
    links_window: Cell<LinksWindow>,
    /// Id of the dead greenlet whose links entry is back at the queue's
    /// front mid-firing (paused for a waiter): a cut pass keeps it there
    /// (Q4); 0 for none.
    links_in_progress: Cell<u64>,
    /// The notifier at the queue's front is paused for a waiter it woke: a
    /// cut pass keeps it there (N2).
    notify_in_progress: Cell<bool>,
    /// Where the last panic the hook kept quiet happened, and in which
    /// greenlet (its id; 0 for the hub fiber): for the failure report.
    last_panic: RefCell<Option<crate::report::PanicSite>>,
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
    /// The process that built this hub (`fork.rs`): a child of a fork finds
    /// another pid here, and `os::reinit` rebuilds the hub.
    pid: Cell<u32>,
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
            let at = hub.take_panic_site(0);
            let message = payload_message(&*payload);
            report_failure(
                "the hub (it caught a panic and goes on)",
                None,
                at,
                &message,
            );
        }
    }
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
            last_panic: RefCell::new(None),
            links_window: Cell::new(LinksWindow::CLOSED),
            links_in_progress: Cell::new(0),
            notify_in_progress: Cell::new(false),
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
            pid: Cell::new(0),
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
        self.pid.set(std::process::id());
        *self.foreign_cancels.borrow_mut() = Some(crate::timeout::register_hub(self.epoch.get()));
        let choice = REQUESTED_BACKEND.with(|c| c.replace(BackendChoice::Auto));
        let lp = Loop::builder().backend(choice).build().unwrap_or_else(|e| {
            panic!("green-core: cannot create the event loop for this thread's hub: {e}")
        });
        announce_once(lp.backend());
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

    /// The event loop, if the hub still has one (not torn down).
    pub(crate) fn lp_if_alive(&self) -> Option<Rc<Loop>> {
        self.lp.borrow().clone()
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

    /// Whether the running greenlet's id is `id`.
    pub(super) fn is_current_id(&self, id: u64) -> bool {
        self.current
            .borrow()
            .as_ref()
            .is_some_and(|c| c.core().id == id)
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

    /// A stack of at least `size` bytes (default if `None`), guarded or not.
    #[inline]
    pub(crate) fn take_stack(&self, size: Option<usize>, guarded: bool) -> std::io::Result<Stack> {
        self.stacks.borrow_mut().take(size, guarded)
    }

    #[inline]
    pub(crate) fn give_back_stack(&self, stack: Stack) {
        self.stacks.borrow_mut().give_back(stack);
    }

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
}
