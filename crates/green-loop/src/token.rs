//! Tokens: generation-checked slab indices handed to callers.
//!
//! Every op and timer lives in a [`Slab`] entry. Its public id ([`OpId`],
//! [`TimerId`]) packs the entry's index (low 32 bits) and the entry's
//! generation (next 31 bits). The generation changes
//! each time an entry is freed, so a stale id (a timer that already fired, an
//! op whose completion was delivered) never reaches the entry's next tenant.
//! The top bit of a packed key is always clear: io_uring `user_data` values
//! with the top bit set are reserved for the loop's own SQEs
//! (see `backend/uring.rs`).
//!
//! A [`CallbackId`] is not a slab key but the callback's sequence number in
//! the loop's FIFO (see `callback.rs`): callbacks run in queue order, so a
//! ring buffer indexed by sequence number does the slab's job for less.
//!
//! The slab never shrinks, so once it has grown to the program's high-water
//! mark, inserting and removing allocate nothing.

/// Generations use 31 bits so that a packed key never has its top bit set.
const GEN_MASK: u32 = 0x7FFF_FFFF;
/// End of a free list.
const NIL: u32 = u32::MAX;

/// An index plus the generation it was issued under.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct Key {
    pub(crate) idx: u32,
    pub(crate) gen: u32,
}

impl Key {
    /// Packs the key into one word (top bit clear).
    pub(crate) fn pack(self) -> u64 {
        (u64::from(self.gen & GEN_MASK) << 32) | u64::from(self.idx)
    }

    /// Inverse of [`Key::pack`].
    pub(crate) fn unpack(v: u64) -> Key {
        Key {
            idx: v as u32,
            gen: ((v >> 32) as u32) & GEN_MASK,
        }
    }
}

enum Slot<T> {
    Occupied(T),
    Vacant(u32),
}

struct Entry<T> {
    gen: u32,
    slot: Slot<T>,
}

/// A vector of reusable entries with a free list (LIFO reuse keeps the hot
/// entries in cache).
pub(crate) struct Slab<T> {
    entries: Vec<Entry<T>>,
    free: u32,
    len: usize,
}

impl<T> Slab<T> {
    pub(crate) const fn new() -> Slab<T> {
        Slab {
            entries: Vec::new(),
            free: NIL,
            len: 0,
        }
    }

    /// Number of occupied entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Stores `value` and returns its key. Allocates only when every entry
    /// is occupied (the vector grows, amortised).
    pub(crate) fn insert(&mut self, value: T) -> Key {
        self.len += 1;
        if self.free != NIL {
            let idx = self.free;
            let e = &mut self.entries[idx as usize];
            match e.slot {
                Slot::Vacant(next) => self.free = next,
                Slot::Occupied(_) => unreachable!("slab free list points at an occupied entry"),
            }
            e.slot = Slot::Occupied(value);
            Key { idx, gen: e.gen }
        } else {
            let idx = u32::try_from(self.entries.len()).expect("slab index overflow");
            assert!(idx != NIL, "slab index overflow");
            self.entries.push(Entry {
                gen: 0,
                slot: Slot::Occupied(value),
            });
            Key { idx, gen: 0 }
        }
    }

    pub(crate) fn get(&self, key: Key) -> Option<&T> {
        match self.entries.get(key.idx as usize) {
            Some(Entry {
                gen,
                slot: Slot::Occupied(v),
            }) if *gen == key.gen => Some(v),
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        match self.entries.get_mut(key.idx as usize) {
            Some(Entry {
                gen,
                slot: Slot::Occupied(v),
            }) if *gen == key.gen => Some(v),
            _ => None,
        }
    }

    /// Access by index alone, for intrusive lists whose links are indices.
    pub(crate) fn get_mut_by_index(&mut self, idx: u32) -> Option<&mut T> {
        match self.entries.get_mut(idx as usize) {
            Some(Entry {
                slot: Slot::Occupied(v),
                ..
            }) => Some(v),
            _ => None,
        }
    }

    /// Current generation of entry `idx`.
    pub(crate) fn gen_of(&self, idx: u32) -> u32 {
        self.entries[idx as usize].gen
    }

    /// Removes and returns the value if `key` is current.
    pub(crate) fn remove(&mut self, key: Key) -> Option<T> {
        let e = self.entries.get_mut(key.idx as usize)?;
        if e.gen != key.gen || matches!(e.slot, Slot::Vacant(_)) {
            return None;
        }
        let old = std::mem::replace(&mut e.slot, Slot::Vacant(self.free));
        e.gen = e.gen.wrapping_add(1) & GEN_MASK;
        self.free = key.idx;
        self.len -= 1;
        match old {
            Slot::Occupied(v) => Some(v),
            Slot::Vacant(_) => unreachable!(),
        }
    }

    /// Keys of all occupied entries (allocates; used only on teardown).
    pub(crate) fn keys(&self) -> Vec<Key> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e.slot, Slot::Occupied(_)))
            .map(|(i, e)| Key {
                idx: i as u32,
                gen: e.gen,
            })
            .collect()
    }
}

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        pub struct $name(pub(crate) u64);

        impl $name {
            /// The id as one word (stable for the id's lifetime; useful as a map key
            /// or to carry through a `u64` of handler data).
            pub fn as_u64(self) -> u64 {
                self.0
            }

            /// Rebuilds an id from [`Self::as_u64`]. A forged or stale value is
            /// harmless: the loop checks it (a slab generation, or a callback's
            /// sequence number) and treats it as unknown.
            pub fn from_u64(v: u64) -> Self {
                Self(v)
            }
        }
    };
}

/// Ids that name a [`Slab`] entry.
macro_rules! slab_id {
    ($($name:ident),*) => {
        $(impl $name {
            pub(crate) fn key(self) -> Key {
                Key::unpack(self.0)
            }
        })*
    };
}

id_type!(
    /// Identifies a submitted operation until its final completion is delivered.
    OpId
);
id_type!(
    /// Identifies a timer until it fires or is cancelled.
    TimerId
);
id_type!(
    /// Identifies a queued callback until it runs or is cancelled.
    CallbackId
);
slab_id!(OpId, TimerId);
