//! Links: `link`, `link_value`, `link_exception`, `rawlink` and `unlink` —
//! when they fire, in what order, where they run, and how failures in them
//! are contained.

#[allow(unreachable_pub)] // support/mod.rs is shared; its `pub` items are crate-local here.
mod support;

use std::cell::{Cell, RefCell};
use std::panic;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use green_core::{current, sleep, spawn, yield_now, Builder, Greenlet, GreenletRef, LinkId};
use support::{catch, panic_message, wait_for, DropCounter, Log, MS};

/// Lets the hub run for a while (several loop iterations and timers).
/// Uses timed sleeps only: `yield_now` with nothing else ready is not what
/// these tests are about.
fn settle() {
    for _ in 0..5 {
        sleep(2 * MS);
    }
}

fn counter() -> Rc<Cell<usize>> {
    Rc::new(Cell::new(0))
}

fn bump(c: &Rc<Cell<usize>>) -> impl FnOnce(&Greenlet<i32>) + 'static {
    let c = Rc::clone(c);
    move |_| c.set(c.get() + 1)
}

/// A link callback that logs `entry`.
fn push(log: &Log, entry: &'static str) -> impl FnOnce(&Greenlet<i32>) + 'static {
    let log = log.clone();
    move |_| log.push(entry)
}

// ===== firing after death, in order =====

#[test]
fn rawlinks_fire_after_death_in_registration_order() {
    green_core::run(|| {
        let log = Log::new();
        let body_log = log.clone();
        let g = spawn(move || {
            sleep(20 * MS);
            body_log.push("body");
            1
        });
        for name in ["r1", "r2", "r3"] {
            g.rawlink(push(&log, name));
        }
        sleep(5 * MS);
        assert!(log.snapshot().is_empty(), "no link fires while it lives");
        g.join();
        settle();
        assert_eq!(log.take(), ["body", "r1", "r2", "r3"]);
    });
}

#[test]
fn green_links_fire_after_death_in_registration_order() {
    green_core::run(|| {
        let log = Log::new();
        let body_log = log.clone();
        let g = spawn(move || {
            sleep(20 * MS);
            body_log.push("body");
            1
        });
        for name in ["l1", "l2", "l3", "l4"] {
            g.link(push(&log, name));
        }
        sleep(5 * MS);
        assert!(log.snapshot().is_empty(), "no link fires while it lives");
        g.join();
        wait_for("four links", || log.snapshot().len() == 5);
        assert_eq!(log.take(), ["body", "l1", "l2", "l3", "l4"]);
    });
}

#[test]
fn mixed_link_kinds_fire_in_registration_order() {
    // gevent calls every link from one list, in order; a `link` callback is
    // switched into at once, so it runs (until it blocks) before the next
    // link is called, whatever that link's kind.
    green_core::run(|| {
        let log = Log::new();
        let g = spawn(|| 1);
        g.link(push(&log, "link-a"));
        g.rawlink(push(&log, "raw-b"));
        g.link_value(push(&log, "value-c"));
        g.rawlink(push(&log, "raw-d"));
        g.join();
        wait_for("four links", || log.snapshot().len() == 4);
        assert_eq!(log.take(), ["link-a", "raw-b", "value-c", "raw-d"]);
    });
}

#[test]
fn link_callbacks_receive_the_finished_greenlet() {
    green_core::run(|| {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let g = spawn(|| 7);
        {
            let seen = Rc::clone(&seen);
            g.rawlink(move |g| seen.borrow_mut().push(("raw", g.dead(), g.value())));
        }
        {
            let seen = Rc::clone(&seen);
            g.link(move |g| seen.borrow_mut().push(("link", g.dead(), g.value())));
        }
        g.join();
        wait_for("both links", || seen.borrow().len() == 2);
        let mut seen = seen.take();
        seen.sort();
        assert_eq!(seen, [("link", true, Some(7)), ("raw", true, Some(7))]);
    });
}

// ===== LinkId and unlink =====

#[test]
fn every_link_kind_returns_a_distinct_link_id() {
    green_core::run(|| {
        let g = spawn(|| 1);
        let ids = [
            g.link(|_| {}),
            g.link_value(|_| {}),
            g.link_exception(|_| {}),
            g.rawlink(|_| {}),
            g.link(|_| {}),
        ];
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                assert_ne!(a, b);
            }
        }
        g.join();
    });
}

