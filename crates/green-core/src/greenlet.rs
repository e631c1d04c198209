//! `Greenlet<T>`: spawning, state, results, killing and links.

pub(crate) mod state;

use std::any::Any;
use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe, Location};
use std::rc::{Rc, Weak};
use std::time::Duration;

use green_ctx::{Fiber, Payload};

use crate::error::{payload_message, ErrorKind, GreenletError, GreenletExit};
use crate::hub::{
    add_link, deadline_after, hub, join_core, kill_core, kill_core_timeout, next_greenlet_id,
    record_death, unlink,
};
use state::{display_name, minimal_ident, AsCore, Core, CoreRef, LinkAction, LinkFilter, State};

pub use state::LinkId;

// ===== typed records =====

/// A greenlet's record together with its value slot (`repr(C)`: the record's
/// hot first line comes first).
#[repr(C)]
struct Inner<T> {
    core: Core,
    value: RefCell<Option<T>>,
}

impl<T: 'static> AsCore for Inner<T> {
    fn core(&self) -> &Core {
        &self.core
    }

    fn drop_runs_user_code(&self) -> bool {
        (std::mem::needs_drop::<T>() && self.value.borrow().is_some())
            || self.core.holds_user_data()
    }
}

/// The payload a greenlet sees when killed with
/// [`Greenlet::kill_with`] and a payload other than [`GreenletExit`].
pub struct KillPayload {
    payload: Payload,
    message: String,
}

impl KillPayload {
    /// The payload given to `kill_with`.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let g = green_core::spawn(|| {
    ///     let caught = std::panic::catch_unwind(|| green_core::sleep(Duration::from_secs(5)));
    ///     let payload = caught.unwrap_err();
    ///     let kill = payload.downcast_ref::<green_core::KillPayload>().unwrap();
    ///     (kill.payload().downcast_ref::<&str>().copied(), kill.message())
    /// });
    /// green_core::yield_now();
    /// g.kill_with("reload");
    /// assert_eq!(g.get().unwrap(), (Some("reload"), "killed: reload".to_string()));
    /// ```
    pub fn payload(&self) -> &(dyn Any + Send) {
        &*self.payload
    }

    /// The payload's message, as [`GreenletError::message`] reports it.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let g = green_core::spawn(|| {
    ///     let caught = std::panic::catch_unwind(|| green_core::sleep(Duration::from_secs(5)));
    ///     let payload = caught.unwrap_err();
    ///     let kill = payload.downcast_ref::<green_core::KillPayload>().unwrap();
    ///     (kill.payload().downcast_ref::<&str>().copied(), kill.message())
    /// });
    /// green_core::yield_now();
    /// g.kill_with("reload");
    /// assert_eq!(g.get().unwrap(), (Some("reload"), "killed: reload".to_string()));
    /// ```
    pub fn message(&self) -> String {
        self.message.clone()
    }
}

impl fmt::Debug for KillPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KillPayload")
            .field("message", &self.message)
            .finish()
    }
}

/// Wraps what `kill_with` was given into the payload raised in the target.
fn kill_payload(payload: Box<dyn Any + Send>) -> Payload {
    if payload.is::<GreenletExit>() {
        return payload;
    }
    let message = format!("killed: {}", payload_message(&*payload));
    Box::new(KillPayload { payload, message })
}

// ===== Greenlet<T> =====

/// A greenlet: a function running on its own stack, cooperatively scheduled
/// by its thread's hub. The handle is cheap to clone; every clone names the
/// same greenlet.
///
/// Handles are `!Send`: a greenlet never leaves its thread.
///
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<green_core::Greenlet<()>>();
/// ```
pub struct Greenlet<T> {
    inner: Rc<Inner<T>>,
}

impl<T> Clone for Greenlet<T> {
    fn clone(&self) -> Self {
        Greenlet {
            inner: Rc::clone(&self.inner),
        }
    }
}

/// Builds a greenlet with a name, a stack size or an unguarded stack.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    name: Option<Cow<'static, str>>,
    stack_size: Option<usize>,
    unguarded: bool,
    new_spawn_tree: bool,
}

impl Builder {
    /// The defaults: no name, [`green_ctx::DEFAULT_STACK_SIZE`], guarded.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::Builder::new().spawn(|| 1).unwrap();
    /// assert_eq!(g.get().unwrap(), 1);
    /// ```
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the greenlet (shown by `Display`, failure reports and the
    /// stack-overflow report).
    ///
    /// # Examples
    /// ```
    /// let g = green_core::Builder::new().name("db-writer").spawn(|| ()).unwrap();
    /// assert_eq!(g.name(), "db-writer");
    /// ```
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// At least `size` usable stack bytes. Sizes other than the default
    /// are rounded up to a power of two (so that few pools serve them), and
    /// to at least [`green_ctx::MIN_STACK_SIZE`] (32 KiB: what a panic that
    /// prints a backtrace needs). Past [`green_ctx::MAX_STACK_SIZE`] (1 GiB),
    /// [`Builder::build`] and [`Builder::spawn`] return an
    /// [`InvalidInput`](std::io::ErrorKind::InvalidInput) error.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::Builder::new().stack_size(1 << 20).spawn(|| ()).unwrap();
    /// g.join();
    /// ```
    pub fn stack_size(mut self, size: usize) -> Builder {
        self.stack_size = Some(size);
        self
    }

    /// Stacks carved from an arena, without guard pages: for hundreds of
    /// thousands of greenlets, at the price of undetected stack overflow.
    ///
    /// # Examples
    /// ```
    /// // 100 000 greenlets fit without touching vm.max_map_count.
    /// let gs: Vec<_> = (0..100_000)
    ///     .map(|_| green_core::Builder::new().unguarded(true).spawn(|| ()).unwrap())
    ///     .collect();
    /// green_core::joinall(&gs);
    /// ```
    pub fn unguarded(mut self, unguarded: bool) -> Builder {
        self.unguarded = unguarded;
        self
    }

    /// Starts a spawn tree of its own: its [`spawn_tree_locals`] (and those
    /// of the greenlets it spawns) are not its spawner's.
    ///
    /// [`spawn_tree_locals`]: crate::spawn_tree_locals
    ///
    /// # Examples
    /// ```
    /// green_core::spawn(|| {
    ///     green_core::spawn_tree_locals().insert("outer");
    ///     let fresh = green_core::Builder::new()
    ///         .new_spawn_tree()
    ///         .spawn(|| green_core::spawn_tree_locals().get::<&str>())
    ///         .unwrap();
    ///     assert_eq!(fresh.get().unwrap(), None);
    /// })
    /// .join();
    /// ```
    pub fn new_spawn_tree(mut self) -> Builder {
        self.new_spawn_tree = true;
        self
    }

    /// Makes the greenlet without starting it.
    ///
    /// # Errors
    /// When no stack can be mapped (for example at `vm.max_map_count`; the
    /// message says how to raise it).
    ///
    /// # Examples
    /// ```
    /// let g = green_core::Builder::new()
    ///     .name("worker")
    ///     .stack_size(64 * 1024)
    ///     .build(|| 2 + 2)?;
    /// assert!(!g.has_started()); // built, not started
    /// g.start();
    /// assert_eq!(g.get().unwrap(), 4);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn build<F, T>(self, f: F) -> io::Result<Greenlet<T>>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        Greenlet::build_at(f, self, Location::caller())
    }

