//! Hub teardown: at the end of `run`, at `shutdown()` and at thread exit,
//! every live greenlet (parked, ready, scheduled but not started) is unwound
//! with `GreenletExit` so its destructors run exactly once, without hanging
//! or aborting, even when a greenlet catches the exit and blocks again.
//!
//! Scenarios that could hang run under a watchdog thread; the one that could
//! abort runs in a child process (this binary run again with
//! `GREEN_CORE_TEARDOWN_CHILD` naming it).

#[allow(unreachable_pub)] // The shared fixtures are `pub` for every test binary.
mod support;

use std::cell::Cell;
use std::panic;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use green_core::{sleep, spawn, spawn_later, yield_now, Greenlet, GreenletExit};
use support::{catch, run_child, within, DropCounter};

const FOREVER: Duration = Duration::from_secs(3600);
const LIMIT: Duration = Duration::from_secs(20);
const CHILD_ENV: &str = "GREEN_CORE_TEARDOWN_CHILD";

/// Like the shared `DropToken`, but `Send`: for hubs on other threads.
struct SendToken(Arc<AtomicUsize>);

impl Drop for SendToken {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Sleeps "forever"; records whether it was unwound by `GreenletExit`.
fn sleep_recording_exit(saw_exit: &Cell<bool>) {
    if let Err(p) = catch(|| sleep(FOREVER)) {
        saw_exit.set(p.is::<GreenletExit>());
        panic::resume_unwind(p);
    }
}

#[test]
fn end_of_run_unwinds_a_parked_greenlet_with_greenlet_exit() {
    let counter = DropCounter::new();
    let saw_exit = Rc::new(Cell::new(false));
    let (c, s) = (counter.clone(), Rc::clone(&saw_exit));
    let g = green_core::run(move || {
        let g = spawn(move || {
            let _t = c.token();
            sleep_recording_exit(&s);
        });
        yield_now(); // It starts and parks on its timer.
        assert!(g.is_alive());
        g
    });
    assert!(saw_exit.get(), "it was unwound by GreenletExit");
    assert_eq!(counter.drops(), 1);
    assert!(g.dead());
    assert!(g.successful(), "GreenletExit counts as success");
}

#[test]
fn end_of_run_unwinds_a_ready_greenlet() {
    let counter = DropCounter::new();
    let c = counter.clone();
    let spins = Rc::new(Cell::new(0u32));
    let s = Rc::clone(&spins);
    green_core::run(move || {
        spawn(move || {
            let _t = c.token();
            // Bounded, so that a teardown that cannot stop it still ends.
            while s.get() < 1_000_000 {
                s.set(s.get() + 1);
                yield_now();
            }
        });
        yield_now();
        yield_now();
        // The spinner is now in the ready queue.
    });
    assert_eq!(counter.drops(), 1);
    assert!(
        spins.get() < 1_000_000,
        "it was unwound, not run to its end"
    );
}

#[test]
fn end_of_run_drops_a_scheduled_greenlet_that_never_ran() {
    let counter = DropCounter::new();
    let ran = Rc::new(Cell::new(false));
    let r = Rc::clone(&ran);
    let token = counter.token();
    let g = green_core::run(move || {
        spawn(move || {
            let _t = token;
            r.set(true);
        })
    });
    assert!(!ran.get(), "a greenlet killed before it started never runs");
    assert_eq!(counter.drops(), 1, "its closure was dropped once");
    assert!(g.dead());
    assert!(g.successful());
}

#[test]
fn end_of_run_drops_a_spawn_later_greenlet_that_never_ran() {
    let counter = DropCounter::new();
    let ran = Rc::new(Cell::new(false));
    let r = Rc::clone(&ran);
    let token = counter.token();
    let start = Instant::now();
    let g = green_core::run(move || {
        spawn_later(FOREVER, move || {
            let _t = token;
            r.set(true);
        })
    });
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "teardown did not wait for the timer"
    );
    assert!(!ran.get());
    assert_eq!(counter.drops(), 1);
    assert!(g.dead());
}

