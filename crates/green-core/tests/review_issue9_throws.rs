//! Hostile review of issue 9's deferred kills (`Entry::Throw`), the blocking
//! kill of oneself, killall's immediate throws, the cut pass's poll and the
//! lone-joiner fast path. Public API only. gevent 26.9.0 is the oracle for
//! order; each order test quotes its program and gevent's output.
//!
//! Tests marked "REGRESSION (held)" passed on the reviewed commit; the
//! others failed on it.

#[allow(unreachable_pub)] // The shared fixtures are `pub` for every test binary.
mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::thread;
use std::time::{Duration, Instant};

use green_core::{
    killall_with, run, sleep, spawn, yield_now, Greenlet, GreenletExit, KillPayload, Timeout,
};
use support::{catch, within, Log, OnDrop, MS};

const LIMIT: Duration = Duration::from_secs(20);

fn busy(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {}
}

type Slot = Rc<RefCell<Option<Greenlet<()>>>>;

fn me(slot: &Slot) -> Greenlet<()> {
    slot.borrow().clone().expect("the slot is filled")
}

/// Catches a `GreenletExit` (or a kill payload) and logs `msg`; passes on
/// anything else.
fn catch_exit(log: &Log, msg: &str, f: impl FnOnce()) {
    if let Err(p) = catch(f) {
        if p.is::<GreenletExit>() || p.is::<KillPayload>() {
            log.push(msg);
        } else if p.is::<Timeout>() {
            log.push(format!("{msg} (timeout)"));
        } else {
            std::panic::resume_unwind(p);
        }
    }
}

// ===== order: a second kill waits for its own turn =====

/// gevent:
/// ```python
/// def t():
///     for i in range(3):
///         try: gevent.sleep(1)
///         except gevent.GreenletExit: log.append('t caught')
/// g = gevent.spawn(t); gevent.sleep(0)
/// g.kill(block=False)
/// gevent.spawn(lambda: log.append('x'))
/// g.kill(block=False)
/// gevent.sleep(0.05)
/// # ['t caught', 'x', 't caught']
/// ```
/// Each kill is its own `_kill` callback: the second is raised when its
/// callback comes up, after `x` started. On the reviewed commit the second kill was set aside
/// behind the first and raised at t's very next blocking call, before `x`.
#[test]
fn second_kill_nowait_is_raised_at_its_queue_turn_not_at_the_next_block() {
    let log = within(LIMIT, || {
        run(|| {
            let log = Log::new();
            let l = log.clone();
            let g = spawn(move || {
                for _ in 0..3 {
                    catch_exit(&l, "t caught", || sleep(Duration::from_secs(1)));
                }
            });
            yield_now();
            g.kill_nowait();
            let l = log.clone();
            spawn(move || l.push("x"));
            g.kill_nowait();
            sleep(50 * MS);
            g.kill_nowait();
            g.join();
            log.take()
        })
    });
    assert_eq!(log, ["t caught", "x", "t caught", "t caught"]);
}

/// REGRESSION (held). gevent:
/// ```python
/// def t2():
///     for i in range(4):
///         try:
///             gevent.sleep(0) if i == 0 else gevent.sleep(1)
///             log.append('t resumed')
///         except gevent.GreenletExit: log.append('t caught')
/// g = gevent.spawn(t2); gevent.sleep(0)
/// g.kill(block=False); gevent.spawn(lambda: log.append('x')); g.kill(block=False)
/// gevent.sleep(0.05)   # ['t resumed', 't caught', 'x', 't caught']
/// ```
#[test]
fn two_deferred_kills_behind_a_resume_keep_their_places() {
    let log = within(LIMIT, || {
        run(|| {
            let log = Log::new();
            let l = log.clone();
            let g = spawn(move || {
                for i in 0..4 {
                    catch_exit(&l, "t caught", || {
                        if i == 0 {
                            yield_now();
                        } else {
                            sleep(Duration::from_secs(1));
                        }
                        l.push("t resumed");
                    });
                }
            });
            yield_now();
            g.kill_nowait();
            let l = log.clone();
            spawn(move || l.push("x"));
            g.kill_nowait();
            sleep(50 * MS);
            let out = log.take();
            g.kill_nowait();
            g.kill_nowait();
            g.join();
            out
        })
    });
    assert_eq!(log, ["t resumed", "t caught", "x", "t caught"]);
}

