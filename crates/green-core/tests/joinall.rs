//! Many greenlets at once: `joinall` (all, `timeout`, `count`, `raise_error`)
//! and `killall`, including gevent's greenlet-set behaviours (many joined or
//! killed together, kills delivered once to greenlets that refuse to die).

#[allow(unreachable_pub)] // support/mod.rs is shared; its `pub` items are crate-local here.
mod support;

use std::cell::Cell;
use std::panic;
use std::rc::Rc;
use std::time::{Duration, Instant};

use green_core::{
    joinall_with, kill, killall_with, sleep, spawn, ErrorKind, Greenlet, GreenletExit,
};
use support::{catch, sleeper, sleepers, DropCounter, Log, MS};

/// A greenlet that panics with `message` after `delay`.
fn failer(delay: Duration, message: &'static str) -> Greenlet<u64> {
    spawn(move || {
        sleep(delay);
        panic!("{message}")
    })
}

fn alive_count<T: 'static>(gs: &[Greenlet<T>]) -> usize {
    gs.iter().filter(|g| !g.dead()).count()
}

// ===== joinall =====

#[test]
fn joinall_joins_every_greenlet() {
    green_core::run(|| {
        let start = Instant::now();
        let gs = sleepers(&[30, 10, 20]);
        let done = joinall_with(&gs, None, false, None).unwrap();
        assert_eq!(done, [1, 2, 0], "in finishing order");
        assert!(gs.iter().all(|g| g.dead()));
        assert!(start.elapsed() >= 30 * MS);
    });
}

#[test]
fn joinall_of_trivial_greenlets_including_a_duplicate() {
    green_core::run(|| {
        let a = spawn(|| 1u64);
        let b = spawn(|| 2u64);
        let list = [a.clone(), b.clone(), a.clone()];
        let mut done = joinall_with(&list, None, false, None).unwrap();
        done.sort();
        assert_eq!(done, [0, 1, 2]);
        assert!(a.dead() && b.dead());
    });
}

#[test]
fn joinall_of_nothing_returns_at_once() {
    green_core::run(|| {
        let none: [Greenlet<u64>; 0] = [];
        assert!(joinall_with(&none, None, true, None).unwrap().is_empty());
        assert!(joinall_with(&none, Some(Duration::ZERO), false, Some(3))
            .unwrap()
            .is_empty());
    });
}

#[test]
fn joinall_of_dead_greenlets_returns_them_all() {
    green_core::run(|| {
        let gs = sleepers(&[5, 1]);
        for g in &gs {
            g.join();
        }
        assert_eq!(joinall_with(&gs, None, true, None).unwrap(), [0, 1]);
    });
}

