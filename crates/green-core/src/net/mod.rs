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
