//! Fibers: a stack, a saved context and an entry closure, with symmetric
//! switching between any two of them and the thread's original context.
//!
//! # Model
//!
//! Every execution context of a thread is a *slot*: the thread's original stack
//! (the root slot, made lazily) and one slot per [`Fiber`]. Exactly one slot is
//! *current* (running). [`FiberRef::switch`] suspends the current slot and
//! resumes another, passing one word; whoever later switches back to the first
//! slot passes the word its `switch` call returns. There is no caller/callee
//! relation: any slot may switch to any suspended slot (the hub of green-core
//! switches greenlet to greenlet directly).
//!
//! A fiber whose entry returns (or panics, the panic being caught at its root)
//! switches one last time, to its *parent*: the slot that first switched into
//! it unless [`Fiber::set_parent`] chose another. If the parent is not
//! suspended then, the root slot is used.
//!
//! The underlying primitive is boost.context's `jump_fcontext` (the `context`
//! crate): it saves the callee-saved registers on the current stack, switches
//! the stack pointer, and returns `(previous context, word)` on the other side.
//! The word we pass is a pointer to a [`Message`] on the switching stack, which
//! carries the sender's slot (so the receiver can store the sender's saved
//! context there), the user's word, and a pointer to the rare extras ([`Extra`]:
//! the sender finished, or asks for an unwind), null on an ordinary switch.
//!
//! # Speed
//!
//! An ordinary switch does one thread-local read and write (`CURRENT`), takes
//! the target's context (the only check: see F1), writes three words of
//! message and jumps; the receiver tests one pointer and stores the sender's
//! context. The switch is `#[inline]` into the caller: a `call`/`ret` pair
//! around the jump would make the `ret` mispredict on every switch (the jump
//! leaves the return-stack buffer holding the other side's return address).
//! Everything else (panics, unwinds, finished senders, root set-up) is out of
//! line and `#[cold]`.
//!
//! [`Fiber::new`] makes at most one allocation (the slot): the entry closure
//! is moved onto the top of the fiber's own stack and started by a trampoline
//! monomorphised for its type (closures over 512 bytes are boxed first). The
//! slot of a finished fiber whose last handle is dropped is kept, emptied, in
//! a small per-thread cache ([`MAX_SPARE_SLOTS`]) and reused by the next
//! `Fiber::new`, so a spawn-and-finish cycle allocates nothing here.
//!
//! # States
//!
//! ```text
//!   NotStarted --first switch--> Running <--switch--> Suspended
//!        |                          |
//!        +--unwind before start--+  +--entry returns / unwinds--> Finished
//!                                v
//!                             Finished
//! ```
//!
//! A slot records only its [`Phase`] (not started, started, finished); a
//! started slot is `Suspended` when it holds a saved context and `Running`
//! when it does not (F1).
//!
//! # Invariants
//!
//! * **F1.** `slot.ctx` is `Some` exactly when the slot is `NotStarted` or
//!   `Suspended`; it is the context to jump to, and it is taken (consumed) by
//!   the jump. The current slot never has a context stored, nor does a finished
//!   one. So "the target holds a context" is the whole check a switch needs: it
//!   refuses the current slot and finished fibers alike.
//! * **F2.** `CURRENT` points to the running slot (null = the root slot, before
//!   it is first needed; then the root's address). It is updated before every
//!   jump, by the switching side, so that code resumed on the other side
//!   already sees itself current.
//! * **F3.** A `Message` (and its `Extra`) lives on the stack of the slot that
//!   sent it, and that slot stays suspended until the receiver has read the
//!   message: the receiver runs first, and reads every field of the message
//!   before doing anything that could switch or release the sender.
//! * **F4.** A slot's memory (and so its stack) outlives every switch that
//!   involves it: slots are `Rc`-allocated; a suspended fiber is only released
//!   through [`Fiber`]'s `Drop`, which first unwinds it to the end; a running
//!   fiber whose owner drops its handle keeps itself alive (`keep_alive`) until
//!   its final switch, after which the receiving side releases it. A
//!   finished slot whose last handle goes is emptied and cached for reuse
//!   by [`Fiber::new`] (`recycle`): only then, with no other reference to it
//!   left, is its memory handed to a new fiber.
//! * **F5.** Code on a fiber's stack never outlives the fiber: the entry
//!   trampoline drops everything it owns before the final switch, which never
//!   returns, and a finished fiber's stack is only reused after that switch.
//!   The entry closure stored at the top of the stack by [`Fiber::new`] is
//!   moved out or dropped in place exactly once (`slot.entry` is taken first),
//!   always before the stack can be released: by the trampoline, or by
//!   [`Fiber::take_stack`] for a fiber that never started.
//! * **F6.** No unwind crosses the `extern "C"` entry: the trampoline catches
//!   every panic (and forced unwind) and stores its payload in the slot.
//! * **F7.** Fibers never leave their thread: [`Fiber`] and [`FiberRef`] are
//!   `!Send` (they hold `Rc`), and `CURRENT` is thread-local.
//! * **F8.** `ROOT` owns one strong count of the root slot from its creation
//!   until thread exit, so the root is alive whenever `ROOT` is non-null.
//!   At thread exit `ROOT_RELEASE` gives that count back and clears `ROOT`
//!   and `CURRENT` only if the thread's own stack is current and no other
//!   handle refers to the root (strong count 1, no weak): then no switch
//!   can target it and no address of it is in use. Otherwise the root is
//!   kept for the rest of the process (a few hundred bytes).

use std::any::Any;
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::rc::Rc;

use context::{Context, Transfer};

use crate::stack::Stack;

/// A panic payload, as `std::panic::catch_unwind` returns it.
pub type Payload = Box<dyn Any + Send>;

/// Entry closures larger than this are boxed rather than stored on the stack.
const MAX_INLINE_ENTRY: usize = 512;

/// Cache lines from a suspended context's stack pointer that
/// [`FiberRef::prefetch_context`] asks for: the register save area and the
/// frames a parked greenlet returns through (measured: about 3 lines).
const CONTEXT_PREFETCH_LINES: usize = 4;

// `saved_stack_pointer` reads a `Context` as the address it wraps.
const _: () = assert!(mem::size_of::<Context>() == mem::size_of::<usize>());

/// Most emptied slots kept per thread for reuse by [`Fiber::new`].
const MAX_SPARE_SLOTS: usize = 64;

