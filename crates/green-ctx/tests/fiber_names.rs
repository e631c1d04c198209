//! Messages name a fiber by its display name: the name set, else the
//! numbered name (`Greenlet-3` after `set_number_prefix("Greenlet")` and
//! `set_number(3)`). The leak warning is checked in a child process
//! (`GREEN_CTX_NAMES_CHILD`), whose stderr the parent reads.

use std::panic::{self, AssertUnwindSafe};
use std::process::Command;

use green_ctx::{set_number_prefix, Fiber, FiberRef, ForcedUnwind, Stack};

const CHILD_ENV: &str = "GREEN_CTX_NAMES_CHILD";

/// A fiber that swallows its forced unwind and suspends again: dropping it
/// leaks it with a warning.
fn stubborn() -> Fiber {
    Fiber::new(Stack::new(64 * 1024).unwrap(), |_| {
        let root = FiberRef::root();
        let caught = panic::catch_unwind(AssertUnwindSafe(|| root.switch(0)));
        assert!(caught.is_err_and(|p| p.is::<ForcedUnwind>()));
        root.switch(0);
        0
    })
}

/// Not a test of its own: the body the child processes run.
#[test]
#[ignore = "child body"]
fn child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let fiber = stubborn();
    match mode.as_str() {
        "named" => fiber.set_name("stubborn-one"),
        "numbered" => {
            set_number_prefix("Greenlet");
            fiber.set_number(3);
        }
        "anonymous" => {}
        other => panic!("unknown child mode {other}"),
    }
    fiber.switch(0);
    drop(fiber);
    println!("DONE");
}

fn leak_warning(mode: &str) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
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
        .expect("spawn the child test process");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{mode}: {out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("DONE"));
    stderr
        .lines()
        .find(|l| l.contains("caught its ForcedUnwind"))
        .unwrap_or_else(|| panic!("{mode}: no leak warning in {stderr}"))
        .to_string()
}

#[test]
fn the_leak_warning_names_the_fiber_by_its_name() {
    let line = leak_warning("named");
    assert!(line.contains("fiber 'stubborn-one'"), "{line}");
}

#[test]
fn the_leak_warning_names_an_unnamed_fiber_by_its_number() {
    let line = leak_warning("numbered");
    assert!(line.contains("fiber 'Greenlet-3'"), "{line}");
}

#[test]
fn the_leak_warning_says_when_a_fiber_has_no_name() {
    let line = leak_warning("anonymous");
    assert!(line.contains("fiber '<unnamed>'"), "{line}");
}
