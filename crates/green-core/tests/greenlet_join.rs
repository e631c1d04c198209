//! Waiting for one greenlet: `join`, `join_timeout`, `get`, `try_get`,
//! `get_timeout` — blocking, timeouts, wake-up order, self-joins, and the
//! results of failed greenlets.

#[allow(unreachable_pub)] // support/mod.rs is shared; its `pub` items are crate-local here.
mod support;

use std::cell::Cell;
use std::panic;
use std::rc::Rc;
use std::time::{Duration, Instant};

use green_core::{current, sleep, spawn, ErrorKind, Greenlet, LoopExit, Timeout};
use support::{catch, panic_message, sleeper, DropCounter, Log, MS};

// ===== join =====

#[test]
fn join_blocks_until_the_greenlet_finishes() {
    green_core::run(|| {
        let finished = Rc::new(Cell::new(false));
        let g = {
            let finished = Rc::clone(&finished);
            spawn(move || {
                sleep(30 * MS);
                finished.set(true);
            })
        };
        let start = Instant::now();
        g.join();
        assert!(finished.get());
        assert!(g.dead());
        assert!(start.elapsed() >= 30 * MS);
    });
}

#[test]
fn join_on_a_dead_greenlet_returns_at_once_without_switching() {
    green_core::run(|| {
        let g = spawn(|| 1);
        g.join();
        let other_ran = Rc::new(Cell::new(false));
        {
            let other_ran = Rc::clone(&other_ran);
            spawn(move || other_ran.set(true));
        }
        g.join();
        assert!(g.join_timeout(Duration::ZERO));
        assert!(g.join_timeout(Duration::from_secs(10)));
        assert_eq!(g.get().unwrap(), 1);
        assert!(!other_ran.get(), "joining a dead greenlet does not yield");
    });
}

#[test]
fn join_starts_a_spawned_greenlet_that_has_not_run_yet() {
    green_core::run(|| {
        let g = spawn(|| 5);
        assert!(!g.has_started());
        g.join();
        assert!(g.has_started());
        assert_eq!(g.get().unwrap(), 5);
    });
}

#[test]
fn join_waits_for_a_greenlet_started_later() {
    green_core::run(|| {
        let g = green_core::spawn_later(30 * MS, || 3);
        let start = Instant::now();
        assert_eq!(g.get().unwrap(), 3);
        assert!(start.elapsed() >= 30 * MS);
    });
}

#[test]
fn join_from_inside_a_greenlet() {
    green_core::run(|| {
        let target = sleeper(20 * MS);
        let joiner = {
            let target = target.clone();
            spawn(move || {
                target.join();
                target.dead()
            })
        };
        assert!(joiner.get().unwrap());
    });
}

#[test]
fn join_on_an_unstarted_greenlet_from_main_is_loop_exit_not_a_hang() {
    green_core::run(|| {
        let g = Greenlet::new(|| 1);
        let r = catch(|| g.join());
        let message = panic_message(&*r.expect_err("nothing can ever finish it"));
        assert!(
            message.contains("would block forever") || message == LoopExit::MESSAGE,
            "{message}"
        );
        assert!(!g.has_started());
    });
}

// ===== join_timeout =====

#[test]
fn join_timeout_returns_false_when_time_runs_out() {
    green_core::run(|| {
        let g = sleeper(Duration::from_secs(5));
        let start = Instant::now();
        assert!(!g.join_timeout(30 * MS));
        let elapsed = start.elapsed();
        assert!(elapsed >= 30 * MS, "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
        assert!(g.is_alive(), "a timed-out join does not touch the greenlet");
        g.kill();
    });
}

#[test]
fn join_timeout_returns_true_when_it_finishes_in_time() {
    green_core::run(|| {
        let g = sleeper(20 * MS);
        let start = Instant::now();
        assert!(g.join_timeout(Duration::from_secs(10)));
        assert!(g.dead());
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "did not wait the full timeout"
        );
    });
}

#[test]
fn join_timeout_can_be_retried_until_it_finishes() {
    green_core::run(|| {
        let g = sleeper(100 * MS);
        let mut misses = 0;
        while !g.join_timeout(20 * MS) {
            misses += 1;
            assert!(misses < 200, "never finished");
        }
        assert!(misses >= 1, "the first 20 ms wait timed out");
        assert!(g.dead());
        assert!(g.join_timeout(20 * MS));
    });
}

