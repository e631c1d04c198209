//! green-loop's callbacks: queued on the loop's own thread, and sent from
//! another thread through the loop's `Remote` (issue 3's table).
//!
//! | bench | what one operation is |
//! | --- | --- |
//! | `loop/callback` | `Loop::run_callback_fn` + its dispatch by `run_once`, in batches of 1024 |
//! | `loop/wakeup_cross_thread` | a closure sent with `Remote::run` from another thread and run on the loop's thread |
//!
//! The cross-thread note gives the `io_uring_enter` calls per loop iteration
//! (1 is the goal: submit and wait together) and the iterations per delivered
//! callback (below 1 means wakeups were batched), from `Loop::stats`.

#[path = "support/harness.rs"]
mod harness;

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use green_loop::{Loop, TimerId};
use harness::Harness;

/// Callbacks queued before the loop drains them in `loop/callback`.
const BATCH: u64 = 1024;

thread_local! {
    static RAN: Cell<u64> = const { Cell::new(0) };
}

fn count(_: &Loop, _: u64) {
    RAN.with(|r| r.set(r.get() + 1));
}

fn never(_: &Loop, _: TimerId, _: u64) {
    unreachable!("the keep-alive timer is cancelled before it fires");
}

fn main() {
    let h = Harness::from_env();
    if h.enabled("loop/callback") {
        callback(&h);
    }
    if h.enabled("loop/wakeup_cross_thread") {
        wakeup_cross_thread(&h);
    }
}

fn callback(h: &Harness) {
    let lp = Loop::new().expect("loop");
    h.bench("loop/callback", "green")
        .note("run_callback_fn + dispatch, batches of 1024")
        .iter_custom(|iters| {
            let start = Instant::now();
            let mut left = iters;
            while left > 0 {
                let n = left.min(BATCH);
                let target = RAN.with(Cell::get) + n;
                for i in 0..n {
                    lp.run_callback_fn(count, i);
                }
                while RAN.with(Cell::get) < target {
                    lp.run_once(false).expect("run_once");
                }
                left -= n;
            }
            start.elapsed()
        });
}

fn wakeup_cross_thread(h: &Harness) {
    let lp = Loop::new().expect("loop");
    // A referenced timer far ahead keeps the loop alive, so `run_once(true)`
    // really blocks until the remote's wakeup arrives.
    let keep_alive = lp.add_timer(lp.now() + Duration::from_secs(3600), never, 0);
    let remote = lp.remote();
    let delivered = Arc::new(AtomicU64::new(0));
    let before = lp.stats();
    let sent = Cell::new(0u64);
    h.bench("loop/wakeup_cross_thread", "green")
        .iter_custom_noted(
            |iters| {
                let base = delivered.load(Ordering::Relaxed);
                let sender = {
                    let remote = remote.clone();
                    let delivered = Arc::clone(&delivered);
                    std::thread::spawn(move || {
                        for _ in 0..iters {
                            let delivered = Arc::clone(&delivered);
                            remote
                                .run(move |_| {
                                    delivered.fetch_add(1, Ordering::Relaxed);
                                })
                                .expect("the loop outlives the sender");
                        }
                    })
                };
                let start = Instant::now();
                while delivered.load(Ordering::Relaxed) < base + iters {
                    lp.run_once(true).expect("run_once");
                }
                let took = start.elapsed();
                sender.join().expect("sender thread");
                sent.set(sent.get() + iters);
                took
            },
            || {
                let after = lp.stats();
                let iterations = (after.iterations - before.iterations).max(1) as f64;
                let enters = (after.enter_calls - before.enter_calls) as f64;
                let per_callback = iterations / sent.get().max(1) as f64;
                Some(format!(
                "Remote::run from another thread; {:.2} io_uring_enter calls per loop iteration, \
                 {per_callback:.3} iterations per callback ({:?} backend)",
                enters / iterations,
                lp.backend(),
            ))
            },
        );
    lp.cancel_timer(keep_alive);
}
