//! Small `Timeout` contracts: a clear message when a rawlink starts one, and
//! a started one moved to another thread is still cancelled when dropped
//! there (`Timeout` is `Send`: it is also the payload raised and the error
//! `Timeout::run` returns).

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

/// "Dropping a started Timeout on another thread cancels it": the greenlet
/// that started it sleeps past its deadline undisturbed.
#[test]
fn a_started_timeout_dropped_on_another_thread_never_fires() {
    let outcome = within(LIMIT, || {
        run(|| {
            let t = Timeout::start_new(Duration::from_millis(30));
            std::thread::spawn(move || drop(t)).join().unwrap();
            let slept = catch(|| sleep(Duration::from_millis(150)));
            slept.map_err(|p| panic_message(&*p))
        })
    });
    assert!(outcome.is_ok(), "the dropped timeout fired: {outcome:?}");
}

/// The same for a timeout whose timer was already armed (its greenlet had
/// blocked once before the drop), and one cancelled rather than dropped.
#[test]
fn an_armed_timeout_cancelled_on_another_thread_never_fires() {
    let outcome = within(LIMIT, || {
        run(|| {
            let t = Timeout::start_new(Duration::from_millis(60));
            sleep(Duration::from_millis(1)); // arms its timer
            std::thread::spawn(move || {
                t.cancel();
                drop(t);
            })
            .join()
            .unwrap();
            let slept = catch(|| sleep(Duration::from_millis(200)));
            slept.map_err(|p| panic_message(&*p))
        })
    });
    assert!(outcome.is_ok(), "the cancelled timeout fired: {outcome:?}");
}
