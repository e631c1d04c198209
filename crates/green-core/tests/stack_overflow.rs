//! Stack overflow in a greenlet: the process aborts with a report naming the
//! greenlet and its spawn site instead of a bare SIGSEGV. Each case runs in a
//! child process: this binary run again with `GREEN_CORE_OVERFLOW_CHILD`
//! naming the scenario.

#[allow(unreachable_pub)] // The shared fixtures are `pub` for every test binary.
mod support;

use std::os::unix::process::ExitStatusExt;
use std::process::Output;

use green_core::{spawn, Builder};
use support::{stdout_value, CHILD_LIMIT};

const CHILD_ENV: &str = "GREEN_CORE_OVERFLOW_CHILD";
const SMALL_STACK: usize = 64 * 1024;

/// Runs the child scenario `mode`, which must abort; returns its output, its
/// stderr and the spawn site it printed.
fn run_child(mode: &str) -> (Output, String, String) {
    let out = support::run_child(CHILD_ENV, mode, CHILD_LIMIT);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "stderr: {stderr}");
    let site = stdout_value(&out, "SITE");
    (out, stderr, site)
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

#[test]
fn overflow_aborts_with_a_report_naming_the_greenlet_and_its_spawn_site() {
    let (out, stderr, site) = run_child("named");
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
fn overflow_of_an_unnamed_greenlet_names_it_by_ident_and_spawn_site() {
    let (_, stderr, site) = run_child("unnamed");
    // Its default name, as `Greenlet::name` gives it.
    let report = format!("fiber 'Greenlet-1' (spawned at {site}) overflowed its stack (64 KiB)");
    assert!(
        stderr.contains(&report),
        "expected: {report}\nstderr: {stderr}"
    );
}
