//! Green Unix-domain sockets: [`UnixListener`], [`UnixStream`] and
//! [`UnixDatagram`], std's API with calls that park the greenlet.

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use green_loop::{sock, SockAddr};

use super::accept::{take_queued, AcceptStream, ListenerQueueGuard};
use super::ops;
use super::timeouts::Timeouts;

/// The std address of a kernel-layout Unix address: a path, an abstract
/// name, or unnamed.
fn unix_addr_of(addr: &SockAddr) -> io::Result<SocketAddr> {
    if let Some(path) = addr.unix_pathname() {
        return SocketAddr::from_pathname(path);
    }
    if let Some(name) = addr.unix_abstract_name() {
        return SocketAddr::from_abstract_name(name);
    }
    // std has no constructor for an unnamed address; an unbound socket's
    // own name is one.
    std::os::unix::net::UnixDatagram::unbound()?.local_addr()
}

/// A green Unix-domain listener (std's
/// [`std::os::unix::net::UnixListener`]).
pub struct UnixListener {
    inner: std::os::unix::net::UnixListener,
    /// Closes connections the ring accepted for it when it goes.
    _queue: ListenerQueueGuard,
}

impl UnixListener {
    fn stream_of(fd: OwnedFd) -> UnixStream {
        UnixStream::from(fd)
    }

    fn wrap(inner: std::os::unix::net::UnixListener) -> UnixListener {
        let fd = inner.as_raw_fd();
        UnixListener {
            inner,
            _queue: ListenerQueueGuard::new(fd),
        }
    }

    /// Binds to `path` and listens.
    ///
    /// # Errors
    /// `AddrInUse` when the path exists, ...
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        Ok(UnixListener::wrap(std::os::unix::net::UnixListener::bind(
            path,
        )?))
    }

    /// Waits for a connection.
    ///
    /// # Errors
    /// `accept4`'s (`EMFILE`: the listener stays usable).
    ///
    /// # Kill safety
    /// A kill or timeout cancels the wait; a connection accepted in that
    /// race is closed, never leaked.
    #[track_caller]
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        // A connection an `incoming()` already took off the backlog comes
        // first.
        if let Some(conn) = take_queued(&self._queue) {
            let stream = Self::stream_of(conn?);
            let peer = stream.peer_addr()?;
            return Ok((stream, peer));
        }
        let mut peer = SockAddr::empty();
        let fd = ops::accept(self.inner.as_fd(), Some(&mut peer))?;
        let stream = UnixStream::from(fd);
        Ok((stream, unix_addr_of(&peer)?))
    }

    /// An endless iterator of accepted connections, through one multishot
    /// accept where the kernel has it (see
    /// [`TcpListener::incoming`](super::TcpListener::incoming)).
    ///
    /// # Kill safety
    /// Interruptible; a kill while waiting loses no connection.
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming {
            listener: self,
            stream: AcceptStream::new(self.as_fd(), &self._queue),
        }
    }

    /// The bound address.
    ///
    /// # Errors
    /// `getsockname`'s.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// A second handle (`dup`).
    ///
    /// # Errors
    /// `EMFILE` and the like.
    pub fn try_clone(&self) -> io::Result<UnixListener> {
        Ok(UnixListener::wrap(self.inner.try_clone()?))
    }

    /// Wraps a std listener.
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> UnixListener {
        UnixListener::wrap(listener)
    }

    /// The std listener.
    pub fn into_std(self) -> std::os::unix::net::UnixListener {
        self.inner
    }
}

fd_traits!(UnixListener);

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener")
            .field("addr", &self.local_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

/// The iterator of [`UnixListener::incoming`]; it never ends.
pub struct UnixIncoming<'a> {
    listener: &'a UnixListener,
    stream: AcceptStream,
}

impl Iterator for UnixIncoming<'_> {
    type Item = io::Result<UnixStream>;
    #[track_caller]
    fn next(&mut self) -> Option<io::Result<UnixStream>> {
        {
            if let Some(conn) = self.stream.next(self.listener.as_fd()) {
                return Some(conn.map(UnixStream::from));
            }
        }
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

impl fmt::Debug for UnixIncoming<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixIncoming")
            .field("listener", self.listener)
            .finish_non_exhaustive()
    }
}

/// A green Unix-domain stream (std's [`std::os::unix::net::UnixStream`]);
/// `Read`/`Write` on it and on `&UnixStream`.
///
/// # Kill safety (every blocking call)
/// As [`TcpStream`](super::TcpStream)'s.
pub struct UnixStream {
    inner: std::os::unix::net::UnixStream,
    timeouts: Arc<Timeouts>,
}

