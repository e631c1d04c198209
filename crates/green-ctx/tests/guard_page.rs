//! Stack overflow and mapping limits, each checked in a child process: the
//! child is this test binary run again with `GREEN_CTX_CHILD` naming what to
//! do, and the parent checks how it died and what it printed.

use std::io::Read;
use std::process::{Command, Output};

use green_ctx::{Fiber, Stack};

const CHILD_ENV: &str = "GREEN_CTX_CHILD";

/// The largest `vm.max_map_count` a test fills its way up to (a few seconds
/// at most for a million mappings, so the common 65 530 and 1 048 576 never
/// skip); above it the test says it skipped and why.
const MOST_MAPPINGS_TO_FILL: usize = 1 << 21;

/// Mappings left free when [`MapFill`] is done: a few stacks' worth (two
/// mappings each), plus room for the allocator and the test's printing.
const HEADROOM: usize = 40;

/// Runs this binary's `child` test in a new process with `mode`.
fn run_child(mode: &str) -> Output {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child",
            "--nocapture",
            "--test-threads=1",
            "--include-ignored",
        ])
        .env(CHILD_ENV, mode)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("spawn the child test process")
}

#[inline(never)]
fn recurse(depth: usize) -> usize {
    let frame = std::hint::black_box([depth as u8; 256]);
    if depth == usize::MAX {
        return 0;
    }
    recurse(depth + 1) + frame[depth % 256] as usize
}

/// Not a test of its own: the body the child processes run.
#[test]
#[ignore = "child body"]
fn child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    match mode.as_str() {
        "fiber_overflow" => {
            let fiber = Fiber::new(Stack::new(64 * 1024).unwrap(), |_| recurse(0));
            fiber.set_name("deep-recursion");
            fiber.switch(0);
            unreachable!("the overflow aborts the process");
        }
        "fiber_overflow_site" => {
            let fiber = Fiber::new(Stack::new(64 * 1024).unwrap(), |_| recurse(0));
            fiber.set_name("with-site");
            fiber.set_spawn_site(std::panic::Location::caller());
            fiber.switch(0);
            unreachable!("the overflow aborts the process");
        }
        "thread_overflow" => {
            // Install our handler first, then overflow a plain std thread: the
            // fault is not on a fiber's guard page, so std's report must win.
            let fiber = Fiber::new(Stack::new(64 * 1024).unwrap(), |w| w);
            fiber.switch(0);
            let t = std::thread::Builder::new()
                .name("plain-thread".into())
                .stack_size(128 * 1024)
                .spawn(|| recurse(0))
                .unwrap();
            let _ = t.join();
            unreachable!("the overflow aborts the process");
        }
        "map_limit" => {
            let limit = green_ctx::read_max_map_count().expect("vm.max_map_count is readable");
            // Every allocation the loop below makes is made now: at the
            // limit, a growing Vec could itself fail to map.
            let mut stacks = Vec::with_capacity(HEADROOM);
            let fill = MapFill::leaving(limit, HEADROOM);
            println!(
                "FILLED {} mappings, about {HEADROOM} left of {limit}",
                fill.filled
            );
            loop {
                match Stack::new(16 * 1024) {
                    Ok(s) => stacks.push(s),
                    Err(e) => {
                        println!("FAILED_AFTER {} stacks: {e}", stacks.len());
                        return;
                    }
                }
                // Each stack takes two mappings: the fill left room for
                // fewer than this many.
                assert!(stacks.len() < HEADROOM, "no limit reached");
            }
        }
        other => panic!("unknown child mode {other}"),
    }
}

fn signal_of(out: &Output) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    out.status.signal()
}

#[test]
fn fiber_overflow_is_reported_by_name_and_aborts() {
    let out = run_child("fiber_overflow");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(signal_of(&out), Some(libc::SIGABRT), "stderr: {stderr}");
    assert!(
        stderr.contains("fiber 'deep-recursion' overflowed its stack (64 KiB)"),
        "stderr: {stderr}"
    );
}

