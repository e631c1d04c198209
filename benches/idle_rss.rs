//! What idle greenlets cost: resident memory per sleeping greenlet, and the
//! time to put a million of them to sleep (issue 4's table).
//!
//! | bench | subject | what is measured |
//! | --- | --- | --- |
//! | `core/idle_rss` | `green` | growth of (RSS + page tables) from before 100 000 greenlets are spawned to when all are asleep, / 100 000, bytes |
//! | `core/idle_rss` | `tokio` | the same for 100 000 tasks in `tokio::time::sleep` on a current-thread runtime |
//! | `core/million_sleepers` | `green` | seconds to spawn 1 000 000 greenlets on unguarded 16 KiB stacks and have all of them asleep; median, min and max of 3 fresh processes, each run's time and memory in the note (skipped with --quick) |
//!
//! Each case runs in a child process (this binary again, with
//! `GREEN_BENCH_RSS_CASE` set), so its "before" is a fresh process and no
//! case reuses memory another one freed: a heap or stack pool warmed by the
//! previous case would make the next one look free. The child inherits the
//! harness's variables and writes its result line itself.
//!
//! The per-unit figure counts page tables (`VmPTE`) as well as RSS: a
//! stack per greenlet spread over the address space costs page-table pages
//! that RSS does not show, and a peer without stacks does not pay them.
//!
//! Everyone sleeps an hour, so nothing wakes during the measurement; the
//! hub (`green_core::run`) or the runtime is torn down after.

#[path = "support/harness.rs"]
mod harness;

use std::cell::Cell;
use std::process::Command;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use green_core::Builder;
use harness::{Harness, Resident, Stats};

const IDLE_RSS: &str = "core/idle_rss";
const MILLION_SLEEPERS: &str = "core/million_sleepers";

/// Names the case a child process runs.
const CASE_VAR: &str = "GREEN_BENCH_RSS_CASE";

/// Sleepers in `core/idle_rss`.
const IDLE: usize = 100_000;

/// Sleepers in `core/million_sleepers`.
const MILLION: usize = 1_000_000;

/// Stack of each of the million: the smallest green-ctx stack.
const MILLION_STACK: usize = 16 * 1024;

/// Long enough that no sleeper wakes while it is measured.
const LONG: Duration = Duration::from_secs(3600);

const MIB: f64 = 1024.0 * 1024.0;

fn main() {
    let h = Harness::from_env();
    if let Ok(case) = std::env::var(CASE_VAR) {
        match case.as_str() {
            "green" => idle_green(&h),
            "tokio" => idle_tokio(&h),
            "million" => million_sleepers(),
            other => panic!("{CASE_VAR}={other}: expected green, tokio or million"),
        }
        return;
    }
    for (bench, case) in [
        (IDLE_RSS, "green"),
        (IDLE_RSS, "tokio"),
        (MILLION_SLEEPERS, "million"),
    ] {
        if !h.enabled(bench) {
            continue;
        }
        if bench == MILLION_SLEEPERS && h.is_quick() {
            h.skip(
                MILLION_SLEEPERS,
                "green",
                "not run with --quick (seconds per run)",
            );
            continue;
        }
        if bench == MILLION_SLEEPERS {
            million_sleepers_runs(&h);
        } else {
            run_case(case, false);
        }
    }
}

