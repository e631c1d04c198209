//! The `Send` handles of `green_core::sync` under load and at the edges of
//! their hub's life:
//!
//! * many OS threads putting into one queue through `RemotePutter`s: every
//!   item arrives exactly once, each thread's items in the order it sent
//!   them;
//! * many OS threads completing `AsyncResult`s through `RemoteSetter`s:
//!   every result gets its value exactly once;
//! * a handle used after its hub is gone (`run` returned, the thread ended,
//!   another hub started on the thread) gives the value back as `HubGone`,
//!   without panicking or blocking;
//! * a live handle keeps the hub's loop alive (a waiting main greenlet does
//!   not get `LoopExit`), and a handle dropped, wherever, no longer does.
//!
//! Every scenario runs under a watchdog ([`within`]): a hang fails it.

#[allow(unreachable_pub)] // The shared fixtures are `pub` for every test binary.
mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use green_core::sync::{AsyncResult, Event, HubGone, Queue, RemotePutter, RemoteSetter};
use green_core::{run, sleep, spawn, yield_now, LoopExit};
use support::{catch, within, MS};

const THREADS: usize = 4;
const PER_THREAD: usize = 10_000;
const LIMIT: Duration = Duration::from_secs(60);

/// An item that says which thread sent it and its place in that thread's
/// sequence.
fn tag(thread: usize, seq: usize) -> u64 {
    ((thread as u64) << 32) | seq as u64
}

fn untag(item: u64) -> (usize, usize) {
    ((item >> 32) as usize, (item & 0xffff_ffff) as usize)
}

#[test]
fn items_from_four_threads_arrive_exactly_once_and_in_each_threads_order() {
    within(LIMIT, || {
        run(|| {
            let q: Queue<u64> = Queue::new();
            let total = THREADS * PER_THREAD;
            // Per thread: the sequence number expected next. Each reader
            // checks an item the moment `get` returns it (no switch in
            // between), so the order checked is the order taken.
            let next = Rc::new(RefCell::new(vec![0usize; THREADS]));
            let seen = Rc::new(RefCell::new(vec![false; total]));
            let errors = Rc::new(RefCell::new(Vec::<String>::new()));
            let count = Rc::new(Cell::new(0usize));
            let all_in = Event::new();

            let readers: Vec<_> = (0..3)
                .map(|_| {
                    let q = q.clone();
                    let (next, seen, errors, count, all_in) = (
                        Rc::clone(&next),
                        Rc::clone(&seen),
                        Rc::clone(&errors),
                        Rc::clone(&count),
                        all_in.clone(),
                    );
                    spawn(move || {
                        let mut mine = 0usize;
                        for item in &q {
                            mine += 1;
                            let (t, seq) = untag(item);
                            if t >= THREADS || seq >= PER_THREAD {
                                errors.borrow_mut().push(format!("a stray item {item:#x}"));
                                continue;
                            }
                            let twice = std::mem::replace(
                                &mut seen.borrow_mut()[t * PER_THREAD + seq],
                                true,
                            );
                            if twice {
                                errors
                                    .borrow_mut()
                                    .push(format!("thread {t}'s item {seq} arrived twice"));
                            }
                            let expected = std::mem::replace(&mut next.borrow_mut()[t], seq + 1);
                            if seq != expected {
                                errors.borrow_mut().push(format!(
                                    "thread {t}'s item {seq} arrived where {expected} was due"
                                ));
                            }
                            count.set(count.get() + 1);
                            if count.get() == total {
                                all_in.set();
                            }
                            // Let the other readers take their turns.
                            if mine % 64 == 0 {
                                yield_now();
                            }
                        }
                        mine
                    })
                })
                .collect();

            let senders: Vec<thread::JoinHandle<()>> = (0..THREADS)
                .map(|t| {
                    let putter = q.remote_putter();
                    thread::spawn(move || {
                        for seq in 0..PER_THREAD {
                            putter
                                .put(tag(t, seq))
                                .expect("the hub lives until every item is in");
                        }
                    })
                })
                .collect();

            let arrived = all_in.wait_timeout(Duration::from_secs(40));
            for s in senders {
                s.join().expect("a sender thread panicked");
            }
            let errors = errors.borrow().clone();
            assert!(
                errors.is_empty(),
                "{} errors, first: {:?}",
                errors.len(),
                &errors[..errors.len().min(5)]
            );
            assert!(arrived, "{} of {total} items arrived", count.get());
            q.close();
            let per_reader: Vec<usize> = readers.iter().map(|r| r.get().unwrap()).collect();
            assert_eq!(per_reader.iter().sum::<usize>(), total, "{per_reader:?}");
            assert!(seen.borrow().iter().all(|&s| s), "every item arrived");
            assert_eq!(*next.borrow(), vec![PER_THREAD; THREADS]);
            assert!(q.empty());
        });
    });
}

