//! Running a may peer case the way green's and tokio's run: on one thread.
//!
//! Included by the bench files that measure may (`#[path]` module).

/// Stack of may's driver coroutine, in words (may sizes stacks in `usize`s):
/// 2 MiB, since it runs the harness (formatting, sorting, file output), not
/// just a loop.
const DRIVER_STACK_WORDS: usize = 256 * 1024;

/// Stack of may's other coroutines, in words: may's default (32 KiB), set
/// explicitly because may's coroutine pool only recycles coroutines of the
/// configured size.
const STACK_WORDS: usize = 0x1000;

/// Configures may with one unpinned worker and runs `case` in a driver
/// coroutine on it, returning when the case ends.
///
/// With one worker the driver and the coroutines it makes share a thread, as
/// green's greenlets and tokio's tasks do; unpinned, like the other subjects'
/// main thread. Running the whole case, clock and harness included, inside
/// the driver keeps cross-thread wake-ups out of the figures.
pub(crate) fn run_on_one_worker(name: &str, case: impl FnOnce() + Send + 'static) {
    may::config()
        .set_workers(1)
        .set_stack_size(STACK_WORDS)
        .set_worker_pin(false);
    let driver = may::coroutine::Builder::new()
        .name(name.to_owned())
        .stack_size(DRIVER_STACK_WORDS);
    // SAFETY: may's spawn is unsafe for two reasons, neither of which
    // applies. (1) A coroutine may migrate between worker threads, so a
    // thread-local it borrowed could change under it: with one worker there
    // is no other thread to migrate to, and the driver's only thread-locals
    // are std's (stdout lock, panic count), used on that one thread.
    // (2) Overflowing a coroutine's stack ends in a segfault: the driver gets
    // 2 MiB for the harness's shallow calls.
    let driver = unsafe { driver.spawn(case) }.expect("spawn may driver coroutine");
    driver.join().expect("may driver coroutine");
}
