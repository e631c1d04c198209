//! Linked spawns: a greenlet learns that another ended without polling, by
//! having [`LinkedExited`] raised in it at its next blocking point, as a
//! kill is. This is the gevent tutorial's `spawn_link` family (modern gevent
//! dropped it; green keeps it as the supervisor's tool).

use std::fmt;
use std::panic::Location;
use std::rc::Rc;

use crate::error::GreenletError;
use crate::greenlet::state::{display_name, Core, LinkAction, LinkFilter, WeakCore};
use crate::greenlet::{Greenlet, GreenletRef, LinkId};
use crate::hub::{add_link, kill_core, throw_linked};

/// Raised in a greenlet linked to another (with [`spawn_link`] and friends,
/// or [`Greenlet::link_to`]) when that other ends: at the receiver's next
/// blocking point, as a kill is, so a supervisor blocked in `sleep`, `join`
/// or a socket read learns of it at once. Uncaught, it ends the receiver
/// (a failure, reported). It is one of green-core's own unwinds:
/// [`catch_unwind`](crate::catch_unwind) lets it through, and
/// [`is_kill_or_timeout`](crate::is_kill_or_timeout) recognises it.
///
/// The main greenlet can receive it too (it cannot be killed otherwise): it
/// then unwinds out of its blocking call, and out of [`run`](crate::run)
/// unless caught.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum LinkedExited {
    /// The linked greenlet returned a value (gevent's `LinkedCompleted`).
    Completed {
        /// The linked greenlet's name.
        greenlet: String,
    },
    /// The linked greenlet panicked, was killed with another payload, or
    /// timed out (gevent's `LinkedFailed`), with how.
    Failed {
        /// The linked greenlet's name.
        greenlet: String,
        /// How it failed.
        error: GreenletError,
    },
    /// The linked greenlet was killed with `GreenletExit` (gevent's
    /// `LinkedKilled`).
    Killed {
        /// The linked greenlet's name.
        greenlet: String,
    },
}

impl LinkedExited {
    /// The linked greenlet's name.
    ///
    /// # Examples
    /// ```
    /// let w = green_core::Builder::new().name("w").spawn(|| ()).unwrap();
    /// w.link_to(&green_core::current());
    /// let raised = std::panic::catch_unwind(|| green_core::sleep(std::time::Duration::from_secs(5)));
    /// let payload = raised.unwrap_err();
    /// assert_eq!(payload.downcast_ref::<green_core::LinkedExited>().unwrap().greenlet(), "w");
    /// ```
    pub fn greenlet(&self) -> &str {
        match self {
            LinkedExited::Completed { greenlet }
            | LinkedExited::Failed { greenlet, .. }
            | LinkedExited::Killed { greenlet } => greenlet,
        }
    }

    fn of(core: &Core) -> LinkedExited {
        let greenlet = display_name(core);
        match core.error() {
            None => LinkedExited::Completed { greenlet },
            Some(error) if error.is_exit() => LinkedExited::Killed { greenlet },
            Some(error) => LinkedExited::Failed { greenlet, error },
        }
    }
}

impl fmt::Display for LinkedExited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkedExited::Completed { greenlet } => {
                write!(f, "linked greenlet '{greenlet}' completed")
            }
            LinkedExited::Failed { greenlet, error } => {
                write!(f, "linked greenlet '{greenlet}' failed: {error}")
            }
            LinkedExited::Killed { greenlet } => {
                write!(f, "linked greenlet '{greenlet}' was killed")
            }
        }
    }
}

impl std::error::Error for LinkedExited {}

/// Which endings of the linked greenlet are raised in the receiver.
#[derive(Clone, Copy)]
enum Raise {
    Any,
    OnSuccess,
    OnFailure,
}

impl<T: 'static> Greenlet<T> {
    /// When this greenlet ends, raises [`LinkedExited`] in `receiver` at its
    /// next blocking point (gevent tutorial's `link(receiver)`). The
    /// receiver is held weakly: one that is gone by then is left alone.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use green_core::LinkedExited;
    ///
    /// # green_core::silence_failures();
    /// let worker = green_core::spawn(|| -> u8 { panic!("lost the database") });
    /// worker.link_to(&green_core::current());
    /// // The main greenlet blocks; the worker's failure is raised here.
    /// let ended = std::panic::catch_unwind(|| green_core::sleep(Duration::from_secs(5)));
    /// let payload = ended.unwrap_err();
    /// let exited = payload.downcast_ref::<LinkedExited>().unwrap();
    /// assert!(matches!(exited, LinkedExited::Failed { .. }));
    /// ```
    pub fn link_to(&self, receiver: &GreenletRef) -> LinkId {
        link_to_receiver(&self.core_ref_pub(), receiver, Raise::Any)
    }
}