    /// Makes the greenlet and schedules its start, like [`spawn`].
    ///
    /// # Errors
    /// As [`Builder::build`].
    ///
    /// # Examples
    /// ```
    /// let g = green_core::Builder::new().name("parser").spawn(|| "parsed")?;
    /// assert_eq!(g.name(), "parser");
    /// assert_eq!(g.get().unwrap(), "parsed");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn spawn<F, T>(self, f: F) -> io::Result<Greenlet<T>>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let g = Greenlet::build_at(f, self, Location::caller())?;
        g.start();
        Ok(g)
    }

    /// Makes the greenlet and starts it after `delay`, like [`spawn_later`].
    ///
    /// # Errors
    /// As [`Builder::build`].
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let g = green_core::Builder::new()
    ///     .name("reminder")
    ///     .spawn_later(Duration::from_millis(5), || "later")
    ///     .unwrap();
    /// assert!(!g.has_started());
    /// assert_eq!(g.get().unwrap(), "later");
    /// ```
    #[track_caller]
    pub fn spawn_later<F, T>(self, delay: Duration, f: F) -> io::Result<Greenlet<T>>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let g = Greenlet::build_at(f, self, Location::caller())?;
        g.start_later(delay);
        Ok(g)
    }
}

/// Spawns a greenlet: its start is scheduled for this loop iteration, and
/// the caller keeps running (`spawn` never switches). Greenlets spawned in
/// order start in that order.
///
/// # Panics
/// When no stack can be mapped; use [`Builder::spawn`] to get the error.
///
/// # Examples
/// ```
/// let g = green_core::spawn(|| 6 * 7);
/// assert_eq!(g.get().unwrap(), 42);
/// ```
#[track_caller]
pub fn spawn<F, T>(f: F) -> Greenlet<T>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    let g = Greenlet::new_at(f, Location::caller());
    g.start();
    g
}

/// Spawns a greenlet that starts after `delay`.
///
/// # Examples
/// ```
/// let g = green_core::spawn_later(std::time::Duration::from_millis(2), || "tick");
/// assert!(!g.has_started());
/// assert_eq!(g.get().unwrap(), "tick");
/// ```
#[track_caller]
pub fn spawn_later<F, T>(delay: Duration, f: F) -> Greenlet<T>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    let g = Greenlet::new_at(f, Location::caller());
    g.start_later(delay);
    g
}

/// Spawns a greenlet with no handle, no result and no links: the cheapest
/// form. A panic in it is reported like any other.
///
/// # Examples
/// ```
/// green_core::spawn_raw(|| println!("fire and forget"));
/// green_core::yield_now(); // it runs here
/// ```
#[track_caller]
pub fn spawn_raw<F>(f: F)
where
    F: FnOnce() + 'static,
{
    spawn_raw_at(Box::new(f), Location::caller());
}

pub(crate) fn spawn_raw_at(f: Box<dyn FnOnce()>, site: &'static Location<'static>) {
    let g = Greenlet::new_at(f, site);
    g.start();
}

/// Why a link's greenlet could not be made, with the callback given back.
pub(crate) type LinkStartError = (io::Error, Box<dyn FnOnce()>);

/// Makes the greenlet of a `link` callback. `queued`: started the usual way
/// (`Ok(None)`); else started but not queued, for the hub to switch into at
/// once, so that it runs before the next link fires (`Ok(Some)`). Without a
/// stack, the error comes back with the callback, for the hub to report and
/// drop (H1).
pub(crate) fn try_start_link(
    f: Box<dyn FnOnce()>,
    site: &'static Location<'static>,
    queued: bool,
) -> Result<Option<CoreRef>, LinkStartError> {
    // The entry is kept aside until the stack is there, to be given back
    // with the error.
    let slot = Rc::new(RefCell::new(Some(f)));
    let entry = Rc::clone(&slot);
    let g = match Greenlet::build_at(
        move || {
            let f = entry.borrow_mut().take();
            drop(entry);
            if let Some(f) = f {
                f();
            }
        },
        Builder::default(),
        site,
    ) {
        Ok(g) => g,
        Err(e) => {
            let f = slot.borrow_mut().take().expect("the entry was not run");
            return Err((e, f));
        }
    };
    drop(slot);
    if queued {
        g.start();
        return Ok(None);
    }
    Ok(g.mark_scheduled().map(|(_, core)| core))
}

/// eventlet's `spawn_after_local`: like [`spawn_later`], but the greenlet
/// does not run if the greenlet that spawned it has died by then.
///
/// # Examples
/// ```
/// let g = green_core::spawn_after_local(std::time::Duration::from_millis(1), || "late");
/// assert_eq!(g.get().unwrap(), "late");
/// ```
#[track_caller]
pub fn spawn_after_local<F, T>(delay: Duration, f: F) -> Greenlet<T>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    let g = Greenlet::new_at(f, Location::caller());
    g.inner.core.needs_live_parent.set(true);
    g.start_later(delay);
    g
}

