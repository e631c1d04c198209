//! `Event`, `AsyncResult` and `Waiter`: the behaviours of gevent's own test
//! suites for them (`test__event.py`, and `test__hub.py`'s `Waiter` tests),
//! ported to green's API, plus the edges a user meets (zero and long
//! timeouts, non-blocking forms, `Debug`, the cross-thread setter, and
//! `wait`/`iwait` over a mixed list).
//!
//! Each test's doc comment names the gevent test it ports; tests of green's
//! own API edges say so instead.

#[allow(unreachable_pub)] // support/mod.rs is shared; its `pub` items are crate-local here.
mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use green_core::sync::{AsyncResult, Event, HubGone, Queue, Semaphore, Waiter};
use green_core::{
    idle, iwait, sleep, spawn, spawn_later, wait, with_timeout_or, yield_now, ErrorKind,
    GreenletError, Timeout, Waitable,
};
use support::{outer_timeout_is_not_lost, waits_out, Log, CLOCK_SLACK, MS};

/// gevent's `DELAY` in these tests: long enough that a zero timeout fires
/// first, short enough to keep the suite quick.
const DELAY: Duration = Duration::from_millis(40);

/// A greenlet that sets `flag` when it runs: it runs only if the caller
/// switches away (to tell a call that switches from one that does not).
fn flag_setter() -> Rc<Cell<bool>> {
    let flag = Rc::new(Cell::new(false));
    let f = Rc::clone(&flag);
    spawn(move || f.set(true));
    flag
}

/// Runs `f` inside the hub (as gevent's `loop.run_callback` does): from the
/// rawlink of a greenlet that finishes at once.
fn in_hub(f: impl FnOnce() + 'static) {
    let trigger = spawn(|| ());
    trigger.rawlink(move |_| f());
}

fn error(message: &str) -> String {
    message.to_string()
}

// ===== Event =====

/// Ports `test__event.py::TestEventWait::test_returns_none_after_timeout`:
/// a timed wait on an event nobody sets returns when the time is up (green
/// returns `false`, gevent `None`/`False`).
#[test]
fn event_wait_timeout_returns_false_once_the_time_is_up() {
    green_core::run(|| {
        let event = Event::new();
        let set = waits_out(200 * MS, |t| event.wait_timeout(t));
        assert!(!set);
        assert!(!event.is_set());
    });
}

/// Ports `test__event.py::TestEventWait::test_outer_timeout_is_not_lost`.
#[test]
fn event_wait_timeout_lets_an_outer_timeout_through() {
    green_core::run(|| {
        let event = Event::new();
        outer_timeout_is_not_lost(|t| {
            event.wait_timeout(t);
        });
    });
}

/// Ports `test__event.py::TestEventWait::test_cover` (`str(Event())`):
/// formatting an event, idle, waited on or set, does not panic and says
/// what it is.
#[test]
fn event_debug_shows_its_state_and_waiters() {
    green_core::run(|| {
        let event = Event::new();
        assert_eq!(format!("{event:?}"), "Event { set: false, waiters: 0 }");
        let waiter = {
            let event = event.clone();
            spawn(move || event.wait())
        };
        yield_now();
        assert_eq!(format!("{event:?}"), "Event { set: false, waiters: 1 }");
        event.set();
        assert!(format!("{event:?}").starts_with("Event { set: true"));
        assert!(waiter.get().unwrap());
        assert_eq!(format!("{event:?}"), "Event { set: true, waiters: 0 }");
    });
}

/// Ports `test__event.py::TestGeventWaitOnEvent::test_returns_none_after_timeout`:
/// `wait([event], timeout)` on an event nobody sets returns nothing ready.
#[test]
fn wait_on_an_unset_event_returns_nothing_after_the_timeout() {
    green_core::run(|| {
        let event = Event::new();
        let ready = waits_out(200 * MS, |t| wait(&[&event], Some(t), None));
        assert!(ready.is_empty(), "{ready:?}");
    });
}

/// Ports `test__event.py::TestGeventWaitOnEvent::test_outer_timeout_is_not_lost`.
#[test]
fn wait_on_an_event_lets_an_outer_timeout_through() {
    green_core::run(|| {
        let event = Event::new();
        outer_timeout_is_not_lost(|t| {
            wait(&[&event], Some(t), None);
        });
    });
}

/// Ports `test__event.py::TestGeventWaitOnEvent::test_set_during_wait`
/// (gevent issue 771): a waiter woken by `set` clears the event and waits
/// on it again with `wait`; the notifier still running must not link the
/// new wait and report the (now cleared) event ready.
#[test]
fn a_new_wait_made_from_a_woken_waiter_does_not_see_a_cleared_event() {
    green_core::run(|| {
        let event = Event::new();
        let waiter = {
            let event = event.clone();
            spawn(move || {
                let setter = {
                    let event = event.clone();
                    spawn(move || event.set())
                };
                assert!(event.wait());
                assert!(event.is_set());
                setter.join();
                event.clear();
                assert!(!event.is_set());
                let ready = wait(&[&event], Some(10 * MS), None);
                assert!(!event.is_set());
                assert!(ready.is_empty(), "a cleared event was reported ready");
            })
        };
        waiter.get().unwrap();
    });
}

