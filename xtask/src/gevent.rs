//! `cargo xtask gevent-traces [--check]`: the gevent oracle for scheduling
//! order (see `tests/gevent_order/README.md`).
//!
//! Every `tests/gevent_order/*.py` is a small gevent program that prints one
//! event per line. This task runs each with a pinned gevent in a virtualenv
//! under the target directory (`target/gevent-venv`, made on first use with
//! `python3 -m venv` and `pip install gevent==VERSION` of [`GEVENT`], see
//! `venv.rs`) and:
//!
//! * without `--check`, writes each program's stdout next to it as
//!   `NN_name.trace` (and removes traces whose program is gone);
//! * with `--check`, writes nothing and fails if any trace differs, listing
//!   the programs with a short line diff each.
//!
//! A program that exits non-zero or writes to stderr fails the task: the
//! traces must be exactly what the programs print, nothing else.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{bail, project_root, Error, Result};
use crate::venv::{self, Pin};

/// The gevent release the traces were recorded with (and the one the
/// bench's gevent peer runs).
pub(crate) const GEVENT: Pin = Pin {
    name: "gevent",
    module: "gevent",
    version: "26.9.0",
};

/// Where the programs and their traces live, from the workspace root.
const PROGRAM_DIR: &str = "tests/gevent_order";

/// At most this many diff lines are shown per differing program.
const DIFF_LINES: usize = 24;

/// Options of `cargo xtask gevent-traces`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct GeventOptions {
    /// Compare with the recorded traces instead of writing them.
    pub(crate) check: bool,
}

impl GeventOptions {
    /// Parses the arguments that follow `gevent-traces`.
    pub(crate) fn parse(args: &[String]) -> Result<GeventOptions> {
        let mut opts = GeventOptions::default();
        for arg in args {
            match arg.as_str() {
                "--check" => opts.check = true,
                other => {
                    bail!("xtask gevent-traces: unknown argument `{other}` (expected --check)")
                }
            }
        }
        Ok(opts)
    }
}

/// Runs every program; writes or checks the traces.
pub(crate) fn run_all(opts: &GeventOptions) -> Result<()> {
    let root = project_root();
    let python = venv::ensure(&venv::dir("gevent-venv"), &[GEVENT])?;
    let dir = root.join(PROGRAM_DIR);
    let programs = files_with_ext(&dir, "py")?;
    if programs.is_empty() {
        bail!("no programs in {}", dir.display());
    }

    let mut differing = Vec::new();
    let mut written = 0;
    for program in &programs {
        let actual = run_program(&python, program)?;
        let trace = program.with_extension("trace");
        let recorded = fs::read_to_string(&trace).ok();
        if recorded.as_deref() == Some(actual.as_str()) {
            continue;
        }
        if opts.check {
            differing.push((file_name(program), recorded, actual));
        } else {
            fs::write(&trace, &actual)
                .map_err(|e| Error(format!("writing {}: {e}", trace.display())))?;
            written += 1;
        }
    }

    let orphans: Vec<PathBuf> = files_with_ext(&dir, "trace")?
        .into_iter()
        .filter(|t| !t.with_extension("py").exists())
        .collect();

    if !opts.check {
        for orphan in &orphans {
            fs::remove_file(orphan)
                .map_err(|e| Error(format!("removing {}: {e}", orphan.display())))?;
        }
        println!(
            "gevent-traces: {} programs, {written} trace(s) written, {} stale trace(s) removed",
            programs.len(),
            orphans.len()
        );
        return Ok(());
    }

    for (name, recorded, actual) in &differing {
        eprintln!("\n--- {name}: recorded trace vs gevent {}", GEVENT.version);
        match recorded {
            None => eprintln!("(no trace recorded)"),
            Some(recorded) => {
                for line in line_diff(recorded, actual, DIFF_LINES) {
                    eprintln!("{line}");
                }
            }
        }
    }
    for orphan in &orphans {
        eprintln!("\n{}: trace without a program", file_name(orphan));
    }
    if differing.is_empty() && orphans.is_empty() {
        println!("gevent-traces: {} programs match", programs.len());
        Ok(())
    } else {
        let names: Vec<&str> = differing.iter().map(|(n, _, _)| n.as_str()).collect();
        bail!(
            "gevent-traces --check: {} differing ({}), {} stale trace(s); \
             re-record with `cargo xtask gevent-traces`",
            differing.len(),
            names.join(", "),
            orphans.len()
        )
    }
}

