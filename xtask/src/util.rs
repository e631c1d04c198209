//! Small helpers shared by the subcommands: where the workspace is, which
//! `cargo` to call, and how to run a step so that a failure names it.
//!
//! Every step is a child process whose output goes straight to the terminal.
//! Test steps additionally have their stdout read line by line so the
//! `test result:` summaries that libtest prints can be added up.

use std::env;
use std::ffi::OsString;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// An error that ends the subcommand: a sentence naming what failed.
#[derive(Debug)]
pub(crate) struct Error(pub(crate) String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Result of an xtask step.
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// Builds an [`Error`] from a format string.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::util::Error(format!($($arg)*)))
    };
}
pub(crate) use bail;

/// The workspace root: the parent of this crate's manifest directory.
pub(crate) fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` (relative to the
/// workspace root when relative, as cargo reads it), or `target` under the
/// workspace root. Everything xtask writes (reports, venvs, Go builds) goes
/// under it, beside cargo's own output.
pub(crate) fn target_dir() -> PathBuf {
    let root = project_root();
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map_or_else(|| root.join("target"), |dir| root.join(dir))
}

/// The `cargo` that started us (`$CARGO`), so a `+toolchain` choice carries over.
pub(crate) fn cargo() -> OsString {
    env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// A `cargo` command whose working directory is the workspace root.
pub(crate) fn cargo_cmd<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new(cargo());
    cmd.args(args).current_dir(project_root());
    cmd
}

/// Whether `program --version` runs: used to detect optional tools (valgrind).
pub(crate) fn have_program(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Prints the banner of a step, the way every step starts.
pub(crate) fn banner(step: &str, cmd: &Command) {
    let envs: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_string_lossy(), v?.to_string_lossy())))
        .collect();
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let env_prefix = if envs.is_empty() {
        String::new()
    } else {
        format!("{} ", envs.join(" "))
    };
    eprintln!(
        "\n==> {step}: {env_prefix}{} {}",
        Path::new(cmd.get_program())
            .file_name()
            .unwrap_or(cmd.get_program())
            .to_string_lossy(),
        args.join(" ")
    );
}

/// Runs `cmd` with inherited stdio; a non-zero exit fails the step `step`.
pub(crate) fn run(step: &str, cmd: &mut Command) -> Result<()> {
    banner(step, cmd);
    let status = cmd
        .status()
        .map_err(|e| Error(format!("step `{step}`: could not start command: {e}")))?;
    if !status.success() {
        bail!("step `{step}` failed ({status})");
    }
    Ok(())
}

/// What the test steps really did: libtest's `test result:` lines summed,
/// plus a failure for every step or test binary that failed without one
/// (a crash, a non-zero exit after `ok`, a build error, fmt or clippy).
///
/// A test that finds it cannot run here (no io_uring, a large
/// `vm.max_map_count`) prints a line starting with `skipped:` and returns;
/// libtest counts it as passed. Run with `--show-output`, libtest prints a
/// passing test's captured stdout under `successes:`, and such a test is
/// moved from passed to skipped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct TestCounts {
    pub(crate) passed: u64,
    pub(crate) failed: u64,
    /// Ignored tests (`#[ignore]`, including child-process bodies run only
    /// from their parent) and tests that skipped themselves at run time:
    /// neither did what it checks, so neither is passed.
    pub(crate) skipped: u64,
    /// One sentence per failure no `test result:` line counted.
    pub(crate) unreported: Vec<String>,
    /// Where the current binary's output is (see [`TestCounts::add_line`]).
    section: Section,
    /// Passing tests of the current binary that said `skipped:`.
    pending_skips: u64,
}

/// Which part of a libtest binary's output a line is in.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Section {
    /// Test lines, or anything else.
    #[default]
    Other,
    /// After `successes:`, outside a test's stdout block.
    Successes,
    /// Inside a passing test's `---- name stdout ----` block; `true` once
    /// that test was counted as skipped.
    SuccessBlock(bool),
    /// After `failures:`: a failed test stays failed whatever it printed.
    Failures,
    /// Inside a failed test's `---- name stdout ----` block.
    FailureBlock,
}

