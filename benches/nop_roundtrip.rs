//! green-loop's op path measured with `IORING_OP_NOP`, beside the io-uring
//! crate driven by hand in the same run (issue 3's table).
//!
//! | bench | what one operation is |
//! | --- | --- |
//! | `loop/nop_batch1` | one Nop submitted, the loop iterates until its handler has run |
//! | `loop/nop_batch32` | 32 Nops submitted, then iterations until all 32 handlers ran; ns per Nop |
//!
//! Subjects: `green` (`Loop::submit_nop` + `run_once`) and `io-uring-raw`
//! (a ring built by hand, push, `submit_and_wait`, drain the CQ: the floor any
//! loop on io_uring pays). The goal is green within 100 ns of raw per op.
//!
//! The raw ring asks for the setup flags green's ring negotiates
//! (crates/green-loop/src/backend/uring.rs), degrading the same way on
//! `EINVAL`: `SINGLE_ISSUER | DEFER_TASKRUN | SUBMIT_ALL`, then
//! `COOP_TASKRUN | SUBMIT_ALL`, then none. A floor built on plainer flags
//! than green's would be slower than green could be, and not a floor; the
//! note names the flags the kernel accepted.
//!
//! With `GREEN_BENCH_CALLGRIND=N` the binary only runs N `loop/nop_batch1`
//! round trips, untimed, to count instructions per op under callgrind:
//! green's by default, the raw ring's with `GREEN_BENCH_CALLGRIND_SUBJECT=raw`;
//! `GREEN_BENCH_CALLGRIND_BATCH=32` makes them `loop/nop_batch32`'s batches.

#[path = "support/harness.rs"]
mod harness;

use std::cell::Cell;
use std::time::Instant;

use green_loop::{BackendKind, Completion, Loop};
use harness::Harness;
use io_uring::{opcode, IoUring};

thread_local! {
    /// Completions seen by [`on_nop`] on this thread.
    static DONE: Cell<u64> = const { Cell::new(0) };
}

fn on_nop(_: &Loop, _: Completion) {
    DONE.with(|d| d.set(d.get() + 1));
}

fn main() {
    if let Some(iters) = harness::callgrind_iterations() {
        callgrind_scenario(iters);
        return;
    }
    let h = Harness::from_env();
    for batch in [1u32, 32] {
        let name = format!("loop/nop_batch{batch}");
        if !h.enabled(&name) {
            continue;
        }
        green(&h, &name, batch);
        raw(&h, &name, batch);
    }
}

fn green(h: &Harness, name: &str, batch: u32) {
    let lp = Loop::new().expect("loop");
    let backend = lp.backend();
    let before = lp.stats();
    let batches = Cell::new(0u64);
    h.bench(name, "green")
        .ops_per_iter(u64::from(batch))
        .iter_custom_noted(
            |iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    green_round_trip(&lp, batch);
                }
                batches.set(batches.get() + iters);
                start.elapsed()
            },
            || {
                let enters = lp.stats().enter_calls - before.enter_calls;
                let mut note = format!(
                    "{:.2} io_uring_enter calls per batch of {batch}",
                    enters as f64 / batches.get().max(1) as f64
                );
                if backend != BackendKind::IoUring {
                    note.push_str("; epoll fallback backend: io_uring unavailable here");
                }
                Some(note)
            },
        );
}

/// A ring of `entries` with the best setup flags this kernel accepts, tried
/// in green's order (see the module docs), and the names of those flags.
fn raw_ring(entries: u32) -> std::io::Result<(IoUring, &'static str)> {
    const LEVELS: [&str; 3] = [
        "SINGLE_ISSUER|DEFER_TASKRUN|SUBMIT_ALL",
        "COOP_TASKRUN|SUBMIT_ALL",
        "no setup flags",
    ];
    let mut last = None;
    for (level, flags) in LEVELS.iter().enumerate() {
        let mut b = IoUring::builder();
        match level {
            0 => {
                b.setup_single_issuer()
                    .setup_defer_taskrun()
                    .setup_submit_all();
            }
            1 => {
                b.setup_coop_taskrun().setup_submit_all();
            }
            _ => {}
        }
        match b.build(entries) {
            Ok(ring) => return Ok((ring, flags)),
            // EINVAL: this kernel does not know a flag; try plainer, as green does.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL)))
}

fn raw(h: &Harness, name: &str, batch: u32) {
    let (mut ring, flags) = match raw_ring(256) {
        Ok(ring) => ring,
        Err(e) => {
            h.skip(name, "io-uring-raw", &format!("io_uring unavailable ({e})"));
            return;
        }
    };
    let nop = opcode::Nop::new().build().user_data(7);
    h.bench(name, "io-uring-raw")
        .ops_per_iter(u64::from(batch))
        .note(format!(
            "ring setup flags: {flags} (green's negotiation order); submit_and_wait({batch}) per batch"
        ))
        .iter(|| raw_round_trip(&mut ring, &nop, batch));
}

/// One batch through the raw ring: push, `submit_and_wait`, drain the CQ.
fn raw_round_trip(ring: &mut IoUring, nop: &io_uring::squeue::Entry, batch: u32) {
    for _ in 0..batch {
        // SAFETY: a Nop points at no memory, so nothing must outlive it.
        unsafe {
            ring.submission()
                .push(nop)
                .expect("SQ has room for a batch")
        };
    }
    ring.submit_and_wait(batch as usize)
        .expect("submit_and_wait");
    let mut seen = 0;
    while seen < batch {
        seen += ring.completion().count() as u32;
        if seen < batch {
            ring.submit_and_wait(1).expect("wait");
        }
    }
}

/// One batch through green: submit, then iterate until every handler ran.
fn green_round_trip(lp: &Loop, batch: u32) {
    let target = DONE.with(Cell::get) + u64::from(batch);
    for _ in 0..batch {
        lp.submit_nop(on_nop, 0).expect("submit nop");
    }
    while DONE.with(Cell::get) < target {
        lp.run_once(true).expect("run_once");
    }
}

/// N round trips of one subject, untimed (see the module docs): batches of
/// one Nop, or of `GREEN_BENCH_CALLGRIND_BATCH` (`loop/nop_batch32`'s 32).
fn callgrind_scenario(iters: u64) {
    let subject = std::env::var("GREEN_BENCH_CALLGRIND_SUBJECT").unwrap_or_default();
    let batch: u32 = match std::env::var("GREEN_BENCH_CALLGRIND_BATCH") {
        Ok(v) => v
            .parse()
            .ok()
            .filter(|&b| (1..=256).contains(&b))
            .unwrap_or_else(|| {
                panic!("GREEN_BENCH_CALLGRIND_BATCH={v:?}: expected 1 to 256 (the ring's size)")
            }),
        Err(_) => 1,
    };
    match subject.as_str() {
        "" | "green" => {
            let lp = Loop::new().expect("loop");
            for _ in 0..iters {
                green_round_trip(&lp, batch);
            }
        }
        "raw" | "io-uring-raw" => {
            let (mut ring, _) = raw_ring(256).expect("io_uring ring");
            let nop = opcode::Nop::new().build().user_data(7);
            for _ in 0..iters {
                raw_round_trip(&mut ring, &nop, batch);
            }
        }
        other => {
            panic!("GREEN_BENCH_CALLGRIND_SUBJECT={other:?}: expected green or raw (io-uring-raw)")
        }
    }
}
