//! green-core's scheduler under load: 10 000 live greenlets taking turns
//! with `yield_now` (issue 4's table), beside tokio and may doing the same.
//!
//! | bench | subject | what one operation is |
//! | --- | --- | --- |
//! | `core/yield_10k` | `green` | one `yield_now()` of one of 10 000 greenlets, inside `green_core::run` |
//! | `core/yield_10k` | `tokio` | one `tokio::task::yield_now().await` of one of 10 000 tasks, current-thread runtime |
//! | `core/yield_10k` | `may` | one `coroutine::yield_now()` of one of 10 000 coroutines, one worker thread |
//!
//! Each yielder loops on yield-then-count. One timed iteration is one round:
//! every yielder yields once (the shared counter advances by 10 000), so the
//! figure is ns per yield, and each round walks all 10 000 stacks, as a
//! server with that many busy connections does. The timing side waits for the
//! counter by yielding itself (green, may) or by parking `block_on` until the
//! yielder that reaches the target wakes it (tokio); either adds one switch
//! per 10 000 yields. Spawning the yielders and letting each run to its first
//! yield is setup, outside the clock.
//!
//! With `GREEN_BENCH_CALLGRIND=N` the binary only runs N rounds of green's
//! case (N times 10 000 yields), untimed, to count instructions (and, with
//! cachegrind, misses) per yield: run it for two values of N and divide the
//! difference by 10 000 times the difference of N.

#[path = "support/harness.rs"]
mod harness;
#[path = "support/may_peer.rs"]
mod may_peer;

use std::cell::Cell;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Instant;

use harness::Harness;

const BENCH: &str = "core/yield_10k";

/// Yielders alive at once.
const LIVE: u64 = 10_000;

fn main() {
    if let Some(rounds) = harness::callgrind_iterations() {
        callgrind_scenario(rounds);
        return;
    }
    let h = Harness::from_env();
    if !h.enabled(BENCH) {
        return;
    }
    green(&h);
    tokio(&h);
    may(&h);
}

fn green(h: &Harness) {
    green_core::run(|| {
        let turns = Rc::new(Cell::new(0_u64));
        let stop = Rc::new(Cell::new(false));
        let yielders: Vec<_> = (0..LIVE)
            .map(|_| {
                let (turns, stop) = (Rc::clone(&turns), Rc::clone(&stop));
                green_core::spawn(move || {
                    while !stop.get() {
                        green_core::yield_now();
                        turns.set(turns.get() + 1);
                    }
                })
            })
            .collect();
        // Each yielder runs up to its first yield before the clock starts.
        green_core::yield_now();

        let rounds = Cell::new(0_u64);
        let main_yields = Cell::new(0_u64);
        h.bench(BENCH, "green")
            .ops_per_iter(LIVE)
            .iter_custom_noted(
                |iters| {
                    let target = turns.get() + iters * LIVE;
                    let start = Instant::now();
                    while turns.get() < target {
                        green_core::yield_now();
                        main_yields.set(main_yields.get() + 1);
                    }
                    let took = start.elapsed();
                    rounds.set(rounds.get() + iters);
                    took
                },
                || {
                    Some(format!(
                        "10 000 greenlets (guarded default stacks) yielding in turn; ns per \
                         yield; the timing greenlet yielded {:.2} times per round",
                        main_yields.get() as f64 / rounds.get() as f64
                    ))
                },
            );

        stop.set(true);
        for g in &yielders {
            g.join();
        }
    });
}

/// The fixed-count scenario: `rounds` rounds of green's case, untimed.
fn callgrind_scenario(rounds: u64) {
    green_core::run(|| {
        let turns = Rc::new(Cell::new(0_u64));
        let stop = Rc::new(Cell::new(false));
        let yielders: Vec<_> = (0..LIVE)
            .map(|_| {
                let (turns, stop) = (Rc::clone(&turns), Rc::clone(&stop));
                green_core::spawn(move || {
                    while !stop.get() {
                        green_core::yield_now();
                        turns.set(turns.get() + 1);
                    }
                })
            })
            .collect();
        green_core::yield_now();
        let target = turns.get() + rounds * LIVE;
        while turns.get() < target {
            green_core::yield_now();
        }
        stop.set(true);
        for g in &yielders {
            g.join();
        }
    });
}

