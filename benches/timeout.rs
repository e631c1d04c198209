//! green-core's `Timeout` on its fast path: a scope whose deadline never
//! comes, around a call that does not block (issue 4's table).
//!
//! | bench | what one operation is |
//! | --- | --- |
//! | `core/timeout_scope` | `Timeout::run(10 s, f)` where `f` returns a constant: start (loop timer added), run `f` under `catch_unwind`, cancel (timer removed) |
//!
//! This is the price of wrapping every request handler in a timeout that
//! almost never fires. It runs in the main greenlet inside `green_core::run`;
//! `run` creates the hub before the clock starts, and the harness's warm-up
//! runs before the samples.

#[path = "support/harness.rs"]
mod harness;

use std::hint::black_box;
use std::time::Duration;

use green_core::Timeout;
use harness::Harness;

const BENCH: &str = "core/timeout_scope";

/// Far beyond any sample, so the timeout never fires.
const DEADLINE: Duration = Duration::from_secs(10);

fn main() {
    let h = Harness::from_env();
    if !h.enabled(BENCH) {
        return;
    }
    green_core::run(|| {
        h.bench(BENCH, "green")
            .note("Timeout::run(10 s) around a closure returning a constant, main greenlet")
            .iter(|| Timeout::run(black_box(DEADLINE), || black_box(1_u32)).expect("no timeout"));
    });
}
