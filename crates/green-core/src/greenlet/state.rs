//! The type-erased record every greenlet has, and its states.
//!
//! # States
//!
//! ```text
//!   New ──start()──> Scheduled ──hub switches in──> Running <──> Parked
//!    │                   │                             │   (blocking call /
//!    │   kill before it ever ran                       │    woken by schedule())
//!    └───────────────────┴──────────> Dead <───────────┘
//!                                   (entry returned, panicked, or unwound)
//! ```
//!
//! * **New**: made by `Greenlet::new`, not started. Nothing refers to it but
//!   its handles.
//! * **Scheduled**: `start()` called; it sits in the hub's ready queue (or
//!   behind a timer for `start_later`). Its entry has not run.
//! * **Running**: it is the current greenlet of its thread (exactly one is,
//!   or none while the hub runs).
//! * **Parked**: suspended in a blocking call; something it registered with
//!   (a timer, a link, an I/O op) will `schedule` it. While parked it may also
//!   be *ready*: in the ready queue, about to be switched to.
//! * **Dead**: finished. Its outcome is recorded and never changes.
//!
//! # Rules
//!
//! * **S1.** Only the running greenlet parks itself; only the hub or another
//!   greenlet on the same thread schedules it. `in_ready` makes scheduling
//!   idempotent: a greenlet is in the ready queue at most once.
//! * **S2.** A kill or timeout is delivered by storing a payload in `throw` and
//!   scheduling the target; the target raises it (`resume_unwind`) when its
//!   `park` returns, unless it is inside an uninterruptible wait (a non-zero
//!   `uninterruptible` depth: an I/O op being cancelled) or unwinding deeper
//!   than the payload's catcher (`Catcher`, the hub's rule U3: a kill only
//!   when it is neither unwinding nor in such a wait, a `Timeout` only as
//!   deep as its scope started), in which case the payload waits in `throw`
//!   (or, behind another, among the payloads set aside). A payload is delivered once and
//!   never retried.
//! * **S3.** A greenlet that never ran is never run after a kill: it becomes
//!   Dead at once, without a switch. Its death is recorded before its entry
//!   closure is dropped, so a destructor there that panics or blocks finds it
//!   dead already (and the panic is reported, not passed to the killer).
//! * **S4.** Links fire after death, in registration order, from the hub;
//!   a link added after death fires too.
//! * **S5.** A running greenlet keeps itself alive (its entry closure holds a
//!   strong reference), so dropping every handle never frees a stack in use.

use std::any::Any;
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::panic::Location;
use std::rc::{Rc, Weak};

use green_ctx::{Fiber, FiberRef, Payload};
use smallvec::SmallVec;

use crate::error::GreenletError;

/// `Core::live_key` value for "not registered".
const NO_LIVE_KEY: u32 = u32::MAX;

/// Where a greenlet is in its life; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    New,
    Scheduled,
    Running,
    Parked,
    Dead,
}

/// Identifies a link so it can be removed with `unlink`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinkId(pub(crate) u64);

impl LinkId {
    /// Wraps a number, for [`Waitable`](crate::Waitable) implementations
    /// outside this crate that keep their own link tables.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| ());
    /// let id = g.rawlink(|_| {});
    /// let raw = id.as_raw();
    /// assert!(g.unlink(green_core::LinkId::from_raw(raw)));
    /// ```
    pub fn from_raw(raw: u64) -> LinkId {
        LinkId(raw)
    }

    /// The number inside.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| ());
    /// let id = g.rawlink(|_| {});
    /// let raw = id.as_raw();
    /// assert!(g.unlink(green_core::LinkId::from_raw(raw)));
    /// ```
    pub fn as_raw(self) -> u64 {
        self.0
    }
}

/// Where a payload raised into a greenlet is sure to be caught (U3 in
/// `hub/unwind.rs`): the unwind depth and the uninterruptible depth its catcher
/// started at. A payload may be raised while the greenlet is no deeper in
/// either.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Catcher {
    pub(crate) unwind_depth: u32,
    pub(crate) uninterruptible: u32,
}

impl Catcher {
    /// A kill's: the greenlet's root, outside any unwind or uninterruptible
    /// wait.
    pub(crate) const ROOT: Catcher = Catcher {
        unwind_depth: 0,
        uninterruptible: 0,
    };
}