/// Where a fiber is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FiberState {
    /// Made, never switched into. Its entry has not run.
    NotStarted,
    /// Executing now: it is the current context of its thread.
    Running,
    /// Switched away from; can be switched back into.
    Suspended,
    /// Its entry returned or unwound; it can never run again.
    Finished,
}

/// The payload [`Fiber`]'s `Drop` unwinds a suspended fiber with.
///
/// Code that catches panics inside a fiber should let this one continue
/// (`std::panic::resume_unwind`); a fiber that swallows it and suspends again
/// cannot be freed and is leaked with a warning.
#[derive(Debug)]
pub struct ForcedUnwind(());

// ===== slots =====

/// What a slot records of its life; `Running` and `Suspended` are told apart
/// by whether it holds a context (F1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    NotStarted,
    Started,
    Finished,
}

/// The entry closure of a fiber that has not started, stored at the top of
/// its stack (F5).
#[derive(Clone, Copy)]
struct EntryRef {
    /// Address of the closure on the fiber's stack.
    at: NonNull<u8>,
    /// Drops the closure in place, for a fiber that never runs it.
    drop: unsafe fn(*mut u8),
}

/// One execution context: the root or a fiber. See the module invariants.
// `repr(C)`: what a switch reads and writes (`ctx`, `phase`) leads the
// record, so a switch to a cold fiber misses on one line of it, not two.
#[repr(C)]
pub(crate) struct Slot {
    /// F1: the saved context while `NotStarted`/`Suspended`.
    ctx: Cell<Option<Context>>,
    phase: Cell<Phase>,
    /// A number the layer above gives an unnamed fiber (a greenlet's
    /// minimal ident), for the overflow report; 0 = none.
    pub(crate) number: Cell<u32>,
    /// F5: the entry closure until it is moved out or dropped.
    entry: Cell<Option<EntryRef>>,
    /// The fiber's stack; `None` for the root or once taken back.
    stack: Cell<Option<Stack>>,
    /// Cached stack facts for the overflow handler, which must not touch the
    /// `Cell<Option<Stack>>` (it may be mid-update when a fault lands).
    /// Lowest address of the guard page (one page), or 0 when unguarded.
    pub(crate) guard_lo: Cell<usize>,
    pub(crate) stack_size: Cell<usize>,
    /// The panic payload and the self-reference of a dropped running fiber:
    /// rare, so boxed on first use to keep the slot small.
    rare: Cell<Option<Box<Rare>>>,
    parent: Cell<Option<Rc<Slot>>>,
    /// Boxed: most fibers are never named, and the record stays small.
    pub(crate) name: RefCell<Option<Box<Cow<'static, str>>>>,
    /// Where the layer above created it, for the overflow report.
    pub(crate) site: Cell<Option<&'static std::panic::Location<'static>>>,
}

/// Slot fields that most fibers never use.
#[derive(Default)]
struct Rare {
    /// The payload of the panic (or unwind) that finished the fiber.
    panic: Option<Payload>,
    /// F4: set when the owner drops the handle of a running fiber.
    keep_alive: Option<Rc<Slot>>,
}

impl Slot {
    /// Updates the rare fields, boxing them on first use.
    fn with_rare<R>(&self, f: impl FnOnce(&mut Rare) -> R) -> R {
        let mut rare = self.rare.take().unwrap_or_default();
        let result = f(&mut rare);
        self.rare.set(Some(rare));
        result
    }

    fn set_panic(&self, payload: Payload) {
        self.with_rare(|r| r.panic = Some(payload));
    }

    fn take_panic(&self) -> Option<Payload> {
        let mut rare = self.rare.take()?;
        let payload = rare.panic.take();
        self.rare.set(Some(rare));
        payload
    }

    fn set_keep_alive(&self, me: Rc<Slot>) {
        self.with_rare(|r| r.keep_alive = Some(me));
    }

    fn take_keep_alive(&self) -> Option<Rc<Slot>> {
        let mut rare = self.rare.take()?;
        let me = rare.keep_alive.take();
        self.rare.set(Some(rare));
        me
    }

    fn new(phase: Phase) -> Slot {
        Slot {
            ctx: Cell::new(None),
            phase: Cell::new(phase),
            number: Cell::new(0),
            entry: Cell::new(None),
            stack: Cell::new(None),
            guard_lo: Cell::new(0),
            stack_size: Cell::new(0),
            rare: Cell::new(None),
            parent: Cell::new(None),
            name: RefCell::new(None),
            site: Cell::new(None),
        }
    }

    /// Writes the name messages call the fiber by, in pieces, allocating
    /// nothing (the overflow handler uses it, O1): the name set by
    /// [`Fiber::set_name`], else `<prefix>-<number>` from
    /// [`Fiber::set_number`] and [`set_number_prefix`], else `<unnamed>`.
    pub(crate) fn write_display_name(&self, put: &mut dyn FnMut(&[u8])) {
        match self.name.try_borrow().as_deref() {
            Ok(Some(name)) if !name.is_empty() => put(name.as_bytes()),
            _ if self.number.get() != 0 => {
                put(NUMBER_PREFIX.get().copied().unwrap_or("fiber").as_bytes());
                put(b"-");
                let mut digits = [0u8; 20];
                put(crate::overflow::decimal(
                    self.number.get() as usize,
                    &mut digits,
                ));
            }
            _ => put(b"<unnamed>"),
        }
    }

    /// Whether a parent was chosen (by `set_parent` or at the first switch).
    fn has_parent(&self) -> bool {
        let parent = self.parent.take();
        let has = parent.is_some();
        self.parent.set(parent);
        has
    }

    /// The stack address of the context saved here (F1), if any: where
    /// `jump_fcontext` left the registers it will pop.
    #[inline(always)]
    fn saved_stack_pointer(&self) -> Option<usize> {
        // `Context` is `repr(C)` around one pointer, the stack address of the
        // saved context (context 3.0; a const assertion checks the size).
        // SAFETY: F7: no reference into the cell outlives this expression, so
        // nothing writes it meanwhile; a `Context` reads as the address it holds.
        unsafe {
            (*self.ctx.as_ptr())
                .as_ref()
                .map(|ctx| mem::transmute_copy::<Context, usize>(ctx))
        }
    }

