//! [`StreamServer`]: a TCP listener whose connections each get a greenlet
//! (gevent's `server.StreamServer`), and [`serve_threads`]: one such server
//! per OS thread, each on its own hub and its own `SO_REUSEPORT` listener.
//!
//! How it is built:
//!
//! * One *acceptor* greenlet per started server takes connections off the
//!   listener (`incoming()`, a multishot accept where the kernel has it)
//!   and spawns the handler for each into the server's [`Group`]: a plain
//!   group, or a pool that caps the handlers running at once. While the
//!   pool is full the acceptor waits for a free slot *before* it accepts,
//!   so the connections wait in the kernel's backlog, not in the server.
//! * After `max_accept` connections in a row the acceptor yields, so a
//!   flood of connections cannot starve the handlers already running
//!   (gevent's `max_accept`).
//! * An accept error that is not about one connection (`EMFILE`,
//!   `ENFILE`, `ENOBUFS`, `ENOMEM`, anything unknown) pauses accepting for
//!   a delay that doubles from 10 ms to 1 s while the error lasts, instead
//!   of retrying in a busy loop; the first success resets it. An error
//!   that means the listener itself is broken (`EBADF`, `EINVAL`,
//!   `ENOTSOCK`, `EOPNOTSUPP`) closes the server; [`serve_forever`]
//!   returns it. A handler that cannot be spawned (no stack can be
//!   mapped) pauses the same way, keeping its connection for the retry.
//! * Stopping is two steps, as in gevent: [`close`] stops accepting and
//!   releases the port at once; [`stop`] then gives the handlers a grace
//!   period to finish, and kills those still running.
//! * [`serve_threads`] starts each thread's hub with its own server and
//!   talks to it only through cross-thread results
//!   ([`RemoteSetter`]): nothing on the calling thread blocks the hub.
//!
//! [`serve_forever`]: StreamServer::serve_forever
//! [`close`]: StreamServer::close
//! [`stop`]: StreamServer::stop

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use green_core::net::{TcpListener, TcpStream, ToSocketAddrs};
use green_core::sync::{AsyncResult, Event, RemoteSetter};
use green_core::Greenlet;

use crate::{Group, Pool};

/// The first pause after an accept error that is not about one connection.
const MIN_ACCEPT_DELAY: Duration = Duration::from_millis(10);
/// The longest pause between two accept attempts while such an error lasts.
const MAX_ACCEPT_DELAY: Duration = Duration::from_secs(1);
/// How long a blocking kill waits for the handlers that outlived their grace
/// to unwind (gevent's `Pool.kill(timeout=1)` in `stop`).
const KILL_WAIT: Duration = Duration::from_secs(1);

/// What a connection handler returns: `()`, or an `io::Result<()>` so that
/// a handler can use `?` on its stream's calls. An `Err` ends that
/// connection only; the server counts it in [`ServerStats::handler_errors`]
/// and reports it through `tracing` (at `debug` for a peer that went away,
/// `warn` otherwise).
pub trait HandlerOutput {
    /// The handler's outcome as an `io::Result`.
    fn into_io_result(self) -> io::Result<()>;
}

impl HandlerOutput for () {
    fn into_io_result(self) -> io::Result<()> {
        Ok(())
    }
}

impl HandlerOutput for io::Result<()> {
    fn into_io_result(self) -> io::Result<()> {
        self
    }
}

/// How a server spawns and paces its handlers; the same options serve a
/// [`StreamServer`] and every thread of [`serve_threads`].
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use green_pool::ServerOptions;
///
/// let options = ServerOptions::new()
///     .pool_size(100) // at most 100 handlers at once
///     .stop_timeout(Duration::from_secs(5));
/// assert_eq!(options.get_pool_size(), Some(100));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerOptions {
    pool_size: Option<usize>,
    max_accept: usize,
    stop_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions::new()
    }
}

impl ServerOptions {
    /// The defaults: handlers in an unbounded [`Group`], at most 100
    /// connections accepted in a row before the acceptor yields, and a
    /// 1-second grace for handlers when [`serve_forever`] ends (gevent's
    /// `max_accept` and `stop_timeout`).
    ///
    /// [`serve_forever`]: StreamServer::serve_forever
    pub fn new() -> ServerOptions {
        ServerOptions {
            pool_size: None,
            max_accept: 100,
            stop_timeout: Duration::from_secs(1),
        }
    }

