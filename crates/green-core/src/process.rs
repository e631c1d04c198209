//! Child processes that block greenlets, not the thread: a green
//! [`Command`] and [`Child`] shaped like `std::process`'s (gevent's
//! `gevent.subprocess`).
//!
//! A [`Command`] is built and spawned as with std (std's `spawn` does the
//! fork and exec, with close-on-exec set on everything of ours). What
//! follows is green:
//!
//! * the pipes ([`ChildStdin`], [`ChildStdout`], [`ChildStderr`]) read and
//!   write through the event loop, parking only the calling greenlet;
//! * [`Child::wait`] and [`Child::wait_timeout`] poll a *pidfd* (a
//!   descriptor for the process that becomes readable when it exits,
//!   `pidfd_open(2)`, Linux 5.3+) through the loop, then reap the child with
//!   std's `try_wait`. No `SIGCHLD` handler is installed, so other code's
//!   handling of children and signals is left alone;
//! * [`Command::output`] and [`Child::wait_with_output`] read stdout and
//!   stderr at once (stderr on the caller, stdout on a helper greenlet), so a
//!   child that fills one pipe while the caller drains the other cannot
//!   deadlock;
//! * a [`Child`] is [`Waitable`]: [`wait`](crate::wait) and
//!   [`iwait`](crate::iwait) take it beside greenlets and events, ready once
//!   the child has exited (it is reaped then).
//!
//! Where `pidfd_open` is refused (a kernel before 5.3, or a seccomp profile
//! that returns `ENOSYS`/`EPERM`), waiting falls back to checking the child
//! with `try_wait` between green sleeps that grow from 1 ms to 50 ms: the
//! hub never blocks, but an exit is noticed up to 50 ms late.
//!
//! # Differences from std
//!
//! * [`Child::wait_timeout`] is added (std has no timed wait).
//! * [`Child`] is `!Send`: its waits share state with a watcher greenlet
//!   on the hub of the thread that made it. [`Command`] and the pipe ends
//!   are `Send` (they hold no greenlet state): a pipe end moved to another
//!   thread parks greenlets on that thread's hub.
//! * As with std, dropping a [`Child`] neither kills nor reaps the process
//!   (it stays a zombie until the program exits, or until someone reaps it).
//!   `Command::spawn` itself runs std's fork and exec on the hub's thread;
//!   that is short, but not green.
//!
//! # Examples
//!
//! A child's output read greenly while another greenlet keeps running:
//!
//! ```
//! use std::cell::Cell;
//! use std::io::Read;
//! use std::rc::Rc;
//! use std::time::Duration;
//!
//! use green_core::process::{Command, Stdio};
//!
//! let ticks = Rc::new(Cell::new(0u32));
//! let ticker = {
//!     let ticks = Rc::clone(&ticks);
//!     green_core::spawn(move || loop {
//!         ticks.set(ticks.get() + 1);
//!         green_core::sleep(Duration::from_millis(1));
//!     })
//! };
//! let mut child = Command::new("/bin/sh")
//!     .args(["-c", "sleep 0.05; echo done"])
//!     .stdout(Stdio::piped())
//!     .spawn()?;
//! let mut out = String::new();
//! // Parks this greenlet only: the ticker runs while the child sleeps.
//! child.stdout.take().unwrap().read_to_string(&mut out)?;
//! assert_eq!(out, "done\n");
//! assert!(child.wait()?.success());
//! assert!(ticks.get() > 0);
//! ticker.kill();
//! # Ok::<(), std::io::Error>(())
//! ```

use std::cell::{Cell, RefCell};
use std::ffi::OsStr;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

pub use std::process::{ExitStatus, Output, Stdio};

use crate::io::{run as run_op, Direction};
use crate::sync::Event;
use crate::{Builder, Greenlet, LinkId, Waitable};

/// The shortest and longest sleep between two `try_wait`s when there is no
/// pidfd to poll.
const FALLBACK_FIRST_SLEEP: Duration = Duration::from_millis(1);
const FALLBACK_LONGEST_SLEEP: Duration = Duration::from_millis(50);