    /// Whether a context is saved here (F1).
    #[inline]
    fn has_ctx(&self) -> bool {
        // SAFETY: `Slot` is `!Sync` and no reference into the cell outlives
        // this expression, so nothing writes it while we read (F7).
        unsafe { (*self.ctx.as_ptr()).is_some() }
    }

    #[inline]
    fn state(&self) -> FiberState {
        match self.phase.get() {
            Phase::NotStarted => FiberState::NotStarted,
            Phase::Finished => FiberState::Finished,
            Phase::Started if self.has_ctx() => FiberState::Suspended,
            Phase::Started => FiberState::Running,
        }
    }

    /// Drops the entry closure unrun, if it is still there (F5). The stack
    /// must still be the slot's.
    fn drop_entry(&self) {
        if let Some(entry) = self.entry.take() {
            // SAFETY: F5: `entry` was taken from the slot, so this is the one
            // drop of the closure, which lives on the slot's stack, still
            // owned by the slot.
            unsafe { (entry.drop)(entry.at.as_ptr()) };
        }
    }
}

thread_local! {
    /// F2: the running slot; null means the root slot.
    static CURRENT: Cell<*const Slot> = const { Cell::new(ptr::null()) };
    /// The thread's original context, made on first use. It holds one strong
    /// count of its `Rc` (F8): a plain `Cell`, with no destructor, so it is
    /// still there while other thread-local destructors switch fibers (a hub
    /// tearing down at thread exit); `ROOT_RELEASE` lets go of it last.
    static ROOT: Cell<*const Slot> = const { Cell::new(ptr::null()) };
    /// Frees the root slot at thread exit when nothing refers to it (F8).
    static ROOT_RELEASE: RootRelease = const { RootRelease };
    /// Emptied slots of finished fibers, each held only here (strong count
    /// 1, no weak references), for [`Fiber::new`] to reuse. Reached with
    /// `try_with`: at thread exit, once it is gone, slots are simply freed.
    static SPARE_SLOTS: RefCell<Vec<Rc<Slot>>> = const { RefCell::new(Vec::new()) };
}

/// A spare slot to reuse, if the cache has one.
#[inline]
fn take_spare_slot() -> Option<Rc<Slot>> {
    SPARE_SLOTS
        .try_with(|spare| spare.try_borrow_mut().ok()?.pop())
        .ok()
        .flatten()
}

/// Called when the handle holding `slot` is about to drop it: if that is
/// the last reference to a finished fiber's slot, empties the slot and keeps
/// it (a second reference, which the handle's own drop then leaves the only
/// one) for [`Fiber::new`] to reuse instead of allocating.
#[inline]
fn recycle_if_last(slot: &Rc<Slot>) {
    if Rc::strong_count(slot) == 1 {
        recycle(slot);
    }
}

#[inline(never)]
fn recycle(slot: &Rc<Slot>) {
    // Only an unshared, finished fiber's slot: nothing can switch to it
    // (F1: it holds no context) and no raw pointer to it is in use (F2: it
    // is not current; F3: it sent its final message already, F4).
    if Rc::weak_count(slot) != 0 || slot.phase.get() != Phase::Finished {
        return;
    }
    // Empty it first, outside the cache's borrow: these drops may run user
    // code (a panic payload's destructor) that drops other fibers. A
    // finished slot holds no context (F1) nor entry (F5). Its stack is
    // usually gone already (`Fiber`'s drop takes it), but not when the
    // `Fiber` was dropped while running and a `FiberRef` outlived it: free
    // it now rather than while the slot waits in the cache (F5: nothing
    // runs on a finished fiber's stack).
    drop(slot.stack.take());
    drop(slot.rare.take());
    drop(slot.parent.take());
    if slot.name.borrow().is_some() {
        drop(slot.name.take());
    }
    slot.number.set(0);
    slot.site.set(None);
    let _ = SPARE_SLOTS.try_with(|spare| {
        if let Ok(mut spare) = spare.try_borrow_mut() {
            if spare.len() < MAX_SPARE_SLOTS {
                spare.push(Rc::clone(slot));
            }
        }
    });
}

/// The running slot.
#[inline(always)]
fn current_ptr() -> *const Slot {
    let cur = CURRENT.with(Cell::get);
    if cur.is_null() {
        root_ptr_first_time()
    } else {
        cur
    }
}

/// The root slot, the first time `CURRENT` is needed on this thread (F2).
#[cold]
#[inline(never)]
fn root_ptr_first_time() -> *const Slot {
    let root = root_ptr();
    CURRENT.with(|c| c.set(root));
    root
}

/// The root slot of this thread, made on first use; freed at thread exit
/// if nothing refers to it any more (F8).
fn root_ptr() -> *const Slot {
    let root = ROOT.with(Cell::get);
    if !root.is_null() {
        return root;
    }
    let root = Rc::into_raw(Rc::new(Slot::new(Phase::Started)));
    ROOT.with(|r| r.set(root));
    // Registers the release at thread exit. Made during thread exit, after
    // the release ran, the root is simply kept (F8).
    let _ = ROOT_RELEASE.try_with(|_| ());
    root
}

/// Lets go of the root slot's `ROOT` count at thread exit (F8).
struct RootRelease;

impl Drop for RootRelease {
    fn drop(&mut self) {
        let root = ROOT.with(Cell::get);
        if root.is_null() {
            return;
        }
        let current = CURRENT.with(Cell::get);
        if !(current.is_null() || ptr::eq(current, root)) {
            return; // A fiber runs (it cannot, here): keep the root.
        }
        // SAFETY: F8: `ROOT` holds one strong count of the live root slot,
        // which this takes back; it is handed back below unless freed.
        let rc = unsafe { Rc::from_raw(root) };
        if Rc::strong_count(&rc) != 1 || Rc::weak_count(&rc) != 0 {
            // A handle still names it (a fiber's parent, a `FiberRef`): it
            // must outlive them, so it stays, as before.
            let _ = Rc::into_raw(rc);
            return;
        }
        // Nothing else refers to it, so nothing can switch to it; the thread
        // runs its own stack. A later use on this thread makes a new root.
        ROOT.with(|r| r.set(ptr::null()));
        CURRENT.with(|c| c.set(ptr::null()));
        drop(rc);
    }
}

/// A strong reference to the root slot.
fn root_rc() -> Rc<Slot> {
    // SAFETY: the root slot is leaked by `root_ptr`, so it is alive for the
    // rest of the thread (F4).
    unsafe { rc_from_ptr(root_ptr()) }
}

