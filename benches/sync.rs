//! green-core's synchronisation primitives (`green_core::sync`), each beside
//! tokio's nearest equivalent (and may's channel for the queue).
//!
//! | bench | subject | what one operation is |
//! | --- | --- | --- |
//! | `sync/event_pingpong` | `green` | one one-way hand-off between two greenlets through two `Event`s (`set`, `wait`, `clear`) |
//! | `sync/event_pingpong` | `tokio` | one one-way hand-off between two tasks through two `Notify`s (`notify_one`, `notified().await`) |
//! | `sync/queue_pingpong` | `green` | one one-way trip of an integer between two greenlets through two unbounded `Queue`s (`put`, `get`) |
//! | `sync/queue_pingpong` | `tokio` | the same between two tasks through two `mpsc::unbounded_channel`s |
//! | `sync/queue_pingpong` | `may` | the same between two coroutines through two `may::sync::mpsc::channel`s, one worker |
//! | `sync/semaphore_uncontended` | `green` | `Semaphore::acquire()` of a free count, then dropping the guard |
//! | `sync/semaphore_uncontended` | `tokio` | `Semaphore::acquire().await` of a free permit inside `block_on`, then dropping the permit |
//! | `sync/lock_contended_100` | `green` | one hand-over of a `Lock` among 100 greenlets that each take it, yield, release it and yield |
//! | `sync/lock_contended_100` | `tokio` | one hand-over of a `tokio::sync::Mutex` among 100 tasks doing the same |
//! | `sync/cross_thread_set` | `green` | one round: a std thread, told through a std channel, sets an `AsyncResult` through its `RemoteSetter`; the waiting greenlet wakes |
//! | `sync/cross_thread_set` | `tokio` | one round: a std thread, handed a fresh `oneshot::Sender` through a std channel, sends; `block_on` wakes |
//! | `sync/cross_thread_set` | `std` | one round of two std threads over two std mpsc channels: the floor, two blocking wake-ups and nothing else |
//!
//! Every subject except the cross-thread one runs on one thread, so no
//! figure but that one includes a cross-thread wake-up. tokio runs a
//! current-thread runtime, may one worker (`support/may_peer.rs`).
//!
//! The contended lock: green's `Lock`, like gevent's, lets a greenlet that
//! does not block take a free lock ahead of the greenlets waiting for it. A
//! loop of only "take, yield, release" would therefore keep the lock with
//! one greenlet forever and hand nothing over; each holder yields once more
//! after releasing, so that the greenlet woken for the lock gets it. tokio's
//! `Mutex` is fair (a release hands the lock to the first waiter), so the
//! second yield changes nothing for it, but both subjects run the same loop.
//! The green case counts the acquisitions that changed owner and says so in
//! its note.
//!
//! The cross-thread round also carries one std-channel hand-off from the
//! timing side to the thread (the same in every subject); the thread blocks
//! in `recv` between rounds rather than spinning, since the machine the
//! benches run on has two cores shared with builds. Each round therefore
//! wakes two sleeping threads, which on a virtual machine costs from a few
//! to tens of microseconds depending on how idle the cores are: the `std`
//! subject measures that floor in the same run, so what green and tokio add
//! to it can be read off.
//!
//! With `GREEN_BENCH_CALLGRIND=N` the binary only runs N rounds (2N one-way
//! hand-offs) of green's `sync/event_pingpong` and `sync/queue_pingpong`
//! (those `GREEN_BENCH_FILTER` selects), untimed, for counting instructions
//! under callgrind: run it with two values of N and divide the difference.

#[path = "support/harness.rs"]
mod harness;
#[path = "support/may_peer.rs"]
mod may_peer;

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use green_core::sync::{AsyncResult, Event, Lock, Queue, Semaphore};
use harness::Harness;

const EVENT_PINGPONG: &str = "sync/event_pingpong";
const QUEUE_PINGPONG: &str = "sync/queue_pingpong";
const SEMAPHORE_UNCONTENDED: &str = "sync/semaphore_uncontended";
const LOCK_CONTENDED: &str = "sync/lock_contended_100";
const CROSS_THREAD_SET: &str = "sync/cross_thread_set";

