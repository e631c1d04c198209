//! The hub fiber survives user code, and user destructors run in the right
//! greenlet:
//!
//! * no user code (a dead greenlet's value, a closure's captures, a link)
//!   runs on the hub's stack unguarded: a panic there is reported and the
//!   hub goes on; a link that cannot get a stack is that greenlet's failure,
//!   not the hub's;
//! * a dead greenlet's value is never dropped inside an unrelated greenlet
//!   (where its panic would be blamed on the innocent greenlet, or its
//!   blocking would leave a killed greenlet never recorded dead);
//! * a kill's bookkeeping is complete before user data is dropped, and a
//!   greenlet killing itself while unwinding does not abort the process.
//!
//! Scenarios that could hang run under a watchdog thread; those that could
//! abort or that exhaust the process's mappings run in a child process (this
//! binary again, with `GREEN_CORE_HUB_USER_CODE_CHILD` naming it).

#[allow(unreachable_pub)] // The shared fixtures are `pub` for every test binary.
mod support;

use std::cell::{Cell, RefCell};
use std::io::Read;
use std::rc::Rc;
use std::time::Duration;

use green_core::{run, sleep, spawn, yield_now, Builder, Greenlet};
use support::{
    catch, describe_get, panic_message, run_child, stdout_value, within, DropCounter, OnDrop, MS,
};

const FOREVER: Duration = Duration::from_secs(3600);
const LIMIT: Duration = Duration::from_secs(10);
const CHILD_ENV: &str = "GREEN_CORE_HUB_USER_CODE_CHILD";

/// A value whose destructor panics.
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("PanicOnDrop: a user destructor fails");
    }
}

/// `run` on a fresh hub of this thread, its panic turned into its message.
fn run_catching<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    catch(|| run(f)).map_err(|p| panic_message(&*p))
}

// ===== section 2: the hub fiber survives user code =====

/// "A dead greenlet's value whose Drop panics, dropped when the hub reaps
/// the greenlet, does not kill the hub: the panic is reported, the run goes
/// on and ends normally, and the next run on the thread works."
#[test]
fn a_panicking_drop_of_a_dead_greenlets_value_does_not_kill_the_hub() {
    let (first, second) = within(LIMIT, || {
        let first = run_catching(|| {
            // No handle is kept: the hub's reaping drops the value.
            drop(spawn(|| PanicOnDrop));
            sleep(20 * MS); // It runs and dies while we sleep.
            sleep(5 * MS);
            spawn(|| 7).get().map_err(|e| e.to_string())
        });
        let second = run_catching(|| spawn(|| 8).get().map_err(|e| e.to_string()));
        (first, second)
    });
    assert_eq!(first, Ok(Ok(7)), "the run with the panicking drop");
    assert_eq!(second, Ok(Ok(8)), "the next run on the thread");
}

/// "A dead greenlet's value whose Drop calls yield_now, dropped when the hub
/// reaps the greenlet, does not kill the hub: the run goes on and ends
/// normally, and the next run on the thread works."
#[test]
fn a_yielding_drop_of_a_dead_greenlets_value_does_not_kill_the_hub() {
    struct YieldOnDrop;
    impl Drop for YieldOnDrop {
        fn drop(&mut self) {
            yield_now();
        }
    }
    let (first, second) = within(LIMIT, || {
        let first = run_catching(|| {
            drop(spawn(|| YieldOnDrop));
            sleep(20 * MS);
            sleep(5 * MS);
            spawn(|| 7).get().map_err(|e| e.to_string())
        });
        let second = run_catching(|| spawn(|| 8).get().map_err(|e| e.to_string()));
        (first, second)
    });
    assert_eq!(first, Ok(Ok(7)), "the run with the yielding drop");
    assert_eq!(second, Ok(Ok(8)), "the next run on the thread");
}

/// "The captures of a link closure that never fires (link_value on a
/// greenlet that failed) are dropped without killing the hub, even when
/// their Drop panics."
#[test]
fn a_panicking_drop_of_an_unfired_link_closure_does_not_kill_the_hub() {
    let (first, second) = within(LIMIT, || {
        let first = run_catching(|| {
            let g: Greenlet<i32> = spawn(|| panic!("g fails"));
            let guard = PanicOnDrop;
            g.link_value(move |_| {
                let _keep = &guard;
            });
            sleep(20 * MS); // g fails; its link_value is dropped unfired.
            sleep(5 * MS);
            spawn(|| 7).get().map_err(|e| e.to_string())
        });
        let second = run_catching(|| spawn(|| 8).get().map_err(|e| e.to_string()));
        (first, second)
    });
    assert_eq!(first, Ok(Ok(7)), "the run with the panicking closure drop");
    assert_eq!(second, Ok(Ok(8)), "the next run on the thread");
}

