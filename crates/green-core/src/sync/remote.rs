//! `Send` handles that complete an [`AsyncResult`] or put into a [`Queue`]
//! from another OS thread, waking the owning hub through its loop's
//! `Remote` (an eventfd or ring message).
//!
//! The primitives themselves stay on their hub's thread (`!Send`). A handle
//! carries only the hub's wake-up handle and the key under which the hub's
//! thread registered the primitive (held weakly: the handle does not keep
//! it alive). The value travels with a closure that the hub's loop runs on
//! its own thread, where it sets the result or puts the item as a greenlet
//! on that thread would (without blocking: see [`RemotePutter::put`]).
//!
//! While a handle exists, the hub's loop counts as alive: a greenlet
//! waiting for what another thread will send never gets `LoopExit`, and
//! waits for as long as that thread holds the handle.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use super::event::ResultInner;
use super::queue::{QueueInner, Storage};
use super::AsyncResult;
use crate::hub::{existing_hub, hub};
use crate::slab::Slab;

/// The hub this handle belongs to is gone (its thread ended, or it was torn
/// down); what was sent comes back.
#[derive(PartialEq, Eq)]
pub struct HubGone<T>(pub T);

impl<T> HubGone<T> {
    /// What could not be delivered.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for HubGone<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HubGone(..)")
    }
}

impl<T> fmt::Display for HubGone<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the hub that owns this object is gone (its thread ended or it was torn down): \
             nothing was delivered",
        )
    }
}

impl<T> std::error::Error for HubGone<T> {}

thread_local! {
    /// Primitives reachable from other threads, by key, each tagged with
    /// the epoch of the hub that registered it.
    static REGISTRY: RefCell<Slab<(u64, Box<dyn Any>)>> = RefCell::new(Slab::new());
    /// The hub epoch the registry's entries belong to: when it changes,
    /// every entry is stale.
    static REGISTRY_EPOCH: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// What a handle shares with its clones: the last one unregisters the key
/// (with its final send, see [`RemoteSetter::send_final`], or when dropped).
struct Registration {
    remote: green_loop::Remote,
    key: usize,
    epoch: u64,
    /// A final send carried the unregistering already: dropping sends
    /// nothing.
    handed_over: bool,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if self.handed_over {
            return;
        }
        let (key, epoch) = (self.key, self.epoch);
        // Gone with the hub otherwise: nothing to remove.
        let _ = self.remote.run(move |lp| {
            if unregister(key, epoch) {
                lp.release_ref();
            }
        });
    }
}

fn register(target: Box<dyn Any>) -> Registration {
    let hub = hub();
    let epoch = hub.epoch();
    let key = REGISTRY.with(|r| {
        let mut registry = r.borrow_mut();
        if REGISTRY_EPOCH.with(|e| e.replace(epoch)) != epoch {
            // Entries of an earlier hub of this thread are dead weight.
            *registry = Slab::new();
        }
        registry.insert((epoch, target))
    });
    // While a handle exists, a greenlet waiting for what it will send is
    // not waiting forever: the loop stays alive (no `LoopExit`).
    hub.with_loop(|lp| lp.add_ref());
    Registration {
        remote: hub.with_loop(|lp| lp.remote()),
        key,
        epoch,
        handed_over: false,
    }
}

/// Removes a registration; `true` if it was there (its hold on the loop is
/// then released by the caller).
fn unregister(key: usize, epoch: u64) -> bool {
    let removed = REGISTRY.with(|r| {
        let mut registry = r.borrow_mut();
        match registry.get(key) {
            Some((e, _)) if *e == epoch => registry.remove(key),
            _ => None,
        }
    });
    removed.is_some()
}

/// The registered primitive at `key`, if it and its hub are still there.
fn lookup<W: 'static + Clone>(key: usize, epoch: u64) -> Option<W> {
    let hub = existing_hub()?;
    if hub.epoch() != epoch {
        return None;
    }
    REGISTRY.with(|r| {
        let registry = r.borrow();
        let (e, target) = registry.get(key)?;
        (*e == epoch).then(|| target.downcast_ref::<W>().cloned())?
    })
}