/// Ports `test__event.py::TestEvent_SetThenClear{,100,1000}::test`: every
/// greenlet waiting when the event is set wakes with `true`, even though
/// the event is cleared before any of them runs.
#[test]
fn set_then_clear_still_wakes_every_waiter() {
    for n in [1, 100, 1000] {
        green_core::run(|| {
            let event = Event::new();
            let waiters: Vec<_> = (0..n)
                .map(|_| {
                    let event = event.clone();
                    spawn(move || event.wait())
                })
                .collect();
            sleep(MS);
            event.set();
            event.clear();
            for waiter in &waiters {
                assert!(waiter.get().unwrap(), "a waiter of {n} did not see the set");
            }
            assert!(!event.is_set());
        });
    }
}

/// Ports `test__event.py::TestEventBasics::test_wait_while_notifying`
/// (gevent issue 1520): a wait on an event that is set while its notifier
/// is still pending queues behind the earlier waiters (results 1, 2, 3)
/// and needs no turn of the event loop (a zero timer started before the
/// set has not fired yet).
#[test]
fn a_wait_while_the_notifier_is_pending_runs_after_the_earlier_waiters() {
    green_core::run(|| {
        let event = Event::new();
        let results = Rc::new(RefCell::new(Vec::new()));
        for arg in [1, 2] {
            let (event, results) = (event.clone(), Rc::clone(&results));
            spawn(move || {
                event.wait();
                results.borrow_mut().push(arg);
            });
        }
        idle();
        assert_eq!(format!("{event:?}"), "Event { set: false, waiters: 2 }");
        // gevent starts a `check` watcher here; a zero timer is the loop
        // work that would run if the wake-ups took a loop turn.
        let loop_turn = {
            let results = Rc::clone(&results);
            spawn_later(Duration::ZERO, move || results.borrow_mut().push(4))
        };
        event.set();
        event.wait();
        results.borrow_mut().push(3);
        assert_eq!(*results.borrow(), [1, 2, 3]);
        loop_turn.kill();
    });
}

/// Ports `test__event.py::TestEventBasics::test_gevent_wait_twice_when_already_set`.
#[test]
fn wait_twice_on_a_set_event_reports_it_both_times() {
    green_core::run(|| {
        let event = Event::new();
        event.set();
        assert_eq!(wait(&[&event], None, None), [0]);
        assert_eq!(wait(&[&event], None, None), [0]);
    });
}

/// Ports `test__event.py::TestWait{,_notimeout,_count1,_count2}::test`: a
/// sender sets five events and five async results one by one; `wait` over
/// all ten returns every one (no count) or just `count` of them, and only
/// then (the sender has finished only in the first case).
#[test]
fn wait_over_events_and_results_honours_count_and_timeout() {
    const N: usize = 5;
    const PERIOD: Duration = Duration::from_millis(10);
    // gevent waits 1 s for ~0.1 s of sending; a wider margin here keeps a
    // loaded machine from turning it into a timing test.
    for (count, timeout) in [
        (None, Some(Duration::from_secs(10))),
        (None, None),
        (Some(1), Some(Duration::from_secs(10))),
        (Some(2), Some(Duration::from_secs(10))),
    ] {
        green_core::run(|| {
            let events: Vec<Event> = (0..N).map(|_| Event::new()).collect();
            let results: Vec<AsyncResult<()>> = (0..N).map(|_| AsyncResult::new()).collect();
            let sender = {
                let mut events = events.clone();
                let mut results = results.clone();
                spawn(move || {
                    while !events.is_empty() || !results.is_empty() {
                        sleep(PERIOD);
                        if let Some(event) = events.pop() {
                            event.set();
                        }
                        sleep(PERIOD);
                        if let Some(result) = results.pop() {
                            result.set(());
                        }
                    }
                })
            };
            let mut objects: Vec<&dyn Waitable> = Vec::new();
            objects.extend(events.iter().map(|e| e as &dyn Waitable));
            objects.extend(results.iter().map(|r| r as &dyn Waitable));
            let ready = wait(&objects, timeout, count);
            match count {
                None => {
                    assert_eq!(ready.len(), 2 * N, "{ready:?}");
                    assert!(sender.ready(), "all were set only at the sender's end");
                }
                Some(count) => {
                    assert_eq!(ready.len(), count, "{ready:?}");
                    assert!(!sender.ready(), "wait returned early, with only {count}");
                    sender.kill();
                }
            }
            let mut sorted = ready.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), ready.len(), "an index came twice: {ready:?}");
        });
    }
}

