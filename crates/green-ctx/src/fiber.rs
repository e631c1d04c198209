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
//! context there), the user's word, and an optional unwind payload.
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
//! # Invariants
//!
//! * **F1.** `slot.ctx` is `Some` exactly when the slot is `NotStarted` or
//!   `Suspended`; it is the context to jump to, and it is taken (consumed) by
//!   the jump. The current slot never has a context stored.
//! * **F2.** `CURRENT` points to the running slot (null = the root slot, before
//!   it is first needed). It is updated before every jump, by the switching
//!   side, so that code resumed on the other side already sees itself current.
//! * **F3.** A `Message` lives on the stack of the slot that sent it, and that
//!   slot stays suspended until the receiver has read the message: the receiver
//!   runs first, and reads the message before doing anything that could switch.
//! * **F4.** A slot's memory (and so its stack) outlives every switch that
//!   involves it: slots are `Rc`-allocated; a suspended fiber is only released
//!   through [`Fiber`]'s `Drop`, which first unwinds it to the end; a running
//!   fiber whose owner drops its handle keeps itself alive (`keep_alive`) until
//!   its final switch, after which the receiving side releases it.
//! * **F5.** Code on a fiber's stack never outlives the fiber: the entry
//!   trampoline drops everything it owns before the final switch, which never
//!   returns, and a finished fiber's stack is only reused after that switch.
//! * **F6.** No unwind crosses the `extern "C"` entry: the trampoline catches
//!   every panic (and forced unwind) and stores its payload in the slot.
//! * **F7.** Fibers never leave their thread: [`Fiber`] and [`FiberRef`] are
//!   `!Send` (they hold `Rc`), and `CURRENT` is thread-local.

use std::any::Any;
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::rc::Rc;

use context::{Context, Transfer};

use crate::stack::Stack;

/// A panic payload, as `std::panic::catch_unwind` returns it.
pub type Payload = Box<dyn Any + Send>;

type Entry = Box<dyn FnOnce(usize) -> usize>;

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

/// One execution context: the root or a fiber. See the module invariants.
pub(crate) struct Slot {
    /// F1: the saved context while `NotStarted`/`Suspended`.
    ctx: Cell<Option<Context>>,
    state: Cell<FiberState>,
    /// The fiber's stack; `None` for the root or once taken back.
    stack: Cell<Option<Stack>>,
    /// Cached stack facts for the overflow handler, which must not touch the
    /// `Cell<Option<Stack>>` (it may be mid-update when a fault lands).
    pub(crate) guard_lo: Cell<usize>,
    pub(crate) guard_hi: Cell<usize>,
    pub(crate) stack_size: Cell<usize>,
    entry: Cell<Option<Entry>>,
    panic: Cell<Option<Payload>>,
    parent: Cell<Option<Rc<Slot>>>,
    pub(crate) name: RefCell<Cow<'static, str>>,
    /// F4: set when the owner drops the handle of a running fiber.
    keep_alive: Cell<Option<Rc<Slot>>>,
}

impl Slot {
    fn new(state: FiberState) -> Slot {
        Slot {
            ctx: Cell::new(None),
            state: Cell::new(state),
            stack: Cell::new(None),
            guard_lo: Cell::new(0),
            guard_hi: Cell::new(0),
            stack_size: Cell::new(0),
            entry: Cell::new(None),
            panic: Cell::new(None),
            parent: Cell::new(None),
            name: RefCell::new(Cow::Borrowed("")),
            keep_alive: Cell::new(None),
        }
    }
}

thread_local! {
    /// F2: the running slot; null means the root slot.
    static CURRENT: Cell<*const Slot> = const { Cell::new(ptr::null()) };
    /// The thread's original context.
    static ROOT: Rc<Slot> = Rc::new(Slot::new(FiberState::Running));
}

/// The running slot. Also read by the overflow handler.
#[inline]
pub(crate) fn current_ptr() -> *const Slot {
    let cur = CURRENT.with(Cell::get);
    if cur.is_null() {
        ROOT.with(Rc::as_ptr)
    } else {
        cur
    }
}

