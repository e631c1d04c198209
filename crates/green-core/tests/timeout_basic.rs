//! `Timeout` on its own: `new(None)`, `start`/`cancel`/`pending`/`start_new`,
//! `Timeout::run`, `with_timeout`/`with_timeout_or`, zero timeouts, where a
//! started timeout fires, and what an uncaught one does to its greenlet.

#[allow(unreachable_pub)] // The shared fixtures are `pub` for every test binary.
mod support;

use std::cell::RefCell;
use std::panic;
use std::rc::Rc;
use std::time::{Duration, Instant};

use green_core::{sleep, spawn, with_timeout, with_timeout_or, yield_now, ErrorKind, Timeout};
use support::{catch, DropCounter, Log};

const SHORT: Duration = Duration::from_millis(20);
const LONG: Duration = Duration::from_secs(10);

/// Spins without blocking until `d` has passed, so that a timer expires while
/// the running greenlet gives the hub no chance to act on it.
fn busy_wait(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

#[test]
fn timeout_none_never_fires() {
    green_core::run(|| {
        let t = Timeout::new(None);
        assert_eq!(t.duration(), None);
        t.start();
        assert!(!t.pending(), "a None timeout is never pending");
        sleep(Duration::from_millis(30));
        t.cancel();

        let t = Timeout::start_new(None);
        assert!(!t.pending());
        sleep(SHORT);

        let r = Timeout::run(None, || {
            sleep(SHORT);
            "finished"
        });
        assert_eq!(r.unwrap(), "finished");
    });
}

#[test]
fn start_makes_it_pending_and_cancel_stops_it() {
    green_core::run(|| {
        let t = Timeout::new(SHORT);
        assert_eq!(t.duration(), Some(SHORT));
        assert!(!t.pending(), "not pending before start");
        t.start();
        assert!(t.pending(), "pending once started");
        t.cancel();
        assert!(!t.pending(), "not pending after cancel");
        // Well past the deadline: nothing is raised.
        sleep(SHORT * 3);
        // Cancelling again is harmless.
        t.cancel();
    });
}

#[test]
fn cancel_inside_the_guarded_block_disarms_it() {
    // gevent: `with Timeout(d) as t: t.cancel(); sleep(2 * d)` does not raise.
    green_core::run(|| {
        let t = Timeout::start_new(SHORT);
        t.cancel();
        sleep(SHORT * 2);
        assert!(!t.pending());
    });
}

#[test]
fn start_new_returns_a_pending_timeout_and_dropping_it_cancels() {
    green_core::run(|| {
        let t = Timeout::start_new(SHORT);
        assert!(t.pending());
        drop(t);
        // The dropped timeout's deadline passes during this sleep.
        sleep(SHORT * 3);
    });
}

#[test]
fn starting_a_pending_timeout_panics() {
    green_core::run(|| {
        let t = Timeout::start_new(LONG);
        let r = catch(|| t.start());
        let payload = r.expect_err("a second start must panic");
        let msg = support::panic_message(&*payload);
        assert!(msg.contains("already started"), "message: {msg}");
        assert!(t.pending(), "the first start is still in force");
    });
}

#[test]
fn fired_timeout_is_no_longer_pending_and_can_be_started_again() {
    // gevent's `_check_expires`: the same Timeout fires, is restarted, fires again.
    green_core::run(|| {
        let t = Timeout::new(SHORT);
        for round in 0..2 {
            t.start();
            let payload = catch(|| sleep(LONG)).expect_err("the timeout must interrupt the sleep");
            assert!(
                t.is(&*payload),
                "round {round}: the payload is this timeout"
            );
            assert!(!t.pending(), "round {round}: not pending after firing");
        }
    });
}

#[test]
fn run_returns_the_value_when_f_finishes_in_time() {
    green_core::run(|| {
        assert_eq!(Timeout::run(LONG, || 7).unwrap(), 7);
        let r = Timeout::run(LONG, || {
            sleep(Duration::from_millis(5));
            "slept"
        });
        assert_eq!(r.unwrap(), "slept");
    });
}

#[test]
fn run_returns_its_own_timeout_when_it_fires() {
    green_core::run(|| {
        let start = Instant::now();
        let log = Log::new();
        let r = Timeout::run(SHORT, || {
            log.push("blocking");
            sleep(LONG);
            log.push("after sleep");
        });
        let elapsed = start.elapsed();
        let t = r.expect_err("the timeout fires");
        assert_eq!(t.duration(), Some(SHORT));
        assert!(!t.pending());
        assert_eq!(log.take(), ["blocking"]);
        assert!(
            elapsed >= SHORT,
            "fired after {elapsed:?}, before its deadline"
        );
        assert!(
            elapsed < Duration::from_secs(5),
            "the sleep was not cut short"
        );
    });
}

#[test]
fn run_cancels_its_timer_when_f_returns() {
    green_core::run(|| {
        let r = Timeout::run(SHORT, || 1);
        assert_eq!(r.unwrap(), 1);
        // The scope ended; its deadline passing later raises nothing.
        sleep(SHORT * 3);
    });
}

#[test]
fn run_does_not_fire_without_a_blocking_point() {
    // A timeout is only raised at a blocking point: code that never blocks
    // finishes even when it outlasts the deadline.
    green_core::run(|| {
        let r = Timeout::run(Duration::from_millis(1), || {
            busy_wait(Duration::from_millis(10));
            "done"
        });
        assert_eq!(r.unwrap(), "done");
    });
}

#[test]
fn with_timeout_returns_err_when_it_fires_and_ok_otherwise() {
    green_core::run(|| {
        let r = with_timeout(SHORT, || sleep(LONG));
        assert_eq!(r.expect_err("fires").duration(), Some(SHORT));
        let r = with_timeout(LONG, || {
            sleep(Duration::from_millis(5));
            5
        });
        assert_eq!(r.unwrap(), 5);
    });
}

#[test]
fn with_timeout_or_returns_the_fallback_when_it_fires() {
    green_core::run(|| {
        let r = with_timeout_or(SHORT, "fallback", || {
            sleep(LONG);
            "finished"
        });
        assert_eq!(r, "fallback");
        let r = with_timeout_or(LONG, "fallback", || {
            sleep(Duration::from_millis(5));
            "finished"
        });
        assert_eq!(r, "finished");
    });
}

#[test]
fn zero_timeout_fires_after_the_callback_pass_not_at_a_yield() {
    // gevent: a zero timer fires after the callbacks queued before it, and
    // a `sleep(0)` is one of those; the wait that needs the loop is where
    // it is raised.
    green_core::run(|| {
        let log = Log::new();
        let r = Timeout::run(Duration::ZERO, || {
            log.push("before");
            yield_now();
            log.push("after yield");
            sleep(Duration::from_millis(1));
            log.push("after sleep");
        });
        assert!(
            r.is_err(),
            "a zero timeout fires at the first wait on the loop"
        );
        assert_eq!(log.take(), ["before", "after yield"]);
    });
}

#[test]
fn zero_timeout_in_a_greenlet_fires_after_the_callback_pass() {
    green_core::run(|| {
        let log = Log::new();
        let l = log.clone();
        let g = spawn(move || {
            Timeout::run(Duration::ZERO, || {
                l.push("before");
                yield_now();
                l.push("after yield");
                sleep(Duration::from_millis(1));
                l.push("after sleep");
            })
            .is_err()
        });
        assert_eq!(
            g.get().ok(),
            Some(true),
            "the zero timeout fired in the greenlet"
        );
        assert_eq!(log.take(), ["before", "after yield"]);
    });
}

#[test]
fn zero_timeout_without_a_blocking_point_does_not_fire() {
    green_core::run(|| {
        let r = Timeout::run(Duration::ZERO, || 3);
        assert_eq!(r.unwrap(), 3);
        // And its timer is gone: the next blocking point raises nothing.
        sleep(Duration::from_millis(5));
    });
}

#[test]
fn started_timeout_fires_in_its_greenlet_at_its_next_blocking_point() {
    green_core::run(|| {
        let log = Log::new();
        let l = log.clone();
        let g = spawn(move || {
            let _t = Timeout::start_new(Duration::from_millis(10));
            // Past the deadline without blocking: nothing can be raised yet.
            busy_wait(Duration::from_millis(30));
            l.push("past the deadline");
            sleep(LONG);
            l.push("unreachable");
        });
        let start = Instant::now();
        let err = g.get().expect_err("the greenlet dies of its timeout");
        assert_eq!(err.kind(), ErrorKind::TimedOut);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the sleep was cut short"
        );
        assert_eq!(log.take(), ["past the deadline"]);
    });
}