/// Completes an [`AsyncResult`] from any thread (`Send`, `Clone`).
///
/// # Examples
/// ```
/// let result: green_core::sync::AsyncResult<u64, String> = Default::default();
/// let setter = result.remote_setter();
/// std::thread::spawn(move || setter.set(6 * 7).unwrap());
/// assert_eq!(result.get().unwrap(), 42); // the greenlet waits greenly
/// ```
pub struct RemoteSetter<T, E> {
    registration: Arc<Registration>,
    _types: std::marker::PhantomData<fn(T, E)>,
}

impl<T, E> Clone for RemoteSetter<T, E> {
    fn clone(&self) -> Self {
        RemoteSetter {
            registration: Arc::clone(&self.registration),
            _types: std::marker::PhantomData,
        }
    }
}

impl<T: Send + 'static, E: Send + 'static> RemoteSetter<T, E> {
    /// Stores `value` in the result and wakes its hub.
    ///
    /// # Errors
    /// [`HubGone`] with the value if the result's hub is gone. (If the
    /// result itself was dropped, the value is dropped on the hub's thread.)
    pub fn set(&self, value: T) -> Result<(), HubGone<T>> {
        self.send(Ok(value)).map_err(|gone| match gone.0 {
            Ok(value) => HubGone(value),
            Err(_) => unreachable!("a value was sent"),
        })
    }

    /// Stores `error` in the result and wakes its hub.
    ///
    /// # Errors
    /// [`HubGone`] with the error if the result's hub is gone.
    pub fn set_exception(&self, error: E) -> Result<(), HubGone<E>> {
        self.send(Err(error)).map_err(|gone| match gone.0 {
            Err(error) => HubGone(error),
            Ok(_) => unreachable!("an error was sent"),
        })
    }

    /// Stores `outcome` in the result and wakes its hub.
    ///
    /// # Errors
    /// [`HubGone`] with the outcome if the result's hub is gone.
    pub fn send(&self, outcome: Result<T, E>) -> Result<(), HubGone<Result<T, E>>> {
        let r = &self.registration;
        r.remote
            .try_run_with((r.key, r.epoch, outcome), deliver_outcome::<T, E>)
            .map_err(|(_, _, outcome)| HubGone(outcome))
    }
}

impl<T: Send + 'static, E: Send + 'static> RemoteSetter<T, E> {
    /// Stores `outcome` in the result, wakes its hub and gives up this
    /// handle. When it is the last one, the message that delivers the
    /// outcome also unregisters the result, so the hub is woken once where
    /// [`send`](RemoteSetter::send) and a drop wake it twice: the end of a
    /// one-shot hand-off, such as a `ThreadPool` job's.
    ///
    /// # Errors
    /// [`HubGone`] with the outcome if the result's hub is gone.
    pub fn send_final(self, outcome: Result<T, E>) -> Result<(), HubGone<Result<T, E>>> {
        let mut registration = match Arc::try_unwrap(self.registration) {
            Ok(registration) => registration,
            // Other handles remain: the last of them unregisters.
            Err(shared) => {
                let rest = RemoteSetter {
                    registration: shared,
                    _types: std::marker::PhantomData,
                };
                return rest.send(outcome);
            }
        };
        let (key, epoch) = (registration.key, registration.epoch);
        let sent = registration
            .remote
            .try_run_with((key, epoch, outcome), deliver_final_outcome::<T, E>);
        // Delivered with the unregistering; if the hub is gone instead,
        // dropping sends nothing that could arrive either.
        registration.handed_over = true;
        sent.map_err(|(_, _, outcome)| HubGone(outcome))
    }
}

/// [`RemoteSetter::send_final`]'s delivery: the outcome, then the
/// unregistering a dropped last handle would have sent.
fn deliver_final_outcome<T: 'static, E: 'static>(
    lp: &green_loop::Loop,
    (key, epoch, outcome): (usize, u64, Result<T, E>),
) {
    deliver_outcome(lp, (key, epoch, outcome));
    if unregister(key, epoch) {
        lp.release_ref();
    }
}

