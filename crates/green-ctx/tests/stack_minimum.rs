//! `MIN_STACK_SIZE` is enough for a plain `panic!()` with a backtrace, the
//! deepest thing ordinary code does on a fiber: with `RUST_BACKTRACE=1` and
//! `=full`, on a guarded stack (no overflow report, no abort) and on an
//! unguarded arena stack (the stack below it is left intact).
//!
//! Each case runs in a child process (this binary again, with
//! `GREEN_CTX_MIN_CHILD` naming it), killed if it outlives a time limit.
//! The `measure` mode prints how deep the panic went, the figure documented
//! at `MIN_STACK_SIZE`.

mod support;

use std::os::unix::process::ExitStatusExt;
use std::process::Output;
use std::time::Duration;

use green_ctx::{Arena, Fiber, Stack, MIN_STACK_SIZE};

const CHILD_ENV: &str = "GREEN_CTX_MIN_CHILD";
const CHILD_LIMIT: Duration = Duration::from_secs(120);

/// Runs this binary's `child` test with `mode` and `RUST_BACKTRACE=backtrace`.
fn run_child(mode: &str, backtrace: &str) -> Output {
    support::run_child(CHILD_ENV, mode, backtrace, CHILD_LIMIT)
}
/// What the unguarded case fills its neighbour's stack with.
const PATTERN: u8 = 0xa5;

/// A fiber on `stack` that panics with a plain `panic!()`; returns whether
/// the panic came back through `take_panic`.
fn panic_on(stack: Stack) -> bool {
    let fiber = Fiber::new(stack, |_| panic!("plain panic on a small fiber stack"));
    fiber.set_name("panicky");
    fiber.switch(0);
    fiber.take_panic().is_some()
}

/// Fills `stack`'s usable bytes with `byte`.
fn fill(stack: &Stack, byte: u8) {
    // SAFETY: the usable region `[bottom, top)` is mapped read/write and no
    // fiber runs on the stack: we hold it, unused.
    unsafe { std::ptr::write_bytes(stack.bottom() as *mut u8, byte, stack.size()) };
}

/// Bytes of `stack` from its bottom that still hold `byte`.
fn untouched(stack: &Stack, byte: u8) -> usize {
    // SAFETY: as in `fill`; the fiber that ran on it has finished.
    let bytes = unsafe { std::slice::from_raw_parts(stack.bottom() as *const u8, stack.size()) };
    bytes.iter().take_while(|&&b| b == byte).count()
}

/// A copy of the `len` bytes at `bottom`: a stack that no fiber is running on.
fn snapshot(&(bottom, len): &(usize, usize)) -> Vec<u8> {
    // SAFETY: the caller names an arena stack's usable region, mapped for as
    // long as its arena lives; the fiber on it is suspended.
    unsafe { std::slice::from_raw_parts(bottom as *const u8, len) }.to_vec()
}

/// Not a test of its own: the body the child processes run.
#[test]
#[ignore = "child body"]
fn child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    match mode.as_str() {
        "guarded" => {
            let caught = panic_on(Stack::new(MIN_STACK_SIZE).unwrap());
            println!("CAUGHT {caught}");
        }
        "unguarded" => {
            let arena = Arena::new(MIN_STACK_SIZE).unwrap();
            // Arena stacks are carved upwards: `below` sits right under
            // `stack`, where an overflow of `stack` would write.
            let below = arena.stack().unwrap();
            let stack = arena.stack().unwrap();
            assert_eq!(below.top(), stack.bottom(), "adjacent arena stacks");
            fill(&below, PATTERN);
            let below_range = (below.bottom(), below.size());
            // A suspended fiber on the neighbour, to resume afterwards.
            let neighbour = Fiber::new(below, |w| {
                let back = green_ctx::FiberRef::root().switch(w + 1);
                back * 2
            });
            assert_eq!(neighbour.switch(1), 2);
            let before = snapshot(&below_range);
            let caught = panic_on(stack);
            let intact = snapshot(&below_range) == before;
            assert_eq!(neighbour.switch(21), 42, "the neighbour's frames survive");
            println!("CAUGHT {caught}");
            println!("NEIGHBOUR_INTACT {intact}");
        }
        "measure" => {
            // A roomy stack, filled, so the deepest byte the panic wrote shows.
            let stack = Stack::new(1 << 20).unwrap();
            fill(&stack, PATTERN);
            let fiber = Fiber::new(stack, |_| panic!("plain panic, measured"));
            fiber.switch(0);
            assert!(fiber.take_panic().is_some());
            let stack = fiber.take_stack().unwrap();
            println!("USED {}", stack.size() - untouched(&stack, PATTERN));
        }
        other => panic!("unknown child mode {other}"),
    }
}

fn check(mode: &str, backtrace: &str) -> String {
    let out = run_child(mode, backtrace);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{mode} with RUST_BACKTRACE={backtrace}: the child died (signal {:?}, status {:?})\n\
         stdout: {stdout}\nstderr: {stderr}",
        out.status.signal(),
        out.status.code(),
    );
    assert!(stdout.contains("CAUGHT true"), "stdout: {stdout}");
    assert!(!stderr.contains("overflowed its stack"), "stderr: {stderr}");
    assert!(
        stderr.contains("plain panic on a small fiber stack"),
        "the panic message was printed: {stderr}"
    );
    if backtrace != "0" {
        assert!(stderr.contains("stack backtrace"), "stderr: {stderr}");
    }
    stdout
}

#[test]
fn a_panic_with_a_backtrace_fits_a_minimum_guarded_stack() {
    check("guarded", "1");
    check("guarded", "full");
}

#[test]
fn a_panic_with_a_backtrace_fits_a_minimum_unguarded_stack() {
    for backtrace in ["1", "full"] {
        let stdout = check("unguarded", backtrace);
        assert!(
            stdout.contains("NEIGHBOUR_INTACT true"),
            "RUST_BACKTRACE={backtrace}: the panic wrote into the stack below: {stdout}"
        );
    }
}

#[test]
fn the_minimum_has_margin_over_the_measured_depth() {
    for backtrace in ["1", "full"] {
        let out = run_child("measure", backtrace);
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let used: usize = stdout
            .lines()
            .find_map(|l| l.split_once("USED ").map(|(_, n)| n))
            .expect("a USED line")
            .parse()
            .unwrap();
        println!("RUST_BACKTRACE={backtrace}: a panic used {used} bytes of stack");
        assert!(
            used + used / 2 <= MIN_STACK_SIZE,
            "RUST_BACKTRACE={backtrace}: a panic used {used} bytes; MIN_STACK_SIZE \
             ({MIN_STACK_SIZE}) should leave half as much again to spare"
        );
    }
}
