//! Python virtualenvs under the target directory, with pinned packages:
//! `target/gevent-venv` for `cargo xtask gevent-traces`, `target/bench-venv`
//! for the gevent and eventlet peers of `cargo xtask bench`.
//!
//! A venv is made on first use with `python3 -m venv` and filled with
//! `pip install NAME==VERSION` for each pin; it is reused as long as every
//! pinned package imports at its pinned version, and re-installed otherwise
//! (a pin was changed, or a package is missing).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{bail, run, Result};

/// A package the venv must hold at an exact version.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pin {
    /// The distribution's name on the package index (`pip install NAME`).
    pub(crate) name: &'static str,
    /// The module it is imported as.
    pub(crate) module: &'static str,
    pub(crate) version: &'static str,
}

/// The venv `NAME` under cargo's target directory.
pub(crate) fn dir(name: &str) -> PathBuf {
    crate::util::target_dir().join(name)
}

/// The venv's python, making the venv (or installing the pins) when it is
/// missing or does not hold every pinned version.
pub(crate) fn ensure(venv: &Path, pins: &[Pin]) -> Result<PathBuf> {
    let python = if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    };
    if installed(&python, pins)
        .iter()
        .zip(pins)
        .all(|(v, p)| v.as_deref() == Some(p.version))
    {
        return Ok(python);
    }
    if !python.exists() {
        run(
            "python venv",
            Command::new("python3").args([OsStr::new("-m"), "venv".as_ref(), venv.as_os_str()]),
        )
        .map_err(|e| {
            crate::util::Error(format!(
                "{e}: `python3 -m venv` could not make {} (on Debian, `apt-get install \
                 python3-venv` provides it)",
                venv.display()
            ))
        })?;
    }
    let specs: Vec<String> = pins
        .iter()
        .map(|p| format!("{}=={}", p.name, p.version))
        .collect();
    run(
        "pip install",
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(&specs),
    )?;
    let found = installed(&python, pins);
    let wrong: Vec<String> = pins
        .iter()
        .zip(&found)
        .filter(|(p, v)| v.as_deref() != Some(p.version))
        .map(|(p, v)| match v {
            Some(v) => format!("{} {v} (expected {})", p.name, p.version),
            None => format!("{} does not import", p.module),
        })
        .collect();
    if !wrong.is_empty() {
        bail!(
            "{} after pip install: {}; delete the venv to rebuild it",
            venv.display(),
            wrong.join(", ")
        );
    }
    Ok(python)
}

/// The version of each pin that `python` imports (`None` for a package
/// that is missing or fails to import, or when `python` does not run).
fn installed(python: &Path, pins: &[Pin]) -> Vec<Option<String>> {
    // One line per pin: its version, or `-` when it does not import.
    const PROBE: &str = "\
import importlib, importlib.metadata, sys, warnings
warnings.simplefilter('ignore')
for name, module in zip(sys.argv[1::2], sys.argv[2::2]):
    try:
        importlib.import_module(module)
        print(importlib.metadata.version(name))
    except Exception:
        print('-')
";
    let none = || vec![None; pins.len()];
    let mut cmd = Command::new(python);
    cmd.args(["-c", PROBE]);
    for pin in pins {
        cmd.args([pin.name, pin.module]);
    }
    let Ok(out) = cmd.output() else {
        return none();
    };
    if !out.status.success() {
        return none();
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let versions: Vec<Option<String>> = text
        .lines()
        .map(|l| (l != "-").then(|| l.trim().to_owned()))
        .collect();
    if versions.len() == pins.len() {
        versions
    } else {
        none()
    }
}
