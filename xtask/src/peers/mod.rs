//! The peers that are not Rust crates, run by `cargo xtask bench` after the
//! Rust benches under the same bench names: gevent and eventlet in a venv
//! under `target/` (`python.rs`), and Go (`go.rs`).
//!
//! Each exposes
//! `run(quick, filter, results, progress) -> Result<()>`, which:
//!
//! * runs the benches whose names contain `filter` (all without one), with
//!   fewer and shorter samples when `quick`;
//! * appends one line per (bench, subject) to `results`, in the harness's
//!   protocol: `{"bench","subject","median","min","max","unit","note"}`, or
//!   `{"bench","subject","skipped":"reason"}` when the runtime can't be had
//!   (no `python3`, no `go`), so the report says why the row is empty;
//! * calls `progress` with `<bench> <subject>: <step>` (`core/spawn_join
//!   gevent: sample 3/10`) as it goes; the terminal shows it in place, a log
//!   shows each `<bench> <subject>` once;
//! * returns an error only for what should fail the run (a peer program
//!   that crashed), not for a missing runtime.

pub(crate) mod go;
pub(crate) mod python;
