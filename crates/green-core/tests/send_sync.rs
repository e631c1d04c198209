//! The intended auto traits (`Send`, `Sync`, `Unpin`) of every public type of
//! green-core, checked by the compiler (STYLE rule 14; tokio's
//! `async_send_sync.rs`). This file has no runtime tests: if it compiles, the
//! promises hold.
//!
//! * Positive checks call `is_send::<T>()` and friends: they compile only if
//!   `T` has the trait.
//! * Negative checks (`!Send`, `!Sync`) use the "ambiguous impl" trick:
//!   `<T as AmbiguousIfSend<_>>::some_item` names one item of a trait with
//!   two blanket impls, one for every type and one for `Send` types only. If
//!   `T` is `!Send`, only the first impl applies and `_` is inferred; if `T`
//!   is `Send`, both apply and the inference is ambiguous, which is a compile
//!   error. (Integration tests cannot hold `compile_fail` doctests; the
//!   handles' doc comments carry those as well.)
//!
//! Why: greenlets never leave their thread (DESIGN.md §2), so every handle to
//! a greenlet or to the hub is `!Send` and `!Sync`. The small error and
//! payload types are `Send`: they travel as panic payloads
//! (`resume_unwind` requires `Send`) and across threads in results.

#![allow(dead_code)] // The checks are compiled, never run.

use green_core::{
    Builder, ErrorKind, Greenlet, GreenletError, GreenletExit, GreenletRef, Iwait, KillPayload,
    LinkId, LoopExit, Timeout, Waitable,
};

fn is_send<T: ?Sized + Send>() {}
fn is_sync<T: ?Sized + Sync>() {}
fn is_unpin<T: ?Sized + Unpin>() {}

/// `<T as AmbiguousIfSend<_>>::some_item` compiles only if `T` is `!Send`.
trait AmbiguousIfSend<A> {
    fn some_item() {}
}
impl<T: ?Sized> AmbiguousIfSend<()> for T {}
impl<T: ?Sized + Send> AmbiguousIfSend<u8> for T {}

/// `<T as AmbiguousIfSync<_>>::some_item` compiles only if `T` is `!Sync`.
trait AmbiguousIfSync<A> {
    fn some_item() {}
}
impl<T: ?Sized> AmbiguousIfSync<()> for T {}
impl<T: ?Sized + Sync> AmbiguousIfSync<u8> for T {}

/// Asserts `$t: !Send`.
macro_rules! not_send {
    ($t:ty) => {
        let _ = <$t as AmbiguousIfSend<_>>::some_item;
    };
}

/// Asserts `$t: !Sync`.
macro_rules! not_sync {
    ($t:ty) => {
        let _ = <$t as AmbiguousIfSync<_>>::some_item;
    };
}

// ----- Handles: !Send, !Sync (a greenlet never leaves its thread) -----

/// `Greenlet<T>`: !Send and !Sync whatever `T` is, even a `Send + Sync` `T`.
const _: fn() = || {
    not_send!(Greenlet<()>);
    not_sync!(Greenlet<()>);
    not_send!(Greenlet<u64>);
    not_sync!(Greenlet<u64>);
    not_send!(Greenlet<String>);
    not_sync!(Greenlet<String>);
    is_unpin::<Greenlet<()>>();
};

/// Handles are `UnwindSafe` and `RefUnwindSafe`: usable inside
/// `std::panic::catch_unwind` (the hub keeps a record consistent across
/// unwinds).
const _: fn() = || {
    fn is_unwind_safe<T: std::panic::UnwindSafe + std::panic::RefUnwindSafe>() {}
    is_unwind_safe::<Greenlet<std::cell::Cell<u8>>>();
    is_unwind_safe::<GreenletRef>();
};

/// `GreenletRef` (what `current()` returns): !Send, !Sync.
const _: fn() = || {
    not_send!(GreenletRef);
    not_sync!(GreenletRef);
    is_unpin::<GreenletRef>();
};

/// `Iwait`: !Send, !Sync (it waits in the current greenlet).
const _: fn() = || {
    not_send!(Iwait<'static>);
    not_sync!(Iwait<'static>);
    is_unpin::<Iwait<'static>>();
};

/// `dyn Waitable`: !Send, !Sync (the trait does not require them; a greenlet
/// implements it).
const _: fn() = || {
    not_send!(dyn Waitable);
    not_sync!(dyn Waitable);
};

// ----- Payloads and plain values: Send -----

/// `GreenletExit`: Send + Sync (a panic payload; a unit struct).
const _: fn() = || {
    is_send::<GreenletExit>();
    is_sync::<GreenletExit>();
    is_unpin::<GreenletExit>();
};

/// `LoopExit`: Send + Sync (a panic payload; a unit struct).
const _: fn() = || {
    is_send::<LoopExit>();
    is_sync::<LoopExit>();
    is_unpin::<LoopExit>();
};

/// `Timeout`: Send + Sync (a panic payload, and the error of
/// `Timeout::run`: it must go into `Box<dyn Error + Send + Sync>`).
const _: fn() = || {
    is_send::<Timeout>();
    is_sync::<Timeout>();
    is_unpin::<Timeout>();
};

/// `GreenletError`: Send + Sync (an error that composes with `?`).
const _: fn() = || {
    is_send::<GreenletError>();
    is_sync::<GreenletError>();
    is_unpin::<GreenletError>();
};

/// `SpawnTreeLocals`: !Send, !Sync (shared by greenlets of one thread).
const _: fn() = || {
    not_send!(green_core::SpawnTreeLocals);
    not_sync!(green_core::SpawnTreeLocals);
};

/// `LinkedExited`: Send + Sync (a payload raised into the receiver, and an
/// error that composes with `?`).
const _: fn() = || {
    is_send::<green_core::LinkedExited>();
    is_sync::<green_core::LinkedExited>();
};

/// `Failure`: Send + Sync (what the process-wide failure reporter gets).
const _: fn() = || {
    is_send::<green_core::Failure>();
    is_sync::<green_core::Failure>();
};

/// `KillPayload`: Send (a panic payload), !Sync (it holds a
/// `Box<dyn Any + Send>`).
const _: fn() = || {
    is_send::<KillPayload>();
    not_sync!(KillPayload);
    is_unpin::<KillPayload>();
};

/// `ErrorKind`: Send + Sync (a plain enum).
const _: fn() = || {
    is_send::<ErrorKind>();
    is_sync::<ErrorKind>();
    is_unpin::<ErrorKind>();
};

/// `LinkId`: Send + Sync (a plain number).
const _: fn() = || {
    is_send::<LinkId>();
    is_sync::<LinkId>();
    is_unpin::<LinkId>();
};

/// `Builder`: Send + Sync (a name, a size and a flag; it builds on the thread
/// that calls `build`/`spawn`, so it can be prepared elsewhere).
const _: fn() = || {
    is_send::<Builder>();
    is_sync::<Builder>();
    is_unpin::<Builder>();
};
