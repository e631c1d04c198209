//! Kills and timeouts raised per greenlet.
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

use std::cell::Cell;
use std::panic;

use super::{Hub, HUB};
use crate::greenlet::state::{Catcher, Core};

/// Chains a panic hook, once per process, that counts a panic in the
/// greenlet it happens in (U1): the only way to see a user's `panic!` start
/// in one greenlet while another is parked mid-unwind. It also keeps the
/// standard hook quiet about panics in spawned greenlets and in code the hub
/// runs (noting where they happened): green-core reports each failure once,
/// through the failure reporter (`report.rs`), if it ends its greenlet. And
/// it prints green-core's own typed payloads (`LoopExit`) with their message
/// where the standard hook would print only `Box<dyn Any>`.
pub(super) fn install_panic_hook() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let in_greenlet = note_panic_in_current_greenlet(info);
            let payload = info.payload();
            if let Some(e) = payload.downcast_ref::<crate::LoopExit>() {
                print_like_the_standard_hook(info, &e.to_string());
            } else if let Some(e) = payload.downcast_ref::<crate::LinkedExited>() {
                // Raised into the main greenlet (`Hub::raise`).
                print_like_the_standard_hook(info, &e.to_string());
            } else if !in_greenlet {
                previous(info);
            }
        }));
    });
}

/// The panic hook's part (U1); returns whether the panic is one green-core
/// reports itself: in a spawned greenlet not unwinding already (a panic
/// during an unwind may be about to abort the process: the standard hook
/// prints it), or in code the hub runs. It may run
/// anywhere, even while the hub's cells are borrowed or this thread's
/// locals are being destroyed: it only ever tries.
fn note_panic_in_current_greenlet(info: &panic::PanicHookInfo<'_>) -> bool {
    let Ok(Some(hub)) = HUB.try_with(Cell::get) else {
        return false;
    };
    if !hub.initialised.get() {
        return false;
    }
    let Ok(current) = hub.current.try_borrow() else {
        return false;
    };
    let whose = match current.as_ref() {
        Some(core) => {
            let core = core.core();
            let depth = &core.unwind_depth;
            let unwinding_already = depth.get() > 0;
            depth.set(depth.get() + 1);
            if core.is_main {
                return false;
            }
            if unwinding_already {
                // A panic in a destructor mid-unwind may abort the process
                // before the failure report: the first panic, kept quiet
                // for that report, is printed now, and the standard hook
                // prints this one.
                print_quiet_panic_before_a_second(hub, core.id);
                return false;
            }
            core.id
        }
        // The hub fiber itself: a rawlink or a destructor it runs, guarded.
        None => 0,
    };
    if let (Ok(mut last), Some(at)) = (hub.last_panic.try_borrow_mut(), info.location()) {
        *last = Some(crate::report::PanicSite {
            greenlet: whose,
            at: at.to_string(),
            message: crate::error::payload_message(info.payload()),
            backtrace: captured_backtrace(),
        });
    }
    true
}

/// The backtrace of the panic being hooked, when `RUST_BACKTRACE` asks for
/// one, without the frames of the hook and of std's panic machinery above
/// the code that panicked.
fn captured_backtrace() -> Option<String> {
    let backtrace = std::backtrace::Backtrace::capture();
    (backtrace.status() == std::backtrace::BacktraceStatus::Captured)
        .then(|| from_the_panicking_frame(&backtrace.to_string()))
}