impl<T: 'static> Greenlet<T> {
    /// Makes a greenlet that will run `f` once started ([`Greenlet::start`]).
    ///
    /// # Panics
    /// When no stack can be mapped; use [`Builder::build`] to get the error.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::Greenlet::new(|| 5); // not started
    /// assert!(!g.has_started());
    /// g.start();
    /// assert_eq!(g.get().unwrap(), 5);
    /// ```
    #[track_caller]
    pub fn new<F>(f: F) -> Greenlet<T>
    where
        F: FnOnce() -> T + 'static,
    {
        Greenlet::new_at(f, Location::caller())
    }

    #[track_caller]
    pub(crate) fn new_at<F>(f: F, site: &'static Location<'static>) -> Greenlet<T>
    where
        F: FnOnce() -> T + 'static,
    {
        match Greenlet::build_at(f, Builder::default(), site) {
            Ok(g) => g,
            Err(e) => panic!("green-core: cannot spawn a greenlet: {e}"),
        }
    }

    fn build_at<F>(
        f: F,
        builder: Builder,
        site: &'static Location<'static>,
    ) -> io::Result<Greenlet<T>>
    where
        F: FnOnce() -> T + 'static,
    {
        let hub = hub();
        let stack = hub.take_stack(builder.stack_size, !builder.unguarded)?;
        let parent = hub.current();
        // The hub fiber is every greenlet's parent: a finished greenlet
        // switches there, and the hub reaps its stack.
        let hub_fiber = hub.hub_fiber_ref();
        let inner = Rc::new_cyclic(|weak: &Weak<Inner<T>>| {
            let weak = weak.clone();
            let fiber = Fiber::new(stack, move |_| {
                if let Some(me) = weak.upgrade() {
                    drop(weak);
                    run_greenlet(me, f);
                }
                0
            });
            if let Some(name) = &builder.name {
                fiber.set_name(name.clone());
            }
            fiber.set_spawn_site(site);
            fiber.set_parent(&hub_fiber);
            let fref = fiber.handle();
            // Built in place: nothing touches the record before it is in
            // its allocation.
            Inner {
                core: Core::new(
                    next_greenlet_id(),
                    Some(fiber),
                    fref,
                    parent.as_ref(),
                    site,
                    false,
                ),
                value: RefCell::new(None),
            }
        });
        if let Some(name) = builder.name {
            inner.core.set_name(name);
        }
        if builder.new_spawn_tree {
            inner.core.set_starts_spawn_tree();
        } else if let Some(spawner) = parent.as_ref().filter(|p| !p.core().is_main) {
            crate::tree::inherit_tree(&inner.core, spawner);
        }
        Ok(Greenlet { inner })
    }

    fn core_ref(&self) -> CoreRef {
        Rc::clone(&self.inner) as CoreRef
    }

    pub(crate) fn core_ref_pub(&self) -> CoreRef {
        self.core_ref()
    }

    /// Schedules the start for this loop iteration. Does nothing if already
    /// started, scheduled or dead.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::Greenlet::new(|| ());
    /// g.start();
    /// g.start(); // a second start does nothing
    /// g.join();
    /// ```
    pub fn start(&self) {
        if let Some((hub, me)) = self.mark_scheduled() {
            hub.schedule(&me);
        }
    }

    /// Schedules the start after `delay`. Does nothing if already started,
    /// scheduled or dead.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::Greenlet::new(|| "woke");
    /// g.start_later(std::time::Duration::from_millis(1));
    /// assert_eq!(g.get().unwrap(), "woke");
    /// ```
    pub fn start_later(&self, delay: Duration) {
        if let Some((hub, me)) = self.mark_scheduled() {
            let start = hub.start_at(me, deadline_after(delay));
            self.inner.core.set_start_timer(start);
        }
    }

    /// New -> Scheduled, entered in the hub's registry; `None` if it was not
    /// new, or if the hub is past teardown's point of no return (then it is
    /// killed before it runs, and nothing of it reaches the next hub).
    fn mark_scheduled(&self) -> Option<(&'static crate::hub::Hub, CoreRef)> {
        let core = &self.inner.core;
        if core.state.get() != State::New {
            return None;
        }
        let hub = hub();
        if hub.is_closing() {
            refuse_start(&self.core_ref());
            return None;
        }
        core.state.set(State::Scheduled);
        let me = self.core_ref();
        hub.register_live(&me);
        crate::tree::run_spawn_callbacks(|| self.as_ref());
        Some((hub, me))
    }

    /// eventlet's `cancel`: kills the greenlet only if it has not started
    /// yet (then it never runs). Returns whether it did.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::Greenlet::new(|| unreachable!());
    /// g.start_later(std::time::Duration::from_secs(60));
    /// assert!(g.cancel()); // never runs; it is dead now
    /// assert!(g.dead());
    /// ```
    pub fn cancel(&self) -> bool {
        if self.inner.core.has_started() || self.inner.core.is_dead() {
            return false;
        }
        kill_core(&self.core_ref(), Box::new(GreenletExit), false);
        true
    }

    // ----- state -----

    /// Whether it has finished (gevent's `ready()`).
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| ());
    /// assert!(!g.ready());
    /// g.join();
    /// assert!(g.ready());
    /// ```
    pub fn ready(&self) -> bool {
        self.inner.core.is_dead()
    }

    /// Whether it finished without failing: it returned, or died of
    /// [`GreenletExit`].
    ///
    /// # Examples
    /// ```
    /// # green_core::silence_failures();
    /// let ok = green_core::spawn(|| ());
    /// let bad = green_core::spawn(|| panic!("no"));
    /// green_core::joinall(&[ok.as_ref(), bad.as_ref()]);
    /// assert!(ok.successful() && !bad.successful());
    /// ```
    pub fn successful(&self) -> bool {
        self.inner.core.successful()
    }

    /// Whether it has finished (gevent's `dead`).
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| ());
    /// assert!(!g.dead());
    /// g.join();
    /// assert!(g.dead());
    /// ```
    pub fn dead(&self) -> bool {
        self.inner.core.is_dead()
    }

    /// Started and not dead (gevent's `bool(greenlet)`).
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| ());
    /// assert!(g.is_alive()); // scheduled counts as alive
    /// g.join();
    /// assert!(!g.is_alive());
    /// ```
    pub fn is_alive(&self) -> bool {
        self.inner.core.is_alive()
    }

    /// Whether its function has begun running.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| ());
    /// assert!(!g.has_started());
    /// green_core::yield_now();
    /// assert!(g.has_started());
    /// ```
    pub fn has_started(&self) -> bool {
        self.inner.core.has_started()
    }

    /// How it failed, or `None` while running or after success
    /// (gevent's `exception`). A greenlet killed with `GreenletExit` reports
    /// an error of kind [`ErrorKind::Exited`] here although it is successful.
    ///
    /// # Examples
    /// ```
    /// # green_core::silence_failures();
    /// let g = green_core::spawn(|| panic!("bad input"));
    /// g.join();
    /// assert_eq!(g.exception().unwrap().message(), "bad input");
    /// ```
    pub fn exception(&self) -> Option<GreenletError> {
        self.inner.core.error()
    }

    /// Takes the payload it died of (a panic's, a kill's), once. Payloads are
    /// not `Clone`; [`Greenlet::exception`] describes it any number of times.
    ///
    /// # Examples
    /// ```
    /// # green_core::silence_failures();
    /// let g = green_core::spawn(|| std::panic::panic_any(404_u16));
    /// g.join();
    /// let payload = g.take_exception_payload().unwrap();
    /// assert_eq!(payload.downcast_ref::<u16>(), Some(&404));
    /// ```
    pub fn take_exception_payload(&self) -> Option<Payload> {
        if !self.inner.core.is_dead() {
            return None;
        }
        self.inner.core.throw.take()
    }

    /// Takes the value it returned, leaving `None`.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| String::from("owned"));
    /// g.join();
    /// assert_eq!(g.take_value().as_deref(), Some("owned"));
    /// assert_eq!(g.take_value(), None);
    /// ```
    pub fn take_value(&self) -> Option<T> {
        self.inner.value.borrow_mut().take()
    }

    /// Waits for it and moves its value out: [`Greenlet::get`] for a value
    /// that is not `Clone` (or not worth cloning). The value is taken once;
    /// a later `take` or `get` returns an error saying it was taken.
    ///
    /// # Errors
    /// As [`Greenlet::get`].
    ///
    /// # Panics
    /// As [`Greenlet::join`].
    ///
    /// # Kill safety
    /// As [`Greenlet::join`]; a kill during the wait takes nothing.
    ///
    /// # Examples
    /// ```
    /// // A `Vec<Box<dyn Fn()>>` is not `Clone`, so `get` is not available.
    /// let g = green_core::spawn(|| vec![Box::new(|| ()) as Box<dyn Fn()>]);
    /// let callbacks = g.take().unwrap();
    /// assert_eq!(callbacks.len(), 1);
    /// assert!(g.take().is_err()); // taken already
    /// ```
    #[track_caller]
    pub fn take(&self) -> Result<T, GreenletError> {
        self.join();
        match self.take_value() {
            Some(value) => Ok(value),
            None => Err(self.no_value_error()),
        }
    }

    /// Why there is no value to give: not finished (a wait that gave up),
    /// failed, or taken.
    fn no_value_error(&self) -> GreenletError {
        if !self.inner.core.is_dead() {
            // A wait returns early only when it cannot go on: nothing
            // could ever finish the greenlet, but LoopExit cannot be raised
            // (the caller is unwinding), or the hub is being torn down.
            return GreenletError::new(
                ErrorKind::NotReady,
                "greenlet has not finished: the wait gave up because nothing could ever \
                 finish it (the caller was unwinding, so LoopExit could not be raised, or \
                 the hub was being torn down)",
            );
        }
        self.inner.core.error().unwrap_or_else(|| {
            GreenletError::new(
                ErrorKind::NotReady,
                "greenlet finished but its value was taken",
            )
        })
    }

    // ----- waiting -----

    /// Waits until it finishes.
    ///
    /// # Panics
    /// With [`LoopExit`](crate::LoopExit) if called from the main greenlet
    /// when nothing could ever finish it; if a greenlet joins itself.
    ///
    /// # Kill safety
    /// Interruptible: a kill or timeout unwinds out of `join` and removes the
    /// waiter from the greenlet's links; nothing is lost.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| green_core::yield_now());
    /// g.join();
    /// assert!(g.dead());
    /// ```
    #[track_caller]
    pub fn join(&self) {
        join_core(&self.core_ref(), None);
    }

    /// Waits at most `timeout`; returns whether it finished.
    ///
    /// # Kill safety
    /// As [`Greenlet::join`].
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let g = green_core::spawn(|| green_core::sleep(Duration::from_secs(10)));
    /// assert!(!g.join_timeout(Duration::from_millis(1)));
    /// g.kill();
    /// assert!(g.join_timeout(Duration::from_millis(1)));
    /// ```
    #[track_caller]
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        join_core(&self.core_ref(), Some(timeout))
    }

    // ----- killing -----

    /// Raises [`GreenletExit`] in it at its next blocking point and waits for
    /// it to finish. A greenlet that never started never runs and is dead at
    /// once. The payload is delivered once: a greenlet that catches it keeps
    /// running, and `kill` keeps waiting. Each kill delivers its own payload
    /// (gevent's rule): each waits for its own turn in the hub's callback
    /// queue and is raised wherever the greenlet is blocked when that turn
    /// comes. As in gevent, `kill` returns as soon as its kill was raised and
    /// the greenlet died, before its links fire.
    ///
    /// The kill unwinds the greenlet's stack: a `std::panic::catch_unwind`
    /// inside it catches the kill and the greenlet carries on. Use
    /// [`green_core::catch_unwind`](crate::catch_unwind) there instead.
    ///
    /// # Kill safety
    /// The caller's wait is interruptible like [`Greenlet::join`].
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let g = green_core::spawn(|| green_core::sleep(Duration::from_secs(10)));
    /// green_core::yield_now();
    /// g.kill(); // returns once the greenlet died
    /// assert!(g.dead());
    /// assert!(g.exception().unwrap().is_exit());
    /// ```
    #[track_caller]
    pub fn kill(&self) {
        kill_core(&self.core_ref(), Box::new(GreenletExit), true);
    }

    /// Like [`Greenlet::kill`], with another payload. The target sees a
    /// [`KillPayload`] carrying it (or `GreenletExit` itself), and dies failed
    /// unless the payload is `GreenletExit`.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let g = green_core::spawn(|| green_core::sleep(Duration::from_secs(10)));
    /// green_core::yield_now();
    /// g.kill_with("shutting down");
    /// assert_eq!(g.exception().unwrap().message(), "killed: shutting down");
    /// ```
    #[track_caller]
    pub fn kill_with<P: Any + Send>(&self, payload: P) {
        kill_core(&self.core_ref(), kill_payload(Box::new(payload)), true);
    }

    /// Delivers [`GreenletExit`] without waiting.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let g = green_core::spawn(|| green_core::sleep(Duration::from_secs(10)));
    /// green_core::yield_now();
    /// g.kill_nowait(); // queued; raised when its turn comes
    /// assert!(!g.dead());
    /// g.join();
    /// assert!(g.dead());
    /// ```
    pub fn kill_nowait(&self) {
        kill_core(&self.core_ref(), Box::new(GreenletExit), false);
    }

    /// [`Greenlet::kill`] that waits at most `timeout` for death; returns
    /// whether it died. As in gevent, the timeout starts once the kill has
    /// been raised (its turn in the callback queue came and the greenlet
    /// blocked again or died), not at the call.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let g = green_core::spawn(|| green_core::sleep(Duration::from_secs(10)));
    /// green_core::yield_now();
    /// assert!(g.kill_timeout(Duration::from_secs(1)));
    /// ```
    #[track_caller]
    pub fn kill_timeout(&self, timeout: Duration) -> bool {
        kill_core_timeout(&self.core_ref(), Box::new(GreenletExit), timeout)
    }

    // ----- links -----

    fn add_link(&self, filter: LinkFilter, action: LinkAction) -> LinkId {
        add_link(&self.core_ref(), filter, action)
    }

    /// Calls `f` in the hub after death, in registration order. It must not
    /// block (a blocking call there panics with a clear message, which is
    /// reported). Fires even if added after death.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| 3);
    /// // Runs in the hub once `g` has finished; it must not block.
    /// g.rawlink(|g| assert_eq!(g.value(), Some(3)));
    /// g.join();
    /// ```
    pub fn rawlink(&self, f: impl FnOnce(&Greenlet<T>) + 'static) -> LinkId {
        self.add_link(LinkFilter::Always, LinkAction::Raw(typed_link(f)))
    }

    /// Calls `f` in a fresh greenlet after death, in registration order.
    ///
    /// # Examples
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    ///
    /// let seen = Rc::new(Cell::new(0));
    /// let s = seen.clone();
    /// let g = green_core::spawn(|| 7);
    /// // Runs in a greenlet of its own once `g` has finished: it may block.
    /// g.link(move |g| s.set(g.value().unwrap()));
    /// g.join();
    /// green_core::yield_now(); // let the link's greenlet run
    /// assert_eq!(seen.get(), 7);
    /// ```
    #[track_caller]
    pub fn link(&self, f: impl FnOnce(&Greenlet<T>) + 'static) -> LinkId {
        self.add_link(
            LinkFilter::Always,
            LinkAction::Green(typed_link(f), Location::caller()),
        )
    }

    /// Like [`Greenlet::link`], only if it succeeded.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| "ok");
    /// g.link_value(|g| assert!(g.successful()));
    /// let bad = green_core::spawn(|| -> u8 { panic!("bad") });
    /// bad.link_value(|_| unreachable!("not called for a failure"));
    /// green_core::sleep(std::time::Duration::from_millis(1));
    /// ```
    #[track_caller]
    pub fn link_value(&self, f: impl FnOnce(&Greenlet<T>) + 'static) -> LinkId {
        self.add_link(
            LinkFilter::OnSuccess,
            LinkAction::Green(typed_link(f), Location::caller()),
        )
    }

    /// Like [`Greenlet::link`], only if it failed.
    ///
    /// # Examples
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    ///
    /// let failed = Rc::new(Cell::new(false));
    /// let f = failed.clone();
    /// green_core::silence_failures();
    /// let g = green_core::spawn(|| -> u8 { panic!("bad") });
    /// g.link_exception(move |_| f.set(true));
    /// green_core::sleep(std::time::Duration::from_millis(1));
    /// assert!(failed.get());
    /// green_core::reset_failure_reporter();
    /// ```
    #[track_caller]
    pub fn link_exception(&self, f: impl FnOnce(&Greenlet<T>) + 'static) -> LinkId {
        self.add_link(
            LinkFilter::OnFailure,
            LinkAction::Green(typed_link(f), Location::caller()),
        )
    }

    /// Removes a link that has not fired; returns whether it was there.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| ());
    /// let id = g.rawlink(|_| unreachable!("unlinked before it fired"));
    /// assert!(g.unlink(id));
    /// g.join();
    /// ```
    pub fn unlink(&self, id: LinkId) -> bool {
        unlink(&self.inner.core, id)
    }

    // ----- identity -----

    /// Its name: the one given, or `Greenlet-<ident>`.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::Builder::new().name("fetcher").spawn(|| ()).unwrap();
    /// assert_eq!(g.name(), "fetcher");
    /// let anonymous = green_core::spawn(|| ());
    /// assert!(anonymous.name().starts_with("Greenlet-"));
    /// ```
    pub fn name(&self) -> String {
        display_name(&self.inner.core)
    }

    /// Renames it.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| ());
    /// g.set_name("renamed");
    /// assert_eq!(g.name(), "renamed");
    /// ```
    pub fn set_name(&self, name: impl Into<Cow<'static, str>>) {
        let name = name.into();
        self.inner
            .core
            .with_fiber(|fiber| fiber.set_name(name.clone()));
        self.inner.core.set_name(name);
    }

    /// A small number, given when it is started (or on first request),
    /// sequential, and reused after death (gevent's `minimal_ident`).
    ///
    /// # Examples
    /// ```
    /// let a = green_core::spawn(|| ());
    /// let b = green_core::spawn(|| ());
    /// assert_ne!(a.minimal_ident(), b.minimal_ident());
    /// ```
    pub fn minimal_ident(&self) -> usize {
        minimal_ident(&self.inner.core)
    }

    /// Where it was spawned.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| ());
    /// assert_eq!(g.spawn_site().line(), line!() - 1);
    /// ```
    pub fn spawn_site(&self) -> &'static Location<'static> {
        self.inner.core.spawn_site
    }

    /// The `minimal_ident` of the greenlet that spawned it, if any and alive.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| ());
    /// assert_eq!(g.parent_ident(), Some(green_core::current().minimal_ident()));
    /// ```
    pub fn parent_ident(&self) -> Option<usize> {
        let parent = self.inner.core.parent.as_ref()?.upgrade()?;
        if parent.core().is_dead() {
            return None;
        }
        Some(minimal_ident(parent.core()))
    }

    /// The greenlet that spawned it, while that one's record lives (gevent's
    /// `spawning_greenlet`, a weak reference): `None` for one made inside
    /// the hub, or once the spawner is gone.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| ());
    /// assert!(g.spawning_greenlet().unwrap().is_main());
    /// ```
    pub fn spawning_greenlet(&self) -> Option<GreenletRef> {
        spawning_greenlet_of(&self.inner.core)
    }

    /// Its spawn tree's values (see [`SpawnTreeLocals`](crate::SpawnTreeLocals)).
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| green_core::spawn_tree_locals().insert(5_u8));
    /// g.join();
    /// assert_eq!(g.spawn_tree_locals().get::<u8>().as_deref(), Some(&5));
    /// ```
    pub fn spawn_tree_locals(&self) -> crate::SpawnTreeLocals {
        crate::tree::tree_locals_of(&self.core_ref())
    }

    /// A type-erased handle to the same greenlet.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| 1_u8);
    /// let untyped: green_core::GreenletRef = g.as_ref();
    /// assert!(untyped.downcast::<u8>().is_some());
    /// ```
    pub fn as_ref(&self) -> GreenletRef {
        GreenletRef {
            core: self.core_ref(),
            _not_send: PhantomData,
        }
    }
}

