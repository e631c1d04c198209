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
            return Err(map_error("mmap", io::Error::last_os_error(), total));
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
                let err = map_error("mprotect", io::Error::last_os_error(), total);
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

/// Turns an `ENOMEM` from `mmap`/`mprotect` into an error that says whether the
/// process has hit `vm.max_map_count` and how to raise it. The limit is named
/// only when the process's mappings are near it: an `ENOMEM` with mappings to
/// spare is a shortage of memory or address space, and says so.
pub(crate) fn map_error(call: &str, err: io::Error, bytes: usize) -> io::Error {
    if err.raw_os_error() != Some(libc::ENOMEM) {
        return io::Error::new(
            err.kind(),
            format!("{call} of a {bytes}-byte fiber stack failed: {err}"),
        );
    }
    match (read_max_map_count(), count_mappings()) {
        (Some(limit), Some(used)) if used + 16 >= limit => io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!(
                "{call} of a fiber stack failed: the process has {used} memory mappings and \
                 vm.max_map_count is {limit}. Each guarded stack costs two mappings, so about \
                 {} guarded fibers fit. Raise the limit with `sysctl -w vm.max_map_count=1048576` \
                 (or in /etc/sysctl.conf), or use unguarded arena stacks (green_ctx::Arena) ({err})",
                limit / 2
            ),
        ),
        _ => io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!(
                "{call} of a {bytes}-byte fiber stack failed: the kernel is out of memory or \
                 address space for it (a `ulimit -v` cap, or strict overcommit). Ask for smaller \
                 or fewer stacks, or raise the address-space limit ({err})"
            ),
        ),
    }
}

/// Reads `/proc/sys/vm/max_map_count`.
pub fn read_max_map_count() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Counts this process's mappings (lines of `/proc/self/maps`).
fn count_mappings() -> Option<usize> {
    let maps = std::fs::read("/proc/self/maps").ok()?;
    Some(maps.iter().filter(|&&b| b == b'\n').count())
}
