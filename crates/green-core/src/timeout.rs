//! `Timeout`: raise into the greenlet that started it, at its next blocking
//! point, once a duration has passed (gevent's `Timeout`).
//!
//! A timeout fires by unwinding: the greenlet's pending blocking call panics
//! with the `Timeout` itself as the payload (`std::panic::resume_unwind`, so no
//! panic message is printed). [`Timeout::run`] is the `with Timeout(...)`
//! block: it catches its own timeout and lets any other (an outer one, a kill)
//! keep unwinding, which is gevent's `if t is not timeout: raise`.

use std::any::Any;
use std::cell::Cell;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use green_ctx::Payload;
use green_loop::{Loop, TimerId};

use crate::greenlet::state::{Catcher, State};
use crate::hub::{deadline_after, existing_hub, hub, Hub, TimeoutEntry};

/// Timeout ids are unique in the process: each thread takes a block of 2^32
/// from a global counter once, then counts within it without atomics.
static NEXT_ID_BLOCK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

thread_local! {
    static NEXT_ID: Cell<u64> = const { Cell::new(0) };
}

fn next_timeout_id() -> u64 {
    NEXT_ID.with(|next| {
        let mut id = next.get();
        if id & 0xffff_ffff == 0 {
            id = NEXT_ID_BLOCK.fetch_add(1, std::sync::atomic::Ordering::Relaxed) << 32 | 1;
        }
        next.set(id + 1);
        id
    })
}

/// A timeout: once started, it raises itself in the greenlet that started it
/// at that greenlet's next blocking point after `duration`, unless cancelled
/// first. Dropping a started `Timeout` cancels it.
///
/// `Timeout::new(None)` never fires. A zero duration fires at the next loop
/// iteration.
///
/// # `catch_unwind` swallows timeouts
/// A timeout unwinds the greenlet from its blocking call. A
/// `std::panic::catch_unwind` between the blocking call and the scope
/// catches it, and the scope then returns `Ok`: use
/// [`green_core::catch_unwind`](crate::catch_unwind), which lets it through.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use green_core::{sleep, Timeout};
///
/// let r = Timeout::run(Duration::from_millis(10), || sleep(Duration::from_secs(5)));
/// assert!(r.is_err());
/// let r = Timeout::run(Duration::from_secs(5), || 7);
/// assert_eq!(r.unwrap(), 7);
/// ```
pub struct Timeout {
    id: u64,
    duration: Option<Duration>,
    /// While started: the hub's timeout-slab entry.
    armed: ArmedSlot,
}

/// A `Timeout`'s [`Armed`], readable from any thread (so that `Timeout`,
/// an error type, is `Sync`). Written only by the thread that starts or
/// cancels it; the fields are separate words, stored before `key` and read
/// after it. Two threads cancelling one `Timeout` at once may both see it
/// armed: each withdrawal checks the entry's serial, so the second finds
/// nothing to withdraw.
struct ArmedSlot {
    /// `Armed::key`; `usize::MAX` while not started.
    key: AtomicUsize,
    serial: AtomicU64,
    epoch: AtomicU64,
    owner_key: AtomicU32,
    owner_id: AtomicU64,
}

impl ArmedSlot {
    const NONE: usize = usize::MAX;

    const fn new() -> ArmedSlot {
        ArmedSlot {
            key: AtomicUsize::new(Self::NONE),
            serial: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            owner_key: AtomicU32::new(0),
            owner_id: AtomicU64::new(0),
        }
    }

    fn get(&self) -> Option<Armed> {
        let key = self.key.load(Ordering::Acquire);
        (key != Self::NONE).then(|| Armed {
            key,
            serial: self.serial.load(Ordering::Relaxed),
            epoch: self.epoch.load(Ordering::Relaxed),
            owner_key: self.owner_key.load(Ordering::Relaxed),
            owner_id: self.owner_id.load(Ordering::Relaxed),
        })
    }

    fn set(&self, armed: Armed) {
        self.serial.store(armed.serial, Ordering::Relaxed);
        self.epoch.store(armed.epoch, Ordering::Relaxed);
        self.owner_key.store(armed.owner_key, Ordering::Relaxed);
        self.owner_id.store(armed.owner_id, Ordering::Relaxed);
        self.key.store(armed.key, Ordering::Release);
    }

    fn take(&self) -> Option<Armed> {
        let armed = self.get()?;
        self.key.store(Self::NONE, Ordering::Relaxed);
        Some(armed)
    }
}

