//! Error types of the loop.
//!
//! Syscall-facing failures are `std::io::Error` (with messages naming cause
//! and fix, see `backend/mod.rs`); the one error of our own is [`LoopGone`].

use std::fmt;

/// A [`Remote`](crate::Remote) was used after its loop was dropped.
///
/// Permanent: the loop will not come back; drop the handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopGone(pub(crate) ());

impl fmt::Display for LoopGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the event loop this handle belongs to has been dropped")
    }
}

impl std::error::Error for LoopGone {}
