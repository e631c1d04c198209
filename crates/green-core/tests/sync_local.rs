//! `Local`, a value per greenlet: the behaviours of gevent's own test suite
//! for `gevent.local` (`test__local.py`, whose threads are greenlets under
//! monkey-patching) that apply to green's API, and the lifecycle green
//! promises: a value made on a greenlet's first access, by the initialiser,
//! once per greenlet, and dropped when that greenlet ends however it ends
//! (return, panic, kill, hub teardown), with no leak over a million
//! greenlets.
//!
//! Each test's doc comment names the gevent test it ports; tests of green's
//! own promises say so instead.

#[allow(unreachable_pub)] // support/mod.rs is shared; its `pub` items are crate-local here.
mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use green_core::sync::Event;
use green_core::{joinall, sleep, spawn, yield_now, ErrorKind, Greenlet, Local};
use support::{catch, within, MS};

/// Counts the values alive and made through a shared pair of counters.
#[derive(Clone, Default)]
struct Census {
    made: Rc<Cell<usize>>,
    dropped: Rc<Cell<usize>>,
}

impl Census {
    fn alive(&self) -> usize {
        self.made.get() - self.dropped.get()
    }

    /// A `Local` whose values are counted here.
    fn local(&self) -> Rc<Local<Sentinel>> {
        let census = self.clone();
        Rc::new(Local::new(move || {
            census.made.set(census.made.get() + 1);
            Sentinel {
                serial: census.made.get(),
                census: census.clone(),
            }
        }))
    }
}

/// gevent's `Sentinel`: its drop is counted.
struct Sentinel {
    serial: usize,
    census: Census,
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        self.census.dropped.set(self.census.dropped.get() + 1);
    }
}

/// A greenlet that touches `local` (makes its value) and then runs `then`.
fn toucher<R: 'static>(
    local: &Rc<Local<Sentinel>>,
    then: impl FnOnce() -> R + 'static,
) -> Greenlet<R> {
    let local = Rc::clone(local);
    spawn(move || {
        local.with(|_| ());
        then()
    })
}

// ===== test__local.py =====

/// Ports `test__local.py::TestGeventLocal::test_local_opts_not_subclassed`:
/// a value set is the value read back.
#[test]
fn a_value_set_is_read_back() {
    green_core::run(|| {
        let local: Local<i32> = Local::new(|| 0);
        local.set(1);
        assert_eq!(local.get(), 1);
        assert_eq!(local.with(|v| *v), 1);
    });
}

/// Ports `test__local.py::TestGeventLocal::test_attribute_error`: a value
/// set in another greenlet is not this greenlet's; each sees its own.
#[test]
fn a_value_set_in_another_greenlet_is_not_seen_here() {
    green_core::run(|| {
        let local: Rc<Local<Option<&str>>> = Rc::new(Local::new(|| None));
        assert_eq!(local.get(), None);
        let other = {
            let local = Rc::clone(&local);
            spawn(move || {
                local.set(Some("fizz_buzz"));
                local.get()
            })
        };
        assert_eq!(other.get().unwrap(), Some("fizz_buzz"));
        assert_eq!(local.get(), None);
        local.set(Some("main"));
        let third = {
            let local = Rc::clone(&local);
            spawn(move || local.get())
        };
        assert_eq!(third.get().unwrap(), None);
        assert_eq!(local.get(), Some("main"));
    });
}

/// Ports `test__local.py::TestGeventLocal::test_delete_with_no_dict`:
/// taking a value nobody made gives nothing, here and in another greenlet.
#[test]
fn taking_a_value_never_made_gives_nothing() {
    green_core::run(|| {
        let census = Census::default();
        let local = census.local();
        assert!(local.take().is_none());
        let other = {
            let local = Rc::clone(&local);
            spawn(move || local.take().is_none())
        };
        assert!(other.get().unwrap());
        assert_eq!(census.made.get(), 0, "take must not make a value");
    });
}

/// Ports `test__local.py::TestGeventLocal::test_objects`: two locals are
/// independent in one greenlet.
#[test]
fn two_locals_are_independent() {
    green_core::run(|| {
        let a: Local<RefCell<String>> = Local::new(|| RefCell::new(String::new()));
        let b: Local<RefCell<String>> = Local::new(|| RefCell::new(String::new()));
        a.with(|p| p.replace("123".into()));
        b.with(|p| p.replace("123".into()));
        assert_eq!(
            a.with(|p| p.borrow().clone()),
            b.with(|p| p.borrow().clone())
        );
        b.with(|p| p.replace("321".into()));
        assert_eq!(a.with(|p| p.borrow().clone()), "123");
        assert_eq!(b.with(|p| p.borrow().clone()), "321");
    });
}

