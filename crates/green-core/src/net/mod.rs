//! Green networking: `std::net`'s types (and `std::os::unix::net`'s) whose
//! blocking calls park the greenlet on the hub's io_uring loop. Porting std
//! code is changing the import.
//!
//! * Buffers are borrowed (`&mut [u8]`), as in std. A greenlet killed or
//!   timed out mid-op first cancels the op and waits for the kernel's
//!   answer, so the kernel never writes into a stack that has unwound.
//! * Each blocking call documents, under `# Kill safety`, what a kill
//!   leaves behind.
//! * A write to a closed peer is `BrokenPipe`; SIGPIPE never fires.
//! * Every fd is close-on-exec.
//! * Names resolve on a resolver thread ([`ToSocketAddrs`]), never on the
//!   hub.
//!
//! # Porting from std
//!
//! | std | green |
//! | --- | --- |
//! | `use std::net::{TcpListener, TcpStream, ToSocketAddrs}` | `use green_core::net::{TcpListener, TcpStream, ToSocketAddrs}` |
//! | `thread::spawn(f)` | [`spawn`](crate::spawn)`(f)` (a greenlet; wrap `main` in [`run`](crate::run) for a clean end) |
//! | `handle.join().unwrap()` | `greenlet.take().unwrap()` (`take` joins; `get` needs `T: Clone`, which `io::Result` is not) |
//! | `thread::sleep(d)` | [`sleep`](crate::sleep)`(d)` |
//! | `Mutex<T>` held across a read or write | [`sync::Lock`](crate::sync::Lock) (or keep std's `Mutex` only around code that never blocks) |
//! | `fn f<A: std::net::ToSocketAddrs>(a: A)` | bound by [`ToSocketAddrs`] from this module instead |
//! | `set_nonblocking(true)` and a poll loop | not offered: a greenlet per connection, with a socket timeout or a [`Timeout`](crate::Timeout) |
//!
//! # What blocks the whole hub
//!
//! Every greenlet of a thread shares it, so a call that blocks the *thread*
//! stops them all: `std::thread::sleep`, `std::net` and `std::fs` reads and
//! writes, `std::process::Child::wait`, `std::net::ToSocketAddrs` on a host
//! name (a DNS lookup), and a `std::sync::Mutex` taken while another greenlet
//! holds it across a blocking call (that one never runs again to release
//! it: the thread hangs). Use this crate's versions, and run CPU-bound or
//! foreign blocking code on a thread of its own.
//!
//! # Examples
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use green_core::net::{TcpListener, TcpStream};
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! // Ten clients at once, each in its own greenlet, on one thread.
//! let clients: Vec<_> = (0..10)
//!     .map(|i| {
//!         green_core::spawn(move || -> std::io::Result<String> {
//!             let mut s = TcpStream::connect(addr)?;
//!             writeln!(s, "client {i}")?;
//!             let mut line = String::new();
//!             BufReader::new(&s).read_line(&mut line)?;
//!             Ok(line)
//!         })
//!     })
//!     .collect();
//! for _ in 0..10 {
//!     let (conn, _) = listener.accept()?;
//!     green_core::spawn(move || -> std::io::Result<()> {
//!         let mut line = String::new();
//!         BufReader::new(&conn).read_line(&mut line)?;
//!         (&conn).write_all(line.to_uppercase().as_bytes())
//!     });
//! }
//! for (i, c) in clients.into_iter().enumerate() {
//!     assert_eq!(c.take().unwrap()?, format!("CLIENT {i}\n"));
//! }
//! # Ok::<(), std::io::Error>(())
//! ```

/// `AsRawFd`, `AsFd` and `IntoRawFd` through the wrapped std socket.
macro_rules! fd_traits {
    ($ty:ty) => {
        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.inner.as_raw_fd()
            }
        }

        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.inner.as_fd()
            }
        }

        impl std::os::fd::IntoRawFd for $ty {
            fn into_raw_fd(self) -> std::os::fd::RawFd {
                self.inner.into_raw_fd()
            }
        }
    };
}

/// `Read` and `Write` for a stream socket and for a shared reference to it
/// (so one greenlet reads while another writes), through [`ops`].
macro_rules! stream_io {
    ($ty:ty) => {
        impl std::io::Read for &$ty {
            #[track_caller]
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                super::ops::recv(self.as_fd(), &self.timeouts, buf, 0)
            }

            #[track_caller]
            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                super::ops::read_vectored(self.as_fd(), &self.timeouts, bufs)
            }
        }

        impl std::io::Write for &$ty {
            #[track_caller]
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                super::ops::send(self.as_fd(), &self.timeouts, buf)
            }

            #[track_caller]
            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                super::ops::write_vectored(self.as_fd(), &self.timeouts, bufs)
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        impl std::io::Read for $ty {
            #[track_caller]
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                (&*self).read(buf)
            }

            #[track_caller]
            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                (&*self).read_vectored(bufs)
            }
        }

        impl std::io::Write for $ty {
            #[track_caller]
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                (&*self).write(buf)
            }

            #[track_caller]
            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                (&*self).write_vectored(bufs)
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
    };
}

/// The four timeout accessors of a socket with `timeouts`, inside its
/// `impl` block.
macro_rules! timeout_methods {
    () => {
        /// Bounds each later read or receive: one that waits longer fails
        /// with `WouldBlock` (std's kind for a socket timeout on Unix). One
        /// whose data arrived as the timeout fired returns the data. `None`
        /// waits forever.
        ///
        /// # Errors
        /// `InvalidInput` for `Some(Duration::ZERO)`, as std.
        pub fn set_read_timeout(
            &self,
            timeout: Option<std::time::Duration>,
        ) -> std::io::Result<()> {
            self.timeouts.set(crate::io::Direction::Read, timeout)
        }

        /// Bounds each later write or send, as `set_read_timeout` bounds
        /// reads; one that timed out sent nothing.
        ///
        /// # Errors
        /// `InvalidInput` for `Some(Duration::ZERO)`, as std.
        pub fn set_write_timeout(
            &self,
            timeout: Option<std::time::Duration>,
        ) -> std::io::Result<()> {
            self.timeouts.set(crate::io::Direction::Write, timeout)
        }

        /// The read timeout.
        ///
        /// # Errors
        /// Never; `io::Result` as in std.
        pub fn read_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
            Ok(self.timeouts.get(crate::io::Direction::Read))
        }

        /// The write timeout.
        ///
        /// # Errors
        /// Never; `io::Result` as in std.
        pub fn write_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
            Ok(self.timeouts.get(crate::io::Direction::Write))
        }
    };
}

mod accept;
mod ops;
mod resolve;
mod tcp;
mod timeouts;
mod udp;
mod unix;

pub use resolve::ToSocketAddrs;
pub use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, SocketAddrV4, SocketAddrV6};
pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixIncoming, UnixListener, UnixStream};