/// A `start_later` in waiting (the hub's `start_at`): its loop timer and
/// the key of the hub's strong reference to the greenlet.
#[derive(Clone, Copy)]
pub(crate) struct DelayedStart {
    pub(crate) timer: green_loop::TimerId,
    pub(crate) key: usize,
}

/// Which outcomes a link fires for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LinkFilter {
    Always,
    OnSuccess,
    OnFailure,
}

/// A link callback. It is handed the dead greenlet when it fires instead of
/// capturing a handle to it: a handle stored in the greenlet's own link list
/// would be a reference cycle, leaking a greenlet that never runs (S4).
pub(crate) type LinkFn = Box<dyn FnOnce(&CoreRef)>;

/// What a link does when it fires.
pub(crate) enum LinkAction {
    /// Schedule a parked greenlet (join/get/wait): no allocation.
    Wake(CoreRef),
    /// Run in the hub; must not block (`rawlink`).
    Raw(LinkFn),
    /// Run in a fresh greenlet (`link`), whose spawn site is where `link`
    /// was called.
    Green(LinkFn, &'static Location<'static>),
}

/// One link: its id and filter packed in one word (`id << 2 | filter`), so
/// that a greenlet's single inline link slot stays small.
pub(crate) struct Link {
    packed: u64,
    pub(crate) action: LinkAction,
}

impl Link {
    pub(crate) fn new(id: LinkId, filter: LinkFilter, action: LinkAction) -> Link {
        let bits = match filter {
            LinkFilter::Always => 0,
            LinkFilter::OnSuccess => 1,
            LinkFilter::OnFailure => 2,
        };
        Link {
            packed: id.0 << 2 | bits,
            action,
        }
    }

    pub(crate) fn id(&self) -> LinkId {
        LinkId(self.packed >> 2)
    }

    pub(crate) fn filter(&self) -> LinkFilter {
        match self.packed & 3 {
            0 => LinkFilter::Always,
            1 => LinkFilter::OnSuccess,
            _ => LinkFilter::OnFailure,
        }
    }
}

/// Fields most greenlets never use, boxed on first use.
#[derive(Default)]
pub(crate) struct Extra {
    pub(crate) name: Option<Cow<'static, str>>,
    /// `start_later` / `spawn_later`: the timer that will start it.
    pub(crate) start_timer: Option<DelayedStart>,
    /// Payloads set aside, each with where it may be raised, while another
    /// goes first (U3): a `Timeout` that may be raised now (inside a
    /// destructor, during an unwind a kill may not interrupt), or one of
    /// several timeouts due together. The next is pending again once the one
    /// in `throw` is raised or withdrawn.
    pub(crate) set_aside: Vec<(Payload, Catcher)>,
    /// Greenlets blocked in `kill()` on it whose kill's entry has come up
    /// (their kill is being raised): they run as soon as it dies or parks
    /// again, before its links fire (gevent's `_kill` switching back to the
    /// killer's waiter).
    pub(crate) kill_waiters: Vec<Rc<KillWait>>,
    /// Its spawn tree's values, once found (`tree.rs`).
    pub(crate) spawn_tree: Option<SpawnTree>,
    /// Built to start a spawn tree of its own (`Builder::new_spawn_tree`).
    pub(crate) starts_spawn_tree: bool,
    /// Its greenlet-local values (`local.rs`), by the `Local`'s id.
    pub(crate) locals: Vec<(u64, Rc<dyn Any>)>,
}

/// A spawn tree's values, shared by its greenlets' records (`tree.rs`).
pub(crate) type SpawnTree = Rc<RefCell<Vec<(std::any::TypeId, Rc<dyn Any>)>>>;

/// A blocking kill's wait for its own kill (gevent's `Waiter` in `kill`):
/// shared by the killer, the kill's queue entry and, once that entry came
/// up, the target's kill waiters.
pub(crate) struct KillWait {
    pub(crate) killer: CoreRef,
    pub(crate) state: Cell<KillWaitState>,
}

/// Where a blocking kill's wait stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KillWaitState {
    /// Its kill's entry has not come up yet.
    Queued,
    /// The entry came up: the kill is being raised in the target.
    Raising,
    /// The target parked again or died: the killer goes on.
    Done,
    /// The killer stopped waiting (it was killed itself).
    Cancelled,
}

impl KillWait {
    pub(crate) fn new(killer: CoreRef) -> Rc<KillWait> {
        Rc::new(KillWait {
            killer,
            state: Cell::new(KillWaitState::Queued),
        })
    }
}