#[test]
fn started_timeout_fires_in_the_starting_greenlet_not_the_running_one() {
    green_core::run(|| {
        let log = Log::new();
        let (la, lb) = (log.clone(), log.clone());
        let a = spawn(move || {
            let t = Timeout::start_new(SHORT);
            match catch(|| sleep(LONG)) {
                Err(p) if t.is(&*p) => la.push("a: own timeout"),
                Err(p) => panic::resume_unwind(p),
                Ok(()) => la.push("a: slept through"),
            }
        });
        let b = spawn(move || {
            sleep(Duration::from_millis(5));
            // a's deadline passes while b is the running greenlet.
            busy_wait(SHORT * 2);
            sleep(Duration::from_millis(5));
            lb.push("b: unaffected");
        });
        a.join();
        b.join();
        assert!(a.successful() && b.successful());
        let mut entries = log.take();
        entries.sort();
        assert_eq!(entries, ["a: own timeout", "b: unaffected"]);
    });
}

#[test]
fn started_timeout_in_the_main_greenlet_fires_at_its_next_blocking_point() {
    green_core::run(|| {
        let t = Timeout::start_new(Duration::from_millis(10));
        busy_wait(Duration::from_millis(30));
        let start = Instant::now();
        let payload = catch(|| sleep(LONG)).expect_err("the timeout fires");
        assert!(t.is(&*payload), "the main greenlet got its own timeout");
        assert!(start.elapsed() < Duration::from_secs(5));
    });
}

