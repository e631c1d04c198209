//! Small `Timeout` contracts.
//!
//! (`Timeout` must be `!Send`, so that a started one is never dropped on
//! another thread, where cancelling cannot reach its hub. A negative trait
//! bound can only be checked by a `compile_fail` doctest in the crate's own
//! sources, so it is not tested here.)

#[allow(unreachable_pub)] // The shared fixtures are `pub` for every test binary.
mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use green_core::{run, sleep, spawn, Timeout};
use support::{catch, panic_message, within, MS};

const LIMIT: Duration = Duration::from_secs(10);

/// "Timeout::start_new inside a rawlink panics with a message saying that a
/// rawlink cannot start a Timeout (not the generic 'a blocking call was made
/// inside the hub')."
#[test]
fn starting_a_timeout_in_a_rawlink_says_a_rawlink_cannot_start_a_timeout() {
    let message = within(LIMIT, || {
        run(|| {
            let seen = Rc::new(RefCell::new(None));
            let s = Rc::clone(&seen);
            let g = spawn(|| ());
            g.rawlink(move |_| {
                let r = catch(|| Timeout::start_new(Duration::from_millis(50)));
                *s.borrow_mut() = Some(r.map(drop).map_err(|p| panic_message(&*p)));
            });
            g.join();
            sleep(5 * MS); // The rawlink fires from the hub.
            let seen = seen.borrow_mut().take();
            seen.expect("the rawlink ran")
        })
    });
    let message = message.expect_err("starting a Timeout in a rawlink must panic");
    assert!(
        message.contains("rawlink") && message.contains("Timeout"),
        "the message says a rawlink cannot start a Timeout: {message}"
    );
}
