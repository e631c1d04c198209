//! Timers: a hierarchical timing wheel with ticks of 2^16 ns (65.536 µs).
//!
//! The design follows tokio's wheel: six levels of 64 slots. A slot at level
//! `n` covers `64^n` ticks, so level 0 holds timers due within the next
//! ~4.2 ms (one slot per tick), level 1 within ~268 ms, level 2 within ~17 s,
//! level 3 within ~18 min, level 4 within ~19.5 h and level 5 within ~52
//! days (later deadlines are parked in the top level and re-cascaded).
//!
//! Why not tokio's 1 ms tick: a deadline is rounded up to a tick, so a tick
//! is the lateness every timer may pay. With 1 ms ticks a greenlet sleeping
//! 1 ms in a loop woke about 1 ms late each time (`core/sleep_lateness`);
//! with 65 µs ticks it wakes within a tick of its deadline, and a long
//! timeout that is cancelled before it fires (a server's usual case) costs
//! the same, since cancel never cascades. The loop's wait is as precise as
//! the backend's timeout (io_uring's is in nanoseconds).
//!
//! ```text
//!  level 5  [..64 slots of 2^30 ticks..]   occupied: u64 bitmap per level
//!  level 1  [..64 slots of 64 ticks..]     each slot: intrusive doubly linked
//!  level 0  [..64 slots of 1 tick..]       list of slot indices (O(1) unlink)
//! ```
//!
//! * Insert: compute the level from the highest bit in which the deadline
//!   differs from the wheel's `elapsed` tick, append to that slot's list: O(1).
//! * Cancel: unlink from the list through the entry's `prev`/`next`: O(1).
//! * Advance: find the next occupied slot per level with the bitmap, move
//!   level-0 entries to the due buffer and re-insert ("cascade") the entries of
//!   higher levels. Entries never fire early: a deadline is rounded *up* to the
//!   next tick.
//! * Idle: an empty wheel is not advanced (the loop skips it, and reads no
//!   clock for it); [`Wheel::catch_up`] brings `elapsed` to the present
//!   before the next insert, so a timer is always placed from the current
//!   tick, as if the wheel had been advanced all along.
//! * Ordering: the due buffer is sorted by `(deadline, insertion sequence)`
//!   before firing, so timers with equal deadlines fire in insertion order even
//!   when one of them went through a cascade and the other did not.
//!
//! A timer's storage is split in two, indexed alike, because what costs is cache lines, not instructions: a server cancels a
//! timeout long after inserting it (and after 100 000 others), so the entries
//! that cancel touches (its own and its two list neighbours) are cold.
//!
//! * `links`, a [`Slab`] of 16-byte entries (generation, list links,
//!   location, flags): all that cancel reads or writes for an `fn`-pointer
//!   timer. Four to a cache line, against one 80-byte entry spanning two
//!   lines when the whole timer lived in the slab.
//! * `timers`, a `Vec` indexed by slab index (40 bytes: deadline, sequence
//!   number, handler), touched on insert, cascade and fire, and on cancel
//!   only to drop a closure.
//!
//! The deadline is stored as nanoseconds from the wheel's origin, offset by
//! 2^63 so that deadlines before the origin keep their order (saturating
//! ~292 years either side, where ties fall back to insertion order); the
//! tick is recomputed from it when cascading instead of being stored.
//!
//! Cancel unlinks and frees the slab entry at once (a new generation, so a
//! stale [`TimerId`] never reaches the next tenant): a cancelled timer holds
//! nothing until its wheel slot would have expired. Neither store shrinks
//! and the due buffer keeps its capacity, so in steady state inserting,
//! cancelling and firing `fn`-pointer timers allocate nothing.

use std::time::{Duration, Instant};

use crate::token::{Key, Slab, TimerId};
use crate::Loop;

const LEVELS: usize = 6;
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
const SLOT_MASK: u64 = (SLOTS as u64) - 1;
/// Largest tick distance the wheel represents exactly.
const MAX_DURATION: u64 = (1 << (SLOT_BITS as usize * LEVELS)) - 1;
const NIL: u32 = u32::MAX;
const NANOS_PER_TICK: u64 = 1 << 16;
/// The stamp of the origin (see [`Wheel::stamp`]).
const STAMP_ORIGIN: u64 = 1 << 63;

/// `Link::loc` of a timer in `Wheel::overdue`; wheel slots are
/// `level * SLOTS + slot`, below it.
const LOC_OVERDUE: u16 = (LEVELS * SLOTS) as u16;
/// `Link::loc` of a timer in the due buffer (in no list).
const LOC_DUE: u16 = LOC_OVERDUE + 1;

