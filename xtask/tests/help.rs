//! `cargo xtask <task> --help` prints the usage and exits 0, for every task,
//! without running it.

use std::process::Command;

#[test]
fn help_prints_usage_and_exits_zero_for_every_task() {
    for args in [
        &["--help"][..],
        &["help"],
        &["test", "--help"],
        &["bench", "--help"],
        &["bench", "-h"],
        &["ci", "--help"],
        &["gevent-traces", "--help"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(args)
            .output()
            .expect("xtask runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}: {out:?}");
        assert!(
            stdout.starts_with("usage: cargo xtask <task>"),
            "{args:?}: {stdout}"
        );
    }
}

#[test]
fn an_unknown_task_fails_with_the_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("frobnicate")
        .output()
        .expect("xtask runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown task `frobnicate`"));
}
