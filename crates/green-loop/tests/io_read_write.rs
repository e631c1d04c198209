//! Ops: read/write on a pipe; accept/connect/recv/send on 127.0.0.1.

mod support;

use std::cell::Cell;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use green_loop::{Loop, Op, Timespec};
use support::{each_backend, new_loop, record, run_until, take_done};

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a live array of two ints.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds were just created and are owned here.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

#[test]
fn pipe_read_and_write() {
    let lp = new_loop();
    take_done();
    let (r, w) = pipe();
    let mut buf = [0u8; 16];
    let msg = b"hello, ring";
    // SAFETY: `buf` and `msg` outlive the ops: we run until both complete.
    unsafe {
        // The read is submitted first and must wait for the write.
        lp.submit(
            Op::Read {
                fd: r.as_raw_fd(),
                buf: buf.as_mut_ptr(),
                len: 16,
                offset: u64::MAX,
            },
            record,
            1,
        )
        .unwrap();
        lp.submit(
            Op::Write {
                fd: w.as_raw_fd(),
                buf: msg.as_ptr(),
                len: msg.len() as u32,
                offset: u64::MAX,
            },
            record,
            2,
        )
        .unwrap();
    }
    assert_eq!(lp.ref_count(), 2, "in-flight ops are referenced");
    lp.run().unwrap();
    let mut done = take_done();
    done.sort();
    assert_eq!(
        done,
        vec![(1, msg.len() as i32, 0), (2, msg.len() as i32, 0)]
    );
    assert_eq!(&buf[..msg.len()], msg);
}

#[test]
fn read_on_a_closed_pipe_reports_eof_on_both_backends() {
    each_backend(|lp| {
        take_done();
        let (r, w) = pipe();
        drop(w);
        let mut buf = [0u8; 4];
        // SAFETY: `buf` outlives the op (we run to completion).
        unsafe {
            lp.submit(
                Op::Read {
                    fd: r.as_raw_fd(),
                    buf: buf.as_mut_ptr(),
                    len: 4,
                    offset: u64::MAX,
                },
                record,
                9,
            )
            .unwrap()
        };
        lp.run().unwrap();
        assert_eq!(take_done(), vec![(9, 0, 0)]);
    });
}

fn tcp_socket() -> OwnedFd {
    // SAFETY: plain syscall; the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0);
    // SAFETY: fresh fd.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn sockaddr(addr: std::net::SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn tcp_roundtrip(lp: &Loop) {
    take_done();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let std::net::SocketAddr::V4(addr) = listener.local_addr().unwrap() else {
        unreachable!()
    };
    let client = tcp_socket();
    let sa = sockaddr(addr);
    let mut peer: libc::sockaddr_in = sockaddr(addr);
    let mut peer_len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `sa`, `peer`, `peer_len` live until both ops complete below.
    unsafe {
        lp.submit(
            Op::Accept {
                fd: listener.as_raw_fd(),
                addr: (&mut peer as *mut libc::sockaddr_in).cast(),
                addrlen: &mut peer_len,
                flags: libc::SOCK_CLOEXEC,
            },
            record,
            1,
        )
        .unwrap();
        lp.submit(
            Op::Connect {
                fd: client.as_raw_fd(),
                addr: (&sa as *const libc::sockaddr_in).cast(),
                addrlen: std::mem::size_of::<libc::sockaddr_in>() as u32,
            },
            record,
            2,
        )
        .unwrap();
    }
    lp.run().unwrap();
    let mut done = take_done();
    done.sort();
    assert_eq!(done.len(), 2, "{done:?}");
    assert_eq!(done[1], (2, 0, 0), "connect succeeded");
    assert!(done[0].1 >= 0, "accept returned an fd: {done:?}");
    // SAFETY: the accepted fd is ours now.
    let server = unsafe { OwnedFd::from_raw_fd(done[0].1) };
    assert_ne!(
        u16::from_be(peer.sin_port),
        0,
        "accept filled in the peer address"
    );

    // Send from the client, receive on the server side.
    let msg = b"ping over loopback";
    let mut buf = [0u8; 64];
    // SAFETY: `msg` and `buf` outlive the ops (run to completion).
    unsafe {
        lp.submit(
            Op::Recv {
                fd: server.as_raw_fd(),
                buf: buf.as_mut_ptr(),
                len: 64,
                flags: 0,
            },
            record,
            3,
        )
        .unwrap();
        lp.submit(
            Op::Send {
                fd: client.as_raw_fd(),
                buf: msg.as_ptr(),
                len: msg.len() as u32,
                flags: 0,
            },
            record,
            4,
        )
        .unwrap();
    }
    lp.run().unwrap();
    let mut done = take_done();
    done.sort();
    assert_eq!(
        done,
        vec![(3, msg.len() as i32, 0), (4, msg.len() as i32, 0)]
    );
    assert_eq!(&buf[..msg.len()], msg);
}

