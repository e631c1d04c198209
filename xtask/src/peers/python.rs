//! gevent and eventlet as peers of `cargo xtask bench`: subjects `gevent`
//! and `eventlet`, under the same bench names as green's rows.
//!
//! * The core rows (spawn + join, 10 000 yielders, Event and Queue
//!   ping-pong, Timeout scopes, `Pool(100).map`, idle memory, sleep
//!   lateness) come from `benches/peers/python/bench.py`, which measures
//!   what the Rust bench of the same name measures and appends its lines to
//!   the results file itself.
//! * The echo rows come from `benches/net.rs`, the same client as every
//!   other subject's, run against `benches/peers/python/echo_server.py`
//!   (one process per library) named in `GREEN_BENCH_EXTERNAL_ECHO`. The
//!   servers are started with `taskset -c CPU` on the CPU the bench pins
//!   its client to, the last one this process may run on, so client and
//!   server share one CPU as they do for the in-process subjects; the
//!   bench's notes say whether the server really is on it.
//!
//! Both run in a venv under the target directory (`target/bench-venv`)
//! with pinned gevent and eventlet (`venv.rs`). When `python3` is missing
//! or the venv cannot be made, every row that would have run is written as
//! skipped, with the reason.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::gevent::GEVENT;
use crate::util::{bail, cargo_cmd, have_program, project_root, Error, Result};
use crate::venv::{self, Pin};

use super::{append_skip, last_allowed_cpu, selected, ECHO_BENCHES};

/// The eventlet release the peer runs: the newest, which works on Python
/// 3.11 beside gevent 26.9 (both take the same greenlet 3).
const EVENTLET: Pin = Pin {
    name: "eventlet",
    module: "eventlet",
    version: "0.41.3",
};

/// The subjects, as `bench.py --lib` and `echo_server.py --lib` name them.
const LIBS: [&str; 2] = ["gevent", "eventlet"];

/// The rows of `bench.py` (its `BENCHES`), for the skip lines.
const CORE_BENCHES: [&str; 9] = [
    "core/spawn_join",
    "core/yield_10k",
    "sync/event_pingpong",
    "sync/queue_pingpong",
    "core/timeout_scope",
    "core/timeout_scope_nonblocking",
    "pool/map_100k",
    "core/idle_rss",
    "core/sleep_lateness",
];

/// Where the Python programs live, from the workspace root.
const PROGRAM_DIR: &str = "benches/peers/python";

/// How long an echo server may take to print its ports.
const SERVER_START: Duration = Duration::from_secs(30);

/// Runs the Python peers' rows that `filter` (a substring of the bench
/// names) lets through and appends their lines to `results`; `progress`
/// hears which step is running.
pub(crate) fn run(
    quick: bool,
    filter: Option<&str>,
    results: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    let core = selected(&CORE_BENCHES, filter);
    let net = selected(&ECHO_BENCHES, filter);
    if core.is_empty() && net.is_empty() {
        return Ok(());
    }
    progress("gevent, eventlet: the venv");
    let python = match bench_python() {
        Ok(python) => python,
        Err(reason) => {
            progress(&format!("gevent, eventlet: skipped ({reason})"));
            for bench in core.iter().chain(&net) {
                for lib in LIBS {
                    append_skip(results, bench, lib, &reason)?;
                }
            }
            return Ok(());
        }
    };
    let dir = project_root().join(PROGRAM_DIR);
    // A program that fails does not stop the others; the run fails at the end.
    let mut failures = Vec::new();
    if !core.is_empty() {
        for lib in LIBS {
            progress(&format!("{lib}: starting {PROGRAM_DIR}/bench.py"));
            let mut cmd = Command::new(&python);
            cmd.arg(dir.join("bench.py"))
                .args(["--lib", lib, "--out"])
                .arg(results);
            if quick {
                cmd.arg("--quick");
            }
            if let Some(filter) = filter {
                cmd.args(["--filter", filter]);
            }
            let step = format!("{PROGRAM_DIR}/bench.py --lib {lib}");
            if let Err(e) = run_captured(&step, &mut cmd, progress) {
                failures.push(e.0);
            }
        }
    }
    if !net.is_empty() {
        progress("gevent, eventlet: starting the echo servers");
        if let Err(e) = echo(&python, &dir, quick, filter, results, progress) {
            failures.push(e.0);
        }
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("\n"));
    }
    Ok(())
}