/// The running slot as seen from a signal handler: null while the root runs or
/// during thread teardown. Never initialises anything.
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
    /// If set, the receiver unwinds with this payload instead of returning.
    unwind: Cell<Option<Payload>>,
}

/// Suspends the current slot and resumes `to`. Returns the word passed by
/// whoever switches back.
#[inline]
fn switch_to(to: &Slot, data: usize, unwind: Option<Payload>) -> usize {
    switch_from(FiberState::Suspended, to, data, unwind)
}

/// [`switch_to`] that leaves the current slot in `from_state`: `Suspended`,
/// or `Finished` for a fiber's final switch.
#[inline(always)]
fn switch_from(from_state: FiberState, to: &Slot, data: usize, unwind: Option<Payload>) -> usize {
    let from_ptr = current_ptr();
    // SAFETY: F2: `from_ptr` is the running slot, alive for as long as it runs (F4).
    let from = unsafe { &*from_ptr };
    if ptr::eq(from_ptr, to) {
        panic!("a fiber cannot switch to itself");
    }
    let ctx = match to.state.get() {
        FiberState::Suspended | FiberState::NotStarted => to.ctx.take(),
        FiberState::Running => unreachable!("F2: only the current slot is Running"),
        FiberState::Finished => panic!("cannot switch to a finished fiber"),
    };
    let ctx = ctx.expect("F1: a suspended fiber has a saved context");
    let msg = Message {
        from: from_ptr,
        data,
        unwind: Cell::new(unwind),
    };
    from.state.set(from_state);
    to.state.set(FiberState::Running);
    CURRENT.with(|c| c.set(to));
    // SAFETY: F1: `ctx` is the context saved by the last switch out of `to`
    // (or made for it by `Fiber::new`), taken so it is used once; `msg` stays
    // valid while we are suspended (F3).
    let t = unsafe { ctx.resume(&msg as *const Message as usize) };
    // SAFETY: `t` comes from the jump that resumed us, and its data is the
    // sender's `Message` (F3).
    unsafe { receive(t) }
}

/// Runs on the resumed side of every switch: stores the sender's context, then
/// returns the word or starts the requested unwind.
///
/// # Safety
/// * `t` is the `Transfer` returned by the jump that resumed this context.
/// * `t.data` is the address of a live `Message` (F3).
#[inline]
unsafe fn receive(t: Transfer) -> usize {
    // SAFETY: per the caller, `t.data` points at the sender's message (F3).
    let msg = unsafe { &*(t.data as *const Message) };
    // SAFETY: the sender is alive while its message is being read (F3, F4).
    let from = unsafe { &*msg.from };
    if from.state.get() == FiberState::Finished {
        // SAFETY: as above: `msg.from` is alive until we release it just here.
        unsafe { finished_sender(from) };
    } else {
        from.ctx.set(Some(t.context));
    }
    let data = msg.data;
    if let Some(payload) = msg.unwind.take() {
        panic::resume_unwind(payload);
    }
    data
}

/// The sender finished: its context is dead and must not be stored (F1); if its
/// owner let go of it while it ran, release it now that we are off its stack.
///
/// # Safety
/// * `from` is a finished slot that switched to us for the last time.
#[cold]
unsafe fn finished_sender(from: &Slot) {
    if let Some(last_ref) = from.keep_alive.take() {
        drop(last_ref);
    }
}

/// The entry point of every fiber, on its own stack.
extern "C" fn fiber_main(t: Transfer) -> ! {
    // SAFETY: F3: the first switch into a fiber passes a `Message` like any
    // other; read everything before anything can switch.
    let (first_switcher, data, unwind) = unsafe {
        let msg = &*(t.data as *const Message);
        let from = &*msg.from;
        if from.state.get() == FiberState::Finished {
            finished_sender(from);
        } else {
            from.ctx.set(Some(t.context));
        }
        (msg.from, msg.data, msg.unwind.take())
    };
    // SAFETY: F2/F4: the current slot is this fiber's own, alive while it runs.
    let slot = unsafe { &*current_ptr() };
    if slot
        .parent
        .take()
        .map(|p| slot.parent.set(Some(p)))
        .is_none()
    {
        // Default parent: the context that first switched into us. It is
        // suspended now and alive (F4).
        // SAFETY: `first_switcher` sent the message we just read (F3, F4).
        slot.parent
            .set(Some(unsafe { rc_from_ptr(first_switcher) }));
    }
    let ret = run_entry(slot, data, unwind);
    let parent = pick_final_target(slot);
    // F5: nothing with a destructor is left on this stack but `parent`, which
    // we turn into a plain pointer: the slot's `parent` field keeps it alive.
    let parent_ptr: *const Slot = Rc::as_ptr(&parent);
    slot.parent.set(Some(parent));
    // SAFETY: `parent_ptr` is alive (held by our slot, which the receiver only
    // releases after the jump, F4) and suspended (checked by
    // `pick_final_target`).
    let target = unsafe { &*parent_ptr };
    switch_from(FiberState::Finished, target, ret, None);
    unreachable!("F5: a finished fiber is never resumed");
}

