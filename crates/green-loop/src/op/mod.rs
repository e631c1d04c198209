//! Operations: what the loop can ask the kernel to do, and who owns an op's
//! memory while it is in flight.
//!
//! # Lifecycle
//!
//! ```text
//!  submit()            enter()             CQE reaped            handler called
//!  ──────► Submitted ─────────► (kernel) ──────────────► Completed ──────────► slot freed
//!              │ cancel_op()                   ▲
//!              └──────► Cancelling ─ ASYNC_CANCEL ┘  (the op's own CQE still arrives:
//!                                                     -ECANCELED or its real result)
//! ```
//!
//! A multishot op (`AcceptMulti`) stays `Submitted` across completions that
//! carry the MORE flag; only the completion without it frees the slot.
//!
//! # Invariants
//!
//! * **L1** Nothing an SQE points at (buffer, `sockaddr`, `socklen_t`,
//!   `Timespec`) is freed, moved or reused until that op's final CQE has been
//!   reaped, even if `io_uring_enter` returned an error after the push. For
//!   caller memory, [`Loop::submit`]'s safety contract puts the obligation on
//!   the caller until the completion handler runs. The epoll backend honours
//!   the same rule: it may touch the memory in a syscall at any time between
//!   push and completion.
//! * **L2** An op's slot (its handler, data and id) exists from push until its
//!   final completion is dispatched. [`Loop::cancel_op`] never frees a slot;
//!   it only moves `Submitted → Cancelling`. So a `user_data` is never reused
//!   while the kernel may still post a CQE carrying it.
//! * **L3** Dropping the loop cancels every in-flight op and reaps until the
//!   backend reports none in flight, *then* unmaps the ring and frees
//!   loop-owned buffers. "The kernel will clean up" is never relied on.
//! * **L4** Loop-owned buffers (the wakeup eventfd counter, signalfd records)
//!   are freed only after their op's final completion or after L3's drain.
//! * **L5** Only the loop's thread pushes SQEs or enters the ring (`Loop` is
//!   `!Send`); this is what makes `IORING_SETUP_SINGLE_ISSUER` sound.
//! * **L6** A push either lands in the SQ (and then L1 holds) or fails with
//!   nothing queued (and the caller keeps its memory). A full SQ is flushed to
//!   the kernel and the push retried; an op is never dropped.
//! * **L7** An `Accept` that completes successfully while the loop is being
//!   dropped has its new fd closed, so teardown leaks no descriptors.

use std::os::fd::RawFd;
use std::time::Duration;

use io_uring::squeue;

use crate::token::{Key, OpId};
use crate::Loop;

pub(crate) mod accept;
pub(crate) mod async_cancel;
pub(crate) mod borrowed;
pub(crate) mod close;
pub(crate) mod connect;
pub(crate) mod msg;
pub(crate) mod nop;
pub(crate) mod poll_add;
pub(crate) mod read;
pub(crate) mod recv;
pub(crate) mod send;
pub(crate) mod timeout;
pub(crate) mod write;

/// A relative timeout for [`Op::Timeout`], laid out as the kernel's
/// `struct __kernel_timespec` (and io-uring's `types::Timespec`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timespec {
    /// Whole seconds.
    pub tv_sec: i64,
    /// Nanoseconds, below 1 000 000 000.
    pub tv_nsec: i64,
}

impl From<Duration> for Timespec {
    fn from(d: Duration) -> Timespec {
        Timespec {
            tv_sec: d.as_secs() as i64,
            tv_nsec: i64::from(d.subsec_nanos()),
        }
    }
}

impl Timespec {
    /// The timespec as a `Duration` (negative fields count as zero).
    pub fn to_duration(self) -> Duration {
        Duration::new(
            self.tv_sec.max(0) as u64,
            self.tv_nsec.clamp(0, 999_999_999) as u32,
        )
    }
}