/// The tag of the progress lines the programs write to stderr, in the
/// harness's protocol (`[TAG] bench subject: step`, `GREEN_BENCH_PROGRESS`).
const PROGRESS_TAG: &str = "python";

/// Lines of a failed program's stderr that its error quotes.
const ERROR_TAIL: usize = 40;

/// Runs `cmd` with its output kept off the terminal, which the bench's
/// progress line owns: its progress lines go to `progress`, its results
/// are in the results file already, and the last lines of its stderr are
/// quoted if it fails.
fn run_captured(step: &str, cmd: &mut Command, progress: &mut dyn FnMut(&str)) -> Result<()> {
    let tag = format!("[{PROGRESS_TAG}] ");
    let mut child = cmd
        .env("GREEN_BENCH_PROGRESS", PROGRESS_TAG)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error(format!("{step}: could not start: {e}")))?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut tail = VecDeque::with_capacity(ERROR_TAIL);
    // Ends when the program and every child it started have closed stderr.
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        match line.strip_prefix(&tag) {
            Some(message) => progress(message),
            None => {
                if tail.len() == ERROR_TAIL {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| Error(format!("{step}: waiting for it: {e}")))?;
    if !status.success() {
        let tail: Vec<String> = tail.into_iter().collect();
        bail!(
            "{step} failed ({status}); its stderr ended with:\n{}",
            tail.join("\n")
        );
    }
    Ok(())
}

/// The bench venv's python, or why there is none (the skip reason).
pub(crate) fn bench_python() -> std::result::Result<PathBuf, String> {
    if !have_program("python3") {
        return Err(
            "python3 is not installed (on Debian: apt-get install python3 python3-venv)".to_owned(),
        );
    }
    let dir = venv::dir("bench-venv");
    venv::ensure(&dir, &[GEVENT, EVENTLET]).map_err(|e| {
        format!(
            "no venv with gevent {} and eventlet {}: {e}",
            GEVENT.version, EVENTLET.version
        )
    })
}

/// The echo rows: a server per library, then `benches/net.rs` against
/// them; the servers are killed when it is done, whatever happened.
fn echo(
    python: &Path,
    dir: &Path,
    quick: bool,
    filter: Option<&str>,
    results: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    let cpu = last_allowed_cpu().ok();
    let taskset = have_program("taskset");
    if cpu.is_none() || !taskset {
        // Not an error: the net bench's notes say the server is not pinned.
        progress(&format!(
            "gevent, eventlet: echo servers not pinned ({})",
            if taskset {
                "cannot read this process's CPUs from /proc/self/status"
            } else {
                "taskset is not installed (util-linux)"
            }
        ));
    }
    let pin = cpu.filter(|_| taskset);
    let mut servers = Vec::with_capacity(LIBS.len());
    for lib in LIBS {
        servers.push(EchoServer::start(python, dir, lib, pin)?);
    }
    let spec: Vec<String> = servers.iter().map(EchoServer::spec).collect();
    let mut cmd = cargo_cmd(["bench", "--bench", "net"]);
    cmd.env("GREEN_BENCH_EXTERNAL_ECHO", spec.join(","))
        .env("GREEN_BENCH_OUT", results);
    if quick {
        cmd.env("GREEN_BENCH_QUICK", "1");
    }
    if let Some(filter) = filter {
        cmd.env("GREEN_BENCH_FILTER", filter);
    }
    let outcome = run_captured(
        "benches/net.rs against the gevent and eventlet echo servers",
        &mut cmd,
        progress,
    );
    drop(servers);
    outcome
}

/// A Python echo server, killed when dropped.
struct EchoServer {
    lib: &'static str,
    child: Child,
    /// The persistent and the one-shot port.
    ports: (u16, u16),
}

impl EchoServer {
    /// Starts `echo_server.py --lib LIB`, on CPU `pin` if given, and waits
    /// until it prints its ports.
    fn start(python: &Path, dir: &Path, lib: &'static str, pin: Option<usize>) -> Result<Self> {
        let mut cmd = match pin {
            Some(cpu) => {
                let mut cmd = Command::new("taskset");
                cmd.args(["-c", &cpu.to_string()]).arg(python);
                cmd
            }
            None => Command::new(python),
        };
        cmd.arg(dir.join("echo_server.py"))
            .args(["--lib", lib])
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| Error(format!("{lib} echo server: could not start: {e}")))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, first_line) = mpsc::channel();
        // A server that hangs before printing must not hang the bench: the
        // line is read on a thread and waited for with a timeout.
        std::thread::spawn(move || {
            let mut line = String::new();
            let read = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = sender.send(read);
        });
        let mut server = EchoServer {
            lib,
            child,
            ports: (0, 0),
        };
        let line = match first_line.recv_timeout(SERVER_START) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => bail!("{lib} echo server: reading its ports: {e}"),
            Err(_) => bail!(
                "{lib} echo server: no ports printed within {}s",
                SERVER_START.as_secs()
            ),
        };
        server.ports = parse_ports(&line).ok_or_else(|| {
            Error(format!(
                "{lib} echo server: expected `PERSISTENT ONESHOT` ports, got {line:?} (it \
                 exited early? its stderr is above)"
            ))
        })?;
        Ok(server)
    }

    /// This server's entry of `GREEN_BENCH_EXTERNAL_ECHO`.
    fn spec(&self) -> String {
        format!(
            "{}=127.0.0.1:{}/127.0.0.1:{}@{}",
            self.lib,
            self.ports.0,
            self.ports.1,
            self.child.id()
        )
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        // Our own child, by its handle; it may have exited already.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `PERSISTENT ONESHOT` as two port numbers.
fn parse_ports(line: &str) -> Option<(u16, u16)> {
    let mut ports = line.split_whitespace().map(str::parse::<u16>);
    match (ports.next(), ports.next(), ports.next()) {
        (Some(Ok(a)), Some(Ok(b)), None) => Some((a, b)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_selects_by_substring() {
        assert_eq!(selected(&CORE_BENCHES, None).len(), CORE_BENCHES.len());
        assert_eq!(
            selected(&CORE_BENCHES, Some("timeout")),
            ["core/timeout_scope", "core/timeout_scope_nonblocking"]
        );
        assert_eq!(
            selected(&ECHO_BENCHES, Some("echo_64")),
            ["net/echo_64conn", "net/echo_64conn_cpu"]
        );
        assert!(selected(&ECHO_BENCHES, Some("core/")).is_empty());
    }

    #[test]
    fn the_core_benches_are_the_programs() {
        let program = std::fs::read_to_string(project_root().join(PROGRAM_DIR).join("bench.py"))
            .expect("bench.py");
        for bench in CORE_BENCHES {
            assert!(
                program.contains(&format!("    \"{bench}\",\n")),
                "{bench} is not in bench.py's BENCHES"
            );
        }
    }

    #[test]
    fn ports_are_two_numbers() {
        assert_eq!(parse_ports("41283 36943\n"), Some((41283, 36943)));
        assert_eq!(parse_ports("41283\n"), None);
        assert_eq!(parse_ports("1 2 3"), None);
        assert_eq!(parse_ports("Traceback"), None);
    }
}