#[test]
fn unlink_removes_only_the_named_link() {
    green_core::run(|| {
        let log = Log::new();
        let g = spawn(|| {
            sleep(10 * MS);
            1
        });
        let mut ids = Vec::new();
        for name in ["raw-1", "raw-2", "raw-3"] {
            let log = log.clone();
            ids.push(g.rawlink(move |_| log.push(name)));
        }
        for name in ["link-4", "link-5"] {
            let log = log.clone();
            ids.push(g.link(move |_| log.push(name)));
        }
        assert!(g.unlink(ids[1]), "unlink finds a link that has not fired");
        assert!(!g.unlink(ids[1]), "a removed link is not there twice");
        assert!(g.unlink(ids[3]));
        g.join();
        wait_for("three links", || log.snapshot().len() == 3);
        settle();
        assert_eq!(log.take(), ["raw-1", "raw-3", "link-5"]);
    });
}

#[test]
fn unlink_after_the_link_fired_returns_false() {
    green_core::run(|| {
        let fired = counter();
        let g = spawn(|| 1);
        let id = g.rawlink(bump(&fired));
        g.join();
        settle();
        assert_eq!(fired.get(), 1);
        assert!(!g.unlink(id));
    });
}

#[test]
fn unlink_with_another_greenlets_link_id_does_nothing() {
    green_core::run(|| {
        let fired = counter();
        let a = spawn(|| 1);
        let b = spawn(|| 2);
        let id_a = a.rawlink(bump(&fired));
        b.rawlink(bump(&fired));
        assert!(
            !b.unlink(id_a),
            "a LinkId only names a link of its own greenlet"
        );
        a.join();
        b.join();
        settle();
        assert_eq!(fired.get(), 2);
    });
}

#[test]
fn a_rawlink_can_unlink_a_later_link_before_it_fires() {
    green_core::run(|| {
        let log = Log::new();
        let g = spawn(|| 1);
        let later: Rc<Cell<Option<LinkId>>> = Rc::new(Cell::new(None));
        {
            let log = log.clone();
            let later = Rc::clone(&later);
            g.rawlink(move |g| {
                log.push("first");
                let removed = g.unlink(later.get().expect("the id was stored"));
                log.push(format!("removed={removed}"));
            });
        }
        {
            let log = log.clone();
            later.set(Some(g.rawlink(move |_| log.push("second"))));
        }
        g.join();
        settle();
        assert_eq!(log.take(), ["first", "removed=true"]);
    });
}

// ===== where callbacks run =====

#[test]
fn rawlink_runs_in_the_hub_where_there_is_no_current_greenlet() {
    green_core::run(|| {
        let outcome: Rc<RefCell<Option<Result<String, String>>>> = Rc::new(RefCell::new(None));
        let g = spawn(|| 1);
        {
            let outcome = Rc::clone(&outcome);
            g.rawlink(move |_| {
                let r = panic::catch_unwind(current)
                    .map(|c| c.name())
                    .map_err(|p| panic_message(&*p));
                *outcome.borrow_mut() = Some(r);
            });
        }
        g.join();
        settle();
        let outcome = outcome.take().expect("the rawlink ran");
        let message = outcome.expect_err("current() has no greenlet to return in the hub");
        assert!(message.contains("hub"), "message: {message}");
    });
}

#[test]
fn blocking_calls_in_a_rawlink_panic_with_a_message_about_the_hub() {
    green_core::run(|| {
        let messages = Rc::new(RefCell::new(Vec::new()));
        let other = spawn(|| {
            sleep(Duration::from_secs(10));
            0
        });
        let g = spawn(|| 1);
        {
            let messages = Rc::clone(&messages);
            let other = other.clone();
            g.rawlink(move |_| {
                type Call = Box<dyn FnOnce()>;
                let calls: [(&str, Call); 3] = [
                    ("sleep", Box::new(|| sleep(10 * MS))),
                    ("yield_now", Box::new(yield_now)),
                    ("join", Box::new(move || other.join())),
                ];
                for (what, call) in calls {
                    let r = catch(call);
                    let message = match r {
                        Ok(()) => "<returned>".to_string(),
                        Err(p) => panic_message(&*p),
                    };
                    messages.borrow_mut().push((what, message));
                }
            });
        }
        let start = Instant::now();
        g.join();
        settle();
        let messages = messages.take();
        assert_eq!(messages.len(), 3, "the rawlink ran: {messages:?}");
        for (what, message) in &messages {
            assert!(
                message.contains("hub"),
                "{what} inside a rawlink must fail clearly, got: {message}"
            );
        }
        assert!(!other.dead(), "the refused join did not wait for it");
        assert!(start.elapsed() < Duration::from_secs(5));
        other.kill();
    });
}

