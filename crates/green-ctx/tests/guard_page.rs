//! Stack overflow and mapping limits, each checked in a child process: the
//! child is this test binary run again with `GREEN_CTX_CHILD` naming what to
//! do, and the parent checks how it died and what it printed.

use std::process::{Command, Output};

use green_ctx::{Fiber, Stack};

const CHILD_ENV: &str = "GREEN_CTX_CHILD";

/// Runs this binary's `child` test in a new process with `mode`.
fn run_child(mode: &str) -> Output {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child",
            "--nocapture",
            "--test-threads=1",
            "--include-ignored",
        ])
        .env(CHILD_ENV, mode)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("spawn the child test process")
}

#[inline(never)]
fn recurse(depth: usize) -> usize {
    let frame = std::hint::black_box([depth as u8; 256]);
    if depth == usize::MAX {
        return 0;
    }
    recurse(depth + 1) + frame[depth % 256] as usize
}

/// Not a test of its own: the body the child processes run.
#[test]
#[ignore = "child body"]
fn child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    match mode.as_str() {
        "fiber_overflow" => {
            let fiber = Fiber::new(Stack::new(64 * 1024).unwrap(), |_| recurse(0));
            fiber.set_name("deep-recursion");
            fiber.switch(0);
            unreachable!("the overflow aborts the process");
        }
        "fiber_overflow_site" => {
            let fiber = Fiber::new(Stack::new(64 * 1024).unwrap(), |_| recurse(0));
            fiber.set_name("with-site");
            fiber.set_spawn_site(std::panic::Location::caller());
            fiber.switch(0);
            unreachable!("the overflow aborts the process");
        }
        "thread_overflow" => {
            // Install our handler first, then overflow a plain std thread: the
            // fault is not on a fiber's guard page, so std's report must win.
            let fiber = Fiber::new(Stack::new(64 * 1024).unwrap(), |w| w);
            fiber.switch(0);
            let t = std::thread::Builder::new()
                .name("plain-thread".into())
                .stack_size(128 * 1024)
                .spawn(|| recurse(0))
                .unwrap();
            let _ = t.join();
            unreachable!("the overflow aborts the process");
        }
        "map_limit" => {
            let mut stacks = Vec::new();
            loop {
                match Stack::new(16 * 1024) {
                    Ok(s) => stacks.push(s),
                    Err(e) => {
                        println!("FAILED_AFTER {} stacks: {e}", stacks.len());
                        return;
                    }
                }
                assert!(stacks.len() < 1_000_000, "no limit reached");
            }
        }
        other => panic!("unknown child mode {other}"),
    }
}

fn signal_of(out: &Output) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    out.status.signal()
}

#[test]
fn fiber_overflow_is_reported_by_name_and_aborts() {
    let out = run_child("fiber_overflow");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(signal_of(&out), Some(libc::SIGABRT), "stderr: {stderr}");
    assert!(
        stderr.contains("fiber 'deep-recursion' overflowed its stack (64 KiB)"),
        "stderr: {stderr}"
    );
}

#[test]
fn overflow_report_names_the_spawn_site() {
    let out = run_child("fiber_overflow_site");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(signal_of(&out), Some(libc::SIGABRT), "stderr: {stderr}");
    assert!(
        stderr.contains("fiber 'with-site' (spawned at ") && stderr.contains("guard_page.rs:"),
        "stderr: {stderr}"
    );
    assert!(
        stderr.contains("overflowed its stack (64 KiB)"),
        "stderr: {stderr}"
    );
}

#[test]
fn std_thread_overflow_report_still_works() {
    let out = run_child("thread_overflow");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(signal_of(&out), Some(libc::SIGABRT), "stderr: {stderr}");
    assert!(
        stderr.contains("thread 'plain-thread'") && stderr.contains("overflowed its stack"),
        "stderr: {stderr}"
    );
    assert!(!stderr.contains("fiber '"), "stderr: {stderr}");
}

#[test]
fn hitting_max_map_count_names_the_sysctl() {
    let limit = green_ctx::read_max_map_count().unwrap_or(0);
    if limit > 100_000 {
        println!("skipped: vm.max_map_count is {limit}; the test needs the default-sized limit");
        return;
    }
    let out = run_child("map_limit");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.contains("FAILED_AFTER"))
        .expect("the child hit a limit");
    assert!(line.contains("vm.max_map_count"), "{line}");
    assert!(
        line.contains(&limit.to_string()),
        "names the current value: {line}"
    );
    assert!(line.contains("sysctl"), "names the fix: {line}");
}
