//! Go as a bench peer (issue 14): goroutines beside greenlets under the same
//! bench names, subject `go`.
//!
//! The programs are in `benches/peers/go/`, one module using the standard
//! library only: `micro` measures the one-hub rows in its own process,
//! `echo_server` serves the net bench's client, and `http_hello` is the
//! server of `http/hello`. This module:
//!
//! * finds `go`, or installs Debian's `golang-go` with apt-get (as root, or
//!   through `sudo -n`), as xtask installs the other system tools it needs;
//! * builds the programs into `target/bench-go/`, with Go's build cache and
//!   GOPATH under that directory too and modules taken from the source tree
//!   only (`GOPROXY=off`): nothing is fetched, nothing is written outside
//!   the target directory;
//! * runs `micro` once per bench with the harness's variables, so that it
//!   appends its own rows to the results file (it sets GOMAXPROCS=1
//!   itself; the variable is set too);
//! * starts `echo_server` with GOMAXPROCS=1, pinned with `taskset` to the
//!   CPU that the net bench pins its client to (the last one this process
//!   may run on), and runs the net bench against it
//!   (`GREEN_BENCH_EXTERNAL_ECHO`) for `net/echo_1conn`, `net/echo_64conn`
//!   and `net/connect_accept`; then again with GOMAXPROCS=2 unpinned
//!   (`GREEN_BENCH_EXTERNAL_THREADED`) for `pool/server_2threads`, whose
//!   green server runs two threads on every CPU.
//!
//! Every program runs with `GREEN_BENCH_PROGRESS`, and its progress lines
//! on stderr become this runner's progress; its other output stays off the
//! terminal (the rows are in the results file), and the last lines of its
//! stderr name a failure.
//!
//! A row that cannot run becomes a `skipped` line naming the reason, so the
//! report says why Go is missing from it. Without `go` and without a way to
//! install it, that is all; a failed build or a program that failed is also
//! an error of the run, after the other Go rows have run.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use super::{apt_install, finished, last_allowed_cpu, skip_line, ECHO_BENCHES};
use crate::json::json_string;
use crate::util::{cargo_cmd, project_root, Error, Result};

/// The subject of every Go row.
const SUBJECT: &str = "go";

/// The benches `micro` runs, in its order (`benches/peers/go/micro/`).
pub(crate) const MICRO_BENCHES: &[&str] = &[
    "core/spawn_join",
    "core/yield_10k",
    "sync/event_pingpong",
    "sync/queue_pingpong",
    "sync/lock_contended_100",
    "core/idle_rss",
    MILLION_SLEEPERS,
];

/// Takes seconds per run; skipped with `--quick`, as green's row is.
const MILLION_SLEEPERS: &str = "core/million_sleepers";

/// The net bench's cases against a one-thread server pinned to its CPU.
const PINNED_ECHO_BENCHES: &[&str] = &ECHO_BENCHES;

/// The net bench's rows against a server on two threads and every CPU:
/// wall time, and the server's CPU time over the same samples.
const THREADED_ECHO_BENCHES: [&str; 2] = ["pool/server_2threads", "pool/server_2threads_cpu"];

/// Threads of the Go server of [`THREADED_ECHO_BENCHES`], as green's.
const THREADED_GOMAXPROCS: &str = "2";

/// Where the Go module lives, from the workspace root.
const MODULE_DIR: &str = "benches/peers/go";

/// Debian's package of the Go toolchain.
const GO_PACKAGE: &str = "golang-go";

/// The prefix of the progress lines the programs write
/// (`GREEN_BENCH_PROGRESS`, `[go] core/spawn_join go: sample 3/50`).
const PROGRESS_TAG: &str = "go";

/// Lines of a failed program's stderr quoted in its error.
const STDERR_TAIL: usize = 4;

