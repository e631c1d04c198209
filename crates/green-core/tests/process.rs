//! `green_core::process`: a child's pipes and exit waited for greenly, on
//! both loop backends (run the binary again with
//! `GREEN_LOOP_BACKEND=epoll`).
//!
//! The children are only `/bin/sh`, `cat`, `echo`, `true`, `false`,
//! `sleep`, `yes` and `head`. Every test body runs under a generous
//! `Timeout`, so a deadlock fails the test instead of hanging the suite.

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::rc::Rc;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use green_core::process::{Child, Command, Stdio};
use green_core::sync::Event;
use green_core::{iwait, sleep, spawn, wait, with_timeout, yield_now, Waitable};

/// Tests that spawn children share this lock; the fd-leak test holds it
/// alone, so no other test's pipes or pidfds are open while it counts.
static FDS: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    FDS.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    FDS.write().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` under a hang guard far above what any test needs.
#[track_caller]
fn guarded<T>(f: impl FnOnce() -> T) -> T {
    match with_timeout(Duration::from_secs(60), f) {
        Ok(value) => value,
        Err(_) => panic!("the test did not finish within 60 s: a green wait hung"),
    }
}

/// How many pipes and pidfds this process has open. Only those: other test
/// threads' hubs open and close their loop's fds (a ring, an eventfd, an
/// epoll fd) as the threads come and go, while their children's pipes and
/// pidfds are all closed before they release [`FDS`].
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| {
            let target = target.to_string_lossy();
            target.starts_with("pipe:") || target == "anon_inode:[pidfd]"
        })
        .count()
}

/// Waits (greenly, at most 5 s) until [`open_fds`] is `expected`, then
/// checks it: a killed greenlet releases its fds once its cancelled op has
/// completed, which takes a turn of the event loop.
#[track_caller]
fn assert_open_fds(expected: usize, what: &str) {
    for _ in 0..2500 {
        if open_fds() == expected {
            break;
        }
        sleep(Duration::from_millis(2));
    }
    assert_eq!(open_fds(), expected, "{what}");
}

fn sh(script: &str) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", script]);
    cmd
}

#[test]
fn cat_round_trip_through_piped_stdin_and_stdout() {
    let _fds = shared();
    guarded(|| {
        if std::env::var("GREEN_LOOP_BACKEND").as_deref() == Ok("epoll") {
            assert_eq!(green_core::loop_backend(), green_core::BackendKind::Epoll);
        }
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // More than a pipe holds: the writer and the reader must overlap.
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut stdin = child.stdin.take().unwrap();
        let sent = data.clone();
        let writer = spawn(move || {
            stdin.write_all(&sent).unwrap();
            // Dropping `stdin` closes the pipe: cat reads its end.
        });
        let mut out = Vec::new();
        child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
        writer.join();
        assert!(writer.successful());
        assert_eq!(out.len(), data.len());
        assert!(out == data, "cat echoed different bytes");
        assert!(child.wait().unwrap().success());
    });
}

#[test]
fn echo_output_and_cat_with_stdin_through_a_shared_handle() {
    let _fds = shared();
    guarded(|| {
        let out = Command::new("echo")
            .args(["hello", "green"])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, b"hello green\n");
        assert!(out.stderr.is_empty());

        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        (&stdin).write_all(b"line one\n").unwrap();
        (&stdin).write_all(b"line two\n").unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, b"line one\nline two\n");
    });
}

/// A child writing more than a MiB to each of stdout and stderr, one after
/// the other, in both orders: reading one pipe to its end before the other
/// would deadlock with the child blocked on the full pipe.
#[test]
fn output_of_a_child_filling_stdout_and_stderr_does_not_deadlock() {
    const N: usize = 1_500_000;
    let _fds = shared();
    guarded(|| {
        for script in [
            format!("yes e | head -c {N} >&2; yes o | head -c {N}"),
            format!("yes o | head -c {N}; yes e | head -c {N} >&2"),
        ] {
            let out = sh(&script).output().unwrap();
            assert!(out.status.success(), "{script}: {:?}", out.status);
            assert_eq!(out.stdout.len(), N, "{script}");
            assert_eq!(out.stderr.len(), N, "{script}");
            assert!(out.stdout.chunks(2).all(|c| c == b"o\n"), "{script}");
            assert!(out.stderr.chunks(2).all(|c| c == b"e\n"), "{script}");
        }

        // The same through spawn + wait_with_output.
        let child = sh(&format!("yes e | head -c {N} >&2; yes o | head -c {N}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!((out.stdout.len(), out.stderr.len()), (N, N));
    });
}

#[test]
fn exit_codes() {
    let _fds = shared();
    guarded(|| {
        let status = Command::new("true").status().unwrap();
        assert!(status.success());
        assert_eq!(status.code(), Some(0));

        let status = Command::new("false").status().unwrap();
        assert!(!status.success());
        assert_eq!(status.code(), Some(1));

        let mut child = sh("exit 7").spawn().unwrap();
        assert_eq!(child.wait().unwrap().code(), Some(7));
        // The status is kept: asking again gives the same answer.
        assert_eq!(child.wait().unwrap().code(), Some(7));
        assert_eq!(child.try_wait().unwrap().unwrap().code(), Some(7));

        let out = sh("echo out; echo err >&2; exit 3").output().unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");

        // output() leaves the command's stdio as it was: a later status()
        // still inherits (here: stdout set to null by the caller).
        let mut cmd = sh("exit 2");
        assert_eq!(cmd.output().unwrap().status.code(), Some(2));
        assert_eq!(cmd.stdout(Stdio::null()).status().unwrap().code(), Some(2));
    });
}

#[test]
fn kill_then_wait_reports_the_signal() {
    let _fds = shared();
    guarded(|| {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        assert!(child.try_wait().unwrap().is_none());
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert_eq!(status.code(), None);
        assert!(!status.success());

        let status = sh("kill -TERM $$").status().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGTERM));
    });
}

#[test]
fn wait_timeout_returns_none_then_some() {
    let _fds = shared();
    guarded(|| {
        let mut child = Command::new("sleep").arg("0.3").spawn().unwrap();
        assert!(child.wait_timeout(Duration::ZERO).unwrap().is_none());
        assert!(child
            .wait_timeout(Duration::from_millis(10))
            .unwrap()
            .is_none());
        let status = child.wait_timeout(Duration::from_secs(30)).unwrap();
        assert!(status.is_some_and(|s| s.success()), "{status:?}");
        // Exited: a zero timeout answers at once.
        assert!(child.wait_timeout(Duration::ZERO).unwrap().is_some());
        // A timeout too long for the clock is no timeout.
        let mut child = Command::new("true").spawn().unwrap();
        let status = child.wait_timeout(Duration::MAX).unwrap();
        assert!(status.is_some_and(|s| s.success()));
    });
}

/// While this greenlet reads a child's output line by line, a ticker
/// greenlet keeps counting: the reads park the greenlet, not the thread.
#[test]
fn child_output_read_greenly_while_other_greenlets_run() {
    let _fds = shared();
    guarded(|| {
        let ticks = Rc::new(Cell::new(0u64));
        let ticker = {
            let ticks = Rc::clone(&ticks);
            spawn(move || loop {
                ticks.set(ticks.get() + 1);
                sleep(Duration::from_millis(1));
            })
        };
        let mut child = sh("for i in 1 2 3 4 5; do echo $i; sleep 0.02; done")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut out = Vec::new();
        let mut seen = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            let n = stdout.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            seen.push(ticks.get());
        }
        assert_eq!(out, b"1\n2\n3\n4\n5\n");
        // The ticker ran during the reads: its count grew between the
        // first read and the end of file.
        assert!(
            ticks.get() > seen[0],
            "the ticker made no progress while the child was read: {seen:?}"
        );
        assert!(child.wait().unwrap().success());
        // A second greenlet reading another child at the same time.
        let other = spawn(|| sh("sleep 0.02; echo other").output().unwrap().stdout);
        let mine = sh("echo mine").output().unwrap().stdout;
        assert_eq!(mine, b"mine\n");
        assert_eq!(other.take().unwrap(), b"other\n");
        ticker.kill();
    });
}

/// A greenlet killed (or timed out) while waiting on a child leaves the
/// child alone: it is still running, and still reaped by a later wait.
#[test]
fn greenlet_killed_while_waiting_leaves_the_child_reapable() {
    let _fds = shared();
    guarded(|| {
        let child = Rc::new(RefCell::new(
            Command::new("sleep").arg("30").spawn().unwrap(),
        ));
        let waiter = {
            let child = Rc::clone(&child);
            spawn(move || child.borrow_mut().wait())
        };
        yield_now(); // the waiter parks in its poll on the pidfd
        assert!(!waiter.dead());
        waiter.kill();
        assert!(waiter.dead());
        assert!(waiter.exception().unwrap().is_exit());

        let mut child = child.borrow_mut();
        assert!(child.try_wait().unwrap().is_none(), "the child still runs");
        // A Timeout does the same.
        assert!(with_timeout(Duration::from_millis(10), || child.wait()).is_err());
        assert!(child.try_wait().unwrap().is_none());
        child.kill().unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    });
}

/// The same, counting fds: the pidfd, the pipes and the watcher greenlet's
/// poll are all released (the lock keeps other tests' fds out of the count).
#[test]
fn killed_waits_and_dropped_children_leak_no_fds() {
    let _fds = exclusive();
    guarded(|| {
        // Warm up: the hub and its loop exist before the count.
        assert!(Command::new("true").status().unwrap().success());
        let before = open_fds();

        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A killed wait, a timed-out wait, and a watcher started by `wait`.
        assert!(with_timeout(Duration::from_millis(5), || child
            .wait_timeout(Duration::from_secs(30)))
        .is_err());
        assert!(wait(&[&child], Some(Duration::from_millis(5)), None).is_empty());
        let reader = {
            let mut stdout = child.stdout.take().unwrap();
            spawn(move || {
                let mut buf = [0u8; 16];
                let _ = stdout.read(&mut buf);
            })
        };
        yield_now();
        reader.kill();
        assert!(reader.dead());
        // cat's stdin stays open, so cat runs on: only the drop of the
        // Child (which kills its watcher) releases the watcher's pidfd.
        let stdin = child.stdin.take().unwrap();
        drop(child);
        assert_open_fds(
            before + 1,
            "fds leaked by the waits, the watcher or the pipes (only cat's stdin should be open)",
        );
        drop(stdin); // cat ends
        assert_eq!(open_fds(), before);

        // A greenlet killed in wait_with_output: the helper reading stdout
        // is killed too, and both read ends are closed.
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap(); // kept: cat runs on
        let collector = spawn(move || child.wait_with_output());
        yield_now();
        yield_now();
        assert!(!collector.dead());
        collector.kill();
        assert!(collector.dead());
        assert_open_fds(before + 1, "only cat's stdin should be open");
        drop(stdin);
        assert_eq!(open_fds(), before);

        // A child waited to its end leaves nothing either.
        let mut child = sh("echo x").stdout(Stdio::piped()).spawn().unwrap();
        assert_eq!(wait(&[&child], Some(Duration::from_secs(30)), None), [0]);
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "x\n");
        assert!(child.wait().unwrap().success());
        drop(child);
        assert_open_fds(before, "fds leaked by a child waited to its end");
    });
}

/// A Child in `iwait` and `wait` beside an Event and a greenlet: ready once
/// the child has exited.
#[test]
fn child_in_wait_and_iwait_mixed_with_an_event() {
    let _fds = shared();
    guarded(|| {
        // cat runs until its stdin closes; the greenlet sets the event,
        // then closes cat's stdin and ends.
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let event = Event::new();
        let closer = {
            let event = event.clone();
            spawn(move || {
                event.set();
                sleep(Duration::from_millis(5));
                drop(stdin);
            })
        };
        assert!(!child.is_ready());
        let objects: [&dyn Waitable; 3] = [&child, &event, &closer];
        let order: Vec<usize> = iwait(&objects, Some(Duration::from_secs(30))).collect();
        assert_eq!(order.len(), 3, "{order:?}");
        assert_eq!(order[0], 1, "the event was set first: {order:?}");
        let mut rest = order[1..].to_vec();
        rest.sort_unstable();
        assert_eq!(rest, [0, 2]);
        assert!(child.is_ready());
        assert!(child.wait().unwrap().success());

        // An exited child is ready at once; a running one times out.
        let done = Command::new("true").spawn().unwrap();
        let mut running = Command::new("sleep").arg("30").spawn().unwrap();
        let idle = Event::new();
        assert_eq!(
            wait(
                &[&running, &idle, &done],
                Some(Duration::from_secs(30)),
                Some(1)
            ),
            [2]
        );
        assert!(wait(&[&running, &idle], Some(Duration::from_millis(10)), None).is_empty());
        running.kill().unwrap();
        assert_eq!(
            wait(&[&idle, &running], Some(Duration::from_secs(30)), Some(1)),
            [1]
        );
        assert_eq!(running.wait().unwrap().signal(), Some(libc::SIGKILL));
    });
}

#[test]
fn spawning_a_missing_program_is_a_clear_not_found() {
    let _fds = shared();
    guarded(|| {
        let e = Command::new("/nonexistent/green-no-such-program")
            .spawn()
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let message = e.to_string();
        assert!(
            message.contains("/nonexistent/green-no-such-program"),
            "{message}"
        );
        assert!(message.contains("no such program"), "{message}");

        // A bare name looked up in PATH; output() and status() say the same.
        let e = Command::new("green-no-such-program-xyz")
            .output()
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("PATH"), "{e}");
        let e = Command::new("green-no-such-program-xyz")
            .status()
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);

        // A missing working directory is named as the cause.
        let e = Command::new("true")
            .current_dir("/nonexistent/green-dir")
            .spawn()
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("working directory"), "{e}");
    });
}

#[test]
fn environment_and_working_directory() {
    let _fds = shared();
    guarded(|| {
        let out = sh("echo \"$GREEN_A-$GREEN_B-${HOME:-none}\"; pwd")
            .env("GREEN_A", "a")
            .envs([("GREEN_B", "b"), ("HOME", "/h")])
            .env_remove("HOME")
            .current_dir("/")
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"a-b-none\n/\n");
        let out = Command::new("/bin/sh")
            .args(["-c", "echo \"${GREEN_A:-unset}\""])
            .env("GREEN_A", "x")
            .env_clear()
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"unset\n");
    });
}

/// Writing to a child that has exited is a BrokenPipe error (Rust ignores
/// SIGPIPE), not a death by signal.
#[test]
fn write_to_an_exited_child_is_broken_pipe() {
    let _fds = shared();
    guarded(|| {
        let mut child: Child = Command::new("true").stdin(Stdio::piped()).spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        assert!(child.wait().unwrap().success());
        let e = stdin.write_all(&[0u8; 1024]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    });
}
