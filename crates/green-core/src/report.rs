//! How a greenlet's failure is reported: once, naming the greenlet, where it
//! was spawned and where it panicked, through a reporter the application
//! chooses (gevent's `Hub.handle_error` and `Hub.exception_stream`).
//!
//! A panic inside a greenlet (or inside a rawlink callback the hub runs) is
//! not printed by the standard panic hook: green-core's chained hook keeps
//! quiet about it and notes where it happened, and if the panic ends the
//! greenlet (or the callback), the reporter is called once with a
//! [`Failure`]. A panic the greenlet's own code catches is not a failure and
//! is not reported. Panics of the thread's main greenlet are the thread's
//! own: the standard hook prints them as usual.

use std::fmt;
use std::panic::Location;
use std::sync::{Arc, RwLock};

/// One failure of a greenlet, or of user code the hub ran on a greenlet's
/// behalf (a rawlink callback, the drop of a value): what the failure
/// reporter receives.
///
/// Its `Display` is the line the default reporter prints (followed by the
/// backtrace, when one was captured):
/// `green: greenlet 'worker' (spawned at src/main.rs:9:13) panicked at src/main.rs:11:9: boom`.
#[derive(Clone, Debug)]
pub struct Failure {
    what: String,
    spawned_at: Option<&'static Location<'static>>,
    panicked_at: Option<String>,
    message: String,
    backtrace: Option<String>,
}

/// Where a panic happened, as green-core's panic hook saw it: its location,
/// and its backtrace when `RUST_BACKTRACE` asks for one (the standard hook
/// would have printed both).
#[derive(Debug)]
pub(crate) struct PanicSite {
    /// The greenlet it happened in (its id; 0 for the hub fiber).
    pub(crate) greenlet: u64,
    pub(crate) at: String,
    /// Its message, for when it must be printed before its report.
    pub(crate) message: String,
    pub(crate) backtrace: Option<String>,
}

impl Failure {
    pub(crate) fn new(
        what: String,
        spawned_at: Option<&'static Location<'static>>,
        site: Option<PanicSite>,
        message: String,
    ) -> Failure {
        let (panicked_at, backtrace) = match site {
            Some(site) => (Some(site.at), site.backtrace),
            None => (None, None),
        };
        Failure {
            what,
            spawned_at,
            panicked_at,
            message,
            backtrace,
        }
    }

    /// What failed: `greenlet 'worker'`, `a rawlink of greenlet 'worker'`,
    /// `dropping the value of greenlet 'worker'`, ...
    ///
    /// # Examples
    /// ```
    /// use std::sync::{Arc, Mutex};
    ///
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let s = seen.clone();
    /// green_core::set_failure_reporter(move |f| {
    ///     let at = f.panicked_at().map(str::to_owned);
    ///     s.lock().unwrap().push((f.what().to_owned(), f.message().to_owned(), f.spawned_at(), at));
    ///     let _ = f.backtrace(); // Some when RUST_BACKTRACE is set
    /// });
    /// let g = green_core::Builder::new().name("w").spawn(|| -> u8 { panic!("boom") }).unwrap();
    /// let _ = g.get();
    /// green_core::reset_failure_reporter();
    /// let seen = seen.lock().unwrap();
    /// assert_eq!(seen[0].0, "greenlet 'w'");
    /// assert_eq!(seen[0].1, "boom");
    /// assert!(seen[0].2.is_some() && seen[0].3.is_some());
    /// ```
    pub fn what(&self) -> &str {
        &self.what
    }

    /// Where the greenlet concerned was spawned.
    ///
    /// # Examples
    /// ```
    /// use std::sync::{Arc, Mutex};
    ///
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let s = seen.clone();
    /// green_core::set_failure_reporter(move |f| {
    ///     let at = f.panicked_at().map(str::to_owned);
    ///     s.lock().unwrap().push((f.what().to_owned(), f.message().to_owned(), f.spawned_at(), at));
    ///     let _ = f.backtrace(); // Some when RUST_BACKTRACE is set
    /// });
    /// let g = green_core::Builder::new().name("w").spawn(|| -> u8 { panic!("boom") }).unwrap();
    /// let _ = g.get();
    /// green_core::reset_failure_reporter();
    /// let seen = seen.lock().unwrap();
    /// assert_eq!(seen[0].0, "greenlet 'w'");
    /// assert_eq!(seen[0].1, "boom");
    /// assert!(seen[0].2.is_some() && seen[0].3.is_some());
    /// ```
    pub fn spawned_at(&self) -> Option<&'static Location<'static>> {
        self.spawned_at
    }

