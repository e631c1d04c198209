//! The callback queue and switching (Q1, Q4, Q5; see the module docs of
//! `hub`): what runs next, parking, yielding, and the hub fiber's round.

use std::cell::Ref;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use green_ctx::{FiberRef, Payload};

use super::Hub;
use crate::error::LoopExit;
use crate::greenlet::state::{Catcher, Core, CoreRef, KillWait, State, CORE_HOT_BYTES};

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
    /// Raise a kill that waited for its turn (Q3): it came while its target
    /// was queued to resume, or was aimed at the running greenlet itself.
    Throw(Box<DeferredThrow>),
    /// Wake a synchronisation primitive's waiters (N1-N4, `notify.rs`).
    Notify(super::notify::NotifyRef),
}

/// A kill waiting in the callback queue for its turn (Q3).
pub(crate) struct DeferredThrow {
    pub(crate) target: CoreRef,
    pub(crate) payload: Payload,
    /// Where it may be raised (U3).
    pub(crate) catcher: Catcher,
    /// The blocking killer waiting for it, if any: it runs once the kill has
    /// been raised (the target parked again or died).
    pub(crate) waiter: Option<Rc<KillWait>>,
}

impl Entry {
    #[inline(always)]
    fn record(&self) -> Option<&CoreRef> {
        match self {
            Entry::Resume(core) | Entry::Links(core) => Some(core),
            Entry::Throw(throw) => Some(&throw.target),
            Entry::Notify(_) => None,
        }
    }
}

/// What the callback queue gives a greenlet (or the hub) that gives up the
/// CPU.
pub(super) enum Next {
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
pub(super) fn mark_ready(c: &Core) -> bool {
    if c.in_ready.get() || c.is_dead() {
        return false;
    }
    c.in_ready.set(true);
    true
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
    if let Some(record) = ready.get(PREFETCH_RECORD_AHEAD).and_then(Entry::record) {
        // A turn touches the reference counts, just before the record, and
        // the record's hot part (`Inner` and `Core` are `repr(C)`, the hot
        // fields first): 64 bytes, on one or two lines depending on where
        // the allocation starts. Asking for the first and the last byte
        // fetches exactly those.
        let at = Rc::as_ptr(record).cast::<u8>();
        green_ctx::prefetch(at.wrapping_sub(2 * std::mem::size_of::<usize>()));
        green_ctx::prefetch(at.wrapping_add(CORE_HOT_BYTES - 1));
    }
    if let Some(record) = ready.get(PREFETCH_SLOT_AHEAD).and_then(Entry::record) {
        record.core().fref.prefetch_slot();
    }
    if let Some(record) = ready.get(PREFETCH_STACK_AHEAD).and_then(Entry::record) {
        record.core().fref.prefetch_context();
    }
}

impl Hub {
    /// Whether nothing else is queued to run: a blocking call made now would
    /// go straight to the loop, with no other greenlet's work to batch with.
    pub(crate) fn nothing_else_ready(&self) -> bool {
        self.ready.borrow().is_empty()
    }

    /// Queues a greenlet's resume at the back of the callback queue (S1: at
    /// most once).
    #[inline]
    pub(crate) fn schedule(&self, core: &CoreRef) {
        self.schedule_record(core, core.core());
    }

