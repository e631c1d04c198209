//! Timers: a hierarchical timing wheel with 1 ms ticks.
//!
//! The design follows tokio's wheel: six levels of 64 slots. A slot at level
//! `n` covers `64^n` ticks, so level 0 holds timers due within the next 64 ms
//! (one slot per millisecond), level 1 within ~4 s, level 2 within ~4.4 min,
//! level 3 within ~4.7 h, level 4 within ~12.4 days and level 5 within ~2.2
//! years (later deadlines are parked in the top level and re-cascaded).
//!
//! ```text
//!  level 5  [..64 slots of 2^30 ms..]      occupied: u64 bitmap per level
//!  level 1  [..64 slots of 64 ms..]        each slot: intrusive doubly linked
//!  level 0  [..64 slots of 1 ms..]         list of slab indices (O(1) unlink)
//! ```
//!
//! * Insert: compute the level from the highest bit in which the deadline
//!   differs from the wheel's `elapsed` tick, append to that slot's list: O(1).
//! * Cancel: unlink from the list through the entry's `prev`/`next`: O(1).
//! * Advance: find the next occupied slot per level with the bitmap, move
//!   level-0 entries to the due buffer and re-insert ("cascade") the entries of
//!   higher levels. Entries never fire early: a deadline is rounded *up* to the
//!   next tick.
//! * Ordering: the due buffer is sorted by `(deadline, insertion sequence)`
//!   before firing, so timers with equal deadlines fire in insertion order even
//!   when one of them went through a cascade and the other did not.
//!
//! Entries live in a [`Slab`]; the due buffer keeps its capacity; so in steady
//! state inserting, cancelling and firing `fn`-pointer timers allocate nothing.

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

/// What a timer runs when it fires.
pub(crate) enum TimerHandler {
    /// A plain function plus one word of data: registering allocates nothing.
    Fn(fn(&Loop, TimerId, u64), u64),
    /// A boxed closure (a zero-sized closure does not allocate).
    Closure(Box<dyn FnOnce(&Loop)>),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Loc {
    Wheel { level: u8, slot: u8 },
    Overdue,
    Due,
}

struct Entry {
    when: u64,
    deadline: Instant,
    seq: u64,
    prev: u32,
    next: u32,
    loc: Loc,
    referenced: bool,
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
    entries: Slab<Entry>,
    levels: [Level; LEVELS],
    overdue: List,
    due: Vec<(Instant, u64, Key)>,
    due_pos: usize,
    seq: u64,
    referenced: usize,
    /// The `now` of the last `advance`: a timer inserted with a deadline at
    /// or before it is already due and fires at the next advance, instead of
    /// waiting for the next millisecond boundary (`Timeout(0)`, `sleep` of a
    /// deadline that has passed).
    last_now: Instant,
}

impl Wheel {
    pub(crate) fn new(origin: Instant) -> Wheel {
        Wheel {
            origin,
            elapsed: 0,
            entries: Slab::new(),
            levels: std::array::from_fn(|_| Level {
                occupied: 0,
                slots: [EMPTY; SLOTS],
            }),
            overdue: EMPTY,
            due: Vec::new(),
            due_pos: 0,
            seq: 0,
            referenced: 0,
            last_now: origin,
        }
    }

    /// Timers that keep the loop alive.
    pub(crate) fn referenced(&self) -> usize {
        self.referenced
    }

    /// All timers not yet fired or cancelled.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Deadline → tick, rounded up so a timer never fires early.
    fn tick_ceil(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.origin);
        let ms = d.as_millis() as u64;
        if d > Duration::from_millis(ms) {
            ms + 1
        } else {
            ms
        }
    }

