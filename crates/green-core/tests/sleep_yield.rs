//! Sleeping and yielding: `sleep`, `yield_now`/`sleep(ZERO)`, `sleep_unref`,
//! `idle`, and fairness of a greenlet spinning on `yield_now` towards timers
//! (gevent's test__sleep0).

#[allow(unreachable_pub)] // The shared fixtures are `pub` for every test binary.
mod support;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use green_core::{idle, sleep, sleep_unref, spawn, yield_now, Timeout};
use support::{catch, Log};

/// A bound on spinning loops that should end long before it: if the hub
/// starved timers, the loop gives up here instead of hanging the test.
const SPIN_LIMIT: Duration = Duration::from_secs(10);

#[test]
fn sleep_waits_at_least_the_duration() {
    green_core::run(|| {
        let d = Duration::from_millis(20);
        let start = Instant::now();
        sleep(d);
        assert!(start.elapsed() >= d, "main slept {:?}", start.elapsed());

        let g = spawn(move || {
            let start = Instant::now();
            sleep(d);
            start.elapsed()
        });
        let slept = g.get().unwrap();
        assert!(slept >= d, "greenlet slept {slept:?}");
    });
}

#[test]
fn sleepers_wake_in_deadline_order() {
    green_core::run(|| {
        let log = Log::new();
        let mut gs = Vec::new();
        for ms in [30u64, 10, 20] {
            let l = log.clone();
            gs.push(spawn(move || {
                sleep(Duration::from_millis(ms));
                l.push(ms.to_string());
            }));
        }
        for g in &gs {
            g.join();
        }
        assert_eq!(log.take(), ["10", "20", "30"]);
    });
}

/// Two greenlets that log three steps each, calling `switch` after each
/// step; returns the log once both have finished.
fn alternation(switch: fn()) -> Vec<String> {
    let log = Log::new();
    let make = |name: &'static str| {
        let l = log.clone();
        spawn(move || {
            for i in 0..3 {
                l.push(format!("{name}{i}"));
                switch();
            }
        })
    };
    let a = make("a");
    let b = make("b");
    a.join();
    b.join();
    log.take()
}

#[test]
fn two_greenlets_yielding_alternate() {
    green_core::run(|| {
        assert_eq!(alternation(yield_now), ["a0", "b0", "a1", "b1", "a2", "b2"]);
    });
}

#[test]
fn sleep_zero_is_a_yield() {
    green_core::run(|| {
        let log = alternation(|| sleep(Duration::ZERO));
        assert_eq!(log, ["a0", "b0", "a1", "b1", "a2", "b2"]);
    });
}

#[test]
fn yield_now_runs_everything_already_runnable_first() {
    green_core::run(|| {
        let log = Log::new();
        for i in 0..3 {
            let l = log.clone();
            spawn(move || l.push(format!("g{i}")));
        }
        assert!(log.snapshot().is_empty(), "spawn does not switch");
        yield_now();
        log.push("main");
        assert_eq!(log.take(), ["g0", "g1", "g2", "main"]);
    });
}

#[test]
fn yield_now_with_nothing_else_runnable_returns() {
    green_core::run(|| {
        yield_now();
        sleep(Duration::ZERO);
        let g = spawn(|| {
            // Alone in the ready queue: main is parked in `get`.
            yield_now();
            sleep(Duration::ZERO);
            "yielded"
        });
        assert_eq!(g.get().unwrap(), "yielded");
    });
}

#[test]
fn yield_now_does_not_wait_for_timers() {
    green_core::run(|| {
        let woke = Rc::new(Cell::new(false));
        let w = Rc::clone(&woke);
        let sleeper = spawn(move || {
            sleep(Duration::from_secs(5));
            w.set(true);
        });
        let other = spawn(|| ());
        let start = Instant::now();
        yield_now(); // The sleeper parks, `other` runs; then main resumes.
        yield_now();
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "yield_now waited for a timer"
        );
        assert!(!woke.get());
        assert!(other.dead());
        assert!(sleeper.is_alive(), "still sleeping");
        sleeper.kill();
    });
}

#[test]
fn sleep_unref_alone_in_main_raises_loop_exit() {
    green_core::run(|| {
        let start = Instant::now();
        let payload = catch(|| sleep_unref(Duration::from_secs(30)))
            .expect_err("an unreferenced timer does not keep the loop alive");
        let msg = support::panic_message(&*payload);
        assert!(
            msg.contains("this operation would block forever"),
            "message: {msg}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "LoopExit, not the timer"
        );
    });
}