#[test]
fn joinall_with_timeout_returns_the_subset_done_in_time() {
    green_core::run(|| {
        let gs = sleepers(&[10, 5000, 20, 6000]);
        let start = Instant::now();
        let done = joinall_with(&gs, Some(150 * MS), false, None).unwrap();
        let elapsed = start.elapsed();
        assert_eq!(done, [0, 2]);
        assert!(elapsed >= 150 * MS, "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
        assert_eq!(alive_count(&gs), 2, "the slow ones keep running");
        assert!(killall_with(&gs, true, None));
    });
}

#[test]
fn joinall_with_timeout_and_nothing_done_returns_empty() {
    green_core::run(|| {
        let gs = sleepers(&[5000, 5000]);
        let done = joinall_with(&gs, Some(20 * MS), true, None).unwrap();
        assert!(done.is_empty());
        assert!(killall_with(&gs, true, None));
    });
}

#[test]
fn joinall_with_count_returns_after_that_many() {
    green_core::run(|| {
        let gs = sleepers(&[5000, 10, 4000, 20]);
        let done = joinall_with(&gs, None, false, Some(2)).unwrap();
        assert_eq!(done, [1, 3]);
        assert_eq!(alive_count(&gs), 2);
        assert!(killall_with(&gs, true, None));
    });
}

#[test]
fn joinall_with_count_zero_returns_at_once() {
    green_core::run(|| {
        let gs = sleepers(&[5000]);
        assert!(joinall_with(&gs, None, false, Some(0)).unwrap().is_empty());
        assert!(gs[0].is_alive() || !gs[0].has_started());
        gs[0].kill();
    });
}

#[test]
fn joinall_with_count_and_timeout_stops_at_whichever_comes_first() {
    green_core::run(|| {
        let gs = sleepers(&[10, 5000, 5000]);
        let done = joinall_with(&gs, Some(50 * MS), false, Some(2)).unwrap();
        assert_eq!(done, [0], "the timeout came first");
        let gs2 = sleepers(&[10, 20, 5000]);
        let done = joinall_with(&gs2, Some(Duration::from_secs(4)), false, Some(2)).unwrap();
        assert_eq!(done, [0, 1], "the count came first");
        assert!(killall_with(&gs, true, None));
        assert!(killall_with(&gs2, true, None));
    });
}

#[test]
fn joinall_raise_error_returns_the_first_failure() {
    green_core::run(|| {
        let gs = vec![
            sleeper(10 * MS),
            failer(60 * MS, "second failure"),
            failer(30 * MS, "first failure"),
            sleeper(Duration::from_secs(5)),
        ];
        let err = joinall_with(&gs, None, true, None).expect_err("one failed");
        assert_eq!(err.kind(), ErrorKind::Panicked);
        assert!(err.message().contains("first failure"), "{err:?}");
        assert!(gs[2].dead());
        assert!(!gs[1].dead(), "returned at the first failure");
        assert!(!gs[3].dead());
        assert!(killall_with(&gs, true, None));
    });
}

#[test]
fn joinall_without_raise_error_ignores_failures() {
    green_core::run(|| {
        let gs = vec![
            failer(10 * MS, "ignored failure"),
            sleeper(20 * MS),
            failer(30 * MS, "another"),
        ];
        let done = joinall_with(&gs, None, false, None).unwrap();
        assert_eq!(done, [0, 1, 2]);
        assert!(!gs[0].successful() && gs[1].successful() && !gs[2].successful());
    });
}

#[test]
fn joinall_raise_error_does_not_count_greenlet_exit_as_a_failure() {
    green_core::run(|| {
        let gs = sleepers(&[5000, 20, 5000]);
        let killer = {
            let victims = [gs[0].clone(), gs[2].clone()];
            spawn(move || {
                sleep(5 * MS);
                killall_with(&victims, false, None);
            })
        };
        let done = joinall_with(&gs, Some(Duration::from_secs(4)), true, None).unwrap();
        let mut sorted = done.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 1, 2]);
        assert!(gs.iter().all(|g| g.successful()));
        killer.join();
    });
}

#[test]
fn joinall_raise_error_counts_a_kill_with_another_payload_as_a_failure() {
    green_core::run(|| {
        let gs = sleepers(&[5000, 5000]);
        sleep(MS);
        gs[1].kill_with("shut down for maintenance");
        let err = joinall_with(&gs, Some(Duration::from_secs(4)), true, None).expect_err("killed");
        assert_eq!(err.kind(), ErrorKind::Killed);
        assert!(err.message().contains("maintenance"), "{err:?}");
        assert!(killall_with(&gs, true, None));
    });
}

#[test]
fn joinall_raise_error_on_an_already_failed_greenlet() {
    green_core::run(|| {
        let bad = failer(MS, "failed before the join");
        bad.join();
        let gs = vec![sleeper(5000 * MS), bad];
        let err = joinall_with(&gs, None, true, None).expect_err("already failed");
        assert!(err.message().contains("failed before the join"));
        assert!(killall_with(&gs, true, None));
    });
}

#[test]
fn joinall_works_inside_a_greenlet() {
    green_core::run(|| {
        let outer = spawn(|| {
            let gs = sleepers(&[20, 10]);
            joinall_with(&gs, None, true, None).unwrap()
        });
        assert_eq!(outer.get().unwrap(), [1, 0]);
    });
}

