//! green-core's greenlet lifecycle: a trivial greenlet spawned, run and
//! joined (issue 4's table), beside tokio and may doing the same.
//!
//! | bench | subject | what one operation is |
//! | --- | --- | --- |
//! | `core/spawn_join` | `green` | `spawn(f)` then `take()` (join, move the value out) from the main greenlet, inside `green_core::run` |
//! | `core/spawn_join` | `tokio` | `tokio::spawn(f).await` inside `block_on` of a current-thread runtime |
//! | `core/spawn_join` | `may` | `coroutine::spawn(f)` then `join()` from a coroutine, one worker thread |
//!
//! Every subject ends with the value moved out of the finished task and its
//! handle gone (green `take()`, tokio's `JoinHandle` awaited, may's `join()`),
//! so none does less than the others.
//!
//! Every subject runs the spawner and the spawned task on one thread, so no
//! figure includes a cross-thread wake-up: green's main greenlet, tokio's
//! `block_on` future and may's driver coroutine each switch to the child and
//! back. Stacks (green, may) come from the runtime's own pool in steady state,
//! which is what a server spawning per request sees.

#[path = "support/harness.rs"]
mod harness;
#[path = "support/may_peer.rs"]
mod may_peer;

use std::hint::black_box;
use std::time::Instant;

use harness::Harness;

const BENCH: &str = "core/spawn_join";

fn main() {
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
        h.bench(BENCH, "green")
            .note(
                "spawn + take (join, value moved out, handle dropped) of a greenlet returning \
                 a constant; pooled guarded stacks",
            )
            .iter(|| {
                green_core::spawn(|| black_box(1_u32))
                    .take()
                    .expect("greenlet returns its value")
            });
    });
}

fn tokio(h: &Harness) {
    // Building the runtime is setup; the clock runs inside `block_on`.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio current-thread runtime");
    h.bench(BENCH, "tokio")
        .note("current_thread runtime: tokio::spawn(async { 1 }).await inside block_on")
        .iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let v = tokio::spawn(async { black_box(1_u32) })
                        .await
                        .expect("tokio task");
                    black_box(v);
                }
                start.elapsed()
            })
        });
}

fn may(h: &Harness) {
    let h = h.clone();
    may_peer::run_on_one_worker("spawn_join driver", move || may_driver(&h));
}

/// The may case, run by a coroutine on may's one worker.
fn may_driver(h: &Harness) {
    h.bench(BENCH, "may")
        .note("one worker: coroutine::spawn + join from a coroutine; 32 KiB pooled stacks")
        .iter(|| {
            // SAFETY: as for the driver in `may` (one worker, so no migration;
            // no thread-locals); the child only returns a constant, far within
            // its 32 KiB stack.
            let child = unsafe { may::coroutine::spawn(|| black_box(1_u32)) };
            child.join().expect("may coroutine")
        });
}
