//! `Group`: membership, join, kill, and the order things happen in, each
//! trace pinned against the same program run under gevent 26.9 (the gevent
//! program is quoted above each trace test).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use green_core::{run, sleep, spawn, yield_now, ErrorKind, Greenlet};
use green_pool::Group;

/// A shared trace of what happened, in order.
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

#[test]
fn spawned_members_are_tracked_until_they_finish() {
    run(|| {
        let group = Group::new();
        assert!(group.is_empty());
        let a = group.spawn(|| sleep(Duration::from_millis(2)));
        let b = group.spawn(|| 2);
        assert_eq!(group.len(), 2);
        assert!(group.contains(&a) && group.contains(&b.as_ref()));
        let listed: Vec<_> = group.iter().collect();
        assert!(listed[0].ptr_eq(&a.as_ref()) && listed[1].ptr_eq(&b.as_ref()));
        b.join();
        assert!(!group.contains(&b));
        group.join();
        assert!(group.is_empty() && a.dead());
    });
}

/// gevent:
/// ```python
/// group = Group()
/// a = group.spawn(lambda: tr.append('a ran'))
/// def observer():
///     tr.append('b: a dead=%s len=%d' % (a.dead, len(group)))
///     gevent.sleep(0)
///     tr.append('b after yield: len=%d' % len(group))
/// b = gevent.spawn(observer)
/// a.join()
/// tr.append('main after join: len=%d' % len(group))
/// b.join()
/// ```
#[test]
fn a_member_leaves_one_callback_pass_after_it_dies() {
    run(|| {
        let log = Log::default();
        let group = Group::new();
        let l = log.clone();
        let a = group.spawn(move || l.push("a ran"));
        let (l, g, a2) = (log.clone(), group.clone(), a.clone());
        let b = spawn(move || {
            l.push(format!("b: a dead={} len={}", a2.dead(), g.len()));
            yield_now();
            l.push(format!("b after yield: len={}", g.len()));
        });
        a.join();
        log.push(format!("main after join: len={}", group.len()));
        b.join();
        assert_eq!(
            log.snapshot(),
            [
                "a ran",
                "b: a dead=true len=1",
                "main after join: len=0",
                "b after yield: len=0"
            ]
        );
    });
}

#[test]
fn add_tracks_a_greenlet_made_elsewhere_and_discard_forgets_it() {
    run(|| {
        let group = Group::new();
        let g = Greenlet::new(|| sleep(Duration::from_secs(10)));
        group.add(&g);
        group.add(&g); // already a member: nothing
        assert_eq!(group.len(), 1);
        g.start();
        assert!(group.discard(&g));
        assert!(group.is_empty());
        assert!(!group.discard(&g));
        // Its leave link was removed: killing it changes nothing.
        g.kill();
        yield_now();
        assert!(group.is_empty());
        // A dead greenlet added leaves at the next callback pass.
        group.add(&g);
        assert_eq!(group.len(), 1);
        yield_now();
        assert!(group.is_empty());
    });
}

#[test]
fn start_adds_and_starts_a_built_greenlet() {
    run(|| {
        let group = Group::new();
        let g = green_core::Builder::new().name("w").build(|| 3).unwrap();
        group.start(&g);
        assert!(group.contains(&g));
        assert_eq!(g.get().unwrap(), 3);
    });
}

#[test]
fn spawn_later_is_a_member_before_it_starts() {
    run(|| {
        let group = Group::new();
        let g = group.spawn_later(Duration::from_millis(5), || "late");
        assert!(group.contains(&g) && !g.has_started());
        assert!(!group.join_timeout(Duration::ZERO));
        group.join();
        assert_eq!(g.get().unwrap(), "late");
    });
}

#[test]
#[should_panic(expected = "main greenlet cannot join a group")]
fn the_main_greenlet_cannot_be_added() {
    run(|| Group::new().add(&green_core::current()));
}

#[test]
fn join_of_an_empty_group_returns_at_once() {
    run(|| {
        let group = Group::new();
        group.join();
        assert!(group.join_timeout(Duration::ZERO));
        assert!(group.join_with(None, true).unwrap());
    });
}

#[test]
fn join_timeout_says_whether_the_group_emptied() {
    run(|| {
        let group = Group::new();
        let g = group.spawn(|| sleep(Duration::from_secs(10)));
        assert!(!group.join_timeout(Duration::from_millis(5)));
        assert!(!group
            .join_with(Some(Duration::from_millis(5)), true)
            .unwrap());
        g.kill();
        assert!(group.join_timeout(Duration::from_secs(5)));
    });
}

#[test]
fn join_with_raise_error_returns_the_first_failure() {
    run(|| {
        green_core::silence_failures();
        let group = Group::new();
        group.spawn(|| ());
        let killed = group.spawn(|| sleep(Duration::from_secs(10)));
        group.spawn(|| -> () { panic!("first") });
        group.spawn(|| -> () { panic!("second") });
        yield_now();
        killed.kill_nowait(); // a GreenletExit is not a failure
        let error = group.join_with(None, true).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Panicked);
        assert_eq!(error.message(), "first");
        // Without raise_error, failures are not looked at.
        group.spawn(|| -> () { panic!("ignored") });
        assert!(group.join_with(None, false).unwrap());
        green_core::reset_failure_reporter();
    });
}

#[test]
fn a_group_is_waitable_as_empty() {
    run(|| {
        let group = Group::new();
        group.spawn(|| sleep(Duration::from_millis(2)));
        let never = spawn(|| sleep(Duration::from_secs(10)));
        let ready = green_core::wait(&[&never, &group], None, Some(1));
        assert_eq!(ready, [1]);
        assert!(group.is_empty());
        never.kill();
    });
}

