//! `wait` and `iwait` over the `Waitable` protocol (greenlets as waitables):
//! readiness order, `count`, `timeout`, and unlinking when a wait ends early.

#[allow(unreachable_pub)] // support/mod.rs is shared; its `pub` items are crate-local here.
mod support;

use std::cell::{Cell, RefCell};
use std::panic;
use std::rc::Rc;
use std::time::{Duration, Instant};

use green_core::{current, iwait, sleep, spawn, wait, Greenlet, LinkId, Timeout, Waitable};
use support::{catch, panic_message, sleeper, sleepers, wait_for, DropCounter, Log, MS};

fn as_waitables<T: 'static>(gs: &[Greenlet<T>]) -> Vec<&dyn Waitable> {
    gs.iter().map(|g| g as &dyn Waitable).collect()
}

/// Wraps a waitable and counts what a waiter does with it: links made,
/// unlinks, and callbacks that actually ran.
struct Spy<'a> {
    inner: &'a dyn Waitable,
    linked: Cell<usize>,
    unlinked: Cell<usize>,
    fired: Rc<Cell<usize>>,
}

impl<'a> Spy<'a> {
    fn new(inner: &'a dyn Waitable) -> Spy<'a> {
        Spy {
            inner,
            linked: Cell::new(0),
            unlinked: Cell::new(0),
            fired: Rc::new(Cell::new(0)),
        }
    }
}

impl Waitable for Spy<'_> {
    fn is_ready(&self) -> bool {
        self.inner.is_ready()
    }

    fn link_ready(&self, callback: Box<dyn FnOnce()>) -> LinkId {
        self.linked.set(self.linked.get() + 1);
        let fired = Rc::clone(&self.fired);
        self.inner.link_ready(Box::new(move || {
            fired.set(fired.get() + 1);
            callback();
        }))
    }

    fn unlink_ready(&self, id: LinkId) {
        self.unlinked.set(self.unlinked.get() + 1);
        self.inner.unlink_ready(id);
    }
}

// ===== Greenlet as a Waitable =====

#[test]
fn a_greenlet_is_ready_once_it_has_finished() {
    green_core::run(|| {
        let g = sleeper(10 * MS);
        assert!(!g.is_ready());
        g.join();
        assert!(g.is_ready());
    });
}

#[test]
fn link_ready_calls_back_from_the_hub_after_death() {
    green_core::run(|| {
        let log = Log::new();
        let g = sleeper(10 * MS);
        {
            let log = log.clone();
            g.link_ready(Box::new(move || {
                // The hub runs it: there is no current greenlet.
                let in_hub = panic::catch_unwind(current).is_err();
                log.push(format!("ready in_hub={in_hub}"));
            }));
        }
        sleep(2 * MS);
        assert!(log.snapshot().is_empty());
        g.join();
        wait_for("the callback", || !log.snapshot().is_empty());
        sleep(10 * MS);
        assert_eq!(log.take(), ["ready in_hub=true"]);
    });
}

#[test]
fn link_ready_on_a_finished_greenlet_calls_back_once_later() {
    green_core::run(|| {
        let calls = Rc::new(Cell::new(0));
        let g = sleeper(MS);
        g.join();
        {
            let calls = Rc::clone(&calls);
            g.link_ready(Box::new(move || calls.set(calls.get() + 1)));
        }
        assert_eq!(calls.get(), 0, "not synchronously");
        wait_for("the callback", || calls.get() == 1);
        sleep(10 * MS);
        assert_eq!(calls.get(), 1);
    });
}

#[test]
fn unlink_ready_stops_the_callback() {
    green_core::run(|| {
        let calls = Rc::new(Cell::new(0));
        let g = sleeper(10 * MS);
        let id = {
            let calls = Rc::clone(&calls);
            g.link_ready(Box::new(move || calls.set(calls.get() + 1)))
        };
        g.unlink_ready(id);
        g.join();
        sleep(20 * MS);
        assert_eq!(calls.get(), 0);
    });
}

// ===== wait =====

#[test]
fn wait_returns_indices_in_the_order_they_became_ready() {
    green_core::run(|| {
        let start = Instant::now();
        let gs = sleepers(&[90, 10, 50]);
        let done = wait(&as_waitables(&gs), None, None);
        assert_eq!(done, [1, 2, 0]);
        assert!(start.elapsed() >= 90 * MS);
        assert!(gs.iter().all(|g| g.dead()));
    });
}

#[test]
fn wait_with_count_returns_once_that_many_are_ready() {
    green_core::run(|| {
        let gs = sleepers(&[3000, 10, 40]);
        let done = wait(&as_waitables(&gs), None, Some(2));
        assert_eq!(done, [1, 2]);
        assert!(!gs[0].dead(), "the slow one is still running");
        gs[0].kill();
    });
}

