//! Private invariants: slab generations, wheel ordering, error messages.

use std::time::{Duration, Instant};

use crate::backend::diagnose_setup_error;
use crate::timer::{TimerHandler, Wheel};
use crate::token::{Key, Slab, TimerId};
use crate::Loop;

#[test]
fn slab_reuses_entries_with_a_new_generation() {
    let mut s = Slab::new();
    let a = s.insert(1);
    assert_eq!(s.remove(a), Some(1));
    let b = s.insert(2);
    assert_eq!(a.idx, b.idx);
    assert_ne!(a.gen, b.gen);
    assert!(
        s.get(a).is_none(),
        "stale key must not reach the new tenant"
    );
    assert_eq!(s.get(b), Some(&2));
}

#[test]
fn packed_keys_never_set_the_top_bit() {
    let k = Key {
        idx: u32::MAX - 1,
        gen: u32::MAX,
    };
    assert_eq!(k.pack() >> 63, 0);
    assert_eq!(Key::unpack(k.pack()).idx, k.idx);
}

fn nop(_: &Loop, _: TimerId, _: u64) {}

fn fire_all(w: &mut Wheel, now: Instant) -> Vec<u64> {
    w.advance(now);
    let mut out = Vec::new();
    while let Some(f) = w.pop_due() {
        match f.handler {
            TimerHandler::Fn(_, d) => out.push(d),
            TimerHandler::Closure(_) => unreachable!(),
        }
    }
    out
}

#[test]
fn wheel_orders_by_deadline_then_insertion_across_levels() {
    let origin = Instant::now();
    let mut w = Wheel::new(origin);
    let far = origin + Duration::from_millis(5000);
    // Inserted while `far` is in a high level...
    w.insert(far, TimerHandler::Fn(nop, 1));
    w.insert(origin + Duration::from_millis(3), TimerHandler::Fn(nop, 0));
    assert_eq!(
        fire_all(&mut w, origin + Duration::from_millis(4998)),
        vec![0]
    );
    // ...and the same deadline inserted after a cascade, at level 0 (2 ms
    // ahead: level 0 spans 64 ticks of 65.536 µs).
    w.insert(far, TimerHandler::Fn(nop, 2));
    // A deadline fires at the first tick at or after it (never early).
    assert_eq!(
        fire_all(&mut w, far + Duration::from_micros(66)),
        vec![1, 2]
    );
    assert_eq!(w.len(), 0);
    assert_eq!(w.referenced(), 0);
}

#[test]
fn wheel_never_fires_early_and_cancel_is_exact() {
    let origin = Instant::now();
    let mut w = Wheel::new(origin);
    let d = origin + Duration::from_micros(1500);
    let id = w.insert(d, TimerHandler::Fn(nop, 1));
    w.insert(d, TimerHandler::Fn(nop, 2));
    assert!(fire_all(&mut w, origin + Duration::from_millis(1)).is_empty());
    assert!(w.cancel(id));
    assert!(!w.cancel(id));
    assert_eq!(fire_all(&mut w, origin + Duration::from_millis(2)), vec![2]);
}

#[test]
fn wheel_handles_far_deadlines() {
    let origin = Instant::now();
    let mut w = Wheel::new(origin);
    for (i, ms) in [
        1u64,
        70,
        5_000,
        300_000,
        20_000_000,
        3_000_000_000,
        100_000_000_000,
    ]
    .iter()
    .enumerate()
    {
        w.insert(
            origin + Duration::from_millis(*ms),
            TimerHandler::Fn(nop, i as u64),
        );
    }
    let mut fired = Vec::new();
    for ms in [
        0u64,
        1,
        69,
        70,
        4_999,
        5_000,
        300_000,
        20_000_000,
        3_000_000_000,
        100_000_000_000,
    ] {
        fired.extend(fire_all(&mut w, origin + Duration::from_millis(ms)));
    }
    assert_eq!(fired, vec![0, 1, 2, 3, 4, 5, 6]);
}

#[test]
fn an_idle_wheel_caught_up_waits_for_the_new_timer_itself() {
    let origin = Instant::now();
    let mut w = Wheel::new(origin);
    // Ten seconds with no timer: the loop did not advance the wheel.
    let now = origin + Duration::from_secs(10);
    w.catch_up(now);
    let d = now + Duration::from_millis(1);
    w.insert(d, TimerHandler::Fn(nop, 1));
    // Placed from the present it sits at level 0, so the wait bound is its
    // own tick; from the stale origin it would sit in a high level and the
    // bound would be that level's slot, seconds before `d`.
    let next = w.next_deadline().expect("a timer is pending");
    assert!(
        next >= d && next < d + Duration::from_micros(66),
        "wait bound {:?} after the deadline",
        next.checked_duration_since(d)
    );
    assert!(fire_all(&mut w, now + Duration::from_micros(900)).is_empty());
    assert_eq!(fire_all(&mut w, d + Duration::from_micros(66)), vec![1]);
    assert!(w.is_empty());
    assert_eq!(w.next_deadline(), None);
}

#[test]
fn setup_errors_name_cause_and_fix() {
    let m = diagnose_setup_error(Some(libc::EPERM), Some(2));
    assert!(m.contains("io_uring_disabled sysctl (value 2)"), "{m}");
    assert!(m.contains("GREEN_LOOP_BACKEND=epoll"), "{m}");
    let m = diagnose_setup_error(Some(libc::EPERM), Some(0));
    assert!(m.contains("seccomp"), "{m}");
    let m = diagnose_setup_error(Some(libc::ENOSYS), None);
    assert!(m.contains("ENOSYS"), "{m}");
}
