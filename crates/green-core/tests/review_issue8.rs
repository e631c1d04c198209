//! Review of the issue-8 fixes (per-greenlet unwinding U1-U4, the hub
//! surviving user code H1, teardown leaving nothing behind, stack sizes),
//! attacked through the public API only.
//!
//! Scenarios that could hang run under a watchdog thread; those that could
//! abort, or that leave their thread in a state later tests must not see,
//! run in a child process (this binary again, with `GREEN_CORE_REVIEW8_CHILD`
//! naming the scenario).

#[allow(unreachable_pub)] // The shared fixtures are `pub` for every test binary.
mod support;

use std::cell::{Cell, RefCell};
use std::panic;
use std::rc::Rc;
use std::time::{Duration, Instant};

use green_core::{
    idle, iwait, joinall_with, run, sleep, spawn, wait, yield_now, Builder, Greenlet, GreenletExit,
    Timeout, Waitable,
};
use support::{
    catch, describe_get, panic_message, run_child, stdout_value, within, DropCounter, MidUnwind,
    OnDrop, MS,
};

const FOREVER: Duration = Duration::from_secs(3600);
const LIMIT: Duration = Duration::from_secs(20);
const CHILD_ENV: &str = "GREEN_CORE_REVIEW8_CHILD";
const BLOCK_FOREVER: &str = "this operation would block forever";

// ===== failing today =====

/// "A kill that arrives while its target unwinds (a panic the target's own
/// code will catch, its destructor blocking meanwhile) is held back (U3) and
/// then raised at the target's next blocking call once it no longer
/// unwinds, even when that call would block for a long time: the kill is
/// delivered once and must not be lost or parked behind a long sleep."
///
/// Why: `park_throw` only looks at a held payload when the greenlet is
/// resumed, so a greenlet that goes from its caught unwind into a long
/// blocking call sleeps the whole of it with the kill pending, and the
/// killer's `kill()` waits as long (forever for `sleep(FOREVER)`).
#[test]
fn kill_held_back_during_a_caught_unwind_is_raised_at_the_next_blocking_call() {
    let (died, exit, took) = within(LIMIT, || {
        run(|| {
            let in_drop = Rc::new(Cell::new(false));
            let d = Rc::clone(&in_drop);
            let g = spawn(move || {
                let _ = catch(|| {
                    let _guard = OnDrop(|| {
                        d.set(true);
                        sleep(100 * MS);
                    });
                    panic!("caught by the greenlet itself");
                });
                sleep(FOREVER);
            });
            while !in_drop.get() {
                yield_now();
            }
            let start = Instant::now();
            let died = g.kill_timeout(Duration::from_secs(3));
            let took = start.elapsed();
            let exit = g.exception().map(|e| e.is_exit());
            g.kill_nowait();
            (died, exit, took)
        })
    });
    assert!(
        died,
        "the kill was never raised: kill_timeout(3 s) returned with the target alive \
         (after {took:?})"
    );
    assert_eq!(exit, Some(true), "it died of the GreenletExit");
}

/// "A `Timeout` that fires while its greenlet unwinds from a panic that
/// greenlet's own code catches is held back, then raised at the next
/// blocking call: `Timeout::run(50 ms)` around it ends within about the
/// destructor's 100 ms, not after the 5 s sleep that follows."
///
/// Same root as the kill case (a held payload is only looked at when the
/// greenlet is resumed), seen through a `Timeout`: the deadline is missed by
/// the length of whatever blocking call comes next.
#[test]
fn timeout_held_back_during_a_caught_unwind_fires_at_the_next_blocking_call() {
    let (timed_out, took) = within(LIMIT, || {
        run(|| {
            spawn(|| {
                let start = Instant::now();
                let r = Timeout::run(50 * MS, || {
                    let _ = catch(|| {
                        let _guard = OnDrop(|| sleep(100 * MS));
                        panic!("caught by the greenlet itself");
                    });
                    sleep(Duration::from_secs(5));
                });
                (r.is_err(), start.elapsed())
            })
            .get()
            .unwrap()
        })
    });
    assert!(timed_out, "the timeout never fired");
    assert!(
        took < Duration::from_secs(2),
        "the 50 ms timeout, held back during a 100 ms unwind, fired after {took:?}"
    );
}