// A handle stays usable after a panic was caught around code that used it:
// the hub keeps a greenlet's record consistent across unwinds (kills and
// timeouts are unwinds by design), so `catch_unwind` need not refuse it.
impl<T> std::panic::UnwindSafe for Greenlet<T> {}
impl<T> std::panic::RefUnwindSafe for Greenlet<T> {}
impl std::panic::UnwindSafe for GreenletRef {}
impl std::panic::RefUnwindSafe for GreenletRef {}

/// The ways to read a result that hand out a clone. A result type that is
/// not `Clone` is read with [`Greenlet::take`], which moves it out.
impl<T: Clone + 'static> Greenlet<T> {
    /// The value it returned, once finished successfully.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| 9);
    /// assert_eq!(g.value(), None);
    /// g.join();
    /// assert_eq!(g.value(), Some(9));
    /// ```
    pub fn value(&self) -> Option<T> {
        self.inner.value.borrow().clone()
    }

    /// Waits for it and returns a clone of its value, or how it failed.
    /// For a value that is not `Clone`, use [`Greenlet::take`], which moves
    /// it out.
    ///
    /// # Errors
    /// The greenlet's failure: a panic (with its message), a kill.
    ///
    /// # Panics
    /// As [`Greenlet::join`].
    ///
    /// # Kill safety
    /// As [`Greenlet::join`].
    ///
    /// # Examples
    /// ```
    /// let ok = green_core::spawn(|| 6 * 7);
    /// assert_eq!(ok.get().unwrap(), 42);
    ///
    /// green_core::silence_failures();
    /// let bad = green_core::spawn(|| -> u32 { panic!("no answer") });
    /// let error = bad.get().unwrap_err();
    /// assert_eq!(error.kind(), green_core::ErrorKind::Panicked);
    /// assert_eq!(error.message(), "no answer");
    /// green_core::reset_failure_reporter();
    /// ```
    #[track_caller]
    pub fn get(&self) -> Result<T, GreenletError> {
        self.join();
        self.result()
    }

    /// The result if finished; `Err` of kind [`ErrorKind::NotReady`] without
    /// blocking otherwise.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| 1);
    /// assert_eq!(g.try_get().unwrap_err().kind(), green_core::ErrorKind::NotReady);
    /// g.join();
    /// assert_eq!(g.try_get().unwrap(), 1);
    /// ```
    pub fn try_get(&self) -> Result<T, GreenletError> {
        if !self.ready() {
            return Err(GreenletError::new(
                ErrorKind::NotReady,
                "greenlet has not finished",
            ));
        }
        self.result()
    }

    /// Waits at most `timeout` for the result.
    ///
    /// # Errors
    /// As [`Greenlet::get`], or [`ErrorKind::NotReady`] on timeout.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let g = green_core::spawn(|| {
    ///     green_core::sleep(Duration::from_secs(10));
    ///     1
    /// });
    /// let early = g.get_timeout(Duration::from_millis(1));
    /// assert_eq!(early.unwrap_err().kind(), green_core::ErrorKind::NotReady);
    /// g.kill();
    /// ```
    #[track_caller]
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GreenletError> {
        self.join_timeout(timeout);
        self.try_get()
    }

    fn result(&self) -> Result<T, GreenletError> {
        if let Some(value) = self.inner.value.borrow().as_ref() {
            return Ok(value.clone());
        }
        Err(self.no_value_error())
    }
}

