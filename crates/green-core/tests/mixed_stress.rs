//! Many greenlets doing a seeded random mix of everything green-core offers
//! (yields, sleeps, nested and zero timeouts, started timeouts dropped before
//! or after a block, spawns that are joined, dropped, killed or joined under
//! a timeout), torn down at the end of each `run` wherever they are.
//!
//! What must hold whatever the mix: nothing escapes `run` but the greenlets'
//! own outcomes, nothing hangs, and every greenlet's destructors run exactly
//! once by the time `run` returns. The sequence is deterministic; only which
//! timer fires first varies with the machine's speed, and the invariants do
//! not depend on it.

#[allow(unreachable_pub)] // The shared fixtures are `pub` for every test binary.
mod support;

use std::cell::Cell;
use std::time::Duration;

use green_core::{sleep, spawn, yield_now, Greenlet, Timeout};
use support::{catch, within, DropCounter};

/// Rounds of `run`, each with [`GREENLETS`] top-level greenlets.
const ROUNDS: u64 = 40;
const GREENLETS: usize = 20;
/// How deep greenlets spawn greenlets.
const MAX_DEPTH: u32 = 3;

thread_local! {
    static STATE: Cell<u64> = const { Cell::new(0x9e37_79b9_7f4a_7c15) };
    /// Greenlets spawned (each holding one token) in the current round.
    static SPAWNED: Cell<usize> = const { Cell::new(0) };
}

/// A xorshift step: a number below `n`.
fn below(n: u64) -> u64 {
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x % n
    })
}

fn micros(max: u64) -> Duration {
    Duration::from_micros(below(max))
}

/// Spawns a child that runs [`work`] and holds a token until it ends.
fn child(counter: &DropCounter, depth: u32) -> Greenlet<()> {
    let counter = counter.clone();
    let token = counter.token();
    SPAWNED.with(|n| n.set(n.get() + 1));
    spawn(move || {
        let _token = token;
        work(&counter, depth + 1);
    })
}

fn work(counter: &DropCounter, depth: u32) {
    let may_spawn = depth < MAX_DEPTH;
    for _ in 0..3 + below(6) {
        match below(9) {
            0 => yield_now(),
            1 => sleep(micros(1500)),
            2 => {
                let _ = Timeout::run(micros(800), || {
                    yield_now();
                    sleep(micros(1500));
                });
            }
            3 => {
                let _ = Timeout::run(Duration::ZERO, || {
                    let _ = Timeout::run(Duration::ZERO, yield_now);
                    yield_now();
                });
            }
            4 if may_spawn => {
                let g = child(counter, depth);
                if below(2) == 0 {
                    g.join();
                }
            }
            5 if may_spawn => {
                let g = child(counter, depth);
                yield_now();
                g.kill();
                assert!(g.dead(), "a blocking kill returns once it is dead");
            }
            6 => {
                let t = Timeout::start_new(micros(500));
                if below(2) == 0 {
                    if let Err(payload) = catch(yield_now) {
                        if !t.is(&*payload) {
                            std::panic::resume_unwind(payload);
                        }
                    }
                }
                drop(t);
            }
            7 if may_spawn => {
                let g = child(counter, depth);
                let _ = Timeout::run(micros(700), || g.join());
            }
            _ => {
                let t = Timeout::start_new(micros(300));
                if let Err(payload) = catch(|| sleep(micros(600))) {
                    // Only our own timeout may be swallowed here.
                    if !t.is(&*payload) {
                        std::panic::resume_unwind(payload);
                    }
                }
            }
        }
    }
}

#[test]
fn every_greenlet_of_a_random_mix_is_unwound_exactly_once() {
    within(Duration::from_secs(120), || {
        for round in 0..ROUNDS {
            let counter = DropCounter::new();
            SPAWNED.with(|n| n.set(0));
            green_core::run(|| {
                let top: Vec<Greenlet<()>> = (0..GREENLETS).map(|_| child(&counter, 0)).collect();
                if round % 3 == 0 {
                    // Tear down mid-flight.
                    sleep(Duration::from_micros(500));
                } else {
                    for g in &top {
                        g.join();
                        assert!(
                            g.successful(),
                            "round {round}: a greenlet failed: {:?}",
                            g.exception()
                        );
                    }
                }
            });
            // Every token, top-level or nested, went exactly once.
            assert_eq!(
                counter.drops(),
                SPAWNED.with(Cell::get),
                "round {round}: every greenlet's destructors ran once"
            );
        }
    });
}