/// A tracing subscriber that records every event as one line of
/// `level field=value ...`.
struct Capture(Arc<Mutex<Vec<String>>>);

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = event.metadata().level().to_string();
        event.record(&mut Fields(&mut line));
        self.0.lock().unwrap().push(line);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Runs `f` with a subscriber on this thread; returns the events it saw.
fn capture_events(f: impl FnOnce()) -> Vec<String> {
    let events = Arc::new(Mutex::new(Vec::new()));
    tracing::subscriber::with_default(Capture(Arc::clone(&events)), f);
    let events = events.lock().unwrap().clone();
    events
}

#[test]
fn a_blocking_rawlink_is_reported_and_the_later_links_still_run() {
    let log = Log::new();
    let events = capture_events(|| {
        green_core::run(|| {
            let g = Builder::new()
                .name("linked-worker")
                .spawn(|| 1)
                .expect("spawn");
            g.rawlink(|_| sleep(10 * MS));
            g.rawlink(push(&log, "raw after"));
            g.link(push(&log, "link after"));
            g.join();
            wait_for("the later links", || log.snapshot().len() == 2);
            // The hub keeps running.
            sleep(5 * MS);
            assert_eq!(spawn(|| 5).get().unwrap(), 5);
        });
    });
    assert_eq!(log.take(), ["raw after", "link after"]);
    let reports: Vec<&String> = events
        .iter()
        .filter(|e| e.starts_with("ERROR") && e.contains("linked-worker"))
        .collect();
    assert_eq!(
        reports.len(),
        1,
        "reported once, naming the greenlet: {events:?}"
    );
    assert!(
        reports[0].contains("hub"),
        "the report says why: {}",
        reports[0]
    );
}

#[test]
fn a_panicking_rawlink_report_names_the_greenlet_as_its_name_does() {
    let name = Rc::new(RefCell::new(String::new()));
    let events = capture_events(|| {
        green_core::run(|| {
            let g = spawn(|| 1);
            *name.borrow_mut() = g.name();
            g.rawlink(|_| panic!("rawlink boom"));
            g.join();
            settle();
        });
    });
    let name = name.take();
    let reports: Vec<&String> = events
        .iter()
        .filter(|e| e.starts_with("ERROR") && e.contains("rawlink boom"))
        .collect();
    assert_eq!(reports.len(), 1, "reported once: {events:?}");
    assert!(
        reports[0].contains(&format!("{name}\"")) || reports[0].contains(&format!("{name} ")),
        "the report names the greenlet {name:?} as name() does: {}",
        reports[0]
    );
}

#[test]
fn a_rawlink_may_spawn_and_kill_without_blocking() {
    green_core::run(|| {
        let log = Log::new();
        let victim = spawn(|| {
            sleep(Duration::from_secs(10));
            0
        });
        let g = spawn(|| 1);
        {
            let log = log.clone();
            let victim = victim.clone();
            g.rawlink(move |_| {
                victim.kill_nowait();
                let log2 = log.clone();
                spawn(move || log2.push("spawned from a rawlink"));
                log.push("rawlink done");
            });
        }
        g.join();
        victim.join();
        assert!(victim.successful());
        wait_for("the spawned greenlet", || log.snapshot().len() == 2);
        assert_eq!(log.take(), ["rawlink done", "spawned from a rawlink"]);
    });
}

#[test]
fn link_callback_runs_in_a_fresh_greenlet_and_may_block() {
    green_core::run(|| {
        let seen: Rc<RefCell<Vec<(GreenletRef, Duration)>>> = Rc::new(RefCell::new(Vec::new()));
        let g = spawn(|| 1);
        for _ in 0..2 {
            let seen = Rc::clone(&seen);
            g.link(move |_| {
                let me = current();
                let start = Instant::now();
                sleep(20 * MS);
                seen.borrow_mut().push((me, start.elapsed()));
            });
        }
        g.join();
        wait_for("both links", || seen.borrow().len() == 2);
        let seen = seen.take();
        let main = current();
        assert!(main.is_main());
        for (me, slept) in &seen {
            assert!(!me.is_main(), "a link runs in its own greenlet");
            assert!(!me.ptr_eq(&main));
            assert!(!me.ptr_eq(&g.as_ref()), "not in the dead greenlet");
            assert!(*slept >= 20 * MS, "the sleep in the link lasted {slept:?}");
        }
        assert!(
            !seen[0].0.ptr_eq(&seen[1].0),
            "each link gets a greenlet of its own"
        );
    });
}

