//! Ops over borrowed memory, run to their final completion: the safe face
//! of L1 for callers that can suspend (green-core's greenlets).
//!
//! [`Loop::submit`] is `unsafe` because nothing ties the memory an op points
//! at to the op's flight. The functions here tie them by construction: they
//! take the memory as ordinary Rust borrows and do not give those borrows
//! back (return, or unwind) before the op's final completion has been
//! dispatched. While the op is in flight they call the caller's
//! [`OpWait::wait`], which suspends the caller (a greenlet parks) until the
//! completion wakes it, or decides to cancel the op.
//!
//! # Invariants
//!
//! * **B1** A `run_*` function returns only after the op's final completion
//!   has been stored in its [`Landing`]; so every borrow it was given, and
//!   the landing itself, outlive the op (L1).
//! * **B2** The op's `data` word is the address of the [`Landing`] on the
//!   `run_*` frame. The completion handler is the only other user of that
//!   address, and by B1 it runs while the frame is live.
//! * **B3** If [`OpWait::wait`] unwinds while the op is in flight, the
//!   process aborts with a message: the kernel may still write into the
//!   borrowed memory, and there is no sound way to give it back early.
//!   Callers make their wait uninterruptible (green-core holds kills and
//!   timeouts back and cancels the op instead) so this never happens.
//! * **B4** A `SockAddr`'s length never exceeds its storage, so the kernel
//!   and the conversions below read and write inside it.

use std::cell::Cell;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::{Completion, Op};
use crate::token::OpId;
use crate::Loop;

/// What a caller does while its op is in flight.
///
/// Implemented by green-core's greenlet wait; a plain thread could
/// implement it by running the loop itself.
pub trait OpWait {
    /// The function the loop calls, with the returned word, when the op
    /// completes. It must make a pending [`OpWait::wait`] return (it
    /// schedules the parked greenlet).
    fn waker(&self) -> (fn(&Loop, u64), u64);

    /// Suspends until woken, then returns so the runner can look for the
    /// completion; it may return early (spuriously) and may call
    /// [`Loop::cancel_op`] on `op`. It must not unwind (B3).
    fn wait(&mut self, lp: &Loop, op: OpId);
}

/// Where an op's completion lands: on the frame of the `run_*` call (B2).
struct Landing {
    completion: Cell<Option<Completion>>,
    wake: fn(&Loop, u64),
    wake_data: u64,
}

/// The completion handler of every borrowed op.
fn land(lp: &Loop, c: Completion) {
    // `data` is the address of the `Landing` on the frame of the `run_*`
    // call that submitted this op, which does not return before this final
    // completion has been stored (B1). Only shared access through a `Cell`
    // happens here.
    // SAFETY: B1 and B2 keep the `Landing` alive and unmoved until now.
    let landing = unsafe { &*(c.data as *const Landing) };
    landing.completion.set(Some(c));
    (landing.wake)(lp, landing.wake_data);
}

/// Aborts if dropped while armed: an unwind out of `wait` with the op in
/// flight (B3).
struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        eprintln!(
            "green-loop: a borrowed op's wait unwound while the kernel still owned its \
             buffer; aborting rather than let the kernel write into freed memory"
        );
        std::process::abort();
    }
}

impl Loop {
    /// Submits `op` and waits, through `waiter`, for its final completion.
    ///
    /// # Safety
    ///
    /// Everything `op` points at stays valid until this function returns
    /// (the caller passes pointers derived from borrows it holds across
    /// the call); this function then upholds L1 by B1.
    unsafe fn run_borrowed(&self, op: Op, waiter: &mut dyn OpWait) -> io::Result<Completion> {
        let (wake, wake_data) = waiter.waker();
        let landing = Landing {
            completion: Cell::new(None),
            wake,
            wake_data,
        };
        let data = &landing as *const Landing as u64;
        // SAFETY: the op's memory outlives this call (the caller's
        // contract) and this call outlives the final completion (B1 below).
        let id = unsafe { self.submit(op, land, data)? };
        let armed = AbortOnUnwind;
        // B1: only the stored final completion ends this loop.
        let completion = loop {
            if let Some(c) = landing.completion.get() {
                if !c.more() {
                    break c;
                }
            }
            waiter.wait(self, id);
        };
        std::mem::forget(armed);
        Ok(completion)
    }

