//! The error types of green-core, named after gevent's.
//!
//! Each is small, `Debug + Display + Error`, `Send + Sync + 'static`: it can
//! travel as a panic payload (the way gevent raises these exceptions into a
//! greenlet), across threads, and into `Box<dyn Error + Send + Sync>` with
//! `?` (what `anyhow` and most applications use).

use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// Delivered into a greenlet by [`Greenlet::kill`](crate::Greenlet::kill): it
/// unwinds the greenlet so its destructors run. A greenlet that dies of it
/// counts as successful (gevent's rule), and its failure is not reported.
///
/// Permanent: the greenlet it was delivered to is dead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GreenletExit;

impl fmt::Display for GreenletExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("greenlet exited (killed with GreenletExit)")
    }
}

impl std::error::Error for GreenletExit {}

/// Raised (as a panic) by a blocking call in the main greenlet when nothing is
/// left that could ever wake it: no runnable greenlet, no referenced timer,
/// operation or callback. gevent's `LoopExit`.
///
/// The payload is this type (`std::panic::panic_any`), so it can be caught
/// by type (`payload.is::<LoopExit>()`); the panic is located at the
/// blocking call that would have hung, and its message is
/// [`LoopExit::MESSAGE`].
///
/// Permanent: retrying the same call blocks forever again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopExit;

impl LoopExit {
    /// The message every `LoopExit` carries.
    pub const MESSAGE: &'static str = "this operation would block forever: the main greenlet \
        is waiting and no greenlet, timer, I/O operation or callback is left that could wake it \
        (gevent's LoopExit)";
}

impl fmt::Display for LoopExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::MESSAGE)
    }
}

impl std::error::Error for LoopExit {}

/// How a greenlet failed: [`Greenlet::get`](crate::Greenlet::get) returns it.
///
/// A panic payload is not `Clone` (nor `Sync`), so the greenlet keeps the
/// payload once and hands out this cheap, cloneable, thread-safe description
/// of it; [`Greenlet::take_exception_payload`](crate::Greenlet::take_exception_payload)
/// gives the original payload.
#[derive(Clone)]
pub struct GreenletError {
    inner: Arc<ErrorInner>,
}

struct ErrorInner {
    kind: ErrorKind,
    message: String,
}

/// The broad cause of a [`GreenletError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The greenlet panicked.
    Panicked,
    /// The greenlet was killed with [`GreenletExit`] before producing a value
    /// (it still counts as successful).
    Exited,
    /// The greenlet was killed with a payload other than [`GreenletExit`]
    /// (see [`Greenlet::kill_with`](crate::Greenlet::kill_with)).
    Killed,
    /// A [`Timeout`](crate::Timeout) that its greenlet did not catch.
    TimedOut,
    /// The greenlet has not finished (from `try_get`, `get_timeout`).
    NotReady,
}

impl GreenletError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> GreenletError {
        GreenletError {
            inner: Arc::new(ErrorInner {
                kind,
                message: message.into(),
            }),
        }
    }

    /// Describes a payload caught at a greenlet's root.
    pub(crate) fn from_payload(payload: &(dyn Any + Send)) -> GreenletError {
        if payload.is::<GreenletExit>() {
            return GreenletError::new(ErrorKind::Exited, GreenletExit.to_string());
        }
        if let Some(t) = payload.downcast_ref::<crate::Timeout>() {
            return GreenletError::new(ErrorKind::TimedOut, t.to_string());
        }
        if let Some(k) = payload.downcast_ref::<crate::greenlet::KillPayload>() {
            return GreenletError::new(ErrorKind::Killed, k.message());
        }
        if let Some(l) = payload.downcast_ref::<crate::LinkedExited>() {
            return GreenletError::new(ErrorKind::Killed, l.to_string());
        }
        GreenletError::new(ErrorKind::Panicked, payload_message(payload))
    }

    /// The broad cause.
    ///
    /// # Examples
    /// ```
    /// # green_core::silence_failures();
    /// let g = green_core::spawn(|| -> u8 { panic!("x") });
    /// assert_eq!(g.get().unwrap_err().kind(), green_core::ErrorKind::Panicked);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The panic message, or a description of the kill.
    ///
    /// # Examples
    /// ```
    /// # green_core::silence_failures();
    /// let g = green_core::spawn(|| -> u8 { panic!("out of {}", "cheese") });
    /// assert_eq!(g.get().unwrap_err().message(), "out of cheese");
    /// ```
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// Whether the greenlet died of [`GreenletExit`] (a success in gevent's terms).
    ///
    /// # Examples
    /// ```
    /// let g = green_core::spawn(|| green_core::sleep(std::time::Duration::from_secs(5)));
    /// green_core::yield_now();
    /// g.kill();
    /// assert!(g.exception().unwrap().is_exit());
    /// ```
    pub fn is_exit(&self) -> bool {
        self.inner.kind == ErrorKind::Exited
    }
}

impl fmt::Debug for GreenletError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GreenletError")
            .field("kind", &self.inner.kind)
            .field("message", &self.inner.message)
            .finish()
    }
}

impl fmt::Display for GreenletError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner.kind {
            ErrorKind::Panicked => write!(f, "greenlet panicked: {}", self.inner.message),
            ErrorKind::NotReady => f.write_str("greenlet has not finished"),
            _ => f.write_str(&self.inner.message),
        }
    }
}

impl std::error::Error for GreenletError {}

/// The text of a panic payload: the `&str` or `String` most panics carry, the
/// `Display` of our own payloads, or a placeholder.
pub(crate) fn payload_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(e) = payload.downcast_ref::<LoopExit>() {
        e.to_string()
    } else if let Some(e) = payload.downcast_ref::<GreenletExit>() {
        e.to_string()
    } else if let Some(t) = payload.downcast_ref::<crate::Timeout>() {
        t.to_string()
    } else if let Some(k) = payload.downcast_ref::<crate::greenlet::KillPayload>() {
        k.message()
    } else if let Some(l) = payload.downcast_ref::<crate::LinkedExited>() {
        l.to_string()
    } else {
        "Box<dyn Any> (a non-string panic payload)".to_string()
    }
}

/// Whether a payload is one green-core raises into a greenlet (a kill, a
/// timeout, a forced unwind), rather than a panic of the user's code.
pub(crate) fn is_green_core_payload(payload: &(dyn Any + Send)) -> bool {
    payload.is::<GreenletExit>()
        || payload.is::<crate::greenlet::KillPayload>()
        || payload.is::<crate::Timeout>()
        || payload.is::<crate::LinkedExited>()
        || payload.is::<green_ctx::ForcedUnwind>()
}