#[test]
fn a_blocking_link_does_not_delay_the_next_link() {
    green_core::run(|| {
        let log = Log::new();
        let g = spawn(|| 1);
        {
            let log = log.clone();
            g.link(move |_| {
                log.push("slow start");
                sleep(50 * MS);
                log.push("slow end");
            });
        }
        g.link(push(&log, "quick"));
        g.join();
        wait_for("three entries", || log.snapshot().len() == 3);
        assert_eq!(log.take(), ["slow start", "quick", "slow end"]);
    });
}

// ===== links added after death =====

#[test]
fn links_added_after_death_fire_once_and_later() {
    green_core::run(|| {
        let raw = counter();
        let green = counter();
        let value = counter();
        let exception = counter();
        let g = spawn(|| 3);
        g.join();
        settle();
        assert!(g.dead());
        g.rawlink(bump(&raw));
        g.link(bump(&green));
        g.link_value(bump(&value));
        g.link_exception(bump(&exception));
        assert_eq!(raw.get(), 0, "not called synchronously by rawlink()");
        assert_eq!(green.get(), 0);
        wait_for("the links", || {
            raw.get() == 1 && green.get() == 1 && value.get() == 1
        });
        settle();
        assert_eq!(
            (raw.get(), green.get(), value.get(), exception.get()),
            (1, 1, 1, 0)
        );
    });
}

#[test]
fn a_link_added_after_death_does_not_refire_earlier_links() {
    green_core::run(|| {
        let first = counter();
        let second = counter();
        let g = spawn(|| 3);
        g.rawlink(bump(&first));
        g.join();
        settle();
        assert_eq!(first.get(), 1);
        g.rawlink(bump(&second));
        settle();
        assert_eq!((first.get(), second.get()), (1, 1));
    });
}

// ===== failures inside links =====

#[test]
fn a_panic_in_one_link_does_not_stop_the_others() {
    green_core::run(|| {
        let log = Log::new();
        let g = spawn(|| 1);
        g.rawlink(push(&log, "raw 1"));
        g.rawlink(|_| panic!("raw link panics"));
        g.rawlink(push(&log, "raw 3"));
        g.link(|_| panic!("green link panics"));
        g.link(push(&log, "link 5"));
        g.join();
        wait_for("the surviving links", || log.snapshot().len() == 3);
        settle();
        assert_eq!(log.take(), ["raw 1", "raw 3", "link 5"]);
        assert!(
            g.successful(),
            "a link's panic is not the greenlet's failure"
        );
        assert_eq!(g.get().unwrap(), 1);
        // The hub still works.
        assert_eq!(spawn(|| 9).get().unwrap(), 9);
    });
}

#[test]
fn a_panic_in_a_link_does_not_affect_other_greenlets_links() {
    green_core::run(|| {
        let fired = counter();
        let a = spawn(|| 1);
        let b = spawn(|| 2);
        a.rawlink(|_| panic!("a's link panics"));
        b.rawlink(bump(&fired));
        a.join();
        b.join();
        settle();
        assert_eq!(fired.get(), 1);
    });
}

// ===== link_value / link_exception =====

#[test]
fn link_value_fires_only_on_success_and_link_exception_only_on_failure() {
    green_core::run(|| {
        let ok_value = counter();
        let ok_exception = counter();
        let bad_value = counter();
        let bad_exception = counter();
        let ok = spawn(|| 1);
        let bad: Greenlet<i32> = spawn(|| panic!("this greenlet fails"));
        ok.link_value(bump(&ok_value));
        ok.link_exception(bump(&ok_exception));
        bad.link_value(bump(&bad_value));
        bad.link_exception(bump(&bad_exception));
        ok.join();
        bad.join();
        wait_for("links", || ok_value.get() == 1 && bad_exception.get() == 1);
        settle();
        assert_eq!(ok_value.get(), 1);
        assert_eq!(ok_exception.get(), 0);
        assert_eq!(bad_value.get(), 0);
        assert_eq!(bad_exception.get(), 1);
    });
}

