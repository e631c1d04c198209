//! `Group`: a set of greenlets joined and killed together, and the mapping
//! helpers over it (gevent's `pool.Group` and `GroupMappingMixin`, with
//! `_imap`'s iterators as [`Imap`]).
//!
//! How it is built:
//!
//! * A member is tracked under a key of the group's own (greenlets have no
//!   public unique id: `minimal_ident` is reused after death), with the id
//!   of the link that removes it. That link is a raw link registered when
//!   the member is added, so it fires from the member's links entry, one
//!   callback pass after its death and before any link registered later
//!   (a `join` or `kill` waiting on it): gevent's `_discard` order.
//! * A [`Pool`](crate::Pool) is a group made with a slot count (a
//!   `Semaphore`): a slot is taken before a member is inserted and given
//!   back exactly once, when that member is removed. A removal of what is
//!   no longer a member gives back nothing (gevent's `Pool.discard` gives a
//!   slot back every time).
//! * The empty state is an `Event`, set whenever the last member leaves,
//!   cleared when one joins: `join` waits on it, and it is the group's
//!   `Waitable` face.
//! * `map`, `imap` and `imap_unordered` run their spawning loop in a
//!   greenlet of their own, outside the group, as gevent does; the loop
//!   spawns through the group, so a full pool holds it back and at most the
//!   pool's size of tasks are in flight.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use green_core::sync::{AsyncResult, Event, Queue, Semaphore};
use green_core::{AnyGreenlet, Greenlet, GreenletError, GreenletRef, LinkId, Waitable};

use crate::pool::PoolFull;

/// A set of running greenlets (gevent's `Group`): members are added by
/// [`spawn`](Group::spawn) or [`add`](Group::add), leave on their own when
/// they finish, and are waited for ([`join`](Group::join)) or killed
/// ([`kill`](Group::kill)) together. A `Group` has no limit; a
/// [`Pool`](crate::Pool) is a group with one.
///
/// The handle is cheap to clone; clones name the same group (a member that
/// wants to see its group captures a clone). Handles are `!Send`, like the
/// greenlets they hold.
///
/// # Order
/// gevent's, observable step by step:
///
/// * A member leaves one callback pass after it dies, from its links entry
///   and before links registered after it joined: a greenlet that runs
///   between the death and that entry still sees it in the group, and a
///   `join` of the member returns after it left.
/// * A blocking [`kill`](Group::kill) returns after the members' links
///   registered before the kill have fired.
/// * [`map`](Group::map) runs in a greenlet of its own, so even `map` of
///   nothing yields to the greenlets ready to run.
///
/// # Differences from gevent
///
/// * [`discard`](Group::discard) of a greenlet that already left does
///   nothing; on a gevent `Pool` it frees a second slot, so that a
///   `Pool(1)` then admits two members.
/// * `next` on an ended [`Imap`] returns `None` again; gevent's blocks
///   forever (until the hub raises `LoopExit`).
/// * An `Imap` whose input iterator panics yields the panic as its last
///   item, after the results of every task spawned before it, and ends,
///   also in completion order; gevent's `imap_unordered` raises it as soon
///   as it comes (the results still to come are lost) and then blocks.
/// * Members are listed, joined and killed in the order they joined;
///   gevent keeps them in a `set`, in an order that varies from run to run.
/// * Adding a greenlet that is already a member does nothing (on a gevent
///   `Pool` it takes a second slot, given back twice).
/// * [`Pool::unbounded`](crate::Pool::unbounded)'s `free_count` is
///   `usize::MAX`; gevent's `Pool(None)` says 1.
/// * [`apply`](Group::apply) and [`map`](Group::map) return a member's
///   failure as an `Err` ([`GreenletError`]) instead of raising it; a
///   greenlet killed with `GreenletExit` is a failure here (gevent returns
///   the `GreenletExit` as its value).
/// * The kills are always `GreenletExit` (gevent's `kill(exception=...)`
///   is not offered; kill a member itself with
///   [`Greenlet::kill_with`](green_core::Greenlet::kill_with)).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use green_pool::Group;
///
/// let group = Group::new();
/// for ms in [3, 1, 2] {
///     group.spawn(move || green_core::sleep(Duration::from_millis(ms)));
/// }
/// assert_eq!(group.len(), 3);
/// group.join();
/// assert!(group.is_empty());
/// ```
#[derive(Clone)]
pub struct Group {
    inner: Rc<Inner>,
}

struct Inner {
    members: RefCell<Members>,
    /// Set while there is no member.
    empty: Event,
    /// A pool's slots; `None` for a group or an unbounded pool.
    slots: Option<Slots>,
}

struct Slots {
    size: usize,
    free: Semaphore,
}

struct Member {
    greenlet: GreenletRef,
    /// The raw link that removes it when it dies.
    link: LinkId,
    /// Killed by the group already: `kill` and `killone` never kill a
    /// member twice (gevent's `dying` set).
    dying: bool,
}

/// The members in the order they joined, each under a key that no other
/// member gets while the group lives: a slab whose occupied slots are
/// chained in joining order, so that joining, leaving and finding a key take
/// constant time (a pool's `map` makes a member per item). A key is a slot's
/// index and the generation of its occupant: a slot reused by a later
/// member changes generation, so a key of a member that left names nothing.
#[derive(Default)]
struct Members {
    slots: Vec<MemberSlot>,
    /// Free slots, reused last-freed first.
    free: Vec<u32>,
    /// The oldest and newest members' slots (`None` when empty).
    head: Option<u32>,
    tail: Option<u32>,
    len: usize,
}

struct MemberSlot {
    generation: u32,
    member: Option<Member>,
    /// The slots of the members that joined just before and after.
    prev: Option<u32>,
    next: Option<u32>,
}

impl Members {
    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn key(index: u32, generation: u32) -> u64 {
        (u64::from(generation) << 32) | u64::from(index)
    }

    /// The key the next [`insert`](Members::insert) returns.
    fn vacant_key(&self) -> u64 {
        match self.free.last() {
            Some(&index) => Members::key(index, self.slots[index as usize].generation),
            None => Members::key(self.index_of_new_slot(), 0),
        }
    }

