//! Fiber stacks: `mmap`ed memory with a guard page below, or carved from an
//! [`Arena`](crate::Arena) without one.
//!
//! # Layout of a guarded stack
//!
//! Stacks grow down. The guard page sits below the usable region, so running
//! off the end faults at once instead of silently writing into the neighbour:
//!
//! ```text
//!   high addresses
//!   +--------------------------+  <- top()       (page aligned; first frame here)
//!   | initial frame written by |
//!   | make_fcontext, then the  |
//!   | fiber's own frames       |
//!   |           ...            |     usable region: `size()` bytes, read/write,
//!   |           ...            |     committed lazily by the kernel page by page
//!   +--------------------------+  <- bottom()
//!   | guard page (PROT_NONE)   |     a touch here is a stack overflow (overflow.rs)
//!   +--------------------------+  <- mapping base
//!   low addresses
//! ```
//!
//! An idle fiber has touched only the page or two at the top, so the cost of a
//! suspended fiber is about one page of RSS however large the stack is.
//!
//! # The `vm.max_map_count` limit
//!
//! The guard page splits the mapping in two, so each guarded stack costs two
//! kernel mappings (VMAs). Linux caps a process at `vm.max_map_count` mappings
//! (65530 by default), which caps live guarded stacks near 32 000. When `mmap`
//! or `mprotect` fails with `ENOMEM` for that reason, the error names the limit,
//! its value and the sysctl that raises it; the other way past the limit is the
//! unguarded [`Arena`](crate::Arena).

use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::arena::ArenaInner;
use crate::valgrind;

/// Usable size of a stack when none is given: 256 KiB of virtual memory, of
/// which an idle fiber touches a page or two. gevent users expect deep stacks.
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// Smallest usable size accepted; smaller requests are rounded up to it.
///
/// It is what a plain `panic!()` needs with `RUST_BACKTRACE=1` or `=full`
/// (the deepest thing ordinary code does: the panic hook captures, symbolises
/// and prints a backtrace), plus margin. Measured on x86_64 Linux, Rust 1.9x,
/// by `tests/stack_minimum.rs` (a fiber panicking on a 1 MiB stack filled
/// with a pattern, counting the bytes the panic overwrote): 20 424 bytes in a
/// debug build and 19 944 in release with a backtrace, 5 352 without. At the
/// old 16 KiB such a panic overflowed: a guarded stack aborted with the
/// overflow report, an unguarded one wrote over the stack below it. 32 KiB
/// leaves half as much again (the test checks that margin).
pub const MIN_STACK_SIZE: usize = 32 * 1024;

/// Largest usable size accepted: 1 GiB. Larger requests are refused with
/// [`io::ErrorKind::InvalidInput`] rather than reserving absurd amounts of
/// address space (or overflowing the size arithmetic); data that big belongs
/// on the heap.
pub const MAX_STACK_SIZE: usize = 1 << 30;

/// Size of the guard page(s) below a guarded stack.
pub(crate) fn guard_size() -> usize {
    page_size()
}

/// The page size, once [`page_size`] has read it.
static PAGE: AtomicUsize = AtomicUsize::new(0);

/// The system page size, read once.
#[inline]
pub fn page_size() -> usize {
    let cached = PAGE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    read_page_size()
}

/// The first [`page_size`] call.
#[cold]
#[inline(never)]
fn read_page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let size = if size > 0 { size as usize } else { 4096 };
    PAGE.store(size, Ordering::Relaxed);
    size
}

/// The usable size a stack asked for with `size` bytes gets: rounded up to
/// whole pages and at least [`MIN_STACK_SIZE`].
///
/// # Errors
/// [`io::ErrorKind::InvalidInput`] when `size` is above [`MAX_STACK_SIZE`].
pub fn usable_stack_size(size: usize) -> io::Result<usize> {
    if size > MAX_STACK_SIZE {
        return Err(too_large(size));
    }
    let page = page_size();
    // At most 1 GiB plus a page: no overflow.
    Ok(size.max(MIN_STACK_SIZE).div_ceil(page) * page)
}

/// The error for a stack size above [`MAX_STACK_SIZE`].
#[cold]
fn too_large(size: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "a fiber stack of {size} bytes was asked for, above the maximum of {MAX_STACK_SIZE} \
             bytes (1 GiB, green_ctx::MAX_STACK_SIZE); ask for a smaller stack size and keep \
             large data on the heap (Box, Vec)"
        ),
    )
}

/// A fiber stack.
///
/// Dropping it returns the memory: a guarded stack is unmapped, an arena stack
/// goes back to its arena's free list.
///
/// A `Stack` is `!Send`: arena stacks share a reference-counted arena.
pub struct Stack {
    /// Lowest usable address (just above the guard page when guarded).
    bottom: usize,
    /// Usable bytes above `bottom`.
    size: usize,
    /// Id from the valgrind stack registration, returned on drop.
    valgrind_id: usize,
    kind: Kind,
}

enum Kind {
    /// Owns `[bottom - guard_size(), bottom + size)`; unmaps it on drop.
    Guarded,
    /// Carved from an arena; goes back to it on drop.
    Arena(Rc<ArenaInner>),
}

