//! Green UDP: [`UdpSocket`], std's API with sends and receives that park
//! the greenlet.

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

use green_loop::SockAddr;

use super::ops;
use super::resolve::{each_addr, ToSocketAddrs};
use super::timeouts::Timeouts;

/// A green UDP socket (std's [`std::net::UdpSocket`]).
///
/// # Kill safety (every blocking call)
/// A kill or `Timeout` cancels the op and waits for the kernel before
/// unwinding; a datagram received or sent in that race is reported, and the
/// kill or timeout raised at the next blocking call. Otherwise nothing was
/// received or sent.
///
/// # Examples
/// ```
/// use green_core::net::UdpSocket;
///
/// let a = UdpSocket::bind("127.0.0.1:0")?;
/// let b = UdpSocket::bind("127.0.0.1:0")?;
/// a.send_to(b"ping", b.local_addr()?)?;
/// let mut buf = [0; 16];
/// let (n, from) = b.recv_from(&mut buf)?;
/// assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr()?));
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UdpSocket {
    inner: std::net::UdpSocket,
    timeouts: Arc<Timeouts>,
}

impl UdpSocket {
    /// Binds to `addr` (a name is resolved off the hub).
    ///
    /// # Errors
    /// `AddrInUse`, a lookup failure, ...
    #[track_caller]
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        each_addr(&addr, |a| std::net::UdpSocket::bind(a)).map(UdpSocket::from_std)
    }

    /// Sends `buf` to `addr` (the first resolved address).
    ///
    /// # Errors
    /// `sendmsg`'s, or a lookup failure.
    #[track_caller]
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let Some(to) = addr.to_socket_addrs()?.next() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no addresses to send data to",
            ));
        };
        let to = SockAddr::from_std(&to);
        ops::sendmsg(
            self.as_fd(),
            &self.timeouts,
            &[IoSlice::new(buf)],
            Some(&to),
        )
    }

    /// Receives one datagram and its sender. A datagram longer than `buf`
    /// is cut to fit, as std's.
    ///
    /// # Errors
    /// `recvmsg`'s; `WouldBlock` after the read timeout.
    #[track_caller]
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.recv_from_flags(buf, 0)
    }

    /// [`UdpSocket::recv_from`] without taking the datagram off the queue.
    ///
    /// # Errors
    /// As `recv_from`.
    #[track_caller]
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.recv_from_flags(buf, libc::MSG_PEEK)
    }

    #[track_caller]
    fn recv_from_flags(&self, buf: &mut [u8], flags: i32) -> io::Result<(usize, SocketAddr)> {
        let mut from = SockAddr::empty();
        let (n, _) = ops::recvmsg(
            self.as_fd(),
            &self.timeouts,
            &mut [IoSliceMut::new(buf)],
            Some(&mut from),
            flags,
        )?;
        let addr = from.to_std().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "datagram from a non-IP address")
        })?;
        Ok((n, addr))
    }

    /// Sets the default peer for `send` and `recv` (a local syscall; a
    /// name is resolved off the hub).
    ///
    /// # Errors
    /// `connect`'s, or a lookup failure.
    #[track_caller]
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(&addr, |a| self.inner.connect(a))
    }

    /// Sends to the connected peer.
    ///
    /// # Errors
    /// `NotConnected`, `ConnectionRefused` (an ICMP from an earlier
    /// datagram), ...
    #[track_caller]
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        ops::sendmsg(self.as_fd(), &self.timeouts, &[IoSlice::new(buf)], None)
    }

    /// Receives one datagram from the connected peer.
    ///
    /// # Errors
    /// As `recv_from`.
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

    /// [`UdpSocket::recv`] without taking the datagram off the queue.
    ///
    /// # Errors
    /// As `recv`.
    #[track_caller]
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        ops::recvmsg(
            self.as_fd(),
            &self.timeouts,
            &mut [IoSliceMut::new(buf)],
            None,
            libc::MSG_PEEK,
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

    /// A second handle (`dup`), sharing this one's timeouts.
    ///
    /// # Errors
    /// `EMFILE` and the like.
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            inner: self.inner.try_clone()?,
            timeouts: Arc::clone(&self.timeouts),
        })
    }

    timeout_methods!();

    /// Sets `SO_BROADCAST`.
    ///
    /// # Errors
    /// `setsockopt`'s.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.inner.set_broadcast(on)
    }

    /// Sets `IP_TTL`. (std's, a local syscall.)
    ///
    /// # Errors
    /// The syscall's.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_ttl(ttl)
    }

    /// `IP_TTL`. (std's, a local syscall.)
    ///
    /// # Errors
    /// The syscall's.
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.ttl()
    }

    /// Whether `SO_BROADCAST` is set. (std's, a local syscall.)
    ///
    /// # Errors
    /// The syscall's.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.inner.broadcast()
    }

    /// Sets `IP_MULTICAST_LOOP`. (std's, a local syscall.)
    ///
    /// # Errors
    /// The syscall's.
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.inner.set_multicast_loop_v4(on)
    }

    /// `IP_MULTICAST_LOOP`. (std's, a local syscall.)
    ///
    /// # Errors
    /// The syscall's.
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        self.inner.multicast_loop_v4()
    }

    /// Sets `IP_MULTICAST_TTL`. (std's, a local syscall.)
    ///
    /// # Errors
    /// The syscall's.
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_multicast_ttl_v4(ttl)
    }

    /// `IP_MULTICAST_TTL`. (std's, a local syscall.)
    ///
    /// # Errors
    /// The syscall's.
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        self.inner.multicast_ttl_v4()
    }

    /// Sets `IPV6_MULTICAST_LOOP`. (std's, a local syscall.)
    ///
    /// # Errors
    /// The syscall's.
    pub fn set_multicast_loop_v6(&self, on: bool) -> io::Result<()> {
        self.inner.set_multicast_loop_v6(on)
    }

    /// `IPV6_MULTICAST_LOOP`. (std's, a local syscall.)
    ///
    /// # Errors
    /// The syscall's.
    pub fn multicast_loop_v6(&self) -> io::Result<bool> {
        self.inner.multicast_loop_v6()
    }

    /// Joins an IPv4 multicast group (`IP_ADD_MEMBERSHIP`). (std's, a local syscall.)
    ///
    /// # Errors
    /// The syscall's.
    pub fn join_multicast_v4(
        &self,
        multiaddr: &std::net::Ipv4Addr,
        interface: &std::net::Ipv4Addr,
    ) -> io::Result<()> {
        self.inner.join_multicast_v4(multiaddr, interface)
    }

    /// Leaves an IPv4 multicast group. (std's, a local syscall.)
    ///
    /// # Errors
    /// The syscall's.
    pub fn leave_multicast_v4(
        &self,
        multiaddr: &std::net::Ipv4Addr,
        interface: &std::net::Ipv4Addr,
    ) -> io::Result<()> {
        self.inner.leave_multicast_v4(multiaddr, interface)
    }

    /// Joins an IPv6 multicast group. (std's, a local syscall.)
    ///
    /// # Errors
    /// The syscall's.
    pub fn join_multicast_v6(
        &self,
        multiaddr: &std::net::Ipv6Addr,
        interface: u32,
    ) -> io::Result<()> {
        self.inner.join_multicast_v6(multiaddr, interface)
    }

    /// Leaves an IPv6 multicast group. (std's, a local syscall.)
    ///
    /// # Errors
    /// The syscall's.
    pub fn leave_multicast_v6(
        &self,
        multiaddr: &std::net::Ipv6Addr,
        interface: u32,
    ) -> io::Result<()> {
        self.inner.leave_multicast_v6(multiaddr, interface)
    }

    /// The pending socket error (`SO_ERROR`), cleared.
    ///
    /// # Errors
    /// `getsockopt`'s.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }

    /// Wraps a std socket.
    pub fn from_std(socket: std::net::UdpSocket) -> UdpSocket {
        UdpSocket {
            inner: socket,
            timeouts: Timeouts::shared(),
        }
    }

    /// The std socket (its timeouts are not carried over).
    pub fn into_std(self) -> std::net::UdpSocket {
        self.inner
    }
}

impl From<OwnedFd> for UdpSocket {
    fn from(fd: OwnedFd) -> UdpSocket {
        UdpSocket::from_std(fd.into())
    }
}

fd_traits!(UdpSocket);

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("addr", &self.local_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}