/// What a timer runs when it fires.
pub(crate) enum TimerHandler {
    /// A plain function plus one word of data: registering allocates nothing.
    Fn(fn(&Loop, TimerId, u64), u64),
    /// A boxed closure (a zero-sized closure does not allocate).
    Closure(Box<dyn FnOnce(&Loop)>),
}

/// The handler left in a freed slot: never called (the slot is vacant).
fn vacant(_: &Loop, _: TimerId, _: u64) {}

/// The hot half of a timer (see the module docs). 12 bytes, and its `bool`s
/// leave the slab a niche for its vacant state: 16 bytes with the generation.
#[derive(Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
    loc: u16,
    /// Keeps the loop alive.
    referenced: bool,
    /// The handler is a closure, to drop on cancel.
    closure: bool,
}

// Growing `Link` past 12 bytes (or losing the `bool` niche) would undo the
// split's gain; see the module docs.
const _: () = assert!(std::mem::size_of::<Link>() == 12);

/// The cold half of a timer.
struct Timer {
    /// See [`Wheel::stamp`].
    deadline: u64,
    seq: u64,
    handler: TimerHandler,
}

#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

const EMPTY: List = List {
    head: NIL,
    tail: NIL,
};

struct Level {
    occupied: u64,
    slots: [List; SLOTS],
}

/// A fired timer, handed to the loop to call.
pub(crate) struct Fired {
    pub(crate) id: TimerId,
    pub(crate) handler: TimerHandler,
}

/// The timing wheel.
pub(crate) struct Wheel {
    origin: Instant,
    elapsed: u64,
    links: Slab<Link>,
    /// Indexed like `links`; an entry whose link is vacant holds a dead
    /// `fn` handler (or none yet).
    timers: Vec<Timer>,
    levels: [Level; LEVELS],
    overdue: List,
    due: Vec<(u64, u64, Key)>,
    due_pos: usize,
    seq: u64,
    referenced: usize,
    /// The stamp of the `now` of the last `advance`: a timer inserted with a
    /// deadline at or before it is already due and fires at the next
    /// advance, instead of waiting for the next millisecond boundary
    /// (`Timeout(0)`, `sleep` of a deadline that has passed).
    last_now: u64,
}

impl Wheel {
    pub(crate) fn new(origin: Instant) -> Wheel {
        Wheel {
            origin,
            elapsed: 0,
            links: Slab::new(),
            timers: Vec::new(),
            levels: std::array::from_fn(|_| Level {
                occupied: 0,
                slots: [EMPTY; SLOTS],
            }),
            overdue: EMPTY,
            due: Vec::new(),
            due_pos: 0,
            seq: 0,
            referenced: 0,
            last_now: STAMP_ORIGIN,
        }
    }

    /// Timers that keep the loop alive.
    pub(crate) fn referenced(&self) -> usize {
        self.referenced
    }

    /// All timers not yet fired or cancelled.
    pub(crate) fn len(&self) -> usize {
        self.links.len()
    }

    /// No timer is pending: none can come due, so advancing is idle work.
    pub(crate) fn is_empty(&self) -> bool {
        self.links.len() == 0
    }

    /// Moves an empty wheel's clock to `now` (see the module docs). Empty
    /// means every list is empty and every `occupied` bit clear, so the
    /// jump skips nothing.
    pub(crate) fn catch_up(&mut self, now: Instant) {
        debug_assert!(self.is_empty(), "catch_up would skip pending timers");
        let (now_tick, now_stamp) = self.tick_and_stamp(now);
        self.elapsed = self.elapsed.max(now_tick);
        self.last_now = self.last_now.max(now_stamp);
    }

    /// An instant as a `u64` that orders like it: nanoseconds from the
    /// origin plus 2^63 (saturating). One word instead of an `Instant`'s two
    /// keeps the cold half of a slot small.
    fn stamp(&self, t: Instant) -> u64 {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        match t.checked_duration_since(self.origin) {
            Some(d) => STAMP_ORIGIN.saturating_add(nanos(d)),
            None => STAMP_ORIGIN.saturating_sub(nanos(self.origin - t)),
        }
    }

    /// Current time → its tick (rounded down) and its [stamp](Self::stamp),
    /// from one subtraction (a current time is never before the origin).
    fn tick_and_stamp(&self, t: Instant) -> (u64, u64) {
        let since = t.saturating_duration_since(self.origin);
        let nanos = u64::try_from(since.as_nanos()).unwrap_or(u64::MAX);
        (nanos / NANOS_PER_TICK, STAMP_ORIGIN.saturating_add(nanos))
    }

