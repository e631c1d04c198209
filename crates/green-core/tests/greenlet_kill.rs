//! Killing greenlets: `kill`, `kill_with`, `kill_nowait`, `kill_timeout`,
//! `killall` and `green_core::kill`; a greenlet that never ran never runs,
//! the payload is delivered once, destructors run exactly once.

#[allow(unreachable_pub)] // support/mod.rs is shared; its `pub` items are crate-local here.
mod support;

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use green_core::{
    current, killall_with, run, sleep, spawn, yield_now, ErrorKind, Greenlet, GreenletExit,
    KillPayload,
};
use support::{DropCounter, Log};

/// How the target was started before the kill.
#[derive(Clone, Copy, Debug)]
enum Start {
    /// `Greenlet::new` only.
    Never,
    /// `start()`: in the ready queue.
    Now,
    /// `start_later(d)`: behind a timer.
    Later,
}

const STARTS: [Start; 3] = [Start::Never, Start::Now, Start::Later];

/// The delay used for `Start::Later`.
const LATER: Duration = Duration::from_millis(10);

fn start(g: &Greenlet<()>, how: Start) {
    match how {
        Start::Never => {}
        Start::Now => g.start(),
        Start::Later => g.start_later(LATER),
    }
}

/// Every way to kill one greenlet.
#[derive(Clone, Copy, Debug)]
enum Killer {
    Kill,
    KillNowait,
    KillTimeout,
    KillallBlock,
    KillallNoBlock,
    FreeKill,
}

impl Killer {
    fn kill(self, g: &Greenlet<()>) {
        match self {
            Killer::Kill => g.kill(),
            Killer::KillNowait => g.kill_nowait(),
            Killer::KillTimeout => {
                let _ = g.kill_timeout(Duration::from_secs(10));
            }
            Killer::KillallBlock => {
                let _ = killall_with(std::slice::from_ref(g), true, None);
            }
            Killer::KillallNoBlock => {
                let _ = killall_with(std::slice::from_ref(g), false, None);
            }
            Killer::FreeKill => green_core::kill(g),
        }
    }

    fn blocks(self) -> bool {
        !matches!(self, Killer::KillNowait | Killer::KillallNoBlock)
    }
}

/// Counts how often each kind of link fired.
#[derive(Clone, Default)]
struct LinkCounts {
    link: Rc<Cell<usize>>,
    raw: Rc<Cell<usize>>,
}

impl LinkCounts {
    fn attach(g: &Greenlet<()>) -> LinkCounts {
        let counts = LinkCounts::default();
        let c = Rc::clone(&counts.link);
        g.link(move |_| c.set(c.get() + 1));
        let c = Rc::clone(&counts.raw);
        g.rawlink(move |_| c.set(c.get() + 1));
        counts
    }

    fn get(&self) -> (usize, usize) {
        (self.link.get(), self.raw.get())
    }
}

/// gevent's TestKill, TestKillAfterStart and TestKillAfterStartLater: a
/// greenlet killed before it ever ran never runs, is dead at once, the kill
/// does not yield, it counts as successful, its links fire once, later, and a
/// second kill does no harm.
fn kill_before_first_run(killer: Killer) {
    run(|| {
        for how in STARTS {
            let log = Log::new();
            let drops = DropCounter::new();
            let token = drops.token();
            let l = log.clone();
            let g = Greenlet::new(move || {
                let _token = token;
                l.push("target ran");
            });
            let links = LinkCounts::attach(&g);
            start(&g, how);
            let l = log.clone();
            let other = spawn(move || l.push("other ran"));

            killer.kill(&g);
            let ctx = format!("{killer:?} after {how:?}");
            assert!(g.dead() && g.ready(), "{ctx}: not dead at once");
            assert!(g.successful(), "{ctx}: GreenletExit is a success");
            assert!(!g.is_alive() && !g.has_started(), "{ctx}");
            assert!(log.snapshot().is_empty(), "{ctx}: the kill yielded");
            assert_eq!(links.get(), (0, 0), "{ctx}: links fired inside kill");

            // Longer than `LATER`: a start timer would have fired by now.
            sleep(LATER * 4);
            assert_eq!(log.snapshot(), ["other ran"], "{ctx}: the target ran");
            assert_eq!(links.get(), (1, 1), "{ctx}: links fire once, later");
            assert_eq!(drops.drops(), 1, "{ctx}: its closure is dropped once");
            assert_eq!(g.exception().map(|e| e.kind()), Some(ErrorKind::Exited));

            killer.kill(&g);
            sleep(LATER * 2);
            assert!(g.dead() && g.successful(), "{ctx}: second kill");
            assert_eq!(links.get(), (1, 1), "{ctx}: second kill refired links");
            assert_eq!(log.snapshot(), ["other ran"], "{ctx}");
            assert_eq!(drops.drops(), 1, "{ctx}");
            assert!(other.dead());
        }
    });
}

