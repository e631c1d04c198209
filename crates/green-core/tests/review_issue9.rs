//! Hostile review of issue 9's scheduler (one FIFO callback queue, links
//! entries, deferred kills, zero timers, fairness). Public API only.
//! gevent 26.9.0 is the oracle for order; each test quotes its program.

#[allow(unreachable_pub)] // The shared fixtures are `pub` for every test binary.
mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::thread;
use std::time::{Duration, Instant};

use green_core::{
    current, iwait, joinall_with, killall_with, run, sleep, spawn, yield_now, Greenlet,
    GreenletExit, Timeout,
};
use support::{catch, panic_message, within, Log, OnDrop, MS};

const LIMIT: Duration = Duration::from_secs(20);

fn busy(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {}
}

// ===== fairness: where a timer wake-up lands after a cut pass =====

/// gevent:
/// ```python
/// def sleeper():
///     gevent.sleep(0.001); log.append('S')
/// def worker(i):
///     busy(0.0002); log.append(i)
/// s = gevent.spawn(sleeper); gevent.sleep(0); time.sleep(0.002)
/// ws = [gevent.spawn(worker, i) for i in range(200)]
/// gevent.joinall(ws + [s]); print(log.index('S'))   # -> 48
/// ```
/// After a pass is cut (50 callbacks, 5 ms), gevent's loop polls and a due
/// timer's callback switches to its greenlet at once, before the callbacks
/// left over from the cut pass. So the sleeper runs after about 50 workers,
/// not after all 200.
#[test]
fn fairness_cut_lets_a_due_timer_run_before_the_leftover_callbacks() {
    let at = within(LIMIT, || {
        run(|| {
            let log = Log::new();
            let l = log.clone();
            let s = spawn(move || {
                sleep(MS);
                l.push("S");
            });
            yield_now();
            thread::sleep(2 * MS);
            let ws: Vec<Greenlet<()>> = (0..200)
                .map(|i| {
                    let l = log.clone();
                    spawn(move || {
                        busy(Duration::from_micros(200));
                        l.push(i.to_string());
                    })
                })
                .collect();
            let _ = joinall_with(&ws, None, false, None);
            s.join();
            log.snapshot().iter().position(|e| e == "S").unwrap()
        })
    });
    assert!(
        at < 100,
        "the sleeper ran only after {at} workers (gevent: 48)"
    );
}

// ===== scenarios (each mirrors a gevent program quoted at its test) =====

fn exit_caught<R>(log: &Log, who: &str, f: impl FnOnce() -> R) {
    if let Err(p) = catch(f) {
        if p.is::<GreenletExit>() {
            log.push(format!("{who} exit"));
        } else if p.is::<Timeout>() {
            log.push(format!("{who} timeout"));
        } else {
            log.push(format!("{who} panic {}", panic_message(&*p)));
        }
    }
}

fn mk_g(log: &Log) -> Greenlet<()> {
    let l = log.clone();
    spawn(move || {
        sleep(5 * MS);
        l.push("g dies");
    })
}

fn s1(log: &Log) {
    let g = mk_g(log);
    let slot: Rc<RefCell<Option<Greenlet<()>>>> = Rc::default();
    let (l, s) = (log.clone(), slot.clone());
    g.rawlink(move |_| {
        l.push("rawlink kills w");
        s.borrow().as_ref().unwrap().kill_nowait();
    });
    let (l, g2) = (log.clone(), g.clone());
    let w = spawn(move || {
        exit_caught(&l.clone(), "w", || {
            g2.join();
            l.push("w joined");
            yield_now();
            l.push("w after sleep0");
            sleep(10 * MS);
            l.push("w after sleep");
        })
    });
    *slot.borrow_mut() = Some(w);
    sleep(50 * MS);
    log.push("end s1");
}

