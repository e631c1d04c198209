//! Pools of greenlets and the server built on them.
//!
//! This crate will hold gevent's `pool` and `server` modules in Rust: `Group` (a
//! set of greenlets joined and killed together), `Pool` (a size-limited group),
//! `ThreadPool` (blocking or CPU work run on OS threads and waited for greenly)
//! and `StreamServer` (a listener whose connections each get a greenlet). It is
//! written against green-core's public API only, and contains no unsafe code.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]