thread_local! {
    static SPAWNED_LATE: RefCell<Option<Greenlet<()>>> = const { RefCell::new(None) };
}

/// "A greenlet spawned by a destructor that teardown runs while finishing
/// off a straggler (one parked mid-unwind, resumed once with its blocking
/// call giving up, U4) never runs and is recorded dead: its handle is inert
/// after the hub is gone (dead, join returns at once), and it does not hang
/// or disturb the next hub."
///
/// Why: `Hub::teardown` takes its list of stragglers once
/// (`for core in self.live_greenlets()`), before `finish_off` runs their
/// destructors, and only sets `closing` afterwards; a greenlet started in
/// between is neither finished off nor refused: it sits in the ready queue,
/// which is then dropped, so with a handle elsewhere it stays `Scheduled`
/// (alive, never run) forever.
#[test]
fn greenlet_spawned_while_teardown_finishes_off_a_straggler_is_dead_after_teardown() {
    let (alive, dead, ran, joined_ok, next) = within(LIMIT, || {
        let ran = Rc::new(Cell::new(false));
        let r = Rc::clone(&ran);
        run(move || {
            let straggler = spawn(move || {
                let _guard = OnDrop(move || {
                    // Blocks past teardown's grace period; gives up when
                    // teardown resumes it once.
                    sleep(Duration::from_secs(30));
                    let r = Rc::clone(&r);
                    let late = spawn(move || r.set(true));
                    SPAWNED_LATE.with(|s| *s.borrow_mut() = Some(late));
                });
                sleep(FOREVER);
            });
            yield_now();
            straggler.kill_nowait();
            yield_now(); // It parks mid-unwind in its destructor.
        });
        let late = SPAWNED_LATE
            .with(|s| s.borrow_mut().take())
            .expect("the straggler's destructor spawned");
        let alive = late.is_alive();
        let dead = late.dead();
        // The next hub: join must not hang nor be a LoopExit.
        let next = catch(|| {
            run(|| {
                let joined = catch(|| late.join_timeout(Duration::from_millis(200)));
                let other = spawn(|| 5);
                let _ = catch(|| late.kill());
                (joined.unwrap_or(false), other.get().ok())
            })
        })
        .map_err(|p| panic_message(&*p));
        let (joined_ok, next) = match next {
            Ok((j, n)) => (j, Ok(n)),
            Err(e) => (false, Err(e)),
        };
        (alive, dead, ran.get(), joined_ok, next)
    });
    assert!(!ran, "it ran after teardown began finishing off");
    assert!(
        dead && !alive,
        "a greenlet spawned during teardown's finish-off is left alive (is_alive {alive}, \
         dead {dead}): never run, never recorded dead"
    );
    assert!(joined_ok, "joining it in the next hub does not return");
    assert_eq!(next, Ok(Some(5)), "the next hub works");
}

/// "After a run whose teardown had to leak a greenlet parked mid-unwind
/// (its destructor blocked again after being resumed once, U4), the next
/// run on the same thread works as a fresh one: its main greenlet, which is
/// not unwinding, gets `LoopExit` from a `get` that nothing could ever
/// finish, rather than a silent give-up as if it were unwinding."
///
/// Why: the leaked greenlet's unwind never ends, so the thread stays
/// `panicking()` for good (true at top level between the runs), while
/// teardown resets `parked_mid_unwind` to 0 (and `record_leaked` decrements
/// it). In the next hub `Hub::unwind_depth` then concludes that whoever asks
/// is unwinding ("panicking while no other greenlet is parked mid-unwind
/// means this one does"), so `park_loop_exit` gives up instead of raising
/// `LoopExit`, and kills and timeouts are held back whenever no other
/// greenlet happens to be counted. The leaked unwind has to stay counted
/// (as parked mid-unwind) for the life of the thread.
#[test]
fn next_run_after_teardown_leaked_a_greenlet_mid_unwind_is_not_taken_for_unwinding() {
    let (panicking_between, outcome) = within(LIMIT, || {
        run(|| {
            let _g = spawn(|| {
                let _guard = OnDrop(|| {
                    // Blocks again after teardown's one give-up: leaked.
                    for _ in 0..3 {
                        sleep(Duration::from_secs(30));
                    }
                });
                sleep(FOREVER);
            });
            yield_now();
        });
        let panicking_between = std::thread::panicking();
        let outcome = run(|| {
            let never: Greenlet<i32> = Greenlet::new(|| 1);
            describe_get(catch(|| never.get()))
        });
        (panicking_between, outcome)
    });
    eprintln!("thread panicking between the runs: {panicking_between}");
    assert!(
        outcome.starts_with("panic:") && outcome.contains(BLOCK_FOREVER),
        "the next run's main greenlet is taken for unwinding: get on a greenlet nothing \
         can finish gave {outcome} instead of LoopExit"
    );
}

