//! Stack overflow in a greenlet: the process aborts with a report naming the
//! greenlet and its spawn site instead of a bare SIGSEGV. Each case runs in a
//! child process: this binary run again with `GREEN_CORE_OVERFLOW_CHILD`
//! naming the scenario.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};

use green_core::{spawn, Builder};

const CHILD_ENV: &str = "GREEN_CORE_OVERFLOW_CHILD";
const SMALL_STACK: usize = 64 * 1024;

fn run_child(mode: &str) -> Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
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
fn child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    green_core::run(|| {
        let g = match mode.as_str() {
            "named" => Builder::new()
                .name("deep-diver")
                .stack_size(SMALL_STACK)
                .spawn(|| recurse(0))
                .unwrap(),
            "unnamed" => Builder::new()
                .stack_size(SMALL_STACK)
                .spawn(|| recurse(0))
                .unwrap(),
            other => panic!("unknown child mode {other}"),
        };
        let site = g.spawn_site();
        println!("SITE {}:{}", site.file(), site.line());
        // Another greenlet runs first: the overflow happens in a live hub.
        let other = spawn(|| 1);
        g.join();
        let _ = other.get();
        println!("UNREACHABLE: the overflow did not abort");
    });
}

fn stdout_value(out: &Output, key: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.split_once(&format!("{key} ")).map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no {key} line in stdout: {stdout}"))
        .to_string()
}

#[test]
fn overflow_aborts_with_a_report_naming_the_greenlet_and_its_spawn_site() {
    let out = run_child("named");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "stderr: {stderr}");
    let site = stdout_value(&out, "SITE");
    assert!(site.contains("stack_overflow.rs:"), "site: {site}");
    let report = format!("fiber 'deep-diver' (spawned at {site}) overflowed its stack");
    assert!(
        stderr.contains(&report),
        "expected: {report}\nstderr: {stderr}"
    );
    assert!(stderr.contains("(64 KiB)"), "stderr: {stderr}");
    assert_eq!(
        stderr.matches("overflowed its stack").count(),
        1,
        "stderr: {stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("UNREACHABLE"));
}

#[test]
fn overflow_of_an_unnamed_greenlet_names_its_spawn_site() {
    let out = run_child("unnamed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "stderr: {stderr}");
    let site = stdout_value(&out, "SITE");
    let report = format!("(spawned at {site}) overflowed its stack (64 KiB)");
    assert!(
        stderr.contains(&report),
        "expected: {report}\nstderr: {stderr}"
    );
}
