//! Fixtures shared by green-core's integration tests (`mod support;`).
#![allow(dead_code)] // Each test binary uses a different subset.

use std::cell::{Cell, RefCell};
use std::io::Read;
use std::panic::{self, AssertUnwindSafe};
use std::process::{Command, Output, Stdio};
use std::rc::Rc;
use std::thread;
use std::time::{Duration, Instant};

use green_core::{sleep, spawn, yield_now, Greenlet, Timeout};

/// Counts how many times its values were dropped: kill and unwind tests
/// check that captured values and locals are dropped exactly once.
#[derive(Clone, Default)]
pub struct DropCounter {
    drops: Rc<Cell<usize>>,
}

impl DropCounter {
    pub fn new() -> DropCounter {
        DropCounter::default()
    }

    /// A value whose drop is counted.
    pub fn token(&self) -> DropToken {
        DropToken {
            drops: Rc::clone(&self.drops),
        }
    }

    pub fn drops(&self) -> usize {
        self.drops.get()
    }
}

/// Bumps its counter when dropped.
pub struct DropToken {
    drops: Rc<Cell<usize>>,
}

impl Drop for DropToken {
    fn drop(&mut self) {
        self.drops.set(self.drops.get() + 1);
    }
}

/// A shared, ordered log of events, for ordering tests.
#[derive(Clone, Default)]
pub struct Log {
    entries: Rc<RefCell<Vec<String>>>,
}

impl Log {
    pub fn new() -> Log {
        Log::default()
    }

    pub fn push(&self, entry: impl Into<String>) {
        self.entries.borrow_mut().push(entry.into());
    }

    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.entries.borrow_mut())
    }

    pub fn snapshot(&self) -> Vec<String> {
        self.entries.borrow().clone()
    }
}

/// The message of a panic payload, for assertions on caught panics.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    green_core::panic_message(payload)
}

/// A unit for short test durations: `30 * MS`.
pub const MS: Duration = Duration::from_millis(1);

/// Runs `f`, catching a panic (a `Timeout`, a `GreenletExit`, ...).
pub fn catch<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    panic::catch_unwind(AssertUnwindSafe(f))
}

/// A greenlet that sleeps `d`, then returns `d` in milliseconds.
pub fn sleeper(d: Duration) -> Greenlet<u64> {
    spawn(move || {
        sleep(d);
        d.as_millis() as u64
    })
}

/// One sleeper per entry of `ms` (milliseconds), in order, each returning
/// its entry. Their deadlines count from one common instant, taken here, so
/// the order in which they finish follows `ms` however long the greenlets
/// take to start (a loaded machine, valgrind).
pub fn sleepers(ms: &[u64]) -> Vec<Greenlet<u64>> {
    let base = Instant::now();
    ms.iter()
        .map(|&m| {
            let at = base + Duration::from_millis(m);
            spawn(move || {
                sleep(at.saturating_duration_since(Instant::now()));
                m
            })
        })
        .collect()
}

/// Sleeps in small steps until `cond` holds; fails after 5 s instead of
/// hanging.
pub fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out waiting for {what}"
        );
        sleep(2 * MS);
    }
}

/// Runs `f` on a new thread (whose exit also tears its lazy hub down) and
/// fails if the thread has not finished within `limit`; the thread is then
/// left behind, still stuck.
pub fn within<R: Send + 'static>(limit: Duration, f: impl FnOnce() -> R + Send + 'static) -> R {
    let handle = thread::spawn(f);
    let start = Instant::now();
    while !handle.is_finished() {
        assert!(
            start.elapsed() < limit,
            "the scenario still runs after {limit:?}: it hangs"
        );
        thread::sleep(Duration::from_millis(5));
    }
    match handle.join() {
        Ok(r) => r,
        Err(payload) => panic::resume_unwind(payload),
    }
}

// ===== child processes =====
//
// Tests that must see stderr, an abort or a hang at thread exit run this test
// binary again, naming the scenario in an environment variable, and have its
// `child` test (a no-op without the variable) run it.

/// How long a child scenario that should end quickly may take.
pub const CHILD_LIMIT: Duration = Duration::from_secs(60);

/// Runs this binary's `child` test with `env` set to `mode` and returns its
/// output; kills it and fails if it still runs after `limit`.
pub fn run_child(env: &str, mode: &str, limit: Duration) -> Output {
    run_child_with_backtrace(env, mode, "0", limit)
}

