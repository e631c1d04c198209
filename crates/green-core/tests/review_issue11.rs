//! Hostile review of issue 11: `green_core::sync` and `green_core::Local`,
//! through the public API only. Kills and timeouts at every blocking point,
//! destructors that block or panic, teardown mid-flight, bad sizes,
//! reentrancy, the hub's context, and `LoopExit`.

#[allow(unreachable_pub)] // The shared fixtures are `pub` for every test binary.
mod support;

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::thread;
use std::time::Duration;

use green_core::sync::{
    AsyncResult, BoundedSemaphore, Channel, Event, LifoQueue, Lock, PriorityQueue, PutError, Queue,
    RLock, ReleaseError, Semaphore, Waiter,
};
use green_core::{
    killall, run, sleep, spawn, wait, yield_now, Builder, Greenlet, LinkId, Local, LoopExit,
    Timeout, Waitable,
};
use support::{catch, panic_message, run_child, within, DropCounter, Log, OnDrop, MS};

const LIMIT: Duration = Duration::from_secs(30);

/// Runs `f` on a fresh thread inside `run`, failing instead of hanging.
fn scenario<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    within(LIMIT, move || run(f))
}

/// Whether `f` panicked with `LoopExit` (caught by type).
fn loop_exit_of(f: impl FnOnce()) -> Result<(), String> {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => Err("returned instead of LoopExit".to_string()),
        Err(payload) if payload.is::<LoopExit>() => Ok(()),
        Err(payload) => Err(format!("panicked with {:?}", panic_message(&*payload))),
    }
}

// ===== failure reports, per thread =====

thread_local! {
    static REPORTS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Installs (once for the binary) a reporter that keeps each thread's
/// failure reports for that thread: tests run in parallel threads, and the
/// reporter is global.
fn capture_reports() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        green_core::set_failure_reporter(|failure| {
            let line = format!("{} | {}", failure.what(), failure.message());
            REPORTS.with(|r| r.borrow_mut().push(line));
        });
    });
    REPORTS.with(|r| r.borrow_mut().clear());
}

fn reports() -> Vec<String> {
    REPORTS.with(|r| r.borrow().clone())
}

// ===== kills and timeouts at every blocking point =====

/// How a blocked greenlet is interrupted.
#[derive(Clone, Copy, Debug)]
enum Interrupt {
    Kill,
    KillNowait,
    Killall,
    Timeout,
    ZeroTimeout,
}

const INTERRUPTS: [Interrupt; 5] = [
    Interrupt::Kill,
    Interrupt::KillNowait,
    Interrupt::Killall,
    Interrupt::Timeout,
    Interrupt::ZeroTimeout,
];

/// One blocking call of one primitive: `block` blocks forever unless
/// interrupted; `check` (after the interruption) says what is wrong, if
/// anything: a waiter left linked, something taken or added.
struct Blocking {
    name: &'static str,
    block: Box<dyn FnOnce()>,
    check: Box<dyn FnOnce() -> Result<(), String>>,
}

fn debug_has(what: &impl std::fmt::Debug, part: &str) -> Result<(), String> {
    let shown = format!("{what:?}");
    if shown.contains(part) {
        Ok(())
    } else {
        Err(format!("{shown} lacks `{part}`"))
    }
}

/// Every blocking call of every primitive, each on a fresh object.
fn blocking_calls(drops: &DropCounter) -> Vec<Blocking> {
    let mut all = Vec::new();
    {
        let ev = Event::new();
        let e = ev.clone();
        all.push(Blocking {
            name: "Event::wait",
            block: Box::new(move || {
                e.wait();
            }),
            check: Box::new(move || debug_has(&ev, "waiters: 0")),
        });
    }
    {
        let ev = Event::new();
        let e = ev.clone();
        all.push(Blocking {
            name: "Event::wait_timeout",
            block: Box::new(move || {
                e.wait_timeout(Duration::from_secs(3600));
            }),
            check: Box::new(move || debug_has(&ev, "waiters: 0")),
        });
    }
    {
        let r: AsyncResult<u32> = AsyncResult::new();
        let r2 = r.clone();
        all.push(Blocking {
            name: "AsyncResult::get",
            block: Box::new(move || {
                let _ = r2.get();
            }),
            check: Box::new(move || {
                r.set(5);
                // Nothing but the killed reader could take it; it is there.
                match r.try_get() {
                    Some(Ok(5)) => Ok(()),
                    other => Err(format!("after set: {other:?}")),
                }
            }),
        });
    }
    {
        let r: AsyncResult<u32> = AsyncResult::new();
        let r2 = r.clone();
        all.push(Blocking {
            name: "AsyncResult::wait",
            block: Box::new(move || {
                r2.wait();
            }),
            check: Box::new(move || {
                r.set(1);
                r.ready().then_some(()).ok_or("not ready".into())
            }),
        });
    }
    {
        let w: Waiter<u32> = Waiter::new();
        let w2 = w.clone();
        all.push(Blocking {
            name: "Waiter::get",
            block: Box::new(move || {
                let _ = w2.get();
            }),
            check: Box::new(move || {
                w.switch(9);
                match w.get_timeout(Duration::ZERO) {
                    Some(Ok(9)) => Ok(()),
                    other => Err(format!(
                        "the value did not stay for the next get: {other:?}"
                    )),
                }
            }),
        });
    }
    {
        let sem = Semaphore::new(0);
        let s = sem.clone();
        all.push(Blocking {
            name: "Semaphore::acquire",
            block: Box::new(move || {
                let _g = s.acquire();
            }),
            check: Box::new(move || {
                debug_has(&sem, "waiters: 0")?;
                sem.release();
                (sem.counter() == 1)
                    .then_some(())
                    .ok_or(format!("counter {} after one release", sem.counter()))
            }),
        });
    }
    {
        let sem = Semaphore::new(0);
        let s = sem.clone();
        all.push(Blocking {
            name: "Semaphore::wait",
            block: Box::new(move || {
                s.wait();
            }),
            check: Box::new(move || debug_has(&sem, "waiters: 0")),
        });
    }
    {
        let sem = BoundedSemaphore::new(1);
        sem.acquire().forget();
        let s = sem.clone();
        all.push(Blocking {
            name: "BoundedSemaphore::acquire_timeout",
            block: Box::new(move || {
                let _g = s.acquire_timeout(Duration::from_secs(3600));
            }),
            check: Box::new(move || {
                debug_has(&sem, "waiters: 0")?;
                sem.release().map_err(|e| e.to_string())?;
                (sem.counter() == 1)
                    .then_some(())
                    .ok_or("count lost".into())
            }),
        });
    }
    {
        let lock = Lock::new();
        lock.acquire().forget();
        let l = lock.clone();
        all.push(Blocking {
            name: "Lock::acquire",
            block: Box::new(move || {
                let _g = l.acquire();
            }),
            check: Box::new(move || {
                debug_has(&lock, "waiters: 0")?;
                lock.release().map_err(|e| e.to_string())?;
                (!lock.locked()).then_some(()).ok_or("still locked".into())
            }),
        });
    }
    {
        let lock = RLock::new();
        lock.acquire().forget(); // held by the main greenlet
        let l = lock.clone();
        all.push(Blocking {
            name: "RLock::acquire",
            block: Box::new(move || {
                let _g = l.acquire();
            }),
            check: Box::new(move || {
                lock.release().map_err(|e| e.to_string())?;
                if lock.locked() {
                    return Err("the killed acquirer took the lock".into());
                }
                let g = lock.try_acquire().ok_or("cannot take the freed lock")?;
                drop(g);
                Ok(())
            }),
        });
    }
    {
        let q: Queue<u32> = Queue::new();
        let q2 = q.clone();
        all.push(Blocking {
            name: "Queue::get",
            block: Box::new(move || {
                let _ = q2.get();
            }),
            check: Box::new(move || {
                debug_has(&q, "getters: 0")?;
                q.put(1).map_err(|e| e.to_string())?;
                (q.qsize() == 1).then_some(()).ok_or("item taken".into())
            }),
        });
    }
    {
        let q: LifoQueue<u32> = LifoQueue::new();
        let q2 = q.clone();
        all.push(Blocking {
            name: "LifoQueue::peek",
            block: Box::new(move || {
                let _ = q2.peek();
            }),
            check: Box::new(move || debug_has(&q, "getters: 0")),
        });
    }
    {
        let q: PriorityQueue<u32> = PriorityQueue::new();
        let q2 = q.clone();
        all.push(Blocking {
            name: "PriorityQueue::get_timeout",
            block: Box::new(move || {
                let _ = q2.get_timeout(Duration::from_secs(3600));
            }),
            check: Box::new(move || debug_has(&q, "getters: 0")),
        });
    }
    {
        let q = Queue::bounded(1);
        q.put(drops.token()).ok().unwrap();
        let q2 = q.clone();
        let item = drops.token();
        all.push(Blocking {
            name: "Queue::put on a full queue",
            block: Box::new(move || {
                let _ = q2.put(item);
            }),
            check: Box::new(move || {
                debug_has(&q, "putters: 0")?;
                (q.qsize() == 1)
                    .then_some(())
                    .ok_or("the item was added".into())
            }),
        });
    }
    {
        let q: Queue<u32> = Queue::new();
        q.put(1).unwrap();
        let q2 = q.clone();
        all.push(Blocking {
            name: "Queue::join",
            block: Box::new(move || {
                q2.join();
            }),
            check: Box::new(move || {
                q.task_done().map_err(|e| e.to_string())?;
                q.join_timeout(Duration::ZERO)
                    .then_some(())
                    .ok_or("not joined".into())
            }),
        });
    }
    {
        let ch = Channel::new();
        let c2 = ch.clone();
        let item = drops.token();
        all.push(Blocking {
            name: "Channel::put",
            block: Box::new(move || {
                let _ = c2.put(item);
            }),
            check: Box::new(move || {
                (ch.balance() == 0)
                    .then_some(())
                    .ok_or(format!("balance {}", ch.balance()))
            }),
        });
    }
    {
        let ch: Channel<u32> = Channel::new();
        let c2 = ch.clone();
        all.push(Blocking {
            name: "Channel::get",
            block: Box::new(move || {
                let _ = c2.get();
            }),
            check: Box::new(move || {
                if ch.balance() != 0 {
                    return Err(format!("balance {}", ch.balance()));
                }
                // No getter is left to take it.
                match ch.put_timeout(3, 5 * MS) {
                    Err(PutError::Full(3)) => Ok(()),
                    other => Err(format!("a put found a getter: {other:?}")),
                }
            }),
        });
    }
    all
}