fn link_to_receiver(
    linked: &crate::greenlet::state::CoreRef,
    receiver: &GreenletRef,
    raise: Raise,
) -> LinkId {
    let filter = match raise {
        Raise::Any => LinkFilter::Always,
        Raise::OnSuccess => LinkFilter::OnSuccess,
        Raise::OnFailure => LinkFilter::OnFailure,
    };
    let receiver: WeakCore = Rc::downgrade(&receiver.core_ref_pub());
    add_link(
        linked,
        filter,
        LinkAction::Raw(Box::new(move |dead: &_| {
            let Some(receiver) = receiver.upgrade() else {
                return;
            };
            let payload = Box::new(LinkedExited::of(dead.core()));
            if receiver.core().is_main {
                throw_linked(&receiver, payload);
            } else {
                kill_core(&receiver, payload, false);
            }
        })),
    )
}

/// Spawns `f` linked to the running greenlet: when it ends, however it
/// ends, [`LinkedExited`] is raised in the spawner at its next blocking
/// point (the gevent tutorial's `spawn_link`).
///
/// # Panics
/// As [`spawn`](crate::spawn); inside the hub, where no greenlet runs to be
/// the receiver.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use green_core::LinkedExited;
///
/// let supervisor = green_core::spawn(|| {
///     let _worker = green_core::spawn_link(|| 42);
///     // Blocks until the worker's end is raised here.
///     let ended = std::panic::catch_unwind(|| green_core::sleep(Duration::from_secs(5)));
///     ended.unwrap_err().downcast::<LinkedExited>().unwrap().to_string()
/// });
/// assert!(supervisor.get().unwrap().ends_with("completed"));
/// ```
#[track_caller]
pub fn spawn_link<F, T>(f: F) -> Greenlet<T>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    spawn_linked(f, Raise::Any, Location::caller())
}

/// [`spawn_link`] raising only when `f` returns a value
/// ([`LinkedExited::Completed`]; the tutorial's `spawn_link_value`).
///
/// # Examples
/// ```
/// let supervisor = green_core::spawn(|| {
///     let _worker = green_core::spawn_link_value(|| 42);
///     let raised = std::panic::catch_unwind(|| green_core::sleep(std::time::Duration::from_secs(5)));
///     raised.unwrap_err().downcast::<green_core::LinkedExited>().unwrap().to_string()
/// });
/// assert!(supervisor.get().unwrap().ends_with("completed"));
/// ```
#[track_caller]
pub fn spawn_link_value<F, T>(f: F) -> Greenlet<T>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    spawn_linked(f, Raise::OnSuccess, Location::caller())
}

/// [`spawn_link`] raising only when `f` fails ([`LinkedExited::Failed`]; the
/// tutorial's `spawn_link_exception`). A greenlet killed with
/// `GreenletExit` did not fail, as in gevent.
///
/// # Examples
/// ```
/// # green_core::silence_failures();
/// let supervisor = green_core::spawn(|| {
///     let _worker = green_core::spawn_link_exception(|| -> u8 { panic!("crashed") });
///     let raised = std::panic::catch_unwind(|| green_core::sleep(std::time::Duration::from_secs(5)));
///     raised.unwrap_err().downcast::<green_core::LinkedExited>().unwrap().to_string()
/// });
/// assert!(supervisor.get().unwrap().contains("crashed"));
/// ```
#[track_caller]
pub fn spawn_link_exception<F, T>(f: F) -> Greenlet<T>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    spawn_linked(f, Raise::OnFailure, Location::caller())
}

#[track_caller]
fn spawn_linked<F, T>(f: F, raise: Raise, site: &'static Location<'static>) -> Greenlet<T>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    let receiver = crate::current();
    let g = Greenlet::new_at(f, site);
    link_to_receiver(&g.core_ref_pub(), &receiver, raise);
    g.start();
    g
}

/// Runs `f`; a [`LinkedExited`] raised inside it (a linked greenlet ended)
/// comes back as `Err`, while kills, timeouts and panics go on unwinding.
/// The supervisor's tool: [`catch_unwind`](crate::catch_unwind) lets a
/// `LinkedExited` through, and `std::panic::catch_unwind` would swallow
/// kills too.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use green_core::LinkedExited;
///
/// # green_core::silence_failures();
/// let supervisor = green_core::spawn(|| {
///     let mut restarts = 0;
///     let mut worker = green_core::spawn_link_exception(|| -> u8 { panic!("crash") });
///     while restarts < 3 {
///         match green_core::catch_linked(|| green_core::sleep(Duration::from_secs(5))) {
///             Err(LinkedExited::Failed { .. }) => {
///                 restarts += 1;
///                 worker = green_core::spawn_link_exception(|| -> u8 { panic!("crash") });
///             }
///             _ => break,
///         }
///     }
///     worker.kill();
///     restarts
/// });
/// assert_eq!(supervisor.get().unwrap(), 3);
/// ```
pub fn catch_linked<R>(f: impl FnOnce() -> R) -> Result<R, LinkedExited> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(value) => Ok(value),
        Err(payload) => match payload.downcast::<LinkedExited>() {
            Ok(exited) => {
                // Its unwind is over (U1).
                if let Some(hub) = crate::hub::existing_hub() {
                    hub.caught_in_current(&*exited);
                }
                Err(*exited)
            }
            Err(other) => std::panic::resume_unwind(other),
        },
    }
}
