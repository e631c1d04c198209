//! Teardown leaks no fds: the loop's own (ring/epoll, eventfd, signalfd)
//! and connections accepted by ops nobody received (L7). Alone in its
//! binary because it counts `/proc/self/fd` (tokio's `fd_leak` style).

mod support;

use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use green_loop::{BackendChoice, Loop, Op};
use support::{open_fds, record};

fn churn(choice: BackendChoice) {
    let Ok(lp) = Loop::builder().backend(choice).build() else {
        println!("skipped: {choice:?} unavailable");
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Step 1: a multishot accept is armed and one connection is accepted.
    // SAFETY: multishot accept borrows no memory.
    unsafe {
        lp.submit(
            Op::AcceptMulti {
                fd: listener.as_raw_fd(),
                flags: libc::SOCK_CLOEXEC,
            },
            record,
            1,
        )
    }
    .unwrap();
    let _watch = lp.watch_signal(libc::SIGUSR2, |_, _, _| {}, 0).unwrap();
    let client = TcpStream::connect(addr).unwrap();
    // Step 2: drop the loop without running it: the accepted fd is only
    // known to the loop, which must close it.
    std::thread::sleep(Duration::from_millis(10));
    drop(lp);
    drop((client, listener));
}

#[test]
fn dropping_loops_leaks_no_fds() {
    let before = open_fds();
    for _ in 0..3 {
        churn(BackendChoice::Epoll);
        churn(BackendChoice::IoUring);
    }
    assert_eq!(open_fds(), before);
}