    fn index_of_new_slot(&self) -> u32 {
        u32::try_from(self.slots.len()).expect("fewer than 2^32 members at once")
    }

    /// Adds `member` as the newest; returns its key.
    fn insert(&mut self, member: Member) -> u64 {
        let prev = self.tail;
        let index = match self.free.pop() {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                slot.member = Some(member);
                slot.prev = prev;
                slot.next = None;
                index
            }
            None => {
                let index = self.index_of_new_slot();
                self.slots.push(MemberSlot {
                    generation: 0,
                    member: Some(member),
                    prev,
                    next: None,
                });
                index
            }
        };
        match prev {
            Some(prev) => self.slots[prev as usize].next = Some(index),
            None => self.head = Some(index),
        }
        self.tail = Some(index);
        self.len += 1;
        Members::key(index, self.slots[index as usize].generation)
    }

    /// The slot index of `key`, if a member holds it.
    fn index(&self, key: u64) -> Option<usize> {
        let index = (key & u64::from(u32::MAX)) as usize;
        let slot = self.slots.get(index)?;
        (slot.member.is_some() && Members::key(index as u32, slot.generation) == key)
            .then_some(index)
    }

    fn get(&self, key: u64) -> Option<&Member> {
        let index = self.index(key)?;
        self.slots[index].member.as_ref()
    }

    fn get_mut(&mut self, key: u64) -> Option<&mut Member> {
        let index = self.index(key)?;
        self.slots[index].member.as_mut()
    }

    /// Takes the member under `key` out, if it is there.
    fn remove(&mut self, key: u64) -> Option<Member> {
        let index = self.index(key)?;
        let slot = &mut self.slots[index];
        let member = slot.member.take();
        let (prev, next) = (slot.prev.take(), slot.next.take());
        // The next occupant gets a new key.
        slot.generation = slot.generation.wrapping_add(1);
        match prev {
            Some(prev) => self.slots[prev as usize].next = next,
            None => self.head = next,
        }
        match next {
            Some(next) => self.slots[next as usize].prev = prev,
            None => self.tail = prev,
        }
        self.free.push(index as u32);
        self.len -= 1;
        member
    }

    /// The members with their keys, oldest first.
    fn iter(&self) -> impl Iterator<Item = (u64, &Member)> + '_ {
        let mut at = self.head;
        std::iter::from_fn(move || {
            let index = at?;
            let slot = &self.slots[index as usize];
            at = slot.next;
            let member = slot.member.as_ref()?;
            Some((Members::key(index, slot.generation), member))
        })
    }
}

impl Default for Group {
    fn default() -> Self {
        Group::new()
    }
}

impl Group {
    /// An empty group, without a limit.
    ///
    /// # Examples
    /// ```
    /// let group = green_pool::Group::new();
    /// assert!(group.is_empty() && !group.full());
    /// ```
    pub fn new() -> Group {
        Group::with_limit(None)
    }

    pub(crate) fn with_limit(size: Option<usize>) -> Group {
        let empty = Event::new();
        empty.set();
        Group {
            inner: Rc::new(Inner {
                members: RefCell::new(Members::default()),
                empty,
                slots: size.map(|size| Slots {
                    size,
                    free: Semaphore::new(size),
                }),
            }),
        }
    }

    // ===== membership =====