#[test]
fn sleep_unref_wakes_when_something_else_keeps_the_loop_alive() {
    green_core::run(|| {
        let keeper = spawn(|| sleep(Duration::from_millis(300)));
        let d = Duration::from_millis(20);
        let start = Instant::now();
        sleep_unref(d);
        assert!(start.elapsed() >= d);
        assert!(
            keeper.is_alive(),
            "woken by its own timer, not the keeper's"
        );
        keeper.join();
    });
}

#[test]
fn idle_resumes_after_the_ready_greenlets_ran() {
    green_core::run(|| {
        let log = Log::new();
        for name in ["a", "b"] {
            let l = log.clone();
            spawn(move || {
                for i in 0..3 {
                    l.push(format!("{name}{i}"));
                    yield_now();
                }
            });
        }
        idle();
        log.push("idle");
        let entries = log.take();
        assert_eq!(entries.len(), 7, "{entries:?}");
        assert_eq!(
            entries.last().map(String::as_str),
            Some("idle"),
            "{entries:?}"
        );
    });
}

#[test]
fn idle_in_a_greenlet_waits_for_the_others() {
    green_core::run(|| {
        let log = Log::new();
        let l = log.clone();
        let idler = spawn(move || {
            idle();
            l.push("idler");
        });
        let l = log.clone();
        let busy = spawn(move || {
            for i in 0..3 {
                l.push(format!("busy{i}"));
                sleep(Duration::ZERO);
            }
        });
        idler.join();
        busy.join();
        assert_eq!(log.take(), ["busy0", "busy1", "busy2", "idler"]);
    });
}

#[test]
fn idle_does_not_wait_for_a_pending_timer() {
    green_core::run(|| {
        let log = Log::new();
        let l = log.clone();
        let sleeper = spawn(move || {
            sleep(Duration::from_millis(200));
            l.push("sleeper");
        });
        yield_now(); // The sleeper parks on its timer.
        idle();
        log.push("idle");
        sleeper.join();
        assert_eq!(log.take(), ["idle", "sleeper"]);
    });
}

#[test]
fn spinning_on_yield_now_does_not_starve_a_timer() {
    green_core::run(|| {
        let woke = Rc::new(Cell::new(false));
        let w = Rc::clone(&woke);
        let sleeper = spawn(move || {
            sleep(Duration::from_millis(10));
            w.set(true);
        });
        let w = Rc::clone(&woke);
        let spinner = spawn(move || {
            let start = Instant::now();
            let mut spins = 0u64;
            while !w.get() && start.elapsed() < SPIN_LIMIT {
                yield_now();
                spins += 1;
            }
            spins
        });
        let spins = spinner.get().expect("the spinner finishes");
        assert!(woke.get(), "the sleeper never woke while the spinner spun");
        assert!(spins > 0);
        sleeper.join();
    });
}

#[test]
fn two_spinners_do_not_starve_a_sleeping_main_greenlet() {
    green_core::run(|| {
        let done = Rc::new(Cell::new(false));
        let spinners: Vec<_> = (0..2)
            .map(|_| {
                let done = Rc::clone(&done);
                spawn(move || {
                    let start = Instant::now();
                    while !done.get() && start.elapsed() < SPIN_LIMIT {
                        yield_now();
                    }
                    done.get()
                })
            })
            .collect();
        let start = Instant::now();
        sleep(Duration::from_millis(20));
        assert!(
            start.elapsed() < SPIN_LIMIT,
            "the spinners starved the timer"
        );
        done.set(true);
        for s in &spinners {
            assert!(s.get().unwrap(), "the spinner saw main wake up");
        }
    });
}

#[test]
fn timeout_interrupts_a_yield_now_loop() {
    // gevent's test__sleep0: `with Timeout(0.01, False): while True: sleep(0)`
    // must end.
    green_core::run(|| {
        let start = Instant::now();
        let r = Timeout::run(Duration::from_millis(10), || {
            while start.elapsed() < SPIN_LIMIT {
                sleep(Duration::ZERO);
            }
        });
        assert!(r.is_err(), "the timeout never fired while spinning");
    });
}
