//! Backend façade: io_uring, or epoll where io_uring cannot be had.
//!
//! Both backends offer the same methods (polling-style): `push` an op under
//! a `user_data`, `cancel` one, `enter` (submit everything pending and wait,
//! bounded), `pop_completion`, and `shutdown` (cancel + drain, L3). The loop
//! above never knows which one it drives, except through [`BackendKind`].
//!
//! # Choosing
//!
//! [`BackendChoice::Auto`] (the default) honours `GREEN_LOOP_BACKEND=epoll`
//! or `=io_uring`; otherwise it tries io_uring and falls back to epoll with a
//! tracing warning naming the cause. An explicit [`BackendChoice::IoUring`]
//! turns the same failure into an error that names the cause and the fix,
//! e.g. the `kernel.io_uring_disabled` sysctl or a seccomp profile.

#[cfg(not(target_os = "linux"))]
compile_error!("green-loop supports Linux only (io_uring, with an epoll fallback)");

use std::io;
use std::time::Duration;

use io_uring::squeue;

use crate::op::Op;

pub(crate) mod epoll;
pub mod fd;
pub mod pidfd;
pub mod sock;
pub(crate) mod sys;
pub(crate) mod uring;

/// Which backend a loop runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// io_uring.
    IoUring,
    /// epoll plus nonblocking syscalls (the fallback).
    Epoll,
}

/// Which backend to build.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BackendChoice {
    /// `GREEN_LOOP_BACKEND=epoll|io_uring` if set; else io_uring, falling
    /// back to epoll (with a tracing warning) if io_uring cannot be set up.
    #[default]
    Auto,
    /// io_uring or an error naming the cause and the fix.
    IoUring,
    /// epoll, always.
    Epoll,
}

/// The environment variable read by [`BackendChoice::Auto`].
pub const BACKEND_ENV: &str = "GREEN_LOOP_BACKEND";

/// What the backend found at start (io_uring's probe; fixed values on epoll).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Features {
    /// The backend in use.
    pub backend: BackendKind,
    /// Ring set up with `IORING_SETUP_SINGLE_ISSUER`.
    pub single_issuer: bool,
    /// Ring set up with `IORING_SETUP_DEFER_TASKRUN`.
    pub defer_taskrun: bool,
    /// Ring set up with `IORING_SETUP_COOP_TASKRUN`.
    pub coop_taskrun: bool,
    /// Ring set up with `IORING_SETUP_SUBMIT_ALL`.
    pub submit_all: bool,
    /// Waits bounded through `IORING_ENTER_EXT_ARG` (else a timeout SQE).
    pub ext_arg: bool,
    /// Multishot accept available (Linux 5.19+; emulated on epoll).
    pub multishot_accept: bool,
    /// SQ entries.
    pub sq_entries: u32,
    /// Bitmap of supported opcodes (256 bits), copied from the probe so
    /// `Features` stays `Clone` and cheap to query.
    opcodes: [u64; 4],
}

impl Features {
    /// Whether the kernel (or the epoll emulation) supports `opcode`
    /// (`io_uring::opcode::X::CODE`).
    pub fn supports(&self, opcode: u8) -> bool {
        self.opcodes[(opcode / 64) as usize] & (1 << (opcode % 64)) != 0
    }

    pub(crate) fn empty(backend: BackendKind) -> Features {
        Features {
            backend,
            single_issuer: false,
            defer_taskrun: false,
            coop_taskrun: false,
            submit_all: false,
            ext_arg: false,
            multishot_accept: false,
            sq_entries: 0,
            opcodes: [0; 4],
        }
    }

    pub(crate) fn set_supported(&mut self, opcode: u8) {
        self.opcodes[(opcode / 64) as usize] |= 1 << (opcode % 64);
    }
}

/// One completion as reaped from the backend.
#[derive(Clone, Copy, Debug)]
///
/// Both backends produce these; the loop dispatches them without knowing
/// which backend made them.
pub(crate) struct Cqe {
    pub(crate) user_data: u64,
    pub(crate) result: i32,
    pub(crate) flags: u32,
}

/// The façade.
// One backend per loop, built once: boxing the larger variant would only add
// an indirection on the hot path.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Backend {
    Uring(uring::Uring),
    Epoll(epoll::Epoll),
}