    /// How many members it has.
    ///
    /// # Examples
    /// ```
    /// let group = green_pool::Group::new();
    /// group.spawn(|| ());
    /// assert_eq!(group.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.inner.members.borrow().len()
    }

    /// Whether it has no member.
    ///
    /// # Examples
    /// ```
    /// let group = green_pool::Group::new();
    /// assert!(group.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.inner.members.borrow().is_empty()
    }

    /// Whether `greenlet` is a member.
    ///
    /// # Examples
    /// ```
    /// let group = green_pool::Group::new();
    /// let g = group.spawn(|| ());
    /// assert!(group.contains(&g));
    /// assert!(!group.contains(&green_core::current()));
    /// ```
    pub fn contains(&self, greenlet: &impl AnyGreenlet) -> bool {
        self.key_of(&greenlet.greenlet_ref()).is_some()
    }

    /// The members now, in the order they joined (a snapshot: the group
    /// may change while it is walked).
    ///
    /// # Examples
    /// ```
    /// let group = green_pool::Group::new();
    /// let a = group.spawn(|| ());
    /// let b = group.spawn(|| ());
    /// let members: Vec<_> = group.iter().collect();
    /// assert!(members[0].ptr_eq(&a.as_ref()) && members[1].ptr_eq(&b.as_ref()));
    /// ```
    pub fn iter(&self) -> std::vec::IntoIter<GreenletRef> {
        self.inner
            .members
            .borrow()
            .iter()
            .map(|(_, m)| m.greenlet.clone())
            .collect::<Vec<_>>()
            .into_iter()
    }

    fn key_of(&self, greenlet: &GreenletRef) -> Option<u64> {
        self.inner
            .members
            .borrow()
            .iter()
            .find(|(_, m)| m.greenlet.ptr_eq(greenlet))
            .map(|(key, _)| key)
    }

    /// Starts tracking `greenlet` (it should not be started yet, or a full
    /// pool may let it run before it is counted). It leaves the group when
    /// it finishes; a greenlet that is dead already leaves at the next
    /// callback pass. Adding a member again does nothing.
    ///
    /// On a [`Pool`](crate::Pool), blocks while the pool is full.
    ///
    /// # Panics
    /// For the thread's main greenlet, which never finishes and cannot be
    /// killed; and as [`Semaphore::acquire`] when a full pool can never
    /// free a slot (`LoopExit` from the main greenlet).
    ///
    /// # Kill safety
    /// Interruptible while it waits for a slot: a killed caller takes no
    /// slot and the greenlet is not added.
    ///
    /// # Examples
    /// ```
    /// let group = green_pool::Group::new();
    /// let g = green_core::Greenlet::new(|| 1);
    /// group.add(&g);
    /// g.start();
    /// group.join();
    /// assert!(g.dead() && group.is_empty());
    /// ```
    #[track_caller]
    pub fn add(&self, greenlet: &impl AnyGreenlet) {
        let greenlet = greenlet.greenlet_ref();
        self.refuse_main(&greenlet);
        if self.key_of(&greenlet).is_some() {
            return;
        }
        let slot = self.take_slot();
        self.insert_unless_member(greenlet, slot);
    }

    /// [`add`](Group::add) without waiting: `Err(PoolFull)` if the pool
    /// has no free slot now (gevent's `add(blocking=False)`). Never fails
    /// on a group.
    ///
    /// # Errors
    /// [`PoolFull`] when no slot is free.
    ///
    /// # Panics
    /// For the main greenlet, as [`add`](Group::add).
    ///
    /// # Examples
    /// ```
    /// let pool = green_pool::Pool::new(1);
    /// let a = green_core::Greenlet::new(|| ());
    /// let b = green_core::Greenlet::new(|| ());
    /// assert!(pool.try_add(&a).is_ok());
    /// assert_eq!(pool.try_add(&b), Err(green_pool::PoolFull));
    /// # a.start(); pool.join();
    /// ```
    #[track_caller]
    pub fn try_add(&self, greenlet: &impl AnyGreenlet) -> Result<(), PoolFull> {
        self.add_taking(greenlet, |free| {
            free.try_acquire().map(|g| g.forget()).is_some()
        })
    }

    /// [`add`](Group::add) waiting at most `timeout` for a slot
    /// (gevent's `add(timeout=...)`).
    ///
    /// # Errors
    /// [`PoolFull`] when no slot was freed in time.
    ///
    /// # Panics
    /// For the main greenlet, as [`add`](Group::add).
    ///
    /// # Kill safety
    /// As [`add`](Group::add).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let pool = green_pool::Pool::new(1);
    /// pool.spawn(|| green_core::sleep(Duration::from_secs(10)));
    /// let late = green_core::Greenlet::new(|| ());
    /// assert!(pool.add_timeout(&late, Duration::from_millis(5)).is_err());
    /// pool.kill();
    /// ```
    #[track_caller]
    pub fn add_timeout(
        &self,
        greenlet: &impl AnyGreenlet,
        timeout: Duration,
    ) -> Result<(), PoolFull> {
        self.add_taking(greenlet, |free| {
            free.acquire_timeout(timeout).map(|g| g.forget()).is_some()
        })
    }

    /// Adds `greenlet` unless it is a member, taking its slot (on a pool)
    /// with `take`, which says whether it got one.
    #[track_caller]
    fn add_taking(
        &self,
        greenlet: &impl AnyGreenlet,
        take: impl FnOnce(&Semaphore) -> bool,
    ) -> Result<(), PoolFull> {
        let greenlet = greenlet.greenlet_ref();
        self.refuse_main(&greenlet);
        if self.key_of(&greenlet).is_some() {
            return Ok(());
        }
        let slot = match &self.inner.slots {
            None => SlotGuard::none(),
            Some(slots) if take(&slots.free) => SlotGuard::taken(self),
            Some(_) => return Err(PoolFull),
        };
        self.insert_unless_member(greenlet, slot);
        Ok(())
    }

    #[track_caller]
    fn refuse_main(&self, greenlet: &GreenletRef) {
        if greenlet.is_main() {
            panic!(
                "green-pool: the main greenlet cannot join a group: it never finishes (so it \
                 would never leave) and cannot be killed; add the greenlets you spawn instead"
            );
        }
    }

    /// Takes a slot (blocking while a pool is full); the guard gives it
    /// back unless the member it was for is inserted.
    #[track_caller]
    fn take_slot(&self) -> SlotGuard<'_> {
        match &self.inner.slots {
            None => SlotGuard::none(),
            Some(slots) => {
                slots.free.acquire().forget();
                SlotGuard::taken(self)
            }
        }
    }

    /// Inserts `greenlet` with the slot taken for it, unless it became a
    /// member while the slot was waited for (the slot then goes back).
    fn insert_unless_member(&self, greenlet: GreenletRef, slot: SlotGuard<'_>) {
        if self.key_of(&greenlet).is_none() {
            self.insert(greenlet, slot);
        }
    }

    /// Tracks `greenlet`, known not to be a member, holding `slot`.
    fn insert(&self, greenlet: GreenletRef, slot: SlotGuard<'_>) {
        // Registering the link runs nothing, so the key is still vacant
        // when the member is inserted below.
        let key = self.inner.members.borrow().vacant_key();
        let group = Rc::downgrade(&self.inner);
        // Fires from the member's links entry (queued at once if it is dead
        // already), never synchronously, so the member is in the map first.
        let link = greenlet.link_ready(Box::new(move || leave(&group, key)));
        let inserted = self.inner.members.borrow_mut().insert(Member {
            greenlet,
            link,
            dying: false,
        });
        debug_assert_eq!(inserted, key);
        slot.keep();
        self.inner.empty.clear();
    }

    /// Removes the member under `key`; returns it if it was there.
    fn remove(&self, key: u64) -> Option<Member> {
        let member = self.inner.members.borrow_mut().remove(key)?;
        // gevent's order: the empty event first, then the slot.
        if self.is_empty() {
            self.inner.empty.set();
        }
        self.give_slot();
        Some(member)
    }

    fn give_slot(&self) {
        if let Some(slots) = &self.inner.slots {
            slots.free.release();
        }
    }

    /// Stops tracking `greenlet` now (its slot, on a pool, is free at
    /// once); it runs on. Returns whether it was a member: one that already
    /// left frees nothing (see the differences from gevent).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let pool = green_pool::Pool::new(1);
    /// let g = pool.spawn(|| green_core::sleep(Duration::from_secs(10)));
    /// assert!(pool.discard(&g));
    /// assert_eq!(pool.free_count(), 1);
    /// g.kill();
    /// assert!(!pool.discard(&g));
    /// assert_eq!(pool.free_count(), 1);
    /// ```
    pub fn discard(&self, greenlet: &impl AnyGreenlet) -> bool {
        let greenlet = greenlet.greenlet_ref();
        let Some(key) = self.key_of(&greenlet) else {
            return false;
        };
        match self.remove(key) {
            Some(member) => {
                member.greenlet.unlink_ready(member.link);
                true
            }
            None => false,
        }
    }

    // ===== spawning =====

    /// Spawns `f` as a new member: it starts at the next turn of the
    /// callback queue, as [`green_core::spawn`]'s do. On a
    /// [`Pool`](crate::Pool), blocks first while the pool is full.
    ///
    /// # Panics
    /// As [`green_core::spawn`] when no stack can be had; as
    /// [`add`](Group::add) when a full pool can never free a slot.
    ///
    /// # Kill safety
    /// Interruptible while it waits for a slot: a killed caller spawns
    /// nothing and takes no slot.
    ///
    /// # Examples
    /// ```
    /// let group = green_pool::Group::new();
    /// let g = group.spawn(|| 6 * 7);
    /// assert_eq!(g.get().unwrap(), 42);
    /// ```
    #[track_caller]
    pub fn spawn<F, T>(&self, f: F) -> Greenlet<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let slot = self.take_slot();
        let greenlet = Greenlet::new(f);
        self.insert(greenlet.as_ref(), slot);
        greenlet.start();
        greenlet
    }

    /// [`spawn`](Group::spawn) that starts `f` after `delay`; it is a
    /// member (and holds its slot) from now on.
    ///
    /// # Panics
    /// As [`spawn`](Group::spawn).
    ///
    /// # Kill safety
    /// As [`spawn`](Group::spawn).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let group = green_pool::Group::new();
    /// let g = group.spawn_later(Duration::from_millis(2), || "later");
    /// assert!(group.contains(&g) && !g.has_started());
    /// assert_eq!(g.get().unwrap(), "later");
    /// ```
    #[track_caller]
    pub fn spawn_later<F, T>(&self, delay: Duration, f: F) -> Greenlet<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let slot = self.take_slot();
        let greenlet = Greenlet::new(f);
        self.insert(greenlet.as_ref(), slot);
        greenlet.start_later(delay);
        greenlet
    }

    /// Adds the unstarted `greenlet` (made by [`green_core::Greenlet::new`]
    /// or a [`green_core::Builder`]) and starts it (gevent's `start`).
    ///
    /// # Panics
    /// As [`add`](Group::add).
    ///
    /// # Kill safety
    /// As [`add`](Group::add).
    ///
    /// # Examples
    /// ```
    /// let group = green_pool::Group::new();
    /// let g = green_core::Builder::new().name("worker").build(|| ()).unwrap();
    /// group.start(&g);
    /// group.join();
    /// assert!(g.dead());
    /// ```
    #[track_caller]
    pub fn start<T: 'static>(&self, greenlet: &Greenlet<T>) {
        self.add(greenlet);
        greenlet.start();
    }

    // ===== limits =====

    /// The pool's size: `None` for a group or an unbounded pool.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(green_pool::Group::new().size(), None);
    /// assert_eq!(green_pool::Pool::new(2).size(), Some(2));
    /// ```
    pub fn size(&self) -> Option<usize> {
        self.inner.slots.as_ref().map(|s| s.size)
    }

    /// How many more members it can take without blocking: the size less
    /// the members (gevent's `free_count`); `usize::MAX` without a limit.
    ///
    /// # Examples
    /// ```
    /// let pool = green_pool::Pool::new(2);
    /// pool.spawn(|| ());
    /// assert_eq!(pool.free_count(), 1);
    /// ```
    pub fn free_count(&self) -> usize {
        match self.size() {
            None => usize::MAX,
            Some(size) => size.saturating_sub(self.len()),
        }
    }

    /// Whether [`spawn`](Group::spawn) would block now; never for a group.
    ///
    /// # Examples
    /// ```
    /// let pool = green_pool::Pool::new(1);
    /// assert!(!pool.full());
    /// pool.spawn(|| ());
    /// assert!(pool.full());
    /// ```
    pub fn full(&self) -> bool {
        self.free_count() == 0
    }

    /// Blocks until a slot is free, without taking it; returns how many
    /// are (gevent's `wait_available`; `usize::MAX` without a limit, at
    /// once). Another greenlet may take the slot before this one spawns.
    ///
    /// # Panics
    /// With `LoopExit` from the main greenlet when no slot can ever be
    /// freed (a pool of size 0, or members that never finish).
    ///
    /// # Kill safety
    /// Interruptible; leaves nothing behind.
    ///
    /// # Examples
    /// ```
    /// let pool = green_pool::Pool::new(1);
    /// pool.spawn(|| ());
    /// assert_eq!(pool.wait_available(), 1); // the member finished and left
    /// ```
    #[track_caller]
    pub fn wait_available(&self) -> usize {
        match &self.inner.slots {
            None => usize::MAX,
            Some(slots) => {
                slots.free.wait();
                slots.free.counter()
            }
        }
    }

    /// [`wait_available`](Group::wait_available) for at most `timeout`;
    /// returns the free slots then (0 if none was freed in time).
    ///
    /// # Kill safety
    /// As [`wait_available`](Group::wait_available).
    ///
    /// # Examples
    /// ```
    /// let pool = green_pool::Pool::new(0);
    /// assert_eq!(pool.wait_available_timeout(std::time::Duration::from_millis(1)), 0);
    /// ```
    #[track_caller]
    pub fn wait_available_timeout(&self, timeout: Duration) -> usize {
        match &self.inner.slots {
            None => usize::MAX,
            Some(slots) => {
                slots.free.wait_timeout(timeout);
                slots.free.counter()
            }
        }
    }

    // ===== joining and killing =====

    /// Waits until the group is empty (at least once: a member may join
    /// again before this returns). Returns at once if it is empty.
    ///
    /// # Panics
    /// With `LoopExit` from the main greenlet when the members can never
    /// finish.
    ///
    /// # Kill safety
    /// Interruptible; leaves nothing behind, and the members run on.
    ///
    /// # Examples
    /// ```
    /// let group = green_pool::Group::new();
    /// let g = group.spawn(|| green_core::yield_now());
    /// group.join();
    /// assert!(g.dead() && group.is_empty());
    /// ```
    #[track_caller]
    pub fn join(&self) {
        self.inner.empty.wait();
    }

    /// [`join`](Group::join) for at most `timeout`; returns whether the
    /// group became empty.
    ///
    /// # Kill safety
    /// As [`join`](Group::join).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let group = green_pool::Group::new();
    /// group.spawn(|| green_core::sleep(Duration::from_secs(10)));
    /// assert!(!group.join_timeout(Duration::from_millis(1)));
    /// group.kill();
    /// assert!(group.join_timeout(Duration::from_millis(1)));
    /// ```
    #[track_caller]
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.inner.empty.wait_timeout(timeout)
    }

    /// gevent's `join(timeout, raise_error)`: waits (at most `timeout`)
    /// for the group to become empty and returns whether it did; with
    /// `raise_error`, the first failure among the members at the call
    /// (in the order they joined) is returned instead. A member killed
    /// with `GreenletExit` did not fail.
    ///
    /// # Errors
    /// With `raise_error`, how the first failed member failed.
    ///
    /// # Kill safety
    /// As [`join`](Group::join).
    ///
    /// # Examples
    /// ```
    /// # green_core::silence_failures();
    /// let group = green_pool::Group::new();
    /// group.spawn(|| ());
    /// group.spawn(|| -> () { panic!("bad input") });
    /// let err = group.join_with(None, true).unwrap_err();
    /// assert_eq!(err.message(), "bad input");
    /// ```
    #[track_caller]
    pub fn join_with(
        &self,
        timeout: Option<Duration>,
        raise_error: bool,
    ) -> Result<bool, GreenletError> {
        let watched: Vec<GreenletRef> = if raise_error {
            self.iter().collect()
        } else {
            Vec::new()
        };
        let emptied = match timeout {
            None => self.inner.empty.wait(),
            Some(timeout) => self.inner.empty.wait_timeout(timeout),
        };
        for g in &watched {
            if g.dead() && !g.successful() {
                if let Some(error) = g.exception() {
                    return Err(error);
                }
            }
        }
        Ok(emptied)
    }

    /// Kills every member with `GreenletExit` and waits until the group is
    /// empty (gevent's `kill()`). Members added while it waits are killed
    /// too; a member is never killed twice by the group (one that catches
    /// its kill is waited for, not killed again). The kills are queued
    /// first, in the order the members joined; it returns after their links
    /// registered before the kill have fired.
    ///
    /// # Panics
    /// With `LoopExit` from the main greenlet when a member that survived
    /// its kill can never finish.
    ///
    /// # Kill safety
    /// Interruptible while it waits; the kills already queued stay queued.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let group = green_pool::Group::new();
    /// let g = group.spawn(|| green_core::sleep(Duration::from_secs(10)));
    /// group.kill();
    /// assert!(g.dead() && group.is_empty());
    /// ```
    #[track_caller]
    pub fn kill(&self) {
        self.kill_with(true, None);
    }

    /// Queues a kill for every member and returns (gevent's
    /// `kill(block=False)`); members that never started die at once.
    ///
    /// # Examples
    /// ```
    /// let group = green_pool::Group::new();
    /// let g = group.spawn(|| unreachable!());
    /// group.kill_nowait();
    /// assert!(g.dead()); // it never started
    /// ```
    pub fn kill_nowait(&self) {
        self.kill_with(false, None);
    }

    /// [`kill`](Group::kill) waiting at most `timeout`; returns whether
    /// the group became empty. When the time is up it returns quietly
    /// (gevent's `Group.kill(timeout=...)`, unlike `killall`); the kills
    /// stay delivered.
    ///
    /// # Kill safety
    /// As [`kill`](Group::kill).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let group = green_pool::Group::new();
    /// group.spawn(|| green_core::sleep(Duration::from_secs(10)));
    /// assert!(group.kill_timeout(Duration::from_secs(1)));
    /// ```
    #[track_caller]
    pub fn kill_timeout(&self, timeout: Duration) -> bool {
        self.kill_with(true, Some(timeout))
    }

    /// gevent's `kill(block, timeout)` with both options; returns whether
    /// the group is empty at the end.
    ///
    /// # Kill safety
    /// As [`kill`](Group::kill).
    ///
    /// # Examples
    /// ```
    /// let group = green_pool::Group::new();
    /// group.spawn(|| ());
    /// assert!(group.kill_with(true, None));
    /// ```
    #[track_caller]
    pub fn kill_with(&self, block: bool, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let members = self.iter().collect::<Vec<_>>();
            if members.is_empty() {
                return true;
            }
            for g in &members {
                self.kill_member(g);
            }
            if !block {
                return self.is_empty();
            }
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let all = match green_core::joinall_with(&members, remaining, false, None) {
                Ok(done) => done.len() == members.len(),
                Err(_) => false,
            };
            if !all && deadline.is_some_and(|d| Instant::now() >= d) {
                return self.is_empty();
            }
        }
    }

    /// Queues a kill for `g` unless the group killed it already.
    fn kill_member(&self, g: &GreenletRef) {
        let Some(key) = self.key_of(g) else { return };
        let first = match self.inner.members.borrow_mut().get_mut(key) {
            Some(member) if !member.dying => {
                member.dying = true;
                true
            }
            _ => false,
        };
        if first && !g.dead() {
            g.kill_nowait();
        }
    }

    /// Kills `greenlet` with `GreenletExit` and waits for it, if it is a
    /// member the group has not killed already (gevent's `killone`);
    /// otherwise returns at once. Returns whether it is dead.
    ///
    /// # Panics
    /// As [`kill`](Group::kill).
    ///
    /// # Kill safety
    /// As [`kill`](Group::kill).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let group = green_pool::Group::new();
    /// let g = group.spawn(|| green_core::sleep(Duration::from_secs(10)));
    /// assert!(group.killone(&g));
    /// ```
    #[track_caller]
    pub fn killone(&self, greenlet: &impl AnyGreenlet) -> bool {
        self.killone_with(greenlet, true, None)
    }

    /// gevent's `killone(greenlet, block, timeout)`; returns whether it is
    /// dead at the end.
    ///
    /// # Kill safety
    /// As [`kill`](Group::kill).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let group = green_pool::Group::new();
    /// let g = group.spawn(|| green_core::sleep(Duration::from_secs(10)));
    /// green_core::yield_now();
    /// assert!(!group.killone_with(&g, false, None)); // queued, not raised yet
    /// // Killed by the group already: a second killone neither kills nor waits.
    /// assert!(!group.killone_with(&g, true, Some(Duration::from_secs(1))));
    /// g.join();
    /// assert!(g.dead());
    /// ```
    #[track_caller]
    pub fn killone_with(
        &self,
        greenlet: &impl AnyGreenlet,
        block: bool,
        timeout: Option<Duration>,
    ) -> bool {
        let g = greenlet.greenlet_ref();
        let was_dying = match self.key_of(&g) {
            None => true,
            Some(key) => self.inner.members.borrow().get(key).is_none_or(|m| m.dying),
        };
        if was_dying {
            return g.dead();
        }
        self.kill_member(&g);
        if block {
            let _ = green_core::joinall_with(&[&g], timeout, false, None);
        }
        g.dead()
    }

    // ===== mapping =====

    /// Runs `f` in a member and returns its outcome (gevent's `apply`).
    /// Called from a member of this group, runs `f` right here instead,
    /// even on a full pool: a member waiting for a slot that only it
    /// could free would deadlock (gevent's guard).
    ///
    /// # Errors
    /// How the member failed. Run inline, a panic of `f` unwinds the
    /// caller as any panic does (gevent raises it in both cases).
    ///
    /// # Panics
    /// As [`spawn`](Group::spawn).
    ///
    /// # Kill safety
    /// Interruptible; a killed caller leaves the member running.
    ///
    /// # Examples
    /// ```
    /// let pool = green_pool::Pool::new(1);
    /// let inner = pool.clone();
    /// // The member's own `apply` runs inline although the pool is full.
    /// let six = pool.apply(move || inner.apply(|| 5 + 1).unwrap()).unwrap();
    /// assert_eq!(six, 6);
    /// ```
    #[track_caller]
    pub fn apply<F, R>(&self, f: F) -> Result<R, GreenletError>
    where
        F: FnOnce() -> R + 'static,
        R: 'static,
    {
        if self.contains(&green_core::current()) {
            return Ok(f());
        }
        self.spawn(f).take()
    }

    /// Runs `f` in a member without blocking and returns its result to
    /// come (gevent's `apply_async`). On a full pool, a greenlet outside
    /// the group waits for the slot and spawns the member.
    ///
    /// # Examples
    /// ```
    /// let pool = green_pool::Pool::new(1);
    /// pool.spawn(|| green_core::yield_now()); // full
    /// let result = pool.apply_async(|| 7); // does not block
    /// assert_eq!(result.get().unwrap(), 7);
    /// ```
    #[track_caller]
    pub fn apply_async<F, R>(&self, f: F) -> AsyncResult<R>
    where
        F: FnOnce() -> R + 'static,
        R: 'static,
    {
        let result = AsyncResult::new();
        if self.full() {
            let group = self.clone();
            let out = result.clone();
            green_core::spawn(move || out.set_result(group.apply(f)));
        } else {
            let g = self.spawn(f);
            result.link_greenlet(&g);
        }
        result
    }

    /// Applies `f` to every item, each in a member (at most the pool's
    /// size at once), and returns the results in the input's order
    /// (gevent's `map`). The spawning runs in a greenlet of its own, so
    /// `map` always yields, even for no items.
    ///
    /// # Errors
    /// The first failure in input order (the tasks after it run on), or
    /// the panic of the input iterator.
    ///
    /// # Panics
    /// As [`spawn`](Group::spawn).
    ///
    /// # Kill safety
    /// Interruptible; a killed caller stops the spawning (its greenlet is
    /// killed) and leaves the members spawned so far running.
    ///
    /// # Examples
    /// ```
    /// let pool = green_pool::Pool::new(2);
    /// let squares = pool.map(|x: u32| x * x, 0..5).unwrap();
    /// assert_eq!(squares, [0, 1, 4, 9, 16]);
    /// ```
    #[track_caller]
    pub fn map<I, F, R>(&self, f: F, items: I) -> Result<Vec<R>, GreenletError>
    where
        I: IntoIterator,
        I::IntoIter: 'static,
        I::Item: 'static,
        F: Fn(I::Item) -> R + 'static,
        R: 'static,
    {
        let mapper = self.spawn_mapper(f, items);
        let mut stop = KillOnUnwind(Some(mapper.as_ref()));
        let outcome = mapper.take();
        stop.0 = None;
        outcome.and_then(|r| r)
    }

    /// [`map`](Group::map) without blocking: the results come in the
    /// returned [`AsyncResult`] (gevent's `map_async`).
    ///
    /// # Examples
    /// ```
    /// let group = green_pool::Group::new();
    /// let result = group.map_async(|s: &str| s.len(), ["a", "bb"]);
    /// assert_eq!(result.get().unwrap(), [1, 2]);
    /// ```
    #[track_caller]
    pub fn map_async<I, F, R>(&self, f: F, items: I) -> AsyncResult<Vec<R>>
    where
        I: IntoIterator,
        I::IntoIter: 'static,
        I::Item: 'static,
        F: Fn(I::Item) -> R + 'static,
        R: 'static,
    {
        let result = AsyncResult::new();
        let out = result.clone();
        self.spawn_mapper(f, items)
            .rawlink(move |mapper| out.set_result(mapper.take().and_then(|r| r)));
        result
    }

    /// The greenlet behind `map`: spawns a member per item, then takes
    /// their results in order.
    #[track_caller]
    fn spawn_mapper<I, F, R>(&self, f: F, items: I) -> Greenlet<Result<Vec<R>, GreenletError>>
    where
        I: IntoIterator,
        I::IntoIter: 'static,
        I::Item: 'static,
        F: Fn(I::Item) -> R + 'static,
        R: 'static,
    {
        let group = self.clone();
        let items = items.into_iter();
        let f = Rc::new(f);
        green_core::spawn(move || {
            let tasks: Vec<Greenlet<R>> = items
                .map(|item| {
                    let f = Rc::clone(&f);
                    group.spawn(move || f(item))
                })
                .collect();
            tasks.iter().map(Greenlet::take).collect()
        })
    }

    /// A lazy iterator of `f` applied to every item, each in a member, in
    /// the input's order (gevent's `imap`). A failed task is an `Err` at
    /// its own place and the iteration goes on after it; a panic of the
    /// input iterator is the last item. At most the pool's size of tasks
    /// run at once, and the input is read only as slots free up.
    ///
    /// The spawning runs in a greenlet of its own, started at the next
    /// turn of the callback queue; dropping the iterator before its end
    /// kills that greenlet (the tasks spawned run on).
    ///
    /// # Examples
    /// ```
    /// # green_core::silence_failures();
    /// let pool = green_pool::Pool::new(3);
    /// let results: Vec<_> = pool
    ///     .imap(|x: u32| 10 / x, [5, 0, 2])
    ///     .map(|r| r.ok())
    ///     .collect();
    /// assert_eq!(results, [Some(2), None, Some(5)]);
    /// ```
    #[track_caller]
    pub fn imap<I, F, R>(&self, f: F, items: I) -> Imap<R>
    where
        I: IntoIterator,
        I::IntoIter: 'static,
        I::Item: 'static,
        F: Fn(I::Item) -> R + 'static,
        R: 'static,
    {
        Imap::start(self, f, items, true)
    }

    /// [`imap`](Group::imap) yielding the results in the order the tasks
    /// finish (gevent's `imap_unordered`).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let group = green_pool::Group::new();
    /// let order: Vec<u64> = group
    ///     .imap_unordered(
    ///         |ms: u64| {
    ///             green_core::sleep(Duration::from_millis(ms));
    ///             ms
    ///         },
    ///         [30, 1, 15],
    ///     )
    ///     .map(Result::unwrap)
    ///     .collect();
    /// assert_eq!(order, [1, 15, 30]);
    /// ```
    #[track_caller]
    pub fn imap_unordered<I, F, R>(&self, f: F, items: I) -> Imap<R>
    where
        I: IntoIterator,
        I::IntoIter: 'static,
        I::Item: 'static,
        F: Fn(I::Item) -> R + 'static,
        R: 'static,
    {
        Imap::start(self, f, items, false)
    }
}

