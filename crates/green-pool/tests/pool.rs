//! `Pool` and the mapping helpers (`apply*`, `map*`, `imap*`): gevent's
//! test__pool.py ported behaviour by behaviour, plus traces pinned against
//! the same programs run under gevent 26.9 (quoted where they matter).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use green_core::sync::{Event, Queue};
use green_core::{run, sleep, spawn, yield_now, ErrorKind, Greenlet, Timeout};
use green_pool::{Group, Pool, PoolFull};

#[derive(Clone, Default)]
struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    fn push(&self, s: impl Into<String>) {
        self.0.borrow_mut().push(s.into());
    }
    fn snapshot(&self) -> Vec<String> {
        self.0.borrow().clone()
    }
}

/// gevent's TestPool runs with sizes 1, 2, 3, 10 and unbounded.
fn each_size(test: impl Fn(Pool)) {
    for size in [Some(1), Some(2), Some(3), Some(10), None] {
        run(|| {
            let pool = match size {
                Some(n) => Pool::new(n),
                None => Pool::unbounded(),
            };
            test(pool.clone());
            pool.join();
        });
    }
}

fn sqr(x: u64) -> u64 {
    x * x
}

fn sqr_wait(x: u64, ms: u64) -> u64 {
    sleep(Duration::from_millis(ms));
    x * x
}

// ===== TestCoroutinePool =====

#[test]
fn apply_async_runs_the_function() {
    run(|| {
        let done = Event::new();
        let pool = Pool::new(2);
        let d = done.clone();
        pool.apply_async(move || d.set());
        assert!(done.wait());
    });
}

#[test]
fn apply_returns_the_value_and_the_failure() {
    run(|| {
        let pool = Pool::new(2);
        assert_eq!(pool.apply(|| "return value").unwrap(), "return value");
        green_core::silence_failures();
        let error = Pool::new(1)
            .apply(|| -> () { panic!("expected") })
            .unwrap_err();
        assert_eq!(
            (error.kind(), error.message()),
            (ErrorKind::Panicked, "expected")
        );
        green_core::reset_failure_reporter();
        // gevent's PoolBasicTests.test_apply, on an unbounded pool.
        assert_eq!(Pool::unbounded().apply(|| ("foo", 1)).unwrap(), ("foo", 1));
    });
}

#[test]
fn multiple_coroutines_take_turns() {
    run(|| {
        let evt = Event::new();
        let log = Log::default();
        let pool = Pool::new(2);
        let (l, e) = (log.clone(), evt.clone());
        let done = pool.spawn(move || {
            l.push("cons1");
            e.wait();
            l.push("cons2");
        });
        let (l, e) = (log.clone(), evt.clone());
        pool.apply_async(move || {
            sleep(Duration::from_millis(1));
            l.push("prod");
            e.set();
        });
        done.get().unwrap();
        assert_eq!(log.snapshot(), ["cons1", "prod", "cons2"]);
    });
}

/// gevent:
/// ```python
/// p = Pool(1)
/// def outer():
///     tr.append('outer start')
///     r = p.apply(lambda: tr.append('inner') or 5)
///     tr.append('outer got %d' % r)
///     return r
/// p.apply(outer)  # 5, ['outer start', 'inner', 'outer got 5']
/// ```
#[test]
fn apply_from_a_member_runs_inline_even_on_a_full_pool() {
    run(|| {
        let log = Log::default();
        let pool = Pool::new(1);
        let (p, l) = (pool.clone(), log.clone());
        let r = pool
            .apply(move || {
                l.push("outer start");
                let l2 = l.clone();
                let r = p
                    .apply(move || {
                        l2.push("inner");
                        5
                    })
                    .unwrap();
                l.push(format!("outer got {r}"));
                r
            })
            .unwrap();
        assert_eq!(r, 5);
        assert_eq!(log.snapshot(), ["outer start", "inner", "outer got 5"]);
        // test_reentrant, and apply_async afterwards still works.
        let p = pool.clone();
        assert_eq!(pool.apply(move || p.apply(|| 5 + 1).unwrap()).unwrap(), 6);
        let evt = Event::new();
        let e = evt.clone();
        pool.apply_async(move || e.set());
        assert!(evt.wait());
    });
}

