//! Hostile review of issue 10 ("the crates as a dependent meets them"),
//! through the public API only: failure reporters, spawn callbacks, spawn-tree
//! locals, linked spawns, `take`, `joinall_timeout`, `killall`, `run_with`,
//! double panics and `LoopExit` locations.
//!
//! Every test runs its scenario in a child process (this binary re-run with
//! `REVIEW10_CHILD` set, `--exact NAME`): the failure reporter is
//! process-wide, some scenarios abort, and a child that hangs is killed after
//! a deadline, so every test is bounded in time.
//!
//! Nine of these failed on the reviewed commit (9d0e14a); each doc comment
//! says how. They pass since the fixes that followed.

use std::cell::{Cell, RefCell};
use std::io::Read;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use green_core::{BackendChoice, BackendKind, Builder, ErrorKind, LinkedExited, RunOptions};

const CHILD_ENV: &str = "REVIEW10_CHILD";

fn in_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// What a child run of one test did.
#[derive(Debug)]
struct Outcome {
    /// `None`: killed after the deadline.
    code: Option<i32>,
    signalled: bool,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs this binary's test `name` in a child process, killed after `limit`.
fn child(name: &str, limit: Duration) -> Outcome {
    let mut proc = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            name,
            "--nocapture",
            "--test-threads=1",
            "--include-ignored",
        ])
        .env(CHILD_ENV, "1")
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = proc.stdout.take().unwrap();
    let mut err = proc.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = proc.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = proc.kill();
            let _ = proc.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    use std::os::unix::process::ExitStatusExt;
    Outcome {
        code: status.and_then(|s| s.code()),
        signalled: status.is_some_and(|s| s.signal().is_some()),
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

const LIMIT: Duration = Duration::from_secs(20);

/// Blocks the running greenlet until a payload is raised in it; returns it.
fn blocked_until_raised() -> Box<dyn std::any::Any + Send> {
    std::panic::catch_unwind(|| green_core::sleep(Duration::from_secs(5)))
        .expect_err("something was raised")
}

// ===== failure reporters =====

/// A reporter that panics: the hub goes on, the failure stays visible through
/// `get`, the process exits normally, and the note names the failure.
#[test]
fn a_reporter_panicking_for_a_rawlink_failure_leaves_the_hub_running() {
    if in_child() {
        green_core::set_failure_reporter(|_| panic!("reporter broke"));
        green_core::run(|| {
            let g = green_core::spawn(|| -> u8 { panic!("worker broke") });
            g.rawlink(|_| panic!("rawlink broke"));
            assert_eq!(g.get().unwrap_err().kind(), ErrorKind::Panicked);
            green_core::sleep(Duration::from_millis(2));
            let after = green_core::spawn(|| 5);
            assert_eq!(after.get().unwrap(), 5);
        });
        println!("CHILD-DONE");
        return;
    }
    let out = child(
        "a_reporter_panicking_for_a_rawlink_failure_leaves_the_hub_running",
        LIMIT,
    );
    assert!(out.ok() && out.stdout.contains("CHILD-DONE"), "{out:?}");
    assert!(out.stderr.contains("worker broke"), "{out:?}");
    assert!(out.stderr.contains("rawlink broke"), "{out:?}");
}

/// A reporter that blocks (`sleep`), against the rule that it must not:
/// neither a hang nor an abort; the failure is still seen by `get`.
#[test]
fn a_reporter_that_blocks_does_not_hang_or_abort() {
    if in_child() {
        green_core::set_failure_reporter(|f| {
            green_core::sleep(Duration::from_millis(1));
            eprintln!("REPORTED: {}", f.message());
        });
        green_core::run(|| {
            let g = green_core::spawn(|| -> u8 { panic!("blocked reporter") });
            assert!(g.get().is_err());
            let r = green_core::spawn(|| 1);
            r.rawlink(|_| panic!("rawlink under a blocking reporter"));
            r.join();
            green_core::sleep(Duration::from_millis(5));
        });
        println!("CHILD-DONE");
        return;
    }
    let out = child("a_reporter_that_blocks_does_not_hang_or_abort", LIMIT);
    assert!(out.ok() && out.stdout.contains("CHILD-DONE"), "{out:?}");
}

/// A reporter that spawns a greenlet (to ship the report, say) and replaces
/// itself: both work, no deadlock on the reporter's lock.
#[test]
fn a_reporter_that_spawns_and_replaces_itself() {
    if in_child() {
        static SHIPPED: AtomicUsize = AtomicUsize::new(0);
        green_core::set_failure_reporter(|f| {
            let message = f.message().to_owned();
            green_core::spawn(move || {
                assert!(!message.is_empty());
                SHIPPED.fetch_add(1, Ordering::SeqCst);
            });
            green_core::set_failure_reporter(|_| {
                SHIPPED.fetch_add(100, Ordering::SeqCst);
            });
        });
        green_core::run(|| {
            let a = green_core::spawn(|| -> u8 { panic!("first") });
            assert!(a.get().is_err());
            green_core::sleep(Duration::from_millis(2));
            let b = green_core::spawn(|| -> u8 { panic!("second") });
            assert!(b.get().is_err());
            green_core::sleep(Duration::from_millis(2));
        });
        assert_eq!(SHIPPED.load(Ordering::SeqCst), 101);
        println!("CHILD-DONE");
        return;
    }
    let out = child("a_reporter_that_spawns_and_replaces_itself", LIMIT);
    assert!(out.ok() && out.stdout.contains("CHILD-DONE"), "{out:?}");
}

/// Reporters set, reset and silenced from several threads while each thread
/// fails greenlets: every failure reaches exactly one reporter, once.
#[test]
fn reporters_set_from_several_threads_see_each_failure_once() {
    if in_child() {
        static SEEN: AtomicUsize = AtomicUsize::new(0);
        const THREADS: usize = 4;
        const EACH: usize = 200;
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                std::thread::spawn(move || {
                    green_core::run(|| {
                        for i in 0..EACH {
                            if i % 7 == 0 {
                                green_core::set_failure_reporter(move |_| {
                                    SEEN.fetch_add(1, Ordering::SeqCst);
                                    let _ = t;
                                });
                            }
                            let g = green_core::spawn(|| -> u8 { panic!("thread failure") });
                            assert!(g.get().is_err());
                        }
                    });
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(SEEN.load(Ordering::SeqCst), THREADS * EACH);
        println!("CHILD-DONE");
        return;
    }
    let out = child(
        "reporters_set_from_several_threads_see_each_failure_once",
        LIMIT,
    );
    assert!(out.ok() && out.stdout.contains("CHILD-DONE"), "{out:?}");
}

// ===== spawn callbacks =====

/// A spawn callback that panics: the panic comes out of `spawn` in the
/// spawner; the hub keeps working once the callback is removed.
#[test]
fn a_panicking_spawn_callback_panics_out_of_spawn_and_the_hub_goes_on() {
    if in_child() {
        green_core::run(|| {
            let id = green_core::add_spawn_callback(|_| panic!("callback broke"));
            let ran = Rc::new(Cell::new(false));
            let r = ran.clone();
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                green_core::spawn(move || r.set(true))
            }));
            assert_eq!(
                green_core::panic_message(&*caught.unwrap_err()),
                "callback broke"
            );
            assert!(green_core::remove_spawn_callback(id));
            green_core::sleep(Duration::from_millis(1));
            let g = green_core::spawn(|| 3);
            assert_eq!(g.get().unwrap(), 3);
            // Inside a greenlet: the callback's panic fails the spawner,
            // reported once.
            let spawner = green_core::spawn(|| {
                let id = green_core::add_spawn_callback(|_| panic!("callback broke in a greenlet"));
                struct Remove(green_core::SpawnCallbackId);
                impl Drop for Remove {
                    fn drop(&mut self) {
                        green_core::remove_spawn_callback(self.0);
                    }
                }
                let _remove = Remove(id);
                green_core::spawn(|| ()).join();
            });
            let error = spawner.get().unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Panicked);
            assert_eq!(green_core::spawn(|| 8).get().unwrap(), 8);
        });
        println!("CHILD-DONE");
        return;
    }
    let out = child(
        "a_panicking_spawn_callback_panics_out_of_spawn_and_the_hub_goes_on",
        LIMIT,
    );
    assert!(out.ok() && out.stdout.contains("CHILD-DONE"), "{out:?}");
    assert_eq!(
        out.stderr.matches("callback broke in a greenlet").count(),
        1,
        "{out:?}"
    );
}

