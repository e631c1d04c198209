//! Unguarded stacks carved from a few large mappings, for hundreds of
//! thousands to a million fibers.
//!
//! A guarded stack costs two kernel mappings, which caps a process near 32 000
//! live fibers at the default `vm.max_map_count`. An arena reserves address
//! space in chunks of about 1 GiB (`MAP_NORESERVE`, committed lazily) and hands
//! out stacks back to back inside them:
//!
//! ```text
//!   chunk (one mapping):
//!   +---------+---------+---------+-- ... --+---------+
//!   | stack 0 | stack 1 | stack 2 |         | stack n |
//!   +---------+---------+---------+-- ... --+---------+
//!   ^ base                   no guard pages between stacks
//! ```
//!
//! **The trade:** with no guard page, a fiber that overflows its stack writes
//! into the stack below it, silently. Use arena stacks only for code whose stack
//! depth you know, and size them with room to spare.
//!
//! Freed stacks go on a LIFO free list and are reused before new ones are
//! carved. A stack freed while [`HOT_FREE`] or more wait there has its pages
//! given back to the kernel (`MADV_DONTNEED`), as a guarded
//! [`StackPool`](crate::StackPool) does above its watermark: after a burst of
//! fibers, the memory they touched returns (a page of RSS per freed stack
//! otherwise stays), while steady churn below the watermark makes no system
//! call. Neighbours freed one after the other (a teardown, the end of a
//! burst) are released together, up to [`RELEASE_RUN`] in one call. Chunks are unmapped when the
//! arena and every stack from it are gone.
//!
//! * **A1.** The run of stacks still to be released (`unreleased`) holds only
//!   stacks on the free list, and is released before any free stack is
//!   handed out again, so no stack in use ever loses its contents.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;

use crate::stack::{map_error, usable_stack_size, MapRequest, Stack};

/// Target size of one chunk of address space.
const CHUNK_BYTES: usize = 1 << 30;

/// Freed stacks kept with their pages; those freed beyond it are released.
pub(crate) const HOT_FREE: usize = 256;

/// Most stacks released by one `madvise`: a run of neighbours freed one
/// after the other waits for at most this many (their pages stay until the
/// run is released, so the run is kept short).
const RELEASE_RUN: usize = 64;

/// A source of unguarded stacks of one size. Cloning shares the arena.
#[derive(Clone, Debug)]
pub struct Arena {
    inner: Rc<ArenaInner>,
}

#[derive(Debug)]
pub(crate) struct ArenaInner {
    stack_size: usize,
    stacks_per_chunk: usize,
    /// `(base, len)` of every chunk mapped so far.
    chunks: RefCell<Vec<(usize, usize)>>,
    /// Next never-used stack in the newest chunk, and how many remain there.
    next: Cell<usize>,
    left_in_chunk: Cell<usize>,
    /// Bottoms of stacks given back, reused LIFO.
    free: RefCell<Vec<usize>>,
    /// `(start, len)` of adjacent free stacks whose pages are still to be
    /// released: neighbours freed one after the other (a teardown, the end
    /// of a burst) are released with one `madvise` instead of one each. Only
    /// free stacks are in it, and it is released before any free stack is
    /// handed out again (A1).
    unreleased: Cell<(usize, usize)>,
}

