//! `cargo xtask bench [--quick] [--http] [--compare OLD.json] [FILTER]`:
//! every bench with its peers in one run, then one report.
//!
//! # The run
//!
//! Each file `benches/<name>.rs` is one subject (STYLE rule 18) and a
//! `harness = false` binary built on `benches/support/harness.rs`. All of
//! them are built first by one `cargo bench --no-run` (its output is the
//! only build output shown, and one build links faster than one per bench),
//! then the binaries run one after another with:
//!
//! * `GREEN_BENCH_QUICK=1` for `--quick`, CI's smoke run (fewer, shorter
//!   samples; the heavy benches such as `ctx/million_unguarded` skip
//!   themselves);
//! * `GREEN_BENCH_FILTER=FILTER`, a substring of the bench names to run
//!   (`ctx/`, `core/spawn_join`); `--http` is the filter `http/`;
//! * `GREEN_BENCH_OUT=target/bench/results.jsonl`, to which every bench
//!   appends one JSON line per (bench, subject), measured or skipped;
//! * `GREEN_BENCH_PROGRESS=i/N name`, so the harness says on stderr which
//!   bench and subject runs and how far through its samples it is. xtask
//!   reads the binaries' output and shows that as one line rewritten in
//!   place on a terminal (one line per case in a log), with the result
//!   lines printed above it ([`Console`]).
//!
//! Then the peers that are not Rust run the same benches in their own
//! runtimes (`peers/`: gevent and eventlet in a venv, Go) and append their
//! rows, or a skipped row saying why, to the same file. A bench binary that
//! fails does not end the run: the others still run and the report is
//! still written, and the task fails at the end naming it.
//!
//! # The report
//!
//! The rows are gathered into `target/bench/report.json` (`bench/` under
//! `$CARGO_TARGET_DIR` when that is set, like everything xtask writes; with a header:
//! machine, UTC date, commit, mode), `report.md` and `report.svg` (a bar
//! chart of each subject's cost relative to green; `svg.rs`), and the table
//! is printed (`report.rs` says what its `ratio` means). `--compare
//! OLD.json` then prints the change of every median from an earlier
//! report, old or new format, marking a regression beyond 10%.
//!
//! # Instruction counts
//!
//! Without `--quick`, and when valgrind is installed, a fixed switch
//! scenario also runs under `valgrind --tool=callgrind` and its instruction
//! count per round trip goes to `target/bench/callgrind.json`: on a noisy
//! shared 2-core machine instruction counts repeat exactly where wall time
//! does not (rust-analyzer's `metrics` does the same).

use std::fs;
use std::io::{BufRead as _, BufReader, IsTerminal as _, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;

use crate::host::{git_commit, utc_now, Machine};
use crate::json::json_number;
use crate::json_value;
use crate::report::{self, Header, Report};
use crate::util::{bail, banner, cargo_cmd, have_program, project_root, run, Error, Result};
use crate::{peers, svg};

/// Options of `cargo xtask bench`.
#[derive(Debug, Default)]
pub(crate) struct BenchOptions {
    /// Fewer and shorter samples; skip the benches that take seconds.
    pub(crate) quick: bool,
    /// Substring of the bench names to run.
    pub(crate) filter: Option<String>,
    /// An earlier `report.json` to print the change from.
    pub(crate) compare: Option<PathBuf>,
}

/// The filter `--http` stands for: the HTTP benches (`http/hello`, ...).
const HTTP_FILTER: &str = "http/";

impl BenchOptions {
    /// Parses the arguments that follow `bench`.
    pub(crate) fn parse(args: &[String]) -> Result<BenchOptions> {
        let mut opts = BenchOptions::default();
        let mut http = false;
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => opts.quick = true,
                "--http" => http = true,
                "--compare" => {
                    let Some(path) = args.next() else {
                        bail!("xtask bench: --compare needs a file, e.g. --compare old-report.json")
                    };
                    opts.compare = Some(PathBuf::from(path));
                }
                flag if flag.starts_with("--compare=") => {
                    let path = &flag["--compare=".len()..];
                    if path.is_empty() {
                        bail!(
                            "xtask bench: --compare= needs a file, e.g. --compare=old-report.json"
                        )
                    }
                    opts.compare = Some(PathBuf::from(path));
                }
                flag if flag.starts_with('-') => {
                    bail!(
                        "xtask bench: unknown flag `{flag}` (expected --quick, --http or \
                         --compare OLD.json)"
                    )
                }
                filter => {
                    if let Some(old) = &opts.filter {
                        bail!("xtask bench: one FILTER only (got `{old}` and `{filter}`)");
                    }
                    opts.filter = Some(filter.to_owned());
                }
            }
        }
        if http {
            if let Some(filter) = &opts.filter {
                bail!(
                    "xtask bench: --http is the filter `{HTTP_FILTER}`; give it or FILTER \
                     `{filter}`, not both"
                );
            }
            opts.filter = Some(HTTP_FILTER.to_owned());
        }
        Ok(opts)
    }
}