#[test]
fn join_timeout_after_a_sleep_is_not_fooled_by_the_sleeps_timer() {
    green_core::run(|| {
        let g = sleeper(60 * MS);
        sleep(5 * MS);
        let start = Instant::now();
        assert!(!g.join_timeout(10 * MS));
        assert!(start.elapsed() >= 10 * MS);
        sleep(5 * MS);
        assert!(g.join_timeout(Duration::from_secs(10)));
    });
}

#[test]
fn join_interrupted_by_a_timeout_leaves_the_target_alone() {
    green_core::run(|| {
        let g = sleeper(60 * MS);
        let r = Timeout::run(10 * MS, || g.join());
        assert!(r.is_err());
        assert!(g.is_alive());
        assert_eq!(g.get().unwrap(), 60);
    });
}

// ===== wake-up order =====

#[test]
fn joiners_wake_in_the_order_they_started_waiting() {
    green_core::run(|| {
        let log = Log::new();
        let target = sleeper(30 * MS);
        let mut joiners = Vec::new();
        for name in ["j1", "j2", "j3", "j4", "j5"] {
            let log = log.clone();
            let target = target.clone();
            joiners.push(spawn(move || {
                target.join();
                log.push(name);
            }));
        }
        for j in &joiners {
            j.join();
        }
        assert_eq!(log.take(), ["j1", "j2", "j3", "j4", "j5"]);
    });
}

#[test]
fn joiners_and_getters_wake_in_the_order_they_started_waiting() {
    green_core::run(|| {
        let log = Log::new();
        let target = sleeper(100 * MS);
        let mut waiters = Vec::new();
        // Started in staggered order, so the waiting order is not the spawn order.
        for (name, delay, by_get) in [
            ("get-late", 20, true),
            ("join-early", 0, false),
            ("get-early", 5, true),
            ("join-late", 25, false),
        ] {
            let log = log.clone();
            let target = target.clone();
            waiters.push(spawn(move || {
                sleep(delay * MS);
                if by_get {
                    let v = target.get().unwrap();
                    log.push(format!("{name}:{v}"));
                } else {
                    target.join();
                    log.push(name);
                }
            }));
        }
        for w in &waiters {
            w.join();
        }
        assert_eq!(
            log.take(),
            ["join-early", "get-early:100", "get-late:100", "join-late"]
        );
    });
}

#[test]
fn a_joiner_that_gave_up_does_not_take_a_place_in_the_wake_order() {
    green_core::run(|| {
        let log = Log::new();
        let target = sleeper(60 * MS);
        let quitter = {
            let log = log.clone();
            let target = target.clone();
            spawn(move || {
                let done = target.join_timeout(10 * MS);
                log.push(format!("quitter:{done}"));
            })
        };
        let stayer = {
            let log = log.clone();
            let target = target.clone();
            spawn(move || {
                sleep(2 * MS);
                target.join();
                log.push("stayer");
            })
        };
        quitter.join();
        stayer.join();
        assert_eq!(log.take(), ["quitter:false", "stayer"]);
    });
}

// ===== joining oneself =====

#[test]
fn a_greenlet_joining_itself_panics_clearly() {
    green_core::run(|| {
        let g = spawn(|| {
            let r = panic::catch_unwind(|| current().join());
            panic_message(&*r.expect_err("joining oneself cannot succeed"))
        });
        let message = g.get().unwrap();
        assert!(message.contains("itself"), "{message}");
    });
}

#[test]
fn a_greenlet_getting_its_own_result_panics_clearly() {
    green_core::run(|| {
        let slot: Rc<Cell<Option<Greenlet<String>>>> = Rc::new(Cell::new(None));
        let g = {
            let slot = Rc::clone(&slot);
            spawn(move || {
                let me = slot.take().expect("handle stored before it ran");
                let r = catch(|| me.get());
                let timeout = catch(|| me.join_timeout(MS));
                format!(
                    "{} / {}",
                    panic_message(&*r.expect_err("get on oneself")),
                    panic_message(&*timeout.expect_err("join_timeout on oneself"))
                )
            })
        };
        slot.set(Some(g.clone()));
        let message = g.get().unwrap();
        assert_eq!(message.matches("itself").count(), 2, "{message}");
    });
}

