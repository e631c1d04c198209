//! Unwinding is a property of one greenlet, not of the thread: while one
//! greenlet (or the main greenlet) is unwinding and parked in a destructor,
//! every other greenlet's kills, `Timeout`s and `LoopExit` are delivered as
//! usual, and once the hub is torn down the thread is not left "panicking".
//!
//! (`std::thread::panicking()` counts per thread; a greenlet parked mid-unwind
//! must not make every other greenlet look unwinding.)
//!
//! Scenarios that could hang run under a watchdog thread; the one about the
//! state a torn-down hub leaves on its thread runs in a child process (this
//! binary again, with `GREEN_CORE_UNWIND_CHILD` naming it).

#[allow(unreachable_pub)] // The shared fixtures are `pub` for every test binary.
mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use green_core::{run, sleep, sleep_unref, spawn, yield_now, Greenlet, Timeout};
use support::{
    catch, describe_get, panic_message, run_child, stdout_value, within, MidUnwind, OnDrop,
};

const FOREVER: Duration = Duration::from_secs(3600);
const LIMIT: Duration = Duration::from_secs(10);
const CHILD_ENV: &str = "GREEN_CORE_UNWIND_CHILD";
const BLOCK_FOREVER: &str = "this operation would block forever";

/// "The main greenlet panics; a drop guard in it calls worker.kill(): the
/// kill is delivered, the worker dies, kill returns."
#[test]
fn kill_from_a_destructor_of_the_panicking_main_greenlet_is_delivered() {
    let (panicked, worker_dead) = within(LIMIT, || {
        let worker_dead = Rc::new(Cell::new(false));
        let w = Rc::clone(&worker_dead);
        let r = catch(|| {
            run(move || {
                let worker = spawn(|| sleep(FOREVER));
                yield_now();
                let _guard = OnDrop(move || {
                    worker.kill();
                    w.set(worker.dead());
                });
                panic!("the main greenlet fails");
            })
        });
        (r.is_err(), worker_dead.get())
    });
    assert!(panicked);
    assert!(worker_dead, "the kill returned with the worker dead");
}

/// "A's destructor calls B.kill(): the kill is delivered to B (it does not
/// wake from its sleep normally) and a.kill() returns in milliseconds."
#[test]
fn kill_from_a_destructor_of_a_killed_greenlet_is_delivered() {
    let (b_value, b_error, kill_took) = within(LIMIT, || {
        run(|| {
            let b = spawn(|| {
                sleep(Duration::from_secs(5));
                "woke normally"
            });
            let b2 = b.clone();
            let a = spawn(move || {
                let _guard = OnDrop(|| b2.kill());
                sleep(FOREVER);
            });
            yield_now(); // Both park.
            let start = Instant::now();
            a.kill();
            let took = start.elapsed();
            (b.value(), b.exception().map(|e| e.is_exit()), took)
        })
    });
    assert_eq!(b_value, None, "B was killed, not woken by its timer");
    assert_eq!(b_error, Some(true), "B died of GreenletExit");
    assert!(
        kill_took < Duration::from_secs(2),
        "a.kill() took {kill_took:?} (B's sleep is 5 s)"
    );
}

/// "While A is parked mid-unwind, an unrelated kill_timeout(500 ms) kills
/// its target."
#[test]
fn kill_timeout_of_an_unrelated_greenlet_succeeds_while_another_is_parked_mid_unwind() {
    let died = within(LIMIT, || {
        run(|| {
            let c = spawn(|| sleep(FOREVER));
            yield_now();
            let a = MidUnwind::start();
            let died = c.kill_timeout(Duration::from_millis(500));
            a.finish();
            c.join();
            died
        })
    });
    assert!(died, "kill_timeout(500 ms) returned with its target alive");
}

/// "While A is parked mid-unwind, a Timeout::run(50 ms) in a third greenlet
/// fires before 1 s elapses."
#[test]
fn timeout_in_a_third_greenlet_fires_on_time_while_another_is_parked_mid_unwind() {
    let (timed_out, took) = within(LIMIT, || {
        run(|| {
            let a = MidUnwind::start();
            let d = spawn(|| {
                let start = Instant::now();
                let r = Timeout::run(Duration::from_millis(50), || sleep(Duration::from_secs(3)));
                (r.is_err(), start.elapsed())
            });
            let out = d.get().expect("it returns");
            a.finish();
            out
        })
    });
    assert!(timed_out, "the 50 ms timeout never fired in its 3 s body");
    assert!(
        took < Duration::from_secs(1),
        "the 50 ms timeout fired after {took:?}"
    );
}