/// An operation both backends can perform.
///
/// Pointers are raw because the memory is *borrowed* for the op's whole
/// flight (`docs/design/DESIGN.md` §4); see [`Loop::submit`] for the obligation (L1).
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// Completes with 0; measures the loop's own overhead.
    Nop,
    /// `read(2)`/`pread(2)`; `offset == u64::MAX` reads at the current position.
    Read {
        /// File descriptor.
        fd: RawFd,
        /// Destination buffer.
        buf: *mut u8,
        /// Buffer length.
        len: u32,
        /// File offset, or `u64::MAX` for the current position.
        offset: u64,
    },
    /// `write(2)`/`pwrite(2)`; `offset == u64::MAX` writes at the current position.
    Write {
        /// File descriptor.
        fd: RawFd,
        /// Source buffer.
        buf: *const u8,
        /// Buffer length.
        len: u32,
        /// File offset, or `u64::MAX` for the current position.
        offset: u64,
    },
    /// `recv(2)`.
    Recv {
        /// Socket.
        fd: RawFd,
        /// Destination buffer.
        buf: *mut u8,
        /// Buffer length.
        len: u32,
        /// `MSG_*` flags.
        flags: i32,
    },
    /// `send(2)`.
    Send {
        /// Socket.
        fd: RawFd,
        /// Source buffer.
        buf: *const u8,
        /// Buffer length.
        len: u32,
        /// `MSG_*` flags.
        flags: i32,
    },
    /// `sendmsg(2)`.
    SendMsg {
        /// Socket.
        fd: RawFd,
        /// The message header (iovecs and optional address).
        msg: *const libc::msghdr,
        /// `MSG_*` flags.
        flags: i32,
    },
    /// `recvmsg(2)`.
    RecvMsg {
        /// Socket.
        fd: RawFd,
        /// The message header (iovecs and optional address out-buffer).
        msg: *mut libc::msghdr,
        /// `MSG_*` flags.
        flags: i32,
    },
    /// `accept4(2)`; the result is the new fd.
    Accept {
        /// Listening socket.
        fd: RawFd,
        /// Peer address out-parameter (may be null).
        addr: *mut libc::sockaddr,
        /// In/out length of `addr` (may be null when `addr` is).
        addrlen: *mut libc::socklen_t,
        /// `SOCK_CLOEXEC`/`SOCK_NONBLOCK`.
        flags: i32,
    },
    /// Multishot accept: one completion per connection, each with
    /// [`Completion::more`] set until the last.
    AcceptMulti {
        /// Listening socket.
        fd: RawFd,
        /// `SOCK_CLOEXEC`/`SOCK_NONBLOCK`.
        flags: i32,
    },
    /// `connect(2)`; completes with 0 or `-errno`.
    Connect {
        /// Socket.
        fd: RawFd,
        /// Address to connect to.
        addr: *const libc::sockaddr,
        /// Length of `addr`.
        addrlen: libc::socklen_t,
    },
    /// One-shot readiness; completes with the `revents` mask.
    PollAdd {
        /// File descriptor.
        fd: RawFd,
        /// `POLLIN`/`POLLOUT`/... mask.
        events: u32,
    },
    /// Completes with `-ETIME` after the relative timeout (`ts` is read at
    /// push time on epoll and at submission on io_uring; keep it alive anyway, L1).
    Timeout {
        /// Relative timeout.
        ts: *const Timespec,
    },
    /// `close(2)`.
    Close {
        /// File descriptor to close.
        fd: RawFd,
    },
}