#[test]
fn end_of_run_unwinds_greenlets_in_every_state_once() {
    let counter = DropCounter::new();
    let c = counter.clone();
    let gs = green_core::run(move || {
        let mut gs: Vec<Greenlet<()>> = Vec::new();
        let never: Greenlet<()> = Greenlet::new(|| ());
        for _ in 0..4 {
            let (captured, c) = (c.token(), c.clone());
            gs.push(spawn(move || {
                let _captured = captured;
                let _local = c.token();
                sleep(FOREVER);
            }));
        }
        for _ in 0..3 {
            let (captured, c, never) = (c.token(), c.clone(), never.clone());
            gs.push(spawn(move || {
                let _captured = captured;
                let _local = c.token();
                never.join();
            }));
        }
        for _ in 0..3 {
            let (captured, c) = (c.token(), c.clone());
            gs.push(spawn(move || {
                let _captured = captured;
                let _local = c.token();
                for _ in 0..1_000_000 {
                    yield_now();
                }
            }));
        }
        yield_now(); // Everything so far starts: parked or ready.
        for _ in 0..3 {
            let captured = c.token();
            gs.push(spawn(move || drop(captured)));
        }
        for _ in 0..2 {
            let captured = c.token();
            gs.push(spawn_later(FOREVER, move || drop(captured)));
        }
        assert_eq!(c.drops(), 0);
        gs
    });
    // 10 started greenlets with two tokens each, 5 unstarted with one.
    assert_eq!(counter.drops(), 25, "every value dropped exactly once");
    assert!(gs.iter().all(|g| g.dead() && g.successful()));
}

#[test]
fn greenlet_spawned_by_a_destructor_during_teardown_is_torn_down_too() {
    struct SpawnOnDrop(Option<support::DropToken>);
    impl Drop for SpawnOnDrop {
        fn drop(&mut self) {
            let token = self.0.take();
            spawn(move || {
                let _t = token;
                sleep(FOREVER);
            });
        }
    }
    within(LIMIT, || {
        let counter = DropCounter::new();
        let c = counter.clone();
        green_core::run(move || {
            spawn(move || {
                let _guard = SpawnOnDrop(Some(c.token()));
                sleep(FOREVER);
            });
            yield_now();
        });
        assert_eq!(
            counter.drops(),
            1,
            "the late greenlet's closure was dropped once"
        );
    });
}

#[test]
fn shutdown_tears_the_lazy_hub_down_and_the_next_use_builds_a_new_one() {
    // No `run`: this tests the lazy hub and explicit shutdown.
    let counter = DropCounter::new();
    let saw_exit = Rc::new(Cell::new(false));
    let (c, s) = (counter.clone(), Rc::clone(&saw_exit));
    let g = spawn(move || {
        let _t = c.token();
        sleep_recording_exit(&s);
    });
    yield_now();
    assert!(g.is_alive());
    green_core::shutdown();
    assert!(g.dead());
    assert!(saw_exit.get());
    assert_eq!(counter.drops(), 1);

    assert_eq!(spawn(|| 9).get().unwrap(), 9, "a fresh hub works");
    let c = counter.clone();
    spawn(move || {
        let _t = c.token();
        sleep(FOREVER);
    });
    yield_now();
    green_core::shutdown();
    assert_eq!(counter.drops(), 2);
}

#[test]
fn a_timeout_of_the_main_greenlet_firing_during_teardown_does_not_cut_it_short() {
    // Teardown waits for a destructor that blocks for a while; the main
    // greenlet's own timeout fires meanwhile. It must not unwind out of the
    // middle of `shutdown` (leaving a half-torn-down hub): the wait is
    // uninterruptible and the teardown completes.
    within(LIMIT, || {
        struct SlowDrop(Rc<Cell<bool>>);
        impl Drop for SlowDrop {
            fn drop(&mut self) {
                sleep(Duration::from_millis(50));
                self.0.set(true);
            }
        }
        let dropped = Rc::new(Cell::new(false));
        let d = Rc::clone(&dropped);
        let g = spawn(move || {
            let _slow = SlowDrop(d);
            sleep(FOREVER);
        });
        yield_now();
        let timeout = green_core::Timeout::start_new(Duration::from_millis(5));
        let ended = catch(green_core::shutdown);
        assert!(
            ended.is_ok(),
            "shutdown returned instead of raising the timeout"
        );
        assert!(dropped.get(), "the blocking destructor ran to its end");
        assert!(g.dead());
        drop(timeout);
        assert_eq!(spawn(|| 3).get().unwrap(), 3, "a fresh hub works");
        green_core::shutdown();
    });
}

/// Runs `block` until it returns, catching each `GreenletExit` (and calling
/// `caught`) and blocking again, at most 1000 times.
fn block_catching_exits(block: impl Fn(), caught: impl Fn()) {
    for _ in 0..1000 {
        match catch(&block) {
            Err(p) if p.is::<GreenletExit>() => caught(),
            Err(p) => panic::resume_unwind(p),
            Ok(()) => return,
        }
    }
}