#[test]
fn overflow_report_names_the_spawn_site() {
    let out = run_child("fiber_overflow_site");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(signal_of(&out), Some(libc::SIGABRT), "stderr: {stderr}");
    assert!(
        stderr.contains("fiber 'with-site' (spawned at ") && stderr.contains("guard_page.rs:"),
        "stderr: {stderr}"
    );
    assert!(
        stderr.contains("overflowed its stack (64 KiB)"),
        "stderr: {stderr}"
    );
}

#[test]
fn std_thread_overflow_report_still_works() {
    let out = run_child("thread_overflow");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(signal_of(&out), Some(libc::SIGABRT), "stderr: {stderr}");
    assert!(
        stderr.contains("thread 'plain-thread'") && stderr.contains("overflowed its stack"),
        "stderr: {stderr}"
    );
    assert!(!stderr.contains("fiber '"), "stderr: {stderr}");
}

#[test]
fn hitting_max_map_count_names_the_sysctl() {
    let limit = green_ctx::read_max_map_count().expect("vm.max_map_count is readable");
    if limit > MOST_MAPPINGS_TO_FILL {
        println!(
            "skipped: vm.max_map_count is {limit}, too large to fill (the test fills \
             up to {MOST_MAPPINGS_TO_FILL} mappings)"
        );
        return;
    }
    let out = run_child("map_limit");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.contains("FAILED_AFTER"))
        .expect("the child hit a limit");
    assert!(line.contains("vm.max_map_count"), "{line}");
    assert!(
        line.contains(&limit.to_string()),
        "names the current value: {line}"
    );
    assert!(line.contains("sysctl"), "names the fix: {line}");
}

/// Mappings of this process (lines of `/proc/self/maps`), read through a
/// buffer on the stack: near the limit, a heap buffer may need a mapping.
fn mappings_in_use() -> usize {
    let mut maps = std::fs::File::open("/proc/self/maps").expect("open /proc/self/maps");
    let mut buf = [0u8; 4096];
    let mut lines = 0;
    loop {
        match maps.read(&mut buf).expect("read /proc/self/maps") {
            0 => return lines,
            n => lines += buf[..n].iter().filter(|&&b| b == b'\n').count(),
        }
    }
}

/// Takes this process's mappings up to `vm.max_map_count` but for a few, so
/// that a test meets the limit within a few operations however large it is
/// (up to [`MOST_MAPPINGS_TO_FILL`]); released on drop.
///
/// One reservation, every other page of which is made readable: each page
/// then differs from its neighbours and is a mapping of its own. The pages
/// are split until the kernel refuses (the limit, whatever else counts
/// toward it), then `headroom` mappings are given back.
struct MapFill {
    base: *mut libc::c_void,
    len: usize,
    /// Mappings the fill added.
    filled: usize,
}

impl MapFill {
    fn leaving(limit: usize, headroom: usize) -> MapFill {
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap();
        let pages = 2 * limit.saturating_sub(mappings_in_use()) + 16;
        let len = pages * page;
        // SAFETY: an anonymous private reservation at an address of the
        // kernel's choosing aliases no existing memory.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED, "reserve {len} bytes");
        let protect = |i: usize, prot: libc::c_int| {
            // SAFETY: page `i` lies inside the reservation, which nothing
            // else refers to.
            unsafe { libc::mprotect(base.cast::<u8>().add(i * page).cast(), page, prot) == 0 }
        };
        let mut split = 0;
        while 2 * split + 1 < pages && protect(2 * split + 1, libc::PROT_READ) {
            split += 1;
        }
        assert!(
            2 * split + 1 < pages,
            "{split} pages split off without reaching vm.max_map_count ({limit})"
        );
        // Merging a page back into its neighbours frees two mappings.
        for k in 0..headroom.div_ceil(2).min(split) {
            assert!(protect(2 * (split - 1 - k) + 1, libc::PROT_NONE));
        }
        // The limit is not counted again: `/proc/self/maps` is 70 bytes a
        // mapping, seconds to read at a million. The operation under test
        // reports the count when it fails.
        MapFill {
            base,
            len,
            filled: 2 * (split - headroom.div_ceil(2).min(split)),
        }
    }
}

impl Drop for MapFill {
    fn drop(&mut self) {
        // SAFETY: the whole reservation is ours and nothing points into it.
        unsafe { libc::munmap(self.base, self.len) };
    }
}