    /// Reads into `buf` from `fd` (`pread` at `offset`, or at the current
    /// position for `None`), suspending through `waiter` until it completes.
    ///
    /// # Errors
    ///
    /// The syscall's error, or the submission's.
    pub fn read_borrowed(
        &self,
        fd: BorrowedFd<'_>,
        buf: &mut [u8],
        offset: Option<u64>,
        waiter: &mut dyn OpWait,
    ) -> io::Result<usize> {
        let op = Op::Read {
            fd: fd.as_raw_fd(),
            buf: buf.as_mut_ptr(),
            len: clamp_len(buf.len()),
            offset: offset.unwrap_or(u64::MAX),
        };
        // SAFETY: `buf` is borrowed for the whole call.
        let c = unsafe { self.run_borrowed(op, waiter)? };
        c.to_io_result().map(|n| n as usize)
    }

    /// Writes `buf` to `fd` (`pwrite` at `offset`, or at the current
    /// position for `None`), suspending through `waiter`.
    ///
    /// # Errors
    ///
    /// The syscall's error, or the submission's.
    pub fn write_borrowed(
        &self,
        fd: BorrowedFd<'_>,
        buf: &[u8],
        offset: Option<u64>,
        waiter: &mut dyn OpWait,
    ) -> io::Result<usize> {
        let op = Op::Write {
            fd: fd.as_raw_fd(),
            buf: buf.as_ptr(),
            len: clamp_len(buf.len()),
            offset: offset.unwrap_or(u64::MAX),
        };
        // SAFETY: `buf` is borrowed for the whole call.
        let c = unsafe { self.run_borrowed(op, waiter)? };
        c.to_io_result().map(|n| n as usize)
    }

    /// `recv(2)` into `buf`, suspending through `waiter`.
    ///
    /// # Errors
    ///
    /// The syscall's error, or the submission's.
    pub fn recv_borrowed(
        &self,
        fd: BorrowedFd<'_>,
        buf: &mut [u8],
        flags: i32,
        waiter: &mut dyn OpWait,
    ) -> io::Result<usize> {
        let op = Op::Recv {
            fd: fd.as_raw_fd(),
            buf: buf.as_mut_ptr(),
            len: clamp_len(buf.len()),
            flags,
        };
        // SAFETY: `buf` is borrowed for the whole call.
        let c = unsafe { self.run_borrowed(op, waiter)? };
        c.to_io_result().map(|n| n as usize)
    }

    /// `send(2)` of `buf` (with `MSG_NOSIGNAL` added: a closed peer is
    /// `EPIPE`, never a SIGPIPE), suspending through `waiter`.
    ///
    /// # Errors
    ///
    /// The syscall's error, or the submission's.
    pub fn send_borrowed(
        &self,
        fd: BorrowedFd<'_>,
        buf: &[u8],
        flags: i32,
        waiter: &mut dyn OpWait,
    ) -> io::Result<usize> {
        let op = Op::Send {
            fd: fd.as_raw_fd(),
            buf: buf.as_ptr(),
            len: clamp_len(buf.len()),
            flags: flags | libc::MSG_NOSIGNAL,
        };
        // SAFETY: `buf` is borrowed for the whole call.
        let c = unsafe { self.run_borrowed(op, waiter)? };
        c.to_io_result().map(|n| n as usize)
    }

