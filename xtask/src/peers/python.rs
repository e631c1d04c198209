//! The benches in gevent and eventlet, in a venv under `target/`: a merge seam.
//!
//! The real runner is written in a parallel change of issue 14 and replaces
//! this file when both land; until then this peer contributes no rows.

use std::path::Path;

use crate::util::Result;

/// Runs this peer's benches (see `peers/mod.rs` for the contract).
pub(crate) fn run(
    _quick: bool,
    _filter: Option<&str>,
    _results: &Path,
    _progress: &mut dyn FnMut(&str),
) -> Result<()> {
    Ok(())
}
