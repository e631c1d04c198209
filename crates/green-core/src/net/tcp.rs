//! Green TCP: [`TcpListener`] and [`TcpStream`], std's API with calls that
//! park the greenlet instead of blocking the thread.

use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use green_loop::{sock, SockAddr};

use super::accept::{take_queued, AcceptStream, ListenerQueueGuard};
use super::ops;
use super::resolve::{each_addr, ToSocketAddrs};
use super::timeouts::Timeouts;

/// How many connections a listener's kernel queue holds (the kernel caps it
/// at `net.core.somaxconn`).
const LISTEN_BACKLOG: i32 = 1024;

fn domain_of(addr: &SocketAddr) -> i32 {
    match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    }
}

/// A green TCP listener (std's [`std::net::TcpListener`], with `accept`
/// parking the greenlet).
///
/// # Examples
/// ```
/// use std::io::{Read, Write};
/// use green_core::net::{TcpListener, TcpStream};
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// let server = green_core::spawn(move || -> std::io::Result<()> {
///     let (mut conn, _peer) = listener.accept()?;
///     let mut buf = [0; 5];
///     conn.read_exact(&mut buf)?;
///     conn.write_all(&buf)
/// });
/// let mut client = TcpStream::connect(addr)?;
/// client.write_all(b"hello")?;
/// let mut echo = [0; 5];
/// client.read_exact(&mut echo)?;
/// assert_eq!(&echo, b"hello");
/// server.take().unwrap()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpListener {
    inner: std::net::TcpListener,
    /// Closes connections the ring accepted for it when it goes.
    _queue: ListenerQueueGuard,
}

impl TcpListener {
    fn stream_of(fd: OwnedFd) -> TcpStream {
        TcpStream::from_fd(fd)
    }

    fn wrap(inner: std::net::TcpListener) -> TcpListener {
        let fd = inner.as_raw_fd();
        TcpListener {
            inner,
            _queue: ListenerQueueGuard::new(fd),
        }
    }