/// A process builder, as `std::process::Command`, whose [`spawn`] returns
/// a green [`Child`] and whose [`status`] and [`output`] wait greenly.
///
/// [`spawn`]: Command::spawn
/// [`status`]: Command::status
/// [`output`]: Command::output
///
/// # Examples
/// ```
/// use green_core::process::Command;
///
/// let out = Command::new("echo").arg("hello").output()?;
/// assert!(out.status.success());
/// assert_eq!(out.stdout, b"hello\n");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Command {
    inner: std::process::Command,
    /// Whether stdin, stdout, stderr were configured by the caller:
    /// [`Command::output`] captures (or nulls) only the others, as std's.
    configured: [bool; 3],
}

impl Command {
    /// A command to run `program` (a path, or a name looked up in `PATH`),
    /// with std's defaults: no arguments, the parent's environment and
    /// working directory, stdio inherited for `spawn` and `status`.
    pub fn new<S: AsRef<OsStr>>(program: S) -> Command {
        Command {
            inner: std::process::Command::new(program),
            configured: [false; 3],
        }
    }

    /// Adds one argument.
    pub fn arg<S: AsRef<OsStr>>(&mut self, arg: S) -> &mut Command {
        self.inner.arg(arg);
        self
    }

    /// Adds several arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.inner.args(args);
        self
    }

    /// Sets an environment variable for the child.
    pub fn env<K: AsRef<OsStr>, V: AsRef<OsStr>>(&mut self, key: K, val: V) -> &mut Command {
        self.inner.env(key, val);
        self
    }

    /// Sets several environment variables for the child.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.inner.envs(vars);
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove<K: AsRef<OsStr>>(&mut self, key: K) -> &mut Command {
        self.inner.env_remove(key);
        self
    }

    /// Starts the child with an empty environment (plus what
    /// [`env`](Command::env) adds afterwards).
    pub fn env_clear(&mut self) -> &mut Command {
        self.inner.env_clear();
        self
    }

    /// Sets the child's working directory.
    pub fn current_dir<P: AsRef<Path>>(&mut self, dir: P) -> &mut Command {
        self.inner.current_dir(dir);
        self
    }

    /// The child's stdin: [`Stdio::piped`] gives [`Child::stdin`].
    pub fn stdin<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.inner.stdin(cfg);
        self.configured[0] = true;
        self
    }

    /// The child's stdout: [`Stdio::piped`] gives [`Child::stdout`].
    pub fn stdout<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.inner.stdout(cfg);
        self.configured[1] = true;
        self
    }

    /// The child's stderr: [`Stdio::piped`] gives [`Child::stderr`].
    pub fn stderr<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.inner.stderr(cfg);
        self.configured[2] = true;
        self
    }

    /// The program this command runs.
    pub fn get_program(&self) -> &OsStr {
        self.inner.get_program()
    }

    /// Starts the child. Its pipes (for the streams set to
    /// [`Stdio::piped`]) are green.
    ///
    /// This runs std's fork and exec on the calling thread, which waits
    /// until the exec succeeded or failed: brief, but not green.
    ///
    /// # Errors
    /// Std's spawn error, with its kind kept and a message naming the
    /// program and the likely cause: [`io::ErrorKind::NotFound`] for a
    /// program that does not exist (or a working directory that does not),
    /// `PermissionDenied` for one that is not executable.
    ///
    /// # Kill safety
    /// Not a green blocking point: a kill or `Timeout` cannot interrupt it,
    /// and is raised at the caller's next blocking call.
    ///
    /// # Examples
    /// ```
    /// let err = green_core::process::Command::new("/no/such/program").spawn().unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    /// assert!(err.to_string().contains("/no/such/program"));
    /// ```
    pub fn spawn(&mut self) -> io::Result<Child> {
        match self.inner.spawn() {
            Ok(child) => Ok(Child::from(child)),
            Err(e) => Err(spawn_error(&self.inner, e)),
        }
    }

    /// Runs the child to its end and returns its exit status; its stdio is
    /// inherited unless set otherwise (a piped stdin is closed at once).
    ///
    /// # Errors
    /// As [`Command::spawn`] and [`Child::wait`].
    ///
    /// # Panics
    /// As [`Child::wait`].
    ///
    /// # Kill safety
    /// As [`Child::wait`]: a kill or `Timeout` unwinds out of the wait and
    /// the child, still running, is dropped (neither killed nor reaped, as
    /// std's `Child` drop).
    #[track_caller]
    pub fn status(&mut self) -> io::Result<ExitStatus> {
        let mut child = self.spawn()?;
        child.wait()
    }

    /// Runs the child to its end, collecting its stdout and stderr (both
    /// piped unless set otherwise; stdin is null unless set otherwise).
    /// Both pipes are read at once, so a child that writes much to each
    /// cannot deadlock.
    ///
    /// # Errors
    /// As [`Command::spawn`] and [`Child::wait_with_output`].
    ///
    /// # Panics
    /// As [`Child::wait`].
    ///
    /// # Kill safety
    /// As [`Child::wait_with_output`].
    ///
    /// # Examples
    /// ```
    /// use green_core::process::Command;
    ///
    /// let out = Command::new("/bin/sh").args(["-c", "echo out; echo err >&2; exit 3"]).output()?;
    /// assert_eq!(out.status.code(), Some(3));
    /// assert_eq!((&out.stdout[..], &out.stderr[..]), (&b"out\n"[..], &b"err\n"[..]));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn output(&mut self) -> io::Result<Output> {
        let [stdin, stdout, stderr] = self.configured;
        if !stdin {
            self.inner.stdin(Stdio::null());
        }
        if !stdout {
            self.inner.stdout(Stdio::piped());
        }
        if !stderr {
            self.inner.stderr(Stdio::piped());
        }
        let spawned = self.spawn();
        // Back to std's defaults for a later `spawn` or `status`, which
        // inherit what the caller did not set.
        if !stdin {
            self.inner.stdin(Stdio::inherit());
        }
        if !stdout {
            self.inner.stdout(Stdio::inherit());
        }
        if !stderr {
            self.inner.stderr(Stdio::inherit());
        }
        spawned?.wait_with_output()
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

