//! `std::panic::catch_unwind` around a blocking call catches kills and
//! timeouts too (green-core delivers them by unwinding); the documented
//! trap. `green_core::catch_unwind` is the safe form: it catches panics and
//! lets kills and timeouts go on to whoever they are for.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use green_core::{sleep, spawn, yield_now, GreenletExit, Timeout};

/// The trap itself, pinned so the docs stay true: std's `catch_unwind`
/// swallows the outer scope's timeout, which then returns `Ok`.
#[test]
fn std_catch_unwind_swallows_an_outer_timeout() {
    green_core::run(|| {
        let outer = Timeout::run(Duration::from_millis(2), || {
            let inner = panic::catch_unwind(|| sleep(Duration::from_secs(5)));
            inner.is_err()
        });
        assert_eq!(outer.ok(), Some(true), "the timeout was swallowed inside");
    });
}

#[test]
fn green_catch_unwind_lets_an_outer_timeout_reach_its_scope() {
    green_core::run(|| {
        let reached_after = Rc::new(Cell::new(false));
        let flag = Rc::clone(&reached_after);
        let outer = Timeout::run(Duration::from_millis(2), move || {
            let _ = green_core::catch_unwind(|| sleep(Duration::from_secs(5)));
            flag.set(true);
        });
        assert!(outer.is_err(), "the outer timeout fired in its own scope");
        assert!(!reached_after.get());
    });
}

#[test]
fn green_catch_unwind_lets_a_kill_end_the_greenlet() {
    green_core::run(|| {
        let survived = Rc::new(Cell::new(false));
        let flag = Rc::clone(&survived);
        let g = spawn(move || {
            let r = green_core::catch_unwind(|| sleep(Duration::from_secs(5)));
            flag.set(r.is_err());
        });
        yield_now();
        g.kill();
        assert!(g.dead());
        assert!(!survived.get(), "the kill went through");
        assert!(g.exception().is_some_and(|e| e.is_exit()));
    });
}

#[test]
fn green_catch_unwind_catches_panics_and_the_greenlet_can_still_be_killed() {
    green_core::run(|| {
        let caught = Rc::new(Cell::new(0));
        let count = Rc::clone(&caught);
        let g = spawn(move || loop {
            let r = green_core::catch_unwind(AssertUnwindSafe(|| {
                yield_now();
                panic!("bad request")
            }));
            if let Err(p) = r {
                assert_eq!(green_core::panic_message(&*p), "bad request");
                assert!(!green_core::is_kill_or_timeout(&*p));
                count.set(count.get() + 1);
            }
        });
        for _ in 0..3 {
            yield_now();
        }
        g.kill();
        assert!(g.dead());
        assert!(caught.get() >= 2, "{}", caught.get());
    });
}

#[test]
fn is_kill_or_timeout_tells_green_core_unwinds_from_panics() {
    assert!(green_core::is_kill_or_timeout(&GreenletExit));
    assert!(green_core::is_kill_or_timeout(&Timeout::new(
        Duration::from_secs(1)
    )));
    assert!(!green_core::is_kill_or_timeout(&"a panic"));
    assert!(!green_core::is_kill_or_timeout(&green_core::LoopExit));
}