    /// Caps the handlers running at once at `size` (gevent's
    /// `spawn=Pool(size)`): while that many run, the server accepts no
    /// more, and new connections wait in the kernel's backlog.
    ///
    /// # Panics
    /// If `size` is 0: a server that may run no handler would never accept
    /// a connection. Leave the pool out for no cap.
    #[track_caller]
    pub fn pool_size(mut self, size: usize) -> ServerOptions {
        assert!(
            size > 0,
            "ServerOptions::pool_size(0): a server that may run no handler would never \
             accept a connection; pass at least 1, or leave the pool out for no cap"
        );
        self.pool_size = Some(size);
        self
    }

    /// The cap set by [`pool_size`](ServerOptions::pool_size); `None`
    /// without one.
    pub fn get_pool_size(&self) -> Option<usize> {
        self.pool_size
    }

    /// How many connections the acceptor takes in a row before it lets
    /// the other greenlets run (gevent's `max_accept`, 100 by default).
    ///
    /// # Panics
    /// If `count` is 0 (the acceptor must take at least one).
    #[track_caller]
    pub fn max_accept(mut self, count: usize) -> ServerOptions {
        assert!(
            count > 0,
            "ServerOptions::max_accept(0): the acceptor must take at least one \
             connection per turn; pass at least 1"
        );
        self.max_accept = count;
        self
    }

    /// The grace period [`serve_forever`] gives the handlers once the
    /// server is closed, before it kills them (gevent's `stop_timeout`,
    /// 1 s by default). [`StreamServer::stop`] takes its own.
    ///
    /// [`serve_forever`]: StreamServer::serve_forever
    pub fn stop_timeout(mut self, timeout: Duration) -> ServerOptions {
        self.stop_timeout = timeout;
        self
    }
}

/// What a server has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Connections accepted and given to a handler.
    pub accepted: u64,
    /// Handlers that returned an `Err`.
    pub handler_errors: u64,
    /// Failed accepts (each error, including those retried), and failed
    /// spawns of a handler (no stack could be mapped; retried after a
    /// pause, the connection kept).
    pub accept_errors: u64,
    /// Handlers still running.
    pub active: usize,
}

/// A TCP server that runs a handler greenlet per connection (gevent's
/// `StreamServer`).
///
/// The handler takes the connection and the peer's address, and returns
/// `()` or `io::Result<()>` (see [`HandlerOutput`]). Handlers run in the
/// server's [`Group`]: without a cap by default, or in a pool of
/// [`ServerOptions::pool_size`] (at most that many at once; accepting pauses
/// while the pool is full). A handler's panic is reported like any
/// greenlet's and ends only that connection.
///
/// Lifecycle: [`start`](StreamServer::start) spawns the acceptor and
/// returns; [`serve_forever`](StreamServer::serve_forever) starts (if
/// needed) and waits until the server is closed; [`close`] stops accepting
/// and releases the port; [`stop`] closes, waits for the handlers up to a
/// timeout, then kills the rest. A closed server cannot be started again.
///
/// The handle is cheap to clone (clones name the same server) and `!Send`:
/// a server belongs to its thread's hub. A started server keeps serving
/// when its handles are dropped, as a spawned greenlet keeps running; call
/// [`stop`] or [`close`] to end it. For every core, see [`serve_threads`].
///
/// # Differences from gevent
///
/// * The server binds when it is made ([`StreamServer::bind`]), not at
///   `start`, so its address (port 0 resolved) is known at once.
/// * Handlers always run in a group, so [`stop`] waits for and kills them
///   also without a pool (gevent's default spawn leaves them untracked).
/// * There is no `spawn=None` (handling inline, one connection at a time):
///   use `pool_size(1)`.
/// * A handler may return an `io::Result`; its errors are counted and
///   logged instead of printed as tracebacks.
/// * [`start`](StreamServer::start) on a started server is an error that
///   says so (gevent asserts), and so is starting a closed one.
///
/// [`close`]: StreamServer::close
/// [`stop`]: StreamServer::stop
///
/// # Examples
/// ```
/// use std::io::{Read, Write};
/// use std::time::Duration;
/// use green_core::net::TcpStream;
/// use green_pool::StreamServer;
///
/// let server = StreamServer::bind("127.0.0.1:0", |mut stream: TcpStream, _peer| {
///     let mut buf = [0; 64];
///     let n = stream.read(&mut buf)?;
///     stream.write_all(&buf[..n])?;
///     Ok(())
/// })?;
/// server.start()?;
///
/// let mut client = TcpStream::connect(server.local_addr())?;
/// client.write_all(b"ping")?;
/// let mut reply = [0; 4];
/// client.read_exact(&mut reply)?;
/// assert_eq!(&reply, b"ping");
///
/// server.stop(Duration::from_secs(1));
/// assert_eq!(server.stats().accepted, 1);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct StreamServer {
    inner: Rc<Inner>,
}

