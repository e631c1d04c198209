//! No allocation per operation in steady state (the wait list's W3, and
//! the notifier entry that wakes waiters): once a workload has warmed up
//! (its greenlets spawned, the hub's queues and the primitives' wait lists
//! grown to what it needs), repeating it [`N`] times must allocate almost
//! nothing.
//!
//! The bound is [`N`]` / 100` allocations over the `N` iterations. An
//! allocation per operation would show as `N` or more; what may remain is
//! the occasional growth of a buffer whose capacity doubles (a `VecDeque`,
//! a slab, a timer heap), at most a few dozen over the run (log2(10 000)
//! is 14 per buffer), far below the bound.
//!
//! A counting global allocator counts the allocations (and reallocations)
//! of the current OS thread only, so the test harness's other threads do
//! not disturb a measurement; all greenlets of a hub run on its thread.

#[allow(unreachable_pub)] // The shared fixtures are `pub` for every test binary.
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use green_core::sync::{AsyncResult, Channel, Event, Lock, Queue, RLock, Semaphore, Waiter};
use green_core::{run, spawn, yield_now, Greenlet};
use support::within;

/// Iterations measured, after as many to warm up.
const N: u64 = 10_000;
/// The most allocations the `N` measured iterations may make (see the
/// module docs).
const BOUND: u64 = N / 100;

struct CountingAllocator;

thread_local! {
    /// Allocations made on this thread (a `const` initialiser without a
    /// destructor: reading it never allocates).
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: the thread may be tearing its locals down.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees hold; counting touches only a
// thread-local `Cell` and never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: forwarded as is (see the impl).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: forwarded as is (see the impl).
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: forwarded as is (see the impl).
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is (see the impl).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Runs `step` [`N`] times to warm up, then [`N`] times counted, on a hub
/// of its own (on a thread of its own); `setup` runs first, in the main
/// greenlet, and returns the step. Fails if the counted run allocated
/// [`BOUND`] times or more.
fn steady_state<S: FnMut(u64) + 'static>(
    what: &'static str,
    setup: impl FnOnce() -> S + Send + 'static,
) {
    let counted = within(Duration::from_secs(60), move || {
        run(move || {
            let mut step = setup();
            for i in 0..N {
                step(i);
            }
            let before = allocations();
            for i in N..2 * N {
                step(i);
            }
            let counted = allocations() - before;
            drop(step);
            counted
        })
    });
    println!("{what}: {counted} allocations in {N} iterations");
    assert!(
        counted < BOUND,
        "{what}: {counted} allocations in {N} iterations (at most {BOUND} allowed: none per operation)"
    );
}

/// Spawns a partner greenlet running `body` forever; the returned guard
/// kills it (in the main greenlet, after the measurement).
fn partner(body: impl FnOnce() + 'static) -> KillOnDrop {
    KillOnDrop(spawn(body))
}

struct KillOnDrop(Greenlet<()>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.0.kill();
    }
}

/// The fixture itself: an allocation per iteration is seen (else every
/// bound below would hold trivially).
#[test]
fn the_counter_sees_an_allocation_per_iteration() {
    let before = allocations();
    for i in 0..N {
        std::hint::black_box(Box::new(i));
    }
    let counted = allocations() - before;
    assert!(counted >= N, "{counted} allocations counted for {N} boxes");
}

#[test]
fn queue_put_and_get_of_integers() {
    steady_state("Queue put+get", || {
        let q: Queue<u64> = Queue::new();
        move |i| {
            q.put(i).unwrap();
            q.put(i + 1).unwrap();
            assert_eq!(q.get(), Ok(i));
            assert_eq!(q.get_nowait(), Ok(i + 1));
        }
    });
}

#[test]
fn bounded_queue_put_and_get_between_two_greenlets() {
    steady_state("bounded Queue producer/consumer", || {
        let q: Queue<u64> = Queue::bounded(2);
        let consumer = {
            let q = q.clone();
            partner(move || loop {
                let _ = q.get();
            })
        };
        move |i| {
            // Fills the queue, so the putter blocks too now and then.
            for k in 0..3 {
                q.put(i * 3 + k).unwrap();
            }
            let _keep = &consumer;
        }
    });
}

#[test]
fn event_set_wait_clear_ping_pong_between_two_greenlets() {
    steady_state("Event ping-pong", || {
        let (ping, pong) = (Event::new(), Event::new());
        let other = {
            let (ping, pong) = (ping.clone(), pong.clone());
            partner(move || loop {
                ping.wait();
                ping.clear();
                pong.set();
            })
        };
        move |_| {
            ping.set();
            assert!(pong.wait());
            pong.clear();
            let _keep = &other;
        }
    });
}

#[test]
fn semaphore_acquire_and_release() {
    steady_state("Semaphore acquire+release", || {
        let sem = Semaphore::new(2);
        move |_| {
            let a = sem.acquire();
            let b = sem.acquire_timeout(Duration::from_secs(1)).unwrap();
            assert!(sem.try_acquire().is_none());
            drop(a);
            drop(b);
            sem.acquire().forget();
            sem.release();
        }
    });
}