/// green's API edges: zero and long timeouts on `Event::wait_timeout`. A
/// zero timeout on a set event returns `true` without switching; on an
/// unset one it is a real zero-second timer (the greenlets already ready
/// run first) and returns `false`; a long one returns as soon as the event
/// is set.
#[test]
fn event_wait_timeout_zero_and_long() {
    green_core::run(|| {
        let event = Event::new();
        event.set();
        let ran = flag_setter();
        assert!(event.wait_timeout(Duration::ZERO));
        assert!(!ran.get(), "a wait on a set event switched");
        event.clear();
        assert!(!event.wait_timeout(Duration::ZERO));
        assert!(
            ran.get(),
            "a zero timeout should let ready greenlets run first"
        );

        let setter = {
            let event = event.clone();
            spawn_later(5 * MS, move || event.set())
        };
        let start = Instant::now();
        assert!(event.wait_timeout(Duration::from_secs(3600)));
        assert!(start.elapsed() < Duration::from_secs(60));
        setter.join();
        // A wait on a set event with no notifier pending returns at once.
        assert!(event.wait());
    });
}

/// green's API edge: a waiter killed while it waits leaves nothing behind;
/// a later `set` wakes only the waiters that are left.
#[test]
fn a_killed_event_waiter_is_unlinked() {
    green_core::run(|| {
        let event = Event::new();
        let doomed = {
            let event = event.clone();
            spawn(move || event.wait())
        };
        let survivor = {
            let event = event.clone();
            spawn(move || event.wait())
        };
        yield_now();
        assert_eq!(format!("{event:?}"), "Event { set: false, waiters: 2 }");
        doomed.kill();
        assert_eq!(format!("{event:?}"), "Event { set: false, waiters: 1 }");
        event.set();
        assert!(survivor.get().unwrap());
        assert_eq!(doomed.get().unwrap_err().kind(), ErrorKind::Exited);
    });
}

/// green's API edge: a `Timeout` around `Event::wait` (no timeout of its
/// own) unwinds out of it and unlinks the waiter.
#[test]
fn a_timeout_around_event_wait_unlinks_the_waiter() {
    green_core::run(|| {
        let event = Event::new();
        let outcome = Timeout::run(5 * MS, || event.wait());
        assert!(outcome.is_err());
        assert_eq!(format!("{event:?}"), "Event { set: false, waiters: 0 }");
    });
}

// ===== AsyncResult =====

/// Ports `test__event.py::TestAsyncResultWait::test_returns_none_after_timeout`.
#[test]
fn async_result_wait_timeout_returns_false_once_the_time_is_up() {
    green_core::run(|| {
        let result: AsyncResult<u8> = AsyncResult::new();
        assert!(!waits_out(200 * MS, |t| result.wait_timeout(t)));
        assert!(!result.ready());
    });
}

/// Ports `test__event.py::TestAsyncResultWait::test_outer_timeout_is_not_lost`.
#[test]
fn async_result_wait_timeout_lets_an_outer_timeout_through() {
    green_core::run(|| {
        let result: AsyncResult<u8> = AsyncResult::new();
        outer_timeout_is_not_lost(|t| {
            result.wait_timeout(t);
        });
    });
}

/// Ports `test__event.py::TestWaitAsyncResult::test_returns_none_after_timeout`
/// and `::test_outer_timeout_is_not_lost` (`gevent.wait([AsyncResult()])`).
#[test]
fn wait_on_an_unset_async_result_times_out_and_keeps_outer_timeouts() {
    green_core::run(|| {
        let result: AsyncResult<u8> = AsyncResult::new();
        let ready = waits_out(200 * MS, |t| wait(&[&result], Some(t), None));
        assert!(ready.is_empty());
        outer_timeout_is_not_lost(|t| {
            wait(&[&result], Some(t), None);
        });
    });
}

/// Ports `test__event.py::TestAsyncResultGet::test_raises_timeout_number`:
/// a timed get on a result nobody sets gives up (green's `get_timeout`
/// returns `None`; gevent raises `Timeout`).
#[test]
fn async_result_get_timeout_gives_up_once_the_time_is_up() {
    green_core::run(|| {
        let result: AsyncResult<u8> = AsyncResult::new();
        assert!(waits_out(10 * MS, |t| result.get_timeout(t)).is_none());
    });
}

/// Ports `test__event.py::TestAsyncResultGet::test_raises_timeout_Timeout`:
/// a `Timeout` given to the get (green: the get run under
/// `Timeout::run`) is the one raised.
#[test]
fn a_timeout_around_async_result_get_is_the_one_raised() {
    green_core::run(|| {
        let result: AsyncResult<u8> = AsyncResult::new();
        let start = Instant::now();
        let outcome = Timeout::run(200 * MS, || result.get());
        let fired = outcome.expect_err("nobody sets the result");
        assert_eq!(fired.duration(), Some(200 * MS));
        assert!(start.elapsed() + CLOCK_SLACK >= 200 * MS);
        // And gevent's third form (`test_outer_timeout_is_not_lost`).
        outer_timeout_is_not_lost(|t| {
            result.get_timeout(t);
        });
    });
}

/// Ports `test__event.py::TestAsyncResult::test_link`: removing a link
/// twice is harmless, and the result formats without panicking.
#[test]
fn async_result_unlink_twice_is_harmless() {
    green_core::run(|| {
        let result: AsyncResult<u8> = AsyncResult::new();
        let fired = Rc::new(Cell::new(false));
        let id = {
            let fired = Rc::clone(&fired);
            result.link_ready(Box::new(move || fired.set(true)))
        };
        result.unlink_ready(id);
        result.unlink_ready(id);
        result.set(1);
        sleep(MS);
        assert!(!fired.get(), "an unlinked callback ran");
        assert_eq!(format!("{result:?}"), "AsyncResult { state: \"value\" }");
    });
}