    pub(crate) fn insert(&mut self, deadline: Instant, handler: TimerHandler) -> TimerId {
        let deadline = self.stamp(deadline);
        let when = if deadline <= self.last_now {
            self.elapsed
        } else {
            tick_ceil(deadline)
        };
        let key = self.links.insert(Link {
            prev: NIL,
            next: NIL,
            loc: LOC_DUE,
            referenced: true,
            closure: matches!(handler, TimerHandler::Closure(_)),
        });
        self.seq += 1;
        let timer = Timer {
            deadline,
            seq: self.seq,
            handler,
        };
        // The slab hands out indices densely, so a new one is the next.
        if let Some(slot) = self.timers.get_mut(key.idx as usize) {
            *slot = timer;
        } else {
            self.timers.push(timer);
        }
        self.referenced += 1;
        self.place(key.idx, when);
        TimerId(key.pack())
    }

    /// Frees the slab entry of a live, unlinked timer; returns its link.
    fn release(&mut self, key: Key) -> Link {
        let link = self.links.remove(key).expect("releasing a dead timer");
        if link.referenced {
            self.referenced -= 1;
        }
        link
    }

    fn link(&mut self, idx: u32) -> &mut Link {
        // Index-only access for list surgery: the entry is occupied whenever
        // it is linked (lists are updated before an entry is removed).
        self.links
            .get_mut_by_index(idx)
            .expect("timer list links a vacant entry")
    }

    /// Takes the handler out of slot `idx`, leaving one that is never run.
    fn take_handler(&mut self, idx: u32) -> TimerHandler {
        std::mem::replace(
            &mut self.timers[idx as usize].handler,
            TimerHandler::Fn(vacant, 0),
        )
    }

    /// Links slot `idx` into the list its tick belongs to.
    fn place(&mut self, idx: u32, when: u64) {
        if when <= self.elapsed {
            self.push_back(idx, LOC_OVERDUE);
        } else {
            let level = level_for(self.elapsed, when);
            let slot = (when >> (level as u32 * SLOT_BITS)) & SLOT_MASK;
            self.push_back(idx, (level * SLOTS) as u16 + slot as u16);
        }
    }

    fn list(&mut self, loc: u16) -> &mut List {
        if loc < LOC_OVERDUE {
            let (level, slot) = (loc as usize / SLOTS, loc as usize % SLOTS);
            &mut self.levels[level].slots[slot]
        } else {
            debug_assert_eq!(loc, LOC_OVERDUE, "the due buffer is not a list");
            &mut self.overdue
        }
    }

    fn push_back(&mut self, idx: u32, loc: u16) {
        let tail = self.list(loc).tail;
        {
            let link = self.link(idx);
            link.prev = tail;
            link.next = NIL;
            link.loc = loc;
        }
        if tail == NIL {
            self.list(loc).head = idx;
        } else {
            self.link(tail).next = idx;
        }
        self.list(loc).tail = idx;
        if loc < LOC_OVERDUE {
            self.levels[loc as usize / SLOTS].occupied |= 1 << (loc as usize % SLOTS);
        }
    }

    fn unlink(&mut self, idx: u32) {
        let Link {
            prev, next, loc, ..
        } = *self.link(idx);
        if loc == LOC_DUE {
            return;
        }
        if prev == NIL {
            self.list(loc).head = next;
        } else {
            self.link(prev).next = next;
        }
        if next == NIL {
            self.list(loc).tail = prev;
        } else {
            self.link(next).prev = prev;
        }
        if loc < LOC_OVERDUE && prev == NIL && next == NIL {
            self.levels[loc as usize / SLOTS].occupied &= !(1 << (loc as usize % SLOTS));
        }
    }

    /// Cancels a pending timer. Returns false if it already fired or was
    /// cancelled (or the id is stale).
    /// Whether `id` names a timer that has neither fired nor been cancelled.
    pub(crate) fn contains(&self, id: TimerId) -> bool {
        self.links.get(id.key()).is_some()
    }

    pub(crate) fn cancel(&mut self, id: TimerId) -> bool {
        let key = id.key();
        if self.links.get(key).is_none() {
            return false;
        }
        self.unlink(key.idx);
        if self.release(key).closure {
            // Only a closure owns anything; an `fn` handler is left in place
            // so that cancel does not touch the cold half at all.
            drop(self.take_handler(key.idx));
        }
        true
    }

    /// Marks a timer as keeping (or not keeping) the loop alive.
    pub(crate) fn set_ref(&mut self, id: TimerId, referenced: bool) -> bool {
        let Some(link) = self.links.get_mut(id.key()) else {
            return false;
        };
        if link.referenced != referenced {
            link.referenced = referenced;
            if referenced {
                self.referenced += 1;
            } else {
                self.referenced -= 1;
            }
        }
        true
    }

