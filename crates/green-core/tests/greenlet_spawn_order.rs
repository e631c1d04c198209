//! Creating and starting greenlets: `spawn` never switches, spawn order is start
//! order, `spawn_later`, `spawn_raw`, `Greenlet::new` + `start`/`start_later`,
//! `Builder`, `cancel()` and `spawn_after_local`.

#[allow(unreachable_pub)] // support/mod.rs is shared; its `pub` items are crate-local here.
mod support;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use green_core::{
    current, run, sleep, spawn, spawn_after_local, spawn_later, spawn_raw, yield_now, Builder,
    Greenlet,
};
use support::{DropCounter, Log};

/// Uses about `depth * 4 KiB` of stack, so that a stack smaller than that
/// overflows.
fn use_stack(depth: usize) -> usize {
    let frame = std::hint::black_box([depth as u8; 4096]);
    if depth == 0 {
        return usize::from(frame[0]);
    }
    use_stack(depth - 1) + usize::from(std::hint::black_box(frame[4095]))
}

#[test]
fn spawn_does_not_switch_to_the_new_greenlet() {
    run(|| {
        let log = Log::new();
        let l = log.clone();
        let g = spawn(move || l.push("child"));
        log.push("after spawn");
        assert!(!g.has_started());
        assert_eq!(log.snapshot(), ["after spawn"]);
        yield_now();
        assert_eq!(log.snapshot(), ["after spawn", "child"]);
        assert!(g.dead());
    });
}

#[test]
fn spawn_inside_a_greenlet_does_not_switch_either() {
    run(|| {
        let log = Log::new();
        let l = log.clone();
        let parent = spawn(move || {
            let l2 = l.clone();
            let child = spawn(move || l2.push("child"));
            l.push("parent after spawn");
            assert!(!child.has_started());
            child.join();
            l.push("parent after join");
        });
        parent.join();
        assert_eq!(
            log.snapshot(),
            ["parent after spawn", "child", "parent after join"]
        );
    });
}

#[test]
fn greenlets_start_in_the_order_they_were_spawned() {
    run(|| {
        let log = Log::new();
        let gs: Vec<Greenlet<()>> = (0..50)
            .map(|i| {
                let l = log.clone();
                spawn(move || l.push(i.to_string()))
            })
            .collect();
        assert!(log.snapshot().is_empty());
        gs.last().unwrap().join();
        let expected: Vec<String> = (0..50).map(|i| i.to_string()).collect();
        assert_eq!(log.snapshot(), expected);
    });
}

#[test]
fn every_spawn_form_starts_in_call_order() {
    run(|| {
        let log = Log::new();
        let l = log.clone();
        let a = spawn(move || l.push("spawn"));
        let l = log.clone();
        let b = Greenlet::new(move || l.push("new+start"));
        b.start();
        let l = log.clone();
        spawn_raw(move || l.push("spawn_raw"));
        let l = log.clone();
        let d = Builder::new()
            .name("built")
            .spawn(move || l.push("builder"))
            .unwrap();
        let l = log.clone();
        let e = Greenlet::new(move || l.push("new, started last"));
        e.start();
        assert!(log.snapshot().is_empty());
        e.join();
        assert_eq!(
            log.snapshot(),
            [
                "spawn",
                "new+start",
                "spawn_raw",
                "builder",
                "new, started last"
            ]
        );
        assert!(a.dead() && b.dead() && d.dead());
    });
}

#[test]
fn yield_now_runs_the_spawned_greenlets_before_resuming() {
    run(|| {
        let log = Log::new();
        for name in ["a", "b", "c"] {
            let l = log.clone();
            spawn(move || l.push(name));
        }
        yield_now();
        log.push("main");
        assert_eq!(log.snapshot(), ["a", "b", "c", "main"]);
    });
}

#[test]
fn spawn_later_starts_after_its_delay() {
    run(|| {
        let began = Instant::now();
        let started_at = Rc::new(Cell::new(None));
        let s = Rc::clone(&started_at);
        let g = spawn_later(Duration::from_millis(30), move || {
            s.set(Some(Instant::now()));
            7
        });
        assert_eq!(g.get().unwrap(), 7);
        let started = started_at.get().expect("the greenlet ran");
        assert!(started - began >= Duration::from_millis(30));
    });
}

#[test]
fn yield_now_with_only_a_spawn_later_pending_returns_without_starting_it() {
    run(|| {
        let g = spawn_later(Duration::from_secs(10), || ());
        // Nothing else is ready: yield_now comes straight back.
        yield_now();
        assert!(!g.has_started(), "spawn_later ran before its delay");
        g.kill();
    });
}

#[test]
fn spawn_later_greenlets_start_in_deadline_order() {
    run(|| {
        let log = Log::new();
        let l = log.clone();
        let late = spawn_later(Duration::from_millis(60), move || l.push("late"));
        let l = log.clone();
        let early = spawn_later(Duration::from_millis(10), move || l.push("early"));
        late.join();
        assert!(early.dead());
        assert_eq!(log.snapshot(), ["early", "late"]);
    });
}