/// The running slot as seen from a signal handler: null before the thread
/// first needed one, or during thread teardown. Never initialises anything.
pub(crate) fn current_ptr_for_signal() -> *const Slot {
    CURRENT.try_with(Cell::get).unwrap_or(ptr::null())
}

/// Rebuilds a strong reference to a live slot from its address.
///
/// # Safety
/// * `slot` came from `Rc::as_ptr` of a slot that is still alive (F4).
unsafe fn rc_from_ptr(slot: *const Slot) -> Rc<Slot> {
    // SAFETY: per the caller, `slot` is the address of a live `Rc<Slot>`
    // allocation; adding a count first keeps the existing owners' counts intact.
    unsafe {
        Rc::increment_strong_count(slot);
        Rc::from_raw(slot)
    }
}

// ===== switching =====

/// What a switch hands to the slot it resumes (F3).
struct Message {
    /// The slot that switched; the receiver stores the sender's context here.
    from: *const Slot,
    /// The user's word.
    data: usize,
    /// Null on an ordinary switch; else what the receiver must also handle.
    extra: *const Extra,
}

/// The rare parts of a switch, on the sender's stack (F3).
struct Extra {
    /// The sender finished: its context is dead and must not be stored (F1).
    finished: bool,
    /// If set, the receiver unwinds with this payload instead of returning.
    unwind: Cell<Option<Payload>>,
}

/// Suspends the current slot and resumes `to`, passing `data` and `extra`.
/// Returns the word passed by whoever switches back.
///
/// The current slot's recorded phase is left as it is: it becomes `Suspended`
/// by the receiver storing its context (F1), and a finishing fiber sets
/// `Finished` (and says so in `extra`) before calling this.
#[inline(always)]
fn switch_raw(to: &Slot, data: usize, extra: *const Extra) -> usize {
    // SAFETY: F2: `from` is `current_ptr`'s answer; F4: `to` is a reference,
    // so the slot is alive for this whole call.
    unsafe { switch_raw_ptr(current_ptr(), to, data, extra) }
}

/// [`switch_raw`] on a slot address, which is not used after the jump: the
/// slot may be released while this side is suspended.
///
/// # Safety
/// * `from` is [`current_ptr`]'s answer (F2), taken by the caller.
/// * `to` is the address of a slot that stays alive until the jump (F4).
#[inline(always)]
unsafe fn switch_raw_ptr(
    from: *const Slot,
    to: *const Slot,
    data: usize,
    extra: *const Extra,
) -> usize {
    // SAFETY: F4, per the caller: the slot is alive up to the jump below,
    // and this reference is not used after it.
    let to: &Slot = unsafe { &*to };
    // F1: only a `NotStarted` or `Suspended` slot holds a context; this also
    // refuses the current slot and finished fibers.
    let Some(ctx) = to.ctx.take() else {
        switch_refused(to)
    };
    let msg = Message { from, data, extra };
    CURRENT.with(|c| c.set(to));
    // SAFETY: F1: `ctx` is the context saved by the last switch out of `to`
    // (or made for it by `Fiber::new`), taken so it is used once; `msg` stays
    // valid while we are suspended (F3).
    let t = unsafe { ctx.resume(&msg as *const Message as usize) };
    // SAFETY: `t` comes from the jump that resumed us, and its data is the
    // sender's `Message` (F3).
    unsafe { receive(t) }
}

/// Why a switch target holds no context (F1): it is current, or finished.
#[cold]
#[inline(never)]
fn switch_refused(to: &Slot) -> ! {
    if ptr::eq(to, current_ptr()) {
        panic!("a fiber cannot switch to itself");
    }
    match to.phase.get() {
        Phase::Finished => panic!("cannot switch to a finished fiber"),
        _ => unreachable!("F1/F2: only the current slot is started without a context"),
    }
}

/// Runs on the resumed side of every switch: stores the sender's context, then
/// returns the word or starts the requested unwind.
///
/// # Safety
/// * `t` is the `Transfer` returned by the jump that resumed this context.
/// * `t.data` is the address of a live `Message` (F3).
#[inline(always)]
unsafe fn receive(t: Transfer) -> usize {
    // SAFETY: per the caller, `t.data` points at the sender's message (F3).
    let msg = unsafe { &*(t.data as *const Message) };
    if !msg.extra.is_null() {
        // SAFETY: our caller's guarantees, forwarded: `msg` is live (F3).
        return unsafe { receive_extra(t.context, msg) };
    }
    let data = msg.data;
    // SAFETY: the sender is alive and suspended while its message is being
    // read (F3, F4); it is no longer current, so it has no context stored.
    unsafe { (*msg.from).ctx.set(Some(t.context)) };
    data
}

/// [`receive`] for a message with extras (the transfer passed as two
/// arguments, so the hot path keeps it in registers).
///
/// # Safety
/// As [`receive`]: `context` and `msg` are the parts of the `Transfer`.
#[cold]
#[inline(never)]
unsafe fn receive_extra(context: Context, msg: *const Message) -> usize {
    // SAFETY: forwarded from our caller: the message is live (F3).
    let (data, unwind) = unsafe { accept(Transfer::new(context, msg as usize)) };
    if let Some(payload) = unwind {
        panic::resume_unwind(payload);
    }
    data
}

/// Reads a message completely (F3) and stores the sender's context, or, if
/// the sender finished, releases it if its owner let go of it while it ran.
/// Returns the word and the unwind payload, if any.
///
/// # Safety
/// As [`receive`].
#[inline(always)]
unsafe fn accept(t: Transfer) -> (usize, Option<Payload>) {
    // SAFETY: per the caller, `t.data` points at the sender's message (F3).
    let msg = unsafe { &*(t.data as *const Message) };
    let (from, data) = (msg.from, msg.data);
    if msg.extra.is_null() {
        // SAFETY: the sender is alive and suspended (F3, F4).
        unsafe { (*from).ctx.set(Some(t.context)) };
        return (data, None);
    }
    // SAFETY: the extras live beside the message, on the sender's stack (F3).
    let extra = unsafe { &*msg.extra };
    let (finished, unwind) = (extra.finished, extra.unwind.take());
    if finished {
        // The message is read: from here on the sender's stack may go (F3).
        // SAFETY: the sender is alive until we release it just here (F4).
        unsafe { finished_sender(&*from) };
    } else {
        // SAFETY: the sender is alive and suspended (F3, F4).
        unsafe { (*from).ctx.set(Some(t.context)) };
    }
    (data, unwind)
}