/// A member's raw link: removes it from the group, if the group lives.
fn leave(group: &Weak<Inner>, key: u64) {
    if let Some(inner) = group.upgrade() {
        let _ = Group { inner }.remove(key);
    }
}

/// A slot taken for a member not inserted yet: given back if the insertion
/// never happens (a panic, a kill, a member that joined meanwhile).
struct SlotGuard<'a> {
    group: Option<&'a Group>,
}

impl<'a> SlotGuard<'a> {
    fn none() -> SlotGuard<'a> {
        SlotGuard { group: None }
    }

    fn taken(group: &'a Group) -> SlotGuard<'a> {
        SlotGuard { group: Some(group) }
    }

    /// The member holds the slot now; it goes back when the member leaves.
    fn keep(mut self) {
        self.group = None;
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        if let Some(group) = self.group {
            group.give_slot();
        }
    }
}

/// Kills the `map` greenlet if the caller unwinds out of its wait.
struct KillOnUnwind(Option<GreenletRef>);

impl Drop for KillOnUnwind {
    fn drop(&mut self) {
        if let Some(mapper) = self.0.take().filter(|m| !m.dead()) {
            mapper.kill_nowait();
        }
    }
}

impl Waitable for Group {
    /// Whether it is empty.
    fn is_ready(&self) -> bool {
        self.is_empty()
    }