    /// Current time → tick, rounded down.
    fn tick_floor(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.origin).as_millis() as u64
    }

    pub(crate) fn insert(&mut self, deadline: Instant, handler: TimerHandler) -> TimerId {
        let when = if deadline <= self.last_now {
            self.elapsed
        } else {
            self.tick_ceil(deadline)
        };
        self.seq += 1;
        let key = self.entries.insert(Entry {
            when,
            deadline,
            seq: self.seq,
            prev: NIL,
            next: NIL,
            loc: Loc::Overdue,
            referenced: true,
            handler,
        });
        self.referenced += 1;
        self.place(key.idx, when);
        TimerId(key.pack())
    }

    /// Links entry `idx` into the list its tick belongs to.
    fn place(&mut self, idx: u32, when: u64) {
        if when <= self.elapsed {
            self.push_back(idx, Loc::Overdue);
        } else {
            let level = level_for(self.elapsed, when);
            let slot = ((when >> (level as u32 * SLOT_BITS)) & SLOT_MASK) as u8;
            self.push_back(
                idx,
                Loc::Wheel {
                    level: level as u8,
                    slot,
                },
            );
        }
    }

    fn entry(&mut self, idx: u32) -> &mut Entry {
        // Index-only access for list surgery: the entry is occupied whenever
        // it is linked (lists are updated before an entry is removed).
        self.entries
            .get_mut_by_index(idx)
            .expect("timer list links a vacant entry")
    }

    fn list(&mut self, loc: Loc) -> &mut List {
        match loc {
            Loc::Wheel { level, slot } => &mut self.levels[level as usize].slots[slot as usize],
            Loc::Overdue => &mut self.overdue,
            Loc::Due => unreachable!("the due buffer is not a list"),
        }
    }

    fn push_back(&mut self, idx: u32, loc: Loc) {
        let tail = self.list(loc).tail;
        {
            let e = self.entry(idx);
            e.prev = tail;
            e.next = NIL;
            e.loc = loc;
        }
        if tail == NIL {
            self.list(loc).head = idx;
        } else {
            self.entry(tail).next = idx;
        }
        self.list(loc).tail = idx;
        if let Loc::Wheel { level, slot } = loc {
            self.levels[level as usize].occupied |= 1 << slot;
        }
    }

    fn unlink(&mut self, idx: u32) {
        let (prev, next, loc) = {
            let e = self.entry(idx);
            (e.prev, e.next, e.loc)
        };
        if loc == Loc::Due {
            return;
        }
        if prev == NIL {
            self.list(loc).head = next;
        } else {
            self.entry(prev).next = next;
        }
        if next == NIL {
            self.list(loc).tail = prev;
        } else {
            self.entry(next).prev = prev;
        }
        if let Loc::Wheel { level, slot } = loc {
            if self.levels[level as usize].slots[slot as usize].head == NIL {
                self.levels[level as usize].occupied &= !(1 << slot);
            }
        }
    }

    /// Cancels a pending timer. Returns false if it already fired or was
    /// cancelled (or the id is stale).
    pub(crate) fn cancel(&mut self, id: TimerId) -> bool {
        let key = id.key();
        if self.entries.get(key).is_none() {
            return false;
        }
        self.unlink(key.idx);
        let e = self.entries.remove(key).expect("checked above");
        if e.referenced {
            self.referenced -= 1;
        }
        true
    }

    /// Marks a timer as keeping (or not keeping) the loop alive.
    pub(crate) fn set_ref(&mut self, id: TimerId, referenced: bool) -> bool {
        let Some(e) = self.entries.get_mut(id.key()) else {
            return false;
        };
        if e.referenced != referenced {
            e.referenced = referenced;
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
        if self.overdue.head != NIL || self.due_pos < self.due.len() {
            return Some(self.origin);
        }
        let tick = self.next_expiration().map(|(_, _, t)| t)?;
        Some(self.origin + Duration::from_millis(tick))
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
        let now_tick = self.tick_floor(now);
        self.last_now = self.last_now.max(now);
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
                let (next, when) = {
                    let e = self.entry(idx);
                    (e.next, e.when)
                };
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
        let gen = self.entries.gen_of(idx);
        let e = self.entry(idx);
        e.loc = Loc::Due;
        e.prev = NIL;
        e.next = NIL;
        let item = (e.deadline, e.seq, Key { idx, gen });
        self.due.push(item);
    }

    /// Takes the next due timer (skipping ones cancelled since `advance`).
    pub(crate) fn pop_due(&mut self) -> Option<Fired> {
        while self.due_pos < self.due.len() {
            let (_, _, key) = self.due[self.due_pos];
            self.due_pos += 1;
            if let Some(e) = self.entries.remove(key) {
                if e.referenced {
                    self.referenced -= 1;
                }
                return Some(Fired {
                    id: TimerId(key.pack()),
                    handler: e.handler,
                });
            }
        }
        self.due.clear();
        self.due_pos = 0;
        None
    }
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