/// Greenlets (tasks) contending for the lock.
const CONTENDERS: usize = 100;

fn main() {
    let h = Harness::from_env();
    if let Some(rounds) = harness::callgrind_iterations() {
        callgrind_scenario(&h, rounds);
        return;
    }
    if h.enabled(EVENT_PINGPONG) {
        green_event_pingpong(&h);
        tokio_event_pingpong(&h);
    }
    if h.enabled(QUEUE_PINGPONG) {
        green_queue_pingpong(&h);
        tokio_queue_pingpong(&h);
        let may_h = h.clone();
        may_peer::run_on_one_worker("queue_pingpong driver", move || may_queue_pingpong(&may_h));
    }
    if h.enabled(SEMAPHORE_UNCONTENDED) {
        green_semaphore_uncontended(&h);
        tokio_semaphore_uncontended(&h);
    }
    if h.enabled(LOCK_CONTENDED) {
        green_lock_contended(&h);
        tokio_lock_contended(&h);
    }
    if h.enabled(CROSS_THREAD_SET) {
        green_cross_thread_set(&h);
        tokio_cross_thread_set(&h);
        std_cross_thread_round(&h);
    }
}

/// The green ping-pongs' rounds, untimed (see the module docs).
fn callgrind_scenario(h: &Harness, rounds: u64) {
    if h.enabled(EVENT_PINGPONG) {
        green_core::run(|| {
            let (ping, pong) = (Event::new(), Event::new());
            let partner = {
                let (ping, pong) = (ping.clone(), pong.clone());
                green_core::spawn(move || {
                    for _ in 0..rounds {
                        ping.wait();
                        ping.clear();
                        pong.set();
                    }
                })
            };
            for _ in 0..rounds {
                ping.set();
                pong.wait();
                pong.clear();
            }
            partner.join();
        });
    }
    if h.enabled(QUEUE_PINGPONG) {
        green_core::run(|| {
            let (to_partner, to_main) = (Queue::<u64>::new(), Queue::<u64>::new());
            let partner = {
                let (inbox, outbox) = (to_partner.clone(), to_main.clone());
                green_core::spawn(move || {
                    for n in &inbox {
                        outbox.put(n + 1).expect("main's queue is open");
                    }
                })
            };
            let mut n = 0_u64;
            for _ in 0..rounds {
                to_partner.put(n).expect("partner's queue is open");
                n = to_main.get().expect("main's queue is open");
            }
            assert_eq!(black_box(n), rounds);
            to_partner.close();
            partner.join();
        });
    }
}

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio current-thread runtime")
}

// ---------------------------------------------------------------------------
// sync/event_pingpong

fn green_event_pingpong(h: &Harness) {
    green_core::run(|| {
        let (ping, pong) = (Event::new(), Event::new());
        let stop = Rc::new(Cell::new(false));
        let partner = {
            let (ping, pong, stop) = (ping.clone(), pong.clone(), Rc::clone(&stop));
            green_core::spawn(move || loop {
                ping.wait();
                ping.clear();
                if stop.get() {
                    break;
                }
                pong.set();
            })
        };
        h.bench(EVENT_PINGPONG, "green")
            .ops_per_iter(2)
            .note(
                "main greenlet and one partner; a round is set / wait / clear each way; ns per \
                 one-way hand-off",
            )
            .iter(|| {
                ping.set();
                pong.wait();
                pong.clear();
            });
        stop.set(true);
        ping.set();
        partner.join();
    });
}

fn tokio_event_pingpong(h: &Harness) {
    use tokio::sync::Notify;

    let rt = current_thread_runtime();
    let (ping, pong) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let partner = {
        let (ping, pong, stop) = (Arc::clone(&ping), Arc::clone(&pong), Arc::clone(&stop));
        rt.spawn(async move {
            loop {
                ping.notified().await;
                if stop.load(Relaxed) {
                    break;
                }
                pong.notify_one();
            }
        })
    };
    h.bench(EVENT_PINGPONG, "tokio")
        .ops_per_iter(2)
        .note(
            "current_thread runtime, two spawned tasks; a round is notify_one / notified().await \
             each way; ns per one-way hand-off",
        )
        .iter_custom(|iters| {
            let (ping, pong) = (Arc::clone(&ping), Arc::clone(&pong));
            let driver = rt.spawn(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    ping.notify_one();
                    pong.notified().await;
                }
                start.elapsed()
            });
            rt.block_on(driver).expect("tokio driver task")
        });
    stop.store(true, Relaxed);
    ping.notify_one();
    rt.block_on(partner).expect("tokio partner task");
}

