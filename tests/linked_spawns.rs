//! The gevent tutorial's linked spawns: when a linked greenlet ends, a
//! `LinkedExited` is raised in the receiver at its next blocking point, as
//! a kill is. How a supervisor learns that a worker died without polling.

use std::panic;
use std::time::Duration;

use green_core::{
    current, sleep, spawn, spawn_link, spawn_link_exception, spawn_link_value, ErrorKind,
    LinkedExited,
};

/// Blocks (long) and returns what was raised at the blocking call.
fn blocked_until_raised() -> Box<dyn std::any::Any + Send> {
    panic::catch_unwind(|| sleep(Duration::from_secs(10))).expect_err("raised in the sleep")
}

fn exited(payload: Box<dyn std::any::Any + Send>) -> LinkedExited {
    *payload.downcast::<LinkedExited>().expect("a LinkedExited")
}

#[test]
fn spawn_link_raises_completed_failed_and_killed() {
    green_core::silence_failures();
    green_core::run(|| {
        let supervisor = spawn(|| {
            let mut seen = Vec::new();
            let _ok = spawn_link(|| 1);
            seen.push(exited(blocked_until_raised()));
            let _bad = spawn_link(|| -> u8 { panic!("disk full") });
            seen.push(exited(blocked_until_raised()));
            let victim = spawn_link(|| sleep(Duration::from_secs(10)));
            green_core::yield_now();
            victim.kill_nowait();
            seen.push(exited(blocked_until_raised()));
            seen
        });
        let seen = supervisor.get().unwrap();
        assert!(
            matches!(seen[0], LinkedExited::Completed { .. }),
            "{seen:?}"
        );
        match &seen[1] {
            LinkedExited::Failed { error, .. } => {
                assert_eq!(error.kind(), ErrorKind::Panicked);
                assert_eq!(error.message(), "disk full");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(seen[2], LinkedExited::Killed { .. }), "{seen:?}");
    });
}

#[test]
fn value_and_exception_links_raise_only_for_their_ending() {
    green_core::silence_failures();
    green_core::run(|| {
        let supervisor = spawn(|| {
            let _a = spawn_link_value(|| -> u8 { panic!("not raised: link_value") });
            let _b = spawn_link_exception(|| 5);
            let _c = spawn_link_exception(|| -> u8 { panic!("raised") });
            let first = exited(blocked_until_raised());
            let _d = spawn_link_value(|| 6);
            let second = exited(blocked_until_raised());
            (first, second)
        });
        let (first, second) = supervisor.get().unwrap();
        assert!(matches!(first, LinkedExited::Failed { .. }), "{first:?}");
        assert!(
            matches!(second, LinkedExited::Completed { .. }),
            "{second:?}"
        );
    });
}

#[test]
fn an_uncaught_linked_exit_ends_the_receiver_as_a_failure() {
    green_core::silence_failures();
    green_core::run(|| {
        let receiver = spawn(|| {
            let _w = spawn_link(|| ());
            sleep(Duration::from_secs(10));
        });
        receiver.join();
        let error = receiver.exception().expect("it failed");
        assert_eq!(error.kind(), ErrorKind::Killed);
        assert!(error.message().contains("completed"), "{error}");
    });
}

#[test]
fn green_catch_unwind_lets_a_linked_exit_through() {
    green_core::silence_failures();
    green_core::run(|| {
        let receiver = spawn(|| {
            let _w = spawn_link(|| ());
            let _ = green_core::catch_unwind(|| sleep(Duration::from_secs(10)));
            "swallowed"
        });
        assert!(receiver.get().is_err(), "the LinkedExited went through");
    });
}

#[test]
fn the_main_greenlet_can_receive_a_linked_exit() {
    green_core::silence_failures();
    green_core::run(|| {
        let worker = spawn(|| -> u8 { panic!("worker died") });
        worker.link_to(&current());
        let raised = exited(blocked_until_raised());
        assert_eq!(raised.greenlet(), worker.name());
        assert!(raised.to_string().contains("worker died"), "{raised}");
    });
}

#[test]
fn a_receiver_that_is_gone_is_left_alone() {
    green_core::run(|| {
        let receiver = spawn(|| ());
        let worker = spawn(|| sleep(Duration::from_millis(2)));
        worker.link_to(&receiver.as_ref());
        receiver.join();
        drop(receiver);
        worker.join();
        sleep(Duration::from_millis(1));
    });
}

#[test]
fn catch_linked_catches_only_a_linked_exit() {
    green_core::silence_failures();
    green_core::run(|| {
        let supervisor = spawn(|| {
            let _w = spawn_link(|| -> u8 { panic!("boom") });
            let caught = green_core::catch_linked(|| sleep(Duration::from_secs(10)));
            let Err(LinkedExited::Failed { error, .. }) = caught else {
                panic!("expected a Failed: {caught:?}");
            };
            assert_eq!(error.message(), "boom");
            // A kill is not caught by it.
            green_core::catch_linked(|| sleep(Duration::from_secs(10))).ok();
            "not reached"
        });
        green_core::yield_now();
        green_core::sleep(Duration::from_millis(2));
        supervisor.kill();
        assert!(
            supervisor.exception().unwrap().is_exit(),
            "the kill went through"
        );
    });
}

#[test]
fn handles_can_be_used_inside_std_catch_unwind() {
    green_core::run(|| {
        let g = spawn(|| sleep(Duration::from_secs(10)));
        // Compiles: handles are UnwindSafe.
        let r = panic::catch_unwind(|| {
            green_core::killall(&[&g]);
        });
        assert!(r.is_ok() && g.dead());
    });
}
