//! Multishot accept: one completion per connection, MORE until the end.

mod support;

use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use green_loop::{Loop, Op};
use support::{each_backend, record, run_until, take_done};

fn multishot_accept(lp: Loop) {
    if !lp.features().multishot_accept {
        println!(
            "skipped: multishot accept not supported by the {:?} backend",
            lp.backend()
        );
        return;
    }
    require_op!(lp, green_loop::io_uring::opcode::Accept::CODE);
    take_done();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // SAFETY: multishot accept borrows no memory.
    let id = unsafe {
        lp.submit(
            Op::AcceptMulti {
                fd: listener.as_raw_fd(),
                flags: libc::SOCK_CLOEXEC,
            },
            record,
            7,
        )
    }
    .unwrap();
    let clients: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    run_until(&lp, Duration::from_secs(5), || {
        support::DONE.with(|d| d.borrow().len() >= 3)
    });
    let done = take_done();
    assert_eq!(done.len(), 3, "{done:?}");
    let accepted: Vec<OwnedFd> = done
        .iter()
        .map(|&(data, fd, flags)| {
            assert_eq!(data, 7);
            assert!(fd >= 0, "{done:?}");
            assert!(
                flags & green_loop::CQE_F_MORE != 0,
                "more completions follow"
            );
            // SAFETY: each accepted fd is ours.
            unsafe { OwnedFd::from_raw_fd(fd) }
        })
        .collect();
    assert!(lp.op_in_flight(id), "the multishot op stays armed");
    lp.cancel_op(id).unwrap();
    run_until(&lp, Duration::from_secs(5), || !lp.op_in_flight(id));
    let last = take_done();
    assert_eq!(last.len(), 1);
    assert_eq!(
        last[0].2 & green_loop::CQE_F_MORE,
        0,
        "the final completion ends the op"
    );
    assert!(!lp.is_alive());
    drop((accepted, clients));
}

#[test]
fn multishot_accept_on_the_selected_backend() {
    multishot_accept(support::new_loop());
}

#[test]
fn multishot_accept_on_each_backend() {
    each_backend(multishot_accept);
}