/// The sender finished: its context is dead and is not stored (F1); if its
/// owner let go of it while it ran, release it now that we are off its stack.
///
/// # Safety
/// * `from` is a finished slot that switched to us for the last time.
unsafe fn finished_sender(from: &Slot) {
    if let Some(last_ref) = from.take_keep_alive() {
        drop(last_ref);
    }
}

/// Switches to `to` so that its pending switch unwinds with `payload`.
#[inline(never)]
fn switch_unwind_to(to: &Slot, payload: Payload) -> usize {
    let extra = Extra {
        finished: false,
        unwind: Cell::new(Some(payload)),
    };
    switch_raw(to, 0, &extra)
}

/// The entry point of every fiber whose entry closure has type `F`, on its
/// own stack.
extern "C" fn fiber_main<F: FnOnce(usize) -> usize>(t: Transfer) -> ! {
    // SAFETY: `t` is the first jump into this fiber, which passes a `Message`
    // like any other (F3).
    let (slot, data) = unsafe { fiber_start(t) };
    let ret = match slot.entry.take() {
        Some(entry) => {
            // SAFETY: F5: `Fiber::new` stored an `F` at `entry.at` (this
            // trampoline is instantiated for that type), and taking `entry`
            // from the slot makes this its only move out.
            let entry = unsafe { ptr::read(entry.at.as_ptr().cast::<F>()) };
            match panic::catch_unwind(AssertUnwindSafe(move || entry(data))) {
                Ok(ret) => ret,
                Err(payload) => {
                    slot.set_panic(payload);
                    0
                }
            }
        }
        // Killed before it ran: `fiber_start` dropped the entry.
        None => 0,
    };
    fiber_finish(slot, ret)
}

/// The part of the trampoline before the entry runs: reads the first message,
/// records the start and the default parent. If an unwind was requested
/// before start, drops the entry unrun and records the payload (F6).
///
/// # Safety
/// As [`receive`], for the first jump into the current fiber.
unsafe fn fiber_start(t: Transfer) -> (&'static Slot, usize) {
    // SAFETY: F2/F4: the current slot is this fiber's own, alive while its
    // code runs; the trampoline never returns, so no use outlives it.
    let slot: &'static Slot = unsafe { &*current_ptr() };
    // Default parent: the context that first switched into us, taken while
    // the message is unread and so its sender certainly alive (F3). A sender
    // that finished with this switch is no parent: `accept` may release it.
    if !slot.has_parent() {
        // SAFETY: F3: the message is live until `accept` below reads it.
        let msg = unsafe { &*(t.data as *const Message) };
        // SAFETY: the extras live beside the message, on the sender's stack (F3).
        let sender_finished = !msg.extra.is_null() && unsafe { (*msg.extra).finished };
        if !sender_finished {
            // SAFETY: `msg.from` sent the message, so it is alive (F3, F4).
            slot.parent.set(Some(unsafe { rc_from_ptr(msg.from) }));
        }
    }
    // SAFETY: forwarded from our caller: the message is live (F3).
    let (data, unwind) = unsafe { accept(t) };
    slot.phase.set(Phase::Started);
    if let Some(payload) = unwind {
        // Killed before it ran: the entry never runs.
        slot.drop_entry();
        slot.set_panic(payload);
    }
    (slot, data)
}

/// The final switch of a fiber, to its parent or the root.
fn fiber_finish(slot: &Slot, ret: usize) -> ! {
    let parent = pick_final_target(slot);
    // F5: nothing with a destructor is left on this stack but `parent`, which
    // we turn into a plain pointer: the slot's `parent` field keeps it alive.
    let parent_ptr: *const Slot = Rc::as_ptr(&parent);
    slot.parent.set(Some(parent));
    slot.phase.set(Phase::Finished);
    let extra = Extra {
        finished: true,
        unwind: Cell::new(None),
    };
    // SAFETY: `parent_ptr` is alive (held by our slot, which the receiver only
    // releases after the jump, F4) and suspended (checked by
    // `pick_final_target`).
    let target = unsafe { &*parent_ptr };
    switch_raw(target, ret, &extra);
    unreachable!("F5: a finished fiber is never resumed");
}

/// The slot a finishing fiber switches to: its parent if it can be switched
/// to (suspended, or never started: the final switch then starts it), else
/// the root.
fn pick_final_target(slot: &Slot) -> Rc<Slot> {
    match slot.parent.take() {
        Some(parent)
            if matches!(
                parent.state(),
                FiberState::Suspended | FiberState::NotStarted
            ) =>
        {
            parent
        }
        _ => root_rc(),
    }
}

/// Drops the `F` at `at` in place.
///
/// # Safety
/// * `at` holds a live `F`, which is not used afterwards.
unsafe fn drop_entry_in_place<F>(at: *mut u8) {
    // SAFETY: per the caller, `at` holds the live closure and this is its one
    // drop (F5).
    unsafe { ptr::drop_in_place(at.cast::<F>()) }
}

// ===== public handles =====

/// A fiber: a stack, a saved context and an entry closure. The owning handle.
///
/// Dropping a suspended fiber unwinds it (with [`ForcedUnwind`]) so that its
/// destructors run, then frees its stack; dropping a never-started one frees it
/// without running anything.
///
/// `Fiber` is `!Send`: its stack may hold `!Send` data.
///
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<green_ctx::Fiber>();
/// ```
pub struct Fiber {
    slot: Rc<Slot>,
}

/// A non-owning handle to a fiber or to the thread's root context, used to
/// switch to it. Cloning is cheap. It keeps the record alive, not the fiber
/// running: a `FiberRef` to a finished fiber just reports `Finished`.
///
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<green_ctx::FiberRef>();
/// ```
#[derive(Clone)]
pub struct FiberRef {
    slot: Rc<Slot>,
}

impl Fiber {
    /// Makes a fiber that will run `entry` on `stack` when first switched to.
    /// `entry` gets the word of that first switch; the word it returns is
    /// passed to the parent by the final switch.
    #[inline]
    pub fn new(stack: Stack, entry: impl FnOnce(usize) -> usize + 'static) -> Fiber {
        if mem::size_of_val(&entry) > MAX_INLINE_ENTRY || mem::align_of_val(&entry) > 64 {
            Fiber::with_entry(stack, Box::new(entry))
        } else {
            Fiber::with_entry(stack, entry)
        }
    }