fn s2(log: &Log) {
    let g = mk_g(log);
    let slot: Rc<RefCell<Option<Greenlet<()>>>> = Rc::default();
    let (l, g1, s) = (log.clone(), g.clone(), slot.clone());
    let _w1 = spawn(move || {
        g1.join();
        l.push("w1 joined; kills w2");
        let w2 = s.borrow().clone().unwrap();
        w2.kill();
        l.push("w1 kill returned");
    });
    let (l, g2) = (log.clone(), g.clone());
    let w2 = spawn(move || {
        exit_caught(&l.clone(), "w2", || {
            g2.join();
            l.push("w2 joined");
            yield_now();
            l.push("w2 after sleep0");
        })
    });
    *slot.borrow_mut() = Some(w2);
    yield_now();
    let l = log.clone();
    g.rawlink(move |_| l.push("raw after waiters"));
    sleep(50 * MS);
    log.push("end s2");
}

fn s2b(log: &Log) {
    let g = mk_g(log);
    let h: Greenlet<()> = spawn(|| sleep(Duration::from_secs(1)));
    let slot: Rc<RefCell<Option<Greenlet<()>>>> = Rc::default();
    let (l, g1, s) = (log.clone(), g.clone(), slot.clone());
    let _w1 = spawn(move || {
        g1.join();
        l.push("w1 joined; kills w2");
        let w2 = s.borrow().clone().unwrap();
        w2.kill();
        l.push("w1 kill returned");
    });
    let (l, g2, h2) = (log.clone(), g.clone(), h.clone());
    let w2 = spawn(move || {
        exit_caught(&l.clone(), "w2", || {
            let objs: [&dyn green_core::Waitable; 2] = [&g2, &h2];
            for i in iwait(&objs, None) {
                l.push(format!("w2 got {}", ["g", "h"][i]));
                yield_now();
                l.push("w2 after sleep0");
            }
        })
    });
    *slot.borrow_mut() = Some(w2);
    yield_now();
    let l = log.clone();
    g.rawlink(move |_| l.push("raw after waiters"));
    sleep(50 * MS);
    h.kill();
    log.push("end s2b");
}

fn s5(log: &Log) {
    let g = mk_g(log);
    let (l, g2) = (log.clone(), g.clone());
    let w = spawn(move || {
        exit_caught(&l.clone(), "w", || {
            let _ = joinall_with(&[g2], None, false, None);
            l.push("w joinall returned");
            sleep(MS);
            l.push("w slept");
        })
    });
    yield_now();
    let l = log.clone();
    g.link(move |_| {
        l.push("link kills w");
        w.kill();
        l.push("link kill returned");
    });
    sleep(50 * MS);
    log.push("end s5");
}

fn s6(log: &Log) {
    let g = mk_g(log);
    let (l, g2) = (log.clone(), g.clone());
    let _w = spawn(move || {
        g2.join();
        l.push("w joined");
        g2.kill();
        l.push("w kill of dead returned");
        if Timeout::run(Duration::ZERO, || g2.join()).is_ok() {
            l.push("join in timeout0 ok");
        }
        let r = Timeout::run(Duration::ZERO, || {
            yield_now();
            l.push("sleep0 in timeout0 ok");
            yield_now();
            l.push("2nd sleep0 in timeout0 ok");
            sleep(MS);
            l.push("not reached");
        });
        if r.is_err() {
            l.push("timeout0 fired");
        }
    });
    yield_now();
    let l = log.clone();
    g.rawlink(move |_| l.push("raw"));
    sleep(50 * MS);
    log.push("end s6");
}

fn s2c(log: &Log) {
    let g = mk_g(log);
    let slot: Rc<RefCell<Option<Greenlet<()>>>> = Rc::default();
    let (l, g1, s) = (log.clone(), g.clone(), slot.clone());
    let _w1 = spawn(move || {
        g1.join();
        l.push("w1 joined; kills w2");
        let w2 = s.borrow().clone().unwrap();
        w2.kill();
        l.push("w1 kill returned");
    });
    let (l, g2) = (log.clone(), g.clone());
    let w2 = spawn(move || {
        exit_caught(&l.clone(), "w2", || {
            let _ = joinall_with(&[g2], None, false, None);
            l.push("w2 joinall returned");
            yield_now();
            l.push("w2 after sleep0");
        })
    });
    *slot.borrow_mut() = Some(w2);
    yield_now();
    let l = log.clone();
    g.rawlink(move |_| l.push("raw after waiters"));
    sleep(50 * MS);
    log.push("end s2c");
}