/// Ports `test__local.py::TestGeventLocal::test_locals_collected_when_greenlet_dead_but_still_referenced`
/// (gevent issue 387): five greenlets each make a value; once they have
/// finished, all five values are gone, although their handles are still
/// held.
#[test]
fn values_are_dropped_when_their_greenlets_end_though_still_referenced() {
    green_core::run(|| {
        let census = Census::default();
        let local = census.local();
        let greenlets: Vec<Greenlet<()>> = (0..5).map(|_| toucher(&local, || ())).collect();
        yield_now();
        assert_eq!(census.made.get(), 5);
        for g in &greenlets {
            assert!(g.dead());
        }
        yield_now();
        assert_eq!(census.dropped.get(), 5);
        drop(greenlets);
    });
}

/// Ports `test__local.py::TestGeventLocal::test_locals_collected_when_unreferenced_even_in_running_greenlet`
/// (gevent issue 981): a greenlet that makes and drops a thousand locals,
/// touching each once, has none of their values left while it still runs.
#[test]
fn values_of_dropped_locals_are_freed_while_their_greenlet_runs() {
    green_core::run(|| {
        let census = Census::default();
        let running = {
            let census = census.clone();
            spawn(move || {
                for _ in 0..1000 {
                    let local = census.local();
                    local.with(|sentinel| assert!(sentinel.serial > 0));
                    drop(local);
                }
                assert_eq!(census.made.get(), 1000);
                // They are all gone, though this greenlet still runs.
                census.dropped.get()
            })
        };
        let dropped_while_running = running.get().unwrap();
        assert_eq!(census.dropped.get(), 1000);
        assert_eq!(
            dropped_while_running, 1000,
            "the values of dropped locals stayed alive until their greenlet ended"
        );
    });
}

// ===== green's promises: made on first access, once per greenlet =====

/// A value is made on a greenlet's first access only, by the initialiser,
/// once per greenlet however often it is used; greenlets that never touch
/// the local never make one.
#[test]
fn a_value_is_made_on_first_access_once_per_greenlet() {
    green_core::run(|| {
        let census = Census::default();
        let local = census.local();
        assert_eq!(census.made.get(), 0, "Local::new must not make a value");
        let idle: Vec<Greenlet<()>> = (0..3).map(|_| spawn(yield_now)).collect();
        joinall(&idle);
        assert_eq!(census.made.get(), 0);
        let users: Vec<Greenlet<usize>> = (0..3)
            .map(|_| {
                let local = Rc::clone(&local);
                spawn(move || {
                    let first = local.with(|s| s.serial);
                    yield_now();
                    let again = local.with(|s| s.serial);
                    assert_eq!(first, again, "a greenlet's value was made twice");
                    first
                })
            })
            .collect();
        let mut serials: Vec<usize> = users.iter().map(|g| g.get().unwrap()).collect();
        serials.sort_unstable();
        assert_eq!(serials, [1, 2, 3], "each greenlet made its own value");
        assert_eq!(census.made.get(), 3);
        assert_eq!(census.alive(), 0);
    });
}

/// `take` removes the value (the next access makes a new one); `set`
/// replaces it, dropping the old; `get` hands out copies.
#[test]
fn set_take_and_get() {
    green_core::run(|| {
        let census = Census::default();
        let local = census.local();
        let first = local.with(|s| s.serial);
        let taken = local.take().expect("a value was made");
        assert_eq!(taken.serial, first);
        assert_eq!(census.alive(), 1, "the taken value lives while held");
        drop(taken);
        assert_eq!(census.alive(), 0);
        assert_eq!(
            local.with(|s| s.serial),
            first + 1,
            "a new value after take"
        );
        local.set(Sentinel {
            serial: 100,
            census: census.clone(),
        });
        assert_eq!(census.dropped.get(), 2, "set drops the value it replaces");
        assert_eq!(local.with(|s| s.serial), 100);

        let copies: Local<Vec<u8>> = Local::new(Vec::new);
        copies.set(vec![1]);
        let mut copy = copies.get();
        copy.push(2);
        assert_eq!(copies.get(), [1]);
    });
}