/// A spawn callback that kills the greenlet it is given (`kill_nowait`, and
/// a blocking `kill`): the greenlet never runs its function and is dead.
#[test]
fn a_spawn_callback_may_kill_the_greenlet_it_is_given() {
    if in_child() {
        green_core::run(|| {
            let ran = Rc::new(Cell::new(0));
            let id = green_core::add_spawn_callback(|g| g.kill_nowait());
            let r = ran.clone();
            let g = green_core::spawn(move || r.set(r.get() + 1));
            g.join();
            assert!(g.dead());
            assert_eq!(ran.get(), 0, "the killed greenlet ran");
            green_core::remove_spawn_callback(id);

            let id = green_core::add_spawn_callback(|g| g.kill());
            let r = ran.clone();
            let g = green_core::spawn(move || r.set(r.get() + 1));
            assert!(g.dead(), "a blocking kill in the callback has returned");
            assert_eq!(ran.get(), 0);
            green_core::remove_spawn_callback(id);
            // The same from inside a greenlet.
            let id = green_core::add_spawn_callback(|g| g.kill());
            let r = ran.clone();
            let outer = green_core::spawn(move || {
                let inner = green_core::spawn(move || r.set(r.get() + 1));
                inner.dead()
            });
            green_core::remove_spawn_callback(id);
            // `outer` itself was killed by the callback before it ran.
            outer.join();
            assert!(outer.dead());
            assert_eq!(ran.get(), 0);
        });
        println!("CHILD-DONE");
        return;
    }
    let out = child("a_spawn_callback_may_kill_the_greenlet_it_is_given", LIMIT);
    assert!(out.ok() && out.stdout.contains("CHILD-DONE"), "{out:?}");
}

// ===== spawn-tree locals =====

struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("{}", self.0);
        }
    }
}

