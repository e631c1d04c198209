//! green-core's greenlet lifecycle: a trivial greenlet spawned, run and
//! joined (issue 4's table), beside tokio and may doing the same.
//!
//! | bench | subject | what one operation is |
//! | --- | --- | --- |
//! | `core/spawn_join` | `green` | `spawn(f)` then `join()` from the main greenlet, inside `green_core::run` |
//! | `core/spawn_join` | `tokio` | `tokio::spawn(f).await` inside `block_on` of a current-thread runtime |
//! | `core/spawn_join` | `may` | `coroutine::spawn(f)` then `join()` from a coroutine, one worker thread |
//!
//! Every subject runs the spawner and the spawned task on one thread, so no
//! figure includes a cross-thread wake-up: green's main greenlet, tokio's
//! `block_on` future and may's driver coroutine each switch to the child and
//! back. Stacks (green, may) come from the runtime's own pool in steady state,
//! which is what a server spawning per request sees.

#[path = "support/harness.rs"]
mod harness;

use std::hint::black_box;
use std::time::Instant;

use harness::Harness;

const BENCH: &str = "core/spawn_join";

/// Stack of may's driver coroutine, in words (may sizes stacks in `usize`s):
/// 2 MiB, since it runs the harness (formatting, sorting, file output), not
/// just a trivial closure.
const MAY_DRIVER_STACK_WORDS: usize = 256 * 1024;

/// Stack of may's spawned coroutines, in words: may's default (32 KiB),
/// set explicitly because may's coroutine pool only recycles coroutines of
/// the configured size.
const MAY_STACK_WORDS: usize = 0x1000;

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
            .note("spawn + join of a greenlet returning a constant; pooled guarded stacks")
            .iter(|| {
                let g = green_core::spawn(|| black_box(1_u32));
                g.join();
                g
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
    // One worker, so the driver and its children share a thread as green's
    // and tokio's do. Pinning is off because the other subjects run on an
    // unpinned main thread.
    may::config()
        .set_workers(1)
        .set_stack_size(MAY_STACK_WORDS)
        .set_worker_pin(false);

    // The whole case, clock and harness included, runs in one driver
    // coroutine on may's worker: a spawn from a plain thread and a join that
    // parks it would time a cross-thread wake-up instead of a spawn.
    let h = h.clone();
    let driver = may::coroutine::Builder::new()
        .name("spawn_join driver".to_owned())
        .stack_size(MAY_DRIVER_STACK_WORDS);
    // SAFETY: may's spawn is unsafe for two reasons, neither of which
    // applies. (1) A coroutine may migrate between worker threads, so a
    // thread-local it borrowed could change under it: with one worker there
    // is no other thread to migrate to, and the driver's only thread-locals
    // are std's (stdout lock, panic count), used on that one thread.
    // (2) Overflowing a coroutine's stack ends in a segfault: the driver gets
    // 2 MiB for the harness's shallow calls.
    let driver =
        unsafe { driver.spawn(move || may_driver(&h)) }.expect("spawn may driver coroutine");
    driver.join().expect("may driver coroutine");
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
