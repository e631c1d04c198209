//! green-ctx benches: the context switch, fiber creation and what an idle
//! fiber costs in memory (issue 2's table; names are kept as written there so
//! results compare across versions).
//!
//! | bench | what one operation is |
//! | --- | --- |
//! | `ctx/switch_round_trip` | root -> fiber -> root, one word each way; peer: corosensei `resume`/`suspend` |
//! | `ctx/switch_round_robin_10k` | root -> fiber i -> root, i cycling over 10 000 live fibers; `green+hints` also prefetches the fibers a few turns ahead, as a scheduler does |
//! | `ctx/create_run_pooled` | stack from a `StackPool`, fiber created, run to its end, stack given back |
//! | `ctx/create_run_fresh` | the same with a fresh `Stack::new` (mmap + mprotect + munmap) each time |
//! | `ctx/idle_rss` | (RSS + page tables) per suspended fiber, 10 000 fibers on default guarded stacks (bytes) |
//! | `ctx/million_unguarded` | 1 000 000 fibers created on arena stacks and suspended (s; skipped with --quick) |
//!
//! With `GREEN_BENCH_CALLGRIND=N` the binary only runs N round trips of
//! `ctx/switch_round_trip`, untimed, for `cargo xtask bench` to count
//! instructions under callgrind.

#[path = "support/harness.rs"]
mod harness;

use std::hint::black_box;
use std::time::Instant;

use corosensei::Coroutine;
use green_ctx::{Arena, Fiber, FiberRef, Stack, StackPool, DEFAULT_STACK_SIZE, MIN_STACK_SIZE};
use harness::{rss_bytes, Harness, Resident};

/// The word that tells a bench fiber to return from its entry.
const STOP: usize = usize::MAX;

/// Fibers alive at once in `ctx/switch_round_robin_10k` and `ctx/idle_rss`.
const LIVE_FIBERS: usize = 10_000;

/// Fibers in `ctx/million_unguarded`.
const MILLION: usize = 1_000_000;

fn main() {
    if let Some(iters) = harness::callgrind_iterations() {
        callgrind_scenario(iters);
        return;
    }
    let h = Harness::from_env();
    switch_round_trip(&h);
    live_fibers(&h);
    create_run(&h);
    million_unguarded(&h);
}

/// A fiber that bounces every word back to `back` until it is sent [`STOP`].
fn echo_fiber(stack: Stack, back: FiberRef) -> Fiber {
    Fiber::new(stack, move |mut word| {
        while word != STOP {
            word = back.switch(word);
        }
        0
    })
}

/// Ends an [`echo_fiber`] by letting its entry return (no forced unwind).
fn stop(fiber: &Fiber) {
    fiber.switch(STOP);
}

fn switch_round_trip(h: &Harness) {
    if !h.enabled("ctx/switch_round_trip") {
        return;
    }
    let fast = !green_ctx::switch_saves_fp_control();
    let note = if fast {
        "fast switch build (BOOST_USE_TSX): MXCSR/x87 control word not saved per switch"
    } else {
        "STOCK switch build: saves MXCSR/x87 control word per switch; set CFLAGS_x86_64_unknown_linux_gnu=-DBOOST_USE_TSX"
    };

    // Don't count time spent allocating a stack: the fiber is made once.
    let fiber = echo_fiber(
        Stack::new(DEFAULT_STACK_SIZE).expect("stack"),
        FiberRef::current(),
    );
    h.bench("ctx/switch_round_trip", "green")
        .note(note)
        .iter(|| fiber.switch(black_box(1)));
    stop(&fiber);

    let mut co = Coroutine::<usize, usize, ()>::new(|yielder, mut word| loop {
        word = yielder.suspend(word);
    });
    h.bench("ctx/switch_round_trip", "corosensei")
        .iter(|| co.resume(black_box(1)));
    // Dropping the suspended coroutine unwinds it (corosensei's forced unwind).
    drop(co);
}

