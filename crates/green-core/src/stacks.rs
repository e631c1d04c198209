//! The hub's stacks: one pool per size class and kind, with a bound on what
//! idle pools keep.
//!
//! * **The default pool** serves guarded [`DEFAULT_STACK_SIZE`] stacks (every
//!   plain `spawn`) directly: one branch, then green-ctx's LIFO pool. It is
//!   never trimmed beyond the pool's own cap and watermark.
//! * **Size classes.** Any other `Builder::stack_size(n)` is rounded up to a
//!   power of two of at least [`MIN_STACK_SIZE`] (32, 64, 128, 256 KiB, ...,
//!   [`MAX_STACK_SIZE`]), so a greenlet gets at least `n` usable bytes and a
//!   thread has at most 16 classes × 2 kinds of other pools, however many
//!   distinct sizes it asks for. The default size is a class of its own.
//! * **Trim on give-back.** Idle stacks in the other pools are capped
//!   together at [`OTHER_IDLE_BYTES`] usable bytes: after each give-back to
//!   them, the least recently used pools give stacks back to the system
//!   until the cap holds (the pool just used goes last), and a pool left
//!   empty is dropped. Deterministic, no timer: a burst of odd-sized
//!   greenlets leaves at most 64 MiB of idle stacks behind (at most 2 048
//!   stacks, so 4 096 mappings, of `vm.max_map_count`'s 65 530), and a
//!   stack of more than 64 MiB is freed as soon as it is given back. (A
//!   refill may add up to green-ctx's `MAX_REFILL_BYTES` more until the
//!   next give-back.)
//! * Sizes above [`MAX_STACK_SIZE`] are refused with green-ctx's
//!   `InvalidInput` error, which names the limit and the fix.
//! * **Closed** (after hub teardown): stacks given back are freed, and a
//!   stack taken is made alone, so nothing stays cached in a hub record that
//!   outlives its thread's use of it.

use std::io;

use green_ctx::{
    usable_stack_size, Arena, Stack, StackPool, StackPoolConfig, DEFAULT_STACK_SIZE,
    MAX_STACK_SIZE, MIN_STACK_SIZE,
};

/// Most usable bytes of idle stacks the non-default pools keep together.
pub(crate) const OTHER_IDLE_BYTES: usize = 64 << 20;

/// The usable size a greenlet asking for `size` bytes gets: `size` rounded
/// up to pages and [`MIN_STACK_SIZE`], then to its class (a power of two;
/// [`DEFAULT_STACK_SIZE`] is one).
///
/// # Errors
/// [`io::ErrorKind::InvalidInput`] above [`MAX_STACK_SIZE`].
pub(crate) fn round_stack_size(size: usize) -> io::Result<usize> {
    // At most MAX_STACK_SIZE, itself a power of two: the class neither
    // overflows nor passes the limit.
    Ok(usable_stack_size(size)?.next_power_of_two())
}

const _: () = assert!(MAX_STACK_SIZE.is_power_of_two());
const _: () = assert!(DEFAULT_STACK_SIZE.is_power_of_two() && DEFAULT_STACK_SIZE >= MIN_STACK_SIZE);

/// One non-default pool and when it was last used.
#[derive(Debug)]
struct ClassPool {
    pool: StackPool,
    /// [`StackPools::clock`] at the last take or give-back.
    used: u64,
}

/// The hub's stack pools. See the module docs.
#[derive(Debug)]
pub(crate) struct StackPools {
    default: StackPool,
    others: Vec<ClassPool>,
    /// Counts takes and give-backs to the other pools, for LRU order.
    clock: u64,
    open: bool,
}

impl StackPools {
    /// Open pools, nothing mapped yet.
    pub(crate) fn new() -> StackPools {
        StackPools {
            default: StackPool::with_defaults(),
            others: Vec::new(),
            clock: 0,
            open: true,
        }
    }