#[test]
fn lock_handed_over_between_two_contending_greenlets() {
    steady_state("Lock hand-over", || {
        let lock = Lock::new();
        let contended = Rc::new(Cell::new(0u64));
        let other = {
            let lock = lock.clone();
            partner(move || loop {
                {
                    let _held = lock.acquire();
                    yield_now();
                }
                yield_now();
            })
        };
        move |i| {
            if lock.locked() {
                contended.set(contended.get() + 1);
            }
            {
                let _held = lock.acquire();
                yield_now();
            }
            yield_now();
            // The acquires (most of them) waited for the other greenlet to
            // hand the lock over: the contended path is what is measured.
            if i % 1000 == 999 {
                assert!(contended.get() * 2 >= i, "the lock was seldom contended");
            }
            let _keep = &other;
        }
    });
}

#[test]
fn rlock_handed_over_between_two_contending_greenlets() {
    steady_state("RLock hand-over", || {
        let lock = RLock::new();
        let other = {
            let lock = lock.clone();
            partner(move || loop {
                {
                    let _outer = lock.acquire();
                    let _inner = lock.acquire();
                    yield_now();
                }
                yield_now();
            })
        };
        move |_| {
            {
                let _outer = lock.acquire();
                let _inner = lock.acquire();
                yield_now();
            }
            yield_now();
            let _keep = &other;
        }
    });
}

#[test]
fn async_result_set_and_get() {
    steady_state("AsyncResult set+get", || {
        let (request, reply): (AsyncResult<u64, ()>, AsyncResult<u64, ()>) =
            (AsyncResult::new(), AsyncResult::new());
        let other = {
            let (request, reply) = (request.clone(), reply.clone());
            partner(move || loop {
                let v = request.get().unwrap();
                request.take();
                reply.set(v + 1);
            })
        };
        move |i| {
            request.set(i);
            assert_eq!(reply.get(), Ok(i + 1));
            assert_eq!(reply.take(), Some(Ok(i + 1)));
            let _keep = &other;
        }
    });
}

#[test]
fn waiter_switch_and_get() {
    steady_state("Waiter switch+get", || {
        let (request, reply): (Waiter<u64, ()>, Waiter<u64, ()>) = (Waiter::new(), Waiter::new());
        let other = {
            let (request, reply) = (request.clone(), reply.clone());
            partner(move || loop {
                let v = request.get().unwrap();
                reply.switch(v + 1);
            })
        };
        move |i| {
            request.switch(i);
            assert_eq!(reply.get(), Ok(i + 1));
            // And within one greenlet.
            reply.switch(i);
            assert_eq!(reply.get(), Ok(i));
            let _keep = &other;
        }
    });
}

#[test]
fn a_greenlet_blocked_in_a_wait_being_woken() {
    steady_state("blocked getter woken by a put", || {
        let q: Queue<u64> = Queue::new();
        let got = Rc::new(Cell::new(0u64));
        let getter = {
            let (q, got) = (q.clone(), Rc::clone(&got));
            partner(move || loop {
                let v = q.get().unwrap();
                got.set(v + 1);
            })
        };
        move |i| {
            q.put(i).unwrap();
            yield_now();
            assert_eq!(got.get(), i + 1, "the getter was woken with the item");
            assert_eq!(q.balance(), -1, "and blocks again");
            let _keep = &getter;
        }
    });
}

#[test]
fn greenlets_blocked_in_event_wait_being_woken() {
    steady_state("three Event waiters woken", || {
        let go = Event::new();
        let woken = Rc::new(Cell::new(0u64));
        let waiters: Vec<KillOnDrop> = (0..3)
            .map(|_| {
                let (go, woken) = (go.clone(), Rc::clone(&woken));
                partner(move || loop {
                    go.wait();
                    woken.set(woken.get() + 1);
                    // Wait for the next round's clear.
                    while go.is_set() {
                        yield_now();
                    }
                })
            })
            .collect();
        move |_| {
            let before = woken.get();
            go.set();
            yield_now();
            assert_eq!(woken.get(), before + 3);
            go.clear();
            yield_now();
            let _keep = &waiters;
        }
    });
}

#[test]
fn channel_rendezvous_between_two_greenlets() {
    steady_state("Channel put/get", || {
        let ch: Channel<u64> = Channel::new();
        let other = {
            let ch = ch.clone();
            partner(move || loop {
                let v = ch.get().unwrap();
                ch.put(v + 1).unwrap();
            })
        };
        move |i| {
            ch.put(i).unwrap();
            assert_eq!(ch.get(), Ok(i + 1));
            let _keep = &other;
        }
    });
}

#[test]
fn waits_with_a_timeout_that_are_woken_in_time() {
    steady_state("get_timeout / wait_timeout / acquire_timeout woken", || {
        let q: Queue<u64> = Queue::new();
        let ev = Event::new();
        let sem = Semaphore::new(0);
        let other = {
            let (q, ev, sem) = (q.clone(), ev.clone(), sem.clone());
            partner(move || loop {
                let v = q.get_timeout(Duration::from_secs(60)).unwrap();
                assert!(ev.wait_timeout(Duration::from_secs(60)));
                ev.clear();
                sem.acquire_timeout(Duration::from_secs(60))
                    .unwrap()
                    .forget();
                let _ = v;
            })
        };
        move |i| {
            q.put(i).unwrap();
            yield_now();
            ev.set();
            yield_now();
            sem.release();
            yield_now();
            let _keep = &other;
        }
    });
}

#[test]
fn waits_whose_zero_timeout_passes() {
    steady_state("zero timeouts that pass", || {
        let q: Queue<u64> = Queue::new();
        let ev = Event::new();
        move |_| {
            assert!(q.get_timeout(Duration::ZERO).is_err());
            assert!(!ev.wait_timeout(Duration::ZERO));
        }
    });
}
