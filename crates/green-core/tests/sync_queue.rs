//! The queue family (`Queue` = `JoinableQueue`, `LifoQueue`,
//! `PriorityQueue`) and `Channel`: the behaviours of gevent's own test
//! suites for them (`test__queue.py`, and `test__monkey_queue.py`, whose
//! threads are greenlets under monkey-patching), ported to green's API,
//! plus the edges a user meets (close and iteration, the `Full`/`Empty`
//! errors, peek, zero and long timeouts, non-blocking forms, `Debug`, the
//! cross-thread putter, and `wait`/`iwait` over a mixed list).
//!
//! The tests gevent runs for several queue kinds are generated for each of
//! `Queue`, `LifoQueue` and `PriorityQueue` by `queue_kind_tests!`. Each
//! test's doc comment names the gevent test it ports; tests of green's own
//! API edges say so instead.

#[allow(unreachable_pub)] // support/mod.rs is shared; its `pub` items are crate-local here.
mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use green_core::sync::{
    AsyncResult, Channel, Event, GetError, JoinableQueue, LifoQueue, PriorityQueue, PutError,
    Queue, Semaphore, TaskDoneError, Waiter,
};
use green_core::{
    iwait, joinall, sleep, spawn, wait, yield_now, Greenlet, LoopExit, Timeout, Waitable,
};
use support::{catch, outer_timeout_is_not_lost, waits_out, Log, MS};

/// gevent's `QUEUE_SIZE` in `test__monkey_queue.py`.
const QUEUE_SIZE: usize = 5;

/// A greenlet that sets the returned flag when it runs: it runs only if the
/// caller switches away.
fn flag_setter() -> Rc<Cell<bool>> {
    let flag = Rc::new(Cell::new(false));
    let f = Rc::clone(&flag);
    spawn(move || f.set(true));
    flag
}

/// Queues `f` to run inside the hub, as gevent's `loop.run_callback` does:
/// the callback of a set event, which the hub runs before the caller
/// resumes from a `yield_now`.
fn in_hub(f: impl FnOnce() + 'static) {
    let trigger = Event::new();
    trigger.set();
    trigger.link_ready(Box::new(f));
}

/// A value that counts its drops, `Send` (for the cross-thread putter).
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// gevent's `do_blocking_test`: `block` must block until `trigger`, run by
/// another greenlet a little later, unblocks it; returns what `block`
/// returned.
fn blocks_until<R>(block: impl FnOnce() -> R, trigger: impl FnOnce() + 'static) -> R {
    let triggered = Rc::new(Cell::new(false));
    let unblocker = {
        let triggered = Rc::clone(&triggered);
        spawn(move || {
            sleep(10 * MS);
            triggered.set(true);
            trigger();
        })
    };
    let result = block();
    assert!(triggered.get(), "the blocking call appeared not to block");
    unblocker.join();
    result
}

fn getter_into<Q: Clone + 'static>(
    q: &Q,
    result: &AsyncResult<&'static str, String>,
    get: fn(&Q) -> Result<&'static str, GetError>,
) -> Greenlet<()> {
    let (q, result) = (q.clone(), result.clone());
    spawn(move || result.set(get(&q).expect("a getter that waits gets an item")))
}

/// gevent's `do_receive`: a get under a zero `Timeout`, which fires first.
fn cancelled_getter_into<Q: Clone + 'static>(
    q: &Q,
    result: &AsyncResult<&'static str, String>,
    get: fn(&Q) -> Result<&'static str, GetError>,
) -> Greenlet<()> {
    let (q, result) = (q.clone(), result.clone());
    spawn(move || match Timeout::run(Duration::ZERO, || get(&q)) {
        Ok(got) => result.set(got.unwrap()),
        Err(_) => result.set("timed out"),
    })
}