/// Ports `test__event.py::TestAsyncResult::test_set_exc`: a greenlet
/// blocked in `get` receives the error given to `set_exception`.
#[test]
fn a_getter_receives_the_error_set_with_set_exception() {
    green_core::run(|| {
        let result: AsyncResult<u8, String> = AsyncResult::new();
        assert_eq!(result.exception(), None);
        let log = Log::new();
        {
            let (result, log) = (result.clone(), log.clone());
            spawn(move || match result.get() {
                Err(e) => log.push(format!("caught {e}")),
                Ok(v) => log.push(format!("value {v}")),
            });
        }
        result.set_exception(error("MyException"));
        yield_now();
        assert_eq!(log.take(), ["caught MyException"]);
        assert_eq!(result.exception().as_deref(), Some("MyException"));
        assert!(result.ready() && !result.successful());
    });
}

/// Ports `test__event.py::TestAsyncResult::test_get_repeated_does_not_accumulate_traceback`
/// (gevent issue 1946): getting a stored error again and again gives the
/// same error each time, unchanged by the earlier gets.
#[test]
fn repeated_gets_of_an_error_give_the_same_error() {
    green_core::run(|| {
        let result: AsyncResult<u8> = AsyncResult::new();
        let failed = spawn(|| -> u8 { panic!("MyException") });
        green_core::silence_failures();
        result.link_greenlet(&failed);
        failed.join();
        yield_now();
        green_core::reset_failure_reporter();
        let errors: Vec<GreenletError> = (0..3).map(|_| result.get().unwrap_err()).collect();
        for e in &errors {
            assert_eq!(e.kind(), ErrorKind::Panicked);
            assert_eq!(e.message(), errors[0].message());
            assert_eq!(e.to_string(), errors[0].to_string());
        }
    });
}

/// Ports `test__event.py::TestAsyncResult::test_set`: a zero `Timeout`
/// around a get fires before a setter scheduled `DELAY` later, and the
/// timeout raised is that one.
#[test]
fn a_zero_timeout_fires_before_a_later_set() {
    green_core::run(|| {
        let result: AsyncResult<&str> = AsyncResult::new();
        let setter = {
            let result = result.clone();
            spawn_later(DELAY, move || result.set("hello event1"))
        };
        let outcome = Timeout::run(Duration::ZERO, || result.get());
        assert!(outcome.is_err(), "the zero timeout should fire first");
        setter.kill();
    });
}

/// Ports `test__event.py::TestAsyncResult::test_set_with_timeout`:
/// `with_timeout` with a fallback value returns the fallback when nobody
/// sets the result.
#[test]
fn with_timeout_or_returns_the_fallback_when_nothing_is_set() {
    green_core::run(|| {
        let result: AsyncResult<&str, String> = AsyncResult::new();
        let got = with_timeout_or(DELAY, Ok("X"), || result.get());
        assert_eq!(got, Ok("X"), "nobody sent anything, yet the get returned");
    });
}

/// Ports `test__event.py::TestAsyncResult::test_nonblocking_get`: a get
/// that must not block fails on an empty result (gevent raises `Timeout`
/// from `get(block=False)` and `get_nowait()`; green has `try_get` and a
/// zero `get_timeout`).
#[test]
fn nonblocking_gets_of_an_empty_result_fail() {
    green_core::run(|| {
        let result: AsyncResult<u8> = AsyncResult::new();
        let ran = flag_setter();
        assert!(result.try_get().is_none());
        assert!(!ran.get(), "try_get switched");
        assert!(result.get_timeout(Duration::ZERO).is_none());
    });
}

/// Ports `test__event.py::TestAsyncResultAsLinkTarget::test_set`: a
/// greenlet's value reaches the result linked to it (gevent's `link`) and
/// the one set from its value link; the one set from its exception link
/// stays empty.
#[test]
fn a_successful_greenlet_sets_its_value_and_value_links() {
    green_core::run(|| {
        let g = spawn(|| 1);
        let (any, on_value, on_error) = (
            AsyncResult::<i32>::new(),
            AsyncResult::<i32>::new(),
            AsyncResult::<i32>::new(),
        );
        {
            let on_value = on_value.clone();
            g.link_value(move |g| on_value.set_result(g.try_get()));
        }
        {
            let on_error = on_error.clone();
            g.link_exception(move |g| on_error.set_result(g.try_get()));
        }
        // Linked last: `link_greenlet` moves the value out of the greenlet.
        any.link_greenlet(&g);
        assert_eq!(any.get().unwrap(), 1);
        assert_eq!(on_value.get().unwrap(), 1);
        assert!(with_timeout_or(DELAY, None, || Some(on_error.get())).is_none());
    });
}