impl<T: 'static> fmt::Display for Greenlet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_core(&self.inner.core, f)
    }
}

impl<T: 'static> fmt::Debug for Greenlet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_core(&self.inner.core, f)
    }
}

// ===== GreenletRef =====

/// A type-erased handle to a greenlet, such as [`current()`] returns.
///
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<green_core::GreenletRef>();
/// ```
#[derive(Clone)]
pub struct GreenletRef {
    core: CoreRef,
    _not_send: PhantomData<*const ()>,
}

impl GreenletRef {
    pub(crate) fn core_ref_pub(&self) -> CoreRef {
        Rc::clone(&self.core)
    }

    /// Whether it has been switched to (gevent's `has_started`).
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| ());
    /// let r = g.as_ref();
    /// green_core::yield_now();
    /// assert!(r.has_started() && r.dead() && r.successful() && r.exception().is_none());
    /// assert!(r.spawning_greenlet().unwrap().is_main());
    /// r.set_name("renamed");
    /// assert_eq!(r.name(), "renamed");
    /// assert_eq!(r.minimal_ident(), g.minimal_ident());
    /// assert_eq!(r.spawn_site(), g.spawn_site());
    /// let _ = r.spawn_tree_locals();
    /// ```
    pub fn has_started(&self) -> bool {
        self.core.core().has_started()
    }

    /// See [`Greenlet::spawning_greenlet`].
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| ());
    /// let r = g.as_ref();
    /// green_core::yield_now();
    /// assert!(r.has_started() && r.dead() && r.successful() && r.exception().is_none());
    /// assert!(r.spawning_greenlet().unwrap().is_main());
    /// r.set_name("renamed");
    /// assert_eq!(r.name(), "renamed");
    /// assert_eq!(r.minimal_ident(), g.minimal_ident());
    /// assert_eq!(r.spawn_site(), g.spawn_site());
    /// let _ = r.spawn_tree_locals();
    /// ```
    pub fn spawning_greenlet(&self) -> Option<GreenletRef> {
        spawning_greenlet_of(self.core.core())
    }

    /// See [`Greenlet::spawn_tree_locals`].
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| ());
    /// let r = g.as_ref();
    /// green_core::yield_now();
    /// assert!(r.has_started() && r.dead() && r.successful() && r.exception().is_none());
    /// assert!(r.spawning_greenlet().unwrap().is_main());
    /// r.set_name("renamed");
    /// assert_eq!(r.name(), "renamed");
    /// assert_eq!(r.minimal_ident(), g.minimal_ident());
    /// assert_eq!(r.spawn_site(), g.spawn_site());
    /// let _ = r.spawn_tree_locals();
    /// ```
    pub fn spawn_tree_locals(&self) -> crate::SpawnTreeLocals {
        crate::tree::tree_locals_of(&self.core)
    }

    /// Its name.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| ());
    /// let r = g.as_ref();
    /// green_core::yield_now();
    /// assert!(r.has_started() && r.dead() && r.successful() && r.exception().is_none());
    /// assert!(r.spawning_greenlet().unwrap().is_main());
    /// r.set_name("renamed");
    /// assert_eq!(r.name(), "renamed");
    /// assert_eq!(r.minimal_ident(), g.minimal_ident());
    /// assert_eq!(r.spawn_site(), g.spawn_site());
    /// let _ = r.spawn_tree_locals();
    /// ```
    pub fn name(&self) -> String {
        display_name(self.core.core())
    }

    /// Renames it.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| ());
    /// let r = g.as_ref();
    /// green_core::yield_now();
    /// assert!(r.has_started() && r.dead() && r.successful() && r.exception().is_none());
    /// assert!(r.spawning_greenlet().unwrap().is_main());
    /// r.set_name("renamed");
    /// assert_eq!(r.name(), "renamed");
    /// assert_eq!(r.minimal_ident(), g.minimal_ident());
    /// assert_eq!(r.spawn_site(), g.spawn_site());
    /// let _ = r.spawn_tree_locals();
    /// ```
    pub fn set_name(&self, name: impl Into<Cow<'static, str>>) {
        let name = name.into();
        self.core
            .core()
            .with_fiber(|fiber| fiber.set_name(name.clone()));
        self.core.core().set_name(name);
    }

    /// See [`Greenlet::minimal_ident`].
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| ());
    /// let r = g.as_ref();
    /// green_core::yield_now();
    /// assert!(r.has_started() && r.dead() && r.successful() && r.exception().is_none());
    /// assert!(r.spawning_greenlet().unwrap().is_main());
    /// r.set_name("renamed");
    /// assert_eq!(r.name(), "renamed");
    /// assert_eq!(r.minimal_ident(), g.minimal_ident());
    /// assert_eq!(r.spawn_site(), g.spawn_site());
    /// let _ = r.spawn_tree_locals();
    /// ```
    pub fn minimal_ident(&self) -> usize {
        minimal_ident(self.core.core())
    }

    /// Whether this is the thread's main greenlet.
    ///
    /// # Examples
    /// ```
    /// assert!(green_core::current().is_main());
    /// ```
    pub fn is_main(&self) -> bool {
        self.core.core().is_main
    }

    /// Whether it has finished.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| ());
    /// let r = g.as_ref();
    /// green_core::yield_now();
    /// assert!(r.has_started() && r.dead() && r.successful() && r.exception().is_none());
    /// assert!(r.spawning_greenlet().unwrap().is_main());
    /// r.set_name("renamed");
    /// assert_eq!(r.name(), "renamed");
    /// assert_eq!(r.minimal_ident(), g.minimal_ident());
    /// assert_eq!(r.spawn_site(), g.spawn_site());
    /// let _ = r.spawn_tree_locals();
    /// ```
    pub fn dead(&self) -> bool {
        self.core.core().is_dead()
    }

    /// Whether it finished without failing.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| ());
    /// let r = g.as_ref();
    /// green_core::yield_now();
    /// assert!(r.has_started() && r.dead() && r.successful() && r.exception().is_none());
    /// assert!(r.spawning_greenlet().unwrap().is_main());
    /// r.set_name("renamed");
    /// assert_eq!(r.name(), "renamed");
    /// assert_eq!(r.minimal_ident(), g.minimal_ident());
    /// assert_eq!(r.spawn_site(), g.spawn_site());
    /// let _ = r.spawn_tree_locals();
    /// ```
    pub fn successful(&self) -> bool {
        self.core.core().successful()
    }

    /// How it failed, if it did.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| ());
    /// let r = g.as_ref();
    /// green_core::yield_now();
    /// assert!(r.has_started() && r.dead() && r.successful() && r.exception().is_none());
    /// assert!(r.spawning_greenlet().unwrap().is_main());
    /// r.set_name("renamed");
    /// assert_eq!(r.name(), "renamed");
    /// assert_eq!(r.minimal_ident(), g.minimal_ident());
    /// assert_eq!(r.spawn_site(), g.spawn_site());
    /// let _ = r.spawn_tree_locals();
    /// ```
    pub fn exception(&self) -> Option<GreenletError> {
        self.core.core().error()
    }

    /// Where it was spawned.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| ());
    /// let r = g.as_ref();
    /// green_core::yield_now();
    /// assert!(r.has_started() && r.dead() && r.successful() && r.exception().is_none());
    /// assert!(r.spawning_greenlet().unwrap().is_main());
    /// r.set_name("renamed");
    /// assert_eq!(r.name(), "renamed");
    /// assert_eq!(r.minimal_ident(), g.minimal_ident());
    /// assert_eq!(r.spawn_site(), g.spawn_site());
    /// let _ = r.spawn_tree_locals();
    /// ```
    pub fn spawn_site(&self) -> &'static Location<'static> {
        self.core.core().spawn_site
    }

    /// Waits until it finishes.
    ///
    /// # Examples
    /// ```
    /// let r = green_core::spawn(|| ()).as_ref();
    /// r.join();
    /// assert!(r.dead());
    /// ```
    #[track_caller]
    pub fn join(&self) {
        join_core(&self.core, None);
    }

    /// [`Greenlet::kill`] through the untyped handle: a greenlet can kill
    /// itself with `current().kill()` (the kill waits for its turn in the
    /// callback queue and is raised at its next blocking call, as in
    /// gevent).
    ///
    /// # Panics
    /// On the thread's main greenlet, which cannot be killed.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| {
    ///     green_core::current().kill_nowait();
    ///     green_core::yield_now(); // the kill is raised here
    ///     unreachable!();
    /// });
    /// g.join();
    /// assert!(g.exception().unwrap().is_exit());
    /// ```
    #[track_caller]
    pub fn kill(&self) {
        kill_core(&self.core, Box::new(GreenletExit), true);
    }

    /// [`Greenlet::kill_nowait`] through the untyped handle.
    ///
    /// # Panics
    /// As [`GreenletRef::kill`].
    ///
    /// # Examples
    /// ```
    /// let r = green_core::spawn(|| green_core::sleep(std::time::Duration::from_secs(5))).as_ref();
    /// green_core::yield_now();
    /// r.kill_nowait();
    /// r.join();
    /// assert!(r.exception().unwrap().is_exit());
    /// ```
    #[track_caller]
    pub fn kill_nowait(&self) {
        kill_core(&self.core, Box::new(GreenletExit), false);
    }

    /// Whether both handles name the same greenlet.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| ());
    /// assert!(g.as_ref().ptr_eq(&g.as_ref()));
    /// ```
    pub fn ptr_eq(&self, other: &GreenletRef) -> bool {
        self.core.core().id == other.core.core().id
    }

    /// The typed handle, if this greenlet returns `T`.
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| 1_u8);
    /// let untyped = g.as_ref();
    /// assert!(untyped.downcast::<u8>().is_some());
    /// assert!(untyped.downcast::<String>().is_none());
    /// ```
    pub fn downcast<T: 'static>(&self) -> Option<Greenlet<T>> {
        let core: Rc<dyn AsCore> = Rc::clone(&self.core);
        let any: Rc<dyn Any> = core;
        any.downcast::<Inner<T>>()
            .ok()
            .map(|inner| Greenlet { inner })
    }
}