// ===== killall including the caller =====

/// gevent:
/// ```python
/// def victim(n):
///     try: gevent.sleep(1)
///     except gevent.GreenletExit: log.append(n + ' exit'); raise
/// def me():
///     try:
///         gevent.killall([a, me, b]); log.append('me killall returned')
///     except gevent.GreenletExit: log.append('me exit')
/// # ['a exit', 'me exit', 'b exit']
/// ```
/// `_killall3` throws into each in list order, the caller included (it is
/// blocked in `waiter.get()` then, and the exit is raised there at once).
/// On the reviewed commit the caller's own kill was deferred to the back of
/// the queue, so `b` died before the caller saw its exit.
#[test]
fn killall_including_the_caller_raises_in_list_order() {
    let log = within(LIMIT, || {
        run(|| {
            let log = Log::new();
            let victim = |n: &'static str, log: &Log| {
                let l = log.clone();
                spawn(move || {
                    catch_exit(&l, &format!("{n} exit"), || sleep(Duration::from_secs(1)));
                })
            };
            let a = victim("a", &log);
            let b = victim("b", &log);
            let slot: Slot = Rc::default();
            let (l, s, a2, b2) = (log.clone(), slot.clone(), a.clone(), b.clone());
            let m = spawn(move || {
                let me = me(&s);
                catch_exit(&l, "me exit", || {
                    killall_with(&[a2, me, b2], true, None);
                    l.push("me killall returned");
                });
            });
            *slot.borrow_mut() = Some(m.clone());
            sleep(50 * MS);
            assert!(a.dead() && b.dead() && m.dead());
            log.take()
        })
    });
    assert_eq!(log, ["a exit", "me exit", "b exit"]);
}

// ===== a deferred kill racing a Timeout at a cut pass =====

/// gevent:
/// ```python
/// def target():
///     try:
///         with gevent.Timeout(0.001): gevent.sleep(1)
///     except gevent.Timeout: log.append('T')
///     except gevent.GreenletExit: log.append('X')
///     try: gevent.sleep(1)
///     except gevent.GreenletExit: log.append('X2')
///     except gevent.Timeout: log.append('T2')
/// t = gevent.spawn(target); gevent.sleep(0)
/// time.sleep(0.003)
/// ws = [gevent.spawn(busy, 0.0002) for i in range(100)]
/// t.kill(block=False)
/// gevent.joinall(ws); t.join(1)    # ['T', 'X2']
/// ```
/// The pass is cut after ~50 workers; the poll fires the due timeout into
/// the target at once, before the leftover callbacks (among them the
/// kill's). On the reviewed commit the kill took `throw` first, so the
/// timeout was set aside behind it and the kill raised inside its scope.
#[test]
fn a_due_timeout_polled_at_a_cut_is_raised_before_a_kill_left_over() {
    let log = within(LIMIT, || {
        run(|| {
            let log = Log::new();
            let l = log.clone();
            let t = spawn(move || {
                match catch(|| Timeout::run(MS, || sleep(Duration::from_secs(1)))) {
                    Ok(Err(_)) => l.push("T"),
                    Ok(Ok(())) => l.push("no timeout"),
                    Err(p) if p.is::<GreenletExit>() => l.push("X"),
                    Err(p) => std::panic::resume_unwind(p),
                }
                match catch(|| sleep(300 * MS)) {
                    Err(p) if p.is::<GreenletExit>() => l.push("X2"),
                    Err(p) if p.is::<Timeout>() => l.push("T2"),
                    Err(p) => std::panic::resume_unwind(p),
                    Ok(()) => l.push("slept"),
                }
            });
            yield_now();
            thread::sleep(3 * MS);
            let ws: Vec<Greenlet<()>> = (0..100)
                .map(|_| spawn(|| busy(Duration::from_micros(200))))
                .collect();
            t.kill_nowait();
            let _ = green_core::joinall_with(&ws, None, false, None);
            t.join();
            log.take()
        })
    });
    assert_eq!(log, ["T", "X2"]);
}