/// Ports `test__event.py::TestAsyncResultAsLinkTarget::test_set_exception`.
#[test]
fn a_failed_greenlet_sets_its_error_and_exception_links() {
    green_core::run(|| {
        green_core::silence_failures();
        let g = spawn(|| -> i32 { panic!("ExpectedException") });
        let (any, on_value, on_error) = (
            AsyncResult::<i32>::new(),
            AsyncResult::<i32>::new(),
            AsyncResult::<i32>::new(),
        );
        any.link_greenlet(&g);
        {
            let on_value = on_value.clone();
            g.link_value(move |g| on_value.set_result(g.try_get()));
        }
        {
            let on_error = on_error.clone();
            g.link_exception(move |g| on_error.set_result(g.try_get()));
        }
        let e = any.get().unwrap_err();
        assert_eq!(
            (e.kind(), e.message()),
            (ErrorKind::Panicked, "ExpectedException")
        );
        assert!(with_timeout_or(DELAY, None, || Some(on_value.get())).is_none());
        let e = on_error.get().unwrap_err();
        assert_eq!(e.message(), "ExpectedException");
        green_core::reset_failure_reporter();
    });
}

/// Deliberate difference from gevent: a second `set`/`set_exception`
/// replaces the whole outcome. (gevent keeps the value and the exception
/// side by side, and its `get` prefers the value.) Waiters are not woken a
/// second time.
#[test]
fn a_second_set_replaces_the_outcome() {
    green_core::run(|| {
        let result: AsyncResult<u8, String> = AsyncResult::new();
        result.set(1);
        result.set_exception(error("later"));
        // gevent: get() would still return 1 here.
        assert_eq!(result.get(), Err(error("later")));
        assert_eq!(result.value(), None);
        assert!(!result.successful());
        result.set(2);
        assert_eq!(result.get(), Ok(2));
        assert_eq!(result.exception(), None);
    });
}

/// green's API edges for `AsyncResult`: `take`, `value`, `exception`,
/// `set_result`, `Debug` in each state, and `get` handing out copies.
#[test]
fn async_result_accessors_and_debug() {
    green_core::run(|| {
        let result: AsyncResult<String, String> = AsyncResult::default();
        assert_eq!(format!("{result:?}"), "AsyncResult { state: \"pending\" }");
        assert!(!result.ready() && !result.successful());
        assert_eq!((result.value(), result.exception()), (None, None));
        assert_eq!(result.take(), None);

        result.set_result(Ok("v".to_string()));
        assert_eq!(format!("{result:?}"), "AsyncResult { state: \"value\" }");
        assert_eq!(result.get(), Ok("v".to_string()));
        assert_eq!(result.get(), Ok("v".to_string()), "get gives a copy");
        assert_eq!(result.value().as_deref(), Some("v"));
        assert_eq!(result.take(), Some(Ok("v".to_string())));
        assert!(!result.ready(), "take empties it");

        result.set_result(Err("e".to_string()));
        assert_eq!(format!("{result:?}"), "AsyncResult { state: \"error\" }");
        assert_eq!(result.try_get(), Some(Err("e".to_string())));
        assert_eq!(
            result.get_timeout(Duration::ZERO),
            Some(Err("e".to_string()))
        );
    });
}

/// green's API edge: a long `get_timeout` returns as soon as the value is
/// set, by a greenlet or from a hub callback.
#[test]
fn async_result_get_timeout_long_returns_when_set() {
    green_core::run(|| {
        let result: AsyncResult<u8> = AsyncResult::new();
        {
            let result = result.clone();
            spawn_later(5 * MS, move || result.set(9));
        }
        let start = Instant::now();
        assert_eq!(
            result
                .get_timeout(Duration::from_secs(3600))
                .unwrap()
                .unwrap(),
            9
        );
        assert!(start.elapsed() < Duration::from_secs(60));

        let from_hub: AsyncResult<u8> = AsyncResult::new();
        {
            let from_hub = from_hub.clone();
            in_hub(move || from_hub.set(3));
        }
        assert_eq!(
            from_hub
                .get_timeout(Duration::from_secs(3600))
                .unwrap()
                .unwrap(),
            3
        );
    });
}

/// Ports `test__event.py::TestAsyncResultCrossThread::test_cross_thread_use_set_in_bg`
/// (and `...2`): a greenlet waits on a result that a native thread sets
/// (green: through the result's `RemoteSetter`).
#[test]
fn a_result_set_from_another_thread_wakes_the_waiter() {
    for _ in 0..2 {
        green_core::run(|| {
            let result: AsyncResult<&'static str, String> = AsyncResult::new();
            let setter = result.remote_setter();
            let setting = {
                let setter = setter.clone();
                spawn(move || thread::spawn(move || setter.set("from main").unwrap()))
            };
            assert!(result.wait_timeout(Duration::from_secs(60)));
            assert_eq!(result.get(), Ok("from main"));
            setting.take().unwrap().join().unwrap();
            assert!(format!("{setter:?}").contains("hub_alive: true"));
        });
    }
}