/// Drops the leading frames of a formatted backtrace that belong to the
/// panic machinery (capture, this hook, std's and core's `panicking`).
fn from_the_panicking_frame(text: &str) -> String {
    const MACHINERY: &[&str] = &[
        "backtrace",
        "green_core::hub::unwind",
        "panicking",
        "rust_begin_unwind",
        "panic_fmt",
        "begin_panic",
        "as core::ops::function::Fn<",
    ];
    let is_frame = |line: &str| {
        let t = line.trim_start();
        t.split_once(": ")
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut start = 0;
    for (i, line) in lines.iter().enumerate() {
        if !is_frame(line) {
            continue;
        }
        if MACHINERY.iter().any(|m| line.contains(m)) {
            continue;
        }
        start = i;
        break;
    }
    lines[start..].join("\n")
}

/// A second panic in a greenlet that is unwinding from a first one the hook
/// kept quiet: prints the first (the process may abort before it is
/// reported).
fn print_quiet_panic_before_a_second(hub: &Hub, greenlet: u64) {
    let Ok(mut last) = hub.last_panic.try_borrow_mut() else {
        return;
    };
    if let Some(first) = last.take_if(|site| site.greenlet == greenlet) {
        eprintln!(
            "green: a greenlet panicked at {}: {} (printed now: a second panic follows while it \
             unwinds)",
            first.at, first.message
        );
    }
}

/// A `LinkedExited` raised in the main greenlet: through the panic hook
/// (which counts the unwind, U1, and prints its message), since nothing
/// reports a main greenlet's failure otherwise.
#[cold]
#[inline(never)]
fn raise_in_main_loudly(payload: green_ctx::Payload) -> ! {
    match payload.downcast::<crate::LinkedExited>() {
        Ok(exited) => panic::panic_any(*exited),
        Err(payload) => panic::resume_unwind(payload),
    }
}

/// What the standard hook prints, for a payload it cannot print itself.
fn print_like_the_standard_hook(info: &panic::PanicHookInfo<'_>, message: &str) {
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("<unnamed>");
    match info.location() {
        Some(at) => eprintln!("thread '{name}' panicked at {at}:\n{message}"),
        None => eprintln!("thread '{name}' panicked:\n{message}"),
    }
    match captured_backtrace() {
        Some(backtrace) => eprintln!("stack backtrace:\n{backtrace}"),
        None => eprintln!(
            "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace"
        ),
    }
}

impl Hub {
    /// A blocking call of a greenlet that holds a payload back (S2): raise
    /// it now, before parking, if it may be raised by now (U3); nothing
    /// would wake the greenlet to raise it later.
    #[cold]
    #[inline(never)]
    pub(super) fn raise_held(&self, core: &Core) {
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
        if core.is_main && payload.is::<crate::LinkedExited>() {
            raise_in_main_loudly(payload);
        }
        core.unwind_depth.set(core.unwind_depth.get() + 1);
        panic::resume_unwind(payload)
    }

    /// [`Hub::park_as`] with the thread panicking: record whether it is this
    /// greenlet that unwinds, so that others are not taken for it (U2).
    #[cold]
    #[inline(never)]
    pub(super) fn note_parking_while_panicking(&self, core: &Core) {
        if self.unwind_depth(core) > 0 {
            core.parked_unwinding.set(true);
            self.parked_mid_unwind.set(self.parked_mid_unwind.get() + 1);
        }
    }

    /// A greenlet that parked mid-unwind runs again (U2).
    #[cold]
    #[inline(never)]
    pub(super) fn resumed_mid_unwind(&self, core: &Core) {
        core.parked_unwinding.set(false);
        self.parked_mid_unwind
            .set(self.parked_mid_unwind.get().saturating_sub(1));
    }

    /// [`Hub::park_as`] resumed with a kill or timeout to raise (S2): raised
    /// where its catcher is sure to catch it, else kept for later (U3).
    #[cold]
    #[inline(never)]
    pub(super) fn park_throw(&self, core: &Core, payload: green_ctx::Payload) {
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

    /// Whether [`Hub::throw_into_self`] would raise a kill in the running
    /// `core` at once (nothing else pending, and U3 allows it).
    pub(crate) fn may_raise_kill_now(&self, core: &Core) -> bool {
        core.throw_is_empty() && self.may_raise(core, Catcher::ROOT)
    }

    /// Raises a kill in the running greenlet itself, at once (gevent's
    /// `throw` into the greenlet that calls it, as `killall` does when the
    /// caller is among its targets). Where it may not be raised yet (U3) it
    /// waits in `throw` for the next blocking call; a greenlet already
    /// unwinding is on its way out and drops it.
    pub(crate) fn throw_into_self(&self, core: &Core, payload: green_ctx::Payload) {
        if self.unwind_depth(core) > 0 {
            let passed = self.drop_guarded(payload, core, "dropping a kill it never received");
            self.pass_on(passed);
            return;
        }
        if !core.throw_is_empty() {
            core.set_aside(payload, Catcher::ROOT);
            core.throw_held.set(true);
            return;
        }
        core.throw_catcher.set(Catcher::ROOT);
        self.park_throw(core, payload);
    }

    /// Whether a kill or timeout is held back in `core` (it arrived during
    /// an uninterruptible wait, S2).
    pub(crate) fn holds_throw(&self, core: &Core) -> bool {
        core.throw_held.get()
    }

    /// Raises a held kill or timeout now, if it may be raised here (U3);
    /// otherwise it stays held for the next blocking point.
    #[track_caller]
    pub(crate) fn raise_if_held(&self, core: &Core) {
        if core.throw_held.get() {
            self.raise_held(core);
        }
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
}
