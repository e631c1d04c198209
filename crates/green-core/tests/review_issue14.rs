//! Hostile review of issue 14 through green-core's public API: the loop's
//! cross-thread wakes now coalesce (a wake that finds one unread skips its
//! eventfd write). `RemoteSetter` and `RemotePutter` ride on them, so a lost
//! wake shows as a hub asleep forever with no timer to end the sleep: every
//! wait here is untimed, and a watchdog fails the scenario instead.

#[allow(unreachable_pub)] // The shared fixtures are `pub` for every test binary.
mod support;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use green_core::sync::{AsyncResult, Queue, RemoteSetter};
use green_core::{run, sleep, spawn, Timeout};
use support::within;

const LIMIT: Duration = Duration::from_secs(20);

/// Threads put in lockstep with the hub: each waits until the hub has taken
/// its previous item before it puts the next, so every put lands right as
/// the hub finishes a wake and goes back to sleep (no timers pending).
#[test]
fn putters_in_lockstep_with_a_sleeping_hub_never_lose_a_wake() {
    const THREADS: u64 = 4;
    const ROUNDS: u64 = 2_000;
    within(LIMIT, || {
        run(|| {
            let q: Queue<(u64, u64)> = Queue::new();
            let taken: Arc<Vec<AtomicU64>> =
                Arc::new((0..THREADS).map(|_| AtomicU64::new(0)).collect());
            let threads: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (putter, taken) = (q.remote_putter(), Arc::clone(&taken));
                    thread::spawn(move || {
                        for round in 1..=ROUNDS {
                            putter.put((t, round)).unwrap();
                            while taken[t as usize].load(Ordering::Acquire) != round {
                                thread::yield_now();
                            }
                        }
                    })
                })
                .collect();
            for _ in 0..THREADS * ROUNDS {
                // Untimed: only a wake from a putter ends the hub's sleep.
                let (t, round) = q.get().unwrap();
                taken[t as usize].store(round, Ordering::Release);
            }
            for t in threads {
                t.join().unwrap();
            }
        });
    });
}

/// Many greenlets, each with a thread that completes its results one at a
/// time, the greenlet waiting untimed for each.
#[test]
fn setters_answering_one_result_at_a_time_from_several_threads() {
    const PAIRS: usize = 6;
    const ROUNDS: u64 = 1_000;
    within(LIMIT, || {
        run(|| {
            let greenlets: Vec<_> = (0..PAIRS)
                .map(|_| {
                    spawn(|| {
                        let (tx, rx) = mpsc::channel::<(u64, RemoteSetter<u64, ()>)>();
                        let answerer = thread::spawn(move || {
                            for (v, setter) in rx {
                                setter.set(v * 3).unwrap();
                            }
                        });
                        for round in 0..ROUNDS {
                            let r: AsyncResult<u64, ()> = AsyncResult::new();
                            tx.send((round, r.remote_setter())).unwrap();
                            assert_eq!(r.get().unwrap(), round * 3);
                        }
                        drop(tx);
                        answerer.join().unwrap();
                    })
                })
                .collect();
            for g in greenlets {
                g.get().unwrap();
            }
        });
    });
}

/// Bursts: threads released together put a burst each, the hub takes all of
/// them, then the next burst; some greenlets sleep and time out meanwhile,
/// so timers and wakes interleave.
#[test]
fn bursts_from_many_threads_with_timers_around_them() {
    const THREADS: usize = 4;
    const BURSTS: usize = 200;
    const PER_BURST: usize = 25;
    within(LIMIT, || {
        run(|| {
            let q: Queue<usize> = Queue::new();
            let go = Arc::new(std::sync::Barrier::new(THREADS + 1));
            let (tx_go, rx_go) = mpsc::channel::<()>();
            let threads: Vec<_> = (0..THREADS)
                .map(|_| {
                    let (putter, go) = (q.remote_putter(), Arc::clone(&go));
                    thread::spawn(move || {
                        for b in 0..BURSTS {
                            go.wait();
                            for i in 0..PER_BURST {
                                putter.put(b * PER_BURST + i).unwrap();
                            }
                        }
                    })
                })
                .collect();
            // The barrier's last party, on a thread of its own so that the
            // hub never blocks its thread on it.
            let releaser = thread::spawn(move || {
                for _ in rx_go {
                    go.wait();
                }
            });
            let ticks = Rc::new(Cell::new(0u32));
            let t = Rc::clone(&ticks);
            let ticker = spawn(move || loop {
                sleep(Duration::from_micros(300));
                t.set(t.get() + 1);
                let _ = Timeout::run(Duration::from_micros(100), || {
                    sleep(Duration::from_millis(1));
                });
            });
            for _ in 0..BURSTS {
                tx_go.send(()).unwrap();
                for _ in 0..THREADS * PER_BURST {
                    q.get().unwrap();
                }
            }
            drop(tx_go);
            ticker.kill();
            for t in threads {
                t.join().unwrap();
            }
            releaser.join().unwrap();
            assert!(ticks.get() > 0, "the ticker never ran");
        });
    });
}