impl TestCounts {
    /// Adds the counts of one `test result:` line, if `line` is one, and
    /// notes a passing test that printed `skipped:` (see the type's docs).
    /// Returns whether `line` was a result line that counted.
    ///
    /// A test's captured output (the `---- name stdout ----` blocks that
    /// `--show-output` and failures print) is the test's, not libtest's: a
    /// test that prints a `test result:` line of its own (xtask's tests of
    /// this very parser do) must not be counted as a binary's result.
    pub(crate) fn add_line(&mut self, line: &str) -> bool {
        let trimmed = line.trim_end();
        if trimmed.starts_with("running ") && trimmed.ends_with(" tests")
            || trimmed == "running 1 test"
        {
            // A binary's first line: whatever the last one left open ends.
            self.section = Section::Other;
            self.pending_skips = 0;
            return false;
        }
        let captured = matches!(
            self.section,
            Section::SuccessBlock(_) | Section::FailureBlock
        );
        if !captured {
            if let Some(result) = parse_test_result(line) {
                let skips = self.pending_skips.min(result.passed);
                self.passed += result.passed - skips;
                self.failed += result.failed;
                self.skipped += result.ignored + skips;
                self.section = Section::Other;
                self.pending_skips = 0;
                return true;
            }
        }
        if trimmed == "successes:" {
            self.section = Section::Successes;
        } else if trimmed == "failures:" {
            self.section = Section::Failures;
        } else if trimmed.starts_with("---- ") && trimmed.ends_with(" stdout ----") {
            match self.section {
                Section::Successes | Section::SuccessBlock(_) => {
                    self.section = Section::SuccessBlock(false);
                }
                Section::Failures | Section::FailureBlock => {
                    self.section = Section::FailureBlock;
                }
                Section::Other => {}
            }
        } else if self.section == Section::SuccessBlock(false) && trimmed.starts_with("skipped:") {
            self.pending_skips += 1;
            self.section = Section::SuccessBlock(true);
        }
        false
    }

    /// Counts a failure that no `test result:` line shows, saying what it was.
    pub(crate) fn add_unreported(&mut self, what: String) {
        self.failed += 1;
        self.unreported.push(what);
    }

    /// The closing line CI reads: `xtask test: N passed, M failed, K
    /// skipped`, followed by what failed outside libtest's counts, if any.
    /// Tests must run with `--show-output` for self-skips to be seen.
    pub(crate) fn summary(&self) -> String {
        let mut line = format!(
            "xtask test: {} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        );
        if !self.unreported.is_empty() {
            line.push_str(" (");
            line.push_str(&self.unreported.join("; "));
            line.push(')');
        }
        line
    }
}

/// The figures of one libtest `test result:` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TestResult {
    pub(crate) passed: u64,
    pub(crate) failed: u64,
    pub(crate) ignored: u64,
}

/// Parses `test result: ok. 12 passed; 0 failed; 1 ignored; ...`; `None`
/// for any other line.
pub(crate) fn parse_test_result(line: &str) -> Option<TestResult> {
    let rest = line.trim().strip_prefix("test result:")?;
    let mut passed = None;
    let mut failed = None;
    let mut ignored = 0;
    for part in rest.split([';', '.']) {
        let mut words = part.split_whitespace();
        if let (Some(n), Some(what)) = (words.next(), words.next()) {
            if let Ok(n) = n.parse::<u64>() {
                match what {
                    "passed" => passed = Some(n),
                    "failed" => failed = Some(n),
                    "ignored" => ignored = n,
                    _ => {}
                }
            }
        }
    }
    Some(TestResult {
        passed: passed?,
        failed: failed?,
        ignored,
    })
}

/// The test binary a line of cargo's stderr says starts (`Running
/// unittests src/lib.rs (target/...)`, `Doc-tests green_core`), if it is one.
/// Colour codes (`CARGO_TERM_COLOR=always`) are dropped first.
pub(crate) fn parse_binary_start(line: &str) -> Option<String> {
    let line = strip_ansi(line);
    let line = line.trim();
    (line.starts_with("Running ") || line.starts_with("Doc-tests ")).then(|| line.to_owned())
}

