//! The gevent scheduling-order oracle (tests/gevent_order/README.md), ported
//! to green: each `NN_name.py` there becomes `pNN_name` here, line for line,
//! recording what the program prints into a [`Log`]; the test compares that
//! trace with `NN_name.trace`, the program's exact stdout under gevent 26.9.0.
//!
//! Python idioms without an exact equivalent are ported in spirit, each with
//! a one-line comment: `try/except GreenletExit` is `catch_unwind` around the
//! blocking call ([`except_exit`]), `finally:` is a drop guard
//! ([`Log::finally`]), `with Timeout(0):` is `Timeout::run`, an exception a
//! primitive raises is the `Err` green returns, an `acquire()` never
//! released is a forgotten guard.
//!
//! Where green deliberately differs from gevent (a `Waiter`'s `get` takes
//! the value and its `switch` may come from a greenlet, `try_acquire` never
//! switches, a second `set` of an `AsyncResult` replaces the whole outcome,
//! a killed greenlet's semaphore guard gives its count back, a greenlet's
//! `Local` values are dropped as it finishes), the port
//! asserts green's trace instead ([`check_against`]), with a comment quoting
//! the gevent lines that differ.

// Ported: 1-86 except 30_fairness_sleep0_loop_io (needs green sockets);
// 67, 68, 76, 80, 81, 82 and 86 assert green's trace (the deliberate
// differences above). 81b replays 81 without its refused switch from a
// greenlet, to keep 81's point: a switch from a hub callback resumes the
// waiter right after the callback. Every port passes, with io_uring and with
// GREEN_LOOP_BACKEND=epoll.
// The README's rules 1-7 are the scheduler's Q1-Q6 (crates/green-core's
// hub module docs).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use green_core::sync::{
    AsyncResult, BoundedSemaphore, Channel, Event, GetError, JoinableQueue, Lock, Queue, RLock,
    ReleaseError, Semaphore, Waiter,
};
use green_core::{
    current, idle, iwait, joinall, joinall_with, killall_with, sleep, spawn, spawn_later, wait,
    with_timeout, with_timeout_or, yield_now, Greenlet, GreenletExit, LinkId, Local, Timeout,
    Waitable,
};

// ===== the harness =====

/// The trace a port prints: one line per Python `print`. Shared by every
/// greenlet of a scenario (an `Arc<Mutex>` only so that the test thread can
/// still show what was printed when a scenario hangs).
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    /// `print(...)`.
    fn say(&self, line: impl Into<String>) {
        self.lines().push(line.into());
    }

    /// `lambda: print(line)`, as a greenlet body.
    fn task(&self, line: &'static str) -> impl FnOnce() + 'static {
        let log = self.clone();
        move || log.say(line)
    }

    /// `lambda src: print(line)`, as a link callback.
    fn on<T: 'static>(&self, line: &'static str) -> impl FnOnce(&Greenlet<T>) + 'static {
        let log = self.clone();
        move |_: &Greenlet<T>| log.say(line)
    }

    /// `try: ... finally: print(line)`: prints when dropped, unwinding or not.
    fn finally(&self, line: impl Into<String>) -> Finally {
        Finally(self.clone(), line.into())
    }

    fn lines(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The drop guard behind [`Log::finally`].
struct Finally(Log, String);

impl Drop for Finally {
    fn drop(&mut self) {
        self.0.say(std::mem::take(&mut self.1));
    }
}

/// `print("...", x)` with `format!` syntax.
macro_rules! say {
    ($log:expr, $($arg:tt)*) => {
        $log.say(format!($($arg)*))
    };
}

/// Python's spelling of a bool.
fn py(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// `try: f() except GreenletExit: ...`: `None` when `f` was unwound by a
/// `GreenletExit` (the unwind ends here); any other unwind passes through.
fn except_exit<R>(f: impl FnOnce() -> R) -> Option<R> {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => Some(value),
        Err(payload) if payload.is::<GreenletExit>() => None,
        Err(payload) => panic::resume_unwind(payload),
    }
}

/// `try: f() except Timeout as e: ...`: `Err(e)` when `f` was unwound by a
/// `Timeout` (any); any other unwind passes through.
fn except_timeout<R>(f: impl FnOnce() -> R) -> Result<R, Box<dyn Any + Send>> {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => Ok(value),
        Err(payload) if payload.is::<Timeout>() => Err(payload),
        Err(payload) => panic::resume_unwind(payload),
    }
}

/// Python's `ValueError`, raised with `panic_any` so its type can be named,
/// or stored as an error value.
#[derive(Debug, Clone)]
struct ValueError(&'static str);

/// Python's `KeyError`.
#[derive(Debug, Clone)]
struct KeyError(&'static str);

impl ValueError {
    /// Python's `repr(e)`.
    fn repr(&self) -> String {
        format!("ValueError('{}')", self.0)
    }
}

impl KeyError {
    /// Python's `repr(e)`.
    fn repr(&self) -> String {
        format!("KeyError('{}')", self.0)
    }
}

/// Python's `repr()` of an optional error: `None` or the error's repr.
fn repr_or_none(error: Option<ValueError>) -> String {
    error.map_or_else(|| "None".to_string(), |e| e.repr())
}

/// Python's `str(e)` for an error green reports with a message of its own:
/// green's messages start with gevent's text and add a hint in
/// parentheses, which this cuts off.
fn gevent_text(error: &impl std::fmt::Display) -> String {
    let text = error.to_string();
    match text.find(" (") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Python's `print` of a list of strings: `['a', 'b']`.
fn py_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("'{s}'")).collect();
    format!("[{}]", quoted.join(", "))
}

fn ten_s() -> Duration {
    Duration::from_secs(10)
}

fn one_ms() -> Duration {
    Duration::from_millis(1)
}

/// How long a scenario may take before it counts as hung.
const LIMIT: Duration = Duration::from_secs(10);

/// Runs `scenario` inside `green_core::run` on a fresh thread (at most
/// [`LIMIT`]) and compares what it printed with `tests/gevent_order/<name>.trace`.
fn check(name: &str, scenario: fn(&Log)) {
    compare(name, scenario, &gevent_trace(name), "gevent's");
}

/// For a program whose trace green deliberately does not reproduce (the
/// differences listed at the top of this file, each named in a comment at
/// its port): runs `scenario` as [`check`] does, but compares with
/// `expected`, green's trace written in the test. `expected` must differ from gevent's trace:
/// once green matches gevent, the port goes back to [`check`].
fn check_against(name: &str, scenario: fn(&Log), expected: &[&str]) {
    let expected: Vec<String> = expected.iter().map(|line| line.to_string()).collect();
    assert_ne!(
        expected,
        gevent_trace(name),
        "{name}: the expected trace is gevent's: use check()"
    );
    compare(name, scenario, &expected, "green's expected");
}

/// The lines of `tests/gevent_order/<name>.trace`.
fn gevent_trace(name: &str) -> Vec<String> {
    let path = format!(
        "{}/tests/gevent_order/{name}.trace",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines().map(str::to_string).collect()
}

/// Runs `scenario` and panics with both traces side by side unless it
/// printed `expected` (`whose` names that trace in the message).
fn compare(name: &str, scenario: fn(&Log), expected: &[String], whose: &str) {
    let log = Log::default();
    let (tx, rx) = mpsc::channel();
    let thread_log = log.clone();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let result = panic::catch_unwind(AssertUnwindSafe(|| {
                green_core::run(|| scenario(&thread_log));
            }));
            let _ = tx.send(result.err().map(|p| payload_text(&*p)));
        })
        .expect("spawn the scenario thread");
    let problem = match rx.recv_timeout(LIMIT) {
        Ok(None) => None,
        Ok(Some(panic)) => Some(format!("the scenario panicked: {panic}")),
        Err(_) => Some(format!("the scenario did not finish within {LIMIT:?}")),
    };
    let got = log.lines().clone();
    if got != expected || problem.is_some() {
        panic!(
            "{name}: the trace differs from {whose}{}\n{}",
            problem.map(|p| format!(" ({p})")).unwrap_or_default(),
            side_by_side(expected, &got, whose)
        );
    }
}

fn payload_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if payload.is::<GreenletExit>() {
        "GreenletExit".to_string()
    } else if payload.is::<Timeout>() {
        "Timeout".to_string()
    } else {
        "a non-string payload".to_string()
    }
}

/// Both traces in two columns, the first differing line marked `>>`.
fn side_by_side(expected: &[String], got: &[String], whose: &str) -> String {
    let first = (0..expected.len().max(got.len()))
        .find(|&i| expected.get(i) != got.get(i))
        .unwrap_or(usize::MAX);
    let width = expected.iter().map(String::len).max().unwrap_or(0).max(8);
    let mut out = format!("      {:<width$} | got\n", format!("expected ({whose})"));
    for i in 0..expected.len().max(got.len()) {
        let mark = if i == first { ">>" } else { "  " };
        let e = expected.get(i).map_or("<none>", String::as_str);
        let g = got.get(i).map_or("<none>", String::as_str);
        let _ = writeln!(out, "{mark} {:>2} {e:<width$} | {g}", i + 1);
    }
    out
}

// ===== the programs =====
//
// Skipped (needs green primitives that do not exist yet):
//   30_fairness_sleep0_loop_io     (socket I/O)

#[test]
fn p01_link_after_finish() {
    check("01_link_after_finish", |log| {
        let g = spawn(log.task("G runs"));
        yield_now();
        say!(log, "main after first sleep0, G dead: {}", py(g.dead()));
        g.link(log.on("link G"));
        log.say("main linked");
        yield_now();
        log.say("main after second sleep0");
    });
}

#[test]
fn p02_late_link_queue_place() {
    check("02_late_link_queue_place", |log| {
        let g = spawn(log.task("G runs"));
        yield_now();
        log.say("main after first sleep0");
        spawn(log.task("A start"));
        g.link(log.on("link G"));
        spawn(log.task("B start"));
        yield_now();
        log.say("main after second sleep0");
    });
}

#[test]
fn p03_kill_unstarted_links() {
    check("03_kill_unstarted_links", |log| {
        let g = Greenlet::new(log.task("G runs"));
        g.link(log.on("link G"));
        spawn(log.task("A start"));
        g.kill();
        say!(log, "main after kill, G dead: {}", py(g.dead()));
        spawn(log.task("B start"));
        yield_now();
        log.say("main after sleep0");
    });
}

#[test]
fn p04_kill_spawned_not_run() {
    check("04_kill_spawned_not_run", |log| {
        let g = spawn(log.task("G runs"));
        spawn(log.task("A start"));
        g.link(log.on("link G"));
        g.kill();
        log.say("main after blocking kill");
        spawn(log.task("B start"));
        yield_now();
        log.say("main after sleep0");
    });
}