    /// Takes a stack of at least `size` usable bytes ([`DEFAULT_STACK_SIZE`]
    /// if `None`), guarded or not.
    ///
    /// # Errors
    /// A size above [`MAX_STACK_SIZE`], or the mapping failed (see
    /// [`Stack::new`]).
    #[inline]
    pub(crate) fn take(&mut self, size: Option<usize>, guarded: bool) -> io::Result<Stack> {
        if size.is_none() && guarded && self.open {
            return self.default.get();
        }
        self.take_other(size.unwrap_or(DEFAULT_STACK_SIZE), guarded)
    }

    #[inline(never)]
    fn take_other(&mut self, size: usize, guarded: bool) -> io::Result<Stack> {
        let class = round_stack_size(size)?;
        if !self.open {
            return if guarded {
                Stack::new(class)
            } else {
                Arena::new(class)?.stack()
            };
        }
        if class == DEFAULT_STACK_SIZE && guarded {
            return self.default.get();
        }
        self.clock += 1;
        let clock = self.clock;
        let index = match self.find(class, guarded) {
            Some(index) => index,
            None => {
                self.others.push(ClassPool {
                    pool: StackPool::new(StackPoolConfig {
                        stack_size: class,
                        guarded,
                        ..StackPoolConfig::default()
                    }),
                    used: clock,
                });
                self.others.len() - 1
            }
        };
        let other = &mut self.others[index];
        other.used = clock;
        other.pool.get()
    }

    /// Gives a stack back: cached, or freed when closed or over the caps.
    #[inline]
    pub(crate) fn give_back(&mut self, stack: Stack) {
        if stack.size() == DEFAULT_STACK_SIZE && stack.is_guarded() && self.open {
            self.default.put(stack);
            return;
        }
        self.give_back_other(stack);
    }

    #[inline(never)]
    fn give_back_other(&mut self, stack: Stack) {
        if !self.open {
            return; // dropped: freed
        }
        let Some(index) = self.find(stack.size(), stack.is_guarded()) else {
            return; // no pool of its class any more: freed
        };
        self.clock += 1;
        self.others[index].used = self.clock;
        self.others[index].pool.put(stack);
        self.trim();
    }

    fn find(&self, class: usize, guarded: bool) -> Option<usize> {
        self.others.iter().position(|other| {
            let config = other.pool.config();
            config.stack_size == class && config.guarded == guarded
        })
    }

    /// Usable bytes of the idle stacks of the other pools.
    fn idle_bytes(&self) -> usize {
        self.others
            .iter()
            .map(|other| other.pool.cached() * other.pool.config().stack_size)
            .sum()
    }

    /// Frees idle stacks of the least recently used other pools until the
    /// cap holds; drops the pools it empties.
    fn trim(&mut self) {
        loop {
            let bytes = self.idle_bytes();
            if bytes <= OTHER_IDLE_BYTES {
                break;
            }
            let Some(victim) = self
                .others
                .iter_mut()
                .filter(|other| other.pool.cached() > 0)
                .min_by_key(|other| other.used)
            else {
                break;
            };
            let size = victim.pool.config().stack_size;
            let cached = victim.pool.cached();
            let over = (bytes - OTHER_IDLE_BYTES).div_ceil(size);
            victim.pool.trim_to(cached - over.min(cached));
        }
        self.others.retain(|other| other.pool.cached() > 0);
    }

    /// Frees every cached stack; until [`open`](StackPools::open), stacks
    /// given back are freed and stacks taken are made one by one.
    pub(crate) fn close(&mut self) {
        self.open = false;
        self.default.clear();
        self.others.clear();
    }

    /// Caches stacks again (a hub initialising).
    pub(crate) fn open(&mut self) {
        self.open = true;
    }