type Handler = Rc<dyn Fn(TcpStream, SocketAddr) -> io::Result<()>>;

struct Inner {
    /// The listener, until the server is closed.
    listener: RefCell<Option<Rc<TcpListener>>>,
    local_addr: SocketAddr,
    handler: Handler,
    /// The handlers (a pool when capped).
    group: Group,
    options: ServerOptions,
    /// The accept loop, while the server is started.
    acceptor: RefCell<Option<Greenlet<()>>>,
    started: Cell<bool>,
    /// Set by `close`: no more accepting, the port is released.
    closed: Event,
    /// Set when a `stop` ends (finished, or its caller was killed);
    /// cleared when one begins.
    stopped: Event,
    /// A `stop` is under way (another `stop` waits for it).
    stopping: Cell<bool>,
    /// How many `stop`s have finished: a `stop` that waited for another
    /// tells by it whether that one finished or was interrupted.
    stops_done: Cell<u64>,
    /// The error that closed the server from the accept loop.
    fatal: RefCell<Option<io::Error>>,
    accepted: Cell<u64>,
    handler_errors: Cell<u64>,
    accept_errors: Cell<u64>,
}

impl StreamServer {
    /// A server on `listener` with the default options (no cap on the
    /// handlers). It accepts nothing until started.
    pub fn new<F, R>(listener: TcpListener, handler: F) -> io::Result<StreamServer>
    where
        F: Fn(TcpStream, SocketAddr) -> R + 'static,
        R: HandlerOutput,
    {
        StreamServer::with_options(listener, ServerOptions::new(), handler)
    }

    /// A server on `listener` with `options`.
    ///
    /// # Errors
    /// `getsockname`'s, if the listener's address cannot be read.
    pub fn with_options<F, R>(
        listener: TcpListener,
        options: ServerOptions,
        handler: F,
    ) -> io::Result<StreamServer>
    where
        F: Fn(TcpStream, SocketAddr) -> R + 'static,
        R: HandlerOutput,
    {
        let local_addr = listener.local_addr()?;
        let group = match options.pool_size {
            Some(size) => Pool::new(size).group().clone(),
            None => Group::new(),
        };
        Ok(StreamServer {
            inner: Rc::new(Inner {
                listener: RefCell::new(Some(Rc::new(listener))),
                local_addr,
                handler: Rc::new(move |stream, peer| handler(stream, peer).into_io_result()),
                group,
                options,
                acceptor: RefCell::new(None),
                started: Cell::new(false),
                closed: Event::new(),
                stopped: Event::new(),
                stopping: Cell::new(false),
                stops_done: Cell::new(0),
                fatal: RefCell::new(None),
                accepted: Cell::new(0),
                handler_errors: Cell::new(0),
                accept_errors: Cell::new(0),
            }),
        })
    }

    /// Binds a listener to `addr` and makes a server on it with the
    /// default options. Port 0 picks a free port:
    /// [`local_addr`](StreamServer::local_addr) tells which.
    ///
    /// # Errors
    /// Resolving or binding `addr` (`AddrInUse`, `PermissionDenied`, ...).
    pub fn bind<A, F, R>(addr: A, handler: F) -> io::Result<StreamServer>
    where
        A: ToSocketAddrs,
        F: Fn(TcpStream, SocketAddr) -> R + 'static,
        R: HandlerOutput,
    {
        StreamServer::bind_with(addr, ServerOptions::new(), handler)
    }

    /// [`bind`](StreamServer::bind) with `options`.
    ///
    /// # Errors
    /// As [`bind`](StreamServer::bind).
    pub fn bind_with<A, F, R>(
        addr: A,
        options: ServerOptions,
        handler: F,
    ) -> io::Result<StreamServer>
    where
        A: ToSocketAddrs,
        F: Fn(TcpStream, SocketAddr) -> R + 'static,
        R: HandlerOutput,
    {
        StreamServer::with_options(TcpListener::bind(addr)?, options, handler)
    }

