//! Catching panics without swallowing kills and timeouts.
//!
//! green-core delivers [`Greenlet::kill`](crate::Greenlet::kill) and
//! [`Timeout`](crate::Timeout) by unwinding the greenlet, as a panic does.
//! So `std::panic::catch_unwind` around a blocking call catches them too: a
//! kill is then lost (the greenlet goes on as if nothing happened), and an
//! outer `Timeout::run` returns `Ok` because its timeout never reached it.
//! [`catch_unwind`] is the safe form: it catches the panics of your code and
//! lets green-core's own unwinds continue.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};

use crate::error::is_green_core_payload;
use crate::hub::existing_hub;

/// `std::panic::catch_unwind` that lets kills and timeouts through: a panic
/// of `f` comes back as `Err`, while a [`GreenletExit`](crate::GreenletExit),
/// a [`KillPayload`](crate::KillPayload) or a [`Timeout`](crate::Timeout)
/// raised inside `f` goes on unwinding to whoever it is meant for.
///
/// Unlike `std::panic::catch_unwind` it does not ask for `UnwindSafe`: it is
/// meant around a request handler or a task, whose state the caller drops
/// or rebuilds after a panic (wrap in `AssertUnwindSafe` is what users
/// write there anyway).
///
/// # Errors
/// The panic payload, when `f` panicked.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use green_core::{sleep, Timeout};
///
/// // A panic of the code inside is caught...
/// let r = green_core::catch_unwind(|| -> u8 { panic!("bad input") });
/// assert_eq!(green_core::panic_message(&*r.unwrap_err()), "bad input");
///
/// // ...but the outer timeout still reaches its scope.
/// let outer = Timeout::run(Duration::from_millis(5), || {
///     let _ = green_core::catch_unwind(|| sleep(Duration::from_secs(10)));
///     "not reached"
/// });
/// assert!(outer.is_err());
/// ```
pub fn catch_unwind<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => Ok(value),
        Err(payload) if is_green_core_payload(&*payload) => panic::resume_unwind(payload),
        Err(payload) => {
            // The greenlet's unwind is over (U1 in the hub's docs): counted,
            // unlike one `std::panic::catch_unwind` caught.
            if let Some(hub) = existing_hub() {
                hub.caught_in_current(&*payload);
            }
            Err(payload)
        }
    }
}

/// Whether a panic payload is one of green-core's own unwinds, a kill
/// ([`GreenletExit`](crate::GreenletExit), [`KillPayload`](crate::KillPayload))
/// or a [`Timeout`](crate::Timeout), rather than a panic of user code. Code
/// that catches unwinds by hand must resume these
/// (`std::panic::resume_unwind`).
///
/// # Examples
/// ```
/// let g = green_core::spawn(|| {
///     let caught = std::panic::catch_unwind(|| green_core::sleep(std::time::Duration::from_secs(9)));
///     let payload = caught.unwrap_err();
///     assert!(green_core::is_kill_or_timeout(&*payload));
///     std::panic::resume_unwind(payload); // let the kill finish its work
/// });
/// green_core::yield_now();
/// g.kill();
/// assert!(g.exception().unwrap().is_exit());
/// ```
pub fn is_kill_or_timeout(payload: &(dyn Any + Send)) -> bool {
    is_green_core_payload(payload)
}

/// The text of a panic payload: the `&str` or `String` most panics carry,
/// the message of green-core's own payloads (`LoopExit`, kills, timeouts),
/// or a placeholder naming a payload of another type.
///
/// # Examples
/// ```
/// let payload = std::panic::catch_unwind(|| panic!("code {}", 7)).unwrap_err();
/// assert_eq!(green_core::panic_message(&*payload), "code 7");
/// ```
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    crate::error::payload_message(payload)
}
