//! User code the hub runs, and how its failures are reported.
//!
//! * **H1.** The hub fiber never unwinds: everything it runs that may reach
//!   user code (a rawlink callback, the drop of a dead greenlet's record or
//!   of a link that did not fire) is wrapped in `catch_unwind`, the panic is
//!   reported naming its greenlet, and the hub goes on; `hub_main` catches
//!   anything else as a last resort. A dead greenlet's value is dropped on
//!   its own stack when nothing else can see it, and the hub's list of
//!   finished greenlets holds only their fibers, so reaping a stack runs no
//!   user code in whichever greenlet happens to reap.

use std::panic::{self, AssertUnwindSafe, Location};
use std::rc::Rc;

use super::Hub;
use crate::error::payload_message;
use crate::greenlet::state::{Core, CoreRef};
use crate::report::PanicSite;

/// Reports a failure once, through the failure reporter (`report.rs`), the
/// way gevent prints a traceback and carries on. `panicked` is where the
/// panic happened, when the panic hook saw it ([`Hub::take_panic_site`]).
pub(crate) fn report_failure(
    what: &str,
    site: Option<&'static Location<'static>>,
    panicked: Option<PanicSite>,
    message: &str,
) {
    crate::report::report(&crate::report::Failure::new(
        what.to_string(),
        site,
        panicked,
        message.to_string(),
    ));
}

impl Hub {
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
        let ran_in = self.current().map_or(0, |c| c.core().id);
        let at = self.take_panic_site(ran_in);
        report_failure(&whose(), Some(site), at, &payload_message(&*payload));
        None
    }

    /// Where the last panic in greenlet `id` (0: the hub fiber) happened, as
    /// the panic hook noted it; taken, so it is reported once.
    pub(crate) fn take_panic_site(&self, id: u64) -> Option<PanicSite> {
        let mut last = self.last_panic.try_borrow_mut().ok()?;
        match last.take() {
            Some(site) if site.greenlet == id => Some(site),
            other => {
                *last = other;
                None
            }
        }
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
                crate::greenlet::state::display_name(whose)
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
            crate::greenlet::state::display_name(core.core())
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

    /// Drops the records [`Hub::pop_next`] set aside (H1).
    pub(super) fn drop_dead_records(&self) {
        loop {
            let Some(core) = self.dead_records.borrow_mut().pop() else {
                return;
            };
            self.drop_record(core);
        }
    }
}