impl fmt::Display for GreenletRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_core(self.core.core(), f)
    }
}

impl fmt::Debug for GreenletRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_core(self.core.core(), f)
    }
}

/// The running greenlet (gevent's `getcurrent()`).
///
/// # Panics
/// Inside the hub itself (a rawlink callback), where no greenlet runs.
///
/// # Examples
/// ```
/// let me = green_core::current();
/// assert!(me.is_main());
/// let g = green_core::spawn(|| green_core::current().name());
/// assert_eq!(g.get().unwrap(), g.name());
/// ```
pub fn current() -> GreenletRef {
    let hub = hub();
    GreenletRef {
        core: hub.current_for_blocking(),
        _not_send: PhantomData,
    }
}

// ===== shared machinery =====

fn spawning_greenlet_of(core: &Core) -> Option<GreenletRef> {
    let spawner = core.parent.as_ref()?.upgrade()?;
    Some(GreenletRef {
        core: spawner,
        _not_send: PhantomData,
    })
}

fn fmt_core(core: &Core, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(
        f,
        "<Greenlet \"{}\" #{}>",
        display_name(core),
        minimal_ident(core)
    )
}

fn debug_core(core: &Core, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.debug_struct("Greenlet")
        .field("name", &display_name(core))
        .field("state", &core.state.get())
        .field("spawned_at", &format_args!("{}", core.spawn_site))
        .finish()
}

