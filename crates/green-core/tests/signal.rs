//! `green_core::signal::signal`: a handler runs in a new greenlet per
//! delivery, cancel stops it and restores the mask, several signals and
//! several handlers, a blocking handler does not hold up the hub, bad
//! signal numbers are clear errors, and the watcher does not keep the loop
//! alive (gevent's `ref=False`).
//!
//! Signals are sent with `raise`, to the test's own thread, where the
//! handler's watcher blocks them: the harness's other threads never see
//! them. What happens after the last cancel (the default action ends the
//! process) is checked in a child process.

#[allow(unreachable_pub)] // The shared fixtures are `pub` for every test binary.
mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use green_core::signal::signal;
use green_core::{sleep, spawn};
use support::{wait_for, CHILD_LIMIT, MS};

const CHILD_ENV: &str = "GREEN_CORE_SIGNAL_CHILD";

/// Sends `signum` to the calling thread.
fn raise(signum: i32) {
    // SAFETY: raise takes no pointers; the signal goes to this thread only.
    let rc = unsafe { libc::raise(signum) };
    assert_eq!(rc, 0, "raise({signum})");
}

#[test]
fn handler_runs_in_a_new_greenlet_once_per_delivery() {
    green_core::run(|| {
        let runs: Rc<RefCell<Vec<green_core::GreenletRef>>> = Rc::default();
        let seen = Rc::clone(&runs);
        let handle = signal(libc::SIGUSR1, move || {
            // A new greenlet each time: the one of the last run is over.
            assert!(seen.borrow().iter().all(|r| r.dead()));
            seen.borrow_mut().push(green_core::current());
        })
        .unwrap();
        assert_eq!(handle.signum(), libc::SIGUSR1);
        assert!(handle.is_active());
        raise(libc::SIGUSR1);
        wait_for("the first delivery", || runs.borrow().len() == 1);
        raise(libc::SIGUSR1);
        wait_for("the second delivery", || runs.borrow().len() == 2);
        // Settle: no third run appears from two deliveries.
        sleep(20 * MS);
        let refs = runs.borrow().clone();
        assert_eq!(refs.len(), 2, "one run per delivery");
        assert!(refs
            .iter()
            .all(|r| !r.is_main() && r.dead() && r.successful()));
        handle.cancel();
        assert!(!handle.is_active());
        handle.cancel(); // a second cancel does nothing
    });
}

#[test]
fn cancel_stops_one_handler_and_others_of_the_signal_go_on() {
    green_core::run(|| {
        let a = Rc::new(Cell::new(0));
        let b = Rc::new(Cell::new(0));
        let (a2, b2) = (Rc::clone(&a), Rc::clone(&b));
        let ha = signal(libc::SIGUSR2, move || a2.set(a2.get() + 1)).unwrap();
        let hb = signal(libc::SIGUSR2, move || b2.set(b2.get() + 1)).unwrap();
        raise(libc::SIGUSR2);
        wait_for("both handlers", || a.get() == 1 && b.get() == 1);
        ha.cancel();
        raise(libc::SIGUSR2);
        wait_for("the second handler again", || b.get() == 2);
        sleep(20 * MS);
        assert_eq!(a.get(), 1, "a cancelled handler does not run");
        hb.cancel();
    });
}

#[test]
fn dropping_the_handle_keeps_the_handler() {
    green_core::run(|| {
        let hits = Rc::new(Cell::new(0));
        let h = Rc::clone(&hits);
        // The handle goes out of scope at once.
        let _ = signal(libc::SIGWINCH, move || h.set(h.get() + 1)).unwrap();
        raise(libc::SIGWINCH);
        wait_for("the handler of a dropped handle", || hits.get() == 1);
    });
    // The hub's teardown took the handler and restored the mask: SIGWINCH's
    // default action is to be ignored, so raising it again is harmless and
    // no handler runs (there is no hub).
    raise(libc::SIGWINCH);
}

#[test]
fn handlers_for_different_signals() {
    green_core::run(|| {
        let log: Rc<RefCell<Vec<&str>>> = Rc::default();
        let (l1, l2, l3) = (Rc::clone(&log), Rc::clone(&log), Rc::clone(&log));
        let h1 = signal(libc::SIGUSR1, move || l1.borrow_mut().push("usr1")).unwrap();
        let h2 = signal(libc::SIGUSR2, move || l2.borrow_mut().push("usr2")).unwrap();
        let h3 = signal(libc::SIGHUP, move || l3.borrow_mut().push("hup")).unwrap();
        raise(libc::SIGHUP);
        wait_for("hup", || log.borrow().len() == 1);
        raise(libc::SIGUSR1);
        wait_for("usr1", || log.borrow().len() == 2);
        raise(libc::SIGUSR2);
        wait_for("usr2", || log.borrow().len() == 3);
        assert_eq!(*log.borrow(), ["hup", "usr1", "usr2"]);
        for h in [h1, h2, h3] {
            h.cancel();
        }
    });
}