    /// `recvmsg(2)` into `bufs`, filling `from` with the sender's address
    /// when given. Returns the byte count and the message flags
    /// (`MSG_TRUNC` when a datagram was longer than the buffers).
    ///
    /// # Errors
    ///
    /// The syscall's error, or the submission's.
    pub fn recvmsg_borrowed(
        &self,
        fd: BorrowedFd<'_>,
        bufs: &mut [IoSliceMut<'_>],
        mut from: Option<&mut SockAddr>,
        flags: i32,
        waiter: &mut dyn OpWait,
    ) -> io::Result<(usize, i32)> {
        // SAFETY: msghdr is plain data; all-zero is a valid empty header.
        let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
        // IoSliceMut is ABI-compatible with `struct iovec` on Unix (std's
        // documented guarantee).
        hdr.msg_iov = bufs.as_mut_ptr().cast();
        hdr.msg_iovlen = bufs.len();
        if let Some(addr) = from.as_deref_mut() {
            hdr.msg_name = (&mut addr.storage as *mut libc::sockaddr_storage).cast();
            hdr.msg_namelen = SockAddr::CAPACITY;
        }
        let op = Op::RecvMsg {
            fd: fd.as_raw_fd(),
            msg: &mut hdr,
            flags,
        };
        // SAFETY: `hdr`, `bufs` (and the buffers they name) and `from` are
        // borrowed for the whole call.
        let c = unsafe { self.run_borrowed(op, waiter)? };
        let n = c.to_io_result()? as usize;
        if let Some(addr) = from {
            // B4: the kernel reports the full length even when it truncated.
            addr.len = hdr.msg_namelen.min(SockAddr::CAPACITY);
        }
        Ok((n, hdr.msg_flags))
    }

    /// `sendmsg(2)` of `bufs`, to `to` when given (unconnected datagram
    /// sockets), with `MSG_NOSIGNAL` added.
    ///
    /// # Errors
    ///
    /// The syscall's error, or the submission's.
    pub fn sendmsg_borrowed(
        &self,
        fd: BorrowedFd<'_>,
        bufs: &[IoSlice<'_>],
        to: Option<&SockAddr>,
        flags: i32,
        waiter: &mut dyn OpWait,
    ) -> io::Result<usize> {
        // SAFETY: msghdr is plain data; all-zero is a valid empty header.
        let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
        // IoSlice is ABI-compatible with `struct iovec`; the kernel only
        // reads through this pointer for sendmsg.
        hdr.msg_iov = bufs.as_ptr() as *mut libc::iovec;
        hdr.msg_iovlen = bufs.len();
        if let Some(addr) = to {
            hdr.msg_name = (&addr.storage as *const libc::sockaddr_storage)
                .cast_mut()
                .cast();
            hdr.msg_namelen = addr.len;
        }
        let op = Op::SendMsg {
            fd: fd.as_raw_fd(),
            msg: &hdr,
            flags: flags | libc::MSG_NOSIGNAL,
        };
        // SAFETY: `hdr`, `bufs` and `to` are borrowed for the whole call.
        let c = unsafe { self.run_borrowed(op, waiter)? };
        c.to_io_result().map(|n| n as usize)
    }

    /// `accept4(2)` with `SOCK_CLOEXEC`, filling `peer` when given. The
    /// new connection comes back owned, so one that arrives after the
    /// caller gave up (its wait cancelled the op, but the accept won the
    /// race) is closed when the caller drops it, never leaked.
    ///
    /// # Errors
    ///
    /// The syscall's error (`EMFILE` when out of descriptors), or the
    /// submission's.
    pub fn accept_borrowed(
        &self,
        fd: BorrowedFd<'_>,
        mut peer: Option<&mut SockAddr>,
        waiter: &mut dyn OpWait,
    ) -> io::Result<OwnedFd> {
        let (addr, addrlen) = match peer.as_deref_mut() {
            Some(p) => {
                p.len = SockAddr::CAPACITY;
                (
                    (&mut p.storage as *mut libc::sockaddr_storage).cast(),
                    &mut p.len as *mut libc::socklen_t,
                )
            }
            None => (std::ptr::null_mut(), std::ptr::null_mut()),
        };
        let op = Op::Accept {
            fd: fd.as_raw_fd(),
            addr,
            addrlen,
            flags: libc::SOCK_CLOEXEC,
        };
        // SAFETY: `peer` is borrowed for the whole call.
        let c = unsafe { self.run_borrowed(op, waiter)? };
        let raw = c.to_io_result()? as i32;
        if let Some(p) = peer {
            p.len = p.len.min(SockAddr::CAPACITY); // B4
        }
        // SAFETY: a successful accept returned a new fd nobody else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(raw) })
    }

    /// `connect(2)` to `addr`, suspending through `waiter`.
    ///
    /// # Errors
    ///
    /// The syscall's error (`ECONNREFUSED`, ...), or the submission's.
    pub fn connect_borrowed(
        &self,
        fd: BorrowedFd<'_>,
        addr: &SockAddr,
        waiter: &mut dyn OpWait,
    ) -> io::Result<()> {
        let op = Op::Connect {
            fd: fd.as_raw_fd(),
            addr: (&addr.storage as *const libc::sockaddr_storage).cast(),
            addrlen: addr.len,
        };
        // SAFETY: `addr` is borrowed for the whole call.
        let c = unsafe { self.run_borrowed(op, waiter)? };
        c.to_io_result().map(drop)
    }

    /// Waits until `fd` is ready for `events` (`POLLIN`, `POLLOUT`, ...);
    /// returns the ready mask.
    ///
    /// # Errors
    ///
    /// The submission's error.
    pub fn poll_borrowed(
        &self,
        fd: BorrowedFd<'_>,
        events: u32,
        waiter: &mut dyn OpWait,
    ) -> io::Result<u32> {
        let op = Op::PollAdd {
            fd: fd.as_raw_fd(),
            events,
        };
        // SAFETY: a poll points at no memory.
        let c = unsafe { self.run_borrowed(op, waiter)? };
        c.to_io_result()
    }
}

/// One connection from [`Loop::accept_multishot`].
#[derive(Debug)]
pub struct AcceptShot {
    /// The new connection (close-on-exec, blocking mode), or the error that
    /// ended this shot (`EMFILE`, or `ECANCELED` after a cancel).
    pub conn: io::Result<OwnedFd>,
    /// Whether the multishot accept is still armed (more shots follow).
    pub more: bool,
}

/// The caller's handler for one multishot accept and its data word.
#[derive(Clone, Copy)]
pub(crate) struct AcceptHandler {
    f: fn(&Loop, u64, AcceptShot),
    data: u64,
}

/// The completion handler of every multishot accept: hands each new fd to
/// the caller's handler as an `OwnedFd`.
fn accept_shot(lp: &Loop, c: Completion) {
    let key = crate::token::Key::unpack(c.data);
    let handler = if c.more() {
        lp.inner.accept_handlers.borrow().get(key).copied()
    } else {
        lp.inner.accept_handlers.borrow_mut().remove(key)
    };
    let conn = if c.result >= 0 {
        // SAFETY: a successful AcceptMulti completion carries a new fd that
        // no one else has seen (L7 closes it only when no handler runs).
        Ok(unsafe { OwnedFd::from_raw_fd(c.result) })
    } else {
        Err(io::Error::from_raw_os_error(-c.result))
    };
    // Without a handler (cannot happen: it lives until the final shot) the
    // connection is dropped, hence closed.
    if let Some(h) = handler {
        (h.f)(
            lp,
            h.data,
            AcceptShot {
                conn,
                more: c.more(),
            },
        );
    }
}

impl Loop {
    /// Starts a multishot accept on the listening socket `fd` (where the
    /// kernel lacks it, the loop's [`Features::multishot_accept`] says so and
    /// this fails with `Unsupported`; the epoll backend emulates it).
    /// `f(loop, data, shot)` runs once per connection; the shot without
    /// `more` is the last. Cancel it with [`Loop::cancel_op`]; connections
    /// the kernel accepted before the cancel still arrive, then a final
    /// shot. Nothing is borrowed: the op points at no memory.
    ///
    /// # Errors
    ///
    /// `Unsupported` without kernel support; the submission's error.
    ///
    /// [`Features::multishot_accept`]: crate::Features::multishot_accept
    pub fn accept_multishot(
        &self,
        fd: BorrowedFd<'_>,
        f: fn(&Loop, u64, AcceptShot),
        data: u64,
    ) -> io::Result<OpId> {
        if !self.features().multishot_accept {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "multishot accept needs Linux 5.19 or later",
            ));
        }
        let key = self
            .inner
            .accept_handlers
            .borrow_mut()
            .insert(AcceptHandler { f, data });
        let op = Op::AcceptMulti {
            fd: fd.as_raw_fd(),
            flags: libc::SOCK_CLOEXEC,
        };
        // SAFETY: a multishot accept points at no memory (L1 holds trivially).
        let res = unsafe { self.submit(op, accept_shot, key.pack()) };
        if res.is_err() {
            self.inner.accept_handlers.borrow_mut().remove(key);
        }
        res
    }
}