/// Wraps a typed link callback: at fire time it gets the dead greenlet's
/// record and sees it as the `Greenlet<T>` it was registered on.
fn typed_link<T: 'static>(f: impl FnOnce(&Greenlet<T>) + 'static) -> state::LinkFn {
    Box::new(move |core: &CoreRef| {
        let core: CoreRef = Rc::clone(core);
        let any: Rc<dyn Any> = core;
        let inner = any
            .downcast::<Inner<T>>()
            .unwrap_or_else(|_| unreachable!("a link fires with the greenlet it was added to"));
        f(&Greenlet { inner });
    })
}

/// A greenlet started by a destructor during teardown's last drops dies
/// unrun, with a warning.
#[cold]
fn refuse_start(core: &CoreRef) {
    let name = display_name(core.core());
    tracing::warn!(greenlet = %name, "not started: its hub is being torn down");
    kill_core(core, Box::new(GreenletExit), false);
}

/// The body of every greenlet's fiber (S5: `me` keeps it alive).
fn run_greenlet<T: 'static, F: FnOnce() -> T>(me: Rc<Inner<T>>, f: F) {
    let hub = hub();
    let core = &me.core;
    core.state.set(State::Running);
    // The greenlet that finished just before us may have switched here.
    hub.reap_dead();
    let parent_died = core.needs_live_parent.get()
        && core
            .parent
            .as_ref()
            .is_some_and(|p| p.upgrade().is_none_or(|p| p.core().is_dead()));
    let result: Result<T, Payload> = if parent_died {
        drop(f);
        Err(Box::new(GreenletExit))
    } else {
        core.started.set(true);
        panic::catch_unwind(AssertUnwindSafe(f))
    };
    drop_locals(hub, core);
    match result {
        Ok(value) => {
            *me.value.borrow_mut() = Some(value);
            // A kill or timeout that never got delivered dies with it.
            // (A kill raised in that drop is dropped too: it is finishing.)
            if let Some(undelivered) = core.throw.take() {
                let _ = hub.drop_guarded(undelivered, core, "dropping an undelivered kill");
            }
            core.set_outcome(true, None);
        }
        Err(payload) => {
            // A kill held back while it unwound (U3) was never delivered:
            // dropped guarded here, not overwritten on its root.
            if let Some(undelivered) = core.throw.take() {
                let _ = hub.drop_guarded(undelivered, core, "dropping an undelivered kill");
            }
            record_death(core, payload);
        }
    }
    drop_unobserved_outcome(hub, &me);
    let me_ref: CoreRef = me;
    let joiner = hub.on_death_handing_off(&me_ref);
    hub.leave_finished(me_ref.core(), joiner);
    // Its last reference may still hold user data (a spawn-tree value, a
    // link): the hub drops it guarded (H1), not this fiber's root.
    if Rc::strong_count(&me_ref) > 1 {
        // A handle or a joiner holds it still (the common case).
        drop(me_ref);
    } else {
        hub.release_record(me_ref, false);
    }
}

