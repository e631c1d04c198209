//! Forking a green process (gevent's `gevent.os.fork` and `gevent.reinit`).
//!
//! [`fork`] makes a child process whose hub is **fresh**: a new event loop
//! (the parent's io_uring ring and epoll instance are shared with the
//! parent, so the child must never touch them) and no greenlet but the one
//! that forked. The parent goes on unaffected: its greenlets, timers and
//! sockets keep working.
//!
//! ```
//! use green_core::os::{fork, wait_child, ForkResult};
//!
//! match fork()? {
//!     ForkResult::Child => {
//!         // A fresh hub: sleep, spawn and use sockets as usual.
//!         green_core::sleep(std::time::Duration::from_millis(1));
//!         let g = green_core::spawn(|| 7);
//!         std::process::exit(g.get().unwrap());
//!     }
//!     ForkResult::Parent { child } => {
//!         let status = wait_child(child)?;
//!         assert_eq!(status, green_core::os::ChildExit::Exited(7));
//!     }
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Difference from gevent: the parent's greenlets stay behind
//!
//! After gevent's `fork`, every greenlet of the parent runs on in the child
//! too (gevent reinitialises its loop and keeps its watchers). Here only the
//! greenlet that forked (the main greenlet) runs in the child; the others
//! are **discarded without running anything of theirs**: not resumed, not
//! unwound, their destructors never run, their stacks leaked (the memory is
//! the child's copy; a child that execs or exits soon loses nothing). A
//! Rust greenlet holds owned resources on its stack (buffers to flush, a
//! connection's protocol state, a temporary file to delete): running it, or
//! even just its destructors, in both processes would do those things
//! twice, on files and sockets the two processes share. And an operation it
//! had in flight on the parent's ring can never complete in the child.
//!
//! A handle to such a greenlet, held by the main greenlet, sees it dead:
//! `join` returns at once, `get` returns an [`Exited`](crate::ErrorKind)
//! error saying it was discarded, and `kill` does nothing. The parent's
//! pending timers, `spawn_later`s and timeouts do not fire in the child.
//! Signal handlers ([`crate::signal`]) are kept, watched on the child's loop.
//!
//! # Threads
//!
//! The child has only the thread that forked. Whatever other threads held
//! (a `Mutex`, work queued to a pool, another thread's hub) stays held or
//! undone forever in the child: fork before starting threads, or have the
//! child exec or exit soon. That is the caller's concern, as with any fork
//! ([`green_loop::fork`]). Green name lookups run on resolver threads, which
//! the child does not inherit: its first lookup starts its own.

use std::io;

pub use green_loop::ChildExit;

/// Which side of a [`fork`] this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForkResult {
    /// The original process.
    Parent {
        /// The child's process id.
        child: i32,
    },
    /// The new process, with a fresh hub.
    Child,
}

/// Forks the process (gevent's `gevent.os.fork_gevent`): the parent goes on
/// as before; the child gets a fresh hub, as [`reinit`] makes it (see the
/// [module docs](self) for what stays behind and for threads).
///
/// Must be called from the main greenlet (the thread's own code, not a
/// spawned greenlet): only it carries on in the child. It does not block
/// or switch. A [`Timeout`](crate::Timeout) running around the call does
/// not fire in the child.
///
/// # Errors
///
/// [`Unsupported`](io::ErrorKind::Unsupported) when called from a spawned
/// greenlet or from inside the hub (a loop handler, a rawlink); `fork(2)`'s
/// errors (`WouldBlock`: the process limit).
///
/// # Kill safety
///
/// Does not block: a kill or timeout pending for the main greenlet stays
/// pending, in the parent. In the child the parent's greenlets are gone, so
/// nothing will kill it from there.
pub fn fork() -> io::Result<ForkResult> {
    check_main("fork")?;
    match green_loop::fork()? {
        green_loop::Fork::Parent { child } => Ok(ForkResult::Parent { child }),
        green_loop::Fork::Child => {
            reinit()?;
            Ok(ForkResult::Child)
        }
    }
}

/// Makes this thread's hub usable in a child of a fork (gevent's
/// `gevent.reinit`): a new event loop, the parent's greenlets discarded
/// (see the [module docs](self)), signal handlers watched again. [`fork`]
/// calls it; call it yourself after a fork made by other means. In the
/// process that built the hub it does nothing (gevent's `reinit` is as
/// harmless there), and with no hub yet there is nothing to do: the first
/// use builds one.
///
/// Does not block or switch.
///
/// # Errors
///
/// [`Unsupported`](io::ErrorKind::Unsupported) when called from a spawned
/// greenlet or from inside the hub.
pub fn reinit() -> io::Result<()> {
    let Some(hub) = crate::hub::existing_hub() else {
        return Ok(());
    };
    if !hub.built_by_another_process() {
        return Ok(());
    }
    check_main("reinit")?;
    hub.reinit_after_fork();
    crate::signal::rearm_after_fork();
    Ok(())
}

/// Waits for the child `pid` to end and reaps it, **blocking the thread**
/// (`waitpid`): every greenlet of this hub stands still meanwhile. For a
/// child that ends soon, or one expected to have ended (tests, a pre-fork
/// server's shutdown).
///
/// # Errors
///
/// `ECHILD` when `pid` is not a child of this process or was reaped
/// already; [`InvalidInput`](io::ErrorKind::InvalidInput) for a pid that is
/// not positive.
///
/// # Kill safety
///
/// Not interruptible: it blocks the thread, not the greenlet, so a kill or
/// a [`Timeout`](crate::Timeout) cannot reach it; they are raised at the
/// next green blocking call.
pub fn wait_child(pid: i32) -> io::Result<ChildExit> {
    green_loop::wait_child(pid)
}

/// Refuses `what` outside the main greenlet.
fn check_main(what: &str) -> io::Result<()> {
    let Some(hub) = crate::hub::existing_hub() else {
        return Ok(());
    };
    // On the thread's own stack, and not inside the hub (which runs on its
    // own fiber); no current greenlet there means no hub built yet.
    let in_main =
        green_ctx::FiberRef::current().is_root() && hub.current().is_none_or(|c| c.core().is_main);
    if in_main {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "green_core::os::{what} must be called from the main greenlet (the thread's own \
                 code): only the greenlet that forks carries on in the child, and a spawned \
                 greenlet's stack belongs to the parent's hub; fork before spawning, or signal \
                 the main greenlet to fork"
            ),
        ))
    }
}