/// A tree-local value whose `Drop` panics, dropped when the tree's last
/// greenlet ends (its handle discarded at spawn): the panic is reported
/// once, as a failure, and the hub goes on. On the reviewed commit the `Drop` ran and its
/// panic vanished: no report, no message on stderr.
#[test]
fn a_tree_local_whose_drop_panics_is_reported_not_fatal() {
    if in_child() {
        green_core::run(|| {
            green_core::spawn(|| {
                green_core::spawn_tree_locals().insert(PanicOnDrop("tree value drop"));
            });
            green_core::sleep(Duration::from_millis(2));
            let after = green_core::spawn(|| 2);
            assert_eq!(after.get().unwrap(), 2);
        });
        println!("CHILD-DONE");
        return;
    }
    let out = child(
        "a_tree_local_whose_drop_panics_is_reported_not_fatal",
        LIMIT,
    );
    assert!(out.ok() && out.stdout.contains("CHILD-DONE"), "{out:?}");
    assert_eq!(out.stderr.matches("tree value drop").count(), 1, "{out:?}");
}

/// `insert` replacing a value whose `Drop` panics: the panic comes out of
/// `insert`, and the tree is still usable (its cell not left borrowed).
#[test]
fn replacing_a_tree_local_whose_drop_panics_leaves_the_tree_usable() {
    if in_child() {
        green_core::run(|| {
            let g = green_core::spawn(|| {
                let tree = green_core::spawn_tree_locals();
                tree.insert(PanicOnDrop("replaced value drop"));
                let r = green_core::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    drop(tree.insert(PanicOnDrop("second")));
                }));
                assert!(r.is_err());
                tree.insert(7u32);
                let seven = tree.get::<u32>().map(|v| *v);
                std::mem::forget(tree.remove::<PanicOnDrop>());
                seven
            });
            assert_eq!(g.get().unwrap(), Some(7));
        });
        println!("CHILD-DONE");
        return;
    }
    let out = child(
        "replacing_a_tree_local_whose_drop_panics_leaves_the_tree_usable",
        LIMIT,
    );
    assert!(out.ok() && out.stdout.contains("CHILD-DONE"), "{out:?}");
}

/// Tree locals that hold greenlet handles and outlive the hub: a thread
/// whose greenlet stored its own handle (a cycle through the tree) and a
/// `SpawnTreeLocals` kept in a thread-local past `run`. The thread exits
/// cleanly.
#[test]
fn tree_locals_holding_greenlets_outlive_the_hub() {
    if in_child() {
        thread_local! {
            static KEPT: RefCell<Option<green_core::SpawnTreeLocals>> = const { RefCell::new(None) };
        }
        let t = std::thread::spawn(|| {
            green_core::run(|| {
                let g = green_core::spawn(|| {
                    let me = green_core::current().downcast::<()>().unwrap();
                    let tree = green_core::spawn_tree_locals();
                    tree.insert(me);
                    tree.insert(green_core::spawn(|| {
                        green_core::sleep(Duration::from_secs(30))
                    }));
                    KEPT.with(|k| *k.borrow_mut() = Some(tree));
                    green_core::sleep(Duration::from_secs(30));
                });
                green_core::sleep(Duration::from_millis(2));
                assert!(!g.dead());
            });
            // The hub is gone; the tree is not.
            let tree = KEPT.with(|k| k.borrow().clone()).unwrap();
            let g = tree.get::<green_core::Greenlet<()>>().unwrap();
            assert!(g.dead());
        });
        t.join().unwrap();
        println!("CHILD-DONE");
        return;
    }
    let out = child("tree_locals_holding_greenlets_outlive_the_hub", LIMIT);
    assert!(out.ok() && out.stdout.contains("CHILD-DONE"), "{out:?}");
}

/// A deep chain of live greenlets, each spawned by the one before, none of
/// which asked for its tree: the deepest one's `spawn_tree_locals()` walks
/// the chain up.
#[test]
fn tree_locals_of_a_deep_chain_do_not_overflow_the_stack() {
    if in_child() {
        const DEPTH: u32 = 10_000;
        fn level(n: u32) -> u32 {
            if n == 0 {
                green_core::spawn_tree_locals().insert(1u8);
                return 0;
            }
            // Small stacks for the chain; the walk happens on the deepest
            // greenlet's, of the default size.
            let b = if n == 1 {
                Builder::new()
            } else {
                Builder::new().stack_size(16 * 1024).unguarded(true)
            };
            b.spawn(move || level(n - 1)).unwrap().get().unwrap() + 1
        }
        let top = green_core::spawn(|| level(DEPTH));
        assert_eq!(top.get().unwrap(), DEPTH);
        println!("CHILD-DONE");
        return;
    }
    let out = child(
        "tree_locals_of_a_deep_chain_do_not_overflow_the_stack",
        Duration::from_secs(60),
    );
    assert!(out.ok() && out.stdout.contains("CHILD-DONE"), "{out:?}");
}

// ===== linked spawns =====

/// A receiver killed (dead) before its linked greenlet ends: nothing is
/// raised anywhere, nothing reported beyond the worker's own failure.
#[test]
fn spawn_link_to_a_dead_receiver_is_left_alone() {
    if in_child() {
        green_core::run(|| {
            let worker = Rc::new(RefCell::new(None));
            let w = worker.clone();
            let sup = green_core::spawn(move || {
                *w.borrow_mut() = Some(green_core::spawn_link(|| {
                    green_core::sleep(Duration::from_millis(5));
                    panic!("worker after its supervisor");
                }));
                green_core::sleep(Duration::from_secs(10));
            });
            green_core::sleep(Duration::from_millis(1));
            sup.kill();
            assert!(sup.dead());
            let worker: green_core::Greenlet<()> = worker.borrow_mut().take().unwrap();
            assert!(worker.get().is_err());
            green_core::sleep(Duration::from_millis(2));
        });
        println!("CHILD-DONE");
        return;
    }
    let out = child("spawn_link_to_a_dead_receiver_is_left_alone", LIMIT);
    assert!(out.ok() && out.stdout.contains("CHILD-DONE"), "{out:?}");
    assert!(!out.stderr.contains("linked greenlet"), "{out:?}");
}