#[test]
fn p05_links_dont_overtake() {
    check("05_links_dont_overtake", |log| {
        let l = log.clone();
        let a_g = spawn(move || {
            l.say("A start");
            l.say("A end");
        });
        a_g.link(log.on("link A"));
        spawn(log.task("B start"));
        yield_now();
        log.say("main after sleep0");
        yield_now();
        log.say("main after second sleep0");
    });
}

#[test]
fn p06_links_in_finish_order() {
    check("06_links_in_finish_order", |log| {
        let l = log.clone();
        let a = move || {
            l.say("A start");
            yield_now();
            l.say("A end");
        };
        let b = log.task("B end");
        let ga = spawn(a);
        let gb = spawn(b);
        ga.link(log.on("link A 1"));
        gb.link(log.on("link B 1"));
        ga.link(log.on("link A 2"));
        gb.link(log.on("link B 2"));
        let _ = joinall_with(&[ga, gb], None, false, None);
        log.say("main after joinall");
    });
}

#[test]
fn p07_join_waiter_is_link() {
    check("07_join_waiter_is_link", |log| {
        let g = spawn(log.task("G runs"));
        g.link(log.on("link 1"));
        let (l, g2) = (log.clone(), g.clone());
        let h = move || {
            l.say("H links 2");
            g2.link(l.on("link 2"));
        };
        spawn(h);
        g.join();
        log.say("main joined");
        yield_now();
        log.say("main after sleep0");
    });
}

#[test]
fn p08_get_waiter_is_link() {
    check("08_get_waiter_is_link", |log| {
        let l = log.clone();
        let body = move || {
            l.say("G runs");
            42
        };
        let g = spawn(body);
        g.link(log.on("link 1"));
        let (l, g2) = (log.clone(), g.clone());
        let h = move || {
            l.say("H links 2");
            g2.link(l.on("link 2"));
            g2.link(l.on("link 3"));
        };
        spawn(h);
        say!(log, "main got {}", g.get().unwrap());
        yield_now();
        log.say("main after sleep0");
    });
}

#[test]
fn p09_joinall_waiter_position() {
    check("09_joinall_waiter_position", |log| {
        let ga = spawn(log.task("A runs"));
        let gb = spawn(log.task("B runs"));
        ga.link(log.on("link A before"));
        gb.link(log.on("link B before"));
        let (l, ga2, gb2) = (log.clone(), ga.clone(), gb.clone());
        let h = move || {
            l.say("H adds late links");
            ga2.link(l.on("link A after"));
            gb2.link(l.on("link B after"));
        };
        spawn(h);
        let _ = joinall_with(&[ga, gb], None, false, None);
        log.say("main after joinall");
        yield_now();
        log.say("main after sleep0");
    });
}

#[test]
fn p10_iwait_order() {
    check("10_iwait_order", |log| {
        let worker = |name: &'static str, hops: usize| {
            let l = log.clone();
            move || {
                for _ in 0..hops {
                    yield_now();
                }
                say!(l, "{name} end");
            }
        };
        let gs = [
            spawn(worker("A", 2)),
            spawn(worker("B", 0)),
            spawn(worker("C", 1)),
        ];
        let names = ["A", "B", "C"];
        // `gs.index(src)` in Python: each link is told its greenlet's name.
        for (g, name) in gs.iter().zip(names) {
            let l = log.clone();
            g.link(move |_| say!(l, "link {name}"));
        }
        let objects: Vec<&dyn Waitable> = gs.iter().map(|g| g as &dyn Waitable).collect();
        for i in iwait(&objects, None) {
            say!(log, "main got {}", names[i]);
        }
        log.say("main done");
    });
}

#[test]
fn p11_link_added_by_waiter_during_firing() {
    check("11_link_added_by_waiter_during_firing", |log| {
        let g = spawn(log.task("G runs"));
        g.join();
        log.say("main joined G");
        spawn(log.task("A start"));
        g.link(log.on("link G"));
        spawn(log.task("B start"));
        yield_now();
        log.say("main after sleep0");
    });
}

#[test]
fn p12_blocking_kill_returns_first() {
    check("12_blocking_kill_returns_first", |log| {
        let l = log.clone();
        let body = move || {
            l.say("G start");
            let _finally = l.finally("G exits");
            sleep(ten_s());
        };
        let g = spawn(body);
        g.link(log.on("link G"));
        g.rawlink(log.on("rawlink G"));
        yield_now();
        g.kill();
        log.say("main after kill");
        yield_now();
        log.say("main after sleep0");
    });
}

#[test]
fn p13_kill_behind_sleep0_resume() {
    check("13_kill_behind_sleep0_resume", |log| {
        let l = log.clone();
        let body = move || {
            l.say("G start");
            yield_now();
            l.say("G resumed");
            let r = except_exit(|| {
                yield_now();
                l.say("G not killed");
            });
            if r.is_none() {
                l.say("G exit at second sleep0");
            }
        };
        let g = spawn(body);
        yield_now();
        log.say("main kills");
        g.kill_nowait();
        g.join();
        log.say("main joined");
    });
}

#[test]
fn p14_kill_behind_join_wakeup() {
    check("14_kill_behind_join_wakeup", |log| {
        let h = log.task("H runs");
        // Python's g_body finds `hh` as a global, spawned right after `gg`:
        // here hh is made first and started right after gg (start order is
        // the order of start calls, program 32).
        let hh = Greenlet::new(h);
        let (l, hh2) = (log.clone(), hh.clone());
        let g_body = move || {
            l.say("G joins H");
            hh2.join();
            l.say("G joined H");
            let r = except_exit(|| {
                yield_now();
                l.say("G not killed");
            });
            if r.is_none() {
                l.say("G exit after join");
            }
        };
        let gg = spawn(g_body);
        hh.start();
        yield_now();
        log.say("main kills G");
        gg.kill_nowait();
        gg.join();
        log.say("main joined G");
    });
}

#[test]
fn p15_kill_vs_expired_timer() {
    check("15_kill_vs_expired_timer", |log| {
        let l = log.clone();
        let body = move || {
            l.say("G sleeps 1ms");
            let r = except_exit(|| {
                sleep(one_ms());
                l.say("G woke normally");
            });
            if r.is_none() {
                l.say("G exit inside sleep");
            }
        };
        let g = spawn(body);
        yield_now();
        std::thread::sleep(Duration::from_millis(20));
        log.say("main kills");
        g.kill_nowait();
        g.join();
        log.say("main joined");
    });
}

#[test]
fn p16_two_kills_two_exits() {
    check("16_two_kills_two_exits", |log| {
        let l = log.clone();
        let body = move || {
            l.say("G start");
            if except_exit(|| sleep(ten_s())).is_none() {
                l.say("G caught exit 1");
            }
            if except_exit(|| sleep(ten_s())).is_none() {
                l.say("G caught exit 2");
            }
            l.say("G end");
        };
        let g = spawn(body);
        yield_now();
        g.kill_nowait();
        g.kill_nowait();
        log.say("main queued two kills");
        g.join();
        log.say("main joined");
    });
}

/// Python's `None` or a string value.
fn value_text(value: Option<Option<&str>>) -> &str {
    value.flatten().unwrap_or("None")
}

#[test]
fn p17_second_kill_after_death() {
    check("17_second_kill_after_death", |log| {
        let l = log.clone();
        // Returns Python's `None` (here `None`) unless it caught the exit.
        let body = move || match except_exit(|| sleep(ten_s())) {
            Some(()) => None,
            None => {
                l.say("G caught exit 1, returns");
                Some("survived")
            }
        };
        let g = spawn(body);
        let l = log.clone();
        g.link(move |src| say!(l, "link G, value {}", value_text(src.value())));
        yield_now();
        g.kill_nowait();
        g.kill_nowait();
        g.join();
        say!(log, "main joined, value {}", value_text(g.value()));
        yield_now();
        log.say("main after sleep0");
    });
}

#[test]
fn p18_kill_nowait_caught_then_blocking_kill() {
    check("18_kill_nowait_caught_then_blocking_kill", |log| {
        let l = log.clone();
        let body = move || {
            for i in [1, 2] {
                if except_exit(|| sleep(ten_s())).is_none() {
                    say!(l, "G caught exit {i}");
                }
            }
            l.say("G end");
        };
        let g = spawn(body);
        g.link(log.on("link G"));
        yield_now();
        g.kill_nowait();
        yield_now();
        log.say("main after sleep0");
        g.kill();
        log.say("main after blocking kill");
        yield_now();
        log.say("main after second sleep0");
    });
}

#[test]
fn p19_timeout0_after_callbacks() {
    check("19_timeout0_after_callbacks", |log| {
        let worker = |name: &'static str| {
            let l = log.clone();
            move || {
                say!(l, "{name} start");
                yield_now();
                say!(l, "{name} resumed");
            }
        };
        spawn(worker("A"));
        let t = Timeout::start_new(Duration::ZERO);
        spawn(worker("B"));
        match except_timeout(|| {
            sleep(ten_s());
            log.say("main not timed out");
        }) {
            Ok(()) => {}
            Err(e) => say!(log, "main timed out: {}", py(t.is(&*e))),
        }
    });
}

#[test]
fn p20_timeout0_body_of_sleep0s() {
    check("20_timeout0_body_of_sleep0s", |log| {
        // `with Timeout(0):` is Timeout::run; its Err is the except branch.
        let r = Timeout::run(Duration::ZERO, || {
            for i in 0..5 {
                say!(log, "main step {i}");
                yield_now();
            }
            log.say("main body done");
        });
        if r.is_err() {
            log.say("main timed out");
        }
        yield_now();
        log.say("main after block");
    });
}

#[test]
fn p21_spawn_later0_after_spawn() {
    check("21_spawn_later0_after_spawn", |log| {
        let l = log.clone();
        let b = move || {
            l.say("B start");
            yield_now();
            l.say("B resumed");
        };
        spawn_later(Duration::ZERO, log.task("L start"));
        spawn(b);
        log.say("main sleeps");
        sleep(one_ms());
        log.say("main after sleep");
    });
}

#[test]
fn p22_wait_timeout0_sees_finish() {
    check("22_wait_timeout0_sees_finish", |log| {
        let g = spawn(log.task("G runs"));
        let done = wait(&[&g], Some(Duration::ZERO), None);
        say!(log, "main wait returned {} done", done.len());
        let h = spawn(|| sleep(ten_s()));
        let done = wait(&[&h], Some(Duration::ZERO), None);
        say!(log, "main wait on sleeper returned {} done", done.len());
        h.kill();
    });
}

#[test]
fn p23_join_timeout0() {
    check("23_join_timeout0", |log| {
        spawn(log.task("A start"));
        let g = spawn(log.task("G runs"));
        g.join_timeout(Duration::ZERO);
        say!(log, "main join(0) returned, G ready: {}", py(g.ready()));
        let h = spawn(|| sleep(ten_s()));
        h.join_timeout(Duration::ZERO);
        say!(
            log,
            "main join(0) on sleeper returned, H ready: {}",
            py(h.ready())
        );
        h.kill();
    });
}