    /// The address the server listens on (still known after `close`).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// The handlers' group: a pool with the cap when there is one. It may
    /// be inspected (`len`, `free_count`) or joined; adding to it takes
    /// slots from the server.
    pub fn group(&self) -> &Group {
        &self.inner.group
    }

    /// The options the server was made with.
    pub fn options(&self) -> &ServerOptions {
        &self.inner.options
    }

    /// Whether the server was started and is not closed (gevent's
    /// `started`).
    pub fn is_started(&self) -> bool {
        self.inner.started.get() && !self.is_closed()
    }

    /// Whether the server was closed (by `close`, `stop`, or an error of
    /// the listener).
    pub fn is_closed(&self) -> bool {
        self.inner.closed.is_set()
    }

    /// Counts of what the server has done.
    pub fn stats(&self) -> ServerStats {
        ServerStats {
            accepted: self.inner.accepted.get(),
            handler_errors: self.inner.handler_errors.get(),
            accept_errors: self.inner.accept_errors.get(),
            active: self.inner.group.len(),
        }
    }

    /// Starts accepting in a greenlet of the server's own, and returns at
    /// once; the connections are handled as the hub runs (while the caller
    /// waits, sleeps or serves).
    ///
    /// # Errors
    /// `InvalidInput` if the server was already started, or was closed (a
    /// closed server released its port; make a new one).
    pub fn start(&self) -> io::Result<()> {
        if self.is_closed() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "StreamServer on {} is closed and its port released; bind a new server",
                    self.inner.local_addr
                ),
            ));
        }
        if self.inner.started.get() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "StreamServer on {} is already started; start it once",
                    self.inner.local_addr
                ),
            ));
        }
        let listener = self
            .inner
            .listener
            .borrow()
            .clone()
            .expect("an open server has its listener");
        let inner = Rc::clone(&self.inner);
        let acceptor = green_core::Builder::new()
            .name("green-pool acceptor")
            .build(move || accept_loop(&inner, &listener))?;
        self.inner.started.set(true);
        acceptor.start();
        *self.inner.acceptor.borrow_mut() = Some(acceptor);
        Ok(())
    }

    /// Starts the server if needed and serves until it is closed (by
    /// [`close`](StreamServer::close) or [`stop`](StreamServer::stop) from
    /// another greenlet, or an error of the listener); then gives the
    /// handlers the options' `stop_timeout` to finish, and kills the rest
    /// (gevent's `serve_forever`).
    ///
    /// # Errors
    /// As [`start`](StreamServer::start) for a closed server; the
    /// listener's error if one closed the server (e.g. `EBADF`).
    ///
    /// # Kill safety
    /// Interruptible. A kill closes the server and starts the graceful stop
    /// in a greenlet of its own (the killed caller does not wait for it),
    /// as gevent's `finally: stop()` does.
    pub fn serve_forever(&self) -> io::Result<()> {
        if self.is_closed() {
            if let Some(error) = self.inner.fatal.borrow_mut().take() {
                return Err(error);
            }
        }
        if !self.inner.started.get() || self.is_closed() {
            // A closed server's `start` says so.
            self.start()?;
        }
        struct StopOnUnwind<'a>(&'a StreamServer);
        impl Drop for StopOnUnwind<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    let server = self.0.clone();
                    let timeout = server.inner.options.stop_timeout;
                    server.close_listener();
                    green_core::spawn(move || server.stop(timeout));
                }
            }
        }
        let guard = StopOnUnwind(self);
        self.inner.closed.wait();
        drop(guard);
        self.stop(self.inner.options.stop_timeout);
        match self.inner.fatal.borrow_mut().take() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Stops accepting and releases the port (the listener is closed; a
    /// new server may bind it at once). Handlers already running go on;
    /// [`stop`](StreamServer::stop) also ends them. Closing twice does
    /// nothing; a `close` made while another is under way (in another
    /// greenlet) also waits until the port is released.
    ///
    /// # Kill safety
    /// Waits a moment for the acceptor greenlet to unwind, uninterruptibly
    /// enough that the port is released when `close` returns: a kill
    /// during that wait is raised once the acceptor is gone.
    pub fn close(&self) {
        self.close_listener();
    }

    /// Closes the server, waits up to `timeout` for the running handlers
    /// to finish, then kills those left and waits (up to a second more)
    /// for them to unwind (gevent's `stop`). A second `stop` while one runs
    /// waits for it (and takes over if the first one's caller is killed);
    /// so does the stop that [`serve_forever`](StreamServer::serve_forever)
    /// makes when the server closes: the grace is this `timeout`, not the
    /// options' `stop_timeout` (in gevent, `serve_forever`'s own stop runs
    /// alongside and the shorter grace wins).
    ///
    /// Called from one of the server's own handlers, it cannot wait for
    /// itself: the stop goes on in a greenlet of its own, the calling
    /// handler included in the grace and the kill, and `stop` returns at
    /// once.
    ///
    /// # Kill safety
    /// Interruptible. The server is closed before the first wait; a kill
    /// during the grace leaves the handlers running (kill the group, or
    /// stop again, to end them), and a `stop` waiting for this one then
    /// does the stop itself.
    pub fn stop(&self, timeout: Duration) {
        let me = green_core::current();
        if self.inner.group.contains(&me) {
            self.close_listener();
            let server = self.clone();
            green_core::spawn(move || server.stop(timeout));
            return;
        }
        // A stop under way: wait for it. If its caller was killed before it
        // finished, the handlers may still run: this one takes over.
        let done_before = self.inner.stops_done.get();
        while self.inner.stopping.get() {
            self.inner.stopped.wait();
            if self.inner.stops_done.get() != done_before {
                return;
            }
        }
        // Marked before the listener is closed: closing wakes
        // `serve_forever`, whose own stop (with the options'
        // `stop_timeout`) must then wait for this one, not race it.
        self.inner.stopping.set(true);
        self.inner.stopped.clear();
        let _reset = ResetStopping(&self.inner);
        self.close_listener();
        if !self.inner.group.join_timeout(timeout) {
            self.inner.group.kill_with(true, Some(KILL_WAIT));
        }
        self.inner.stops_done.set(self.inner.stops_done.get() + 1);
    }

    fn close_listener(&self) {
        self.inner.closed.set();
        // Another `close` may be killing the acceptor already: every
        // caller waits for it to be gone, so that the port is released
        // when any `close` returns.
        let acceptor = self.inner.acceptor.borrow().clone();
        if let Some(acceptor) = acceptor {
            let me = green_core::current();
            if acceptor.as_ref().ptr_eq(&me) {
                // The acceptor closes the server itself (a broken listener):
                // its own `Rc` of the listener goes when it returns.
            } else {
                // Blocking: the acceptor's clone of the listener must be
                // gone for the port to be free when `close` returns.
                acceptor.kill();
            }
        }
        self.inner.acceptor.borrow_mut().take();
        self.inner.listener.borrow_mut().take();
    }
}

