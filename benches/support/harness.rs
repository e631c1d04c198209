//! A small std-only bench harness shared by every file in `benches/`.
//!
//! Each bench binary (`harness = false`) includes it with
//! `#[path = "support/harness.rs"] mod harness;` and is run by
//! `cargo xtask bench`, which reads what it writes. It does what the project
//! needs from criterion and no more:
//!
//! * a case is timed in samples, each of many iterations, after a warm-up;
//!   the figure per operation is the sample's time divided by its operations,
//!   and the report is the median, min and max over samples;
//! * setup stays out of the timed part, either through
//!   [`Case::iter_batched`] (inputs built before the clock starts, outputs
//!   dropped after it stops; corosensei: "Don't count time spent allocating
//!   a stack") or through [`Case::iter_custom`], whose routine times itself;
//! * single measured values (RSS per fiber, seconds for a million fibers) go
//!   through [`Harness::record`];
//! * a case that cannot run here (a peer's runtime missing, a kernel
//!   without the feature) says so through [`Harness::skip`];
//! * `GREEN_BENCH_QUICK=1` makes samples fewer and shorter,
//!   `GREEN_BENCH_FILTER` skips benches whose name does not contain it, and
//!   `GREEN_BENCH_OUT` names a file to which each result is appended as one
//!   JSON line `{"bench","subject","median","min","max","unit","note"}`, or
//!   `{"bench","subject","skipped":"reason"}` for a skipped case;
//! * `GREEN_BENCH_PROGRESS=PREFIX` (set by `cargo xtask bench` to `3/12 net`,
//!   the binary's place in the run) makes each case write a line
//!   `[PREFIX] bench subject: step` to stderr at each step (`warm-up`,
//!   `sample 3/50`). xtask reads them and owns the terminal: it shows them
//!   as one line rewritten in place (one line per case in a log) and keeps
//!   every other line, the results included, off it.
//!
//! Wall time on a shared 2-core machine is noisy: the median is the figure to
//! read, min-max shows the noise, and `cargo xtask bench` adds callgrind
//! instruction counts for the switch, which do not vary.

#![allow(dead_code)] // Each bench binary uses a different part of the harness.

use std::fmt::Write as _;

#[path = "json.rs"]
mod json;
use json::{fmt_num, json_number, json_string};
use std::fs::OpenOptions;
use std::hint::black_box;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Settings read from the environment, shared by the cases of one binary.
#[derive(Debug, Clone)]
pub(crate) struct Harness {
    quick: bool,
    filter: Option<String>,
    out: Option<PathBuf>,
    /// `GREEN_BENCH_PROGRESS`: the prefix of progress lines, if wanted.
    progress: Option<String>,
}

impl Harness {
    /// Reads `GREEN_BENCH_QUICK`, `GREEN_BENCH_FILTER`, `GREEN_BENCH_OUT`
    /// and `GREEN_BENCH_PROGRESS`.
    pub(crate) fn from_env() -> Harness {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Harness {
            quick: var("GREEN_BENCH_QUICK").is_some_and(|v| v != "0"),
            filter: var("GREEN_BENCH_FILTER"),
            out: var("GREEN_BENCH_OUT").map(PathBuf::from),
            progress: var("GREEN_BENCH_PROGRESS"),
        }
    }

    /// The same settings without the filter: for a reference case that a
    /// bench the filter let through needs, though its own name is filtered
    /// out.
    pub(crate) fn unfiltered(&self) -> Harness {
        Harness {
            filter: None,
            ..self.clone()
        }
    }

    /// Whether this is a quick (smoke) run.
    pub(crate) fn is_quick(&self) -> bool {
        self.quick
    }

    /// Whether `bench` passes the filter. Check it before any costly setup.
    pub(crate) fn enabled(&self, bench: &str) -> bool {
        self.filter.as_deref().is_none_or(|f| bench.contains(f))
    }