#[test]
fn p24_nested_zero_timeouts() {
    check("24_nested_zero_timeouts", |log| {
        let outer = Timeout::new(Duration::ZERO);
        outer.start();
        let inner = Timeout::new(Duration::ZERO);
        let r = except_timeout(|| {
            inner.start();
            let r = except_timeout(|| sleep(ten_s()));
            // `finally: inner.cancel()`, then the handler's `raise`.
            inner.cancel();
            if let Err(e) = r {
                say!(
                    log,
                    "inner handler: outer? {} inner? {}",
                    py(outer.is(&*e)),
                    py(inner.is(&*e))
                );
                panic::resume_unwind(e);
            }
        });
        if let Err(e) = r {
            say!(
                log,
                "outer handler: outer? {} inner? {}",
                py(outer.is(&*e)),
                py(inner.is(&*e))
            );
        }
        outer.cancel();
        yield_now();
        log.say("main done");
    });
}

#[test]
fn p25_zero_timer_vs_sleep0_chain() {
    check("25_zero_timer_vs_sleep0_chain", |log| {
        let player = |name: &'static str| {
            let l = log.clone();
            move || {
                for i in 0..4 {
                    say!(l, "{name} {i}");
                    yield_now();
                }
                say!(l, "{name} blocks");
                sleep(ten_s());
            }
        };
        spawn_later(Duration::ZERO, log.task("timer greenlet"));
        let a = spawn(player("A"));
        let b = spawn(player("B"));
        sleep(one_ms());
        log.say("main after sleep");
        killall_with(&[a, b], true, None);
    });
}

#[test]
fn p26_zero_timers_fifo() {
    check("26_zero_timers_fifo", |log| {
        let t = |name: &'static str| {
            let l = log.clone();
            move || {
                say!(l, "{name} start");
                yield_now();
                say!(l, "{name} resumed");
            }
        };
        spawn_later(Duration::ZERO, t("A"));
        spawn_later(Duration::ZERO, t("B"));
        spawn_later(Duration::ZERO, t("C"));
        sleep(one_ms());
        log.say("main after sleep");
    });
}

#[test]
fn p27_timeout0_vs_spawn_later0() {
    check("27_timeout0_vs_spawn_later0", |log| {
        spawn_later(Duration::ZERO, log.task("L start"));
        let _t = Timeout::start_new(Duration::ZERO);
        if except_timeout(|| sleep(ten_s())).is_err() {
            log.say("main timed out");
        }
        spawn_later(Duration::ZERO, log.task("M start"));
        let _t = Timeout::start_new(Duration::ZERO);
        if except_timeout(|| sleep(ten_s())).is_err() {
            log.say("main timed out again");
        }
        yield_now();
        log.say("main after sleep0");
    });
}

#[test]
fn p28_fairness_short_chain() {
    check("28_fairness_short_chain", |log| {
        let order = Rc::new(RefCell::new(Vec::new()));
        let (l, o) = (log.clone(), Rc::clone(&order));
        spawn_later(Duration::ZERO, move || {
            say!(l, "timer greenlet, starts seen: {}", o.borrow().len())
        });
        for i in 0..100 {
            let o = Rc::clone(&order);
            spawn(move || o.borrow_mut().push(i));
        }
        sleep(one_ms());
        let in_order = *order.borrow() == (0..100).collect::<Vec<_>>();
        say!(log, "starts in spawn order: {}", py(in_order));
    });
}

#[test]
fn p29_fairness_sleep0_loop_timer() {
    check("29_fairness_sleep0_loop_timer", |log| {
        let stop = Rc::new(Cell::new(false));
        let spins = Rc::new(Cell::new(0u32));
        let (l, st, sp) = (log.clone(), Rc::clone(&stop), Rc::clone(&spins));
        let spinner = move || {
            while !st.get() {
                sp.set(sp.get() + 1);
                yield_now();
            }
            l.say("spinner stopped");
        };
        let (l, st) = (log.clone(), Rc::clone(&stop));
        let stopper = move || {
            l.say("timer greenlet runs");
            st.set(true);
        };
        let s = spawn(spinner);
        spawn_later(Duration::ZERO, stopper);
        s.join();
        say!(log, "spins >= 40: {}", py(spins.get() >= 40));
    });
}

#[test]
fn p31_sleep0_round_robin() {
    check("31_sleep0_round_robin", |log| {
        let w = |name: &'static str| {
            let l = log.clone();
            move || {
                for i in 0..3 {
                    say!(l, "{name} {i}");
                    yield_now();
                }
            }
        };
        let gs: Vec<_> = ["A", "B", "C"].into_iter().map(|n| spawn(w(n))).collect();
        yield_now();
        log.say("main after sleep0");
        let _ = joinall_with(&gs, None, false, None);
        log.say("main joined all");
    });
}

#[test]
fn p32_start_vs_spawn_order() {
    check("32_start_vs_spawn_order", |log| {
        let g = Greenlet::new(log.task("G start"));
        spawn(log.task("A start"));
        let h = Greenlet::new(log.task("H start"));
        h.start();
        g.start();
        g.start();
        spawn(log.task("B start"));
        yield_now();
        log.say("main after sleep0");
    });
}

#[test]
fn p33_spawn_from_greenlet() {
    check("33_spawn_from_greenlet", |log| {
        let l = log.clone();
        let a = move || {
            l.say("A start, spawns C");
            spawn(l.task("C start"));
        };
        spawn(a);
        spawn(log.task("B start"));
        yield_now();
        log.say("main after sleep0");
        yield_now();
        log.say("main after second sleep0");
    });
}

#[test]
fn p34_link_kinds_success() {
    check("34_link_kinds_success", |log| {
        let g = spawn(|| 1);
        g.link_exception(log.on("link_exception"));
        g.link(log.on("link"));
        g.rawlink(log.on("rawlink"));
        g.link_value(log.on("link_value"));
        g.join();
        log.say("main joined");
        yield_now();
        log.say("main after sleep0");
    });
}

#[test]
fn p35_link_kinds_failure() {
    check("35_link_kinds_failure", |log| {
        // `exception_stream = None` has no equivalent: green reports the
        // failure on stderr, which the trace does not include.
        let body = || panic::panic_any(ValueError("boom"));
        let g: Greenlet<()> = spawn(body);
        g.link_value(log.on("link_value"));
        g.link_exception(log.on("link_exception"));
        g.rawlink(log.on("rawlink"));
        g.link(log.on("link"));
        g.join();
        // `type(g.exception).__name__`: the payload's type.
        let payload = g.take_exception_payload();
        let name = match payload {
            Some(p) if p.is::<ValueError>() => "ValueError",
            Some(_) => "another payload",
            None => "None",
        };
        say!(log, "main joined, exception: {name}");
        yield_now();
        log.say("main after sleep0");
    });
}

#[test]
fn p36_link_kinds_killed() {
    check("36_link_kinds_killed", |log| {
        let g = spawn(|| sleep(ten_s()));
        g.link_value(log.on("link_value"));
        g.link_exception(log.on("link_exception"));
        yield_now();
        g.kill();
        say!(log, "main after kill, successful: {}", py(g.successful()));
        // gevent's get() returns the GreenletExit; green's get() returns an
        // error that says it was one.
        let exit = matches!(g.get(), Err(e) if e.is_exit());
        say!(log, "main get returned GreenletExit: {}", py(exit));
        yield_now();
        log.say("main after sleep0");
    });
}

#[test]
fn p37_unlink_during_firing() {
    check("37_unlink_during_firing", |log| {
        // Python unlinks by callback, green by the id `rawlink` returned.
        let third_id: Rc<Cell<Option<LinkId>>> = Rc::new(Cell::new(None));
        let (l, id) = (log.clone(), Rc::clone(&third_id));
        let first = move |src: &Greenlet<()>| {
            l.say("link 1 unlinks link 3");
            if let Some(id) = id.get() {
                src.unlink(id);
            }
        };
        let third = log.on("link 3");
        let g = spawn(log.task("G runs"));
        g.rawlink(first);
        g.rawlink(log.on("link 2"));
        third_id.set(Some(g.rawlink(third)));
        g.rawlink(log.on("link 4"));
        for i in [1, 2] {
            yield_now();
            say!(log, "main after sleep0 {i}");
        }
    });
}

#[test]
fn p38_link_added_during_firing() {
    check("38_link_added_during_firing", |log| {
        let l = log.clone();
        let first = move |src: &Greenlet<()>| {
            l.say("link 1 adds link 3");
            src.link(l.on("link 3"));
        };
        let a = log.task("A start");
        let g = spawn(log.task("G runs"));
        g.link(first);
        g.link(log.on("link 2"));
        g.join();
        log.say("main joined");
        spawn(a);
        yield_now();
        log.say("main after sleep0");
    });
}

#[test]
fn p39_link_that_spawns() {
    check("39_link_that_spawns", |log| {
        let l = log.clone();
        let on_done = move |_: &Greenlet<()>| {
            l.say("link G spawns X");
            spawn(l.task("X start"));
        };
        let g = spawn(log.task("G runs"));
        g.link(on_done);
        spawn(log.task("B start"));
        for i in [1, 2, 3] {
            yield_now();
            say!(log, "main after sleep0 {i}");
        }
    });
}

#[test]
fn p40_link_that_blocks() {
    check("40_link_that_blocks", |log| {
        let l = log.clone();
        let slow = move |_: &Greenlet<()>| {
            l.say("link 1 sleeps");
            yield_now();
            l.say("link 1 resumed");
        };
        let g = spawn(log.task("G runs"));
        g.link(slow);
        g.link(log.on("link 2"));
        spawn(log.task("B start"));
        for i in [1, 2, 3] {
            yield_now();
            say!(log, "main after sleep0 {i}");
        }
    });
}

#[test]
fn p41_blocking_kill_from_link() {
    check("41_blocking_kill_from_link", |log| {
        let l = log.clone();
        let h_body = move || {
            let _finally = l.finally("H exits");
            sleep(ten_s());
        };
        let h = spawn(h_body);
        let (l, h2) = (log.clone(), h.clone());
        let killer = move |_: &Greenlet<()>| {
            l.say("link 1 kills H");
            h2.kill();
            l.say("link 1 after kill");
        };
        h.link(log.on("link H"));
        let g = spawn(log.task("G runs"));
        g.link(killer);
        g.link(log.on("link 2"));
        for i in [1, 2, 3, 4] {
            yield_now();
            say!(log, "main after sleep0 {i}");
        }
    });
}

