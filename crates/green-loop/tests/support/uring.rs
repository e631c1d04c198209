//! Probe-first guards: a test that needs io_uring (or one opcode) prints
//! `skipped: <reason>` and returns instead of failing on a kernel without it.

/// Returns from the test, printing why, if this process cannot set up io_uring.
#[macro_export]
macro_rules! require_uring {
    () => {
        if let Err(e) = green_loop::Loop::builder()
            .backend(green_loop::BackendChoice::IoUring)
            .build()
        {
            println!("skipped: io_uring unavailable: {e}");
            return;
        }
    };
}

/// Returns from the test, printing why, if `$lp`'s backend lacks an opcode
/// (`io_uring::opcode::X::CODE`).
#[macro_export]
macro_rules! require_op {
    ($lp:expr, $code:expr) => {
        if !$lp.features().supports($code) {
            println!(
                "skipped: opcode {} not supported by the {:?} backend",
                $code,
                $lp.backend()
            );
            return;
        }
    };
}