/// A thread that keeps putting as long as a greenlet's short sleep has not
/// ended: the hub must get out of the remote drain to fire the timer.
#[test]
fn a_stream_of_puts_does_not_starve_a_sleeping_greenlet() {
    within(LIMIT, || {
        run(|| {
            let q: Queue<u64> = Queue::new();
            let woke = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let putters: Vec<_> = (0..2)
                .map(|_| {
                    let (putter, woke) = (q.remote_putter(), Arc::clone(&woke));
                    thread::spawn(move || {
                        let give_up = Instant::now() + Duration::from_secs(5);
                        let mut sent = 0;
                        while !woke.load(Ordering::Acquire) && Instant::now() < give_up {
                            putter.put(1).unwrap();
                            sent += 1;
                        }
                        (sent, !woke.load(Ordering::Acquire))
                    })
                })
                .collect();
            let drainer = {
                let q = q.clone();
                spawn(move || {
                    let mut n = 0u64;
                    for _ in &q {
                        n += 1;
                    }
                    n
                })
            };
            let start = Instant::now();
            sleep(Duration::from_millis(1));
            sleep(Duration::from_millis(5));
            woke.store(true, Ordering::Release);
            let slept = start.elapsed();
            let mut sent = 0;
            let mut gave_up = false;
            for p in putters {
                let (s, g) = p.join().unwrap();
                sent += s;
                gave_up |= g;
            }
            assert!(
                !gave_up,
                "two sleeps of 1 and 5 ms lasted {slept:?} while {sent} items streamed in from two threads"
            );
            // Let every item in, then end the drainer.
            let probe: AsyncResult<(), ()> = AsyncResult::new();
            let setter = probe.remote_setter();
            // Sent after every put, from a thread, so it arrives after them.
            thread::spawn(move || setter.set(()).unwrap())
                .join()
                .unwrap();
            probe.get().unwrap();
            q.close();
            assert_eq!(drainer.get().unwrap(), sent);
        });
    });
}

// ===== timers (2^16 ns ticks, nanosecond waits on epoll too) =====

/// Runs `f` once per backend, each in a scoped hub of its own.
fn each_backend(f: impl Fn(&str) + Send + Sync + Copy + 'static) {
    use green_core::{run_with, BackendChoice, RunOptions};
    within(LIMIT, move || {
        run_with(RunOptions::new().backend(BackendChoice::Epoll), || {
            f("epoll")
        });
        // Auto: io_uring wherever the kernel lets a ring be set up.
        run_with(RunOptions::new(), || f("auto"));
    });
}

const TICK_NS: u64 = 1 << 16;

fn durations_at_the_edges() -> Vec<Duration> {
    [
        1,
        999,
        TICK_NS - 1,
        TICK_NS,
        TICK_NS + 1,
        64 * TICK_NS - 1,
        64 * TICK_NS,
        64 * TICK_NS + 1,
        1_000_000,
        4_194_304,
        4_200_000,
        4096 * TICK_NS + 1,
        268_435_456,
    ]
    .into_iter()
    .map(Duration::from_nanos)
    .collect()
}

