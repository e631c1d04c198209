//! Signals: delivered on the loop's thread through a signalfd; the mask is
//! restored on drop. Signals are raised at the *test's own thread*
//! (`raise` targets the calling thread), so parallel tests do not interfere.

mod support;

use std::cell::Cell;
use std::time::Duration;

use green_loop::Loop;
use support::{each_backend, run_until};

thread_local! {
    static GOT: Cell<(i32, u64)> = const { Cell::new((0, 0)) };
}

fn on_signal(_: &Loop, signum: i32, data: u64) {
    GOT.with(|g| g.set((signum, data)));
}

fn blocked(signum: i32) -> bool {
    // SAFETY: zeroed sigset is a valid out-parameter for pthread_sigmask.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: querying the mask only.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut set) };
    // SAFETY: `set` was filled above.
    unsafe { libc::sigismember(&set, signum) == 1 }
}

#[test]
fn sigusr1_is_delivered_to_the_loop() {
    each_backend(|lp| {
        GOT.with(|g| g.set((0, 0)));
        assert!(!blocked(libc::SIGUSR1));
        let w = lp.watch_signal(libc::SIGUSR1, on_signal, 42).unwrap();
        assert!(
            blocked(libc::SIGUSR1),
            "watching blocks the signal for this thread"
        );
        assert!(!lp.is_alive(), "the signal watcher is unreferenced");
        lp.run_once(false).unwrap();
        // SAFETY: raise sends to this thread, where SIGUSR1 is blocked.
        assert_eq!(unsafe { libc::raise(libc::SIGUSR1) }, 0);
        run_until(&lp, Duration::from_secs(5), || GOT.with(|g| g.get().0 != 0));
        assert_eq!(GOT.with(|g| g.get()), (libc::SIGUSR1, 42));
        // A second delivery works too (the read is re-armed).
        GOT.with(|g| g.set((0, 0)));
        // SAFETY: as above.
        assert_eq!(unsafe { libc::raise(libc::SIGUSR1) }, 0);
        run_until(&lp, Duration::from_secs(5), || GOT.with(|g| g.get().0 != 0));
        drop(w);
        assert!(!blocked(libc::SIGUSR1), "the mask is restored on drop");
        lp.run_once(false).unwrap();
    });
}
