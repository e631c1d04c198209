//! Callbacks: FIFO order, same-drain requeues, cancel, bounded drain, refs.

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use green_loop::{Loop, TimerId};
use support::{each_backend, new_loop};

#[test]
fn callbacks_run_in_fifo_order() {
    let lp = new_loop();
    let seen = Rc::new(RefCell::new(Vec::new()));
    for i in 0..20 {
        let s = seen.clone();
        lp.run_callback(move |_| s.borrow_mut().push(i));
    }
    assert!(lp.is_alive(), "pending callbacks keep the loop alive");
    lp.run().unwrap();
    assert_eq!(*seen.borrow(), (0..20).collect::<Vec<_>>());
    assert!(!lp.is_alive());
}

#[test]
fn callbacks_queued_during_a_drain_run_in_the_same_drain() {
    let lp = new_loop();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    lp.run_callback(move |lp| {
        s.borrow_mut().push("a");
        let s2 = s.clone();
        lp.run_callback(move |_| s2.borrow_mut().push("c"));
    });
    let s = seen.clone();
    lp.run_callback(move |_| s.borrow_mut().push("b"));
    lp.run_once(false).unwrap();
    assert_eq!(*seen.borrow(), vec!["a", "b", "c"]);
    assert!(!lp.has_pending_callbacks());
}

thread_local! {
    static SUM: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn add(_: &Loop, data: u64) {
    SUM.with(|s| s.set(s.get() + data));
}

#[test]
fn cancelled_callbacks_do_not_run_or_keep_the_loop_alive() {
    let lp = new_loop();
    SUM.with(|s| s.set(0));
    lp.run_callback_fn(add, 1);
    let id = lp.run_callback_fn(add, 10);
    lp.run_callback_fn(add, 100);
    assert_eq!(lp.ref_count(), 3);
    assert!(lp.cancel_callback(id));
    assert!(!lp.cancel_callback(id), "second cancel is a no-op");
    assert_eq!(lp.ref_count(), 2);
    lp.run().unwrap();
    assert_eq!(SUM.with(|s| s.get()), 101);
    assert!(!lp.cancel_callback(id));
}

fn requeue(lp: &Loop, n: u64) {
    SUM.with(|s| s.set(s.get() + 1));
    lp.run_callback_fn(requeue, n + 1);
}

fn timer_fired(lp: &Loop, _: TimerId, _: u64) {
    lp.stop();
}

#[test]
fn drain_is_bounded_so_timers_still_fire() {
    each_backend(|lp| {
        let lp = Loop::builder()
            .backend(match lp.backend() {
                green_loop::BackendKind::Epoll => green_loop::BackendChoice::Epoll,
                green_loop::BackendKind::IoUring => green_loop::BackendChoice::IoUring,
            })
            .callback_budget(50, Duration::from_secs(10))
            .build()
            .unwrap();
        SUM.with(|s| s.set(0));
        // A callback that always queues another would starve an unbounded drain.
        lp.run_callback_fn(requeue, 0);
        lp.add_timer(lp.now() + Duration::from_millis(5), timer_fired, 0);
        let mut iterations = 0;
        lp.run_once(false).unwrap();
        assert_eq!(
            SUM.with(|s| s.get()),
            50,
            "one drain runs at most the budget"
        );
        // run() returns when the timer calls stop(), despite the endless callbacks.
        lp.run().unwrap();
        iterations += lp.stats().iterations;
        assert!(iterations >= 2);
        assert!(lp.has_pending_callbacks());
    });
}

#[test]
fn drain_is_bounded_by_time() {
    let lp = Loop::builder()
        .callback_budget(usize::MAX, Duration::from_millis(1))
        .build()
        .unwrap();
    SUM.with(|s| s.set(0));
    fn slow(lp: &Loop, _: u64) {
        SUM.with(|s| s.set(s.get() + 1));
        std::thread::sleep(Duration::from_micros(100));
        lp.run_callback_fn(slow, 0);
    }
    lp.run_callback_fn(slow, 0);
    lp.run_once(false).unwrap();
    let n = SUM.with(|s| s.get());
    // The clock is checked every 64 callbacks: 64 × 100 µs > 1 ms.
    assert!((1..=128).contains(&n), "ran {n} callbacks in one drain");
}
