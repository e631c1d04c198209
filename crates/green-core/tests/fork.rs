//! `green_core::os::fork` and `reinit`: the child gets a fresh hub (it
//! sleeps, spawns and uses sockets; the parent's greenlets and timers do not
//! run there, their handles see them dead), the parent goes on unaffected,
//! and a spawned greenlet cannot fork.
//!
//! Each scenario forks inside a child process of this test binary (run
//! again with `GREEN_CORE_FORK_CHILD`), whose only threads are the
//! harness's waiting main thread and the one test thread, so that no other
//! test's thread holds a lock across the fork. Run under both backends
//! (`GREEN_LOOP_BACKEND=epoll` is inherited by the child processes).

#[allow(unreachable_pub)] // The shared fixtures are `pub` for every test binary.
mod support;

use std::cell::Cell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::Duration;

use green_core::net::UnixStream;
use green_core::os::{fork, reinit, wait_child, ChildExit, ForkResult};
use green_core::{sleep, spawn, spawn_later, ErrorKind};
use support::{stdout_value, CHILD_LIMIT, MS};

const CHILD_ENV: &str = "GREEN_CORE_FORK_CHILD";

fn run_scenario(mode: &str) -> String {
    let out = support::run_child(CHILD_ENV, mode, CHILD_LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scenario {mode}: {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    assert_eq!(
        stdout_value(&out, "RESULT"),
        "ok",
        "stdout: {stdout}\nstderr: {stderr}"
    );
    stdout
}

#[test]
fn the_child_gets_a_fresh_hub_and_the_parent_goes_on() {
    run_scenario("fresh_hub");
}

#[test]
fn only_the_main_greenlet_can_fork() {
    run_scenario("fork_from_greenlet");
}

#[test]
fn reinit_in_the_process_that_built_the_hub_does_nothing() {
    run_scenario("reinit_in_parent");
}

/// The child's half of `fresh_hub`: returns its exit code (0 when every
/// check held, else a code naming the failed check).
fn fresh_child(
    worker: &green_core::Greenlet<u32>,
    ticks: &Rc<Cell<u32>>,
    timer_fired: &Rc<Cell<bool>>,
    signalled: &Rc<Cell<bool>>,
) -> i32 {
    let ticks_at_fork = ticks.get();
    // The parent's greenlets are discarded: dead, with the reason.
    if !worker.dead() {
        return 10;
    }
    match worker.get() {
        Err(e) if e.kind() == ErrorKind::Exited && e.to_string().contains("discarded") => {}
        _ => return 11,
    }
    worker.join(); // returns at once
                   // Green sleep on the child's own loop.
    sleep(40 * MS);
    if timer_fired.get() {
        return 12; // the parent's spawn_later fired in the child
    }
    if ticks.get() != ticks_at_fork {
        return 16; // the parent's worker ran in the child
    }
    // New greenlets, and a socket pair between two of them.
    let (a, b) = match UnixStream::pair() {
        Ok(pair) => pair,
        Err(_) => return 13,
    };
    let writer = spawn(move || {
        let mut a = a;
        sleep(2 * MS);
        a.write_all(b"from the child").is_ok()
    });
    let reader = spawn(move || {
        let mut b = b;
        let mut buf = [0u8; 14];
        b.read_exact(&mut buf).map(|_| buf.to_vec()).ok()
    });
    if writer.get().ok() != Some(true) {
        return 14;
    }
    if reader.get().ok().flatten().as_deref() != Some(&b"from the child"[..]) {
        return 15;
    }
    // A signal handler registered before the fork is watched on the
    // child's loop.
    // SAFETY: raise takes no pointers; the signal goes to this thread,
    // where the handler's watcher blocks it.
    unsafe { libc::raise(libc::SIGUSR2) };
    for _ in 0..2000 {
        if signalled.get() {
            return 42;
        }
        sleep(MS);
    }
    17
}

/// Not a test of its own: the body the child processes run.
#[test]
#[ignore = "child body"]
fn child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    match mode.as_str() {
        "fresh_hub" => green_core::run(|| {
            let ticks = Rc::new(Cell::new(0u32));
            let t = Rc::clone(&ticks);
            let worker = spawn(move || {
                for _ in 0..20 {
                    t.set(t.get() + 1);
                    sleep(MS);
                }
                t.get()
            });
            let timer_fired = Rc::new(Cell::new(false));
            let f = Rc::clone(&timer_fired);
            let _later = spawn_later(Duration::from_millis(15), move || f.set(true));
            let signalled = Rc::new(Cell::new(false));
            let s = Rc::clone(&signalled);
            let on_usr2 = green_core::signal::signal(libc::SIGUSR2, move || s.set(true)).unwrap();
            sleep(3 * MS);
            assert!(ticks.get() >= 1, "the worker ran before the fork");
            match fork().expect("fork") {
                ForkResult::Child => {
                    let code = fresh_child(&worker, &ticks, &timer_fired, &signalled);
                    std::process::exit(code);
                }
                ForkResult::Parent { child } => {
                    assert!(child > 0);
                    // wait_child blocks the thread: the parent's greenlets
                    // stand still meanwhile, and go on afterwards.
                    let status = wait_child(child).expect("reap the child");
                    assert_eq!(
                        status,
                        ChildExit::Exited(42),
                        "the child's checks (10..=17 name the one that failed)"
                    );
                    assert_eq!(worker.get().expect("the parent's worker ends normally"), 20);
                    sleep(20 * MS);
                    assert!(timer_fired.get(), "the parent's timer fires in the parent");
                    // A second child after the first: the parent's loop works.
                    // Its name lookup gets resolver threads of its own (the
                    // parent's pool, started here first, is not inherited).
                    use green_core::net::ToSocketAddrs;
                    assert!("localhost:80".to_socket_addrs().is_ok());
                    match fork().expect("second fork") {
                        ForkResult::Child => {
                            sleep(MS);
                            let looked_up = "localhost:80"
                                .to_socket_addrs()
                                .is_ok_and(|mut a| a.next().is_some());
                            let code = if looked_up {
                                spawn(|| 7).get().unwrap_or(1)
                            } else {
                                3
                            };
                            std::process::exit(code);
                        }
                        ForkResult::Parent { child } => {
                            assert_eq!(wait_child(child).unwrap(), ChildExit::Exited(7));
                        }
                    }
                    assert!(!signalled.get(), "the child's signal stays in the child");
                    on_usr2.cancel();
                    println!("RESULT ok");
                }
            }
        }),
        "fork_from_greenlet" => green_core::run(|| {
            let g = spawn(|| {
                let err = fork()
                    .map(|_| ())
                    .expect_err("refused in a spawned greenlet");
                (err.kind(), err.to_string())
            });
            let (kind, message) = g.get().unwrap();
            assert_eq!(kind, std::io::ErrorKind::Unsupported);
            assert!(message.contains("main greenlet"), "{message}");
            // reinit in the parent is a no-op wherever it is called.
            assert!(spawn(|| reinit().is_ok()).get().unwrap());
            // An error for a pid that is not ours, not a hang.
            assert!(wait_child(0).is_err());
            assert!(wait_child(1).is_err());
            println!("RESULT ok");
        }),
        "reinit_in_parent" => green_core::run(|| {
            let done = Rc::new(Cell::new(false));
            let d = Rc::clone(&done);
            let g = spawn(move || {
                sleep(5 * MS);
                d.set(true);
            });
            sleep(MS);
            reinit().unwrap();
            g.join();
            assert!(
                done.get(),
                "reinit in the hub's own process discards nothing"
            );
            println!("RESULT ok");
        }),
        other => panic!("unknown child mode {other}"),
    }
}
