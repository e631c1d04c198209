//! The spawn tree: who spawned a greenlet, values shared by a greenlet and
//! everything it spawns, and callbacks run for every greenlet started on the
//! thread (gevent's `spawning_greenlet`, `spawn_tree_locals` and
//! `add_spawn_callback`).

use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;

pub(crate) use crate::greenlet::state::SpawnTree;
use crate::greenlet::state::{Core, CoreRef};
use crate::greenlet::GreenletRef;

// ===== spawn callbacks =====

type SpawnCallback = Rc<dyn Fn(&GreenletRef)>;

thread_local! {
    static SPAWN_CALLBACKS: RefCell<Vec<(u64, SpawnCallback)>> = const { RefCell::new(Vec::new()) };
    /// Whether any callback is registered: the one check a start pays.
    static ANY_SPAWN_CALLBACK: Cell<bool> = const { Cell::new(false) };
    static NEXT_CALLBACK_ID: Cell<u64> = const { Cell::new(1) };
}

/// Names a callback added with [`add_spawn_callback`], to remove it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SpawnCallbackId(u64);

/// Runs `callback` for every greenlet started on this thread from now on
/// (gevent's `add_spawn_callback`): when `spawn`, `start` or `start_later`
/// schedules it, before it runs. For tracing, metrics, or carrying context
/// from the spawner to the spawned. Callbacks run in the spawner, in the
/// order they were added; they must not block.
///
/// # Examples
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
///
/// let started = Rc::new(Cell::new(0));
/// let count = started.clone();
/// let id = green_core::add_spawn_callback(move |_| count.set(count.get() + 1));
/// green_core::spawn(|| ()).join();
/// green_core::spawn(|| ()).join();
/// assert_eq!(started.get(), 2);
/// assert!(green_core::remove_spawn_callback(id));
/// ```
pub fn add_spawn_callback(callback: impl Fn(&GreenletRef) + 'static) -> SpawnCallbackId {
    let id = NEXT_CALLBACK_ID.with(|next| next.replace(next.get() + 1));
    SPAWN_CALLBACKS.with(|all| all.borrow_mut().push((id, Rc::new(callback))));
    ANY_SPAWN_CALLBACK.with(|any| any.set(true));
    SpawnCallbackId(id)
}

/// Removes a callback added with [`add_spawn_callback`] on this thread;
/// whether it was there.
///
/// # Examples
/// ```
/// let id = green_core::add_spawn_callback(|_| {});
/// assert!(green_core::remove_spawn_callback(id));
/// assert!(!green_core::remove_spawn_callback(id));
/// ```
pub fn remove_spawn_callback(id: SpawnCallbackId) -> bool {
    SPAWN_CALLBACKS.with(|all| {
        let mut all = all.borrow_mut();
        let before = all.len();
        all.retain(|(each, _)| *each != id.0);
        ANY_SPAWN_CALLBACK.with(|any| any.set(!all.is_empty()));
        all.len() != before
    })
}

/// Calls the spawn callbacks for a greenlet being started.
#[inline]
pub(crate) fn run_spawn_callbacks(started: impl FnOnce() -> GreenletRef) {
    if !ANY_SPAWN_CALLBACK.with(Cell::get) {
        return;
    }
    // Taken out first: a callback may spawn, or add and remove callbacks.
    let callbacks: Vec<SpawnCallback> =
        SPAWN_CALLBACKS.with(|all| all.borrow().iter().map(|(_, f)| Rc::clone(f)).collect());
    let started = started();
    for callback in callbacks {
        callback(&started);
    }
}

// ===== spawn-tree locals =====

/// The values shared by a spawn tree: a greenlet, the greenlets it spawns,
/// theirs, and so on (gevent's `spawn_tree_locals`). One value per type.
///
/// Each greenlet the thread's main greenlet spawns starts a tree of its own
/// (as in gevent), as does one built with [`Builder::new_spawn_tree`]; every
/// other greenlet shares its spawner's. The main greenlet has a tree of its
/// own, shared with nobody.
///
/// A greenlet's tree is found when first asked for, through its spawner: a
/// greenlet whose spawner was asked first, or is still alive, always shares
/// it. One spawned by a greenlet that never used its tree and is gone by
/// then starts a new tree (nothing could have been stored in the old one
/// through the spawner).
///
/// [`Builder::new_spawn_tree`]: crate::Builder::new_spawn_tree
///
/// # Examples
/// ```
/// #[derive(Debug, PartialEq)]
/// struct RequestId(u64);
///
/// let handler = green_core::spawn(|| {
///     green_core::spawn_tree_locals().insert(RequestId(7));
///     // A helper it spawns sees the same value.
///     let helper = green_core::spawn(|| green_core::spawn_tree_locals().get::<RequestId>());
///     helper.get().unwrap()
/// });
/// assert_eq!(handler.get().unwrap().as_deref(), Some(&RequestId(7)));
/// ```
#[derive(Clone)]
pub struct SpawnTreeLocals {
    values: SpawnTree,
    _not_send: PhantomData<*const ()>,
}

