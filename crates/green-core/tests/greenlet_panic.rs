//! Panics inside greenlets: caught at the root, the greenlet fails, `get()`
//! carries the message, the hub keeps running, and the failure is reported
//! once on stderr and as a `tracing` error event; `GreenletExit` is not.
//!
//! Stderr is checked in a child process: this binary run again with
//! `GREEN_CORE_PANIC_CHILD` naming the scenario.

#[allow(unreachable_pub)] // The shared fixtures are `pub` for every test binary.
mod support;

use std::panic;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use green_core::{sleep, spawn, spawn_raw, yield_now, Builder, ErrorKind, GreenletExit};
use support::{stdout_value, DropCounter, CHILD_LIMIT};

const CHILD_ENV: &str = "GREEN_CORE_PANIC_CHILD";

#[test]
fn panic_is_caught_and_get_returns_its_message() {
    green_core::run(|| {
        let g = spawn(|| -> u32 { panic!("boom at the root") });
        let err = g.get().expect_err("a panicking greenlet fails");
        assert_eq!(err.kind(), ErrorKind::Panicked);
        assert_eq!(err.message(), "boom at the root");
        assert!(err.to_string().contains("boom at the root"));
        assert!(!err.is_exit());
        assert!(g.dead() && g.ready());
        assert!(!g.is_alive());
        assert!(!g.successful());
        assert_eq!(g.value(), None);
        assert_eq!(g.exception().map(|e| e.kind()), Some(ErrorKind::Panicked));
    });
}

#[test]
fn formatted_panic_message_is_kept() {
    green_core::run(|| {
        let n = 7;
        let g = spawn(move || -> () { panic!("value was {n}") });
        assert_eq!(g.get().unwrap_err().message(), "value was 7");
    });
}

#[test]
fn message_is_handed_out_every_time_and_the_payload_once() {
    green_core::run(|| {
        let g = spawn(|| -> () { panic!("kept once") });
        g.join();
        assert_eq!(g.get().unwrap_err().message(), "kept once");
        assert_eq!(g.get().unwrap_err().message(), "kept once");
        assert_eq!(g.try_get().unwrap_err().message(), "kept once");
        let payload = g.take_exception_payload().expect("the payload is kept");
        assert_eq!(support::panic_message(&*payload), "kept once");
        assert!(g.take_exception_payload().is_none(), "handed out once");
        assert_eq!(
            g.get().unwrap_err().message(),
            "kept once",
            "the message stays"
        );
    });
}

#[test]
fn panic_after_blocking_runs_destructors_once() {
    green_core::run(|| {
        let counter = DropCounter::new();
        let captured = counter.token();
        let c = counter.clone();
        let g = spawn(move || {
            let _captured = captured;
            let _local = c.token();
            sleep(Duration::from_millis(5));
            panic!("after a sleep");
        });
        assert_eq!(g.get().unwrap_err().message(), "after a sleep");
        assert_eq!(counter.drops(), 2);
    });
}

#[test]
fn hub_keeps_running_after_panics() {
    green_core::run(|| {
        let sibling = spawn(|| {
            sleep(Duration::from_millis(20));
            "sibling done"
        });
        let failing: Vec<_> = (0..3)
            .map(|i| {
                spawn(move || -> () {
                    yield_now();
                    panic!("failure {i}");
                })
            })
            .collect();
        for (i, g) in failing.iter().enumerate() {
            assert_eq!(g.get().unwrap_err().message(), format!("failure {i}"));
        }
        assert_eq!(sibling.get().unwrap(), "sibling done");
        // New greenlets, timers and the main greenlet all still work.
        let later = spawn(|| {
            sleep(Duration::from_millis(5));
            42
        });
        sleep(Duration::from_millis(5));
        assert_eq!(later.get().unwrap(), 42);
        spawn_raw(|| panic!("a raw greenlet fails too"));
        yield_now();
        assert_eq!(spawn(|| 1).get().unwrap(), 1);
    });
}

#[test]
fn greenlet_exit_is_a_success_not_a_failure() {
    green_core::run(|| {
        let killed = spawn(|| sleep(Duration::from_secs(60)));
        yield_now();
        killed.kill();
        assert!(killed.dead());
        assert!(killed.successful());
        assert!(killed.get().unwrap_err().is_exit());

        let exits_itself = spawn(|| -> () { panic::resume_unwind(Box::new(GreenletExit)) });
        exits_itself.join();
        assert!(exits_itself.successful());
        assert_eq!(
            exits_itself.exception().map(|e| e.kind()),
            Some(ErrorKind::Exited)
        );
    });
}

// ===== stderr report, in a child process =====