    /// Fires when the group is empty (at once, later, if it is now).
    fn link_ready(&self, callback: Box<dyn FnOnce()>) -> LinkId {
        self.inner.empty.link_ready(callback)
    }

    fn unlink_ready(&self, id: LinkId) {
        self.inner.empty.unlink_ready(id);
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("len", &self.len())
            .field("size", &self.size())
            .finish()
    }
}

// ===== imap =====

/// The lazy results of [`Group::imap`] (input order) or
/// [`Group::imap_unordered`] (completion order): one `Result` per input
/// item, then, if the input iterator panicked, that panic as an `Err`, then
/// `None` for good.
///
/// # Kill safety
/// `next` is interruptible and takes nothing when interrupted: the result
/// it waited for is the next one returned.
pub struct Imap<R: 'static> {
    shared: Rc<ImapShared<R>>,
    feeder: GreenletRef,
    ordered: bool,
    /// Input order: the index of the next result to return, and results
    /// that came early.
    next_index: usize,
    early: HashMap<usize, Entry<R>>,
    /// Completion order: the input's failure, held until the tasks
    /// spawned before it have all delivered their results.
    held_failure: Option<Entry<R>>,
    ended: bool,
}

/// What the feeder and the tasks' links tell the reader, in one queue.
struct ImapShared<R: 'static> {
    queue: Queue<(usize, Entry<R>)>,
    /// Tasks spawned whose result has not been queued.
    outstanding: Cell<usize>,
    /// Items taken from the input.
    spawned: Cell<usize>,
    /// The feeder has read the whole input.
    fed: Cell<bool>,
    /// The end (or the input's failure) is queued.
    finished: Cell<bool>,
}