/// "get on a greenlet that nothing can ever finish raises LoopExit in the
/// main greenlet, even while another greenlet is parked mid-unwind; it
/// never returns the NotReady 'value was taken' error for a greenlet that
/// is not dead."
#[test]
fn get_raises_loop_exit_while_another_greenlet_is_parked_mid_unwind() {
    let (outcome, dead) = within(LIMIT, || {
        run(|| {
            // A blocks in its destructor on a greenlet that never starts:
            // no timer or I/O is left that could wake anyone.
            let never_a: Greenlet<()> = Greenlet::new(|| ());
            let na = never_a.clone();
            let a = spawn(move || {
                let _guard = OnDrop(|| na.join());
                sleep(FOREVER);
            });
            yield_now();
            a.kill_nowait();
            yield_now(); // A unwinds and parks in its destructor.
            assert!(!a.dead());
            let never_b: Greenlet<i32> = Greenlet::new(|| 1);
            let outcome = describe_get(catch(|| never_b.get()));
            let dead = never_b.dead();
            never_a.start();
            a.join();
            (outcome, dead)
        })
    });
    assert!(!dead);
    assert!(
        !outcome.contains("value was taken"),
        "get on a greenlet that is not dead said: {outcome}"
    );
    assert!(
        outcome.starts_with("panic:") && outcome.contains(BLOCK_FOREVER),
        "expected LoopExit, got: {outcome}"
    );
}

/// "sleep_unref in the main greenlet, with nothing else that could wake it,
/// raises LoopExit even while another greenlet is parked mid-unwind; it
/// never returns early for any other reason."
#[test]
fn sleep_unref_raises_loop_exit_while_another_greenlet_is_parked_mid_unwind() {
    let (outcome, took) = within(LIMIT, || {
        run(|| {
            let never_a: Greenlet<()> = Greenlet::new(|| ());
            let na = never_a.clone();
            let a = spawn(move || {
                let _guard = OnDrop(|| na.join());
                sleep(FOREVER);
            });
            yield_now();
            a.kill_nowait();
            yield_now();
            assert!(!a.dead());
            let start = Instant::now();
            let outcome = match catch(|| sleep_unref(Duration::from_secs(2))) {
                Ok(()) => "returned".to_string(),
                Err(p) => format!("panic: {}", panic_message(&*p)),
            };
            let took = start.elapsed();
            never_a.start();
            a.join();
            (outcome, took)
        })
    });
    if outcome == "returned" {
        assert!(
            took >= Duration::from_secs(2),
            "sleep_unref(2 s) returned after {took:?} without LoopExit"
        );
    } else {
        assert!(outcome.contains(BLOCK_FOREVER), "{outcome}");
    }
}

/// "get, called from a destructor of the unwinding main greenlet on a
/// greenlet that can never finish, never returns the NotReady 'greenlet
/// finished but its value was taken' error for a greenlet that is not
/// dead." (What it should do instead, since a LoopExit panic cannot leave a
/// destructor during unwinding, is the library's choice.)
#[test]
fn get_in_a_destructor_of_the_unwinding_main_greenlet_never_claims_a_live_greenlet_finished() {
    let (outcome, dead) = within(LIMIT, || {
        let seen = Rc::new(RefCell::new(None));
        let s = Rc::clone(&seen);
        let _ = catch(|| {
            run(move || {
                let never: Greenlet<i32> = Greenlet::new(|| 1);
                let _guard = OnDrop(move || {
                    let outcome = describe_get(catch(|| never.get()));
                    *s.borrow_mut() = Some((outcome, never.dead()));
                });
                panic!("the main greenlet fails");
            })
        });
        let seen = seen.borrow_mut().take();
        seen.expect("the destructor ran")
    });
    assert!(!dead);
    assert!(
        !outcome.contains("value was taken"),
        "get on a greenlet that is not dead said: {outcome}"
    );
}

/// "While another greenlet is parked mid-unwind, a kill of a greenlet
/// spinning on yield_now is delivered at its next yield: it dies promptly
/// instead of being held back (and queued again) on every resume."
#[test]
fn kill_of_a_yield_now_spinner_is_delivered_while_another_greenlet_is_parked_mid_unwind() {
    let (died, completed, exit) = within(LIMIT, || {
        run(|| {
            let a = MidUnwind::start();
            let completed = Rc::new(Cell::new(false));
            let c = Rc::clone(&completed);
            let s = spawn(move || {
                for _ in 0..1_000_000 {
                    yield_now();
                }
                c.set(true);
            });
            yield_now();
            yield_now(); // It spins.
            let died = s.kill_timeout(Duration::from_secs(2));
            let exit = s.exception().map(|e| e.is_exit());
            a.finish();
            s.join();
            (died, completed.get(), exit)
        })
    });
    assert!(
        !completed,
        "the spinner ran its million yields: never killed"
    );
    assert!(died, "kill_timeout(2 s) returned with the spinner alive");
    assert_eq!(exit, Some(true), "it died of GreenletExit");
}