/// Fixed callgrind scenario: `ctx/switch_round_trip`, run with two iteration
/// counts so that setup cancels out of the difference.
const CALLGRIND_SHORT: u64 = 1_000;
const CALLGRIND_LONG: u64 = 101_000;

/// Runs the benches and the peers, and writes the reports.
pub(crate) fn run_all(opts: &BenchOptions) -> Result<()> {
    let root = project_root();
    let out_dir = crate::util::target_dir().join("bench");
    // Read the old report first: a typo in its path should not cost a run.
    let old = match &opts.compare {
        Some(path) => {
            let text = fs::read_to_string(path).map_err(|e| io_err(path, e))?;
            let old = Report::from_json(&text).map_err(|e| {
                Error(format!(
                    "{}: not a report.json of `cargo xtask bench`: {e}",
                    path.display()
                ))
            })?;
            Some((path.display().to_string(), old))
        }
        None => None,
    };
    fs::create_dir_all(&out_dir).map_err(|e| io_err(&out_dir, e))?;
    let results = out_dir.join("results.jsonl");
    fs::write(&results, "").map_err(|e| io_err(&results, e))?;
    let header = Header {
        machine: Machine::this(),
        date: utc_now(),
        commit: git_commit(),
        quick: opts.quick,
        filter: opts.filter.clone(),
    };

    let benches = bench_names(&root.join("benches"))?;
    if benches.is_empty() {
        bail!("xtask bench: no benches found in benches/*.rs");
    }
    let executables = build(&benches)?;

    let mut console = Console::new();
    let http_env = if executables.iter().any(|(name, _)| name == "http")
        && HTTP_BENCHES
            .iter()
            .any(|b| opts.filter.as_deref().is_none_or(|f| b.contains(f)))
    {
        console.progress("[http] wrk, the gevent venv and Go's server");
        http_peers_env()
    } else {
        Vec::new()
    };
    let steps = benches.len() + PEERS.len();
    let mut failures = Vec::new();
    for (i, (name, exe)) in executables.iter().enumerate() {
        let place = format!("{}/{steps} {name}", i + 1);
        console.progress(&format!("[{place}] starting"));
        let mut cmd = Command::new(exe);
        // `--bench` is what `cargo bench` passes; the working directory is
        // the package root, as under cargo.
        cmd.arg("--bench")
            .current_dir(&root)
            .env("GREEN_BENCH_OUT", &results)
            .env("GREEN_BENCH_PROGRESS", &place)
            .envs(http_env.iter().map(|(k, v)| (k, v)));
        if opts.quick {
            cmd.env("GREEN_BENCH_QUICK", "1");
        }
        if let Some(filter) = &opts.filter {
            cmd.env("GREEN_BENCH_FILTER", filter);
        }
        let status = run_through(&mut cmd, &place, &mut console);
        console.finish_step();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => failures.push(format!("bench `{name}` ({s})")),
            Err(e) => failures.push(format!("bench `{name}` could not start ({e})")),
        }
    }
    for (i, (name, run_peer)) in PEERS.iter().enumerate() {
        let place = format!("{}/{steps} {name}", benches.len() + i + 1);
        console.progress(&format!("[{place}] starting"));
        let mut show = |message: &str| console.progress(&format!("[{place}] {message}"));
        let ran = run_peer(opts.quick, opts.filter.as_deref(), &results, &mut show);
        console.finish_step();
        if let Err(e) = ran {
            failures.push(format!("peer `{name}`: {e}"));
        }
    }

    let text = fs::read_to_string(&results).map_err(|e| io_err(&results, e))?;
    let rows =
        report::parse_rows(&text).map_err(|e| Error(format!("{}: {e}", results.display())))?;
    let callgrind_wanted = opts
        .filter
        .as_deref()
        .is_none_or(|f| "ctx/switch_round_trip".contains(f) || f.contains("callgrind"));
    if failures.is_empty() {
        let callgrind_runs = callgrind_wanted && !opts.quick;
        if let Some(message) = unmatched_filter(opts.filter.as_deref(), &rows, callgrind_runs) {
            bail!("{message}");
        }
    }
    let report = Report {
        header: Some(header),
        rows: report::grouped(&rows),
    };
    let written = [
        ("report.json", report.to_json()),
        ("report.md", report::report_md(&report)),
        ("report.svg", svg::chart(&report)),
    ];
    for (file, text) in &written {
        let path = out_dir.join(file);
        fs::write(&path, text).map_err(|e| io_err(&path, e))?;
    }

    println!();
    print!("{}", report::report_table(&report));
    println!(
        "\nwrote {}/report.{{json,md,svg}} (open report.svg in a browser for the chart)",
        out_dir.display()
    );
    if let Some((name, old)) = &old {
        println!();
        print!("{}", report::compare(old, name, &report));
    }

    let switch = executables.iter().find(|(name, _)| name == "switch");
    if let Some((_, exe)) = switch.filter(|_| !opts.quick && callgrind_wanted) {
        if have_program("valgrind") {
            if let Err(e) = callgrind(exe, &out_dir) {
                failures.push(format!("callgrind: {e}"));
            }
        } else {
            eprintln!("\n==> callgrind: valgrind is not installed, skipping instruction counts");
        }
    }
    if !failures.is_empty() {
        bail!(
            "xtask bench: {} failed (the report holds the rest):\n  {}",
            failures.len(),
            failures.join("\n  ")
        );
    }
    Ok(())
}