/// Where a started `Timeout` lives: its entry in one hub's slab (named
/// by that hub's epoch, so a `Timeout` outliving its hub, or sent to another
/// thread, never acts on a stranger's timer), and the greenlet it fires in.
#[derive(Clone, Copy)]
struct Armed {
    key: usize,
    /// The hub entry's serial: the key alone may have been reused.
    serial: u64,
    epoch: u64,
    owner_key: u32,
    owner_id: u64,
}

impl Timeout {
    /// A timeout of `duration` (`None`: never), not started.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let t = green_core::Timeout::new(Duration::from_secs(1)); // not started
    /// assert!(!t.pending());
    /// let never = green_core::Timeout::new(None); // never fires
    /// assert_eq!(never.duration(), None);
    /// ```
    pub fn new(duration: impl Into<Option<Duration>>) -> Timeout {
        Timeout {
            id: next_timeout_id(),
            duration: duration.into(),
            armed: ArmedSlot::new(),
        }
    }

    /// A started timeout (gevent's `Timeout.start_new`).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let t = green_core::Timeout::start_new(Duration::from_millis(1));
    /// let caught = std::panic::catch_unwind(|| green_core::sleep(Duration::from_secs(10)));
    /// assert!(t.is(&*caught.unwrap_err())); // raised at the blocking call
    /// ```
    #[track_caller]
    pub fn start_new(duration: impl Into<Option<Duration>>) -> Timeout {
        let t = Timeout::new(duration);
        t.start();
        t
    }

    /// The duration given.
    ///
    /// # Examples
    /// ```
    /// let t = green_core::Timeout::new(std::time::Duration::from_secs(2));
    /// assert_eq!(t.duration(), Some(std::time::Duration::from_secs(2)));
    /// ```
    pub fn duration(&self) -> Option<Duration> {
        self.duration
    }

    /// Starts the countdown in the running greenlet. A `None` duration does
    /// nothing.
    ///
    /// # Panics
    /// If already pending, or when called inside the hub (no greenlet runs
    /// there to raise into).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let t = green_core::Timeout::new(Duration::from_millis(1));
    /// t.start();
    /// let caught = std::panic::catch_unwind(|| green_core::sleep(Duration::from_secs(5)));
    /// assert!(t.is(&*caught.unwrap_err()));
    /// ```
    #[track_caller]
    pub fn start(&self) {
        if self.pending() {
            panic!("green-core: {self} is already started");
        }
        let Some(duration) = self.duration else {
            return;
        };
        let hub = hub();
        // A zero timeout is due at the loop's clock: it fires at the next
        // iteration rather than at the next millisecond.
        let deadline = deadline_after(duration);
        let serial = hub.next_timeout_serial.get() + 1;
        hub.next_timeout_serial.set(serial);
        let started = hub.with_current(|me| {
            let entry = TimeoutEntry {
                core: Rc::downgrade(me),
                id: self.id,
                duration: self.duration,
                serial,
                deadline,
                catcher: Catcher {
                    unwind_depth: hub.unwind_depth(me.core()),
                    uninterruptible: me.core().uninterruptible.get(),
                },
                timer: None,
            };
            let key = hub.timeouts.borrow_mut().insert(entry);
            (hub.register_live(me), me.core().id, key)
        });
        let Some((owner_key, owner_id, key)) = started else {
            started_in_hub();
        };
        // The timer goes in when this greenlet next blocks (`arm_started`):
        // until then nothing can observe it, since a timeout is only ever
        // raised at a blocking point.
        hub.unarmed_timeouts.borrow_mut().push(key);
        self.armed.set(Armed {
            key,
            serial,
            epoch: hub.epoch(),
            owner_key,
            owner_id,
        });
    }