/// `sleeper(name)` of programs 42, 43: sleeps, printing `<name> exits`
/// however it ends.
fn sleeper(log: &Log, name: &'static str) -> impl FnOnce() + 'static {
    let l = log.clone();
    move || {
        let _finally = l.finally(format!("{name} exits"));
        sleep(ten_s());
    }
}

#[test]
fn p42_killall_block() {
    check("42_killall_block", |log| {
        let a = spawn(sleeper(log, "A"));
        let b = spawn(sleeper(log, "B"));
        yield_now();
        let c = spawn(sleeper(log, "C"));
        let d = Greenlet::new(sleeper(log, "D"));
        for (g, n) in [(&a, "A"), (&b, "B"), (&c, "C"), (&d, "D")] {
            let l = log.clone();
            g.link(move |_| say!(l, "link {n}"));
        }
        killall_with(&[b, c, a, d], true, None);
        log.say("main after killall");
        yield_now();
        log.say("main after sleep0");
    });
}

#[test]
fn p43_killall_nowait() {
    check("43_killall_nowait", |log| {
        let a = spawn(sleeper(log, "A"));
        let b = spawn(sleeper(log, "B"));
        yield_now();
        spawn(log.task("E start"));
        killall_with(&[a.clone(), b.clone()], false, None);
        log.say("main after killall");
        let _ = joinall_with(&[a, b], None, false, None);
        log.say("main joined");
    });
}

#[test]
fn p44_get_on_killed_unstarted() {
    check("44_get_on_killed_unstarted", |log| {
        let g = Greenlet::new(log.task("G runs"));
        g.link(log.on("link G"));
        g.kill();
        // gevent's get() returns the GreenletExit; green's get() returns an
        // error that says it was one.
        let r = g.get();
        let exit = matches!(r, Err(e) if e.is_exit());
        say!(log, "main get returned GreenletExit: {}", py(exit));
        say!(
            log,
            "main ready: {} successful: {}",
            py(g.ready()),
            py(g.successful())
        );
        yield_now();
        log.say("main after sleep0");
    });
}

#[test]
fn p45_ready_ops_do_not_yield() {
    check("45_ready_ops_do_not_yield", |log| {
        let g = spawn(|| 7);
        g.join();
        spawn(log.task("A start"));
        g.join();
        log.say("main join returned");
        say!(log, "main get returned {}", g.get().unwrap());
        g.kill();
        log.say("main kill returned");
        yield_now();
        log.say("main after sleep0");
    });
}

#[test]
fn p46_blocking_kill_target_survives_throw() {
    check("46_blocking_kill_target_survives_throw", |log| {
        let l = log.clone();
        let body = move || {
            if except_exit(|| sleep(ten_s())).is_none() {
                l.say("G caught exit");
            }
            yield_now();
            l.say("G end");
        };
        let g = spawn(body);
        let (l, g2) = (log.clone(), g.clone());
        let h = move || {
            yield_now();
            l.say("H adds link 2");
            g2.link(l.on("link 2"));
        };
        g.link(log.on("link 1"));
        yield_now();
        spawn(h);
        g.kill();
        log.say("main after kill");
        yield_now();
        log.say("main after sleep0");
    });
}

#[test]
fn p49_rawlink_vs_get_waiter() {
    check("49_rawlink_vs_get_waiter", |log| {
        let g = spawn(|| "v");
        let (l, g2) = (log.clone(), g.clone());
        let add_rawlink = move || {
            l.say("H adds rawlink");
            g2.rawlink(l.on("rawlink"));
        };
        spawn(add_rawlink);
        say!(log, "main get -> {}", g.get().unwrap());
        yield_now();
        log.say("main after sleep0");
    });
}

#[test]
fn p50_idle_after_all() {
    check("50_idle_after_all", |log| {
        let l = log.clone();
        let a = move || {
            for i in 0..3 {
                say!(l, "A {i}");
                yield_now();
            }
        };
        spawn(a);
        spawn_later(Duration::ZERO, log.task("timer greenlet"));
        idle();
        log.say("main after idle");
    });
}

#[test]
fn p51_kill_timeout_zero() {
    check("51_kill_timeout_zero", |log| {
        let l = log.clone();
        let body = move || {
            if except_exit(|| sleep(ten_s())).is_none() {
                l.say("G caught exit");
            }
            yield_now();
            l.say("G resumed");
            sleep(ten_s());
        };
        let g = spawn(body);
        yield_now();
        g.kill_timeout(Duration::ZERO);
        say!(log, "main after kill(timeout=0), G dead: {}", py(g.dead()));
        g.kill_nowait();
        g.join();
        log.say("main joined");
    });
}

#[test]
fn p52_joinall_with_killed_unstarted() {
    check("52_joinall_with_killed_unstarted", |log| {
        let a = Greenlet::new(log.task("A runs"));
        let b = spawn(log.task("B runs"));
        a.link(log.on("link A"));
        b.link(log.on("link B"));
        a.kill();
        let _ = joinall_with(&[a, b], None, false, None);
        log.say("main after joinall");
        yield_now();
        log.say("main after sleep0");
    });
}

#[test]
fn p53_iwait_timeout_zero() {
    check("53_iwait_timeout_zero", |log| {
        let a = spawn(log.task("A runs"));
        let b = spawn(log.task("B runs"));
        let c = spawn(|| sleep(ten_s()));
        // `names[g]`: iwait yields indices into [c, b, a].
        let names = ["C", "B", "A"];
        let objects: [&dyn Waitable; 3] = [&c, &b, &a];
        for i in iwait(&objects, Some(Duration::ZERO)) {
            say!(log, "main got {}", names[i]);
        }
        log.say("main iwait over");
        c.kill();
    });
}

#[test]
fn p54_self_link() {
    check("54_self_link", |log| {
        let l = log.clone();
        let a = move || {
            l.say("A links itself");
            // `getcurrent().link(...)`: links need the typed handle.
            let me = current().downcast::<()>().expect("A returns ()");
            me.link(l.on("link A"));
            l.say("A end");
        };
        let ga = spawn(a);
        spawn(log.task("B start"));
        ga.join();
        log.say("main joined A");
        yield_now();
        log.say("main after sleep0");
    });
}

#[test]
fn p55_killall_diehard() {
    check("55_killall_diehard", |log| {
        let l = log.clone();
        let stubborn = move || {
            if except_exit(|| sleep(ten_s())).is_none() {
                l.say("S caught exit");
            }
            yield_now();
            l.say("S end");
        };
        let l = log.clone();
        let plain = move || {
            let _finally = l.finally("P exits");
            sleep(ten_s());
        };
        let s = spawn(stubborn);
        let p = spawn(plain);
        s.link(log.on("link S"));
        p.link(log.on("link P"));
        yield_now();
        killall_with(&[s, p], true, None);
        log.say("main after killall");
        yield_now();
        log.say("main after sleep0");
    });
}

#[test]
fn p56_with_timeout_zero() {
    check("56_with_timeout_zero", |log| {
        let l = log.clone();
        let hops = move || {
            for i in 0..3 {
                say!(l, "hops {i}");
                yield_now();
            }
            "hops done"
        };
        let l = log.clone();
        let blocks = move || {
            l.say("blocks starts");
            yield_now();
            l.say("blocks resumed");
            sleep(ten_s());
            "blocks done"
        };
        // Without timeout_value gevent raises the Timeout; it does not fire here.
        match with_timeout(Duration::ZERO, hops) {
            Ok(v) => say!(log, "main got {v}"),
            Err(e) => panic::resume_unwind(Box::new(e)),
        }
        let v = with_timeout_or(Duration::ZERO, "timed out", blocks);
        say!(log, "main got {v}");
    });
}

#[test]
fn p57_blocking_kill_behind_resume() {
    check("57_blocking_kill_behind_resume", |log| {
        let l = log.clone();
        let body = move || {
            l.say("G start");
            yield_now();
            l.say("G resumed");
            if except_exit(|| sleep(ten_s())).is_none() {
                l.say("G exit in second sleep");
            }
        };
        let g = spawn(body);
        g.link(log.on("link G"));
        yield_now();
        g.kill();
        log.say("main after kill");
        yield_now();
        log.say("main after sleep0");
    });
}

#[test]
fn p58_cancelled_zero_timeout() {
    check("58_cancelled_zero_timeout", |log| {
        let t = Timeout::start_new(Duration::ZERO);
        yield_now();
        t.cancel();
        say!(log, "main cancelled timeout, pending: {}", py(t.pending()));
        match except_timeout(|| {
            sleep(one_ms());
            log.say("main slept without timeout");
        }) {
            Ok(()) => {}
            Err(_) => log.say("main timed out"),
        }
    });
}

#[test]
fn p59_get_raises_at_waiter_place() {
    check("59_get_raises_at_waiter_place", |log| {
        // `exception_stream = None`: as in 35, the report goes to stderr.
        let body = || panic::panic_any(KeyError("k"));
        let g: Greenlet<()> = spawn(body);
        g.link_exception(log.on("link_exception 1"));
        let (l, g2) = (log.clone(), g.clone());
        let h = move || {
            l.say("H adds link 2");
            g2.link(l.on("link 2"));
        };
        spawn(h);
        // gevent's get() raises the KeyError; green's returns it as an Err,
        // whose payload is the KeyError.
        if g.get().is_err()
            && g.take_exception_payload()
                .is_some_and(|p| p.is::<KeyError>())
        {
            log.say("main get raised KeyError");
        }
        yield_now();
        log.say("main after sleep0");
    });
}

#[test]
fn p60_deferred_kill_own_turn() {
    check("60_deferred_kill_own_turn", |log| {
        let l = log.clone();
        let ga = spawn(move || {
            yield_now();
            l.say("a after sleep0");
            if except_exit(|| {
                yield_now();
                l.say("a not killed");
            })
            .is_none()
            {
                l.say("a exit");
            }
        });
        let l = log.clone();
        let gb = spawn(move || {
            yield_now();
            l.say("b after sleep0");
        });
        yield_now();
        log.say("main kills a");
        ga.kill_nowait();
        joinall_with(&[ga, gb], None, false, None).unwrap();
        log.say("main joined");
    });
}

#[test]
fn p61_self_kill_nowait() {
    check("61_self_kill_nowait", |log| {
        let l = log.clone();
        let g = spawn(move || {
            spawn(l.task("other runs"));
            current().downcast::<()>().unwrap().kill_nowait();
            l.say("w after kill_nowait");
            if except_exit(|| {
                yield_now();
                l.say("w not killed");
            })
            .is_none()
            {
                l.say("w exit");
            }
        });
        g.join();
        log.say(format!("main joined {}", py(g.successful())));
    });
}

#[test]
fn p62_self_kill_blocking() {
    check("62_self_kill_blocking", |log| {
        let l = log.clone();
        let g = spawn(move || {
            spawn(l.task("other runs"));
            // `except GreenletExit: print(...); raise`
            let r = panic::catch_unwind(AssertUnwindSafe(|| {
                current().downcast::<()>().unwrap().kill();
                l.say("w after kill");
            }));
            if let Err(payload) = r {
                if payload.is::<GreenletExit>() {
                    l.say("w exit in kill");
                }
                panic::resume_unwind(payload);
            }
        });
        g.join();
        log.say(format!("main joined {}", py(g.successful())));
    });
}

#[test]
fn p63_killall_throws_at_once() {
    check("63_killall_throws_at_once", |log| {
        let l = log.clone();
        let s = spawn(move || {
            let i = Cell::new(0);
            let r = except_exit(|| loop {
                i.set(i.get() + 1);
                l.say(format!("spin {}", i.get()));
                yield_now();
            });
            if r.is_none() {
                l.say(format!("spinner exit at {}", i.get()));
            }
        });
        yield_now();
        yield_now();
        log.say("main killall");
        killall_with(std::slice::from_ref(&s), true, None);
        log.say(format!("main done {}", py(s.dead())));
    });
}

// ===== the synchronisation primitives (47, 48, 64-86) =====

#[test]
fn p47_event_set_wakeup_order() {
    check("47_event_set_wakeup_order", |log| {
        let ev = Event::new();
        let waiter = |name: &'static str| {
            let (l, ev) = (log.clone(), ev.clone());
            move || {
                say!(l, "{name} waits");
                ev.wait();
                say!(l, "{name} woken");
                yield_now();
                say!(l, "{name} resumed");
            }
        };
        let gs = ["A", "B", "C"].map(|n| spawn(waiter(n)));
        yield_now();
        ev.set();
        log.say("main set the event");
        yield_now();
        log.say("main after sleep0");
        joinall(&gs);
        log.say("main joined");
    });
}