/// std's spawn error, its kind kept, with the program and the likely cause.
fn spawn_error(cmd: &std::process::Command, e: io::Error) -> io::Error {
    let program = cmd.get_program();
    let hint = match e.kind() {
        io::ErrorKind::NotFound => match cmd.get_current_dir().filter(|dir| !dir.is_dir()) {
            Some(dir) => format!("the working directory {dir:?} does not exist"),
            None => "no such program: check its path, or PATH for a bare name".to_owned(),
        },
        io::ErrorKind::PermissionDenied => {
            "permission denied: is the program (and its directory) executable?".to_owned()
        }
        _ => String::new(),
    };
    let message = if hint.is_empty() {
        format!("cannot spawn {program:?}: {e}")
    } else {
        format!("cannot spawn {program:?}: {e} ({hint})")
    };
    io::Error::new(e.kind(), message)
}

/// A running (or exited) child process, as `std::process::Child`, whose
/// waits and pipes park the calling greenlet only.
///
/// It is [`Waitable`]: ready once the child has exited, so
/// [`wait`](crate::wait) and [`iwait`](crate::iwait) take it beside
/// greenlets and events. The first time it is linked that way while the
/// child runs, a small watcher greenlet starts that waits for the exit; it
/// ends with the child, or when the `Child` is dropped.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use green_core::process::Command;
///
/// let child = Command::new("sleep").arg("0.01").spawn()?;
/// let ready = green_core::wait(&[&child], Some(Duration::from_secs(10)), None);
/// assert_eq!(ready, [0]);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Child {
    /// The child's stdin, when it was set to [`Stdio::piped`].
    pub stdin: Option<ChildStdin>,
    /// The child's stdout, when it was set to [`Stdio::piped`].
    pub stdout: Option<ChildStdout>,
    /// The child's stderr, when it was set to [`Stdio::piped`].
    pub stderr: Option<ChildStderr>,
    exit: Rc<Exit>,
    /// The greenlet that waits for the exit on behalf of [`Waitable`]
    /// links, started by the first link made while the child runs.
    watcher: RefCell<Option<Greenlet<()>>>,
}

