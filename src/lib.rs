//! Root package of the green workspace.
//!
//! It exists so that the cross-crate integration tests in `tests/`, the
//! benchmarks in `benches/` and the programs in `examples/` have a home. It
//! re-exports the workspace crates under short names.
#![warn(missing_docs)]

pub use green_core as core;
pub use green_ctx as ctx;
pub use green_loop as event_loop;
pub use green_pool as pool;