enum Entry<R> {
    Value(Result<R, GreenletError>),
    End,
    InputFailed(GreenletError),
}

impl<R: 'static> ImapShared<R> {
    fn put(&self, index: usize, entry: Entry<R>) {
        // Unbounded and never closed: a put cannot fail.
        let _ = self.queue.put((index, entry));
    }

    /// A task's result (gevent's `_on_result`, from the task's links).
    fn on_result(&self, index: usize, outcome: Result<R, GreenletError>) {
        self.outstanding.set(self.outstanding.get() - 1);
        self.put(index, Entry::Value(outcome));
        self.end_if_done();
    }

    fn end_if_done(&self) {
        if self.fed.get() && self.outstanding.get() == 0 && !self.finished.get() {
            self.finished.set(true);
            self.put(self.spawned.get(), Entry::End);
        }
    }
}

impl<R: 'static> Imap<R> {
    #[track_caller]
    fn start<I, F>(group: &Group, f: F, items: I, ordered: bool) -> Imap<R>
    where
        I: IntoIterator,
        I::IntoIter: 'static,
        I::Item: 'static,
        F: Fn(I::Item) -> R + 'static,
    {
        let shared = Rc::new(ImapShared {
            queue: Queue::new(),
            outstanding: Cell::new(0),
            spawned: Cell::new(0),
            fed: Cell::new(false),
            finished: Cell::new(false),
        });
        let group = group.clone();
        let items = items.into_iter();
        let f = Rc::new(f);
        let state = Rc::clone(&shared);
        let feeder = green_core::spawn(move || {
            for item in items {
                let index = state.spawned.get();
                state.spawned.set(index + 1);
                state.outstanding.set(state.outstanding.get() + 1);
                let f = Rc::clone(&f);
                let task = group.spawn(move || f(item));
                let state = Rc::clone(&state);
                task.rawlink(move |task| state.on_result(index, task.take()));
            }
            state.fed.set(true);
            state.end_if_done();
        });
        // The input iterator panicked (or the feeder was killed): that ends
        // the iteration, after the results spawned before it in input order.
        let state = Rc::clone(&shared);
        feeder.rawlink(move |feeder| {
            if let Some(error) = feeder.exception() {
                if !state.finished.get() {
                    state.finished.set(true);
                    state.put(state.spawned.get(), Entry::InputFailed(error));
                }
            }
        });
        Imap {
            shared,
            feeder: feeder.as_ref(),
            ordered,
            next_index: 0,
            early: HashMap::new(),
            held_failure: None,
            ended: false,
        }
    }

    /// Turns an entry into what `next` returns.
    fn deliver(&mut self, entry: Entry<R>) -> Option<Result<R, GreenletError>> {
        self.next_index += 1;
        match entry {
            Entry::Value(outcome) => Some(outcome),
            Entry::End => {
                self.ended = true;
                None
            }
            Entry::InputFailed(error) => {
                self.ended = true;
                Some(Err(error))
            }
        }
    }
}