#[test]
fn p48_event_wait_zero() {
    check("48_event_wait_zero", |log| {
        let ev = Event::new();
        let (l, ev1) = (log.clone(), ev.clone());
        let setter = move || {
            l.say("A sets");
            ev1.set();
        };
        spawn(setter);
        say!(
            log,
            "main wait(0) -> {}",
            py(ev.wait_timeout(Duration::ZERO))
        );
        let ev2 = Event::new();
        say!(
            log,
            "main wait(0) on unset -> {}",
            py(ev2.wait_timeout(Duration::ZERO))
        );
    });
}

#[test]
fn p64_event_set_clear_before_notify() {
    check("64_event_set_clear_before_notify", |log| {
        let ev = Event::new();
        let waiter = |name: &'static str, again: bool| {
            let (l, ev) = (log.clone(), ev.clone());
            move || {
                say!(l, "{name} waits");
                let r = ev.wait();
                say!(l, "{name} woken -> {} is_set {}", py(r), py(ev.is_set()));
                if again {
                    say!(l, "{name} waits again");
                    let r = ev.wait();
                    say!(l, "{name} woken again -> {}", py(r));
                }
            }
        };
        let gs = ["A", "B", "C"].map(|n| spawn(waiter(n, n == "A")));
        yield_now();
        ev.set();
        log.say("main set");
        ev.clear();
        say!(log, "main cleared, is_set {}", py(ev.is_set()));
        yield_now();
        log.say("main after sleep0");
        ev.set();
        log.say("main set again");
        joinall(&gs);
        log.say("main joined");
    });
}

#[test]
fn p65_event_wait_while_notifier_pending() {
    check("65_event_wait_while_notifier_pending", |log| {
        let ev0 = Event::new();
        ev0.set();
        spawn(log.task("X runs"));
        say!(log, "main wait on set event -> {}", py(ev0.wait()));
        yield_now();

        let ev = Event::new();
        let waiter = |name: &'static str| {
            let (l, ev) = (log.clone(), ev.clone());
            move || {
                say!(l, "{name} waits");
                let r = ev.wait();
                say!(l, "{name} woken -> {}", py(r));
            }
        };
        let mut gs: Vec<_> = ["A", "B"].map(|n| spawn(waiter(n))).into();
        yield_now();
        gs.push(spawn(waiter("D")));
        ev.set();
        log.say("main set");
        log.say("main waits on set event");
        say!(log, "main wait -> {}", py(ev.wait()));
        joinall(&gs);
        say!(log, "main wait after notifier -> {}", py(ev.wait()));
        log.say("main done");
    });
}

#[test]
fn p66_event_wait_timeout_zero_unset() {
    check("66_event_wait_timeout_zero_unset", |log| {
        let ev = Event::new();
        let l = log.clone();
        let a = move || {
            l.say("A runs");
            yield_now();
            l.say("A resumed");
        };
        spawn(a);
        spawn(log.task("B runs"));
        say!(
            log,
            "main wait(timeout=0) -> {}",
            py(ev.wait_timeout(Duration::ZERO))
        );
        ev.set();
        spawn(log.task("C runs"));
        say!(
            log,
            "main wait(timeout=0) on set -> {}",
            py(ev.wait_timeout(Duration::ZERO))
        );
        yield_now();
        log.say("main done");
    });
}

/// Python's `None` or an integer value.
fn int_or_none(value: Option<i32>) -> String {
    value.map_or_else(|| "None".to_string(), |v| v.to_string())
}

#[test]
fn p67_asyncresult_set_twice() {
    // gevent keeps a value and an exception side by side and get() prefers
    // the value; green's second set/set_exception replaces the whole
    // outcome (a deliberate difference). So gevent's last two lines,
    //   main set_exception: successful True exception ValueError('late')
    //   main get -> 2
    // are, in green, an unsuccessful result whose get() returns the error.
    check_against(
        "67_asyncresult_set_twice",
        |log| {
            let ar: AsyncResult<i32, ValueError> = AsyncResult::new();
            let getter = |name: &'static str| {
                let (l, ar) = (log.clone(), ar.clone());
                move || {
                    say!(l, "{name} get");
                    say!(l, "{name} got {}", ar.get().unwrap());
                }
            };
            let waiter = |name: &'static str| {
                let (l, ar) = (log.clone(), ar.clone());
                move || {
                    say!(l, "{name} wait");
                    // gevent's wait() returns the value (None if it failed);
                    // green's returns whether it is ready: read the value after.
                    ar.wait();
                    say!(l, "{name} wait -> {}", int_or_none(ar.value()));
                }
            };
            let gs = [spawn(getter("A")), spawn(waiter("B")), spawn(getter("C"))];
            yield_now();
            ar.set(1);
            say!(log, "main set 1, ready {}", py(ar.ready()));
            ar.set(2);
            say!(log, "main set 2, value {}", int_or_none(ar.value()));
            joinall(&gs);
            say!(log, "main get -> {}", ar.get().unwrap());
            ar.set_exception(ValueError("late"));
            say!(
                log,
                "main set_exception: successful {} exception {}",
                py(ar.successful()),
                repr_or_none(ar.exception())
            );
            // Python's get() would raise here: green returns the error.
            match ar.get() {
                Ok(v) => say!(log, "main get -> {v}"),
                Err(e) => say!(log, "main get raised {}", e.repr()),
            }
        },
        &[
            "A get",
            "B wait",
            "C get",
            "main set 1, ready True",
            "main set 2, value 2",
            "A got 2",
            "B wait -> 2",
            "C got 2",
            "main get -> 2",
            "main set_exception: successful False exception ValueError('late')",
            "main get raised ValueError('late')",
        ],
    );
}

#[test]
fn p68_asyncresult_exception() {
    // The deliberate difference of 67: set(5) after set_exception replaces
    // the error, so gevent's
    //   main set 5: successful True exception ValueError('boom')
    // is `exception None` in green.
    check_against(
        "68_asyncresult_exception",
        |log| {
            let ar: AsyncResult<i32, ValueError> = AsyncResult::new();
            let getter = |name: &'static str| {
                let (l, ar) = (log.clone(), ar.clone());
                move || {
                    say!(l, "{name} get");
                    // `try: ... except ValueError`: green's get returns the error.
                    match ar.get() {
                        Ok(v) => say!(l, "{name} got {v}"),
                        Err(e) => say!(l, "{name} get raised {}", e.repr()),
                    }
                }
            };
            let waiter = |name: &'static str| {
                let (l, ar) = (log.clone(), ar.clone());
                move || {
                    say!(l, "{name} wait");
                    // As in 67: gevent's wait() returns the value, None here.
                    ar.wait();
                    say!(l, "{name} wait -> {}", int_or_none(ar.value()));
                }
            };
            let gs = [spawn(getter("A")), spawn(waiter("B")), spawn(getter("C"))];
            yield_now();
            ar.set_exception(ValueError("boom"));
            say!(
                log,
                "main set_exception, ready {} successful {}",
                py(ar.ready()),
                py(ar.successful())
            );
            joinall(&gs);
            spawn(log.task("X runs"));
            if let Err(e) = ar.get() {
                say!(log, "main get raised {}", e.repr());
            }
            // `get(block=False)` is try_get; `print(..., end=" ")` and the
            // repr that follows make one line.
            if let Some(Err(e)) = ar.try_get() {
                say!(log, "main get(block=False) raises too: {}", e.repr());
            }
            ar.set(5);
            say!(
                log,
                "main set 5: successful {} exception {}",
                py(ar.successful()),
                repr_or_none(ar.exception())
            );
            say!(log, "main get -> {}", ar.get().unwrap());
            yield_now();
            log.say("main done");
        },
        &[
            "A get",
            "B wait",
            "C get",
            "main set_exception, ready True successful False",
            "A get raised ValueError('boom')",
            "B wait -> None",
            "C get raised ValueError('boom')",
            "main get raised ValueError('boom')",
            "main get(block=False) raises too: ValueError('boom')",
            "main set 5: successful True exception None",
            "main get -> 5",
            "X runs",
            "main done",
        ],
    );
}

#[test]
fn p69_queue_put_handoff() {
    check("69_queue_put_handoff", |log| {
        let q: Queue<i32> = Queue::new();
        let getter = |name: &'static str| {
            let (l, q) = (log.clone(), q.clone());
            move || {
                say!(l, "{name} gets");
                let item = q.get().unwrap();
                say!(l, "{name} got {item}");
                yield_now();
                say!(l, "{name} resumed");
            }
        };
        let gs = ["A", "B", "C"].map(|n| spawn(getter(n)));
        yield_now();
        q.put(1).unwrap();
        log.say("main put 1");
        q.put(2).unwrap();
        say!(log, "main put 2, qsize {}", q.qsize());
        yield_now();
        say!(log, "main after sleep0, qsize {}", q.qsize());
        q.put(3).unwrap();
        log.say("main put 3");
        joinall(&gs);
        log.say("main joined");
    });
}

