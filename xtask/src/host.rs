//! Facts about the run that go into a report's header: the machine (CPU
//! model, cores, kernel, memory), the date in UTC and the git commit. A
//! figure means little without them: the same bench differs by 2x between
//! a laptop and a shared VM, and between two commits.
//!
//! Each fact is read from `/proc`, `uname` or `git`; one that can't be read
//! is `unknown` (or 0), never an error, since a report without it still
//! has its figures.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::util::project_root;

/// The machine a report was measured on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Machine {
    /// `model name` of `/proc/cpuinfo`.
    pub(crate) cpu: String,
    /// CPUs online (`available_parallelism`, which follows the affinity mask).
    pub(crate) cores: u64,
    /// `uname -r`.
    pub(crate) kernel: String,
    /// `MemTotal` of `/proc/meminfo`, in bytes.
    pub(crate) memory_bytes: u64,
}

impl Machine {
    /// This machine.
    pub(crate) fn this() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cpu: cpu_model(&cpuinfo).unwrap_or_else(|| "unknown CPU".to_owned()),
            cores: std::thread::available_parallelism().map_or(0, |n| n.get() as u64),
            kernel: command_line("uname", &["-r"]).unwrap_or_else(|| "unknown".to_owned()),
            memory_bytes: mem_total(&meminfo).unwrap_or(0),
        }
    }

    /// `Intel(R) Xeon(R) ..., 2 cores, 7.8 GiB, Linux 6.1.0`.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{}, {} cores, {:.1} GiB, Linux {}",
            self.cpu,
            self.cores,
            self.memory_bytes as f64 / (1u64 << 30) as f64,
            self.kernel
        )
    }
}

/// The first `model name` of a `/proc/cpuinfo` text (x86; arm64 kernels
/// print no model name, and the first `Hardware` or `CPU part` is not much
/// better, so those machines say `unknown CPU`).
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.split_whitespace().collect::<Vec<_>>().join(" "))
    })
}

/// `MemTotal` of a `/proc/meminfo` text, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The trimmed stdout of a command that succeeded.
fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(project_root())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

/// The checked-out commit's short hash, with `-dirty` when tracked files
/// differ from it (untracked files do not count, as with
/// `git describe --dirty`), or `unknown` outside a git checkout.
pub(crate) fn git_commit() -> String {
    let Some(hash) = command_line("git", &["rev-parse", "--short", "HEAD"]) else {
        return "unknown".to_owned();
    };
    let dirty = command_line("git", &["status", "--porcelain", "--untracked-files=no"]).is_some();
    if dirty {
        format!("{hash}-dirty")
    } else {
        hash
    }
}

/// Now, in UTC, as ISO 8601 to the second: `2025-01-31T23:59:07Z`.
pub(crate) fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    iso_utc(secs)
}

/// `secs` since the Unix epoch as ISO 8601 in UTC.
fn iso_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let of_day = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01: shift the
/// year to start in March so the leap day is the year's last, then split
/// into 400-year eras of 146 097 days (the algorithm of Howard Hinnant's
/// "chrono-Compatible Low-Level Date Algorithms").
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // Days from 0000-03-01.
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // Day of era, 0..=146096.
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399.
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // Day of the March year.
    let mp = (5 * doy + 2) / 153; // Month from March = 0.
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_utc() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00Z");
        // The leap day of a year divisible by 400, and the day after.
        assert_eq!(iso_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso_utc(951_868_799), "2000-02-29T23:59:59Z");
        assert_eq!(iso_utc(951_868_800), "2000-03-01T00:00:00Z");
        assert_eq!(iso_utc(1_735_689_599), "2024-12-31T23:59:59Z");
        assert_eq!(iso_utc(4_107_542_400), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn machine_facts_from_proc_text() {
        let cpuinfo = "processor\t: 0\nmodel name\t: AMD  EPYC 7B13\nflags\t: fpu\n\
                       processor\t: 1\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(cpu_model(cpuinfo).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(cpu_model("processor : 0\n"), None);
        assert_eq!(
            mem_total("MemTotal:        8141464 kB\nMemFree: 1 kB\n"),
            Some(8_141_464 * 1024)
        );
        let m = Machine {
            cpu: "X".into(),
            cores: 2,
            kernel: "6.1.0".into(),
            memory_bytes: 8 << 30,
        };
        assert_eq!(m.describe(), "X, 2 cores, 8.0 GiB, Linux 6.1.0");
    }
}
