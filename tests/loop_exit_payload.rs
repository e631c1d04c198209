//! `LoopExit` is raised as a typed payload (`std::panic::panic_any`), so it
//! can be caught by type, carries its message, and points at the user's
//! blocking call. Every other payload green-core raises is typed too.

use std::panic::{self, AssertUnwindSafe};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use green_core::{Greenlet, GreenletExit, KillPayload, LoopExit, Timeout};

#[test]
fn loop_exit_is_caught_by_type_with_its_message() {
    green_core::run(|| {
        let g: Greenlet<()> = Greenlet::new(|| ());
        let payload = panic::catch_unwind(AssertUnwindSafe(|| g.join()))
            .expect_err("joining a greenlet nothing can start blocks forever");
        let exit = payload
            .downcast_ref::<LoopExit>()
            .expect("the payload is a LoopExit");
        assert_eq!(exit.to_string(), LoopExit::MESSAGE);
        assert_eq!(green_core::panic_message(&*payload), LoopExit::MESSAGE);
    });
}

/// Where each `LoopExit` was located, by thread: a hook installed once,
/// chained to the one before (green-core's), kept for the binary's life.
static LOOP_EXITS: Mutex<Vec<(std::thread::ThreadId, String)>> = Mutex::new(Vec::new());

fn record_loop_exit_locations() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if info.payload().is::<LoopExit>() {
                let at = info.location().map(|l| l.file().to_string());
                LOOP_EXITS
                    .lock()
                    .unwrap()
                    .push((std::thread::current().id(), at.unwrap_or_default()));
            }
            previous(info);
        }));
    });
}

/// Every blocking call that can raise `LoopExit` names the user's line.
#[test]
fn loop_exit_points_at_the_users_blocking_call() {
    green_core::run(|| {
        record_loop_exit_locations();
        let g: Greenlet<u8> = Greenlet::new(|| 1);
        let calls: [&dyn Fn(); 4] = [
            &|| g.join(),
            &|| drop(g.get()),
            &|| {
                drop(green_core::joinall_with(
                    std::slice::from_ref(&g),
                    None,
                    false,
                    None,
                ))
            },
            &|| {
                drop(green_core::wait(
                    &[&g as &dyn green_core::Waitable],
                    None,
                    None,
                ))
            },
        ];
        for call in calls {
            let payload = panic::catch_unwind(AssertUnwindSafe(call)).expect_err("LoopExit");
            assert!(payload.is::<LoopExit>());
        }
    });
    let me = std::thread::current().id();
    let seen: Vec<String> = LOOP_EXITS
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| *t == me)
        .map(|(_, f)| f.clone())
        .collect();
    assert_eq!(seen.len(), 4, "{seen:?}");
    for file in seen {
        assert!(
            file.ends_with("loop_exit_payload.rs"),
            "LoopExit located at {file}, not at the blocking call"
        );
    }
}

/// The payloads green-core raises into greenlets are typed, and
/// `panic_message` gives each one's text.
#[test]
fn kills_and_timeouts_are_typed_payloads() {
    green_core::run(|| {
        let g = green_core::spawn(|| {
            panic::catch_unwind(|| green_core::sleep(Duration::from_secs(10))).unwrap_err()
        });
        green_core::yield_now();
        g.kill();
        let caught = g.take().unwrap();
        assert!(caught.is::<GreenletExit>());
        assert!(green_core::is_kill_or_timeout(&*caught));

        let g = green_core::spawn(|| {
            panic::catch_unwind(|| green_core::sleep(Duration::from_secs(10))).unwrap_err()
        });
        green_core::yield_now();
        g.kill_with("enough");
        let caught = g.take().unwrap();
        let kill = caught.downcast_ref::<KillPayload>().expect("a KillPayload");
        assert_eq!(kill.message(), "killed: enough");
        assert_eq!(green_core::panic_message(&*caught), "killed: enough");

        let t = Timeout::start_new(Duration::from_millis(1));
        let caught =
            panic::catch_unwind(|| green_core::sleep(Duration::from_secs(10))).unwrap_err();
        assert!(t.is(&*caught));
        assert!(green_core::is_kill_or_timeout(&*caught));
        assert!(green_core::panic_message(&*caught).starts_with("timeout after"));
    });
}

/// The process-level view: a `LoopExit` that ends `main` prints its message
/// at the user's line (not `Box<dyn Any>`).
#[test]
fn an_uncaught_loop_exit_prints_its_message() {
    if std::env::var_os("GREEN_TEST_CHILD").is_some() {
        let g: Greenlet<()> = Greenlet::new(|| ());
        g.join();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--exact",
            "an_uncaught_loop_exit_prints_its_message",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("GREEN_TEST_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(LoopExit::MESSAGE), "{stderr}");
    assert!(!stderr.contains("Box<dyn Any>"), "{stderr}");
    assert!(stderr.contains("loop_exit_payload.rs"), "{stderr}");
}