// ---------------------------------------------------------------------------
// sync/queue_pingpong

fn green_queue_pingpong(h: &Harness) {
    green_core::run(|| {
        let (to_partner, to_main) = (Queue::<u64>::new(), Queue::<u64>::new());
        let partner = {
            let (inbox, outbox) = (to_partner.clone(), to_main.clone());
            // Ends when the main greenlet closes its inbox.
            green_core::spawn(move || {
                for n in &inbox {
                    outbox.put(n + 1).expect("main's queue is open");
                }
            })
        };
        let mut n = 0_u64;
        h.bench(QUEUE_PINGPONG, "green")
            .ops_per_iter(2)
            .note(
                "main greenlet and one partner, two unbounded Queues; a round is put / get each \
                 way; ns per one-way trip",
            )
            .iter(|| {
                to_partner.put(n).expect("partner's queue is open");
                n = to_main.get().expect("main's queue is open");
            });
        to_partner.close();
        partner.join();
    });
}

fn tokio_queue_pingpong(h: &Harness) {
    use tokio::sync::mpsc::unbounded_channel;

    let rt = current_thread_runtime();
    let (to_partner, mut inbox) = unbounded_channel::<u64>();
    let (outbox, from_partner) = unbounded_channel::<u64>();
    // Ends when the driver's sender is dropped.
    let partner = rt.spawn(async move {
        while let Some(n) = inbox.recv().await {
            if outbox.send(n + 1).is_err() {
                break;
            }
        }
    });
    // The driver task owns the receiving end while it runs and hands it back.
    let mut from_partner = Some(from_partner);
    h.bench(QUEUE_PINGPONG, "tokio")
        .ops_per_iter(2)
        .note(
            "current_thread runtime, two spawned tasks, two mpsc::unbounded_channels; a round is \
             send / recv().await each way; ns per one-way trip",
        )
        .iter_custom(|iters| {
            let to_partner = to_partner.clone();
            let mut rx = from_partner.take().expect("receiver handed back");
            let driver = rt.spawn(async move {
                let mut n = 0_u64;
                let start = Instant::now();
                for _ in 0..iters {
                    to_partner.send(n).expect("partner alive");
                    n = rx.recv().await.expect("partner alive");
                }
                (start.elapsed(), rx)
            });
            let (took, rx) = rt.block_on(driver).expect("tokio driver task");
            from_partner = Some(rx);
            took
        });
    drop(to_partner);
    rt.block_on(partner).expect("tokio partner task");
}

/// The may case, run by a coroutine on may's one worker.
fn may_queue_pingpong(h: &Harness) {
    use may::sync::mpsc::channel;

    let (to_partner, inbox) = channel::<u64>();
    let (outbox, from_partner) = channel::<u64>();
    // SAFETY: as for the driver in `may_peer` (one worker, so no migration;
    // no thread-locals); the partner's loop needs a few hundred bytes of its
    // 32 KiB stack. It ends when the driver's sender is dropped.
    let partner = unsafe {
        may::coroutine::spawn(move || {
            for n in inbox.iter() {
                if outbox.send(n + 1).is_err() {
                    break;
                }
            }
        })
    };
    let mut n = 0_u64;
    h.bench(QUEUE_PINGPONG, "may")
        .ops_per_iter(2)
        .note(
            "one worker, driver and one partner coroutine, two may mpsc channels; a round is \
             send / recv each way; ns per one-way trip",
        )
        .iter(|| {
            to_partner.send(n).expect("partner alive");
            n = from_partner.recv().expect("partner alive");
        });
    drop(to_partner);
    partner.join().expect("may partner coroutine");
}

// ---------------------------------------------------------------------------
// sync/semaphore_uncontended