    /// Stacks cached by the non-default pools, and how many such pools
    /// exist: for tests.
    #[cfg(test)]
    pub(crate) fn other_idle(&self) -> (usize, usize) {
        let stacks = self.others.iter().map(|o| o.pool.cached()).sum();
        (stacks, self.others.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_powers_of_two_from_the_minimum_and_hold_the_request() {
        assert_eq!(round_stack_size(0).unwrap(), MIN_STACK_SIZE);
        assert_eq!(round_stack_size(MIN_STACK_SIZE).unwrap(), MIN_STACK_SIZE);
        assert_eq!(
            round_stack_size(MIN_STACK_SIZE + 1).unwrap(),
            2 * MIN_STACK_SIZE
        );
        assert_eq!(
            round_stack_size(DEFAULT_STACK_SIZE).unwrap(),
            DEFAULT_STACK_SIZE
        );
        assert_eq!(round_stack_size(MAX_STACK_SIZE).unwrap(), MAX_STACK_SIZE);
        for size in [1, 5000, 40_000, 100_000, 300_000, (1 << 29) + 1] {
            let class = round_stack_size(size).unwrap();
            assert!(class >= size && class.is_power_of_two(), "{size}: {class}");
        }
        let err = round_stack_size(MAX_STACK_SIZE + 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn the_default_size_is_served_by_the_default_pool() {
        let mut pools = StackPools::new();
        let a = pools.take(None, true).unwrap();
        let b = pools.take(Some(DEFAULT_STACK_SIZE - 100), true).unwrap();
        assert_eq!(pools.other_idle(), (0, 0));
        pools.give_back(a);
        pools.give_back(b);
        assert_eq!(pools.default.cached(), 16);
    }

    #[test]
    fn many_sizes_share_a_few_pools_and_idle_stacks_are_capped() {
        let mut pools = StackPools::new();
        let mut held = Vec::new();
        for i in 0..500 {
            let size = MIN_STACK_SIZE + i * 4096;
            let stack = pools.take(Some(size), i % 2 == 0).unwrap();
            assert!(stack.size() >= size);
            held.push(stack);
        }
        let (_, classes) = pools.other_idle();
        assert!(classes <= 2 * 16, "{classes} pools");
        for stack in held {
            pools.give_back(stack);
        }
        let bytes = pools.idle_bytes();
        assert!(bytes <= OTHER_IDLE_BYTES, "{bytes} idle bytes");
    }

    #[test]
    fn a_huge_stack_is_not_kept_and_the_least_recently_used_pool_goes_first() {
        let mut pools = StackPools::new();
        let huge = pools.take(Some(256 << 20), true).unwrap();
        pools.give_back(huge);
        assert_eq!(pools.other_idle(), (0, 0), "256 MiB idle is over the cap");

        let old = pools.take(Some(512 << 10), true).unwrap();
        pools.give_back(old);
        assert!(pools.find(512 << 10, true).is_some());
        // A newer class fills the cap: the older class's pool goes first.
        let fresh: Vec<_> = (0..OTHER_IDLE_BYTES >> 20)
            .map(|_| pools.take(Some(1 << 20), true).unwrap())
            .collect();
        for stack in fresh {
            pools.give_back(stack);
        }
        assert!(
            pools.find(512 << 10, true).is_none(),
            "the old pool was trimmed"
        );
        assert_eq!(pools.idle_bytes(), OTHER_IDLE_BYTES);
    }

    #[test]
    fn closed_pools_keep_nothing() {
        let mut pools = StackPools::new();
        let stack = pools.take(None, true).unwrap();
        let odd = pools.take(Some(100_000), false).unwrap();
        pools.close();
        pools.give_back(stack);
        pools.give_back(odd);
        assert_eq!(pools.default.cached(), 0);
        assert_eq!(pools.other_idle(), (0, 0));
        let again = pools.take(None, true).unwrap();
        assert_eq!(again.size(), DEFAULT_STACK_SIZE);
        pools.give_back(again);
        assert_eq!(pools.default.cached(), 0);
        pools.open();
        let stack = pools.take(None, true).unwrap();
        pools.give_back(stack);
        assert_eq!(pools.default.cached(), 16);
    }
}