#[test]
fn joinall_of_many_greenlets() {
    green_core::run(|| {
        let log = Log::new();
        let gs: Vec<Greenlet<usize>> = (0..300)
            .map(|i| {
                let log = log.clone();
                spawn(move || {
                    sleep(Duration::from_millis((i % 7) as u64));
                    log.push(i.to_string());
                    i
                })
            })
            .collect();
        let done = joinall_with(&gs, None, true, None).unwrap();
        assert_eq!(done.len(), 300);
        let mut sorted = done.clone();
        sorted.sort();
        assert_eq!(sorted, (0..300).collect::<Vec<_>>());
        assert_eq!(log.take().len(), 300);
        assert!(gs.iter().enumerate().all(|(i, g)| g.value() == Some(i)));
    });
}

#[test]
fn the_set_of_live_greenlets_shrinks_as_they_finish() {
    // gevent's greenlet-set test: two sleepers of different lengths; after
    // the first one's time, one is left; after the second's, none.
    green_core::run(|| {
        let gs = sleepers(&[50, 250]);
        assert_eq!(alive_count(&gs), 2);
        sleep(150 * MS);
        assert_eq!(alive_count(&gs), 1);
        assert!(gs[0].dead());
        sleep(200 * MS);
        assert_eq!(alive_count(&gs), 0);
    });
}

// ===== killall =====

#[test]
fn killall_blocking_kills_all_without_waiting_for_their_sleeps() {
    green_core::run(|| {
        let drops = DropCounter::new();
        let gs: Vec<Greenlet<u64>> = (0..20)
            .map(|i| {
                let token = drops.token();
                spawn(move || {
                    let _token = token;
                    sleep(Duration::from_secs(5 + i));
                    i
                })
            })
            .collect();
        sleep(MS);
        let start = Instant::now();
        assert!(killall_with(&gs, true, None));
        assert!(start.elapsed() < Duration::from_secs(4));
        assert!(gs.iter().all(|g| g.dead() && g.successful()));
        assert!(gs.iter().all(|g| g.value().is_none()));
        assert_eq!(drops.drops(), 20, "every greenlet's locals dropped once");
    });
}

#[test]
fn killall_without_block_returns_before_they_die() {
    green_core::run(|| {
        let gs = sleepers(&[5000, 5000]);
        sleep(MS);
        assert!(gs.iter().all(|g| g.is_alive()));
        assert!(!killall_with(&gs, false, None), "not dead yet");
        assert_eq!(alive_count(&gs), 2);
        sleep(MS);
        assert_eq!(alive_count(&gs), 0);
        assert!(gs.iter().all(|g| g.successful()));
    });
}

#[test]
fn killall_of_greenlets_that_never_ran_is_immediate() {
    green_core::run(|| {
        let drops = DropCounter::new();
        let ran = Rc::new(Cell::new(0));
        let gs: Vec<Greenlet<()>> = (0..5)
            .map(|_| {
                let token = drops.token();
                let ran = Rc::clone(&ran);
                spawn(move || {
                    let _token = token;
                    ran.set(ran.get() + 1);
                })
            })
            .collect();
        assert!(killall_with(&gs, false, None), "dead at once");
        sleep(5 * MS);
        assert_eq!(ran.get(), 0, "none of them ever runs");
        assert_eq!(drops.drops(), 5);
    });
}

#[test]
fn killall_of_dead_greenlets_is_a_no_op() {
    green_core::run(|| {
        let gs = sleepers(&[1, 2]);
        joinall_with(&gs, None, true, None).unwrap();
        assert!(killall_with(&gs, true, Some(Duration::ZERO)));
        assert_eq!(gs[0].get().unwrap(), 1);
        assert_eq!(gs[1].get().unwrap(), 2);
    });
}

/// gevent's "undead" greenlet: it catches `GreenletExit` and keeps going,
/// counting the shots, until `stop` is set.
fn undead(shots: Rc<Cell<usize>>, stop: Rc<Cell<bool>>) -> Greenlet<()> {
    spawn(move || {
        while !stop.get() {
            let r = catch(|| sleep(5 * MS));
            if let Err(payload) = r {
                if payload.is::<GreenletExit>() {
                    shots.set(shots.get() + 1);
                } else {
                    panic::resume_unwind(payload);
                }
            }
        }
    })
}