    /// [`Fiber::new`] for an entry small enough to live on the stack (F5).
    fn with_entry<F: FnOnce(usize) -> usize + 'static>(stack: Stack, entry: F) -> Fiber {
        crate::overflow::ensure_installed();
        let top = stack.top();
        // The closure sits at the top of the stack; the first frame goes below.
        let at = (top - mem::size_of::<F>()) & !(mem::align_of::<F>() - 1);
        let ctx_top = at & !15;
        // Stacks have at least `MIN_STACK_SIZE` usable bytes; the closure at
        // most `MAX_INLINE_ENTRY` plus alignment.
        debug_assert!(ctx_top >= stack.bottom() + crate::MIN_STACK_SIZE / 2);
        // SAFETY: `at` is in the usable stack, aligned for `F`, unused until the
        // fiber starts, and `entry` records it for exactly one move or drop (F5).
        unsafe { ptr::write(at as *mut F, entry) };
        // SAFETY: `[bottom, ctx_top)` is usable stack below the closure, and
        // the stack is owned by the slot for as long as the context can run
        // (F4, F5); `fiber_main::<F>` is the trampoline for the closure's type.
        let ctx = unsafe {
            let raw = context::stack::Stack::new(
                ctx_top as *mut context::c_void,
                stack.bottom() as *mut context::c_void,
            );
            Context::new(&raw, fiber_main::<F>)
        };
        let guard_lo = stack.guard_range().map_or(0, |(lo, _)| lo);
        let entry = EntryRef {
            at: NonNull::new(at as *mut u8).expect("a stack address is not null"),
            drop: drop_entry_in_place::<F>,
        };
        let slot = match take_spare_slot() {
            Some(mut spare) => {
                // A spare slot was emptied by `recycle` and is held only by
                // the cache, which just gave it up.
                let slot = Rc::get_mut(&mut spare).expect("a spare slot is unshared");
                *slot.ctx.get_mut() = Some(ctx);
                *slot.phase.get_mut() = Phase::NotStarted;
                *slot.entry.get_mut() = Some(entry);
                *slot.guard_lo.get_mut() = guard_lo;
                *slot.stack_size.get_mut() = stack.size();
                *slot.stack.get_mut() = Some(stack);
                spare
            }
            None => Rc::new(Slot {
                ctx: Cell::new(Some(ctx)),
                entry: Cell::new(Some(entry)),
                guard_lo: Cell::new(guard_lo),
                stack_size: Cell::new(stack.size()),
                stack: Cell::new(Some(stack)),
                ..Slot::new(Phase::NotStarted)
            }),
        };
        Fiber { slot }
    }

    /// A switchable handle to this fiber.
    pub fn handle(&self) -> FiberRef {
        FiberRef {
            slot: Rc::clone(&self.slot),
        }
    }

    /// Where the fiber is in its life.
    #[inline]
    pub fn state(&self) -> FiberState {
        self.slot.state()
    }

    /// Switches to this fiber; see [`FiberRef::switch`].
    #[inline]
    pub fn switch(&self, data: usize) -> usize {
        switch_raw(&self.slot, data, ptr::null())
    }

    /// Unwinds this fiber; see [`FiberRef::switch_unwind`].
    pub fn switch_unwind(&self, payload: Payload) -> usize {
        switch_unwind_to(&self.slot, payload)
    }

    /// Names the fiber, for the stack-overflow report.
    pub fn set_name(&self, name: impl Into<Cow<'static, str>>) {
        *self.slot.name.borrow_mut() = Some(Box::new(name.into()));
    }

    /// Gives an unnamed fiber a number for the stack-overflow report, which
    /// then reads `fiber '<prefix>-<number>'` (setting it allocates nothing,
    /// unlike a name); the prefix is [`set_number_prefix`]'s, or `fiber`.
    pub fn set_number(&self, number: u32) {
        self.slot.number.set(number);
    }

    /// Records where the fiber was created (for example a greenlet's spawn
    /// site); the stack-overflow report prints it after the name.
    pub fn set_spawn_site(&self, site: &'static std::panic::Location<'static>) {
        self.slot.site.set(Some(site));
    }

    /// The name given by [`Fiber::set_name`] (empty by default).
    pub fn name(&self) -> String {
        self.slot
            .name
            .borrow()
            .as_deref()
            .map_or(String::new(), |n| n.to_string())
    }

    /// Chooses where control goes when the entry returns or unwinds. Without
    /// it, that is the context that first switched into the fiber. It may be
    /// called from inside the fiber itself, up to its last moment: a
    /// scheduler picks the next fiber to run as the current one finishes. A
    /// parent that is neither suspended nor unstarted by then is replaced by
    /// the root.
    pub fn set_parent(&self, parent: &FiberRef) {
        self.slot.parent.set(Some(Rc::clone(&parent.slot)));
    }

    /// The payload of the panic (or unwind) that finished the fiber, once.
    pub fn take_panic(&self) -> Option<Payload> {
        self.slot.take_panic()
    }

    /// The fiber's stack, once it is finished or if it never started (then it
    /// never will). `None` while it may still run.
    #[inline]
    pub fn take_stack(&self) -> Option<Stack> {
        match self.slot.phase.get() {
            Phase::Finished => self.slot.stack.take(),
            Phase::NotStarted => {
                let slot = &self.slot;
                // F1: finished slots hold no context. The entry goes before
                // the stack it lives on (F5).
                slot.ctx.set(None);
                slot.phase.set(Phase::Finished);
                slot.drop_entry();
                slot.stack.take()
            }
            Phase::Started => None,
        }
    }
}

impl Drop for Fiber {
    fn drop(&mut self) {
        let slot = &self.slot;
        match slot.state() {
            FiberState::NotStarted | FiberState::Finished => {
                // Drops the entry unrun, the stack, and any parent reference.
                drop(self.take_stack());
            }
            FiberState::Suspended => {
                // Unwind it and make it come back here when it ends.
                slot.parent.set(Some(current_rc()));
                switch_unwind_to(slot, Box::new(ForcedUnwind(())));
                if slot.phase.get() == Phase::Finished {
                    drop(slot.stack.take());
                    drop(slot.take_panic());
                } else {
                    leak_unfinished(slot);
                }
            }
            FiberState::Running => {
                // Dropped from inside itself: it lives on until its final
                // switch, after which the receiver releases it (F4).
                slot.set_keep_alive(Rc::clone(slot));
            }
        }
        recycle_if_last(slot);
    }
}