// ===== scenarios that held (regressions) =====

/// "The main greenlet panics mid-run while workers are mid-kill (parked in
/// destructors): run passes the panic on, every worker dies once, every
/// token is dropped once, the thread is not left panicking, and the next
/// run on the thread works (LoopExit included)."
#[test]
fn main_panicking_mid_run_with_workers_mid_kill_leaves_the_thread_clean() {
    let (msg, drops, dead, panicking, next) = within(LIMIT, || {
        let drops = DropCounter::new();
        let dead = Rc::new(Cell::new(0));
        let (dc, de) = (drops.clone(), Rc::clone(&dead));
        let r = catch(move || {
            run(move || {
                let mut workers = Vec::new();
                for i in 0..20u32 {
                    let token = dc.token();
                    let de = Rc::clone(&de);
                    let w = spawn(move || {
                        let _t = token;
                        let _g = OnDrop(move || {
                            sleep((10 + i) * MS);
                            yield_now();
                        });
                        sleep(FOREVER);
                    });
                    w.rawlink(move |_| de.set(de.get() + 1));
                    workers.push(w);
                }
                yield_now();
                for w in &workers {
                    w.kill_nowait();
                }
                yield_now(); // They park in their destructors.
                let w0 = workers[0].clone();
                let _guard = OnDrop(move || w0.kill());
                panic!("main fails mid-kill");
            })
        });
        let msg = r.err().map(|p| panic_message(&*p));
        let panicking = std::thread::panicking();
        let next = run(|| {
            let never: Greenlet<()> = Greenlet::new(|| ());
            (spawn(|| 3).get().ok(), describe_get(catch(|| never.get())))
        });
        (msg, drops.drops(), dead.get(), panicking, next)
    });
    assert_eq!(msg.as_deref(), Some("main fails mid-kill"));
    assert_eq!(drops, 20, "every worker's token dropped exactly once");
    assert_eq!(dead, 20, "every worker died (its rawlink fired once)");
    assert!(!panicking, "the thread is left panicking");
    assert_eq!(next.0, Some(3));
    assert!(next.1.contains(BLOCK_FOREVER), "{}", next.1);
}

/// "Fifty greenlets parked mid-unwind at once do not delay another
/// greenlet's kill, Timeout (nested) or the main greenlet's LoopExit, and
/// all of them finish with their tokens dropped once."
#[test]
fn many_greenlets_parked_mid_unwind_delay_nothing_else() {
    let (killed, inner, outer, took, loop_exit, drops) = within(LIMIT, || {
        run(|| {
            let drops = DropCounter::new();
            let parked: Vec<MidUnwind> = (0..50)
                .map(|_| MidUnwind::start_with(drops.clone()))
                .collect();
            let victim = spawn(|| sleep(FOREVER));
            yield_now();
            let killed = victim.kill_timeout(Duration::from_secs(2));
            let t = spawn(|| {
                let start = Instant::now();
                let outer = Timeout::run(Duration::from_millis(300), || {
                    let inner = Timeout::run(Duration::from_millis(50), || sleep(FOREVER));
                    let inner = inner.is_err();
                    sleep(FOREVER);
                    inner
                });
                (outer.is_err(), start.elapsed())
            });
            let (outer, took) = t.get().unwrap();
            let never: Greenlet<()> = Greenlet::new(|| ());
            let _ = &never;
            for p in parked {
                p.finish();
            }
            let loop_exit = describe_get(catch(|| never.get()));
            (killed, true, outer, took, loop_exit, drops.drops())
        })
    });
    assert!(killed);
    assert!(inner && outer, "both timeouts fired");
    assert!(
        took < Duration::from_secs(2),
        "outer 300 ms timeout took {took:?}"
    );
    assert!(loop_exit.contains(BLOCK_FOREVER), "{loop_exit}");
    assert_eq!(drops, 50);
}