    /// The hub this timeout was started in, if it is still this thread's.
    fn own_hub(armed: &Armed) -> Option<&'static crate::hub::Hub> {
        existing_hub().filter(|hub| hub.epoch() == armed.epoch)
    }

    /// Whether it is started and has neither fired nor been cancelled.
    ///
    /// # Examples
    /// ```
    /// let t = green_core::Timeout::start_new(std::time::Duration::from_secs(5));
    /// assert!(t.pending());
    /// t.cancel();
    /// assert!(!t.pending());
    /// ```
    pub fn pending(&self) -> bool {
        let Some(armed) = self.armed.get() else {
            return false;
        };
        let Some(hub) = Self::own_hub(&armed) else {
            return false;
        };
        let timeouts = hub.timeouts.borrow();
        let Some(entry) = timeouts.get(armed.key).filter(|e| e.serial == armed.serial) else {
            return false;
        };
        match entry.timer {
            Some(timer) => hub.with_loop(|lp| lp.timer_pending(timer)),
            None => true,
        }
    }

    /// Stops it. If it fired but its greenlet has not raised it yet (it was
    /// in an uninterruptible wait), the raise is withdrawn too, whichever
    /// greenlet cancels.
    ///
    /// A started `Timeout` moved to another thread and cancelled (or dropped)
    /// there is cancelled too: the request reaches its hub, which withdraws
    /// it before it could fire.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let t = green_core::Timeout::start_new(Duration::from_millis(1));
    /// assert!(t.pending());
    /// t.cancel();
    /// assert!(!t.pending());
    /// green_core::sleep(Duration::from_millis(3)); // nothing is raised
    /// ```
    pub fn cancel(&self) {
        let Some(armed) = self.armed.take() else {
            return;
        };
        let Some(hub) = Self::own_hub(&armed) else {
            cancel_from_another_thread(&armed, self.id);
            return;
        };
        if withdraw_entry(hub, armed.key, armed.serial) {
            return;
        }
        withdraw_raise(hub, self.id, armed.owner_key, armed.owner_id);
    }

    /// Whether a panic payload is this timeout.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let t = green_core::Timeout::start_new(Duration::from_millis(1));
    /// let other = green_core::Timeout::new(Duration::from_millis(1));
    /// let payload = std::panic::catch_unwind(|| green_core::sleep(Duration::from_secs(5))).unwrap_err();
    /// assert!(t.is(&*payload) && !other.is(&*payload));
    /// ```
    pub fn is(&self, payload: &(dyn Any + Send)) -> bool {
        payload
            .downcast_ref::<Timeout>()
            .is_some_and(|t| t.id == self.id)
    }

    /// Runs `f` under a timeout of `duration` (the `with Timeout(d):` block).
    ///
    /// # Errors
    /// This scope's own `Timeout` if it fired inside `f`. Any other unwind,
    /// including an outer timeout, passes through.
    ///
    /// # Kill safety
    /// The timer is cancelled however `f` ends.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let fast = green_core::Timeout::run(Duration::from_secs(5), || 7);
    /// assert_eq!(fast.unwrap(), 7);
    /// let slow = green_core::Timeout::run(Duration::from_millis(1), || green_core::sleep(Duration::from_secs(5)));
    /// assert!(slow.is_err());
    /// ```
    #[track_caller]
    pub fn run<T>(
        duration: impl Into<Option<Duration>>,
        f: impl FnOnce() -> T,
    ) -> Result<T, Timeout> {
        let timeout = Timeout::start_new(duration);
        let result = panic::catch_unwind(AssertUnwindSafe(f));
        timeout.cancel();
        match result {
            Ok(value) => Ok(value),
            Err(payload) => match payload.downcast::<Timeout>() {
                Ok(fired) if fired.id == timeout.id => {
                    // Its unwind ends here (U1).
                    if let Some(hub) = existing_hub() {
                        hub.caught_in_current(&*fired);
                    }
                    Err(*fired)
                }
                Ok(other) => panic::resume_unwind(other),
                Err(payload) => panic::resume_unwind(payload),
            },
        }
    }
}

/// gevent's `with_timeout`: `f` under a timeout, `Err` if it fired.
///
/// # Errors
/// The timeout, if it fired inside `f`.
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// let r = green_core::with_timeout(Duration::from_millis(1), || {
///     green_core::sleep(Duration::from_secs(10));
/// });
/// assert!(r.is_err());
/// ```
#[track_caller]
pub fn with_timeout<T>(duration: Duration, f: impl FnOnce() -> T) -> Result<T, Timeout> {
    Timeout::run(duration, f)
}

/// gevent's `with_timeout(..., timeout_value=fallback)`: `f` under a
/// timeout, or `fallback` if it fired.
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// let answer = green_core::with_timeout_or(Duration::from_millis(1), "fallback", || {
///     green_core::sleep(Duration::from_secs(10));
///     "computed"
/// });
/// assert_eq!(answer, "fallback");
/// ```
#[track_caller]
pub fn with_timeout_or<T>(duration: Duration, fallback: T, f: impl FnOnce() -> T) -> T {
    Timeout::run(duration, f).unwrap_or(fallback)
}

/// `Timeout::start` inside the hub (a rawlink callback, a loop handler).
#[cold]
#[track_caller]
fn started_in_hub() -> ! {
    panic!(
        "green-core: a Timeout cannot be started inside a rawlink callback or an event-loop \
         handler: they run in the hub, where no greenlet runs to raise it into and nothing may \
         block; start it in a greenlet (use link() instead of rawlink(), or spawn one)"
    );
}