#[test]
fn kill_before_first_run_never_runs_it() {
    kill_before_first_run(Killer::Kill);
}

#[test]
fn kill_nowait_before_first_run_never_runs_it() {
    kill_before_first_run(Killer::KillNowait);
}

#[test]
fn kill_timeout_before_first_run_never_runs_it() {
    kill_before_first_run(Killer::KillTimeout);
}

#[test]
fn killall_blocking_before_first_run_never_runs_it() {
    kill_before_first_run(Killer::KillallBlock);
}

#[test]
fn killall_nonblocking_before_first_run_never_runs_it() {
    kill_before_first_run(Killer::KillallNoBlock);
}

#[test]
fn free_kill_before_first_run_never_runs_it() {
    kill_before_first_run(Killer::FreeKill);
}

/// gevent's TestKillWhileRunning: a greenlet parked in a blocking call is
/// unwound by the kill; the rest of its function never runs, its captured
/// values and locals are dropped once, its links fire once.
fn kill_while_parked(killer: Killer) {
    run(|| {
        let log = Log::new();
        let drops = DropCounter::new();
        let captured = drops.token();
        let (l, d) = (log.clone(), drops.clone());
        let g = spawn(move || {
            let _captured = captured;
            let _local = d.token();
            l.push("parked");
            sleep(Duration::from_secs(10));
            l.push("after sleep");
        });
        let links = LinkCounts::attach(&g);
        yield_now();
        assert_eq!(log.snapshot(), ["parked"]);
        let l = log.clone();
        let other = spawn(move || l.push("other ran"));

        let began = Instant::now();
        killer.kill(&g);
        if killer.blocks() {
            assert!(g.dead(), "{killer:?}: a blocking kill returns after death");
        } else {
            assert!(!g.dead(), "{killer:?}: nowait kill waited");
            assert_eq!(
                log.snapshot(),
                ["parked"],
                "{killer:?}: nowait kill yielded"
            );
        }
        sleep(Duration::from_millis(20));
        assert!(began.elapsed() < Duration::from_secs(5));
        assert!(g.dead() && g.successful(), "{killer:?}");
        assert_eq!(g.exception().map(|e| e.kind()), Some(ErrorKind::Exited));
        assert!(!log.snapshot().contains(&"after sleep".to_string()));
        assert_eq!(drops.drops(), 2, "{killer:?}: captured + local, once each");
        assert_eq!(links.get(), (1, 1), "{killer:?}");

        killer.kill(&g);
        sleep(Duration::from_millis(10));
        assert_eq!(links.get(), (1, 1), "{killer:?}: second kill refired links");
        assert_eq!(drops.drops(), 2);
        assert!(other.dead());
    });
}

#[test]
fn kill_unwinds_a_parked_greenlet() {
    kill_while_parked(Killer::Kill);
}

#[test]
fn kill_nowait_unwinds_a_parked_greenlet_without_waiting() {
    kill_while_parked(Killer::KillNowait);
}

#[test]
fn kill_timeout_unwinds_a_parked_greenlet() {
    kill_while_parked(Killer::KillTimeout);
}

#[test]
fn killall_blocking_unwinds_a_parked_greenlet() {
    kill_while_parked(Killer::KillallBlock);
}

#[test]
fn killall_nonblocking_unwinds_a_parked_greenlet_without_waiting() {
    kill_while_parked(Killer::KillallNoBlock);
}

#[test]
fn free_kill_unwinds_a_parked_greenlet() {
    kill_while_parked(Killer::FreeKill);
}