#[test]
fn a_failed_member_frees_its_slot() {
    // test_stderr_raising's point: a crashing member does not cost a slot.
    run(|| {
        green_core::silence_failures();
        let pool = Pool::new(1);
        let waiter = pool.spawn(|| -> () { panic!("crash") });
        assert!(waiter.get().is_err());
        yield_now();
        assert_eq!(pool.free_count(), 1);
        Timeout::run(Duration::from_millis(100), || {
            pool.apply(|| yield_now()).unwrap()
        })
        .unwrap();
        green_core::reset_failure_reporter();
    });
}

// ===== PoolBasicTests =====

/// gevent: `[1, 2, 1, 0, 0, [1]]` then `[1, 2, 3, 4]`.
#[test]
fn free_count_and_apply_async_on_a_full_pool() {
    run(|| {
        let pool = Pool::new(2);
        assert_eq!(pool.free_count(), 2);
        let r = Rc::new(RefCell::new(Vec::new()));
        let rr = r.clone();
        let first = pool.spawn(move || rr.borrow_mut().push(1));
        assert_eq!(pool.free_count(), 1);
        first.get().unwrap();
        assert_eq!(*r.borrow(), [1]);
        yield_now();
        assert_eq!(pool.free_count(), 2);
        // Once the pool is full, apply_async still does not block.
        for (n, free) in [(2, 1), (3, 0), (4, 0)] {
            let rr = r.clone();
            pool.apply_async(move || rr.borrow_mut().push(n));
            assert_eq!(pool.free_count(), free);
            assert_eq!(*r.borrow(), [1]);
        }
        sleep(Duration::from_millis(10));
        let mut all = r.borrow().clone();
        all.sort();
        assert_eq!(all, [1, 2, 3, 4]);
    });
}

#[test]
fn discard_frees_the_slot_once() {
    run(|| {
        let pool = Pool::new(1);
        let first = pool.spawn(|| sleep(Duration::from_secs(1000)));
        assert!(pool.discard(&first));
        first.kill();
        assert!(first.dead());
        assert_eq!(pool.len(), 0);
        assert_eq!(pool.free_count(), 1);
        assert_eq!(pool.wait_available(), 1); // the semaphore's counter
    });
}

/// gevent's bug, not ported:
/// ```python
/// p = Pool(1)
/// g = p.spawn(lambda: None); g.join(); gevent.sleep(0)
/// p.discard(g)   # counter 1 -> 2
/// a = p.spawn(gevent.sleep, 0.05)
/// with gevent.Timeout(0.01):
///     b = p.spawn(gevent.sleep, 0.05)   # admitted: len(p) == 2
/// ```
#[test]
fn discard_of_a_greenlet_that_left_frees_no_second_slot() {
    run(|| {
        let pool = Pool::new(1);
        let g = pool.spawn(|| ());
        g.join();
        yield_now();
        assert!(pool.is_empty());
        assert!(!pool.discard(&g));
        assert_eq!(pool.wait_available(), 1);
        let a = pool.spawn(|| sleep(Duration::from_secs(10)));
        let b = Greenlet::new(|| ());
        assert_eq!(
            pool.add_timeout(&b, Duration::from_millis(10)),
            Err(PoolFull)
        );
        assert_eq!(pool.len(), 1);
        a.kill();
    });
}

#[test]
fn add_blocks_while_full() {
    run(|| {
        let pool = Pool::new(1);
        let first = spawn(|| sleep(Duration::from_secs(1000)));
        let second = spawn(|| sleep(Duration::from_secs(1000)));
        assert_eq!((pool.free_count(), pool.len()), (1, 0));
        pool.add(&first);
        assert_eq!((pool.free_count(), pool.len()), (0, 1));
        let blocked = Timeout::run(Duration::from_millis(100), || pool.add(&second));
        assert!(blocked.is_err());
        assert_eq!((pool.free_count(), pool.len()), (0, 1));
        // Non-blocking and timed forms: PoolFull.
        assert_eq!(pool.try_add(&second), Err(PoolFull));
        assert_eq!(
            pool.add_timeout(&second, Duration::from_millis(100)),
            Err(PoolFull)
        );
        assert_eq!(pool.len(), 1);
        second.kill();
        first.kill();
        yield_now();
        assert_eq!(pool.free_count(), 1);
    });
}