/// A greenlet that catches the exit and blocks again with `block` (given a
/// greenlet that never starts) must not hang the end of `run`.
fn teardown_of_a_greenlet_that_catches_exit_and_blocks_again(block: fn(&Greenlet<()>)) {
    within(LIMIT, move || {
        let counter = DropCounter::new();
        let caught = Rc::new(Cell::new(0u32));
        let (c, k) = (counter.clone(), Rc::clone(&caught));
        green_core::run(move || {
            let never: Greenlet<()> = Greenlet::new(|| ());
            spawn(move || {
                let _t = c.token();
                block_catching_exits(|| block(&never), || k.set(k.get() + 1));
            });
            yield_now();
        });
        assert!(caught.get() >= 1, "teardown delivered GreenletExit");
        assert_eq!(
            counter.drops(),
            1,
            "the forced unwind ran its destructors once"
        );
    });
}

#[test]
fn greenlet_that_catches_exit_and_blocks_forever_does_not_hang_teardown() {
    teardown_of_a_greenlet_that_catches_exit_and_blocks_again(|never| never.join());
}

#[test]
fn greenlet_that_catches_exit_and_sleeps_again_does_not_hang_teardown() {
    teardown_of_a_greenlet_that_catches_exit_and_blocks_again(|_| sleep(FOREVER));
}

#[test]
fn thread_exit_unwinds_live_greenlets_of_the_lazy_hub() {
    let drops = Arc::new(AtomicUsize::new(0));
    let exits = Arc::new(AtomicUsize::new(0));
    let (d, e) = (Arc::clone(&drops), Arc::clone(&exits));
    within(LIMIT, move || {
        // No `run`: the hub is built on first use and dropped at thread exit.
        let never: Greenlet<()> = Greenlet::new(|| ());
        let record_exit = |p: Box<dyn std::any::Any + Send>, e: &AtomicUsize| {
            if p.is::<GreenletExit>() {
                e.fetch_add(1, Ordering::SeqCst);
            }
            panic::resume_unwind(p)
        };
        let (t, e1) = (SendToken(Arc::clone(&d)), Arc::clone(&e));
        spawn(move || {
            let _t = t;
            if let Err(p) = catch(|| sleep(FOREVER)) {
                record_exit(p, &e1);
            }
        });
        let (t, e2) = (SendToken(Arc::clone(&d)), Arc::clone(&e));
        spawn(move || {
            let _t = t;
            if let Err(p) = catch(|| never.join()) {
                record_exit(p, &e2);
            }
        });
        yield_now(); // Both park.
        let t = SendToken(Arc::clone(&d));
        spawn(move || drop(t)); // Scheduled, never started.
        assert_eq!(d.load(Ordering::SeqCst), 0);
    });
    assert_eq!(
        drops.load(Ordering::SeqCst),
        3,
        "every value dropped exactly once"
    );
    assert_eq!(
        exits.load(Ordering::SeqCst),
        2,
        "both parked greenlets saw GreenletExit"
    );
}

/// Not a test of its own: the body the child processes run.
#[test]
#[ignore = "child body"]
fn child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    match mode.as_str() {
        "thread_exit_catch_and_block" => {
            let drops = Arc::new(AtomicUsize::new(0));
            let caught = Arc::new(AtomicBool::new(false));
            let (d, k) = (Arc::clone(&drops), Arc::clone(&caught));
            let t = thread::spawn(move || {
                let never: Greenlet<()> = Greenlet::new(|| ());
                let token = SendToken(d);
                spawn(move || {
                    let _t = token;
                    block_catching_exits(|| never.join(), || k.store(true, Ordering::SeqCst));
                });
                yield_now();
            });
            let joined = t.join().is_ok();
            println!(
                "JOINED {joined} DROPS {} CAUGHT {}",
                drops.load(Ordering::SeqCst),
                caught.load(Ordering::SeqCst)
            );
        }
        other => panic!("unknown child mode {other}"),
    }
}