/// Not a test of its own: the body the child processes run.
#[test]
#[ignore = "child body"]
fn child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    match mode.as_str() {
        "named_panic" => green_core::run(|| {
            let g = Builder::new()
                .name("failing-worker")
                .spawn(|| -> u32 { panic!("kaboom-7") })
                .unwrap();
            println!("SITE {}", g.spawn_site());
            // Asking twice must not report twice.
            let _ = g.get();
            let _ = g.get();
            let _ = g.exception();
            // The hub goes on; a later, healthy greenlet reports nothing.
            assert_eq!(spawn(|| 1).get().unwrap(), 1);
            println!("CHILD DONE");
        }),
        "unnamed_panic" => green_core::run(|| {
            let g = spawn(|| -> u32 { panic!("kaboom-8") });
            println!("SITE {}", g.spawn_site());
            println!("NAME {}", g.name());
            let _ = g.get();
            println!("CHILD DONE");
        }),
        "greenlet_exit" => green_core::run(|| {
            let parked = Builder::new()
                .name("parked-victim")
                .spawn(|| sleep(Duration::from_secs(60)))
                .unwrap();
            yield_now();
            parked.kill();
            let unstarted = Builder::new()
                .name("unstarted-victim")
                .spawn(|| ())
                .unwrap();
            unstarted.kill();
            let own = Builder::new()
                .name("exits-itself")
                .spawn(|| -> () { panic::resume_unwind(Box::new(GreenletExit)) })
                .unwrap();
            own.join();
            // Left alive: teardown unwinds it with GreenletExit.
            Builder::new()
                .name("torn-down")
                .spawn(|| sleep(Duration::from_secs(60)))
                .unwrap();
            yield_now();
            println!("CHILD DONE");
        }),
        other => panic!("unknown child mode {other}"),
    }
}

/// Runs the child scenario `mode`, which must succeed; returns its output
/// and its stderr.
fn run_child(mode: &str) -> (Output, String) {
    let out = support::run_child(CHILD_ENV, mode, CHILD_LIMIT);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "child failed: {stderr}");
    (out, stderr)
}

#[test]
fn panic_is_reported_once_on_stderr_with_name_and_spawn_site() {
    let (out, stderr) = run_child("named_panic");
    assert_eq!(stdout_value(&out, "CHILD"), "DONE");
    let site = stdout_value(&out, "SITE");
    assert!(site.contains("greenlet_panic.rs:"), "site: {site}");
    let line = format!("green: greenlet 'failing-worker' (spawned at {site}) panicked at ");
    assert_eq!(
        stderr.matches(&line).count(),
        1,
        "expected once: {line}\nstderr: {stderr}"
    );
    assert_eq!(stderr.matches(": kaboom-7").count(), 1, "stderr: {stderr}");
    assert_eq!(
        stderr.matches("green: ").count(),
        1,
        "nothing else reported: {stderr}"
    );
}

#[test]
fn unnamed_greenlet_is_reported_under_its_default_name() {
    let (out, stderr) = run_child("unnamed_panic");
    let site = stdout_value(&out, "SITE");
    let name = stdout_value(&out, "NAME");
    assert!(name.starts_with("Greenlet-"), "name: {name}");
    let line = format!("green: greenlet '{name}' (spawned at {site}) panicked at ");
    assert_eq!(
        stderr.matches(&line).count(),
        1,
        "expected once: {line}\nstderr: {stderr}"
    );
    assert_eq!(stderr.matches(": kaboom-8").count(), 1, "stderr: {stderr}");
}

#[test]
fn greenlet_exit_is_not_reported() {
    let (out, stderr) = run_child("greenlet_exit");
    assert_eq!(stdout_value(&out, "CHILD"), "DONE");
    assert!(
        !stderr.contains("green: "),
        "a GreenletExit was reported: {stderr}"
    );
    assert!(!stderr.contains("failed"), "stderr: {stderr}");
}

// ===== tracing =====

/// A minimal subscriber that counts error-level events and keeps the
/// `greenlet` field of each.
#[derive(Clone, Default)]
struct ErrorCounter {
    errors: Arc<AtomicUsize>,
    greenlets: Arc<Mutex<Vec<String>>>,
}

struct GreenletField(Option<String>);

impl tracing::field::Visit for GreenletField {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "greenlet" {
            self.0 = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "greenlet" && self.0.is_none() {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl tracing::Subscriber for ErrorCounter {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() == tracing::Level::ERROR {
            self.errors.fetch_add(1, Ordering::SeqCst);
            let mut field = GreenletField(None);
            event.record(&mut field);
            self.greenlets
                .lock()
                .unwrap()
                .push(field.0.unwrap_or_default());
        }
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn panic_emits_one_tracing_error_event_naming_the_greenlet() {
    let counter = ErrorCounter::default();
    tracing::subscriber::with_default(counter.clone(), || {
        green_core::run(|| {
            let g = Builder::new()
                .name("traced-worker")
                .spawn(|| -> () { panic!("traced failure") })
                .unwrap();
            let _ = g.get();
            let _ = g.get();
            assert_eq!(spawn(|| 2).get().unwrap(), 2);
        });
    });
    assert_eq!(counter.errors.load(Ordering::SeqCst), 1);
    let greenlets = counter.greenlets.lock().unwrap().clone();
    assert_eq!(greenlets.len(), 1);
    assert!(
        greenlets[0].contains("traced-worker"),
        "field: {greenlets:?}"
    );
}

#[test]
fn greenlet_exit_emits_no_tracing_error_event() {
    let counter = ErrorCounter::default();
    tracing::subscriber::with_default(counter.clone(), || {
        green_core::run(|| {
            let g = spawn(|| sleep(Duration::from_secs(60)));
            yield_now();
            g.kill();
            let own = spawn(|| -> () { panic::resume_unwind(Box::new(GreenletExit)) });
            own.join();
            // Torn down at the end of `run`.
            spawn(|| sleep(Duration::from_secs(60)));
            yield_now();
        });
    });
    assert_eq!(counter.errors.load(Ordering::SeqCst), 0);
}