#[test]
fn wait_with_a_count_above_the_number_of_objects_waits_for_all() {
    green_core::run(|| {
        let gs = sleepers(&[20, 10]);
        let done = wait(&as_waitables(&gs), None, Some(10));
        assert_eq!(done, [1, 0]);
    });
}

#[test]
fn wait_with_timeout_returns_those_ready_in_time() {
    green_core::run(|| {
        let gs = sleepers(&[10, 5000, 20]);
        let start = Instant::now();
        let done = wait(&as_waitables(&gs), Some(200 * MS), None);
        let elapsed = start.elapsed();
        assert_eq!(done, [0, 2]);
        assert!(elapsed >= 200 * MS, "waited the full timeout: {elapsed:?}");
        assert!(
            elapsed < Duration::from_secs(4),
            "did not wait for the slow one"
        );
        assert!(!gs[1].dead());
        gs[1].kill();
    });
}

#[test]
fn wait_with_timeout_returns_early_when_all_are_ready() {
    green_core::run(|| {
        let gs = sleepers(&[10, 20]);
        let start = Instant::now();
        let done = wait(&as_waitables(&gs), Some(Duration::from_secs(10)), None);
        assert_eq!(done, [0, 1]);
        assert!(start.elapsed() < Duration::from_secs(5));
    });
}

#[test]
fn wait_with_timeout_and_nothing_ready_returns_empty() {
    green_core::run(|| {
        let gs = sleepers(&[5000]);
        let start = Instant::now();
        let done = wait(&as_waitables(&gs), Some(30 * MS), None);
        assert!(done.is_empty());
        assert!(start.elapsed() >= 30 * MS);
        gs[0].kill();
    });
}

#[test]
fn wait_on_objects_already_ready_returns_all_in_list_order() {
    green_core::run(|| {
        let gs = sleepers(&[20, 1, 10]);
        for g in &gs {
            g.join();
        }
        let done = wait(&as_waitables(&gs), None, None);
        assert_eq!(done, [0, 1, 2]);
    });
}

#[test]
fn wait_on_nothing_or_for_zero_objects_returns_at_once() {
    green_core::run(|| {
        let ran = Rc::new(Cell::new(false));
        {
            let ran = Rc::clone(&ran);
            spawn(move || ran.set(true));
        }
        assert!(wait(&[], None, None).is_empty());
        let gs = sleepers(&[5000]);
        assert!(wait(&as_waitables(&gs), None, Some(0)).is_empty());
        assert!(!ran.get(), "neither call switched away");
        gs[0].kill();
    });
}

#[test]
fn wait_works_inside_a_greenlet() {
    green_core::run(|| {
        let waiter = spawn(|| {
            let gs = sleepers(&[30, 10]);
            wait(&as_waitables(&gs), None, None)
        });
        assert_eq!(waiter.get().unwrap(), [1, 0]);
    });
}

#[test]
fn wait_counts_failed_and_killed_greenlets_as_ready() {
    green_core::run(|| {
        let failed: Greenlet<u64> = spawn(|| {
            sleep(10 * MS);
            panic!("failing on purpose")
        });
        let killed = sleeper(Duration::from_secs(10));
        let fine = sleeper(40 * MS);
        let objects: [&dyn Waitable; 3] = [&failed, &killed, &fine];
        let killer = {
            let killed = killed.clone();
            spawn(move || {
                sleep(20 * MS);
                killed.kill();
            })
        };
        assert_eq!(wait(&objects, None, None), [0, 1, 2]);
        killer.join();
    });
}

#[test]
fn wait_mixes_greenlets_of_different_types() {
    green_core::run(|| {
        let a = spawn(|| {
            sleep(20 * MS);
            "text"
        });
        let b = spawn(|| {
            sleep(5 * MS);
            7u8
        });
        let objects: [&dyn Waitable; 2] = [&a, &b];
        assert_eq!(wait(&objects, None, None), [1, 0]);
    });
}

// ===== iwait =====

#[test]
fn iwait_yields_each_index_as_soon_as_it_finishes() {
    green_core::run(|| {
        let gs = sleepers(&[90, 10, 50]);
        let objects = as_waitables(&gs);
        let mut order = Vec::new();
        for i in iwait(&objects, None) {
            assert!(gs[i].dead(), "yielded only once finished");
            let still_running = gs.iter().filter(|g| !g.dead()).count();
            order.push((i, still_running));
        }
        assert_eq!(order, [(1, 2), (2, 1), (0, 0)]);
    });
}