/// A fiber that swallowed its forced unwind and suspended again cannot be
/// freed safely: its stack is still in use. Keep it forever and say so.
#[cold]
fn leak_unfinished(slot: &Rc<Slot>) {
    let mut name = Vec::new();
    slot.write_display_name(&mut |bytes| name.extend_from_slice(bytes));
    eprintln!(
        "green-ctx: fiber '{}' caught its ForcedUnwind and suspended again; \
         its stack is leaked (let ForcedUnwind propagate with resume_unwind)",
        String::from_utf8_lossy(&name)
    );
    slot.set_keep_alive(Rc::clone(slot));
}

/// The current slot as a strong reference.
fn current_rc() -> Rc<Slot> {
    // SAFETY: the current slot is alive while it runs (F2, F4).
    unsafe { rc_from_ptr(current_ptr()) }
}

impl Drop for FiberRef {
    #[inline]
    fn drop(&mut self) {
        recycle_if_last(&self.slot);
    }
}

impl FiberRef {
    /// The thread's original context (the stack `main` or the thread closure
    /// started on).
    pub fn root() -> FiberRef {
        FiberRef { slot: root_rc() }
    }

    /// The context running now.
    pub fn current() -> FiberRef {
        FiberRef { slot: current_rc() }
    }

    /// Whether this is the context running now.
    pub fn is_current(&self) -> bool {
        ptr::eq(Rc::as_ptr(&self.slot), current_ptr())
    }

    /// Whether this is the thread's root context.
    pub fn is_root(&self) -> bool {
        ptr::eq(Rc::as_ptr(&self.slot), root_ptr())
    }

    /// Where the context is in its life.
    #[inline]
    pub fn state(&self) -> FiberState {
        self.slot.state()
    }

    /// Whether both handles name the same context.
    pub fn ptr_eq(&self, other: &FiberRef) -> bool {
        Rc::ptr_eq(&self.slot, &other.slot)
    }

    /// A number identifying this context while it exists.
    pub fn id(&self) -> usize {
        Rc::as_ptr(&self.slot) as usize
    }

    /// Starts loading this context's slot, the record a switch to it reads
    /// first (see [`prefetch`](crate::prefetch)). A hint only.
    #[inline(always)]
    pub fn prefetch_slot(&self) {
        crate::prefetch(Rc::as_ptr(&self.slot));
    }

    /// Starts loading the top of this context's saved stack, which a switch
    /// to it pops its registers from and returns into (its slot should be in
    /// cache by now: see [`FiberRef::prefetch_slot`]). Does nothing unless
    /// it is suspended or not started. A hint only.
    #[inline(always)]
    pub fn prefetch_context(&self) {
        if let Some(sp) = self.slot.saved_stack_pointer() {
            // The save area, then the frames it returns into.
            crate::prefetch::prefetch_lines(sp, CONTEXT_PREFETCH_LINES);
        }
    }

    /// Suspends the current context and resumes this one, passing `data`.
    /// Returns the word passed by whoever switches back to the caller.
    ///
    /// # Panics
    /// If this is the current context, or it is finished.
    #[inline]
    pub fn switch(&self, data: usize) -> usize {
        switch_raw(&self.slot, data, ptr::null())
    }

    /// [`FiberRef::switch`] to a handle borrowed from a `RefCell`, without
    /// cloning it: the guard is released just before the jump, so the code
    /// that runs meanwhile may replace or drop the handle (a scheduler moves
    /// the next greenlet into its "current" cell, then switches to it through
    /// that cell). Saves the reference count update a clone costs.
    ///
    /// # Panics
    /// As [`FiberRef::switch`].
    #[inline]
    pub fn switch_guarded(this: std::cell::Ref<'_, FiberRef>, data: usize) -> usize {
        // Taken while the guard is held: the first call on a thread makes the
        // root slot, which allocates.
        let from = current_ptr();
        let to: *const Slot = Rc::as_ptr(&this.slot);
        // Dropping a `Ref` only releases the borrow; it runs no other code.
        drop(this);
        // The guard kept the handle, and so the slot, alive up to here; from
        // its release to the jump only this module's switch code runs on this
        // thread (no user code, no destructor), so nothing can drop the slot.
        // SAFETY: F2: `from` is `current_ptr`'s answer; F4, F7: `to` lives up
        // to the jump, as just argued, and is not touched after it.
        unsafe { switch_raw_ptr(from, to, data, ptr::null()) }
    }

    /// Resumes this context so that its pending `switch` call unwinds with
    /// `payload` (a never-started fiber finishes without running its entry).
    /// Returns when something switches back to the caller.
    ///
    /// # Panics
    /// As [`FiberRef::switch`].
    pub fn switch_unwind(&self, payload: Payload) -> usize {
        switch_unwind_to(&self.slot, payload)
    }
}

impl fmt::Debug for Fiber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fiber")
            .field("name", &self.slot.name.borrow().as_deref())
            .field("state", &self.slot.state())
            .finish()
    }
}

impl fmt::Debug for FiberRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FiberRef")
            .field("id", &format_args!("{:#x}", self.id()))
            .field("root", &self.is_root())
            .field("state", &self.slot.state())
            .finish()
    }
}

// ===== overflow report labels =====

/// The label before an unnamed fiber's number in overflow reports.
pub(crate) static NUMBER_PREFIX: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// Sets, once per process, the label the overflow report puts before the
/// number of an unnamed fiber ([`Fiber::set_number`]): green-core says
/// `"Greenlet"`, so the report names `Greenlet-7` as the greenlet's own
/// default name does. Later calls are ignored.
pub fn set_number_prefix(prefix: &'static str) {
    let _ = NUMBER_PREFIX.set(prefix);
}

// ===== what the switch preserves =====