/// Clears `stopping` when a `stop` ends, also by a kill.
struct ResetStopping<'a>(&'a Inner);

impl Drop for ResetStopping<'_> {
    fn drop(&mut self) {
        self.0.stopping.set(false);
        // Wakes the stops waiting for this one (they tell from
        // `stops_done` whether it finished).
        self.0.stopped.set();
    }
}

impl fmt::Debug for StreamServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamServer")
            .field("local_addr", &self.inner.local_addr)
            .field("started", &self.is_started())
            .field("closed", &self.is_closed())
            .field("options", &self.inner.options)
            .field("stats", &self.stats())
            .finish()
    }
}

/// What the accept loop does with a failed accept.
enum AcceptFailure {
    /// About one connection (it went away before it was taken): go on.
    Connection,
    /// The listener is broken: close the server.
    Fatal,
    /// Out of a resource, or unknown: pause, then try again.
    Pause,
}

fn classify(error: &io::Error) -> AcceptFailure {
    use io::ErrorKind as K;
    match error.kind() {
        K::ConnectionAborted | K::ConnectionReset | K::Interrupted | K::WouldBlock => {
            AcceptFailure::Connection
        }
        _ => match error.raw_os_error() {
            // EBADF, EINVAL (not listening), ENOTSOCK, EOPNOTSUPP.
            Some(9 | 22 | 88 | 95) => AcceptFailure::Fatal,
            // EPROTO, ENETDOWN, ENOPROTOOPT, EHOSTDOWN, ENONET, EHOSTUNREACH,
            // ENETUNREACH: accept(2) says to treat these like EAGAIN.
            Some(71 | 100 | 92 | 112 | 64 | 113 | 101) => AcceptFailure::Connection,
            _ => AcceptFailure::Pause,
        },
    }
}