fn green_semaphore_uncontended(h: &Harness) {
    green_core::run(|| {
        let sem = Semaphore::new(1);
        h.bench(SEMAPHORE_UNCONTENDED, "green")
            .note("Semaphore::new(1): acquire() of the free count + guard drop; ns per pair")
            .iter(|| {
                let guard = sem.acquire();
                black_box(&guard);
            });
    });
}

fn tokio_semaphore_uncontended(h: &Harness) {
    let rt = current_thread_runtime();
    let sem = tokio::sync::Semaphore::new(1);
    h.bench(SEMAPHORE_UNCONTENDED, "tokio")
        .note(
            "Semaphore::new(1): acquire().await of the free permit inside block_on (not \
             try_acquire) + permit drop; ns per pair",
        )
        .iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let permit = sem.acquire().await.expect("semaphore open");
                    black_box(&permit);
                }
                start.elapsed()
            })
        });
}

// ---------------------------------------------------------------------------
// sync/lock_contended_100

fn green_lock_contended(h: &Harness) {
    green_core::run(|| {
        let lock = Lock::new();
        let acquisitions = Rc::new(Cell::new(0_u64));
        let handovers = Rc::new(Cell::new(0_u64));
        let last_owner = Rc::new(Cell::new(usize::MAX));
        // The acquisition count at which `reached` is set for the timer.
        let target = Rc::new(Cell::new(u64::MAX));
        let reached = Event::new();
        let stop = Rc::new(Cell::new(false));
        let contenders: Vec<_> = (0..CONTENDERS)
            .map(|id| {
                let (lock, reached) = (lock.clone(), reached.clone());
                let (acquisitions, handovers, last_owner, target, stop) = (
                    Rc::clone(&acquisitions),
                    Rc::clone(&handovers),
                    Rc::clone(&last_owner),
                    Rc::clone(&target),
                    Rc::clone(&stop),
                );
                green_core::spawn(move || {
                    while !stop.get() {
                        let held = lock.acquire();
                        green_core::yield_now();
                        if last_owner.replace(id) != id {
                            handovers.set(handovers.get() + 1);
                        }
                        let n = acquisitions.get() + 1;
                        acquisitions.set(n);
                        if n == target.get() {
                            reached.set();
                        }
                        drop(held);
                        // Without it this greenlet would take the free lock
                        // again ahead of the one woken for it (module doc).
                        green_core::yield_now();
                    }
                })
            })
            .collect();

        // Over every sample, for the note: acquisitions and owner changes.
        let (seen, seen_handovers) = (Cell::new(0_u64), Cell::new(0_u64));
        h.bench(LOCK_CONTENDED, "green").iter_custom_noted(
            |iters| {
                let (first, handovers_before) = (acquisitions.get(), handovers.get());
                target.set(first + iters);
                reached.clear();
                let start = Instant::now();
                reached.wait();
                let took = start.elapsed();
                seen.set(seen.get() + acquisitions.get() - first);
                seen_handovers.set(seen_handovers.get() + handovers.get() - handovers_before);
                took
            },
            || {
                Some(format!(
                    "100 greenlets each looping acquire / yield_now / release / yield_now on one \
                     Lock; ns per hand-over (time / acquisitions; {:.1}% of acquisitions \
                     changed owner)",
                    100.0 * seen_handovers.get() as f64 / seen.get().max(1) as f64
                ))
            },
        );

        stop.set(true);
        for contender in &contenders {
            contender.join();
        }
    });
}

/// What tokio's contenders share with the timing future. Atomics for
/// `Send`; every task runs on the `block_on` thread.
#[derive(Default)]
struct TokioLockShared {
    acquisitions: AtomicU64,
    target: AtomicU64,
    stop: AtomicBool,
    reached: tokio::sync::Notify,
}

