//! Regressions found by review, each checked on both backends: an fd number
//! reused after a close, a poll for no event, and two watchers of one
//! signal. One test function runs them in turn: the fd-reuse case needs no
//! other thread of this binary opening fds meanwhile.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use green_loop::{BackendChoice, Completion, Loop, Op};

thread_local! {
    static DONE: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

fn record(_: &Loop, c: Completion) {
    DONE.with(|d| d.borrow_mut().push(c.data));
}

fn take() -> Vec<u64> {
    DONE.with(|d| std::mem::take(&mut *d.borrow_mut()))
}

fn socketpair() -> [i32; 2] {
    let mut sv = [0; 2];
    // SAFETY: `sv` has room for the two fds socketpair writes.
    let rc = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, sv.as_mut_ptr()) };
    assert_eq!(rc, 0);
    sv
}

fn close(fd: i32) {
    // SAFETY: closing an fd this test owns.
    unsafe { libc::close(fd) };
}

/// Runs the loop without blocking until `data` completed or 2 s passed.
fn completes(lp: &Loop, data: u64) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        lp.run_once(false).unwrap();
        if DONE.with(|d| d.borrow().contains(&data)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// A recv waits on fd N, N is closed behind the loop's back and reused by a
/// new socket: a recv on the new socket still completes.
fn fd_number_reused(choice: BackendChoice) {
    let lp = Loop::builder().backend(choice).build().unwrap();
    take();
    let a = socketpair();
    let mut first = Box::new([0u8; 16]);
    // SAFETY: the buffer outlives the loop (dropped after it, below) (L1).
    let stale = unsafe {
        lp.submit(
            Op::Recv {
                fd: a[0],
                buf: first.as_mut_ptr(),
                len: 16,
                flags: 0,
            },
            record,
            1,
        )
    }
    .unwrap();
    lp.run_once(false).unwrap();
    close(a[0]);
    let b = socketpair();
    assert_eq!(b[0], a[0], "the lowest free fd number is reused");
    let mut second = Box::new([0u8; 16]);
    // SAFETY: as above.
    unsafe {
        lp.submit(
            Op::Recv {
                fd: b[0],
                buf: second.as_mut_ptr(),
                len: 16,
                flags: 0,
            },
            record,
            2,
        )
    }
    .unwrap();
    // SAFETY: writing two bytes from a static buffer to our own socket.
    assert_eq!(unsafe { libc::write(b[1], b"hi".as_ptr().cast(), 2) }, 2);
    assert!(
        completes(&lp, 2),
        "{choice:?}: the recv on the reused fd number completes"
    );
    let _ = lp.cancel_op(stale);
    drop(lp);
    drop((first, second));
    for fd in [a[1], b[0], b[1]] {
        close(fd);
    }
}

/// A poll for no event completes when the peer hangs up, as io_uring's does.
fn poll_for_nothing_sees_hang_up(choice: BackendChoice) {
    let lp = Loop::builder().backend(choice).build().unwrap();
    take();
    let a = socketpair();
    // SAFETY: PollAdd points at no memory.
    unsafe {
        lp.submit(
            Op::PollAdd {
                fd: a[0],
                events: 0,
            },
            record,
            7,
        )
    }
    .unwrap();
    lp.run_once(false).unwrap();
    close(a[1]);
    assert!(
        completes(&lp, 7),
        "{choice:?}: the poll completes on hang-up"
    );
    drop(lp);
    close(a[0]);
}

fn blocked(signum: i32) -> bool {
    // SAFETY: querying this thread's mask into a zeroed set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut set);
        libc::sigismember(&set, signum) == 1
    }
}

fn on_signal(_: &Loop, _: i32, _: u64) {}

/// Two watchers of one signal: dropping one keeps it blocked for the other;
/// dropping both restores the mask.
fn two_watchers_of_one_signal(choice: BackendChoice) {
    let lp = Loop::builder().backend(choice).build().unwrap();
    assert!(!blocked(libc::SIGUSR2));
    let first = lp.watch_signal(libc::SIGUSR2, on_signal, 1).unwrap();
    let second = lp.watch_signal(libc::SIGUSR2, on_signal, 2).unwrap();
    drop(first);
    assert!(
        blocked(libc::SIGUSR2),
        "{choice:?}: still blocked for the second watcher"
    );
    drop(second);
    assert!(!blocked(libc::SIGUSR2), "{choice:?}: the mask is restored");
}

#[test]
fn review_regressions_on_both_backends() {
    for choice in [BackendChoice::IoUring, BackendChoice::Epoll] {
        if choice == BackendChoice::IoUring && Loop::builder().backend(choice).build().is_err() {
            println!("skipped: io_uring is not available here");
            continue;
        }
        fd_number_reused(choice);
        poll_for_nothing_sees_hang_up(choice);
        two_watchers_of_one_signal(choice);
    }
}