/// The main greenlet outside any `run`, linked to a worker that fails and
/// never caught: the thread's panic names the `LinkedExited` (its message),
/// as an uncaught `LoopExit` does, not `Box<dyn Any>` or nothing.
#[test]
fn an_uncaught_linked_exit_in_main_prints_its_message() {
    if in_child() {
        green_core::silence_failures();
        let _w = green_core::spawn_link(|| -> u8 { panic!("database lost") });
        green_core::sleep(Duration::from_secs(5));
        unreachable!();
    }
    let out = child("an_uncaught_linked_exit_in_main_prints_its_message", LIMIT);
    assert!(!out.ok() && out.code.is_some(), "{out:?}");
    assert!(
        out.stderr.contains("linked greenlet") && out.stderr.contains("database lost"),
        "{out:?}"
    );
}

/// The main greenlet outside `run` catches its `LinkedExited`; the hub goes
/// on, and a later `run` works.
#[test]
fn main_outside_run_receives_and_survives_a_linked_exit() {
    if in_child() {
        green_core::silence_failures();
        let w = green_core::spawn_link(|| 1);
        let p = blocked_until_raised();
        let e = p.downcast::<LinkedExited>().unwrap();
        assert!(matches!(*e, LinkedExited::Completed { .. }), "{e}");
        assert_eq!(w.get().unwrap(), 1);
        green_core::sleep(Duration::from_millis(1));
        let r = green_core::run(|| green_core::spawn(|| 2).get().unwrap());
        assert_eq!(r, 2);
        println!("CHILD-DONE");
        return;
    }
    let out = child(
        "main_outside_run_receives_and_survives_a_linked_exit",
        LIMIT,
    );
    assert!(out.ok() && out.stdout.contains("CHILD-DONE"), "{out:?}");
}

/// A `run` whose closure returns before its linked worker has even started:
/// the teardown kills the worker, and the `LinkedExited` that causes must
/// not leak out of `run` into the main greenlet's next blocking call.
#[test]
fn a_linked_exit_does_not_outlive_its_run() {
    if in_child() {
        green_core::silence_failures();
        let r = std::panic::catch_unwind(|| {
            green_core::run(|| {
                let _w = green_core::spawn_link(|| green_core::sleep(Duration::from_secs(5)));
            })
        });
        println!(
            "run returned: {:?}",
            r.as_ref().map_err(|p| green_core::panic_message(&**p))
        );
        let later = std::panic::catch_unwind(|| green_core::sleep(Duration::from_millis(2)));
        assert!(
            later.is_ok(),
            "stale payload: {}",
            green_core::panic_message(&*later.unwrap_err())
        );
        println!("CHILD-DONE");
        return;
    }
    let out = child("a_linked_exit_does_not_outlive_its_run", LIMIT);
    assert!(out.ok() && out.stdout.contains("CHILD-DONE"), "{out:?}");
}

/// `LinkedExited` arriving while the receiver is inside `Timeout::run`: it
/// passes through the scope (not turned into `Err(Timeout)`), and the
/// scope's timer does not fire later into the receiver.
#[test]
fn a_linked_exit_passes_through_timeout_run_and_cancels_its_timer() {
    if in_child() {
        green_core::silence_failures();
        green_core::run(|| {
            let sup = green_core::spawn(|| {
                let _w = green_core::spawn_link(|| green_core::sleep(Duration::from_millis(2)));
                let r = std::panic::catch_unwind(|| {
                    green_core::Timeout::run(Duration::from_millis(20), || {
                        green_core::sleep(Duration::from_secs(5))
                    })
                });
                let p = r.expect_err("the linked exit is raised through the scope");
                assert!(p.is::<LinkedExited>(), "{}", green_core::panic_message(&*p));
                // Past the scope's deadline: nothing more is raised.
                let t0 = Instant::now();
                green_core::sleep(Duration::from_millis(50));
                t0.elapsed()
            });
            let slept = sup.get().unwrap();
            assert!(slept >= Duration::from_millis(50), "{slept:?}");
        });
        println!("CHILD-DONE");
        return;
    }
    let out = child(
        "a_linked_exit_passes_through_timeout_run_and_cancels_its_timer",
        LIMIT,
    );
    assert!(out.ok() && out.stdout.contains("CHILD-DONE"), "{out:?}");
}

/// `LinkedExited` arriving while the receiver is in `join`: raised out of
/// `join`; the join's own wait is withdrawn, so the joined greenlet's later
/// end does not cut the receiver's next sleep short.
#[test]
fn a_linked_exit_raised_in_join_withdraws_the_join() {
    if in_child() {
        green_core::silence_failures();
        green_core::run(|| {
            let sup = green_core::spawn(|| {
                let slow = green_core::spawn(|| green_core::sleep(Duration::from_millis(10)));
                let _w = green_core::spawn_link(|| -> u8 { panic!("linked worker") });
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| slow.join()));
                let p = r.expect_err("raised out of join");
                let e = p.downcast::<LinkedExited>().unwrap();
                assert!(matches!(*e, LinkedExited::Failed { .. }));
                assert!(!slow.dead());
                let t0 = Instant::now();
                green_core::sleep(Duration::from_millis(40));
                (t0.elapsed(), slow.dead())
            });
            let (slept, slow_dead) = sup.get().unwrap();
            assert!(slow_dead);
            assert!(slept >= Duration::from_millis(40), "{slept:?}");
        });
        println!("CHILD-DONE");
        return;
    }
    let out = child("a_linked_exit_raised_in_join_withdraws_the_join", LIMIT);
    assert!(out.ok() && out.stdout.contains("CHILD-DONE"), "{out:?}");
}