/// [`RemoteSetter`]'s delivery, on the result's thread.
fn deliver_outcome<T: 'static, E: 'static>(
    _: &green_loop::Loop,
    (key, epoch, outcome): (usize, u64, Result<T, E>),
) {
    if let Some(target) = lookup::<Weak<ResultInner<T, E>>>(key, epoch) {
        if let Some(target) = target.upgrade() {
            ResultInner::set_outcome(&target, outcome);
        }
    }
}

impl<T, E> fmt::Debug for RemoteSetter<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteSetter")
            .field("hub_alive", &self.registration.remote.is_alive())
            .finish()
    }
}

impl<T: Send + 'static, E: Send + 'static> AsyncResult<T, E> {
    /// A `Send` handle that completes this result from another thread.
    pub fn remote_setter(&self) -> RemoteSetter<T, E> {
        RemoteSetter {
            registration: Arc::new(register(Box::new(Rc::downgrade(self.inner())))),
            _types: std::marker::PhantomData,
        }
    }
}

/// Puts into a [`Queue`](super::Queue), [`LifoQueue`](super::LifoQueue) or
/// [`PriorityQueue`](super::PriorityQueue) from any thread (`Send`, `Clone`).
///
/// # Examples
/// ```
/// let q = green_core::sync::Queue::new();
/// let putter = q.remote_putter();
/// std::thread::spawn(move || {
///     for i in 0..3 {
///         putter.put(i).unwrap();
///     }
/// });
/// let got: Vec<i32> = (0..3).map(|_| q.get().unwrap()).collect();
/// assert_eq!(got, [0, 1, 2]);
/// ```
pub struct RemotePutter<T> {
    registration: Arc<Registration>,
    /// Puts an item into the registered queue, on its thread (made for the
    /// queue's kind).
    deliver: fn(usize, u64, T),
}

impl<T> Clone for RemotePutter<T> {
    fn clone(&self) -> Self {
        RemotePutter {
            registration: Arc::clone(&self.registration),
            deliver: self.deliver,
        }
    }
}

/// [`RemotePutter`]'s delivery for a queue stored as `S`.
fn deliver_to_queue<T: 'static, S: Storage<T>>(key: usize, epoch: u64, item: T) {
    if let Some(target) = lookup::<Weak<QueueInner<T, S>>>(key, epoch) {
        if let Some(target) = target.upgrade() {
            QueueInner::put_from_afar(&target, item);
        }
    }
}

/// A [`RemotePutter`] for the queue `inner` (any kind).
pub(crate) fn remote_putter<T: Send + 'static, S: Storage<T>>(
    inner: &Rc<QueueInner<T, S>>,
) -> RemotePutter<T> {
    RemotePutter {
        registration: Arc::new(register(Box::new(Rc::downgrade(inner)))),
        deliver: deliver_to_queue::<T, S>,
    }
}

impl<T: Send + 'static> RemotePutter<T> {
    /// Puts `item` into the queue, on the queue's thread, and wakes its hub.
    /// It never blocks: items from one thread arrive in the order sent, and
    /// on a bounded queue that is full the item is still added (the bound
    /// holds back green putters only). On a closed queue the item is dropped
    /// on the hub's thread.
    ///
    /// # Errors
    /// [`HubGone`] with the item if the queue's hub is gone.
    pub fn put(&self, item: T) -> Result<(), HubGone<T>> {
        let r = &self.registration;
        r.remote
            .try_run_with(
                (r.key, r.epoch, item, self.deliver),
                |_, (key, epoch, item, deliver)| deliver(key, epoch, item),
            )
            .map_err(|(_, _, item, _)| HubGone(item))
    }
}

impl<T> fmt::Debug for RemotePutter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemotePutter")
            .field("hub_alive", &self.registration.remote.is_alive())
            .finish()
    }
}
