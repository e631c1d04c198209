//! Pools of greenlets and the server built on them.
//!
//! This crate will hold gevent's `pool` and `server` modules in Rust: `Group` (a
//! set of greenlets joined and killed together), `Pool` (a size-limited group),
//! `ThreadPool` (blocking or CPU work run on OS threads and waited for greenly)
//! and `StreamServer` (a listener whose connections each get a greenlet). It is
//! written against green-core's public API only, and contains no unsafe code.
//!
//! * [`Group`]: greenlets joined and killed together, and `map`, `imap`,
//!   `imap_unordered`, `apply` and their async forms over them.
//! * [`Pool`]: a group of at most `size` members; `spawn` blocks while it
//!   is full ([`Group::free_count`], [`Group::full`],
//!   [`Group::wait_available`]).
//!
//! # Differences from gevent
//!
//! gevent's order is kept (see [`Group`]'s docs); its bugs are not:
//!
//! * `Pool.discard` of a greenlet that already left frees no second slot
//!   (gevent's lets a `Pool(1)` admit two members).
//! * `next` on an ended [`Imap`] returns `None` again (gevent's blocks
//!   forever), and an input iterator's panic ends an unordered one too.
//! * Members are kept in joining order (gevent: a `set`), a member added
//!   twice counts once, an unbounded pool's `free_count` is `usize::MAX`
//!   (gevent: 1), and failures are returned as `Err`, a member killed with
//!   `GreenletExit` included.
//!
//! The full list is in [`Group`]'s docs.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod group;
mod pool;
mod server;
mod threadpool;

pub use group::{Group, Imap};
pub use pool::{Pool, PoolFull};
pub use server::{
    serve_threads, HandlerOutput, ServerOptions, ServerStats, ServerStopper, ServerThreads,
    StreamServer,
};
pub use threadpool::{TaskError, ThreadPool};
