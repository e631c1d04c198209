//! Kills, joins and links on type-erased greenlet records: what `Greenlet`,
//! `GreenletRef`, `wait.rs` and the hub's teardown share. Living in the hub
//! layer, they keep the hub's dependencies pointing down (the typed
//! `Greenlet<T>` API in `greenlet.rs` sits on top of them).
//!
//! The rules a kill follows (S1-S5) are at the top of `greenlet/state.rs`;
//! where its payload is raised (U1-U4) in `unwind.rs`; its place in the
//! callback queue (Q3, Q5) in this module's parent.

use std::rc::Rc;
use std::time::Duration;

use green_ctx::{ForcedUnwind, Payload};

use super::{deadline_after, hub, report_failure};
use crate::error::GreenletError;
use crate::greenlet::state::{
    display_name, Catcher, Core, CoreRef, KillWait, KillWaitState, Link, LinkAction, LinkFilter,
    LinkId, State,
};
use crate::timeout::Timeout;
use crate::GreenletExit;

pub(crate) fn add_link(core: &CoreRef, filter: LinkFilter, action: LinkAction) -> LinkId {
    let id = LinkId(hub().next_link_id());
    core.core()
        .links
        .borrow_mut()
        .push(Link::new(id, filter, action));
    if core.core().is_dead() {
        hub().queue_links(core);
    }
    id
}

pub(crate) fn unlink(core: &Core, id: LinkId) -> bool {
    let mut links = core.links.borrow_mut();
    match links.iter().position(|l| l.id() == id) {
        Some(i) => {
            links.remove(i);
            true
        }
        None => false,
    }
}

/// Records what a greenlet died of (keeping the payload once, in `throw`),
/// reporting failures once.
pub(crate) fn record_death(core: &Core, payload: Payload) {
    if payload.is::<GreenletExit>() || payload.is::<ForcedUnwind>() {
        core.throw.set(Some(payload));
        core.set_outcome(true, Some(GreenletError::from_payload(&GreenletExit)));
        return;
    }
    let error = GreenletError::from_payload(&*payload);
    report_failure(
        &format!("greenlet '{}'", display_name(core)),
        Some(core.spawn_site),
        hub().take_panic_site(core.id),
        error.message(),
    );
    core.throw.set(Some(payload));
    core.set_outcome(false, Some(error));
}

/// How long a kill waits for its target.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KillBlock {
    /// Not at all (`kill_nowait`).
    No,
    /// Until its kill has been raised, then until the target died.
    UntilDead,
    /// Until its kill has been raised, then at most this long for death.
    For(Duration),
}

/// Delivers `payload` to a greenlet (S2, S3); with `block`, waits until the
/// kill has been raised, then for death.
#[track_caller]
pub(crate) fn kill_core(core: &CoreRef, payload: Payload, block: bool) {
    let block = if block {
        KillBlock::UntilDead
    } else {
        KillBlock::No
    };
    kill_core_at(core, payload, block, false);
}

/// [`kill_core`] waiting at most `timeout` for death once the kill has been
/// raised (gevent's `kill(timeout=)`: its timeout starts after the throw);
/// returns whether the target is dead.
#[track_caller]
pub(crate) fn kill_core_timeout(core: &CoreRef, payload: Payload, timeout: Duration) -> bool {
    kill_core_at(core, payload, KillBlock::For(timeout), false)
}