/// [`run_child`] with `RUST_BACKTRACE` set to `backtrace`.
pub fn run_child_with_backtrace(env: &str, mode: &str, backtrace: &str, limit: Duration) -> Output {
    let mut child = Command::new(std::env::current_exe().unwrap())
        // `child` is `#[ignore = "child body"]`, so a plain run counts it as
        // skipped, not passed; only a parent runs it, here.
        .args([
            "--exact",
            "child",
            "--nocapture",
            "--test-threads=1",
            "--include-ignored",
        ])
        .env(env, mode)
        .env("RUST_BACKTRACE", backtrace)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child test process");
    // Read both pipes while waiting, so that a chatty child cannot block.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        let mut pipe = pipe.unwrap();
        thread::spawn(move || {
            let mut buf = Vec::new();
            pipe.read_to_end(&mut buf).map(|_| buf)
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child '{mode}' still runs after {limit:?}: it hangs");
        }
        thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().unwrap().unwrap(),
        stderr: stderr.join().unwrap().unwrap(),
    }
}

/// What follows `key ` on the child's stdout line holding it (the test
/// harness may have printed `test child ... ` before it).
pub fn stdout_value(out: &Output, key: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.split_once(&format!("{key} ")).map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no {key} line in stdout: {stdout}"))
        .to_string()
}

/// Runs its closure when dropped: a destructor doing arbitrary work (a
/// kill, a sleep, a spawn) as its frame unwinds.
pub struct OnDrop<F: FnMut()>(pub F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// Describes how a call returning a greenlet's result ended: `Ok(..)`,
/// `Err(<kind>: <message>)`, or `panic: <message>`.
pub fn describe_get<T: std::fmt::Debug>(
    r: std::thread::Result<Result<T, green_core::GreenletError>>,
) -> String {
    match r {
        Ok(Ok(v)) => format!("Ok({v:?})"),
        Ok(Err(e)) => format!("Err({:?}: {})", e.kind(), e.message()),
        Err(p) => format!("panic: {}", panic_message(&*p)),
    }
}

/// A greenlet parked in a destructor while it unwinds from a kill, until
/// released (at most 5 s).
pub struct MidUnwind {
    pub greenlet: Greenlet<()>,
    release: Rc<Cell<bool>>,
}

impl MidUnwind {
    /// Spawns the greenlet, kills it and returns once its destructor runs
    /// (it polls with short sleeps, each one a park while unwinding).
    pub fn start() -> MidUnwind {
        MidUnwind::start_with(DropCounter::new())
    }

    /// Spawns the greenlet (holding a token of `drops`), kills it and
    /// returns once its destructor runs.
    pub fn start_with(drops: DropCounter) -> MidUnwind {
        let release = Rc::new(Cell::new(false));
        let in_drop = Rc::new(Cell::new(false));
        let (r, d) = (Rc::clone(&release), Rc::clone(&in_drop));
        let greenlet = spawn(move || {
            let _token = drops.token();
            let _guard = OnDrop(move || {
                d.set(true);
                let start = Instant::now();
                while !r.get() && start.elapsed() < Duration::from_secs(5) {
                    sleep(5 * MS);
                }
            });
            sleep(Duration::from_secs(3600));
        });
        yield_now();
        greenlet.kill_nowait();
        let start = Instant::now();
        while !in_drop.get() {
            assert!(start.elapsed() < Duration::from_secs(5), "it never unwound");
            yield_now();
        }
        assert!(!greenlet.dead(), "it is parked in its destructor");
        MidUnwind { greenlet, release }
    }

    /// Lets the destructor end and waits for the greenlet to die.
    pub fn finish(self) {
        self.release.set(true);
        self.greenlet.join();
    }
}

/// Timers may round to the loop's millisecond clock: a wait that ended this
/// much before its timeout still counts as having waited it out.
pub const CLOCK_SLACK: Duration = Duration::from_millis(5);

/// Runs `wait` with `timeout` and checks it did wait (about) that long, the
/// way gevent's `_wait_and_check` does (lower bound only: no speed assert).
pub fn waits_out<R>(timeout: Duration, wait: impl FnOnce(Duration) -> R) -> R {
    let start = Instant::now();
    let result = wait(timeout);
    let elapsed = start.elapsed();
    assert!(
        elapsed + CLOCK_SLACK >= timeout,
        "the wait returned after {elapsed:?}, before its timeout of {timeout:?}"
    );
    result
}

/// gevent's `test_outer_timeout_is_not_lost`: a `Timeout` of the caller's
/// that fires during a long timed wait unwinds out of it as that very
/// timeout (the wait's own timeout does not swallow or replace it).
pub fn outer_timeout_is_not_lost(wait: impl FnOnce(Duration)) {
    let outer = Timeout::start_new(MS);
    let caught = catch(|| wait(Duration::from_secs(30)));
    outer.cancel();
    let payload = caught.expect_err("the outer timeout should have unwound out of the wait");
    assert!(
        outer.is(&*payload),
        "the wait unwound with something other than the outer timeout: {}",
        panic_message(&*payload)
    );
}
