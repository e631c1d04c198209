//! A greenlet's observable state through its life (`ready`, `successful`,
//! `dead`, `is_alive`, `has_started`) and its results (`value`, `take_value`,
//! `exception`, `take_exception_payload`, `get`, `try_get`, `get_timeout`).

#[allow(unreachable_pub)] // support/mod.rs is shared; its `pub` items are crate-local here.
mod support;

use std::cell::{Cell, RefCell};
use std::panic;
use std::rc::Rc;
use std::time::{Duration, Instant};

use green_core::{current, run, sleep, spawn, spawn_later, yield_now, ErrorKind, Greenlet};
use support::{panic_message, DropCounter, Log};

/// A snapshot of the state predicates, for comparing whole states at once.
#[derive(Debug, PartialEq, Eq)]
struct Flags {
    ready: bool,
    successful: bool,
    dead: bool,
    is_alive: bool,
    has_started: bool,
}

fn flags<T: 'static>(g: &Greenlet<T>) -> Flags {
    Flags {
        ready: g.ready(),
        successful: g.successful(),
        dead: g.dead(),
        is_alive: g.is_alive(),
        has_started: g.has_started(),
    }
}

const UNSTARTED: Flags = Flags {
    ready: false,
    successful: false,
    dead: false,
    is_alive: false,
    has_started: false,
};

const RUNNING: Flags = Flags {
    ready: false,
    successful: false,
    dead: false,
    is_alive: true,
    has_started: true,
};

/// Finished without failing (returned, or died of `GreenletExit` after it ran).
const SUCCEEDED: Flags = Flags {
    ready: true,
    successful: true,
    dead: true,
    is_alive: false,
    has_started: true,
};

const FAILED: Flags = Flags {
    ready: true,
    successful: false,
    dead: true,
    is_alive: false,
    has_started: true,
};

/// A panic payload that is not a string.
#[derive(Debug, PartialEq, Eq)]
struct Oops(u32);

#[test]
fn a_new_greenlet_is_neither_alive_nor_ready_and_has_no_result() {
    run(|| {
        let g = Greenlet::new(|| 1);
        assert_eq!(flags(&g), UNSTARTED);
        assert_eq!(g.value(), None);
        assert!(g.exception().is_none());
        assert!(g.take_exception_payload().is_none());
        assert_eq!(g.try_get().unwrap_err().kind(), ErrorKind::NotReady);
    });
}

#[test]
fn a_started_greenlet_is_alive_before_its_first_run() {
    // gevent: after `start()`, `bool(g)` is true although the greenlet has
    // not run yet; it is not dead and not ready.
    run(|| {
        let g = spawn(|| 1);
        assert!(
            g.is_alive(),
            "a spawned greenlet is alive (gevent's bool(g))"
        );
        assert!(!g.has_started() && !g.dead() && !g.ready() && !g.successful());
        let later = spawn_later(Duration::from_secs(10), || 2);
        assert!(
            later.is_alive(),
            "a spawn_later greenlet is alive while it waits"
        );
        assert!(!later.has_started() && !later.dead());
        later.kill();
        g.join();
    });
}

#[test]
fn a_running_greenlet_sees_itself_alive_and_unfinished() {
    run(|| {
        let seen = Rc::new(RefCell::new(None));
        let s = Rc::clone(&seen);
        let g = spawn(move || {
            let me = current().downcast::<u8>().expect("a Greenlet<u8>");
            *s.borrow_mut() = Some((flags(&me), me.value(), me.exception().is_none()));
            3u8
        });
        g.join();
        let (f, value, no_exception) = seen.borrow_mut().take().expect("it ran");
        assert_eq!(f, RUNNING);
        assert_eq!(value, None);
        assert!(no_exception);
    });
}