/// `LinkedExited` inside `green_core::catch_unwind` nested in `Timeout::run`
/// in the main greenlet: it passes both.
#[test]
fn a_linked_exit_passes_green_catch_unwind_in_main() {
    if in_child() {
        green_core::silence_failures();
        green_core::run(|| {
            let _w = green_core::spawn_link(|| ());
            let r = std::panic::catch_unwind(|| {
                green_core::Timeout::run(Duration::from_secs(1), || {
                    green_core::catch_unwind(|| green_core::sleep(Duration::from_secs(5)))
                })
            });
            assert!(r.unwrap_err().is::<LinkedExited>());
            assert!(green_core::is_kill_or_timeout(&LinkedExited::Completed {
                greenlet: String::new()
            }));
        });
        println!("CHILD-DONE");
        return;
    }
    let out = child("a_linked_exit_passes_green_catch_unwind_in_main", LIMIT);
    assert!(out.ok() && out.stdout.contains("CHILD-DONE"), "{out:?}");
}

/// Two greenlets linked to each other (`link_to` both ways) and one linked
/// to itself: killing one ends both, nothing loops or hangs.
#[test]
fn link_to_cycles_end_both_without_looping() {
    if in_child() {
        green_core::silence_failures();
        green_core::run(|| {
            let a = green_core::spawn(|| green_core::sleep(Duration::from_secs(10)));
            let b = green_core::spawn(|| green_core::sleep(Duration::from_secs(10)));
            a.link_to(&b.as_ref());
            b.link_to(&a.as_ref());
            green_core::sleep(Duration::from_millis(1));
            a.kill();
            assert!(green_core::joinall_timeout(
                &[a.as_ref(), b.as_ref()],
                Duration::from_secs(2)
            ));
            assert_eq!(a.get().unwrap_err().kind(), ErrorKind::Exited);
            assert_eq!(b.get().unwrap_err().kind(), ErrorKind::Killed);

            let me = green_core::spawn(|| 3);
            me.link_to(&me.as_ref());
            assert_eq!(me.get().unwrap(), 3);
            green_core::sleep(Duration::from_millis(1));
        });
        println!("CHILD-DONE");
        return;
    }
    let out = child("link_to_cycles_end_both_without_looping", LIMIT);
    assert!(out.ok() && out.stdout.contains("CHILD-DONE"), "{out:?}");
}

/// `spawn_link` from a rawlink callback (inside the hub): panics as
/// documented, reported as the rawlink's failure, the hub goes on.
#[test]
fn spawn_link_inside_the_hub_panics_and_is_reported() {
    if in_child() {
        green_core::run(|| {
            let g = green_core::spawn(|| 1);
            g.rawlink(|_| {
                let _ = green_core::spawn_link(|| ());
            });
            g.join();
            green_core::sleep(Duration::from_millis(2));
            assert_eq!(green_core::spawn(|| 4).get().unwrap(), 4);
        });
        println!("CHILD-DONE");
        return;
    }
    let out = child("spawn_link_inside_the_hub_panics_and_is_reported", LIMIT);
    assert!(out.ok() && out.stdout.contains("CHILD-DONE"), "{out:?}");
    assert!(out.stderr.contains("a rawlink of"), "{out:?}");
}

// ===== take, joinall_timeout, killall =====

/// `take` and `get` waiting on the same greenlet: the getter registered
/// first gets a clone, the taker the value; a second taker is told why.
#[test]
fn take_racing_get_and_take() {
    if in_child() {
        green_core::run(|| {
            let g = green_core::spawn(|| {
                green_core::sleep(Duration::from_millis(2));
                String::from("v")
            });
            let g1 = g.clone();
            let getter = green_core::spawn(move || g1.get());
            let g2 = g.clone();
            let taker = green_core::spawn(move || g2.take());
            let g3 = g.clone();
            let taker2 = green_core::spawn(move || g3.take());
            assert_eq!(getter.take().unwrap().unwrap(), "v");
            assert_eq!(taker.take().unwrap().unwrap(), "v");
            let late = taker2.take().unwrap().unwrap_err();
            assert_eq!(late.kind(), ErrorKind::NotReady);
            assert!(late.message().contains("taken"), "{late}");
            assert!(g.successful());
            let after = g.get().unwrap_err();
            assert!(after.message().contains("taken"), "{after}");
        });
        println!("CHILD-DONE");
        return;
    }
    let out = child("take_racing_get_and_take", LIMIT);
    assert!(out.ok() && out.stdout.contains("CHILD-DONE"), "{out:?}");
}