impl Backend {
    /// Builds the backend `choice` asks for (see the module docs).
    pub(crate) fn open(choice: BackendChoice, entries: u32) -> io::Result<Backend> {
        // The environment only refines `Auto`: an explicit choice in code
        // wins, so a program that needs io_uring cannot be silently
        // downgraded by a stray variable.
        let choice = match choice {
            BackendChoice::Auto => match std::env::var(BACKEND_ENV).as_deref() {
                Ok("epoll") => BackendChoice::Epoll,
                Ok("io_uring") | Ok("io-uring") | Ok("uring") => BackendChoice::IoUring,
                Ok("") | Ok("auto") | Err(_) => BackendChoice::Auto,
                Ok(other) => {
                    tracing::warn!(
                        value = other,
                        "unknown {BACKEND_ENV} value (expected epoll or io_uring); using auto"
                    );
                    BackendChoice::Auto
                }
            },
            c => c,
        };
        match choice {
            BackendChoice::Epoll => Ok(Backend::Epoll(epoll::Epoll::new()?)),
            BackendChoice::IoUring => Ok(Backend::Uring(uring::Uring::new(entries)?)),
            // Auto: the setup error already names cause and fix; log it as a
            // warning (nothing is printed without a subscriber) and degrade.
            BackendChoice::Auto => match uring::Uring::new(entries) {
                Ok(u) => Ok(Backend::Uring(u)),
                Err(e) => {
                    tracing::warn!(cause = %e, "io_uring unavailable; falling back to the epoll backend");
                    Ok(Backend::Epoll(epoll::Epoll::new()?))
                }
            },
        }
    }

    /// F1: whether this backend was inherited across [`sys::fork`]: its ring
    /// (shared memory) or epoll instance (a shared interest list) belongs to
    /// the parent, so this process must never submit, cancel or wait on it.
    fn inherited(&self) -> bool {
        let born = match self {
            Backend::Uring(b) => b.born,
            Backend::Epoll(b) => b.born,
        };
        born != sys::fork_generation()
    }

    /// The error every use of an inherited backend gets (F1).
    #[cold]
    fn inherited_error() -> io::Error {
        io::Error::other(
            "green-loop: this event loop was built before fork() in the parent process; its \
             io_uring ring (or epoll instance) is shared with the parent, so the child must \
             not use it: build a new Loop in the child (green_core::os::fork does, through \
             green_core::os::reinit)",
        )
    }

    pub(crate) fn features(&self) -> Features {
        match self {
            Backend::Uring(b) => b.features.clone(),
            Backend::Epoll(_) => epoll::Epoll::features(),
        }
    }

    /// Queues `op` under `user_data`.
    ///
    /// # Safety
    ///
    /// * The op's memory stays valid until its final completion is popped (L1).
    pub(crate) unsafe fn push(&mut self, user_data: u64, op: &Op) -> io::Result<()> {
        if self.inherited() {
            return Err(Backend::inherited_error());
        }
        match self {
            // io_uring takes the op as an SQE; epoll keeps the description
            // and performs it itself. Either way the memory is borrowed (L1).
            Backend::Uring(b) => b.push(op.sqe().user_data(user_data)),
            // SAFETY: forwarded caller contract (L1).
            Backend::Epoll(b) => unsafe { b.push(user_data, op) },
        }
    }