#[test]
fn p70_queue_get_takes_head_at_once() {
    check("70_queue_get_takes_head_at_once", |log| {
        let q: Queue<i32> = Queue::new();
        let (l, q1) = (log.clone(), q.clone());
        let getter = move || {
            l.say("A gets");
            say!(l, "A got {}", q1.get().unwrap());
        };
        let a = spawn(getter);
        yield_now();
        spawn(log.task("X runs"));
        q.put(1).unwrap();
        log.say("main put 1");
        say!(log, "main get -> {}", q.get().unwrap());
        yield_now();
        say!(log, "main after sleep0, A dead {}", py(a.dead()));
        q.put(2).unwrap();
        log.say("main put 2");
        a.join();
        say!(log, "main joined, qsize {}", q.qsize());
    });
}

#[test]
fn p71_queue_putters_fifo() {
    check("71_queue_putters_fifo", |log| {
        let q: Queue<i32> = Queue::bounded(1);
        q.put(0).unwrap();
        let putter = |name: &'static str, item: i32| {
            let (l, q) = (log.clone(), q.clone());
            move || {
                say!(l, "{name} puts {item}");
                q.put(item).unwrap();
                say!(l, "{name} put done, qsize {}", q.qsize());
                yield_now();
                say!(l, "{name} resumed");
            }
        };
        let gs = [("A", 1), ("B", 2), ("C", 3)].map(|(n, i)| spawn(putter(n, i)));
        yield_now();
        // Python evaluates print's arguments in order: the get, then qsize.
        let item = q.get().unwrap();
        say!(log, "main get -> {item} qsize {}", q.qsize());
        let item = q.get().unwrap();
        say!(log, "main get -> {item} qsize {}", q.qsize());
        yield_now();
        say!(log, "main after sleep0, qsize {}", q.qsize());
        for _ in 0..2 {
            say!(log, "main get -> {}", q.get().unwrap());
        }
        joinall(&gs);
        say!(log, "main joined, qsize {}", q.qsize());
    });
}

#[test]
fn p72_queue_timed_out_getter() {
    check("72_queue_timed_out_getter", |log| {
        let q: Queue<&str> = Queue::new();
        let never = Event::new();
        let (l, q1) = (log.clone(), q.clone());
        let a = move || {
            l.say("A gets with timeout=0");
            // `except Empty`: green's get_timeout returns GetError::Empty.
            match q1.get_timeout(Duration::ZERO) {
                Ok(item) => say!(l, "A got {item}"),
                Err(GetError::Empty) => l.say("A timed out"),
                Err(e) => panic!("A: {e}"),
            }
        };
        let (l, q1) = (log.clone(), q.clone());
        let b = move || {
            l.say("B waits with Timeout(0)");
            // `with Timeout(0, False):` ends the block silently.
            let _ = Timeout::run(Duration::ZERO, || never.wait());
            l.say("B timed out, puts x");
            q1.put("x").unwrap();
            say!(l, "B put x, qsize {}", q1.qsize());
        };
        let ga = spawn(a);
        let gb = spawn(b);
        joinall(&[ga, gb]);
        say!(log, "main joined, qsize {}", q.qsize());
        say!(log, "main get -> {}", q.get().unwrap());

        let (l, q1) = (log.clone(), q.clone());
        let c = move || {
            l.say("C gets with timeout=0.001");
            match q1.get_timeout(one_ms()) {
                Ok(item) => say!(l, "C got {item}"),
                Err(GetError::Empty) => l.say("C timed out"),
                Err(e) => panic!("C: {e}"),
            }
        };
        let gc = spawn(c);
        yield_now();
        std::thread::sleep(Duration::from_millis(20));
        q.put("y").unwrap();
        log.say("main put y");
        gc.join();
        say!(log, "main joined C, qsize {}", q.qsize());
    });
}

#[test]
fn p73_queue_killed_getter_putter() {
    check("73_queue_killed_getter_putter", |log| {
        let q: Queue<i32> = Queue::new();
        let getter = |name: &'static str| {
            let (l, q) = (log.clone(), q.clone());
            move || {
                say!(l, "{name} gets");
                let r = except_exit(|| {
                    let item = q.get().unwrap();
                    say!(l, "{name} got {item}");
                    yield_now();
                    say!(l, "{name} not killed");
                });
                if r.is_none() {
                    say!(l, "{name} exit");
                }
            }
        };
        let a = spawn(getter("A"));
        yield_now();
        a.kill_nowait();
        q.put(1).unwrap();
        log.say("main killed A, put 1");
        a.join();
        say!(log, "main joined A, qsize {}", q.qsize());
        say!(log, "main get -> {}", q.get().unwrap());

        let b = spawn(getter("B"));
        yield_now();
        q.put(2).unwrap();
        b.kill_nowait();
        log.say("main put 2, killed B");
        b.join();
        say!(log, "main joined B, qsize {}", q.qsize());

        let full: Queue<&str> = Queue::bounded(1);
        full.put("old").unwrap();
        let putter = |name: &'static str, item: &'static str| {
            let (l, full) = (log.clone(), full.clone());
            move || {
                say!(l, "{name} puts {item}");
                let r = except_exit(|| {
                    full.put(item).unwrap();
                    say!(l, "{name} put done");
                    yield_now();
                    say!(l, "{name} not killed");
                });
                if r.is_none() {
                    say!(l, "{name} exit");
                }
            }
        };
        let c = spawn(putter("C", "c"));
        yield_now();
        c.kill_nowait();
        say!(log, "main killed C, get -> {}", full.get().unwrap());
        c.join();
        say!(log, "main joined C, qsize {}", full.qsize());

        full.put("old").unwrap();
        let d = spawn(putter("D", "d"));
        yield_now();
        say!(log, "main get -> {}", full.get().unwrap());
        d.kill_nowait();
        log.say("main killed D");
        d.join();
        // Python evaluates print's arguments in order: qsize, then the get.
        let qsize = full.qsize();
        say!(
            log,
            "main joined D, qsize {qsize} get -> {}",
            full.get().unwrap()
        );
    });
}

#[test]
fn p74_queue_timed_out_putter() {
    check("74_queue_timed_out_putter", |log| {
        let q: Queue<&str> = Queue::bounded(1);
        q.put("old").unwrap();
        let never = Event::new();
        let (l, q1) = (log.clone(), q.clone());
        let a = move || {
            l.say("A puts with timeout=0");
            // `except Full`: green's put_timeout returns PutError::Full.
            match q1.put_timeout("a", Duration::ZERO) {
                Ok(()) => l.say("A put done"),
                Err(e) if e.is_full() => l.say("A timed out"),
                Err(e) => panic!("A: {e}"),
            }
        };
        let (l, q1) = (log.clone(), q.clone());
        let b = move || {
            l.say("B waits with Timeout(0)");
            // `with Timeout(0, False):` ends the block silently.
            let _ = Timeout::run(Duration::ZERO, || never.wait());
            say!(l, "B timed out, get -> {}", q1.get().unwrap());
            yield_now();
            say!(l, "B after sleep0, qsize {}", q1.qsize());
        };
        let ga = spawn(a);
        let gb = spawn(b);
        joinall(&[ga, gb]);
        say!(log, "main joined, qsize {}", q.qsize());
    });
}

#[test]
fn p75_semaphore_fifo() {
    check("75_semaphore_fifo", |log| {
        let sem = Semaphore::new(0);
        let worker = |name: &'static str| {
            let (l, sem) = (log.clone(), sem.clone());
            move || {
                say!(l, "{name} acquires");
                // Python's acquire() without a release: the count stays
                // taken, so the guard is forgotten.
                sem.acquire().forget();
                say!(l, "{name} acquired, counter {}", sem.counter());
                yield_now();
                say!(l, "{name} resumed");
            }
        };
        let gs = ["A", "B", "C"].map(|n| spawn(worker(n)));
        yield_now();
        sem.release();
        say!(log, "main released, counter {}", sem.counter());
        sem.release();
        say!(log, "main released, counter {}", sem.counter());
        yield_now();
        say!(log, "main after sleep0, counter {}", sem.counter());
        spawn(log.task("X runs"));
        sem.release();
        say!(log, "main released, counter {}", sem.counter());
        // An acquire() that returns has acquired: Python's True.
        sem.acquire().forget();
        say!(
            log,
            "main acquire -> {} counter {}",
            py(true),
            sem.counter()
        );
        yield_now();
        say!(log, "main after sleep0, C dead {}", py(gs[2].dead()));
        sem.release();
        log.say("main released");
        joinall(&gs);
        say!(log, "main joined, counter {}", sem.counter());
    });
}

#[test]
fn p76_bounded_semaphore_and_lock() {
    // gevent's failed Lock.acquire(False) yields once (X runs inside it);
    // green's try_acquire never switches (a deliberate difference), so
    // gevent's
    //   X runs
    //   lock acquire(False) -> False
    //   bounded acquire(blocking=False) -> False
    //   Y runs
    // is, in green, both acquires, then X and Y at main's sleep(0).
    check_against(
        "76_bounded_semaphore_and_lock",
        |log| {
            // gevent raises ValueError (BoundedSemaphore) or RuntimeError
            // (Lock); green returns ReleaseError::TooManyReleases from both.
            let over_release = |what: &str, python_type: &str, r: Result<(), ReleaseError>| match r
            {
                Ok(()) => {}
                Err(e @ ReleaseError::TooManyReleases) => {
                    say!(
                        log,
                        "{what} over-release: {python_type} {}",
                        gevent_text(&e)
                    )
                }
                Err(e) => say!(log, "{what} over-release: unexpected {e:?}"),
            };
            let bs = BoundedSemaphore::new(2);
            bs.acquire().forget();
            bs.release().expect("one count was taken");
            over_release("bounded", "ValueError", bs.release());
            say!(log, "bounded counter {}", bs.counter());

            let lock = Lock::new();
            // An acquire() that returns has acquired: Python's True.
            lock.acquire().forget();
            say!(
                log,
                "lock acquire -> {} locked {}",
                py(true),
                py(lock.locked())
            );

            let worker = |name: &'static str| {
                let (l, lock) = (log.clone(), lock.clone());
                move || {
                    say!(l, "{name} acquires");
                    // `with lock:` is the guard's scope.
                    let _held = lock.acquire();
                    say!(l, "{name} holds");
                    yield_now();
                    say!(l, "{name} releases");
                }
            };
            let gs = ["A", "B"].map(|n| spawn(worker(n)));
            yield_now();
            lock.release().expect("main holds the lock");
            log.say("main released");
            joinall(&gs);
            say!(log, "main joined, locked {}", py(lock.locked()));
            over_release("lock", "RuntimeError", lock.release());

            lock.acquire().forget();
            spawn(log.task("X runs"));
            say!(
                log,
                "lock acquire(False) -> {}",
                py(lock.try_acquire().map(|g| g.forget()).is_some())
            );
            bs.acquire().forget();
            bs.acquire().forget();
            spawn(log.task("Y runs"));
            say!(
                log,
                "bounded acquire(blocking=False) -> {}",
                py(bs.try_acquire().map(|g| g.forget()).is_some())
            );
            yield_now();
            log.say("main done");
        },
        &[
            "bounded over-release: ValueError Semaphore released too many times",
            "bounded counter 2",
            "lock acquire -> True locked True",
            "A acquires",
            "B acquires",
            "main released",
            "A holds",
            "A releases",
            "B holds",
            "B releases",
            "main joined, locked False",
            "lock over-release: RuntimeError Semaphore released too many times",
            "lock acquire(False) -> False",
            "bounded acquire(blocking=False) -> False",
            "X runs",
            "Y runs",
            "main done",
        ],
    );
}