/// `joinall_timeout` with a zero timeout: empty list and dead greenlets are
/// done; a greenlet that is ready to run and finishes without blocking is
/// done too (a zero timeout fires after the ready greenlets have run); one
/// that sleeps is not.
#[test]
fn joinall_timeout_zero() {
    if in_child() {
        green_core::run(|| {
            let none: [green_core::GreenletRef; 0] = [];
            assert!(green_core::joinall_timeout(&none, Duration::ZERO));
            let quick = green_core::spawn(|| ());
            assert!(green_core::joinall_timeout(
                &[quick.as_ref()],
                Duration::ZERO
            ));
            assert!(quick.dead());
            assert!(green_core::joinall_timeout(
                &[quick.as_ref()],
                Duration::ZERO
            ));
            let slow = green_core::spawn(|| green_core::sleep(Duration::from_millis(50)));
            assert!(!green_core::joinall_timeout(
                &[slow.as_ref()],
                Duration::ZERO
            ));
            assert!(!slow.dead());
            slow.kill();
        });
        println!("CHILD-DONE");
        return;
    }
    let out = child("joinall_timeout_zero", LIMIT);
    assert!(out.ok() && out.stdout.contains("CHILD-DONE"), "{out:?}");
}

/// `killall` with the calling greenlet among its targets (through
/// `current()`): the others are killed too, whatever the caller's place in
/// the list, and the caller does not run on past `killall`.
#[test]
fn killall_with_the_calling_greenlet_among_its_targets() {
    if in_child() {
        green_core::run(|| {
            for caller_first in [true, false] {
                let before = green_core::spawn(|| green_core::sleep(Duration::from_secs(10)));
                let after = green_core::spawn(|| green_core::sleep(Duration::from_secs(10)));
                let ran_on = Rc::new(Cell::new(false));
                let r = ran_on.clone();
                let (b, a) = (before.as_ref(), after.as_ref());
                let killer = green_core::spawn(move || {
                    let targets = if caller_first {
                        vec![green_core::current(), b, a]
                    } else {
                        vec![b, green_core::current(), a]
                    };
                    green_core::killall(&targets);
                    r.set(true);
                });
                green_core::sleep(Duration::from_millis(1));
                assert!(
                    green_core::joinall_timeout(
                        &[before.as_ref(), after.as_ref(), killer.as_ref()],
                        Duration::from_secs(2)
                    ),
                    "caller_first={caller_first}"
                );
                assert!(!ran_on.get());
                assert_eq!(killer.get().unwrap_err().kind(), ErrorKind::Exited);
            }
        });
        println!("CHILD-DONE");
        return;
    }
    let out = child("killall_with_the_calling_greenlet_among_its_targets", LIMIT);
    assert!(out.ok() && out.stdout.contains("CHILD-DONE"), "{out:?}");
}

/// `killall` with the main greenlet among its targets is refused up front,
/// as `current().kill()` on it is ("cannot be killed"). On the reviewed
/// commit `killall` raised `GreenletExit` into the main greenlet; uncaught,
/// the thread ended with no message at all (`resume_unwind` runs no hook).
#[test]
fn killall_with_the_main_greenlet_among_its_targets() {
    if in_child() {
        green_core::run(|| {
            let other = green_core::spawn(|| green_core::sleep(Duration::from_secs(10)));
            green_core::sleep(Duration::from_millis(1));
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                green_core::killall(&[green_core::current(), other.as_ref()]);
            }));
            // Refused up front, with the reason, before anything is killed.
            let refused = r.expect_err("refused");
            let message = green_core::panic_message(&*refused);
            assert!(message.contains("cannot be killed"), "{message}");
            assert!(!other.dead(), "nothing was killed");
            other.kill();
        });
        println!("CHILD-DONE");
        return;
    }
    let out = child("killall_with_the_main_greenlet_among_its_targets", LIMIT);
    assert!(out.ok() && out.stdout.contains("CHILD-DONE"), "{out:?}");
}

// ===== run_with =====

/// `run_with` nested in `run_with` on the same backend: refused as nesting,
/// and the outer run is unharmed.
#[test]
fn nested_run_with_is_refused_and_the_outer_run_goes_on() {
    if in_child() {
        let epoll = RunOptions::new().backend(BackendChoice::Epoll);
        green_core::run_with(epoll, || {
            let g = green_core::spawn(|| {
                green_core::sleep(Duration::from_millis(5));
                9
            });
            let inner = std::panic::catch_unwind(|| green_core::run_with(epoll, || 1));
            let message = green_core::panic_message(&*inner.unwrap_err());
            assert!(message.contains("cannot be nested"), "{message}");
            assert_eq!(g.get().unwrap(), 9);
            assert_eq!(green_core::loop_backend(), BackendKind::Epoll);
        });
        println!("CHILD-DONE");
        return;
    }
    let out = child(
        "nested_run_with_is_refused_and_the_outer_run_goes_on",
        LIMIT,
    );
    assert!(out.ok() && out.stdout.contains("CHILD-DONE"), "{out:?}");
}

/// `run_with(Epoll)` nested in a default `run`: the message should say the
/// real problem (nesting), not ask to call `run_with` "after `shutdown()`",
/// which inside a run would kill the run's own greenlets.
#[test]
fn nested_run_with_on_another_backend_says_it_is_nested() {
    if in_child() {
        green_core::run(|| {
            green_core::sleep(Duration::from_millis(1));
            let epoll = RunOptions::new().backend(BackendChoice::Epoll);
            let inner = std::panic::catch_unwind(|| green_core::run_with(epoll, || 1));
            let message = green_core::panic_message(&*inner.unwrap_err());
            println!("MESSAGE: {message}");
            if green_core::loop_backend() != BackendKind::Epoll {
                assert!(message.contains("nested"), "{message}");
            }
        });
        println!("CHILD-DONE");
        return;
    }
    let out = child(
        "nested_run_with_on_another_backend_says_it_is_nested",
        LIMIT,
    );
    assert!(out.ok() && out.stdout.contains("CHILD-DONE"), "{out:?}");
}