impl Op {
    /// The io_uring SQE for this op (without `user_data`).
    pub(crate) fn sqe(&self) -> squeue::Entry {
        match *self {
            Op::Nop => nop::sqe(),
            Op::Read {
                fd,
                buf,
                len,
                offset,
            } => read::sqe(fd, buf, len, offset),
            Op::Write {
                fd,
                buf,
                len,
                offset,
            } => write::sqe(fd, buf, len, offset),
            Op::Recv {
                fd,
                buf,
                len,
                flags,
            } => recv::sqe(fd, buf, len, flags),
            Op::Send {
                fd,
                buf,
                len,
                flags,
            } => send::sqe(fd, buf, len, flags),
            Op::SendMsg { fd, msg, flags } => msg::send_sqe(fd, msg, flags),
            Op::RecvMsg { fd, msg, flags } => msg::recv_sqe(fd, msg, flags),
            Op::Accept {
                fd,
                addr,
                addrlen,
                flags,
            } => accept::sqe(fd, addr, addrlen, flags),
            Op::AcceptMulti { fd, flags } => accept::sqe_multi(fd, flags),
            Op::Connect { fd, addr, addrlen } => connect::sqe(fd, addr, addrlen),
            Op::PollAdd { fd, events } => poll_add::sqe(fd, events),
            Op::Timeout { ts } => timeout::sqe(ts),
            Op::Close { fd } => close::sqe(fd),
        }
    }

    /// True for ops whose successful result is a new fd the loop must close
    /// if nobody will receive it (L7).
    pub(crate) fn yields_fd(&self) -> bool {
        matches!(self, Op::Accept { .. } | Op::AcceptMulti { .. })
    }
}

/// Outcome of one nonblocking attempt by the epoll backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// Finished with this result (`>= 0` or `-errno`).
    Done(i32),
    /// EAGAIN: wait for readiness and try again.
    WouldBlock,
}

/// Maps a raw syscall return value to an [`Attempt`], reading `errno` when
/// the call failed. EINTR is reported as `None` so the caller retries.
pub(crate) fn attempt_from(ret: isize) -> Option<Attempt> {
    if ret >= 0 {
        return Some(Attempt::Done(ret as i32));
    }
    let errno = std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO);
    match errno {
        libc::EINTR => None,
        libc::EAGAIN => Some(Attempt::WouldBlock),
        e => Some(Attempt::Done(-e)),
    }
}

/// Where an op is in its life (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lifecycle {
    /// Pushed (maybe still in the SQ, maybe in the kernel).
    Submitted,
    /// `ASYNC_CANCEL` pushed; the op's own CQE is still owed (L2).
    Cancelling,
}

/// The loop's record of one in-flight op.
pub(crate) struct OpSlot {
    pub(crate) lifecycle: Lifecycle,
    pub(crate) handler: fn(&Loop, Completion),
    pub(crate) data: u64,
    /// Whether this op keeps the loop alive (counted in `op_refs`).
    pub(crate) referenced: bool,
    /// L7: a successful result is an fd to close on teardown.
    pub(crate) yields_fd: bool,
}

/// One completion delivered to an op's handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The op this completion belongs to.
    pub op: OpId,
    /// The `data` word given at submission.
    pub data: u64,
    /// Result: `>= 0` on success, `-errno` on failure (`-ECANCELED` after a
    /// successful cancel).
    pub result: i32,
    /// CQE flags (`IORING_CQE_F_*`; the epoll backend sets MORE only).
    pub flags: u32,
}

/// `IORING_CQE_F_MORE`: more completions follow for this (multishot) op.
pub const CQE_F_MORE: u32 = 1 << 1;

impl Completion {
    /// Multishot: more completions follow for this op (the op is still in flight).
    pub fn more(&self) -> bool {
        self.flags & CQE_F_MORE != 0
    }

    /// The result as an `io::Result`: `Ok(n)` or the `-errno` as an error.
    pub fn to_io_result(&self) -> std::io::Result<u32> {
        if self.result >= 0 {
            Ok(self.result as u32)
        } else {
            Err(std::io::Error::from_raw_os_error(-self.result))
        }
    }
}

// ===== impl Loop: ops =====