/// Type-erased access to a greenlet's record.
pub(crate) trait AsCore: Any {
    fn core(&self) -> &Core;

    /// Whether dropping the record could run user code: a value with a
    /// destructor, a payload, a link, or the rarely used extras (checked
    /// conservatively). A record for which this is false may be dropped
    /// anywhere, by whichever greenlet lets go of it last (H1 holds: no
    /// user code runs).
    fn drop_runs_user_code(&self) -> bool {
        self.core().holds_user_data()
    }
}

/// A strong, type-erased reference to a greenlet.
pub(crate) type CoreRef = Rc<dyn AsCore>;
pub(crate) type WeakCore = Weak<dyn AsCore>;

/// Everything about a greenlet that does not depend on its value type.
// `repr(C)` keeps the fields a greenlet's turn touches (a yield, a park, the
// switch into it) together at the front: with ten thousand greenlets taking
// turns, each record is cold when its turn comes. The hot part is 48 bytes,
// so with the reference counts before it the record's hot span is one cache
// line when the allocation starts on a line, two otherwise (the scheduler
// prefetches both, `hub/queue.rs`).
#[repr(C)]
pub(crate) struct Core {
    // ----- hot: read or written on every turn -----
    /// Where to switch to run it.
    pub(crate) fref: FiberRef,
    /// S2: payload to raise at the next blocking point. After death: the
    /// payload it died of, kept once (payloads are not `Clone`).
    pub(crate) throw: Cell<Option<Payload>>,
    /// How many unwinds are in progress on its stack, as far as the hub can
    /// tell (U1): counted up when green-core raises into it or the panic hook
    /// sees it panic, down when `Timeout::run` catches its own timeout, and
    /// corrected whenever `std::thread::panicking()` settles the question.
    pub(crate) unwind_depth: Cell<u32>,
    pub(crate) state: Cell<State>,
    /// S1: in the hub's ready queue.
    pub(crate) in_ready: Cell<bool>,
    /// Main greenlet only: the hub found nothing left that could wake it.
    pub(crate) loop_exit: Cell<bool>,
    /// It parked while unwinding (a destructor blocked): counted in the
    /// hub's `parked_mid_unwind` until it resumes (U2); teardown must not
    /// unwind it again.
    pub(crate) parked_unwinding: Cell<bool>,
    /// S2: a payload was left in `throw` while it ran (it was unwinding too
    /// deep, or inside an uninterruptible wait): its next blocking call
    /// raises it on the way in if it may by then (U3), instead of parking
    /// with it.
    pub(crate) throw_held: Cell<bool>,
    /// `Extra::kill_waiters` is not empty (checked when it parks or dies).
    pub(crate) has_kill_waiters: Cell<bool>,
    /// Its entry began running.
    pub(crate) started: Cell<bool>,
    pub(crate) is_main: bool,
    /// Unique on its thread for the life of the thread.
    pub(crate) id: u64,
    // ----- warm: spawn, death, links, kills, waits -----
    /// S2: nesting depth of uninterruptible waits.
    pub(crate) uninterruptible: Cell<u32>,
    /// Key in the hub's registry of live greenlets (for teardown).
    live_key: Cell<u32>,
    /// Kills waiting in the hub's callback queue for their turn to be raised
    /// (`Entry::Throw`, Q3): queued behind a resume of it, or by itself.
    pub(crate) deferred_throws: Cell<u32>,
    /// Its links entry is queued or firing (Q2 in the hub).
    pub(crate) links_queued: Cell<bool>,
    /// gevent's `successful()`: returned a value or died of `GreenletExit`.
    pub(crate) succeeded: Cell<bool>,
    /// `spawn_after_local`: do not start if the parent died meanwhile.
    pub(crate) needs_live_parent: Cell<bool>,
    /// Where the payload in `throw` is sure to be caught, so where it may be
    /// raised (U3): at the root for a kill, where its scope started for a
    /// `Timeout`.
    pub(crate) throw_catcher: Cell<Catcher>,
    /// Its fiber; `None` for the main greenlet (the thread's own stack) and
    /// once a dead greenlet's stack went back to the pool.
    fiber: Cell<Option<Fiber>>,
    pub(crate) links: RefCell<SmallVec<[Link; 1]>>,
    /// How it failed (or, for `GreenletExit`, was killed); `None` after a
    /// normal return. Meaningful once dead.
    pub(crate) error: RefCell<Option<GreenletError>>,
    pub(crate) parent: Option<WeakCore>,
    pub(crate) spawn_site: &'static Location<'static>,
    /// Rarely used fields (name, start timer), boxed on first use.
    pub(crate) extra: RefCell<Option<Box<Extra>>>,
    /// `minimal_ident`, 0 until asked for.
    ident: Cell<u32>,
}