/// `shutdown()` then `run_with(Epoll)`: the new hub runs on epoll, and back
/// again to the default after another shutdown.
#[test]
fn run_with_after_shutdown_chooses_again() {
    if in_child() {
        let g = green_core::spawn(|| green_core::sleep(Duration::from_secs(10)));
        green_core::yield_now();
        let first = green_core::loop_backend();
        green_core::shutdown();
        assert!(g.dead());
        let epoll = RunOptions::new().backend(BackendChoice::Epoll);
        let b = green_core::run_with(epoll, || {
            green_core::spawn(|| green_core::sleep(Duration::from_millis(1))).join();
            green_core::loop_backend()
        });
        assert_eq!(b, BackendKind::Epoll);
        // Shutdown from inside a greenlet: refused or harmless, never a hang.
        let r = green_core::run_with(epoll, || {
            let s = green_core::spawn(green_core::shutdown);
            s.join();
            s.dead()
        });
        assert!(r);
        println!("first={first:?} CHILD-DONE");
        return;
    }
    let out = child("run_with_after_shutdown_chooses_again", LIMIT);
    assert!(out.ok() && out.stdout.contains("CHILD-DONE"), "{out:?}");
}

// ===== panics during panics =====

/// A greenlet panics and a destructor panics during that unwind: the process
/// aborts (Rust's rule). Before it does, both messages must be on stderr:
/// green-core keeps the first panic quiet to report it when the greenlet
/// ends, which never happens.
#[test]
fn a_double_panic_in_a_greenlet_prints_both_messages_before_the_abort() {
    if in_child() {
        green_core::run(|| {
            let g = green_core::spawn(|| {
                struct Bad;
                impl Drop for Bad {
                    fn drop(&mut self) {
                        panic!("destructor panic DEF");
                    }
                }
                let _bad = Bad;
                panic!("first panic ABC");
            });
            g.join();
        });
        return;
    }
    let out = child(
        "a_double_panic_in_a_greenlet_prints_both_messages_before_the_abort",
        LIMIT,
    );
    assert!(!out.ok() && out.signalled, "{out:?}");
    assert!(out.stderr.contains("destructor panic DEF"), "{out:?}");
    assert!(out.stderr.contains("first panic ABC"), "{out:?}");
}

/// The same in the main greenlet is the standard hook's business: both
/// messages are printed (a guard for the hook's chaining).
#[test]
fn a_double_panic_in_main_prints_both_messages() {
    if in_child() {
        green_core::run(|| {
            green_core::sleep(Duration::from_millis(1));
            struct Bad;
            impl Drop for Bad {
                fn drop(&mut self) {
                    panic!("main destructor panic DEF");
                }
            }
            let _bad = Bad;
            panic!("main first panic ABC");
        });
        return;
    }
    let out = child("a_double_panic_in_main_prints_both_messages", LIMIT);
    assert!(!out.ok(), "{out:?}");
    assert!(out.stderr.contains("main destructor panic DEF"), "{out:?}");
    assert!(out.stderr.contains("main first panic ABC"), "{out:?}");
}

// ===== LoopExit locations =====

/// A `LoopExit` raised in the main greenlet while iterating `iwait` is
/// located at the user's `for` loop (as `wait` and `joinall` are), not in
/// green-core's `wait.rs`.
#[test]
fn loop_exit_through_iwait_is_located_at_the_users_loop() {
    if in_child() {
        let slot: Rc<RefCell<Option<green_core::GreenletRef>>> = Rc::default();
        let s = slot.clone();
        let a = green_core::spawn(move || {
            let b = s.borrow().clone().unwrap();
            b.join();
        });
        let ar = a.as_ref();
        let b = green_core::spawn(move || ar.join());
        *slot.borrow_mut() = Some(b.as_ref());
        let ws: [&dyn green_core::Waitable; 2] = [&a, &b];
        for _ in green_core::iwait(&ws, None) {}
        unreachable!();
    }
    let out = child(
        "loop_exit_through_iwait_is_located_at_the_users_loop",
        LIMIT,
    );
    assert!(out.stderr.contains("LoopExit"), "{out:?}");
    assert!(
        out.stderr.contains("panicked at tests/review_issue10.rs:"),
        "{}",
        out.stderr
    );
}

/// The same through `wait` and `joinall`: at the user's call.
#[test]
fn loop_exit_through_wait_and_joinall_is_located_at_the_users_call() {
    if in_child() {
        let slot: Rc<RefCell<Option<green_core::GreenletRef>>> = Rc::default();
        let s = slot.clone();
        let a = green_core::spawn(move || {
            let b = s.borrow().clone().unwrap();
            b.join();
        });
        let ar = a.as_ref();
        let b = green_core::spawn(move || ar.join());
        *slot.borrow_mut() = Some(b.as_ref());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            green_core::joinall(&[a.as_ref(), b.as_ref()]);
        }));
        assert!(r.unwrap_err().is::<green_core::LoopExit>());
        let ws: [&dyn green_core::Waitable; 2] = [&a, &b];
        let _ = green_core::wait(&ws, None, None);
        unreachable!();
    }
    let out = child(
        "loop_exit_through_wait_and_joinall_is_located_at_the_users_call",
        LIMIT,
    );
    assert!(!out.ok(), "{out:?}");
    assert_eq!(
        out.stderr
            .matches("panicked at tests/review_issue10.rs:")
            .count(),
        2,
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("wait.rs"), "{}", out.stderr);
}

