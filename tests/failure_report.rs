//! A greenlet's failure is reported once, naming the greenlet, where it was
//! spawned and where it panicked, through a reporter the application can
//! replace or silence (gevent's `Hub.handle_error` / `exception_stream`).

use std::cell::RefCell;
use std::process::Command;
use std::sync::Once;

use green_core::{Builder, Failure};

thread_local! {
    static SEEN: RefCell<Vec<Failure>> = const { RefCell::new(Vec::new()) };
}

/// Every test of this binary reports into its own thread's list (the
/// reporter is process-wide; each failure is reported on its own thread).
fn collect_failures() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        green_core::set_failure_reporter(|f| SEEN.with(|seen| seen.borrow_mut().push(f.clone())));
    });
}

fn seen() -> Vec<Failure> {
    SEEN.with(|seen| seen.borrow_mut().drain(..).collect())
}

#[test]
fn a_reporter_gets_each_failure_once_with_name_spawn_site_and_panic_site() {
    collect_failures();
    green_core::run(|| {
        let g = Builder::new()
            .name("parser")
            .spawn(|| -> u8 { panic!("bad byte 0x{:02x}", 7) })
            .unwrap();
        assert!(g.get().is_err());
    });
    let failures = seen();
    assert_eq!(failures.len(), 1, "{failures:?}");
    let f = &failures[0];
    assert_eq!(f.what(), "greenlet 'parser'");
    assert_eq!(f.message(), "bad byte 0x07");
    assert!(f
        .spawned_at()
        .unwrap()
        .file()
        .ends_with("failure_report.rs"));
    let at = f.panicked_at().expect("the hook saw the panic");
    assert!(at.contains("failure_report.rs"), "{at}");
    let shown = f.to_string();
    let line = shown.lines().next().unwrap();
    assert!(
        line.starts_with("green: greenlet 'parser' (spawned at "),
        "{line}"
    );
    assert!(line.ends_with(": bad byte 0x07"), "{line}");
}

#[test]
fn a_panic_the_greenlet_catches_is_not_a_failure() {
    collect_failures();
    green_core::run(|| {
        let g = green_core::spawn(|| green_core::catch_unwind(|| panic!("handled")).is_err());
        assert!(g.get().unwrap());
    });
    assert!(seen().is_empty());
}

#[test]
fn kills_are_not_failures_and_rawlink_panics_are() {
    collect_failures();
    green_core::run(|| {
        let g = Builder::new()
            .name("sleeper")
            .spawn(|| green_core::sleep(std::time::Duration::from_secs(10)))
            .unwrap();
        g.rawlink(|_| panic!("link broke"));
        green_core::yield_now();
        g.kill();
        green_core::sleep(std::time::Duration::from_millis(1));
    });
    let failures = seen();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].what(), "a rawlink of sleeper");
    assert_eq!(failures[0].message(), "link broke");
}

/// Runs this test binary's `name` test in a child process (with
/// `GREEN_TEST_CHILD` set) and returns its stderr.
fn child_stderr(name: &str) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env("GREEN_TEST_CHILD", "1")
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn in_child() -> bool {
    std::env::var_os("GREEN_TEST_CHILD").is_some()
}

#[test]
fn by_default_a_failure_is_one_line_on_stderr() {
    if in_child() {
        green_core::run(|| {
            let g = Builder::new()
                .name("worker-7")
                .spawn(|| -> u8 { panic!("out of widgets") })
                .unwrap();
            assert!(g.get().is_err());
        });
        return;
    }
    let stderr = child_stderr("by_default_a_failure_is_one_line_on_stderr");
    assert_eq!(stderr.matches("out of widgets").count(), 1, "{stderr}");
    assert!(
        !stderr.contains("' panicked at"),
        "the std hook printed it too: {stderr}"
    );
    let line = stderr
        .lines()
        .find(|l| l.contains("out of widgets"))
        .unwrap();
    assert!(
        line.starts_with("green: greenlet 'worker-7' (spawned at tests/failure_report.rs:"),
        "{line}"
    );
    assert!(
        line.contains(") panicked at tests/failure_report.rs:"),
        "{line}"
    );
}

#[test]
fn silenced_failures_print_nothing() {
    if in_child() {
        green_core::silence_failures();
        green_core::run(|| {
            let g = green_core::spawn(|| -> u8 { panic!("quietly") });
            assert_eq!(g.get().unwrap_err().message(), "quietly");
        });
        return;
    }
    let stderr = child_stderr("silenced_failures_print_nothing");
    assert!(!stderr.contains("quietly"), "{stderr}");
}

#[test]
fn a_reporter_that_panics_does_not_take_the_hub_down() {
    if in_child() {
        green_core::set_failure_reporter(|_| panic!("reporter bug"));
        let v = green_core::run(|| {
            let g = green_core::spawn(|| -> u8 { panic!("first") });
            let _ = g.get();
            green_core::spawn(|| 5).get().unwrap()
        });
        assert_eq!(v, 5);
        return;
    }
    let stderr = child_stderr("a_reporter_that_panics_does_not_take_the_hub_down");
    assert!(stderr.contains("the failure reporter panicked"), "{stderr}");
    assert!(stderr.contains("first"), "{stderr}");
}

/// A panic of the main greenlet is the thread's own: the standard hook
/// prints it as usual.
#[test]
fn a_main_greenlet_panic_is_left_to_the_standard_hook() {
    if in_child() {
        let r = std::panic::catch_unwind(|| green_core::run(|| panic!("main trouble")));
        assert!(r.is_err());
        return;
    }
    let stderr = child_stderr("a_main_greenlet_panic_is_left_to_the_standard_hook");
    assert!(
        stderr.contains("panicked at tests/failure_report.rs"),
        "{stderr}"
    );
    assert!(stderr.contains("main trouble"), "{stderr}");
    assert!(!stderr.contains("green: "), "{stderr}");
}
