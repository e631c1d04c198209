//! Fixtures shared by green-ctx's integration tests (`mod support;`).
#![allow(dead_code)] // Each test binary uses a different subset.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs this binary's `child` test in a new process, with `env` set to
/// `mode` and `RUST_BACKTRACE` to `backtrace`, and returns its output; kills
/// it and fails if it still runs after `limit` (both pipes are read while
/// waiting, so a chatty child cannot block).
pub(crate) fn run_child(env: &str, mode: &str, backtrace: &str, limit: Duration) -> Output {
    let mut child = Command::new(std::env::current_exe().unwrap())
        // `child` is `#[ignore = "child body"]`, so a plain run counts it as
        // skipped, not passed; only a parent runs it, here.
        .args([
            "--exact",
            "child",
            "--nocapture",
            "--test-threads=1",
            "--include-ignored",
        ])
        .env(env, mode)
        .env("RUST_BACKTRACE", backtrace)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child test process");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("child {mode} still runs after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}