fn accept_loop(inner: &Rc<Inner>, listener: &TcpListener) {
    let mut incoming = listener.incoming();
    let mut delay = MIN_ACCEPT_DELAY;
    let mut in_a_row = 0;
    loop {
        if inner.group.full() {
            // Accepting pauses while the pool is full: the connections wait
            // in the kernel's backlog.
            inner.group.wait_available();
            continue;
        }
        let stream = match incoming.next() {
            Some(Ok(stream)) => stream,
            Some(Err(error)) => {
                inner.accept_errors.set(inner.accept_errors.get() + 1);
                match classify(&error) {
                    AcceptFailure::Connection => continue,
                    AcceptFailure::Fatal => {
                        tracing::error!(
                            addr = %inner.local_addr,
                            "StreamServer closes: its listener failed ({error})"
                        );
                        *inner.fatal.borrow_mut() = Some(error);
                        StreamServer {
                            inner: Rc::clone(inner),
                        }
                        .close_listener();
                        return;
                    }
                    AcceptFailure::Pause => {
                        tracing::warn!(
                            addr = %inner.local_addr,
                            "StreamServer pauses accepting for {delay:?}: {error}"
                        );
                        green_core::sleep(delay);
                        delay = (delay * 2).min(MAX_ACCEPT_DELAY);
                        continue;
                    }
                }
            }
            None => return,
        };
        delay = MIN_ACCEPT_DELAY;
        let peer = match stream.peer_addr() {
            Ok(peer) => peer,
            // The peer left before it was served: nothing to handle.
            Err(_) => continue,
        };
        inner.accepted.set(inner.accepted.get() + 1);
        spawn_handler(inner, stream, peer, &mut delay);
        in_a_row += 1;
        if in_a_row >= inner.options.max_accept {
            in_a_row = 0;
            green_core::yield_now();
        }
    }
}

/// Spawns the handler for one accepted connection. When no greenlet can be
/// made (no stack can be mapped: out of memory, or at `vm.max_map_count`),
/// the connection is kept and the spawn retried after a pause that doubles
/// as for a resource error of `accept`: a panic here would end the accept
/// loop and leave a server that looks started but accepts nothing.
fn spawn_handler(inner: &Rc<Inner>, stream: TcpStream, peer: SocketAddr, delay: &mut Duration) {
    // The stream stays here while a failed build drops its closure.
    let pending = Rc::new(Cell::new(Some(stream)));
    loop {
        let handler = Rc::clone(&inner.handler);
        let server = Rc::downgrade(inner);
        let taken = Rc::clone(&pending);
        let built = green_core::Builder::new().build(move || {
            let Some(stream) = taken.take() else { return };
            if let Err(error) = handler(stream, peer) {
                if let Some(server) = server.upgrade() {
                    server.handler_errors.set(server.handler_errors.get() + 1);
                }
                log_handler_error(peer, &error);
            }
        });
        match built {
            Ok(greenlet) => {
                // Not started yet: it is counted in the pool before it runs.
                inner.group.start(&greenlet);
                return;
            }
            Err(error) => {
                inner.accept_errors.set(inner.accept_errors.get() + 1);
                tracing::warn!(
                    addr = %inner.local_addr,
                    %peer,
                    "StreamServer cannot spawn a handler, retrying in {:?}: {error}",
                    *delay
                );
                green_core::sleep(*delay);
                *delay = (*delay * 2).min(MAX_ACCEPT_DELAY);
            }
        }
    }
}

fn log_handler_error(peer: SocketAddr, error: &io::Error) {
    use io::ErrorKind as K;
    match error.kind() {
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
            tracing::debug!(%peer, "StreamServer handler ended with an error: {error}");
        }
        _ => tracing::warn!(%peer, "StreamServer handler ended with an error: {error}"),
    }
}

// ===== serve_threads =====

/// What each server thread reports when it ends.
type ThreadOutcome = Result<ServerStats, String>;

/// Wakes a server thread's stop waiter with the grace for its handlers.
type StopSetter = RemoteSetter<Duration, Infallible>;

/// How a stop request reaches one server thread. The thread leaves its
/// setter here once it listens; a request made before that is kept, and
/// the thread honours it instead of serving.
#[derive(Default)]
struct StopSlot {
    setter: Option<StopSetter>,
    requested: Option<Duration>,
}

type StopSlots = Arc<Vec<Mutex<StopSlot>>>;

fn lock_slot(slot: &Mutex<StopSlot>) -> std::sync::MutexGuard<'_, StopSlot> {
    // Nothing panics while holding it; a poisoned slot is still consistent.
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