#[test]
fn the_main_greenlet_joining_itself_panics_clearly() {
    green_core::run(|| {
        let r = panic::catch_unwind(|| current().join());
        let message = panic_message(&*r.expect_err("main cannot join itself"));
        assert!(message.contains("itself"), "{message}");
    });
}

// ===== get =====

#[test]
fn get_returns_the_value() {
    green_core::run(|| {
        let g = spawn(|| {
            sleep(5 * MS);
            String::from("result")
        });
        assert_eq!(g.get().unwrap(), "result");
        assert_eq!(g.get().unwrap(), "result", "get can be repeated");
        assert_eq!(g.value().as_deref(), Some("result"));
    });
}

#[test]
fn get_of_a_panicked_greenlet_returns_err_with_the_message() {
    green_core::run(|| {
        let g: Greenlet<i32> = spawn(|| {
            sleep(5 * MS);
            panic!("broken at step {}", 3)
        });
        let err = g.get().expect_err("it panicked");
        assert_eq!(err.kind(), ErrorKind::Panicked);
        assert!(err.message().contains("broken at step 3"), "{err:?}");
        assert!(err.to_string().contains("broken at step 3"), "{err}");
        assert!(!g.successful());
        assert!(g.dead());
        let again = g.get().expect_err("still failed");
        assert_eq!(again.message(), err.message());
        assert_eq!(
            g.exception().map(|e| e.message().to_string()).as_deref(),
            Some(err.message())
        );
    });
}

#[test]
fn get_of_a_greenlet_killed_with_greenlet_exit_is_err_of_kind_exited() {
    green_core::run(|| {
        let drops = DropCounter::new();
        let g = {
            let token = drops.token();
            spawn(move || {
                let _token = token;
                sleep(Duration::from_secs(10));
                1
            })
        };
        sleep(MS);
        g.kill();
        let err = g.get().expect_err("no value");
        assert!(err.is_exit());
        assert!(g.successful(), "GreenletExit is a success");
        assert_eq!(drops.drops(), 1);
    });
}

#[test]
fn try_get_does_not_block() {
    green_core::run(|| {
        let g = sleeper(20 * MS);
        let err = g.try_get().expect_err("not finished");
        assert_eq!(err.kind(), ErrorKind::NotReady);
        assert!(g.is_alive() || !g.has_started());
        g.join();
        assert_eq!(g.try_get().unwrap(), 20);
    });
}

#[test]
fn get_timeout_returns_not_ready_on_timeout_then_the_value() {
    green_core::run(|| {
        let g = sleeper(80 * MS);
        let start = Instant::now();
        let err = g.get_timeout(10 * MS).expect_err("too early");
        assert_eq!(err.kind(), ErrorKind::NotReady);
        assert!(start.elapsed() >= 10 * MS);
        assert_eq!(g.get_timeout(Duration::from_secs(10)).unwrap(), 80);
    });
}

#[test]
fn get_from_several_greenlets_gives_each_the_value() {
    green_core::run(|| {
        let target = sleeper(20 * MS);
        let getters: Vec<Greenlet<u64>> = (0..4)
            .map(|_| {
                let target = target.clone();
                spawn(move || target.get().unwrap())
            })
            .collect();
        for g in getters {
            assert_eq!(g.get().unwrap(), 20);
        }
    });
}

#[test]
fn a_joiner_killed_while_joining_unwinds_and_the_target_is_unaffected() {
    green_core::run(|| {
        let drops = DropCounter::new();
        let target = sleeper(50 * MS);
        let joiner = {
            let token = drops.token();
            let target = target.clone();
            spawn(move || {
                let _token = token;
                target.join();
                unreachable!("killed while joining");
            })
        };
        sleep(5 * MS);
        joiner.kill();
        assert!(joiner.dead());
        assert!(joiner.successful());
        assert_eq!(drops.drops(), 1);
        assert!(target.is_alive());
        assert_eq!(target.get().unwrap(), 50);
    });
}