#[test]
fn spawn_raw_runs_its_function_once_without_a_handle() {
    run(|| {
        let runs = Rc::new(Cell::new(0));
        let r = Rc::clone(&runs);
        spawn_raw(move || r.set(r.get() + 1));
        assert_eq!(runs.get(), 0, "spawn_raw switched");
        sleep(Duration::from_millis(10));
        assert_eq!(runs.get(), 1);
        sleep(Duration::from_millis(10));
        assert_eq!(runs.get(), 1);
    });
}

#[test]
fn a_panicking_spawn_raw_greenlet_does_not_stop_the_others() {
    run(|| {
        spawn_raw(|| panic!("spawn_raw failure (expected by the test)"));
        let g = spawn(|| 5);
        assert_eq!(g.get().unwrap(), 5);
    });
}

#[test]
fn greenlet_new_does_not_run_until_started() {
    run(|| {
        let runs = Rc::new(Cell::new(0));
        let r = Rc::clone(&runs);
        let g = Greenlet::new(move || {
            r.set(r.get() + 1);
            "done"
        });
        sleep(Duration::from_millis(20));
        assert_eq!(runs.get(), 0);
        assert!(!g.has_started() && !g.dead());
        g.start();
        assert_eq!(runs.get(), 0, "start switched");
        assert_eq!(g.get().unwrap(), "done");
        assert_eq!(runs.get(), 1);
    });
}

#[test]
fn start_twice_or_after_death_runs_the_function_once() {
    run(|| {
        let runs = Rc::new(Cell::new(0));
        let r = Rc::clone(&runs);
        let g = Greenlet::new(move || r.set(r.get() + 1));
        g.start();
        g.start();
        g.start_later(Duration::ZERO);
        g.join();
        g.start();
        g.start_later(Duration::ZERO);
        sleep(Duration::from_millis(20));
        assert_eq!(runs.get(), 1);
        assert!(g.dead() && g.successful());
    });
}

#[test]
fn start_later_starts_after_its_delay() {
    run(|| {
        let began = Instant::now();
        let g = Greenlet::new(Instant::now);
        g.start_later(Duration::from_millis(30));
        let started = g.get().unwrap();
        assert!(started - began >= Duration::from_millis(30));
    });
}

#[test]
fn builder_name_is_the_greenlets_name_inside_and_out() {
    run(|| {
        let g = Builder::new()
            .name("worker-7")
            .spawn(|| current().name())
            .unwrap();
        assert_eq!(g.name(), "worker-7");
        assert_eq!(g.get().unwrap(), "worker-7");
    });
}

#[test]
fn builder_stack_size_gives_a_stack_deeper_than_the_default() {
    run(|| {
        // About 400 KiB of frames: more than the 256 KiB default stack,
        // well within the 4 MiB asked for.
        const { assert!(green_ctx::DEFAULT_STACK_SIZE < 400 * 1024) };
        let g = Builder::new()
            .stack_size(4 * 1024 * 1024)
            .spawn(|| use_stack(100))
            .unwrap();
        assert!(g.get().is_ok());
    });
}

#[test]
fn builder_small_stack_size_runs_a_shallow_greenlet() {
    run(|| {
        let g = Builder::new()
            .stack_size(32 * 1024)
            .spawn(|| use_stack(2))
            .unwrap();
        assert!(g.get().is_ok());
    });
}

#[test]
fn builder_unguarded_greenlets_run_and_return_values() {
    run(|| {
        let gs: Vec<Greenlet<usize>> = (0..100)
            .map(|i| {
                Builder::new()
                    .unguarded(true)
                    .spawn(move || {
                        yield_now();
                        i
                    })
                    .unwrap()
            })
            .collect();
        let total: usize = gs.iter().map(|g| g.get().unwrap()).sum();
        assert_eq!(total, (0..100).sum::<usize>());
    });
}

#[test]
fn builder_build_makes_an_unstarted_greenlet_and_spawn_starts_it() {
    run(|| {
        let log = Log::new();
        let l = log.clone();
        let built = Builder::new()
            .name("built")
            .build(move || l.push("built"))
            .unwrap();
        let l = log.clone();
        let spawned = Builder::new()
            .name("spawned")
            .spawn(move || l.push("spawned"))
            .unwrap();
        sleep(Duration::from_millis(20));
        assert_eq!(log.snapshot(), ["spawned"]);
        assert!(!built.has_started() && !built.dead());
        assert!(spawned.dead());
        assert_eq!(built.name(), "built");
        built.start();
        built.join();
        assert_eq!(log.snapshot(), ["spawned", "built"]);
    });
}

#[test]
fn cancel_kills_a_spawned_greenlet_that_has_not_run() {
    run(|| {
        let drops = DropCounter::new();
        let token = drops.token();
        let runs = Rc::new(Cell::new(0));
        let r = Rc::clone(&runs);
        let g = spawn(move || {
            let _token = token;
            r.set(r.get() + 1);
        });
        assert!(g.cancel());
        assert!(g.dead() && g.successful());
        sleep(Duration::from_millis(20));
        assert_eq!(runs.get(), 0);
        assert_eq!(drops.drops(), 1);
        assert!(
            !g.cancel(),
            "cancel of a dead greenlet reports nothing done"
        );
    });
}

