//! Stack sizes at the edges: sizes past `MAX_STACK_SIZE` are refused with a
//! clear error (no arithmetic overflow, no blame on `vm.max_map_count`),
//! pools map large stacks a few at a time, an `ENOMEM` far from the mapping
//! limit does not name it, and an arena gives the pages of a burst back.
//! The cases that change process limits or measure RSS run in a child
//! process (`GREEN_CTX_SIZES_CHILD`), killed if it outlives a time limit.

mod support;

use std::io;
use std::process::Output;
use std::time::Duration;

use green_ctx::{
    usable_stack_size, Arena, Stack, StackPool, StackPoolConfig, DEFAULT_STACK_SIZE,
    MAX_REFILL_BYTES, MAX_STACK_SIZE, MIN_STACK_SIZE,
};

const CHILD_ENV: &str = "GREEN_CTX_SIZES_CHILD";
const CHILD_LIMIT: Duration = Duration::from_secs(120);

/// Runs this binary's `child` test with `mode`.
fn run_child(mode: &str) -> Output {
    support::run_child(CHILD_ENV, mode, "0", CHILD_LIMIT)
}

/// The value printed after `key ` by the child.
fn value(out: &Output, key: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.split_once(&format!("{key} ")).map(|(_, v)| v.to_string()))
        .unwrap_or_else(|| {
            panic!(
                "no {key} line; stdout: {stdout}\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

/// Resident set size of this process, in bytes.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * green_ctx::page_size()
}

fn assert_too_large(err: io::Error, size: usize) {
    let message = err.to_string();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{size}: {message}");
    assert!(message.contains(&size.to_string()), "{message}");
    assert!(message.contains("1 GiB"), "names the maximum: {message}");
    assert!(
        message.contains("smaller stack"),
        "names the fix: {message}"
    );
    assert!(!message.contains("max_map_count"), "{message}");
}

/// Not a test of its own: the body the child processes run.
#[test]
#[ignore = "child body"]
fn child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    match mode.as_str() {
        "address_space" => {
            // Cap the address space a little above what is in use: a 512 MiB
            // stack cannot be mapped, with mappings to spare.
            let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
            let pages: usize = statm.split_whitespace().next().unwrap().parse().unwrap();
            let cap = (pages * green_ctx::page_size() + (128 << 20)) as libc::rlim_t;
            let limit = libc::rlimit {
                rlim_cur: cap,
                rlim_max: cap,
            };
            // SAFETY: setrlimit reads the struct we pass; lowering a limit of
            // this (child) process only makes later mappings fail.
            assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) }, 0);
            let err = Stack::new(512 << 20).expect_err("past RLIMIT_AS");
            println!("KIND {:?}", err.kind());
            println!("MESSAGE {err}");
        }
        "arena_burst" => {
            let arena = Arena::new(DEFAULT_STACK_SIZE).unwrap();
            let before = rss();
            let stacks: Vec<Stack> = (0..20_000)
                .map(|_| {
                    let stack = arena.stack().unwrap();
                    // Touch the top two pages, as a fiber's first frames do.
                    for offset in [1, green_ctx::page_size() + 1] {
                        // SAFETY: inside the stack's usable region, which no
                        // fiber uses.
                        unsafe { ((stack.top() - offset) as *mut u8).write_volatile(1) };
                    }
                    stack
                })
                .collect();
            let peak = rss();
            drop(stacks);
            let after = rss();
            println!("GROWTH {}", peak.saturating_sub(before));
            println!("KEPT {}", after.saturating_sub(before));
            println!("FREE {}", arena.free_stacks());
            // The freed stacks are reused, hot ones first.
            let again = arena.stack().unwrap();
            // SAFETY: as above.
            unsafe { ((again.top() - 1) as *mut u8).write_volatile(2) };
        }
        other => panic!("unknown child mode {other}"),
    }
}