    /// Binds to `addr` (a name is resolved off the hub), with
    /// `SO_REUSEADDR` as std sets it, and listens.
    ///
    /// # Errors
    /// `AddrInUse`, `PermissionDenied`, a lookup failure, ...
    ///
    /// # Kill safety
    /// Interruptible only while a name is looked up.
    #[track_caller]
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        each_addr(&addr, |a| Self::bind_one(a, false))
    }

    /// Like [`TcpListener::bind`] with `SO_REUSEPORT` set first, so several
    /// listeners (one per hub thread) can share the port and the kernel
    /// spreads connections among them.
    ///
    /// # Errors
    /// As [`TcpListener::bind`].
    #[track_caller]
    pub fn bind_reuse_port<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        each_addr(&addr, |a| Self::bind_one(a, true))
    }

    fn bind_one(addr: &SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
        let fd = sock::socket(domain_of(addr), libc::SOCK_STREAM)?;
        sock::set_bool_option(fd.as_fd(), libc::SO_REUSEADDR, true)?;
        if reuse_port {
            sock::set_bool_option(fd.as_fd(), libc::SO_REUSEPORT, true)?;
        }
        sock::bind(fd.as_fd(), &SockAddr::from_std(addr))?;
        sock::listen(fd.as_fd(), LISTEN_BACKLOG)?;
        Ok(TcpListener::wrap(std::net::TcpListener::from(fd)))
    }

    /// Waits for a connection and returns it with the peer's address.
    ///
    /// # Errors
    /// `accept4`'s: with `EMFILE`/`ENFILE` (out of descriptors) the
    /// listener stays usable; accept again once descriptors are freed.
    ///
    /// # Kill safety
    /// A kill or timeout cancels the wait. A connection the kernel accepted
    /// in that race is closed, never leaked; nothing else is left behind.
    #[track_caller]
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        // A connection an `incoming()` already took off the backlog comes
        // first.
        if let Some(conn) = take_queued(&self._queue) {
            let stream = Self::stream_of(conn?);
            let peer = stream.peer_addr()?;
            return Ok((stream, peer));
        }
        let mut peer = SockAddr::empty();
        let fd = ops::accept(self.inner.as_fd(), Some(&mut peer))?;
        let stream = TcpStream::from_fd(fd);
        let addr = match peer.to_std() {
            Some(a) => a,
            None => stream.peer_addr()?,
        };
        Ok((stream, addr))
    }

    /// An endless iterator of accepted connections.
    ///
    /// Where the kernel has it (Linux 5.19+, and always on the epoll
    /// backend), one multishot accept serves the whole iteration instead of
    /// one op per connection. It buffers at most a few connections ahead of
    /// the caller (a bound on what one loop turn accepts); those still
    /// buffered when the iterator is dropped stay with the listener, for its
    /// next `accept` or `incoming()`, and are closed with the listener.
    ///
    /// # Kill safety
    /// Interruptible; a kill while waiting loses no connection (they stay
    /// buffered with the listener, or in the kernel's backlog).
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming {
            listener: self,
            stream: AcceptStream::new(self.as_fd(), &self._queue),
        }
    }

    /// The address the listener is bound to.
    ///
    /// # Errors
    /// `getsockname`'s.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// A second handle to the same listener (`dup`).
    ///
    /// # Errors
    /// `EMFILE` and the like.
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        Ok(TcpListener::wrap(self.inner.try_clone()?))
    }

    /// Sets `IP_TTL`.
    ///
    /// # Errors
    /// `setsockopt`'s.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_ttl(ttl)
    }

    /// `IP_TTL`.
    ///
    /// # Errors
    /// `getsockopt`'s.
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.ttl()
    }

    /// The pending socket error (`SO_ERROR`), cleared.
    ///
    /// # Errors
    /// `getsockopt`'s.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }

    /// Wraps a std listener (bound and listening). A nonblocking one works
    /// too: a would-block accept waits for readiness.
    pub fn from_std(listener: std::net::TcpListener) -> TcpListener {
        TcpListener::wrap(listener)
    }

    /// The std listener, for code that blocks the thread on purpose.
    pub fn into_std(self) -> std::net::TcpListener {
        self.inner
    }
}

impl From<OwnedFd> for TcpListener {
    fn from(fd: OwnedFd) -> TcpListener {
        TcpListener::wrap(std::net::TcpListener::from(fd))
    }
}

impl From<TcpListener> for OwnedFd {
    fn from(l: TcpListener) -> OwnedFd {
        l.inner.into()
    }
}

fd_traits!(TcpListener);

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("addr", &self.local_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

/// The iterator of [`TcpListener::incoming`]; it never ends. Bound to the
/// thread that made it (it owns the hub's multishot accept).
pub struct Incoming<'a> {
    listener: &'a TcpListener,
    stream: AcceptStream,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;
    #[track_caller]
    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        {
            if let Some(conn) = self.stream.next(self.listener.as_fd()) {
                return Some(conn.map(TcpStream::from_fd));
            }
        }
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

impl fmt::Debug for Incoming<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming")
            .field("listener", self.listener)
            .finish_non_exhaustive()
    }
}

/// A green TCP connection: std's [`std::net::TcpStream`] with reads, writes
/// and `connect` that park the greenlet. `Read` and `Write` are implemented
/// for `&TcpStream` too, so one greenlet can read while another writes.
///
/// Any synchronous library that takes `Read + Write` (a TLS stream, a
/// WebSocket, a `BufReader` parser) works on it inside a greenlet.
///
/// # Small writes
/// Each `write` is one send, as with std. `writeln!(stream, ...)` makes
/// several small ones per line, and a request-reply protocol then meets
/// Nagle's algorithm and the peer's delayed ACK: tens of milliseconds per
/// round trip where gevent's `sendall(line)` took microseconds. Build the
/// message first and `write_all` it once, wrap the stream in a
/// `BufWriter` and flush per message, or call `set_nodelay(true)`.
///
/// # Kill safety (every blocking call)
/// A kill or `Timeout` during a read or write cancels the op and waits for
/// the kernel to give the buffer back before unwinding. If the op won that
/// race, its result is returned (bytes read, or the count written) and the
/// kill or timeout is raised at the greenlet's next blocking call. If it
/// did not, nothing was read and nothing was written by that call.
pub struct TcpStream {
    inner: std::net::TcpStream,
    timeouts: Arc<Timeouts>,
}

