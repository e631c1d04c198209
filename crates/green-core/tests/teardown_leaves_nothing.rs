//! A torn-down hub leaves nothing behind: no greenlet spawned during its
//! last drops survives into the next hub, handles from it are inert, a
//! thread-local destructor may still use green-core, and a nested `run`
//! refuses to tear the outer run's hub down.
//!
//! Scenarios that could hang run under a watchdog thread; those that could
//! abort or crash run in a child process (this binary again, with
//! `GREEN_CORE_TEARDOWN_NOTHING_CHILD` naming it).

#[allow(unreachable_pub)] // The shared fixtures are `pub` for every test binary.
mod support;

use std::cell::{Cell, RefCell};
use std::panic;
use std::rc::Rc;
use std::thread;
use std::time::Duration;

use green_core::{run, sleep, spawn, yield_now, Greenlet, GreenletExit};
use support::{
    catch, describe_get, panic_message, run_child, stdout_value, within, DropCounter, DropToken,
    OnDrop, MS,
};

const FOREVER: Duration = Duration::from_secs(3600);
const LIMIT: Duration = Duration::from_secs(10);
const CHILD_ENV: &str = "GREEN_CORE_TEARDOWN_NOTHING_CHILD";

/// Spawns, when dropped, a greenlet that records that it ran and holds a
/// counted token; a refused spawn (a panic) is caught, dropping the token.
struct SpawnOnDrop {
    token: Option<DropToken>,
    ran: Rc<Cell<bool>>,
}

impl Drop for SpawnOnDrop {
    fn drop(&mut self) {
        let token = self.token.take();
        let ran = Rc::clone(&self.ran);
        let _ = catch(move || {
            spawn(move || {
                let _t = token;
                ran.set(true);
                sleep(FOREVER);
            })
        });
    }
}

/// Every `GreenletExit` is caught and the greenlet sleeps again (at most
/// 1000 times): teardown must unwind it by force past its grace period.
fn sleep_catching_exits() {
    for _ in 0..1000 {
        match catch(|| sleep(FOREVER)) {
            Err(p) if p.is::<GreenletExit>() => {}
            Err(p) => panic::resume_unwind(p),
            Ok(()) => return,
        }
    }
}

/// "A greenlet spawned by a destructor during teardown's final drops (here:
/// when the link closures of a greenlet teardown unwound by force are
/// dropped) never runs in the next hub, and every destructor runs exactly
/// once (or the spawn is refused with a clear error)."
#[test]
fn greenlet_spawned_during_teardowns_final_drops_does_not_run_in_the_next_hub() {
    let (ran, drops) = within(LIMIT, || {
        let counter = DropCounter::new();
        let ran = Rc::new(Cell::new(false));
        let late = SpawnOnDrop {
            token: Some(counter.token()),
            ran: Rc::clone(&ran),
        };
        run(move || {
            let g = spawn(sleep_catching_exits);
            // Today it never fires, and is dropped with `g`'s record, whose
            // last reference teardown drops at its very end; whether or not
            // a fixed teardown fires it, `late` is dropped during teardown.
            g.link(move |_| {
                let _keep = &late;
            });
            drop(g);
            yield_now();
        });
        // The next hub on this thread.
        run(|| {
            yield_now();
            sleep(20 * MS);
        });
        (ran.get(), counter.drops())
    });
    assert!(!ran, "the late greenlet ran in the next hub");
    assert_eq!(drops, 1, "its closure was dropped exactly once");
}

/// A greenlet that teardown leaks: it blocks forever in a destructor while
/// unwinding from teardown's kill.
fn leaked_by_teardown() -> Greenlet<()> {
    run(|| {
        let g = spawn(|| {
            let _guard = OnDrop(|| sleep(FOREVER));
            sleep(FOREVER);
        });
        yield_now();
        g
    })
}

/// "A handle to a greenlet that a torn-down hub leaked is inert in a later
/// hub: kill returns (a no-op), get returns an error (no hang, no panic),
/// and the later hub's main greenlet is unharmed."
#[test]
fn handles_of_a_greenlet_leaked_by_a_torn_down_hub_are_inert() {
    let (seen, later_run) = within(LIMIT, || {
        let g = leaked_by_teardown();
        let seen = Rc::new(RefCell::new(None));
        let s = Rc::clone(&seen);
        let later_run = catch(move || {
            run(move || {
                let killed = catch(|| g.kill()).map_err(|p| panic_message(&*p));
                let got = describe_get(catch(|| g.get()));
                sleep(5 * MS);
                let after = describe_get(catch(|| spawn(|| 4).get()));
                *s.borrow_mut() = Some((killed, got, after));
            })
        })
        .map_err(|p| panic_message(&*p));
        let seen = seen.borrow_mut().take();
        (seen, later_run)
    });
    let (killed, got, after) =
        seen.unwrap_or_else(|| panic!("the later run failed before its end: {later_run:?}"));
    assert_eq!(killed, Ok(()), "kill returns");
    assert!(got.starts_with("Err("), "get returns an error: {got}");
    assert_eq!(after, "Ok(4)", "the later hub works");
    assert_eq!(later_run, Ok(()), "the later run ends normally");
}

thread_local! {
    /// Registered before green-core's own thread-locals: destroyed after them.
    static EARLY: EarlyTls = const { EarlyTls };
}

/// At thread exit, spawns and joins a greenlet, and says how that went.
struct EarlyTls;

impl Drop for EarlyTls {
    fn drop(&mut self) {
        let outcome = describe_get(catch(|| spawn(|| 2).get()));
        println!("TLS_DROP {outcome}");
    }
}

/// Not a test of its own: the body the child processes run.
#[test]
#[ignore = "child body"]
fn child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    match mode.as_str() {
        "tls_destructor_registered_before_the_hub" => {
            let t = thread::spawn(|| {
                EARLY.with(|_| ()); // Registered first.
                assert_eq!(spawn(|| 1).get().unwrap(), 1); // The lazy hub.
            });
            println!("JOINED {}", t.join().is_ok());
        }
        other => panic!("unknown child mode {other}"),
    }
}

/// "Using green-core from a thread-local destructor that was registered
/// before the hub existed works, or fails with a clear panic; the process
/// does not abort."
#[test]
fn green_core_in_a_tls_destructor_registered_before_the_hub_does_not_abort() {
    let out = run_child(CHILD_ENV, "tls_destructor_registered_before_the_hub", LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child died: {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    assert_eq!(stdout_value(&out, "JOINED"), "true");
    let tls = stdout_value(&out, "TLS_DROP");
    assert!(
        tls == "Ok(2)"
            || (tls.starts_with("panic: ")
                && tls.contains("green")
                && !tls.contains("AccessError")),
        "the destructor's spawn neither worked nor failed clearly: {tls}"
    );
}

/// "A nested run() panics with a clear message naming the nested run, and
/// leaves the outer run's greenlets alive."
#[test]
fn nested_run_panics_and_leaves_the_outer_runs_greenlets_alive() {
    let (nested, alive) = within(LIMIT, || {
        run(|| {
            let g = spawn(|| sleep(FOREVER));
            yield_now();
            let nested = catch(|| run(|| ())).map_err(|p| panic_message(&*p));
            (nested, g.is_alive())
        })
    });
    let message = nested.expect_err("a nested run must panic");
    assert!(
        message.to_lowercase().contains("nested"),
        "the message names the nested run: {message}"
    );
    assert!(alive, "the outer run's greenlet is still alive");
}