impl Loop {
    /// Submits `op`; `f(loop, completion)` runs on the loop's thread when it
    /// completes (once, or once per shot for multishot ops). The op reaches
    /// the kernel with the next iteration's single `io_uring_enter`.
    ///
    /// # Errors
    ///
    /// Fails only if the op could not be queued at all (e.g. the ring is
    /// broken); then nothing was queued and the memory is the caller's again.
    ///
    /// # Safety
    ///
    /// * Every buffer/pointer the op refers to stays valid and unmoved until
    ///   its *final* completion handler has been called (L1), even after
    ///   [`Loop::cancel_op`], or until the loop has been dropped.
    /// * Buffers being written by the kernel are not read or written by
    ///   anyone else until then.
    pub unsafe fn submit(
        &self,
        op: Op,
        f: fn(&Loop, Completion),
        data: u64,
    ) -> std::io::Result<OpId> {
        let key = self.insert_op(f, data, true, op.yields_fd());
        let res = {
            let mut backend = self.inner.backend.borrow_mut();
            // SAFETY: the caller guarantees the op's memory outlives its final
            // completion (L1); the slot `key` lives until then (L2).
            unsafe { backend.push(key.pack(), &op) }
        };
        self.finish_push(key, res)
    }

    /// Submits a caller-built io_uring SQE (its `user_data` is overwritten
    /// with the op's token). io_uring backend only.
    ///
    /// # Errors
    ///
    /// `ErrorKind::Unsupported` on the epoll backend.
    ///
    /// # Safety
    ///
    /// * Everything the entry points at stays valid and unmoved until its
    ///   final completion handler has been called (L1).
    /// * The entry must not carry flags that change the loop's accounting
    ///   (`IOSQE_CQE_SKIP_SUCCESS`, links whose CQEs are skipped).
    pub unsafe fn submit_entry(
        &self,
        entry: squeue::Entry,
        f: fn(&Loop, Completion),
        data: u64,
    ) -> std::io::Result<OpId> {
        let key = self.insert_op(f, data, true, false);
        let res = {
            let mut backend = self.inner.backend.borrow_mut();
            // SAFETY: caller's contract (L1); slot lives until the final CQE (L2).
            unsafe { backend.push_entry(key.pack(), entry) }
        };
        self.finish_push(key, res)
    }

    /// Submits a `Nop` (safe: it points at nothing). Useful for measuring
    /// the loop and for waking it through the ring.
    pub fn submit_nop(&self, f: fn(&Loop, Completion), data: u64) -> std::io::Result<OpId> {
        // SAFETY: a Nop refers to no memory, so L1 holds trivially.
        unsafe { self.submit(Op::Nop, f, data) }
    }

    /// Internal: read into a buffer the loop owns (wakeup counter, signalfd
    /// record). Unreferenced: internal watchers never keep the loop alive.
    ///
    /// Callers in this crate pass only buffers that are freed after the
    /// op's final completion or after the drop drain (L4).
    pub(crate) fn submit_owned_read(
        &self,
        fd: RawFd,
        buf: *mut u8,
        len: u32,
        f: fn(&Loop, Completion),
        data: u64,
    ) -> std::io::Result<OpId> {
        let key = self.insert_op(f, data, false, false);
        let op = Op::Read {
            fd,
            buf,
            len,
            offset: u64::MAX,
        };
        let res = {
            let mut backend = self.inner.backend.borrow_mut();
            // SAFETY: `buf` is loop-owned and outlives the op (L4 → L1).
            unsafe { backend.push(key.pack(), &op) }
        };
        self.finish_push(key, res)
    }

    fn insert_op(
        &self,
        f: fn(&Loop, Completion),
        data: u64,
        referenced: bool,
        yields_fd: bool,
    ) -> Key {
        let key = self.inner.ops.borrow_mut().insert(OpSlot {
            lifecycle: Lifecycle::Submitted,
            handler: f,
            data,
            referenced,
            yields_fd,
        });
        if referenced {
            self.inner.op_refs.set(self.inner.op_refs.get() + 1);
        }
        key
    }

