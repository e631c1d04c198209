//! A per-thread cache of stacks, so that creating a fiber in steady state makes
//! no system call.
//!
//! * **LIFO reuse:** the stack given back last is handed out first; its top
//!   pages are the most likely to still be in the cache and already committed.
//! * **Bulk refill:** an empty pool maps `refill` guarded stacks with one `mmap`
//!   (see [`Stack::new_batch`]), or carves them from its arena; a batch spans
//!   at most [`MAX_REFILL_BYTES`], so large stacks come a few at a time and
//!   huge ones one at a time.
//! * **Cap:** at most `max_cached` stacks are kept; the rest are freed.
//! * **Watermark:** a stack given back while `hot_watermark` or more are cached
//!   has its touched pages released (`MADV_DONTNEED`), so a burst of fibers does
//!   not pin its peak memory forever while the common case stays syscall-free.

use std::io;

use crate::arena::Arena;
use crate::stack::{guard_size, usable_stack_size, Stack, DEFAULT_STACK_SIZE};

/// Most bytes (usable plus guard) one refill maps: 16 default-sized stacks
/// fit, a 1 MiB stack comes seven at a time, a 64 MiB one alone.
pub const MAX_REFILL_BYTES: usize = 8 << 20;

/// Settings of a [`StackPool`].
#[derive(Clone, Debug)]
pub struct StackPoolConfig {
    /// Usable bytes of each stack (rounded up to pages).
    pub stack_size: usize,
    /// How many stacks an empty pool makes at once (fewer when they would
    /// span more than [`MAX_REFILL_BYTES`]; at least one).
    pub refill: usize,
    /// Most stacks kept cached; extra ones given back are freed.
    pub max_cached: usize,
    /// Cached stacks above this count have their pages released.
    pub hot_watermark: usize,
    /// Guard pages (default) or unguarded stacks from an [`Arena`].
    pub guarded: bool,
}

impl Default for StackPoolConfig {
    fn default() -> Self {
        StackPoolConfig {
            stack_size: DEFAULT_STACK_SIZE,
            refill: 16,
            max_cached: 4096,
            hot_watermark: 256,
            guarded: true,
        }
    }
}

/// A LIFO cache of stacks of one size and kind.
#[derive(Debug)]
pub struct StackPool {
    config: StackPoolConfig,
    cached: Vec<Stack>,
    arena: Option<Arena>,
}

impl StackPool {
    /// A pool with the given settings. A `stack_size` above
    /// [`MAX_STACK_SIZE`](crate::MAX_STACK_SIZE) makes a pool whose
    /// [`get`](StackPool::get) fails with that error.
    pub fn new(mut config: StackPoolConfig) -> StackPool {
        config.stack_size = usable_stack_size(config.stack_size).unwrap_or(config.stack_size);
        config.refill = config.refill.max(1);
        StackPool {
            config,
            cached: Vec::new(),
            arena: None,
        }
    }

    /// A pool of guarded [`DEFAULT_STACK_SIZE`] stacks.
    pub fn with_defaults() -> StackPool {
        StackPool::new(StackPoolConfig::default())
    }

    /// The pool's settings (sizes already rounded).
    pub fn config(&self) -> &StackPoolConfig {
        &self.config
    }

    /// Takes a stack, refilling in bulk when empty.
    ///
    /// # Errors
    /// When new stacks cannot be mapped (see [`Stack::new`]).
    #[inline]
    pub fn get(&mut self) -> io::Result<Stack> {
        match self.cached.pop() {
            Some(stack) => Ok(stack),
            None => self.get_refilled(),
        }
    }

    #[cold]
    #[inline(never)]
    fn get_refilled(&mut self) -> io::Result<Stack> {
        self.refill()?;
        Ok(self.cached.pop().expect("refill adds at least one stack"))
    }

    fn refill(&mut self) -> io::Result<()> {
        let stride = self.config.stack_size.saturating_add(guard_size());
        let count = self
            .config
            .refill
            .min(self.config.max_cached)
            .min(MAX_REFILL_BYTES / stride)
            .max(1);
        if self.config.guarded {
            let mut batch = Stack::new_batch(self.config.stack_size, count)?;
            // Hand out the lowest first; order does not matter for correctness.
            batch.reverse();
            self.cached.append(&mut batch);
        } else {
            let arena = match &self.arena {
                Some(arena) => arena,
                None => self.arena.insert(Arena::new(self.config.stack_size)?),
            };
            for _ in 0..count {
                self.cached.push(arena.stack()?);
            }
        }
        Ok(())
    }

    /// Gives a stack back. Stacks of another size or kind are freed.
    #[inline]
    pub fn put(&mut self, mut stack: Stack) {
        if stack.size() != self.config.stack_size
            || stack.is_guarded() != self.config.guarded
            || self.cached.len() >= self.config.max_cached
        {
            return;
        }
        if self.cached.len() >= self.config.hot_watermark {
            stack.release_pages();
        }
        self.cached.push(stack);
    }

    /// Number of stacks cached now.
    pub fn cached(&self) -> usize {
        self.cached.len()
    }

    /// Frees cached stacks until at most `keep` remain (the last given back
    /// go first).
    pub fn trim_to(&mut self, keep: usize) {
        self.cached.truncate(keep);
    }

    /// Frees every cached stack.
    pub fn clear(&mut self) {
        self.cached.clear();
    }
}