struct ServerThread {
    done: AsyncResult<ServerStats, String>,
    handle: Option<JoinHandle<()>>,
}

/// Servers on `threads` OS threads, each with its own hub and its own
/// `SO_REUSEPORT` listener on the same address, sharing one handler (each
/// thread gets a clone): the way to use every core. The kernel spreads the
/// incoming connections over the listeners.
///
/// `addr` is bound by the first thread (port 0 picks a free port, which
/// the others then bind too); `serve_threads` returns once every thread
/// listens. Each thread runs a [`StreamServer`] with `options` (a
/// `pool_size` caps each thread's handlers) until
/// [`ServerThreads::stop`] or a [`ServerStopper`].
///
/// # Errors
/// `InvalidInput` if `threads` is 0; the first failing thread's error if a
/// listener cannot be bound (e.g. `AddrInUse` when the port is held by a
/// listener without `SO_REUSEPORT`; the threads already started are
/// stopped); the OS's if a thread cannot be started.
///
/// # Kill safety
/// Interruptible while it waits for the threads to listen; every thread
/// started is then told to stop (without waiting for it).
///
/// # Examples
/// ```
/// use std::io::{Read, Write};
/// use std::time::Duration;
/// use green_core::net::TcpStream;
/// use green_pool::{serve_threads, ServerOptions};
///
/// let servers = serve_threads("127.0.0.1:0", 2, ServerOptions::new(), |mut s: TcpStream, _| {
///     let mut buf = [0; 16];
///     let n = s.read(&mut buf)?;
///     s.write_all(&buf[..n])
/// })?;
/// let mut client = TcpStream::connect(servers.local_addr())?;
/// client.write_all(b"hi")?;
/// let mut reply = [0; 2];
/// client.read_exact(&mut reply)?;
/// let stats = servers.stop(Duration::from_secs(1));
/// assert_eq!(stats.iter().map(|s| s.as_ref().unwrap().accepted).sum::<u64>(), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn serve_threads<A, F, R>(
    addr: A,
    threads: usize,
    options: ServerOptions,
    handler: F,
) -> io::Result<ServerThreads>
where
    A: ToSocketAddrs,
    F: Fn(TcpStream, SocketAddr) -> R + Send + Clone + 'static,
    R: HandlerOutput,
{
    if threads == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "serve_threads with 0 threads would serve nothing; pass at least 1",
        ));
    }
    // Resolved here (greenly); every thread binds the same address.
    let mut addr = addr.to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "serve_threads: the address resolved to nothing",
        )
    })?;
    let stops: StopSlots = Arc::new((0..threads).map(|_| Mutex::default()).collect());
    // Dropped early (an error, a kill), this tells every thread to stop.
    let mut servers = ServerThreads {
        addr,
        threads: Vec::with_capacity(threads),
        stops: Arc::clone(&stops),
    };
    for index in 0..threads {
        let ready: AsyncResult<SocketAddr, io::Error> = AsyncResult::new();
        let ready_setter = ready.remote_setter();
        let done = AsyncResult::new();
        let done_setter = done.remote_setter();
        let handler = handler.clone();
        let options = options.clone();
        let stops = Arc::clone(&stops);
        let handle = thread::Builder::new()
            .name(format!("green-server-{index}"))
            .spawn(move || {
                let outcome = server_thread(addr, options, handler, &ready_setter, &stops[index]);
                // Sent after the hub's teardown: the caller's join is
                // immediate.
                let _ = done_setter.send(outcome);
            })?;
        servers.threads.push(ServerThread {
            done,
            handle: Some(handle),
        });
        addr = wait_outcome(&ready)?;
        servers.addr = addr;
    }
    Ok(servers)
}