/// `line` without ANSI escape sequences (`ESC [ ... letter`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip up to and including the sequence's final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Runs a test command with `counts` (see [`run_tests`]), counting a failure
/// of a step that runs no tests (fmt, clippy, package) as one failed.
pub(crate) fn run_counted(step: &str, cmd: &mut Command, counts: &mut TestCounts) -> Result<()> {
    run(step, cmd).inspect_err(|_| counts.add_unreported(format!("step `{step}` failed")))
}

/// Runs a test command: stdout is echoed line by line and its `test result:`
/// lines are added to `counts`; stderr is echoed too and cargo's lines that
/// start a test binary are noted. Cargo runs the binaries one after another,
/// so the k-th `test result:` belongs to the k-th binary started: a binary
/// started without its result line (it crashed, or exited early) counts as
/// one failed, by name. A non-zero exit that nothing else explains (a build
/// error, a binary that printed `ok` and then exited non-zero) counts as one
/// failed too. A non-zero exit fails the step `step`, after the counts.
pub(crate) fn run_tests(step: &str, cmd: &mut Command, counts: &mut TestCounts) -> Result<()> {
    banner(step, cmd);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error(format!("step `{step}`: could not start command: {e}")))?;
    let stdout = child.stdout.take().expect("stdout was piped");
    let stderr = child.stderr.take().expect("stderr was piped");
    // Read on its own thread, so neither pipe can fill while the other is read.
    let started = std::thread::spawn(move || {
        let mut started = Vec::new();
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            eprintln!("{line}");
            if let Some(binary) = parse_binary_start(&line) {
                started.push(binary);
            }
        }
        started
    });
    let failed_before = counts.failed;
    let mut results = 0_usize;
    let mut read_error = None;
    for line in BufReader::new(stdout).lines() {
        match line {
            Ok(line) => {
                println!("{line}");
                if counts.add_line(&line) {
                    results += 1;
                }
            }
            Err(e) => {
                read_error = Some(e);
                break;
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| Error(format!("step `{step}`: waiting for command: {e}")))?;
    let started = started.join().unwrap_or_default();
    for binary in started.iter().skip(results) {
        counts.add_unreported(format!(
            "{binary} ended without a `test result:` line (crashed or exited early; \
             step `{step}`: {status})"
        ));
    }
    if !status.success() && counts.failed == failed_before {
        counts.add_unreported(format!(
            "step `{step}` exited non-zero ({status}) with every test binary's result \
             passing: a build error, or a binary failing after its tests"
        ));
    }
    if let Some(e) = read_error {
        bail!("step `{step}`: reading output: {e}");
    }
    if !status.success() {
        bail!("step `{step}` failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_libtest_summaries() {
        assert_eq!(
            parse_test_result(
                "test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s"
            ),
            Some(TestResult { passed: 12, failed: 0, ignored: 1 })
        );
        assert_eq!(
            parse_test_result(
                "test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out"
            ),
            Some(TestResult {
                passed: 3,
                failed: 2,
                ignored: 0
            })
        );
        assert_eq!(parse_test_result("running 3 tests"), None);
        let mut counts = TestCounts::default();
        counts.add_line("test result: ok. 1 passed; 0 failed; 2 ignored");
        counts.add_line("test result: FAILED. 4 passed; 1 failed; 0 ignored");
        assert_eq!(
            counts.summary(),
            "xtask test: 5 passed, 1 failed, 2 skipped"
        );
        counts.add_unreported("step `fmt` failed".to_owned());
        assert_eq!(
            counts.summary(),
            "xtask test: 5 passed, 2 failed, 2 skipped (step `fmt` failed)"
        );
    }

    /// libtest's `--show-output` report: a passing test that printed
    /// `skipped:` is skipped; a failing one stays failed; a test that says
    /// it twice counts once.
    #[test]
    fn a_passing_test_that_said_skipped_counts_as_skipped() {
        let output = "\
running 4 tests
test probe ... ok
test real ... ok
test twice ... ok
test bad ... FAILED

successes:

---- probe stdout ----
skipped: io_uring unavailable

---- real stdout ----
hello
skipped: not at the start of its output, still a skip

---- twice stdout ----
skipped: one
skipped: two


successes:
    probe
    real
    twice

failures:

---- bad stdout ----
skipped: but then it failed

failures:
    bad

test result: FAILED. 3 passed; 1 failed; 2 ignored; 0 measured; 0 filtered out
";
        let mut counts = TestCounts::default();
        for line in output.lines() {
            counts.add_line(line);
        }
        assert_eq!((counts.passed, counts.failed, counts.skipped), (0, 1, 5));
        // The next binary starts clean.
        counts.add_line("test result: ok. 2 passed; 0 failed; 0 ignored");
        assert_eq!((counts.passed, counts.failed, counts.skipped), (2, 1, 5));
    }

    /// A passing or failing test that prints a `test result:` line of its
    /// own (as xtask's tests of this parser do, shown by `--show-output`)
    /// adds nothing; the binary's own line after the blocks counts.
    #[test]
    fn a_result_line_a_test_printed_is_not_counted() {
        let output = "\
running 2 tests
test fake_run ... ok
test fake_fail ... FAILED

successes:

---- fake_run stdout ----
test result: FAILED. 1 passed; 1 failed; 0 ignored

successes:
    fake_run

failures:

---- fake_fail stdout ----
test result: ok. 9 passed; 0 failed; 0 ignored

failures:
    fake_fail

test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out
";
        let mut counts = TestCounts::default();
        let results = output.lines().filter(|line| counts.add_line(line)).count();
        assert_eq!(results, 1);
        assert_eq!((counts.passed, counts.failed, counts.skipped), (1, 1, 0));
    }

    #[test]
    fn recognises_cargo_test_binary_starts() {
        assert_eq!(
            parse_binary_start("     Running unittests src/lib.rs (target/debug/deps/x-1)")
                .as_deref(),
            Some("Running unittests src/lib.rs (target/debug/deps/x-1)")
        );
        assert_eq!(
            parse_binary_start("   Doc-tests green_core").as_deref(),
            Some("Doc-tests green_core")
        );
        assert_eq!(
            parse_binary_start("\u{1b}[1m\u{1b}[92m     Running\u{1b}[0m tests/a.rs (a)")
                .as_deref(),
            Some("Running tests/a.rs (a)")
        );
        assert_eq!(parse_binary_start("   Compiling green v0.1.0"), None);
    }

    /// A shell stands in for cargo: it "starts" two binaries on stderr and
    /// prints one result, then dies as a crash would. The second binary
    /// counts as failed, by name, and the step fails.
    #[test]
    fn a_binary_without_its_result_line_counts_as_failed() {
        let mut sh = Command::new("sh");
        sh.arg("-c").arg(
            "echo '     Running tests/a.rs (a)' >&2; \
             echo 'test result: ok. 2 passed; 0 failed; 1 ignored'; \
             echo '     Running tests/b.rs (b)' >&2; \
             kill -SEGV $$",
        );
        let mut counts = TestCounts::default();
        assert!(run_tests("fake", &mut sh, &mut counts).is_err());
        assert_eq!((counts.passed, counts.failed, counts.skipped), (2, 1, 1));
        assert!(
            counts.unreported[0].starts_with("Running tests/b.rs (b) ended without"),
            "{:?}",
            counts.unreported
        );
    }

    /// A non-zero exit with every result passing (a build error) counts once.
    #[test]
    fn a_failing_step_without_failed_tests_counts_once() {
        let mut sh = Command::new("sh");
        sh.arg("-c").arg("echo 'error[E0425]: nope' >&2; exit 101");
        let mut counts = TestCounts::default();
        assert!(run_tests("fake build", &mut sh, &mut counts).is_err());
        assert_eq!((counts.passed, counts.failed), (0, 1));
        // A failing test is counted by its line, not again for the exit.
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg("echo 'test result: FAILED. 1 passed; 1 failed; 0 ignored'; exit 101");
        let mut counts = TestCounts::default();
        assert!(run_tests("fake test", &mut sh, &mut counts).is_err());
        assert_eq!((counts.passed, counts.failed), (1, 1));
        assert!(counts.unreported.is_empty());
    }
}