/// "A greenlet killed; its local's Drop does Timeout::run(50 ms, || sleep(5 s)):
/// the timeout fires within 1 s and the drop completes."
#[test]
fn timeout_inside_a_destructor_run_by_a_kill_fires() {
    let (seen, kill_took) = within(LIMIT, || {
        run(|| {
            let seen = Rc::new(Cell::new(None));
            let s = Rc::clone(&seen);
            let a = spawn(move || {
                let _guard = OnDrop(|| {
                    let start = Instant::now();
                    let r = Timeout::run(Duration::from_millis(50), || {
                        sleep(Duration::from_secs(5));
                    });
                    s.set(Some((r.is_err(), start.elapsed())));
                });
                sleep(FOREVER);
            });
            yield_now();
            let start = Instant::now();
            a.kill();
            (seen.get(), start.elapsed())
        })
    });
    let (timed_out, took) = seen.expect("the destructor completed");
    assert!(timed_out, "the 50 ms timeout never fired in its 5 s body");
    assert!(took < Duration::from_secs(1), "it fired after {took:?}");
    assert!(
        kill_took < Duration::from_secs(2),
        "kill took {kill_took:?}"
    );
}

/// Not a test of its own: the body the child processes run.
#[test]
#[ignore = "child body"]
fn child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    match mode.as_str() {
        "leak_mid_unwind_then_reuse_thread" => {
            // Teardown leaks a greenlet whose destructor blocks forever.
            run(|| {
                spawn(|| {
                    let _guard = OnDrop(|| sleep(FOREVER));
                    sleep(FOREVER);
                });
                yield_now();
            });
            println!("PANICKING {}", std::thread::panicking());
            // A new hub on the same thread: a 50 ms timeout fires on time.
            let (timed_out, took) = run(|| {
                let start = Instant::now();
                let r = Timeout::run(Duration::from_millis(50), || {
                    sleep(Duration::from_secs(3));
                });
                (r.is_err(), start.elapsed())
            });
            println!("TIMED_OUT {timed_out}");
            println!("TIMEOUT_MS {}", took.as_millis());
            // A panic while holding a std Mutex poisons it.
            let m = Mutex::new(0);
            let _ = catch(|| {
                let _held = m.lock().unwrap();
                panic!("poison the mutex");
            });
            println!("POISONED {}", m.is_poisoned());
            // A later panic is a plain one, not a double panic.
            eprintln!("PROBE-START");
            let _ = catch(|| panic!("a later panic"));
            eprintln!("PROBE-END");
        }
        other => panic!("unknown child mode {other}"),
    }
}

/// "Once teardown leaks a greenlet parked mid-unwind, the thread is not
/// left panicking: std::thread::panicking() is false, a new run's 50 ms
/// Timeout fires promptly, a std Mutex poisoned by a panic reports
/// poisoned, and a later panic is not reported as a double panic."
#[test]
fn teardown_that_leaks_a_greenlet_parked_mid_unwind_does_not_leave_the_thread_panicking() {
    let out = run_child(CHILD_ENV, "leak_mid_unwind_then_reuse_thread", LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child died: {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    let ms: u64 = stdout_value(&out, "TIMEOUT_MS").parse().unwrap();
    let probe = stderr
        .split("PROBE-START")
        .nth(1)
        .and_then(|rest| rest.split("PROBE-END").next())
        .unwrap_or_else(|| panic!("no probe in stderr: {stderr}"));
    let seen = format!(
        "panicking={} timed_out={} timeout_on_time={} poisoned={} later_panic_is_plain={}",
        stdout_value(&out, "PANICKING"),
        stdout_value(&out, "TIMED_OUT"),
        ms < 1000,
        stdout_value(&out, "POISONED"),
        probe.contains("a later panic") && !probe.contains("stack backtrace"),
    );
    assert_eq!(
        seen,
        "panicking=false timed_out=true timeout_on_time=true poisoned=true later_panic_is_plain=true",
        "(the 50 ms timeout took {ms} ms)"
    );
}