/// What the waits share: the std child (its pipes taken out), its pidfd,
/// and the event set once it has been reaped.
struct Exit {
    child: RefCell<std::process::Child>,
    pid: u32,
    /// `None` where `pidfd_open` is refused: waits sleep-poll instead.
    pidfd: Option<OwnedFd>,
    status: Cell<Option<ExitStatus>>,
    /// Set once the child has been reaped (or reaping failed for good):
    /// the readiness that `Waitable` links wait for.
    exited: Event,
}

impl Exit {
    /// Reaps the child if it has exited (std's `try_wait`, which keeps the
    /// status); never blocks. Setting `exited` here is what wakes links.
    fn try_reap(&self) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status.get() {
            return Ok(Some(status));
        }
        // The borrow ends within this statement: nothing blocks under it.
        let result = self.child.borrow_mut().try_wait();
        match result {
            Ok(Some(status)) => {
                self.status.set(Some(status));
                self.mark_exited();
                Ok(Some(status))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                // Nothing more will come of waiting (e.g. `ECHILD`: someone
                // else reaped it, or SIGCHLD is ignored): links are released.
                self.mark_exited();
                Err(io::Error::new(
                    e.kind(),
                    format!("cannot reap child process {}: {e}", self.pid),
                ))
            }
        }
    }

    fn mark_exited(&self) {
        if !self.exited.is_set() {
            self.exited.set();
        }
    }

    /// Waits for the exit, until `deadline` if given: polls the pidfd
    /// through the loop (or sleep-polls without one), then reaps.
    #[track_caller]
    fn wait_until(&self, deadline: Option<Instant>) -> io::Result<Option<ExitStatus>> {
        let mut nap = FALLBACK_FIRST_SLEEP;
        loop {
            if let Some(status) = self.try_reap()? {
                return Ok(Some(status));
            }
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if remaining == Some(Duration::ZERO) {
                return Ok(None);
            }
            match &self.pidfd {
                Some(pidfd) => {
                    let fd = pidfd.as_fd();
                    let events = libc::POLLIN as u32;
                    match run_op(fd, Direction::Read, remaining, |lp, w| {
                        lp.poll_borrowed(fd, events, w)
                    }) {
                        Ok(_) => {
                            if self.try_reap()?.is_none() {
                                // Readable but not yet reapable: not expected
                                // (the pidfd turns readable when the child is
                                // a zombie), but a short nap keeps a surprise
                                // from becoming a busy loop.
                                crate::sleep(FALLBACK_FIRST_SLEEP);
                            }
                        }
                        // io::run's timeout: the deadline passed; the next
                        // turn reaps one last time and reports it.
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => {
                            return Err(io::Error::new(
                                e.kind(),
                                format!("waiting for child process {} to exit: {e}", self.pid),
                            ))
                        }
                    }
                }
                None => {
                    let step = remaining.map_or(nap, |r| r.min(nap));
                    crate::sleep(step);
                    nap = (nap * 2).min(FALLBACK_LONGEST_SLEEP);
                }
            }
        }
    }
}