/// Withdraws the raise of timeout `id`, which fired, if its greenlet has
/// not seen it yet: from its `throw` slot (the next payload set aside is
/// pending then) or from among the payloads set aside.
fn withdraw_raise(hub: &Hub, id: u64, owner_key: u32, owner_id: u64) {
    let Some(owner) = hub.live_greenlet(owner_key, owner_id) else {
        return;
    };
    let c = owner.core();
    let is_it = |p: &Payload| p.downcast_ref::<Timeout>().is_some_and(|t| t.id == id);
    let throw = c.throw.take();
    match throw {
        Some(p) if is_it(&p) => c.restore_set_aside(),
        other => c.throw.set(other),
    }
    c.withdraw_set_aside(is_it);
    // Deferred behind a wake-up that came first (Q3): still in the queue.
    hub.withdraw_deferred_throw(c, is_it);
}

/// Withdraws a started timeout that has not fired: its timer, or its place
/// in the queue of timers still to arm. Returns whether it was there.
fn withdraw_entry(hub: &Hub, key: usize, serial: u64) -> bool {
    let mut timeouts = hub.timeouts.borrow_mut();
    if timeouts.get(key).is_none_or(|e| e.serial != serial) {
        return false;
    }
    let entry = timeouts.remove(key).expect("the entry was just found");
    drop(timeouts);
    match entry.timer {
        Some(timer) => {
            let cancelled = hub.with_loop(|lp| lp.cancel_timer(timer));
            debug_assert!(cancelled, "a timeout's timer outlived its entry");
        }
        None => {
            let mut unarmed = hub.unarmed_timeouts.borrow_mut();
            if let Some(at) = unarmed.iter().rposition(|&k| k == key) {
                unarmed.remove(at);
            }
        }
    }
    true
}

/// One timeout cancelled from another thread: its entry, and (in case it
/// fired meanwhile) its identity and greenlet, to withdraw its raise.
#[derive(Clone, Copy, PartialEq, Eq)]
struct ForeignCancel {
    key: usize,
    serial: u64,
    id: u64,
    owner_key: u32,
    owner_id: u64,
}

/// Cancellations of one hub's timeouts asked for from other threads: a
/// started `Timeout` is `Send` (it is also the payload and the error), so it
/// may be cancelled or dropped on a thread that is not its hub's.
pub(crate) struct ForeignCancels {
    epoch: u64,
    /// Set when `list` is not empty: the hub's only cost is one load of it.
    pending: AtomicBool,
    /// The timeouts to withdraw.
    list: Mutex<Vec<ForeignCancel>>,
}

impl ForeignCancels {
    /// Whether a request waits.
    pub(crate) fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }
}

/// The hubs alive in the process that have timeouts cancellable from
/// elsewhere, by epoch.
static FOREIGN_CANCELS: Mutex<Vec<Arc<ForeignCancels>>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics while holding these locks; never let a poisoned one
    // stop a cancel.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Makes a hub's timeouts cancellable from other threads (at hub start).
pub(crate) fn register_hub(epoch: u64) -> Arc<ForeignCancels> {
    let cancels = Arc::new(ForeignCancels {
        epoch,
        pending: AtomicBool::new(false),
        list: Mutex::new(Vec::new()),
    });
    lock(&FOREIGN_CANCELS).push(Arc::clone(&cancels));
    cancels
}

/// The end of [`register_hub`] (at teardown): later requests find no hub,
/// and its timeouts cannot fire any more anyway.
pub(crate) fn unregister_hub(epoch: u64) {
    lock(&FOREIGN_CANCELS).retain(|c| c.epoch != epoch);
}

/// [`Timeout::cancel`] on a thread that is not its hub's.
fn cancel_from_another_thread(armed: &Armed, id: u64) {
    let registry = lock(&FOREIGN_CANCELS);
    if let Some(cancels) = registry.iter().find(|c| c.epoch == armed.epoch) {
        lock(&cancels.list).push(ForeignCancel {
            key: armed.key,
            serial: armed.serial,
            id,
            owner_key: armed.owner_key,
            owner_id: armed.owner_id,
        });
        cancels.pending.store(true, Ordering::Release);
    }
}

/// Withdraws the timeouts other threads cancelled (the hub calls it before
/// each loop iteration, and a firing timeout checks for itself).
pub(crate) fn withdraw_foreign_cancels(hub: &Hub, cancels: &ForeignCancels) {
    let list = {
        let mut list = lock(&cancels.list);
        cancels.pending.store(false, Ordering::Relaxed);
        std::mem::take(&mut *list)
    };
    for cancel in list {
        if !withdraw_entry(hub, cancel.key, cancel.serial) {
            // It fired meanwhile: withdraw its raise instead.
            withdraw_raise(hub, cancel.id, cancel.owner_key, cancel.owner_id);
        }
    }
}