/// [`kill_core`]; `now` raises it at the target's pending resume instead of
/// behind it (gevent's `throw`, for `killall`). Returns whether the target
/// is dead when it returns.
#[track_caller]
fn kill_core_at(core: &CoreRef, payload: Payload, block: KillBlock, now: bool) -> bool {
    let hub = hub();
    let c = core.core();
    if c.is_main {
        panic!("green-core: the main greenlet cannot be killed");
    }
    match c.state.get() {
        State::Dead => {
            // Never delivered: dropped guarded (H1), so a payload whose
            // destructor panics is reported, not raised in the killer.
            let passed = hub.drop_guarded(payload, c, "dropping a kill it never received");
            hub.pass_on(passed);
            return true;
        }
        State::New | State::Scheduled => {
            // S3: it never runs. Its death is recorded first, then its entry
            // (user data) is dropped, guarded: whatever that runs finds it
            // dead, and a panic there is its own, not the killer's. Its links
            // still fire, later.
            let fiber = c.take_fiber();
            record_death(c, payload);
            hub.on_death(core);
            if let Some(fiber) = fiber {
                // Dropping the entry in place is what `take_stack` does
                // first; the killer's own kill raised meanwhile goes on.
                let name = || format!("dropping the unrun entry of greenlet '{}'", display_name(c));
                let mut stack = None;
                let passed = hub.guard_user_code(name, c.spawn_site, || {
                    stack = fiber.take_stack();
                });
                if let Some(stack) = stack {
                    hub.give_back_stack(stack);
                }
                drop(fiber);
                hub.pass_on(passed);
            }
            return true;
        }
        State::Running => {
            // Killing oneself while unwinding already is a no-op: a second
            // panic would escape a destructor and abort (U3), and the
            // greenlet is on its way out anyway.
            if hub.unwind_depth(c) > 0 {
                return false;
            }
            // gevent queues the throw, even into oneself: the greenlet goes
            // on, and the kill is raised wherever it is blocked when its
            // entry comes up (Q3). A blocking kill blocks until then.
            hub.defer_throw(core, payload, Catcher::ROOT, None);
            if block != KillBlock::No {
                while c.deferred_throws.get() != 0 && hub.park_as(core) {}
            }
            return c.is_dead();
        }
        State::Parked if !now => {
            // gevent queues every kill's throw as a callback of its own
            // (Q3): the payload is placed only when that entry comes up, and
            // raised wherever the greenlet is blocked then. Whatever comes
            // first keeps its place: a resume already queued (the greenlet
            // returns from its blocking call and runs on), an earlier kill
            // (each kill delivers its own exception), a `Timeout` that fires
            // meanwhile (raised at once, as gevent's timer throws). A
            // blocking killer waits for that entry: it runs once its kill
            // has been raised (gevent's `_kill` switches to its waiter).
            let wait = (block != KillBlock::No).then(|| KillWait::new(hub.current_for_blocking()));
            hub.defer_throw(core, payload, Catcher::ROOT, wait.clone());
            if let Some(wait) = wait {
                wait_for_own_kill(hub, &wait, c);
            }
            return finish_kill(core, block);
        }
        State::Parked => {
            let may_raise = |k: Catcher| c.catcher_admits(k);
            match c.throw.take() {
                // Each kill delivers one exception (gevent): a second kill
                // waits behind the first, and is raised at the blocking call
                // after the greenlet caught the first.
                Some(p) if !p.is::<Timeout>() => {
                    c.throw.set(Some(p));
                    c.set_aside(payload, Catcher::ROOT);
                }
                // A timeout that may be raised now, inside an unwind or a
                // wait this kill may not interrupt, goes first; the kill
                // waits behind it (U3).
                Some(t) if !may_raise(Catcher::ROOT) && may_raise(c.throw_catcher.get()) => {
                    c.throw.set(Some(t));
                    c.set_aside(payload, Catcher::ROOT);
                }
                // Else the kill goes first; a timeout pending waits behind
                // it (it is raised if the greenlet survives the kill).
                waiting => {
                    if let Some(t) = waiting {
                        c.set_aside(t, c.throw_catcher.get());
                    }
                    c.throw.set(Some(payload));
                    c.throw_catcher.set(Catcher::ROOT);
                }
            }
            hub.schedule(core);
        }
    }
    if block != KillBlock::No {
        wait_for_kill_raised_now(hub, core);
    }
    finish_kill(core, block)
}

/// A kill's last step: the join its mode asks for; whether the target is
/// dead.
#[track_caller]
fn finish_kill(core: &CoreRef, block: KillBlock) -> bool {
    match block {
        KillBlock::No => core.core().is_dead(),
        KillBlock::UntilDead => join_core(core, None),
        KillBlock::For(timeout) => join_core(core, Some(timeout)),
    }
}

/// Raises a [`LinkedExited`](crate::LinkedExited) in the main greenlet (which
/// `kill` refuses): queued like a kill (Q3), raised at its blocking call.
pub(crate) fn throw_linked(main: &CoreRef, payload: Payload) {
    let hub = hub();
    let c = main.core();
    match c.state.get() {
        State::Parked => hub.defer_throw(main, payload, Catcher::ROOT, None),
        State::Running => hub.throw_into_self(c, payload),
        _ => {
            let passed =
                hub.drop_guarded(payload, c, "dropping a link's payload it never received");
            hub.pass_on(passed);
        }
    }
}

