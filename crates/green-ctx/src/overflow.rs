//! Naming the fiber that overflowed its stack, instead of a bare SIGSEGV.
//!
//! A fiber that runs off the bottom of a guarded stack touches the guard page
//! and gets SIGSEGV (or SIGBUS). A handler for those signals, running on an
//! alternate signal stack (the faulting stack has no room left), compares the
//! fault address with the guard page of the fiber running on this thread:
//!
//! * a hit prints `fiber '<name>' overflowed its stack (<N> KiB)` and aborts,
//!   the way std reports a thread overflow;
//! * anything else is chained to the handler that was installed before ours
//!   (std's, which reports main-thread and std-thread overflows), or, if there
//!   was none, the default action is restored and the fault re-raised by
//!   returning to the faulting instruction.
//!
//! Invariants:
//!
//! * **O1.** The handler is async-signal-safe: it allocates nothing, takes no
//!   lock, reads only plain `Cell`s of the current slot through a thread-local
//!   that has no destructor (so reading it never initialises anything), and
//!   writes with `write(2)`.
//! * **O2.** `PREVIOUS` is written once, before our handler can run, and only
//!   read afterwards.
//! * **O3.** Every thread that runs fibers has an alternate signal stack: ours
//!   if it had none (freed at thread exit), or the one std installed.

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::sync::{Once, OnceLock};

use crate::fiber;

/// Size of the alternate signal stack we install when a thread has none.
const ALT_STACK_SIZE: usize = 64 * 1024;

/// The handlers for SIGSEGV and SIGBUS that were installed before ours (O2).
struct Previous {
    segv: libc::sigaction,
    bus: libc::sigaction,
}

// SAFETY: `sigaction` is plain data (integers, a signal set and a function
// address); sharing copies of it between threads is harmless.
unsafe impl Sync for Previous {}
// SAFETY: as above.
unsafe impl Send for Previous {}

static PREVIOUS: OnceLock<Previous> = OnceLock::new();
static INSTALL: Once = Once::new();

thread_local! {
    /// Whether this thread's alternate signal stack has been checked (O3).
    static ALT_STACK_CHECKED: Cell<bool> = const { Cell::new(false) };
    /// The alternate stack we installed on this thread, freed at thread exit.
    static OWN_ALT_STACK: AltStack = const { AltStack { base: Cell::new(0) } };
}

/// Installs the process-wide handler once, and this thread's alternate signal
/// stack if it has none. Cheap after the first call on a thread.
#[inline]
pub(crate) fn ensure_installed() {
    if !ALT_STACK_CHECKED.with(Cell::get) {
        install_on_this_thread();
    }
}

/// The first [`ensure_installed`] on a thread.
#[cold]
#[inline(never)]
fn install_on_this_thread() {
    INSTALL.call_once(install_handler);
    ensure_alt_stack();
    ALT_STACK_CHECKED.with(|c| c.set(true));
}

fn install_handler() {
    // SAFETY: an all-zero `sigaction` is a valid value to fill in.
    let mut action: libc::sigaction = unsafe { MaybeUninit::zeroed().assume_init() };
    action.sa_sigaction =
        on_fault as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) as usize;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SAFETY: `sa_mask` is a valid signal set to initialise.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: zeroed `sigaction`s are valid out-parameters.
    let mut segv: libc::sigaction = unsafe { MaybeUninit::zeroed().assume_init() };
    // SAFETY: as above.
    let mut bus: libc::sigaction = unsafe { MaybeUninit::zeroed().assume_init() };
    // Record the old handlers first (O2): query without changing anything.
    // SAFETY: valid signal numbers and a valid out-pointer.
    unsafe {
        libc::sigaction(libc::SIGSEGV, std::ptr::null(), &mut segv);
        libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut bus);
    }
    if PREVIOUS.set(Previous { segv, bus }).is_err() {
        return;
    }
    // SAFETY: `action` is fully initialised and `on_fault` is async-signal-safe (O1).
    unsafe {
        libc::sigaction(libc::SIGSEGV, &action, std::ptr::null_mut());
        libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
    }
}

/// Owns an alternate signal stack mapped by us.
struct AltStack {
    base: Cell<usize>,
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let base = self.base.get();
        if base == 0 {
            return;
        }
        // SAFETY: disabling the alternate stack first means no handler can be
        // running on it when it is unmapped; the mapping is ours (O3).
        unsafe {
            let mut disable: libc::stack_t = MaybeUninit::zeroed().assume_init();
            disable.ss_flags = libc::SS_DISABLE;
            libc::sigaltstack(&disable, std::ptr::null_mut());
            libc::munmap(
                base as *mut libc::c_void,
                ALT_STACK_SIZE + crate::stack::page_size(),
            );
        }
    }
}