impl UnixStream {
    /// Connects to the socket at `path`.
    ///
    /// # Errors
    /// `NotFound`, `ConnectionRefused`, `InvalidInput` for a path too long.
    ///
    /// # Kill safety
    /// A kill or timeout cancels the attempt; the socket is closed.
    #[track_caller]
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        let addr = SockAddr::unix_path(path.as_ref())?;
        let fd = sock::socket(libc::AF_UNIX, libc::SOCK_STREAM)?;
        ops::connect(fd.as_fd(), &addr, None)?;
        Ok(UnixStream::from(fd))
    }

    /// A connected pair.
    ///
    /// # Errors
    /// `socketpair`'s.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((UnixStream::from_std(a), UnixStream::from_std(b)))
    }

    /// The local address.
    ///
    /// # Errors
    /// `getsockname`'s.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The peer's address.
    ///
    /// # Errors
    /// `getpeername`'s.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// Shuts down one half or both.
    ///
    /// # Errors
    /// `shutdown`'s.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }

    /// A second handle (`dup`), sharing this one's timeouts.
    ///
    /// # Errors
    /// `EMFILE` and the like.
    pub fn try_clone(&self) -> io::Result<UnixStream> {
        Ok(UnixStream {
            inner: self.inner.try_clone()?,
            timeouts: Arc::clone(&self.timeouts),
        })
    }

    timeout_methods!();

    /// The pending socket error (`SO_ERROR`), cleared.
    ///
    /// # Errors
    /// `getsockopt`'s.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }

    /// Wraps a std stream.
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> UnixStream {
        UnixStream {
            inner: stream,
            timeouts: Timeouts::shared(),
        }
    }

    /// The std stream.
    pub fn into_std(self) -> std::os::unix::net::UnixStream {
        self.inner
    }
}

impl From<OwnedFd> for UnixStream {
    fn from(fd: OwnedFd) -> UnixStream {
        UnixStream::from_std(fd.into())
    }
}

stream_io!(UnixStream);
fd_traits!(UnixStream);

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixStream")
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

/// A green Unix-domain datagram socket (std's
/// [`std::os::unix::net::UnixDatagram`]).
///
/// # Kill safety (every blocking call)
/// As [`UdpSocket`](super::UdpSocket)'s.
pub struct UnixDatagram {
    inner: std::os::unix::net::UnixDatagram,
    timeouts: Arc<Timeouts>,
}

impl UnixDatagram {
    /// Binds to `path`.
    ///
    /// # Errors
    /// `AddrInUse` when the path exists, ...
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        std::os::unix::net::UnixDatagram::bind(path).map(UnixDatagram::from_std)
    }

    /// A socket bound to no address.
    ///
    /// # Errors
    /// `socket`'s.
    pub fn unbound() -> io::Result<UnixDatagram> {
        std::os::unix::net::UnixDatagram::unbound().map(UnixDatagram::from_std)
    }

    /// A connected pair.
    ///
    /// # Errors
    /// `socketpair`'s.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
        Ok((UnixDatagram::from_std(a), UnixDatagram::from_std(b)))
    }

    /// Sets the default peer (a local syscall).
    ///
    /// # Errors
    /// `connect`'s.
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        self.inner.connect(path)
    }

    /// Sends one datagram to the socket at `path`.
    ///
    /// # Errors
    /// `sendmsg`'s; `InvalidInput` for a path too long.
    #[track_caller]
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let to = SockAddr::unix_path(path.as_ref())?;
        ops::sendmsg(
            self.as_fd(),
            &self.timeouts,
            &[IoSlice::new(buf)],
            Some(&to),
        )
    }

    /// Receives one datagram and its sender's address.
    ///
    /// # Errors
    /// `recvmsg`'s.
    #[track_caller]
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let mut from = SockAddr::empty();
        let (n, _) = ops::recvmsg(
            self.as_fd(),
            &self.timeouts,
            &mut [IoSliceMut::new(buf)],
            Some(&mut from),
            0,
        )?;
        Ok((n, unix_addr_of(&from)?))
    }

    /// Sends to the connected peer.
    ///
    /// # Errors
    /// `NotConnected`, ...
    #[track_caller]
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        ops::sendmsg(self.as_fd(), &self.timeouts, &[IoSlice::new(buf)], None)
    }

    /// Receives one datagram.
    ///
    /// # Errors
    /// `recvmsg`'s.
    #[track_caller]
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        ops::recvmsg(
            self.as_fd(),
            &self.timeouts,
            &mut [IoSliceMut::new(buf)],
            None,
            0,
        )
        .map(|(n, _)| n)
    }

    /// The local address.
    ///
    /// # Errors
    /// `getsockname`'s.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The connected peer's address.
    ///
    /// # Errors
    /// `NotConnected`.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    timeout_methods!();

    /// Shuts down one half or both.
    ///
    /// # Errors
    /// `shutdown`'s.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }

    /// Wraps a std socket.
    pub fn from_std(socket: std::os::unix::net::UnixDatagram) -> UnixDatagram {
        UnixDatagram {
            inner: socket,
            timeouts: Timeouts::shared(),
        }
    }

    /// The std socket.
    pub fn into_std(self) -> std::os::unix::net::UnixDatagram {
        self.inner
    }
}

fd_traits!(UnixDatagram);

impl fmt::Debug for UnixDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixDatagram")
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}
