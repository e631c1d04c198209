//! The peers that are not Rust crates, run by `cargo xtask bench` after the
//! Rust benches under the same bench names: gevent and eventlet in a venv
//! under `target/` (`python.rs`), and Go (`go.rs`).
//!
//! Each exposes
//! `run(quick, filter, results, progress) -> Result<()>`, which:
//!
//! * runs the benches whose names contain `filter` (all without one), with
//!   fewer and shorter samples when `quick`;
//! * appends one line per (bench, subject) to `results`, in the harness's
//!   protocol: `{"bench","subject","median","min","max","unit","note"}`, or
//!   `{"bench","subject","skipped":"reason"}` when the runtime can't be had
//!   (no `python3`, no `go`), so the report says why the row is empty;
//! * calls `progress` with `<bench> <subject>: <step>` (`core/spawn_join
//!   gevent: sample 3/10`) as it goes; the terminal shows it in place, a log
//!   shows each `<bench> <subject>` once;
//! * returns an error only for what should fail the run (a peer program
//!   that crashed), not for a missing runtime.

pub(crate) mod go;
pub(crate) mod python;

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::json::json_string;
use crate::util::{Error, Result};

/// Installs a Debian package: directly as root, else through `sudo -n`
/// (never asking for a password). The package lists are refreshed once if
/// the first attempt fails, as on a fresh machine whose lists are empty.
pub(crate) fn apt_install(package: &str) -> std::result::Result<(), String> {
    let as_root = effective_uid() == Some(0);
    let apt = |args: &[&str]| -> Command {
        let mut cmd = if as_root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.args(["-n", "apt-get"]);
            sudo
        };
        cmd.args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null());
        cmd
    };
    let how = if as_root { "" } else { "sudo -n " };
    let install = ["install", "-y", "--no-install-recommends", package];
    if finished("apt-get install", apt(&install).output()).is_ok() {
        return Ok(());
    }
    // Whatever the update says, the second install's failure is the reason.
    let _ = apt(&["update"]).output();
    finished("apt-get install", apt(&install).output())
        .map_err(|why| format!("`{how}apt-get install -y {package}` failed ({why})"))
}

/// This process's effective user id, from `/proc/self/status`.
fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    uid_of_status(&status)
}

/// The effective uid (second field of `Uid:`) of a `/proc/PID/status` text.
fn uid_of_status(status: &str) -> Option<u32> {
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Ok when the command ran and exited 0; else a sentence with the end of
/// its stderr, for a skip line.
pub(crate) fn finished(
    what: &str,
    output: std::io::Result<Output>,
) -> std::result::Result<(), String> {
    let output = output.map_err(|e| format!("{what}: could not start: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .rev()
        .take(3)
        .collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(format!(
        "{what} failed ({}): {}",
        output.status,
        tail.join(" / ")
    ))
}

/// The last CPU this process may run on (`Cpus_allowed_list`), the one the
/// net bench pins its client to.
pub(crate) fn last_allowed_cpu() -> std::result::Result<usize, String> {
    let status = fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status for the allowed CPUs: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .and_then(last_cpu_of_list)
        .ok_or_else(|| "no Cpus_allowed_list in /proc/self/status".to_owned())
}

/// The highest CPU of a list such as `0-3,6,8-9`.
fn last_cpu_of_list(list: &str) -> Option<usize> {
    list.trim()
        .split(',')
        .filter_map(|range| range.rsplit('-').next()?.trim().parse().ok())
        .max()
}

/// The echo rows `benches/net.rs` measures against a peer's server in
/// another process (`GREEN_BENCH_EXTERNAL_ECHO`), pinned to the client's
/// CPU: each in wall time, and the server's CPU time over the same samples.
pub(crate) const ECHO_BENCHES: [&str; 6] = [
    "net/echo_1conn",
    "net/echo_64conn",
    "net/connect_accept",
    "net/echo_1conn_cpu",
    "net/echo_64conn_cpu",
    "net/connect_accept_cpu",
];

/// The names of `benches` that contain `filter` (all without one).
pub(crate) fn selected(benches: &[&'static str], filter: Option<&str>) -> Vec<&'static str> {
    benches
        .iter()
        .copied()
        .filter(|b| filter.is_none_or(|f| b.contains(f)))
        .collect()
}

/// `{"bench":B,"subject":S,"skipped":REASON}` and a newline: the results
/// protocol's line for a row that could not run.
pub(crate) fn skip_line(bench: &str, subject: &str, reason: &str) -> String {
    format!(
        "{{\"bench\":{},\"subject\":{},\"skipped\":{}}}\n",
        json_string(bench),
        json_string(subject),
        json_string(reason)
    )
}

/// Appends the skip line of (`bench`, `subject`) to `results`.
pub(crate) fn append_skip(results: &Path, bench: &str, subject: &str, reason: &str) -> Result<()> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(results)
        .and_then(|mut f| f.write_all(skip_line(bench, subject, reason).as_bytes()))
        .map_err(|e| Error(format!("{}: {e}", results.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_cpu_of_allowed_lists() {
        assert_eq!(last_cpu_of_list("0-1"), Some(1));
        assert_eq!(last_cpu_of_list(" 0\n"), Some(0));
        assert_eq!(last_cpu_of_list("0-3,6,8-9"), Some(9));
        assert_eq!(last_cpu_of_list("4,0-2"), Some(4));
        assert_eq!(last_cpu_of_list(""), None);
    }

    #[test]
    fn effective_uid_is_the_second_uid_field() {
        let status = "Name:\txtask\nUid:\t1000\t0\t1000\t1000\nGid:\t5\t5\t5\t5\n";
        assert_eq!(uid_of_status(status), Some(0));
        assert_eq!(uid_of_status("Name:\tx\n"), None);
    }

    #[test]
    fn skip_lines_follow_the_protocol() {
        let line = skip_line("core/spawn_join", "gevent", "no \"python3\"");
        assert_eq!(
            line,
            "{\"bench\":\"core/spawn_join\",\"subject\":\"gevent\",\"skipped\":\"no \\\"python3\\\"\"}\n"
        );
    }
}
