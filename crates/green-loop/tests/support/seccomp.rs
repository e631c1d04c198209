//! Simulates a container runtime's seccomp profile that refuses io_uring,
//! for fallback tests (green-loop's, and the root package's for green-core).

/// Makes `io_uring_setup` fail with `errno` for this thread, for good.
pub(crate) fn deny_io_uring_setup(errno: i32) {
    deny_syscall(libc::SYS_io_uring_setup, errno);
}

/// Makes the system call `nr` fail with `errno` for this thread (and the
/// threads it starts), for good.
pub(crate) fn deny_syscall(nr: libc::c_long, errno: i32) {
    // A classic-BPF seccomp program: load the syscall number; if it is
    // `nr` return ERRNO(errno), else allow.
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const RET_ERRNO: u32 = 0x0005_0000; // SECCOMP_RET_ERRNO
    const RET_ALLOW: u32 = 0x7fff_0000; // SECCOMP_RET_ALLOW
    let filter = [
        libc::sock_filter {
            code: LD_W_ABS,
            jt: 0,
            jf: 0,
            k: 0,
        }, // seccomp_data.nr
        libc::sock_filter {
            code: JEQ_K,
            jt: 0,
            jf: 1,
            k: nr as u32,
        },
        libc::sock_filter {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: RET_ERRNO | (errno as u32 & 0xffff),
        },
        libc::sock_filter {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: RET_ALLOW,
        },
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut _,
    };
    // SAFETY: plain prctl calls; `prog` points at `filter`, both alive for the
    // duration of the call (the kernel copies the program).
    unsafe {
        assert_eq!(
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
            0,
            "no_new_privs"
        );
        let rc = libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const _,
        );
        assert_eq!(rc, 0, "seccomp: {}", std::io::Error::last_os_error());
    }
}
