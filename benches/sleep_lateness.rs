//! How late a short sleep wakes when many sleep at once (issue 14's table):
//! the timer's rounding, the loop's wait, and the queue of wakes ahead.
//!
//! | bench | subject | what is measured |
//! | --- | --- | --- |
//! | `core/sleep_lateness` | `green` | 1 000 greenlets inside `green_core::run`, each calling `green_core::sleep(1 ms)` in a loop; per wake, the time it resumed minus (the time just before the call + 1 ms), in µs |
//! | `core/sleep_lateness` | `tokio` | the same with 1 000 tasks on a current-thread runtime, each awaiting `tokio::time::sleep(1 ms)` |
//! | `core/sleep_lateness` | `gevent` | the same with 1 000 greenlets calling `gevent.sleep(0.001)`, measured by the Python peer |
//!
//! The row's median, min and max are those of every wake's lateness (all
//! rounds of all sleepers, the first rounds left out while the sleepers'
//! start times settle); the note gives the 99th percentile and the count.
//! Both clocks are `std::time::Instant`, read by the sleeper itself, so a
//! runtime whose timers count from an older cached time would show wakes
//! that come early as negative lateness.
//!
//! The 1 000 wakes of a round are due within about a millisecond of each
//! other, so the lateness of the last includes the time to resume the ones
//! before it: the figure is the accuracy a server sees with many short
//! timeouts pending, not that of one lone sleeper. Both runtimes keep
//! timers on a wheel of 1 ms ticks and round a deadline up to the next tick,
//! so up to 1 ms of each figure is that rounding and the rest is the loop.

#[path = "support/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::{Harness, Stats};

const BENCH: &str = "core/sleep_lateness";

/// Sleepers in each subject.
const SLEEPERS: usize = 1_000;

/// What each sleeper sleeps, each round.
const NAP: Duration = Duration::from_millis(1);

/// Rounds left out of the figures: the sleepers start one after another
/// (about a millisecond for the thousand), and their first wakes carry that
/// spread.
const WARM_UP_ROUNDS: usize = 2;

fn main() {
    let h = Harness::from_env();
    if !h.enabled(BENCH) {
        return;
    }
    // About a second per subject in a full run (each round is a 1 ms nap
    // plus its lateness), a tenth of that with --quick.
    let rounds = if h.is_quick() { 50 } else { 500 };
    let mut green = green_lateness(rounds);
    report(&h, "green", &mut green, rounds);
    let mut tokio = tokio_lateness(rounds);
    report(&h, "tokio", &mut tokio, rounds);
}

/// Signed lateness in µs of a wake at `woke` for a sleep due at `due`
/// (negative when it woke early).
fn lateness_us(woke: Instant, due: Instant) -> f64 {
    match woke.checked_duration_since(due) {
        Some(late) => late.as_secs_f64() * 1e6,
        None => -(due.duration_since(woke).as_secs_f64() * 1e6),
    }
}

/// Every recorded wake's lateness, in µs, for `green_core::sleep`.
fn green_lateness(rounds: usize) -> Vec<f64> {
    green_core::run(|| {
        let sleepers: Vec<_> = (0..SLEEPERS)
            .map(|_| {
                green_core::spawn(move || {
                    let mut late = Vec::with_capacity(rounds);
                    for round in 0..WARM_UP_ROUNDS + rounds {
                        let due = Instant::now() + NAP;
                        green_core::sleep(NAP);
                        let woke = Instant::now();
                        if round >= WARM_UP_ROUNDS {
                            late.push(lateness_us(woke, due));
                        }
                    }
                    late
                })
            })
            .collect();
        let mut all = Vec::with_capacity(SLEEPERS * rounds);
        for sleeper in sleepers {
            all.extend(sleeper.get().expect("a sleeper finishes"));
        }
        all
    })
}

/// Every recorded wake's lateness, in µs, for `tokio::time::sleep`.
fn tokio_lateness(rounds: usize) -> Vec<f64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio current-thread runtime");
    rt.block_on(async move {
        let sleepers: Vec<_> = (0..SLEEPERS)
            .map(|_| {
                tokio::spawn(async move {
                    let mut late = Vec::with_capacity(rounds);
                    for round in 0..WARM_UP_ROUNDS + rounds {
                        let due = Instant::now() + NAP;
                        tokio::time::sleep(NAP).await;
                        let woke = Instant::now();
                        if round >= WARM_UP_ROUNDS {
                            late.push(lateness_us(woke, due));
                        }
                    }
                    late
                })
            })
            .collect();
        let mut all = Vec::with_capacity(SLEEPERS * rounds);
        for sleeper in sleepers {
            all.extend(sleeper.await.expect("a sleeper finishes"));
        }
        all
    })
}

/// Records `late` (µs, sorted here) as the subject's row.
fn report(h: &Harness, subject: &str, late: &mut [f64], rounds: usize) {
    let stats = Stats::of(late);
    let p99 = late[(late.len() * 99 / 100).min(late.len() - 1)];
    let note = format!(
        "{SLEEPERS} sleepers x {rounds} rounds of a 1 ms sleep ({} wakes); p99 {:.0} us, \
         min {:.0} us, max {:.0} us",
        late.len(),
        p99,
        stats.min,
        stats.max
    );
    h.record_stats(BENCH, subject, "us", &stats, Some(&note));
}