/// The tests gevent runs for several queue kinds, for one of green's.
macro_rules! queue_kind_tests {
    ($kind:ident, $name:ident, first: $first:expr, then: $then:expr) => {
        mod $kind {
            use super::*;

            type Q<T> = $name<T>;

            fn get_str(q: &Q<&'static str>) -> Result<&'static str, GetError> {
                q.get()
            }

            /// Ports `test__queue.py::UsesOnlyOneItemMixin::test_put_nowait_simple`:
            /// from the hub, a non-blocking put into a queue of one
            /// succeeds, a second one finds it full.
            #[test]
            fn put_nowait_from_the_hub() {
                green_core::run(|| {
                    let q: Q<i32> = Q::bounded(1);
                    let results = Rc::new(RefCell::new(Vec::new()));
                    for item in [2, 3] {
                        let (q, results) = (q.clone(), Rc::clone(&results));
                        in_hub(move || results.borrow_mut().push(q.put_nowait(item)));
                    }
                    yield_now();
                    assert_eq!(*results.borrow(), [Ok(()), Err(PutError::Full(3))]);
                    assert_eq!(q.qsize(), 1);
                });
            }

            /// Ports `test__queue.py::UsesOnlyOneItemMixin::test_put_nowait_unlock`:
            /// a non-blocking put from the hub wakes a blocked getter, which
            /// runs after the hub callback (not inside it).
            #[test]
            fn put_nowait_from_the_hub_wakes_a_getter() {
                green_core::run(|| {
                    let q: Q<i32> = Q::new();
                    let getter = {
                        let q = q.clone();
                        spawn(move || q.get())
                    };
                    assert!(q.empty() && !q.full());
                    sleep(MS);
                    assert!(q.empty() && !q.full());
                    let result = Rc::new(RefCell::new(Vec::new()));
                    {
                        let (q, result) = (q.clone(), Rc::clone(&result));
                        in_hub(move || result.borrow_mut().push(q.put_nowait(10)));
                    }
                    assert!(!getter.ready());
                    sleep(MS);
                    assert_eq!(*result.borrow(), [Ok(())]);
                    assert_eq!(getter.get().unwrap(), Ok(10));
                    assert!(q.empty() && !q.full());
                });
            }

            /// Ports `test__queue.py::UsesOnlyOneItemMixin::test_send_last`:
            /// a getter blocked under a (generous) `Timeout` receives an item
            /// put later.
            #[test]
            fn a_blocked_getter_receives_an_item_put_later() {
                green_core::run(|| {
                    let q: Q<&str> = Q::new();
                    let waiter = {
                        let q = q.clone();
                        spawn(move || {
                            let got = Timeout::run(Duration::from_secs(30), || q.get());
                            assert_eq!(got.unwrap(), Ok("hi2"));
                            "OK"
                        })
                    };
                    sleep(10 * MS);
                    q.put("hi2").unwrap();
                    sleep(10 * MS);
                    assert_eq!(waiter.get().unwrap(), "OK");
                });
            }

            /// Ports `test__queue.py::TestSimpleQueue::test_get_nowait_simple`:
            /// from the hub, a non-blocking get takes the item; a second one
            /// finds the queue empty.
            #[test]
            fn get_nowait_from_the_hub() {
                green_core::run(|| {
                    let q: Q<i32> = Q::bounded(1);
                    q.put(4).unwrap();
                    let results = Rc::new(RefCell::new(Vec::new()));
                    for _ in 0..2 {
                        let (q, results) = (q.clone(), Rc::clone(&results));
                        in_hub(move || results.borrow_mut().push(q.get_nowait()));
                    }
                    yield_now();
                    assert_eq!(*results.borrow(), [Ok(4), Err(GetError::Empty)]);
                });
            }

            /// Ports `test__queue.py::TestSimpleQueue::test_get_nowait_unlock`:
            /// a non-blocking get from the hub empties a full queue whose
            /// putter has finished.
            #[test]
            fn get_nowait_from_the_hub_empties_a_full_queue() {
                green_core::run(|| {
                    let q: Q<i32> = Q::bounded(1);
                    let putter = {
                        let q = q.clone();
                        spawn(move || q.put(5))
                    };
                    assert!(q.empty());
                    yield_now();
                    assert!(q.full());
                    let result = Rc::new(RefCell::new(Vec::new()));
                    {
                        let (q, result) = (q.clone(), Rc::clone(&result));
                        in_hub(move || result.borrow_mut().push(q.get_nowait()));
                    }
                    yield_now();
                    assert!(q.empty());
                    assert_eq!(*result.borrow(), [Ok(5)]);
                    assert!(putter.dead());
                    assert_eq!(putter.get().unwrap(), Ok(()));
                });
            }

            /// Ports `test__queue.py::TestSimpleQueue::test_send_first`: an
            /// item put is peeked, then taken, without switching.
            #[test]
            fn put_then_peek_then_get() {
                green_core::run(|| {
                    let q: Q<&str> = Q::new();
                    let ran = flag_setter();
                    q.put("hi").unwrap();
                    assert_eq!(q.peek(), Ok("hi"));
                    assert_eq!(q.get(), Ok("hi"));
                    assert!(!ran.get(), "put, peek and get of a ready item switched");
                });
            }

            /// Ports `test__queue.py::TestSimpleQueue::test_peek_empty`: a
            /// peek at an empty queue in the main greenlet, with nothing to
            /// wake it, is `LoopExit`; in a greenlet, a timed peek gives up
            /// with `Empty`.
            #[test]
            fn peek_at_an_empty_queue() {
                green_core::run(|| {
                    let q: Q<i32> = Q::new();
                    let payload = catch(|| q.peek()).expect_err("nothing can ever put");
                    assert!(
                        payload.is::<LoopExit>(),
                        "{}",
                        support::panic_message(&*payload)
                    );
                    let waiter = {
                        let q = q.clone();
                        spawn(move || q.peek_timeout(10 * MS))
                    };
                    sleep(20 * MS);
                    assert_eq!(waiter.get().unwrap(), Err(GetError::Empty));
                });
            }

            /// Ports `test__queue.py::TestSimpleQueue::test_peek_multi_greenlet`:
            /// a blocked peek sees an item put later and leaves it there.
            #[test]
            fn a_blocked_peek_sees_an_item_and_leaves_it() {
                green_core::run(|| {
                    let q: Q<i32> = Q::new();
                    let peeker = {
                        let q = q.clone();
                        spawn(move || q.peek())
                    };
                    yield_now();
                    q.put(1).unwrap();
                    assert_eq!(peeker.get().unwrap(), Ok(1));
                    assert_eq!(q.peek(), Ok(1));
                    assert_eq!(q.qsize(), 1);
                });
            }

            /// Ports `test__queue.py::TestSimpleQueue::test_max_size`: a
            /// putter into a queue of two blocks on the third item until a
            /// get makes room.
            #[test]
            fn a_putter_blocks_at_maxsize_until_a_get() {
                green_core::run(|| {
                    let q: Q<&str> = Q::bounded(2);
                    let log = Log::new();
                    let putter = {
                        let (q, log) = (q.clone(), log.clone());
                        spawn(move || {
                            for item in ["a", "b", "c"] {
                                q.put(item).unwrap();
                                log.push(item);
                            }
                            "OK"
                        })
                    };
                    yield_now();
                    assert_eq!(log.snapshot(), ["a", "b"]);
                    let first = q.get().unwrap();
                    yield_now();
                    assert_eq!(log.snapshot(), ["a", "b", "c"]);
                    let mut got = vec![first, q.get().unwrap(), q.get().unwrap()];
                    got.sort_unstable();
                    assert_eq!(got, ["a", "b", "c"]);
                    assert_eq!(putter.get().unwrap(), "OK");
                });
            }

            /// Ports `test__queue.py::TestSimpleQueue::test_multiple_waiters`:
            /// four blocked getters each receive one of four items put one
            /// or two at a time.
            #[test]
            fn multiple_blocked_getters_each_receive_an_item() {
                green_core::run(|| {
                    let q: Q<&'static str> = Q::new();
                    let sendings = ["1", "2", "3", "4"];
                    let results: Vec<AsyncResult<&'static str, String>> =
                        sendings.iter().map(|_| AsyncResult::new()).collect();
                    for result in &results {
                        getter_into(&q, result, get_str);
                    }
                    sleep(10 * MS);
                    let collected = RefCell::new(std::collections::BTreeSet::new());
                    let collect_pending = || {
                        for result in &results {
                            if let Some(Ok(got)) = result.get_timeout(MS) {
                                collected.borrow_mut().insert(got);
                            }
                        }
                        collected.borrow().len()
                    };
                    q.put(sendings[0]).unwrap();
                    assert_eq!(collect_pending(), 1);
                    q.put(sendings[1]).unwrap();
                    assert_eq!(collect_pending(), 2);
                    q.put(sendings[2]).unwrap();
                    q.put(sendings[3]).unwrap();
                    assert_eq!(collect_pending(), 4);
                });
            }

            /// Ports `test__queue.py::TestSimpleQueue::test_waiters_that_cancel`:
            /// a getter whose zero `Timeout` fired takes nothing: an item put
            /// afterwards is still there.
            #[test]
            fn a_cancelled_getter_takes_nothing() {
                green_core::run(|| {
                    let q: Q<&'static str> = Q::new();
                    let result = AsyncResult::new();
                    cancelled_getter_into(&q, &result, get_str);
                    assert_eq!(result.get(), Ok("timed out"));
                    q.put("hi").unwrap();
                    assert_eq!(q.get(), Ok("hi"));
                });
            }

            /// Ports `test__queue.py::TestSimpleQueue::test_senders_that_die`.
            #[test]
            fn an_item_from_a_finished_putter_is_received() {
                green_core::run(|| {
                    let q: Q<&str> = Q::new();
                    {
                        let q = q.clone();
                        spawn(move || q.put("sent").unwrap());
                    }
                    assert_eq!(q.get(), Ok("sent"));
                });
            }

            /// Ports `test__queue.py::TestSimpleQueue::test_two_waiters_one_dies`.
            #[test]
            fn of_two_getters_the_cancelled_one_takes_nothing() {
                green_core::run(|| {
                    let q: Q<&'static str> = Q::new();
                    let (dying, waiting) = (AsyncResult::new(), AsyncResult::new());
                    cancelled_getter_into(&q, &dying, get_str);
                    getter_into(&q, &waiting, get_str);
                    sleep(20 * MS);
                    q.put("hi").unwrap();
                    assert_eq!(dying.get(), Ok("timed out"));
                    assert_eq!(waiting.get(), Ok("hi"));
                });
            }

            /// Ports `test__queue.py::TestSimpleQueue::test_two_bogus_waiters`.
            #[test]
            fn two_cancelled_getters_leave_the_item() {
                green_core::run(|| {
                    let q: Q<&'static str> = Q::new();
                    let (e1, e2) = (AsyncResult::new(), AsyncResult::new());
                    cancelled_getter_into(&q, &e1, get_str);
                    cancelled_getter_into(&q, &e2, get_str);
                    sleep(20 * MS);
                    q.put("sent").unwrap();
                    assert_eq!(e1.get(), Ok("timed out"));
                    assert_eq!(e2.get(), Ok("timed out"));
                    assert_eq!(q.get(), Ok("sent"));
                });
            }

            /// Ports `test__queue.py::TestGetInterrupt*` (`test_raises_timeout_number`,
            /// `test_raises_timeout_Timeout`, `test_outer_timeout_is_not_lost`):
            /// a timed get of an empty queue gives up with `Empty`; a
            /// `Timeout` around a blocking get is the one raised; an outer
            /// timeout is not lost.
            #[test]
            fn get_interrupted_by_timeouts() {
                green_core::run(|| {
                    let q: Q<i32> = Q::new();
                    assert_eq!(
                        waits_out(10 * MS, |t| q.get_timeout(t)),
                        Err(GetError::Empty)
                    );
                    let fired = Timeout::run(10 * MS, || q.get()).unwrap_err();
                    assert_eq!(fired.duration(), Some(10 * MS));
                    outer_timeout_is_not_lost(|t| {
                        let _ = q.get_timeout(t);
                    });
                    assert!(format!("{q:?}").contains("getters: 0"), "{q:?}");
                });
            }

            /// Ports `test__queue.py::TestPutInterrupt*`: a timed put into a
            /// full queue gives up with `Full` and the item; a `Timeout`
            /// around a blocking put is the one raised; an outer timeout is
            /// not lost. Nothing is added by the puts that gave up.
            #[test]
            fn put_interrupted_by_timeouts() {
                green_core::run(|| {
                    let q: Q<i32> = Q::bounded(1);
                    while !q.full() {
                        q.put(1).unwrap();
                    }
                    assert_eq!(
                        waits_out(10 * MS, |t| q.put_timeout(2, t)),
                        Err(PutError::Full(2))
                    );
                    let fired = Timeout::run(10 * MS, || q.put(3)).unwrap_err();
                    assert_eq!(fired.duration(), Some(10 * MS));
                    outer_timeout_is_not_lost(|t| {
                        let _ = q.put_timeout(4, t);
                    });
                    assert_eq!(q.qsize(), 1);
                    assert_eq!(q.get_nowait(), Ok(1));
                    assert_eq!(q.get_nowait(), Err(GetError::Empty));
                });
            }

            /// Ports `test__monkey_queue.py::BaseQueueTest::test_simple_queue`
            /// (`simple_queue_test`, twice on one queue): the kind's order,
            /// `peek` agreeing with `get`, `full` at the bound, the
            /// non-blocking and timed puts and gets failing, and a blocking
            /// put and get each waiting for the other side.
            #[test]
            fn simple_queue_test() {
                green_core::run(|| {
                    let q: Q<i32> = Q::bounded(QUEUE_SIZE);
                    for _ in 0..2 {
                        assert!(q.empty());
                        for item in [111, 333, 222, 444] {
                            q.put(item).unwrap();
                        }
                        let first: i32 = $first;
                        assert_eq!((q.peek(), q.get()), (Ok(first), Ok(first)));
                        let then: [i32; 3] = $then;
                        assert_eq!([q.get(), q.get(), q.get()], then.map(Ok));
                        for i in 0..QUEUE_SIZE as i32 - 1 {
                            q.put(i).unwrap();
                            assert!(!q.empty());
                        }
                        assert!(!q.full());
                        q.put(999).unwrap();
                        assert!(q.full());
                        assert_eq!(q.put_nowait(888), Err(PutError::Full(888)));
                        assert_eq!(q.put_timeout(888, 10 * MS), Err(PutError::Full(888)));
                        assert_eq!(q.qsize(), QUEUE_SIZE);
                        let getter = q.clone();
                        blocks_until(
                            || q.put(888).unwrap(),
                            move || {
                                getter.get().unwrap();
                            },
                        );
                        let getter = q.clone();
                        blocks_until(
                            || q.put_timeout(888, Duration::from_secs(10)).unwrap(),
                            move || {
                                getter.get().unwrap();
                            },
                        );
                        for _ in 0..QUEUE_SIZE {
                            q.get().unwrap();
                        }
                        assert!(q.empty());
                        assert_eq!(q.get_nowait(), Err(GetError::Empty));
                        assert_eq!(q.get_timeout(10 * MS), Err(GetError::Empty));
                        let putter = q.clone();
                        let got = blocks_until(|| q.get(), move || putter.put(7).unwrap());
                        assert_eq!(got, Ok(7));
                        let putter = q.clone();
                        let got = blocks_until(
                            || q.get_timeout(Duration::from_secs(10)),
                            move || putter.put(8).unwrap(),
                        );
                        assert_eq!(got, Ok(8));
                    }
                });
            }

            /// Ports `test__monkey_queue.py::BaseQueueTest::test_queue_task_done`
            /// and `::test_queue_join` (`queue_join_test`, twice), and
            /// `test__queue.py::TestQueue::test_task_done`: two workers mark
            /// each item done; `join` returns once all are, and can be
            /// called again; one `task_done` too many is an error.
            #[test]
            fn task_done_and_join() {
                green_core::run(|| {
                    let q: Q<i32> = Q::new();
                    assert_eq!(q.task_done(), Err(TaskDoneError::default_for_tests()));
                    for _ in 0..2 {
                        let cum = Rc::new(Cell::new(0));
                        let workers: Vec<Greenlet<()>> = (0..2)
                            .map(|_| {
                                let (q, cum) = (q.clone(), Rc::clone(&cum));
                                spawn(move || loop {
                                    let x = q.get().unwrap();
                                    if x < 0 {
                                        q.task_done().unwrap();
                                        return;
                                    }
                                    cum.set(cum.get() + x);
                                    q.task_done().unwrap();
                                })
                            })
                            .collect();
                        for i in 0..100 {
                            q.put(i).unwrap();
                        }
                        assert!(q.join());
                        assert_eq!(cum.get(), (0..100).sum::<i32>());
                        for _ in 0..2 {
                            q.put(-1).unwrap();
                        }
                        assert!(q.join());
                        joinall(&workers);
                    }
                    assert_eq!(q.unfinished_tasks(), 0);
                    assert!(q.task_done().is_err());
                });
            }

            /// Ports `test__monkey_queue.py::BaseQueueTest::test_queue_task_done_with_items`
            /// (green has no constructor taking items: they are put first):
            /// `join` with a timeout fails until every item is done.
            #[test]
            fn join_timeout_fails_until_every_item_is_done() {
                green_core::run(|| {
                    let q: Q<i32> = Q::new();
                    let items = [1, 2, 3];
                    for i in items {
                        q.put(i).unwrap();
                    }
                    let mut got = Vec::new();
                    for _ in items {
                        assert!(!q.join_timeout(MS));
                        got.push(q.get().unwrap());
                        q.task_done().unwrap();
                    }
                    got.sort_unstable();
                    assert_eq!(got, items);
                    assert!(q.task_done().is_err());
                    assert!(q.join_timeout(MS));
                });
            }
        }
    };
}

/// `TaskDoneError` has no public constructor; tests compare against the one
/// a fresh queue returns.
trait TaskDoneErrorForTests {
    fn default_for_tests() -> TaskDoneError;
}

impl TaskDoneErrorForTests for TaskDoneError {
    fn default_for_tests() -> TaskDoneError {
        Queue::<()>::new().task_done().unwrap_err()
    }
}

queue_kind_tests!(fifo, Queue, first: 111, then: [333, 222, 444]);
queue_kind_tests!(lifo, LifoQueue, first: 444, then: [222, 333, 111]);
queue_kind_tests!(priority, PriorityQueue, first: 111, then: [222, 333, 444]);

// ===== Queue only =====

/// Ports `test__queue.py::TestQueue::test_issue_45`: joining a queue that
/// never had an item returns at once, without switching.
#[test]
fn join_of_a_fresh_queue_returns_at_once() {
    green_core::run(|| {
        let q: JoinableQueue<i32> = JoinableQueue::new();
        let ran = flag_setter();
        assert!(q.join());
        assert!(q.join_timeout(Duration::ZERO));
        assert!(
            !ran.get(),
            "join of a queue with nothing unfinished switched"
        );
    });
}

/// Ports `test__queue.py::TestQueue::test_shutdown_all_methods_in_one_thread`
/// (green's `close` is gevent's `shutdown(immediate=False)`): puts fail
/// with `Closed`; what was in the queue is still drained and marked done;
/// then every get fails with `Closed` at once, even a timed one.
#[test]
fn close_refuses_puts_and_drains_before_failing_gets() {
    green_core::run(|| {
        let q: Queue<&str> = Queue::new();
        q.put("L").unwrap();
        q.put_nowait("O").unwrap();
        q.close();
        assert!(q.is_closed());
        assert_eq!(q.put("E"), Err(PutError::Closed("E")));
        assert_eq!(q.put_nowait("W"), Err(PutError::Closed("W")));
        assert_eq!(q.put_timeout("T", MS), Err(PutError::Closed("T")));
        assert_eq!(q.get(), Ok("L"));
        q.task_done().unwrap();
        assert_eq!(q.peek_nowait(), Ok("O"));
        assert_eq!(q.get(), Ok("O"));
        q.task_done().unwrap();
        assert!(q.join());
        assert_eq!(q.get(), Err(GetError::Closed));
        assert_eq!(q.get_nowait(), Err(GetError::Closed));
        let start = Instant::now();
        assert_eq!(q.get_timeout(Duration::from_secs(1)), Err(GetError::Closed));
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "a get of a closed queue waited"
        );
        assert_eq!(q.peek(), Err(GetError::Closed));
        q.close(); // twice is harmless
    });
}