impl TcpStream {
    fn from_fd(fd: OwnedFd) -> TcpStream {
        TcpStream {
            inner: std::net::TcpStream::from(fd),
            timeouts: Timeouts::shared(),
        }
    }

    /// Connects to `addr`, trying each resolved address in turn (a name is
    /// resolved off the hub).
    ///
    /// # Errors
    /// `ConnectionRefused`, `TimedOut`, a lookup failure, ... (the last
    /// address's error).
    ///
    /// # Kill safety
    /// A kill or timeout cancels the attempt; the half-made socket is
    /// closed.
    #[track_caller]
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        each_addr(&addr, |a| Self::connect_one(a, None))
    }

    /// Connects to one address, giving up after `timeout` with `TimedOut`.
    ///
    /// # Errors
    /// As [`TcpStream::connect`]; `InvalidInput` for a zero timeout (as std).
    ///
    /// # Kill safety
    /// As [`TcpStream::connect`].
    #[track_caller]
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        Self::connect_one(addr, Some(timeout))
    }

    #[track_caller]
    fn connect_one(addr: &SocketAddr, timeout: Option<Duration>) -> io::Result<TcpStream> {
        let fd = sock::socket(domain_of(addr), libc::SOCK_STREAM)?;
        ops::connect(fd.as_fd(), &SockAddr::from_std(addr), timeout)?;
        Ok(TcpStream::from_fd(fd))
    }

    /// The peer's address.
    ///
    /// # Errors
    /// `NotConnected` and the like.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// The local address.
    ///
    /// # Errors
    /// `getsockname`'s.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Shuts down the read half, the write half or both.
    ///
    /// # Errors
    /// `NotConnected` and the like.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }

    /// Sets `TCP_NODELAY`.
    ///
    /// # Errors
    /// `setsockopt`'s.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    ///
    /// # Errors
    /// `getsockopt`'s.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.nodelay()
    }

    /// Sets `IP_TTL`.
    ///
    /// # Errors
    /// `setsockopt`'s.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_ttl(ttl)
    }

    /// `IP_TTL`.
    ///
    /// # Errors
    /// `getsockopt`'s.
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.ttl()
    }

    /// The pending socket error (`SO_ERROR`), cleared.
    ///
    /// # Errors
    /// `getsockopt`'s.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }

    /// A second handle to the same connection (`dup`); it shares this
    /// one's timeouts, as std's clones share the kernel's.
    ///
    /// # Errors
    /// `EMFILE` and the like.
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        Ok(TcpStream {
            inner: self.inner.try_clone()?,
            timeouts: Arc::clone(&self.timeouts),
        })
    }

    timeout_methods!();

    /// Reads without consuming (`MSG_PEEK`), waiting for data.
    ///
    /// # Errors
    /// As `read`.
    ///
    /// # Kill safety
    /// As `read`; a peek consumes nothing in any case.
    #[track_caller]
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        ops::recv(self.as_fd(), &self.timeouts, buf, libc::MSG_PEEK)
    }

    /// Wraps a connected std stream. A nonblocking one works too.
    pub fn from_std(stream: std::net::TcpStream) -> TcpStream {
        TcpStream {
            inner: stream,
            timeouts: Timeouts::shared(),
        }
    }

    /// The std stream (its timeouts are not carried over).
    pub fn into_std(self) -> std::net::TcpStream {
        self.inner
    }
}

impl From<OwnedFd> for TcpStream {
    fn from(fd: OwnedFd) -> TcpStream {
        TcpStream::from_fd(fd)
    }
}

impl From<TcpStream> for OwnedFd {
    fn from(s: TcpStream) -> OwnedFd {
        s.inner.into()
    }
}

stream_io!(TcpStream);
fd_traits!(TcpStream);

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("addr", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}
