//! `cargo xtask test [--valgrind]`: the test matrix (STYLE rules 9, 16, 17).
//!
//! Steps, in order, stopping at the first failure with a message naming it:
//!
//! 1. `cargo fmt --all --check`
//! 2. `cargo clippy --workspace --all-targets -- -D warnings`, then
//!    `cargo package` of every library crate, verified (each builds as
//!    published, outside the workspace)
//! 3. every test (unit, integration, doc) in debug: the workspace minus
//!    green-ctx, then green-ctx alone with one test thread, so that a crash in
//!    context-switch code names its test (corosensei's and monoio's CI do the same)
//! 4. the same in release (`--release`), where inlining changes what a switch
//!    clobbers
//! 5. green-loop's and green-core's suites again on the epoll backend
//!    (`GREEN_LOOP_BACKEND=epoll`, debug)
//! 6. every example, built once and run under a bounded driver (see
//!    `examples.rs`), one test each
//! 7. with `--valgrind`: green-ctx's and green-core's test binaries under
//!    `valgrind --error-exitcode=1`, if valgrind is installed (green-core's
//!    synchronisation suites on the epoll backend)
//! 8. the tidy test (`cargo test -p xtask`, see `tidy.rs`)
//!
//! The last line printed is always `xtask test: N passed, M failed, K
//! skipped`, summed from libtest's `test result:` lines (ignored tests, and
//! tests that printed `skipped: <reason>` and returned, seen through
//! `--show-output`, are skipped, not passed), plus one failure for each step or test binary that
//! failed without such a line (fmt, clippy, package, a build error, a binary
//! that crashed or exited non-zero), named in parentheses after it; CI reads
//! it. See `util::run_tests`.

use std::process::Command;

use crate::util::{cargo_cmd, have_program, run_counted, run_tests, Result, TestCounts};

/// Options of `cargo xtask test`.
#[derive(Debug, Default)]
pub(crate) struct TestOptions {
    /// Also run green-ctx's and green-core's tests under valgrind.
    pub(crate) valgrind: bool,
}

impl TestOptions {
    /// Parses the arguments that follow `test`.
    pub(crate) fn parse(args: &[String]) -> Result<TestOptions> {
        let mut opts = TestOptions::default();
        for arg in args {
            match arg.as_str() {
                "--valgrind" => opts.valgrind = true,
                other => crate::util::bail!(
                    "xtask test: unknown argument `{other}` (expected --valgrind)"
                ),
            }
        }
        Ok(opts)
    }
}

/// The crates published for users: each must `cargo package`.
const LIBRARY_CRATES: &[&str] = &["green-ctx", "green-loop", "green-core", "green-pool"];

/// The crate whose tests switch stacks and so run on one test thread.
const CTX_CRATE: &str = "green-ctx";

/// The crates whose suites run a second time on the epoll backend.
const BACKEND_CRATES: &[&str] = &["green-loop", "green-core"];