/// An initialiser may use other greenlet-locals; one that uses its own
/// local gets a value of its own, replaced by the one it returns.
#[test]
fn an_initialiser_may_use_greenlet_locals() {
    green_core::run(|| {
        let base: Rc<Local<u32>> = Rc::new(Local::new(|| 40));
        let derived: Local<u32> = {
            let base = Rc::clone(&base);
            Local::new(move || base.get() + 2)
        };
        assert_eq!(derived.get(), 42);
        base.set(1);
        assert_eq!(derived.get(), 42, "made once");

        let depth = Rc::new(Cell::new(0));
        let slot: Rc<RefCell<Option<Rc<Local<u32>>>>> = Rc::new(RefCell::new(None));
        let recursive = {
            let (depth, slot) = (Rc::clone(&depth), Rc::clone(&slot));
            Rc::new(Local::new(move || {
                depth.set(depth.get() + 1);
                let outermost = depth.get() == 1;
                if outermost {
                    let me = slot.borrow().clone().unwrap();
                    // Re-entering the same local from its initialiser.
                    assert_eq!(me.get(), 7);
                }
                7 + u32::from(outermost)
            }))
        };
        *slot.borrow_mut() = Some(Rc::clone(&recursive));
        assert_eq!(recursive.get(), 8, "the outer initialiser's value wins");
        assert_eq!(recursive.get(), 8);
        slot.borrow_mut().take();
    });
}

/// A local used inside the hub (a link callback), where no greenlet runs,
/// panics with a message saying so.
#[test]
fn a_local_used_inside_the_hub_panics_with_advice() {
    green_core::run(|| {
        let local: Rc<Local<u8>> = Rc::new(Local::new(|| 0));
        let message = Rc::new(RefCell::new(String::new()));
        let g = spawn(|| ());
        {
            let (local, message) = (Rc::clone(&local), Rc::clone(&message));
            g.rawlink(move |_| {
                let caught = catch(|| local.get());
                *message.borrow_mut() = support::panic_message(&*caught.unwrap_err());
            });
        }
        g.join();
        yield_now();
        assert!(
            message.borrow().contains("inside the hub"),
            "{}",
            message.borrow()
        );
    });
}

/// `Debug` shows the local's id and does not touch any value.
#[test]
fn debug_output_of_a_local() {
    green_core::run(|| {
        let census = Census::default();
        let local = census.local();
        let shown = format!("{local:?}");
        assert!(shown.starts_with("Local { id: "), "{shown}");
        assert_eq!(census.made.get(), 0);
        let other: Local<u8> = Local::new(|| 0);
        assert_ne!(format!("{other:?}"), shown, "each local has its own id");
    });
}

/// A local kept in a `thread_local!` (the usual way to share one) gives
/// each greenlet its own value.
#[test]
fn a_local_in_a_thread_local() {
    thread_local! {
        static REQUEST_ID: Local<Cell<u32>> = Local::new(|| Cell::new(0));
    }
    green_core::run(|| {
        let workers: Vec<Greenlet<u32>> = (1..=3)
            .map(|i| {
                spawn(move || {
                    REQUEST_ID.with(|l| l.with(|id| id.set(i)));
                    yield_now();
                    REQUEST_ID.with(|l| l.with(Cell::get))
                })
            })
            .collect();
        let ids: Vec<u32> = workers.iter().map(|g| g.get().unwrap()).collect();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(REQUEST_ID.with(|l| l.with(Cell::get)), 0);
    });
}

// ===== green's promises: dropped when the greenlet ends =====

/// A value is dropped when its greenlet returns, before those waiting in
/// `join` see it dead.
#[test]
fn a_value_is_dropped_when_its_greenlet_returns() {
    green_core::run(|| {
        let census = Census::default();
        let local = census.local();
        let g = toucher(&local, || 1);
        g.join();
        assert_eq!(census.made.get(), 1);
        assert_eq!(census.alive(), 0);
        assert_eq!(g.get().unwrap(), 1);
    });
}

/// A value is dropped when its greenlet panics.
#[test]
fn a_value_is_dropped_when_its_greenlet_panics() {
    green_core::run(|| {
        green_core::silence_failures();
        let census = Census::default();
        let local = census.local();
        let g = toucher(&local, || -> u8 { panic!("boom") });
        assert_eq!(g.get().unwrap_err().kind(), ErrorKind::Panicked);
        assert_eq!((census.made.get(), census.alive()), (1, 0));
        green_core::reset_failure_reporter();
    });
}