#[test]
fn tcp_accept_connect_recv_send() {
    let lp = new_loop();
    tcp_roundtrip(&lp);
}

#[test]
fn tcp_on_each_backend() {
    each_backend(|lp| tcp_roundtrip(&lp));
}

#[test]
fn timeout_op_and_poll_add() {
    each_backend(|lp| {
        take_done();
        let ts = Timespec::from(Duration::from_millis(10));
        let (r, w) = pipe();
        // SAFETY: `ts` outlives the op; PollAdd borrows nothing.
        unsafe {
            lp.submit(Op::Timeout { ts: &ts }, record, 1).unwrap();
            lp.submit(
                Op::PollAdd {
                    fd: r.as_raw_fd(),
                    events: libc::POLLIN as u32,
                },
                record,
                2,
            )
            .unwrap();
        }
        run_until(&lp, Duration::from_secs(5), || {
            !support::DONE.with(|d| d.borrow().is_empty())
        });
        assert_eq!(
            take_done(),
            vec![(1, -libc::ETIME, 0)],
            "the timeout fires first"
        );
        // SAFETY: one byte from a live static.
        let wrote = unsafe { libc::write(w.as_raw_fd(), b"x".as_ptr().cast(), 1) };
        assert_eq!(wrote, 1);
        lp.run().unwrap();
        let done = take_done();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].0, 2);
        assert!(done[0].1 & libc::POLLIN as i32 != 0, "{done:?}");
    });
}

#[test]
fn nop_batches_use_one_enter_per_iteration() {
    let lp = new_loop();
    take_done();
    lp.run_once(false).unwrap();
    let before = lp.stats();
    for i in 0..32 {
        lp.submit_nop(record, i).unwrap();
    }
    lp.run_once(true).unwrap();
    let after = lp.stats();
    assert_eq!(take_done().len(), 32);
    assert_eq!(after.completed - before.completed, 32);
    assert_eq!(
        after.enter_calls - before.enter_calls,
        1,
        "{before:?} -> {after:?}"
    );
}

#[test]
fn a_full_sq_is_flushed_not_dropped() {
    let lp = Loop::builder().entries(4).build().unwrap();
    take_done();
    for i in 0..100 {
        lp.submit_nop(record, i).unwrap();
    }
    lp.run().unwrap();
    let mut done: Vec<u64> = take_done().iter().map(|d| d.0).collect();
    done.sort();
    assert_eq!(done, (0..100).collect::<Vec<_>>());
}

#[test]
fn a_non_blocking_poll_with_nothing_in_flight_makes_no_system_call() {
    each_backend(|lp| {
        take_done();
        // Nothing in flight: polling still runs what is due, without entering
        // the kernel (a greenlet spinning on `yield_now` polls all the time).
        let due = Rc::new(Cell::new(0));
        let d = Rc::clone(&due);
        lp.add_timer_closure(lp.now(), move |_| d.set(d.get() + 1));
        let before = lp.stats();
        for _ in 0..10 {
            lp.run_once(false).unwrap();
        }
        let after = lp.stats();
        assert_eq!(due.get(), 1, "the due timer fired");
        assert_eq!(after.iterations - before.iterations, 10);
        assert_eq!(
            after.enter_calls, before.enter_calls,
            "{before:?} -> {after:?}"
        );
        // With an op in flight, the same poll enters and reaps it.
        lp.submit_nop(record, 7).unwrap();
        lp.run_once(false).unwrap();
        while take_done().is_empty() {
            lp.run_once(true).unwrap();
        }
        assert!(lp.stats().enter_calls > after.enter_calls);
    });
}