#[test]
fn start_waits_for_a_slot_too() {
    run(|| {
        let pool = Pool::new(1);
        let first = pool.spawn(|| sleep(Duration::from_secs(1000)));
        let second = Greenlet::new(|| sleep(Duration::from_secs(1000)));
        assert!(Timeout::run(Duration::from_millis(50), || pool.start(&second)).is_err());
        assert!(!second.has_started() && !pool.contains(&second));
        first.kill();
        pool.start(&second);
        assert!(pool.contains(&second));
        pool.kill();
    });
}

#[test]
fn an_invalid_size_is_a_clear_error() {
    let err = Pool::try_new(-1).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("invalid pool size -1"), "{err}");
    assert_eq!(Pool::try_new(0_u8).unwrap().size(), Some(0));
    assert_eq!(Pool::try_new(7_i64).unwrap().size(), Some(7));
}

// ===== TestPool (sizes 1, 2, 3, 10, unbounded) =====

#[test]
fn apply_and_map_on_every_size() {
    each_size(|pool| {
        assert_eq!(pool.apply(|| sqr(5)).unwrap(), 25);
        let expected: Vec<u64> = (0..100).map(sqr).collect();
        assert_eq!(pool.map(sqr, 0..10).unwrap(), expected[..10]);
        assert_eq!(pool.map(sqr, 0..100).unwrap(), expected);
    });
}

#[test]
fn apply_async_result_and_timeout() {
    each_size(|pool| {
        let res = pool.apply_async(|| sqr_wait(7, 20));
        assert_eq!(res.get().unwrap(), 49);
        let slow = pool.apply_async(|| sqr_wait(6, 300));
        assert!(slow.get_timeout(Duration::from_millis(10)).is_none());
        pool.join();
        assert_eq!(slow.get().unwrap(), 36);
    });
}

#[test]
fn imap_in_order_on_every_size() {
    each_size(|pool| {
        let got: Vec<u64> = pool.imap(sqr, 0..10).map(Result::unwrap).collect();
        assert_eq!(got, (0..10).map(sqr).collect::<Vec<_>>());
        // next() one at a time, then the end.
        let mut it = pool.imap(sqr, 0..1000);
        for i in 0..1000 {
            assert_eq!(it.next().unwrap().unwrap(), i * i);
        }
        assert!(it.next().is_none());
        // Completion order differs from input order; the results do not.
        let seed = Cell::new(12345_u64);
        let delays: Vec<u64> = (0..10)
            .map(|_| {
                seed.set(seed.get().wrapping_mul(6364136223846793005).wrapping_add(1));
                seed.get() >> 60
            })
            .collect();
        let got: Vec<u64> = pool
            .imap(move |(x, ms)| sqr_wait(x, ms), (0..10).zip(delays))
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, (0..10).map(sqr).collect::<Vec<_>>());
    });
}

#[test]
fn imap_unordered_yields_everything_on_every_size() {
    each_size(|pool| {
        for _ in 0..2 {
            let mut got: Vec<u64> = pool
                .imap_unordered(sqr, 0..1000)
                .map(Result::unwrap)
                .collect();
            got.sort();
            assert_eq!(got, (0..1000).map(sqr).collect::<Vec<_>>());
        }
    });
}

#[test]
fn empty_inputs_give_empty_results() {
    each_size(|pool| {
        assert_eq!(pool.imap(sqr, []).count(), 0);
        assert_eq!(pool.imap_unordered(sqr, []).count(), 0);
        assert_eq!(pool.map(sqr, []).unwrap(), Vec::<u64>::new());
    });
}

/// gevent:
/// ```python
/// gevent.spawn(lambda: tr.append('other ran'))
/// r = group.map(lambda x: x, [])
/// tr.append('map returned %r' % r)   # ['other ran', 'map returned []']
/// ```
#[test]
fn map_of_nothing_still_yields() {
    run(|| {
        let log = Log::default();
        let l = log.clone();
        spawn(move || l.push("other ran"));
        let r = Group::new().map(|x: u8| x, []).unwrap();
        log.push(format!("map returned {r:?}"));
        assert_eq!(log.snapshot(), ["other ran", "map returned []"]);
    });
}

#[test]
fn kill_terminates_a_map_in_progress() {
    each_size(|pool| {
        let n = pool.size().unwrap_or(10) * 2;
        let result = pool.map_async(|ms| sleep(Duration::from_millis(ms)), vec![100; n]);
        sleep(Duration::from_millis(50));
        pool.kill();
        assert!(pool.is_empty());
        // Killed members make the map fail with GreenletExit. As in gevent,
        // the map's own greenlet is not a member: it goes on spawning the
        // items left as slots free up, and those run (`each_size` joins).
        let error = result.get().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Exited);
    });
}