impl SpawnTreeLocals {
    /// Stores `value` for its type, returning the value it replaces.
    ///
    /// # Examples
    /// ```
    /// let locals = green_core::spawn_tree_locals();
    /// assert_eq!(locals.insert(1_u32), None);
    /// assert_eq!(locals.insert(2_u32).as_deref(), Some(&1));
    /// assert_eq!(locals.get::<u32>().as_deref(), Some(&2));
    /// assert_eq!(locals.remove::<u32>().as_deref(), Some(&2));
    /// assert!(locals.ptr_eq(&green_core::spawn_tree_locals()));
    /// ```
    pub fn insert<T: 'static>(&self, value: T) -> Option<Rc<T>> {
        let value: Rc<dyn Any> = Rc::new(value);
        let mut values = self.values.borrow_mut();
        let old = match values.iter_mut().find(|(t, _)| *t == TypeId::of::<T>()) {
            Some((_, slot)) => Some(std::mem::replace(slot, value)),
            None => {
                values.push((TypeId::of::<T>(), value));
                None
            }
        };
        drop(values);
        old.and_then(|old| old.downcast::<T>().ok())
    }

    /// The value stored for type `T`.
    ///
    /// # Examples
    /// ```
    /// let locals = green_core::spawn_tree_locals();
    /// assert_eq!(locals.insert(1_u32), None);
    /// assert_eq!(locals.insert(2_u32).as_deref(), Some(&1));
    /// assert_eq!(locals.get::<u32>().as_deref(), Some(&2));
    /// assert_eq!(locals.remove::<u32>().as_deref(), Some(&2));
    /// assert!(locals.ptr_eq(&green_core::spawn_tree_locals()));
    /// ```
    pub fn get<T: 'static>(&self) -> Option<Rc<T>> {
        let values = self.values.borrow();
        let (_, value) = values.iter().find(|(t, _)| *t == TypeId::of::<T>())?;
        Rc::clone(value).downcast::<T>().ok()
    }

    /// Removes and returns the value stored for type `T`.
    ///
    /// # Examples
    /// ```
    /// let locals = green_core::spawn_tree_locals();
    /// assert_eq!(locals.insert(1_u32), None);
    /// assert_eq!(locals.insert(2_u32).as_deref(), Some(&1));
    /// assert_eq!(locals.get::<u32>().as_deref(), Some(&2));
    /// assert_eq!(locals.remove::<u32>().as_deref(), Some(&2));
    /// assert!(locals.ptr_eq(&green_core::spawn_tree_locals()));
    /// ```
    pub fn remove<T: 'static>(&self) -> Option<Rc<T>> {
        let mut values = self.values.borrow_mut();
        let at = values.iter().position(|(t, _)| *t == TypeId::of::<T>())?;
        let (_, value) = values.remove(at);
        drop(values);
        value.downcast::<T>().ok()
    }

    /// Whether both handles are the same tree's.
    ///
    /// # Examples
    /// ```
    /// let locals = green_core::spawn_tree_locals();
    /// assert_eq!(locals.insert(1_u32), None);
    /// assert_eq!(locals.insert(2_u32).as_deref(), Some(&1));
    /// assert_eq!(locals.get::<u32>().as_deref(), Some(&2));
    /// assert_eq!(locals.remove::<u32>().as_deref(), Some(&2));
    /// assert!(locals.ptr_eq(&green_core::spawn_tree_locals()));
    /// ```
    pub fn ptr_eq(&self, other: &SpawnTreeLocals) -> bool {
        Rc::ptr_eq(&self.values, &other.values)
    }
}

impl fmt::Debug for SpawnTreeLocals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpawnTreeLocals")
            .field("values", &self.values.borrow().len())
            .finish()
    }
}

/// The spawn-tree locals of the running greenlet.
///
/// # Panics
/// Inside the hub (a rawlink callback), where no greenlet runs.
///
/// # Examples
/// ```
/// let locals = green_core::spawn_tree_locals();
/// assert_eq!(locals.insert(1_u32), None);
/// assert_eq!(locals.insert(2_u32).as_deref(), Some(&1));
/// assert_eq!(locals.get::<u32>().as_deref(), Some(&2));
/// assert_eq!(locals.remove::<u32>().as_deref(), Some(&2));
/// assert!(locals.ptr_eq(&green_core::spawn_tree_locals()));
/// ```
pub fn spawn_tree_locals() -> SpawnTreeLocals {
    let current = crate::hub::hub().current_for_blocking();
    tree_locals_of(&current)
}

/// The spawn-tree locals of `core`'s tree, found (and kept) on first use.
pub(crate) fn tree_locals_of(core: &CoreRef) -> SpawnTreeLocals {
    SpawnTreeLocals {
        values: tree_of(core),
        _not_send: PhantomData,
    }
}

/// Walks up the spawners (a loop: chains may be deep) to the first that
/// has found its tree, or to the tree's root, and gives the tree to every
/// greenlet on the way.
fn tree_of(core: &CoreRef) -> SpawnTree {
    let mut path: Vec<CoreRef> = Vec::new();
    let mut at = Rc::clone(core);
    let tree = loop {
        let c = at.core();
        if let Some(tree) = c.spawn_tree() {
            break tree;
        }
        let spawner = c.parent.as_ref().and_then(std::rc::Weak::upgrade);
        match spawner {
            // Children of the main greenlet each start a tree (gevent).
            Some(spawner) if !spawner.core().is_main && !c.starts_spawn_tree() => {
                path.push(std::mem::replace(&mut at, spawner));
            }
            _ => {
                let tree = SpawnTree::default();
                c.set_spawn_tree(Rc::clone(&tree));
                break tree;
            }
        }
    };
    for c in path {
        c.core().set_spawn_tree(Rc::clone(&tree));
    }
    tree
}

/// At spawn (by a greenlet other than the main one, into a greenlet that
/// does not start a tree of its own): a spawner that has found its tree
/// shares it from the start, whatever happens to the spawner later.
pub(crate) fn inherit_tree(child: &Core, spawner: &CoreRef) {
    if let Some(tree) = spawner.core().spawn_tree() {
        child.set_spawn_tree(tree);
    }
}