    /// A timed case of `bench` for `subject` (`green` or a peer's name).
    pub(crate) fn bench<'h>(&'h self, bench: &str, subject: &str) -> Case<'h> {
        Case {
            harness: self,
            bench: bench.to_owned(),
            subject: subject.to_owned(),
            unit: "ns",
            note: None,
            ops_per_iter: 1,
        }
    }

    /// Records a value measured once (bytes of RSS, seconds of a scenario).
    pub(crate) fn record(
        &self,
        bench: &str,
        subject: &str,
        unit: &str,
        value: f64,
        note: Option<&str>,
    ) {
        self.emit(
            bench,
            subject,
            unit,
            &Stats {
                median: value,
                min: value,
                max: value,
            },
            note,
        );
    }

    /// Records a figure measured over several runs (fresh processes, say)
    /// whose median, min and max the caller computed, e.g. with
    /// [`Stats::of`].
    pub(crate) fn record_stats(
        &self,
        bench: &str,
        subject: &str,
        unit: &str,
        stats: &Stats,
        note: Option<&str>,
    ) {
        self.emit(bench, subject, unit, stats, note);
    }

    /// Records that `subject` cannot run `bench` here, and why (`tokio
    /// runtime unavailable`, `python3 not found`): the report shows the row
    /// as skipped with the reason rather than leaving it out unexplained.
    pub(crate) fn skip(&self, bench: &str, subject: &str, reason: &str) {
        if !self.enabled(bench) {
            return;
        }
        println!("{bench:<32} {subject:<12} skipped: {reason}");
        self.append(&format!(
            "{{\"bench\":{},\"subject\":{},\"skipped\":{}}}\n",
            json_string(bench),
            json_string(subject),
            json_string(reason)
        ));
    }

    /// Says that `subject` is running `bench`, at `step` (`sample 3/50`,
    /// `run 2/3`), when `GREEN_BENCH_PROGRESS` asks for progress. Timed
    /// cases call it themselves; a bench that measures in its own way
    /// (fresh processes, one long run) may call it between steps.
    pub(crate) fn progress(&self, bench: &str, subject: &str, step: &str) {
        if let Some(prefix) = &self.progress {
            eprintln!("[{prefix}] {bench} {subject}: {step}");
        }
    }

    /// Appends one line to `GREEN_BENCH_OUT`, if set.
    fn append(&self, json: &str) {
        let Some(out) = &self.out else { return };
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(out)
            .and_then(|mut f| f.write_all(json.as_bytes()));
        if let Err(e) = written {
            panic!("cannot append to GREEN_BENCH_OUT={}: {e}", out.display());
        }
    }

    /// Prints the human line and appends the JSON line.
    fn emit(&self, bench: &str, subject: &str, unit: &str, stats: &Stats, note: Option<&str>) {
        let mut line = format!(
            "{bench:<32} {subject:<12} median {:>10} {unit:<6} (min {}, max {})",
            fmt_num(stats.median),
            fmt_num(stats.min),
            fmt_num(stats.max),
        );
        if let Some(note) = note {
            let _ = write!(line, "  [{note}]");
        }
        println!("{line}");

        let mut json = format!(
            "{{\"bench\":{},\"subject\":{},\"median\":{},\"min\":{},\"max\":{},\"unit\":{}",
            json_string(bench),
            json_string(subject),
            json_number(stats.median),
            json_number(stats.min),
            json_number(stats.max),
            json_string(unit),
        );
        match note {
            Some(note) => {
                let _ = write!(json, ",\"note\":{}}}", json_string(note));
            }
            None => json.push_str(",\"note\":null}"),
        }
        json.push('\n');
        self.append(&json);
    }

    /// Warm-up time, target time per sample, and number of samples.
    fn plan(&self) -> (Duration, Duration, usize) {
        if self.quick {
            (Duration::from_millis(20), Duration::from_millis(2), 10)
        } else {
            (Duration::from_millis(200), Duration::from_millis(10), 50)
        }
    }
}