/// Runs the Go rows that `filter` (a substring of bench names) lets
/// through, appending them to `results`; `quick` is the harness's smoke
/// mode. Reports what it is doing through `progress`.
pub(crate) fn run(
    quick: bool,
    filter: Option<&str>,
    results: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    let wanted = |bench: &&str| filter.is_none_or(|f| bench.contains(f));
    let micro: Vec<&str> = MICRO_BENCHES
        .iter()
        .copied()
        .filter(wanted)
        .filter(|b| !(quick && *b == MILLION_SLEEPERS))
        .collect();
    let pinned: Vec<&str> = PINNED_ECHO_BENCHES.iter().copied().filter(wanted).collect();
    let threaded: Vec<&str> = THREADED_ECHO_BENCHES
        .iter()
        .copied()
        .filter(wanted)
        .collect();
    let every: Vec<&str> = micro
        .iter()
        .chain(&pinned)
        .chain(&threaded)
        .copied()
        .collect();
    if every.is_empty() {
        return Ok(());
    }

    if go_version().is_none() {
        progress(&format!(
            "setup {SUBJECT}: installing {GO_PACKAGE} with apt-get"
        ));
    }
    if let Err(reason) = ensure_go() {
        // No Go here: the rows say so, and the run goes on without them.
        return fill_missing(results, &every, &Err(reason));
    }
    let mut failures = Vec::new();
    progress(&format!("build {SUBJECT}: go build in {MODULE_DIR}"));
    let bin = match build() {
        Ok(bin) => bin,
        Err(reason) => {
            settle(results, &every, Err(reason), &mut failures)?;
            return ended(failures);
        }
    };
    let harness_env = |cmd: &mut Command| {
        cmd.env("GREEN_BENCH_OUT", results);
        if quick {
            cmd.env("GREEN_BENCH_QUICK", "1");
        }
        if let Some(filter) = filter {
            cmd.env("GREEN_BENCH_FILTER", filter);
        }
    };

    for bench in micro {
        progress(&format!("{bench} {SUBJECT}: starting"));
        let mut cmd = Command::new(bin.join("micro"));
        cmd.arg(bench).env("GOMAXPROCS", "1");
        harness_env(&mut cmd);
        let outcome = run_reporting(&format!("micro {bench}"), &mut cmd, progress);
        settle(results, &[bench], outcome, &mut failures)?;
    }

    if !pinned.is_empty() {
        progress(&format!("net/echo {SUBJECT}: starting the server"));
        let outcome = last_allowed_cpu().and_then(|cpu| {
            let server = EchoServer::start(&bin, "1", Some(cpu))?;
            let mut cmd = cargo_cmd(["bench", "--bench", "net"]);
            cmd.env("GREEN_BENCH_EXTERNAL_ECHO", server.external_spec(true));
            harness_env(&mut cmd);
            let ran = run_reporting("net bench against the Go echo server", &mut cmd, progress);
            server.check(ran)
        });
        settle(results, &pinned, outcome, &mut failures)?;
    }

    if !threaded.is_empty() {
        progress(&format!(
            "{} {SUBJECT}: starting the server",
            THREADED_ECHO_BENCHES[0]
        ));
        let outcome = EchoServer::start(&bin, THREADED_GOMAXPROCS, None).and_then(|server| {
            let mut cmd = cargo_cmd(["bench", "--bench", "net"]);
            cmd.env("GREEN_BENCH_EXTERNAL_THREADED", server.external_spec(false));
            harness_env(&mut cmd);
            let ran = run_reporting(
                "net bench against the two-thread Go echo server",
                &mut cmd,
                progress,
            );
            server.check(ran)
        });
        settle(results, &threaded, outcome, &mut failures)?;
    }
    ended(failures)
}

/// Skip lines for the `benches` left without a row by a program that ran
/// with `outcome`; its failure is kept in `failures`.
fn settle(
    results: &Path,
    benches: &[&str],
    outcome: std::result::Result<(), String>,
    failures: &mut Vec<String>,
) -> Result<()> {
    fill_missing(results, benches, &outcome)?;
    if let Err(failure) = outcome {
        failures.push(failure);
    }
    Ok(())
}

/// The run's end: an error naming every failure, if any.
fn ended(failures: Vec<String>) -> Result<()> {
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error(format!(
            "the Go peer failed (its rows say skipped): {}",
            failures.join("; ")
        )))
    }
}