fn ensure_alt_stack() {
    // SAFETY: querying the current alternate stack into a zeroed out-value.
    let mut old: libc::stack_t = unsafe { MaybeUninit::zeroed().assume_init() };
    // SAFETY: a null new-stack pointer only queries.
    unsafe { libc::sigaltstack(std::ptr::null(), &mut old) };
    if old.ss_flags & libc::SS_DISABLE == 0 {
        return; // std (or the user) already gave this thread one.
    }
    let page = crate::stack::page_size();
    // SAFETY: a fresh anonymous mapping aliases nothing.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            ALT_STACK_SIZE + page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return; // Overflows on this thread will be reported as plain SIGSEGV.
    }
    // SAFETY: the lowest page of our own mapping becomes its guard.
    unsafe { libc::mprotect(base, page, libc::PROT_NONE) };
    // SAFETY: `stack_t` is plain data; we fill every field we use.
    let mut new: libc::stack_t = unsafe { MaybeUninit::zeroed().assume_init() };
    new.ss_sp = (base as usize + page) as *mut libc::c_void;
    new.ss_size = ALT_STACK_SIZE;
    new.ss_flags = 0;
    // SAFETY: `new` describes memory we own for the life of the thread (O3).
    unsafe { libc::sigaltstack(&new, std::ptr::null_mut()) };
    OWN_ALT_STACK.with(|own| own.base.set(base as usize));
}

/// The SIGSEGV/SIGBUS handler (O1).
extern "C" fn on_fault(signum: libc::c_int, info: *mut libc::siginfo_t, uctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid `siginfo_t` to SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    let slot = fiber::current_ptr_for_signal();
    if !slot.is_null() {
        // SAFETY: the running slot is alive while its code runs (fiber F4); we
        // only read plain cells (O1).
        let slot = unsafe { &*slot };
        let lo = slot.guard_lo.get();
        let hi = lo + crate::stack::guard_size();
        if lo != 0 && addr >= lo && addr < hi {
            report_and_abort(slot);
        }
    }
    // SAFETY: forwarding the exact arguments we were given (O2).
    unsafe { chain(signum, info, uctx) };
}

/// Writes `fiber '<name>' overflowed its stack (<N> KiB)` and aborts.
fn report_and_abort(slot: &fiber::Slot) -> ! {
    let mut buf = [0u8; 512];
    let mut len = 0;
    let mut put = |bytes: &[u8]| {
        let n = bytes.len().min(buf.len() - len);
        buf[len..len + n].copy_from_slice(&bytes[..n]);
        len += n;
    };
    put(b"\nfiber '");
    let mut digits = [0u8; 20];
    slot.write_display_name(&mut put);
    put(b"'");
    if let Some(site) = slot.site.get() {
        put(b" (spawned at ");
        put(site.file().as_bytes());
        put(b":");
        put(decimal(site.line() as usize, &mut digits));
        put(b")");
    }
    put(b" overflowed its stack (");
    put(decimal(slot.stack_size.get() / 1024, &mut digits));
    put(b" KiB)\nfatal runtime error: stack overflow, aborting\n");
    // SAFETY: writing our own buffer to stderr; `abort` is async-signal-safe.
    unsafe {
        libc::write(2, buf.as_ptr().cast(), len);
        libc::abort();
    }
}

/// Formats `n` in decimal into the end of `buf`, without allocating (O1).
pub(crate) fn decimal(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Passes a fault that is not ours to the previous handler (O2).
///
/// # Safety
/// * The arguments are those the kernel gave `on_fault`.
unsafe fn chain(signum: libc::c_int, info: *mut libc::siginfo_t, uctx: *mut libc::c_void) {
    let Some(prev) = PREVIOUS.get() else {
        return reset_default(signum);
    };
    let prev = if signum == libc::SIGBUS {
        &prev.bus
    } else {
        &prev.segv
    };
    let handler = prev.sa_sigaction;
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        reset_default(signum);
    } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: SA_SIGINFO means the address is a three-argument handler.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(handler) };
        f(signum, info, uctx);
    } else {
        // SAFETY: without SA_SIGINFO the address is a one-argument handler.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
        f(signum);
    }
}

/// Restores the default action; returning re-executes the faulting
/// instruction, which then kills the process with the signal as usual.
fn reset_default(signum: libc::c_int) {
    // SAFETY: a zeroed `sigaction` with SIG_DFL is a valid disposition.
    unsafe {
        let mut dfl: libc::sigaction = MaybeUninit::zeroed().assume_init();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(signum, &dfl, std::ptr::null_mut());
    }
}