impl<R: 'static> Iterator for Imap<R> {
    type Item = Result<R, GreenletError>;

    /// The next result, waiting for it.
    ///
    /// # Panics
    /// With `LoopExit` from the main greenlet when the result can never
    /// come.
    ///
    /// # Kill safety
    /// Interruptible; takes nothing when interrupted.
    #[track_caller]
    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        if let Some(entry) = self.early.remove(&self.next_index) {
            return self.deliver(entry);
        }
        loop {
            if self.held_failure.is_some()
                && self.shared.outstanding.get() == 0
                && self.shared.queue.empty()
            {
                let failure = self.held_failure.take()?;
                return self.deliver(failure);
            }
            let Ok((index, entry)) = self.shared.queue.get() else {
                self.ended = true;
                return None;
            };
            if !self.ordered
                && matches!(entry, Entry::InputFailed(_))
                && (self.shared.outstanding.get() > 0 || !self.shared.queue.empty())
            {
                // Completion order, too, returns every spawned task's
                // result before the input's failure (input order does by
                // its index): none is lost.
                self.held_failure = Some(entry);
                continue;
            }
            if !self.ordered || index == self.next_index {
                return self.deliver(entry);
            }
            self.early.insert(index, entry);
        }
    }
}

impl<R: 'static> Drop for Imap<R> {
    fn drop(&mut self) {
        // Stop reading the input for a reader that is gone.
        if !self.feeder.dead() {
            self.feeder.kill_nowait();
        }
    }
}