fn s7(log: &Log) {
    let l = log.clone();
    let a = spawn(move || {
        exit_caught(&l.clone(), "a", || {
            yield_now();
            l.push("a after sleep0");
            yield_now();
            l.push("a after 2nd sleep0");
        })
    });
    let l = log.clone();
    let _b = spawn(move || {
        l.push("b runs");
        yield_now();
        l.push("b after sleep0");
    });
    yield_now();
    log.push("main kills a nowait");
    a.kill_nowait();
    let l = log.clone();
    let _c = spawn(move || l.push("c runs"));
    sleep(10 * MS);
    log.push("end s7");
}

fn s8(log: &Log) {
    for blocking_kill in [false, true] {
        let l = log.clone();
        let b: Greenlet<()> = spawn(move || {
            let i = Rc::new(Cell::new(0));
            let i2 = Rc::clone(&i);
            let l2 = l.clone();
            exit_caught(&l.clone(), "spinner", move || loop {
                l2.push(format!("spin {}", i2.get()));
                i2.set(i2.get() + 1);
                yield_now();
            });
            l.push(format!("spinner exit at {}", i.get()));
        });
        yield_now();
        yield_now();
        if blocking_kill {
            log.push("main kill");
            b.kill();
        } else {
            log.push("main killall");
            killall_with(std::slice::from_ref(&b), true, None);
        }
        log.push(format!("returned {}", b.dead()));
    }
}

fn trace(s: fn(&Log)) -> Vec<String> {
    within(LIMIT, move || {
        run(move || {
            let log = Log::new();
            s(&log);
            log.take()
        })
    })
}

// ===== deferred kills (rule 4 / Q3) =====

/// A kill aimed at a greenlet queued to resume is deferred, but it must be
/// raised at *its own place in the callback queue* (gevent queues `_kill`
/// as a callback), not on the way into the target's next blocking call:
/// whatever was queued before the kill still runs first.
/// gevent:
/// ```python
/// def a():
///     try:
///         gevent.sleep(0); log("a after sleep0")
///         gevent.sleep(0); log("a after 2nd sleep0")
///     except GreenletExit: log("a exit")
/// A = spawn(a); B = spawn(lambda: (log("b runs"), sleep(0), log("b after sleep0")))
/// sleep(0); log("main kills a nowait"); A.kill(block=False)
/// spawn(lambda: log("c runs")); sleep(0.01); log("end s7")
/// ```
/// prints: b runs / main kills a nowait / a after sleep0 / b after sleep0 /
/// a exit / c runs / end s7. green-core raises the kill at A's second
/// `yield_now` at once: "a exit" comes before "b after sleep0".
#[test]
fn deferred_kill_waits_for_its_place_in_the_queue() {
    assert_eq!(
        trace(s7),
        [
            "b runs",
            "main kills a nowait",
            "a after sleep0",
            "b after sleep0",
            "a exit",
            "c runs",
            "end s7"
        ]
    );
}

/// The same with a join waiter: W1 (first link of g) blocking-kills W2
/// (second link of g). gevent: W2 returns from join, blocks in sleep(0);
/// the rest of g's links fire ("raw after waiters"), and only then the
/// `_kill` callback throws into W2, after which W1's kill returns.
/// ```python
/// g = spawn(sleep 5ms; log "g dies")
/// def w1(): g.join(); log("w1 joined; kills w2"); W2.kill(); log("w1 kill returned")
/// def w2():
///     try: g.join(); log("w2 joined"); sleep(0); log("w2 after sleep0")
///     except GreenletExit: log("w2 exit")
/// W1 = spawn(w1); W2 = spawn(w2); sleep(0)
/// g.rawlink(lambda _: log("raw after waiters")); sleep(0.05); log("end s2")
/// ```
/// green-core fires "raw after waiters" only after W1's kill returned.
#[test]
fn deferred_kill_of_a_join_waiter_lets_the_later_links_fire_first() {
    assert_eq!(
        trace(s2),
        [
            "g dies",
            "w1 joined; kills w2",
            "w2 joined",
            "raw after waiters",
            "w2 exit",
            "w1 kill returned",
            "end s2"
        ]
    );
}

