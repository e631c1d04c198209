//! Nested timeouts and identity: a scope catches only its own `Timeout`;
//! outer timeouts, foreign timeouts and other panics pass through inner
//! scopes, and unwinding through several scopes drops values once.

#[allow(unreachable_pub)] // The shared fixtures are `pub` for every test binary.
mod support;

use std::panic;
use std::time::{Duration, Instant};

use green_core::{sleep, spawn, with_timeout, with_timeout_or, Timeout};
use support::{catch, DropCounter, Log};

const SHORT: Duration = Duration::from_millis(20);
const LONG: Duration = Duration::from_secs(10);

#[test]
fn outer_shorter_timeout_passes_through_the_inner_scope() {
    green_core::run(|| {
        let log = Log::new();
        let start = Instant::now();
        let outer = Timeout::run(SHORT, || {
            let inner = Timeout::run(LONG, || {
                sleep(LONG);
                log.push("inner body finished");
            });
            log.push(format!("inner scope returned {}", inner.is_ok()));
        });
        let fired = outer.expect_err("the outer timeout reaches the outer scope");
        assert_eq!(fired.duration(), Some(SHORT), "it is the outer timeout");
        assert!(log.take().is_empty(), "the inner scope did not swallow it");
        assert!(start.elapsed() < Duration::from_secs(5));
    });
}

#[test]
fn inner_shorter_timeout_is_caught_by_the_inner_scope() {
    green_core::run(|| {
        let log = Log::new();
        let outer = Timeout::run(LONG, || {
            let inner = Timeout::run(SHORT, || sleep(LONG));
            let fired = inner.expect_err("the inner timeout fires");
            assert_eq!(fired.duration(), Some(SHORT));
            log.push("outer body goes on");
            "outer finished"
        });
        assert_eq!(outer.unwrap(), "outer finished");
        assert_eq!(log.take(), ["outer body goes on"]);
    });
}

#[test]
fn guard_form_outer_fires_first_and_inner_stays_pending() {
    // gevent's test_nested_timeout, second block.
    green_core::run(|| {
        let t1 = Timeout::start_new(SHORT);
        let t2 = Timeout::start_new(LONG);
        let payload = catch(|| sleep(LONG)).expect_err("t1 fires");
        assert!(t1.is(&*payload), "the payload is t1");
        assert!(!t2.is(&*payload), "and not t2");
        assert!(!t1.pending());
        assert!(t2.pending());
        t2.cancel();
        assert!(!t2.pending());
    });
}

#[test]
fn guard_form_inner_fires_first_and_outer_stays_pending() {
    // gevent's test_nested_timeout, third block.
    green_core::run(|| {
        let t1 = Timeout::start_new(LONG);
        let t2 = Timeout::start_new(SHORT);
        let payload = catch(|| sleep(LONG)).expect_err("t2 fires");
        assert!(t2.is(&*payload), "the payload is t2");
        assert!(!t1.is(&*payload), "and not t1");
        assert!(t1.pending());
        assert!(!t2.pending());
        drop(t1);
        // The dropped outer timeout never fires.
        sleep(SHORT * 2);
    });
}

#[test]
fn both_scopes_silenced_the_outer_one_ends_both() {
    // gevent: `with Timeout(d, False): with Timeout(10 * d, False): sleep(...)`
    // leaves both blocks at the outer deadline.
    green_core::run(|| {
        let log = Log::new();
        let r = with_timeout_or(SHORT, "outer fallback", || {
            let inner = with_timeout_or(LONG, "inner fallback", || {
                sleep(LONG);
                "inner finished"
            });
            log.push(inner);
            "outer finished"
        });
        assert_eq!(r, "outer fallback");
        assert!(log.take().is_empty(), "the inner fallback was not used");
    });
}

#[test]
fn with_timeout_does_not_catch_an_outer_timeout() {
    green_core::run(|| {
        let log = Log::new();
        let outer = Timeout::run(SHORT, || {
            let inner = with_timeout(LONG, || sleep(LONG));
            log.push(format!("inner returned {}", inner.is_ok()));
        });
        assert_eq!(outer.expect_err("outer fires").duration(), Some(SHORT));
        assert!(log.take().is_empty());
    });
}

#[test]
fn middle_scope_catches_its_own_timeout_between_longer_ones() {
    green_core::run(|| {
        let g = spawn(|| {
            Timeout::run(LONG, || {
                let middle = Timeout::run(SHORT, || {
                    Timeout::run(LONG, || sleep(LONG))
                        .map(|_| "innermost finished")
                        .unwrap_or("innermost caught it")
                });
                middle.unwrap_or("middle caught it")
            })
            .unwrap_or("outermost caught it")
        });
        assert_eq!(g.get().unwrap(), "middle caught it");
    });
}

#[test]
fn scope_passes_a_foreign_timeout_through() {
    green_core::run(|| {
        let foreign = Timeout::new(LONG);
        let same_identity = foreign.clone();
        let r = catch(|| {
            Timeout::run(LONG, move || -> () {
                panic::resume_unwind(Box::new(same_identity))
            })
        });
        let payload = r.expect_err("a foreign timeout is not this scope's");
        assert!(
            foreign.is(&*payload),
            "the foreign timeout came out unchanged"
        );
    });
}

#[test]
fn scope_passes_other_panics_through() {
    green_core::run(|| {
        let r = catch(|| Timeout::run(LONG, || -> () { panic!("not a timeout") }));
        let payload = r.expect_err("the panic goes on");
        assert_eq!(support::panic_message(&*payload), "not a timeout");
        // The scope's timer was cancelled on the way out.
        sleep(Duration::from_millis(5));
    });
}

#[test]
fn inner_scope_that_ended_in_time_never_fires_later() {
    green_core::run(|| {
        let r = Timeout::run(LONG, || {
            let inner = Timeout::run(SHORT, || sleep(Duration::from_millis(2)));
            assert!(inner.is_ok());
            // Well past the inner deadline.
            sleep(SHORT * 3);
            "outer finished"
        });
        assert_eq!(r.unwrap(), "outer finished");
    });
}

#[test]
fn unwinding_through_nested_scopes_drops_each_value_once() {
    green_core::run(|| {
        let counter = DropCounter::new();
        let c = counter.clone();
        let g = spawn(move || {
            let _level0 = c.token();
            Timeout::run(SHORT, || {
                let _level1 = c.token();
                let _ = Timeout::run(LONG, || {
                    let _level2 = c.token();
                    let _ = Timeout::run(LONG, || {
                        let _level3 = c.token();
                        sleep(LONG);
                    });
                    unreachable!("the outer timeout passes through");
                });
                unreachable!("the outer timeout passes through");
            })
            .is_err()
        });
        assert!(g.get().unwrap());
        assert_eq!(
            counter.drops(),
            4,
            "each level's value dropped exactly once"
        );
    });
}

#[test]
fn nested_scopes_in_two_greenlets_do_not_cross() {
    green_core::run(|| {
        let a =
            spawn(|| Timeout::run(LONG, || Timeout::run(SHORT, || sleep(LONG)).is_err()).unwrap());
        let b = spawn(|| {
            Timeout::run(SHORT * 3, || {
                sleep(SHORT * 2);
                "b finished"
            })
        });
        assert!(a.get().unwrap(), "a's inner scope caught a's own timeout");
        assert_eq!(b.get().unwrap().unwrap(), "b finished");
    });
}