/// Kills a parked greenlet with `kill`; returns how many times its
/// `link_value` and its `link_exception` callbacks fired, once one has and
/// the hub has settled.
fn value_and_exception_links_after(kill: impl FnOnce(&Greenlet<i32>)) -> (usize, usize) {
    let value = counter();
    let exception = counter();
    let g = spawn(|| {
        sleep(Duration::from_secs(10));
        1
    });
    g.link_value(bump(&value));
    g.link_exception(bump(&exception));
    yield_now();
    kill(&g);
    wait_for("a link", || value.get() + exception.get() >= 1);
    settle();
    (value.get(), exception.get())
}

#[test]
fn a_greenlet_killed_with_greenlet_exit_fires_link_value_not_link_exception() {
    green_core::run(|| {
        let fired = value_and_exception_links_after(|g| {
            g.kill();
            assert!(g.successful());
        });
        assert_eq!(fired, (1, 0));
    });
}

#[test]
fn a_greenlet_killed_with_another_payload_fires_link_exception() {
    green_core::run(|| {
        let fired = value_and_exception_links_after(|g| {
            g.kill_with("stop now");
            assert!(!g.successful());
        });
        assert_eq!(fired, (0, 1));
    });
}

#[test]
fn link_exception_callback_sees_the_panic_message() {
    green_core::run(|| {
        let message = Rc::new(RefCell::new(None));
        let g: Greenlet<i32> = spawn(|| panic!("the reason it failed"));
        {
            let message = Rc::clone(&message);
            g.link_exception(move |g| {
                *message.borrow_mut() = g.exception().map(|e| e.message().to_string());
            });
        }
        g.join();
        wait_for("link_exception", || message.borrow().is_some());
        let message = message.take().unwrap();
        assert!(message.contains("the reason it failed"), "{message}");
    });
}

// ===== killed before it ran =====

#[test]
fn a_greenlet_killed_before_it_ran_fires_its_links_once_later() {
    green_core::run(|| {
        let drops = DropCounter::new();
        let ran = Rc::new(Cell::new(false));
        let raw = counter();
        let green = counter();
        let value = counter();
        let exception = counter();
        let g = {
            let token = drops.token();
            let ran = Rc::clone(&ran);
            spawn(move || {
                let _token = token;
                ran.set(true);
                1
            })
        };
        g.rawlink(bump(&raw));
        g.link(bump(&green));
        g.link_value(bump(&value));
        g.link_exception(bump(&exception));
        g.kill();
        assert!(g.dead(), "dead at once");
        assert!(g.successful(), "GreenletExit is a success");
        assert_eq!(raw.get(), 0, "links do not fire inside kill()");
        assert_eq!(green.get(), 0);
        assert_eq!(value.get(), 0);
        wait_for("the links", || {
            raw.get() == 1 && green.get() == 1 && value.get() == 1
        });
        settle();
        assert!(!ran.get(), "it never runs");
        assert_eq!(
            (raw.get(), green.get(), value.get(), exception.get()),
            (1, 1, 1, 0),
            "each link fired once"
        );
        assert_eq!(drops.drops(), 1, "its closure was dropped exactly once");
    });
}

#[test]
fn a_never_started_greenlet_that_is_killed_fires_its_links_once() {
    green_core::run(|| {
        let drops = DropCounter::new();
        let fired = counter();
        let token = drops.token();
        let g = Greenlet::new(move || {
            let _token = token;
            1
        });
        g.rawlink(bump(&fired));
        g.kill();
        assert!(g.dead());
        assert_eq!(fired.get(), 0, "not inside kill()");
        wait_for("the link", || fired.get() == 1);
        settle();
        g.start();
        settle();
        assert_eq!(fired.get(), 1);
        assert!(g.try_get().is_err(), "it produced no value");
        assert_eq!(drops.drops(), 1);
    });
}

/// A link does not keep its greenlet alive: a greenlet that never started
/// and whose handles are gone is freed with its closure, links and all
/// (found by review: each link captured a handle, a reference cycle).
#[test]
fn links_do_not_keep_a_never_started_greenlet_alive() {
    let drops = DropCounter::new();
    let token = drops.token();
    green_core::run(|| {
        let g = green_core::Greenlet::new(move || drop(token));
        g.link(|_| ());
        g.rawlink(|_| ());
        g.link_value(|_| ());
        drop(g);
    });
    assert_eq!(
        drops.drops(),
        1,
        "the closure and what it captured were freed"
    );
}