/// The rows of `benches/http.rs`.
const HTTP_BENCHES: [&str; 4] = [
    "http/hello",
    "http/hello_all_cores",
    "http/hello_cpu",
    "http/hello_all_cores_cpu",
];

/// What `benches/http.rs` needs from outside cargo, made ready before it
/// runs: wrk (installed from Debian's packages if missing; without it the
/// bench uses its own load generator and says so), gevent's interpreter
/// (`GREEN_BENCH_PYTHON`) and Go's server (`GREEN_BENCH_GO_HTTP`). What
/// cannot be had is left unset, and the bench writes the skip line.
fn http_peers_env() -> Vec<(&'static str, std::ffi::OsString)> {
    if !have_program("wrk") {
        if let Err(why) = peers::apt_install("wrk") {
            eprintln!("==> http: wrk is not installed and {why}; the bench's own load generator runs instead");
        }
    }
    let mut env = Vec::new();
    match peers::python::bench_python() {
        Ok(python) => env.push(("GREEN_BENCH_PYTHON", python.into_os_string())),
        Err(why) => eprintln!("==> http: no gevent row ({why})"),
    }
    match peers::go::ensure_go().and_then(|_| peers::go::build()) {
        Ok(dir) => env.push((
            "GREEN_BENCH_GO_HTTP",
            dir.join("http_hello").into_os_string(),
        )),
        Err(why) => eprintln!("==> http: no Go row ({why})"),
    }
    env
}

/// A runner of the benches in another language: appends its rows (or
/// skipped rows) to the results file; see `peers/mod.rs`.
type PeerRunner = fn(bool, Option<&str>, &Path, &mut dyn FnMut(&str)) -> Result<()>;

/// The peers outside cargo, run after the Rust benches, in this order.
const PEERS: [(&str, PeerRunner); 2] = [("python", peers::python::run), ("go", peers::go::run)];