/// Q3 for the waits woken by a rawlink (`iwait`, `wait`, `joinall`): a kill
/// queued while the waiter's rawlink is about to fire is deferred behind
/// the wake, as for `join`. gevent (`for x in gevent.iwait([g, h])` in W2,
/// otherwise as above) prints: g dies / w1 joined; kills w2 / w2 got g /
/// raw after waiters / w2 exit / w1 kill returned / end s2b.
/// green-core never yields g: the kill is raised inside `iwait`.
#[test]
fn deferred_kill_of_an_iwait_waiter_first_yields_the_ready_greenlet() {
    assert_eq!(
        trace(s2b),
        [
            "g dies",
            "w1 joined; kills w2",
            "w2 got g",
            "raw after waiters",
            "w2 exit",
            "w1 kill returned",
            "end s2b"
        ]
    );
}

/// As above with `joinall([g])` (gevent: "w2 joinall returned" before
/// "raw after waiters", then "w2 exit", "w1 kill returned").
#[test]
fn deferred_kill_of_a_joinall_waiter_first_returns_from_joinall() {
    assert_eq!(
        trace(s2c),
        [
            "g dies",
            "w1 joined; kills w2",
            "w2 joinall returned",
            "raw after waiters",
            "w2 exit",
            "w1 kill returned",
            "end s2c"
        ]
    );
}

/// `killall` throws like gevent's `_killall3`: `g.throw()` straight into
/// the target, even one whose resume is queued (it is not deferred behind
/// that resume, unlike `kill`). gevent:
/// ```python
/// def spinner():
///     i = 0
///     try:
///         while True: log("spin", i); i += 1; gevent.sleep(0)
///     except GreenletExit: log("spinner exit at", i)
/// B = spawn(spinner); sleep(0); sleep(0); log("main killall"); killall([B])
/// ```
/// prints spin 0 / spin 1 / main killall / spin 2 / spinner exit at 3 (and
/// `B.kill()` instead prints the same). green-core's killall lets the
/// spinner run one more round ("spin 3", exit at 4).
#[test]
fn killall_throws_into_a_greenlet_queued_to_resume_at_once() {
    let log = trace(s8);
    let killall_part: Vec<&str> = log
        .iter()
        .take_while(|e| !e.starts_with("returned"))
        .map(|s| s.as_str())
        .collect();
    assert_eq!(
        killall_part,
        [
            "spin 0",
            "spin 1",
            "main killall",
            "spin 2",
            "spinner exit",
            "spinner exit at 3"
        ]
    );
}

// ===== attacks that held (passing regressions) =====

/// 10 000 greenlets, each joining the one before; the first finishes and the
/// chain unwinds through the links entries.
#[test]
fn c_deep_join_chain() {
    let n = within(LIMIT, || {
        run(|| {
            let done = Rc::new(Cell::new(0usize));
            let first: Greenlet<()> = spawn(|| sleep(MS));
            let mut prev = first.clone();
            let mut all = vec![first];
            for _ in 0..10_000 {
                let p = prev.clone();
                let d = Rc::clone(&done);
                let g = spawn(move || {
                    p.join();
                    d.set(d.get() + 1);
                });
                all.push(g.clone());
                prev = g;
            }
            prev.join();
            done.get()
        })
    });
    assert_eq!(n, 10_000);
}

/// 10 000 unstarted greenlets, each one's rawlink kills the next (each kill
/// queues the next links entry).
#[test]
fn c_deep_rawlink_kill_chain() {
    let n = within(LIMIT, || {
        run(|| {
            let gs: Vec<Greenlet<()>> = (0..10_000).map(|_| Greenlet::new(|| ())).collect();
            let fired = Rc::new(Cell::new(0usize));
            for i in 0..gs.len() - 1 {
                let next = gs[i + 1].clone();
                let f = Rc::clone(&fired);
                gs[i].rawlink(move |_| {
                    f.set(f.get() + 1);
                    next.kill_nowait();
                });
            }
            gs[0].kill();
            gs.last().unwrap().join();
            sleep(10 * MS);
            fired.get()
        })
    });
    assert_eq!(n, 9_999);
}