impl Stack {
    /// Maps a new guarded stack with at least `size` usable bytes.
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidInput`] above [`MAX_STACK_SIZE`]; `mmap` or
    /// `mprotect` failures, with a message naming `vm.max_map_count` when the
    /// process has reached its mapping limit.
    pub fn new(size: usize) -> io::Result<Stack> {
        let mut stacks = Stack::new_batch(size, 1)?;
        Ok(stacks.pop().expect("a batch of one holds one stack"))
    }

    /// Maps `count` guarded stacks with one `mmap` and one `mprotect` each,
    /// for pools that refill in bulk. Each stack can still be dropped alone
    /// (Linux unmaps any page-aligned part of a mapping).
    ///
    /// # Errors
    /// As [`Stack::new`]. On error no stack of the batch is left mapped.
    pub fn new_batch(size: usize, count: usize) -> io::Result<Vec<Stack>> {
        let size = usable_stack_size(size)?;
        let guard = guard_size();
        let stride = size + guard;
        let Some(total) = stride.checked_mul(count) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a batch of {count} fiber stacks of {size} bytes overflows the address \
                     space; map fewer stacks at once"
                ),
            ));
        };
        let request = |call| MapRequest {
            call,
            stacks: count,
            bytes: total,
            guarded: true,
        };
        // SAFETY: an anonymous private mapping at an address of the kernel's
        // choosing aliases no existing memory.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(map_error(request("mmap"), io::Error::last_os_error()));
        }
        let base = base as usize;
        let mut stacks = Vec::with_capacity(count);
        for i in 0..count {
            let guard_lo = base + i * stride;
            // SAFETY: `[guard_lo, guard_lo + guard)` lies inside the mapping we
            // just created and nothing references it yet.
            let rc =
                unsafe { libc::mprotect(guard_lo as *mut libc::c_void, guard, libc::PROT_NONE) };
            if rc != 0 {
                let err = map_error(request("mprotect"), io::Error::last_os_error());
                // Stacks already made unmap their own ranges when dropped; the
                // rest of the mapping is unmapped here.
                let done = i * stride;
                drop(stacks);
                // SAFETY: `[base + done, base + total)` belongs to this mapping
                // and no `Stack` refers to it.
                unsafe { libc::munmap((base + done) as *mut libc::c_void, total - done) };
                return Err(err);
            }
            stacks.push(Stack::from_raw_parts(guard_lo + guard, size, Kind::Guarded));
        }
        Ok(stacks)
    }

    /// Wraps a usable region and registers it with valgrind.
    fn from_raw_parts(bottom: usize, size: usize, kind: Kind) -> Stack {
        let valgrind_id = valgrind::register_stack(bottom, bottom + size);
        Stack {
            bottom,
            size,
            valgrind_id,
            kind,
        }
    }

    /// Builds an arena stack over `[bottom, bottom + size)`.
    pub(crate) fn from_arena(bottom: usize, size: usize, arena: Rc<ArenaInner>) -> Stack {
        Stack::from_raw_parts(bottom, size, Kind::Arena(arena))
    }

    /// Usable bytes.
    #[inline]
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether a guard page protects this stack from overflow.
    #[inline]
    pub fn is_guarded(&self) -> bool {
        matches!(self.kind, Kind::Guarded)
    }

    /// Highest address, exclusive: the first frame is pushed below it.
    #[inline]
    pub fn top(&self) -> usize {
        self.bottom + self.size
    }

    /// Lowest usable address.
    #[inline]
    pub fn bottom(&self) -> usize {
        self.bottom
    }

    /// The guard page's range `[lo, hi)`, if the stack has one.
    #[inline]
    pub fn guard_range(&self) -> Option<(usize, usize)> {
        self.is_guarded()
            .then(|| (self.bottom - guard_size(), self.bottom))
    }

    /// Tells the kernel it may drop the pages this stack has touched; they read
    /// back as zeroes on the next touch. Used by [`StackPool`](crate::StackPool)
    /// above its watermark so that a burst does not pin memory forever.
    pub fn release_pages(&mut self) {
        // SAFETY: the usable region belongs to this `Stack` alone and no fiber
        // runs on it (we hold it by `&mut`, outside any fiber); discarding its
        // contents cannot affect other memory.
        let rc = unsafe {
            libc::madvise(
                self.bottom as *mut libc::c_void,
                self.size,
                libc::MADV_DONTNEED,
            )
        };
        debug_assert_eq!(rc, 0, "madvise(MADV_DONTNEED) on a stack failed");
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        valgrind::deregister_stack(self.valgrind_id);
        match &self.kind {
            Kind::Guarded => {
                let guard = guard_size();
                // SAFETY: a guarded stack owns `[bottom - guard, top)` (see
                // `new_batch`) and no fiber can be running on it: fibers own
                // their stack and give it back only when finished.
                let rc = unsafe {
                    libc::munmap(
                        (self.bottom - guard) as *mut libc::c_void,
                        self.size + guard,
                    )
                };
                debug_assert_eq!(rc, 0, "munmap of a stack failed");
            }
            Kind::Arena(arena) => arena.give_back(self.bottom),
        }
    }
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("bottom", &format_args!("{:#x}", self.bottom))
            .field("size", &self.size)
            .field("guarded", &self.is_guarded())
            .finish()
    }
}

/// What a failed `mmap`/`mprotect` was for, to name it honestly in the error.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MapRequest {
    /// The system call that failed.
    pub(crate) call: &'static str,
    /// How many stacks it was mapping at once (a pool refills in batches).
    pub(crate) stacks: usize,
    /// The mapping's total size in bytes.
    pub(crate) bytes: usize,
    /// Whether the stacks have guard pages (two mappings each).
    pub(crate) guarded: bool,
}

impl std::fmt::Display for MapRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.guarded { "guarded" } else { "arena" };
        let plural = if self.stacks == 1 { "" } else { "s" };
        write!(
            f,
            "{} for {} {what} fiber stack{plural} ({} bytes in all)",
            self.call, self.stacks, self.bytes
        )
    }
}

/// The fixes for running out of mappings, named in every such error.
const MAP_LIMIT_FIXES: &str = "Raise the limit (`sudo sysctl -w vm.max_map_count=1048576`, \
    or `vm.max_map_count = 1048576` in /etc/sysctl.conf), or use unguarded stacks, which \
    share one mapping per chunk: `green_core::Builder::unguarded(true)`, or green-ctx's \
    `Arena`";

/// Turns an `ENOMEM` from `mmap`/`mprotect` into an error that says whether
/// the process has hit `vm.max_map_count` and how to get past it. The limit
/// is named as the cause when the process's mappings are near it, and as the
/// likely cause when they cannot be counted; with mappings to spare, the
/// error says memory or address space ran out. Counting reads
/// `/proc/self/maps` into a small buffer on the stack: at the limit, any
/// allocation large enough to need a new mapping would fail too (as it did
/// on a main thread, whose heap grows by mappings).
pub(crate) fn map_error(request: MapRequest, err: io::Error) -> io::Error {
    if err.raw_os_error() != Some(libc::ENOMEM) {
        return io::Error::new(err.kind(), format!("{request} failed: {err}"));
    }
    let message = match (read_max_map_count(), count_mappings()) {
        (Some(limit), Some(used)) if used + 16 >= limit => format!(
            "{request} failed: the process has {used} memory mappings and vm.max_map_count \
             is {limit}. Each guarded stack costs two mappings, so about {} guarded stacks \
             fit. {MAP_LIMIT_FIXES} ({err})",
            limit / 2
        ),
        (Some(_), Some(used)) => format!(
            "{request} failed: the kernel is out of memory or address space for it (the \
             process has {used} mappings, far from the mapping limit). A `ulimit -v` cap or \
             strict overcommit can cause this: ask for smaller or fewer stacks, or raise the \
             address-space limit ({err})"
        ),
        (limit, _) => {
            let limit = limit.map_or_else(|| "unreadable".to_string(), |l| l.to_string());
            format!(
                "{request} failed: out of memory, most likely at the mapping limit \
                 (vm.max_map_count is {limit}; each guarded stack costs two mappings; the \
                 mappings in use could not be counted). {MAP_LIMIT_FIXES}. If the limit is \
                 not the cause, memory or address space ran out (a `ulimit -v` cap, strict \
                 overcommit) ({err})"
            )
        }
    };
    io::Error::new(io::ErrorKind::OutOfMemory, message)
}

/// Reads `/proc/sys/vm/max_map_count`, without allocating.
pub fn read_max_map_count() -> Option<usize> {
    let mut value: usize = 0;
    let mut digits = 0;
    let mut done = false;
    scan_proc_file(c"/proc/sys/vm/max_map_count", |chunk| {
        for &b in chunk {
            if done {
                return;
            }
            if b.is_ascii_digit() {
                value = value
                    .saturating_mul(10)
                    .saturating_add(usize::from(b - b'0'));
                digits += 1;
            } else if digits > 0 {
                done = true;
            }
        }
    })?;
    (digits > 0).then_some(value)
}

/// Counts this process's mappings (lines of `/proc/self/maps`), without
/// allocating: it must work when no new mapping can be made.
fn count_mappings() -> Option<usize> {
    let mut lines = 0;
    scan_proc_file(c"/proc/self/maps", |chunk| {
        lines += chunk.iter().filter(|&&b| b == b'\n').count();
    })?;
    Some(lines)
}

/// Feeds a file's bytes to `each` through a 1 KiB buffer on the stack (this
/// runs on fiber stacks too, some of them small); `None` if it cannot be
/// opened or read.
fn scan_proc_file(path: &std::ffi::CStr, mut each: impl FnMut(&[u8])) -> Option<()> {
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let mut buf = [0u8; 1024];
    let result = loop {
        // SAFETY: `buf` is a live, writable buffer of `buf.len()` bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        match n {
            0 => break Some(()),
            n if n > 0 => each(&buf[..n as usize]),
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            _ => break None,
        }
    };
    // SAFETY: `fd` was opened above and is closed once.
    unsafe { libc::close(fd) };
    result
}
