//! `LoopExit`: a blocking call in the main greenlet that nothing referenced
//! could ever wake fails with "this operation would block forever" instead of
//! hanging; other blocked greenlets stay suspended until teardown unwinds them.
//!
//! Each scenario runs on its own thread under a watchdog, so that a hang
//! fails the test instead of stalling the suite.

#[allow(unreachable_pub)] // The shared fixtures are `pub` for every test binary.
mod support;

use std::time::{Duration, Instant};

use green_core::{sleep, sleep_unref, spawn, Greenlet, LoopExit, Timeout};
use support::{catch, within, DropCounter};

const BLOCK_FOREVER: &str = "this operation would block forever";

const LIMIT: Duration = Duration::from_secs(20);

/// Runs `f`, expecting it to fail with `LoopExit`; returns the message.
fn expect_loop_exit(f: impl FnOnce()) -> String {
    let payload = catch(f).expect_err("the call would block forever, so it must fail");
    let msg = support::panic_message(&*payload);
    assert!(msg.contains(BLOCK_FOREVER), "message: {msg}");
    msg
}

#[test]
fn joining_a_never_started_greenlet_raises_loop_exit() {
    within(LIMIT, || {
        green_core::run(|| {
            let g: Greenlet<()> = Greenlet::new(|| ());
            let msg = expect_loop_exit(|| g.join());
            assert!(
                msg.contains(LoopExit::MESSAGE),
                "the panic carries LoopExit's text"
            );
            assert!(!g.has_started());
            assert!(!g.dead());
        });
    });
}

#[test]
fn get_on_a_never_started_greenlet_raises_loop_exit() {
    within(LIMIT, || {
        green_core::run(|| {
            let g = Greenlet::new(|| 5);
            expect_loop_exit(|| {
                let _ = g.get();
            });
        });
    });
}

#[test]
fn loop_exit_is_raised_again_on_retry() {
    within(LIMIT, || {
        green_core::run(|| {
            let g: Greenlet<()> = Greenlet::new(|| ());
            expect_loop_exit(|| g.join());
            expect_loop_exit(|| g.join());
            // The hub still works for everything else.
            assert_eq!(spawn(|| 3).get().unwrap(), 3);
        });
    });
}

#[test]
fn joining_a_greenlet_that_waits_forever_raises_loop_exit_and_leaves_it_suspended() {
    within(LIMIT, || {
        let counter = DropCounter::new();
        let waiter = green_core::run(|| {
            let never: Greenlet<()> = Greenlet::new(|| ());
            let token = counter.token();
            let waiter = spawn(move || {
                let _token = token;
                never.join();
                "unreachable"
            });
            expect_loop_exit(|| waiter.join());
            assert!(waiter.is_alive(), "the blocked greenlet stays suspended");
            assert!(!waiter.dead());
            assert_eq!(counter.drops(), 0, "nothing was unwound yet");
            waiter
        });
        // Teardown unwound it with GreenletExit: destructors ran once.
        assert!(waiter.dead());
        assert!(waiter.successful(), "GreenletExit counts as success");
        assert_eq!(counter.drops(), 1);
    });
}

#[test]
fn sleep_unref_in_main_raises_loop_exit_while_others_wait_forever() {
    within(LIMIT, || {
        let counter = DropCounter::new();
        green_core::run(|| {
            let never: Greenlet<()> = Greenlet::new(|| ());
            let token = counter.token();
            let blocked = spawn(move || {
                let _token = token;
                never.join();
            });
            let start = Instant::now();
            expect_loop_exit(|| sleep_unref(Duration::from_secs(60)));
            assert!(start.elapsed() < Duration::from_secs(10));
            assert!(blocked.is_alive());
        });
        assert_eq!(counter.drops(), 1, "unwound once at teardown");
    });
}

#[test]
fn joining_a_greenlet_in_sleep_unref_raises_loop_exit() {
    within(LIMIT, || {
        green_core::run(|| {
            let g = spawn(|| sleep_unref(Duration::from_secs(60)));
            let start = Instant::now();
            expect_loop_exit(|| g.join());
            assert!(start.elapsed() < Duration::from_secs(10));
            assert!(g.is_alive(), "the unref sleeper stays suspended");
        });
    });
}

#[test]
fn chain_of_blocked_greenlets_raises_loop_exit_in_main() {
    within(LIMIT, || {
        let counter = DropCounter::new();
        green_core::run(|| {
            let never: Greenlet<()> = Greenlet::new(|| ());
            let (t1, t2) = (counter.token(), counter.token());
            let inner = spawn(move || {
                let _t = t1;
                never.join();
            });
            let inner2 = inner.clone();
            let outer = spawn(move || {
                let _t = t2;
                inner2.join();
            });
            expect_loop_exit(|| outer.join());
            assert!(inner.is_alive() && outer.is_alive());
        });
        assert_eq!(counter.drops(), 2, "both unwound once at teardown");
    });
}

#[test]
fn referenced_timer_keeps_the_loop_alive() {
    // The contrast case: a greenlet sleeping on a referenced timer can still
    // finish, so joining it is not LoopExit.
    within(LIMIT, || {
        green_core::run(|| {
            let g = spawn(|| {
                sleep(Duration::from_millis(30));
                "woke"
            });
            assert_eq!(g.get().unwrap(), "woke");
        });
    });
}

#[test]
fn a_started_timeout_keeps_a_blocked_main_greenlet_from_loop_exit() {
    // Its timer is referenced, so it can still wake the main greenlet: the
    // join ends with the timeout, not with LoopExit. (The timer is only
    // inserted when the main greenlet blocks; it must be there before the
    // hub decides that nothing can wake it.)
    within(LIMIT, || {
        green_core::run(|| {
            let never: Greenlet<()> = Greenlet::new(|| ());
            let t = Timeout::start_new(Duration::from_millis(20));
            let payload = catch(|| never.join()).expect_err("the timeout fires");
            assert!(t.is(&*payload), "woken by its own timeout, not LoopExit");
        });
    });
}

#[test]
fn loop_exit_in_the_lazy_hub_never_hangs() {
    within(LIMIT, || {
        // No `run`: the hub is created on first use and torn down at thread
        // exit.
        let g: Greenlet<()> = Greenlet::new(|| ());
        expect_loop_exit(|| g.join());
        let blocked = spawn(move || g.join());
        expect_loop_exit(|| blocked.join());
        assert!(blocked.is_alive());
    });
}
