//! Signals delivered on the loop's thread, through a signalfd read on the
//! ring (or through readiness on epoll).
//!
//! [`Loop::watch_signal`] blocks the signal *for the calling thread* (the
//! loop's), opens a signalfd for it and keeps an unreferenced read in
//! flight. Each completed read calls the handler with the signal number.
//! Dropping the [`SignalWatcher`] cancels the read and restores the thread's
//! mask (unblocks the signal if it was not blocked before).
//!
//! Caveats, as with any signalfd user: only signals directed at this thread
//! (`raise`, `pthread_kill`) or at the process while every other thread
//! blocks them are seen; a signal still pending when the watcher is dropped
//! is delivered normally once unblocked.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Weak;

use crate::backend::sys;
use crate::event_loop::Inner;
use crate::op::Completion;
use crate::token::{Key, OpId};
use crate::Loop;

/// `sizeof(struct signalfd_siginfo)`.
const SIGINFO_SIZE: usize = 128;

pub(crate) struct SignalState {
    fd: OwnedFd,
    /// Where the kernel writes the siginfo (L4: freed only after the read's
    /// final completion, or after the loop's drain).
    buf: Box<Cell<[u8; SIGINFO_SIZE]>>,
    handler: fn(&Loop, i32, u64),
    data: u64,
    closed: bool,
    op: Option<OpId>,
}

/// Watches one signal; see the module docs. `!Send`: the mask it restores
/// belongs to the thread that created it.
pub struct SignalWatcher {
    lp: Weak<Inner>,
    key: Key,
    signum: i32,
}

impl std::fmt::Debug for SignalWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalWatcher")
            .field("signum", &self.signum)
            .finish()
    }
}

impl SignalWatcher {
    /// The watched signal.
    pub fn signum(&self) -> i32 {
        self.signum
    }
}

impl Loop {
    /// Calls `f(loop, signum, data)` on the loop's thread each time
    /// `signum` arrives. Blocks `signum` for the calling thread.
    ///
    /// # Errors
    ///
    /// An invalid signal number, or signalfd/sigmask failures.
    pub fn watch_signal(
        &self,
        signum: i32,
        f: fn(&Loop, i32, u64),
        data: u64,
    ) -> io::Result<SignalWatcher> {
        let fd = sys::signalfd(signum)?;
        // Only the first live watcher of a signal on this thread decides what
        // to restore: later ones find it blocked by that first watcher.
        if watchers_of(signum, 1) == 1 {
            match sys::block_signal(signum) {
                Ok(was) => {
                    let _ = FIRST_FOUND_BLOCKED.try_with(|f| f.borrow_mut().insert(signum, was));
                }
                Err(e) => {
                    watchers_of(signum, -1);
                    return Err(e);
                }
            }
        }
        let key = self.inner.signals.borrow_mut().insert(SignalState {
            fd,
            buf: Box::new(Cell::new([0; SIGINFO_SIZE])),
            handler: f,
            data,
            closed: false,
            op: None,
        });
        if let Err(e) = arm(self, key) {
            self.inner.signals.borrow_mut().remove(key);
            release_watcher(signum);
            return Err(e);
        }
        Ok(SignalWatcher {
            lp: std::rc::Rc::downgrade(&self.inner),
            key,
            signum,
        })
    }
}

fn arm(lp: &Loop, key: Key) -> io::Result<()> {
    let (fd, buf) = {
        let sigs = lp.inner.signals.borrow();
        let st = sigs.get(key).expect("arming a live watcher");
        (st.fd.as_raw_fd(), st.buf.as_ptr().cast::<u8>())
    };
    let id = lp.submit_owned_read(fd, buf, SIGINFO_SIZE as u32, on_signal, key.pack())?;
    if let Some(st) = lp.inner.signals.borrow_mut().get_mut(key) {
        st.op = Some(id);
    }
    Ok(())
}

fn on_signal(lp: &Loop, c: Completion) {
    let key = Key::unpack(c.data);
    let (call, rearm) = {
        let mut sigs = lp.inner.signals.borrow_mut();
        let Some(st) = sigs.get_mut(key) else { return };
        st.op = None;
        if st.closed {
            // The read is finished, so its buffer may go (L4).
            sigs.remove(key);
            return;
        }
        if c.result == SIGINFO_SIZE as i32 {
            let b = st.buf.get();
            let signo = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as i32;
            (Some((st.handler, signo, st.data)), true)
        } else {
            let transient = c.result == -libc::EAGAIN || c.result == -libc::EINTR;
            if !transient {
                tracing::error!(result = c.result, "signalfd read failed; watcher stops");
            }
            (None, transient)
        }
    };
    if rearm {
        if let Err(e) = arm(lp, key) {
            tracing::error!(error = %e, "could not re-arm the signalfd read");
        }
    }
    if let Some((f, signo, data)) = call {
        f(lp, signo, data);
    }
}

impl Drop for SignalWatcher {
    fn drop(&mut self) {
        if let Some(inner) = self.lp.upgrade() {
            let lp = Loop { inner };
            let op = {
                let mut sigs = lp.inner.signals.borrow_mut();
                match sigs.get_mut(self.key) {
                    Some(st) if st.op.is_some() => {
                        st.closed = true;
                        st.op
                    }
                    Some(_) => {
                        // Nothing in flight: free at once.
                        sigs.remove(self.key);
                        None
                    }
                    None => None,
                }
            };
            if let Some(op) = op {
                // The completion (-ECANCELED or a signal) frees the state.
                let _ = lp.cancel_op(op);
            }
        }
        release_watcher(self.signum);
    }
}

thread_local! {
    /// Live watchers per signal on this thread: the mask is restored only
    /// when the last one goes, and only if the first found it unblocked.
    static WATCHERS: std::cell::RefCell<std::collections::HashMap<i32, usize>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
    /// Whether the signal was already blocked when its first watcher came.
    static FIRST_FOUND_BLOCKED: std::cell::RefCell<std::collections::HashMap<i32, bool>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// Adds `delta` to this thread's watcher count for `signum`; returns it.
/// At thread exit, with the table already destroyed, it answers 1: the
/// mask is left as it is (the thread is ending).
fn watchers_of(signum: i32, delta: isize) -> usize {
    WATCHERS
        .try_with(|w| {
            let mut w = w.borrow_mut();
            let count = w.entry(signum).or_insert(0);
            *count = count.saturating_add_signed(delta);
            *count
        })
        .unwrap_or(1)
}

/// One watcher of `signum` is gone: the last one restores the mask.
fn release_watcher(signum: i32) {
    if watchers_of(signum, -1) == 0 {
        let was_blocked = FIRST_FOUND_BLOCKED
            .try_with(|f| f.borrow_mut().remove(&signum))
            .ok()
            .flatten()
            .unwrap_or(true);
        if !was_blocked {
            let _ = sys::unblock_signal(signum);
        }
    }
}