    /// Queues a raw SQE (io_uring only).
    ///
    /// # Safety
    ///
    /// * The entry's memory stays valid until its final completion is popped (L1).
    pub(crate) unsafe fn push_entry(
        &mut self,
        user_data: u64,
        entry: squeue::Entry,
    ) -> io::Result<()> {
        if self.inherited() {
            return Err(Backend::inherited_error());
        }
        match self {
            Backend::Uring(b) => b.push(entry.user_data(user_data)),
            // An arbitrary SQE cannot be emulated: say so instead of
            // guessing what the entry meant.
            Backend::Epoll(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "raw io_uring entries need the io_uring backend (this loop runs on epoll)",
            )),
        }
    }

    pub(crate) fn cancel(&mut self, user_data: u64) -> io::Result<()> {
        if self.inherited() {
            return Err(Backend::inherited_error());
        }
        match self {
            Backend::Uring(b) => b.cancel(user_data),
            Backend::Epoll(b) => {
                b.cancel(user_data);
                Ok(())
            }
        }
    }

    /// Cancels `user_data`'s op before returning where the kernel allows
    /// (see `UringBackend::cancel_now`); epoll's cancel is synchronous.
    pub(crate) fn cancel_now(&mut self, user_data: u64) -> io::Result<()> {
        if self.inherited() {
            return Err(Backend::inherited_error());
        }
        match self {
            Backend::Uring(b) => b.cancel_now(user_data),
            Backend::Epoll(b) => {
                b.cancel(user_data);
                Ok(())
            }
        }
    }

    /// Submits everything pending and waits up to `timeout` (`None` = until
    /// a completion) for completions: one `io_uring_enter` / `epoll_wait`.
    pub(crate) fn enter(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if self.inherited() {
            return Err(Backend::inherited_error());
        }
        match self {
            Backend::Uring(b) => b.enter(timeout),
            Backend::Epoll(b) => b.enter(timeout),
        }
    }

    pub(crate) fn pop_completion(&mut self) -> Option<Cqe> {
        match self {
            Backend::Uring(b) => b.pop(),
            Backend::Epoll(b) => b.ready.pop_front(),
        }
    }

    /// Completions waiting to be popped (io_uring: an upper bound).
    pub(crate) fn ready_len(&mut self) -> usize {
        match self {
            Backend::Uring(b) => b.pending(),
            Backend::Epoll(b) => b.ready.len(),
        }
    }

    /// L3: cancels `user_datas` and reaps until nothing is in flight. The
    /// completions stay queued for the caller to pop (to close fds, L7).
    pub(crate) fn shutdown(&mut self, user_datas: &[u64]) {
        if self.inherited() {
            // F1: the ops in flight are the parent's (the kernel completes
            // them into the parent's memory); nothing here waits for them.
            return;
        }
        match self {
            Backend::Uring(b) => b.shutdown(user_datas),
            Backend::Epoll(b) => b.shutdown(user_datas),
        }
    }

    /// `io_uring_enter` (or `epoll_wait`) calls so far.
    pub(crate) fn enter_calls(&self) -> u64 {
        match self {
            Backend::Uring(b) => b.enter_calls,
            Backend::Epoll(b) => b.enter_calls,
        }
    }
}

/// Explains an io_uring setup failure: cause and fix, in one message.
/// `sysctl` is the value of `/proc/sys/kernel/io_uring_disabled`, if readable.
///
/// Order matters: the sysctl is checked first because it also produces
/// EPERM, and naming it is more useful than blaming seccomp.
pub(crate) fn diagnose_setup_error(errno: Option<i32>, sysctl: Option<u32>) -> String {
    const FALLBACK: &str = "or use the epoll backend (GREEN_LOOP_BACKEND=epoll, or \
        BackendChoice::Epoll through green_core::RunOptions or green_loop::Builder)";
    match (errno, sysctl) {
        (_, Some(v @ 1..)) if errno == Some(libc::EPERM) || v == 2 => format!(
            "io_uring is disabled by the kernel.io_uring_disabled sysctl (value {v}); \
             set it to 0 (sysctl -w kernel.io_uring_disabled=0){} {FALLBACK}",
            if v == 1 {
                ", or add this user to the kernel.io_uring_group group,"
            } else {
                ""
            }
        ),
        (Some(libc::EPERM), _) => format!(
            "io_uring_setup was denied (EPERM), most likely by a seccomp profile such as a \
             container runtime's default; allow io_uring_setup, io_uring_enter and \
             io_uring_register in the profile (e.g. docker --security-opt seccomp=...) {FALLBACK}"
        ),
        (Some(libc::ENOSYS), _) => format!(
            "this kernel has no io_uring (ENOSYS): it is older than 5.1 or built without \
             CONFIG_IO_URING, or a seccomp filter returns ENOSYS; upgrade the kernel {FALLBACK}"
        ),
        (Some(libc::ENOMEM), _) => format!(
            "io_uring ring allocation failed (ENOMEM): on kernels before 5.12 rings count \
             against RLIMIT_MEMLOCK; raise `ulimit -l` or use fewer entries {FALLBACK}"
        ),
        (e, _) => format!(
            "io_uring setup failed ({}); {FALLBACK}",
            e.map(|e| io::Error::from_raw_os_error(e).to_string())
                .unwrap_or_else(|| "unknown error".into())
        ),
    }
}

/// Reads `/proc/sys/kernel/io_uring_disabled` (absent before Linux 6.6).
pub(crate) fn io_uring_disabled_sysctl() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()?
        .trim()
        .parse()
        .ok()
}
