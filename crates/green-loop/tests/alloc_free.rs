//! Steady state allocates nothing per op, per timer or per `fn` callback
//! (DESIGN.md §4). A counting global allocator is per binary, so this test
//! lives alone in its file.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use green_loop::{BackendChoice, Completion, Loop, Op, TimerId};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // Only allocations made by the measuring thread count (the test
    // harness's own threads allocate freely).
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn counting() -> bool {
    COUNTING.try_with(|c| c.get()).unwrap_or(false)
}

// SAFETY: forwards to `System` unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn on_op(_: &Loop, _: Completion) {}
fn on_timer(_: &Loop, _: TimerId, _: u64) {}
fn on_callback(_: &Loop, _: u64) {}

/// One round of everything the hub does per greenlet step.
fn round(lp: &Loop, a: &UnixStream, b: &UnixStream, buf: &mut [u8; 64]) {
    for i in 0..32 {
        lp.submit_nop(on_op, i).unwrap();
        let t = lp.add_timer(lp.now(), on_timer, i);
        let far = lp.add_timer(lp.now() + Duration::from_secs(3600), on_timer, i);
        assert!(lp.cancel_timer(far));
        if i % 2 == 0 {
            assert!(lp.cancel_timer(t));
        }
        lp.run_callback_fn(on_callback, i);
        let c = lp.run_callback_fn(on_callback, i);
        lp.cancel_callback(c);
    }
    // Zero-sized closures are boxed without allocating.
    lp.run_callback(|_| {});
    // SAFETY: `buf` and the message outlive the ops: we run until idle.
    unsafe {
        lp.submit(
            Op::Recv {
                fd: b.as_raw_fd(),
                buf: buf.as_mut_ptr(),
                len: 64,
                flags: 0,
            },
            on_op,
            0,
        )
        .unwrap();
        lp.submit(
            Op::Send {
                fd: a.as_raw_fd(),
                buf: b"x".as_ptr(),
                len: 1,
                flags: 0,
            },
            on_op,
            0,
        )
        .unwrap();
    }
    lp.run().unwrap();
}

fn measure(choice: BackendChoice) {
    let Ok(lp) = Loop::builder().backend(choice).build() else {
        println!("skipped: {choice:?} unavailable");
        return;
    };
    let (a, b) = UnixStream::pair().unwrap();
    let mut buf = [0u8; 64];
    // Warm up: slabs, queues and buffers grow to their high-water marks.
    for _ in 0..20 {
        round(&lp, &a, &b, &mut buf);
    }
    ALLOCS.store(0, Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    for _ in 0..200 {
        round(&lp, &a, &b, &mut buf);
    }
    COUNTING.with(|c| c.set(false));
    let n = ALLOCS.load(Ordering::Relaxed);
    assert_eq!(
        n,
        0,
        "{choice:?}: {n} allocations in steady state ({:?})",
        lp.stats()
    );
    assert!(lp.stats().completed > 200 * 34);
}

#[test]
fn steady_state_allocates_nothing() {
    // Sanity: the counter works (so the zero below can fail).
    COUNTING.with(|c| c.set(true));
    let v = std::hint::black_box(vec![1u8; 16]);
    COUNTING.with(|c| c.set(false));
    drop(v);
    assert!(ALLOCS.load(Ordering::Relaxed) >= 1);

    measure(BackendChoice::Epoll);
    measure(BackendChoice::IoUring);
}