#[test]
fn iwait_ends_when_its_timeout_passes() {
    green_core::run(|| {
        let gs = sleepers(&[10, 5000, 30]);
        let objects = as_waitables(&gs);
        let start = Instant::now();
        let got: Vec<usize> = iwait(&objects, Some(200 * MS)).collect();
        let elapsed = start.elapsed();
        assert_eq!(got, [0, 2]);
        assert!(elapsed >= 200 * MS, "ended at the timeout: {elapsed:?}");
        assert!(elapsed < Duration::from_secs(4));
        gs[1].kill();
    });
}

#[test]
fn iwait_timeout_bounds_the_whole_iteration_not_each_item() {
    // Items are ready 50 ms apart or closer, well inside the 150 ms timeout,
    // but the third and fourth come after 150 ms from the start. A timeout
    // over the whole iteration ends it after two items; one restarted for
    // each item would never expire and yield all four. The 50 ms margins
    // keep the two apart on a loaded machine: every deadline (the sleepers'
    // and the timeout's) counts from the same instant, so a late hub fires
    // them late but in the same order. gevent 26.9 agrees:
    // `[gs.index(g) for g in gevent.iwait(gs, timeout=0.150)]` over sleepers
    // of 50, 100, 200 and 250 ms prints `[0, 1]` (after about 130 ms:
    // gevent's timers count from the loop's cached clock, a little older
    // than the caller's).
    green_core::run(|| {
        let gs = sleepers(&[50, 100, 200, 250]);
        let objects = as_waitables(&gs);
        let start = Instant::now();
        let got: Vec<usize> = iwait(&objects, Some(150 * MS)).collect();
        let elapsed = start.elapsed();
        assert_eq!(
            got,
            [0, 1],
            "after {elapsed:?}: a timeout over the whole iteration yields the two \
             items ready before 150 ms (all four means it restarted per item)"
        );
        assert!(
            elapsed >= 100 * MS,
            "ended after {elapsed:?}, before the timeout"
        );
        assert!(
            !gs[2].dead() && !gs[3].dead(),
            "the iteration ended before the third item was ready"
        );
        for g in &gs[2..] {
            g.kill();
        }
    });
}

#[test]
fn iwait_timeout_that_passes_while_the_consumer_is_blocked_still_ends_it() {
    // gevent queues the timeout like a ready object: the next `next()` after
    // the deadline ends the iteration, even if the deadline passed while the
    // consumer was blocked in another call (here: a sleep).
    green_core::run(|| {
        let gs = sleepers(&[10, 3000]);
        let objects = as_waitables(&gs);
        let mut it = iwait(&objects, Some(100 * MS));
        assert_eq!(it.next(), Some(0));
        sleep(300 * MS);
        let start = Instant::now();
        let next = it.next();
        assert_eq!(
            next,
            None,
            "the timeout had passed; got {next:?} after {:?}",
            start.elapsed()
        );
        drop(it);
        gs[1].kill();
    });
}

#[test]
fn iwait_over_ready_objects_yields_all_of_them() {
    green_core::run(|| {
        let gs = sleepers(&[5, 1]);
        for g in &gs {
            g.join();
        }
        let objects = as_waitables(&gs);
        let got: Vec<usize> = iwait(&objects, Some(Duration::from_secs(5))).collect();
        assert_eq!(got, [0, 1]);
    });
}

#[test]
fn iwait_over_nothing_ends_at_once() {
    green_core::run(|| {
        assert_eq!(iwait(&[], None).count(), 0);
        assert_eq!(iwait(&[], Some(Duration::from_secs(5))).count(), 0);
    });
}

// ===== ending a wait early unlinks =====

#[test]
fn dropping_an_iwait_early_unlinks_from_the_objects_not_yet_ready() {
    green_core::run(|| {
        let gs = sleepers(&[10, 60, 80]);
        let spies: Vec<Spy<'_>> = gs.iter().map(|g| Spy::new(g)).collect();
        let objects: Vec<&dyn Waitable> = spies.iter().map(|s| s as &dyn Waitable).collect();
        {
            let mut it = iwait(&objects, None);
            assert_eq!(it.next(), Some(0));
        }
        assert!(spies.iter().all(|s| s.linked.get() == 1));
        assert_eq!(spies[1].unlinked.get(), 1);
        assert_eq!(spies[2].unlinked.get(), 1);
        // The others finish; no callback of the dropped iwait runs, and the
        // waiter is left alone: its sleep lasts the full duration.
        let start = Instant::now();
        sleep(200 * MS);
        assert!(start.elapsed() >= 200 * MS);
        assert!(gs.iter().all(|g| g.dead()));
        assert_eq!(spies[0].fired.get(), 1);
        assert_eq!(spies[1].fired.get(), 0, "unlinked callback ran");
        assert_eq!(spies[2].fired.get(), 0, "unlinked callback ran");
    });
}

