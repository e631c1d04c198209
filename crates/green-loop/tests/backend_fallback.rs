//! When io_uring cannot be set up, `Loop::new` falls back to epoll and the
//! explicit io_uring choice fails with an error naming the cause and the fix.
//!
//! The kernel here has io_uring, so each case runs in a child process (this
//! test binary again, with `GREEN_LOOP_CHILD` set) that first installs a
//! seccomp filter making `io_uring_setup` fail, the way a container runtime's
//! default profile does.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use green_loop::{BackendChoice, BackendKind, Loop};

#[path = "support/seccomp.rs"]
mod seccomp;
use seccomp::deny_io_uring_setup;

const CHILD_ENV: &str = "GREEN_LOOP_CHILD";

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
        .env_remove("GREEN_LOOP_BACKEND")
        .output()
        .expect("spawn the child test process")
}

/// Not a test of its own: the body the child processes run.
#[test]
#[ignore = "child body"]
fn child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let errno = if mode.ends_with("enosys") {
        libc::ENOSYS
    } else {
        libc::EPERM
    };
    deny_io_uring_setup(errno);
    if mode.starts_with("auto") {
        let lp = Loop::new().expect("the automatic choice falls back");
        println!("BACKEND={:?}", lp.backend());
        // The fallback works: a timer fires.
        let start = Instant::now();
        lp.add_timer_closure(start + Duration::from_millis(5), |_| {
            println!("TIMER_FIRED")
        });
        lp.run().unwrap();
    } else {
        match Loop::builder().backend(BackendChoice::IoUring).build() {
            Ok(_) => println!("UNEXPECTED_OK"),
            Err(e) => println!("ERROR={e}"),
        }
    }
}

fn stdout_of(out: &Output) -> String {
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn seccomp_denial_falls_back_to_epoll_automatically() {
    let stdout = stdout_of(&run_child("auto"));
    assert!(
        stdout.contains(&format!("BACKEND={:?}", BackendKind::Epoll)),
        "{stdout}"
    );
    assert!(stdout.contains("TIMER_FIRED"), "{stdout}");
}

#[test]
fn demanding_io_uring_under_seccomp_names_the_cause_and_the_fix() {
    let stdout = stdout_of(&run_child("explicit"));
    let line = stdout
        .lines()
        .find(|l| l.contains("ERROR="))
        .expect("an error");
    assert!(line.contains("seccomp"), "{line}");
    assert!(line.contains("GREEN_LOOP_BACKEND=epoll"), "{line}");
}

#[test]
fn a_kernel_without_io_uring_is_named_as_such() {
    let stdout = stdout_of(&run_child("explicit-enosys"));
    let line = stdout
        .lines()
        .find(|l| l.contains("ERROR="))
        .expect("an error");
    assert!(line.contains("ENOSYS"), "{line}");
    let stdout = stdout_of(&run_child("auto-enosys"));
    assert!(
        stdout.contains(&format!("BACKEND={:?}", BackendKind::Epoll)),
        "{stdout}"
    );
}