impl Child {
    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.exit.pid
    }

    /// Kills the child with `SIGKILL` (std's `kill`; it does not wait).
    ///
    /// # Errors
    /// std's: the signal could not be sent. A child already reaped is
    /// never signalled (its pid may belong to another process by now).
    pub fn kill(&mut self) -> io::Result<()> {
        self.exit.child.borrow_mut().kill()
    }

    /// The exit status if the child has exited (reaping it), `None` if it
    /// still runs; never blocks.
    ///
    /// # Errors
    /// `waitpid`'s error, e.g. `ECHILD` when something else reaped it.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.exit.try_reap()
    }

    /// Waits for the child to exit, parking this greenlet, and returns its
    /// status. A piped stdin is closed first (as std does), so a child
    /// reading it sees its end.
    ///
    /// # Errors
    /// `waitpid`'s error, or the loop's when the pidfd cannot be polled.
    ///
    /// # Panics
    /// Inside the hub (a rawlink or a loop handler), where nothing may
    /// block.
    ///
    /// # Kill safety
    /// Interruptible. A kill or `Timeout` cancels the poll on the pidfd,
    /// waits for the cancel to complete (the I/O layer's rule), then
    /// unwinds: nothing is lost and the child is untouched, still running
    /// or still waiting to be reaped; a later `wait` or `try_wait` reaps it.
    /// If the child's exit won the race, it was reaped and its status is
    /// kept for the next call; the kill is raised at the next blocking
    /// point.
    ///
    /// # Examples
    /// ```
    /// use green_core::process::Command;
    ///
    /// let mut child = Command::new("/bin/sh").args(["-c", "exit 4"]).spawn()?;
    /// assert_eq!(child.wait()?.code(), Some(4));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        match self.exit.wait_until(None)? {
            Some(status) => Ok(status),
            None => unreachable!("a wait without a deadline returned without a status"),
        }
    }

    /// [`Child::wait`] for at most `timeout`: `None` if the child still runs
    /// then. Unlike `wait`, it leaves a piped stdin open.
    ///
    /// # Errors
    /// As [`Child::wait`].
    ///
    /// # Panics
    /// As [`Child::wait`].
    ///
    /// # Kill safety
    /// As [`Child::wait`].
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use green_core::process::Command;
    ///
    /// let mut child = Command::new("sleep").arg("10").spawn()?;
    /// assert!(child.wait_timeout(Duration::from_millis(5))?.is_none());
    /// child.kill()?;
    /// assert!(child.wait_timeout(Duration::from_secs(10))?.is_some());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        // A timeout too long for an `Instant` is no timeout.
        self.exit.wait_until(Instant::now().checked_add(timeout))
    }

    /// Closes a piped stdin, reads stdout and stderr to their ends (at
    /// once: stderr on this greenlet, stdout on a helper greenlet), then
    /// waits for the child. Streams that were not piped come back empty.
    ///
    /// # Errors
    /// A read error, or [`Child::wait`]'s.
    ///
    /// # Panics
    /// As [`Child::wait`].
    ///
    /// # Kill safety
    /// Interruptible: a kill or `Timeout` unwinds out of it (each read in
    /// flight is cancelled first), the helper greenlet is killed, the pipes
    /// are closed and the child is dropped, neither killed nor reaped (as
    /// std's `Child` drop); what was read is lost.
    #[track_caller]
    pub fn wait_with_output(mut self) -> io::Result<Output> {
        drop(self.stdin.take());
        let (stdout, stderr) = read_both(self.stdout.take(), self.stderr.take())?;
        let status = self.wait()?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    /// Starts the watcher greenlet, unless it runs or the child is known to
    /// have exited.
    fn watch(&self) {
        if self.exit.exited.is_set() {
            return;
        }
        let mut watcher = self.watcher.borrow_mut();
        if watcher.as_ref().is_some_and(|g| !g.dead()) {
            return;
        }
        let exit = Rc::clone(&self.exit);
        let g = Builder::new()
            .name(format!("exit watcher of child process {}", self.exit.pid))
            .spawn(move || {
                // An error has already marked the exit (nothing more will
                // come of waiting); the links see a ready child, and its
                // own `wait` reports the error.
                let _ = exit.wait_until(None);
            })
            .unwrap_or_else(|e| {
                panic!("green-core: cannot start the exit watcher of a child process: {e}")
            });
        *watcher = Some(g);
    }
}