/// 10 000 link greenlets chained: each link callback adds a link to the next
/// greenlet and kills it.
#[test]
fn c_deep_green_link_chain() {
    let n = within(LIMIT, || {
        run(|| {
            let gs: Vec<Greenlet<()>> = (0..10_000)
                .map(|_| spawn(|| sleep(Duration::from_secs(60))))
                .collect();
            yield_now();
            let fired = Rc::new(Cell::new(0usize));
            for i in 0..gs.len() - 1 {
                let next = gs[i + 1].clone();
                let f = Rc::clone(&fired);
                gs[i].link(move |_| {
                    f.set(f.get() + 1);
                    next.kill();
                });
            }
            gs[0].kill();
            gs.last().unwrap().join();
            sleep(10 * MS);
            fired.get()
        })
    });
    assert_eq!(n, 9_999);
}

/// Teardown while a links entry is half fired: a waiter was switched to and
/// is blocked, a link greenlet blocks, a rawlink is still to come, another
/// waiter is still to be woken.
#[test]
fn c_teardown_mid_links() {
    let (log, took) = within(LIMIT, || {
        let log = Log::new();
        let start = Instant::now();
        let l0 = log.clone();
        run(move || {
            let g: Greenlet<()> = spawn(|| sleep(MS));
            let (l, g1) = (l0.clone(), g.clone());
            let _w1 = spawn(move || {
                let _d = OnDrop({
                    let l = l.clone();
                    move || l.push("w1 dropped")
                });
                g1.join();
                l.push("w1 joined");
                sleep(Duration::from_secs(60));
            });
            yield_now();
            let l = l0.clone();
            g.link(move |_| {
                let _d = OnDrop({
                    let l = l.clone();
                    move || l.push("link dropped")
                });
                l.push("link runs");
                sleep(Duration::from_secs(60));
            });
            let l = l0.clone();
            g.rawlink(move |_| l.push("raw"));
            let (l, g2) = (l0.clone(), g.clone());
            let _w2 = spawn(move || {
                let _d = OnDrop({
                    let l = l.clone();
                    move || l.push("w2 dropped")
                });
                g2.join();
                l.push("w2 joined");
                sleep(Duration::from_secs(60));
            });
            yield_now();
            sleep(5 * MS); // g dies, links fire up to the blocking ones
            l0.push("main returns");
        });
        (log.take(), start.elapsed())
    });
    println!("{log:?} {took:?}");
    assert!(took < Duration::from_secs(2), "teardown took {took:?}");
    for d in ["w1 dropped", "link dropped", "w2 dropped"] {
        assert!(log.iter().any(|e| e == d), "{d} missing: {log:?}");
    }
}

