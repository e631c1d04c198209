//! Timing several subjects of one bench in rounds, and the CPU time their
//! servers spend, for `benches/net.rs`.
//!
//! Included by `benches/net.rs` (`#[path]` module), after `harness`.
//!
//! Why rounds. On the shared two-core machine the benches run on, other
//! sessions' builds come and go over seconds. Timed one after the other,
//! each subject gets whatever phase the machine was in during its half
//! second, and two runs of the same binary a minute apart put the subjects
//! in a different order. Here every subject's server is up and connected
//! first; then each round runs a few short samples of each subject in turn
//! (the first subject of a round rotating), so that a slow phase of the
//! machine falls on every subject alike. A subject's figure is the median,
//! min and max over all its samples, and the note gives the range of its
//! per-round medians and how long its threads waited for a CPU.
//!
//! CPU time. Each round also reads, around a subject's samples, the CPU
//! time its server's threads ran: for a server inside the bench, the
//! process's CPU clock less the client thread's (`clock_gettime`), so every
//! thread but the client's (the other subjects' servers are idle meanwhile);
//! for one in another process, the sum of its threads' `schedstat` under
//! `/proc/PID/task`. It is reported per operation (median, min and max over
//! the rounds). Wall time per request on a shared CPU includes whatever
//! else ran on it, which the note shows (the client's and the server's CPU
//! time against the wall time: on one CPU, 100% means nothing else ran);
//! CPU time per request leaves that out. Neither is immune to the rest of
//! the machine: on the shared virtual machine, the CPU time of the same
//! work grows by tens of per cent while the other sessions are busy (with
//! nothing else on the bench's CPU: what the host does with its cores is
//! not visible from inside), which is why the subjects take turns.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::{Harness, Stats};

/// Whose threads are the server's, for its CPU time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServerThreads {
    /// Every thread of this process but the client (the thread that runs
    /// the rounds): the server is inside the bench, and the other servers'
    /// threads are idle while it is loaded.
    ThisProcessButClient,
    /// Every thread of that process.
    Process(u32),
    /// Not known (an external server given without its pid): no CPU figure.
    Unknown,
}

/// One subject of a bench timed in rounds.
pub(crate) struct Entrant<'a> {
    pub(crate) subject: String,
    /// Makes `iters` operations and returns how long they took.
    pub(crate) run: Box<dyn FnMut(u64) -> Duration + 'a>,
    pub(crate) server: ServerThreads,
}

/// What the rounds measured for one entrant.
#[derive(Debug, Clone)]
pub(crate) struct Measured {
    pub(crate) subject: String,
    /// ns per operation over every sample.
    pub(crate) wall: Stats,
    /// Operations in one sample, fitted to the sample time in the warm-up.
    pub(crate) ops_per_sample: u64,
    /// Lowest and highest median of one round's samples.
    pub(crate) round_medians: (f64, f64),
    /// Server CPU time per operation, in ns, over the rounds; `None` when
    /// the server's threads are unknown or `/proc` cannot be read.
    pub(crate) server_cpu: Option<Stats>,
    /// The client thread's CPU time per operation, in ns: the median over
    /// the rounds.
    pub(crate) client_cpu: Option<f64>,
    /// The client's and the server's CPU time over the timed wall time
    /// (the median over the rounds): with both on one CPU, 1 when nothing
    /// else ran on it, less when other processes took it (more than 1 when
    /// they use two CPUs).
    pub(crate) on_cpu: Option<f64>,
    /// Busy share of each CPU of the machine over this entrant's samples.
    pub(crate) cpu_busy: Vec<(String, f64)>,
}

impl Measured {
    /// For a note: how the samples were taken and what disturbed them.
    pub(crate) fn describe(&self, plan: &Plan) -> String {
        let mut text = format!(
            "{} ({} operations per sample); per-round medians {:.0} to {:.0} ns",
            plan.describe(),
            self.ops_per_sample,
            self.round_medians.0,
            self.round_medians.1
        );
        if let Some(on_cpu) = self.on_cpu {
            text.push_str(&format!(
                "; client and server threads ran {:.0}% of the timed wall time (on one CPU, \
                 the rest is what other processes took)",
                on_cpu * 100.0
            ));
        }
        if let Some(cpu) = &self.server_cpu {
            text.push_str(&format!("; server CPU {:.0} ns per operation", cpu.median));
        }
        if let Some(client) = self.client_cpu {
            text.push_str(&format!(", client CPU {client:.0} ns"));
        }
        text
    }

    /// For a note: how busy each CPU was over the samples (every process,
    /// softirq included); empty when `/proc/stat` cannot be read.
    pub(crate) fn describe_cpu_busy(&self) -> String {
        if self.cpu_busy.is_empty() {
            return String::new();
        }
        let shares: Vec<String> = self
            .cpu_busy
            .iter()
            .map(|(cpu, busy)| format!("{cpu} {:.0}%", busy * 100.0))
            .collect();
        format!(
            "CPUs busy over the samples (every process, softirq included): {}",
            shares.join(", ")
        )
    }
}