/// Runs one case in a child process; returns what it printed when
/// `capture` (else it prints to our stdout).
fn run_case(case: &str, capture: bool) -> String {
    let exe = std::env::current_exe().expect("path of this bench binary");
    let mut command = Command::new(exe);
    command.env(CASE_VAR, case);
    if !capture {
        let status = command
            .status()
            .expect("run the bench case in a child process");
        assert!(status.success(), "bench case {case} failed: {status}");
        return String::new();
    }
    let output = command
        .output()
        .expect("run the bench case in a child process");
    assert!(
        output.status.success(),
        "bench case {case} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("the case prints UTF-8")
}

/// Fresh processes that each put a million greenlets to sleep.
const MILLION_RUNS: usize = 3;

/// Prefix of the line a `million` child prints: seconds, then RSS growth,
/// then page-table growth (bytes).
const MILLION_RESULT: &str = "million-result";

/// One `million` child's figures.
struct MillionRun {
    secs: f64,
    grown: Resident,
}

/// `core/million_sleepers`: median, min and max of [`MILLION_RUNS`] fresh
/// processes. On a VM the first run after memory was returned to the host
/// pays for the host backing each page on first touch (seen here: 6-11 s
/// against about 2 s warm), so one run alone measures the machine more than
/// green; every run's time and memory go into the note, in order.
fn million_sleepers_runs(h: &Harness) {
    let mut runs = Vec::with_capacity(MILLION_RUNS);
    for _ in 0..MILLION_RUNS {
        let printed = run_case("million", true);
        for line in printed.lines() {
            match line.strip_prefix(MILLION_RESULT) {
                Some(result) => {
                    let mut fields = result.split_whitespace().map(str::parse::<f64>);
                    let mut field = |what: &str| -> f64 {
                        match fields.next() {
                            Some(Ok(v)) => v,
                            _ => panic!("{MILLION_RESULT} line lacks its {what}: {line:?}"),
                        }
                    };
                    let secs = field("seconds");
                    let rss = field("RSS growth") as u64;
                    let page_tables = field("page-table growth") as u64;
                    runs.push(MillionRun {
                        secs,
                        grown: Resident { rss, page_tables },
                    });
                }
                None => println!("{line}"),
            }
        }
    }
    assert_eq!(runs.len(), MILLION_RUNS, "every run reported its result");
    let mut secs: Vec<f64> = runs.iter().map(|r| r.secs).collect();
    let stats = Stats::of(&mut secs);
    let gib = MIB * 1024.0;
    let each: Vec<String> = runs
        .iter()
        .map(|r| {
            format!(
                "{:.2} s, RSS +{:.2} GiB, page tables +{:.0} MiB ({} B per greenlet)",
                r.secs,
                r.grown.rss as f64 / gib,
                r.grown.page_tables as f64 / MIB,
                r.grown.total() / MILLION as u64
            )
        })
        .collect();
    let note = format!(
        "{MILLION} greenlets spawned and in sleep(1 h) on unguarded {} KiB stacks; median, min \
         and max of {MILLION_RUNS} fresh processes; each run in order: {}",
        MILLION_STACK / 1024,
        each.join("; "),
    );
    h.record_stats(MILLION_SLEEPERS, "green", "s", &stats, Some(&note));
}

/// `core/idle_rss` for green: 100 000 greenlets asleep in `sleep`.
fn idle_green(h: &Harness) {
    green_core::run(|| {
        // 100 000 guarded stacks would need 200 000 kernel mappings, three
        // times the default vm.max_map_count (65 530): at this count green
        // needs unguarded stacks, which hold the same touched pages.
        let builder = Builder::new().unguarded(true);
        // `run` has built the hub; before is taken with it in place.
        let before = Resident::now();
        let asleep = Rc::new(Cell::new(0_usize));
        let sleepers: Vec<_> = (0..IDLE)
            .map(|_| {
                let asleep = Rc::clone(&asleep);
                builder
                    .clone()
                    .spawn(move || {
                        asleep.set(asleep.get() + 1);
                        green_core::sleep(LONG);
                    })
                    .expect("spawn a sleeper")
            })
            .collect();
        // Spawned greenlets start in order, before this one resumes.
        green_core::yield_now();
        assert_eq!(asleep.get(), IDLE, "every sleeper has started");
        let grown = Resident::now().since(before);
        let note = format!(
            "{IDLE} greenlets in sleep(1 h), unguarded {} KiB stacks (guarded would exceed \
             vm.max_map_count); handles kept; per greenlet = (RSS + page tables) / {IDLE}; {}",
            green_ctx::DEFAULT_STACK_SIZE / 1024,
            grown.describe_growth()
        );
        h.record(
            IDLE_RSS,
            "green",
            "bytes",
            grown.total() as f64 / IDLE as f64,
            Some(&note),
        );
        drop(sleepers);
        // `run` kills the sleepers as it returns.
    });
}

/// `core/idle_rss` for tokio: 100 000 tasks asleep in `tokio::time::sleep`.
fn idle_tokio(h: &Harness) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio current-thread runtime");
    // Let the runtime make its driver state before the baseline.
    rt.block_on(tokio::task::yield_now());
    let before = Resident::now();
    let asleep = Arc::new(AtomicUsize::new(0));
    let sleepers: Vec<_> = (0..IDLE)
        .map(|_| {
            let asleep = Arc::clone(&asleep);
            rt.spawn(async move {
                // One thread runs every task: load-then-store counts exactly.
                asleep.store(asleep.load(Relaxed) + 1, Relaxed);
                tokio::time::sleep(LONG).await;
            })
        })
        .collect();
    // Each task registers its timer in its first poll, the same poll that
    // counts it; once all have counted, all are asleep.
    rt.block_on(async {
        while asleep.load(Relaxed) < IDLE {
            tokio::task::yield_now().await;
        }
    });
    let grown = Resident::now().since(before);
    let note = format!(
        "{IDLE} tasks in tokio::time::sleep(1 h), current_thread runtime; JoinHandles kept; \
         per task = (RSS + page tables) / {IDLE}; {}",
        grown.describe_growth()
    );
    h.record(
        IDLE_RSS,
        "tokio",
        "bytes",
        grown.total() as f64 / IDLE as f64,
        Some(&note),
    );
    drop(sleepers);
    drop(rt);
}

/// `core/million_sleepers`: a million greenlets spawned and asleep.
fn million_sleepers() {
    let closed = green_core::run(|| {
        let builder = Builder::new().unguarded(true).stack_size(MILLION_STACK);
        let asleep = Rc::new(Cell::new(0_usize));
        let mut sleepers = Vec::with_capacity(MILLION);
        let before = Resident::now();
        let start = Instant::now();
        for _ in 0..MILLION {
            let asleep = Rc::clone(&asleep);
            let g = builder
                .clone()
                .spawn(move || {
                    asleep.set(asleep.get() + 1);
                    green_core::sleep(LONG);
                })
                .expect("spawn a sleeper");
            sleepers.push(g);
        }
        // One yield runs every sleeper up to its sleep.
        green_core::yield_now();
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(asleep.get(), MILLION, "every sleeper has started");
        let grown = Resident::now().since(before);
        // The parent records the median, min and max of several runs.
        println!(
            "{MILLION_RESULT} {secs} {} {}",
            grown.rss, grown.page_tables
        );
        drop(sleepers);
        Instant::now()
    });
    // `run` killed the million as it returned; shown, not recorded.
    println!(
        "{MILLION_SLEEPERS:<32} (teardown of {MILLION} sleepers: {:.2} s, not counted)",
        closed.elapsed().as_secs_f64()
    );
}
