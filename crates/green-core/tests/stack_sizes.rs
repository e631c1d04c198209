//! `Builder::stack_size` at the edges: absurd sizes are refused with a clear
//! error; many distinct sizes share a few pools whose idle stacks are
//! trimmed; every greenlet gets at least the bytes it asked for; a panic
//! with a backtrace fits the smallest stack; and a burst of unguarded
//! greenlets gives its memory back. Cases that may abort, set
//! `RUST_BACKTRACE` or measure RSS run in a child process
//! (`GREEN_CORE_STACKS_CHILD`), killed if it outlives a time limit.

#[allow(unreachable_pub)] // The shared fixtures are `pub` for every test binary.
mod support;

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::Output;
use std::time::Duration;

use green_core::{sleep, yield_now, Builder};
use green_ctx::{MAX_STACK_SIZE, MIN_STACK_SIZE};

const CHILD_ENV: &str = "GREEN_CORE_STACKS_CHILD";
const CHILD_LIMIT: Duration = Duration::from_secs(120);

/// Runs this binary's `child` test with `mode` and `RUST_BACKTRACE=backtrace`.
fn run_child(mode: &str, backtrace: &str) -> Output {
    support::run_child_with_backtrace(CHILD_ENV, mode, backtrace, CHILD_LIMIT)
}

/// Checks that the child exited cleanly and returns its stdout.
fn succeeded(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what}: the child died (signal {:?}, status {:?})\nstdout: {stdout}\nstderr: {}",
        out.status.signal(),
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn value(stdout: &str, key: &str) -> usize {
    stdout
        .lines()
        .find_map(|l| l.split_once(&format!("{key} ")).map(|(_, v)| v.trim()))
        .unwrap_or_else(|| panic!("no {key} line in {stdout}"))
        .parse()
        .unwrap()
}

fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * green_ctx::page_size()
}

fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count()
}

/// Recurses until the stack in use below `start` (an address in the
/// caller's frame) reaches `bytes`, in frames of a little over 1 KiB.
#[inline(never)]
fn eat_stack(start: usize, bytes: usize) -> usize {
    let frame = std::hint::black_box([bytes as u8; 1024]);
    let here = frame.as_ptr() as usize;
    if start - here >= bytes {
        return frame[0] as usize;
    }
    eat_stack(start, bytes) + frame[bytes % 1024] as usize
}

/// Not a test of its own: the body the child processes run.
#[test]
#[ignore = "child body"]
fn child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    green_core::run(|| match mode.as_str() {
        "panic_guarded" | "panic_unguarded" => {
            let g = Builder::new()
                .name("small")
                .stack_size(1)
                .unguarded(mode == "panic_unguarded")
                .spawn(|| -> u32 { panic!("plain panic on a minimum greenlet stack") })
                .unwrap();
            // A neighbour that is suspended across the panic.
            let neighbour = Builder::new()
                .stack_size(1)
                .unguarded(mode == "panic_unguarded")
                .spawn(|| {
                    yield_now();
                    yield_now();
                    7u32
                })
                .unwrap();
            g.join();
            let failed = g.get().is_err();
            println!("FAILED_AS_EXPECTED {}", u8::from(failed));
            println!("NEIGHBOUR {}", neighbour.get().unwrap());
        }
        "usable" => {
            for size in [
                MIN_STACK_SIZE,
                40_000,
                100_000,
                (256 << 10) + 1,
                (1 << 20) + 12_345,
            ] {
                for unguarded in [false, true] {
                    let g = Builder::new()
                        .stack_size(size)
                        .unguarded(unguarded)
                        .spawn(move || {
                            // All but 12 KiB: room for the greenlet's own
                            // frames above this one.
                            let start = std::hint::black_box(0u8);
                            eat_stack(&start as *const u8 as usize, size - 12 * 1024)
                        })
                        .unwrap();
                    g.get().unwrap();
                    println!("OK {size} {unguarded}");
                }
            }
            println!("ALL 1");
        }
        "unguarded_burst" => {
            let before = rss();
            let burst: Vec<_> = (0..30_000)
                .map(|_| {
                    Builder::new()
                        .unguarded(true)
                        .spawn(|| sleep(Duration::from_millis(1)))
                        .unwrap()
                })
                .collect();
            let peak = rss();
            for g in &burst {
                g.join();
            }
            drop(burst);
            yield_now();
            let after = rss();
            println!("GROWTH {}", peak.saturating_sub(before));
            println!("KEPT {}", after.saturating_sub(before));
        }
        other => panic!("unknown child mode {other}"),
    });
}

