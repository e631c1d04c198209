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

/// Tests passed and failed, summed over libtest's `test result:` lines.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TestCounts {
    pub(crate) passed: u64,
    pub(crate) failed: u64,
}

impl TestCounts {
    /// Adds the counts of one `test result:` line, if `line` is one.
    pub(crate) fn add_line(&mut self, line: &str) {
        if let Some((passed, failed)) = parse_test_result(line) {
            self.passed += passed;
            self.failed += failed;
        }
    }

    /// The closing line CI reads: `xtask test: N passed, M failed`.
    pub(crate) fn summary(&self) -> String {
        format!("xtask test: {} passed, {} failed", self.passed, self.failed)
    }
}

/// Parses `test result: ok. 12 passed; 0 failed; 1 ignored; ...` into
/// `(passed, failed)`; `None` for any other line.
pub(crate) fn parse_test_result(line: &str) -> Option<(u64, u64)> {
    let rest = line.trim().strip_prefix("test result:")?;
    let mut passed = None;
    let mut failed = None;
    for part in rest.split([';', '.']) {
        let mut words = part.split_whitespace();
        if let (Some(n), Some(what)) = (words.next(), words.next()) {
            if let Ok(n) = n.parse::<u64>() {
                match what {
                    "passed" => passed = Some(n),
                    "failed" => failed = Some(n),
                    _ => {}
                }
            }
        }
    }
    Some((passed?, failed?))
}

/// Runs a test command: stdout is echoed line by line and its `test result:`
/// lines are added to `counts`. A non-zero exit fails the step `step` (after
/// the counts of the failing run have been added).
pub(crate) fn run_tests(step: &str, cmd: &mut Command, counts: &mut TestCounts) -> Result<()> {
    banner(step, cmd);
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Error(format!("step `{step}`: could not start command: {e}")))?;
    let stdout = child.stdout.take().expect("stdout was piped");
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| Error(format!("step `{step}`: reading output: {e}")))?;
        println!("{line}");
        counts.add_line(&line);
    }
    let status = child
        .wait()
        .map_err(|e| Error(format!("step `{step}`: waiting for command: {e}")))?;
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
            Some((12, 0))
        );
        assert_eq!(
            parse_test_result(
                "test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out"
            ),
            Some((3, 2))
        );
        assert_eq!(parse_test_result("running 3 tests"), None);
        let mut counts = TestCounts::default();
        counts.add_line("test result: ok. 1 passed; 0 failed; 0 ignored");
        counts.add_line("test result: FAILED. 4 passed; 1 failed; 0 ignored");
        assert_eq!(counts.summary(), "xtask test: 5 passed, 1 failed");
    }
}
