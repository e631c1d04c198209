//! Final hostile review of issue 8's newest mechanisms: the hub record freed
//! at thread exit (`hub_record.rs`), payloads set aside behind a `Timeout`
//! and held throws, started `Timeout`s cancelled from other threads, and
//! teardown ordering. Public API only.
//!
//! Scenarios that could hang run under a watchdog thread; those that could
//! abort, or that exercise thread exit, run in a child process (this binary
//! again, with `GREEN_CORE_REVIEW8_FINAL_CHILD` naming the scenario).

#[allow(unreachable_pub)] // The shared fixtures are `pub` for every test binary.
mod support;

use std::cell::RefCell;
use std::panic;
use std::rc::Rc;
use std::thread;
use std::time::{Duration, Instant};

use green_core::{
    current, run, shutdown, sleep, spawn, yield_now, Greenlet, GreenletExit, Timeout,
};
use support::{catch, describe_get, panic_message, run_child, within, DropCounter, OnDrop, MS};

const FOREVER: Duration = Duration::from_secs(3600);
const LIMIT: Duration = Duration::from_secs(20);
const CHILD_ENV: &str = "GREEN_CORE_REVIEW8_FINAL_CHILD";

// ===== nested timeouts due in the same loop iteration =====

/// "Two nested `Timeout::run` scopes whose deadlines both pass before the
/// greenlet next blocks, the inner one due first: the inner scope gets its
/// own timeout, and the outer scope still gets *its* timeout at the outer
/// body's next blocking call (gevent throws each expired timeout in turn),
/// instead of its body running on past its deadline."
///
/// Diagnosis: `fire_timeout` (timeout.rs) keeps the payload already in the
/// greenlet's `throw` slot when a second timer fires ("a kill already
/// waiting wins; it is delivered once") and drops the second `Timeout`,
/// removing its entry. When the payload waiting is the *inner* timeout, the
/// inner scope catches it and the outer one was never raised: nothing will
/// ever raise it, so the outer body (here a 3 s sleep) runs to its end.
/// A waiting `Timeout` of an inner scope should not swallow an outer one;
/// the later timeout has to wait (e.g. in `set_aside`) until the first is
/// raised.
#[test]
fn outer_timeout_due_in_the_same_tick_as_an_inner_one_still_fires() {
    let (outer, inner_err, took) = within(LIMIT, || {
        run(|| {
            let inner_err = Rc::new(RefCell::new(None));
            let ie = Rc::clone(&inner_err);
            let start = Instant::now();
            let outer = Timeout::run(40 * MS, move || {
                let inner = Timeout::run(10 * MS, || {
                    // Both deadlines pass before the first blocking call.
                    thread::sleep(100 * MS);
                    sleep(Duration::from_secs(3));
                });
                *ie.borrow_mut() = Some(inner.is_err());
                sleep(Duration::from_secs(3));
                "outer body ran to its end"
            });
            let took = start.elapsed();
            let inner_err = inner_err.borrow_mut().take();
            (outer.map_err(|t| t.duration()), inner_err, took)
        })
    });
    assert_eq!(inner_err, Some(true), "the inner scope gets its timeout");
    assert_eq!(
        outer,
        Err(Some(40 * MS)),
        "the outer scope gets its timeout"
    );
    assert!(
        took < Duration::from_secs(2),
        "the outer deadline was missed: {took:?}"
    );
}

// ===== started timeouts on other threads =====

/// Runs `f` on another OS thread and waits for it (the caller's greenlets do
/// not run meanwhile).
fn on_another_thread(f: impl FnOnce() + Send + 'static) {
    thread::spawn(f).join().expect("the other thread");
}

