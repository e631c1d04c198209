//! A thread that used green-core leaves nothing of it behind once it has
//! exited: the hub is torn down and its record freed at thread exit, so a
//! program that churns threads (a thread pool, a test harness) does not
//! grow. Counted with a counting global allocator, alone in this binary.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use green_core::{sleep, spawn, Timeout};

/// Counts the bytes allocated and not yet freed.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged, counting sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's layout is passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const THREADS: isize = 300;

/// What each thread does with its lazily built hub: greenlets, a timer, a
/// timeout, and one greenlet still asleep at exit for teardown to unwind.
fn use_the_hub() {
    let g = spawn(|| {
        sleep(Duration::from_millis(1));
        7
    });
    assert_eq!(g.get().unwrap(), 7);
    let _ = Timeout::run(Duration::from_millis(1), || sleep(Duration::from_secs(5)));
    spawn(|| sleep(Duration::from_secs(60)));
    green_core::yield_now();
}

/// The same inside `green_core::run`, which tears the hub down itself.
fn use_a_scoped_hub() {
    green_core::run(use_the_hub);
}

fn spawn_and_join(count: isize, work: fn()) {
    for _ in 0..count {
        std::thread::spawn(work).join().unwrap();
    }
}

fn bytes_left_per_thread(work: fn()) -> isize {
    // Warm up whatever std and the crates keep once per process.
    spawn_and_join(10, work);
    let before = LIVE.load(Ordering::Relaxed);
    spawn_and_join(THREADS, work);
    let after = LIVE.load(Ordering::Relaxed);
    (after - before) / THREADS
}

#[test]
fn threads_that_used_green_core_leave_no_bytes_behind() {
    for (what, work) in [
        ("lazy hub", use_the_hub as fn()),
        ("green_core::run", use_a_scoped_hub),
    ] {
        let per_thread = bytes_left_per_thread(work);
        println!("{what}: {per_thread} bytes per exited thread");
        assert!(
            per_thread < 16,
            "{what}: each exited thread left {per_thread} bytes allocated"
        );
    }
}