/// Ports `test__event.py::TestAsyncResultCrossThread::test_cross_thread_use`
/// and its `_bg`, `_timed` and `_timed_bg` variants: a thread running its
/// own hub (with another greenlet busy on timed event waits) waits on a
/// result, in its main greenlet or in a spawned one, timed or not; another
/// thread sets it. While the setter exists the waiting hub does not raise
/// `LoopExit`.
#[test]
fn a_hub_on_another_thread_waits_for_a_result_set_from_here() {
    for (timed_wait, wait_in_bg) in [(false, false), (false, true), (true, false), (true, true)] {
        let (to_main, from_thread) = mpsc::channel();
        let waiting = thread::spawn(move || {
            green_core::run(move || {
                let stop = Event::new();
                let spinner = {
                    let stop = stop.clone();
                    spawn(move || {
                        while !stop.is_set() {
                            stop.wait_timeout(2 * DELAY);
                        }
                    })
                };
                let result: AsyncResult<&'static str, String> = AsyncResult::new();
                to_main.send(result.remote_setter()).unwrap();
                let work = move || {
                    if timed_wait {
                        assert!(result.wait_timeout(Duration::from_secs(60)));
                    } else {
                        assert!(result.wait());
                    }
                    result.get()
                };
                let got = if wait_in_bg {
                    spawn(work).get().unwrap()
                } else {
                    work()
                };
                stop.set();
                spinner.join();
                got
            })
        });
        let setter = from_thread.recv().unwrap();
        thread::sleep(Duration::from_millis(5));
        setter.set("from main").unwrap();
        assert_eq!(waiting.join().unwrap(), Ok("from main"));
    }
}

/// green's API edge: a `RemoteSetter` whose hub is gone hands the value
/// back in `HubGone`, whose message says what happened.
#[test]
fn a_remote_setter_outliving_its_hub_gives_the_value_back() {
    let setter = green_core::run(|| {
        let result: AsyncResult<u32, String> = AsyncResult::new();
        result.remote_setter()
    });
    let gone: HubGone<u32> = setter.set(7).unwrap_err();
    assert_eq!(format!("{gone:?}"), "HubGone(..)");
    assert!(
        gone.to_string()
            .starts_with("the hub that owns this object is gone"),
        "{gone}"
    );
    assert_eq!(gone.into_inner(), 7);
    assert_eq!(setter.set_exception("e".into()).unwrap_err().0, "e");
    assert!(format!("{setter:?}").contains("hub_alive: false"));
    // From another thread too.
    let setter2 = setter.clone();
    let back = thread::spawn(move || setter2.send(Ok(8)).unwrap_err().into_inner());
    assert_eq!(back.join().unwrap(), Ok(8));
}

// ===== Waiter =====

/// Ports `test__hub.py::TestWaiterGet::test_returns_none_after_timeout`: a
/// `get` returns what the hub switches into the waiter when a timer fires.
#[test]
fn waiter_get_returns_what_a_timer_switches_in() {
    green_core::run(|| {
        let waiter: Waiter<()> = Waiter::new();
        let got = waits_out(200 * MS, |t| {
            let timer = sleeper_then(t, {
                let waiter = waiter.clone();
                move || waiter.switch(())
            });
            let got = waiter.get();
            timer.join();
            got
        });
        assert!(got.is_ok());
    });
}

/// A greenlet that sleeps `d`; when it finishes, the hub runs `f` (its
/// rawlink): gevent's `loop.timer(d).start(f)`.
fn sleeper_then(d: Duration, f: impl FnOnce() + 'static) -> green_core::Greenlet<()> {
    let g = spawn(move || sleep(d));
    g.rawlink(move |_| f());
    g
}

/// Ports `test__hub.py::TestWaiterGet::test_outer_timeout_is_not_lost`.
#[test]
fn waiter_get_lets_an_outer_timeout_through() {
    green_core::run(|| {
        let waiter: Waiter<()> = Waiter::new();
        let timer = sleeper_then(Duration::from_secs(30), {
            let waiter = waiter.clone();
            move || waiter.switch(())
        });
        outer_timeout_is_not_lost(|_| {
            let _ = waiter.get();
        });
        timer.kill();
    });
}

/// Ports `test__hub.py::TestWaiter::test`: a waiter's value and error come
/// out of `get`, and formatting a waiter (empty, filled, or with a greenlet
/// blocked on it) does not panic.
#[test]
fn waiter_value_error_and_debug() {
    green_core::run(|| {
        let waiter: Waiter<i32, String> = Waiter::new();
        assert_eq!(format!("{waiter:?}"), "Waiter { ready: false }");
        waiter.switch(25);
        assert_eq!(format!("{waiter:?}"), "Waiter { ready: true }");
        assert_eq!(waiter.get(), Ok(25));

        let waiter: Waiter<i32, String> = Waiter::new();
        waiter.throw(error("ZeroDivisionError"));
        assert!(waiter.ready() && !waiter.successful());
        assert_eq!(waiter.get(), Err(error("ZeroDivisionError")));

        let waiter: Waiter<i32, String> = Waiter::new();
        let g = {
            let waiter = waiter.clone();
            spawn(move || waiter.get())
        };
        g.set_name("AName");
        yield_now();
        assert_eq!(format!("{waiter:?}"), "Waiter { ready: false }");
        g.kill();
        assert!(g.dead());
    });
}