/// One server thread's body: serves until asked to stop.
fn server_thread<F, R>(
    addr: SocketAddr,
    options: ServerOptions,
    handler: F,
    ready: &RemoteSetter<SocketAddr, io::Error>,
    stop_slot: &Mutex<StopSlot>,
) -> ThreadOutcome
where
    F: Fn(TcpStream, SocketAddr) -> R + 'static,
    R: HandlerOutput,
{
    let body = move || {
        green_core::run(|| {
            // Every listener, the first included, lets the others share its
            // port.
            let server = match TcpListener::bind_reuse_port(addr)
                .and_then(|listener| StreamServer::with_options(listener, options, handler))
            {
                Ok(server) => server,
                Err(error) => {
                    let _ = ready.send(Err(error));
                    return Ok(ServerStats::default());
                }
            };
            let stop_request: AsyncResult<Duration, Infallible> = AsyncResult::new();
            {
                let mut slot = lock_slot(stop_slot);
                match slot.requested {
                    // Told to stop before it listened (the caller gave up).
                    Some(_) => return Ok(server.stats()),
                    None => slot.setter = Some(stop_request.remote_setter()),
                }
            }
            let _ = ready.set(server.local_addr());
            let stopper = server.clone();
            green_core::spawn(move || {
                let Ok(timeout) = wait_outcome(&stop_request);
                stopper.stop(timeout);
            });
            let served = server.serve_forever();
            let stats = server.stats();
            served.map(|()| stats).map_err(|e| e.to_string())
        })
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(outcome) => outcome,
        Err(payload) => Err(format!(
            "the server thread panicked: {}",
            green_core::panic_message(&*payload)
        )),
    }
}

/// Waits greenly for a result and takes its outcome.
#[track_caller]
fn wait_outcome<T: 'static, E: 'static>(result: &AsyncResult<T, E>) -> Result<T, E> {
    loop {
        if let Some(outcome) = result.take() {
            return outcome;
        }
        if !result.wait() && !result.ready() {
            panic!("green-pool: the hub gave up a wait while tearing down");
        }
    }
}

/// The servers started by [`serve_threads`]: one per thread.
///
/// Dropping it tells every thread to stop (with no grace for the
/// handlers) and does not wait; [`stop`](ServerThreads::stop) waits.
pub struct ServerThreads {
    addr: SocketAddr,
    threads: Vec<ServerThread>,
    stops: StopSlots,
}

/// Tells the threads of a [`ServerThreads`] to stop, from any greenlet or
/// thread (e.g. a signal handler's greenlet); cheap to clone, `Send`.
#[derive(Clone)]
pub struct ServerStopper {
    stops: StopSlots,
}

impl ServerStopper {
    /// Tells every thread to stop its server with `timeout` of grace for
    /// its handlers (see [`StreamServer::stop`]), and returns at once. The
    /// first request wins; later ones do nothing.
    pub fn stop(&self, timeout: Duration) {
        for slot in self.stops.iter() {
            let mut slot = lock_slot(slot);
            if slot.requested.is_some() {
                continue;
            }
            slot.requested = Some(timeout);
            if let Some(setter) = slot.setter.take() {
                // A thread whose hub is gone has stopped already.
                let _ = setter.set(timeout);
            }
        }
    }
}

impl fmt::Debug for ServerStopper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerStopper").finish_non_exhaustive()
    }
}

impl ServerThreads {
    /// The address every thread listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The number of server threads.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// A handle that tells the threads to stop, from elsewhere.
    pub fn stopper(&self) -> ServerStopper {
        ServerStopper {
            stops: Arc::clone(&self.stops),
        }
    }

    /// Tells every thread to stop (each closes its listener, gives its
    /// handlers `timeout` to finish, kills the rest), then waits greenly
    /// until every thread has ended and joins it. Returns each thread's
    /// stats in thread order, or why that thread failed.
    ///
    /// # Kill safety
    /// Interruptible; the stop, once told, goes on without the caller.
    pub fn stop(self, timeout: Duration) -> Vec<Result<ServerStats, String>> {
        self.stopper().stop(timeout);
        self.join()
    }

    /// Waits greenly until every thread has ended (stopped by a
    /// [`ServerStopper`], or by an error of its listener), joins them, and
    /// returns each one's stats in thread order, or why it failed.
    ///
    /// # Kill safety
    /// Interruptible; a killed caller drops the handle, which tells the
    /// threads to stop.
    pub fn join(mut self) -> Vec<Result<ServerStats, String>> {
        let mut outcomes = Vec::with_capacity(self.threads.len());
        for thread in &mut self.threads {
            let outcome = wait_outcome(&thread.done);
            if let Some(handle) = thread.handle.take() {
                // The thread sent its outcome as its last act.
                let _ = handle.join();
            }
            outcomes.push(outcome);
        }
        outcomes
    }
}

impl Drop for ServerThreads {
    fn drop(&mut self) {
        if self.threads.iter().any(|t| t.handle.is_some()) {
            self.stopper().stop(Duration::ZERO);
        }
    }
}

impl fmt::Debug for ServerThreads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerThreads")
            .field("local_addr", &self.addr)
            .field("threads", &self.threads.len())
            .finish()
    }
}