/// Ports `test__monkey_queue.py::PriorityQueueTest::test__init`: tuples
/// come out lowest first.
#[test]
fn a_priority_queue_gives_the_lowest_tuple_first() {
    green_core::run(|| {
        let q = PriorityQueue::new();
        q.put((2, "b")).unwrap();
        q.put((1, "a")).unwrap();
        assert_eq!(q.get_nowait(), Ok((1, "a")));
        assert_eq!(q.get_nowait(), Ok((2, "b")));
        let highest_first = PriorityQueue::new();
        for i in [2, 9, 4] {
            highest_first.put(std::cmp::Reverse(i)).unwrap();
        }
        assert_eq!(highest_first.get_nowait().map(|r| r.0), Ok(9));
    });
}

// ===== Channel =====

fn channel_get_str(ch: &Channel<&'static str>) -> Result<&'static str, GetError> {
    ch.get()
}

/// Ports `test__queue.py::TestChannel`'s `test_put_nowait_simple` (via
/// `UsesOnlyOneItemMixin`, a channel never holds an item): with no getter,
/// every non-blocking put fails with `Full`. (gevent calls it from the hub;
/// green's `Channel::put_nowait` is a zero-second timed put, so it runs
/// from a greenlet.)
#[test]
fn channel_put_nowait_without_a_getter_is_full() {
    green_core::run(|| {
        let ch: Channel<i32> = Channel::new();
        assert_eq!(ch.put_nowait(2), Err(PutError::Full(2)));
        assert_eq!(ch.put_nowait(3), Err(PutError::Full(3)));
        assert_eq!(ch.balance(), 0, "a put that gave up leaves nothing");
    });
}

/// Ports `test__queue.py::TestChannel`'s `test_put_nowait_unlock`: a
/// non-blocking put hands its item to a blocked getter.
#[test]
fn channel_put_nowait_hands_the_item_to_a_blocked_getter() {
    green_core::run(|| {
        let ch: Channel<i32> = Channel::new();
        let getter = {
            let ch = ch.clone();
            spawn(move || ch.get())
        };
        sleep(MS);
        assert_eq!(ch.balance(), -1);
        assert_eq!(ch.put_nowait(10), Ok(()));
        assert_eq!(getter.get().unwrap(), Ok(10));
        assert_eq!(ch.balance(), 0);
    });
}

/// Ports `test__queue.py::TestChannel`'s `test_send_last`.
#[test]
fn channel_a_blocked_getter_receives_an_item_put_later() {
    green_core::run(|| {
        let ch: Channel<&str> = Channel::new();
        let waiter = {
            let ch = ch.clone();
            spawn(move || {
                let got = Timeout::run(Duration::from_secs(30), || ch.get());
                assert_eq!(got.unwrap(), Ok("hi2"));
                "OK"
            })
        };
        sleep(10 * MS);
        ch.put("hi2").unwrap();
        sleep(10 * MS);
        assert_eq!(waiter.get().unwrap(), "OK");
    });
}

/// Ports `test__queue.py::TestChannel::test_get_nowait_unlock_channel`: a
/// non-blocking get takes the item of a blocked putter, which then
/// finishes.
#[test]
fn channel_get_nowait_takes_a_blocked_putters_item() {
    green_core::run(|| {
        let ch: Channel<i32> = Channel::new();
        let putter = {
            let ch = ch.clone();
            spawn(move || ch.put(5))
        };
        sleep(MS);
        assert_eq!(ch.balance(), 1);
        assert!(ch.is_ready(), "a waiting putter makes a channel ready");
        assert_eq!(ch.get_nowait(), Ok(5));
        sleep(MS);
        assert!(putter.dead());
        assert_eq!(putter.get().unwrap(), Ok(()));
        assert_eq!(ch.balance(), 0);
        assert_eq!(ch.get_nowait(), Err(GetError::Empty));
    });
}

/// Ports `test__queue.py::TestChannel::test_zero_max_size`: a put blocks
/// until a getter takes the item; both then finish.
#[test]
fn channel_put_blocks_until_a_getter_takes_the_item() {
    green_core::run(|| {
        let ch: Channel<&'static str> = Channel::new();
        let (e1, e2) = (AsyncResult::<&str, String>::new(), AsyncResult::new());
        let sender = {
            let (ch, e1) = (ch.clone(), e1.clone());
            spawn(move || {
                ch.put("hi").unwrap();
                e1.set("done");
            })
        };
        sleep(MS);
        assert!(!e1.ready());
        let receiver = getter_into(&ch, &e2, channel_get_str);
        assert_eq!(e2.get(), Ok("hi"));
        assert_eq!(e1.get(), Ok("done"));
        assert!(Timeout::run(Duration::ZERO, || joinall(&[&sender, &receiver])).is_ok());
    });
}

/// Ports `test__queue.py::TestChannel::test_send`: the putter resumes only
/// after its getter has taken (and logged) each item.
#[test]
fn channel_send_order() {
    green_core::run(|| {
        let ch: Channel<&'static str> = Channel::new();
        let log = Log::new();
        let g = {
            let (ch, log) = (ch.clone(), log.clone());
            spawn(move || {
                log.push(ch.get().unwrap());
                log.push(ch.get().unwrap());
            })
        };
        log.push("sending");
        ch.put("hello").unwrap();
        log.push("sent hello");
        ch.put("world").unwrap();
        log.push("sent world");
        assert_eq!(
            log.take(),
            ["sending", "hello", "sent hello", "world", "sent world"]
        );
        g.get().unwrap();
    });
}

/// Ports `test__queue.py::TestChannel::test_wait`: the getter resumes with
/// each item before its putter does.
#[test]
fn channel_wait_order() {
    green_core::run(|| {
        let ch: Channel<&'static str> = Channel::new();
        let log = Log::new();
        let g = {
            let (ch, log) = (ch.clone(), log.clone());
            spawn(move || {
                log.push("sending hello");
                ch.put("hello").unwrap();
                log.push("sending world");
                ch.put("world").unwrap();
                log.push("sent world");
            })
        };
        log.push("waiting");
        log.push(ch.get().unwrap());
        log.push(ch.get().unwrap());
        assert_eq!(
            log.snapshot(),
            [
                "waiting",
                "sending hello",
                "hello",
                "sending world",
                "world"
            ]
        );
        yield_now();
        assert_eq!(
            log.snapshot(),
            [
                "waiting",
                "sending hello",
                "hello",
                "sending world",
                "world",
                "sent world"
            ]
        );
        g.get().unwrap();
    });
}

/// Ports `test__queue.py::TestChannel::test_iterable` (gevent ends the
/// iteration with a `StopIteration` item; green's ends when the channel is
/// closed): iterating a channel closed with no item yields nothing.
#[test]
fn iterating_a_channel_ends_when_it_is_closed() {
    green_core::run(|| {
        let ch: Channel<i32> = Channel::new();
        {
            let ch = ch.clone();
            spawn(move || ch.close());
        }
        let got: Vec<i32> = ch.iter().collect();
        assert!(got.is_empty());

        let ch: Channel<i32> = Channel::new();
        {
            let ch = ch.clone();
            spawn(move || {
                for i in 1..=3 {
                    ch.put(i).unwrap();
                }
                ch.close();
            });
        }
        let got: Vec<i32> = (&ch).into_iter().collect();
        assert_eq!(got, [1, 2, 3]);
        assert_eq!(ch.put_nowait(4), Err(PutError::Closed(4)));
        assert_eq!(ch.get(), Err(GetError::Closed));
    });
}

/// Ports `test__queue.py::TestGetInterruptChannel` and
/// `TestPutInterruptChannel`: timed gets and puts on a channel with no
/// other side give up (`Empty`, `Full` with the item); a `Timeout` around
/// them is the one raised; an outer timeout is not lost.
#[test]
fn channel_get_and_put_interrupted_by_timeouts() {
    green_core::run(|| {
        let ch: Channel<i32> = Channel::new();
        assert_eq!(
            waits_out(10 * MS, |t| ch.get_timeout(t)),
            Err(GetError::Empty)
        );
        assert_eq!(
            waits_out(10 * MS, |t| ch.put_timeout(2, t)),
            Err(PutError::Full(2))
        );
        assert!(Timeout::run(10 * MS, || ch.get()).is_err());
        assert!(Timeout::run(10 * MS, || ch.put(3)).is_err());
        outer_timeout_is_not_lost(|t| {
            let _ = ch.get_timeout(t);
        });
        outer_timeout_is_not_lost(|t| {
            let _ = ch.put_timeout(4, t);
        });
        assert_eq!(ch.balance(), 0);
        assert_eq!(format!("{ch:?}"), "Channel { balance: 0, closed: false }");
    });
}

// ===== green's API edges =====

/// `bounded(0)` panics, saying to use a `Channel` or an unbounded queue.
#[test]
fn a_queue_bounded_to_zero_panics_with_advice() {
    for payload in [
        catch(|| drop(Queue::<i32>::bounded(0))).unwrap_err(),
        catch(|| drop(LifoQueue::<i32>::bounded(0))).unwrap_err(),
        catch(|| drop(PriorityQueue::<i32>::bounded(0))).unwrap_err(),
    ] {
        let message = support::panic_message(&*payload);
        assert!(message.contains("use Channel"), "{message}");
    }
}

/// The errors' messages and `Debug` (the item is not printed, so it need
/// not be `Debug`), `into_inner`, `is_full`.
#[test]
fn queue_error_messages() {
    struct Opaque(u8);
    let full = PutError::Full(Opaque(1));
    let closed = PutError::Closed(Opaque(2));
    assert_eq!(full.to_string(), "queue is full");
    assert!(
        closed.to_string().starts_with("queue is closed"),
        "{closed}"
    );
    assert_eq!(format!("{full:?} {closed:?}"), "Full(..) Closed(..)");
    assert!(full.is_full() && !closed.is_full());
    assert_eq!((full.into_inner().0, closed.into_inner().0), (1, 2));
    assert_eq!(GetError::Empty.to_string(), "queue is empty");
    assert_eq!(GetError::Closed.to_string(), "queue is closed and drained");
    assert_eq!(format!("{:?}", GetError::Empty), "Empty");
    let done = TaskDoneError::default_for_tests();
    assert!(
        done.to_string()
            .starts_with("task_done() called too many times"),
        "{done}"
    );
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(GetError::Closed);
    assert_eq!(boxed.to_string(), "queue is closed and drained");
    let boxed: Box<dyn std::error::Error> = Box::new(PutError::Full(Opaque(3)));
    assert_eq!(boxed.to_string(), "queue is full");
}

/// `Debug` of each queue kind, a channel and an iterator, with waiters on
/// both sides.
#[test]
fn debug_output_of_queues() {
    green_core::run(|| {
        struct Opaque;
        let q: Queue<Opaque> = Queue::bounded(1);
        assert_eq!(
            format!("{q:?}"),
            "Queue { qsize: 0, maxsize: Some(1), getters: 0, putters: 0, closed: false }"
        );
        let getter = {
            let q = q.clone();
            spawn(move || q.get().is_ok())
        };
        yield_now();
        assert!(format!("{q:?}").contains("getters: 1"), "{q:?}");
        q.put(Opaque).map_err(|_| "put").unwrap();
        assert!(getter.get().unwrap());
        q.put(Opaque).map_err(|_| "put").unwrap();
        let putter = {
            let q = q.clone();
            spawn(move || q.put(Opaque).is_ok())
        };
        yield_now();
        assert!(format!("{q:?}").contains("qsize: 1, maxsize: Some(1), getters: 0, putters: 1"));
        q.close();
        assert!(format!("{q:?}").ends_with("closed: true }"), "{q:?}");
        assert!(!putter.get().unwrap());
        let lifo: LifoQueue<u8> = LifoQueue::default();
        assert!(format!("{lifo:?}").starts_with("LifoQueue { qsize: 0, maxsize: None"));
        let priority: PriorityQueue<u8> = PriorityQueue::default();
        assert!(format!("{priority:?}").starts_with("PriorityQueue { qsize: 0"));
        let ch: Channel<Opaque> = Channel::default();
        assert_eq!(format!("{ch:?}"), "Channel { balance: 0, closed: false }");
        assert_eq!(format!("{:?}", lifo.iter()), "QueueIter");
    });
}

/// `qsize`, `empty`, `full`, `maxsize` and `balance` as items come and go
/// and greenlets block on either side.
#[test]
fn queue_sizes_and_balance() {
    green_core::run(|| {
        let q: Queue<u8> = Queue::bounded(2);
        assert_eq!(
            (q.qsize(), q.empty(), q.full(), q.maxsize()),
            (0, true, false, Some(2))
        );
        assert_eq!(Queue::<u8>::new().maxsize(), None);
        let getters: Vec<_> = (0..3)
            .map(|_| {
                let q = q.clone();
                spawn(move || q.get())
            })
            .collect();
        yield_now();
        assert_eq!(q.balance(), -3);
        for i in 0..3 {
            q.put(i).unwrap();
        }
        joinall(&getters);
        assert_eq!(q.balance(), 0);
        for i in 0..2 {
            q.put(i).unwrap();
        }
        assert!(q.full());
        let putters: Vec<_> = (0..2)
            .map(|i| {
                let q = q.clone();
                spawn(move || q.put(10 + i))
            })
            .collect();
        yield_now();
        assert_eq!((q.balance(), q.qsize()), (2, 2));
        let drained: Vec<u8> = (0..4).map(|_| q.get().unwrap()).collect();
        assert_eq!(drained, [0, 1, 10, 11]);
        joinall(&putters);
        assert_eq!((q.balance(), q.qsize(), q.empty()), (0, 0, true));
    });
}

/// Non-blocking puts and gets never switch; a put that finds getters
/// waiting does not switch either (the getter runs once the putter blocks).
#[test]
fn nowait_forms_and_puts_to_waiting_getters_never_switch() {
    green_core::run(|| {
        let q: Queue<u8> = Queue::bounded(1);
        let getter = {
            let q = q.clone();
            spawn(move || q.get())
        };
        yield_now();
        let ran = flag_setter();
        q.put(1).unwrap();
        assert_eq!(q.put_nowait(2), Err(PutError::Full(2)));
        assert_eq!(q.peek_nowait(), Ok(1));
        assert!(
            !ran.get() && !getter.ready(),
            "a put or a nowait form switched"
        );
        assert_eq!(getter.get().unwrap(), Ok(1));
        assert_eq!(q.get_nowait(), Err(GetError::Empty));
        assert_eq!(q.peek_nowait(), Err(GetError::Empty));
    });
}

/// Zero and long timeouts on gets, puts and peeks. A zero timeout is a real
/// zero-second timer: a putter (or getter) already ready runs first and
/// can satisfy it; with nobody ready it gives up. A long one returns as
/// soon as the other side comes.
#[test]
fn queue_timeouts_zero_and_long() {
    green_core::run(|| {
        let q: Queue<u8> = Queue::bounded(1);
        assert_eq!(q.get_timeout(Duration::ZERO), Err(GetError::Empty));
        assert_eq!(q.peek_timeout(Duration::ZERO), Err(GetError::Empty));
        {
            let q = q.clone();
            spawn(move || q.put(1).unwrap());
        }
        assert_eq!(
            q.get_timeout(Duration::ZERO),
            Ok(1),
            "the ready putter runs first"
        );
        q.put(2).unwrap();
        assert_eq!(q.put_timeout(3, Duration::ZERO), Err(PutError::Full(3)));
        {
            let q = q.clone();
            spawn(move || assert_eq!(q.get(), Ok(2)));
        }
        assert_eq!(
            q.put_timeout(4, Duration::ZERO),
            Ok(()),
            "the ready getter makes room"
        );
        {
            let q = q.clone();
            spawn(move || {
                sleep(5 * MS);
                q.get().unwrap()
            });
        }
        let start = Instant::now();
        assert_eq!(q.put_timeout(5, Duration::from_secs(3600)), Ok(()));
        assert_eq!(q.get_nowait(), Ok(5));
        {
            let q = q.clone();
            spawn(move || {
                sleep(5 * MS);
                q.put(6).unwrap()
            });
        }
        assert_eq!(q.peek_timeout(Duration::from_secs(3600)), Ok(6));
        assert_eq!(q.get_timeout(Duration::from_secs(3600)), Ok(6));
        assert!(start.elapsed() < Duration::from_secs(60));
    });
}

/// Closing wakes every blocked greenlet: putters get their items back in
/// `Closed`, getters get `Closed` once the queue is drained, peekers too;
/// an iteration ends after the last item.
#[test]
fn close_wakes_blocked_putters_getters_and_iterators() {
    green_core::run(|| {
        let full: Queue<&str> = Queue::bounded(1);
        full.put("kept").unwrap();
        let putter = {
            let full = full.clone();
            spawn(move || full.put("returned"))
        };
        yield_now();
        full.close();
        assert_eq!(putter.get().unwrap(), Err(PutError::Closed("returned")));
        assert_eq!(full.get(), Ok("kept"));
        assert_eq!(full.get(), Err(GetError::Closed));

        let empty: LifoQueue<u8> = LifoQueue::new();
        let getter = {
            let empty = empty.clone();
            spawn(move || empty.get())
        };
        let peeker = {
            let empty = empty.clone();
            spawn(move || empty.peek())
        };
        let iterator = {
            let empty = empty.clone();
            spawn(move || empty.iter().collect::<Vec<u8>>())
        };
        yield_now();
        empty.close();
        assert_eq!(getter.get().unwrap(), Err(GetError::Closed));
        assert_eq!(peeker.get().unwrap(), Err(GetError::Closed));
        assert_eq!(iterator.get().unwrap(), Vec::<u8>::new());

        let q: PriorityQueue<u8> = PriorityQueue::new();
        let consumer = {
            let q = q.clone();
            spawn(move || (&q).into_iter().collect::<Vec<u8>>())
        };
        for i in [3, 1, 2] {
            q.put(i).unwrap();
        }
        q.close();
        assert_eq!(consumer.get().unwrap(), [1, 2, 3]);

        let ch: Channel<&str> = Channel::new();
        let channel_putter = {
            let ch = ch.clone();
            spawn(move || ch.put("back"))
        };
        let ch2: Channel<&str> = Channel::new();
        let channel_getter = {
            let ch2 = ch2.clone();
            spawn(move || ch2.get())
        };
        yield_now();
        ch.close();
        ch2.close();
        assert!(ch.is_closed() && ch2.is_closed());
        assert_eq!(channel_putter.get().unwrap(), Err(PutError::Closed("back")));
        assert_eq!(channel_getter.get().unwrap(), Err(GetError::Closed));
    });
}

/// Kill safety: a putter killed while blocked adds nothing (its item is
/// dropped with it), a getter killed while blocked takes nothing, on a
/// queue and on a channel.
#[test]
fn killed_putters_and_getters_leave_nothing() {
    green_core::run(|| {
        let drops = support::DropCounter::new();
        let q = Queue::bounded(1);
        q.put(drops.token()).map_err(|_| "put").unwrap();
        let putter = {
            let (q, token) = (q.clone(), drops.token());
            spawn(move || q.put(token).is_ok())
        };
        yield_now();
        putter.kill();
        assert_eq!(
            drops.drops(),
            1,
            "the killed putter's item was dropped with it"
        );
        assert_eq!(q.qsize(), 1);
        drop(q.get().map_err(|_| "get").unwrap());
        assert_eq!(q.balance(), 0);

        let q: Queue<u8> = Queue::new();
        let doomed = {
            let q = q.clone();
            spawn(move || q.get())
        };
        let survivor = {
            let q = q.clone();
            spawn(move || q.get())
        };
        yield_now();
        doomed.kill();
        q.put(7).unwrap();
        assert_eq!(survivor.get().unwrap(), Ok(7));
        assert!(q.empty());

        let ch: Channel<u8> = Channel::new();
        let doomed = {
            let ch = ch.clone();
            spawn(move || ch.put(1))
        };
        yield_now();
        doomed.kill();
        assert_eq!(ch.balance(), 0);
        assert_eq!(ch.get_nowait(), Err(GetError::Empty));
        let doomed = {
            let ch = ch.clone();
            spawn(move || ch.get())
        };
        yield_now();
        doomed.kill();
        assert_eq!(ch.put_nowait(2), Err(PutError::Full(2)));
    });
}

/// A peeker and a getter blocked on one queue both see the one item put:
/// the peeker leaves it for the getter.
#[test]
fn a_blocked_peeker_and_getter_both_see_one_item() {
    green_core::run(|| {
        let q: Queue<u8> = Queue::new();
        let peeker = {
            let q = q.clone();
            spawn(move || q.peek())
        };
        let getter = {
            let q = q.clone();
            spawn(move || q.get())
        };
        yield_now();
        q.put(9).unwrap();
        assert_eq!(peeker.get().unwrap(), Ok(9));
        assert_eq!(getter.get().unwrap(), Ok(9));
        assert!(q.empty());
    });
}

/// A `RemotePutter` puts from another thread, in order; it is not held to
/// the bound; on a closed queue its item is dropped; and while it exists,
/// a get in the main greenlet waits for it rather than raising `LoopExit`.
#[test]
fn remote_putter_from_another_thread() {
    green_core::run(|| {
        let q: Queue<u32> = Queue::bounded(1);
        let putter = q.remote_putter();
        let sender = {
            let putter = putter.clone();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(10));
                for i in 0..3 {
                    putter.put(i).unwrap();
                }
            })
        };
        // Nothing green can put: only the other thread.
        assert_eq!(q.get(), Ok(0));
        sender.join().unwrap();
        let start = Instant::now();
        while q.qsize() < 2 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the remote puts never arrived"
            );
            sleep(MS);
        }
        assert!(
            q.qsize() > q.maxsize().unwrap(),
            "remote puts are not held to the bound"
        );
        let got: Vec<u32> = [q.get(), q.get()].into_iter().map(Result::unwrap).collect();
        assert_eq!(got, [1, 2]);
        assert!(format!("{putter:?}").contains("hub_alive: true"));

        let drops = Arc::new(AtomicUsize::new(0));
        let closed: Queue<Counted> = Queue::new();
        let putter = closed.remote_putter();
        closed.close();
        {
            let drops = Arc::clone(&drops);
            thread::spawn(move || putter.put(Counted(drops)).map_err(|_| "gone").unwrap())
                .join()
                .unwrap();
        }
        let start = Instant::now();
        while drops.load(Ordering::SeqCst) == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the item was never dropped"
            );
            sleep(MS);
        }
        assert_eq!(closed.qsize(), 0);
    });
}