#[test]
fn kill_delivers_greenlet_exit_into_the_target() {
    run(|| {
        let saw_exit = Rc::new(Cell::new(false));
        let s = Rc::clone(&saw_exit);
        let g = spawn(move || {
            let caught = panic::catch_unwind(|| sleep(Duration::from_secs(10)));
            let payload = caught.expect_err("the kill unwinds the sleep");
            s.set(payload.is::<GreenletExit>());
            panic::resume_unwind(payload);
        });
        yield_now();
        g.kill();
        assert!(saw_exit.get());
        assert!(g.successful());
    });
}

#[test]
fn kill_is_delivered_once_and_the_blocking_kill_waits_for_the_target_to_finish() {
    run(|| {
        let log = Log::new();
        let catches = Rc::new(Cell::new(0));
        let (l, c) = (log.clone(), Rc::clone(&catches));
        let g = spawn(move || {
            if panic::catch_unwind(|| sleep(Duration::from_secs(10))).is_err() {
                c.set(c.get() + 1);
                l.push("caught");
            }
            // Not interrupted again: the kill is not retried.
            sleep(Duration::from_millis(30));
            l.push("finished");
            9
        });
        yield_now();
        let began = Instant::now();
        g.kill();
        assert!(began.elapsed() >= Duration::from_millis(30));
        assert_eq!(log.snapshot(), ["caught", "finished"]);
        assert_eq!(catches.get(), 1);
        assert!(g.dead() && g.successful());
        assert_eq!(g.value(), Some(9), "it finished normally after catching");
        assert!(g.exception().is_none());
    });
}

#[test]
fn kill_with_a_payload_raises_kill_payload_and_the_target_dies_killed() {
    #[derive(Debug, PartialEq, Eq)]
    struct Reason(u32);

    run(|| {
        let seen = Rc::new(Cell::new(None));
        let s = Rc::clone(&seen);
        let g = spawn(move || {
            let payload = panic::catch_unwind(|| sleep(Duration::from_secs(10)))
                .expect_err("the kill unwinds the sleep");
            let kill = payload
                .downcast_ref::<KillPayload>()
                .expect("a KillPayload");
            s.set(kill.payload().downcast_ref::<Reason>().map(|r| r.0));
            panic::resume_unwind(payload);
        });
        yield_now();
        g.kill_with(Reason(7));
        assert_eq!(seen.get(), Some(7));
        assert!(g.dead());
        assert!(!g.successful(), "a kill with another payload is a failure");
        assert_eq!(g.exception().map(|e| e.kind()), Some(ErrorKind::Killed));
        let payload = g.take_exception_payload().expect("the payload is kept");
        let kill = payload
            .downcast_ref::<KillPayload>()
            .expect("a KillPayload");
        assert_eq!(kill.payload().downcast_ref::<Reason>(), Some(&Reason(7)));
    });
}

#[test]
fn kill_with_a_message_reports_the_message() {
    run(|| {
        let g = spawn(|| sleep(Duration::from_secs(10)));
        yield_now();
        g.kill_with("shutting down (expected by the test)");
        let e = g.exception().expect("killed");
        assert_eq!(e.kind(), ErrorKind::Killed);
        assert!(e.message().contains("shutting down"), "{e}");
        assert_eq!(g.get().unwrap_err().kind(), ErrorKind::Killed);
    });
}

#[test]
fn kill_with_greenlet_exit_is_a_plain_kill() {
    run(|| {
        let saw_exit = Rc::new(Cell::new(false));
        let s = Rc::clone(&saw_exit);
        let g = spawn(move || {
            let payload = panic::catch_unwind(|| sleep(Duration::from_secs(10))).unwrap_err();
            s.set(payload.is::<GreenletExit>());
            panic::resume_unwind(payload);
        });
        yield_now();
        g.kill_with(GreenletExit);
        assert!(saw_exit.get());
        assert!(g.successful());
        assert_eq!(g.exception().map(|e| e.kind()), Some(ErrorKind::Exited));
    });
}