// ===== the lone-joiner fast path at a cut pass =====

/// gevent (N from 44 to 51; at 50 the pass is cut at g's death):
/// ```python
/// def g():
///     gevent.sleep(0.02); busy(0.006)
///     for i in range(N): gevent.sleep(0)
/// def s():
///     gevent.sleep(0.022); log.append('S1'); gevent.sleep(0); log.append('S2')
/// def w():
///     G.join(); log.append('w')
///     G.rawlink(lambda _: log.append('r1'))
///     gevent.sleep(0.005); log.append('w2')
/// # N=49: ['w', 'r1', 'S1', 'S2', 'w2']
/// # N=50: ['S1', 'w', 'r1', 'S2', 'w2']
/// # N=51: ['S1', 'S2', 'w', 'r1', 'w2']
/// ```
/// A link the joiner adds before it blocks fires as soon as it blocks
/// (it is picked up by the `_notify_links` that switched to the joiner), in
/// every case. Here main joins g too (no fast path): the entry is paused at
/// the queue's front for `w` (`pause_firing`). On the reviewed commit, when
/// `w` blocked with the pass overdue, `poll_at_cut` rotated S's wake-up
/// ahead of that paused links entry, so S1 ran between `w` and `r1`. gevent
/// cannot cut there: the waiter blocking returns into the `_notify_links`
/// callback still running.
#[test]
fn a_link_added_by_a_lone_joiner_fires_when_it_blocks_even_after_a_cut() {
    within(Duration::from_secs(60), || {
        for n in 30..70 {
            let log = run(|| {
                let log = Log::new();
                let g = spawn(move || {
                    sleep(20 * MS);
                    busy(6 * MS);
                    for _ in 0..n {
                        yield_now();
                    }
                });
                let l = log.clone();
                let s = spawn(move || {
                    sleep(22 * MS);
                    l.push("S1");
                    yield_now();
                    l.push("S2");
                });
                let (l, g2) = (log.clone(), g.clone());
                let w = spawn(move || {
                    g2.join();
                    l.push("w");
                    let l2 = l.clone();
                    g2.rawlink(move |_| l2.push("r1"));
                    sleep(5 * MS);
                    l.push("w2");
                });
                g.join();
                s.join();
                w.join();
                log.take()
            });
            let at = log.iter().position(|e| e == "w").unwrap();
            assert_eq!(
                log.get(at + 1).map(String::as_str),
                Some("r1"),
                "N={n}: the joiner's rawlink did not fire when it blocked: {log:?}"
            );
        }
    });
}

/// The same scenario with `w` as g's one link (main joins only `s` and
/// `w`), so that g's death takes `wake_lone_joiner`'s fast path. gevent
/// (`joinall([S, W])`):
/// ```text
/// N=49: ['w', 'r1', 'S1', 'S2', 'w2']
/// N=50: ['S1', 'w', 'r1', 'S2', 'w2']
/// N=51: ['S1', 'S2', 'w', 'r1', 'w2']
/// ```
/// On the reviewed commit, when the dying greenlet's own pop
/// (`leave_finished`) cut the pass, the window for the joiner's links was
/// reset by the hub's next pop before `w` ran, so `w`'s rawlink was queued
/// at the back (behind S's resume) instead of at the front. The window now
/// belongs to the joiner and closes only when it parks.
#[test]
fn a_link_added_by_a_lone_joiner_on_the_fast_path_fires_when_it_blocks_even_after_a_cut() {
    let bad = within(Duration::from_secs(60), || {
        let mut bad = Vec::new();
        for n in 30..70 {
            let log = run(|| {
                let log = Log::new();
                let g = spawn(move || {
                    sleep(20 * MS);
                    busy(6 * MS);
                    for _ in 0..n {
                        yield_now();
                    }
                });
                let l = log.clone();
                let s = spawn(move || {
                    sleep(22 * MS);
                    l.push("S1");
                    yield_now();
                    l.push("S2");
                });
                let (l, g2) = (log.clone(), g.clone());
                let w = spawn(move || {
                    g2.join();
                    l.push("w");
                    let l2 = l.clone();
                    g2.rawlink(move |_| l2.push("r1"));
                    sleep(5 * MS);
                    l.push("w2");
                });
                s.join();
                w.join();
                g.join();
                log.take()
            });
            let at = log.iter().position(|e| e == "w").unwrap();
            if log.get(at + 1).map(String::as_str) != Some("r1") {
                bad.push(format!("N={n}: {log:?}"));
            }
        }
        bad
    });
    assert!(
        bad.is_empty(),
        "the joiner's rawlink did not fire when it blocked: {bad:#?}"
    );
}