#[test]
fn a_parked_greenlet_is_alive_and_not_ready() {
    run(|| {
        let g = spawn(|| {
            sleep(Duration::from_secs(10));
            1
        });
        yield_now();
        assert_eq!(flags(&g), RUNNING);
        assert_eq!(g.value(), None);
        assert!(g.exception().is_none());
        assert_eq!(g.try_get().unwrap_err().kind(), ErrorKind::NotReady);
        g.kill();
    });
}

#[test]
fn a_greenlet_that_returned_is_successful_with_its_value() {
    run(|| {
        let g = spawn(|| {
            sleep(Duration::from_millis(5));
            String::from("five")
        });
        g.join();
        assert_eq!(flags(&g), SUCCEEDED);
        assert_eq!(g.value().as_deref(), Some("five"));
        assert_eq!(
            g.value().as_deref(),
            Some("five"),
            "value() does not consume"
        );
        assert!(g.exception().is_none());
        assert!(g.take_exception_payload().is_none());
        assert_eq!(g.get().unwrap(), "five");
        assert_eq!(g.try_get().unwrap(), "five");
        assert_eq!(g.get_timeout(Duration::ZERO).unwrap(), "five");
    });
}

#[test]
fn a_greenlet_that_panicked_is_failed_with_its_message() {
    run(|| {
        let g = spawn(|| -> u32 { panic!("boom (expected by the test)") });
        g.join();
        assert_eq!(flags(&g), FAILED);
        assert_eq!(g.value(), None);
        let e = g.exception().expect("a failure is recorded");
        assert_eq!(e.kind(), ErrorKind::Panicked);
        assert!(e.message().contains("boom"), "{e}");
        assert!(!e.is_exit());
        let e = g.get().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Panicked);
        assert!(e.message().contains("boom"));
        assert_eq!(g.try_get().unwrap_err().kind(), ErrorKind::Panicked);
    });
}

#[test]
fn a_greenlet_killed_after_it_ran_is_successful_without_a_value() {
    run(|| {
        let g = spawn(|| {
            sleep(Duration::from_secs(10));
            1
        });
        yield_now();
        g.kill();
        assert_eq!(flags(&g), SUCCEEDED);
        assert_eq!(g.value(), None);
        let e = g.exception().expect("the kill is described");
        assert_eq!(e.kind(), ErrorKind::Exited);
        assert!(e.is_exit());
        assert_eq!(g.get().unwrap_err().kind(), ErrorKind::Exited);
        assert_eq!(g.try_get().unwrap_err().kind(), ErrorKind::Exited);
    });
}

#[test]
fn a_greenlet_killed_before_it_ran_is_dead_successful_and_never_started() {
    run(|| {
        let g = spawn(|| 1);
        g.kill();
        assert_eq!(
            flags(&g),
            Flags {
                has_started: false,
                ..SUCCEEDED
            }
        );
        assert_eq!(g.exception().map(|e| e.kind()), Some(ErrorKind::Exited));
    });
}

#[test]
fn take_value_hands_out_the_value_once() {
    run(|| {
        let g = spawn(|| vec![1, 2, 3]);
        g.join();
        assert_eq!(g.take_value(), Some(vec![1, 2, 3]));
        assert_eq!(g.take_value(), None);
        assert_eq!(g.value(), None);
        assert!(g.try_get().is_err(), "the value was taken");
        assert!(
            g.successful(),
            "taking the value does not change the outcome"
        );
    });
}

#[test]
fn take_value_works_for_values_that_are_not_clone_and_drops_them_once() {
    run(|| {
        let drops = DropCounter::new();
        let d = drops.clone();
        let g = spawn(move || d.token());
        g.join();
        assert_eq!(drops.drops(), 0, "the greenlet keeps its value");
        let token = g.take_value().expect("the returned token");
        assert!(g.take_value().is_none());
        drop(token);
        assert_eq!(drops.drops(), 1);
        drop(g);
        sleep(Duration::from_millis(5));
        assert_eq!(drops.drops(), 1);
    });
}

