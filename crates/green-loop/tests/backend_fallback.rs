//! When io_uring cannot be set up, `Loop::new` falls back to epoll and the
//! explicit io_uring choice fails with an error naming the cause and the fix;
//! where it can, `Loop::new` runs on it (so the default test runs really
//! exercise io_uring, and only the epoll pass runs on epoll).
//!
//! The kernel here has io_uring, so each fallback case runs in a child
//! process (this test binary again, with `GREEN_LOOP_CHILD` set) that first
//! installs a seccomp filter making `io_uring_setup` fail, the way a
//! container runtime's default profile does.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use green_loop::{BackendChoice, BackendKind, Loop, BACKEND_ENV};

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

/// Whether this process may set up an io_uring, asked of the kernel directly
/// (a plain ring, none of green-loop's setup): `Err` says why not.
fn kernel_allows_io_uring() -> Result<(), String> {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "absent".to_string());
    // 2 refuses every process; 1 only those outside `io_uring_group`, which
    // the setup call below finds out.
    if disabled == "2" {
        return Err("kernel.io_uring_disabled is 2 (io_uring is off for every process)".into());
    }
    io_uring::IoUring::new(8)
        .map(drop)
        .map_err(|e| format!("io_uring_setup failed: {e} (kernel.io_uring_disabled is {disabled})"))
}

#[test]
fn the_default_loop_runs_on_io_uring_where_the_kernel_allows_it() {
    // xtask's epoll pass sets the variable; the other runs leave it unset.
    let wanted = std::env::var(BACKEND_ENV).unwrap_or_default();
    let lp = Loop::new();
    if wanted == "epoll" {
        let lp = lp.expect("an epoll loop");
        assert_eq!(lp.backend(), BackendKind::Epoll, "{BACKEND_ENV}=epoll");
        assert_eq!(lp.features().backend, BackendKind::Epoll);
        return;
    }
    match kernel_allows_io_uring() {
        Ok(()) => {
            let lp = lp.expect("a loop where the kernel allows io_uring");
            if lp.backend() != BackendKind::IoUring {
                let why = Loop::builder()
                    .backend(BackendChoice::IoUring)
                    .build()
                    .err()
                    .map_or_else(|| "no error when asked again".into(), |e| e.to_string());
                panic!(
                    "the kernel allows io_uring ({BACKEND_ENV}={wanted:?}), yet the default \
                     loop runs on {:?}: green-loop's ring setup fails where a plain ring \
                     works: {why}",
                    lp.backend()
                );
            }
            assert_eq!(lp.features().backend, BackendKind::IoUring);
        }
        Err(reason) => {
            // The automatic choice still gives a working loop.
            if wanted.is_empty() || wanted == "auto" {
                let lp = lp.expect("the automatic choice falls back to epoll");
                assert_eq!(lp.backend(), BackendKind::Epoll);
            }
            println!("skipped: {reason}");
        }
    }
}