/// Bytes from the start of a [`Core`] that a greenlet's turn reads or
/// writes: its hot fields, up to and including `id` (the scheduler
/// prefetches them).
pub(crate) const CORE_HOT_BYTES: usize = 48;

const _: () = assert!(std::mem::offset_of!(Core, id) + 8 <= CORE_HOT_BYTES);

impl Core {
    // Inlined so that the record is built in place, not moved.
    #[inline(always)]
    pub(crate) fn new(
        id: u64,
        fiber: Option<Fiber>,
        fref: FiberRef,
        parent: Option<&CoreRef>,
        spawn_site: &'static Location<'static>,
        is_main: bool,
    ) -> Core {
        Core {
            id,
            fiber: Cell::new(fiber),
            fref,
            state: Cell::new(if is_main { State::Running } else { State::New }),
            in_ready: Cell::new(false),
            throw: Cell::new(None),
            uninterruptible: Cell::new(0),
            loop_exit: Cell::new(false),
            extra: RefCell::new(None),
            ident: Cell::new(0),
            links: RefCell::new(SmallVec::new()),
            links_queued: Cell::new(false),
            throw_held: Cell::new(false),
            deferred_throws: Cell::new(0),
            has_kill_waiters: Cell::new(false),
            error: RefCell::new(None),
            succeeded: Cell::new(false),
            parent: parent.map(Rc::downgrade),
            spawn_site,
            needs_live_parent: Cell::new(false),
            live_key: Cell::new(NO_LIVE_KEY),
            started: Cell::new(is_main),
            parked_unwinding: Cell::new(false),
            unwind_depth: Cell::new(0),
            throw_catcher: Cell::new(Catcher::ROOT),
            is_main,
        }
    }

    pub(crate) fn is_dead(&self) -> bool {
        self.state.get() == State::Dead
    }

    /// Started (`start()` called) and not dead (gevent's `bool(greenlet)`).
    pub(crate) fn is_alive(&self) -> bool {
        matches!(
            self.state.get(),
            State::Scheduled | State::Running | State::Parked
        )
    }

    /// Whether its entry began running (the main greenlet always has).
    pub(crate) fn has_started(&self) -> bool {
        self.started.get()
    }

    /// Calls `f` with its fiber, if it still has one. `f` must not reach the
    /// fiber through this core again (it is out of the cell meanwhile).
    pub(crate) fn with_fiber<R>(&self, f: impl FnOnce(&Fiber) -> R) -> Option<R> {
        let fiber = self.fiber.take()?;
        let result = f(&fiber);
        self.fiber.set(Some(fiber));
        Some(result)
    }

    /// Takes its fiber out (a dead or never-started greenlet's, to reclaim
    /// the stack).
    pub(crate) fn take_fiber(&self) -> Option<Fiber> {
        self.fiber.take()
    }

    /// Its key in the hub's registry of live greenlets, if registered.
    pub(crate) fn live_key(&self) -> Option<u32> {
        (self.live_key.get() != NO_LIVE_KEY).then(|| self.live_key.get())
    }

    pub(crate) fn set_live_key(&self, key: Option<u32>) {
        self.live_key.set(key.unwrap_or(NO_LIVE_KEY));
    }

    /// Its `minimal_ident`, if one was given.
    pub(crate) fn ident(&self) -> Option<usize> {
        (self.ident.get() != 0).then(|| self.ident.get() as usize)
    }

    pub(crate) fn set_ident(&self, ident: usize) {
        self.ident
            .set(u32::try_from(ident).expect("fewer than 2^32 greenlet idents"));
    }

