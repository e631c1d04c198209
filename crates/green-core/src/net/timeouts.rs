//! Socket read and write timeouts, kept in user space: io_uring ops do not
//! honour `SO_RCVTIMEO`, so each green socket keeps its own, shared by its
//! `try_clone`s as std's (kernel-held) timeouts are.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::io::Direction;

/// A socket's two timeouts, in nanoseconds (0 = none).
#[derive(Default, Debug)]
pub(crate) struct Timeouts {
    read: AtomicU64,
    write: AtomicU64,
}

impl Timeouts {
    pub(crate) fn shared() -> Arc<Timeouts> {
        Arc::new(Timeouts::default())
    }

    fn slot(&self, d: Direction) -> &AtomicU64 {
        match d {
            Direction::Read => &self.read,
            Direction::Write => &self.write,
        }
    }

    /// std's `set_read_timeout`/`set_write_timeout`: `Some(ZERO)` is
    /// refused with `InvalidInput`, as std refuses it.
    pub(crate) fn set(&self, d: Direction, timeout: Option<Duration>) -> io::Result<()> {
        let nanos = match timeout {
            None => 0,
            Some(t) if t.is_zero() => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "cannot set a 0 duration timeout",
                ))
            }
            Some(t) => u64::try_from(t.as_nanos()).unwrap_or(u64::MAX).max(1),
        };
        self.slot(d).store(nanos, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn get(&self, d: Direction) -> Option<Duration> {
        match self.slot(d).load(Ordering::Relaxed) {
            0 => None,
            n => Some(Duration::from_nanos(n)),
        }
    }
}