/// "Timeout::run inside a destructor during a kill's unwind (nested two
/// deep), while another greenlet is parked mid-unwind: each scope catches
/// its own timeout, the greenlet finishes dying, nothing aborts."
#[test]
fn nested_timeouts_in_a_destructor_during_unwinding_fire_and_are_caught() {
    let (seen, exit) = within(LIMIT, || {
        run(|| {
            let a = MidUnwind::start();
            let seen = Rc::new(RefCell::new(Vec::new()));
            let s = Rc::clone(&seen);
            let g = spawn(move || {
                let _guard = OnDrop(move || {
                    let outer = Timeout::run(Duration::from_millis(400), || {
                        let inner = Timeout::run(Duration::from_millis(30), || sleep(FOREVER));
                        s.borrow_mut().push(format!("inner {}", inner.is_err()));
                        let inner2 =
                            Timeout::run(Duration::from_secs(5), || sleep(Duration::from_secs(5)));
                        s.borrow_mut().push(format!("inner2 {}", inner2.is_err()));
                    });
                    s.borrow_mut().push(format!("outer {}", outer.is_err()));
                });
                sleep(FOREVER);
            });
            yield_now();
            g.kill();
            a.finish();
            let seen = seen.borrow().clone();
            (seen, g.exception().map(|e| e.is_exit()))
        })
    });
    assert_eq!(seen, vec!["inner true", "outer true"]);
    assert_eq!(exit, Some(true));
}

/// "While another greenlet is parked mid-unwind, kills and timeouts
/// interrupt a greenlet at every blocking point and are caught by its own
/// catch_unwind / Timeout::run: join, get, sleep, yield_now, idle,
/// kill (blocking), kill_timeout, joinall, wait, iwait."
#[test]
fn every_blocking_point_is_interruptible_while_another_greenlet_is_parked_mid_unwind() {
    type Point = fn(&Greenlet<()>);
    let points: Vec<(&str, Point)> = vec![
        ("join", |t| t.join()),
        ("get", |t| {
            let _ = t.get();
        }),
        ("sleep", |_| sleep(FOREVER)),
        ("yield_now", |_| loop {
            yield_now();
        }),
        ("idle", |_| loop {
            idle();
        }),
        ("kill", |t| t.kill()),
        ("kill_timeout", |t| {
            t.kill_timeout(FOREVER);
        }),
        ("joinall", |t| {
            let _ = joinall_with(std::slice::from_ref(t), None, false, None);
        }),
        ("wait", |t| {
            let objs: [&dyn Waitable; 1] = [t];
            wait(&objs, None, None);
        }),
        ("iwait", |t| {
            let objs: [&dyn Waitable; 1] = [t];
            for _ in iwait(&objs, None) {}
        }),
    ];
    let results = within(Duration::from_secs(60), move || {
        run(move || {
            let a = MidUnwind::start();
            let mut out = Vec::new();
            for (name, point) in points {
                // A target that never dies: it catches every GreenletExit.
                let target = spawn(|| {
                    for _ in 0..1000 {
                        if catch(|| sleep(FOREVER)).is_ok() {
                            return;
                        }
                    }
                });
                // A timeout at the point, caught by its scope.
                let t2 = target.clone();
                let by_timeout = spawn(move || {
                    let start = Instant::now();
                    let r = Timeout::run(Duration::from_millis(50), || point(&t2));
                    (r.is_err(), start.elapsed())
                });
                let (fired, took) = by_timeout.get().unwrap();
                // A kill at the point, caught by the greenlet itself.
                let t3 = target.clone();
                let by_kill = spawn(move || {
                    let r = catch(|| point(&t3));
                    matches!(r, Err(p) if p.is::<GreenletExit>())
                });
                yield_now();
                yield_now();
                let start = Instant::now();
                let died = by_kill.kill_timeout(Duration::from_secs(2));
                let kill_took = start.elapsed();
                let caught = by_kill.get().unwrap_or(false);
                out.push((name, fired, took, died, kill_took, caught));
            }
            a.finish();
            out
        })
    });
    for (name, fired, took, died, kill_took, caught) in results {
        assert!(
            fired && took < Duration::from_secs(1),
            "{name}: timeout {fired} after {took:?}"
        );
        assert!(
            died && kill_took < Duration::from_secs(1),
            "{name}: kill {died} after {kill_took:?}"
        );
        assert!(caught, "{name}: the kill was not seen as GreenletExit");
    }
}