#[test]
fn after_an_early_dropped_iwait_the_waiter_sleeps_undisturbed() {
    // Same with plain greenlets: the waiter keeps its own schedule while the
    // objects it no longer waits for finish one by one.
    green_core::run(|| {
        let waiter = spawn(|| {
            let gs = sleepers(&[5, 30, 40, 50, 60]);
            let objects = as_waitables(&gs);
            let first = iwait(&objects, None).next();
            let start = Instant::now();
            sleep(150 * MS);
            let slept = start.elapsed();
            let all_dead = gs.iter().all(|g| g.dead());
            (first, slept, all_dead)
        });
        let (first, slept, all_dead) = waiter.get().unwrap();
        assert_eq!(first, Some(0));
        assert!(slept >= 150 * MS, "woken early after {slept:?}");
        assert!(all_dead);
    });
}

#[test]
fn an_iwait_interrupted_by_a_timeout_unlinks() {
    green_core::run(|| {
        let gs = sleepers(&[10, 100]);
        let spies: Vec<Spy<'_>> = gs.iter().map(|g| Spy::new(g)).collect();
        let objects: Vec<&dyn Waitable> = spies.iter().map(|s| s as &dyn Waitable).collect();
        let got = RefCell::new(Vec::new());
        let r = Timeout::run(40 * MS, || {
            for i in iwait(&objects, None) {
                got.borrow_mut().push(i);
            }
        });
        assert!(r.is_err(), "the timeout fired inside the iteration");
        assert_eq!(got.take(), [0]);
        assert_eq!(spies[1].unlinked.get(), 1);
        gs[1].join();
        sleep(10 * MS);
        assert_eq!(spies[1].fired.get(), 0);
    });
}

#[test]
fn a_greenlet_killed_inside_wait_unlinks_and_drops_its_locals_once() {
    green_core::run(|| {
        let drops = DropCounter::new();
        let target = sleeper(80 * MS);
        let spy_fired = Rc::new(RefCell::new(None));
        let spy_unlinked = Rc::new(Cell::new(0));
        let waiter = {
            let target = target.clone();
            let token = drops.token();
            let spy_fired = Rc::clone(&spy_fired);
            let spy_unlinked = Rc::clone(&spy_unlinked);
            spawn(move || {
                let _token = token;
                let spy = Spy::new(&target);
                *spy_fired.borrow_mut() = Some(Rc::clone(&spy.fired));
                let objects: [&dyn Waitable; 1] = [&spy];
                let r = catch(|| wait(&objects, None, None));
                spy_unlinked.set(spy.unlinked.get());
                match r {
                    Ok(done) => done,
                    Err(p) => panic::resume_unwind(p),
                }
            })
        };
        sleep(10 * MS);
        assert!(waiter.is_alive());
        waiter.kill();
        assert!(waiter.dead());
        assert!(waiter.successful(), "killed with GreenletExit");
        assert_eq!(drops.drops(), 1);
        assert_eq!(spy_unlinked.get(), 1, "the wait unlinked on the way out");
        target.join();
        sleep(10 * MS);
        let fired = spy_fired.borrow().as_ref().unwrap().get();
        assert_eq!(fired, 0, "no callback of the killed wait ran");
    });
}

#[test]
fn iwait_inside_the_hub_is_a_clear_error() {
    green_core::run(|| {
        let message = Rc::new(RefCell::new(None));
        let other = sleeper(Duration::from_secs(10));
        let g = sleeper(MS);
        {
            let message = Rc::clone(&message);
            let other = other.clone();
            g.rawlink(move |_| {
                let objects: [&dyn Waitable; 1] = [&other];
                let r = catch(|| wait(&objects, None, None));
                *message.borrow_mut() = Some(r.map_err(|p| panic_message(&*p)));
            });
        }
        g.join();
        wait_for("the rawlink", || message.borrow().is_some());
        let r = message.take().unwrap();
        let m = r.expect_err("wait cannot block in the hub");
        assert!(m.contains("hub"), "{m}");
        other.kill();
    });
}

/// A consumer that sleeps between `next` calls while an `iwait` with a
/// timeout is open: when both timers fire in one loop iteration, the sleep
/// must still see its own timer fire (found by review: one shared "timer
/// that woke me" slot was overwritten, and the sleep never returned).
#[test]
fn a_sleep_beside_an_open_iwait_timeout_returns() {
    green_core::run(|| {
        let g = spawn(|| sleep(300 * MS));
        let objects: [&dyn Waitable; 1] = [&g];
        let _open = iwait(&objects, Some(20 * MS));
        // Hog the thread so that both timers are due in the same poll.
        spawn(|| std::thread::sleep(60 * MS));
        let start = Instant::now();
        let slept = catch(|| sleep(5 * MS));
        assert!(
            slept.is_ok(),
            "the sleep raised after {:?}",
            start.elapsed()
        );
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "took {:?}",
            start.elapsed()
        );
    });
}