/// A value is dropped when its greenlet is killed while blocked, and when
/// it is killed by a `Timeout` it did not catch.
#[test]
fn a_value_is_dropped_when_its_greenlet_is_killed() {
    green_core::run(|| {
        let census = Census::default();
        let local = census.local();
        let g = toucher(&local, || sleep(Duration::from_secs(3600)));
        yield_now();
        assert_eq!(census.alive(), 1);
        g.kill();
        assert_eq!(census.alive(), 0);
        assert_eq!(g.get().unwrap_err().kind(), ErrorKind::Exited);

        green_core::silence_failures();
        let timed_out = toucher(&local, || {
            let t = green_core::Timeout::start_new(MS);
            sleep(Duration::from_secs(3600));
            drop(t);
        });
        assert_eq!(timed_out.get().unwrap_err().kind(), ErrorKind::TimedOut);
        assert_eq!((census.made.get(), census.alive()), (2, 0));
        green_core::reset_failure_reporter();
    });
}

/// A value's destructor runs on its greenlet's own stack and may block like
/// the greenlet's code.
#[test]
fn a_values_destructor_may_block() {
    struct SlowToDrop(Event, Rc<Cell<bool>>);
    impl Drop for SlowToDrop {
        fn drop(&mut self) {
            self.0.wait();
            self.1.set(true);
        }
    }
    green_core::run(|| {
        let go = Event::new();
        let dropped = Rc::new(Cell::new(false));
        let local: Rc<Local<SlowToDrop>> = {
            let (go, dropped) = (go.clone(), Rc::clone(&dropped));
            Rc::new(Local::new(move || {
                SlowToDrop(go.clone(), Rc::clone(&dropped))
            }))
        };
        let g = {
            let local = Rc::clone(&local);
            spawn(move || local.with(|_| ()))
        };
        sleep(MS);
        assert!(!g.dead() && !dropped.get(), "its value's destructor waits");
        go.set();
        g.join();
        assert!(dropped.get());
    });
}

/// Hub teardown at the end of `run` drops every value: those of greenlets
/// still blocked (unwound by the teardown), and the main greenlet's.
#[test]
fn hub_teardown_at_the_end_of_run_drops_every_value() {
    let census = Census::default();
    {
        let census = census.clone();
        green_core::run(move || {
            let local = census.local();
            for _ in 0..3 {
                toucher(&local, || sleep(Duration::from_secs(3600)));
            }
            yield_now();
            local.with(|_| ());
            assert_eq!(census.alive(), 4);
        });
    }
    assert_eq!(census.made.get(), 4);
    assert_eq!(census.alive(), 0, "run returned with values still alive");
}

/// `green_core::shutdown()` drops every value as the end of `run` does;
/// the next use of the local, on the new hub, makes a new one.
#[test]
fn shutdown_drops_every_value() {
    let census = Census::default();
    let local = census.local();
    for _ in 0..3 {
        toucher(&local, || sleep(Duration::from_secs(3600)));
    }
    yield_now();
    let first = local.with(|s| s.serial);
    assert_eq!(census.alive(), 4);
    green_core::shutdown();
    assert_eq!(census.alive(), 0, "shutdown left values alive");
    let second = local.with(|s| s.serial);
    assert_ne!(first, second, "the new hub's main greenlet has a new value");
    green_core::shutdown();
    assert_eq!(census.alive(), 0);
}

/// A value whose greenlet panics mid-way through a destructor of another
/// value is still dropped (a panicking value does not stop the others).
#[test]
fn a_panicking_values_drop_does_not_keep_the_others() {
    struct PanicsOnDrop;
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("drop of a greenlet-local value");
        }
    }
    green_core::run(|| {
        green_core::silence_failures();
        let census = Census::default();
        let counted = census.local();
        let bad: Rc<Local<PanicsOnDrop>> = Rc::new(Local::new(|| PanicsOnDrop));
        let g = {
            let (counted, bad) = (Rc::clone(&counted), Rc::clone(&bad));
            spawn(move || {
                bad.with(|_| ());
                counted.with(|_| ());
                5
            })
        };
        g.join();
        yield_now();
        assert_eq!((census.made.get(), census.alive()), (1, 0));
        green_core::reset_failure_reporter();
    });
}

thread_local! {
    /// A request id, as an application keeps one per greenlet.
    static REQUEST_ID: Local<Cell<u32>> = Local::new(|| Cell::new(0));
}