/// Panics when dropped; holds a counted token.
struct PanicOnDrop {
    _token: support::DropToken,
}

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("value drop fails");
    }
}

fn child_panics_in_links_and_drops() {
    let drops = DropCounter::new();
    let d = drops.clone();
    let _ = catch(move || {
        run(move || {
            for _ in 0..5 {
                let t = d.token();
                let g = spawn(move || PanicOnDrop { _token: t });
                g.rawlink(|_| panic!("rawlink fails"));
                let p = PanicOnDrop { _token: d.token() };
                g.link_exception(move |_| drop(p));
                g.link(|_| panic!("link fails"));
            }
            let sleeper = spawn(move || sleep(FOREVER));
            let p = PanicOnDrop { _token: d.token() };
            sleeper.link_exception(move |_| drop(p));
            sleeper.rawlink(|_| panic!("rawlink at teardown fails"));
            yield_now();
            sleep(10 * MS);
        })
    });
    let after = run(|| spawn(|| 9).get().ok());
    println!("DROPS {}", drops.drops());
    println!("AFTER {after:?}");
}

/// "Panics in rawlink callbacks, in link callbacks, in the drop of a dead
/// greenlet's value and of unfired link closures, in and out of teardown:
/// each is reported, the hub goes on, every value is dropped once, nothing
/// aborts."
#[test]
fn panics_in_links_and_value_drops_around_teardown_are_survived() {
    let out = expect_child_ok("panics_in_links_and_drops");
    assert!(out.contains("DROPS 11"), "{out}");
    assert!(out.contains("AFTER Some(9)"), "{out}");
}

/// "Builder::stack_size: 0 and tiny sizes work (at least 32 KiB usable),
/// 1 GiB works, anything above is an InvalidInput error (usize::MAX too),
/// never a panic or an abort."
#[test]
fn bad_stack_sizes_are_errors_or_work() {
    within(LIMIT, || {
        run(|| {
            for size in [0, 1, 4095, 32 << 10, (32 << 10) + 1, 1 << 30] {
                let g = Builder::new()
                    .stack_size(size)
                    .spawn(|| {
                        let buf = [7u8; 16 << 10];
                        std::hint::black_box(&buf);
                        buf[100]
                    })
                    .unwrap_or_else(|e| panic!("size {size}: {e}"));
                assert_eq!(g.get().unwrap(), 7, "size {size}");
            }
            for size in [(1 << 30) + 1, usize::MAX, usize::MAX / 2] {
                for unguarded in [false, true] {
                    let e = Builder::new()
                        .stack_size(size)
                        .unguarded(unguarded)
                        .spawn(|| ())
                        .map(|_| ())
                        .expect_err("too large");
                    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{size}: {e}");
                }
            }
        })
    });
}

