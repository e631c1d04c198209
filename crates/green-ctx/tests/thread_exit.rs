//! A thread that ran fibers leaves nothing of green-ctx's behind once it has
//! exited: the root slot (and the cache of spare slots) is freed at thread
//! exit. Counted with a counting global allocator, alone in this binary.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use green_ctx::{Fiber, FiberRef, Stack};

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

const THREADS: isize = 2_000;

/// What each thread does: everything that creates per-thread state here.
fn use_fibers() {
    let root = FiberRef::root();
    let fiber = Fiber::new(Stack::new(64 * 1024).unwrap(), move |w| {
        assert!(!root.is_current());
        w + 1
    });
    fiber.set_name("worker");
    assert_eq!(fiber.switch(1), 2);
    drop(fiber);
    let parked = Fiber::new(Stack::new(64 * 1024).unwrap(), |w| {
        FiberRef::root().switch(w)
    });
    parked.switch(0);
    drop(parked); // unwound, recycled into the spare-slot cache
}

fn spawn_and_join(count: isize) {
    for _ in 0..count {
        std::thread::spawn(use_fibers).join().unwrap();
    }
}

#[test]
fn threads_that_ran_fibers_leave_no_bytes_behind() {
    // Warm up whatever std keeps once per process.
    spawn_and_join(10);
    let before = LIVE.load(Ordering::Relaxed);
    spawn_and_join(THREADS);
    let after = LIVE.load(Ordering::Relaxed);
    let per_thread = (after - before) / THREADS;
    println!(
        "{per_thread} bytes per exited thread ({} in all)",
        after - before
    );
    assert!(
        per_thread < 8,
        "each exited thread left {per_thread} bytes allocated"
    );
}
