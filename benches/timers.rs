//! green-loop's timers: insert and cancel with 100 000 timers already
//! pending (issue 3's table).
//!
//! | bench | what one operation is |
//! | --- | --- |
//! | `loop/timer_insert` | `Loop::add_timer` with 100 000 timers pending |
//! | `loop/timer_cancel` | `Loop::cancel_timer` of a pending timer, 100 000 others pending |
//!
//! Deadlines are spread over a minute an hour ahead, so nothing fires and
//! the timers land in many wheel slots, as a server's timeouts do.

#[path = "support/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use green_loop::{Loop, TimerId};
use harness::Harness;

/// Timers pending during both benches.
const PENDING: u32 = 100_000;

fn never(_: &Loop, _: TimerId, _: u64) {
    unreachable!("bench timers are cancelled before their deadline");
}

/// The `i`-th deadline: an hour ahead, spread over a minute in 1 ms steps.
fn deadline(base: Instant, i: u32) -> Instant {
    base + Duration::from_secs(3600) + Duration::from_millis(u64::from(i % 60_000))
}

fn main() {
    let h = Harness::from_env();
    let insert = h.enabled("loop/timer_insert");
    let cancel = h.enabled("loop/timer_cancel");
    if !insert && !cancel {
        return;
    }
    let lp = Loop::new().expect("loop");
    let base = lp.now();
    let pending: Vec<TimerId> = (0..PENDING)
        .map(|i| lp.add_timer(deadline(base, i), never, 0))
        .collect();
    let mut ids: Vec<TimerId> = Vec::new();

    if insert {
        h.bench("loop/timer_insert", "green")
            .note("100 000 timers pending")
            .iter_custom(|iters| {
                ids.clear();
                ids.reserve(iters as usize);
                let start = Instant::now();
                for i in 0..iters {
                    ids.push(lp.add_timer(deadline(base, i as u32), never, i));
                }
                let took = start.elapsed();
                for id in ids.drain(..) {
                    lp.cancel_timer(id);
                }
                took
            });
    }
    if cancel {
        h.bench("loop/timer_cancel", "green")
            .note("100 000 timers pending")
            .iter_custom(|iters| {
                ids.clear();
                ids.extend((0..iters).map(|i| lp.add_timer(deadline(base, i as u32), never, i)));
                let start = Instant::now();
                for id in ids.drain(..) {
                    std::hint::black_box(lp.cancel_timer(id));
                }
                start.elapsed()
            });
    }
    for id in pending {
        lp.cancel_timer(id);
    }
}
