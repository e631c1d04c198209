//! green-core's `Timeout` around a request-handler-like body: a scope whose
//! deadline never comes (issue 4's table, made honest by issue 14).
//!
//! | bench | what one operation is |
//! | --- | --- |
//! | `core/timeout_scope` | `Timeout::run(10 s, f)` where `f` blocks once (`yield_now`) and returns a constant: start, run `f` under `catch_unwind`, the block arms the loop timer, cancel (timer removed) |
//! | `core/timeout_scope_nonblocking` | `Timeout::run(10 s, f)` where `f` returns a constant without blocking: the timer is never armed in the loop, so this is only the scope's bookkeeping |
//!
//! `core/timeout_scope` is the price of wrapping every request handler in a
//! timeout that almost never fires: a handler blocks at least once, and the
//! loop timer is inserted only when the greenlet blocks. Its figure includes
//! one `yield_now` (the main greenlet is the only one, so the yield goes
//! through the hub and straight back); the note gives the bare `yield_now`
//! measured in the same run, so the scope's own share can be read off.
//!
//! Both run in the main greenlet inside `green_core::run`; `run` creates the
//! hub before the clock starts, and the harness's warm-up runs before the
//! samples.

#[path = "support/harness.rs"]
mod harness;

use std::hint::black_box;
use std::time::Duration;

use green_core::Timeout;
use harness::Harness;

const BENCH: &str = "core/timeout_scope";
const BENCH_NONBLOCKING: &str = "core/timeout_scope_nonblocking";

/// Far beyond any sample, so the timeout never fires.
const DEADLINE: Duration = Duration::from_secs(10);

fn main() {
    let h = Harness::from_env();
    let blocking = h.enabled(BENCH);
    let nonblocking = h.enabled(BENCH_NONBLOCKING);
    if !blocking && !nonblocking {
        return;
    }
    green_core::run(|| {
        if blocking {
            // The reference: the same single block without a scope, so the
            // note can say what the scope adds. Not a row of its own.
            let bare = bare_yield_ns(&h);
            h.bench(BENCH, "green").iter_custom_judged(
                |iters| {
                    let start = std::time::Instant::now();
                    for _ in 0..iters {
                        let r = Timeout::run(black_box(DEADLINE), || {
                            green_core::yield_now();
                            black_box(1_u32)
                        });
                        black_box(r.expect("no timeout"));
                    }
                    start.elapsed()
                },
                |stats| {
                    format!(
                        "Timeout::run(10 s) around yield_now() then a constant, main greenlet; \
                         the block arms the loop timer; bare yield_now in this run: median {:.1} ns, \
                         so the scope adds ~{:.1} ns",
                        bare,
                        stats.median - bare
                    )
                },
            );
        }
        if nonblocking {
            h.bench(BENCH_NONBLOCKING, "green")
                .note(
                    "Timeout::run(10 s) around a closure returning a constant, main greenlet; \
                     never blocks, so the loop timer is never armed",
                )
                .iter(|| {
                    Timeout::run(black_box(DEADLINE), || black_box(1_u32)).expect("no timeout")
                });
        }
    });
}

/// Median ns of one bare `yield_now` over a few fixed-size batches, for the
/// note of `core/timeout_scope`.
fn bare_yield_ns(h: &Harness) -> f64 {
    let (batches, per_batch) = if h.is_quick() {
        (5, 2_000)
    } else {
        (21, 20_000)
    };
    let mut samples: Vec<f64> = (0..batches)
        .map(|_| {
            let start = std::time::Instant::now();
            for _ in 0..per_batch {
                green_core::yield_now();
            }
            start.elapsed().as_nanos() as f64 / f64::from(per_batch)
        })
        .collect();
    harness::Stats::of(&mut samples).median
}