/// The stems of `benches/*.rs`, sorted.
fn bench_names(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let path = entry.map_err(|e| io_err(dir, e))?.path();
        if path.extension().is_some_and(|e| e == "rs") {
            if let Some(stem) = path.file_stem() {
                names.push(stem.to_string_lossy().into_owned());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// Builds every bench in one `cargo bench --no-run` and returns each
/// bench's executable, in the order of `benches`. Cargo's progress and
/// diagnostics go to the terminal as usual; its JSON messages on stdout
/// name the executables.
fn build(benches: &[String]) -> Result<Vec<(String, PathBuf)>> {
    let mut cmd = cargo_cmd([
        "bench",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    for name in benches {
        cmd.args(["--bench", name]);
    }
    banner("build benches", &cmd);
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Error(format!("step `build benches`: could not start cargo: {e}")))?;
    let stdout = child.stdout.take().expect("stdout was piped");
    let mut found = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| Error(format!("reading cargo's messages: {e}")))?;
        if let Some(artifact) = bench_executable(&line) {
            found.push(artifact);
        }
    }
    let status = child
        .wait()
        .map_err(|e| Error(format!("step `build benches`: {e}")))?;
    if !status.success() {
        bail!("step `build benches` failed ({status})");
    }
    benches
        .iter()
        .map(|name| {
            let exe = found
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, exe)| exe.clone())
                .ok_or_else(|| {
                    Error(format!(
                        "cargo built no executable for bench `{name}`: is there a [[bench]] \
                         entry with `name = \"{name}\"` in Cargo.toml?"
                    ))
                })?;
            Ok((name.clone(), exe))
        })
        .collect()
}

/// The (bench name, executable) of a `compiler-artifact` message about a
/// bench target; `None` for any other line.
fn bench_executable(line: &str) -> Option<(String, PathBuf)> {
    if !line.starts_with('{') {
        return None;
    }
    let msg = json_value::parse(line).ok()?;
    if msg.get("reason")?.as_str()? != "compiler-artifact" {
        return None;
    }
    let target = msg.get("target")?;
    let is_bench = target
        .get("kind")?
        .as_array()?
        .iter()
        .any(|k| k.as_str() == Some("bench"));
    let exe = msg.get("executable")?.as_str()?;
    let name = target.get("name")?.as_str()?;
    is_bench.then(|| (name.to_owned(), PathBuf::from(exe)))
}

/// The terminal while the benches run. Bench binaries write progress lines
/// (`[3/12 net] net/echo_1conn tokio: sample 7/50`, see the harness) to
/// stderr; the console shows the latest one in place when stderr is a
/// terminal, and only each case's first in a log, so a log names the case
/// that hung without a line per sample. Every other line of the binaries
/// (results, notes, panics) passes through the console too: it erases the
/// progress line, prints the line, and draws the progress again, so the two
/// never share a line.
struct Console {
    /// Whether stderr is a terminal, where a line can be rewritten.
    terminal: bool,
    /// Columns of that terminal: a longer line would wrap, and `\r` would
    /// then rewrite only its last row.
    width: usize,
    out: Box<dyn Write>,
    err: Box<dyn Write>,
    /// The progress line drawn now (terminal only).
    current: String,
    /// The case last named (log only).
    last_case: String,
}

impl Console {
    /// The console on this process's stdout and stderr.
    fn new() -> Console {
        // `COLUMNS` is exported by most interactive shells.
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse::<usize>().ok())
            .unwrap_or(80);
        Console::on(
            std::io::stderr().is_terminal(),
            width,
            Box::new(std::io::stdout()),
            Box::new(std::io::stderr()),
        )
    }

    fn on(terminal: bool, width: usize, out: Box<dyn Write>, err: Box<dyn Write>) -> Console {
        Console {
            terminal,
            width: width.max(20),
            out,
            err,
            current: String::new(),
            last_case: String::new(),
        }
    }

    /// Shows a progress line `[place] bench subject: step`.
    fn progress(&mut self, line: &str) {
        if self.terminal {
            self.current = line.to_owned();
            self.draw();
        } else {
            let case = line.split(": ").next().unwrap_or(line);
            if case != self.last_case {
                let _ = writeln!(self.err, "{case}");
                self.last_case = case.to_owned();
            }
        }
    }

    /// Prints a line of a bench's output on stdout or stderr, clear of the
    /// progress line.
    fn line(&mut self, text: &str, to_stderr: bool) {
        self.erase();
        let stream = if to_stderr {
            &mut self.err
        } else {
            &mut self.out
        };
        let _ = writeln!(stream, "{text}");
        let _ = stream.flush();
        self.draw();
    }

    /// A step ended: erase its progress line.
    fn finish_step(&mut self) {
        self.erase();
        self.current.clear();
        self.last_case.clear();
    }

    fn draw(&mut self) {
        if self.terminal && !self.current.is_empty() {
            let shown: String = self.current.chars().take(self.width - 1).collect();
            let _ = write!(self.err, "\r\x1b[K{shown}");
            let _ = self.err.flush();
        }
    }

    fn erase(&mut self) {
        if self.terminal && !self.current.is_empty() {
            let _ = write!(self.err, "\r\x1b[K");
            let _ = self.err.flush();
        }
    }
}