/// Runs `cmd` with `GREEN_BENCH_PROGRESS` set, passing its progress lines
/// to `progress` and dropping its stdout; ok when it exits 0, else a
/// sentence with the last lines of its stderr.
fn run_reporting(
    what: &str,
    cmd: &mut Command,
    progress: &mut dyn FnMut(&str),
) -> std::result::Result<(), String> {
    cmd.env("GREEN_BENCH_PROGRESS", PROGRESS_TAG)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{what}: could not start: {e}"))?;
    let stderr = child.stderr.take().expect("stderr was piped");
    let tag = format!("[{PROGRESS_TAG}] ");
    let mut tail = VecDeque::with_capacity(STDERR_TAIL + 1);
    let mut reader = BufReader::new(stderr);
    let mut raw = Vec::new();
    // Until the pipe closes: the program and any child it started exited.
    while reader.read_until(b'\n', &mut raw).is_ok_and(|n| n > 0) {
        let line = String::from_utf8_lossy(&raw).trim_end().to_owned();
        raw.clear();
        match line.strip_prefix(&tag) {
            Some(step) => progress(step),
            None if line.trim().is_empty() => {}
            None => {
                tail.push_back(line);
                if tail.len() > STDERR_TAIL {
                    tail.pop_front();
                }
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("{what}: could not wait for it: {e}"))?;
    if status.success() {
        return Ok(());
    }
    let tail: Vec<String> = tail.into();
    Err(format!("{what} failed ({status}): {}", tail.join(" / ")))
}

/// Where the Go programs and Go's caches go: `bench-go` under cargo's
/// target directory.
fn out_dir() -> PathBuf {
    crate::util::target_dir().join("bench-go")
}

/// `go version`'s output, if `go` runs.
fn go_version() -> Option<String> {
    let out = Command::new("go").arg("version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Finds `go`, or installs it from Debian's packages; the error is why Go
/// cannot be had here, a sentence for a skip line. With [`build`], what a
/// runner that launches `http_hello` itself calls first.
pub(crate) fn ensure_go() -> std::result::Result<String, String> {
    if let Some(version) = go_version() {
        return Ok(version);
    }
    apt_install(GO_PACKAGE).map_err(|why| {
        format!("`go` is not installed and {why}; install Go 1.19 or later to get the Go rows")
    })?;
    go_version().ok_or_else(|| {
        format!("`apt-get install {GO_PACKAGE}` succeeded but `go version` still does not run")
    })
}

/// Builds every program of the module (`micro`, `echo_server`,
/// `http_hello`) into [`out_dir`], which it returns.
pub(crate) fn build() -> std::result::Result<PathBuf, String> {
    let out = out_dir();
    fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    // `-o DIR/` with `./...` writes one executable per main package.
    let mut dest = out.clone().into_os_string();
    dest.push("/");
    let mut cmd = Command::new("go");
    cmd.args(["build", "-o"])
        .arg(dest)
        .arg("./...")
        .current_dir(project_root().join(MODULE_DIR))
        .env("GOFLAGS", "-mod=mod")
        .env("GOCACHE", out.join("cache"))
        .env("GOPATH", out.join("gopath"))
        .env("GOMODCACHE", out.join("gopath").join("mod"))
        // Go's user configuration (and, from Go 1.23, its telemetry
        // counters) would go to ~/.config otherwise.
        .env("XDG_CONFIG_HOME", out.join("config"))
        .env("GOENV", "off")
        .env("GOPROXY", "off")
        .env("GOSUMDB", "off")
        .env("GOTOOLCHAIN", "local")
        .env("GO111MODULE", "on")
        .env("CGO_ENABLED", "0");
    finished(&format!("go build in {MODULE_DIR}"), cmd.output())?;
    Ok(out)
}

/// The Go echo server, running; killed when dropped.
struct EchoServer {
    child: Child,
    /// Held open: the server exits when it closes (as when xtask dies).
    _stdin: Option<ChildStdin>,
    /// Echoes until the client closes.
    persistent: u16,
    /// Echoes once, then closes first.
    one_shot: u16,
    /// Where its stderr goes.
    log: PathBuf,
}

impl EchoServer {
    /// Starts `echo_server` with `gomaxprocs`, pinned to `cpu` if given,
    /// and reads the two ports it prints.
    fn start(
        bin: &Path,
        gomaxprocs: &str,
        cpu: Option<usize>,
    ) -> std::result::Result<EchoServer, String> {
        let program = bin.join("echo_server");
        let mut cmd = match cpu {
            Some(cpu) => {
                // taskset execs the server, so the child's pid is the server's.
                let mut taskset = Command::new("taskset");
                taskset.arg("-c").arg(cpu.to_string()).arg(&program);
                taskset
            }
            None => Command::new(&program),
        };
        // Its stderr goes to a file, off the terminal the progress line owns.
        let log_path = bin.join(format!("echo_server-{gomaxprocs}.stderr"));
        let log = File::create(&log_path)
            .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        cmd.env("GOMAXPROCS", gomaxprocs)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout was piped");
        let mut server = EchoServer {
            child,
            _stdin: stdin,
            persistent: 0,
            one_shot: 0,
            log: log_path,
        };
        let mut lines = BufReader::new(stdout).lines();
        let mut port = |which: &str| -> std::result::Result<u16, String> {
            match lines.next() {
                Some(Ok(line)) => line
                    .trim()
                    .parse()
                    .map_err(|e| format!("echo_server printed `{line}` for its {which} port: {e}")),
                _ => Err(format!(
                    "echo_server exited before printing its {which} port"
                )),
            }
        };
        server.persistent = port("persistent")?;
        server.one_shot = port("one-shot")?;
        Ok(server)
    }

    /// The net bench's `SUBJECT=HOST:PORT[/HOST:PORT]@PID` for this server,
    /// with the one-shot address when `one_shot`.
    fn external_spec(&self, one_shot: bool) -> String {
        let mut spec = format!("{SUBJECT}=127.0.0.1:{}", self.persistent);
        if one_shot {
            spec.push_str(&format!("/127.0.0.1:{}", self.one_shot));
        }
        spec.push_str(&format!("@{}", self.child.id()));
        spec
    }
}

impl EchoServer {
    /// `ran` (the net bench's outcome against this server), with the
    /// server's own complaints added to a failure.
    fn check(mut self, ran: std::result::Result<(), String>) -> std::result::Result<(), String> {
        let exited = self.child.try_wait().ok().flatten();
        match (ran, exited) {
            (Ok(()), None) => Ok(()),
            (ran, exited) => {
                let said = fs::read_to_string(&self.log).unwrap_or_default();
                let said = said.lines().last().unwrap_or("nothing").to_owned();
                let state = exited.map_or("still running".to_owned(), |s| format!("exited: {s}"));
                let ran = ran
                    .err()
                    .unwrap_or_else(|| "the net bench passed".to_owned());
                Err(format!(
                    "{ran}; the Go echo server {state}, its last stderr line: {said} ({})",
                    self.log.display()
                ))
            }
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// After a Go program ran (`outcome`), gives each of `benches` that has no
/// Go row in `results` a skip line: the program's failure, or the fact that
/// it wrote nothing for that bench.
fn fill_missing(
    results: &Path,
    benches: &[&str],
    outcome: &std::result::Result<(), String>,
) -> Result<()> {
    let text = match fs::read_to_string(results) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error(format!("cannot read {}: {e}", results.display()))),
    };
    let mut lines = String::new();
    for bench in benches {
        let row_start = format!(
            "{{\"bench\":{},\"subject\":{}",
            json_string(bench),
            json_string(SUBJECT)
        );
        if text.lines().any(|l| l.starts_with(&row_start)) {
            continue;
        }
        let reason = match outcome {
            Err(reason) => reason.clone(),
            Ok(()) => "the Go program ran but recorded no row for this bench".to_owned(),
        };
        eprintln!("go peer: {bench} skipped: {reason}");
        lines.push_str(&skip_line(bench, SUBJECT, &reason));
    }
    if lines.is_empty() {
        return Ok(());
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(results)
        .and_then(|mut f| f.write_all(lines.as_bytes()))
        .map_err(|e| Error(format!("cannot append to {}: {e}", results.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names `micro` declares (`const name = "group/bench"` in its Go
    /// files) are the ones xtask writes skip lines for.
    #[test]
    fn micro_benches_match_the_go_program() {
        let dir = project_root().join(MODULE_DIR).join("micro");
        let mut declared = Vec::new();
        for entry in fs::read_dir(&dir).expect("benches/peers/go/micro exists") {
            let path = entry.expect("directory entry").path();
            if path.extension().is_none_or(|e| e != "go") {
                continue;
            }
            let text = fs::read_to_string(&path).expect("a Go file");
            for line in text.lines() {
                let Some((_, value)) = line.split_once("= \"") else {
                    continue;
                };
                let name = value.trim_end().trim_end_matches('"');
                if name.starts_with("core/") || name.starts_with("sync/") {
                    declared.push(name.to_owned());
                }
            }
        }
        declared.sort();
        let mut listed: Vec<String> = MICRO_BENCHES.iter().map(|s| (*s).to_owned()).collect();
        listed.sort();
        assert_eq!(declared, listed);
    }

    #[test]
    fn benches_without_a_go_row_get_a_skip_line() {
        let dir = std::env::temp_dir().join(format!("xtask-go-peer-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir");
        let results = dir.join("results.jsonl");
        fs::write(
            &results,
            "{\"bench\":\"core/spawn_join\",\"subject\":\"go\",\"median\":1,\"min\":1,\"max\":1,\
             \"unit\":\"ns\",\"note\":null}\n\
             {\"bench\":\"core/yield_10k\",\"subject\":\"green\",\"median\":1,\"min\":1,\
             \"max\":1,\"unit\":\"ns\",\"note\":null}\n",
        )
        .expect("write results");
        fill_missing(
            &results,
            &["core/spawn_join", "core/yield_10k"],
            &Err("micro crashed \"badly\"".to_owned()),
        )
        .expect("append");
        let text = fs::read_to_string(&results).expect("read results");
        let added: Vec<&str> = text.lines().skip(2).collect();
        assert_eq!(
            added,
            ["{\"bench\":\"core/yield_10k\",\"subject\":\"go\",\
                 \"skipped\":\"micro crashed \\\"badly\\\"\"}"]
        );
        fill_missing(&results, &["core/spawn_join"], &Ok(())).expect("nothing to add");
        assert_eq!(fs::read_to_string(&results).expect("read"), text);
        fs::remove_dir_all(&dir).expect("remove temp dir");
    }
}