/// An op moves at most `u32::MAX` bytes; a longer buffer is a short
/// transfer, which `Read`/`Write` callers already handle.
fn clamp_len(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// A socket address in the kernel's layout (`sockaddr_storage` plus its
/// length), for the ops above and the socket helpers in [`crate::sock`].
#[derive(Clone, Copy)]
pub struct SockAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl SockAddr {
    const CAPACITY: libc::socklen_t = std::mem::size_of::<libc::sockaddr_storage>() as _;

    /// An empty address buffer, for ops that fill one in.
    pub fn empty() -> SockAddr {
        SockAddr {
            // SAFETY: sockaddr_storage is plain data; zero is AF_UNSPEC.
            storage: unsafe { std::mem::zeroed() },
            len: 0,
        }
    }

    /// The address family (`AF_INET`, `AF_INET6`, `AF_UNIX`, ...).
    pub fn family(&self) -> i32 {
        i32::from(self.storage.ss_family)
    }

    /// The length the kernel reported or was given.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether nothing was filled in (an unnamed peer).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The kernel layout of `addr`.
    pub fn from_std(addr: &SocketAddr) -> SockAddr {
        let mut out = SockAddr::empty();
        match addr {
            SocketAddr::V4(a) => {
                // SAFETY: sockaddr_in is plain data.
                let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                // SAFETY: sockaddr_in fits in sockaddr_storage (B4); both are plain data.
                unsafe {
                    std::ptr::write(&mut out.storage as *mut _ as *mut libc::sockaddr_in, sin)
                };
                out.len = std::mem::size_of::<libc::sockaddr_in>() as _;
            }
            SocketAddr::V6(a) => {
                // SAFETY: sockaddr_in6 is plain data.
                let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_addr.s6_addr = a.ip().octets();
                sin6.sin6_flowinfo = a.flowinfo();
                sin6.sin6_scope_id = a.scope_id();
                // SAFETY: sockaddr_in6 fits in sockaddr_storage (B4).
                unsafe {
                    std::ptr::write(&mut out.storage as *mut _ as *mut libc::sockaddr_in6, sin6)
                };
                out.len = std::mem::size_of::<libc::sockaddr_in6>() as _;
            }
        }
        out
    }

    /// A Unix-domain path address.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a path too long for `sun_path` or one with a NUL.
    pub fn unix_path(path: &Path) -> io::Result<SockAddr> {
        let bytes = path.as_os_str().as_bytes();
        // SAFETY: sockaddr_un is plain data.
        let mut sun: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        if bytes.len() >= sun.sun_path.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "unix socket path is {} bytes; the limit is {}",
                    bytes.len(),
                    sun.sun_path.len() - 1
                ),
            ));
        }
        if bytes.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "unix socket path contains a NUL byte",
            ));
        }
        sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (dst, &src) in sun.sun_path.iter_mut().zip(bytes) {
            *dst = src as libc::c_char;
        }
        let mut out = SockAddr::empty();
        // SAFETY: sockaddr_un fits in sockaddr_storage (B4).
        unsafe { std::ptr::write(&mut out.storage as *mut _ as *mut libc::sockaddr_un, sun) };
        out.len = (std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as _;
        Ok(out)
    }

    /// The address as a std `SocketAddr`, for the inet families.
    pub fn to_std(&self) -> Option<SocketAddr> {
        match self.family() {
            libc::AF_INET if self.len as usize >= std::mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: the family says the storage holds a sockaddr_in, and
                // the length covers it (B4).
                let sin: libc::sockaddr_in = unsafe {
                    std::ptr::read(&self.storage as *const _ as *const libc::sockaddr_in)
                };
                let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
                Some(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 if self.len as usize >= std::mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above, for sockaddr_in6 (B4).
                let sin6: libc::sockaddr_in6 = unsafe {
                    std::ptr::read(&self.storage as *const _ as *const libc::sockaddr_in6)
                };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Some(SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    /// The path of a Unix-domain address (`None` for an unnamed or
    /// abstract one).
    pub fn unix_pathname(&self) -> Option<std::path::PathBuf> {
        if self.family() != libc::AF_UNIX {
            return None;
        }
        let header = std::mem::size_of::<libc::sa_family_t>();
        let len = (self.len as usize).checked_sub(header)?;
        // SAFETY: the family says the storage holds a sockaddr_un (B4).
        let sun: libc::sockaddr_un =
            unsafe { std::ptr::read(&self.storage as *const _ as *const libc::sockaddr_un) };
        let raw: Vec<u8> = sun.sun_path[..len.min(sun.sun_path.len())]
            .iter()
            .map(|&c| c as u8)
            .take_while(|&b| b != 0)
            .collect();
        if raw.is_empty() {
            return None;
        }
        Some(std::ffi::OsStr::from_bytes(&raw).into())
    }

    /// The name of an abstract Unix-domain address (Linux: `sun_path`
    /// starting with a NUL byte), without that byte.
    pub fn unix_abstract_name(&self) -> Option<Vec<u8>> {
        if self.family() != libc::AF_UNIX {
            return None;
        }
        let header = std::mem::size_of::<libc::sa_family_t>();
        let len = (self.len as usize).checked_sub(header)?;
        // SAFETY: the family says the storage holds a sockaddr_un (B4).
        let sun: libc::sockaddr_un =
            unsafe { std::ptr::read(&self.storage as *const _ as *const libc::sockaddr_un) };
        let path = &sun.sun_path[..len.min(sun.sun_path.len())];
        match path.split_first() {
            Some((0, name)) => Some(name.iter().map(|&c| c as u8).collect()),
            _ => None,
        }
    }

    /// The storage and its length as out-parameters (the length set to the
    /// capacity), for `getsockname`-like calls.
    pub(crate) fn raw_mut(&mut self) -> (*mut libc::sockaddr, *mut libc::socklen_t) {
        self.len = SockAddr::CAPACITY;
        (
            (&mut self.storage as *mut libc::sockaddr_storage).cast(),
            &mut self.len,
        )
    }

    /// B4 after the kernel reported a length.
    pub(crate) fn clamp_len(&mut self) {
        self.len = self.len.min(SockAddr::CAPACITY);
    }

    /// A pointer and length for the syscall wrappers in [`crate::sock`].
    pub(crate) fn raw(&self) -> (*const libc::sockaddr, libc::socklen_t) {
        (
            (&self.storage as *const libc::sockaddr_storage).cast(),
            self.len,
        )
    }
}

impl std::fmt::Debug for SockAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.to_std(), self.unix_pathname()) {
            (Some(a), _) => write!(f, "SockAddr({a})"),
            (None, Some(p)) => write!(f, "SockAddr(unix {})", p.display()),
            _ => write!(f, "SockAddr(family {}, {} bytes)", self.family(), self.len),
        }
    }
}