#[test]
fn a_blocking_handler_does_not_block_the_hub() {
    green_core::run(|| {
        let ticks = Rc::new(Cell::new(0u32));
        let state = Rc::new(Cell::new("idle"));
        let t = Rc::clone(&ticks);
        let ticker = spawn(move || loop {
            t.set(t.get() + 1);
            sleep(2 * MS);
        });
        let s = Rc::clone(&state);
        let handle = signal(libc::SIGUSR1, move || {
            s.set("sleeping");
            sleep(Duration::from_secs(60));
            s.set("woke");
        })
        .unwrap();
        raise(libc::SIGUSR1);
        wait_for("the handler to block", || state.get() == "sleeping");
        let before = ticks.get();
        wait_for("ticks while the handler sleeps", || {
            ticks.get() >= before + 5
        });
        assert_eq!(state.get(), "sleeping");
        handle.cancel();
        ticker.kill();
        // The handler's greenlet is killed by the run's teardown.
    });
}

#[test]
fn a_panicking_handler_is_reported_and_stays_registered() {
    green_core::run(|| {
        green_core::silence_failures();
        let runs = Rc::new(Cell::new(0));
        let r = Rc::clone(&runs);
        let handle = signal(libc::SIGUSR2, move || {
            r.set(r.get() + 1);
            panic!("handler fails");
        })
        .unwrap();
        raise(libc::SIGUSR2);
        wait_for("first run", || runs.get() == 1);
        raise(libc::SIGUSR2);
        wait_for("second run", || runs.get() == 2);
        handle.cancel();
        green_core::reset_failure_reporter();
    });
}

#[test]
fn bad_signal_numbers_are_clear_errors() {
    green_core::run(|| {
        for (signum, words) in [
            (0, "not a signal number"),
            (999, "not a signal number"),
            (-3, "not a signal number"),
            (libc::SIGKILL, "cannot be caught"),
            (libc::SIGSTOP, "cannot be caught"),
            (libc::SIGSEGV, "fault"),
            (libc::SIGBUS, "fault"),
            (32, "C library"),
        ] {
            let err = signal(signum, || {}).expect_err("refused");
            assert_eq!(
                err.kind(),
                std::io::ErrorKind::InvalidInput,
                "{signum}: {err}"
            );
            let message = err.to_string();
            assert!(message.contains(words), "{signum}: {message}");
            assert!(message.contains(&format!("signal({signum})")), "{message}");
        }
    });
}

#[test]
fn a_signal_handler_does_not_keep_the_loop_alive_unless_asked() {
    green_core::run(|| {
        let handle = signal(libc::SIGUSR1, || {}).unwrap();
        assert!(!handle.is_ref());
        // Nothing else is alive: waiting on an event no one can set ends in
        // LoopExit, as gevent's `Event().wait()` with a signal_handler does.
        let event = green_core::sync::Event::new();
        let ended = support::catch(|| event.wait());
        let payload = ended.expect_err("LoopExit, not a hang");
        assert!(payload.is::<green_core::LoopExit>());
        // With a reference, the handler is the program's work: the wait
        // lasts until the handler sets the event.
        let setter = event.clone();
        handle.cancel();
        let handle = signal(libc::SIGUSR1, move || setter.set()).unwrap();
        handle.set_ref(true);
        assert!(handle.is_ref());
        spawn(|| {
            sleep(5 * MS);
            raise(libc::SIGUSR1);
        });
        assert!(event.wait());
        handle.set_ref(false);
        handle.cancel();
    });
}

#[test]
fn cancel_restores_the_default_action() {
    let out = support::run_child(CHILD_ENV, "cancel_then_raise", CHILD_LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("HANDLED"), "stdout: {stdout}");
    assert!(!stdout.contains("SURVIVED"), "stdout: {stdout}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGUSR1),
        "after cancel SIGUSR1 ends the process, as before the handler: {:?}",
        out.status
    );
}

#[test]
fn a_thread_that_exits_with_a_handler_registered_ends_cleanly() {
    // At thread exit the hub's teardown and the handler table's destructor
    // run in either order: neither may touch the other after it is gone (a
    // panic in a TLS destructor aborts the process).
    let out = support::run_child(CHILD_ENV, "thread_exit_with_handler", CHILD_LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{:?}: {stdout}", out.status);
    assert!(stdout.contains("RESULT ok"), "stdout: {stdout}");
}

/// Not a test of its own: the body the child processes run.
#[test]
#[ignore = "child body"]
fn child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    match mode.as_str() {
        "cancel_then_raise" => green_core::run(|| {
            let hit = Rc::new(Cell::new(false));
            let h = Rc::clone(&hit);
            let handle = signal(libc::SIGUSR1, move || h.set(true)).unwrap();
            raise(libc::SIGUSR1);
            wait_for("the handler", || hit.get());
            println!("HANDLED");
            handle.cancel();
            raise(libc::SIGUSR1); // default action: the process ends here
            println!("SURVIVED");
        }),
        "thread_exit_with_handler" => {
            for _ in 0..4 {
                std::thread::spawn(|| {
                    // A lazily built hub, torn down at thread exit.
                    // The handles are dropped at once; the handlers stay.
                    let _ = signal(libc::SIGUSR1, || {}).unwrap();
                    let _ = signal(libc::SIGUSR2, || {}).unwrap();
                    sleep(MS);
                })
                .join()
                .unwrap();
            }
            println!("RESULT ok");
        }
        other => panic!("unknown child mode {other}"),
    }
}