#[test]
fn p77_rlock() {
    check("77_rlock", |log| {
        let rl = RLock::new();
        let contender = |name: &'static str| {
            let (l, rl) = (log.clone(), rl.clone());
            move || {
                say!(l, "{name} acquires");
                // `with rl:` is the guard's scope.
                let _owned = rl.acquire();
                say!(l, "{name} owns");
                yield_now();
                say!(l, "{name} releases");
            }
        };
        // gevent: `RuntimeError`, printed up to the first "." of its message.
        let release_error = |r: Result<(), ReleaseError>| match r {
            Ok(()) => "released".to_string(),
            Err(e @ ReleaseError::NotOwner) => format!("RuntimeError {}", gevent_text(&e)),
            Err(e) => format!("unexpected {e:?}"),
        };
        let (l, rl1) = (log.clone(), rl.clone());
        let intruder = move || {
            say!(l, "intruder release: {}", release_error(rl1.release()));
        };

        // gevent's RLock.acquire returns True, or 1 when the caller already
        // owns it; green's returns a guard, kept here as Python keeps the
        // acquire (forgotten, released by hand below).
        let owned = rl.is_owned();
        rl.acquire().forget();
        say!(log, "main acquire -> {}", if owned { "1" } else { "True" });
        let owned = rl.is_owned();
        rl.acquire().forget();
        say!(
            log,
            "main re-acquire -> {}",
            if owned { "1" } else { "True" }
        );
        let gs = ["A", "B"].map(|n| spawn(contender(n)));
        spawn(intruder).join();
        rl.release().expect("main owns it");
        say!(log, "main released once, locked {}", py(rl.locked()));
        yield_now();
        log.say("main after sleep0");
        rl.release().expect("main owns it");
        say!(log, "main released twice, locked {}", py(rl.locked()));
        joinall(&gs);
        say!(log, "main joined, locked {}", py(rl.locked()));
        say!(log, "main release: {}", release_error(rl.release()));
    });
}

#[test]
fn p78_joinable_queue_join() {
    check("78_joinable_queue_join", |log| {
        let q: JoinableQueue<&str> = JoinableQueue::new();
        spawn(log.task("X runs"));
        say!(log, "main join on empty -> {}", py(q.join()));

        let (l, q1) = (log.clone(), q.clone());
        let worker = move |name: &'static str| loop {
            let item = q1.get().unwrap();
            say!(l, "{name} got {item}");
            yield_now();
            q1.task_done().unwrap();
            say!(
                l,
                "{name} task_done {item} unfinished {}",
                q1.unfinished_tasks()
            );
            if item == "stop" {
                yield_now();
                say!(l, "{name} after sleep0");
                return;
            }
        };
        let w = spawn(move || worker("W"));
        // Python puts 1, 2 and "stop": here all three are strings.
        for item in ["1", "2", "stop"] {
            q.put(item).unwrap();
        }
        say!(log, "main put 3, unfinished {}", q.unfinished_tasks());
        say!(log, "main join -> {}", py(q.join()));
        say!(log, "main after join, unfinished {}", q.unfinished_tasks());
        w.join();
        // gevent raises ValueError; green returns a TaskDoneError.
        if let Err(e) = q.task_done() {
            say!(log, "main task_done: ValueError {}", gevent_text(&e));
        }
    });
}

#[test]
fn p79_channel_rendezvous() {
    check("79_channel_rendezvous", |log| {
        let ch: Channel<i32> = Channel::new();
        let getter = |name: &'static str| {
            let (l, ch) = (log.clone(), ch.clone());
            move || {
                say!(l, "{name} gets");
                say!(l, "{name} got {}", ch.get().unwrap());
                yield_now();
                say!(l, "{name} resumed");
            }
        };
        let putter = |name: &'static str, item: i32| {
            let (l, ch) = (log.clone(), ch.clone());
            move || {
                say!(l, "{name} puts {item}");
                ch.put(item).unwrap();
                say!(l, "{name} put returned");
            }
        };
        let a = spawn(getter("A"));
        yield_now();
        log.say("main puts 1");
        ch.put(1).unwrap();
        log.say("main put returned");
        a.join();

        let b = spawn(putter("B", 2));
        yield_now();
        log.say("main gets");
        say!(log, "main got {}", ch.get().unwrap());
        yield_now();
        log.say("main after sleep0");
        b.join();

        spawn(log.task("X runs"));
        // `except Full`: green's put_nowait returns PutError::Full.
        match ch.put_nowait(3) {
            Ok(()) => log.say("main put_nowait: put"),
            Err(e) if e.is_full() => log.say("main put_nowait: Full"),
            Err(e) => panic!("put_nowait: {e}"),
        }
        say!(log, "main done, balance {}", ch.balance());
    });
}

#[test]
fn p80_waiter_switch_before_get() {
    // gevent's Waiter keeps what it stored until clear(), so a second get()
    // returns it again; green's get takes it (a deliberate difference),
    // so a second get would block. The port shows the waiter empty
    // instead of gevent's
    //   main get again -> v
    check_against(
        "80_waiter_switch_before_get",
        |log| {
            let w: Waiter<&str, ValueError> = Waiter::new();
            spawn(log.task("X runs"));
            w.switch("v");
            say!(
                log,
                "main switched, ready {} successful {}",
                py(w.ready()),
                py(w.successful())
            );
            say!(log, "main get -> {}", w.get().unwrap());
            say!(log, "main after get, ready {}", py(w.ready()));
            w.clear();
            say!(log, "main cleared, ready {}", py(w.ready()));

            w.throw(ValueError("stored"));
            say!(
                log,
                "main threw, ready {} successful {}",
                py(w.ready()),
                py(w.successful())
            );
            // `try: w.get() except ValueError`: green's get returns the error.
            if let Err(e) = w.get() {
                say!(log, "main get raised {}", e.repr());
            }
            yield_now();
            log.say("main done");
        },
        &[
            "main switched, ready True successful True",
            "main get -> v",
            "main after get, ready False",
            "main cleared, ready False",
            "main threw, ready True successful False",
            "main get raised ValueError('stored')",
            "X runs",
            "main done",
        ],
    );
}

/// gevent's `hub.loop.run_callback(f)`: green has no public way to queue a
/// raw hub callback. The nearest is a rawlink of a greenlet that is already
/// dead: it queues one links entry at the back of the callback queue, and
/// the hub runs `f` there, as gevent's loop runs the callback.
fn run_callback(f: impl FnOnce() + 'static) {
    let dead = Greenlet::new(|| ());
    dead.kill();
    dead.rawlink(move |_| f());
}