/// Runs the whole matrix; on success and on failure the test counts so far
/// are left in `counts` for the caller to print.
pub(crate) fn run_all(opts: &TestOptions, counts: &mut TestCounts) -> Result<()> {
    run_counted("fmt", &mut cargo_cmd(["fmt", "--all", "--check"]), counts)?;
    run_counted(
        "clippy",
        &mut cargo_cmd([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
        counts,
    )?;

    // Each library crate must build as published, outside this workspace
    // (a README or file it includes from outside its directory fails
    // here). Packaged together, they resolve each other through a local
    // registry cargo makes for the run.
    //
    // Cargo treats a registry crate as immutable, so the verify build would
    // reuse a green crate compiled from an earlier run's package of the same
    // version. The step gets its own target dir, and the green crates'
    // fingerprints in it are dropped first; dependencies stay cached.
    let verify_dir = crate::util::project_root().join("target/package-verify");
    clear_green_fingerprints(&verify_dir);
    clear_unpacked_green_crates();
    let mut package = cargo_cmd(["package", "--allow-dirty", "--quiet"]);
    package.arg("--target-dir").arg(&verify_dir);
    for krate in LIBRARY_CRATES {
        package.args(["-p", krate]);
    }
    run_counted(
        "cargo package (every library crate, verified)",
        &mut package,
        counts,
    )?;

    for (profile, extra) in [("debug", None), ("release", Some("--release"))] {
        let mut rest = cargo_cmd([
            "test",
            "--workspace",
            "--exclude",
            CTX_CRATE,
            "--exclude",
            "xtask",
        ]);
        rest.args(extra).args(["--", SHOW_OUTPUT]);
        run_tests(&format!("tests ({profile})"), &mut rest, counts)?;

        let mut ctx = ctx_tests();
        ctx.args(extra)
            .args(["--", "--test-threads=1", SHOW_OUTPUT]);
        run_tests(
            &format!("{CTX_CRATE} tests ({profile}, one thread)"),
            &mut ctx,
            counts,
        )?;
    }

    let mut epoll = cargo_cmd(["test"]);
    for krate in BACKEND_CRATES {
        epoll.args(["-p", krate]);
    }
    epoll
        .args(["--", SHOW_OUTPUT])
        .env("GREEN_LOOP_BACKEND", "epoll");
    run_tests("tests (debug, epoll backend)", &mut epoll, counts)?;

    crate::examples::run_all(counts)?;

    if opts.valgrind {
        if have_program("valgrind") {
            let mut vg = ctx_tests();
            vg.args(["--tests", "--", "--test-threads=1", SHOW_OUTPUT])
                .env(
                    "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER",
                    "valgrind --error-exitcode=1 --quiet",
                );
            run_tests(
                &format!("{CTX_CRATE} tests under valgrind"),
                &mut vg,
                counts,
            )?;
            // green-core's suites switch greenlets on every blocking call:
            // the same registration must hold there, one test at a time.
            // Suites whose assertions rest on greenlets finishing in the
            // order of their sleeps (10 ms apart) are left out: under
            // valgrind, starting a greenlet can take longer than that.
            let mut vg_core = cargo_cmd(["test", "-p", "green-core"]);
            for suite in VALGRIND_CORE_SUITES {
                vg_core.args(["--test", suite]);
            }
            vg_core.args(["--", "--test-threads=1", SHOW_OUTPUT]).env(
                "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER",
                "valgrind --error-exitcode=1 --quiet",
            );
            run_tests("green-core tests under valgrind", &mut vg_core, counts)?;
            // The synchronisation suites wake hubs from other threads (the
            // remote handles): under valgrind a blocking `io_uring_enter`
            // keeps every other thread from running, so such a wake never
            // arrives; they run on the epoll backend, whose `epoll_wait`
            // valgrind lets other threads run through.
            let mut vg_sync = cargo_cmd(["test", "-p", "green-core"]);
            for suite in VALGRIND_SYNC_SUITES {
                vg_sync.args(["--test", suite]);
            }
            vg_sync
                .args(["--", "--test-threads=1", SHOW_OUTPUT])
                .env(
                    "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER",
                    "valgrind --error-exitcode=1 --quiet",
                )
                .env("GREEN_LOOP_BACKEND", "epoll")
                .env("GREEN_VALGRIND", "1");
            run_tests(
                "green-core sync and I/O tests under valgrind (epoll)",
                &mut vg_sync,
                counts,
            )?;
        } else {
            eprintln!("\n==> valgrind: not installed, skipping the valgrind run (apt-get install valgrind)");
        }
    }

    run_tests(
        "tidy",
        &mut cargo_cmd(["test", "-p", "xtask", "--", SHOW_OUTPUT]),
        counts,
    )?;
    Ok(())
}

/// libtest's flag that prints a passing test's captured stdout, so that a
/// test that skipped itself (`skipped: <reason>`) is counted as skipped, not
/// passed (see `util::TestCounts`).
const SHOW_OUTPUT: &str = "--show-output";

/// green-core suites run under valgrind by `--valgrind` (see there).
const VALGRIND_CORE_SUITES: &[&str] = &[
    "greenlet_spawn_order",
    "greenlet_state",
    "greenlet_kill",
    "greenlet_identity",
    "greenlet_link",
    "greenlet_panic",
    "timeout_nested",
    "timeout_basic",
    "hub_loop_exit",
    "hub_teardown",
    "stack_overflow",
    "mixed_stress",
    "unwind_per_greenlet",
    "hub_survives_user_code",
    "teardown_leaves_nothing",
    "timeout_small",
];

/// green-core's synchronisation suites run under valgrind by `--valgrind`,
/// on the epoll backend (see there). `sync_local` (a million greenlets) and
/// `review_issue11` (a hundred thousand waiters on one event) are left out:
/// they outlast their hang guards there.
const VALGRIND_SYNC_SUITES: &[&str] = &[
    "sync_event",
    "sync_lock",
    "sync_queue",
    "sync_kill_timeout",
    "sync_random",
    "sync_alloc",
    // Green I/O: kills mid-read and mid-write with canaries around every
    // buffer (`GREEN_VALGRIND` makes it the smaller run), and the rest.
    "net_kill",
    "net_tcp",
    "net_udp_unix",
    "net_incoming",
    "fs",
];

/// `cargo test -p green-ctx` with `RUST_TEST_THREADS=1`: the variable reaches
/// every test binary and doctest, whatever arguments follow `--`.
fn ctx_tests() -> Command {
    let mut cmd = cargo_cmd(["test", "-p", CTX_CRATE]);
    cmd.env("RUST_TEST_THREADS", "1");
    cmd
}

/// Removes the green crates that earlier `cargo package` runs unpacked from
/// their local registries into `$CARGO_HOME/registry/src/-<hash>/`. Cargo
/// never unpacks a registry crate of the same version twice, so a stale
/// copy there would be compiled instead of today's sources (a new API then
/// looks missing). Crates from crates.io (`index.*` directories) stay.
fn clear_unpacked_green_crates() {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")));
    let Some(src) = cargo_home.map(|h| h.join("registry/src")) else {
        return;
    };
    let Ok(registries) = std::fs::read_dir(&src) else {
        return;
    };
    for registry in registries.flatten() {
        // Local registries made by `cargo package` are named `-<hash>`.
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        let Ok(crates) = std::fs::read_dir(registry.path()) else {
            continue;
        };
        for krate in crates.flatten() {
            if krate.file_name().to_string_lossy().starts_with("green-") {
                let _ = std::fs::remove_dir_all(krate.path());
            }
        }
    }
}

/// Removes the fingerprints of the workspace's own crates under a target
/// dir, so cargo rebuilds them from the freshly packaged sources.
fn clear_green_fingerprints(target_dir: &std::path::Path) {
    for profile in ["debug", "release"] {
        let dir = target_dir.join(profile).join(".fingerprint");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with("green-") {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}