#[test]
fn imap_unordered_yields_in_completion_order() {
    each_size(|pool| {
        let got: Vec<String> = pool
            .imap_unordered(
                |x: u64| {
                    sleep(Duration::from_millis(x * 10));
                    x.to_string()
                },
                [10, 1, 2],
            )
            .map(Result::unwrap)
            .collect();
        let expected = if pool.size() == Some(1) {
            ["10", "1", "2"]
        } else {
            ["1", "2", "10"]
        };
        assert_eq!(got, expected);
    });
}

/// gevent issue 423: the input is a queue fed later; the iteration waits for
/// it instead of ending early.
#[test]
fn imap_waits_for_a_slow_input() {
    each_size(|pool| {
        for ordered in [true, false] {
            let q: Queue<Option<u32>> = Queue::new();
            q.put(Some(123)).unwrap();
            let feeder = q.clone();
            green_core::spawn_later(Duration::from_millis(50), move || feeder.put(None).unwrap());
            let input = std::iter::from_fn(move || q.get().unwrap());
            let it = if ordered {
                pool.imap(|x| x, input)
            } else {
                pool.imap_unordered(|x| x, input)
            };
            assert_eq!(it.map(Result::unwrap).collect::<Vec<_>>(), [123]);
        }
    });
}

/// gevent issue 311: an input that blocks after its last item.
#[test]
fn imap_with_an_input_that_sleeps_at_its_end() {
    each_size(|pool| {
        for ordered in [true, false] {
            let mut n = 0;
            let input = std::iter::from_fn(move || {
                n += 1;
                if n > 3 {
                    sleep(Duration::from_millis(50));
                    return None;
                }
                Some(n - 1)
            });
            let got: Vec<u64> = if ordered {
                pool.imap(sqr, input).map(Result::unwrap).collect()
            } else {
                pool.imap_unordered(sqr, input)
                    .map(Result::unwrap)
                    .collect()
            };
            assert_eq!(got, [0, 1, 4]);
        }
    });
}

// ===== the in-flight limit and the lazy input =====

