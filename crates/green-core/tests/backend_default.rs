//! A hub built the default way runs on io_uring wherever the kernel allows
//! it, so the default test runs really exercise io_uring, and only xtask's
//! epoll pass (`GREEN_LOOP_BACKEND=epoll`) runs on epoll. Where the kernel
//! refuses io_uring, the test says why and counts as skipped.

use std::time::Duration;

use green_core::BackendKind;
use green_loop::BACKEND_ENV;

/// Whether this process may set up an io_uring, asked of the kernel with a
/// bare `io_uring_setup` (none of green-loop's setup): `Err` says why not.
fn kernel_allows_io_uring() -> Result<(), String> {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "absent".to_string());
    // 2 refuses every process; 1 only those outside `io_uring_group`, which
    // the setup call below finds out.
    if disabled == "2" {
        return Err("kernel.io_uring_disabled is 2 (io_uring is off for every process)".into());
    }
    // `struct io_uring_params` is 120 bytes; zeroed, it asks for nothing
    // but a ring.
    let mut params = [0u32; 30];
    // SAFETY: the kernel writes at most `sizeof(struct io_uring_params)`
    // bytes into `params`, which is that large and lives across the call.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!(
            "io_uring_setup failed: {e} (kernel.io_uring_disabled is {disabled})"
        ));
    }
    // SAFETY: `fd` is the ring this function just made; nothing else owns it.
    unsafe { libc::close(fd as libc::c_int) };
    Ok(())
}

#[test]
fn the_default_hub_runs_on_io_uring_where_the_kernel_allows_it() {
    // A hub made on this (test) thread, the way every other test makes one.
    let backend = green_core::run(|| {
        green_core::sleep(Duration::from_millis(1));
        green_core::loop_backend()
    });
    let wanted = std::env::var(BACKEND_ENV).unwrap_or_default();
    if wanted == "epoll" {
        assert_eq!(backend, BackendKind::Epoll, "{BACKEND_ENV}=epoll");
        return;
    }
    match kernel_allows_io_uring() {
        Ok(()) => assert_eq!(
            backend,
            BackendKind::IoUring,
            "the kernel allows io_uring ({BACKEND_ENV}={wanted:?}), yet the default hub \
             runs on epoll: green-loop's ring setup fails where a plain ring works \
             (green_loop::Loop::builder().backend(BackendChoice::IoUring).build() names why)"
        ),
        Err(reason) => {
            assert_eq!(backend, BackendKind::Epoll, "the fallback");
            println!("skipped: {reason}");
        }
    }
}
