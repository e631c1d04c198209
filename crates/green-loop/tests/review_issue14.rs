//! Hostile review of issue 14's loop changes, through the public API:
//!
//! * cross-thread wakes coalesce (a wake that finds one unread skips its
//!   eventfd write): however the wakes race the read, none is lost. A lost
//!   wake shows as a blocking iteration that never returns, so every
//!   scenario runs under a watchdog that fails the test instead of hanging;
//! * the wheel's 2^16 ns ticks and the epoll backend's nanosecond wait:
//!   a timer never fires before its deadline, equal deadlines fire in
//!   insertion order, far deadlines neither panic nor fire.

// Only `deny_syscall` is used here.
#[allow(dead_code)]
#[path = "support/seccomp.rs"]
mod seccomp;
mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use green_loop::Loop;
use support::each_backend;

/// Runs `scenario` on a thread of its own and fails if it has not finished
/// after `limit` (a lost wake blocks an iteration forever).
fn within(limit: Duration, what: &str, scenario: impl FnOnce() + Send + 'static) {
    let handle = thread::spawn(scenario);
    let start = Instant::now();
    while !handle.is_finished() {
        if start.elapsed() > limit {
            // The scenario thread is stuck in the kernel; nothing can
            // unblock it, so end the process rather than hang CI.
            eprintln!("{what}: still blocked after {limit:?}: a wake was lost");
            std::process::abort();
        }
        thread::sleep(Duration::from_millis(5));
    }
    if let Err(payload) = handle.join() {
        std::panic::resume_unwind(payload);
    }
}

const LIMIT: Duration = Duration::from_secs(20);

/// Every sender waits until the loop has run its previous closure before it
/// sends the next, so each send lands right as the read that took the
/// previous one completes: the edge where a skipped write could be lost.
#[test]
fn lockstep_senders_each_send_right_after_their_last_closure_ran() {
    const SENDERS: usize = 4;
    const ROUNDS: u64 = 3_000;
    within(LIMIT, "lockstep senders", || {
        each_backend(|lp| {
            lp.add_ref();
            let ran: Arc<Vec<AtomicU64>> =
                Arc::new((0..SENDERS).map(|_| AtomicU64::new(0)).collect());
            let senders: Vec<_> = (0..SENDERS)
                .map(|i| {
                    let (remote, ran) = (lp.remote(), Arc::clone(&ran));
                    thread::spawn(move || {
                        for round in 1..=ROUNDS {
                            let r = Arc::clone(&ran);
                            remote
                                .run(move |_| {
                                    r[i].store(round, Ordering::Release);
                                })
                                .unwrap();
                            // Spin, not sleep: the next send must race the
                            // loop's re-arm and drain as closely as it can.
                            while ran[i].load(Ordering::Acquire) != round {
                                std::hint::spin_loop();
                                thread::yield_now();
                            }
                        }
                    })
                })
                .collect();
            while ran.iter().any(|r| r.load(Ordering::Acquire) != ROUNDS) {
                // Blocks: only a wake can end it.
                lp.run_once(true).unwrap();
            }
            for s in senders {
                s.join().unwrap();
            }
            lp.release_ref();
        });
    });
}

/// Bare `wake` calls (no closure) from several threads, each waiting for the
/// loop to finish an iteration before waking again, then one closure each
/// to say it is done. The loop only ever blocks.
#[test]
fn bare_wakes_in_bursts_always_end_a_blocking_iteration() {
    const WAKERS: usize = 3;
    const WAKES: usize = 2_000;
    within(LIMIT, "bare wakes", || {
        each_backend(|lp| {
            lp.add_ref();
            let iterations = Arc::new(AtomicU64::new(0));
            let done = Arc::new(AtomicUsize::new(0));
            let wakers: Vec<_> = (0..WAKERS)
                .map(|w| {
                    let remote = lp.remote();
                    let (iterations, done) = (Arc::clone(&iterations), Arc::clone(&done));
                    thread::spawn(move || {
                        for n in 0..WAKES {
                            let seen = iterations.load(Ordering::Acquire);
                            // Bursts of a few wakes, to coalesce.
                            for _ in 0..=(n + w) % 4 {
                                remote.wake().unwrap();
                            }
                            while iterations.load(Ordering::Acquire) == seen {
                                thread::yield_now();
                            }
                        }
                        let done = Arc::clone(&done);
                        remote
                            .run(move |_| {
                                done.fetch_add(1, Ordering::Release);
                            })
                            .unwrap();
                    })
                })
                .collect();
            while done.load(Ordering::Acquire) < WAKERS {
                lp.run_once(true).unwrap();
                iterations.fetch_add(1, Ordering::Release);
            }
            for w in wakers {
                w.join().unwrap();
            }
            lp.release_ref();
        });
    });
}