/// Thread exit (no `run`) while links are queued and waiters blocked: the
/// lazy hub's teardown at exit unwinds them all.
#[test]
fn c_thread_exit_mid_links() {
    use std::sync::{Arc, Mutex};
    let log = Arc::new(Mutex::new(Vec::<&'static str>::new()));
    let l0 = Arc::clone(&log);
    within(LIMIT, move || {
        let g: Greenlet<()> = spawn(|| ());
        let (l, g1) = (Arc::clone(&l0), g.clone());
        let _w1 = spawn(move || {
            let _d = OnDrop({
                let l = Arc::clone(&l);
                move || l.lock().unwrap().push("w1 dropped")
            });
            g1.join();
            l.lock().unwrap().push("w1 joined");
            sleep(Duration::from_secs(60));
        });
        let l = Arc::clone(&l0);
        g.link(move |_| {
            let _d = OnDrop({
                let l = Arc::clone(&l);
                move || l.lock().unwrap().push("link dropped")
            });
            l.lock().unwrap().push("link runs");
            sleep(Duration::from_secs(60));
        });
        yield_now();
    });
    let log = log.lock().unwrap().clone();
    println!("{log:?}");
    for d in ["w1 dropped", "link dropped"] {
        assert!(log.contains(&d), "{d} missing: {log:?}");
    }
}

fn s9(log: &Log) {
    let g = mk_g(log);
    let l = log.clone();
    g.link(move |_| {
        l.push("l1 raises");
        panic!("boom");
    });
    let (l, g2) = (log.clone(), g.clone());
    let me: Rc<RefCell<Option<Greenlet<()>>>> = Rc::default();
    let m = Rc::clone(&me);
    let w = spawn(move || {
        g2.join();
        l.push("w joined");
        let r = catch(|| {
            m.borrow().clone().unwrap().kill_nowait();
            l.push("w after self kill_nowait");
        });
        if r.is_err() {
            l.push("w exit at its own kill_nowait");
            return;
        }
        exit_caught(&l.clone(), "w", || yield_now());
    });
    *me.borrow_mut() = Some(w);
    yield_now();
    let l = log.clone();
    g.rawlink(move |_| l.push("raw"));
    let l = log.clone();
    g.link(move |_| {
        l.push("l2 sleeps");
        sleep(MS);
        l.push("l2 woke");
    });
    let l = log.clone();
    g.rawlink(move |_| l.push("raw2"));
    sleep(50 * MS);
    log.push("end s9");
}

/// `kill_nowait` of the running greenlet itself: gevent's
/// `getcurrent().kill(block=False)` only queues the `_kill` callback; the
/// greenlet goes on and the exit is raised at its next blocking point,
/// after what was queued before (here the rest of g's links). gevent:
/// ```python
/// g.link(l1)  # raises
/// def w():
///     g.join(); log("w joined")
///     gevent.getcurrent().kill(block=False); log("w after self kill_nowait")
///     try: gevent.sleep(0)
///     except GreenletExit: log("w exit at sleep0")
/// spawn(w); sleep(0)
/// g.rawlink(raw); g.link(l2: sleeps 1ms); g.rawlink(raw2)
/// ```
/// prints: g dies / l1 raises / w joined / w after self kill_nowait / raw /
/// l2 sleeps / raw2 / w exit at sleep0 / l2 woke / end s9. green-core
/// raises the exit inside `kill_nowait` itself.
#[test]
fn kill_nowait_of_oneself_is_raised_at_the_next_blocking_point() {
    assert_eq!(
        trace(s9),
        [
            "g dies",
            "l1 raises",
            "w joined",
            "w after self kill_nowait",
            "raw",
            "l2 sleeps",
            "raw2",
            "w exit",
            "l2 woke",
            "end s9"
        ]
    );
}

/// killall (blocking, with a timeout) of greenlets whose destructors block
/// while they unwind, one that catches the exit and sleeps on, and one
/// queued to resume: killall returns within its timeout, and teardown
/// finishes everything (no leak report, every destructor ran).
#[test]
fn c_killall_diehards_with_blocking_destructors() {
    let (all_dead, drops, took) = within(LIMIT, || {
        let drops = Rc::new(Cell::new(0));
        let start = Instant::now();
        let all_dead = run(|| {
            let mut gs: Vec<Greenlet<()>> = Vec::new();
            for i in 0..3 {
                let d = Rc::clone(&drops);
                gs.push(spawn(move || {
                    let _g = OnDrop(move || {
                        sleep(3 * MS);
                        d.set(d.get() + 1);
                    });
                    match i {
                        0 => sleep(Duration::from_secs(60)),
                        1 => {
                            let _ = catch(|| sleep(Duration::from_secs(60)));
                            sleep(30 * MS);
                        }
                        _ => loop {
                            yield_now();
                        },
                    }
                }));
            }
            yield_now();
            let quick = killall_with(&gs, true, Some(10 * MS));
            let later = Timeout::run(Duration::ZERO, || gs[1].join());
            let _ = (quick, later);
            killall_with(&gs, true, Some(Duration::from_secs(5)))
        });
        (all_dead, drops.get(), start.elapsed())
    });
    assert!(all_dead);
    assert_eq!(drops, 3);
    assert!(took < Duration::from_secs(2), "{took:?}");
}

/// Zero timeouts nested in nonzero ones around joins of greenlets that
/// finish now, later, or already did.
#[test]
fn c_zero_timeouts_around_joins() {
    let out = within(LIMIT, || {
        run(|| {
            let done: Greenlet<u32> = spawn(|| 1);
            yield_now();
            let quick: Greenlet<u32> = spawn(|| 2);
            let slow: Greenlet<u32> = spawn(|| {
                sleep(20 * MS);
                3
            });
            let mut out = Vec::new();
            let r = Timeout::run(50 * MS, || {
                out.push(format!(
                    "{:?}",
                    Timeout::run(Duration::ZERO, || done.get().unwrap()).ok()
                ));
                out.push(format!(
                    "{:?}",
                    Timeout::run(Duration::ZERO, || quick.get().unwrap()).ok()
                ));
                out.push(format!(
                    "{:?}",
                    Timeout::run(Duration::ZERO, || slow.get().unwrap()).ok()
                ));
                out.push(format!("{:?}", slow.get().ok()));
            });
            out.push(format!("{}", r.is_ok()));
            out
        })
    });
    assert_eq!(out, ["Some(1)", "Some(2)", "None", "Some(3)", "true"]);
}

/// Minor (diagnostics): a `link` callback's greenlet reports its spawn
/// site as a line inside green-core's hub.rs (`start_link_greenlet` uses
/// `Location::caller()` without `#[track_caller]` up to `link`), so a panic
/// in a link is reported as "spawned at crates/green-core/src/hub.rs:..."
/// instead of naming the user's `link` call (or the linked greenlet's site).
#[test]
fn link_greenlet_spawn_site_names_user_code() {
    let file = within(LIMIT, || {
        run(|| {
            let site = Rc::new(RefCell::new(String::new()));
            let s = Rc::clone(&site);
            let g: Greenlet<()> = spawn(|| ());
            g.link(move |_| *s.borrow_mut() = current().spawn_site().file().to_string());
            g.join();
            sleep(MS);
            let f = site.borrow().clone();
            f
        })
    });
    assert!(
        !file.contains("green-core/src"),
        "link greenlet spawn site: {file}"
    );
}

/// Held: matches gevent (a rawlink kills a join waiter; the waiter returns
/// from join first; the kill is raised at its sleep(0)). gevent prints
/// g dies / rawlink kills w / w joined / w exit / end s1.
#[test]
fn held_rawlink_kills_a_join_waiter() {
    assert_eq!(
        trace(s1),
        ["g dies", "rawlink kills w", "w joined", "w exit", "end s1"]
    );
}

/// Held: a link greenlet blocking-kills a joinall waiter that already
/// returned (gevent: g dies / w joinall returned / link kills w / w exit /
/// link kill returned / end s5).
#[test]
fn held_link_kills_a_joinall_waiter() {
    assert_eq!(
        trace(s5),
        [
            "g dies",
            "w joinall returned",
            "link kills w",
            "w exit",
            "link kill returned",
            "end s5"
        ]
    );
}

/// Held: kill of a dead greenlet from its waiter, Timeout(0) around a join
/// of a finished greenlet, and Timeout(0) around two sleep(0)s then a
/// sleep (gevent: g dies / w joined / w kill of dead returned / join in
/// timeout0 ok / raw / sleep0 in timeout0 ok / 2nd sleep0 in timeout0 ok /
/// timeout0 fired / end s6).
#[test]
fn held_zero_timeouts_in_a_join_waiter() {
    assert_eq!(
        trace(s6),
        [
            "g dies",
            "w joined",
            "w kill of dead returned",
            "join in timeout0 ok",
            "raw",
            "sleep0 in timeout0 ok",
            "2nd sleep0 in timeout0 ok",
            "timeout0 fired",
            "end s6"
        ]
    );
}