#[test]
fn sizes_past_the_maximum_are_refused_with_a_clear_error() {
    for size in [usize::MAX, 1 << 62, 1 << 43, MAX_STACK_SIZE + 1] {
        assert_too_large(usable_stack_size(size).unwrap_err(), size);
        assert_too_large(Stack::new(size).unwrap_err(), size);
        assert_too_large(Stack::new_batch(size, 16).unwrap_err(), size);
        assert_too_large(Arena::new(size).unwrap_err(), size);
        let mut pool = StackPool::new(StackPoolConfig {
            stack_size: size,
            ..StackPoolConfig::default()
        });
        assert_too_large(pool.get().unwrap_err(), size);
        let mut pool = StackPool::new(StackPoolConfig {
            stack_size: size,
            guarded: false,
            ..StackPoolConfig::default()
        });
        assert_too_large(pool.get().unwrap_err(), size);
    }
    assert_eq!(usable_stack_size(MAX_STACK_SIZE).unwrap(), MAX_STACK_SIZE);
    assert_eq!(usable_stack_size(0).unwrap(), MIN_STACK_SIZE);
}

#[test]
fn a_batch_too_large_for_the_address_space_is_an_error_not_a_panic() {
    let err = Stack::new_batch(MAX_STACK_SIZE, usize::MAX / 1024).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
}

#[test]
fn the_largest_stack_is_mapped_and_usable() {
    let stack = Stack::new(MAX_STACK_SIZE).unwrap();
    assert_eq!(stack.size(), MAX_STACK_SIZE);
    let fiber = green_ctx::Fiber::new(stack, |w| w + 1);
    assert_eq!(fiber.switch(1), 2);
}

#[test]
fn pool_refills_are_sized_by_bytes() {
    let stride = |size: usize| size + green_ctx::page_size();
    for (size, guarded) in [
        (DEFAULT_STACK_SIZE, true),
        (1 << 20, true),
        (64 << 20, true),
        (MAX_STACK_SIZE, true),
        (1 << 20, false),
        (64 << 20, false),
    ] {
        let mut pool = StackPool::new(StackPoolConfig {
            stack_size: size,
            guarded,
            ..StackPoolConfig::default()
        });
        let stack = pool.get().unwrap();
        assert_eq!(stack.size(), size);
        let made = pool.cached() + 1;
        assert!(
            made == 1 || made * stride(size) <= MAX_REFILL_BYTES,
            "{size}: {made} stacks in one refill"
        );
        let expected = (MAX_REFILL_BYTES / stride(size)).clamp(1, 16);
        assert_eq!(made, expected, "{size} guarded={guarded}");
    }
    // The default refill is unchanged: sixteen at once.
    let mut pool = StackPool::with_defaults();
    drop(pool.get().unwrap());
    assert_eq!(pool.cached(), 15);
}

#[test]
fn pools_trim_to_a_count() {
    let mut pool = StackPool::with_defaults();
    let stack = pool.get().unwrap();
    pool.put(stack);
    assert_eq!(pool.cached(), 16);
    pool.trim_to(3);
    assert_eq!(pool.cached(), 3);
    pool.trim_to(10);
    assert_eq!(pool.cached(), 3);
}

#[test]
fn out_of_address_space_does_not_blame_the_map_count() {
    let out = run_child("address_space");
    assert!(out.status.success(), "{out:?}");
    let message = value(&out, "MESSAGE");
    assert_eq!(value(&out, "KIND"), "OutOfMemory", "{message}");
    assert!(
        !message.contains("max_map_count"),
        "mappings are far from the limit: {message}"
    );
    assert!(message.contains("address space"), "{message}");
    assert!(message.contains("smaller"), "names a fix: {message}");
}

#[test]
fn an_arena_gives_back_the_pages_of_a_burst() {
    let out = run_child("arena_burst");
    assert!(out.status.success(), "{out:?}");
    let growth: usize = value(&out, "GROWTH").parse().unwrap();
    let kept: usize = value(&out, "KEPT").parse().unwrap();
    let free: usize = value(&out, "FREE").parse().unwrap();
    println!("arena burst: RSS grew {growth} bytes, {kept} kept after freeing");
    assert_eq!(free, 20_000);
    assert!(growth > 100 << 20, "the burst touched its stacks: {growth}");
    // The hot free stacks keep their two pages; the rest are released.
    let hot = 256 * 2 * green_ctx::page_size();
    assert!(
        kept <= hot + (8 << 20),
        "RSS stayed {kept} bytes above the start after the burst was freed"
    );
}