/// Drops a finishing greenlet's greenlet-local values on its own stack, its
/// body over but its outcome not stored yet: a destructor may block like any
/// code of the greenlet (a kill still pending is raised there, and ends that
/// destructor), and a panic in one is reported against it.
fn drop_locals(hub: &crate::hub::Hub, core: &state::Core) {
    // One at a time, newest first. A destructor may make a value again (by
    // using a local already dropped): bounded, so that one doing so each
    // time cannot keep the greenlet from finishing.
    let mut budget = 4 * core.local_count() + 8;
    while budget > 0 {
        let Some(value) = core.take_last_local() else {
            return;
        };
        budget -= 1;
        let _ = hub.drop_guarded(value, core, "dropping a greenlet-local value");
    }
}

/// Drops a finished greenlet's value and death payload here, on its own
/// stack and while it is still current, when nothing can ever read them: no
/// handle but its own (and the hub's `current`), no link. A destructor there
/// may block or be killed like any code of the greenlet, and a panic in it is
/// reported against this greenlet (H1). Otherwise they go with the last
/// handle, wherever that is dropped.
fn drop_unobserved_outcome<T: 'static>(hub: &crate::hub::Hub, me: &Rc<Inner<T>>) {
    let core = &me.core;
    if !core.links.borrow().is_empty() {
        return;
    }
    let internal = 1 + usize::from(hub.is_current(core));
    if Rc::strong_count(me) != internal {
        return;
    }
    // A kill or timeout raised while these drop is dropped too: the
    // greenlet is finishing anyway.
    if let Some(value) = me.value.borrow_mut().take() {
        let _ = hub.drop_guarded(value, core, "dropping the value");
    }
    if let Some(payload) = core.throw.take() {
        let _ = hub.drop_guarded(payload, core, "dropping the panic payload");
    }
}
