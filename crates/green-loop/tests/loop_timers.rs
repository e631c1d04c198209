//! Timers: ordering, equal deadlines, cancel, ref/unref liveness, waiting.

mod support;

use std::cell::RefCell;
use std::time::{Duration, Instant};

use green_loop::{BackendKind, Loop, TimerId};
use support::{each_backend, new_loop};

thread_local! {
    static FIRED: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

fn fired(_: &Loop, _: TimerId, data: u64) {
    FIRED.with(|f| f.borrow_mut().push(data));
}

fn take() -> Vec<u64> {
    FIRED.with(|f| std::mem::take(&mut *f.borrow_mut()))
}

#[test]
fn timers_fire_in_deadline_order() {
    let lp = new_loop();
    take();
    let now = lp.now();
    for (i, ms) in [30u64, 10, 20, 1, 70].iter().enumerate() {
        lp.add_timer(now + Duration::from_millis(*ms), fired, i as u64);
    }
    lp.run().unwrap();
    assert_eq!(take(), vec![3, 1, 2, 0, 4]);
}

#[test]
fn equal_deadlines_fire_in_insertion_order() {
    let lp = new_loop();
    take();
    let at = lp.now() + Duration::from_millis(3);
    for i in 0..200 {
        lp.add_timer(at, fired, i);
    }
    lp.run().unwrap();
    assert_eq!(take(), (0..200).collect::<Vec<_>>());
}

#[test]
fn timers_wait_at_least_their_delay() {
    each_backend(|lp| {
        let start = Instant::now();
        lp.add_timer_closure(start + Duration::from_millis(25), |_| {});
        lp.run().unwrap();
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(25), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        // The wait is bounded by the timer inside the single enter: no spinning.
        let st = lp.stats();
        assert!(st.iterations <= 5, "{st:?}");
        if lp.backend() == BackendKind::IoUring {
            assert_eq!(
                st.enter_calls, st.iterations,
                "one io_uring_enter per iteration: {st:?}"
            );
        }
    });
}

#[test]
fn cancelled_timers_do_not_fire() {
    let lp = new_loop();
    take();
    let now = lp.now();
    let a = lp.add_timer(now + Duration::from_millis(2), fired, 1);
    lp.add_timer(now + Duration::from_millis(4), fired, 2);
    assert_eq!(lp.timer_count(), 2);
    assert!(lp.cancel_timer(a));
    assert!(!lp.cancel_timer(a));
    lp.run().unwrap();
    assert_eq!(take(), vec![2]);
    assert_eq!(lp.timer_count(), 0);
}

#[test]
fn unreferenced_timers_do_not_keep_the_loop_alive() {
    let lp = new_loop();
    take();
    let t = lp.add_timer(lp.now() + Duration::from_secs(60), fired, 1);
    assert_eq!(lp.ref_count(), 1);
    lp.set_timer_ref(t, false);
    assert_eq!(lp.ref_count(), 0);
    let start = Instant::now();
    lp.run().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "run() returned at once"
    );
    assert!(take().is_empty());
    lp.set_timer_ref(t, true);
    assert!(lp.is_alive());
    assert!(lp.cancel_timer(t));
    assert!(!lp.is_alive());
}

#[test]
fn a_timer_can_add_and_cancel_timers() {
    let lp = new_loop();
    take();
    let later = lp.add_timer(lp.now() + Duration::from_millis(50), fired, 99);
    lp.add_timer_closure(lp.now() + Duration::from_millis(1), move |lp| {
        assert!(lp.cancel_timer(later));
        lp.add_timer(lp.now() + Duration::from_millis(2), fired, 7);
    });
    lp.run().unwrap();
    assert_eq!(take(), vec![7]);
}

#[test]
fn stop_ends_run() {
    let lp = new_loop();
    lp.add_timer_closure(lp.now() + Duration::from_millis(1), |lp| lp.stop());
    let keep = lp.add_timer(lp.now() + Duration::from_secs(60), fired, 0);
    let start = Instant::now();
    lp.run().unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(lp.cancel_timer(keep));
}

#[test]
fn a_timer_already_due_fires_at_the_next_iteration() {
    each_backend(|lp| {
        take();
        // Let one iteration set the loop's clock, then arm timers at and
        // before it: they must not wait for the next millisecond tick.
        lp.run_once(false).unwrap();
        let now = lp.now();
        lp.add_timer(now, fired, 1);
        lp.add_timer(now - Duration::from_millis(5), fired, 0);
        lp.run_once(false).unwrap();
        assert_eq!(
            take(),
            vec![0, 1],
            "both fire in deadline order on the very next iteration"
        );
    });
}

#[test]
fn the_clock_is_read_after_a_wait_with_no_timer_pending() {
    each_backend(|lp| {
        // No timer: the wait is unbounded and the loop reads no clock for
        // it; `now` must still be later than the wait's end.
        let remote = lp.remote();
        lp.add_ref();
        let start = Instant::now();
        let waker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            remote.wake().expect("loop alive");
        });
        while lp.stats().wakeups == 0 {
            lp.run_once(true).unwrap();
        }
        waker.join().unwrap();
        let waited = lp.now().saturating_duration_since(start);
        assert!(
            waited >= Duration::from_millis(30),
            "now() is {waited:?} after the start, before the wake that ended the wait"
        );
        // A timer armed from it waits its whole delay.
        let armed = Instant::now();
        lp.add_timer(lp.now() + Duration::from_millis(5), fired, 3);
        while take().is_empty() {
            lp.run_once(true).unwrap();
        }
        assert!(armed.elapsed() >= Duration::from_millis(5));
        lp.release_ref();
    });
}