/// Blocking iterations, non-blocking polls (which skip the kernel while no
/// wake is unread) and closures that send again from inside the drain, all
/// interleaved while threads send in bursts released together by a barrier.
#[test]
fn polls_blocks_and_resends_from_the_drain_lose_nothing() {
    const SENDERS: usize = 3;
    const BURSTS: usize = 300;
    const PER_BURST: usize = 20;
    within(LIMIT, "mixed polls", || {
        each_backend(|lp| {
            lp.add_ref();
            let expected = SENDERS * BURSTS * PER_BURST * 2;
            let ran = Arc::new(AtomicUsize::new(0));
            let barrier = Arc::new(Barrier::new(SENDERS));
            let senders: Vec<_> = (0..SENDERS)
                .map(|_| {
                    let (remote, ran, barrier) =
                        (lp.remote(), Arc::clone(&ran), Arc::clone(&barrier));
                    thread::spawn(move || {
                        for _ in 0..BURSTS {
                            barrier.wait();
                            for _ in 0..PER_BURST {
                                let (ran, again) = (Arc::clone(&ran), remote.clone());
                                remote
                                    .run(move |_| {
                                        ran.fetch_add(1, Ordering::AcqRel);
                                        // A second send from the loop's own
                                        // thread, while it drains.
                                        let ran = Arc::clone(&ran);
                                        again
                                            .run(move |_| {
                                                ran.fetch_add(1, Ordering::AcqRel);
                                            })
                                            .unwrap();
                                    })
                                    .unwrap();
                            }
                        }
                    })
                })
                .collect();
            let mut i = 0u64;
            while ran.load(Ordering::Acquire) < expected {
                i += 1;
                // Mostly polls (the hub's pattern under load), a block now
                // and then: a lost wake hangs the block.
                lp.run_once(i % 7 == 0).unwrap();
            }
            for s in senders {
                s.join().unwrap();
            }
            assert_eq!(ran.load(Ordering::Acquire), expected);
            lp.release_ref();
        });
    });
}