    /// [`Hub::schedule`] for a caller that already holds the record (`c`
    /// is `core`'s): saves looking it up again through the type-erased
    /// handle.
    #[inline(always)]
    fn schedule_record(&self, core: &CoreRef, c: &Core) {
        if mark_ready(c) {
            self.ready
                .borrow_mut()
                .push_back(Entry::Resume(Rc::clone(core)));
        }
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
    pub(super) fn pass_overdue(&self) -> bool {
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
    pub(super) fn pop_next(&self, in_hub: bool, fair: bool) -> Next {
        loop {
            let entry = {
                let mut ready = self.ready.borrow_mut();
                if ready.is_empty() {
                    return Next::Empty;
                }
                if fair && self.pass_overdue() {
                    drop(ready);
                    if in_hub {
                        self.poll_at_cut();
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
                Some(entry) => {
                    if let Some(next) = self.fire_entry(entry, in_hub) {
                        return next;
                    }
                }
                None => return Next::Empty,
            }
        }
    }

    /// [`Hub::pop_next`]'s entries other than a resume, out of line: a
    /// links entry (Q2) or a deferred kill (Q3).
    #[inline(never)]
    fn fire_entry(&self, entry: Entry, in_hub: bool) -> Option<Next> {
        match entry {
            Entry::Resume(next) => Some(Next::Run(next)),
            Entry::Links(dead) => self.fire_links(dead, in_hub),
            Entry::Throw(throw) => self.fire_throw(*throw, in_hub).map(Next::Run),
            Entry::Notify(notifier) => self.fire_notify(notifier, in_hub),
        }
    }

    /// Lets go of a reference to a dead greenlet's record. Its last
    /// reference may hold user data (a value, a kill payload): the hub drops
    /// it, guarded (H1), not whichever greenlet is switching.
    pub(crate) fn release_record(&self, core: CoreRef, in_hub: bool) {
        if Rc::strong_count(&core) > 1 {
            return;
        }
        if in_hub {
            self.drop_record(core);
        } else if !core.drop_runs_user_code() {
            // Nothing of the user's left in it (H1): free it here, so that
            // the next spawn reuses its memory while it is still in cache.
            drop(core);
        } else {
            self.dead_records.borrow_mut().push(core);
        }
    }

    /// Switches from the running context (a greenlet or the hub) to `next`.
    #[inline(always)]
    fn switch_into(&self, next: CoreRef) {
        *self.current.borrow_mut() = Some(next);
        // Through `current`, without cloning the target's `FiberRef`; one
        // look-up of the record through the type-erased handle serves both
        // the state and the switch.
        let target = Ref::map(self.current.borrow(), |cur| match cur {
            Some(next) => {
                let c = next.core();
                if c.state.get() == State::Scheduled {
                    c.state.set(State::Running);
                }
                &c.fref
            }
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
    #[track_caller]
    pub(crate) fn park_as(&self, me: &CoreRef) -> bool {
        self.park_record(me, me.core())
    }

    /// [`Hub::park_as`] for a caller that already holds the record (`core`
    /// is `me`'s).
    #[inline(always)]
    #[track_caller]
    fn park_record(&self, me: &CoreRef, core: &Core) -> bool {
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
        if self.links_window.get().waiter == core.id {
            // A links entry's window for this waiter's links is over (Q2).
            self.links_window.set(super::LinksWindow::CLOSED);
        }
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
    #[track_caller]
    fn park_loop_exit(&self, core: &Core) -> bool {
        core.loop_exit.set(false);
        // Raising while this greenlet unwinds would abort (U3): the wait
        // gives up instead, and the caller sees it unfinished.
        if self.tearing_down.get() || self.unwind_depth(core) > 0 {
            return false;
        }
        // Typed, so it can be caught by type; the panic hook prints its
        // message, at the user's blocking call (`track_caller` up to it).
        std::panic::panic_any(LoopExit);
    }

    /// Yields to every greenlet already ready, then resumes.
    #[inline]
    #[track_caller]
    pub(crate) fn yield_now(&self) {
        let me = self.current_for_blocking();
        let core = me.core();
        self.schedule_record(&me, core);
        self.park_record(&me, core);
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

    /// One round of the hub's work; returns after switching to a greenlet
    /// that later switched back, or after polling the loop.
    pub(super) fn run_once(&self) {
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
            self.poll_at_cut();
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

    /// Q4: a pass cut short polls timers and I/O without blocking, and what
    /// they wake runs before the entries the cut pass left over: under
    /// gevent, libev runs a due timer's or a ready socket's callback (which
    /// switches into its greenlet) during the poll itself, before the next
    /// pass of callbacks.
    /// A links entry back at the front mid-firing stays first: gevent cuts
    /// only between callbacks, and its `_notify_links` is one callback.
    fn poll_at_cut(&self) {
        let leftovers = self.ready.borrow().len();
        self.poll(false);
        let mut ready = self.ready.borrow_mut();
        let woken = ready.len().saturating_sub(leftovers);
        let firing = self.links_in_progress.get();
        let keep_front = woken < ready.len()
            && match ready.front() {
                Some(Entry::Links(dead)) => firing != 0 && dead.core().id == firing,
                // N2: a notifier paused for a waiter.
                Some(Entry::Notify(_)) => self.notify_in_progress.get(),
                _ => false,
            };
        let front = if keep_front { ready.pop_front() } else { None };
        ready.rotate_right(woken);
        if let Some(front) = front {
            ready.push_front(front);
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
}