impl<R: 'static> fmt::Debug for Imap<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Imap")
            .field("ordered", &self.ordered)
            .field("returned", &self.next_index)
            .field("ended", &self.ended)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Order and keys of the members' slab across removals and reuses.
    #[test]
    fn members_keep_joining_order_and_never_reuse_a_live_key() {
        green_core::run(|| {
            let gs: Vec<_> = (0..4).map(|_| Greenlet::new(|| ())).collect();
            let mut members = Members::default();
            let add = |members: &mut Members, i: usize| {
                let key = members.vacant_key();
                let link = gs[i].as_ref().link_ready(Box::new(|| ()));
                let inserted = members.insert(Member {
                    greenlet: gs[i].as_ref(),
                    link,
                    dying: false,
                });
                assert_eq!(inserted, key, "vacant_key names the next key");
                key
            };
            let order = |members: &Members| -> Vec<usize> {
                members
                    .iter()
                    .map(|(_, m)| {
                        gs.iter()
                            .position(|g| g.as_ref().ptr_eq(&m.greenlet))
                            .expect("a known greenlet")
                    })
                    .collect()
            };
            let k0 = add(&mut members, 0);
            let k1 = add(&mut members, 1);
            let k2 = add(&mut members, 2);
            assert_eq!(order(&members), [0, 1, 2]);

            // Out of the middle, then the slot reused: the newcomer is last.
            assert!(members.remove(k1).is_some());
            assert!(members.remove(k1).is_none(), "removed once only");
            let k3 = add(&mut members, 3);
            assert_ne!(k3, k1, "a reused slot gets a new key");
            assert!(members.get(k1).is_none(), "the old key names nothing");
            assert_eq!(order(&members), [0, 2, 3]);
            assert_eq!(members.len(), 3);

            // Both ends.
            assert!(members.remove(k0).is_some());
            assert!(members.remove(k3).is_some());
            assert_eq!(order(&members), [2]);
            assert!(members.get_mut(k2).is_some());
            assert!(members.remove(k2).is_some());
            assert!(members.is_empty() && members.iter().next().is_none());

            for g in &gs {
                g.start();
                g.join();
            }
        });
    }
}