/// A timer due soon while other threads keep sending closures for as long
/// as it has not fired: the loop must get out of its drain to fire it.
#[test]
fn a_stream_of_remote_closures_does_not_starve_a_due_timer() {
    const SENDERS: usize = 2;
    within(LIMIT, "starved timer", || {
        each_backend(|lp| {
            let fired = Arc::new(AtomicBool::new(false));
            let ran = Arc::new(AtomicU64::new(0));
            let senders: Vec<_> = (0..SENDERS)
                .map(|_| {
                    let (remote, fired, ran) = (lp.remote(), Arc::clone(&fired), Arc::clone(&ran));
                    thread::spawn(move || {
                        let give_up = Instant::now() + Duration::from_secs(5);
                        let mut sent = 0u64;
                        while !fired.load(Ordering::Acquire) && Instant::now() < give_up {
                            for _ in 0..64 {
                                let ran = Arc::clone(&ran);
                                remote
                                    .run(move |_| {
                                        ran.fetch_add(1, Ordering::Relaxed);
                                    })
                                    .unwrap();
                                sent += 1;
                            }
                        }
                        (sent, !fired.load(Ordering::Acquire))
                    })
                })
                .collect();
            // Let the stream start before the timer is armed.
            while ran.load(Ordering::Relaxed) == 0 {
                lp.run_once(false).unwrap();
            }
            let f = Arc::clone(&fired);
            let armed = Instant::now();
            lp.add_timer_closure(armed + Duration::from_millis(5), move |_| {
                f.store(true, Ordering::Release);
            });
            while !fired.load(Ordering::Acquire) && armed.elapsed() < Duration::from_secs(10) {
                lp.run_once(true).unwrap();
            }
            let outcomes: Vec<(u64, bool)> =
                senders.into_iter().map(|s| s.join().unwrap()).collect();
            let sent: u64 = outcomes.iter().map(|o| o.0).sum();
            let gave_up = outcomes.iter().any(|o| o.1);
            assert!(
                fired.load(Ordering::Acquire) && !gave_up,
                "{:?}: a 5 ms timer did not fire while {sent} remote closures streamed in \
                 (the senders gave up after 5 s): the wake drain never yields to timers",
                lp.backend()
            );
            // Drain the rest so that the loop can be dropped cleanly.
            let deadline = Instant::now() + Duration::from_secs(10);
            while ran.load(Ordering::Relaxed) < sent && Instant::now() < deadline {
                lp.run_once(false).unwrap();
            }
            assert_eq!(ran.load(Ordering::Relaxed), sent);
        });
    });
}

/// A backlog of several drains' worth, queued before the loop runs: it
/// runs whole, in order, with the loop blocking between drains (the loop
/// must wake itself for what a drain leaves), and `Stats::wakeups` counts
/// each `Remote` call once, not the loop's own wakes.
#[test]
fn a_backlog_larger_than_one_drain_runs_whole_in_order_counted_once() {
    const BACKLOG: u64 = 5_000;
    within(LIMIT, "backlog", || {
        each_backend(|lp| {
            lp.add_ref();
            let before = lp.stats().wakeups;
            let order = Arc::new(std::sync::Mutex::new(Vec::new()));
            let sender = {
                let (remote, order) = (lp.remote(), Arc::clone(&order));
                thread::spawn(move || {
                    for i in 0..BACKLOG {
                        let order = Arc::clone(&order);
                        remote.run(move |_| order.lock().unwrap().push(i)).unwrap();
                    }
                })
            };
            sender.join().unwrap();
            let mut blocking_iterations = 0;
            while (order.lock().unwrap().len() as u64) < BACKLOG {
                lp.run_once(true).unwrap();
                blocking_iterations += 1;
            }
            assert!(
                blocking_iterations > 1,
                "{:?}: {BACKLOG} closures ran in one iteration: nothing bounds a drain",
                lp.backend()
            );
            assert_eq!(*order.lock().unwrap(), (0..BACKLOG).collect::<Vec<_>>());
            // Every write read (a closure may run before its wake is read).
            while lp.stats().wakeups - before < BACKLOG {
                lp.run_once(true).unwrap();
            }
            lp.run_once(false).unwrap();
            assert_eq!(lp.stats().wakeups - before, BACKLOG, "{:?}", lp.backend());
            lp.release_ref();
        });
    });
}

// ===== timers =====

/// Sleeps `d` on the loop with one timer and returns how long it took by
/// the wall clock, measured from before the timer was armed.
fn timed_wait(lp: &Loop, d: Duration) -> Duration {
    let fired = Rc::new(RefCell::new(None));
    let start = Instant::now();
    let f = Rc::clone(&fired);
    lp.add_timer_closure(start + d, move |_| {
        *f.borrow_mut() = Some(Instant::now());
    });
    while fired.borrow().is_none() {
        lp.run_once(true).unwrap();
    }
    let at = fired.borrow().unwrap();
    at - start
}