/// One (bench, subject) pair about to be timed. Consumed by an `iter*` call.
#[derive(Debug)]
pub(crate) struct Case<'h> {
    harness: &'h Harness,
    bench: String,
    subject: String,
    unit: &'static str,
    note: Option<String>,
    ops_per_iter: u64,
}

impl Case<'_> {
    /// A note printed and recorded with the result.
    pub(crate) fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// The unit of the figure (`ns` by default).
    pub(crate) fn unit(mut self, unit: &'static str) -> Self {
        self.unit = unit;
        self
    }

    /// How many operations one iteration performs: a batch of 32 nops
    /// reports ns per nop with `ops_per_iter(32)`.
    pub(crate) fn ops_per_iter(mut self, ops: u64) -> Self {
        assert!(ops > 0, "ops_per_iter must be positive");
        self.ops_per_iter = ops;
        self
    }

    /// Times `routine`, called once per iteration.
    pub(crate) fn iter<R>(self, mut routine: impl FnMut() -> R) {
        self.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(routine());
            }
            start.elapsed()
        });
    }

    /// Times `routine` on inputs made by `setup`; neither `setup` nor dropping
    /// the outputs is timed. Inputs are made in batches of at most 256, so a
    /// costly input (a stack) is not held by the thousand.
    pub(crate) fn iter_batched<I, R>(
        self,
        mut setup: impl FnMut() -> I,
        mut routine: impl FnMut(I) -> R,
    ) {
        const BATCH: u64 = 256;
        let mut inputs = Vec::with_capacity(BATCH as usize);
        let mut outputs = Vec::with_capacity(BATCH as usize);
        self.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(BATCH);
                inputs.extend((0..n).map(|_| setup()));
                let start = Instant::now();
                for input in inputs.drain(..) {
                    outputs.push(routine(input));
                }
                elapsed += start.elapsed();
                outputs.clear();
                left -= n;
            }
            elapsed
        });
    }

    /// Times a routine that runs `iters` iterations and returns the time they
    /// took: setup before its clock starts is free.
    pub(crate) fn iter_custom(self, routine: impl FnMut(u64) -> Duration) {
        self.iter_custom_noted(routine, || None);
    }

    /// [`Case::iter_custom`], returning what it reported (`None` when the
    /// filter skipped it), for a later case to compare against.
    pub(crate) fn iter_custom_stats(self, routine: impl FnMut(u64) -> Duration) -> Option<Stats> {
        self.measure(routine, |_| None)
    }

    /// [`Case::iter_custom_stats`], with a note written from the figures
    /// (a ratio to a reference case, say).
    pub(crate) fn iter_custom_judged(
        self,
        routine: impl FnMut(u64) -> Duration,
        note: impl FnOnce(&Stats) -> String,
    ) -> Option<Stats> {
        self.measure(routine, |stats| Some(note(stats)))
    }

    /// [`Case::iter_custom`], with a note computed after the samples (from
    /// counters the routine kept, say); `None` keeps the note set before.
    pub(crate) fn iter_custom_noted(
        self,
        routine: impl FnMut(u64) -> Duration,
        note_after: impl FnOnce() -> Option<String>,
    ) {
        self.measure(routine, |_| note_after());
    }

    /// Times the samples, reports them and returns their statistics;
    /// `note_after` may replace the note once the figures are known.
    fn measure(
        self,
        mut routine: impl FnMut(u64) -> Duration,
        note_after: impl FnOnce(&Stats) -> Option<String>,
    ) -> Option<Stats> {
        if !self.harness.enabled(&self.bench) {
            return None;
        }
        let (warm_up, sample_time, samples) = self.harness.plan();

        // Find the iteration count that fills one sample (doubling from 1),
        // then keep running samples of that size until the warm-up is over.
        let warm_start = Instant::now();
        let show = |step: &str| self.harness.progress(&self.bench, &self.subject, step);
        show("warm-up");
        let mut iters: u64 = 1;
        loop {
            let took = routine(iters);
            if took >= sample_time / 2 || iters >= 1 << 40 {
                let per = took.as_secs_f64().max(1e-12) / iters as f64;
                iters = ((sample_time.as_secs_f64() / per) as u64).max(1);
                break;
            }
            iters *= 2;
        }
        while warm_start.elapsed() < warm_up {
            routine(iters);
        }

        let mut per_op: Vec<f64> = (0..samples)
            .map(|k| {
                show(&format!("sample {}/{samples}", k + 1));
                let took = routine(iters);
                took.as_nanos() as f64 / (iters * self.ops_per_iter) as f64
            })
            .collect();
        let stats = Stats::of(&mut per_op);
        let stats = match self.unit {
            "ns" => stats,
            // Timed cases report ns; other units are converted here.
            "us" => stats.scaled(1e-3),
            "ms" => stats.scaled(1e-6),
            "s" => stats.scaled(1e-9),
            other => panic!("a timed case cannot report in `{other}`; use Harness::record"),
        };
        let note = note_after(&stats).or(self.note);
        self.harness.emit(
            &self.bench,
            &self.subject,
            self.unit,
            &stats,
            note.as_deref(),
        );
        Some(stats)
    }
}