#[test]
fn an_untaken_value_is_dropped_once_with_the_greenlet() {
    run(|| {
        let drops = DropCounter::new();
        let d = drops.clone();
        let g = spawn(move || d.token());
        g.join();
        let h = g.clone();
        drop(g);
        assert_eq!(drops.drops(), 0, "a clone of the handle keeps it");
        drop(h);
        sleep(Duration::from_millis(5));
        assert_eq!(drops.drops(), 1);
    });
}

#[test]
fn take_exception_payload_hands_out_the_panic_payload_once() {
    run(|| {
        let g = spawn(|| panic::panic_any(Oops(42)));
        g.join();
        let payload = g.take_exception_payload().expect("the payload");
        assert_eq!(payload.downcast_ref::<Oops>(), Some(&Oops(42)));
        assert!(g.take_exception_payload().is_none());
        let e = g
            .exception()
            .expect("still described after the payload was taken");
        assert_eq!(e.kind(), ErrorKind::Panicked);
        assert!(!g.successful());
    });
}

#[test]
fn take_exception_payload_of_a_string_panic_carries_the_message() {
    run(|| {
        let g = spawn(|| panic!("formatted {} (expected by the test)", 7));
        g.join();
        let payload = g.take_exception_payload().expect("the payload");
        assert!(panic_message(&*payload).contains("formatted 7"));
    });
}

#[test]
fn try_get_does_not_block_or_yield_while_not_ready() {
    run(|| {
        let log = Log::new();
        let l = log.clone();
        let g = spawn(move || {
            l.push("ran");
            1
        });
        let began = Instant::now();
        let e = g.try_get().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotReady);
        assert!(
            log.snapshot().is_empty(),
            "try_get switched to another greenlet"
        );
        assert!(began.elapsed() < Duration::from_secs(2));
        assert_eq!(g.get().unwrap(), 1);
        assert_eq!(g.try_get().unwrap(), 1);
    });
}

#[test]
fn get_waits_for_the_result() {
    run(|| {
        let began = Instant::now();
        let g = spawn(|| {
            sleep(Duration::from_millis(20));
            "late"
        });
        assert_eq!(g.get().unwrap(), "late");
        assert!(began.elapsed() >= Duration::from_millis(20));
    });
}

#[test]
fn get_timeout_gives_not_ready_after_the_timeout_and_leaves_the_greenlet_alone() {
    run(|| {
        let g = spawn(|| {
            sleep(Duration::from_secs(10));
            1
        });
        let began = Instant::now();
        let e = g.get_timeout(Duration::from_millis(30)).unwrap_err();
        let waited = began.elapsed();
        assert_eq!(e.kind(), ErrorKind::NotReady);
        assert!(waited >= Duration::from_millis(30), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        assert!(g.is_alive() && !g.ready());
        g.kill();
    });
}

#[test]
fn get_timeout_returns_the_result_when_it_comes_in_time() {
    run(|| {
        let g = spawn(|| {
            sleep(Duration::from_millis(10));
            9
        });
        let began = Instant::now();
        assert_eq!(g.get_timeout(Duration::from_secs(10)).unwrap(), 9);
        assert!(began.elapsed() < Duration::from_secs(5));
    });
}

#[test]
fn get_timeout_reports_a_failure_that_comes_in_time() {
    run(|| {
        let g = spawn(|| -> i32 { panic!("late failure (expected by the test)") });
        let e = g.get_timeout(Duration::from_secs(10)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Panicked);
        assert!(e.message().contains("late failure"));
    });
}

#[test]
fn get_from_another_greenlet_waits_too() {
    run(|| {
        let waits = Rc::new(Cell::new(0));
        let w = Rc::clone(&waits);
        let target = spawn(|| {
            sleep(Duration::from_millis(10));
            11
        });
        let t = target.clone();
        let waiter = spawn(move || {
            w.set(w.get() + 1);
            t.get().unwrap() + 1
        });
        assert_eq!(waiter.get().unwrap(), 12);
        assert_eq!(waits.get(), 1);
        assert_eq!(target.value(), Some(11));
    });
}