/// Results handed to the threads per round, per thread: the registrations
/// alive at once stay few (registering a handle costs a pass over the live
/// ones; see the report of this suite).
const BATCH: usize = 250;
const ROUNDS: usize = PER_THREAD / BATCH;

#[test]
fn results_set_from_four_threads_each_get_their_value_exactly_once() {
    within(LIMIT, || {
        run(|| {
            type Batch = Vec<(u64, RemoteSetter<u64, String>)>;
            let (to_threads, threads): (Vec<mpsc::Sender<Batch>>, Vec<_>) = (0..THREADS)
                .map(|_| {
                    let (tx, rx) = mpsc::channel::<Batch>();
                    let handle = thread::spawn(move || {
                        for batch in rx {
                            for (value, setter) in batch {
                                setter
                                    .set(value)
                                    .expect("the hub lives until every value is in");
                            }
                        }
                    });
                    (tx, handle)
                })
                .unzip();

            let mut all: Vec<AsyncResult<u64, String>> = Vec::with_capacity(THREADS * PER_THREAD);
            for round in 0..ROUNDS {
                let first = all.len();
                for tx in &to_threads {
                    let batch: Batch = (0..BATCH)
                        .map(|_| {
                            let r = AsyncResult::new();
                            let value = all.len() as u64 * 7 + 1;
                            let setter = r.remote_setter();
                            all.push(r);
                            (value, setter)
                        })
                        .collect();
                    tx.send(batch).unwrap();
                }
                // Greenlets wait for this round's results, each for a
                // stride of them, and take the values out: a value set a
                // second time would be there again afterwards.
                let waiters: Vec<_> = (0..4)
                    .map(|w| {
                        let mine: Vec<(usize, AsyncResult<u64, String>)> = all[first..]
                            .iter()
                            .enumerate()
                            .skip(w)
                            .step_by(4)
                            .map(|(i, r)| (first + i, r.clone()))
                            .collect();
                        spawn(move || {
                            let mut wrong = Vec::new();
                            for (i, r) in mine {
                                assert!(
                                    r.wait_timeout(Duration::from_secs(30)),
                                    "result {i} never set"
                                );
                                match r.take() {
                                    Some(Ok(v)) if v == i as u64 * 7 + 1 => {}
                                    other => wrong.push(format!("result {i}: {other:?}")),
                                }
                            }
                            wrong
                        })
                    })
                    .collect();
                for w in waiters {
                    let wrong = w.get().unwrap_or_else(|e| panic!("round {round}: {e}"));
                    assert!(wrong.is_empty(), "round {round}: {wrong:?}");
                }
            }
            drop(to_threads);
            for t in threads {
                t.join().expect("a setter thread panicked");
            }
            // Whatever the threads sent has been run by the loop by the time
            // it has polled once more.
            sleep(5 * MS);
            let again: Vec<usize> = all
                .iter()
                .enumerate()
                .filter(|(_, r)| r.ready())
                .map(|(i, _)| i)
                .collect();
            assert!(again.is_empty(), "set a second time: {again:?}");
            assert_eq!(all.len(), THREADS * PER_THREAD);
        });
    });
}