/// Reads the greenlet's request id when dropped, as a logging guard does.
struct LogsRequestIdOnDrop(Rc<Cell<Option<u32>>>);

impl Drop for LogsRequestIdOnDrop {
    fn drop(&mut self) {
        let id = REQUEST_ID.with(|r| r.with(Cell::get));
        self.0.set(Some(id));
    }
}

/// At the end of `run`, the main greenlet's values are dropped; one whose
/// destructor uses another greenlet-local (a guard that logs with the
/// request id) must not make `run` panic, and the thread's next `run` must
/// work.
#[test]
fn a_main_greenlet_value_whose_drop_uses_a_local_does_not_break_the_hub() {
    // On a thread of its own: a hub broken by its teardown also keeps the
    // panic hook from printing the assertion that reports it.
    let (teardown_panic, logged, next_run) = within(Duration::from_secs(60), || {
        let logged = Rc::new(Cell::new(None));
        let outcome = {
            let logged = Rc::clone(&logged);
            catch(move || {
                green_core::run(move || {
                    let guards: Local<LogsRequestIdOnDrop> =
                        Local::new(move || LogsRequestIdOnDrop(Rc::clone(&logged)));
                    REQUEST_ID.with(|r| r.with(|id| id.set(9)));
                    guards.with(|_| ());
                    // The value outlives this handle: it belongs to the
                    // main greenlet until the hub is torn down.
                })
            })
        };
        let teardown_panic = outcome
            .err()
            .map(|payload| support::panic_message(&*payload));
        let next = catch(|| green_core::run(|| spawn(|| 5).get().unwrap()))
            .map_err(|payload| support::panic_message(&*payload));
        (teardown_panic, logged.get(), next)
    });
    assert_eq!(teardown_panic, None, "run panicked in its teardown");
    assert!(logged.is_some(), "the guard was dropped at the end of run");
    assert_eq!(next_run, Ok(5), "the thread's next run failed");
}

/// Values used in the destructor of another value of the same greenlet:
/// one made again there, after that value was dropped, must not outlive
/// the greenlet's end (it would live as long as the greenlet's handle).
#[test]
fn a_value_made_again_by_another_values_destructor_does_not_outlive_the_greenlet() {
    green_core::run(|| {
        let census = Census::default();
        let counted = census.local();
        let guards: Rc<Local<CountsOnDrop>> = {
            let counted = Rc::clone(&counted);
            Rc::new(Local::new(move || CountsOnDrop(Rc::clone(&counted))))
        };
        let g = {
            let (counted, guards) = (Rc::clone(&counted), Rc::clone(&guards));
            spawn(move || {
                counted.with(|_| ());
                guards.with(|_| ());
            })
        };
        g.join();
        yield_now();
        assert_eq!(
            census.alive(),
            0,
            "a value made during the greenlet's end is alive while its handle is"
        );
        drop(g);
    });
}

/// Touches `0` when dropped.
struct CountsOnDrop(Rc<Local<Sentinel>>);

impl Drop for CountsOnDrop {
    fn drop(&mut self) {
        self.0.with(|_| ());
    }
}

/// Values alive across all the greenlets of the leak test.
static LIVE: AtomicUsize = AtomicUsize::new(0);

struct Live;

impl Live {
    fn new() -> Live {
        LIVE.fetch_add(1, Ordering::Relaxed);
        Live
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How many short greenlets the leak test runs, `BATCH` at a time (about
/// 4 s in a debug build; small batches reuse pooled stacks).
const MANY: usize = 1_000_000;
const BATCH: usize = 100;

/// No leak: a million short greenlets, each touching a local whose values
/// count themselves, leave no value alive after each batch has ended, nor
/// at the end.
#[test]
fn a_million_short_greenlets_leave_no_value_alive() {
    green_core::run(|| {
        let local: Rc<Local<Live>> = Rc::new(Local::new(Live::new));
        let mut batch = Vec::with_capacity(BATCH);
        for _ in 0..MANY / BATCH {
            for _ in 0..BATCH {
                let local = Rc::clone(&local);
                batch.push(spawn(move || local.with(|_| ())));
            }
            joinall(&batch);
            batch.clear();
            let live = LIVE.load(Ordering::Relaxed);
            assert_eq!(live, 0, "{live} values outlived their greenlets");
        }
        drop(local);
        assert_eq!(LIVE.load(Ordering::Relaxed), 0);
    });
    assert_eq!(LIVE.load(Ordering::Relaxed), 0);
}