/// REGRESSION (held). gevent:
/// ```python
/// def w5():
///     G.join(); log.append('w')
///     def cb1(_):
///         log.append('cb1'); G.rawlink(lambda _: log.append('r2'))
///     G.link(cb1); G.rawlink(lambda _: log.append('r3'))
///     gevent.sleep(0.005); log.append('w2')
/// # ['w', 'cb1', 'r3', 'r2', 'w2']
/// ```
#[test]
fn links_added_by_a_lone_joiner_and_by_its_link_callback_fire_in_gevent_order() {
    let log = within(LIMIT, || {
        run(|| {
            let log = Log::new();
            let g = spawn(|| sleep(10 * MS));
            let (l, g2) = (log.clone(), g.clone());
            let w = spawn(move || {
                g2.join();
                l.push("w");
                let l1 = l.clone();
                g2.link(move |g: &Greenlet<()>| {
                    l1.push("cb1");
                    let l2 = l1.clone();
                    g.rawlink(move |_| l2.push("r2"));
                });
                let l3 = l.clone();
                g2.rawlink(move |_| l3.push("r3"));
                sleep(5 * MS);
                l.push("w2");
            });
            g.join();
            w.join();
            sleep(10 * MS);
            log.take()
        })
    });
    assert_eq!(log, ["w", "cb1", "r3", "r2", "w2"]);
}

// ===== the blocking kill of oneself =====

/// REGRESSION (held). gevent: `getcurrent().kill()` runs the callbacks
/// queued before it, then raises GreenletExit out of `kill()`; the callback
/// queued after it runs after.
#[test]
fn blocking_kill_of_oneself_lets_what_was_queued_first_run() {
    let log = within(LIMIT, || {
        run(|| {
            let log = Log::new();
            let slot: Slot = Rc::default();
            let (l, s) = (log.clone(), slot.clone());
            let g = spawn(move || {
                let l2 = l.clone();
                spawn(move || l2.push("before"));
                catch_exit(&l, "me exit", || {
                    me(&s).kill();
                    l.push("kill returned");
                });
                sleep(5 * MS);
                l.push("me goes on");
            });
            *slot.borrow_mut() = Some(g.clone());
            g.join();
            log.take()
        })
    });
    assert_eq!(log, ["before", "me exit", "me goes on"]);
}

/// REGRESSION (held): a blocking kill of oneself with another kill already
/// queued for oneself: the earlier one is raised out of `kill()`, the
/// caller's own kill at the next blocking call. Two kills, two exceptions.
#[test]
fn blocking_kill_of_oneself_while_another_kill_is_pending_delivers_both() {
    let log = within(LIMIT, || {
        run(|| {
            let log = Log::new();
            let slot: Slot = Rc::default();
            let (l, s) = (log.clone(), slot.clone());
            let g = spawn(move || {
                yield_now(); // main kills it while it is queued to resume
                catch_exit(&l, "first", || me(&s).kill());
                catch_exit(&l, "second", || sleep(Duration::from_secs(1)));
                catch_exit(&l, "none", || sleep(5 * MS));
                l.push("done");
            });
            *slot.borrow_mut() = Some(g.clone());
            yield_now();
            g.kill_nowait();
            g.join();
            log.take()
        })
    });
    assert_eq!(log, ["first", "second", "done"]);
}

