//! Pools of greenlets and the server built on them: gevent's `pool`,
//! `threadpool` and `server` modules in Rust, written against green-core's
//! public API only, with no unsafe code.
//!
//! * [`Group`]: greenlets joined and killed together, and `map`, `imap`,
//!   `imap_unordered`, `apply` and their async forms over them.
//! * [`Pool`]: a group of at most `size` members; `spawn` blocks while it
//!   is full ([`Group::free_count`], [`Group::full`],
//!   [`Group::wait_available`]).
//! * [`ThreadPool`]: blocking or CPU-bound work run on OS threads and
//!   waited for greenly; a worker's panic comes back as
//!   [`TaskError::Panicked`].
//! * [`StreamServer`]: a TCP listener whose connections each get a handler
//!   greenlet, in a group or a capped pool ([`ServerOptions::pool_size`]);
//!   `close` releases the port, `stop` gives the handlers a grace period
//!   and then kills them.
//! * [`serve_threads`]: one server per OS thread, each on its own hub and
//!   its own `SO_REUSEPORT` listener, sharing one handler: the way to use
//!   every core.
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
//! * [`ThreadPool`] never blocks in `spawn` (its queue is unbounded), is
//!   shared by any number of hub threads, and refuses `maxsize` 0.
//! * [`StreamServer`] binds when it is made, always tracks its handlers (so
//!   `stop` waits for and kills them without a pool too), and accepts
//!   handlers returning `io::Result<()>`.
//!
//! The full lists are in [`Group`]'s, [`ThreadPool`]'s and
//! [`StreamServer`]'s docs.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

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

/// The stream and listener types a [`StreamServer`] works with, re-exported
/// so that a handler's signature needs no second import.
pub use green_core::net::{TcpListener, TcpStream};