/// Runs the entry (or not, if an unwind was requested before start) and
/// catches everything (F6).
fn run_entry(slot: &Slot, data: usize, unwind: Option<Payload>) -> usize {
    let entry = slot.entry.take().expect("a fresh fiber has its entry");
    match unwind {
        Some(payload) => {
            // Killed before it ran: the entry never runs.
            drop(entry);
            slot.panic.set(Some(payload));
            0
        }
        None => match panic::catch_unwind(AssertUnwindSafe(move || entry(data))) {
            Ok(ret) => ret,
            Err(payload) => {
                slot.panic.set(Some(payload));
                0
            }
        },
    }
}

/// The slot a finishing fiber switches to: its parent if suspended, else root.
fn pick_final_target(slot: &Slot) -> Rc<Slot> {
    match slot.parent.take() {
        Some(parent) if parent.state.get() == FiberState::Suspended => parent,
        _ => ROOT.with(Rc::clone),
    }
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
    pub fn new(stack: Stack, entry: impl FnOnce(usize) -> usize + 'static) -> Fiber {
        crate::overflow::ensure_installed();
        let slot = Slot::new(FiberState::NotStarted);
        if let Some((lo, hi)) = stack.guard_range() {
            slot.guard_lo.set(lo);
            slot.guard_hi.set(hi);
        }
        slot.stack_size.set(stack.size());
        // SAFETY: `[bottom, top)` is the stack's usable region, and the stack
        // is owned by the slot for as long as the context can run (F4, F5).
        let ctx = unsafe {
            let raw = context::stack::Stack::new(
                stack.top() as *mut context::c_void,
                stack.bottom() as *mut context::c_void,
            );
            Context::new(&raw, fiber_main)
        };
        slot.ctx.set(Some(ctx));
        slot.stack.set(Some(stack));
        slot.entry.set(Some(Box::new(entry)));
        Fiber {
            slot: Rc::new(slot),
        }
    }

    /// A switchable handle to this fiber.
    pub fn handle(&self) -> FiberRef {
        FiberRef {
            slot: Rc::clone(&self.slot),
        }
    }

    /// Where the fiber is in its life.
    pub fn state(&self) -> FiberState {
        self.slot.state.get()
    }

    /// Switches to this fiber; see [`FiberRef::switch`].
    pub fn switch(&self, data: usize) -> usize {
        switch_to(&self.slot, data, None)
    }

    /// Unwinds this fiber; see [`FiberRef::switch_unwind`].
    pub fn switch_unwind(&self, payload: Payload) -> usize {
        switch_to(&self.slot, 0, Some(payload))
    }

    /// Names the fiber, for the stack-overflow report.
    pub fn set_name(&self, name: impl Into<Cow<'static, str>>) {
        *self.slot.name.borrow_mut() = name.into();
    }

    /// The name given by [`Fiber::set_name`] (empty by default).
    pub fn name(&self) -> String {
        self.slot.name.borrow().to_string()
    }

    /// Chooses where control goes when the entry returns or unwinds. Without
    /// it, that is the context that first switched into the fiber.
    pub fn set_parent(&self, parent: &FiberRef) {
        self.slot.parent.set(Some(Rc::clone(&parent.slot)));
    }

    /// The payload of the panic (or unwind) that finished the fiber, once.
    pub fn take_panic(&self) -> Option<Payload> {
        self.slot.panic.take()
    }

    /// The fiber's stack, once it is finished or if it never started (then it
    /// never will). `None` while it may still run.
    pub fn take_stack(&self) -> Option<Stack> {
        match self.slot.state.get() {
            FiberState::Finished => self.slot.stack.take(),
            FiberState::NotStarted => {
                self.slot.ctx.take();
                self.slot.entry.take();
                self.slot.state.set(FiberState::Finished);
                self.slot.stack.take()
            }
            FiberState::Running | FiberState::Suspended => None,
        }
    }
}