/// "A started `Timeout` that has fired, but whose greenlet has not raised
/// it yet, and that is then dropped on another thread is withdrawn like one
/// cancelled on its own thread: the greenlet is not unwound by a timeout
/// nobody holds any more." (On its own thread `cancel` withdraws the raise:
/// checked here too.)
///
/// Diagnosis: `cancel_from_another_thread` (timeout.rs) only queues
/// `(key, serial)`; `withdraw_foreign_cancels` / `withdraw_entry` remove an
/// entry that has not fired, and `fire_timeout` checks the requests only
/// before firing. Once the timer has fired the payload sits in the owner's
/// `throw` slot, which no foreign request ever looks at (the same-thread
/// `cancel` takes it back out), so the greenlet dies of a `Timeout` that
/// was cancelled before it was raised. The request would have to carry the
/// timeout's id and owner, and the hub withdraw a matching `throw` /
/// `set_aside` when it processes requests (and before raising a `Timeout`).
#[test]
fn a_fired_timeout_dropped_on_another_thread_before_its_raise_is_withdrawn() {
    let outcome = |foreign: bool| {
        within(LIMIT, move || {
            run(move || {
                let slot: Rc<RefCell<Option<Timeout>>> = Rc::new(RefCell::new(None));
                let s = Rc::clone(&slot);
                let g = spawn(move || {
                    *s.borrow_mut() = Some(Timeout::start_new(10 * MS));
                    sleep(200 * MS);
                    "survived"
                });
                yield_now(); // g starts its timeout and parks (its timer goes in).
                thread::sleep(60 * MS); // The deadline passes; nobody polls.
                yield_now(); // The loop is polled: the timer fires, g is scheduled after us.
                assert!(g.is_alive(), "g has not run since");
                let t = slot.borrow_mut().take().expect("g started its timeout");
                if foreign {
                    on_another_thread(move || drop(t));
                } else {
                    drop(t);
                }
                describe_get(catch(|| g.get()))
            })
        })
    };
    assert_eq!(
        outcome(false),
        "Ok(\"survived\")",
        "same thread: the raise is withdrawn"
    );
    assert_eq!(
        outcome(true),
        "Ok(\"survived\")",
        "another thread: the raise is withdrawn"
    );
}