    /// The earliest instant at which a timer may be due (a lower bound when
    /// the next timer sits in a higher level: the loop wakes, cascades, and
    /// asks again). `None` when no timer is pending.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        if self.is_empty() {
            return None;
        }
        if self.overdue.head != NIL || self.due_pos < self.due.len() {
            return Some(self.origin);
        }
        let tick = self.next_expiration().map(|(_, _, t)| t)?;
        Some(self.origin + Duration::from_nanos(tick.saturating_mul(NANOS_PER_TICK)))
    }

    fn next_expiration(&self) -> Option<(usize, usize, u64)> {
        for level in 0..LEVELS {
            let lv = &self.levels[level];
            if lv.occupied == 0 {
                continue;
            }
            let slot_range = 1u64 << (SLOT_BITS as usize * level);
            let level_range = slot_range << SLOT_BITS;
            let now_slot = (self.elapsed / slot_range) as u32;
            let rotated = lv.occupied.rotate_right(now_slot % SLOTS as u32);
            let slot = (rotated.trailing_zeros() as usize + now_slot as usize) % SLOTS;
            let level_start = self.elapsed & !(level_range - 1);
            let mut deadline = level_start + slot as u64 * slot_range;
            if deadline <= self.elapsed {
                deadline += level_range;
            }
            return Some((level, slot, deadline));
        }
        None
    }

    /// Moves every timer due at `now` into the due buffer, in firing order.
    pub(crate) fn advance(&mut self, now: Instant) {
        let (now_tick, now_stamp) = self.tick_and_stamp(now);
        self.last_now = self.last_now.max(now_stamp);
        // Compact what is left of a previous batch (normally nothing).
        if self.due_pos > 0 {
            self.due.drain(..self.due_pos);
            self.due_pos = 0;
        }
        while self.overdue.head != NIL {
            let idx = self.overdue.head;
            self.unlink(idx);
            self.mark_due(idx);
        }
        while let Some((level, slot, tick)) = self.next_expiration() {
            if tick > now_tick {
                break;
            }
            self.elapsed = tick;
            let list = std::mem::replace(&mut self.levels[level].slots[slot], EMPTY);
            self.levels[level].occupied &= !(1 << slot);
            let mut idx = list.head;
            while idx != NIL {
                let next = self.link(idx).next;
                // Only timers placed in the wheel get here, and for those the
                // tick is the deadline's, rounded up (see `insert`).
                let when = tick_ceil(self.timers[idx as usize].deadline);
                if when <= self.elapsed {
                    self.mark_due(idx);
                } else {
                    self.place(idx, when);
                }
                idx = next;
            }
        }
        if now_tick > self.elapsed {
            self.elapsed = now_tick;
        }
        self.due
            .sort_unstable_by_key(|&(deadline, seq, _)| (deadline, seq));
    }

    fn mark_due(&mut self, idx: u32) {
        let gen = self.links.gen_of(idx);
        let link = self.link(idx);
        link.loc = LOC_DUE;
        link.prev = NIL;
        link.next = NIL;
        let t = &self.timers[idx as usize];
        self.due.push((t.deadline, t.seq, Key { idx, gen }));
    }

    /// Takes the next due timer (skipping ones cancelled since `advance`).
    pub(crate) fn pop_due(&mut self) -> Option<Fired> {
        while self.due_pos < self.due.len() {
            let (_, _, key) = self.due[self.due_pos];
            self.due_pos += 1;
            if self.links.get(key).is_some() {
                self.release(key);
                return Some(Fired {
                    id: TimerId(key.pack()),
                    handler: self.take_handler(key.idx),
                });
            }
        }
        self.due.clear();
        self.due_pos = 0;
        None
    }
}

/// Deadline stamp → tick, rounded up so a timer never fires early.
fn tick_ceil(stamp: u64) -> u64 {
    stamp.saturating_sub(STAMP_ORIGIN).div_ceil(NANOS_PER_TICK)
}

/// The level a deadline `when` belongs to, seen from tick `elapsed`
/// (tokio's formula: the highest 6-bit digit in which they differ).
fn level_for(elapsed: u64, when: u64) -> usize {
    let mut masked = (elapsed ^ when) | SLOT_MASK;
    if masked >= MAX_DURATION {
        masked = MAX_DURATION - 1;
    }
    let significant = 63 - masked.leading_zeros() as usize;
    significant / SLOT_BITS as usize
}