#[test]
fn killall_delivers_each_kill_once_to_greenlets_that_catch_it() {
    green_core::run(|| {
        let stop = Rc::new(Cell::new(false));
        let shots = [Rc::new(Cell::new(0)), Rc::new(Cell::new(0))];
        let gs = vec![
            undead(Rc::clone(&shots[0]), Rc::clone(&stop)),
            undead(Rc::clone(&shots[1]), Rc::clone(&stop)),
        ];
        sleep(10 * MS);
        let count = || (shots[0].get(), shots[1].get());
        assert_eq!(count(), (0, 0));

        // Three kills before they get to run again: each kill delivers one
        // exception (gevent, tests/gevent_order/16): three shots each.
        assert!(!killall_with(&gs, false, None));
        assert!(!killall_with(&gs, false, None));
        assert!(!killall_with(&gs, false, None));
        assert_eq!(count(), (0, 0), "nothing is delivered synchronously");
        sleep(30 * MS);
        assert_eq!(count(), (3, 3), "each kill delivered once, never retried");
        assert!(gs.iter().all(|g| g.is_alive()));

        // A blocking killall with a timeout gives up; they are still alive.
        let start = Instant::now();
        assert!(!killall_with(&gs, true, Some(50 * MS)));
        assert!(start.elapsed() >= 50 * MS);
        assert_eq!(count(), (4, 4));
        assert!(gs.iter().all(|g| g.is_alive()));

        stop.set(true);
        assert_eq!(
            joinall_with(&gs, Some(Duration::from_secs(4)), true, None)
                .unwrap()
                .len(),
            2
        );
        assert_eq!(count(), (4, 4));
    });
}

#[test]
fn killall_waits_for_greenlets_that_clean_up_slowly() {
    green_core::run(|| {
        let log = Log::new();
        let gs: Vec<Greenlet<()>> = (0..3)
            .map(|i| {
                let log = log.clone();
                spawn(move || {
                    struct SlowCleanup(Log, usize);
                    impl Drop for SlowCleanup {
                        fn drop(&mut self) {
                            self.0.push(format!("cleanup {}", self.1));
                        }
                    }
                    let _cleanup = SlowCleanup(log.clone(), i);
                    let r = panic::catch_unwind(|| sleep(Duration::from_secs(5)));
                    if let Err(p) = r {
                        // Blocking during cleanup is allowed once the kill
                        // has been delivered.
                        sleep(20 * MS);
                        panic::resume_unwind(p);
                    }
                })
            })
            .collect();
        sleep(MS);
        let start = Instant::now();
        assert!(killall_with(&gs, true, Some(Duration::from_secs(4))));
        assert!(start.elapsed() >= 20 * MS);
        let mut entries = log.take();
        entries.sort();
        assert_eq!(entries, ["cleanup 0", "cleanup 1", "cleanup 2"]);
    });
}

#[test]
fn kill_function_kills_one_greenlet_and_waits() {
    green_core::run(|| {
        let g = sleeper(Duration::from_secs(5));
        sleep(MS);
        kill(&g);
        assert!(g.dead());
        assert!(g.successful());
    });
}

#[test]
fn killall_then_joinall_over_a_mixed_set() {
    // Finished, failed, sleeping and never-run greenlets together.
    green_core::run(|| {
        let finished = sleeper(MS);
        let failed = failer(MS, "failed earlier");
        finished.join();
        failed.join();
        let sleeping = sleeper(Duration::from_secs(5));
        sleep(MS);
        let fresh = sleeper(MS);
        let all = vec![finished, failed, sleeping, fresh.clone()];
        assert!(killall_with(&all, true, None));
        assert!(fresh.dead() && !fresh.has_started());
        assert_eq!(
            all[0].get().unwrap(),
            1,
            "a finished greenlet keeps its value"
        );
        let done = joinall_with(&all, None, false, None).unwrap();
        assert_eq!(done, [0, 1, 2, 3]);
        let err = joinall_with(&all, None, true, None).expect_err("one had failed");
        assert!(err.message().contains("failed earlier"), "{err:?}");
        assert!(all[2].successful() && all[3].successful());
    });
}