/// Blocks a greenlet in `block` and interrupts it as `how` says; returns
/// once it is dead.
fn interrupt(how: Interrupt, block: Box<dyn FnOnce()>) {
    let g: Greenlet<()> = match how {
        Interrupt::Timeout => spawn(move || {
            assert!(Timeout::run(5 * MS, block).is_err(), "the timeout fired");
        }),
        Interrupt::ZeroTimeout => spawn(move || {
            assert!(
                Timeout::run(Duration::ZERO, block).is_err(),
                "the timeout fired"
            );
        }),
        _ => spawn(block),
    };
    yield_now(); // it blocks
    assert!(!g.dead(), "{how:?}: the call did not block");
    match how {
        Interrupt::Kill => g.kill(),
        Interrupt::KillNowait => {
            g.kill_nowait();
            g.join();
        }
        Interrupt::Killall => killall(std::slice::from_ref(&g)),
        Interrupt::Timeout | Interrupt::ZeroTimeout => g.join(),
    }
    assert!(g.dead());
    assert!(g.successful(), "{how:?}: {:?}", g.exception());
}

/// Every blocking call of every primitive, interrupted by a kill
/// (blocking, `kill_nowait`, `killall`) or a `Timeout` (5 ms and zero):
/// the waiter leaves no node behind, takes nothing and adds nothing, and a
/// putter's item is dropped exactly once.
#[test]
fn every_blocking_call_interrupted_every_way_leaves_no_waiter_and_takes_nothing() {
    let failures = scenario(|| {
        let mut failures = Vec::new();
        for how in INTERRUPTS {
            let drops = DropCounter::new();
            let calls = blocking_calls(&drops);
            for call in calls {
                let Blocking { name, block, check } = call;
                interrupt(how, block);
                if let Err(what) = check() {
                    failures.push(format!("{how:?} {name}: {what}"));
                }
            }
            // The interrupted putters' items (one for the queue, one for
            // the channel), and the full queue's own item, dropped with the
            // queue after its check: each exactly once.
            if drops.drops() != 3 {
                failures.push(format!("{how:?}: {} items dropped, not 3", drops.drops()));
            }
        }
        failures
    });
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The main greenlet blocked on each primitive, with nothing else alive
/// that could wake it, gets `LoopExit` (caught by type), never hangs, and
/// its wait leaves no node linked.
#[test]
fn main_blocked_forever_on_each_primitive_gets_loop_exit_and_leaves_nothing_linked() {
    let failures = scenario(|| {
        let drops = DropCounter::new();
        let mut failures = Vec::new();
        for call in blocking_calls(&drops) {
            let Blocking { name, block, check } = call;
            if name.contains("timeout") || name.contains("Timeout") || name == "RLock::acquire" {
                // A timer keeps the loop alive: not a forever wait. The
                // RLock is held by the main greenlet itself (re-entered);
                // see the test below for one held by a dead greenlet.
                continue;
            }
            if let Err(what) = loop_exit_of(block) {
                failures.push(format!("{name}: {what}"));
            }
            if let Err(what) = check() {
                failures.push(format!("{name} after LoopExit: {what}"));
            }
        }
        failures
    });
    assert!(failures.is_empty(), "{failures:#?}");
}

// ===== a kill in the same loop turn as the wake-up =====

/// gevent: `e.set(); g.kill(block=False)` with `g` in `e.wait()`: the
/// notifier runs first and `g` returns from its wait, then the kill is
/// raised at its next blocking point. Neither is lost.
#[test]
fn event_set_then_kill_nowait_in_one_turn_wait_returns_then_the_kill_lands() {
    let log = scenario(|| {
        let log = Log::new();
        let ev = Event::new();
        let (e, l) = (ev.clone(), log.clone());
        let g = spawn(move || {
            let woke = e.wait();
            l.push(format!("woke {woke}"));
            let _after = OnDrop({
                let l = l.clone();
                move || l.push("unwound")
            });
            sleep(Duration::from_secs(3600));
            l.push("not killed");
        });
        yield_now();
        ev.set();
        g.kill_nowait();
        g.join();
        assert!(debug_has(&ev, "waiters: 0").is_ok());
        log.take()
    });
    assert_eq!(log, ["woke true", "unwound"]);
}

/// Two getters wait; a put and a `kill_nowait` of the first getter land in
/// one loop turn, in either order. The item is never lost or duplicated:
/// it ends with exactly one getter (the first, who then dies at its next
/// block, when the put came first; the second otherwise).
#[test]
fn queue_put_and_kill_of_the_first_getter_in_one_turn_hand_the_item_to_exactly_one() {
    for kill_first in [false, true] {
        let (got, left) = scenario(move || {
            let q: Queue<u32> = Queue::new();
            let got = Rc::new(RefCell::new(Vec::new()));
            let getters: Vec<Greenlet<()>> = (0..2)
                .map(|i| {
                    let (q, got) = (q.clone(), Rc::clone(&got));
                    spawn(move || {
                        let item = q.get().unwrap();
                        got.borrow_mut().push((i, item));
                        sleep(Duration::from_secs(3600));
                    })
                })
                .collect();
            yield_now();
            if kill_first {
                getters[0].kill_nowait();
                q.put(7).unwrap();
            } else {
                q.put(7).unwrap();
                getters[0].kill_nowait();
            }
            sleep(5 * MS);
            getters[0].join();
            let got = got.borrow().clone();
            killall(&getters);
            (got, q.qsize())
        });
        let expected = if kill_first { (1, 7) } else { (0, 7) };
        assert_eq!(got, [expected], "kill first: {kill_first}");
        assert_eq!(left, 0, "kill first: {kill_first}");
    }
}

/// A semaphore's waiter handed the count in the same turn as it is killed
/// gives it back: the second waiter gets it, and at the end the count is
/// whole again.
#[test]
fn semaphore_release_and_kill_of_the_woken_waiter_in_one_turn_lose_no_count() {
    for kill_first in [false, true] {
        let (acquired, counter) = scenario(move || {
            let sem = Semaphore::new(0);
            let acquired = Rc::new(RefCell::new(Vec::new()));
            let waiters: Vec<Greenlet<()>> = (0..2)
                .map(|i| {
                    let (s, a) = (sem.clone(), Rc::clone(&acquired));
                    spawn(move || {
                        let _g = s.acquire();
                        a.borrow_mut().push(i);
                        sleep(10 * MS);
                    })
                })
                .collect();
            yield_now();
            if kill_first {
                waiters[0].kill_nowait();
                sem.release();
            } else {
                sem.release();
                waiters[0].kill_nowait();
            }
            waiters[1].join();
            waiters[0].join();
            let acquired = acquired.borrow().clone();
            (acquired, sem.counter())
        });
        let expected: &[usize] = if kill_first { &[1] } else { &[0, 1] };
        assert_eq!(acquired, expected, "kill first: {kill_first}");
        assert_eq!(counter, 1, "kill first: {kill_first}");
    }
}

/// A channel's getter killed in the same turn as a putter arrives: the
/// item goes to exactly one getter, the putter succeeds once, nothing is
/// left half-delivered.
#[test]
fn channel_put_and_kill_of_the_first_getter_in_one_turn_deliver_exactly_once() {
    for kill_first in [false, true] {
        let (got, put_ok, balance) = scenario(move || {
            let ch: Channel<u32> = Channel::new();
            let got = Rc::new(RefCell::new(Vec::new()));
            let getters: Vec<Greenlet<()>> = (0..2)
                .map(|i| {
                    let (c, got) = (ch.clone(), Rc::clone(&got));
                    spawn(move || {
                        let item = c.get().unwrap();
                        got.borrow_mut().push((i, item));
                        sleep(Duration::from_secs(3600));
                    })
                })
                .collect();
            yield_now();
            let c = ch.clone();
            let putter = spawn(move || c.put(8).is_ok());
            if kill_first {
                getters[0].kill_nowait();
            }
            yield_now(); // the putter blocks, the hand-off is queued
            if !kill_first {
                getters[0].kill_nowait();
            }
            let put_ok = putter.get().unwrap();
            sleep(5 * MS);
            let got = got.borrow().clone();
            killall(&getters);
            (got, put_ok, ch.balance())
        });
        let expected = if kill_first { (1, 8) } else { (0, 8) };
        assert_eq!(got, [expected], "kill first: {kill_first}");
        assert!(put_ok, "kill first: {kill_first}");
        assert_eq!(balance, 0);
    }
}

// ===== bugs the review found, fixed: each test names the failure it guarded against =====

/// `Channel::close` says getters get `GetError::Closed`. A get made after
/// `close()` while a closed-out putter is still linked (it has been woken
/// but has not run yet) must not park on the closed channel, where nothing
/// would ever wake it (it got `LoopExit` in the main greenlet).
#[test]
fn channel_get_right_after_close_with_a_putter_still_linked_returns_closed() {
    let outcome = scenario(|| {
        let ch: Channel<u32> = Channel::new();
        let c = ch.clone();
        let putter = spawn(move || c.put(1));
        yield_now(); // the putter blocks
        ch.close();
        let got = catch(|| ch.get()).map_err(|p| panic_message(&*p));
        let put = putter.get().unwrap();
        (format!("{got:?}"), put.map_err(PutError::into_inner))
    });
    assert_eq!(outcome.0, "Ok(Err(Closed))");
    assert_eq!(outcome.1, Err(1));
}

/// `Semaphore::wait_timeout` waits "for at most `timeout`". When it finds
/// a count free while the semaphore's notifier is pending, it queues behind
/// the earlier waiters without its timeout; if an earlier waiter takes the
/// count, it is moved among the waiters, still without a timer, and waits
/// until the next release (here: never, so `LoopExit`).
#[test]
fn semaphore_wait_timeout_behind_a_pending_notifier_still_times_out() {
    let outcome = scenario(|| {
        let sem = Semaphore::new(0);
        let forever = Event::new();
        let (s, f) = (sem.clone(), forever.clone());
        let holder = spawn(move || {
            let _g = s.acquire();
            f.wait(); // holds the count until the end
        });
        yield_now(); // the holder blocks in acquire
        sem.release(); // the notifier is queued: the holder will take it
        let r = catch(|| sem.wait_timeout(20 * MS)).map_err(|p| panic_message(&*p));
        forever.set();
        holder.join();
        r
    });
    assert_eq!(outcome, Ok(false));
}

/// The same for a `Lock` (a bounded semaphore of one) and its `wait_timeout`.
#[test]
fn lock_wait_timeout_behind_a_pending_notifier_still_times_out() {
    let outcome = scenario(|| {
        let lock = Lock::new();
        let forever = Event::new();
        let held = lock.acquire();
        let (l, f) = (lock.clone(), forever.clone());
        let taker = spawn(move || {
            let _g = l.acquire();
            f.wait();
        });
        yield_now();
        drop(held); // the notifier is queued: `taker` will take the lock
        let r = catch(|| lock.wait_timeout(20 * MS)).map_err(|p| panic_message(&*p));
        forever.set();
        taker.join();
        r
    });
    assert_eq!(outcome, Ok(false));
}

/// `Semaphore::release` has no error path; on a semaphore already at
/// `usize::MAX` it must neither wrap the count to 0 (release builds: every
/// count lost) nor die of an arithmetic overflow (debug builds). A clear
/// panic naming the semaphore, or a saturated count, is acceptable.
#[test]
fn semaphore_release_past_usize_max_neither_wraps_nor_overflows_unclearly() {
    let (outcome, counter) = scenario(|| {
        let sem = Semaphore::new(usize::MAX);
        let outcome = catch(|| sem.release()).map_err(|p| panic_message(&*p));
        (outcome, sem.counter())
    });
    assert_eq!(counter, usize::MAX, "the count wrapped");
    if let Err(message) = outcome {
        assert!(
            message.to_lowercase().contains("semaphore"),
            "an unclear panic: {message:?}"
        );
    }
}

/// The same overflow through a guard: a count taken from a
/// `Semaphore::new(usize::MAX)` plus one manual release, then the guard
/// drops: its `Drop` overflows the counter.
#[test]
fn semaphore_guard_drop_past_usize_max_does_not_overflow_in_drop() {
    let (outcome, counter) = scenario(|| {
        let sem = Semaphore::new(usize::MAX);
        let outcome = catch(|| {
            let guard = sem.acquire();
            sem.release(); // back to usize::MAX
            drop(guard);
        })
        .map_err(|p| panic_message(&*p));
        (outcome, sem.counter())
    });
    assert_eq!(counter, usize::MAX, "the count wrapped");
    if let Err(message) = outcome {
        assert!(
            message.to_lowercase().contains("semaphore"),
            "an unclear panic: {message:?}"
        );
    }
}

/// An `RLock` whose holder forgot its guard and died is held for good: the
/// main greenlet's `acquire` gets `LoopExit`, and a release by the main
/// greenlet is refused as it does not own it.
#[test]
fn rlock_held_by_a_dead_greenlet_gives_loop_exit_and_refuses_other_releases() {
    scenario(|| {
        let lock = RLock::new();
        let l = lock.clone();
        spawn(move || l.acquire().forget()).join();
        assert!(lock.locked() && !lock.is_owned());
        loop_exit_of(|| drop(lock.acquire())).unwrap();
        assert_eq!(lock.release(), Err(ReleaseError::NotOwner));
        assert!(lock.try_acquire().is_none());
    });
}

// ===== the hub's context: rawlink callbacks =====

/// Inside a rawlink callback (the hub, where no greenlet runs) the calls
/// that never block work: `Event::set`, `Queue::put_nowait`/`get_nowait`,
/// `Semaphore::release`, `Lock::try_acquire`, `RLock::try_acquire`,
/// `Waiter::switch`, `AsyncResult::set`; the greenlets they wake run.
#[test]
fn nonblocking_calls_work_inside_a_rawlink_callback() {
    capture_reports();
    let (log, reports) = scenario(|| {
        let log = Log::new();
        let ev = Event::new();
        let q: Queue<u32> = Queue::new();
        let sem = Semaphore::new(0);
        let lock = Lock::new();
        let rlock = RLock::new();
        let w: Waiter<u32> = Waiter::new();
        let r: AsyncResult<u32> = AsyncResult::new();
        let waiters = vec![
            {
                let (e, l) = (ev.clone(), log.clone());
                spawn(move || l.push(format!("event {}", e.wait())))
            },
            {
                let (q, l) = (q.clone(), log.clone());
                spawn(move || l.push(format!("queue {:?}", q.get())))
            },
            {
                let (s, l) = (sem.clone(), log.clone());
                spawn(move || {
                    let _g = s.acquire();
                    l.push("semaphore");
                })
            },
            {
                let (w, l) = (w.clone(), log.clone());
                spawn(move || l.push(format!("waiter {:?}", w.get())))
            },
            {
                let (r, l) = (r.clone(), log.clone());
                spawn(move || l.push(format!("result {:?}", r.get())))
            },
        ];
        yield_now();
        let trigger = spawn(|| ());
        {
            let (ev, q, sem, lock, rlock, w, r, l) = (
                ev.clone(),
                q.clone(),
                sem.clone(),
                lock.clone(),
                rlock.clone(),
                w.clone(),
                r.clone(),
                log.clone(),
            );
            trigger.rawlink(move |_| {
                ev.set();
                q.put_nowait(1).unwrap();
                q.put_nowait(2).unwrap();
                l.push(format!("in hub get_nowait {:?}", q.get_nowait()));
                sem.release();
                lock.try_acquire().expect("a free lock").forget();
                rlock.try_acquire().expect("a free rlock").forget();
                w.switch(3);
                r.set(4);
            });
        }
        green_core::joinall(&waiters);
        assert!(lock.locked() && rlock.locked());
        (log.take(), reports())
    });
    assert_eq!(
        log,
        [
            "in hub get_nowait Ok(1)",
            // A Waiter filled from the hub wakes its greenlet right after
            // the callback (gevent's `Waiter.switch` from the hub); the
            // others wake from notifiers queued at the back.
            "waiter Ok(3)",
            "event true",
            "queue Ok(2)",
            "semaphore",
            "result Ok(4)"
        ]
    );
    assert!(reports.is_empty(), "{reports:#?}");
}

/// Inside a rawlink callback every call that may block panics with the
/// hub's clear message (reported as the link's failure); none of them
/// hangs the hub or corrupts the primitive, and a greenlet-local says so
/// with its own clear message.
#[test]
fn blocking_calls_inside_a_rawlink_callback_panic_clearly() {
    capture_reports();
    let reports = scenario(|| {
        let ev = Event::new();
        let q: Queue<u32> = Queue::new();
        let full = Queue::bounded(1);
        full.put(0u32).unwrap();
        let sem = Semaphore::new(0);
        let lock = Lock::new();
        let held = lock.acquire();
        let w: Waiter<u32> = Waiter::new();
        let r: AsyncResult<u32> = AsyncResult::new();
        let ch: Channel<u32> = Channel::new();
        let local: Rc<Local<u32>> = Rc::new(Local::new(|| 1));
        type Call = (&'static str, Box<dyn FnOnce()>);
        let calls: Vec<Call> = vec![
            ("Event::wait", {
                let e = ev.clone();
                Box::new(move || {
                    let _ = e.wait();
                })
            }),
            ("Event::wait_timeout(0)", {
                let e = ev.clone();
                Box::new(move || {
                    let _ = e.wait_timeout(Duration::ZERO);
                })
            }),
            ("Queue::get", {
                let q = q.clone();
                Box::new(move || {
                    let _ = q.get();
                })
            }),
            ("Queue::put on a full queue", {
                let q = full.clone();
                Box::new(move || {
                    let _ = q.put(1);
                })
            }),
            ("Semaphore::acquire", {
                let s = sem.clone();
                Box::new(move || drop(s.acquire()))
            }),
            ("Lock::acquire_timeout", {
                let l = lock.clone();
                Box::new(move || drop(l.acquire_timeout(Duration::ZERO)))
            }),
            ("Waiter::get", {
                let w = w.clone();
                Box::new(move || {
                    let _ = w.get();
                })
            }),
            ("AsyncResult::get", {
                let r = r.clone();
                Box::new(move || {
                    let _ = r.get();
                })
            }),
            ("Channel::put_nowait", {
                let c = ch.clone();
                Box::new(move || {
                    let _ = c.put_nowait(1);
                })
            }),
            ("Local::with", {
                let local = Rc::clone(&local);
                Box::new(move || local.with(|_| ()))
            }),
        ];
        let count = calls.len();
        for (name, call) in calls {
            let g = spawn(|| ());
            g.rawlink(move |_| {
                let _name = name;
                call();
            });
            g.join();
            yield_now();
        }
        drop(held);
        // Nothing was left linked by the refused calls.
        assert!(debug_has(&ev, "waiters: 0").is_ok());
        assert!(debug_has(&q, "getters: 0").is_ok());
        assert!(debug_has(&full, "putters: 0").is_ok());
        assert!(debug_has(&sem, "waiters: 0").is_ok());
        assert_eq!(ch.balance(), 0);
        assert_eq!(full.qsize(), 1);
        let reports = reports();
        assert_eq!(reports.len(), count, "{reports:#?}");
        reports
    });
    for report in &reports[..reports.len() - 1] {
        assert!(
            report.contains("a blocking call was made inside the hub"),
            "{report}"
        );
    }
    assert!(
        reports[reports.len() - 1].contains("greenlet-local was used inside the hub"),
        "{}",
        reports[reports.len() - 1]
    );
}

// ===== reentrancy =====

/// A `Waitable` of one's own that forwards to an `Event`, and whose
/// callback, run by the event's notifier, calls into the event again
/// (`clear`, `set`) and links a new callback to it: the notifier neither
/// panics on a borrow nor loses the other waiters, and the waiter of
/// `wait` sees it ready.
#[test]
fn a_wait_callback_that_calls_back_into_its_event_breaks_nothing() {
    struct Echo {
        ev: Event,
        log: Log,
    }
    impl Waitable for Echo {
        fn is_ready(&self) -> bool {
            self.ev.is_set()
        }
        fn link_ready(&self, callback: Box<dyn FnOnce()>) -> LinkId {
            let (ev, log) = (self.ev.clone(), self.log.clone());
            self.ev.link_ready(Box::new(move || {
                ev.clear();
                ev.set();
                let again = log.clone();
                ev.link_ready(Box::new(move || again.push("relinked ran")));
                log.push("echo ran");
                callback();
            }))
        }
        fn unlink_ready(&self, id: LinkId) {
            self.ev.unlink_ready(id);
        }
    }
    let log = scenario(|| {
        let log = Log::new();
        let ev = Event::new();
        let plain = {
            let (e, l) = (ev.clone(), log.clone());
            spawn(move || l.push(format!("plain {}", e.wait())))
        };
        let echo = Echo {
            ev: ev.clone(),
            log: log.clone(),
        };
        let late = {
            let (e, l) = (ev.clone(), log.clone());
            spawn(move || {
                yield_now();
                l.push(format!("late {}", e.wait()));
            })
        };
        yield_now();
        let setter = {
            let e = ev.clone();
            spawn(move || e.set())
        };
        let ready = wait(&[&echo], Some(Duration::from_secs(5)), None);
        log.push(format!("wait {ready:?}"));
        plain.join();
        late.join();
        setter.join();
        sleep(MS);
        assert!(debug_has(&ev, "waiters: 0").is_ok(), "{ev:?}");
        log.take()
    });
    for entry in [
        "plain true",
        "late true",
        "echo ran",
        "wait [0]",
        "relinked ran",
    ] {
        assert_eq!(
            log.iter().filter(|e| *e == entry).count(),
            1,
            "{entry} in {log:?}"
        );
    }
}

/// A callback linked to an `Event` (through `Waitable::link_ready`) that
/// panics is reported once, and the greenlets waiting behind it are still
/// woken.
#[test]
fn a_panicking_link_callback_is_reported_and_later_waiters_still_wake() {
    capture_reports();
    let (log, reports) = scenario(|| {
        let log = Log::new();
        let ev = Event::new();
        let first = {
            let (e, l) = (ev.clone(), log.clone());
            spawn(move || l.push(format!("first {}", e.wait())))
        };
        yield_now();
        ev.link_ready(Box::new(|| panic!("a callback that panics")));
        let second = {
            let (e, l) = (ev.clone(), log.clone());
            spawn(move || l.push(format!("second {}", e.wait())))
        };
        yield_now();
        ev.set();
        first.join();
        second.join();
        (log.take(), reports())
    });
    assert_eq!(log, ["first true", "second true"]);
    assert_eq!(reports.len(), 1, "{reports:#?}");
    assert!(reports[0].contains("a callback that panics"), "{reports:?}");
    assert!(reports[0].contains("an Event"), "{reports:?}");
}

/// A getter woken by the queue's hand-off that puts its item straight back
/// and then blocks elsewhere: the next getter gets that same item once,
/// nothing is duplicated, the queue ends empty.
#[test]
fn a_woken_getter_that_puts_back_hands_the_item_on_once() {
    let (log, left) = scenario(|| {
        let q: Queue<u32> = Queue::new();
        let log = Log::new();
        let hold = Event::new();
        let getters: Vec<Greenlet<()>> = (0..3)
            .map(|i| {
                let (q, l, h) = (q.clone(), log.clone(), hold.clone());
                spawn(move || {
                    let item = q.get().unwrap();
                    l.push(format!("{i} got {item}"));
                    if i < 2 {
                        q.put(item).unwrap();
                    }
                    h.wait();
                })
            })
            .collect();
        yield_now();
        q.put(5).unwrap();
        sleep(5 * MS);
        hold.set();
        green_core::joinall(&getters);
        (log.take(), q.qsize())
    });
    assert_eq!(log, ["0 got 5", "1 got 5", "2 got 5"]);
    assert_eq!(left, 0);
}

/// `Queue::close` says blocked putters get their items back. A putter
/// that was blocked on a full queue when `close()` was called gets
/// `PutError::Closed` and its item back, even when a hand-off was already
/// queued by a get that made room just before: a closed queue takes no new
/// item from a blocked putter.
#[test]
fn close_gives_every_blocked_putter_its_item_back_even_with_a_hand_off_queued() {
    let (results, qsize) = scenario(|| {
        let q = Queue::bounded(1);
        q.put(0u32).unwrap();
        let putters: Vec<Greenlet<Result<(), u32>>> = (1..=2)
            .map(|i| {
                let q = q.clone();
                spawn(move || q.put(i).map_err(PutError::into_inner))
            })
            .collect();
        yield_now(); // both block
        assert_eq!(q.get_nowait(), Ok(0)); // room for one: a hand-off is queued
        q.close();
        let results: Vec<Result<(), u32>> = putters.iter().map(|p| p.get().unwrap()).collect();
        (results, q.qsize())
    });
    assert_eq!(results, [Err(1), Err(2)]);
    assert_eq!(qsize, 0);
}

// ===== teardown mid-flight =====

/// `run` returning while greenlets are blocked in every primitive: all are
/// unwound, the items of blocked putters and the queued items are dropped
/// exactly once, and nothing hangs.
#[test]
fn run_returning_with_greenlets_blocked_in_every_primitive_drops_everything_once() {
    let drops = within(LIMIT, || {
        let drops = DropCounter::new();
        let d = drops.clone();
        run(move || {
            for call in blocking_calls(&d) {
                let Blocking { block, check, .. } = call;
                spawn(block);
                // The primitive stays alive only through its greenlet.
                drop(check);
            }
            yield_now();
        });
        drops.drops()
    });
    assert_eq!(drops, 3);
}

thread_local! {
    static SHARED_EVENT: Event = Event::new();
    static SHARED_QUEUE: Queue<u32> = Queue::new();
    static SHARED_SEMAPHORE: Semaphore = Semaphore::new(0);
}

/// A thread-local `Event`, `Queue` and `Semaphore` used across two
/// consecutive `run`s on one thread. The first `run` ends right after
/// making each ready with a greenlet waiting: the teardown's kills queue
/// behind the wake-ups, so the waiters get what was made ready (as in
/// gevent). On the second hub, making each ready again wakes its new
/// waiters.
#[test]
fn thread_local_primitives_wake_waiters_on_the_next_hub_after_a_teardown_mid_notify() {
    let outcome = within(LIMIT, || {
        let first = run(|| {
            let a = spawn(|| SHARED_EVENT.with(Event::wait));
            let b = spawn(|| SHARED_QUEUE.with(Queue::get));
            let c = spawn(|| SHARED_SEMAPHORE.with(|s| s.acquire().forget()));
            yield_now();
            SHARED_EVENT.with(Event::set);
            SHARED_QUEUE.with(|q| q.put(1).unwrap());
            SHARED_SEMAPHORE.with(Semaphore::release);
            // The run ends here: the notifiers are queued, not run.
            (a, b, c)
        });
        let first = (
            first.0.get().ok(),
            first.1.get().ok(),
            first.2.get().is_ok(),
        );
        let second = run(|| {
            SHARED_EVENT.with(Event::clear);
            let a = spawn(|| SHARED_EVENT.with(Event::wait));
            let b = spawn(|| SHARED_QUEUE.with(Queue::get));
            let c = spawn(|| SHARED_SEMAPHORE.with(|s| s.acquire().forget()));
            yield_now();
            SHARED_EVENT.with(Event::set);
            SHARED_QUEUE.with(|q| q.put(2).unwrap());
            SHARED_SEMAPHORE.with(Semaphore::release);
            (
                a.get_timeout(Duration::from_secs(5)).ok(),
                b.get_timeout(Duration::from_secs(5)).ok(),
                c.get_timeout(Duration::from_secs(5)).is_ok(),
            )
        });
        (first, second)
    });
    let woken = (Some(true), Some(Ok(1)), true);
    assert_eq!(outcome.0, woken, "the first run's waiters");
    assert_eq!(outcome.1, (Some(true), Some(Ok(2)), true), "the second's");
}

thread_local! {
    static LINKED_EVENT: Event = Event::new();
    static LINKED_QUEUE: Queue<u32> = Queue::new();
}

/// The notifier really dropped unrun: the first `run` ends with only a
/// link callback (no greenlet) waiting on a thread-local `Event` and
/// `Queue` made ready, so the teardown has nothing to kill and drops the
/// queued notifiers. On the second hub, new waiters are still woken.
#[test]
fn thread_local_primitives_whose_notifier_was_dropped_unrun_still_wake_the_next_hub() {
    let outcome = within(LIMIT, || {
        let fired = Rc::new(Cell::new(0));
        run(|| {
            let f = Rc::clone(&fired);
            LINKED_EVENT.with(|e| e.link_ready(Box::new(move || f.set(f.get() + 1))));
            let f = Rc::clone(&fired);
            LINKED_QUEUE.with(|q| q.link_ready(Box::new(move || f.set(f.get() + 1))));
            LINKED_EVENT.with(Event::set);
            LINKED_QUEUE.with(|q| q.put(1).unwrap());
        });
        let woke = run(|| {
            LINKED_EVENT.with(Event::clear);
            assert_eq!(LINKED_QUEUE.with(Queue::get_nowait), Ok(1));
            let a = spawn(|| LINKED_EVENT.with(Event::wait));
            let b = spawn(|| LINKED_QUEUE.with(Queue::get));
            yield_now();
            LINKED_EVENT.with(Event::set);
            LINKED_QUEUE.with(|q| q.put(2).unwrap());
            (
                a.get_timeout(Duration::from_secs(5)).ok(),
                b.get_timeout(Duration::from_secs(5)).ok(),
            )
        });
        (woke, fired.get())
    });
    assert_eq!(outcome.0, (Some(true), Some(Ok(2))));
    // The first hub's callbacks never ran there; if they run at all, it is
    // once each.
    assert!(outcome.1 <= 2, "callbacks fired {} times", outcome.1);
}

/// A putter killed while blocked on a full queue drops its item as it
/// unwinds; an item whose `Drop` blocks (sleeps) there finishes its drop,
/// the kill returns, and the queue is untouched.
#[test]
fn a_killed_putters_item_whose_drop_blocks_is_dropped_once() {
    let (log, qsize) = scenario(|| {
        let log = Log::new();
        let q = Queue::bounded(1);
        q.put(None).ok().unwrap();
        let l = log.clone();
        let item = OnDrop(move || {
            sleep(MS);
            l.push("item dropped");
        });
        let q2 = q.clone();
        let putter = spawn(move || drop(q2.put(Some(item))));
        yield_now();
        putter.kill();
        assert!(putter.dead());
        (log.take(), q.qsize())
    });
    assert_eq!(log, ["item dropped"]);
    assert_eq!(qsize, 1);
}

/// A putter killed while blocked on a full queue holds an item whose
/// `Drop` panics. The item belongs to the queue's wait list, which drops
/// it while the putter unwinds: the process must not abort (a panic during
/// an unwind), and the failure is reported once. Run in a child process.
#[test]
fn a_killed_putters_item_whose_drop_panics_does_not_abort_the_process() {
    let out = run_child(CHILD_ENV, "putter-item-panics", support::CHILD_LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("child survived"),
        "status {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
}

const CHILD_ENV: &str = "GREEN_REVIEW11_CHILD";

/// Runs the scenario a parent test names in `GREEN_REVIEW11_CHILD`; a no-op
/// otherwise.
#[test]
#[ignore = "child body"]
fn child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    match mode.as_str() {
        "putter-item-panics" => {
            struct PanicOnDrop;
            impl Drop for PanicOnDrop {
                fn drop(&mut self) {
                    panic!("an item that panics on drop");
                }
            }
            run(|| {
                let q = Queue::bounded(1);
                q.put(None).ok().unwrap();
                let q2 = q.clone();
                let putter = spawn(move || drop(q2.put(Some(PanicOnDrop))));
                yield_now();
                putter.kill();
                let _ = q.get_nowait();
            });
            println!("child survived");
        }
        "main-local-drop-uses-primitives" => {
            struct Uses(Event, Queue<u32>, Semaphore);
            impl Drop for Uses {
                fn drop(&mut self) {
                    self.0.set();
                    let _ = self.1.put_nowait(1);
                    self.2.release();
                    let _ = self.1.get_timeout(Duration::from_millis(1));
                }
            }
            let local: Local<Option<Uses>> = Local::new(|| None);
            run(|| {
                let ev = Event::new();
                let q = Queue::new();
                let sem = Semaphore::new(0);
                let (e, q2, s) = (ev.clone(), q.clone(), sem.clone());
                spawn(move || {
                    e.wait();
                    let _ = q2.get();
                    drop(s.acquire());
                });
                yield_now();
                local.set(Some(Uses(ev, q, sem)));
            });
            println!("child survived");
        }
        other => panic!("unknown child mode {other}"),
    }
}

/// A `RemotePutter` hammered from another thread while the hub is shut
/// down: every item is either received, handed back in `HubGone`, or
/// dropped, exactly once; none is dropped twice or leaked.
#[test]
fn remote_putter_racing_a_shutdown_accounts_for_every_item_once() {
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    const ITEMS: usize = 20_000;
    // Whether the shutdown lands while items are still on their way depends
    // on how the threads are scheduled; the accounting must hold every time,
    // and the race must happen in at least one of a few attempts.
    let mut raced = false;
    for _attempt in 0..20 {
        let dropped = Arc::new(AtomicUsize::new(0));
        let d = Arc::clone(&dropped);
        let (received, handed_back) = within(LIMIT, move || {
            let q: Queue<Counted> = Queue::new();
            let putter = q.remote_putter();
            let d2 = Arc::clone(&d);
            let sender = thread::spawn(move || {
                let mut handed_back = 0;
                for _ in 0..ITEMS {
                    if let Err(gone) = putter.put(Counted(Arc::clone(&d2))) {
                        handed_back += 1;
                        drop(gone.into_inner());
                    }
                }
                handed_back
            });
            let mut received = 0;
            while received < ITEMS / 4 {
                let item = q.get().unwrap();
                received += 1;
                drop(item);
            }
            green_core::shutdown();
            drop(q);
            let handed_back = sender.join().unwrap();
            (received, handed_back)
        });
        // Every item was dropped exactly once: received ones by the test, the
        // rest with the queue, the loop's unrun closures, or `HubGone`.
        assert_eq!(dropped.load(Ordering::SeqCst), ITEMS);
        if handed_back < ITEMS - received {
            raced = true;
            break;
        }
    }
    assert!(
        raced,
        "the shutdown never raced items in flight in 20 attempts"
    );
}

/// After its hub is gone, a `RemoteSetter` and a `RemotePutter` hand the
/// value back in `HubGone` (on another thread and on the hub's own thread
/// after a new hub was built there).
#[test]
fn remote_handles_of_a_torn_down_hub_hand_the_value_back() {
    within(LIMIT, || {
        let (setter, putter) = run(|| {
            let r: AsyncResult<u32, String> = AsyncResult::new();
            let q: Queue<u32> = Queue::new();
            (r.remote_setter(), q.remote_putter())
        });
        run(|| {
            assert_eq!(setter.set(1).map_err(|g| g.into_inner()), Err(1));
            assert_eq!(putter.put(2).map_err(|g| g.into_inner()), Err(2));
        });
        thread::spawn(move || {
            assert_eq!(
                setter.set_exception("e".into()).map_err(|g| g.0),
                Err("e".to_string())
            );
            assert_eq!(putter.put(3).map_err(|g| g.0), Err(3));
        })
        .join()
        .unwrap();
    });
}

// ===== sizes and limits =====

/// `Queue::bounded(0)` panics with a message that says why and what to use
/// instead; `bounded(usize::MAX)` is a queue that is never full.
#[test]
fn queue_bound_zero_is_refused_clearly_and_usize_max_is_never_full() {
    let message = panic_message(&*catch(|| Queue::<u32>::bounded(0)).unwrap_err());
    assert!(
        message.contains("Channel") && message.contains("new()"),
        "{message}"
    );
    let message = panic_message(&*catch(|| PriorityQueue::<u32>::bounded(0)).unwrap_err());
    assert!(message.contains("bounded to 0"), "{message}");
    scenario(|| {
        let q = Queue::bounded(usize::MAX);
        for i in 0..1000u32 {
            q.put_nowait(i).unwrap();
        }
        assert!(!q.full());
        assert_eq!(q.maxsize(), Some(usize::MAX));
    });
}

/// Releasing more than acquired: a `BoundedSemaphore` and a `Lock` refuse
/// with `TooManyReleases` and keep their count; an `RLock` released by a
/// greenlet that does not hold it refuses with `NotOwner`; `task_done` once
/// too often refuses and leaves `join` working.
#[test]
fn over_releases_are_refused_and_leave_the_counts_whole() {
    scenario(|| {
        let sem = BoundedSemaphore::new(2);
        assert_eq!(sem.release(), Err(ReleaseError::TooManyReleases));
        sem.acquire().forget();
        assert_eq!(sem.release(), Ok(()));
        assert_eq!(sem.release(), Err(ReleaseError::TooManyReleases));
        assert_eq!(sem.counter(), 2);
        let lock = Lock::new();
        assert_eq!(lock.release(), Err(ReleaseError::TooManyReleases));
        assert!(!lock.locked());
        let rlock = RLock::new();
        assert_eq!(rlock.release(), Err(ReleaseError::NotOwner));
        rlock.acquire().forget();
        let r = rlock.clone();
        assert_eq!(
            spawn(move || r.release()).get().unwrap(),
            Err(ReleaseError::NotOwner)
        );
        assert!(rlock.is_owned());
        assert_eq!(rlock.release(), Ok(()));
        assert!(!rlock.locked());
        let q: Queue<u32> = Queue::new();
        q.put(1).unwrap();
        q.get().unwrap();
        assert_eq!(q.task_done(), Ok(()));
        assert!(q.task_done().is_err());
        assert_eq!(q.unfinished_tasks(), 0);
        assert!(q.join_timeout(Duration::ZERO));
    });
}

/// An `RLock` guard moved to another greenlet and dropped there releases
/// the acquire it stands for (as its docs say), and the lock is then free
/// for a third greenlet.
#[test]
fn rlock_guard_dropped_in_another_greenlet_releases_its_acquire() {
    scenario(|| {
        let lock: &'static RLock = Box::leak(Box::new(RLock::new()));
        let carrier: Queue<green_core::sync::RLockGuard<'static>> = Queue::new();
        let c = carrier.clone();
        spawn(move || c.put(lock.acquire()).ok().unwrap()).join();
        assert!(lock.locked() && !lock.is_owned());
        let c = carrier.clone();
        spawn(move || drop(c.get().unwrap())).join();
        assert!(!lock.locked());
        assert!(spawn(move || lock.try_acquire().is_some()).get().unwrap());
    });
}

/// 100 000 greenlets blocked on one `Event`: one `set` wakes every one, in
/// the order they began to wait, and the wait list is empty afterwards.
#[test]
fn a_hundred_thousand_waiters_on_one_event_all_wake_in_order() {
    const N: usize = 100_000;
    let (order, shown) = scenario(|| {
        let ev = Event::new();
        let order = Rc::new(RefCell::new(Vec::with_capacity(N)));
        let builder = || Builder::new().stack_size(32 * 1024).unguarded(true);
        let gs: Vec<Greenlet<()>> = (0..N)
            .map(|i| {
                let (e, o) = (ev.clone(), Rc::clone(&order));
                builder()
                    .spawn(move || {
                        assert!(e.wait());
                        o.borrow_mut().push(i);
                    })
                    .unwrap()
            })
            .collect();
        yield_now();
        assert!(debug_has(&ev, &format!("waiters: {N}")).is_ok(), "{ev:?}");
        ev.set();
        green_core::joinall(&gs);
        let order = order.borrow().clone();
        (order, format!("{ev:?}"))
    });
    assert_eq!(order.len(), N);
    assert!(
        order.iter().enumerate().all(|(k, &i)| k == i),
        "out of order"
    );
    assert!(shown.contains("waiters: 0"), "{shown}");
}

// ===== greenlet-local storage =====

/// An initialiser that panics leaves no value behind: the panic reaches the
/// caller, and the next access runs the initialiser again.
#[test]
fn local_initialiser_that_panics_is_retried_on_the_next_access() {
    scenario(|| {
        let calls = Rc::new(Cell::new(0));
        let c = Rc::clone(&calls);
        let local = Local::new(move || {
            c.set(c.get() + 1);
            if c.get() == 1 {
                panic!("first initialisation fails");
            }
            7
        });
        let first = catch(|| local.get()).map_err(|p| panic_message(&*p));
        assert_eq!(first, Err("first initialisation fails".to_string()));
        assert_eq!(local.get(), 7);
        assert_eq!(local.get(), 7);
        assert_eq!(calls.get(), 2);
    });
}

/// The docs: an initialiser may use this same local; it "then gets a
/// value of its own, replaced by this one". An initialiser that uses it
/// once (its nested initialisation does not) ends with the outer value.
#[test]
fn local_initialiser_using_the_same_local_once_ends_with_the_outer_value() {
    scenario(|| {
        let depth = Rc::new(Cell::new(0));
        let slot: Rc<RefCell<Option<Rc<Local<u32>>>>> = Rc::new(RefCell::new(None));
        let (d, s) = (Rc::clone(&depth), Rc::clone(&slot));
        let local = Rc::new(Local::new(move || {
            d.set(d.get() + 1);
            if d.get() == 1 {
                let me = s.borrow().clone().unwrap();
                let inner = me.get();
                assert_eq!(inner, 2);
                1
            } else {
                2
            }
        }));
        *slot.borrow_mut() = Some(Rc::clone(&local));
        assert_eq!(local.get(), 1);
        assert_eq!(local.get(), 1);
        slot.borrow_mut().take();
    });
}

/// A greenlet's local value is dropped as the greenlet ends (returns, is
/// killed, or is unwound by the teardown), once, even when its `Drop`
/// blocks; a `Drop` that panics is reported against that greenlet.
#[test]
fn local_values_are_dropped_once_at_greenlet_end_even_when_their_drop_blocks_or_panics() {
    capture_reports();
    let (log, reports) = within(LIMIT, || {
        let log = Log::new();
        let l = log.clone();
        run(move || {
            struct Noisy(Log, &'static str, bool);
            impl Drop for Noisy {
                fn drop(&mut self) {
                    sleep(MS);
                    self.0.push(format!("{} dropped", self.1));
                    if self.2 {
                        panic!("a local value that panics on drop");
                    }
                }
            }
            let local: Rc<Local<RefCell<Option<Noisy>>>> =
                Rc::new(Local::new(|| RefCell::new(None)));
            let spawn_with = |name: &'static str, panics: bool, body: fn()| {
                let (local, l) = (Rc::clone(&local), l.clone());
                Builder::new()
                    .name(name)
                    .spawn(move || {
                        local.with(|v| *v.borrow_mut() = Some(Noisy(l, name, panics)));
                        body();
                    })
                    .unwrap()
            };
            let returns = spawn_with("returns", false, || ());
            let killed = spawn_with("killed", false, || sleep(Duration::from_secs(3600)));
            let panicky = spawn_with("panicky", true, || ());
            spawn_with("torn-down", false, || sleep(Duration::from_secs(3600)));
            returns.join();
            yield_now();
            killed.kill();
            panicky.join();
            l.push("run ends");
        });
        (log.take(), reports())
    });
    // "killed" and "panicky" both sleep 1 ms in their drops, started a
    // moment apart: which ends first is timing, not order.
    let mut first_three = log[..3.min(log.len())].to_vec();
    first_three.sort();
    assert_eq!(
        first_three,
        ["killed dropped", "panicky dropped", "returns dropped"],
        "log: {log:?}, reports: {reports:#?}"
    );
    assert_eq!(
        log[3..],
        ["run ends", "torn-down dropped"],
        "log: {log:?}, reports: {reports:#?}"
    );
    assert_eq!(reports.len(), 1, "{reports:#?}");
    assert!(reports[0].contains("panicky"), "{reports:?}");
    assert!(
        reports[0].contains("a local value that panics on drop"),
        "{reports:?}"
    );
}

/// A greenlet that died of a panic (or a kill) drops its local values on
/// its own stack; a blocking call in their `Drop` blocks, rather than having
/// the greenlet's death payload raised again ("boom" a second time), as it
/// was when the locals were dropped after the payload was stored where
/// `park` looks for a pending throw.
#[test]
fn a_blocking_local_drop_in_a_greenlet_that_panicked_is_not_hit_by_its_panic_again() {
    struct SleepsOnDrop(Log);
    impl Drop for SleepsOnDrop {
        fn drop(&mut self) {
            let slept = catch(|| sleep(MS)).map_err(|p| panic_message(&*p));
            self.0.push(format!("sleep in drop: {slept:?}"));
        }
    }
    silence_failures_here();
    let (log, exception) = scenario(|| {
        let log = Log::new();
        let local: Rc<Local<RefCell<Option<SleepsOnDrop>>>> =
            Rc::new(Local::new(|| RefCell::new(None)));
        let (l, lg) = (Rc::clone(&local), log.clone());
        let g: Greenlet<()> = spawn(move || {
            l.with(|v| *v.borrow_mut() = Some(SleepsOnDrop(lg)));
            panic!("boom");
        });
        g.join();
        let exception = g.exception().map(|e| e.message().to_string());
        (log.take(), exception)
    });
    assert_eq!(log, ["sleep in drop: Ok(())"]);
    assert_eq!(exception.as_deref(), Some("boom"));
}

/// Drops this thread's failure reports (the expected panic of a test).
fn silence_failures_here() {
    capture_reports();
}

/// A local value whose `Drop` uses the same `Local` again (a logger that
/// logs its own shutdown) makes a second value during the greenlet's end:
/// that one is dropped too (with the greenlet's record), not leaked.
#[test]
fn local_value_whose_drop_uses_the_same_local_is_not_leaked() {
    type Slot = Rc<RefCell<Option<Rc<Local<Counted>>>>>;
    struct Counted {
        alive: Rc<Cell<i32>>,
        slot: Slot,
        uses_local_on_drop: bool,
    }
    impl Drop for Counted {
        fn drop(&mut self) {
            self.alive.set(self.alive.get() - 1);
            if self.uses_local_on_drop {
                if let Some(local) = self.slot.borrow().clone() {
                    local.with(|_| ());
                }
            }
        }
    }
    let alive = within(LIMIT, || {
        let alive = Rc::new(Cell::new(0));
        let made = Rc::new(Cell::new(0));
        let slot: Slot = Rc::new(RefCell::new(None));
        let (a, m, s) = (Rc::clone(&alive), Rc::clone(&made), Rc::clone(&slot));
        let local = Rc::new(Local::new(move || {
            a.set(a.get() + 1);
            m.set(m.get() + 1);
            Counted {
                alive: Rc::clone(&a),
                slot: Rc::clone(&s),
                // Only the first value uses the local from its `Drop`.
                uses_local_on_drop: m.get() == 1,
            }
        }));
        *slot.borrow_mut() = Some(Rc::clone(&local));
        run(|| {
            let l = Rc::clone(&local);
            let g = spawn(move || l.with(|_| ()));
            g.join();
            drop(g);
            sleep(MS);
        });
        slot.borrow_mut().take();
        assert_eq!(made.get(), 2);
        alive.get()
    });
    assert_eq!(alive, 0, "local values made but never dropped");
}

/// The main greenlet's local values are dropped by the teardown. One whose
/// `Drop` panics must be reported (as every other destructor the hub runs
/// is), not escape `run` from the middle of the teardown: that leaves the
/// thread's hub half torn down and marked as in a `run`, so every later
/// `run` on the thread panics with "cannot be nested".
#[test]
fn main_greenlet_local_whose_drop_panics_at_teardown_leaves_the_next_run_working() {
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("a main-greenlet local that panics on drop");
        }
    }
    capture_reports();
    let (first, second, reports) = within(LIMIT, || {
        let local: Local<Option<PanicOnDrop>> = Local::new(|| None);
        let first = catch(|| run(|| local.set(Some(PanicOnDrop)))).map_err(|p| panic_message(&*p));
        let second = catch(|| {
            run(|| {
                let g = spawn(|| {
                    sleep(MS);
                    5
                });
                g.get().unwrap()
            })
        })
        .map_err(|p| panic_message(&*p));
        (first, second, reports())
    });
    assert_eq!(second, Ok(5), "the next run on the thread");
    assert_eq!(first, Ok(()), "the panic escaped run");
    assert_eq!(reports.len(), 1, "{reports:#?}");
}

