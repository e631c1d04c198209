//! The calls a new user reaches for in the first hour, each in its short
//! form: a non-`Clone` result moved out, greenlets of different result types
//! joined and killed together, `spawn_later` through `Builder`, a greenlet
//! killing itself, and the loop backend chosen in code.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use green_core::{
    current, joinall, joinall_timeout, killall, sleep, spawn, yield_now, BackendChoice,
    BackendKind, Builder, ErrorKind, RunOptions,
};

#[test]
fn take_moves_a_non_clone_value_out_once() {
    green_core::run(|| {
        #[derive(Debug)]
        struct Connection(u32);
        let g = spawn(|| Connection(7));
        assert_eq!(g.take().unwrap().0, 7);
        let again = g.take().unwrap_err();
        assert_eq!(again.kind(), ErrorKind::NotReady);
        assert!(again.message().contains("taken"), "{again}");
        let failed = spawn(|| -> Connection { panic!("no route") });
        assert_eq!(failed.take().unwrap_err().kind(), ErrorKind::Panicked);
    });
}

#[test]
fn joinall_and_killall_take_greenlets_of_different_types() {
    green_core::run(|| {
        let text = spawn(|| String::from("done"));
        let number = spawn(|| 5_u64);
        joinall(&[text.as_ref(), number.as_ref()]);
        assert_eq!(text.get().unwrap(), "done");
        assert_eq!(number.get().unwrap(), 5);

        let a = spawn(|| sleep(Duration::from_secs(10)));
        let b = spawn(|| -> u8 {
            sleep(Duration::from_secs(10));
            1
        });
        yield_now();
        assert!(!joinall_timeout(
            &[a.as_ref(), b.as_ref()],
            Duration::from_millis(2)
        ));
        killall(&[a.as_ref(), b.as_ref()]);
        assert!(a.dead() && b.dead());
        // Typed handles of one type go in directly.
        let same: Vec<_> = (0..3).map(|i| spawn(move || i)).collect();
        assert!(joinall_timeout(&same, Duration::from_secs(5)));
    });
}

#[test]
fn builder_spawns_later() {
    green_core::run(|| {
        let started = Rc::new(Cell::new(false));
        let flag = Rc::clone(&started);
        let g = Builder::new()
            .name("later")
            .spawn_later(Duration::from_millis(3), move || flag.set(true))
            .unwrap();
        yield_now();
        assert!(!started.get(), "not before its delay");
        g.join();
        assert!(started.get());
        assert_eq!(g.name(), "later");
    });
}

#[test]
fn a_greenlet_kills_itself_through_current() {
    green_core::run(|| {
        let after = Rc::new(Cell::new(false));
        let flag = Rc::clone(&after);
        let g = spawn(move || {
            current().kill();
            flag.set(true);
        });
        g.join();
        assert!(!after.get(), "the kill was raised at its own blocking kill");
        assert!(g.exception().unwrap().is_exit());
    });
}

#[test]
fn the_loop_backend_is_chosen_in_code() {
    std::thread::spawn(|| {
        let options = RunOptions::new().backend(BackendChoice::Epoll);
        let on = green_core::run_with(options, || {
            sleep(Duration::from_millis(1));
            green_core::loop_backend()
        });
        assert_eq!(on, BackendKind::Epoll);
        // The choice was for that run's hub; the next one is the default.
        let next = green_core::run(green_core::loop_backend);
        assert_eq!(
            next == BackendKind::Epoll,
            std::env::var("GREEN_LOOP_BACKEND").as_deref() == Ok("epoll")
                || !green_loop_io_uring_works(),
        );
    })
    .join()
    .unwrap();
}

#[test]
fn run_with_refuses_a_hub_already_on_another_backend() {
    std::thread::spawn(|| {
        let running = green_core::loop_backend(); // the hub exists now
        let other = match running {
            BackendKind::IoUring => BackendChoice::Epoll,
            BackendKind::Epoll => BackendChoice::IoUring,
        };
        let refused = std::panic::catch_unwind(|| {
            green_core::run_with(RunOptions::new().backend(other), || ())
        })
        .unwrap_err();
        let message = green_core::panic_message(&*refused);
        assert!(message.contains("already runs on"), "{message}");
        assert!(message.contains("run_with"), "{message}");
        // Asking for what runs, or for Auto, is fine.
        green_core::run_with(RunOptions::new(), || ());
    })
    .join()
    .unwrap();
}

#[test]
fn the_switch_build_is_visible_from_green_core() {
    // Re-exported so a green-core user need not depend on green-ctx.
    let _: bool = green_core::switch_saves_fp_control();
}

fn green_loop_io_uring_works() -> bool {
    green_loop::Loop::builder()
        .backend(green_loop::BackendChoice::IoUring)
        .build()
        .is_ok()
}