#[test]
fn kill_with_before_first_run_never_runs_it_and_fails_it() {
    run(|| {
        let ran = Rc::new(Cell::new(false));
        let r = Rc::clone(&ran);
        let g = spawn(move || r.set(true));
        g.kill_with("never mind (expected by the test)");
        assert!(g.dead() && !g.successful() && !g.has_started());
        assert_eq!(g.exception().map(|e| e.kind()), Some(ErrorKind::Killed));
        sleep(Duration::from_millis(10));
        assert!(!ran.get());
    });
}

#[test]
fn kill_timeout_gives_up_on_a_target_that_outlives_it() {
    run(|| {
        let log = Log::new();
        let l = log.clone();
        let g = spawn(move || {
            let _ = panic::catch_unwind(|| sleep(Duration::from_secs(10)));
            l.push("caught");
            // A second kill ends this sleep.
            sleep(Duration::from_secs(10));
            l.push("slept");
        });
        yield_now();
        let began = Instant::now();
        assert!(!g.kill_timeout(Duration::from_millis(50)));
        let waited = began.elapsed();
        assert!(waited >= Duration::from_millis(50), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        assert!(g.is_alive());
        assert_eq!(log.snapshot(), ["caught"]);
        // A new kill is a new delivery.
        assert!(g.kill_timeout(Duration::from_secs(10)));
        assert!(g.dead() && g.successful());
        assert_eq!(log.snapshot(), ["caught"]);
    });
}

#[test]
fn kill_timeout_returns_true_when_the_target_dies_in_time() {
    run(|| {
        let g = spawn(|| sleep(Duration::from_secs(10)));
        yield_now();
        assert!(g.kill_timeout(Duration::from_secs(10)));
        assert!(g.dead());
    });
}

#[test]
fn killall_kills_every_greenlet_and_runs_each_destructor_once() {
    run(|| {
        let drops = DropCounter::new();
        let mut gs: Vec<Greenlet<()>> = (0..5)
            .map(|_| {
                let token = drops.token();
                spawn(move || {
                    let _token = token;
                    sleep(Duration::from_secs(10));
                })
            })
            .collect();
        yield_now();
        // One already dead, and one more that never ran.
        let done = spawn(|| ());
        done.join();
        gs.push(done);
        let token = drops.token();
        gs.push(spawn(move || drop(token)));
        assert_eq!(drops.drops(), 0);
        assert!(killall_with(&gs, true, None));
        assert!(gs.iter().all(|g| g.dead() && g.successful()));
        assert_eq!(drops.drops(), 6);
        sleep(Duration::from_millis(10));
        assert_eq!(drops.drops(), 6);
    });
}

#[test]
fn killall_without_block_returns_before_the_targets_die() {
    run(|| {
        let gs: Vec<Greenlet<()>> = (0..3)
            .map(|_| spawn(|| sleep(Duration::from_secs(10))))
            .collect();
        yield_now();
        assert!(!killall_with(&gs, false, None), "parked targets die later");
        assert!(gs.iter().all(|g| !g.dead()));
        sleep(Duration::from_millis(10));
        assert!(gs.iter().all(|g| g.dead() && g.successful()));
    });
}

#[test]
fn killall_with_a_timeout_gives_up_on_a_target_that_outlives_it() {
    run(|| {
        let stubborn = spawn(|| {
            let _ = panic::catch_unwind(|| sleep(Duration::from_secs(10)));
            sleep(Duration::from_secs(10));
        });
        let meek = spawn(|| sleep(Duration::from_secs(10)));
        yield_now();
        let gs = [stubborn.clone(), meek.clone()];
        let began = Instant::now();
        assert!(!killall_with(&gs, true, Some(Duration::from_millis(50))));
        let waited = began.elapsed();
        assert!(waited >= Duration::from_millis(50), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        assert!(meek.dead());
        assert!(stubborn.is_alive());
        stubborn.kill();
        assert!(stubborn.dead());
    });
}

#[test]
fn a_blocking_kill_from_another_greenlet_waits_for_the_target() {
    run(|| {
        let log = Log::new();
        let l = log.clone();
        let target = spawn(move || {
            let _ = panic::catch_unwind(|| sleep(Duration::from_secs(10)));
            sleep(Duration::from_millis(20));
            l.push("target done");
        });
        yield_now();
        let (t, l) = (target.clone(), log.clone());
        let killer = spawn(move || {
            t.kill();
            l.push("kill returned");
        });
        killer.join();
        assert_eq!(log.snapshot(), ["target done", "kill returned"]);
        assert!(target.dead());
    });
}

#[test]
fn kill_unwinds_a_greenlet_that_is_ready_to_run() {
    run(|| {
        let drops = DropCounter::new();
        let spins = Rc::new(Cell::new(0u32));
        let (s, d) = (Rc::clone(&spins), drops.clone());
        let g = spawn(move || {
            let _token = d.token();
            loop {
                s.set(s.get() + 1);
                yield_now();
            }
        });
        for _ in 0..3 {
            yield_now();
        }
        assert!(spins.get() >= 1);
        g.kill();
        let spun = spins.get();
        assert!(g.dead() && g.successful());
        assert_eq!(drops.drops(), 1);
        sleep(Duration::from_millis(5));
        assert_eq!(spins.get(), spun);
    });
}

/// A blocking kill of oneself is queued like any kill (gevent's `kill`
/// runs `_kill` from the callback queue, then waits): what was queued
/// before it runs first, then it is raised in the kill call. gevent 26.9:
///
/// ```python
/// def g_body():
///     other = gevent.spawn(lambda: log.append("other ran"))
///     try:
///         getcurrent().kill()
///         log.append("after kill")
///     except gevent.GreenletExit:
///         log.append("caught exit")
///         raise
/// # log == ['other ran', 'caught exit'], g.successful() is True
/// ```
#[test]
fn killing_yourself_unwinds_at_the_kills_turn() {
    run(|| {
        let log = Log::new();
        let drops = DropCounter::new();
        let (l, d) = (log.clone(), drops.clone());
        let g = spawn(move || {
            let _token = d.token();
            let l2 = l.clone();
            let other = spawn(move || l2.push("other ran"));
            let me = current().downcast::<()>().expect("a Greenlet<()>");
            let caught = panic::catch_unwind(AssertUnwindSafe(|| {
                me.kill();
                l.push("after kill");
            }));
            let payload = caught.expect_err("killing yourself unwinds");
            l.push(format!("caught exit: {}", payload.is::<GreenletExit>()));
            assert!(other.dead(), "what was queued before the kill ran first");
            panic::resume_unwind(payload);
        });
        g.join();
        assert_eq!(log.snapshot(), ["other ran", "caught exit: true"]);
        assert!(g.dead() && g.successful());
        assert_eq!(drops.drops(), 1);
    });
}

#[test]
fn killing_yourself_without_catching_ends_the_greenlet() {
    run(|| {
        let log = Log::new();
        let drops = DropCounter::new();
        let (l, d) = (log.clone(), drops.clone());
        let g = spawn(move || {
            let _token = d.token();
            current().downcast::<()>().expect("a Greenlet<()>").kill();
            l.push("after kill");
        });
        g.join();
        assert!(log.snapshot().is_empty());
        assert!(g.successful());
        assert_eq!(g.exception().map(|e| e.kind()), Some(ErrorKind::Exited));
        assert_eq!(drops.drops(), 1);
    });
}

#[test]
fn killing_a_dead_greenlet_changes_nothing() {
    run(|| {
        let done = spawn(|| 5);
        let failed = spawn(|| -> i32 { panic!("failed first (expected by the test)") });
        let links = Rc::new(Cell::new(0));
        for g in [&done, &failed] {
            let c = Rc::clone(&links);
            g.rawlink(move |_| c.set(c.get() + 1));
        }
        done.join();
        failed.join();
        sleep(Duration::from_millis(5));
        assert_eq!(links.get(), 2);

        done.kill();
        done.kill_nowait();
        done.kill_with("late");
        assert!(done.kill_timeout(Duration::ZERO));
        green_core::kill(&done);
        failed.kill();
        failed.kill_with("late");
        assert!(killall_with(&[done.clone(), failed.clone()], true, None));

        sleep(Duration::from_millis(5));
        assert!(done.successful());
        assert_eq!(done.value(), Some(5));
        assert!(done.exception().is_none());
        assert!(!failed.successful());
        assert_eq!(
            failed.exception().map(|e| e.kind()),
            Some(ErrorKind::Panicked)
        );
        assert_eq!(links.get(), 2, "links fired again");
    });
}