#[test]
fn cancel_kills_an_unstarted_greenlet_and_a_later_start_does_nothing() {
    run(|| {
        let runs = Rc::new(Cell::new(0));
        let r = Rc::clone(&runs);
        let g = Greenlet::new(move || r.set(r.get() + 1));
        assert!(g.cancel());
        assert!(g.dead());
        g.start();
        sleep(Duration::from_millis(20));
        assert_eq!(runs.get(), 0);
    });
}

#[test]
fn cancel_kills_a_spawn_later_greenlet_before_its_delay() {
    run(|| {
        let runs = Rc::new(Cell::new(0));
        let r = Rc::clone(&runs);
        let g = spawn_later(Duration::from_millis(10), move || r.set(r.get() + 1));
        assert!(g.cancel());
        sleep(Duration::from_millis(40));
        assert_eq!(runs.get(), 0);
        assert!(g.dead() && g.successful());
    });
}

#[test]
fn cancel_does_not_touch_a_greenlet_that_has_started() {
    run(|| {
        let g = spawn(|| {
            sleep(Duration::from_millis(20));
            "finished"
        });
        yield_now();
        assert!(g.has_started());
        assert!(!g.cancel());
        assert!(!g.dead());
        assert_eq!(g.get().unwrap(), "finished");
        assert!(!g.cancel());
        assert_eq!(g.value(), Some("finished"));
    });
}

#[test]
fn spawn_after_local_does_not_run_when_its_spawner_has_died() {
    run(|| {
        let drops = DropCounter::new();
        let runs = Rc::new(Cell::new(0));
        let (r, d) = (Rc::clone(&runs), drops.clone());
        // The spawner's handle is kept: it is dead, not gone.
        let spawner = spawn(move || {
            let token = d.token();
            spawn_after_local(Duration::from_millis(20), move || {
                let _token = token;
                r.set(r.get() + 1);
            })
        });
        let child = spawner.get().unwrap();
        assert!(spawner.dead());
        child.join();
        sleep(Duration::from_millis(20));
        assert_eq!(
            runs.get(),
            0,
            "spawn_after_local ran after its spawner died"
        );
        assert!(child.dead());
        assert_eq!(drops.drops(), 1);
    });
}

#[test]
fn spawn_after_local_does_not_run_when_its_spawner_is_gone() {
    run(|| {
        let runs = Rc::new(Cell::new(0));
        let child = Rc::new(std::cell::RefCell::new(None));
        let (r, c) = (Rc::clone(&runs), Rc::clone(&child));
        // No handle to the spawner survives it.
        spawn_raw(move || {
            *c.borrow_mut() = Some(spawn_after_local(Duration::from_millis(20), move || {
                r.set(r.get() + 1);
            }));
        });
        sleep(Duration::from_millis(50));
        let child = child.borrow_mut().take().expect("the spawner ran");
        child.join();
        assert_eq!(runs.get(), 0);
        assert!(child.dead());
    });
}

#[test]
fn spawn_after_local_child_of_a_dead_spawner_never_reports_started() {
    run(|| {
        let spawner = spawn(|| spawn_after_local(Duration::from_millis(10), || ()));
        let child = spawner.get().unwrap();
        child.join();
        // Its function never began running.
        assert!(!child.has_started());
    });
}

#[test]
fn spawn_after_local_runs_when_its_spawner_is_alive() {
    run(|| {
        let log = Log::new();
        // Spawned from the main greenlet, which is alive.
        let l = log.clone();
        let from_main = spawn_after_local(Duration::from_millis(10), move || l.push("from main"));
        from_main.join();
        // Spawned from a greenlet that outlives the delay.
        let l = log.clone();
        let spawner = spawn(move || {
            let child = spawn_after_local(Duration::from_millis(10), move || l.push("from g"));
            sleep(Duration::from_millis(60));
            child
        });
        let child = spawner.get().unwrap();
        assert!(child.dead());
        assert_eq!(log.snapshot(), ["from main", "from g"]);
    });
}

#[test]
fn spawn_after_local_waits_for_its_delay() {
    run(|| {
        let began = Instant::now();
        let g = spawn_after_local(Duration::from_millis(30), Instant::now);
        assert!(g.get().unwrap() - began >= Duration::from_millis(30));
    });
}

/// gevent's fire-and-forget idiom: nobody keeps the handle, the greenlet
/// still starts when its delay is up (found by review: the hub held only a
/// weak reference to a delayed greenlet).
#[test]
fn spawn_later_runs_even_when_its_handle_is_dropped() {
    green_core::run(|| {
        let ran = Rc::new(Cell::new(false));
        let r = Rc::clone(&ran);
        drop(green_core::spawn_later(
            Duration::from_millis(5),
            move || r.set(true),
        ));
        let start = Instant::now();
        while !ran.get() && start.elapsed() < Duration::from_secs(5) {
            green_core::sleep(Duration::from_millis(5));
        }
        assert!(
            ran.get(),
            "a delayed greenlet whose handle was dropped never ran"
        );
    });
}