/// The largest `vm.max_map_count` a test fills its way up to (a few seconds
/// at most for a million mappings, so the common 65 530 and 1 048 576 never
/// skip); above it the test says it skipped and why.
const MOST_MAPPINGS_TO_FILL: usize = 1 << 21;

/// Mappings of this process (lines of `/proc/self/maps`), read through a
/// buffer on the stack: near the limit, a heap buffer may need a mapping.
fn mappings_in_use() -> usize {
    let mut maps = std::fs::File::open("/proc/self/maps").expect("open /proc/self/maps");
    let mut buf = [0u8; 4096];
    let mut lines = 0;
    loop {
        match maps.read(&mut buf).expect("read /proc/self/maps") {
            0 => return lines,
            n => lines += buf[..n].iter().filter(|&&b| b == b'\n').count(),
        }
    }
}

/// Takes this process's mappings up to `vm.max_map_count` but for a few, so
/// that a test meets the limit within a few operations however large it is
/// (up to [`MOST_MAPPINGS_TO_FILL`]); released on drop.
///
/// One reservation, every other page of which is made readable: each page
/// then differs from its neighbours and is a mapping of its own. The pages
/// are split until the kernel refuses (the limit, whatever else counts
/// toward it), then `headroom` mappings are given back, so that small
/// unrelated mmaps still succeed while a batch of guarded stacks does not.
struct MapFill {
    base: *mut libc::c_void,
    len: usize,
    /// Mappings the fill added.
    filled: usize,
}

impl MapFill {
    fn leaving(limit: usize, headroom: usize) -> MapFill {
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap();
        let pages = 2 * limit.saturating_sub(mappings_in_use()) + 16;
        let len = pages * page;
        // SAFETY: an anonymous private reservation at an address of the
        // kernel's choosing aliases no existing memory.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED, "reserve {len} bytes");
        let protect = |i: usize, prot: libc::c_int| {
            // SAFETY: page `i` lies inside the reservation, which nothing
            // else refers to.
            unsafe { libc::mprotect(base.cast::<u8>().add(i * page).cast(), page, prot) == 0 }
        };
        let mut split = 0;
        while 2 * split + 1 < pages && protect(2 * split + 1, libc::PROT_READ) {
            split += 1;
        }
        assert!(
            2 * split + 1 < pages,
            "{split} pages split off without reaching vm.max_map_count ({limit})"
        );
        // Merging a page back into its neighbours frees two mappings.
        for k in 0..headroom.div_ceil(2).min(split) {
            assert!(protect(2 * (split - 1 - k) + 1, libc::PROT_NONE));
        }
        // The limit is not counted again: `/proc/self/maps` is 70 bytes a
        // mapping, seconds to read at a million. The operation under test
        // reports the count when it fails.
        MapFill {
            base,
            len,
            filled: 2 * (split - headroom.div_ceil(2).min(split)),
        }
    }
}