/// Median, min and max of a set of samples.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stats {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Stats {
    /// The statistics of `samples` (sorted in place). Panics if empty.
    pub(crate) fn of(samples: &mut [f64]) -> Stats {
        assert!(!samples.is_empty(), "no samples");
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        let median = if n % 2 == 1 {
            samples[n / 2]
        } else {
            (samples[n / 2 - 1] + samples[n / 2]) / 2.0
        };
        Stats {
            median,
            min: samples[0],
            max: samples[n - 1],
        }
    }

    fn scaled(self, k: f64) -> Stats {
        Stats {
            median: self.median * k,
            min: self.min * k,
            max: self.max * k,
        }
    }
}

/// A field of `/proc/self/status` given in kB (`VmRSS`, `VmPTE`), in bytes,
/// or 0 where it can't be read.
fn status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status
                .lines()
                .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0)
}

/// The resident set size of this process in bytes (`VmRSS` of
/// `/proc/self/status`), or 0 where it can't be read.
pub(crate) fn rss_bytes() -> u64 {
    status_bytes("VmRSS")
}

/// What an idle unit (fiber, greenlet, task) really holds in memory: the
/// pages it touched (`VmRSS`) and the page tables that map them (`VmPTE`,
/// not part of RSS). Many small stacks spread over the address space need a
/// page-table page per 2 MiB they span, which RSS alone does not show.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resident {
    pub(crate) rss: u64,
    pub(crate) page_tables: u64,
}

impl Resident {
    /// This process's figures now.
    pub(crate) fn now() -> Resident {
        Resident {
            rss: rss_bytes(),
            page_tables: status_bytes("VmPTE"),
        }
    }

    /// The growth from `before` to `self` (never negative).
    pub(crate) fn since(self, before: Resident) -> Resident {
        Resident {
            rss: self.rss.saturating_sub(before.rss),
            page_tables: self.page_tables.saturating_sub(before.page_tables),
        }
    }

    /// RSS plus page tables: the per-unit figure of every `*/idle_rss`.
    pub(crate) fn total(self) -> u64 {
        self.rss + self.page_tables
    }

    /// For a note: `RSS +X MiB, page tables (VmPTE) +Y MiB`.
    pub(crate) fn describe_growth(self) -> String {
        const MIB: f64 = 1024.0 * 1024.0;
        format!(
            "RSS +{:.1} MiB, page tables (VmPTE) +{:.1} MiB",
            self.rss as f64 / MIB,
            self.page_tables as f64 / MIB
        )
    }
}

/// Number of iterations `GREEN_BENCH_CALLGRIND` asks for: when set, a bench
/// binary runs only its fixed instruction-count scenario, untimed.
pub(crate) fn callgrind_iterations() -> Option<u64> {
    std::env::var("GREEN_BENCH_CALLGRIND").ok()?.parse().ok()
}
