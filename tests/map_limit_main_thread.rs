//! Spawning guarded greenlets past `vm.max_map_count` from `fn main()`, on
//! the process's main thread, panics with a complete message: the limit and
//! its value, the mappings in use, the batch that failed, the sysctl, and
//! both ways past it (`Builder::unguarded`, green-ctx's `Arena`), located at
//! the user's `spawn`. No libtest harness: libtest runs tests on worker
//! threads, whose heaps do not grow by new mappings as the main thread's
//! does, which is how the message once went missing there only.
//!
//! The scenario runs in a child process (it exhausts the mappings and ends
//! in a panic); the parent checks what it printed.

use std::process::{Command, ExitCode};

const CHILD_ENV: &str = "GREEN_MAP_LIMIT_CHILD";

fn main() -> ExitCode {
    if std::env::var_os(CHILD_ENV).is_some() {
        child();
        return ExitCode::SUCCESS;
    }
    let limit = green_ctx::read_max_map_count().unwrap_or(0);
    if limit == 0 || limit > 200_000 {
        // Filling a large limit would take minutes and gigabytes of page
        // tables; the default-sized limit is what users meet.
        println!("map_limit_main_thread: skipped: vm.max_map_count is {limit}");
        println!("test result: ok. 0 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out");
        return ExitCode::SUCCESS;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, "1")
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("the child runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let checks = [
        ("the child panicked", !out.status.success()),
        (
            "the panic is located at the user's spawn",
            stderr.contains("panicked at tests/map_limit_main_thread.rs:"),
        ),
        (
            "names the limit and its value",
            stderr.contains(&format!("vm.max_map_count is {limit}")),
        ),
        (
            "counts the mappings in use",
            stderr.contains("memory mappings") && !stderr.contains("could not be counted"),
        ),
        ("names the batch", stderr.contains("guarded fiber stacks (")),
        (
            "names the sysctl",
            stderr.contains("sysctl -w vm.max_map_count="),
        ),
        (
            "names green-core's fix",
            stderr.contains("green_core::Builder::unguarded(true)"),
        ),
        ("names green-ctx's fix", stderr.contains("`Arena`")),
    ];
    let failed: Vec<&str> = checks.iter().filter(|c| !c.1).map(|c| c.0).collect();
    if failed.is_empty() {
        println!("test map_limit_main_thread ... ok");
        println!("test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
        ExitCode::SUCCESS
    } else {
        println!("test map_limit_main_thread ... FAILED: {failed:?}\nchild stderr:\n{stderr}");
        println!("test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out");
        ExitCode::FAILURE
    }
}

/// A day-one program: spawn until something gives.
fn child() {
    green_core::run(|| {
        let mut all = Vec::new();
        loop {
            all.push(green_core::spawn(|| {
                green_core::sleep(std::time::Duration::from_secs(60))
            }));
        }
    });
}