    /// The name given, if any.
    pub(crate) fn name(&self) -> Option<Cow<'static, str>> {
        self.extra.borrow().as_ref().and_then(|e| e.name.clone())
    }

    pub(crate) fn set_name(&self, name: Cow<'static, str>) {
        self.extra
            .borrow_mut()
            .get_or_insert_with(Box::default)
            .name = Some(name);
    }

    /// Its spawn tree, if found already.
    pub(crate) fn spawn_tree(&self) -> Option<SpawnTree> {
        self.extra
            .borrow()
            .as_ref()
            .and_then(|e| e.spawn_tree.clone())
    }

    pub(crate) fn set_spawn_tree(&self, tree: SpawnTree) {
        self.extra
            .borrow_mut()
            .get_or_insert_with(Box::default)
            .spawn_tree = Some(tree);
    }

    /// Its value of the greenlet-local `id`, if it has one.
    pub(crate) fn local(&self, id: u64) -> Option<Rc<dyn Any>> {
        let extra = self.extra.borrow();
        let locals = &extra.as_ref()?.locals;
        locals
            .iter()
            .find(|(key, _)| *key == id)
            .map(|(_, value)| Rc::clone(value))
    }

    /// Stores its value of the greenlet-local `id`; returns the old one,
    /// for the caller to drop outside the borrow.
    pub(crate) fn set_local(&self, id: u64, value: Rc<dyn Any>) -> Option<Rc<dyn Any>> {
        let mut extra = self.extra.borrow_mut();
        let locals = &mut extra.get_or_insert_with(Box::default).locals;
        match locals.iter_mut().find(|(key, _)| *key == id) {
            Some((_, slot)) => Some(std::mem::replace(slot, value)),
            None => {
                locals.push((id, value));
                None
            }
        }
    }

    /// Takes its value of the greenlet-local `id`.
    pub(crate) fn take_local(&self, id: u64) -> Option<Rc<dyn Any>> {
        let mut extra = self.extra.borrow_mut();
        let locals = &mut extra.as_mut()?.locals;
        let at = locals.iter().position(|(key, _)| *key == id)?;
        Some(locals.swap_remove(at).1)
    }

    /// Takes its most recently made greenlet-local value (it is finishing:
    /// they are dropped one at a time, so that a destructor still sees the
    /// values not dropped yet).
    pub(crate) fn take_last_local(&self) -> Option<Rc<dyn Any>> {
        let mut extra = self.extra.borrow_mut();
        extra.as_mut()?.locals.pop().map(|(_, value)| value)
    }

    /// How many greenlet-local values it holds.
    pub(crate) fn local_count(&self) -> usize {
        self.extra.borrow().as_ref().map_or(0, |e| e.locals.len())
    }

    /// Whether it starts a spawn tree of its own.
    pub(crate) fn starts_spawn_tree(&self) -> bool {
        self.extra
            .borrow()
            .as_ref()
            .is_some_and(|e| e.starts_spawn_tree)
    }

    pub(crate) fn set_starts_spawn_tree(&self) {
        self.extra
            .borrow_mut()
            .get_or_insert_with(Box::default)
            .starts_spawn_tree = true;
    }

    pub(crate) fn set_start_timer(&self, wake: DelayedStart) {
        self.extra
            .borrow_mut()
            .get_or_insert_with(Box::default)
            .start_timer = Some(wake);
    }

    /// Whether a payload caught by `catcher` may be raised in it, judged by
    /// its counts as they stand (a parked greenlet's, set when it parked; the
    /// hub's `may_raise` corrects a running one's first).
    pub(crate) fn catcher_admits(&self, catcher: Catcher) -> bool {
        self.uninterruptible.get() <= catcher.uninterruptible
            && self.unwind_depth.get() <= catcher.unwind_depth
    }

    /// Registers a greenlet blocked in `kill()` on this one.
    pub(crate) fn add_kill_waiter(&self, waiter: Rc<KillWait>) {
        self.extra
            .borrow_mut()
            .get_or_insert_with(Box::default)
            .kill_waiters
            .push(waiter);
        self.has_kill_waiters.set(true);
    }

    /// Removes a kill waiter (its wait ended otherwise); whether it was there.
    pub(crate) fn remove_kill_waiter(&self, waiter: &Core) -> bool {
        let mut extra = self.extra.borrow_mut();
        let Some(extra) = extra.as_mut() else {
            return false;
        };
        let before = extra.kill_waiters.len();
        extra
            .kill_waiters
            .retain(|w| !std::ptr::eq(w.killer.core(), waiter));
        self.has_kill_waiters.set(!extra.kill_waiters.is_empty());
        extra.kill_waiters.len() != before
    }

    /// Takes every kill waiter.
    pub(crate) fn take_kill_waiters(&self) -> Vec<Rc<KillWait>> {
        self.has_kill_waiters.set(false);
        self.extra
            .borrow_mut()
            .as_mut()
            .map(|e| std::mem::take(&mut e.kill_waiters))
            .unwrap_or_default()
    }

    /// See [`AsCore::drop_runs_user_code`]: anything of the user's the
    /// record still holds besides its value.
    pub(crate) fn holds_user_data(&self) -> bool {
        !self.throw_is_empty()
            || self.error.borrow().is_some()
            || !self.links.borrow().is_empty()
            || self.extra.borrow().is_some()
    }

    /// Whether no payload is pending in `throw`.
    pub(crate) fn throw_is_empty(&self) -> bool {
        let pending = self.throw.take();
        let empty = pending.is_none();
        self.throw.set(pending);
        empty
    }

    /// Sets a payload aside while another goes first (see
    /// `Extra::set_aside`).
    pub(crate) fn set_aside(&self, payload: Payload, catcher: Catcher) {
        self.extra
            .borrow_mut()
            .get_or_insert_with(Box::default)
            .set_aside
            .push((payload, catcher));
    }

    /// Drops the payloads set aside that `is_it` picks (a `Timeout`
    /// withdrawing its raise).
    pub(crate) fn withdraw_set_aside(&self, mut is_it: impl FnMut(&Payload) -> bool) {
        // Dropped once the borrow is released.
        let _withdrawn: Vec<(Payload, Catcher)> = {
            let mut extra = self.extra.borrow_mut();
            match extra.as_mut() {
                Some(extra) => {
                    let (out, keep) = std::mem::take(&mut extra.set_aside)
                        .into_iter()
                        .partition(|(p, _)| is_it(p));
                    extra.set_aside = keep;
                    out
                }
                None => Vec::new(),
            }
        };
    }

    /// Makes the next payload set aside pending again, unless one is: a
    /// kill before timeouts (a kill wins), else the first set aside.
    pub(crate) fn restore_set_aside(&self) {
        let pending = self.throw.take();
        if pending.is_some() {
            self.throw.set(pending);
            return;
        }
        let next = {
            let mut extra = self.extra.borrow_mut();
            let Some(extra) = extra.as_mut() else { return };
            let at = extra
                .set_aside
                .iter()
                .position(|(p, _)| !p.is::<crate::Timeout>())
                .or((!extra.set_aside.is_empty()).then_some(0));
            at.map(|at| extra.set_aside.remove(at))
        };
        let Some((payload, catcher)) = next else {
            return;
        };
        self.throw.set(Some(payload));
        self.throw_catcher.set(catcher);
        self.throw_held.set(true);
    }

    pub(crate) fn take_start_timer(&self) -> Option<DelayedStart> {
        self.extra
            .borrow_mut()
            .as_mut()
            .and_then(|e| e.start_timer.take())
    }

    /// Records how it ended.
    pub(crate) fn set_outcome(&self, successful: bool, error: Option<GreenletError>) {
        self.succeeded.set(successful);
        *self.error.borrow_mut() = error;
    }

    pub(crate) fn successful(&self) -> bool {
        self.is_dead() && self.succeeded.get()
    }

    pub(crate) fn error(&self) -> Option<GreenletError> {
        self.error.borrow().clone()
    }
}

/// The main greenlet's record (it has no value).
pub(crate) struct MainGreenlet {
    core: Core,
}

impl MainGreenlet {
    pub(crate) fn new(core: Core) -> MainGreenlet {
        MainGreenlet { core }
    }
}

impl AsCore for MainGreenlet {
    fn core(&self) -> &Core {
        &self.core
    }
}

/// The name reports and `Debug` show: the greenlet's own name, `main`, or
/// `Greenlet-<ident>` with its minimal ident (given on first use).
pub(crate) fn display_name(core: &Core) -> String {
    match core.name() {
        Some(name) => return name.to_string(),
        None if core.is_main => return "main".to_string(),
        None => {}
    }
    format!("Greenlet-{}", minimal_ident(core))
}

pub(crate) fn minimal_ident(core: &Core) -> usize {
    if let Some(ident) = core.ident() {
        return ident;
    }
    let hub = crate::hub::hub();
    let ident = hub.allocate_ident();
    core.set_ident(ident);
    if core.is_dead() {
        // Asked for after death: it is free for the next greenlet at once.
        hub.release_ident(core);
    }
    ident
}