/// `ctx/idle_rss` and `ctx/switch_round_robin_10k` share one set of 10 000
/// suspended fibers.
fn live_fibers(h: &Harness) {
    let rss_wanted = h.enabled("ctx/idle_rss");
    let rr_wanted = h.enabled("ctx/switch_round_robin_10k");
    if !rss_wanted && !rr_wanted {
        return;
    }
    let root = FiberRef::current();
    // Fresh guarded stacks (not a warm pool), so the RSS delta is what
    // suspended fibers really touch: a page or two of stack plus the record,
    // and the page tables mapping them.
    let before = Resident::now();
    let fibers: Vec<Fiber> = (0..LIVE_FIBERS)
        .map(|_| {
            let fiber = echo_fiber(Stack::new(DEFAULT_STACK_SIZE).expect("stack"), root.clone());
            fiber.switch(0);
            fiber
        })
        .collect();
    let grown = Resident::now().since(before);
    if rss_wanted {
        let per_fiber = grown.total() as f64 / LIVE_FIBERS as f64;
        let note = format!(
            "{LIVE_FIBERS} suspended fibers on {} KiB guarded stacks; per fiber = (RSS + page \
             tables) / {LIVE_FIBERS}; {}",
            DEFAULT_STACK_SIZE / 1024,
            grown.describe_growth()
        );
        h.record("ctx/idle_rss", "green", "bytes", per_fiber, Some(&note));
    }
    if rr_wanted {
        let handles: Vec<FiberRef> = fibers.iter().map(Fiber::handle).collect();
        round_robin(h, &handles, "green", false);
        round_robin(h, &handles, "green+hints", true);
    }
    for fiber in &fibers {
        stop(fiber);
    }
}

/// `ctx/switch_round_robin_10k`: root -> fiber i -> root, i cycling over
/// every fiber. With `hints`, driven the way a scheduler that knows the next
/// fibers does it (green-core's ready queue): the slot of the fiber 5 turns
/// ahead and the saved stack top of the one 2 turns ahead are prefetched.
fn round_robin(h: &Harness, fibers: &[FiberRef], subject: &str, hints: bool) {
    let note = if hints {
        "as green, with the prefetch hints 5 and 2 fibers ahead; ns per pair"
    } else {
        "root -> fiber i -> root, i cycling over 10 000 live fibers; ns per pair"
    };
    let mut next = 0;
    h.bench("ctx/switch_round_robin_10k", subject)
        .note(note)
        .iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                if hints {
                    fibers[(next + 5) % fibers.len()].prefetch_slot();
                    fibers[(next + 2) % fibers.len()].prefetch_context();
                }
                black_box(fibers[next].switch(0));
                next += 1;
                if next == fibers.len() {
                    next = 0;
                }
            }
            start.elapsed()
        });
}

fn create_run(h: &Harness) {
    if h.enabled("ctx/create_run_pooled") {
        let mut pool = StackPool::with_defaults();
        h.bench("ctx/create_run_pooled", "green").iter(|| {
            let fiber = Fiber::new(pool.get().expect("pooled stack"), |word| word + 1);
            let out = fiber.switch(1);
            pool.put(
                fiber
                    .take_stack()
                    .expect("finished fiber gives its stack back"),
            );
            out
        });
    }
    if h.enabled("ctx/create_run_fresh") {
        h.bench("ctx/create_run_fresh", "green")
            .note("Stack::new each time: mmap + mprotect, first-touch fault, munmap")
            .iter(|| {
                let fiber = Fiber::new(Stack::new(DEFAULT_STACK_SIZE).expect("stack"), |word| {
                    word + 1
                });
                fiber.switch(1)
            });
    }
}

fn million_unguarded(h: &Harness) {
    if !h.enabled("ctx/million_unguarded") {
        return;
    }
    if h.is_quick() {
        h.skip(
            "ctx/million_unguarded",
            "green",
            "not run with --quick (seconds per run)",
        );
        return;
    }
    let arena = Arena::new(MIN_STACK_SIZE).expect("arena");
    let root = FiberRef::current();
    let before = rss_bytes();
    let start = Instant::now();
    let mut fibers = Vec::with_capacity(MILLION);
    for _ in 0..MILLION {
        let fiber = echo_fiber(arena.stack().expect("arena stack"), root.clone());
        fiber.switch(0);
        fibers.push(fiber);
    }
    let secs = start.elapsed().as_secs_f64();
    let rss = rss_bytes().saturating_sub(before);
    let note = format!(
        "{MILLION} fibers created and suspended on {} KiB unguarded arena stacks ({} mappings); RSS +{:.2} GiB ({} B per fiber)",
        arena.stack_size() / 1024,
        arena.mappings(),
        rss as f64 / (1u64 << 30) as f64,
        rss / MILLION as u64,
    );
    h.record("ctx/million_unguarded", "green", "s", secs, Some(&note));
    for fiber in &fibers {
        stop(fiber);
    }
}

/// The fixed instruction-count scenario: `iters` round trips, untimed.
fn callgrind_scenario(iters: u64) {
    let fiber = echo_fiber(
        Stack::new(DEFAULT_STACK_SIZE).expect("stack"),
        FiberRef::current(),
    );
    for _ in 0..iters {
        black_box(fiber.switch(black_box(1)));
    }
    stop(&fiber);
}