/// "Many threads dropping started timeouts of one hub at once: none of them
/// fires, nothing crashes, and the hub's own later timeouts still work."
/// (Held.)
#[test]
fn timeouts_of_one_hub_dropped_by_many_threads_at_once_never_fire() {
    let (fired, later) = within(LIMIT, || {
        run(|| {
            let fired = Rc::new(std::cell::Cell::new(0usize));
            let mut workers = Vec::new();
            for _ in 0..8 {
                let (tx, rx) = std::sync::mpsc::channel::<Vec<Timeout>>();
                let f = Rc::clone(&fired);
                let g = spawn(move || {
                    let ts: Vec<Timeout> = (0..50).map(|_| Timeout::start_new(80 * MS)).collect();
                    tx.send(ts).unwrap();
                    if let Err(p) = catch(|| sleep(300 * MS)) {
                        if p.is::<Timeout>() {
                            f.set(f.get() + 1);
                        } else {
                            panic::resume_unwind(p);
                        }
                    }
                });
                workers.push((g, rx));
            }
            yield_now(); // Every worker started its timeouts and parked.
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
            let threads: Vec<_> = workers
                .iter()
                .map(|(_, rx)| {
                    let ts = rx.recv().unwrap();
                    let b = std::sync::Arc::clone(&barrier);
                    thread::spawn(move || {
                        b.wait();
                        for t in ts {
                            drop(t);
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            for (g, _) in &workers {
                g.join();
            }
            let later = Timeout::run(20 * MS, || sleep(Duration::from_secs(2))).is_err();
            (fired.get(), later)
        })
    });
    assert_eq!(fired, 0, "a timeout dropped on another thread fired");
    assert!(later, "the hub's later timeout fires");
}

// ===== the hub record freed at thread exit =====

/// What a thread-local destructor finds at thread exit: handles and a
/// started timeout from the thread's (torn-down) hub.
#[derive(Default)]
struct Kept {
    killed: Option<Greenlet<()>>,
    never_started: Option<Greenlet<u32>>,
    timeout: Option<Timeout>,
    main: Option<green_core::GreenletRef>,
}

/// Uses every kept handle, then green-core afresh, and prints how it went.
fn use_kept(kept: &mut Kept, tag: &str) {
    if let Some(g) = kept.killed.take() {
        let killed = catch(|| g.kill()).map_err(|p| panic_message(&*p));
        let joined = catch(|| g.join()).map_err(|p| panic_message(&*p));
        let got = describe_get(catch(|| g.get()));
        let named =
            catch(|| format!("{} {g} {}", g.name(), g.dead())).map_err(|p| panic_message(&*p));
        println!("{tag}_KILLED {killed:?} {joined:?} {got} {named:?}");
    }
    if let Some(g) = kept.never_started.take() {
        let started = catch(|| {
            g.start();
            g.get()
        });
        println!("{tag}_NEVER_STARTED {}", describe_get(started));
    }
    if let Some(t) = kept.timeout.take() {
        let pending = catch(|| t.pending()).map_err(|p| panic_message(&*p));
        let dropped = catch(move || drop(t)).map_err(|p| panic_message(&*p));
        println!("{tag}_TIMEOUT {pending:?} {dropped:?}");
    }
    if let Some(m) = kept.main.take() {
        let seen = catch(|| format!("{} {}", m.name(), m.dead())).map_err(|p| panic_message(&*p));
        println!("{tag}_MAIN {seen:?}");
    }
    let fresh = catch(|| {
        let me = current().name();
        let g = spawn(|| {
            sleep(MS);
            let fired = Timeout::run(5 * MS, || sleep(Duration::from_secs(2))).is_err();
            u32::from(fired) + 1
        });
        let v = g.get();
        let t = Timeout::start_new(Duration::from_secs(1));
        sleep(MS);
        drop(t);
        format!("{me} {v:?}")
    });
    println!(
        "{tag}_FRESH {}",
        describe_get(fresh.map(Ok::<_, green_core::GreenletError>))
    );
}

struct KeptTls(RefCell<Kept>, &'static str);

impl Drop for KeptTls {
    fn drop(&mut self) {
        use_kept(&mut self.0.borrow_mut(), self.1);
    }
}

thread_local! {
    /// Registered before the hub: destroyed after green-core's exit guard
    /// freed the hub record.
    static LATE: KeptTls = KeptTls(RefCell::new(Kept::default()), "LATE");
    /// Registered after the hub: destroyed before the exit guard.
    static EARLY: KeptTls = KeptTls(RefCell::new(Kept::default()), "EARLY");
}

/// Fills a `Kept` from the running (lazy) hub.
fn keep_from_the_hub(kept: &mut Kept) {
    let killed = spawn(|| {
        let _guard = OnDrop(|| sleep(2 * MS));
        sleep(FOREVER);
    });
    kept.never_started = Some(Greenlet::new(|| 7));
    kept.timeout = Some(Timeout::start_new(Duration::from_secs(30)));
    kept.main = Some(current());
    yield_now();
    kept.killed = Some(killed);
}

fn child_handles_in_tls_after_exit() {
    let t = thread::spawn(|| {
        LATE.with(|_| ()); // Registered first, destroyed last.
        LATE.with(|k| keep_from_the_hub(&mut k.0.borrow_mut()));
        EARLY.with(|k| keep_from_the_hub(&mut k.0.borrow_mut()));
        sleep(MS);
    });
    println!("JOINED {}", t.join().is_ok());
}

fn child_run_in_tls_after_exit() {
    struct RunsAtExit;
    impl Drop for RunsAtExit {
        fn drop(&mut self) {
            let r = catch(|| {
                run(|| {
                    let g = spawn(|| {
                        sleep(MS);
                        3
                    });
                    let _sleeper = spawn(|| sleep(FOREVER));
                    g.get().unwrap()
                })
            })
            .map_err(|p| panic_message(&*p));
            println!("RUN_AT_EXIT {r:?}");
        }
    }
    thread_local! { static R: RunsAtExit = const { RunsAtExit }; }
    let t = thread::spawn(|| {
        R.with(|_| ());
        let _g = spawn(|| sleep(FOREVER));
        yield_now();
    });
    println!("JOINED {}", t.join().is_ok());
}

fn child_exit_in_a_greenlet() {
    let t = thread::spawn(|| {
        LATE.with(|_| ());
        LATE.with(|k| keep_from_the_hub(&mut k.0.borrow_mut()));
        EARLY.with(|k| keep_from_the_hub(&mut k.0.borrow_mut()));
        let g = spawn(|| {
            let _guard = OnDrop(|| println!("GUARD_DROPPED"));
            sleep(5 * MS);
            println!("EXITING");
            std::process::exit(7);
        });
        g.join();
    });
    let _ = t.join();
    println!("NOT_REACHED");
}

fn child_exit_in_a_destructor_at_thread_exit() {
    let t = thread::spawn(|| {
        let _g = spawn(|| {
            let _guard = OnDrop(|| {
                println!("EXITING");
                std::process::exit(7);
            });
            sleep(FOREVER);
        });
        yield_now();
    });
    let _ = t.join();
    println!("NOT_REACHED");
}

/// "A process exit called inside a greenlet ends the process with its
/// code, quietly: green-core's exit hook (which the C library runs then, on
/// the greenlet's stack) does not print a panic of its own."
///
/// Diagnosis: `teardown_at_exit` (hub.rs) calls `hub.teardown()` under
/// `catch_unwind` before looking at where it runs; off the thread's own
/// stack `teardown` panics ("the hub can only be torn down from the main
/// greenlet"), and the panic hook prints that as a panic of the exiting
/// thread, on a clean `exit(7)`. The root-stack check that follows should
/// come first.
#[test]
fn process_exit_inside_a_greenlet_exits_quietly_with_its_code() {
    let (status, stdout, stderr) = child_output("exit_in_a_greenlet");
    assert_eq!(status.code(), Some(7), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("EXITING") && !stdout.contains("NOT_REACHED"));
    for tag in ["EARLY", "LATE"] {
        assert!(
            stdout.contains(&format!("{tag}_FRESH Ok(")),
            "thread-local destructors still use green-core: {stdout}"
        );
    }
    assert!(
        !stderr.contains("panicked"),
        "a spurious panic at exit: {stderr}"
    );
}

/// "A process exit called by a greenlet's destructor that the thread-exit
/// teardown runs ends the process with its code (no hang, no abort)."
/// (Held.)
#[test]
fn process_exit_in_a_destructor_run_by_the_exit_teardown_exits_with_its_code() {
    let (status, stdout, stderr) = child_output("exit_in_a_destructor_at_thread_exit");
    assert_eq!(status.code(), Some(7), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("EXITING") && !stdout.contains("NOT_REACHED"));
}

/// "Handles, a started `Timeout` and the main greenlet's `GreenletRef` kept
/// in thread-locals from the thread's hub all still work in thread-local
/// destructors, before green-core's exit hook and after it freed the hub
/// record: kill/join/get/name/Display, starting a greenlet made by the old
/// hub, dropping the timeout, and fresh spawn/sleep/Timeout. (Run under
/// valgrind too: no read of the freed record.)" (Held.)
#[test]
fn handles_kept_in_thread_locals_work_before_and_after_the_hub_record_is_freed() {
    let (status, stdout, stderr) = child_output("handles_in_tls_after_exit");
    assert!(
        status.success(),
        "{status:?}\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert_eq!(stdout_value_of(&stdout, "JOINED"), "true");
    for tag in ["EARLY", "LATE"] {
        let killed = stdout_value_of(&stdout, &format!("{tag}_KILLED"));
        assert!(
            killed.starts_with("Ok(()) Ok(()) Err(Exited"),
            "{tag}: {killed}"
        );
        assert_eq!(
            stdout_value_of(&stdout, &format!("{tag}_NEVER_STARTED")),
            "Ok(7)"
        );
        assert!(stdout_value_of(&stdout, &format!("{tag}_TIMEOUT")).ends_with("Ok(())"));
        assert_eq!(
            stdout_value_of(&stdout, &format!("{tag}_FRESH")),
            "Ok(\"main Ok(2)\")"
        );
    }
}

/// "`green_core::run` in a thread-local destructor that runs after
/// green-core's exit hook works and tears its hub down." (Held.)
#[test]
fn run_in_a_thread_local_destructor_after_the_exit_hook_works() {
    let (status, stdout, stderr) = child_output("run_in_tls_after_exit");
    assert!(
        status.success(),
        "{status:?}\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert_eq!(stdout_value_of(&stdout, "RUN_AT_EXIT"), "Ok(3)");
    assert_eq!(stdout_value_of(&stdout, "JOINED"), "true");
}

fn stdout_value_of(stdout: &str, key: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.split_once(&format!("{key} ")).map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no {key} line in stdout: {stdout}"))
        .to_string()
}

/// Not a test of its own: the body the child processes run.
#[test]
#[ignore = "child body"]
fn child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    match mode.as_str() {
        "handles_in_tls_after_exit" => child_handles_in_tls_after_exit(),
        "run_in_tls_after_exit" => child_run_in_tls_after_exit(),
        "exit_in_a_greenlet" => child_exit_in_a_greenlet(),
        "exit_in_a_destructor_at_thread_exit" => child_exit_in_a_destructor_at_thread_exit(),
        other => panic!("unknown child mode {other}"),
    }
    println!("CHILD_DONE ok");
}

fn child_output(mode: &str) -> (std::process::ExitStatus, String, String) {
    let out = run_child(CHILD_ENV, mode, Duration::from_secs(60));
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

// ===== teardown ordering =====

/// "`shutdown()` called from inside a greenlet panics clearly (only the
/// main greenlet may tear the hub down), in that greenlet only; the hub and
/// its other greenlets go on." (Held.)
#[test]
fn shutdown_inside_a_greenlet_panics_clearly_and_the_hub_goes_on() {
    let (msg, other, after) = within(LIMIT, || {
        run(|| {
            let other = spawn(|| {
                sleep(20 * MS);
                5
            });
            let g = spawn(|| catch(shutdown).map_err(|p| panic_message(&*p)));
            let msg = g.get().unwrap();
            let after = spawn(|| 6).get().unwrap();
            (msg, other.get().unwrap(), after)
        })
    });
    let msg = msg.expect_err("shutdown inside a greenlet must panic");
    assert!(msg.contains("main greenlet"), "a clear message: {msg}");
    assert_eq!((other, after), (5, 6));
}

/// "A greenlet made (not started) in one hub and started after that hub was
/// shut down runs in the next hub, and its stack goes back cleanly (also
/// under valgrind)." (Held.)
#[test]
fn a_greenlet_made_before_shutdown_and_started_after_runs_in_the_next_hub() {
    let v = within(LIMIT, || {
        let g = Greenlet::new(|| {
            sleep(MS);
            yield_now();
            11
        });
        let other = spawn(|| sleep(FOREVER));
        yield_now();
        shutdown();
        assert!(other.dead());
        g.start();
        let v = g.get().unwrap();
        shutdown();
        v
    });
    assert_eq!(v, 11);
}

// ===== payloads set aside behind a timeout, held throws =====

/// "A greenlet killed while inside an outer `Timeout::run`, whose
/// destructor runs two `Timeout::run` scopes in turn while it is killed
/// again (`kill_nowait`, then `kill_timeout`) and the outer timeout fires
/// meanwhile: each destructor scope gets its own timeout, the greenlet
/// dies of the kill, `kill_timeout` sees it die, every token drops once."
/// (Held.)
#[test]
fn destructor_timeouts_survive_repeated_kills_and_an_outer_timeout() {
    let (log, died, successful, drops, took) = within(LIMIT, || {
        run(|| {
            let log = Rc::new(RefCell::new(Vec::<String>::new()));
            let drops = DropCounter::new();
            let (l, d) = (Rc::clone(&log), drops.clone());
            let g = spawn(move || {
                let l2 = Rc::clone(&l);
                let _ = Timeout::run(30 * MS, move || {
                    let token = d.token();
                    let _guard = OnDrop(move || {
                        for _ in 0..2 {
                            let r = Timeout::run(50 * MS, || sleep(Duration::from_secs(2)));
                            l2.borrow_mut()
                                .push(format!("{:?}", r.map_err(|t| t.duration())));
                        }
                        let _ = &token;
                    });
                    sleep(FOREVER);
                });
                l.borrow_mut().push("outer scope returned".into());
            });
            let start = Instant::now();
            yield_now();
            g.kill_nowait();
            sleep(10 * MS);
            g.kill_nowait();
            sleep(10 * MS);
            let died = g.kill_timeout(Duration::from_secs(5));
            let log = log.borrow().clone();
            (log, died, g.successful(), drops.drops(), start.elapsed())
        })
    });
    assert_eq!(log, ["Err(Some(50ms))", "Err(Some(50ms))"]);
    assert!(died && successful, "it dies of the kill");
    assert_eq!(drops, 1);
    assert!(took < Duration::from_secs(2), "{took:?}");
}

/// "A greenlet that survives a kill (it catches `GreenletExit`) after a
/// `Timeout::run` in a destructor of that kill's unwind, and was killed a
/// second time meanwhile: the destructor's scope gets its timeout, the
/// second kill is raised at its first blocking call after the catch, and
/// it dies of it." (Held.)
#[test]
fn a_second_kill_during_a_survived_kill_is_delivered_after_the_catch() {
    let (log, dead) = within(LIMIT, || {
        run(|| {
            let log = Rc::new(RefCell::new(Vec::<String>::new()));
            let l = Rc::clone(&log);
            let g = spawn(move || {
                let l2 = Rc::clone(&l);
                let first = catch(move || {
                    let _guard = OnDrop(move || {
                        let r = Timeout::run(30 * MS, || sleep(Duration::from_secs(2)));
                        l2.borrow_mut().push(format!("dtor {}", r.is_err()));
                    });
                    sleep(FOREVER);
                });
                l.borrow_mut().push(format!(
                    "survived {}",
                    first.is_err_and(|p| p.is::<GreenletExit>())
                ));
                let r = Timeout::run(20 * MS, || sleep(Duration::from_secs(2)));
                l.borrow_mut()
                    .push(format!("second scope {:?}", r.is_err()));
            });
            yield_now();
            g.kill_nowait();
            sleep(10 * MS);
            g.kill_nowait();
            let dead = g.join_timeout(Duration::from_secs(5));
            let log = log.borrow().clone();
            (log, dead && g.successful())
        })
    });
    assert_eq!(log, ["dtor true", "survived true"]);
    assert!(dead, "the second kill is delivered");
}

/// "`Timeout::cancel` of a timeout whose fired payload is set aside behind
/// a destructor's `Timeout::run` withdraws it: the destructor's scope gets
/// its own timeout and the greenlet then runs on unharmed." (Held.)
#[test]
fn cancelling_a_timeout_set_aside_behind_another_withdraws_it() {
    let (got, dtor) = within(LIMIT, || {
        run(|| {
            let slot: Rc<RefCell<Option<Timeout>>> = Rc::new(RefCell::new(None));
            let dtor = Rc::new(RefCell::new(None));
            let (s, d) = (Rc::clone(&slot), Rc::clone(&dtor));
            let g = spawn(move || {
                *s.borrow_mut() = Some(Timeout::start_new(50 * MS));
                let _ = catch(move || {
                    let _guard = OnDrop(move || {
                        let r =
                            Timeout::run(Duration::from_secs(1), || sleep(Duration::from_secs(5)));
                        *d.borrow_mut() = Some(r.map_err(|t| t.duration()));
                    });
                    panic!("boom");
                });
                sleep(300 * MS);
                "done"
            });
            yield_now(); // g panics; its destructor parks in its scope.
            sleep(150 * MS); // The outer timeout fires: held (g unwinds).
            thread::sleep(Duration::from_millis(1100)); // The destructor's deadline passes.
            yield_now(); // It fires: the outer one is set aside behind it.
            drop(slot.borrow_mut().take());
            let got = describe_get(catch(|| g.get()));
            let dtor = dtor.borrow_mut().take();
            (got, dtor)
        })
    });
    assert_eq!(dtor, Some(Err(Some(Duration::from_secs(1)))));
    assert_eq!(got, "Ok(\"done\")");
}

/// "An outer `Timeout::run` whose timeout unwinds into a destructor that
/// runs its own `Timeout::run`, while the greenlet is killed meanwhile: the
/// destructor's scope and then the outer scope each get their own timeout,
/// and the kill is delivered at the next blocking call." (Held.)
#[test]
fn kill_during_a_timeouts_unwind_waits_for_both_scopes_then_kills() {
    let (log, dead) = within(LIMIT, || {
        run(|| {
            let log = Rc::new(RefCell::new(Vec::<String>::new()));
            let l = Rc::clone(&log);
            let g = spawn(move || {
                let l2 = Rc::clone(&l);
                let outer = Timeout::run(20 * MS, move || {
                    let _guard = OnDrop(move || {
                        let r = Timeout::run(40 * MS, || sleep(Duration::from_secs(2)));
                        l2.borrow_mut()
                            .push(format!("dtor {:?}", r.map_err(|t| t.duration())));
                    });
                    sleep(Duration::from_secs(2));
                });
                l.borrow_mut()
                    .push(format!("outer {:?}", outer.map_err(|t| t.duration())));
                sleep(Duration::from_secs(2));
                l.borrow_mut().push("not killed".into());
            });
            yield_now();
            sleep(30 * MS); // The outer timeout fired; g is in its destructor.
            g.kill_nowait();
            let dead = g.join_timeout(Duration::from_secs(5));
            let log = log.borrow().clone();
            (log, dead)
        })
    });
    assert_eq!(log, ["dtor Err(Some(40ms))", "outer Err(Some(20ms))"]);
    assert!(dead);
}

/// Runs a `Timeout::run` when dropped and records how it ended.
struct TimedDrop(Rc<RefCell<Option<(String, Duration)>>>);

impl Drop for TimedDrop {
    fn drop(&mut self) {
        let start = Instant::now();
        let r = Timeout::run(20 * MS, || sleep(Duration::from_secs(3)));
        let r = format!("{:?}", r.map_err(|t| t.duration()));
        *self.0.borrow_mut() = Some((r, start.elapsed()));
    }
}

/// "A `Timeout::run` in the destructor of a value captured by a greenlet
/// that never ran, dropped when teardown kills that greenlet, gets its own
/// timeout on time: a scope inside the destructor catches it, so nothing
/// unwinds out of the teardown."
///
/// Diagnosis: teardown runs its kill rounds inside
/// `Hub::uninterruptible` (hub.rs) so that the main greenlet's own kill or
/// timeout cannot cut it short; killing a greenlet that never ran drops its
/// entry right there, on the main greenlet (S3, `kill_core`), so the
/// destructor's own timeout fires into an uninterruptible wait and is held
/// (`hold_pending_throw`, then `raise_held` returns at once while
/// `uninterruptible > 0`). The scope's body runs until teardown's grace
/// period gives up on the main greenlet's wait (about 1 s, the `sleep`
/// returning early) and the scope returns `Ok`. A timeout started inside
/// the uninterruptible section (caught by its own scope) could be raised.
#[test]
fn timeout_in_the_drop_of_an_unrun_greenlets_closure_at_teardown_fires() {
    let seen = within(LIMIT, || {
        let seen = Rc::new(RefCell::new(None));
        let value = TimedDrop(Rc::clone(&seen));
        run(move || {
            let _g = spawn(move || drop(value));
        });
        let seen = seen.borrow_mut().take();
        seen
    });
    let (r, took) = seen.expect("the destructor ran");
    assert_eq!(
        r, "Err(Some(20ms))",
        "the scope gets its own timeout (after {took:?})"
    );
    assert!(took < Duration::from_millis(900), "{took:?}");
}

/// The same drop outside teardown: a kill of a greenlet that never ran,
/// from the main greenlet. (Held: the contrast for the test above.)
#[test]
fn timeout_in_the_drop_of_an_unrun_greenlets_closure_at_a_kill_fires() {
    let seen = within(LIMIT, || {
        let seen = Rc::new(RefCell::new(None));
        let value = TimedDrop(Rc::clone(&seen));
        run(move || {
            let g = spawn(move || drop(value));
            g.kill();
        });
        let seen = seen.borrow_mut().take();
        seen
    });
    let (r, took) = seen.expect("the destructor ran");
    assert_eq!(r, "Err(Some(20ms))", "after {took:?}");
}