impl Arena {
    /// An arena of stacks with at least `stack_size` usable bytes each.
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidInput`] above
    /// [`MAX_STACK_SIZE`](crate::MAX_STACK_SIZE). Address space is reserved
    /// on the first [`Arena::stack`].
    pub fn new(stack_size: usize) -> io::Result<Arena> {
        let stack_size = usable_stack_size(stack_size)?;
        let stacks_per_chunk = (CHUNK_BYTES / stack_size).max(1);
        Ok(Arena {
            inner: Rc::new(ArenaInner {
                stack_size,
                stacks_per_chunk,
                chunks: RefCell::new(Vec::new()),
                next: Cell::new(0),
                left_in_chunk: Cell::new(0),
                free: RefCell::new(Vec::new()),
                unreleased: Cell::new((0, 0)),
            }),
        })
    }

    /// Usable size of each stack.
    pub fn stack_size(&self) -> usize {
        self.inner.stack_size
    }

    /// Takes a stack: a freed one if any, else the next one carved.
    ///
    /// # Errors
    /// When a new chunk cannot be mapped.
    pub fn stack(&self) -> io::Result<Stack> {
        let inner = &self.inner;
        let size = inner.stack_size;
        let reused = inner.free.borrow_mut().pop();
        if let Some(bottom) = reused {
            // A1: the run may hold this very stack; release it first.
            inner.release_unreleased();
            return Ok(Stack::from_arena(bottom, size, Rc::clone(inner)));
        }
        if inner.left_in_chunk.get() == 0 {
            inner.map_chunk()?;
        }
        let bottom = inner.next.get();
        inner.next.set(bottom + size);
        inner.left_in_chunk.set(inner.left_in_chunk.get() - 1);
        Ok(Stack::from_arena(bottom, size, Rc::clone(inner)))
    }

    /// Stacks given back and waiting for reuse.
    pub fn free_stacks(&self) -> usize {
        self.inner.free.borrow().len()
    }

    /// Number of chunk mappings made so far.
    pub fn mappings(&self) -> usize {
        self.inner.chunks.borrow().len()
    }
}

impl ArenaInner {
    fn map_chunk(&self) -> io::Result<()> {
        let len = self.stacks_per_chunk * self.stack_size;
        // SAFETY: an anonymous private mapping at an address of the kernel's
        // choosing aliases no existing memory.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            let request = MapRequest {
                call: "mmap",
                stacks: self.stacks_per_chunk,
                bytes: len,
                guarded: false,
            };
            return Err(map_error(request, io::Error::last_os_error()));
        }
        self.chunks.borrow_mut().push((base as usize, len));
        self.next.set(base as usize);
        self.left_in_chunk.set(self.stacks_per_chunk);
        Ok(())
    }

    /// Returns a stack's region to the free list (called by `Stack::drop`),
    /// releasing its pages when [`HOT_FREE`] stacks are free already.
    pub(crate) fn give_back(&self, bottom: usize) {
        let mut free = self.free.borrow_mut();
        if free.len() >= HOT_FREE {
            let size = self.stack_size;
            let (start, len) = self.unreleased.get();
            if len >= RELEASE_RUN * size {
                self.release_unreleased();
                self.unreleased.set((bottom, size));
            } else if len != 0 && bottom == start + len {
                self.unreleased.set((start, len + size));
            } else if len != 0 && bottom + size == start {
                self.unreleased.set((bottom, len + size));
            } else {
                self.release_unreleased();
                self.unreleased.set((bottom, size));
            }
        }
        free.push(bottom);
    }

    /// Gives the pages of the run of free stacks waiting for it back to the
    /// kernel.
    fn release_unreleased(&self) {
        let (start, len) = self.unreleased.replace((0, 0));
        if len == 0 {
            return;
        }
        // No fiber runs on a free stack (a fiber owns its stack until it is
        // finished, fiber F5).
        // SAFETY: A1: the run holds only free stacks of our chunks, none
        // handed out since it was freed: discarding them loses no live data.
        let rc = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
        debug_assert_eq!(rc, 0, "madvise(MADV_DONTNEED) on arena stacks failed");
    }
}

impl Drop for ArenaInner {
    fn drop(&mut self) {
        // Every `Stack` holds an `Rc` to us, so none is alive now.
        for &(base, len) in self.chunks.borrow().iter() {
            // SAFETY: the chunk was mapped by `map_chunk` and, with every stack
            // from it dropped, nothing refers to it any more.
            let rc = unsafe { libc::munmap(base as *mut libc::c_void, len) };
            debug_assert_eq!(rc, 0, "munmap of an arena chunk failed");
        }
    }
}
