//! A finished greenlet's links entry (Q2, Q3; see the module docs of
//! `hub`): its links fired in registration order, the waiters among them
//! switched to at their place; deaths, and greenlets blocked in `kill()`.

use std::panic::Location;
use std::rc::Rc;

use green_ctx::Payload;

use super::queue::{mark_ready, DeferredThrow, Entry, Next};
use super::{report_failure, Hub};
use crate::greenlet::state::{
    Catcher, Core, CoreRef, KillWait, KillWaitState, Link, LinkAction, LinkFilter, State,
};

/// Whether `waiter` is queued to resume only to have a kill or timeout
/// raised (Q3).
#[inline(always)]
pub(super) fn throw_queued(waiter: &Core) -> bool {
    waiter.in_ready.get()
        && waiter.state.get() == State::Parked
        && !waiter.is_dead()
        && !waiter.throw_is_empty()
}

/// Whether a links entry may switch straight to `waiter` to fire its link
/// (Q2): it is suspended and nothing else is about to run it. One already
/// queued to resume runs at that place instead.
#[inline(always)]
pub(super) fn can_switch_to(waiter: &Core) -> bool {
    waiter.state.get() == State::Parked && !waiter.in_ready.get() && !waiter.is_dead()
}

impl Hub {
    /// Wakes a greenlet waiting on something a rawlink reports ready (`wait`,
    /// `iwait`, later the sync primitives). Called by a rawlink the hub is
    /// firing, the waiter runs right after it, before the later links (Q2,
    /// gevent's `waiter.switch` inside a link); called from anywhere else, it
    /// is queued like any wake-up.
    pub(crate) fn wake_waiter(&self, waiter: &CoreRef) {
        if throw_queued(waiter.core()) {
            // The kill queued for it came first: it keeps its place (Q3).
            self.defer_throw_behind_wake(waiter);
        }
        if self.firing_rawlink.get() {
            let mut woken = self.woken_by_rawlink.borrow_mut();
            if woken.is_none() && can_switch_to(waiter.core()) {
                *woken = Some(Rc::clone(waiter));
                return;
            }
        }
        self.schedule(waiter);
    }

    /// [`Hub::park_as`] of a greenlet whose blocking killers' kills are
    /// being raised: it blocked again, so their kills have been raised;
    /// they run next.
    #[cold]
    #[inline(never)]
    pub(super) fn parked_after_kill(&self, core: &Core) {
        self.wake_kill_waiters(core);
    }

    /// Puts the greenlets blocked in `kill()` whose kills `core` has been
    /// raising at the front of the ready queue, in the order their kills
    /// came up: they run next (Q5, see `urgent`).
    pub(crate) fn wake_kill_waiters(&self, core: &Core) {
        let waiters = core.take_kill_waiters();
        for waiter in waiters.iter().rev() {
            self.kill_wait_done(waiter);
        }
    }

