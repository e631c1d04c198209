//! The workspace's developer tasks, run as `cargo xtask <task>` (the alias is
//! in `.cargo/config.toml`; see rust-analyzer's xtask and STYLE rule 19).
//!
//! * `cargo xtask test [--valgrind]`: fmt, clippy, every test in debug and in
//!   release, green-loop and green-core again on the epoll backend, then the
//!   tidy test; ends with `xtask test: N passed, M failed, K skipped`.
//! * `cargo xtask bench [--quick] [--http] [--compare OLD.json] [FILTER]`:
//!   every bench in `benches/` and every peer outside cargo (gevent,
//!   eventlet, Go) in one run with a progress line, then a table with
//!   ratios to green and `target/bench/report.{json,md,svg}`; `--compare`
//!   adds the change from an earlier report.
//! * `cargo xtask examples`: build `examples/` and drive each one (also a
//!   step of `test`).
//! * `cargo xtask tidy`: the house rules as `path:line` reports.
//! * `cargo xtask ci`: `test`, then `bench --quick` as a smoke run.
//! * `cargo xtask gevent-traces [--check]`: run `tests/gevent_order/*.py`
//!   with a pinned gevent and write (or check) their `.trace` files.
//!
//! std only, on purpose: this crate is built on every run of every task.

mod bench;
mod examples;
mod gevent;
mod host;
// Shared with the bench harness, which writes the same records.
#[path = "../../benches/support/json.rs"]
mod json;
mod json_value;
mod peers;
mod report;
mod svg;
mod test;
mod tidy;
mod util;
mod venv;

use std::process::ExitCode;

use util::{Result, TestCounts};

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  test [--valgrind]        fmt, clippy, cargo package, tests (debug, release,
                           epoll backend), tidy
  bench [OPTIONS] [FILTER] run every bench and peer (tokio, may, gevent,
                           eventlet, Go, ...), print the table and write
                           target/bench/report.{json,md,svg}
      FILTER               only the benches whose name contains it (ctx/)
      --quick              fewer, shorter samples: CI's smoke run
      --http               only the HTTP benches (the filter http/)
      --compare OLD.json   then print each median's change from OLD.json,
                           marking regressions beyond 10%
  examples                 build examples/ and drive each one (a step of test)
  tidy                     check the house rules (also a #[test] in xtask)
  ci                       test, then bench --quick
  gevent-traces [--check]  record tests/gevent_order/*.trace with gevent (or compare)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(task) = args.first() else {
        eprintln!("{USAGE}");
        return ExitCode::FAILURE;
    };
    let rest = &args[1..];
    if rest.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let result = match task.as_str() {
        "test" => {
            test::TestOptions::parse(rest).and_then(|opts| with_counts(|c| test::run_all(&opts, c)))
        }
        "bench" => bench::BenchOptions::parse(rest).and_then(|opts| bench::run_all(&opts)),
        "examples" => with_counts(examples::run_all),
        "tidy" => tidy::run(),
        "ci" => ci(rest),
        "gevent-traces" => {
            gevent::GeventOptions::parse(rest).and_then(|opts| gevent::run_all(&opts))
        }
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(util::Error(format!("unknown task `{other}`\n\n{USAGE}"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // An empty message means the error was reported already, before
            // the summary line that must stay last.
            if !e.0.is_empty() {
                eprintln!("\nerror: {e}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Runs the test matrix and prints its summary line last, pass or fail.
fn with_counts(f: impl FnOnce(&mut TestCounts) -> Result<()>) -> Result<()> {
    let mut counts = TestCounts::default();
    let result = f(&mut counts);
    if let Err(e) = &result {
        eprintln!("\nerror: {e}");
    }
    println!("{}", counts.summary());
    result.map_err(|_| util::Error(String::new()))
}

/// `cargo xtask ci`: the tests, a quick bench run so benches never rot, and
/// the test summary again as the very last line, for CI to read.
fn ci(rest: &[String]) -> Result<()> {
    if let Some(arg) = rest.first() {
        return Err(util::Error(format!(
            "xtask ci takes no arguments (got `{arg}`)"
        )));
    }
    let mut counts = TestCounts::default();
    let tested = test::run_all(&test::TestOptions::default(), &mut counts);
    if let Err(e) = tested {
        eprintln!("\nerror: {e}");
        println!("{}", counts.summary());
        return Err(util::Error(String::new()));
    }
    println!("{}", counts.summary());
    let benched = bench::run_all(&bench::BenchOptions {
        quick: true,
        ..Default::default()
    });
    if let Err(e) = &benched {
        eprintln!("\nerror: {e}");
    }
    println!("{}", counts.summary());
    benched.map_err(|_| util::Error(String::new()))
}
