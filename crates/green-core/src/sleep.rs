//! Sleeping and yielding.

use std::time::Duration;

use crate::hub::{deadline_after, existing_hub, hub, TimerWake};

/// Suspends the running greenlet for at least `duration`, letting others and
/// I/O run. `sleep(Duration::ZERO)` is [`yield_now`].
///
/// # Panics
/// Inside the hub (a rawlink callback).
///
/// # Kill safety
/// Interruptible: a kill or timeout unwinds out of it and cancels the timer.
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// let napper = green_core::spawn(|| green_core::sleep(Duration::from_millis(2)));
/// green_core::sleep(Duration::from_millis(1)); // other greenlets run meanwhile
/// napper.join();
/// ```
#[track_caller]
pub fn sleep(duration: Duration) {
    if duration.is_zero() {
        yield_now();
    } else {
        sleep_inner(duration, true);
    }
}

/// Like [`sleep`], but the timer does not keep the loop alive (gevent's
/// `sleep(s, ref=False)`): if nothing else is left, the main greenlet's
/// `sleep_unref` fails with [`LoopExit`](crate::LoopExit).
///
/// # Kill safety
/// As [`sleep`].
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// // A background ticker that does not keep the thread's hub alive by itself.
/// let ticker = green_core::spawn(|| loop {
///     green_core::sleep_unref(Duration::from_millis(1));
/// });
/// green_core::sleep(Duration::from_millis(3));
/// ticker.kill();
/// ```
#[track_caller]
pub fn sleep_unref(duration: Duration) {
    sleep_inner(duration, false);
}

#[track_caller]
fn sleep_inner(duration: Duration, referenced: bool) {
    let hub = hub();
    let me = hub.current_for_blocking();
    let wake = hub.wake_at(&me, deadline_after(duration), referenced);
    let cancel = CancelWake(wake);
    while !cancel.0.fired(hub) {
        if !hub.park() {
            return;
        }
    }
}

/// Cancels a wake-up timer however the wait ends.
struct CancelWake(TimerWake);

impl Drop for CancelWake {
    fn drop(&mut self) {
        if let Some(hub) = existing_hub() {
            hub.cancel_wake(&self.0);
        }
    }
}

/// Yields to every greenlet already runnable, then resumes without waiting
/// for I/O (gevent's `sleep(0)`). A greenlet looping on it does not starve
/// timers or I/O: the hub polls the loop every few dozen switches.
///
/// # Kill safety
/// Interruptible.
///
/// # Examples
/// ```
/// let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
/// let l = log.clone();
/// let g = green_core::spawn(move || l.borrow_mut().push("greenlet"));
/// log.borrow_mut().push("before");
/// green_core::yield_now(); // the spawned greenlet runs here
/// log.borrow_mut().push("after");
/// g.join();
/// assert_eq!(*log.borrow(), ["before", "greenlet", "after"]);
/// ```
#[track_caller]
pub fn yield_now() {
    hub().yield_now();
}

/// Suspends until the loop has nothing else to do (gevent's `idle()`).
///
/// # Kill safety
/// Interruptible.
///
/// # Examples
/// ```
/// let g = green_core::spawn(|| 1);
/// green_core::idle(); // returns once nothing else is ready to run
/// assert!(g.dead());
/// ```
#[track_caller]
pub fn idle() {
    hub().idle();
}