/// Runs one bench binary with its stdout and stderr read line by line into
/// `console`; lines on stderr starting with `[place] ` are its progress.
fn run_through(
    cmd: &mut Command,
    place: &str,
    console: &mut Console,
) -> std::io::Result<ExitStatus> {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout was piped");
    let stderr = child.stderr.take().expect("stderr was piped");
    let readers = [
        forward_lines(stdout, false, tx.clone()),
        forward_lines(stderr, true, tx),
    ];
    let tag = format!("[{place}] ");
    // Ends when both pipes are closed: the binary and any child it started
    // have exited.
    for (is_stderr, line) in rx {
        if is_stderr && line.starts_with(&tag) {
            console.progress(&line);
        } else {
            console.line(&line, is_stderr);
        }
    }
    for reader in readers {
        let _ = reader.join();
    }
    child.wait()
}

/// Sends each line of `stream` (lossily decoded, without its line ending)
/// as `(is_stderr, line)` until the stream ends.
fn forward_lines(
    stream: impl Read + Send + 'static,
    is_stderr: bool,
    tx: mpsc::Sender<(bool, String)>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']).to_owned();
                    if tx.send((is_stderr, line)).is_err() {
                        break;
                    }
                }
            }
        }
    })
}

/// Runs the switch scenario of the built `switch` bench under callgrind
/// twice and writes `callgrind.json` with the instructions per round trip.
fn callgrind(exe: &Path, out_dir: &Path) -> Result<()> {
    let mut totals = Vec::new();
    for iters in [CALLGRIND_SHORT, CALLGRIND_LONG] {
        let out_file = out_dir.join(format!("callgrind.switch.{iters}.out"));
        let mut cmd = Command::new("valgrind");
        cmd.arg("--tool=callgrind")
            .arg("--quiet")
            .arg(format!("--callgrind-out-file={}", out_file.display()))
            .arg(exe)
            .arg("--bench")
            .env("GREEN_BENCH_CALLGRIND", iters.to_string());
        run(&format!("callgrind switch x{iters}"), &mut cmd)?;
        let text = fs::read_to_string(&out_file).map_err(|e| io_err(&out_file, e))?;
        let total = callgrind_total(&text).ok_or_else(|| {
            Error(format!(
                "{}: no `summary:` or `totals:` line",
                out_file.display()
            ))
        })?;
        totals.push(total);
    }
    let per_iter =
        totals[1].saturating_sub(totals[0]) as f64 / (CALLGRIND_LONG - CALLGRIND_SHORT) as f64;
    let json = format!(
        "{{\"scenario\":\"ctx/switch_round_trip\",\"subject\":\"green\",\"tool\":\"callgrind\",\
         \"iterations\":[{CALLGRIND_SHORT},{CALLGRIND_LONG}],\"instructions\":[{},{}],\
         \"instructions_per_iter\":{}}}\n",
        totals[0],
        totals[1],
        json_number(per_iter)
    );
    let path = out_dir.join("callgrind.json");
    fs::write(&path, json).map_err(|e| io_err(&path, e))?;
    println!(
        "\ncallgrind: ctx/switch_round_trip (green) = {per_iter:.1} instructions per round trip ({})",
        path.display()
    );
    Ok(())
}