/// Once the last `RemotePutter` is gone without putting, a get in the main
/// greenlet with nothing else to wait for is `LoopExit` again.
#[test]
fn loop_exit_once_the_last_remote_putter_is_gone() {
    green_core::run(|| {
        let q: Queue<u32> = Queue::new();
        let putter = q.remote_putter();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(10));
            drop(putter);
        });
        let payload = catch(|| q.get()).expect_err("nobody is left to put");
        assert!(
            payload.is::<LoopExit>(),
            "{}",
            support::panic_message(&*payload)
        );
    });
}

/// A `RemotePutter` whose hub is gone gives the item back.
#[test]
fn remote_putter_outliving_its_hub_gives_the_item_back() {
    let putter = green_core::run(|| Queue::<String>::new().remote_putter());
    let gone = putter.put("late".to_string()).unwrap_err();
    assert_eq!(gone.into_inner(), "late");
    assert!(format!("{putter:?}").contains("hub_alive: false"));
}

// ===== wait / iwait over a mixed list =====

/// A queue is ready for `wait`/`iwait` while it holds an item or once it is
/// closed; a channel while a putter waits or once it is closed. Waiting
/// consumes nothing; they mix with every other kind.
#[test]
fn iwait_over_queues_channels_and_other_kinds() {
    green_core::run(|| {
        let q: Queue<u8> = Queue::new();
        let lifo: LifoQueue<u8> = LifoQueue::new();
        let closed: PriorityQueue<u8> = PriorityQueue::new();
        let ch: Channel<u8> = Channel::new();
        let event = Event::new();
        let waiter: Waiter<u8> = Waiter::new();
        let sem = Semaphore::new(0);
        let g = spawn(|| sleep(2 * MS));
        {
            let (q, lifo, closed, ch, event, waiter, sem) = (
                q.clone(),
                lifo.clone(),
                closed.clone(),
                ch.clone(),
                event.clone(),
                waiter.clone(),
                sem.clone(),
            );
            spawn(move || {
                sleep(10 * MS);
                q.put(1).unwrap();
                sleep(2 * MS);
                closed.close();
                sleep(2 * MS);
                sem.release();
                sleep(2 * MS);
                waiter.switch(2);
                sleep(2 * MS);
                lifo.put(3).unwrap();
                sleep(2 * MS);
                event.set();
                ch.put(4).unwrap();
            });
        }
        let objects: [&dyn Waitable; 8] = [&q, &lifo, &closed, &ch, &event, &waiter, &sem, &g];
        let order: Vec<usize> = iwait(&objects, Some(Duration::from_secs(60))).collect();
        assert_eq!(order, [7, 0, 2, 6, 5, 1, 4, 3]);
        assert_eq!((q.qsize(), lifo.qsize(), ch.balance()), (1, 1, 1));
        assert_eq!(ch.get(), Ok(4));
        assert_eq!(closed.get(), Err(GetError::Closed));
    });
}