/// See [`crate::switch_saves_fp_control`].
#[cfg(target_arch = "x86_64")]
pub(crate) fn probe_fp_control() -> bool {
    fn get_mxcsr() -> u32 {
        let mut value = 0u32;
        // SAFETY: `stmxcsr` stores the 32-bit MXCSR into the local we point at.
        unsafe {
            core::arch::asm!("stmxcsr [{}]", in(reg) &mut value, options(nostack));
        }
        value
    }
    fn set_mxcsr(value: u32) {
        // SAFETY: `ldmxcsr` loads a valid MXCSR value (one we read earlier,
        // with only the rounding-control bits changed).
        unsafe {
            core::arch::asm!("ldmxcsr [{}]", in(reg) &value, options(nostack));
        }
    }
    let before = get_mxcsr();
    // Rounding control (bits 13-14) set to "toward zero" inside the fiber.
    let changed = before | (0b11 << 13);
    let stack =
        Stack::new(crate::MIN_STACK_SIZE).expect("a minimum-sized stack for the switch probe");
    let fiber = Fiber::new(stack, move |_| {
        set_mxcsr(changed);
        0
    });
    fiber.switch(0);
    let after = get_mxcsr();
    set_mxcsr(before);
    after == before
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn probe_fp_control() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    fn stack() -> Stack {
        Stack::new(crate::MIN_STACK_SIZE).expect("a test stack")
    }

    /// Counts its drops.
    struct Counted(Rc<Cell<usize>>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }

    #[test]
    fn a_large_entry_is_boxed_and_runs() {
        let big = [7u8; 4 * MAX_INLINE_ENTRY];
        let fiber = Fiber::new(stack(), move |w| {
            w + big.iter().map(|&b| b as usize).sum::<usize>()
        });
        assert_eq!(fiber.switch(1), 1 + 7 * 4 * MAX_INLINE_ENTRY);
        assert_eq!(fiber.state(), FiberState::Finished);
    }

    #[test]
    fn an_over_aligned_entry_gets_its_alignment() {
        #[repr(align(128))]
        struct Aligned(usize);
        let value = Aligned(5);
        let fiber = Fiber::new(stack(), move |w| {
            assert_eq!(&value as *const Aligned as usize % 128, 0);
            w + value.0
        });
        assert_eq!(fiber.switch(1), 6);
    }

    #[test]
    fn an_inline_entry_is_moved_out_and_dropped_once() {
        let drops = Rc::new(Cell::new(0));
        let counted = Counted(Rc::clone(&drops));
        let fiber = Fiber::new(stack(), move |w| {
            let _keep = &counted;
            w
        });
        assert_eq!(drops.get(), 0);
        fiber.switch(0);
        assert_eq!(drops.get(), 1);
        drop(fiber);
        assert_eq!(drops.get(), 1);
    }

    #[test]
    fn an_unstarted_entry_is_dropped_once_by_take_stack_or_unwind() {
        let drops = Rc::new(Cell::new(0));
        let counted = Counted(Rc::clone(&drops));
        let fiber = Fiber::new(stack(), move |w| {
            let _keep = &counted;
            w
        });
        assert!(fiber.take_stack().is_some());
        assert_eq!(drops.get(), 1);
        assert_eq!(fiber.state(), FiberState::Finished);
        drop(fiber);
        assert_eq!(drops.get(), 1);

        let counted = Counted(Rc::clone(&drops));
        let fiber = Fiber::new(stack(), move |w| {
            let _keep = &counted;
            w
        });
        fiber.switch_unwind(Box::new(7u32));
        assert_eq!(drops.get(), 2);
        assert_eq!(fiber.state(), FiberState::Finished);
        assert!(fiber.take_panic().is_some());
    }

    #[test]
    fn a_recycled_slot_lets_go_of_a_stack_it_still_held() {
        // A fiber whose `Fiber` is dropped while it runs keeps its stack in
        // the slot; when the last `FiberRef` goes, recycling frees it, so the
        // arena hands the same stack out again.
        std::thread::spawn(|| {
            let arena = crate::Arena::new(crate::MIN_STACK_SIZE).unwrap();
            let first = arena.stack().unwrap();
            let bottom = first.bottom();
            let own: Rc<RefCell<Option<Fiber>>> = Rc::new(RefCell::new(None));
            let inside = Rc::clone(&own);
            let fiber = Fiber::new(first, move |_| {
                drop(inside.borrow_mut().take());
                7
            });
            let handle = fiber.handle();
            *own.borrow_mut() = Some(fiber);
            assert_eq!(handle.switch(0), 7);
            assert_eq!(handle.state(), FiberState::Finished);
            drop(handle);
            assert_eq!(
                arena.stack().unwrap().bottom(),
                bottom,
                "the stack was freed"
            );
        })
        .join()
        .expect("the test thread");
    }

    #[test]
    fn a_finished_slot_is_reused_empty() {
        // A fresh thread: its cache of spare slots starts empty.
        std::thread::spawn(|| {
            let drops = Rc::new(Cell::new(0));
            let counted = Counted(Rc::clone(&drops));
            let fiber = Fiber::new(stack(), move |w| {
                let _keep = &counted;
                w + 1
            });
            fiber.set_name("old");
            fiber.set_number(7);
            let handle = fiber.handle();
            assert_eq!(fiber.switch(1), 2);
            let first = Rc::as_ptr(&fiber.slot);
            drop(fiber);
            // Still referenced: not reused.
            let other = Fiber::new(stack(), |w| w);
            assert_ne!(Rc::as_ptr(&other.slot), first);
            assert_eq!(handle.state(), FiberState::Finished);
            drop(handle);
            let fiber = Fiber::new(stack(), |w| w * 3);
            assert_eq!(Rc::as_ptr(&fiber.slot), first);
            assert_eq!(fiber.name(), "");
            assert_eq!(fiber.slot.number.get(), 0);
            assert_eq!(fiber.state(), FiberState::NotStarted);
            assert_eq!(drops.get(), 1);
            assert_eq!(fiber.switch(2), 6);
            assert_eq!(fiber.state(), FiberState::Finished);
            assert_eq!(other.switch(5), 5);
        })
        .join()
        .expect("the test thread");
    }

    #[test]
    fn states_follow_the_saved_context() {
        let fiber = Fiber::new(stack(), |w| {
            assert_eq!(FiberRef::current().state(), FiberState::Running);
            assert_eq!(FiberRef::root().state(), FiberState::Suspended);
            FiberRef::root().switch(w)
        });
        assert_eq!(fiber.state(), FiberState::NotStarted);
        assert_eq!(FiberRef::root().state(), FiberState::Running);
        fiber.switch(0);
        assert_eq!(fiber.state(), FiberState::Suspended);
        fiber.switch(0);
        assert_eq!(fiber.state(), FiberState::Finished);
    }
}