    fn finish_push(&self, key: Key, res: std::io::Result<()>) -> std::io::Result<OpId> {
        match res {
            Ok(()) => {
                self.inner.stats_mut(|s| s.submitted += 1);
                tracing::trace!(op = key.pack(), "op submitted");
                Ok(OpId(key.pack()))
            }
            Err(e) => {
                // L6: nothing was queued; forget the slot.
                if let Some(slot) = self.inner.ops.borrow_mut().remove(key) {
                    if slot.referenced {
                        self.inner.op_refs.set(self.inner.op_refs.get() - 1);
                    }
                }
                tracing::debug!(error = %e, "op submission failed");
                Err(e)
            }
        }
    }

    /// Asks the kernel to cancel an in-flight op. The op's own completion
    /// still arrives: `-ECANCELED`, or its real result if it won the race.
    /// Its memory stays borrowed until then (L1).
    ///
    /// # Errors
    ///
    /// `NotFound` if the op already delivered its final completion.
    pub fn cancel_op(&self, id: OpId) -> std::io::Result<()> {
        let key = id.key();
        if self.mark_cancelling(id)? == Lifecycle::Cancelling {
            return Ok(());
        }
        tracing::trace!(op = id.0, "cancel requested");
        let res = self.inner.backend.borrow_mut().cancel(key.pack());
        if res.is_err() {
            // The cancel never reached the kernel: the op is still simply in
            // flight, so a later `cancel_op` must try again.
            let mut ops = self.inner.ops.borrow_mut();
            if let Some(slot) = ops.get_mut(key) {
                if slot.lifecycle == Lifecycle::Cancelling {
                    slot.lifecycle = Lifecycle::Submitted;
                }
            }
        }
        res
    }

    /// [`cancel_op`](Loop::cancel_op), finished before returning where the
    /// kernel allows (io_uring's synchronous cancel, Linux 6.0+; always on
    /// epoll): the kernel no longer holds the op's file when this returns,
    /// so closing a listening socket whose accept was in flight releases
    /// its port at once. The op's completion still arrives through the loop
    /// as usual. Costs a few syscalls: for teardown paths, not hot ones.
    ///
    /// # Errors
    ///
    /// `NotFound` if the op already delivered its final completion.
    pub fn cancel_op_now(&self, id: OpId) -> std::io::Result<()> {
        self.mark_cancelling(id)?;
        tracing::trace!(op = id.0, "synchronous cancel requested");
        self.inner.backend.borrow_mut().cancel_now(id.key().pack())
    }

    /// Marks an in-flight op as being cancelled; its lifecycle before.
    ///
    /// # Errors
    ///
    /// `NotFound` if the op already delivered its final completion.
    fn mark_cancelling(&self, id: OpId) -> std::io::Result<Lifecycle> {
        let mut ops = self.inner.ops.borrow_mut();
        let Some(slot) = ops.get_mut(id.key()) else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "op already completed",
            ));
        };
        Ok(std::mem::replace(
            &mut slot.lifecycle,
            Lifecycle::Cancelling,
        ))
    }

    /// Whether an op keeps the loop alive (default: yes).
    pub fn set_op_ref(&self, id: OpId, referenced: bool) {
        let mut ops = self.inner.ops.borrow_mut();
        if let Some(slot) = ops.get_mut(id.key()) {
            if slot.referenced != referenced {
                slot.referenced = referenced;
                let r = self.inner.op_refs.get();
                self.inner
                    .op_refs
                    .set(if referenced { r + 1 } else { r - 1 });
            }
        }
    }

    /// Whether `id` is still in flight (its final completion not yet delivered).
    pub fn op_in_flight(&self, id: OpId) -> bool {
        self.inner.ops.borrow().get(id.key()).is_some()
    }
}