    /// Where the panic happened (`file:line:column`), when a panic hook saw
    /// it (a payload raised with `std::panic::resume_unwind` runs no hook).
    ///
    /// # Examples
    /// ```
    /// use std::sync::{Arc, Mutex};
    ///
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let s = seen.clone();
    /// green_core::set_failure_reporter(move |f| {
    ///     let at = f.panicked_at().map(str::to_owned);
    ///     s.lock().unwrap().push((f.what().to_owned(), f.message().to_owned(), f.spawned_at(), at));
    ///     let _ = f.backtrace(); // Some when RUST_BACKTRACE is set
    /// });
    /// let g = green_core::Builder::new().name("w").spawn(|| -> u8 { panic!("boom") }).unwrap();
    /// let _ = g.get();
    /// green_core::reset_failure_reporter();
    /// let seen = seen.lock().unwrap();
    /// assert_eq!(seen[0].0, "greenlet 'w'");
    /// assert_eq!(seen[0].1, "boom");
    /// assert!(seen[0].2.is_some() && seen[0].3.is_some());
    /// ```
    pub fn panicked_at(&self) -> Option<&str> {
        self.panicked_at.as_deref()
    }

    /// The panic message, or a description of the failure.
    ///
    /// # Examples
    /// ```
    /// use std::sync::{Arc, Mutex};
    ///
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let s = seen.clone();
    /// green_core::set_failure_reporter(move |f| {
    ///     let at = f.panicked_at().map(str::to_owned);
    ///     s.lock().unwrap().push((f.what().to_owned(), f.message().to_owned(), f.spawned_at(), at));
    ///     let _ = f.backtrace(); // Some when RUST_BACKTRACE is set
    /// });
    /// let g = green_core::Builder::new().name("w").spawn(|| -> u8 { panic!("boom") }).unwrap();
    /// let _ = g.get();
    /// green_core::reset_failure_reporter();
    /// let seen = seen.lock().unwrap();
    /// assert_eq!(seen[0].0, "greenlet 'w'");
    /// assert_eq!(seen[0].1, "boom");
    /// assert!(seen[0].2.is_some() && seen[0].3.is_some());
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The panic's backtrace, captured where it happened when
    /// `RUST_BACKTRACE` is set (as `std::backtrace::Backtrace::capture`
    /// decides), already formatted.
    ///
    /// # Examples
    /// ```
    /// use std::sync::{Arc, Mutex};
    ///
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let s = seen.clone();
    /// green_core::set_failure_reporter(move |f| {
    ///     let at = f.panicked_at().map(str::to_owned);
    ///     s.lock().unwrap().push((f.what().to_owned(), f.message().to_owned(), f.spawned_at(), at));
    ///     let _ = f.backtrace(); // Some when RUST_BACKTRACE is set
    /// });
    /// let g = green_core::Builder::new().name("w").spawn(|| -> u8 { panic!("boom") }).unwrap();
    /// let _ = g.get();
    /// green_core::reset_failure_reporter();
    /// let seen = seen.lock().unwrap();
    /// assert_eq!(seen[0].0, "greenlet 'w'");
    /// assert_eq!(seen[0].1, "boom");
    /// assert!(seen[0].2.is_some() && seen[0].3.is_some());
    /// ```
    pub fn backtrace(&self) -> Option<&str> {
        self.backtrace.as_deref()
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "green: {}", self.what)?;
        if let Some(site) = self.spawned_at {
            write!(f, " (spawned at {site})")?;
        }
        match &self.panicked_at {
            Some(at) => write!(f, " panicked at {at}: {}", self.message)?,
            None => write!(f, " failed: {}", self.message)?,
        }
        if let Some(backtrace) = &self.backtrace {
            write!(f, "\nstack backtrace:\n{backtrace}")?;
        }
        Ok(())
    }
}

