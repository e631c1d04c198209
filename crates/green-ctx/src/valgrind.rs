//! Valgrind client requests that tell memcheck where fiber stacks are.
//!
//! Valgrind tracks "the stack" by the stack pointer. When a context switch
//! moves `rsp` from one mapping to another, memcheck would otherwise take the
//! jump for a huge stack frame and report every later access as invalid. The
//! `STACK_REGISTER` client request declares a range as a stack so that switches
//! into it are recognised. The `context` crate does not do this, so we do.
//!
//! A client request is a fixed sequence of rotate instructions (which together
//! are a no-op: four rotations summing to 128 bits) followed by a marker
//! instruction. Running natively it costs a handful of cycles and returns the
//! default value; under valgrind the JIT recognises the sequence and performs
//! the request. The sequence is the documented ABI in valgrind's `valgrind.h`;
//! this is our own rendering of it.

/// Request codes from `valgrind.h` (`VG_USERREQ__STACK_REGISTER` and friends).
const STACK_REGISTER: usize = 0x1501;
const STACK_DEREGISTER: usize = 0x1502;
const RUNNING_ON_VALGRIND: usize = 0x1001;

/// Performs one client request with up to five arguments and returns valgrind's
/// answer, or `default` when not running under valgrind.
#[cfg(target_arch = "x86_64")]
#[inline]
fn client_request(default: usize, request: usize, args: [usize; 5]) -> usize {
    let block: [usize; 6] = [request, args[0], args[1], args[2], args[3], args[4]];
    let mut result = default;
    // SAFETY: natively the rotations (128 bits in all) and `xchg rbx, rbx` change
    // nothing; under valgrind the request reads `block`, live for the whole asm.
    unsafe {
        core::arch::asm!(
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            inout("rdx") result,
            in("rax") block.as_ptr(),
            inout("rdi") 0usize => _,
            options(nostack),
        );
    }
    result
}

/// Other architectures: no client requests (valgrind runs are x86_64-only here).
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn client_request(default: usize, _request: usize, _args: [usize; 5]) -> usize {
    default
}

/// Declares `[start, end)` as a stack; returns the id to deregister it with.
pub(crate) fn register_stack(start: usize, end: usize) -> usize {
    client_request(0, STACK_REGISTER, [start, end, 0, 0, 0])
}

/// Forgets a stack declared by [`register_stack`].
pub(crate) fn deregister_stack(id: usize) {
    client_request(0, STACK_DEREGISTER, [id, 0, 0, 0, 0]);
}

/// Whether this process runs under valgrind (how many valgrinds deep).
pub fn running_on_valgrind() -> bool {
    client_request(0, RUNNING_ON_VALGRIND, [0; 5]) != 0
}