#[test]
fn timers_never_fire_before_their_deadline_at_tick_and_level_edges() {
    const TICK: u64 = 1 << 16;
    let nanos = [
        1,
        1_000,
        TICK - 1,
        TICK,
        TICK + 1,
        2 * TICK,
        63 * TICK,
        64 * TICK - 1,
        64 * TICK,
        64 * TICK + 1,
        65 * TICK,
        4_200_000,
        1_000_000,
        1_500_000,
        4096 * TICK - 1,
        4096 * TICK,
        4096 * TICK + 1,
        268_000_000,
    ];
    each_backend(|lp| {
        for &n in &nanos {
            let d = Duration::from_nanos(n);
            let took = timed_wait(&lp, d);
            assert!(
                took >= d,
                "{:?}: a timer of {d:?} fired after {took:?}",
                lp.backend()
            );
            assert!(
                took < d + Duration::from_secs(1),
                "{:?}: a timer of {d:?} fired after {took:?}",
                lp.backend()
            );
        }
    });
}

#[test]
fn many_short_timers_armed_at_odd_moments_never_fire_early() {
    // Deadlines scattered over a few ms, armed between iterations of a busy
    // loop (so the wheel's `elapsed` moves between inserts).
    each_backend(|lp| {
        let early = Rc::new(RefCell::new(Vec::new()));
        let left = Rc::new(RefCell::new(0usize));
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..2_000u64 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let d = Duration::from_nanos(seed % 5_000_000);
            let deadline = Instant::now() + d;
            let (early, left2) = (Rc::clone(&early), Rc::clone(&left));
            *left.borrow_mut() += 1;
            lp.add_timer_closure(deadline, move |_| {
                let now = Instant::now();
                if now < deadline {
                    early.borrow_mut().push((d, deadline - now));
                }
                *left2.borrow_mut() -= 1;
            });
            if i % 16 == 0 {
                lp.run_once(false).unwrap();
            }
        }
        let end = Instant::now() + Duration::from_secs(10);
        while *left.borrow() > 0 && Instant::now() < end {
            lp.run_once(true).unwrap();
        }
        assert_eq!(*left.borrow(), 0, "{:?}: timers did not fire", lp.backend());
        let early = early.borrow();
        assert!(
            early.is_empty(),
            "{:?}: {} timers fired early, e.g. (duration, how early) {:?}",
            lp.backend(),
            early.len(),
            &early[..early.len().min(5)]
        );
    });
}

#[test]
fn equal_deadlines_fire_in_insertion_order_across_a_cascade() {
    each_backend(|lp| {
        let order = Rc::new(RefCell::new(Vec::new()));
        // Inserted from far (level 1 or 2) and, after time moves on, from
        // near (level 0): all with one deadline.
        let deadline = Instant::now() + Duration::from_millis(30);
        for i in 0..50 {
            let o = Rc::clone(&order);
            lp.add_timer_closure(deadline, move |_| o.borrow_mut().push(i));
        }
        while Instant::now() + Duration::from_millis(2) < deadline {
            lp.run_once(false).unwrap();
            thread::sleep(Duration::from_micros(300));
        }
        for i in 50..100 {
            let o = Rc::clone(&order);
            lp.add_timer_closure(deadline, move |_| o.borrow_mut().push(i));
        }
        while order.borrow().len() < 100 {
            lp.run_once(true).unwrap();
        }
        assert!(Instant::now() >= deadline);
        assert_eq!(*order.borrow(), (0..100).collect::<Vec<_>>());
    });
}