#[test]
fn main_greenlet_timeout_does_not_disturb_the_greenlet_it_joins() {
    green_core::run(|| {
        let g = spawn(|| {
            sleep(Duration::from_millis(60));
            "worker done"
        });
        let t = Timeout::start_new(SHORT);
        let payload = catch(|| g.join()).expect_err("the join is interrupted");
        assert!(t.is(&*payload));
        assert!(g.is_alive(), "the joined greenlet keeps running");
        assert_eq!(g.get().unwrap(), "worker done");
    });
}

#[test]
fn timeout_unwinding_runs_destructors_once() {
    green_core::run(|| {
        let counter = DropCounter::new();
        let c = counter.clone();
        let r = Timeout::run(SHORT, move || {
            let _outer = c.token();
            let inner = c.token();
            let boxed = Rc::new(inner);
            sleep(LONG);
            drop(boxed);
        });
        assert!(r.is_err());
        assert_eq!(counter.drops(), 2, "each value dropped exactly once");

        // The same in a greenlet that does not catch the timeout.
        let counter = DropCounter::new();
        let c = counter.clone();
        let captured = counter.token();
        let g = spawn(move || {
            let _captured = captured;
            let _local = c.token();
            let _t = Timeout::start_new(SHORT);
            sleep(LONG);
        });
        g.join();
        assert_eq!(counter.drops(), 2, "each value dropped exactly once");
    });
}

#[test]
fn uncaught_timeout_fails_the_greenlet_with_timed_out() {
    green_core::run(|| {
        let g = spawn(|| {
            let _t = Timeout::start_new(SHORT);
            sleep(LONG);
            1
        });
        let err = g.get().expect_err("an uncaught timeout fails the greenlet");
        assert_eq!(err.kind(), ErrorKind::TimedOut);
        assert!(!err.is_exit());
        assert!(g.dead());
        assert!(
            !g.successful(),
            "a timeout is a failure, unlike GreenletExit"
        );
        assert_eq!(g.exception().map(|e| e.kind()), Some(ErrorKind::TimedOut));
        // The hub carries on.
        assert_eq!(spawn(|| 2).get().unwrap(), 2);
    });
}