/// "Thread churn: 6 threads, each with a lazy hub (no run) holding a
/// greenlet parked mid-unwind whose destructor blocks once at thread exit,
/// and a Timeout pending in the main greenlet: every thread exits cleanly
/// and every token is dropped."
#[test]
fn thread_churn_with_greenlets_mid_unwind_at_thread_exit() {
    let dropped = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..6 {
        let dropped = std::sync::Arc::clone(&dropped);
        within(LIMIT, move || {
            struct Count(std::sync::Arc<std::sync::atomic::AtomicUsize>);
            impl Drop for Count {
                fn drop(&mut self) {
                    self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
            let c = Count(dropped);
            let g = spawn(move || {
                let _c = c;
                let _guard = OnDrop(|| sleep(Duration::from_secs(30)));
                sleep(FOREVER);
            });
            yield_now();
            g.kill_nowait();
            yield_now();
            let t = Timeout::start_new(Duration::from_secs(30));
            std::mem::forget(t);
        });
    }
    assert_eq!(dropped.load(std::sync::atomic::Ordering::SeqCst), 6);
}

// ===== child processes =====

/// Not a test of its own: the body the child processes run.
#[test]
#[ignore = "child body"]
fn child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    match mode.as_str() {
        "kill_self_in_forced_unwind" => child_kill_self_in_forced_unwind(),
        "replaced_hook" => child_replaced_hook(),
        "panics_in_links_and_drops" => child_panics_in_links_and_drops(),
        other => panic!("unknown child mode {other}"),
    }
    println!("CHILD_DONE ok");
}

fn expect_child_ok(mode: &str) -> String {
    let out = run_child(CHILD_ENV, mode, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child '{mode}' died: {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    assert_eq!(stdout_value(&out, "CHILD_DONE"), "ok");
    stdout
}

/// Teardown: B (spawned first) refuses to die; A is parked mid-unwind
/// forever. B is unwound by force while A still counts as parked
/// mid-unwind, and B's destructor kills B itself.
fn child_kill_self_in_forced_unwind() {
    let me_slot: Rc<RefCell<Option<Greenlet<()>>>> = Rc::new(RefCell::new(None));
    let slot = Rc::clone(&me_slot);
    run(move || {
        let s = Rc::clone(&slot);
        let b = spawn(move || {
            let _guard = OnDrop(move || {
                if let Some(me) = s.borrow_mut().take() {
                    me.kill_nowait();
                }
            });
            for _ in 0..1000 {
                match catch(|| sleep(FOREVER)) {
                    Err(p) if p.is::<GreenletExit>() => {}
                    Err(p) => panic::resume_unwind(p),
                    Ok(()) => return,
                }
            }
        });
        *slot.borrow_mut() = Some(b);
        let a = spawn(|| {
            let _guard = OnDrop(|| {
                for _ in 0..3 {
                    sleep(Duration::from_secs(30));
                }
            });
            sleep(FOREVER);
        });
        yield_now();
        a.kill_nowait();
        yield_now();
    });
}

/// "Killing yourself in a destructor while you unwind is a no-op, and
/// nothing ever aborts the process: also when teardown unwinds you by force
/// (green-ctx's `ForcedUnwind`, which neither the panic hook nor
/// `Hub::raise` counts) while another greenlet is still parked mid-unwind."
/// (Held: the greenlet's earlier caught kills leave its count above 0.)
#[test]
fn killing_yourself_while_teardown_unwinds_you_by_force_does_not_abort() {
    expect_child_ok("kill_self_in_forced_unwind");
}

/// With the application's own panic hook (one that does not chain to the
/// previous one), installed before the first hub, as applications do at the
/// top of `main`: A parks mid-unwind; B panics with `panic!`, its destructor
/// blocks; B is killed.
fn child_replaced_hook() {
    panic::set_hook(Box::new(|_| {}));
    run(|| {
        let a = MidUnwind::start();
        let in_drop = Rc::new(Cell::new(false));
        let d = Rc::clone(&in_drop);
        let b = spawn(move || {
            let _guard = OnDrop(move || {
                d.set(true);
                sleep(200 * MS);
            });
            panic!("B fails");
        });
        while !in_drop.get() {
            yield_now();
        }
        b.kill();
        println!("B_DEAD {}", b.dead());
        a.finish();
    });
}

/// "A program with its own panic hook (installed before green-core's first
/// use, without chaining) does not make green-core abort the process: a kill
/// of a greenlet parked in a destructor during its own panic is held back,
/// not raised out of the destructor." green-core's hook, installed with the
/// first hub, chains to the application's.
///
/// (A hook installed *after* the first hub without chaining hides panics
/// from the hub's count, U1; the hub docs and `kill-and-timeout.md` name
/// the consequence: with another greenlet parked mid-unwind, a kill of such
/// a greenlet parked in a destructor can abort. std offers no way to see a
/// hook replaced, nor to re-install one while a greenlet is mid-unwind.)
#[test]
fn a_replaced_panic_hook_does_not_make_a_kill_abort_the_process() {
    let stdout = expect_child_ok("replaced_hook");
    assert!(stdout.contains("B_DEAD true"), "{stdout}");
}
