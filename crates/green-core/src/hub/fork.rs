//! A fresh hub in the child of a fork ([`crate::os::reinit`]).
//!
//! * **K1.** Nothing of the parent's hub runs in the child: its greenlets
//!   are never resumed, unwound or dropped (their stacks and closures are
//!   leaked, so no destructor of theirs runs twice, once per process, and
//!   none writes to what the two processes share), its loop is never
//!   polled (green-loop's F1 refuses it anyway: the ring is the parent's)
//!   and its queued callbacks, links and timers are dropped unrun (leaked).
//!   Their records say they are dead, so a handle the main greenlet holds
//!   sees a finished greenlet (`join` returns at once, `get` reports the
//!   discard, `kill` does nothing), and a primitive that later wakes one of
//!   them wakes nothing.
//! * **K2.** The main greenlet, which called fork, carries on as it is: its
//!   record (and so its greenlet-local values) stays; only its registration
//!   in the parent's registry of live greenlets is forgotten.

use std::collections::BinaryHeap;
use std::rc::Rc;

use super::Hub;
use crate::greenlet::state::{CoreRef, State};
use crate::slab::Slab;

impl Hub {
    /// Whether this hub was built by another process than this one (the
    /// parent of a fork): [`crate::os::reinit`] then rebuilds it.
    pub(crate) fn built_by_another_process(&self) -> bool {
        self.initialised.get() && self.pid.get() != std::process::id()
    }

    /// K1-K2: discards the parent's hub state and builds a fresh loop, hub
    /// fiber and registry around the running main greenlet. The caller
    /// checked that this runs in the main greenlet, on the thread's stack.
    pub(crate) fn reinit_after_fork(&'static self) {
        if !self.initialised.get() {
            return;
        }
        let main = self.main_core();
        // Every greenlet the hub knows of, whatever collection holds it.
        let mut parents: Vec<CoreRef> = Vec::new();
        let live = std::mem::replace(&mut *self.live.borrow_mut(), Slab::new());
        parents.extend(live.iter().filter_map(|(_, w)| w.upgrade()));
        let ready = std::mem::take(&mut *self.ready.borrow_mut());
        let idle = std::mem::take(&mut *self.idle_waiters.borrow_mut());
        parents.extend(idle.iter().cloned());
        let delayed = std::mem::replace(&mut *self.delayed.borrow_mut(), Slab::new());
        parents.extend(delayed.iter().map(|(_, c)| Rc::clone(c)));
        let records = std::mem::take(&mut *self.dead_records.borrow_mut());
        for core in &parents {
            let c = core.core();
            c.set_live_key(None);
            if c.is_main || c.is_dead() {
                continue;
            }
            // K1: the stack, with all it holds, is leaked unrun.
            std::mem::forget(c.take_fiber());
            std::mem::forget(std::mem::take(&mut *c.links.borrow_mut()));
            if c.parked_unwinding.replace(false) {
                // Suspended for good mid-unwind, as teardown's leaked ones
                // (U2): the thread's unwind count keeps it.
                self.parked_mid_unwind
                    .set(self.parked_mid_unwind.get().saturating_sub(1));
                self.leaked_mid_unwind
                    .set(self.leaked_mid_unwind.get().saturating_add(1));
            }
            c.set_outcome(
                true,
                Some(crate::error::GreenletError::new(
                    crate::ErrorKind::Exited,
                    "greenlet discarded in the child of green_core::os::fork: only the \
                     greenlet that forked runs on in the child",
                )),
            );
            c.state.set(State::Dead);
        }
        main.core().set_live_key(None);
        // K1: queued entries, timers, the hub fiber's suspended frames and the
        // loop with its handlers are leaked, never run.
        std::mem::forget((ready, idle, delayed, records, live, parents));
        std::mem::forget(std::mem::take(&mut *self.dead.borrow_mut()));
        std::mem::forget(std::mem::replace(
            &mut *self.timeouts.borrow_mut(),
            Slab::new(),
        ));
        self.unarmed_timeouts.borrow_mut().clear();
        std::mem::forget(self.fiber.borrow_mut().take());
        *self.hub_ref.borrow_mut() = None;
        std::mem::forget(self.lp.borrow_mut().take());
        std::mem::forget(self.woken_by_rawlink.borrow_mut().take());
        crate::timeout::unregister_hub(self.epoch.get());
        *self.foreign_cancels.borrow_mut() = None;
        // The pooled stacks are free ones: this process's copies, released.
        self.stacks.borrow_mut().close();
        *self.free_idents.borrow_mut() = BinaryHeap::new();
        self.next_ident.set(1);
        self.pass_count.set(0);
        self.cut_due.set(false);
        self.urgent.set(false);
        self.firing_rawlink.set(false);
        self.links_window.set(super::LinksWindow::CLOSED);
        self.links_in_progress.set(0);
        self.notify_in_progress.set(false);
        *self.current.borrow_mut() = None;
        self.initialised.set(false);
        // A fresh loop, hub fiber and registry; then K2: the main greenlet
        // that forked is the main greenlet of the new hub.
        self.initialise();
        *self.main.borrow_mut() = Some(Rc::clone(&main));
        *self.current.borrow_mut() = Some(main);
    }
}