/// Deliberate difference from gevent: `Waiter::get` takes the value, so
/// the waiter is empty (and reusable) afterwards; gevent's keeps it until
/// `clear()`.
#[test]
fn waiter_get_takes_the_value() {
    green_core::run(|| {
        let waiter: Waiter<&str> = Waiter::new();
        waiter.switch("once");
        assert!(waiter.ready() && waiter.successful());
        assert_eq!(waiter.get().unwrap(), "once");
        // gevent: ready() would still be true and get() would return "once".
        assert!(!waiter.ready());
        assert!(waiter.get_timeout(Duration::ZERO).is_none());
        waiter.switch("twice");
        assert_eq!(waiter.get().unwrap(), "twice");
    });
}

/// Deliberate difference from gevent: `Waiter::switch` may be called from
/// a greenlet (gevent asserts the caller is the hub). It does not switch:
/// the getter runs once the switcher blocks.
#[test]
fn waiter_switch_from_a_greenlet_does_not_switch() {
    green_core::run(|| {
        let waiter: Waiter<u8> = Waiter::new();
        let log = Log::new();
        let getter = {
            let (waiter, log) = (waiter.clone(), log.clone());
            spawn(move || {
                let v = waiter.get().unwrap();
                log.push(format!("got {v}"));
            })
        };
        let switcher = {
            let (waiter, log) = (waiter.clone(), log.clone());
            spawn(move || {
                waiter.switch(5);
                log.push("switched");
            })
        };
        switcher.join();
        getter.join();
        assert_eq!(log.take(), ["switched", "got 5"]);
    });
}

/// green's API edges for `Waiter`: `clear`, a second `switch` replacing an
/// untaken value, zero and long `get_timeout`, and a value that arrives
/// after its getter was killed staying for the next `get`.
#[test]
fn waiter_clear_replace_timeouts_and_kills() {
    green_core::run(|| {
        let waiter: Waiter<u8> = Waiter::default();
        waiter.switch(1);
        waiter.clear();
        assert!(!waiter.ready());
        waiter.switch(2);
        waiter.switch(3);
        assert_eq!(
            waiter.get().unwrap(),
            3,
            "the second switch replaces the first"
        );

        let ran = flag_setter();
        assert!(waiter.get_timeout(Duration::ZERO).is_none());
        assert!(ran.get(), "a zero timeout is a real zero-second timer");
        {
            let waiter = waiter.clone();
            spawn_later(5 * MS, move || waiter.switch(4));
        }
        assert_eq!(
            waiter
                .get_timeout(Duration::from_secs(3600))
                .unwrap()
                .unwrap(),
            4
        );

        let doomed = {
            let waiter = waiter.clone();
            spawn(move || waiter.get())
        };
        yield_now();
        doomed.kill();
        waiter.switch(5);
        assert_eq!(waiter.get().unwrap(), 5);
    });
}

// ===== wait / iwait over a mixed list =====

/// green's API edge: `iwait` over an event, an async result, a waiter, a
/// greenlet, a queue and a semaphore yields each index once, in the order
/// they became ready.
#[test]
fn iwait_over_every_kind_yields_them_in_readiness_order() {
    green_core::run(|| {
        let event = Event::new();
        let result: AsyncResult<u8> = AsyncResult::new();
        let waiter: Waiter<u8> = Waiter::new();
        let queue: Queue<u8> = Queue::new();
        let sem = Semaphore::new(0);
        let last = Event::new();
        let g = {
            let last = last.clone();
            spawn(move || {
                last.wait();
            })
        };
        {
            let (event, result, waiter, queue, sem) = (
                event.clone(),
                result.clone(),
                waiter.clone(),
                queue.clone(),
                sem.clone(),
            );
            spawn(move || {
                queue.put(1).unwrap();
                sleep(2 * MS);
                waiter.switch(2);
                sleep(2 * MS);
                event.set();
                sleep(2 * MS);
                sem.release();
                sleep(2 * MS);
                result.set(3);
                sleep(2 * MS);
                last.set();
            });
        }
        let objects: [&dyn Waitable; 6] = [&event, &result, &waiter, &g, &queue, &sem];
        let order: Vec<usize> = iwait(&objects, Some(Duration::from_secs(60))).collect();
        assert_eq!(order, [4, 2, 0, 5, 1, 3]);
        // Nothing was consumed by the waiting.
        assert_eq!(queue.get_nowait(), Ok(1));
        assert_eq!(waiter.get().unwrap(), 2);
        assert_eq!(sem.counter(), 1);
    });
}