/// Runs one program and returns its stdout; a non-zero exit or any stderr
/// output is an error.
fn run_program(python: &Path, program: &Path) -> Result<String> {
    let name = file_name(program);
    let out = Command::new(python)
        .arg(program)
        .current_dir(program.parent().expect("a program lives in a directory"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONHASHSEED", "0")
        .output()
        .map_err(|e| Error(format!("{name}: could not start python: {e}")))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !stderr.is_empty() {
        bail!("{name}: exited with {}; stderr:\n{stderr}", out.status);
    }
    String::from_utf8(out.stdout).map_err(|_| Error(format!("{name}: stdout is not UTF-8")))
}

/// The files of `dir` ending in `.ext`, sorted by name.
fn files_with_ext(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let entries =
        fs::read_dir(dir).map_err(|e| Error(format!("reading {}: {e}", dir.display())))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension() == Some(OsStr::new(ext)))
        .collect();
    files.sort();
    Ok(files)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .unwrap_or(path.as_os_str())
        .to_string_lossy()
        .into_owned()
}

/// A line diff of `old` against `new` (longest common subsequence), as
/// `-`/`+`/` ` lines, cut to `max` lines; unchanged lines far from a change
/// are left out.
fn line_diff(old: &str, new: &str, max: usize) -> Vec<String> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // lcs[i][j]: length of the longest common subsequence of a[i..], b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            ops.push(('+', b[j]));
            j += 1;
        } else {
            ops.push(('-', a[i]));
            i += 1;
        }
    }
    // Keep changes and up to two unchanged lines around each.
    let near_change = |k: usize| {
        let lo = k.saturating_sub(2);
        let hi = (k + 2).min(ops.len() - 1);
        ops[lo..=hi].iter().any(|(op, _)| *op != ' ')
    };
    let mut out = Vec::new();
    let mut skipped = false;
    for (k, (op, line)) in ops.iter().enumerate() {
        if near_change(k) {
            if skipped {
                out.push(String::from("  ..."));
            }
            skipped = false;
            out.push(format!("{op} {line}"));
        } else {
            skipped = true;
        }
    }
    if out.len() > max {
        let more = out.len() - max;
        out.truncate(max);
        out.push(format!("  ... ({more} more diff lines)"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_options() {
        assert_eq!(GeventOptions::parse(&[]).unwrap(), GeventOptions::default());
        let check = GeventOptions::parse(&["--check".to_string()]).unwrap();
        assert!(check.check);
        assert!(GeventOptions::parse(&["--frob".to_string()]).is_err());
    }

    #[test]
    fn diff_shows_moved_line_with_context() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\n";
        let new = "a\nb\nc\nd\ne\ng\nf\nh\n";
        let diff = line_diff(old, new, 100);
        assert!(diff.contains(&String::from("- f")) || diff.contains(&String::from("- g")));
        assert!(diff.contains(&String::from("+ f")) || diff.contains(&String::from("+ g")));
        assert!(
            !diff.contains(&String::from("  a")),
            "far context is cut: {diff:?}"
        );
        assert_eq!(diff[0], "  ...");
    }

    #[test]
    fn diff_of_equal_texts_is_empty_and_long_diffs_are_cut() {
        assert!(line_diff("x\ny\n", "x\ny\n", 10).is_empty());
        let old: String = (0..50).map(|i| format!("{i}\n")).collect();
        let diff = line_diff(&old, "", 5);
        assert_eq!(diff.len(), 6);
        assert!(diff[5].contains("45 more"));
    }

    #[test]
    fn every_program_has_a_trace() {
        let dir = project_root().join(PROGRAM_DIR);
        let programs = files_with_ext(&dir, "py").unwrap();
        assert!(programs.len() >= 45, "{} programs", programs.len());
        for program in programs {
            assert!(
                program.with_extension("trace").is_file(),
                "{} has no recorded trace: run `cargo xtask gevent-traces`",
                program.display()
            );
        }
    }
}