/// REGRESSION (held): the blocking kill of oneself inside a destructor run
/// by an unwind is a no-op (no abort), and inside a `Timeout` the kill
/// passes through it.
#[test]
fn blocking_kill_of_oneself_inside_a_destructor_or_a_timeout_does_not_abort() {
    let log = within(LIMIT, || {
        run(|| {
            let log = Log::new();
            let slot: Slot = Rc::default();
            let (l, s) = (log.clone(), slot.clone());
            let g = spawn(move || {
                // Inside a Timeout's scope.
                let r = catch(|| Timeout::run(Duration::from_secs(1), || me(&s).kill()));
                match r {
                    Err(p) if p.is::<GreenletExit>() => l.push("timeout scope: exit"),
                    _ => l.push("timeout scope: other"),
                }
                // Inside a destructor while unwinding from a panic.
                let (l2, s2) = (l.clone(), s.clone());
                let r = catch(move || {
                    let _d = OnDrop(move || {
                        me(&s2).kill();
                        l2.push("kill in unwinding drop returned");
                    });
                    panic!("boom");
                });
                assert!(r.is_err());
                sleep(5 * MS);
                l.push("alive");
            });
            *slot.borrow_mut() = Some(g.clone());
            g.join();
            log.take()
        })
    });
    assert_eq!(
        log,
        [
            "timeout scope: exit",
            "kill in unwinding drop returned",
            "alive"
        ]
    );
}

// ===== kills raised into unwinding greenlets =====

/// REGRESSION (held): a kill deferred behind the resume of a greenlet that
/// yields inside a destructor while it unwinds from a first kill is held,
/// never raised out of the destructor (that would abort).
#[test]
fn deferred_kill_into_a_greenlet_yielding_mid_unwind_does_not_abort() {
    within(LIMIT, || {
        run(|| {
            let n = Rc::new(Cell::new(0));
            let n2 = n.clone();
            let g = spawn(move || {
                let _d = OnDrop(move || {
                    for _ in 0..20 {
                        yield_now();
                        n2.set(n2.get() + 1);
                    }
                });
                sleep(Duration::from_secs(3600));
            });
            yield_now();
            g.kill_nowait();
            while n.get() == 0 {
                yield_now();
            }
            // g is queued to resume (it yields in its destructor).
            for _ in 0..5 {
                g.kill_nowait();
                yield_now();
            }
            g.join();
            assert_eq!(n.get(), 20);
            assert!(g.successful());
        })
    });
}

/// REGRESSION (held): a deferred kill whose target then finishes without
/// blocking is dropped with it: nobody else sees it, and the target stays
/// successful.
#[test]
fn deferred_kill_of_a_greenlet_that_finishes_without_blocking_is_dropped() {
    within(LIMIT, || {
        run(|| {
            let g = spawn(|| {
                yield_now();
                7
            });
            yield_now();
            g.kill_nowait(); // g is queued to resume: deferred
            let other = spawn(|| {
                yield_now();
                sleep(5 * MS);
                1
            });
            assert_eq!(g.get().unwrap(), 7);
            assert_eq!(other.get().unwrap(), 1);
            assert!(g.successful() && g.exception().is_none());
            sleep(5 * MS);
        })
    });
}

/// REGRESSION (held): `kill_nowait` of oneself, then returning: the kill is
/// dropped with the greenlet.
#[test]
fn kill_nowait_of_oneself_then_returning_drops_the_kill() {
    within(LIMIT, || {
        run(|| {
            let slot: Slot = Rc::default();
            let s = slot.clone();
            let g = spawn(move || {
                me(&s).kill_nowait();
                *s.borrow_mut() = None;
            });
            *slot.borrow_mut() = Some(g.clone());
            g.join();
            assert!(g.successful() && g.exception().is_none());
            let after = spawn(|| sleep(5 * MS));
            after.join();
            assert!(after.successful());
        })
    });
}