#[test]
fn absurd_stack_sizes_are_an_error_naming_the_limit() {
    green_core::run(|| {
        for size in [usize::MAX, 1 << 62, 1 << 43, 1 << 40, MAX_STACK_SIZE + 1] {
            for unguarded in [false, true] {
                let err = Builder::new()
                    .stack_size(size)
                    .unguarded(unguarded)
                    .spawn(|| ())
                    .expect_err("past the maximum");
                let message = err.to_string();
                assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{message}");
                assert!(message.contains("1 GiB"), "{message}");
                assert!(message.contains("smaller stack"), "{message}");
                assert!(!message.contains("max_map_count"), "{message}");
            }
        }
        // The maximum itself is fine, and is not kept once given back.
        let before = mappings();
        let g = Builder::new()
            .stack_size(MAX_STACK_SIZE)
            .spawn(|| 5)
            .unwrap();
        assert_eq!(g.get().unwrap(), 5);
        yield_now();
        assert!(mappings() <= before + 1, "the 1 GiB stack was unmapped");
    });
}

#[test]
fn thousands_of_distinct_sizes_share_a_few_trimmed_pools() {
    green_core::run(|| {
        // Warm the default pool and the hub.
        spawn_and_join(None);
        let before = mappings();
        // One live greenlet at a time, each with its own size: once a pool
        // per size, mapping 16 stacks each, this hit vm.max_map_count.
        for i in 0..3_000 {
            spawn_and_join(Some(MIN_STACK_SIZE + i * 4096));
        }
        let after = mappings();
        println!("mappings: {before} before, {after} after 3000 sizes");
        // At most 64 MiB of idle stacks (2 mappings each, 32 KiB at least),
        // plus one refill batch.
        assert!(
            after <= before + 2 * 2048 + 64,
            "{after} mappings (from {before})"
        );
    });
}

fn spawn_and_join(size: Option<usize>) {
    let mut builder = Builder::new();
    if let Some(size) = size {
        builder = builder.stack_size(size);
    }
    let g = builder.spawn(|| 1).expect("a stack");
    assert_eq!(g.get().unwrap(), 1);
}

#[test]
fn a_greenlet_gets_at_least_the_stack_it_asked_for() {
    let out = run_child("usable", "0");
    let stdout = succeeded(&out, "usable");
    assert_eq!(value(&stdout, "ALL"), 1, "{stdout}");
}

#[test]
fn a_panic_with_a_backtrace_fits_the_smallest_greenlet_stack() {
    for mode in ["panic_guarded", "panic_unguarded"] {
        for backtrace in ["1", "full"] {
            let what = format!("{mode} RUST_BACKTRACE={backtrace}");
            let out = run_child(mode, backtrace);
            let stdout = succeeded(&out, &what);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(value(&stdout, "FAILED_AS_EXPECTED"), 1, "{what}");
            assert_eq!(value(&stdout, "NEIGHBOUR"), 7, "{what}: {stdout}");
            assert!(stderr.contains("stack backtrace"), "{what}: {stderr}");
            assert!(!stderr.contains("overflowed its stack"), "{what}: {stderr}");
        }
    }
}

#[test]
fn a_burst_of_unguarded_greenlets_gives_its_memory_back() {
    let out = run_child("unguarded_burst", "0");
    let stdout = succeeded(&out, "unguarded_burst");
    let growth = value(&stdout, "GROWTH");
    let kept = value(&stdout, "KEPT");
    println!("30k unguarded greenlets: RSS grew {growth} bytes, {kept} kept afterwards");
    assert!(growth > 60 << 20, "the burst touched its stacks: {growth}");
    assert!(
        kept <= 32 << 20,
        "RSS stayed {kept} bytes above the start after the burst ended"
    );
}