/// `wait` with a count over queues: already-ready ones count at once; the
/// others are unlinked when it returns; a zero timeout returns only those
/// ready.
#[test]
fn wait_over_queues_with_count_and_timeout() {
    green_core::run(|| {
        let ready: Queue<u8> = Queue::new();
        ready.put(1).unwrap();
        let empty: Queue<u8> = Queue::new();
        let ch: Channel<u8> = Channel::new();
        let objects: [&dyn Waitable; 3] = [&empty, &ready, &ch];
        assert_eq!(wait(&objects, Some(Duration::ZERO), None), [1]);
        assert_eq!(wait(&objects, None, Some(1)), [1]);
        assert_eq!(wait(&objects, Some(5 * MS), None), [1]);
        let putter = {
            let ch = ch.clone();
            spawn(move || ch.put(2))
        };
        assert_eq!(
            wait(&objects, Some(Duration::from_secs(60)), Some(2)),
            [1, 2]
        );
        assert_eq!(ch.get(), Ok(2));
        putter.get().unwrap().unwrap();
        assert_eq!(ready.get(), Ok(1));
        assert!(!ready.is_ready());
        {
            let empty = empty.clone();
            spawn(move || empty.close());
        }
        assert_eq!(wait(&objects, None, Some(1)), [0]);
    });
}