    /// A blocking killer's kill has been raised (or its target was dead when
    /// its entry came up): the killer runs next, as gevent's `_kill` switches
    /// to the killer's waiter right after its throw (Q5).
    fn kill_wait_done(&self, wait: &KillWait) {
        if wait.state.get() == KillWaitState::Cancelled {
            return;
        }
        wait.state.set(KillWaitState::Done);
        let killer = &wait.killer;
        if mark_ready(killer.core()) {
            self.ready
                .borrow_mut()
                .push_front(Entry::Resume(Rc::clone(killer)));
            self.urgent.set(true);
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
    #[inline]
    pub(super) fn fire_links(&self, dead: CoreRef, in_hub: bool) -> Option<Next> {
        // The common case first: a join's lone link, fired by switching to
        // its waiter (what the general loop below does for it, without the
        // loop).
        let c = dead.core();
        if let Some(waiter) = take_lone_joiner(c) {
            c.links_queued.set(false);
            self.open_links_window(c, waiter.core());
            if Rc::strong_count(&dead) == 1 {
                self.release_record(dead, in_hub);
            }
            return Some(Next::Run(waiter));
        }
        self.fire_links_slow(dead, in_hub)
    }

    #[inline(never)]
    fn fire_links_slow(&self, dead: CoreRef, in_hub: bool) -> Option<Next> {
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
                    // The last one (most often the only one: a join's) is
                    // popped without shifting the rest.
                    Some(_) if links.len() == 1 => links.pop(),
                    Some(_) => Some(links.remove(0)),
                }
            };
            let Some(link) = link else {
                c.links_queued.set(false);
                if self.links_in_progress.get() == c.id {
                    self.links_in_progress.set(0);
                }
                self.release_record(dead, in_hub);
                return None;
            };
            // Outside the hub only waiters' links get here: an unfired one
            // holds nothing of the user's to drop.
            let Some(action) = self.action_if_fires(c, link) else {
                continue;
            };
            match action {
                LinkAction::Wake(waiter) => {
                    let w = waiter.core();
                    if throw_queued(w) {
                        self.defer_throw_behind_wake(&waiter);
                    }
                    if can_switch_to(w) {
                        self.pause_firing(dead, w, in_hub);
                        return Some(Next::Run(waiter));
                    }
                }
                LinkAction::Raw(f) => {
                    let name =
                        || format!("a rawlink of {}", crate::greenlet::state::display_name(c));
                    self.firing_rawlink.set(true);
                    let passed = self.guard_user_code(name, c.spawn_site, || f(&dead));
                    self.firing_rawlink.set(false);
                    self.pass_on(passed);
                    let woken = self.woken_by_rawlink.borrow_mut().take();
                    if let Some(waiter) = woken.filter(|w| can_switch_to(w.core())) {
                        self.pause_firing(dead, waiter.core(), in_hub);
                        return Some(Next::Run(waiter));
                    }
                }
                LinkAction::Green(f, site) => {
                    if let Some(started) = self.start_link_greenlet(&dead, f, site, false) {
                        // It runs now, in the entry's place; when it blocks
                        // or ends, the later links fire.
                        self.pause_firing(dead, started.core(), in_hub);
                        return Some(Next::Run(started));
                    }
                }
            }
        }
    }

    /// A link taken off a dead greenlet: its action if its filter lets it
    /// fire for how `c` ended, else `None`, the link dropped guarded (H1).
    fn action_if_fires(&self, c: &Core, link: Link) -> Option<LinkAction> {
        let fires = match link.filter() {
            LinkFilter::Always => true,
            LinkFilter::OnSuccess => c.successful(),
            LinkFilter::OnFailure => !c.successful(),
        };
        if fires {
            return Some(link.action);
        }
        let passed = self.drop_guarded(link, c, "dropping a link that did not fire");
        self.pass_on(passed);
        None
    }

    /// Q3: a waiter woken (its link fires) while a kill (or timeout) is
    /// queued for it: the kill's entry came later, so the waiter first
    /// returns from its wait and runs on; the kill keeps its place in the
    /// queue, as an [`Entry::Throw`], and is raised wherever the waiter is
    /// blocked when that entry comes up (gevent's order; `kill_core`'s
    /// deferral from the other side).
    #[cold]
    #[inline(never)]
    pub(super) fn defer_throw_behind_wake(&self, waiter: &CoreRef) {
        let w = waiter.core();
        let mut ready = self.ready.borrow_mut();
        let at = ready
            .iter()
            .position(|e| matches!(e, Entry::Resume(c) if std::ptr::eq(c.core(), w)));
        let (Some(at), Some(payload)) = (at, w.throw.take()) else {
            return;
        };
        w.in_ready.set(false);
        w.deferred_throws.set(w.deferred_throws.get() + 1);
        ready[at] = Entry::Throw(Box::new(DeferredThrow {
            target: Rc::clone(waiter),
            payload,
            catcher: w.throw_catcher.get(),
            waiter: None,
        }));
    }

    /// Takes back the resume queued for a parked `waiter` (a timer's plain
    /// wake-up), so that it runs here instead: a notifier that completed
    /// its operation (a hand-off) switches to it at its place, as gevent's
    /// does, before anything later can be raised in it (N4).
    pub(super) fn take_back_resume(&self, waiter: &CoreRef) {
        let w = waiter.core();
        let mut ready = self.ready.borrow_mut();
        let at = ready
            .iter()
            .position(|e| matches!(e, Entry::Resume(c) if std::ptr::eq(c.core(), w)));
        if let Some(at) = at {
            ready.remove(at);
            w.in_ready.set(false);
        }
    }

    /// Withdraws from the callback queue a deferred throw into `target`
    /// whose payload `is_it` picks (a `Timeout` cancelled after its raise
    /// was deferred behind a wake-up, Q3): it is never raised outside its
    /// scope.
    pub(crate) fn withdraw_deferred_throw(&self, target: &Core, is_it: impl Fn(&Payload) -> bool) {
        if target.deferred_throws.get() == 0 {
            return;
        }
        let withdrawn = {
            let mut ready = self.ready.borrow_mut();
            let at = ready.iter().position(|e| {
                matches!(e, Entry::Throw(t) if std::ptr::eq(t.target.core(), target) && is_it(&t.payload))
            });
            at.and_then(|at| ready.remove(at))
        };
        let Some(Entry::Throw(throw)) = withdrawn else {
            return;
        };
        target
            .deferred_throws
            .set(target.deferred_throws.get().saturating_sub(1));
        let DeferredThrow {
            target: record,
            payload,
            waiter,
            ..
        } = *throw;
        if let Some(waiter) = &waiter {
            self.kill_wait_done(waiter);
        }
        drop(payload);
        drop(record);
    }

    /// Queues `payload` for `target` at the back of the callback queue
    /// (Q3): raised when that entry comes up, wherever `target` is blocked
    /// then (`kill_nowait` of a greenlet queued to resume, or of oneself).
    pub(crate) fn defer_throw(
        &self,
        target: &CoreRef,
        payload: Payload,
        catcher: Catcher,
        waiter: Option<Rc<KillWait>>,
    ) {
        let c = target.core();
        c.deferred_throws.set(c.deferred_throws.get() + 1);
        self.ready
            .borrow_mut()
            .push_back(Entry::Throw(Box::new(DeferredThrow {
                target: Rc::clone(target),
                payload,
                catcher,
                waiter,
            })));
    }

    /// Queues a `GreenletExit` for each live target at the front of the
    /// callback queue, in list order: thrown into each in turn as soon as
    /// the running greenlet blocks or ends (the rest of a `killall` that
    /// killed its caller, Q3).
    pub(crate) fn defer_throws_to_front(&self, targets: &[CoreRef]) {
        let mut ready = self.ready.borrow_mut();
        for target in targets.iter().rev() {
            let c = target.core();
            if c.is_dead() {
                continue;
            }
            c.deferred_throws.set(c.deferred_throws.get() + 1);
            ready.push_front(Entry::Throw(Box::new(DeferredThrow {
                target: Rc::clone(target),
                payload: Box::new(crate::GreenletExit),
                catcher: Catcher::ROOT,
                waiter: None,
            })));
        }
    }

    /// A deferred kill's entry comes up (Q3): its payload becomes the
    /// target's pending throw, a resume still queued for the target is
    /// dropped (it runs now instead), and the target is returned to be
    /// switched to, to raise it in the blocking call it is in. A dead target
    /// takes the payload with its record (dropped guarded, H1): gevent's
    /// throw into a dead greenlet does nothing.
    pub(super) fn fire_throw(&self, throw: DeferredThrow, in_hub: bool) -> Option<CoreRef> {
        let DeferredThrow {
            target,
            payload,
            catcher,
            waiter,
        } = throw;
        let c = target.core();
        c.deferred_throws
            .set(c.deferred_throws.get().saturating_sub(1));
        if c.is_dead() || c.state.get() != State::Parked {
            // gevent's throw into a dead greenlet does nothing, and its
            // `_kill` then switches to the killer's waiter.
            if let Some(waiter) = &waiter {
                self.kill_wait_done(waiter);
            }
            // Dropped here, guarded (H1): a payload's destructor that panics
            // is reported against the target, never raised in whoever pops.
            let _ = catcher;
            let passed = self.drop_guarded(payload, c, "dropping a kill it never received");
            self.pass_on(passed);
            self.release_record(target, in_hub);
            return None;
        }
        if let Some(waiter) = waiter {
            if waiter.state.get() == KillWaitState::Queued {
                waiter.state.set(KillWaitState::Raising);
                c.add_kill_waiter(waiter);
            }
        }
        if c.throw_is_empty() {
            c.throw.set(Some(payload));
            c.throw_catcher.set(catcher);
        } else {
            c.set_aside(payload, catcher);
        }
        if c.in_ready.replace(false) {
            self.ready
                .borrow_mut()
                .retain(|e| !matches!(e, Entry::Resume(r) if std::ptr::eq(r.core(), c)));
        }
        Some(target)
    }

    /// Fires every links entry left in the queue without the hub fiber, for
    /// teardown: waiters are queued, link greenlets queued to start (and die
    /// unrun once teardown is closing); resumes stay where they are.
    pub(super) fn fire_links_in_teardown(&self) {
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
                let Some(action) = self.action_if_fires(c, link) else {
                    continue;
                };
                match action {
                    LinkAction::Wake(waiter) => self.schedule(&waiter),
                    LinkAction::Raw(f) => {
                        let name =
                            || format!("a rawlink of {}", crate::greenlet::state::display_name(c));
                        let passed = self.guard_user_code(name, c.spawn_site, || f(&dead));
                        self.pass_on(passed);
                    }
                    LinkAction::Green(f, site) => {
                        // Started the usual way (refused once closing).
                        let _ = self.start_link_greenlet(&dead, f, site, true);
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
        site: &'static Location<'static>,
        queued: bool,
    ) -> Option<CoreRef> {
        let dead = LinkedRecord(Some(Rc::clone(core)));
        let f: Box<dyn FnOnce()> = Box::new(move || {
            let dead = dead;
            if let Some(core) = &dead.0 {
                f(core);
            }
        });
        match crate::greenlet::try_start_link(f, site, queued) {
            Ok(started) => started,
            Err((e, f)) => {
                report_failure(
                    &format!(
                        "a link of greenlet '{}'",
                        crate::greenlet::state::display_name(core.core())
                    ),
                    Some(core.core().spawn_site),
                    None,
                    &format!("its greenlet could not be started: {e}"),
                );
                let passed =
                    self.drop_guarded(f, core.core(), "dropping a link that could not start");
                self.pass_on(passed);
                None
            }
        }
    }

    /// Q2: a links entry's firing pauses while `waiter`'s link runs it. With
    /// links left, the entry goes back to the front of the queue, to fire
    /// them as soon as the waiter blocks again. With none left it is done,
    /// unless the waiter adds one before it blocks again: the links window
    /// remembers whose entry it was and for which waiter, and
    /// [`Hub::queue_links`] puts the entry back at the front then. (Not
    /// requeueing an empty entry is what keeps a spawn-and-join cycle at one
    /// queue entry per greenlet.)
    #[inline]
    fn pause_firing(&self, dead: CoreRef, waiter: &Core, in_hub: bool) {
        let c = dead.core();
        if c.links.borrow().is_empty() {
            c.links_queued.set(false);
            self.open_links_window(c, waiter);
            if Rc::strong_count(&dead) == 1 {
                self.release_record(dead, in_hub);
            }
        } else {
            self.links_in_progress.set(c.id);
            self.ready.borrow_mut().push_front(Entry::Links(dead));
        }
    }

    /// Until `waiter` next parks, a link it adds to `dead` fires as part of
    /// the links entry that switched to it (Q2).
    #[inline(always)]
    fn open_links_window(&self, dead: &Core, waiter: &Core) {
        self.links_window.set(super::LinksWindow {
            dead: dead.id,
            waiter: waiter.id,
        });
    }

    /// Queues a dead greenlet's links entry at the back of the callback
    /// queue, unless one is queued or firing already (it picks up links
    /// added meanwhile); at the front if its firing is paused for a waiter
    /// that has not blocked since (Q2, [`Hub::pause_firing`]).
    #[inline]
    pub(crate) fn queue_links(&self, core: &CoreRef) {
        let c = core.core();
        if !c.links_queued.replace(true) {
            let entry = Entry::Links(Rc::clone(core));
            let window = self.links_window.get();
            if window.dead == c.id && self.is_current_id(window.waiter) {
                self.links_in_progress.set(c.id);
                self.ready.borrow_mut().push_front(entry);
            } else {
                self.ready.borrow_mut().push_back(entry);
            }
        }
    }

    /// Records a greenlet's death: ident released, links queued. (Its stack is
    /// reaped once nothing runs on it: see [`Hub::leave_finished`].)
    pub(crate) fn on_death(&self, core: &CoreRef) {
        if let Some(joiner) = self.on_death_handing_off(core) {
            self.queue_resume(joiner);
        }
    }

    /// [`Hub::on_death`] for a greenlet that is finishing on its own fiber:
    /// a lone joiner it may switch straight to (`wake_lone_joiner`) is
    /// returned rather than queued, for [`Hub::leave_finished`].
    #[inline]
    pub(crate) fn on_death_handing_off(&self, core: &CoreRef) -> Option<CoreRef> {
        let c = core.core();
        c.state.set(State::Dead);
        self.release_ident(c);
        self.unregister_live(c);
        if let Some(start) = c.take_start_timer() {
            self.cancel_start(start);
        }
        let mut joiner = None;
        if !c.links.borrow().is_empty() {
            joiner = self.wake_lone_joiner(c);
            if joiner.is_none() {
                self.queue_links(core);
            }
        }
        if c.has_kill_waiters.get() {
            self.wake_kill_waiters(c);
        }
        joiner
    }

    /// Queues a resume for a greenlet known not to be queued (S1).
    fn queue_resume(&self, core: CoreRef) {
        core.core().in_ready.set(true);
        self.ready.borrow_mut().push_back(Entry::Resume(core));
    }

    /// Q2's fast path, for a greenlet whose one link is a joiner that can be
    /// switched to, dying while the callback queue is empty. Its links entry
    /// would be the queue's front, and firing it would switch to the joiner
    /// at once: running the joiner next instead (the one entry the queue
    /// would hold) is the same order, and opens the same window for links
    /// the joiner adds before it blocks. Returns the joiner, to be run next.
    #[inline]
    fn wake_lone_joiner(&self, c: &Core) -> Option<CoreRef> {
        if c.has_kill_waiters.get() || !self.ready.borrow().is_empty() {
            return None;
        }
        let waiter = take_lone_joiner(c)?;
        self.open_links_window(c, waiter.core());
        Some(waiter)
    }

    /// A finished greenlet's last act: pick where its fiber's final switch
    /// goes. Straight to `joiner` (from [`Hub::on_death_handing_off`]) or to
    /// the greenlet the callback queue gives next; to the hub fiber when the
    /// queue is empty, its front needs the hub, or the pass is to be cut.
    pub(crate) fn leave_finished(&self, core: &Core, joiner: Option<CoreRef>) {
        // A greenlet blocked in `kill()` on this one runs next (Q5).
        let fair = !self.urgent.replace(false);
        let next = match joiner {
            // The queue is empty but for the joiner: what popping it would
            // do, fairness count included (Q4).
            Some(joiner) if fair && self.pass_overdue() => {
                self.queue_resume(joiner);
                self.cut_due.set(true);
                None
            }
            Some(joiner) => Some(joiner),
            None => match self.pop_next(false, fair) {
                Next::Run(next) => Some(next),
                Next::Hub | Next::Empty => None,
            },
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
}

/// The dead greenlet's record as a `link` callback's greenlet holds it. Its
/// links entry may be done by the time the callback ends (Q2), so this can
/// be the last reference, let go of on the callback's way out, even while it
/// unwinds from a panic: the record's value is dropped guarded (H1), so a
/// destructor that panics there is reported instead of aborting the process.
struct LinkedRecord(Option<CoreRef>);

impl Drop for LinkedRecord {
    fn drop(&mut self) {
        let Some(core) = self.0.take() else { return };
        if Rc::strong_count(&core) > 1 || !core.drop_runs_user_code() {
            return;
        }
        let Some(hub) = super::existing_hub() else {
            return;
        };
        let c = core.core();
        let name = format!(
            "dropping the value of greenlet '{}'",
            crate::greenlet::state::display_name(c)
        );
        let site = c.spawn_site;
        let passed = hub.guard_user_code(|| name, site, move || drop(core));
        if std::thread::panicking() {
            // Already unwinding: a kill or timeout the destructor raised
            // cannot be raised again here; the greenlet is ending anyway.
            drop(passed);
        } else {
            hub.pass_on(passed);
        }
    }
}

/// The common links entry: one link, a joiner that can be switched to
/// (Q2's fast paths). Takes it off `c` and returns the joiner.
#[inline]
fn take_lone_joiner(c: &Core) -> Option<CoreRef> {
    let mut links = c.links.borrow_mut();
    let [only] = links.as_slice() else {
        return None;
    };
    let joiner = only.filter() == LinkFilter::Always
        && matches!(&only.action, LinkAction::Wake(w) if can_switch_to(w.core()));
    if !joiner {
        return None;
    }
    match links.pop().map(|link| link.action) {
        Some(LinkAction::Wake(waiter)) => Some(waiter),
        _ => None,
    }
}