fn tokio_lock_contended(h: &Harness) {
    let rt = current_thread_runtime();
    let shared = Arc::new(TokioLockShared {
        target: AtomicU64::new(u64::MAX),
        ..TokioLockShared::default()
    });
    let lock = Arc::new(tokio::sync::Mutex::new(()));
    let contenders: Vec<_> = (0..CONTENDERS)
        .map(|_| {
            let (shared, lock) = (Arc::clone(&shared), Arc::clone(&lock));
            rt.spawn(async move {
                while !shared.stop.load(Relaxed) {
                    let held = lock.lock().await;
                    tokio::task::yield_now().await;
                    let n = shared.acquisitions.load(Relaxed) + 1;
                    shared.acquisitions.store(n, Relaxed);
                    if n == shared.target.load(Relaxed) {
                        shared.reached.notify_one();
                    }
                    drop(held);
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();

    h.bench(LOCK_CONTENDED, "tokio")
        .note(
            "current_thread runtime, 100 tasks each looping lock().await / yield_now / unlock / \
             yield_now on one tokio::sync::Mutex; ns per hand-over (time / acquisitions; the \
             Mutex is fair, so every acquisition is a hand-over)",
        )
        .iter_custom(|iters| {
            rt.block_on(async {
                let first = shared.acquisitions.load(Relaxed);
                shared.target.store(first + iters, Relaxed);
                let start = Instant::now();
                shared.reached.notified().await;
                start.elapsed()
            })
        });

    shared.stop.store(true, Relaxed);
    rt.block_on(async {
        for contender in contenders {
            contender.await.expect("tokio contender");
        }
    });
}

// ---------------------------------------------------------------------------
// sync/cross_thread_set

fn green_cross_thread_set(h: &Harness) {
    green_core::run(|| {
        let result: AsyncResult<u64, ()> = AsyncResult::new();
        let setter = result.remote_setter();
        let (requests, thread_requests) = std::sync::mpsc::channel::<u64>();
        // Ends when the sender is dropped.
        let thread = std::thread::spawn(move || {
            for n in thread_requests {
                setter.set(n + 1).expect("the hub is alive");
            }
        });
        let mut n = 0_u64;
        h.bench(CROSS_THREAD_SET, "green")
            .note(
                "a std thread blocked in a std mpsc recv is sent a request, sets the AsyncResult \
                 through its RemoteSetter (one setter for the whole run), the main greenlet \
                 wakes from wait() and take()s the value; ns per round",
            )
            .iter(|| {
                requests.send(n).expect("setter thread alive");
                result.wait();
                n = result
                    .take()
                    .expect("set by the thread")
                    .expect("a value was set");
            });
        drop(requests);
        // A short blocking join: the thread has nothing left to do.
        thread.join().expect("setter thread");
    });
}

fn tokio_cross_thread_set(h: &Harness) {
    use tokio::sync::oneshot;

    let rt = current_thread_runtime();
    let (requests, thread_requests) = std::sync::mpsc::channel::<(u64, oneshot::Sender<u64>)>();
    // Ends when the sender is dropped.
    let thread = std::thread::spawn(move || {
        for (n, reply) in thread_requests {
            reply.send(n + 1).expect("the receiver waits");
        }
    });
    h.bench(CROSS_THREAD_SET, "tokio")
        .note(
            "a std thread blocked in a std mpsc recv is sent a fresh oneshot::Sender and sends \
             on it; block_on of a current_thread runtime wakes from the receiver's await; ns \
             per round",
        )
        .iter_custom(|iters| {
            rt.block_on(async {
                let mut n = 0_u64;
                let start = Instant::now();
                for _ in 0..iters {
                    let (reply, answer) = oneshot::channel();
                    requests.send((n, reply)).expect("sender thread alive");
                    n = answer.await.expect("the thread sends");
                }
                start.elapsed()
            })
        });
    drop(requests);
    thread.join().expect("sender thread");
}

fn std_cross_thread_round(h: &Harness) {
    let (requests, thread_requests) = std::sync::mpsc::channel::<u64>();
    let (replies, answers) = std::sync::mpsc::channel::<u64>();
    // Ends when the sender is dropped.
    let thread = std::thread::spawn(move || {
        for n in thread_requests {
            replies.send(n + 1).expect("the timing thread waits");
        }
    });
    let mut n = 0_u64;
    h.bench(CROSS_THREAD_SET, "std")
        .note(
            "baseline: two std threads, each blocked in a std mpsc recv in turn; one request and \
             one reply per round; ns per round",
        )
        .iter(|| {
            requests.send(n).expect("replying thread alive");
            n = answers.recv().expect("replying thread alive");
        });
    drop(requests);
    thread.join().expect("replying thread");
}