impl From<std::process::Child> for Child {
    /// Makes a std child green (for one spawned with std's `CommandExt`
    /// options, say): its pipes are taken over, and its exit is watched
    /// through a pidfd. It must not have been reaped yet.
    fn from(mut child: std::process::Child) -> Child {
        let pid = child.id();
        let stdin = child.stdin.take().map(|p| ChildStdin {
            fd: OwnedFd::from(p),
        });
        let stdout = child.stdout.take().map(|p| ChildStdout {
            fd: OwnedFd::from(p),
        });
        let stderr = child.stderr.take().map(|p| ChildStderr {
            fd: OwnedFd::from(p),
        });
        // The child is not reaped yet, so its pid cannot have been reused:
        // the pidfd refers to it. Any failure (ENOSYS on old kernels, EPERM
        // under seccomp, EMFILE) falls back to sleep-polling, which is
        // slower to notice an exit but never wrong.
        let pidfd = green_loop::pidfd::open(pid).ok();
        Child::with_pidfd(child, pidfd, stdin, stdout, stderr)
    }
}

impl Child {
    fn with_pidfd(
        child: std::process::Child,
        pidfd: Option<OwnedFd>,
        stdin: Option<ChildStdin>,
        stdout: Option<ChildStdout>,
        stderr: Option<ChildStderr>,
    ) -> Child {
        let pid = child.id();
        Child {
            stdin,
            stdout,
            stderr,
            exit: Rc::new(Exit {
                child: RefCell::new(child),
                pid,
                pidfd,
                status: Cell::new(None),
                exited: Event::new(),
            }),
            watcher: RefCell::new(None),
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // The watcher only serves links on this handle; it would otherwise
        // poll until the child exits. Its poll is cancelled as it unwinds
        // (IO1), and it holds the pidfd until then.
        if let Some(g) = self.watcher.get_mut().take() {
            if !g.dead() {
                g.kill_nowait();
            }
        }
    }
}

impl Waitable for Child {
    /// Whether the child has exited (it is reaped if it has).
    fn is_ready(&self) -> bool {
        // An error also counts: nothing more will come of waiting.
        !matches!(self.exit.try_reap(), Ok(None))
    }

    fn link_ready(&self, callback: Box<dyn FnOnce()>) -> LinkId {
        if !self.is_ready() {
            self.watch();
        }
        self.exit.exited.link_ready(callback)
    }

    fn unlink_ready(&self, id: LinkId) {
        self.exit.exited.unlink_ready(id);
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("pid", &self.exit.pid)
            .field("status", &self.exit.status.get())
            .field("pidfd", &self.exit.pidfd.is_some())
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .finish()
    }
}

/// Reads both pipes to their ends at once, stdout on a helper greenlet.
#[track_caller]
fn read_both(
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
) -> io::Result<(Vec<u8>, Vec<u8>)> {
    fn drain(mut r: impl Read) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        r.read_to_end(&mut buf)?;
        Ok(buf)
    }
    match (stdout, stderr) {
        (None, None) => Ok((Vec::new(), Vec::new())),
        (Some(out), None) => Ok((drain(out)?, Vec::new())),
        (None, Some(err)) => Ok((Vec::new(), drain(err)?)),
        (Some(out), Some(err)) => {
            let reader = Builder::new()
                .name("stdout reader of a child process")
                .spawn(move || drain(out))?;
            // Kills the reader if this greenlet leaves early (an error, a
            // kill): its read is cancelled and the pipe closed as it unwinds.
            struct KillOnDrop(Greenlet<io::Result<Vec<u8>>>);
            impl Drop for KillOnDrop {
                fn drop(&mut self) {
                    if !self.0.dead() {
                        self.0.kill_nowait();
                    }
                }
            }
            let reader = KillOnDrop(reader);
            let err = drain(err)?;
            let out = reader.0.take().map_err(|e| {
                io::Error::other(format!(
                    "the greenlet reading the child's stdout ended without a result: {e}"
                ))
            })??;
            Ok((out, err))
        }
    }
}

/// `read(2)` on a pipe through the loop (parks the running greenlet).
#[track_caller]
fn pipe_read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    run_op(fd, Direction::Read, None, |lp, w| {
        lp.read_borrowed(fd, buf, None, w)
    })
}