/// Program 81's `a`: gets twice from `w`, the second time expecting a
/// KeyError.
fn waiter_81(log: &Log, w: &Waiter<&'static str, KeyError>) -> impl FnOnce() + 'static {
    let (l, w) = (log.clone(), w.clone());
    move || {
        l.say("A get");
        say!(l, "A got {}", w.get().unwrap());
        yield_now();
        l.say("A resumed");
        l.say("A get again");
        // `try: w.get() except KeyError`: green's get returns the error.
        if let Err(e) = w.get() {
            say!(l, "A get raised {}", e.repr());
        }
    }
}

#[test]
fn p81_waiter_switch_sources() {
    // gevent refuses a switch() from a greenlet while A waits
    // (AssertionError, A stays blocked); green allows it (a deliberate
    // difference): main's switch stores "from main" and wakes A from a
    // notifier queued at the switch, before B's start. The callback's
    // switch then only stores "from callback", which A's second get takes
    // at once, so the KeyError thrown later reaches nobody. gevent's
    //   main switch: AssertionError Can only use Waiter.switch method from the Hub greenlet
    //   B runs
    //   A got from callback
    //   main after sleep0
    //   ...
    //   A get raised KeyError('k')
    // are, in green, the lines below. p81b_waiter_switch_from_callback keeps
    // the point of 81 (where a switch from the hub resumes A) without it.
    check_against(
        "81_waiter_switch_sources",
        |log| {
            let w: Waiter<&str, KeyError> = Waiter::new();
            let ga = spawn(waiter_81(log, &w));
            yield_now();
            // `try: w.switch(...) except AssertionError: print(...)`: green's
            // switch cannot fail, so nothing is printed.
            w.switch("from main");
            spawn(log.task("B runs"));
            let w1 = w.clone();
            run_callback(move || w1.switch("from callback"));
            log.say("main queued switch");
            yield_now();
            log.say("main after sleep0");
            yield_now();
            let w2 = w.clone();
            run_callback(move || w2.throw(KeyError("k")));
            log.say("main queued throw");
            ga.join();
            log.say("main joined");
        },
        &[
            "A get",
            "main queued switch",
            "A got from main",
            "B runs",
            "main after sleep0",
            "A resumed",
            "A get again",
            "main queued throw",
            "main joined",
        ],
    );
}

#[test]
fn p81b_waiter_switch_from_callback() {
    // Program 81 without main's refused switch: in gevent that switch
    // raised before touching the Waiter, so the rest of 81's trace is what
    // gevent prints without it. A switch (or throw) from a hub callback
    // resumes A at the callback's place: after B's start, queued before
    // it, and before main's sleep(0) resume, queued after it.
    let mut expected = gevent_trace("81_waiter_switch_sources");
    let refused = expected.remove(1);
    assert!(
        refused.starts_with("main switch: AssertionError"),
        "{refused}"
    );
    compare(
        "81_waiter_switch_sources (without main's switch)",
        |log| {
            let w: Waiter<&str, KeyError> = Waiter::new();
            let ga = spawn(waiter_81(log, &w));
            yield_now();
            spawn(log.task("B runs"));
            let w1 = w.clone();
            run_callback(move || w1.switch("from callback"));
            log.say("main queued switch");
            yield_now();
            log.say("main after sleep0");
            yield_now();
            let w2 = w.clone();
            run_callback(move || w2.throw(KeyError("k")));
            log.say("main queued throw");
            ga.join();
            log.say("main joined");
        },
        &expected,
        "gevent's minus the refused switch",
    );
}

/// Program 82's `Tracked`: prints when dropped.
struct Tracked {
    name: String,
    log: Log,
}

impl Tracked {
    fn new(log: &Log, name: impl Into<String>) -> Tracked {
        Tracked {
            name: name.into(),
            log: log.clone(),
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        say!(self.log, "dropped {}", self.name);
    }
}

/// Program 82's `MyLocal` instance, per greenlet.
struct MyLocal {
    n: Cell<i32>,
    value: RefCell<Option<Tracked>>,
}

#[test]
fn p82_local_per_greenlet() {
    // Deliberate difference: a greenlet's local values are dropped as it
    // finishes, on its own stack, before its links fire (so a destructor may
    // block); gevent drops them from a link the local added, in the hub,
    // after the links added before it. Each "dropped X's" line therefore
    // comes right after X's last line, where gevent prints it after main's
    // `join` of X has returned (and, for C, after main's `sleep(0)`).
    const GREEN: &[&str] = &[
        "init in main",
        "init in A",
        "A has value False n 0",
        "init in B",
        "B has value False n 0",
        "A sees A's n 1",
        "dropped A's",
        "B sees B's n 1",
        "dropped B's",
        "main joined A, sees main's n 0",
        "main after sleep0",
        "main joined B",
        "main after sleep0",
        "init in C",
        "dropped C's",
        "main after C ran",
        "main after sleep0, C dead True",
        "dropped main's",
        "main done",
    ];
    check_against(
        "82_local_per_greenlet",
        |log| {
            // `who[0]`: the name the initialiser prints.
            let who = Rc::new(RefCell::new("main"));
            let (l, w) = (log.clone(), Rc::clone(&who));
            let data = Rc::new(Local::new(move || {
                say!(l, "init in {}", w.borrow());
                MyLocal {
                    n: Cell::new(0),
                    value: RefCell::new(None),
                }
            }));
            // `MyLocal(who)` runs __init__ in main at construction; green's
            // initialiser runs at main's first access, the next line.
            let old = data.with(|d| d.value.replace(Some(Tracked::new(log, "main's"))));
            drop(old);

            let body = |name: &'static str| {
                let (l, who, data) = (log.clone(), Rc::clone(&who), Rc::clone(&data));
                move || {
                    *who.borrow_mut() = name;
                    data.with(|d| {
                        say!(
                            l,
                            "{name} has value {} n {}",
                            py(d.value.borrow().is_some()),
                            d.n.get()
                        )
                    });
                    let old =
                        data.with(|d| d.value.replace(Some(Tracked::new(&l, format!("{name}'s")))));
                    drop(old);
                    data.with(|d| d.n.set(d.n.get() + 1));
                    yield_now();
                    *who.borrow_mut() = name;
                    data.with(|d| {
                        let value = d.value.borrow();
                        let seen = value.as_ref().map_or("<none>", |t| t.name.as_str());
                        say!(l, "{name} sees {seen} n {}", d.n.get())
                    });
                }
            };
            let a = spawn(body("A"));
            let b = spawn(body("B"));
            a.join();
            *who.borrow_mut() = "main";
            data.with(|d| {
                let value = d.value.borrow();
                let seen = value.as_ref().map_or("<none>", |t| t.name.as_str());
                say!(log, "main joined A, sees {seen} n {}", d.n.get())
            });
            yield_now();
            log.say("main after sleep0");
            b.join();
            log.say("main joined B");
            yield_now();
            log.say("main after sleep0");

            let (l, w, d) = (log.clone(), Rc::clone(&who), Rc::clone(&data));
            let c_body = move || {
                *w.borrow_mut() = "C";
                let old = d.with(|d| d.value.replace(Some(Tracked::new(&l, "C's"))));
                drop(old);
                *w.borrow_mut() = "main";
            };
            let c = spawn(c_body);
            yield_now();
            log.say("main after C ran");
            yield_now();
            say!(log, "main after sleep0, C dead {}", py(c.dead()));
            // `del data.value`.
            let old = data.with(|d| d.value.take());
            drop(old);
            log.say("main done");
        },
        GREEN,
    );
}

#[test]
fn p83_iwait_mixed() {
    check("83_iwait_mixed", |log| {
        let ev = Event::new();
        let ar: AsyncResult<&str> = AsyncResult::new();
        let l = log.clone();
        let g_body = move || {
            l.say("G runs");
            yield_now();
            l.say("G returns");
            "g"
        };
        let (l, ev1) = (log.clone(), ev.clone());
        let a = move || {
            l.say("A sets ev");
            ev1.set();
        };
        let (l, ar1) = (log.clone(), ar.clone());
        let b = move || {
            yield_now();
            yield_now();
            l.say("B sets ar");
            ar1.set("r");
        };
        let g = spawn(g_body);
        spawn(a);
        spawn(b);
        // `names[id(obj)]`: iwait yields indices into the list.
        let names = ["ar", "g", "ev"];
        let objects: [&dyn Waitable; 3] = [&ar, &g, &ev];
        for i in iwait(&objects, None) {
            say!(log, "main got {}", names[i]);
        }
        log.say("main iwait over");

        let ev2 = Event::new();
        ev2.set();
        let ar2: AsyncResult<(), ValueError> = AsyncResult::new();
        ar2.set_exception(ValueError("ignored by iwait"));
        let g2 = spawn(|| ());
        g2.join();
        // Leave g2's links entry (a link added inside it would fire in it).
        yield_now();
        let names = ["ar2", "g2", "ev2"];
        spawn(log.task("X runs"));
        let objects: [&dyn Waitable; 3] = [&ar2, &g2, &ev2];
        for i in iwait(&objects, None) {
            say!(log, "main got ready {}", names[i]);
        }
        log.say("main done");
    });
}

#[test]
fn p84_wait_mixed() {
    check("84_wait_mixed", |log| {
        // `name(o)`: wait returns indices into the list.
        let named = |names: &[&'static str], indices: Vec<usize>| {
            let picked: Vec<&str> = indices.into_iter().map(|i| names[i]).collect();
            py_list(&picked)
        };
        let ev = Event::new();
        let ar: AsyncResult<i32> = AsyncResult::new();
        let g = spawn(yield_now);
        let names = ["ev", "g", "ar"];

        let ev1 = ev.clone();
        let l = log.clone();
        let a = move || {
            yield_now();
            yield_now();
            l.say("A sets ev");
            ev1.set();
        };
        let (l, ar1) = (log.clone(), ar.clone());
        let b = move || {
            l.say("B sets ar");
            ar1.set(1);
        };
        spawn(a);
        spawn(b);
        let objects: [&dyn Waitable; 3] = [&ev, &g, &ar];
        say!(
            log,
            "main wait(count=1) -> {}",
            named(&names, wait(&objects, None, Some(1)))
        );
        say!(
            log,
            "main wait -> {}",
            named(&names, wait(&objects, None, None))
        );

        let ev2 = Event::new();
        let ar2: AsyncResult<i32> = AsyncResult::new();
        let names = ["ev2", "ar2"];
        let ar2_setter = ar2.clone();
        spawn(move || ar2_setter.set(2));
        let objects: [&dyn Waitable; 2] = [&ev2, &ar2];
        say!(
            log,
            "main wait(timeout=0) -> {}",
            named(&names, wait(&objects, Some(Duration::ZERO), None))
        );
    });
}

#[test]
fn p85_rawlink_inside_notifier() {
    check("85_rawlink_inside_notifier", |log| {
        let ev = Event::new();
        let (l, ev1) = (log.clone(), ev.clone());
        let c = move || {
            l.say("C waits");
            ev1.wait();
            l.say("C woken");
        };
        let (l, ev1) = (log.clone(), ev.clone());
        let a = move || {
            l.say("A sets");
            ev1.set();
        };
        spawn(c);
        spawn(a);
        log.say("main waits");
        ev.wait();
        log.say("main woken");
        // `ev.rawlink(f)`: the Waitable protocol's link_ready.
        let l = log.clone();
        ev.link_ready(Box::new(move || l.say("R fires")));
        spawn(log.task("Y runs"));
        log.say("main waits again");
        say!(log, "main wait -> {}", py(ev.wait()));
        yield_now();
        log.say("main after sleep0");
        yield_now();
        log.say("main after second sleep0");
    });
}

#[test]
fn p86_semaphore_timed_out_or_killed_waiter() {
    // D dies at its next block holding the slot: gevent's count stays
    // taken; green's guard, dropped as D unwinds, gives it back (a
    // deliberate difference). So gevent's
    //   main joined D, counter 0
    // is `counter 1` in green.
    check_against(
        "86_semaphore_timed_out_or_killed_waiter",
        |log| {
            let sem = Semaphore::new(0);
            let never = Event::new();
            let (l, sem1) = (log.clone(), sem.clone());
            let a = move || {
                l.say("A acquires with timeout=0");
                // A count acquired would stay taken: the guard is forgotten.
                let got = sem1.acquire_timeout(Duration::ZERO).map(|g| g.forget());
                say!(l, "A acquire -> {}", py(got.is_some()));
            };
            let (l, sem1) = (log.clone(), sem.clone());
            let b = move || {
                l.say("B waits with Timeout(0)");
                // `with Timeout(0, False):` ends the block silently.
                let _ = Timeout::run(Duration::ZERO, || never.wait());
                sem1.release();
                say!(l, "B released, counter {}", sem1.counter());
            };
            joinall(&[spawn(a), spawn(b)]);
            say!(log, "main joined, counter {}", sem.counter());
            sem.acquire().forget();

            let waiter = |name: &'static str| {
                let (l, sem) = (log.clone(), sem.clone());
                move || {
                    say!(l, "{name} acquires");
                    let r = except_exit(|| {
                        // Held to the end: the guard lives in this block.
                        let _held = sem.acquire();
                        say!(l, "{name} acquire -> {}", py(true));
                        yield_now();
                        say!(l, "{name} not killed");
                    });
                    if r.is_none() {
                        say!(l, "{name} exit");
                    }
                }
            };
            let c = spawn(waiter("C"));
            yield_now();
            c.kill_nowait();
            sem.release();
            log.say("main killed C, released");
            c.join();
            say!(log, "main joined C, counter {}", sem.counter());
            sem.acquire().forget();

            let d = spawn(waiter("D"));
            yield_now();
            sem.release();
            d.kill_nowait();
            log.say("main released, killed D");
            d.join();
            say!(log, "main joined D, counter {}", sem.counter());
        },
        &[
            "A acquires with timeout=0",
            "B waits with Timeout(0)",
            "A acquire -> False",
            "B released, counter 1",
            "main joined, counter 1",
            "C acquires",
            "main killed C, released",
            "C exit",
            "main joined C, counter 1",
            "D acquires",
            "main released, killed D",
            "D acquire -> True",
            "D exit",
            "main joined D, counter 1",
        ],
    );
}