#[test]
fn thread_exit_with_a_greenlet_that_catches_exit_and_blocks_again_neither_hangs_nor_aborts() {
    let child = run_child(CHILD_ENV, "thread_exit_catch_and_block", LIMIT);
    let status = child.status;
    let out = String::from_utf8_lossy(&child.stdout);
    let err = String::from_utf8_lossy(&child.stderr);
    assert!(
        status.success(),
        "child died: {status:?}\nstdout: {out}\nstderr: {err}"
    );
    assert!(
        out.contains("JOINED true DROPS 1 CAUGHT true"),
        "stdout: {out}\nstderr: {err}"
    );
}

#[test]
fn greenlet_that_catches_exit_and_keeps_yielding_does_not_hang_teardown() {
    teardown_of_a_greenlet_that_catches_exit_and_blocks_again(|_| {
        for _ in 0..1_000_000 {
            yield_now();
        }
    });
}

/// Runs `f` when dropped.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// Ends a `run` with one greenlet asleep whose guard runs `destructor` as
/// teardown unwinds it. With `catch_exits` the greenlet catches its exits
/// and sleeps again, so teardown must unwind it by force. Fails if teardown
/// hangs; returns what the destructor returned (`false` if it never did).
/// The destructor runs while unwinding: it must report, not panic.
fn teardown_with_a_destructor(destructor: fn() -> bool, catch_exits: bool) -> bool {
    within(LIMIT, move || {
        let finished = Rc::new(Cell::new(false));
        let f = Rc::clone(&finished);
        green_core::run(move || {
            spawn(move || {
                let _guard = OnDrop(move || f.set(destructor()));
                if catch_exits {
                    block_catching_exits(|| sleep(FOREVER), || ());
                } else {
                    sleep(FOREVER);
                }
            });
            yield_now();
        });
        finished.get()
    })
}

/// A destructor that sleeps briefly while its greenlet unwinds from the
/// teardown's GreenletExit gets to finish: teardown waits out short blocks
/// (found by review: force-unwinding it again was a double panic, an abort).
#[test]
fn teardown_lets_a_briefly_blocking_destructor_finish() {
    let finished = teardown_with_a_destructor(
        || {
            sleep(Duration::from_millis(20));
            true
        },
        false,
    );
    assert!(finished, "the destructor's sleep returned and it completed");
}

/// A destructor that blocks forever while unwinding can be neither waited
/// for nor unwound again: after its grace period teardown resumes it once
/// with its blocking call giving up (U4), so the destructor runs to its end
/// and the greenlet's unwind finishes, without hanging or aborting.
#[test]
fn teardown_gives_up_on_a_destructor_that_blocks_forever() {
    assert!(
        teardown_with_a_destructor(
            || {
                sleep(FOREVER);
                true
            },
            false
        ),
        "its sleep gave up and the destructor completed"
    );
}

/// A destructor that keeps blocking after its one wait gave up cannot be
/// finished: teardown leaks it, without hanging or aborting.
#[test]
fn teardown_leaks_a_destructor_that_blocks_again_after_giving_up() {
    assert!(
        !teardown_with_a_destructor(
            || {
                loop {
                    sleep(FOREVER);
                }
            },
            false
        ),
        "the destructor never completed"
    );
}

/// A destructor that yields while waiting for a timer during teardown lets
/// the loop run (found by review: a lone yield during teardown went back
/// and forth with the hub without ever polling the loop).
#[test]
fn a_destructor_yielding_for_a_timer_during_teardown_sees_it_fire() {
    let finished = teardown_with_a_destructor(
        || {
            let flag = Rc::new(Cell::new(false));
            let fl = Rc::clone(&flag);
            spawn(move || {
                sleep(Duration::from_millis(5));
                fl.set(true);
            });
            let start = Instant::now();
            while !flag.get() && start.elapsed() < Duration::from_secs(5) {
                yield_now();
            }
            flag.get()
        },
        false,
    );
    assert!(finished, "the timer fired while the destructor yielded");
}

/// `idle()` in a destructor during teardown returns.
#[test]
fn idle_in_a_destructor_during_teardown_returns() {
    assert!(teardown_with_a_destructor(
        || {
            green_core::idle();
            true
        },
        false
    ));
}

/// A straggler forced to unwind whose destructor polls forever (sleeping in
/// a loop) must not hang teardown (found by review: blocking calls returned
/// at once during a forced unwind, so the loop spun); it is left suspended.
#[test]
fn a_polling_destructor_in_a_forced_unwind_does_not_hang_teardown() {
    let finished = teardown_with_a_destructor(
        || loop {
            sleep(Duration::from_millis(1));
        },
        true,
    );
    assert!(!finished, "the polling never ends");
}