/// What tokio's yielders share with the timing future. Atomics only because
/// `tokio::spawn` wants `Send`: every task runs on the one thread that calls
/// `block_on`, so plain relaxed loads and stores cannot lose a count.
#[derive(Default)]
struct TokioShared {
    turns: AtomicU64,
    target: AtomicU64,
    stop: AtomicBool,
    waiter: Mutex<Option<Waker>>,
}

impl TokioShared {
    /// Completes once `turns` reaches `target`.
    async fn reached(&self, target: u64) {
        self.target.store(target, Relaxed);
        poll_fn(|cx| {
            if self.turns.load(Relaxed) >= target {
                Poll::Ready(())
            } else {
                *self.waiter.lock().expect("waiter lock") = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
    }
}

fn tokio(h: &Harness) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio current-thread runtime");
    let shared = Arc::new(TokioShared::default());
    let tasks: Vec<_> = (0..LIVE)
        .map(|_| {
            let shared = Arc::clone(&shared);
            rt.spawn(async move {
                loop {
                    tokio::task::yield_now().await;
                    if shared.stop.load(Relaxed) {
                        break;
                    }
                    let n = shared.turns.load(Relaxed) + 1;
                    shared.turns.store(n, Relaxed);
                    if n == shared.target.load(Relaxed) {
                        if let Some(waker) = shared.waiter.lock().expect("waiter lock").take() {
                            waker.wake();
                        }
                    }
                }
            })
        })
        .collect();
    // Each task runs up to its first yield (and through one round) before
    // the clock starts.
    rt.block_on(shared.reached(LIVE));

    h.bench(BENCH, "tokio")
        .ops_per_iter(LIVE)
        .note("10 000 tasks yielding in turn on a current_thread runtime; ns per yield")
        .iter_custom(|iters| {
            rt.block_on(async {
                let target = shared.turns.load(Relaxed) + iters * LIVE;
                let start = Instant::now();
                shared.reached(target).await;
                start.elapsed()
            })
        });

    shared.stop.store(true, Relaxed);
    rt.block_on(async {
        for task in tasks {
            task.await.expect("tokio yielder");
        }
    });
}

fn may(h: &Harness) {
    let h = h.clone();
    may_peer::run_on_one_worker("yield driver", move || may_driver(&h));
}

/// The may case, run by a coroutine on may's one worker.
fn may_driver(h: &Harness) {
    // Atomics for `Send`; all coroutines run on the one worker, so a
    // relaxed load-then-store counts exactly.
    let turns = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(may::sync::SyncFlag::new());
    let yielders: Vec<_> = (0..LIVE)
        .map(|_| {
            let (turns, stop, started) =
                (Arc::clone(&turns), Arc::clone(&stop), Arc::clone(&started));
            // SAFETY: as for the driver in `may` (one worker, so no
            // migration; no thread-locals); the yielder's loop needs a few
            // hundred bytes of its 32 KiB stack.
            unsafe {
                may::coroutine::spawn(move || {
                    while !stop.load(Relaxed) {
                        may::coroutine::yield_now();
                        let n = turns.load(Relaxed) + 1;
                        turns.store(n, Relaxed);
                        if n == LIVE {
                            started.fire();
                        }
                    }
                })
            }
        })
        .collect();
    // Each yielder runs up to its first yield (and through one round)
    // before the clock starts. The driver must block here, not yield: may
    // puts spawned coroutines on the worker's global queue, which it drains
    // only when the local queue is empty, and a yield re-queues the driver
    // locally, so a yielding driver would starve them forever. Woken by a
    // coroutine of the same worker, the driver joins the local queue, behind
    // the yielders, and takes its turn among them from then on.
    started.wait();

    let rounds = Cell::new(0_u64);
    let driver_yields = Cell::new(0_u64);
    h.bench(BENCH, "may").ops_per_iter(LIVE).iter_custom_noted(
        |iters| {
            let target = turns.load(Relaxed) + iters * LIVE;
            let start = Instant::now();
            while turns.load(Relaxed) < target {
                may::coroutine::yield_now();
                driver_yields.set(driver_yields.get() + 1);
            }
            let took = start.elapsed();
            rounds.set(rounds.get() + iters);
            took
        },
        || {
            Some(format!(
                "one worker, 10 000 coroutines (32 KiB stacks) yielding in turn; ns per \
                 yield; the driver yielded {:.2} times per round",
                driver_yields.get() as f64 / rounds.get() as f64
            ))
        },
    );

    stop.store(true, Relaxed);
    for y in yielders {
        y.join().expect("may yielder");
    }
}
