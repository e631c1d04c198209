//! Teardown: every greenlet left is unwound, then what the hub owns is
//! released (U4 for those parked mid-unwind).

use std::cell::Cell;
use std::collections::BinaryHeap;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use green_ctx::FiberRef;

use super::queue::Entry;
use super::{Hub, HUB};
use crate::greenlet::state::{Core, CoreRef, State};
use crate::slab::Slab;

/// How long teardown lets killed greenlets finish unwinding (their
/// destructors may block briefly) before giving up on them.
const TEARDOWN_GRACE: Duration = Duration::from_secs(1);

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

impl Hub {
    /// [`Hub::park_as`] while teardown finishes off a straggler: something
    /// in it blocks, and nothing will ever wake it. The first such wait gives
    /// up at once (its caller sees `false`), so a destructor that blocks once
    /// can finish and its unwind end (U4); a second one suspends it for good
    /// by switching back to the teardown (which then leaks it) rather than
    /// returning, which a polling destructor would turn into a spin.
    #[cold]
    #[inline(never)]
    pub(super) fn park_forced(&self, core: &Core) -> bool {
        if !self.forced_gave_up.replace(true) {
            return false;
        }
        core.state.set(State::Parked);
        FiberRef::root().switch(0);
        false
    }

    /// Whether teardown's grace period has ended.
    pub(super) fn teardown_grace_over(&self) -> bool {
        self.teardown_deadline
            .get()
            .is_some_and(|at| Instant::now() >= at)
    }

    /// Makes sure a blocking poll during teardown wakes up by the end of the
    /// grace period (one timer, armed once).
    pub(super) fn arm_teardown_deadline(&self) {
        if !self.teardown_timer_armed.replace(true) {
            if let Some(at) = self.teardown_deadline.get() {
                self.with_loop(|lp| lp.add_timer(at, |_, _, _| {}, 0));
            }
        }
    }

    /// Past teardown's grace period: the main greenlet stops waiting.
    pub(super) fn give_up_on_stragglers(&self) {
        let main = self.main_core();
        if main.core().state.get() == State::Parked {
            main.core().loop_exit.set(true);
            self.schedule(&main);
        }
    }

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
                    super::kill_core(core, Box::new(crate::GreenletExit), false);
                }
                for core in &live {
                    if !super::join_core(core, None) {
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
        self.drop_main_locals();
        // Take each collection out before dropping it: what it holds may run
        // destructors that come back to the hub.
        let ready = std::mem::take(&mut *self.ready.borrow_mut());
        let idle = std::mem::take(&mut *self.idle_waiters.borrow_mut());
        let records = std::mem::take(&mut *self.dead_records.borrow_mut());
        let delayed = std::mem::replace(&mut *self.delayed.borrow_mut(), Slab::new());
        let mut notifiers = Vec::new();
        let ready = ready.into_iter().filter_map(|entry| match entry {
            Entry::Resume(core) | Entry::Links(core) => Some(core),
            Entry::Throw(throw) => {
                // Dropped with its target's record, guarded (H1).
                let throw = *throw;
                throw.target.core().set_aside(throw.payload, throw.catcher);
                Some(throw.target)
            }
            Entry::Notify(notifier) => {
                notifiers.push(notifier);
                None
            }
        });
        let ready: Vec<CoreRef> = ready.collect();
        for notifier in notifiers {
            // Possibly the last reference to a primitive holding user items.
            let passed = self.guard_user_code(
                || "dropping a synchronisation primitive".to_string(),
                std::panic::Location::caller(),
                move || drop(notifier),
            );
            drop(passed);
        }
        for core in ready.into_iter().chain(idle).chain(records) {
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
        // Signal watchers go with their loop, restoring the thread's mask.
        crate::signal::hub_gone();
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

    /// The main greenlet's greenlet-local values go with its hub: dropped
    /// one at a time, guarded (H1), while the hub still works (a destructor
    /// may use a local; one that makes values again is bounded).
    fn drop_main_locals(&self) {
        let main = self.main_core();
        let mut budget = 4 * main.core().local_count() + 8;
        while budget > 0 {
            let Some(value) = main.core().take_last_local() else {
                return;
            };
            budget -= 1;
            let passed = self.guard_user_code(
                || "dropping a greenlet-local value of the main greenlet".to_string(),
                main.core().spawn_site,
                move || drop(value),
            );
            drop(passed);
        }
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
        let name = crate::greenlet::state::display_name(c);
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