#[test]
fn sleep_never_returns_before_its_duration() {
    each_backend(|backend| {
        for d in durations_at_the_edges() {
            // Once after a busy spell (the loop's cached clock is stale)
            // and once right after a wake.
            let busy_until = Instant::now() + Duration::from_micros(700);
            while Instant::now() < busy_until {}
            for _ in 0..2 {
                let start = Instant::now();
                sleep(d);
                let took = start.elapsed();
                assert!(took >= d, "{backend}: sleep({d:?}) returned after {took:?}");
            }
        }
    });
}

#[test]
fn timeouts_never_fire_before_their_duration() {
    each_backend(|backend| {
        for d in durations_at_the_edges() {
            let start = Instant::now();
            let r = Timeout::run(d, || sleep(d * 4 + Duration::from_millis(2)));
            let took = start.elapsed();
            assert!(r.is_err(), "{backend}: Timeout({d:?}) never fired");
            assert!(took >= d, "{backend}: Timeout({d:?}) fired after {took:?}");
        }
    });
}

#[test]
fn equal_sleeps_started_in_order_wake_in_order() {
    each_backend(|backend| {
        let order = Rc::new(std::cell::RefCell::new(Vec::new()));
        let gs: Vec<_> = (0..200)
            .map(|i| {
                let o = Rc::clone(&order);
                spawn(move || {
                    // All start within one tick of each other: equal
                    // deadlines up to the tick, in spawn order.
                    sleep(Duration::from_millis(3));
                    o.borrow_mut().push(i);
                })
            })
            .collect();
        for g in gs {
            g.join();
        }
        let order = order.borrow();
        assert_eq!(*order, (0..200).collect::<Vec<_>>(), "{backend}");
    });
}

#[test]
fn huge_durations_neither_panic_nor_fire() {
    each_backend(|backend| {
        let huge = [
            Duration::MAX,
            Duration::from_millis(u64::MAX),
            Duration::from_secs(u64::MAX / 2),
            Duration::from_secs(86_400 * 365 * 100),
            Duration::from_secs(86_400 * 60),
        ];
        for d in huge {
            // A sleeper killed while it sleeps.
            let g = spawn(move || sleep(d));
            sleep(Duration::from_millis(2));
            assert!(!g.dead(), "{backend}: sleep({d:?}) ended by itself");
            g.kill();
            assert!(g.dead());
            // A timeout that never fires around work that ends.
            let r = Timeout::run(d, || {
                sleep(Duration::from_millis(1));
                7
            });
            assert_eq!(r.unwrap(), 7, "{backend}: Timeout({d:?})");
            assert_eq!(
                green_core::with_timeout_or(d, 0, || 5),
                5,
                "{backend}: with_timeout_or({d:?})"
            );
            // A short timeout around a huge sleep still fires.
            let start = Instant::now();
            assert!(Timeout::run(Duration::from_millis(3), || sleep(d)).is_err());
            assert!(start.elapsed() >= Duration::from_millis(3));
        }
    });
}

#[test]
fn sleeps_and_timeouts_under_kills_leave_nothing_behind() {
    each_backend(|backend| {
        for round in 0..50u64 {
            let g = spawn(move || {
                let _ = Timeout::run(Duration::from_millis(50 + round), || {
                    sleep(Duration::from_secs(3600));
                });
                sleep(Duration::from_secs(3600));
            });
            let h = spawn(move || {
                let t = Timeout::start_new(Duration::from_micros(round * 40));
                sleep(Duration::from_micros(round * 40 + 1));
                drop(t);
            });
            sleep(Duration::from_micros(round * 20));
            g.kill();
            h.kill();
            assert!(g.dead() && h.dead(), "{backend}: round {round}");
        }
        // Nothing armed is left: the hub has nothing to wait for, so an
        // unreferenced sleep of the main greenlet reports LoopExit at once
        // instead of waiting out a stray hour-long timer.
        let start = Instant::now();
        let r = std::panic::catch_unwind(|| green_core::sleep_unref(Duration::from_secs(5)));
        let err = r.expect_err("the loop should have been empty");
        assert!(
            err.downcast_ref::<green_core::LoopExit>().is_some(),
            "{backend}: not a LoopExit"
        );
        assert!(start.elapsed() < Duration::from_secs(4), "{backend}");
    });
}