/// gevent (the set order aside: gevent kills in its `set`'s order, which
/// put w2 first in that run; green kills in joining order):
/// ```python
/// a = group.spawn(w, 1); b = group.spawn(w, 2)
/// a.rawlink(lambda g: tr.append('a link'))
/// b.rawlink(lambda g: tr.append('b link'))
/// gevent.sleep(0)
/// group.kill()
/// tr.append('kill returned len=%d' % len(group))
/// ```
/// gave `['w2 unwound', 'w1 unwound', 'b link', 'a link', 'kill returned len=0']`.
#[test]
fn a_blocking_kill_returns_after_the_earlier_links_fired() {
    run(|| {
        let log = Log::default();
        let group = Group::new();
        let worker = |n: u32, log: Log| {
            move || {
                struct Unwound(u32, Log);
                impl Drop for Unwound {
                    fn drop(&mut self) {
                        self.1.push(format!("w{} unwound", self.0));
                    }
                }
                let _u = Unwound(n, log);
                sleep(Duration::from_secs(10));
            }
        };
        let a = group.spawn(worker(1, log.clone()));
        let b = group.spawn(worker(2, log.clone()));
        let l = log.clone();
        a.rawlink(move |_| l.push("a link"));
        let l = log.clone();
        b.rawlink(move |_| l.push("b link"));
        yield_now();
        group.kill();
        log.push(format!("kill returned len={}", group.len()));
        assert_eq!(
            log.snapshot(),
            [
                "w1 unwound",
                "w2 unwound",
                "a link",
                "b link",
                "kill returned len=0"
            ]
        );
    });
}

/// gevent:
/// ```python
/// def w():
///     try:
///         gevent.sleep(10)
///     except gevent.GreenletExit:
///         tr.append('caught')
///     gevent.sleep(0.02)
///     tr.append('finished')
/// g = g_.spawn(w)
/// gevent.sleep(0)
/// g_.kill(block=False)
/// g_.kill()
/// tr.append('kill returned len=%d' % len(g_))
/// ```
/// gave `['caught', 'finished', 'kill returned len=0']`: the second kill
/// does not kill the member again.
#[test]
fn kill_never_kills_a_member_twice() {
    run(|| {
        let log = Log::default();
        let group = Group::new();
        let l = log.clone();
        group.spawn(move || {
            // Swallows its kill (std's catch_unwind catches kills).
            let caught = std::panic::catch_unwind(|| sleep(Duration::from_secs(10))).is_err();
            if caught {
                l.push("caught");
            }
            sleep(Duration::from_millis(20));
            l.push("finished");
        });
        yield_now();
        group.kill_nowait();
        group.kill();
        log.push(format!("kill returned len={}", group.len()));
        assert_eq!(
            log.snapshot(),
            ["caught", "finished", "kill returned len=0"]
        );
    });
}

#[test]
fn kill_with_a_timeout_returns_quietly_when_a_member_survives() {
    run(|| {
        let group = Group::new();
        let stubborn = group.spawn(|| {
            for _ in 0..2 {
                let _ = std::panic::catch_unwind(|| sleep(Duration::from_secs(10)));
            }
        });
        yield_now();
        // gevent: `kill(timeout=0.02)` returns None, len 1, not dead.
        assert!(!group.kill_timeout(Duration::from_millis(20)));
        assert_eq!(group.len(), 1);
        assert!(!stubborn.dead());
        // The group does not kill it again; its own kill does.
        assert!(!group.kill_timeout(Duration::from_millis(5)));
        stubborn.kill();
        yield_now();
        assert!(group.is_empty());
    });
}

#[test]
fn kill_kills_members_that_never_started_without_running_them() {
    run(|| {
        let ran = Rc::new(Cell::new(false));
        let group = Group::new();
        let r = ran.clone();
        let g = group.spawn(move || r.set(true));
        group.kill_nowait();
        assert!(g.dead());
        yield_now();
        assert!(!ran.get() && group.is_empty());
    });
}

#[test]
fn killone_kills_a_member_once_and_ignores_strangers() {
    run(|| {
        let group = Group::new();
        let member = group.spawn(|| sleep(Duration::from_secs(10)));
        let stranger = spawn(|| sleep(Duration::from_secs(10)));
        yield_now();
        assert!(!group.killone(&stranger));
        assert!(!stranger.dead());
        assert!(!group.killone_with(&member, false, None));
        // Killed already: returns at once without killing or waiting.
        assert!(!group.killone(&member));
        member.join();
        assert!(member.exception().unwrap().is_exit());
        stranger.kill();
    });
}

#[test]
fn a_member_can_kill_its_own_group() {
    run(|| {
        let group = Group::new();
        let other = group.spawn(|| sleep(Duration::from_secs(10)));
        let g = group.clone();
        let killer = group.spawn(move || {
            yield_now();
            g.kill();
            unreachable!("the killer is a member: its own kill is raised in the wait");
        });
        group.join();
        assert!(other.dead() && killer.dead());
        assert!(killer.exception().unwrap().is_exit());
    });
}

#[test]
fn a_dropped_group_leaves_its_members_running() {
    run(|| {
        let group = Group::new();
        let g = group.spawn(|| 5);
        drop(group);
        assert_eq!(g.get().unwrap(), 5);
    });
}

#[test]
fn group_works_on_either_backend() {
    // The whole file runs on the backend GREEN_LOOP_BACKEND names; this
    // checks which one it is, so a run under epoll is known to be one.
    run(|| {
        let backend = green_core::loop_backend();
        if std::env::var("GREEN_LOOP_BACKEND").as_deref() == Ok("epoll") {
            assert_eq!(backend, green_core::BackendKind::Epoll);
        }
        let group = Group::new();
        group.spawn(|| sleep(Duration::from_millis(1)));
        group.join();
    });
}