/// gevent:
/// ```python
/// def items():
///     for i in range(5):
///         tr.append('read %d' % i)
///         yield i
/// p = Pool(2)
/// it = p.imap(task, items())   # task appends 'run %d'
/// tr.append('first %d' % next(it))
/// ```
/// begins `['read 0', 'read 1', 'read 2', 'run 0', 'run 1', ...]`: the third
/// item is read, and its spawn waits for a slot.
#[test]
fn imap_keeps_at_most_the_pool_size_in_flight_and_reads_lazily() {
    run(|| {
        let log = Log::default();
        let release = Event::new();
        let in_flight = Rc::new(Cell::new(0));
        let most = Rc::new(Cell::new(0));
        let l = log.clone();
        let items = (0..5).inspect(move |i| l.push(format!("read {i}")));
        let pool = Pool::new(2);
        let (l, r, fl, m) = (
            log.clone(),
            release.clone(),
            in_flight.clone(),
            most.clone(),
        );
        let mut it = pool.imap(
            move |x: u32| {
                l.push(format!("run {x}"));
                fl.set(fl.get() + 1);
                m.set(m.get().max(fl.get()));
                r.wait();
                fl.set(fl.get() - 1);
                x
            },
            items,
        );
        sleep(Duration::from_millis(5));
        assert_eq!(
            log.snapshot(),
            ["read 0", "read 1", "read 2", "run 0", "run 1"]
        );
        release.set();
        assert_eq!(it.next().unwrap().unwrap(), 0);
        assert_eq!(it.map(Result::unwrap).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(most.get(), 2);
    });
}

#[test]
fn an_unbounded_pool_and_a_group_run_everything_at_once() {
    run(|| {
        let pool = Pool::unbounded();
        assert_eq!(pool.free_count(), usize::MAX);
        assert!(!pool.full());
        assert_eq!(pool.wait_available(), usize::MAX);
        let gs: Vec<_> = (0..100)
            .map(|_| pool.spawn(|| sleep(Duration::from_millis(1))))
            .collect();
        assert_eq!(pool.len(), 100);
        pool.join();
        assert!(gs.iter().all(Greenlet::dead));
        let group = Group::new();
        assert!(!group.full() && group.size().is_none());
    });
}

// ===== Pool(0), joins, spawn blocking =====

/// gevent: `Pool(0)`: free_count 0, full, `wait_available(timeout=0.01)`
/// returns 0.
#[test]
fn a_pool_of_size_zero_admits_no_one() {
    run(|| {
        let pool = Pool::new(0);
        assert_eq!(pool.free_count(), 0);
        assert!(pool.full());
        assert_eq!(pool.wait_available_timeout(Duration::from_millis(10)), 0);
        let g = Greenlet::new(|| ());
        assert_eq!(pool.try_add(&g), Err(PoolFull));
        let blocked = Timeout::run(Duration::from_millis(10), || pool.spawn(|| ()));
        assert!(blocked.is_err());
        assert!(pool.is_empty());
    });
}

#[test]
fn a_pool_of_size_zero_spawning_from_main_is_loop_exit_not_a_hang() {
    let outcome = std::thread::spawn(|| run(|| Pool::new(0).spawn(|| ()).join())).join();
    let payload = outcome.unwrap_err();
    assert!(
        payload.is::<green_core::LoopExit>(),
        "{}",
        green_core::panic_message(&*payload)
    );
}

#[test]
fn join_waits_for_a_pool_with_and_without_raise_error() {
    run(|| {
        for raise_error in [false, true] {
            let pool = Pool::unbounded();
            let g = pool.spawn(|| sleep(Duration::from_secs(10)));
            assert!(!pool
                .join_with(Some(Duration::from_millis(10)), raise_error)
                .unwrap());
            g.kill();
        }
        assert!(Pool::unbounded().join_timeout(Duration::ZERO));
    });
}

#[test]
fn spawn_blocks_until_a_member_leaves() {
    run(|| {
        let pool = Pool::new(1);
        assert_eq!(pool.len(), 0);
        let first = pool.spawn(|| sleep(Duration::from_millis(20)));
        assert_eq!(pool.len(), 1);
        pool.spawn(|| sleep(Duration::from_millis(20))); // blocks until `first` leaves
        assert!(first.dead());
        assert_eq!(pool.len(), 1);
        assert!(!pool.join_timeout(Duration::from_millis(1)));
        pool.join();
        assert_eq!(pool.len(), 0);
    });
}

// ===== errors =====

fn error_iter() -> impl Iterator<Item = u32> {
    let mut n = 0;
    std::iter::from_fn(move || {
        n += 1;
        if n > 2 {
            panic!("expected");
        }
        Some(n)
    })
}

#[test]
fn an_error_in_the_input_iterator() {
    run(|| {
        green_core::silence_failures();
        let pool = Pool::new(3);
        let error = pool.map(|_| (), error_iter()).unwrap_err();
        assert_eq!(error.message(), "expected");
        // gevent: `[1, 2, 'KeyError']` for imap; the iteration ends there.
        let mut it = pool.imap(|x| x, error_iter());
        assert_eq!(it.next().unwrap().unwrap(), 1);
        assert_eq!(it.next().unwrap().unwrap(), 2);
        assert_eq!(it.next().unwrap().unwrap_err().message(), "expected");
        assert!(it.next().is_none());
        assert!(it.next().is_none());
        let got: Vec<_> = pool.imap_unordered(|x| x, error_iter()).collect();
        assert!(got
            .last()
            .unwrap()
            .as_ref()
            .is_err_and(|e| e.message() == "expected"));
        pool.join();
        green_core::reset_failure_reporter();
    });
}

fn divide_by(x: u32) -> f64 {
    if x == 0 {
        panic!("division by zero");
    }
    1.0 / f64::from(x)
}

/// gevent (map): ZeroDivisionError; (imap and imap_unordered on Pool(1)):
/// `1.0`, ZeroDivisionError, `0.5`, StopIteration.
#[test]
fn an_error_in_the_task() {
    run(|| {
        green_core::silence_failures();
        assert!(Pool::new(3).map(divide_by, [1, 0, 2]).is_err());
        for ordered in [true, false] {
            let pool = Pool::new(1);
            let mut it = if ordered {
                pool.imap(divide_by, [1, 0, 2])
            } else {
                pool.imap_unordered(divide_by, [1, 0, 2])
            };
            assert_eq!(it.next().unwrap().unwrap(), 1.0);
            assert_eq!(
                it.next().unwrap().unwrap_err().message(),
                "division by zero"
            );
            assert_eq!(it.next().unwrap().unwrap(), 0.5);
            assert!(it.next().is_none());
        }
        green_core::reset_failure_reporter();
    });
}

/// gevent: `map` raises `bad 0`, the first failure in input order, although
/// `bad 2` happened first.
#[test]
fn map_returns_the_first_failure_in_input_order() {
    run(|| {
        green_core::silence_failures();
        let error = Pool::new(3)
            .map(
                |x: u64| -> () {
                    sleep(Duration::from_millis(10 * (3 - x)));
                    panic!("bad {x}")
                },
                [0, 1, 2],
            )
            .unwrap_err();
        assert_eq!(error.message(), "bad 0");
        green_core::reset_failure_reporter();
    });
}

/// gevent: after `list(it)`, `next(it)` blocks forever (here: a Timeout).
#[test]
fn next_after_the_end_is_none_again() {
    run(|| {
        let pool = Pool::new(2);
        let mut it = pool.imap(|x: u8| x, [1, 2]);
        assert_eq!(it.by_ref().map(Result::unwrap).collect::<Vec<_>>(), [1, 2]);
        assert!(it.next().is_none());
        assert!(it.next().is_none());
    });
}

#[test]
fn dropping_an_imap_stops_reading_the_input() {
    run(|| {
        let read = Rc::new(Cell::new(0));
        let r = read.clone();
        let pool = Pool::new(1);
        let mut it = pool.imap(|x: u32| x, (0..1000).inspect(move |_| r.set(r.get() + 1)));
        assert_eq!(it.next().unwrap().unwrap(), 0);
        drop(it);
        pool.join();
        sleep(Duration::from_millis(5));
        assert!(read.get() < 10, "read {} items", read.get());
    });
}

#[test]
fn a_killed_map_caller_stops_the_spawning() {
    run(|| {
        let spawned = Rc::new(Cell::new(0));
        let pool = Pool::new(1);
        let (p, s) = (pool.clone(), spawned.clone());
        let caller = spawn(move || {
            let s = s.clone();
            p.map(
                move |_| {
                    s.set(s.get() + 1);
                    sleep(Duration::from_millis(5))
                },
                0..1000,
            )
        });
        sleep(Duration::from_millis(20));
        caller.kill();
        pool.join();
        sleep(Duration::from_millis(20));
        assert!(spawned.get() < 100, "spawned {}", spawned.get());
        assert!(pool.is_empty());
    });
}

// ===== the gevent tutorial =====

/// The tutorial's "Groups and Pools" (`Pool(2)`, `map(hello_from, range(3))`
/// printing the pool's size: 2, 2, 1) and its SocketPool that refuses work
/// when full, line for line.
#[test]
fn the_gevent_tutorial_pool_examples() {
    run(|| {
        let pool = Pool::new(2);
        let sizes = Rc::new(RefCell::new(Vec::new()));
        let (p, s) = (pool.clone(), sizes.clone());
        pool.map(move |_| s.borrow_mut().push(p.len()), 0..3)
            .unwrap();
        assert_eq!(*sizes.borrow(), [2, 2, 1]);

        // class SocketPool: Pool(1000); add_handler refuses when full.
        struct SocketPool {
            pool: Pool,
        }
        impl SocketPool {
            fn add_handler(&self, listen: impl FnOnce() + 'static) -> Result<(), &'static str> {
                if self.pool.full() {
                    return Err("At maximum pool size");
                }
                self.pool.spawn(listen);
                Ok(())
            }
            fn shutdown(&self) {
                self.pool.kill();
            }
        }
        let sockets = SocketPool { pool: Pool::new(3) };
        for _ in 0..3 {
            sockets
                .add_handler(|| sleep(Duration::from_secs(10)))
                .unwrap();
        }
        assert_eq!(sockets.pool.free_count(), 0);
        assert_eq!(sockets.add_handler(|| ()), Err("At maximum pool size"));
        assert_eq!(
            sockets
                .pool
                .wait_available_timeout(Duration::from_millis(5)),
            0
        );
        sockets.shutdown();
        assert_eq!(sockets.pool.free_count(), 3);
        assert_eq!(sockets.pool.wait_available(), 3);
    });
}