/// green's API edge: `wait` over a mixed list with a count returns that
/// many, leaving the rest linked to nothing (a later readiness calls no
/// stale callback); with a timeout it returns what became ready in time.
#[test]
fn wait_over_every_kind_with_count_and_timeout() {
    green_core::run(|| {
        let event = Event::new();
        let result: AsyncResult<u8> = AsyncResult::new();
        let waiter: Waiter<u8> = Waiter::new();
        let queue: Queue<u8> = Queue::new();
        let g = spawn(|| sleep(Duration::from_secs(3600)));
        {
            let (waiter, result) = (waiter.clone(), result.clone());
            spawn(move || {
                sleep(2 * MS);
                result.set(1);
                sleep(2 * MS);
                waiter.switch(1);
            });
        }
        let objects: [&dyn Waitable; 5] = [&event, &result, &waiter, &g, &queue];
        assert_eq!(wait(&objects, None, Some(2)), [1, 2]);
        assert_eq!(format!("{event:?}"), "Event { set: false, waiters: 0 }");
        assert_eq!(wait(&objects, Some(5 * MS), None), [1, 2]);
        assert_eq!(wait(&objects, Some(Duration::ZERO), Some(1)), [1]);
        queue.put(0).unwrap();
        event.set();
        assert_eq!(
            wait(&objects, Some(Duration::from_secs(60)), Some(4)).len(),
            4
        );
        g.kill();
        assert_eq!(wait(&objects, None, None).len(), 5);
    });
}

// ===== blocking in a destructor while the hub tears down =====

/// The variable that makes this binary's `child` test run a scenario.
const CHILD_ENV: &str = "GREEN_SYNC_EVENT_CHILD";

/// Runs `block` when dropped and prints what it returned.
struct BlocksOnDrop(Option<Box<dyn FnOnce() -> String>>);

impl Drop for BlocksOnDrop {
    fn drop(&mut self) {
        if let Some(block) = self.0.take() {
            let outcome = block();
            println!("in-drop {outcome}");
        }
    }
}

/// In a child process: a greenlet blocked forever holds a `BlocksOnDrop`
/// running `block`; the end of `run` unwinds it.
fn block_in_drop_at_teardown(block: impl FnOnce() -> String + 'static) {
    green_core::run(|| {
        spawn(move || {
            let _on_exit = BlocksOnDrop(Some(Box::new(block)));
            sleep(Duration::from_secs(3600));
        });
        yield_now();
    });
    println!("outcome run returned");
}

/// Runs a scenario that could abort the process, in a child process.
#[test]
#[ignore = "child body"]
fn child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    match mode.as_str() {
        "event_wait" => {
            let event = Event::new();
            block_in_drop_at_teardown(move || format!("{}", event.wait()));
        }
        "async_result_get" => {
            let result: AsyncResult<u8, String> = AsyncResult::new();
            block_in_drop_at_teardown(move || format!("{:?}", result.get()));
        }
        "waiter_get" => {
            let waiter: Waiter<u8, String> = Waiter::new();
            block_in_drop_at_teardown(move || format!("{:?}", waiter.get()));
        }
        other => panic!("unknown child mode {other}"),
    }
}

fn run_block_in_drop_child(mode: &str) -> std::process::Output {
    let out = support::run_child(CHILD_ENV, mode, support::CHILD_LIMIT);
    assert!(
        out.status.success(),
        "the process died ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(support::stdout_value(&out, "outcome"), "run returned");
    out
}

/// green's API edge: `Event::wait` in a destructor run by the hub's
/// teardown, with nothing left to set the event, gives up and returns
/// `false` (its documented "the hub gives up on the wait while tearing
/// down").
#[test]
fn event_wait_in_a_destructor_at_teardown_returns_false() {
    let out = run_block_in_drop_child("event_wait");
    assert_eq!(support::stdout_value(&out, "in-drop"), "false");
}

/// green's API edge: `AsyncResult::get` in a destructor run by the hub's
/// teardown, with nothing left to set the result, must not abort the
/// process (its panic, "AsyncResult::get gave up", would be a double panic
/// inside a destructor that is already unwinding): the greenlet parks
/// again and the teardown leaves it suspended.
#[test]
fn async_result_get_in_a_destructor_at_teardown_does_not_abort() {
    run_block_in_drop_child("async_result_get");
}

/// As above, for `Waiter::get`.
#[test]
fn waiter_get_in_a_destructor_at_teardown_does_not_abort() {
    run_block_in_drop_child("waiter_get");
}

/// green's own edge (the notifier's window, L6 in `sync/linkable.rs`): a
/// waiter an `Event` wakes, which links a callback to it and sets it again
/// before it blocks, is served by a notifier queued anew behind what was
/// already queued (gevent's `_notify_links` finds the new link once the
/// waiter switches back and schedules itself again), not at once and not
/// never.
#[test]
fn a_woken_waiter_that_links_and_sets_again_is_served_behind_the_queue() {
    green_core::run(|| {
        let log = Log::new();
        let ready = Event::new();
        let waiter = {
            let (ready, log) = (ready.clone(), log.clone());
            spawn(move || {
                ready.wait();
                log.push("woken");
                ready.clear();
                let objects: [&dyn Waitable; 1] = [&ready];
                let mut ready_ones = iwait(&objects, None);
                ready.set();
                assert_eq!(ready_ones.next(), Some(0));
                log.push("link fired");
            })
        };
        yield_now();
        ready.set();
        let later = {
            let log = log.clone();
            spawn(move || log.push("queued after the set"))
        };
        waiter.join();
        later.join();
        assert_eq!(
            log.take(),
            ["woken", "queued after the set", "link fired"],
            "the callback linked in the waiter's window fired out of order"
        );
    });
}
