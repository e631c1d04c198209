//! green-loop: the event loop under green's hub — timers, callbacks,
//! io_uring operations and cross-thread wakeups, with an epoll fallback.
//!
//! It plays the part libev/libuv play under gevent, and knows nothing of
//! greenlets: things to do are identified by tokens ([`OpId`], [`TimerId`],
//! [`CallbackId`]) and handlers are plain `fn` pointers plus one `u64`, so
//! registering one allocates nothing in steady state.
//!
//! # One iteration
//!
//! [`Loop::run_once`] does, in order:
//! 1. submit every op queued since the last iteration **and** wait for
//!    completions in a single `io_uring_enter` (bounded by the nearest timer
//!    through `EXT_ARG`; not blocking at all when callbacks are queued);
//! 2. dispatch completions to their handlers;
//! 3. fire due timers (hierarchical wheel, ticks of 65.5 µs, insertion order for
//!    equal deadlines);
//! 4. drain callbacks FIFO, bounded by count and time.
//!
//! [`Loop::run`] iterates while the loop [is alive](Loop::is_alive):
//! referenced timers, referenced ops and pending callbacks keep it alive,
//! gevent-style.
//!
//! # Memory rule
//!
//! Buffers are *borrowed* by ops: [`Loop::submit`] is `unsafe` because the
//! memory an op points at must outlive its final completion (invariant L1,
//! see the `op` module). Cancelling ([`Loop::cancel_op`]) does not end the
//! borrow; the op's own completion does. Dropping the loop cancels and waits
//! for every op in flight.
//!
//! # Backends
//!
//! io_uring by default; epoll when io_uring is unavailable or requested
//! (`GREEN_LOOP_BACKEND=epoll`, or [`Builder::backend`]). See
//! [`BackendChoice`].
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use green_loop::{Completion, Loop, TimerId};
//!
//! let lp = Loop::new()?;
//! // A callback, a timer and a no-op through the ring.
//! lp.run_callback(|_| println!("callback"));
//! fn on_timer(_: &Loop, _: TimerId, data: u64) {
//!     println!("timer {data}");
//! }
//! lp.add_timer(lp.now() + Duration::from_millis(5), on_timer, 7);
//! fn on_nop(lp: &Loop, c: Completion) {
//!     assert_eq!(c.result, 0);
//!     lp.run_callback(|_| println!("nop done"));
//! }
//! lp.submit_nop(on_nop, 0)?;
//! // Runs until nothing referenced is left: here, about 5 ms.
//! lp.run()?;
//! assert!(!lp.is_alive());
//! assert!(lp.stats().completed >= 1);
//! # Ok::<(), std::io::Error>(())
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod backend;
mod callback;
mod error;
mod event_loop;
mod op;
mod signal;
mod timer;
mod token;
mod wakeup;

#[cfg(test)]
mod tests;

pub use backend::sys::{fork, wait_child, ChildExit, Fork};
pub use backend::{fd, pidfd, sock};
pub use backend::{BackendChoice, BackendKind, Features, BACKEND_ENV};
pub use error::LoopGone;
pub use event_loop::{Builder, Loop, Stats};
pub use op::borrowed::{AcceptShot, OpWait, SockAddr};
pub use op::{Completion, Op, Timespec, CQE_F_MORE};
pub use signal::SignalWatcher;
pub use token::{CallbackId, OpId, TimerId};
pub use wakeup::Remote;

/// Re-export of the `io-uring` crate, for [`Loop::submit_entry`] and
/// opcode codes in [`Features::supports`].
pub use io_uring;