/// Handles made inside a `run`, used after it returned: on this thread, on
/// another one, and after a new hub started on this thread.
#[test]
fn handles_used_after_run_returned_give_the_value_back() {
    within(LIMIT, || {
        let (putter, setter) = run(|| {
            let q: Queue<String> = Queue::new();
            let r: AsyncResult<String, String> = AsyncResult::new();
            (q.remote_putter(), r.remote_setter())
        });
        assert_gone(&putter, &setter, "on the thread, after run");
        let (p, s) = (putter.clone(), setter.clone());
        thread::spawn(move || assert_gone(&p, &s, "on another thread, after run"))
            .join()
            .unwrap();
        // A new hub on the same thread is not the one the handles belong
        // to: nothing may be delivered into it.
        run(|| {
            assert_gone(&putter, &setter, "after a new run started on the thread");
            let q2: Queue<String> = Queue::new();
            let _p2 = q2.remote_putter();
            assert_gone(&putter, &setter, "after the new hub registered a handle");
            sleep(MS);
            assert!(q2.empty());
        });
        drop((putter, setter));
    });
}

/// A handle whose hub's thread ended, used from the thread that outlived
/// it.
#[test]
fn handles_used_after_their_thread_ended_give_the_value_back() {
    within(LIMIT, || {
        let (putter, setter) = thread::spawn(|| {
            // The lazy hub, torn down at thread exit.
            let q: Queue<String> = Queue::new();
            let r: AsyncResult<String, String> = AsyncResult::new();
            let handles = (q.remote_putter(), r.remote_setter());
            sleep(MS);
            handles
        })
        .join()
        .unwrap();
        assert_gone(&putter, &setter, "after the hub's thread ended");
        // On a thread with a hub of its own, too.
        run(|| assert_gone(&putter, &setter, "from a thread with a hub"));
    });
}

/// Every way to send through dead handles returns `HubGone` with what was
/// sent.
fn assert_gone(putter: &RemotePutter<String>, setter: &RemoteSetter<String, String>, when: &str) {
    let sent = String::from("an item");
    match putter.put(sent.clone()) {
        Err(HubGone(back)) => assert_eq!(back, sent, "{when}: the item comes back"),
        Ok(()) => panic!("{when}: a put into a dead hub succeeded"),
    }
    assert_eq!(
        setter.set("a value".into()).unwrap_err().into_inner(),
        "a value",
        "{when}"
    );
    assert_eq!(
        setter
            .set_exception("an error".into())
            .unwrap_err()
            .into_inner(),
        "an error",
        "{when}"
    );
    assert_eq!(
        setter.send(Ok("sent".into())).unwrap_err().into_inner(),
        Ok("sent".into()),
        "{when}"
    );
}

/// Runs `f` in the main greenlet, expecting `LoopExit`, caught by type.
fn expect_loop_exit(what: &str, f: impl FnOnce()) {
    let payload = catch(f).expect_err(what);
    assert!(
        payload.is::<LoopExit>(),
        "{what}: expected LoopExit, got {}",
        support::panic_message(&*payload)
    );
}

#[test]
fn a_setter_dropped_on_another_thread_no_longer_keeps_the_loop_alive() {
    within(LIMIT, || {
        run(|| {
            let r: AsyncResult<u64, String> = AsyncResult::new();
            let setter = r.remote_setter();
            thread::spawn(move || drop(setter)).join().unwrap();
            expect_loop_exit("nothing can set the result any more", || {
                r.wait();
            });
            assert!(!r.ready());
        });
    });
}

#[test]
fn a_putter_dropped_on_another_thread_no_longer_keeps_the_loop_alive() {
    within(LIMIT, || {
        run(|| {
            let q: Queue<u64> = Queue::new();
            let putter = q.remote_putter();
            let clone = putter.clone();
            thread::spawn(move || {
                clone.put(1).unwrap();
                drop(clone);
                drop(putter);
            })
            .join()
            .unwrap();
            assert_eq!(q.get().unwrap(), 1, "the put before the drop arrives");
            expect_loop_exit("nothing can put into the queue any more", || {
                let _ = q.get();
            });
        });
    });
}

#[test]
fn a_handle_dropped_on_the_hubs_own_thread_no_longer_keeps_the_loop_alive() {
    within(LIMIT, || {
        run(|| {
            let r: AsyncResult<u64, String> = AsyncResult::new();
            drop(r.remote_setter());
            let q: Queue<u64> = Queue::new();
            drop(q.remote_putter());
            expect_loop_exit("nothing can set the result", || {
                r.wait();
            });
            expect_loop_exit("nothing can put into the queue", || {
                let _ = q.get();
            });
        });
    });
}