/// `write(2)` on a pipe through the loop (parks the running greenlet).
#[track_caller]
fn pipe_write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    run_op(fd, Direction::Write, None, |lp, w| {
        lp.write_borrowed(fd, buf, None, w)
    })
}

/// The write end of a child's stdin pipe ([`Child::stdin`]). Dropping it
/// closes the pipe: the child reads end of file.
///
/// Writes park the calling greenlet until the pipe has room. On the epoll
/// backend, a pipe end that was read or written greenly is left in
/// `O_NONBLOCK` mode (as the backend's sockets are); clear it before
/// handing its fd (`OwnedFd::from`) to another process. This holds for
/// [`ChildStdout`] and [`ChildStderr`] as well.
///
/// # Kill safety
/// `write` is interruptible: a kill or `Timeout` cancels the write in
/// flight and waits for the cancel; a write that completed first returns
/// its count and the kill is raised at the next blocking point. A
/// `write_all` cut short has written a prefix of its buffer.
pub struct ChildStdin {
    fd: OwnedFd,
}

/// The read end of a child's stdout pipe ([`Child::stdout`]).
///
/// Reads park the calling greenlet until data or end of file arrives.
///
/// # Kill safety
/// `read` is interruptible: a kill or `Timeout` cancels the read in flight
/// and waits for the cancel; bytes read before the cancel won are
/// returned, and the kill is raised at the next blocking point. A
/// `read_to_end` cut short loses nothing already in its buffer.
pub struct ChildStdout {
    fd: OwnedFd,
}

/// The read end of a child's stderr pipe ([`Child::stderr`]).
///
/// Reads park the calling greenlet until data or end of file arrives.
///
/// # Kill safety
/// As [`ChildStdout`].
pub struct ChildStderr {
    fd: OwnedFd,
}

impl Write for ChildStdin {
    #[track_caller]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        pipe_write(self.fd.as_fd(), buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &ChildStdin {
    #[track_caller]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        pipe_write(self.fd.as_fd(), buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for ChildStdout {
    #[track_caller]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        pipe_read(self.fd.as_fd(), buf)
    }
}

impl Read for ChildStderr {
    #[track_caller]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        pipe_read(self.fd.as_fd(), buf)
    }
}

/// The fd traits and `Debug`, alike for the three pipe ends.
macro_rules! pipe_end {
    ($name:ident) => {
        impl AsFd for $name {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.fd.as_fd()
            }
        }

        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> RawFd {
                self.fd.as_raw_fd()
            }
        }

        impl From<$name> for OwnedFd {
            fn from(end: $name) -> OwnedFd {
                end.fd
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("fd", &self.fd.as_raw_fd())
                    .finish()
            }
        }
    };
}

pipe_end!(ChildStdin);
pipe_end!(ChildStdout);
pipe_end!(ChildStderr);

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a pidfd (a kernel before 5.3, or seccomp), waits sleep-poll
    /// `try_wait` and still see the exit, with and without a deadline.
    #[test]
    fn waits_without_a_pidfd_sleep_poll() {
        let spawn = |args: &[&str]| {
            let child = std::process::Command::new("/bin/sh")
                .args(args)
                .spawn()
                .unwrap();
            Child::with_pidfd(child, None, None, None, None)
        };
        let mut child = spawn(&["-c", "sleep 0.05; exit 5"]);
        assert_eq!(child.wait().unwrap().code(), Some(5));

        let mut child = spawn(&["-c", "sleep 10"]);
        assert!(child
            .wait_timeout(Duration::from_millis(5))
            .unwrap()
            .is_none());
        child.kill().unwrap();
        let status = child.wait_timeout(Duration::from_secs(10)).unwrap();
        assert!(status.is_some_and(|s| !s.success()));

        // A Waitable without a pidfd: the watcher sleep-polls too.
        let child = spawn(&["-c", "true"]);
        assert_eq!(
            crate::wait(&[&child], Some(Duration::from_secs(10)), None),
            [0]
        );
    }
}