/// The main greenlet's local value lives until the teardown; one whose
/// `Drop` uses sync primitives (set, put, release, a get with a timeout)
/// runs during the teardown: it must not crash the process. Child process.
#[test]
fn main_greenlet_local_whose_drop_uses_primitives_at_teardown_does_not_crash() {
    let out = run_child(
        CHILD_ENV,
        "main-local-drop-uses-primitives",
        support::CHILD_LIMIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("child survived"),
        "status {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
}

// ===== zero timeouts =====

/// A zero timeout is a real zero-second timer on every primitive: what the
/// greenlets already ready provide before it fires is taken.
#[test]
fn zero_timeouts_see_what_the_ready_greenlets_provide_first() {
    let got = scenario(|| {
        let ev = Event::new();
        let r: AsyncResult<u32> = AsyncResult::new();
        let w: Waiter<u32> = Waiter::new();
        let q: Queue<u32> = Queue::new();
        let sem = Semaphore::new(0);
        let ch: Channel<u32> = Channel::new();
        let (e, r2, w2, q2, s2) = (ev.clone(), r.clone(), w.clone(), q.clone(), sem.clone());
        spawn(move || {
            e.set();
            r2.set(1);
            w2.switch(2);
            q2.put(3).unwrap();
            s2.release();
        });
        let c = ch.clone();
        spawn(move || c.put(4).unwrap());
        (
            ev.wait_timeout(Duration::ZERO),
            r.get_timeout(Duration::ZERO).map(|r| r.ok()),
            w.get_timeout(Duration::ZERO).map(|r| r.ok()),
            q.get_timeout(Duration::ZERO).ok(),
            sem.acquire_timeout(Duration::ZERO)
                .map(|g| g.forget())
                .is_some(),
            ch.get_nowait().ok(),
        )
    });
    assert_eq!(
        got,
        (true, Some(Some(1)), Some(Some(2)), Some(3), true, Some(4))
    );
}

/// A `RemoteSetter` keeps the waiting main greenlet from `LoopExit` while
/// it exists; once the other thread drops it unsent, nothing can complete
/// the result and the wait ends in `LoopExit` instead of hanging.
#[test]
fn a_remote_setter_dropped_unsent_on_another_thread_ends_the_wait_in_loop_exit() {
    scenario(|| {
        let r: AsyncResult<u32, String> = AsyncResult::new();
        let setter = r.remote_setter();
        let other = thread::spawn(move || {
            thread::sleep(5 * MS);
            drop(setter);
        });
        loop_exit_of(|| drop(r.get())).unwrap();
        other.join().unwrap();
        assert!(!r.ready());
    });
}

/// A `Waiter` filled and its getter killed in one loop turn: filled first,
/// the getter takes the value and dies at its next block; killed first, the
/// value stays in the slot for the next `get` (its docs).
#[test]
fn waiter_switch_and_kill_of_its_getter_in_one_turn_lose_no_value() {
    for kill_first in [false, true] {
        let (taken, left) = scenario(move || {
            let w: Waiter<u32> = Waiter::new();
            let taken = Rc::new(Cell::new(None));
            let (w2, t) = (w.clone(), Rc::clone(&taken));
            let g = spawn(move || {
                t.set(w2.get().ok());
                sleep(Duration::from_secs(3600));
            });
            yield_now();
            if kill_first {
                g.kill_nowait();
                w.switch(6);
            } else {
                w.switch(6);
                g.kill_nowait();
            }
            g.join();
            (taken.get(), w.get_timeout(Duration::ZERO).map(|r| r.ok()))
        });
        if kill_first {
            assert_eq!((taken, left), (None, Some(Some(6))));
        } else {
            assert_eq!((taken, left), (Some(6), None));
        }
    }
}