/// A `LoopExit` printed by green-core's hook honours `RUST_BACKTRACE` as the
/// standard hook would (a backtrace, or the note telling how to get one).
#[test]
fn an_uncaught_loop_exit_honours_rust_backtrace() {
    if in_child() {
        let g = green_core::spawn(|| ());
        let gr = g.as_ref();
        let s = green_core::spawn(move || gr.join());
        drop(s);
        // The main greenlet joins a greenlet that joins itself through a
        // cycle: never finishes.
        let slot: Rc<RefCell<Option<green_core::GreenletRef>>> = Rc::default();
        let s = slot.clone();
        let a = green_core::spawn(move || {
            let b = s.borrow().clone().unwrap();
            b.join();
        });
        let ar = a.as_ref();
        let b = green_core::spawn(move || ar.join());
        *slot.borrow_mut() = Some(b.as_ref());
        a.join();
        unreachable!();
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "an_uncaught_loop_exit_honours_rust_backtrace",
            "--nocapture",
            "--test-threads=1",
            "--include-ignored",
        ])
        .env(CHILD_ENV, "1")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("LoopExit"), "{stderr}");
    assert!(stderr.contains("stack backtrace"), "{stderr}");
}

// ===== failure report contents =====

/// With `RUST_BACKTRACE=1`, the failure report's backtrace starts at the
/// user's frames, as the standard hook's short backtrace does, not with
/// green-core's panic-hook internals.
#[test]
fn a_failure_backtrace_starts_at_the_users_frame() {
    if in_child() {
        let f = Arc::new(std::sync::Mutex::new(None));
        let keep = f.clone();
        green_core::set_failure_reporter(move |failure| {
            *keep.lock().unwrap() = failure.backtrace().map(str::to_owned);
        });
        let g = green_core::spawn(|| -> u8 { panic!("with a backtrace") });
        assert!(g.get().is_err());
        let bt = f.lock().unwrap().clone().expect("a backtrace was captured");
        let first = bt.lines().next().unwrap_or_default().to_owned();
        println!("FIRST: {first}");
        assert!(!bt.contains("note_panic_in_current_greenlet"), "{bt}");
        println!("CHILD-DONE");
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_failure_backtrace_starts_at_the_users_frame",
            "--nocapture",
            "--test-threads=1",
            "--include-ignored",
        ])
        .env(CHILD_ENV, "1")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("CHILD-DONE"),
        "{out:?}"
    );
}

/// `Builder::spawn_later` and `spawn_link`: a linked greenlet cancelled
/// before it starts (`kill` of a `start_later` greenlet) still tells its
/// receiver, as `Killed`.
#[test]
fn a_linked_greenlet_killed_before_it_starts_tells_its_receiver() {
    if in_child() {
        green_core::silence_failures();
        green_core::run(|| {
            let sup = green_core::spawn(|| {
                let w = Builder::new()
                    .name("later")
                    .spawn_later(Duration::from_secs(5), || 1)
                    .unwrap();
                w.link_to(&green_core::current());
                let w2 = w.clone();
                green_core::spawn(move || w2.kill());
                let p = blocked_until_raised();
                p.downcast::<LinkedExited>().map(|e| e.to_string()).ok()
            });
            let got = sup.get().unwrap();
            assert_eq!(got.as_deref(), Some("linked greenlet 'later' was killed"));
        });
        println!("CHILD-DONE");
        return;
    }
    let out = child(
        "a_linked_greenlet_killed_before_it_starts_tells_its_receiver",
        LIMIT,
    );
    assert!(out.ok() && out.stdout.contains("CHILD-DONE"), "{out:?}");
}

/// A failure is reported once, and on the failing greenlet's thread, with
/// `Failure` values that are `Send + Sync` (a reporter can forward them).
#[test]
fn a_reporter_forwards_failures_to_another_thread() {
    if in_child() {
        let (tx, rx) = std::sync::mpsc::channel::<green_core::Failure>();
        let tx = std::sync::Mutex::new(tx);
        green_core::set_failure_reporter(move |f| {
            tx.lock().unwrap().send(f.clone()).unwrap();
        });
        let t = std::thread::spawn(|| {
            green_core::run(|| {
                let g = Builder::new()
                    .name("far")
                    .spawn(|| -> u8 { panic!("far away") })
                    .unwrap();
                assert!(g.get().is_err());
            });
        });
        t.join().unwrap();
        let f = rx.recv_timeout(Duration::from_secs(2)).unwrap();
        assert_eq!(f.what(), "greenlet 'far'");
        assert!(rx.try_recv().is_err(), "reported twice");
        println!("CHILD-DONE");
        return;
    }
    let out = child("a_reporter_forwards_failures_to_another_thread", LIMIT);
    assert!(out.ok() && out.stdout.contains("CHILD-DONE"), "{out:?}");
}