/// Whether another thread cancelled the timeout at `key` with `serial`
/// (removing the request).
fn cancelled_elsewhere(cancels: &ForeignCancels, key: usize, serial: u64) -> bool {
    take_request(cancels, |c| c.key == key && c.serial == serial)
}

/// Whether another thread cancelled the timeout `payload` (one that fired
/// and is about to be raised), removing the request.
pub(crate) fn cancelled_elsewhere_after_firing(
    _hub: &Hub,
    cancels: &ForeignCancels,
    payload: &(dyn Any + Send),
) -> bool {
    let Some(fired) = payload.downcast_ref::<Timeout>() else {
        return false;
    };
    take_request(cancels, |c| c.id == fired.id)
}

/// Removes the first request `matches` picks; whether there was one.
fn take_request(cancels: &ForeignCancels, matches: impl Fn(&ForeignCancel) -> bool) -> bool {
    let mut list = lock(&cancels.list);
    match list.iter().position(matches) {
        Some(at) => {
            list.swap_remove(at);
            cancels.pending.store(!list.is_empty(), Ordering::Relaxed);
            true
        }
        None => false,
    }
}

impl Drop for Timeout {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl Clone for Timeout {
    /// A copy with the same identity (it matches the same payloads) that is
    /// not itself started.
    fn clone(&self) -> Self {
        Timeout {
            id: self.id,
            duration: self.duration,
            armed: ArmedSlot::new(),
        }
    }
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.duration {
            Some(d) => write!(f, "timeout after {d:?}"),
            None => f.write_str("timeout (never fires)"),
        }
    }
}

impl fmt::Debug for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("id", &self.id)
            .field("duration", &self.duration)
            .field("started", &self.armed.get().is_some())
            .finish()
    }
}

impl std::error::Error for Timeout {}

/// Inserts the timers of every timeout started since the last park, in the
/// order they were started (so that, as when timers go in at `start`,
/// timeouts due together fire outer first). Called by `Hub::park_as` when the
/// list is not empty.
#[cold]
#[inline(never)]
pub(crate) fn arm_started(hub: &Hub) {
    // Inserting a timer runs no handler, so both borrows can be held.
    let mut unarmed = hub.unarmed_timeouts.borrow_mut();
    let mut timeouts = hub.timeouts.borrow_mut();
    hub.with_loop(|lp| {
        for key in unarmed.drain(..) {
            if let Some(entry) = timeouts.get_mut(key) {
                if entry.timer.is_none() {
                    entry.timer = Some(lp.add_timer(entry.deadline, fire_timeout, key as u64));
                }
            }
        }
    });
}

/// Loop handler: the timeout fired; raise it in its greenlet (S2).
fn fire_timeout(_lp: &Loop, _timer: TimerId, key: u64) {
    let Some(hub) = existing_hub() else { return };
    let Some(entry) = hub.timeouts.borrow_mut().remove(key as usize) else {
        return;
    };
    if hub
        .foreign_cancels()
        .is_some_and(|c| cancelled_elsewhere(&c, key as usize, entry.serial))
    {
        return;
    }
    let Some(core) = entry.core.upgrade() else {
        return;
    };
    let c = core.core();
    if c.is_dead() {
        return;
    }
    let fired: Payload = Box::new(Timeout {
        id: entry.id,
        duration: entry.duration,
        armed: ArmedSlot::new(),
    });
    match c.throw.take() {
        None => {
            c.throw.set(Some(fired));
            c.throw_catcher.set(entry.catcher);
        }
        Some(waiting) => {
            if !c.catcher_admits(c.throw_catcher.get()) && c.catcher_admits(entry.catcher) {
                // The payload waiting may not be raised yet (its greenlet
                // unwinds deeper than its catcher) while this timeout may
                // (its scope is inside that unwind, in a destructor): the
                // timeout goes first, the other after (U3).
                c.set_aside(waiting, c.throw_catcher.get());
                c.throw.set(Some(fired));
                c.throw_catcher.set(entry.catcher);
            } else {
                // A kill waiting wins; another timeout due at the same time
                // goes first. This one waits its turn.
                c.throw.set(Some(waiting));
                c.set_aside(fired, entry.catcher);
            }
        }
    }
    if c.state.get() == State::Parked {
        hub.schedule(&core);
    }
}
