//! Stacks and context switching for green threads.
//!
//! `green-ctx` is the bottom layer of green: it knows nothing about scheduling,
//! time or I/O. It offers:
//!
//! * [`Stack`]: an `mmap`ed stack with a guard page below, whose overflow is
//!   reported by fiber name instead of a bare SIGSEGV; [`Arena`] for unguarded
//!   stacks when you need hundreds of thousands of fibers;
//! * [`StackPool`]: LIFO reuse so creating a fiber makes no system call in
//!   steady state;
//! * [`Fiber`] and [`FiberRef`]: symmetric switching between any two fibers and
//!   the thread's original context, one word passed per switch, panics caught
//!   at the fiber's root, and forced unwinding of suspended fibers so their
//!   destructors run.
//!
//! # Example
//!
//! ```
//! use green_ctx::{Fiber, FiberRef, FiberState, Stack};
//!
//! // A fiber that doubles whatever it is sent, forever.
//! let fiber = Fiber::new(Stack::new(64 * 1024).unwrap(), |mut word| {
//!     let root = FiberRef::root();
//!     loop {
//!         word = root.switch(word * 2);
//!     }
//! });
//! assert_eq!(fiber.switch(1), 2);
//! assert_eq!(fiber.switch(21), 42);
//! assert_eq!(fiber.state(), FiberState::Suspended);
//! // Dropping a suspended fiber unwinds its stack: destructors run.
//! drop(fiber);
//! ```
//!
//! # Speed
//!
//! The switch is boost.context's `jump_fcontext`, from the `context` crate.
//! Stock, it saves and restores MXCSR and the x87 control word on every switch,
//! which costs more than the rest of the switch together. Build it with
//! `BOOST_USE_TSX` defined to skip that (Rust code does not change those
//! control bits per fiber): add to your `.cargo/config.toml`
//!
//! ```toml
//! [env]
//! CFLAGS_x86_64_unknown_linux_gnu = "-DBOOST_USE_TSX"
//! ```
//!
//! [`switch_saves_fp_control`] tells which build is in use.
//!
//! # Panics and unwinding
//!
//! Fibers rely on unwinding to run destructors of a fiber that is dropped while
//! suspended: build with `panic = "unwind"` (the default). Under
//! `panic = "abort"` this crate fails to compile.
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(not(panic = "unwind"))]
compile_error!(
    "green-ctx requires panic = \"unwind\": suspended fibers are freed by unwinding them"
);

#[cfg(not(target_os = "linux"))]
compile_error!("green-ctx supports Linux only");

mod arena;
mod fiber;
mod overflow;
mod prefetch;
mod stack;
mod stack_pool;
mod valgrind;

pub use arena::Arena;
pub use fiber::{set_number_prefix, Fiber, FiberRef, FiberState, ForcedUnwind, Payload};
pub use prefetch::prefetch;
pub use stack::{
    page_size, read_max_map_count, usable_stack_size, Stack, DEFAULT_STACK_SIZE, MAX_STACK_SIZE,
    MIN_STACK_SIZE,
};
pub use stack_pool::{StackPool, StackPoolConfig, MAX_REFILL_BYTES};
pub use valgrind::running_on_valgrind;

/// Whether the linked context switch saves and restores the floating-point
/// control words (MXCSR, x87 CW) on every switch: `true` for the stock
/// `context` build, `false` for the fast build with `BOOST_USE_TSX` defined.
///
/// Measured once per process by running a fiber that changes MXCSR and
/// checking whether the change survives the switch back.
pub fn switch_saves_fp_control() -> bool {
    use std::sync::OnceLock;
    static ANSWER: OnceLock<bool> = OnceLock::new();
    *ANSWER.get_or_init(fiber::probe_fp_control)
}