/// gevent's `_killall3`: raises `GreenletExit` in each started greenlet in
/// list order, as gevent's `throw` does: the target runs next and the caller
/// waits until it has been raised (the target died, or blocked again). When
/// the caller itself is among them it is raised in the caller at once, and
/// the later targets are thrown into, in turn, as soon as the caller blocks
/// or ends (gevent's callback goes on throwing once the caller's wait has
/// raised).
#[track_caller]
pub(crate) fn throw_each(targets: &[CoreRef]) {
    let hub = hub();
    for (at, core) in targets.iter().enumerate() {
        let c = core.core();
        if c.is_dead() {
            continue;
        }
        if c.state.get() == State::Running {
            if hub.may_raise_kill_now(c) {
                hub.defer_throws_to_front(&targets[at + 1..]);
            }
            hub.throw_into_self(c, Box::new(GreenletExit));
            continue;
        }
        kill_core_at(core, Box::new(GreenletExit), KillBlock::No, true);
        hub.run_next(core);
        wait_for_kill_raised_now(hub, core);
    }
}

/// A blocking kill's first wait (gevent's `waiter.get()` in `kill`): until
/// its own kill's entry has come up and the kill has been raised (the
/// target died, or parked again). The killer then runs next, before the
/// target's links fire; a target that survived is then joined like any
/// other.
///
/// # Kill safety
/// Interruptible: a kill of the killer unwinds out of it and cancels its
/// wait, so its kill's entry, when it comes up, wakes nobody.
#[track_caller]
fn wait_for_own_kill(hub: &'static super::Hub, wait: &Rc<KillWait>, target: &Core) {
    struct Cancel<'a>(&'a KillWait, &'a Core);
    impl Drop for Cancel<'_> {
        fn drop(&mut self) {
            if self.0.state.get() != KillWaitState::Done {
                self.0.state.set(KillWaitState::Cancelled);
                self.1.remove_kill_waiter(self.0.killer.core());
            }
        }
    }
    let _cancel = Cancel(wait, target);
    while wait.state.get() != KillWaitState::Done && hub.park_as(&wait.killer) {}
}

/// [`wait_for_own_kill`] for a kill raised at once (`killall`'s throws),
/// whose raise is already under way: registered with the target now.
#[track_caller]
fn wait_for_kill_raised_now(hub: &'static super::Hub, core: &CoreRef) {
    let c = core.core();
    if c.is_dead() || c.state.get() != State::Parked {
        return;
    }
    let me = hub.current_for_blocking();
    if std::ptr::eq(me.core(), c) {
        return;
    }
    let wait = KillWait::new(me);
    wait.state.set(KillWaitState::Raising);
    c.add_kill_waiter(Rc::clone(&wait));
    wait_for_own_kill(hub, &wait, c);
}

/// Waits for `core` to die, at most `timeout`; returns whether it is dead.
#[track_caller]
pub(crate) fn join_core(core: &CoreRef, timeout: Option<Duration>) -> bool {
    let c = core.core();
    if c.is_dead() {
        return true;
    }
    let hub = hub();
    let me = hub.current_for_blocking();
    if me.core().id == c.id {
        panic!("green-core: a greenlet cannot join itself");
    }
    let id = add_link(core, LinkFilter::Always, LinkAction::Wake(Rc::clone(&me)));
    let wake = timeout.map(|d| hub.wake_at(&me, deadline_after(d), true));
    struct Cleanup<'a> {
        core: &'a Core,
        id: LinkId,
        wake: Option<super::TimerWake>,
    }
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            unlink(self.core, self.id);
            if let Some(wake) = &self.wake {
                if let Some(hub) = super::existing_hub() {
                    hub.cancel_wake(wake);
                }
            }
        }
    }
    let cleanup = Cleanup { core: c, id, wake };
    loop {
        if !hub.park_as(&me) {
            return c.is_dead();
        }
        if c.is_dead() {
            return true;
        }
        if let Some(wake) = &cleanup.wake {
            if wake.fired(hub) {
                return false;
            }
        }
    }
}
