//! Stacks and the pool: guard pages, arenas, LIFO reuse, caps and watermarks.

use green_ctx::{Arena, Fiber, Stack, StackPool, StackPoolConfig, MIN_STACK_SIZE};

#[test]
fn stack_sizes_round_up_to_pages_and_the_minimum() {
    let page = green_ctx::page_size();
    let s = Stack::new(1).unwrap();
    assert_eq!(s.size(), MIN_STACK_SIZE);
    let s = Stack::new(MIN_STACK_SIZE + 1).unwrap();
    assert_eq!(s.size(), MIN_STACK_SIZE + page);
    assert!(s.is_guarded());
    let (lo, hi) = s.guard_range().unwrap();
    assert_eq!(hi, s.bottom());
    assert_eq!(hi - lo, page);
    assert_eq!(s.top() % page, 0);
}

#[test]
fn pool_reuses_stacks_lifo() {
    let mut pool = StackPool::new(StackPoolConfig {
        refill: 4,
        ..Default::default()
    });
    let a = pool.get().unwrap();
    assert_eq!(pool.cached(), 3, "one refill made four stacks");
    let a_bottom = a.bottom();
    pool.put(a);
    let again = pool.get().unwrap();
    assert_eq!(
        again.bottom(),
        a_bottom,
        "the last stack given back comes out first"
    );
    pool.put(again);
}

#[test]
fn pool_runs_fibers_on_reused_stacks() {
    let mut pool = StackPool::with_defaults();
    let mut bottoms = std::collections::HashSet::new();
    for i in 0..100usize {
        let stack = pool.get().unwrap();
        bottoms.insert(stack.bottom());
        let fiber = Fiber::new(stack, move |w| w + i);
        assert_eq!(fiber.switch(1), 1 + i);
        pool.put(fiber.take_stack().unwrap());
    }
    assert_eq!(bottoms.len(), 1, "one stack served every fiber");
}

#[test]
fn pool_caps_what_it_caches_and_rejects_foreign_stacks() {
    let mut pool = StackPool::new(StackPoolConfig {
        refill: 1,
        max_cached: 2,
        hot_watermark: 1,
        ..Default::default()
    });
    let stacks: Vec<_> = (0..4).map(|_| pool.get().unwrap()).collect();
    for s in stacks {
        pool.put(s);
    }
    assert_eq!(pool.cached(), 2);
    pool.put(Stack::new(MIN_STACK_SIZE).unwrap());
    assert_eq!(
        pool.cached(),
        2,
        "a stack of another size is freed, not cached"
    );
}

/// Whether any byte of the stack's top page is non-zero.
fn top_page_dirty(stack: &Stack) -> bool {
    let page = green_ctx::page_size();
    (stack.top() - page..stack.top()).any(|addr| {
        // SAFETY: the address lies in the stack's usable region, which is
        // mapped read/write and not in use by any fiber (we hold the stack).
        unsafe { std::ptr::read_volatile(addr as *const u8) != 0 }
    })
}

#[test]
fn stacks_above_the_watermark_are_released_and_read_back_zero() {
    let mut pool = StackPool::new(StackPoolConfig {
        refill: 2,
        max_cached: 8,
        hot_watermark: 1,
        ..Default::default()
    });
    let dirty = |stack: Stack| {
        let fiber = Fiber::new(stack, |_| {
            let buf = std::hint::black_box([0xA5u8; 512]);
            buf[7] as usize
        });
        assert_eq!(fiber.switch(0), 0xA5);
        fiber.take_stack().unwrap()
    };
    if green_ctx::running_on_valgrind() {
        // Valgrind rightly flags reads of a stack below its last stack pointer.
        println!("skipped: raw reads of stack memory are invalid under valgrind");
        return;
    }
    let a = dirty(pool.get().unwrap());
    let b = dirty(pool.get().unwrap());
    assert!(top_page_dirty(&a) && top_page_dirty(&b));
    pool.put(a); // below the watermark: kept as it is
    pool.put(b); // at the watermark: its pages are released
    let b = pool.get().unwrap();
    assert!(!top_page_dirty(&b), "released pages read back as zeroes");
    let a = pool.get().unwrap();
    assert!(
        top_page_dirty(&a),
        "a stack below the watermark keeps its pages"
    );
}

#[test]
fn unguarded_pool_carves_from_an_arena() {
    let mut pool = StackPool::new(StackPoolConfig {
        guarded: false,
        stack_size: MIN_STACK_SIZE,
        ..Default::default()
    });
    let s = pool.get().unwrap();
    assert!(!s.is_guarded());
    assert!(s.guard_range().is_none());
    let fiber = Fiber::new(s, |w| w * 2);
    assert_eq!(fiber.switch(4), 8);
}

#[test]
fn arena_reuses_freed_stacks_and_maps_few_chunks() {
    let arena = Arena::new(MIN_STACK_SIZE).unwrap();
    let stacks: Vec<_> = (0..1000).map(|_| arena.stack().unwrap()).collect();
    assert_eq!(
        arena.mappings(),
        1,
        "a thousand 16 KiB stacks fit one chunk"
    );
    let first = stacks[0].bottom();
    assert_eq!(
        stacks[1].bottom(),
        first + arena.stack_size(),
        "carved back to back"
    );
    drop(stacks);
    let again = arena.stack().unwrap();
    assert_eq!(arena.mappings(), 1);
    assert!(again.bottom() >= first);
}