#[test]
fn a_live_setter_keeps_a_waiting_main_greenlet_from_loop_exit() {
    within(LIMIT, || {
        run(|| {
            let r: AsyncResult<u64, String> = AsyncResult::new();
            let setter = r.remote_setter();
            let t = thread::spawn(move || {
                thread::sleep(Duration::from_millis(100));
                setter.set(7).unwrap();
            });
            // Nothing else is pending: only the handle keeps the loop alive.
            assert_eq!(r.get(), Ok(7));
            t.join().unwrap();
        });
    });
}

#[test]
fn a_live_putter_keeps_a_waiting_main_greenlet_from_loop_exit() {
    within(LIMIT, || {
        run(|| {
            let q: Queue<u64> = Queue::new();
            let putter = q.remote_putter();
            let t = thread::spawn(move || {
                thread::sleep(Duration::from_millis(100));
                putter.put(3).unwrap();
                thread::sleep(Duration::from_millis(50));
                putter.put(4).unwrap();
            });
            assert_eq!(q.get(), Ok(3));
            assert_eq!(q.get(), Ok(4));
            t.join().unwrap();
            // The handle went with the thread.
            expect_loop_exit("the putter is gone", || {
                let _ = q.get();
            });
        });
    });
}

/// A handle whose result was dropped (the hub lives on) delivers into
/// nothing: `Ok`, no panic, and the loop is released once it is dropped.
#[test]
fn a_setter_whose_result_was_dropped_delivers_into_nothing() {
    within(LIMIT, || {
        run(|| {
            let r: AsyncResult<Vec<u8>, String> = AsyncResult::new();
            let setter = r.remote_setter();
            drop(r);
            let t = thread::spawn(move || {
                setter.set(vec![1, 2, 3]).expect("the hub is alive");
            });
            t.join().unwrap();
            sleep(5 * MS);
            let never = Event::new();
            expect_loop_exit("the setter is gone", || {
                never.wait();
            });
        });
    });
}

/// `send_final` from the last handle delivers the outcome and, in the same
/// message, releases the hub's loop: a later wait with nothing pending gets
/// `LoopExit`.
#[test]
fn a_final_send_of_the_last_setter_delivers_and_releases_the_loop() {
    within(LIMIT, || {
        run(|| {
            let r: AsyncResult<u64, String> = AsyncResult::new();
            let setter = r.remote_setter();
            thread::spawn(move || setter.send_final(Ok(9)).expect("the hub is alive"))
                .join()
                .unwrap();
            assert_eq!(r.get(), Ok(9));
            let never = Event::new();
            expect_loop_exit("the only setter sent its final outcome", || {
                never.wait();
            });
        });
    });
}

/// `send_final` from one of two handles delivers, and the other handle
/// still keeps the loop alive and can set again until it is dropped.
#[test]
fn a_final_send_with_a_clone_left_leaves_the_clone_working() {
    within(LIMIT, || {
        run(|| {
            let r: AsyncResult<u64, String> = AsyncResult::new();
            let setter = r.remote_setter();
            let clone = setter.clone();
            thread::spawn(move || setter.send_final(Err("first".into())).unwrap())
                .join()
                .unwrap();
            assert!(r.wait());
            assert_eq!(r.take(), Some(Err("first".into())));
            let t = thread::spawn(move || {
                thread::sleep(Duration::from_millis(50));
                clone.set(2).unwrap();
            });
            // Only the clone keeps the loop alive while this waits.
            assert!(r.wait());
            assert_eq!(r.take(), Some(Ok(2)));
            t.join().unwrap();
            expect_loop_exit("the clone is gone too", || {
                r.wait();
            });
        });
    });
}

/// `send_final` after the hub is gone hands the outcome back.
#[test]
fn a_final_send_after_run_returned_gives_the_outcome_back() {
    within(LIMIT, || {
        let setter = run(|| {
            let r: AsyncResult<String, String> = AsyncResult::new();
            r.remote_setter()
        });
        assert_eq!(
            setter
                .send_final(Ok("late".into()))
                .unwrap_err()
                .into_inner(),
            Ok("late".into())
        );
    });
}
