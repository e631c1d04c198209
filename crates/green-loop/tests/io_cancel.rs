//! Cancellation and teardown: the buffer of a cancelled op is never written
//! after its completion; dropping the loop with ops in flight is safe.

mod support;

use std::cell::Cell;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use green_loop::{BackendChoice, Completion, Loop, Op, OpId, Timespec};
use support::{each_backend, new_loop, record, run_until, take_done};

#[test]
fn cancel_a_pending_recv_leaves_the_buffer_untouched() {
    each_backend(|lp| {
        take_done();
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut buf = [0xAAu8; 64];
        // SAFETY: `buf` lives until the end of this closure, after the
        // op's final completion has been observed.
        let id = unsafe {
            lp.submit(
                Op::Recv {
                    fd: a.as_raw_fd(),
                    buf: buf.as_mut_ptr(),
                    len: 64,
                    flags: 0,
                },
                record,
                1,
            )
        }
        .unwrap();
        lp.run_once(false).unwrap();
        assert!(lp.op_in_flight(id));
        lp.cancel_op(id).unwrap();
        assert!(
            lp.op_in_flight(id),
            "the op stays in flight until its own completion (L2)"
        );
        run_until(&lp, Duration::from_secs(5), || !lp.op_in_flight(id));
        assert_eq!(take_done(), vec![(1, -libc::ECANCELED, 0)]);
        // Data arriving now must not land in the old buffer.
        b.write_all(b"late data").unwrap();
        for _ in 0..5 {
            lp.run_once(false).unwrap();
        }
        assert!(
            buf.iter().all(|&x| x == 0xAA),
            "buffer written after cancel"
        );
        assert!(
            lp.cancel_op(id).is_err(),
            "completed ops cannot be cancelled"
        );
        assert!(!lp.is_alive());
    });
}

#[test]
fn cancel_racing_completion_delivers_the_real_result() {
    let lp = new_loop();
    take_done();
    let (a, mut b) = UnixStream::pair().unwrap();
    b.write_all(b"ready").unwrap();
    let mut buf = [0u8; 8];
    // SAFETY: `buf` outlives the op (we run until it completes).
    let id = unsafe {
        lp.submit(
            Op::Recv {
                fd: a.as_raw_fd(),
                buf: buf.as_mut_ptr(),
                len: 8,
                flags: 0,
            },
            record,
            1,
        )
    }
    .unwrap();
    let _ = lp.cancel_op(id);
    lp.run().unwrap();
    let done = take_done();
    assert_eq!(done.len(), 1);
    match done[0].1 {
        5 => assert_eq!(&buf[..5], b"ready"),
        r => assert_eq!(r, -libc::ECANCELED),
    }
}

#[test]
fn drop_the_loop_with_ops_in_flight() {
    each_backend(|lp| {
        take_done();
        let pairs: Vec<(UnixStream, UnixStream)> =
            (0..8).map(|_| UnixStream::pair().unwrap()).collect();
        let mut bufs = vec![[0x55u8; 32]; 8];
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ts = Timespec::from(Duration::from_secs(30));
        for (i, (a, _)) in pairs.iter().enumerate() {
            // SAFETY: `bufs` outlives the loop, which is dropped below.
            unsafe {
                lp.submit(
                    Op::Recv {
                        fd: a.as_raw_fd(),
                        buf: bufs[i].as_mut_ptr(),
                        len: 32,
                        flags: 0,
                    },
                    record,
                    i as u64,
                )
            }
            .unwrap();
        }
        // SAFETY: `ts` outlives the loop; accept borrows nothing.
        unsafe {
            lp.submit(Op::Timeout { ts: &ts }, record, 100).unwrap();
            lp.submit(
                Op::AcceptMulti {
                    fd: listener.as_raw_fd(),
                    flags: libc::SOCK_CLOEXEC,
                },
                record,
                101,
            )
            .unwrap();
        }
        lp.run_once(false).unwrap();
        // Half still queued (not entered), half in the kernel: both drain.
        for i in 0..4 {
            // SAFETY: as above.
            unsafe {
                lp.submit(
                    Op::Recv {
                        fd: pairs[i].0.as_raw_fd(),
                        buf: bufs[i].as_mut_ptr(),
                        len: 0,
                        flags: 0,
                    },
                    record,
                    200 + i as u64,
                )
            }
            .unwrap();
        }
        let start = Instant::now();
        drop(lp);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "drop drained promptly"
        );
        assert!(
            take_done().is_empty(),
            "handlers are not called during drop"
        );
        // Nothing may write into the buffers after drop returned.
        for (_, b) in &pairs {
            (&*b).write_all(b"after drop").unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
        assert!(bufs.iter().all(|b| b.iter().all(|&x| x == 0x55)));
        drop(pairs);
        drop(listener);
    });
}

thread_local! {
    /// The op [`cancel_then_refill`] cancels.
    static TO_CANCEL: Cell<Option<OpId>> = const { Cell::new(None) };
}

/// Records; the first Nop's handler also cancels [`TO_CANCEL`] synchronously
/// (which reaps this round's other CQEs ahead of their turn) and then
/// overfills a 4-entry SQ (whose flush posts new CQEs behind them).
fn cancel_then_refill(lp: &Loop, c: Completion) {
    record(lp, c);
    if c.data == 100 {
        let id = TO_CANCEL.take().expect("an op to cancel");
        lp.cancel_op_now(id).unwrap();
        for i in 200..206 {
            lp.submit_nop(record, i).unwrap();
        }
    }
}

#[test]
fn completions_reaped_by_a_cancel_inside_a_handler_keep_their_order() {
    for choice in [BackendChoice::Epoll, BackendChoice::IoUring] {
        let lp = match Loop::builder().backend(choice).entries(4).build() {
            Ok(lp) => lp,
            Err(e) => {
                println!("skipped {choice:?}: {e}");
                continue;
            }
        };
        take_done();
        let (a, _b) = UnixStream::pair().unwrap();
        let mut buf = [0u8; 8];
        // SAFETY: `buf` outlives the loop, which is dropped (draining every
        // op) at the end of this iteration of the `for`.
        let id = unsafe {
            lp.submit(
                Op::Recv {
                    fd: a.as_raw_fd(),
                    buf: buf.as_mut_ptr(),
                    len: 8,
                    flags: 0,
                },
                record,
                1,
            )
        }
        .unwrap();
        lp.run_once(false).unwrap();
        TO_CANCEL.set(Some(id));
        lp.submit_nop(cancel_then_refill, 100).unwrap();
        for i in 101..104 {
            lp.submit_nop(record, i).unwrap();
        }
        run_until(&lp, Duration::from_secs(5), || take_done_len() == 11);
        let order: Vec<u64> = take_done().iter().map(|d| d.0).collect();
        assert_eq!(
            order,
            [100, 101, 102, 103, 1, 200, 201, 202, 203, 204, 205],
            "{choice:?}: completions reaped early must come out before later ones"
        );
        drop(lp);
    }
}

fn take_done_len() -> usize {
    support::DONE.with(|d| d.borrow().len())
}
