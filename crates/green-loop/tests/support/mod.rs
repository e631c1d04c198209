//! Shared helpers for green-loop's integration tests (tokio-style
//! `mod support;` from each test file).
//!
//! Every test builds its loop with [`new_loop`], which honours
//! `GREEN_LOOP_BACKEND` (the xtask runs the suite once per backend), and a
//! few tests call [`each_backend`] to cover both explicitly.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

#[macro_use]
pub(crate) mod uring;

use std::cell::RefCell;
use std::time::{Duration, Instant};

use green_loop::{BackendChoice, Completion, Loop};

/// A loop on the backend the environment selects.
pub(crate) fn new_loop() -> Loop {
    Loop::new().expect("building the loop")
}

/// Runs `f` once per available backend, with explicitly built loops.
pub(crate) fn each_backend(f: impl Fn(Loop)) {
    f(Loop::builder()
        .backend(BackendChoice::Epoll)
        .build()
        .expect("epoll loop"));
    match Loop::builder().backend(BackendChoice::IoUring).build() {
        Ok(lp) => f(lp),
        Err(e) => println!("skipped io_uring half: {e}"),
    }
}

thread_local! {
    /// Completions recorded by [`record`]: (data, result, flags).
    pub(crate) static DONE: RefCell<Vec<(u64, i32, u32)>> = const { RefCell::new(Vec::new()) };
}

/// A completion handler that records into [`DONE`].
pub(crate) fn record(_: &Loop, c: Completion) {
    DONE.with(|d| d.borrow_mut().push((c.data, c.result, c.flags)));
}

/// Takes what [`record`] collected.
pub(crate) fn take_done() -> Vec<(u64, i32, u32)> {
    DONE.with(|d| std::mem::take(&mut *d.borrow_mut()))
}

/// Runs iterations until `cond` holds; panics after `limit`.
pub(crate) fn run_until(lp: &Loop, limit: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < end,
            "condition not reached within {limit:?}"
        );
        lp.run_once(false).expect("run_once");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Number of open fds of this process.
pub(crate) fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}