type Reporter = Arc<dyn Fn(&Failure) + Send + Sync>;

/// The reporter in use; `None` for [`default_failure_reporter`].
static REPORTER: RwLock<Option<Reporter>> = RwLock::new(None);

/// Replaces, for every thread of the process, what is done with each
/// greenlet failure (gevent's `Hub.handle_error`): log it your way, count
/// it, or forward it to a crash reporter. The reporter runs on the failing
/// greenlet's thread, inside the hub or the greenlet; it must not block.
/// [`default_failure_reporter`] is what runs until this is called.
///
/// # Examples
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// let failures = Arc::new(AtomicUsize::new(0));
/// let count = Arc::clone(&failures);
/// green_core::set_failure_reporter(move |failure| {
///     count.fetch_add(1, Ordering::Relaxed);
///     eprintln!("[my app] {failure}");
/// });
/// green_core::run(|| {
///     let g = green_core::spawn(|| panic!("boom"));
///     assert!(g.get().is_err());
/// });
/// assert_eq!(failures.load(Ordering::Relaxed), 1);
/// green_core::reset_failure_reporter();
/// ```
pub fn set_failure_reporter(reporter: impl Fn(&Failure) + Send + Sync + 'static) {
    *REPORTER.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(reporter));
}

/// Reports nothing from now on (gevent's `hub.exception_stream = None`): the
/// failures stay visible through [`Greenlet::get`](crate::Greenlet::get) and
/// links only.
///
/// # Examples
/// ```
/// green_core::silence_failures();
/// let g = green_core::spawn(|| -> u8 { panic!("not printed") });
/// assert!(g.get().is_err()); // still visible here
/// green_core::reset_failure_reporter();
/// ```
pub fn silence_failures() {
    set_failure_reporter(|_| {});
}

/// Goes back to [`default_failure_reporter`].
///
/// # Examples
/// ```
/// green_core::set_failure_reporter(|_| {});
/// green_core::reset_failure_reporter(); // one line on stderr again
/// ```
pub fn reset_failure_reporter() {
    *REPORTER.write().unwrap_or_else(|e| e.into_inner()) = None;
}

/// What green-core does with a failure unless told otherwise: one `error`
/// event through `tracing` when a subscriber is set (globally or for this
/// thread), else one line on stderr (the failure's `Display`). A custom reporter may call it to
/// keep the default output.
///
/// # Examples
/// ```
/// green_core::set_failure_reporter(|failure| {
///     if !failure.message().contains("expected") {
///         green_core::default_failure_reporter(failure);
///     }
/// });
/// let g = green_core::spawn(|| -> u8 { panic!("expected in tests") });
/// assert!(g.get().is_err()); // filtered out, not printed
/// green_core::reset_failure_reporter();
/// ```
pub fn default_failure_reporter(failure: &Failure) {
    let traced = tracing::dispatcher::get_default(|dispatch| {
        !dispatch.is::<tracing::subscriber::NoSubscriber>()
    });
    if traced {
        tracing::error!(
            greenlet = failure.what(),
            spawned_at = failure.spawned_at().map(tracing::field::display),
            panicked_at = failure.panicked_at(),
            "greenlet failed: {}",
            failure.message()
        );
    } else {
        eprintln!("{failure}");
    }
}

/// Hands `failure` to the reporter in use. A reporter that panics is not
/// allowed to take the hub down: its panic is caught and noted on stderr.
pub(crate) fn report(failure: &Failure) {
    let reporter = REPORTER
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(Arc::clone);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match reporter {
        Some(reporter) => reporter(failure),
        None => default_failure_reporter(failure),
    }));
    if let Err(payload) = outcome {
        if let Some(hub) = crate::hub::existing_hub() {
            hub.caught_in_current(&*payload);
        }
        eprintln!("green-core: the failure reporter panicked while reporting: {failure}");
    }
}