/// `close` promises blocked putters their items back: that holds also when
/// a get made room (queuing the hand-off to the putter) just before the
/// close. gevent's `shutdown` takes the waiters off at once, so its pending
/// hand-off finds no putter left to admit.
#[test]
fn a_putter_blocked_when_the_queue_closes_gets_its_item_back_despite_a_pending_hand_off() {
    green_core::run(|| {
        let q: Queue<u8> = Queue::bounded(1);
        q.put(1).unwrap();
        let putter = {
            let q = q.clone();
            spawn(move || q.put(2))
        };
        yield_now();
        assert_eq!(q.balance(), 1, "the putter is blocked");
        assert_eq!(q.get_nowait(), Ok(1), "a get makes room");
        q.close();
        assert_eq!(putter.get().unwrap(), Err(PutError::Closed(2)));
        assert_eq!(
            q.get(),
            Err(GetError::Closed),
            "nothing was put after the close"
        );
    });
}

/// Long timeouts on a channel's get and put return as soon as the other
/// side comes; a zero-timeout get takes the item of a putter already
/// ready to run.
#[test]
fn channel_timeouts_long_and_zero() {
    green_core::run(|| {
        let ch: Channel<u8> = Channel::new();
        {
            let ch = ch.clone();
            spawn(move || {
                sleep(5 * MS);
                ch.put(1).unwrap();
            });
        }
        let start = Instant::now();
        assert_eq!(ch.get_timeout(Duration::from_secs(3600)), Ok(1));
        let getter = {
            let ch = ch.clone();
            spawn(move || {
                sleep(5 * MS);
                ch.get()
            })
        };
        assert_eq!(ch.put_timeout(2, Duration::from_secs(3600)), Ok(()));
        assert_eq!(getter.get().unwrap(), Ok(2));
        assert!(start.elapsed() < Duration::from_secs(60));
        {
            let ch = ch.clone();
            spawn(move || ch.put(3).unwrap());
        }
        assert_eq!(
            ch.get_nowait(),
            Ok(3),
            "the ready putter runs before the zero timer"
        );
    });
}