#[test]
fn far_deadlines_neither_panic_nor_fire_and_cancel_cleanly() {
    each_backend(|lp| {
        let now = Instant::now();
        let fars = [
            Duration::from_secs(60 * 60 * 24 * 53),  // past the top level
            Duration::from_secs(60 * 60 * 24 * 400), // parked, re-cascaded
            Duration::from_secs(86_400 * 365 * 30),  // green-core's cap
            Duration::from_secs(86_400 * 365 * 300), // past the stamp's range
        ];
        let fired = Rc::new(RefCell::new(0));
        let mut ids = Vec::new();
        for d in fars {
            if let Some(at) = now.checked_add(d) {
                let f = Rc::clone(&fired);
                ids.push(lp.add_timer_closure(at, move |_| *f.borrow_mut() += 1));
            }
        }
        // A short one to block on: the far ones must not fire meanwhile,
        // and the blocking waits must not fail on a huge timeout.
        let short = Rc::new(RefCell::new(false));
        let s = Rc::clone(&short);
        lp.add_timer_closure(Instant::now() + Duration::from_millis(20), move |_| {
            *s.borrow_mut() = true;
        });
        while !*short.borrow() {
            lp.run_once(true).unwrap();
        }
        // A blocking iteration whose only wait is the far timers' (bounded
        // by a wake from a thread).
        let remote = lp.remote();
        let t = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            remote.wake().unwrap();
        });
        lp.run_once(true).unwrap();
        t.join().unwrap();
        assert_eq!(*fired.borrow(), 0, "a far timer fired");
        for id in ids {
            assert!(lp.cancel_timer(id));
        }
        assert_eq!(lp.timer_count(), 0);
        assert!(!lp.is_alive());
    });
}

#[test]
fn a_hundred_thousand_timers_half_cancelled_fire_exactly_the_rest() {
    each_backend(|lp| {
        const N: u64 = 100_000;
        let fired = Rc::new(RefCell::new(vec![false; N as usize]));
        let start = Instant::now();
        let ids: Vec<_> = (0..N)
            .map(|i| {
                // Spread over 0..~300 ms: levels 0, 1 and 2.
                let d = Duration::from_nanos((i * 2_999) % 300_000_000);
                let f = Rc::clone(&fired);
                lp.add_timer_closure(start + d, move |_| {
                    assert!(Instant::now() >= start + d, "fired early");
                    let mut f = f.borrow_mut();
                    assert!(!f[i as usize], "timer {i} fired twice");
                    f[i as usize] = true;
                })
            })
            .collect();
        for (i, id) in ids.iter().enumerate() {
            if i % 2 == 1 {
                assert!(lp.cancel_timer(*id));
            }
        }
        let end = Instant::now() + Duration::from_secs(20);
        while lp.timer_count() > 0 && Instant::now() < end {
            lp.run_once(true).unwrap();
        }
        assert_eq!(lp.timer_count(), 0);
        let fired = fired.borrow();
        for (i, f) in fired.iter().enumerate() {
            assert_eq!(*f, i % 2 == 0, "timer {i}");
        }
        for id in ids {
            assert!(!lp.cancel_timer(id));
        }
    });
}

/// Where the kernel lacks `epoll_pwait2` (before Linux 5.11) the epoll
/// backend falls back to `epoll_wait`'s whole milliseconds: timers still
/// never fire early, a sub-millisecond wait does not spin, and wakes work.
#[test]
fn epoll_without_pwait2_rounds_waits_up_and_still_wakes() {
    within(LIMIT, "epoll without epoll_pwait2", || {
        // The filter holds for this thread only (and for good): the test's
        // other threads keep the real system call.
        seccomp::deny_syscall(libc::SYS_epoll_pwait2, libc::ENOSYS);
        let lp = Loop::builder()
            .backend(green_loop::BackendChoice::Epoll)
            .build()
            .expect("epoll loop");
        for n in [1u64, 65_536, 300_000, 999_999, 1_000_001, 4_200_000] {
            let d = Duration::from_nanos(n);
            let before = lp.stats();
            let took = timed_wait(&lp, d);
            let iterations = lp.stats().iterations - before.iterations;
            assert!(took >= d, "a timer of {d:?} fired after {took:?}");
            // A wait rounded down to 0 ms would spin until the deadline.
            assert!(
                iterations <= 4,
                "a timer of {d:?} took {iterations} iterations: the wait spins"
            );
        }
        lp.add_ref();
        let remote = lp.remote();
        let waker = thread::spawn(move || {
            for _ in 0..100 {
                remote.wake().unwrap();
                thread::sleep(Duration::from_micros(100));
            }
        });
        while lp.stats().wakeups < 100 {
            lp.run_once(true).unwrap();
        }
        waker.join().unwrap();
        lp.release_ref();
    });
}