/// REGRESSION (held). gevent delivers 5000 queued kills one by one (`G6`:
/// `5000 True`).
#[test]
fn thousands_of_deferred_kills_each_deliver_one_exception() {
    let n = within(LIMIT, || {
        run(|| {
            let n = Rc::new(Cell::new(0u32));
            let n2 = n.clone();
            let t = spawn(move || loop {
                let r = catch(|| {
                    yield_now();
                    sleep(Duration::from_secs(1));
                });
                if r.is_err() {
                    n2.set(n2.get() + 1);
                    if n2.get() == 5000 {
                        return;
                    }
                }
            });
            yield_now();
            for _ in 0..5000 {
                t.kill_nowait();
            }
            assert!(t.join_timeout(Duration::from_secs(10)));
            n.get()
        })
    });
    assert_eq!(n, 5000);
}

/// REGRESSION (held): `kill_nowait` then `join` on a greenlet that catches
/// the kill and finishes later.
#[test]
fn kill_nowait_then_join_on_a_survivor() {
    within(LIMIT, || {
        run(|| {
            let g = spawn(|| {
                let r = catch(|| {
                    yield_now();
                    sleep(Duration::from_secs(1));
                });
                assert!(r.is_err());
                sleep(5 * MS);
                3
            });
            yield_now();
            g.kill_nowait(); // deferred behind its resume
            assert_eq!(g.get().unwrap(), 3);
        })
    });
}

// ===== teardown with throws still queued =====

struct PanicOnDrop;
impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("payload drop panics");
        }
    }
}

/// `run` returns while `Entry::Throw`s with payloads that panic when dropped
/// are still queued for a greenlet that then finishes without blocking.
/// `fire_throw` parks each payload in the dead record (`set_aside`), and the
/// last reference to that record is teardown's own list of live greenlets
/// (`teardown.rs`, the kill rounds' `live`), dropped unguarded: the
/// payload's panic escapes `run` instead of being reported (H1).
#[test]
fn teardown_with_deferred_throws_whose_payloads_panic_on_drop() {
    let r = within(LIMIT, || {
        catch(|| {
            run(|| {
                let g = spawn(|| {
                    yield_now();
                    yield_now();
                });
                yield_now();
                for _ in 0..2 {
                    let g2 = g.clone();
                    // A blocking kill_with, deferred behind g's resume.
                    spawn(move || g2.kill_with(PanicOnDrop));
                }
                drop(g);
                yield_now();
                // Back to `run`'s teardown with both kills still queued.
            });
            assert_eq!(run(|| spawn(|| 5).get().unwrap()), 5);
        })
        .map_err(|p| support::panic_message(&*p))
    });
    assert_eq!(r, Ok(()), "a payload's drop panic escaped green_core::run");
}

/// A deferred kill whose target finishes without blocking is never raised;
/// `fire_throw`'s doc says the dead target "takes the payload with its
/// record (dropped guarded, H1)", but the record is only dropped guarded if
/// the hub holds its last reference. Here the killer holds the handle (as
/// any `g.kill_with(p)` caller does), so the undelivered payload is dropped
/// unguarded in the killer when its handle goes, and its panic kills the
/// killer. (A payload raised and caught is the catcher's to drop; one never
/// delivered should be dropped by the hub, guarded, when its entry fires.)
#[test]
fn deferred_kill_with_a_panicking_payload_whose_target_finishes() {
    within(LIMIT, || {
        run(|| {
            let g = spawn(|| {
                yield_now();
            });
            yield_now();
            let killer = spawn(move || {
                g.kill_with(PanicOnDrop);
                drop(g);
                yield_now();
                sleep(5 * MS);
            });
            killer.join();
            assert!(killer.successful());
        })
    });
}