/// A long `join_timeout` returns `true` as soon as the last item is marked
/// done; a zero one with work outstanding returns `false`.
#[test]
fn join_timeout_long_and_zero() {
    green_core::run(|| {
        let q: JoinableQueue<u8> = JoinableQueue::new();
        q.put(1).unwrap();
        assert!(!q.join_timeout(Duration::ZERO));
        {
            let q = q.clone();
            spawn(move || {
                q.get().unwrap();
                sleep(5 * MS);
                q.task_done().unwrap();
            });
        }
        assert!(q.join_timeout(Duration::from_secs(3600)));
        assert_eq!(q.unfinished_tasks(), 0);
    });
}

/// green's own edge (the hand-off's window, N5 in `hub/notify.rs`): a
/// getter woken from a full bounded queue makes room by taking its item;
/// the hand-off that woke it admits the blocked putter as soon as the
/// getter is done, before a greenlet queued earlier (gevent's `_unlock`
/// loop goes on once the getter switches back).
#[test]
fn room_made_by_a_woken_getter_admits_the_putter_before_the_queue() {
    green_core::run(|| {
        let log = Log::new();
        let q: Queue<&str> = Queue::bounded(1);
        let getter = {
            let (q, log) = (q.clone(), log.clone());
            spawn(move || log.push(format!("got {}", q.get().unwrap())))
        };
        yield_now();
        q.put("a").unwrap();
        let queued = {
            let log = log.clone();
            spawn(move || log.push("queued before the hand-off ran"))
        };
        q.put("b").unwrap();
        log.push("put b");
        getter.join();
        queued.join();
        assert_eq!(
            log.take(),
            ["got a", "put b", "queued before the hand-off ran"],
            "the putter was admitted out of gevent's order"
        );
    });
}