/// Cancelling a timeout that fired but was not yet raised withdraws the
/// raise even when another greenlet cancels it (found by review: only the
/// cancelling greenlet's pending raise was looked at).
#[test]
fn cancel_from_another_greenlet_withdraws_a_fired_raise() {
    green_core::run(|| {
        let slot: Rc<RefCell<Option<Timeout>>> = Rc::new(RefCell::new(None));
        let s1 = Rc::clone(&slot);
        let owner = spawn(move || {
            *s1.borrow_mut() = Some(Timeout::start_new(Duration::from_millis(10)));
            sleep(Duration::from_millis(30));
            "survived"
        });
        let s2 = Rc::clone(&slot);
        let canceller = spawn(move || {
            sleep(Duration::from_millis(1));
            // Hog the thread past the deadline, then let the loop fire it:
            // the owner is queued behind us with the raise pending.
            std::thread::sleep(Duration::from_millis(20));
            yield_now();
            s2.borrow_mut().take().expect("started").cancel();
        });
        canceller.join();
        assert_eq!(owner.get().unwrap(), "survived");
    });
}

/// A started `Timeout` that outlives its hub (`shutdown`) does nothing to
/// the next hub's timers when it is dropped (found by review: timer ids and
/// slab keys restart with a new loop).
#[test]
fn a_timeout_from_a_torn_down_hub_leaves_the_new_hub_alone() {
    let old = Timeout::start_new(Duration::from_secs(5));
    green_core::shutdown();
    let r = Timeout::run(Duration::from_millis(10), || {
        assert!(!old.pending(), "it belongs to a hub that is gone");
        drop(old);
        sleep(Duration::from_millis(500));
    });
    assert!(r.is_err(), "the new hub's timeout still fired");
    green_core::shutdown();
}

// A started timeout's timer goes into the loop only when its greenlet first
// blocks. These pin down what that must not change.

#[test]
fn deadline_counts_from_start_not_from_the_first_blocking_point() {
    green_core::run(|| {
        let t = Timeout::start_new(Duration::from_millis(800));
        // Most of the duration passes before the first blocking point.
        busy_wait(Duration::from_millis(700));
        let blocked_at = Instant::now();
        let payload = catch(|| sleep(LONG)).expect_err("the timeout fires");
        assert!(t.is(&*payload));
        // Counted from the first block it would take 800 ms more; counted
        // from start, about 100 ms.
        assert!(
            blocked_at.elapsed() < Duration::from_millis(700),
            "fired {:?} after the first block: the deadline was counted from it",
            blocked_at.elapsed()
        );
    });
}

#[test]
fn timeouts_cancelled_before_any_blocking_point_never_fire() {
    green_core::run(|| {
        let outer = Timeout::start_new(LONG);
        let short = Timeout::start_new(SHORT);
        let dropped = Timeout::start_new(SHORT);
        let inner = Timeout::start_new(LONG);
        short.cancel();
        drop(dropped);
        assert!(!short.pending());
        assert!(
            outer.pending() && inner.pending(),
            "the others stay started"
        );
        // Well past the short deadlines: nothing is raised.
        sleep(SHORT * 3);
        assert!(outer.pending() && inner.pending());
        // A timeout started after the block still fires, and is itself.
        let late = Timeout::start_new(SHORT);
        let payload = catch(|| sleep(LONG)).expect_err("the late timeout fires");
        assert!(late.is(&*payload));
        assert!(!outer.is(&*payload) && !inner.is(&*payload));
    });
}

#[test]
fn a_started_timeout_is_pending_before_its_greenlet_ever_blocks() {
    green_core::run(|| {
        let t = Timeout::start_new(Duration::ZERO);
        assert!(t.pending(), "started, not fired: nothing has blocked yet");
        let again = catch(|| t.start()).expect_err("starting it twice panics");
        drop(again);
        yield_now(); // resumed by the callback pass, before the timer
        assert!(t.pending(), "a yield does not let a zero timer fire");
        let payload = catch(|| sleep(Duration::from_millis(1)))
            .expect_err("a zero timeout fires at the first wait on the loop");
        assert!(t.is(&*payload));
        assert!(!t.pending());
    });
}