/// The event count of a callgrind output file (`summary:` or `totals:` line).
fn callgrind_total(text: &str) -> Option<u64> {
    text.lines()
        .filter_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .find_map(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// The error for a run whose filter let no bench through, most likely a
/// typo: better said than an empty table, and the previous report is kept
/// rather than replaced by an empty one. `None` when there is something to
/// report (rows, or the instruction counts of a `callgrind` filter).
fn unmatched_filter(
    filter: Option<&str>,
    rows: &[report::Row],
    callgrind_runs: bool,
) -> Option<String> {
    let filter = filter?;
    (rows.is_empty() && !callgrind_runs).then(|| {
        format!(
            "xtask bench: no bench name contains `{filter}` (FILTER is a substring of names \
             such as `core/spawn_join` or `net/`; each benches/*.rs lists its own at the top); \
             the previous report in target/bench was kept"
        )
    })
}

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error(format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_callgrind_output() {
        assert_eq!(callgrind_total("events: Ir\nsummary: 12345\n"), Some(12345));
        assert_eq!(callgrind_total("totals: 99\n"), Some(99));
        assert_eq!(callgrind_total("nothing"), None);
    }

    #[test]
    fn a_filter_that_matches_nothing_is_an_error_not_an_empty_report() {
        let row = report::parse_row(
            r#"{"bench":"core/spawn_join","subject":"green","median":1,"min":1,"max":1,"unit":"ns"}"#,
        )
        .unwrap();
        let message = unmatched_filter(Some("core/spwan"), &[], false).expect("an error");
        assert!(
            message.contains("no bench name contains `core/spwan`"),
            "{message}"
        );
        assert!(message.contains("previous report"), "{message}");
        assert_eq!(unmatched_filter(Some("core/"), &[row], false), None);
        assert_eq!(unmatched_filter(None, &[], false), None);
        // `callgrind` lets no bench through, but measures instructions.
        assert_eq!(unmatched_filter(Some("callgrind"), &[], true), None);
    }

    #[test]
    fn options_parse() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let o = BenchOptions::parse(&args(&["--quick", "ctx/"])).unwrap();
        assert!(o.quick);
        assert_eq!(o.filter.as_deref(), Some("ctx/"));
        assert!(BenchOptions::parse(&args(&["--fast"])).is_err());
        assert!(BenchOptions::parse(&args(&["a", "b"])).is_err());

        let o = BenchOptions::parse(&args(&["--http", "--compare", "old.json"])).unwrap();
        assert_eq!(o.filter.as_deref(), Some(HTTP_FILTER));
        assert_eq!(o.compare.as_deref(), Some(Path::new("old.json")));
        let o = BenchOptions::parse(&args(&["--compare=o.json"])).unwrap();
        assert_eq!(o.compare.as_deref(), Some(Path::new("o.json")));
        assert!(BenchOptions::parse(&args(&["--compare"])).is_err());
        let empty = BenchOptions::parse(&args(&["--compare="])).unwrap_err();
        assert!(empty.to_string().contains("needs a file"), "{empty}");
        assert!(BenchOptions::parse(&args(&["--http", "core/"])).is_err());
    }

    /// Both streams of a console into one buffer, as on a terminal.
    #[derive(Clone, Default)]
    struct Screen(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Screen {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Screen {
        fn bytes(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }

        /// The rows a terminal shows after the bytes: `\r` returns to the
        /// row's start, `ESC [K` erases from the cursor to the row's end,
        /// other characters overwrite.
        fn rows(&self) -> Vec<String> {
            let text = self.bytes();
            let mut rows = vec![Vec::<char>::new()];
            let mut col = 0;
            let mut chars = text.chars().peekable();
            while let Some(c) = chars.next() {
                let row = rows.last_mut().unwrap();
                match c {
                    '\n' => {
                        rows.push(Vec::new());
                        col = 0;
                    }
                    '\r' => col = 0,
                    '\x1b' => {
                        assert_eq!((chars.next(), chars.next()), (Some('['), Some('K')));
                        row.truncate(col);
                    }
                    c => {
                        if col < row.len() {
                            row[col] = c;
                        } else {
                            row.push(c);
                        }
                        col += 1;
                    }
                }
            }
            rows.into_iter().map(|r| r.into_iter().collect()).collect()
        }
    }

    /// A fake bench binary: progress on stderr between result lines on
    /// stdout, and one line of its own on stderr. (The two pipes are read
    /// by two threads, so lines of different streams may swap places; the
    /// tests below do not depend on their order.)
    const FAKE_BENCH: &str = "\
        echo '[1/2 fake] a/b green: warm-up' >&2; \
        echo '[1/2 fake] a/b green: sample 1/2' >&2; \
        echo '[1/2 fake] a/b green: sample 2/2' >&2; \
        echo 'a/b green median 5 ns'; \
        echo '[1/2 fake] a/b tokio: sample 1/2' >&2; \
        echo 'warning: something' >&2; \
        echo '[1/2 fake] a/b tokio: sample 2/2' >&2; \
        echo 'a/b tokio median 9 ns'";

    fn run_fake(terminal: bool) -> Screen {
        let screen = Screen::default();
        let mut console = Console::on(
            terminal,
            80,
            Box::new(screen.clone()),
            Box::new(screen.clone()),
        );
        console.progress("[1/2 fake] starting");
        let status = run_through(
            Command::new("sh").args(["-c", FAKE_BENCH]),
            "1/2 fake",
            &mut console,
        )
        .unwrap();
        console.finish_step();
        assert!(status.success());
        screen
    }

    fn sorted<S: AsRef<str>>(lines: impl IntoIterator<Item = S>) -> Vec<String> {
        let mut v: Vec<String> = lines.into_iter().map(|s| s.as_ref().to_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn progress_is_one_line_on_a_terminal_and_never_shares_one() {
        let screen = run_fake(true);
        let mut rows = screen.rows();
        // The progress line is erased at the end, leaving the cursor on an
        // empty row; every other row is one whole line of the binary's.
        assert_eq!(rows.pop().as_deref(), Some(""), "{:?}", screen.bytes());
        assert_eq!(
            sorted(&rows),
            sorted([
                "a/b green median 5 ns",
                "warning: something",
                "a/b tokio median 9 ns"
            ]),
            "{:?}",
            screen.bytes()
        );
        // It was drawn in place, sample by sample.
        assert!(screen
            .bytes()
            .contains("\r\x1b[K[1/2 fake] a/b tokio: sample 2/2"));
    }

    #[test]
    fn progress_in_a_log_names_each_case_once() {
        let screen = run_fake(false);
        let bytes = screen.bytes();
        assert!(!bytes.contains('\r'));
        assert_eq!(
            sorted(bytes.lines()),
            sorted([
                "[1/2 fake] starting",
                "[1/2 fake] a/b green",
                "a/b green median 5 ns",
                "[1/2 fake] a/b tokio",
                "warning: something",
                "a/b tokio median 9 ns",
            ])
        );
    }

    #[test]
    fn a_long_progress_line_is_cut_to_the_terminal() {
        let screen = Screen::default();
        let mut console = Console::on(true, 30, Box::new(screen.clone()), Box::new(screen.clone()));
        console.progress(&"x".repeat(100));
        assert_eq!(screen.rows(), ["x".repeat(29)]);
    }

    #[test]
    fn bench_executables_from_cargo_messages() {
        let bench = r#"{"reason":"compiler-artifact","package_id":"path+file:///w#green@0.1.0","target":{"kind":["bench"],"crate_types":["bin"],"name":"switch","src_path":"/w/benches/switch.rs","test":false},"profile":{"opt_level":"3"},"features":[],"filenames":["/t/release/deps/switch-1f2e"],"executable":"/t/release/deps/switch-1f2e","fresh":true}"#;
        assert_eq!(
            bench_executable(bench),
            Some((
                "switch".to_owned(),
                PathBuf::from("/t/release/deps/switch-1f2e")
            ))
        );
        let lib = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"green_core"},"executable":null}"#;
        assert_eq!(bench_executable(lib), None);
        let done = r#"{"reason":"build-finished","success":true}"#;
        assert_eq!(bench_executable(done), None);
        assert_eq!(bench_executable("   Compiling green v0.1.0"), None);
    }
}