impl Drop for Fiber {
    fn drop(&mut self) {
        let slot = &self.slot;
        match slot.state.get() {
            FiberState::NotStarted | FiberState::Finished => {
                // Drops the entry unrun, the stack, and any parent reference.
                drop(self.take_stack());
            }
            FiberState::Suspended => {
                // Unwind it and make it come back here when it ends.
                slot.parent.set(Some(current_rc()));
                switch_to(slot, 0, Some(Box::new(ForcedUnwind(()))));
                if slot.state.get() == FiberState::Finished {
                    drop(slot.stack.take());
                    drop(slot.panic.take());
                } else {
                    leak_unfinished(slot);
                }
            }
            FiberState::Running => {
                // Dropped from inside itself: it lives on until its final
                // switch, after which the receiver releases it (F4).
                slot.keep_alive.set(Some(Rc::clone(slot)));
            }
        }
    }
}

/// A fiber that swallowed its forced unwind and suspended again cannot be
/// freed safely: its stack is still in use. Keep it forever and say so.
#[cold]
fn leak_unfinished(slot: &Rc<Slot>) {
    let name = slot.name.borrow().to_string();
    tracing_free_warning(&name);
    slot.keep_alive.set(Some(Rc::clone(slot)));
}

fn tracing_free_warning(name: &str) {
    eprintln!(
        "green-ctx: fiber '{name}' caught its ForcedUnwind and suspended again; \
         its stack is leaked (let ForcedUnwind propagate with resume_unwind)"
    );
}

/// The current slot as a strong reference.
fn current_rc() -> Rc<Slot> {
    // SAFETY: the current slot is alive while it runs (F2, F4).
    unsafe { rc_from_ptr(current_ptr()) }
}

impl FiberRef {
    /// The thread's original context (the stack `main` or the thread closure
    /// started on).
    pub fn root() -> FiberRef {
        FiberRef {
            slot: ROOT.with(Rc::clone),
        }
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
        ROOT.with(|root| Rc::ptr_eq(root, &self.slot))
    }

    /// Where the context is in its life.
    pub fn state(&self) -> FiberState {
        self.slot.state.get()
    }

    /// Whether both handles name the same context.
    pub fn ptr_eq(&self, other: &FiberRef) -> bool {
        Rc::ptr_eq(&self.slot, &other.slot)
    }

    /// A number identifying this context while it exists.
    pub fn id(&self) -> usize {
        Rc::as_ptr(&self.slot) as usize
    }

    /// Suspends the current context and resumes this one, passing `data`.
    /// Returns the word passed by whoever switches back to the caller.
    ///
    /// # Panics
    /// If this is the current context, or it is finished.
    #[inline]
    pub fn switch(&self, data: usize) -> usize {
        switch_to(&self.slot, data, None)
    }

    /// Resumes this context so that its pending `switch` call unwinds with
    /// `payload` (a never-started fiber finishes without running its entry).
    /// Returns when something switches back to the caller.
    ///
    /// # Panics
    /// As [`FiberRef::switch`].
    pub fn switch_unwind(&self, payload: Payload) -> usize {
        switch_to(&self.slot, 0, Some(payload))
    }
}

impl fmt::Debug for Fiber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fiber")
            .field("name", &*self.slot.name.borrow())
            .field("state", &self.slot.state.get())
            .finish()
    }
}

impl fmt::Debug for FiberRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FiberRef")
            .field("id", &format_args!("{:#x}", self.id()))
            .field("root", &self.is_root())
            .field("state", &self.slot.state.get())
            .finish()
    }
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
    let stack = Stack::new(crate::MIN_STACK_SIZE).expect("a 16 KiB stack for the switch probe");
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