impl Drop for MapFill {
    fn drop(&mut self) {
        // SAFETY: the whole reservation is ours and nothing points into it.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

// ===== section 3: destructors in the right greenlet, atomic kills =====

/// "A dead greenlet's value is not dropped inside an unrelated greenlet
/// that starts next: if that drop blocks and the new greenlet is killed
/// meanwhile, the kill returns and the greenlet is recorded dead (not
/// Running forever, with kill raising LoopExit)."
#[test]
fn a_blocking_drop_of_a_dead_greenlets_value_does_not_hijack_the_next_greenlet() {
    struct SleepOnDrop;
    impl Drop for SleepOnDrop {
        fn drop(&mut self) {
            sleep(200 * MS);
        }
    }
    let (killed, dead, successful) = within(LIMIT, || {
        run(|| {
            // It dies and switches straight into `v`'s start.
            drop(spawn(|| SleepOnDrop));
            let v = spawn(|| sleep(FOREVER));
            yield_now();
            let killed = catch(|| v.kill()).map_err(|p| panic_message(&*p));
            (killed, v.dead(), v.successful())
        })
    });
    assert_eq!(killed, Ok(()), "killing v");
    assert!(dead, "v is recorded dead");
    assert!(successful, "v died of GreenletExit");
}

/// "A dead greenlet's value whose Drop panics is never blamed on an
/// innocent greenlet that happens to run next: that greenlet returns its
/// value."
#[test]
fn a_panicking_drop_of_a_dead_greenlets_value_is_not_blamed_on_another_greenlet() {
    let outcome = within(LIMIT, || {
        let seen = Rc::new(RefCell::new(String::new()));
        let s = Rc::clone(&seen);
        let _ = run_catching(move || {
            let v = spawn(|| {
                yield_now(); // The failing one dies and switches back here.
                1
            });
            drop(spawn(|| PanicOnDrop));
            *s.borrow_mut() = describe_get(catch(|| v.get()));
        });
        let outcome = seen.borrow().clone();
        outcome
    });
    assert_eq!(outcome, "Ok(1)", "the innocent greenlet's result");
}

/// What happened after killing a never-run greenlet whose closure's Drop
/// panics: the kill, its death, a later `yield_now`, a later spawn.
fn kill_unstarted_with_panicking_closure(start: bool) -> (Result<(), String>, bool, String) {
    within(LIMIT, move || {
        let seen = Rc::new(RefCell::new(None));
        let s = Rc::clone(&seen);
        let _ = run_catching(move || {
            let guard = PanicOnDrop;
            let g: Greenlet<()> = Greenlet::new(move || {
                let _keep = &guard;
            });
            if start {
                g.start();
            }
            let killed = catch(|| g.kill()).map_err(|p| panic_message(&*p));
            let dead = g.dead();
            let after = match catch(yield_now) {
                Err(p) => format!("yield_now: panic: {}", panic_message(&*p)),
                Ok(()) => format!("spawn: {}", describe_get(catch(|| spawn(|| 3).get()))),
            };
            *s.borrow_mut() = Some((killed, dead, after));
        });
        let seen = seen.borrow_mut().take();
        seen.expect("the scenario ran to its end")
    })
}

/// "Killing a scheduled, never-started greenlet whose closure's Drop panics
/// records its death first, then drops the closure, and contains the panic:
/// kill returns, the greenlet is dead, and yield_now and spawn work after."
#[test]
fn killing_a_scheduled_greenlet_whose_closure_panics_on_drop_completes_the_kill() {
    assert_eq!(
        kill_unstarted_with_panicking_closure(true),
        (Ok(()), true, "spawn: Ok(3)".to_string()),
        "(kill returned, the greenlet is dead, the hub works after)"
    );
}

/// As above, for a greenlet that was made but never started.
#[test]
fn killing_a_new_greenlet_whose_closure_panics_on_drop_completes_the_kill() {
    assert_eq!(
        kill_unstarted_with_panicking_closure(false),
        (Ok(()), true, "spawn: Ok(3)".to_string()),
        "(kill returned, the greenlet is dead, the hub works after)"
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
        "self_kill_while_unwinding" => {
            run(|| {
                let me: Rc<RefCell<Option<Greenlet<()>>>> = Rc::new(RefCell::new(None));
                let m = Rc::clone(&me);
                let g = spawn(move || {
                    let _guard = OnDrop(move || {
                        let myself = m.borrow().clone().expect("the handle was stored");
                        myself.kill();
                        println!("AFTER_SELF_KILL true");
                    });
                    sleep(FOREVER);
                });
                *me.borrow_mut() = Some(g.clone());
                yield_now();
                g.kill();
                println!("DEAD {}", g.dead());
                println!("SUCCESSFUL {}", g.successful());
                me.borrow_mut().take();
            });
            println!("CHILD_DONE true");
        }
        "link_without_a_stack" => {
            let limit = green_ctx::read_max_map_count().expect("vm.max_map_count is readable");
            let counter = DropCounter::new();
            let tokens = Rc::new(Cell::new(0usize));
            let c = counter.clone();
            let t = Rc::clone(&tokens);
            let ran = run(move || {
                // Its stack comes from another pool than the default one,
                // so its death gives no stack back to the link.
                let target = Builder::new()
                    .name("mapcount-target")
                    .stack_size(512 * 1024)
                    .spawn(|| sleep(100 * MS))
                    .expect("spawn the target");
                let link_ran = Rc::new(Cell::new(false));
                let lr = Rc::clone(&link_ran);
                target.link(move |_| lr.set(true));
                yield_now(); // It parks on its timer.
                let fill = MapFill::leaving(limit, 6);
                println!("FILLED {} mappings, about 6 left of {limit}", fill.filled);
                // Take every stack the default pool still holds.
                let mut fillers = Vec::with_capacity(64);
                for _ in 0..64 {
                    let token = c.token();
                    t.set(t.get() + 1);
                    match Builder::new().spawn(move || {
                        let _t = token;
                        sleep(FOREVER);
                    }) {
                        Ok(g) => fillers.push(g),
                        Err(_) => break,
                    }
                }
                yield_now(); // The fillers park.
                sleep(300 * MS); // The target dies; its link finds no stack.
                drop(fill);
                println!("FILLERS {}", fillers.len());
                println!("TARGET_DEAD {}", target.dead());
                let after = describe_get(catch(|| spawn(|| 5).get()));
                println!("AFTER {after}");
                link_ran.get()
            });
            println!("LINK_RAN {ran}");
            println!("TOKENS {} DROPS {}", tokens.get(), counter.drops());
            println!("CHILD_DONE true");
        }
        other => panic!("unknown child mode {other}"),
    }
}

/// "A link whose greenlet cannot get a stack (the process is at
/// vm.max_map_count) is reported as that greenlet's failure, not the hub's:
/// the hub goes on, and teardown still unwinds every live greenlet."
#[test]
fn a_link_that_cannot_get_a_stack_is_reported_and_the_hub_goes_on() {
    let limit = green_ctx::read_max_map_count().expect("vm.max_map_count is readable");
    if limit > MOST_MAPPINGS_TO_FILL {
        println!(
            "skipped: vm.max_map_count is {limit}, too large to fill (the test fills \
             up to {MOST_MAPPINGS_TO_FILL} mappings)"
        );
        return;
    }
    let out = run_child(CHILD_ENV, "link_without_a_stack", Duration::from_secs(30));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("CHILD_DONE true"),
        "child died: {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    assert_eq!(stdout_value(&out, "TARGET_DEAD"), "true");
    assert_eq!(stdout_value(&out, "AFTER"), "Ok(5)", "the hub goes on");
    let tokens = stdout_value(&out, "TOKENS");
    let (created, dropped) = tokens.split_once(" DROPS ").unwrap();
    assert_eq!(created, dropped, "teardown unwound every live greenlet");
    assert!(
        stderr.contains("mapcount-target"),
        "the failure names the greenlet whose link failed: {stderr}"
    );
    assert!(
        stderr.contains("vm.max_map_count"),
        "the link's stack failed at the mapping limit ({}): {stderr}",
        stdout_value(&out, "FILLED")
    );
}

/// "A greenlet killing itself from a destructor while it unwinds does not
/// abort the process (no double panic, no abort): the kill is a no-op, and
/// the greenlet dies of its first kill."
#[test]
fn a_greenlet_killing_itself_while_unwinding_does_not_abort() {
    let out = run_child(CHILD_ENV, "self_kill_while_unwinding", LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("CHILD_DONE true"),
        "child died: {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    assert_eq!(stdout_value(&out, "AFTER_SELF_KILL"), "true");
    assert_eq!(stdout_value(&out, "DEAD"), "true");
    assert_eq!(stdout_value(&out, "SUCCESSFUL"), "true");
}

/// A killer dropping the unrun entry of the greenlet it kills runs user code
/// on the target's behalf; if that destructor blocks and the killer is
/// itself killed meanwhile, the killer's own kill goes on (the killer dies,
/// successfully) instead of being reported as the destructor's failure, and
/// the target is dead.
#[test]
fn a_killers_own_kill_passes_through_the_destructor_it_runs_for_its_target() {
    let (killer_exit, target_dead, drops) = within(LIMIT, || {
        run(|| {
            let counter = DropCounter::new();
            let token = counter.token();
            let target: Greenlet<()> = Greenlet::new(move || drop(token));
            let guard_target = target.clone();
            let blocker = OnDrop(move || sleep(FOREVER));
            // The target's closure now owns a destructor that blocks.
            let target2: Greenlet<()> = Greenlet::new(move || drop(blocker));
            let t2 = target2.clone();
            let killer = spawn(move || {
                guard_target.kill();
                t2.kill(); // drops `blocker`, which sleeps
            });
            yield_now();
            yield_now();
            killer.kill();
            let exit = killer.exception().map(|e| e.is_exit());
            (exit, target.dead() && target2.dead(), counter.drops())
        })
    });
    assert_eq!(killer_exit, Some(true), "the killer died of its own kill");
    assert!(target_dead, "both targets are dead");
    assert_eq!(drops, 1, "the first target's entry was dropped once");
}
