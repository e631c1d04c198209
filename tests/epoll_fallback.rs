//! Where io_uring is refused (a seccomp profile), the same green program runs
//! on the epoll fallback: the hub's lazily made loop falls back by itself.
//! Runs in a child process, which installs the filter first.

use std::process::Command;
use std::time::Duration;

#[path = "../crates/green-loop/tests/support/seccomp.rs"]
mod seccomp;

const CHILD_ENV: &str = "GREEN_FALLBACK_CHILD";

/// Not a test of its own: the body the child process runs.
#[test]
#[ignore = "child body"]
fn child() {
    if std::env::var(CHILD_ENV).is_err() {
        return;
    }
    seccomp::deny_io_uring_setup(libc::EPERM);
    let sum = green_core::run(|| {
        let gs: Vec<_> = (0..10u64)
            .map(|i| {
                green_core::spawn(move || {
                    green_core::sleep(Duration::from_millis(2));
                    i
                })
            })
            .collect();
        let slow = green_core::Timeout::run(Duration::from_millis(5), || {
            green_core::sleep(Duration::from_secs(60))
        });
        assert!(slow.is_err());
        gs.iter().map(|g| g.get().unwrap()).sum::<u64>()
    });
    println!("SUM={sum}");
}

#[test]
fn greenlets_run_on_the_epoll_fallback_when_io_uring_is_refused() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child",
            "--nocapture",
            "--test-threads=1",
            "--include-ignored",
        ])
        .env(CHILD_ENV, "1")
        .env_remove("GREEN_LOOP_BACKEND")
        .output()
        .expect("spawn the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("SUM=45"), "{stdout}");
}