/// How many rounds, samples and how long each sample is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) warm_up: Duration,
    pub(crate) rounds: usize,
    pub(crate) samples_per_round: usize,
    pub(crate) sample_time: Duration,
}

impl Plan {
    /// The plan for `h`: 10 rounds of 5 samples of 10 ms (50 samples per
    /// subject, as the harness takes), or 2 rounds of 5 of 2 ms when quick.
    pub(crate) fn of(h: &Harness) -> Plan {
        if h.is_quick() {
            Plan {
                warm_up: Duration::from_millis(20),
                rounds: 2,
                samples_per_round: 5,
                sample_time: Duration::from_millis(2),
            }
        } else {
            Plan {
                warm_up: Duration::from_millis(200),
                rounds: 10,
                samples_per_round: 5,
                sample_time: Duration::from_millis(10),
            }
        }
    }

    pub(crate) fn describe(&self) -> String {
        format!(
            "subjects interleaved: {} rounds of {} samples of {} ms each",
            self.rounds,
            self.samples_per_round,
            self.sample_time.as_millis()
        )
    }
}

/// Times `entrants` in rounds (module doc); `label` names the bench in the
/// progress lines. Returns what each measured, in the entrants' order.
pub(crate) fn run(
    h: &Harness,
    label: &str,
    plan: &Plan,
    entrants: &mut [Entrant<'_>],
) -> Vec<Measured> {
    let n = entrants.len();
    // Calibrate: the iteration count that fills one sample, then warm up,
    // then calibrate again on the warm server.
    let mut iters = Vec::with_capacity(n);
    for e in entrants.iter_mut() {
        h.progress(label, &e.subject, "warm-up");
        let fill = |count: u64, took: Duration| {
            let per = took.as_secs_f64().max(1e-12) / count as f64;
            ((plan.sample_time.as_secs_f64() / per) as u64).max(1)
        };
        let mut count: u64 = 1;
        let warm_start = Instant::now();
        loop {
            let took = (e.run)(count);
            if took >= plan.sample_time / 2 || count >= 1 << 40 {
                count = fill(count, took);
                break;
            }
            count *= 2;
        }
        let mut warm_ops = 0;
        let mut warm_time = Duration::ZERO;
        while warm_start.elapsed() < plan.warm_up {
            warm_time += (e.run)(count);
            warm_ops += count;
        }
        // The first runs on a cold server can be far slower than the rest
        // (64 new connections, their first reads): a count fitted to them
        // alone made samples of a hundred requests, whose figure is mostly
        // the filling and draining of the 64 connections' lockstep, and
        // `echo_64conn` then came out at twice the cost in some runs.
        if warm_ops > 0 {
            count = fill(warm_ops, warm_time);
        }
        iters.push(count);
    }

    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut round_medians: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut server_cpu: Vec<Option<Vec<f64>>> = entrants
        .iter()
        .map(|e| (e.server != ServerThreads::Unknown).then(Vec::new))
        .collect();
    let mut client_cpu: Vec<Option<Vec<f64>>> = vec![Some(Vec::new()); n];
    let mut on_cpu: Vec<Option<Vec<f64>>> = vec![Some(Vec::new()); n];
    let mut busy: Vec<Vec<(String, u64, u64)>> = vec![Vec::new(); n];

    for round in 0..plan.rounds {
        for k in 0..n {
            let i = (round + k) % n;
            let e = &mut entrants[i];
            h.progress(
                label,
                &e.subject,
                &format!("round {}/{}", round + 1, plan.rounds),
            );
            // A short untimed run first: the caches and the branch
            // predictors were the previous subject's.
            (e.run)((iters[i] / 4).max(1));
            let server_before = server_cpu_now(e.server);
            let client_before = client_cpu_now();
            let ticks_before = cpu_ticks();
            let mut this_round = Vec::with_capacity(plan.samples_per_round);
            let mut round_wall = Duration::ZERO;
            for _ in 0..plan.samples_per_round {
                let took = (e.run)(iters[i]);
                round_wall += took;
                this_round.push(took.as_nanos() as f64 / iters[i] as f64);
            }
            let ticks_after = cpu_ticks();
            let client_after = client_cpu_now();
            let server_after = server_cpu_now(e.server);
            let round_ops = iters[i] * plan.samples_per_round as u64;
            add_ticks(&mut busy[i], &ticks_before, &ticks_after);

            let server = server_before
                .zip(server_after)
                .map(|(b, a)| a.saturating_sub(b));
            let client_delta = client_before
                .zip(client_after)
                .map(|(b, a)| a.saturating_sub(b));
            match (&mut server_cpu[i], server) {
                (Some(per_op), Some(s)) => per_op.push(s as f64 / round_ops as f64),
                (slot, _) => *slot = None,
            }
            match (&mut client_cpu[i], client_delta) {
                (Some(per_op), Some(c)) => per_op.push(c as f64 / round_ops as f64),
                (slot, _) => *slot = None,
            }
            match (&mut on_cpu[i], client_delta.zip(server)) {
                (Some(shares), Some((c, s))) => {
                    shares.push((c + s) as f64 / round_wall.as_nanos().max(1) as f64);
                }
                (slot, _) => *slot = None,
            }

            let mut sorted = this_round.clone();
            round_medians[i].push(Stats::of(&mut sorted).median);
            samples[i].extend(this_round);
        }
    }

    (0..n)
        .map(|i| {
            let medians = Stats::of(&mut round_medians[i]);
            Measured {
                subject: entrants[i].subject.clone(),
                wall: Stats::of(&mut samples[i]),
                ops_per_sample: iters[i],
                round_medians: (medians.min, medians.max),
                server_cpu: server_cpu[i].as_mut().map(|v| Stats::of(v)),
                client_cpu: client_cpu[i].as_mut().map(|v| Stats::of(v).median),
                on_cpu: on_cpu[i].as_mut().map(|v| Stats::of(v).median),
                cpu_busy: busy[i]
                    .iter()
                    .filter(|(_, _, total)| *total > 0)
                    .map(|(cpu, b, total)| (cpu.clone(), *b as f64 / *total as f64))
                    .collect(),
            }
        })
        .collect()
}

/// The CPU time of `clock` in ns: `CLOCK_THREAD_CPUTIME_ID` for the
/// calling thread, `CLOCK_PROCESS_CPUTIME_ID` for every thread of the
/// process (those that ended included). Exact for the calling thread,
/// unlike its own `schedstat`, which moves only at the scheduler's ticks
/// (4 ms apart here) and switches.
fn cpu_clock(clock: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec that outlives the call, which only
    // writes it.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u64::try_from(ts.tv_nsec).ok()?;
    (rc == 0).then(|| secs * 1_000_000_000 + nanos)
}

/// The calling thread's CPU time, in ns.
fn client_cpu_now() -> Option<u64> {
    cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// The ns one task has run on a CPU: the first number of its `schedstat`.
fn sched_of(path: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// The ns run by every task under `dir` (`/proc/PID/task`).
fn sched_of_tasks(dir: &Path) -> Option<u64> {
    let mut sum = 0;
    for entry in std::fs::read_dir(dir).ok()? {
        let entry = entry.ok()?;
        // A thread that ended meanwhile has no file left: skip it.
        sum += sched_of(&format!("{}/schedstat", entry.path().display())).unwrap_or(0);
    }
    Some(sum)
}

/// The ns the server's threads have run so far, read from the client.
fn server_cpu_now(server: ServerThreads) -> Option<u64> {
    match server {
        ServerThreads::ThisProcessButClient => {
            let client = client_cpu_now()?;
            let process = cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID)?;
            Some(process.saturating_sub(client))
        }
        // Pinned to the client's CPU, none of its threads is running while
        // the client reads, so their `schedstat` is up to date; unpinned
        // (`pool/server_2threads`), one running on the other CPU may lag by
        // up to a scheduler tick (4 ms), which the median over the rounds
        // absorbs.
        ServerThreads::Process(pid) => sched_of_tasks(Path::new(&format!("/proc/{pid}/task"))),
        ServerThreads::Unknown => None,
    }
}

/// (cpuN, busy ticks, all ticks) of each CPU of `/proc/stat`.
fn cpu_ticks() -> Vec<(String, u64, u64)> {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return Vec::new();
    };
    stat.lines()
        .filter(|line| line.starts_with("cpu") && !line.starts_with("cpu "))
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let cpu = fields.next()?.to_owned();
            // user nice system idle iowait irq softirq steal ...
            let ticks: Vec<u64> = fields.take(8).filter_map(|f| f.parse().ok()).collect();
            if ticks.len() < 8 {
                return None;
            }
            let total: u64 = ticks.iter().sum();
            let idle = ticks[3] + ticks[4];
            Some((cpu, total - idle, total))
        })
        .collect()
}

/// Adds the busy and total ticks between `before` and `after` to `sum`.
fn add_ticks(
    sum: &mut Vec<(String, u64, u64)>,
    before: &[(String, u64, u64)],
    after: &[(String, u64, u64)],
) {
    for (cpu, busy, total) in after {
        let Some((_, busy0, total0)) = before.iter().find(|(c, _, _)| c == cpu) else {
            continue;
        };
        let busy = busy.saturating_sub(*busy0);
        let total = total.saturating_sub(*total0);
        match sum.iter_mut().find(|(c, _, _)| c == cpu) {
            Some(slot) => {
                slot.1 += busy;
                slot.2 += total;
            }
            None => sum.push((cpu.clone(), busy, total)),
        }
    }
}
