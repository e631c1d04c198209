//! Cross-thread wakeup: no wake lost under contention; use after drop.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{each_backend, new_loop};

#[test]
fn four_threads_ten_thousand_wakes_none_lost() {
    const THREADS: usize = 4;
    const WAKES: usize = 10_000;
    let lp = new_loop();
    let ran = Arc::new(AtomicUsize::new(0));
    // The wakeup read is unreferenced; hold the loop alive while we wait.
    lp.add_ref();
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let remote = lp.remote();
            let ran = ran.clone();
            std::thread::spawn(move || {
                for _ in 0..WAKES {
                    let ran = ran.clone();
                    remote
                        .run(move |_| {
                            ran.fetch_add(1, Ordering::Relaxed);
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while ran.load(Ordering::Relaxed) < THREADS * WAKES {
        assert!(
            Instant::now() < deadline,
            "wakes lost: {} ran",
            ran.load(Ordering::Relaxed)
        );
        lp.run_once(true).unwrap();
    }
    for h in handles {
        h.join().unwrap();
    }
    // Every eventfd increment is eventually read: the counter sums them.
    while lp.stats().wakeups < (THREADS * WAKES) as u64 {
        assert!(Instant::now() < deadline, "{:?}", lp.stats());
        lp.run_once(true).unwrap();
    }
    assert_eq!(lp.stats().wakeups, (THREADS * WAKES) as u64);
    assert_eq!(ran.load(Ordering::Relaxed), THREADS * WAKES);
    lp.release_ref();
    assert!(!lp.is_alive(), "internal watchers are unreferenced");
}

#[test]
fn wake_unblocks_a_blocking_iteration() {
    // A blocking iteration with nothing to do sleeps in the kernel until the
    // wake and reads it in the same iteration: one iteration (a couple more
    // are allowed, e.g. for a wait a signal interrupts). A loop that polled
    // instead of blocking would also see the wake eventually, after
    // thousands of iterations in the 30 ms before it, so the count is what
    // tells them apart; the clock only shows the wake came from the thread.
    const MOST_ITERATIONS: u64 = 3;
    each_backend(|lp| {
        lp.add_ref();
        let remote = lp.remote();
        let woke_at = Arc::new(std::sync::Mutex::new(None));
        let waker = {
            let woke_at = Arc::clone(&woke_at);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                *woke_at.lock().unwrap() = Some(Instant::now());
                remote.wake().unwrap();
            })
        };
        let before = lp.stats();
        let start = Instant::now();
        // Nothing but the hold: without the wake this would block forever.
        while lp.stats().wakeups == before.wakeups {
            lp.run_once(true).unwrap();
            let iterations = lp.stats().iterations - before.iterations;
            assert!(
                iterations <= MOST_ITERATIONS,
                "{:?}: {iterations} iterations within {:?} and no wake read yet: \
                 a blocking iteration returned with nothing to do (the loop spins)",
                lp.backend(),
                start.elapsed()
            );
        }
        let returned_at = Instant::now();
        waker.join().unwrap();
        let woke_at = woke_at
            .lock()
            .unwrap()
            .expect("the waker recorded its wake");
        assert!(
            returned_at >= woke_at,
            "{:?}: the iteration returned before the wake was sent",
            lp.backend()
        );
        let after = lp.stats();
        println!(
            "{:?}: {} iterations, {} enter calls, {:?}",
            lp.backend(),
            after.iterations - before.iterations,
            after.enter_calls - before.enter_calls,
            start.elapsed()
        );
        lp.release_ref();
    });
}

#[test]
fn remote_after_the_loop_is_dropped_is_an_error() {
    each_backend(|lp| {
        let remote = lp.remote();
        assert!(remote.is_alive());
        remote
            .run(|_| panic!("never runs: the loop is dropped first"))
            .unwrap();
        drop(lp);
        assert!(!remote.is_alive());
        let err = remote.wake().unwrap_err();
        assert!(err.to_string().contains("dropped"), "{err}");
        assert!(remote.run(|_| {}).is_err());
        // Clones made after the drop behave the same.
        assert!(remote.clone().wake().is_err());
    });
}

#[test]
fn try_run_with_runs_on_the_loop_or_hands_the_value_back() {
    each_backend(|lp| {
        let remote = lp.remote();
        let seen = Arc::new(AtomicUsize::new(0));
        let sender = {
            let (remote, seen) = (remote.clone(), Arc::clone(&seen));
            std::thread::spawn(move || {
                remote
                    .try_run_with((seen, 7_usize), |_, (seen, n)| {
                        seen.fetch_add(n, Ordering::SeqCst);
                    })
                    .map_err(|_| "refused")
            })
        };
        sender.join().unwrap().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while seen.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            lp.run_once(true).unwrap();
        }
        assert_eq!(seen.load(Ordering::SeqCst), 7);
        drop(lp);
        // The value comes back whole once the loop is gone.
        let back = remote.try_run_with(String::from("parcel"), |_, _| unreachable!());
        assert_eq!(back, Err(String::from("parcel")));
    });
}

#[test]
fn a_loop_that_only_polls_without_blocking_still_sees_every_wake() {
    // Non-blocking polls skip the kernel while nothing could complete; a
    // wake from another thread must still get through (a hub whose
    // greenlets spin on `yield_now` polls only this way).
    const WAKES: usize = 200;
    each_backend(|lp| {
        let ran = Arc::new(AtomicUsize::new(0));
        let remote = lp.remote();
        let r = ran.clone();
        let sender = std::thread::spawn(move || {
            for _ in 0..WAKES {
                let r = r.clone();
                remote
                    .run(move |_| {
                        r.fetch_add(1, Ordering::Relaxed);
                    })
                    .unwrap();
                std::thread::sleep(Duration::from_micros(50));
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while ran.load(Ordering::Relaxed) < WAKES && Instant::now() < deadline {
            lp.run_once(false).unwrap();
        }
        sender.join().unwrap();
        assert_eq!(ran.load(Ordering::Relaxed), WAKES, "every closure ran");
        // Once the last wakes are read (a closure may run before its own
        // eventfd write is read), polls need no system call again.
        for _ in 0..5 {
            lp.run_once(false).unwrap();
        }
        let before = lp.stats();
        for _ in 0..10 {
            lp.run_once(false).unwrap();
        }
        assert_eq!(lp.stats().enter_calls, before.enter_calls);
    });
}
