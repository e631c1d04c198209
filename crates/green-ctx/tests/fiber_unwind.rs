//! Forced unwinding: destructors of a suspended fiber run exactly once, and a
//! never-started fiber is freed without running.

use std::any::Any;
use std::cell::Cell;
use std::rc::Rc;

use green_ctx::{Fiber, FiberRef, FiberState, ForcedUnwind, Stack};

/// Counts its drops.
struct DropCounter(Rc<Cell<usize>>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

fn stack() -> Stack {
    Stack::new(64 * 1024).expect("map a test stack")
}

#[test]
fn dropping_a_suspended_fiber_runs_its_destructors_once() {
    let drops = Rc::new(Cell::new(0));
    let counter_outer = DropCounter(Rc::clone(&drops));
    let d = Rc::clone(&drops);
    let fiber = Fiber::new(stack(), move |_| {
        let _captured = counter_outer;
        let _local = DropCounter(d);
        let root = FiberRef::root();
        loop {
            root.switch(0);
        }
    });
    fiber.switch(0);
    assert_eq!(drops.get(), 0);
    drop(fiber);
    assert_eq!(
        drops.get(),
        2,
        "both the captured and the local value dropped, once"
    );
}

#[test]
fn dropping_a_never_started_fiber_frees_it_without_running() {
    let drops = Rc::new(Cell::new(0));
    let ran = Rc::new(Cell::new(false));
    let counter = DropCounter(Rc::clone(&drops));
    let r = Rc::clone(&ran);
    let fiber = Fiber::new(stack(), move |_| {
        let _c = &counter;
        r.set(true);
        0
    });
    drop(fiber);
    assert!(!ran.get());
    assert_eq!(
        drops.get(),
        1,
        "the closure and what it captured are dropped"
    );
}

#[test]
fn switch_unwind_delivers_a_payload_that_the_fiber_can_catch() {
    let caught = Rc::new(Cell::new(0u32));
    let c = Rc::clone(&caught);
    let fiber = Fiber::new(stack(), move |_| {
        let root = FiberRef::root();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            root.switch(1);
        }));
        let payload: Box<dyn Any + Send> = result.expect_err("the switch unwinds");
        c.set(*payload.downcast::<u32>().expect("our payload"));
        root.switch(2);
        3
    });
    assert_eq!(fiber.switch(0), 1);
    assert_eq!(fiber.switch_unwind(Box::new(77u32)), 2);
    assert_eq!(caught.get(), 77);
    assert_eq!(fiber.switch(0), 3);
    assert_eq!(fiber.state(), FiberState::Finished);
}

#[test]
fn uncaught_unwind_payload_is_handed_back() {
    let drops = Rc::new(Cell::new(0));
    let d = Rc::clone(&drops);
    let fiber = Fiber::new(stack(), move |_| {
        let _guard = DropCounter(d);
        FiberRef::root().switch(0);
        unreachable!("unwound at the switch");
    });
    fiber.switch(0);
    fiber.switch_unwind(Box::new("stop"));
    assert_eq!(fiber.state(), FiberState::Finished);
    assert_eq!(drops.get(), 1);
    let payload = fiber.take_panic().unwrap();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"stop"));
}

#[test]
fn unwinding_a_never_started_fiber_never_runs_it() {
    let ran = Rc::new(Cell::new(false));
    let r = Rc::clone(&ran);
    let fiber = Fiber::new(stack(), move |_| {
        r.set(true);
        0
    });
    fiber.switch_unwind(Box::new(5u8));
    assert!(!ran.get());
    assert_eq!(fiber.state(), FiberState::Finished);
    assert_eq!(*fiber.take_panic().unwrap().downcast::<u8>().unwrap(), 5);
}

#[test]
fn forced_unwind_passes_through_user_catch_unwind_that_rethrows() {
    let drops = Rc::new(Cell::new(0));
    let d = Rc::clone(&drops);
    let fiber = Fiber::new(stack(), move |_| {
        let _outer = DropCounter(Rc::clone(&d));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _inner = DropCounter(Rc::clone(&d));
            FiberRef::root().switch(0);
        }));
        if let Err(payload) = r {
            assert!(payload.is::<ForcedUnwind>());
            std::panic::resume_unwind(payload);
        }
        0
    });
    fiber.switch(0);
    drop(fiber);
    assert_eq!(drops.get(), 2);
}

#[test]
fn a_fiber_dropping_its_own_handle_is_freed_after_it_finishes() {
    let drops = Rc::new(Cell::new(0));
    let d = Rc::clone(&drops);
    let holder: Rc<Cell<Option<Fiber>>> = Rc::new(Cell::new(None));
    let h = Rc::clone(&holder);
    let fiber = Fiber::new(stack(), move |_| {
        let _guard = DropCounter(d);
        // Drop our own owning handle while running on our stack.
        drop(h.take());
        11
    });
    let handle = fiber.handle();
    holder.set(Some(fiber));
    assert_eq!(handle.switch(0), 11);
    assert_eq!(handle.state(), FiberState::Finished);
    assert_eq!(drops.get(), 1);
}

thread_local! {
    static X_CELL: Cell<Option<Fiber>> = const { Cell::new(None) };
    static Z_CELL: Cell<Option<Fiber>> = const { Cell::new(None) };
}

/// A fiber whose only owner is itself (it dropped its handle) finishes into
/// a never-started fiber: the starting fiber must not adopt the finished one
/// as its parent, since the finished one is released by that very switch.
/// (Found by review; the old code read the freed record, which valgrind shows
/// when `cargo xtask test --valgrind` runs this.)
#[test]
fn a_fiber_started_by_a_finishing_self_owned_fiber_does_not_adopt_it() {
    let b_ran = Rc::new(Cell::new(false));
    let ran = Rc::clone(&b_ran);
    // B: never started, no parent set.
    let b = Fiber::new(stack(), move |_| {
        ran.set(true);
        7
    });
    let x = Fiber::new(stack(), |_| {
        // Drop our own owning handle while running.
        drop(X_CELL.with(|c| c.take()));
        FiberRef::root().switch(0);
        // Resumed by Z's final switch; Z stops referring to us.
        let z = Z_CELL.with(|c| c.take()).unwrap();
        z.set_parent(&FiberRef::root());
        Z_CELL.with(|c| c.set(Some(z)));
        0 // final switch to our parent B, which starts it
    });
    x.set_parent(&b.handle());
    let xr = x.handle();
    X_CELL.with(|c| c.set(Some(x)));
    xr.switch(0);
    let z = Fiber::new(stack(), |_| 0);
    z.set_parent(&xr);
    drop(xr);
    let zr = z.handle();
    Z_CELL.with(|c| c.set(Some(z)));
    // Z finishes into X, X finishes into B, B finishes into the root.
    assert_eq!(zr.switch(0), 7);
    assert!(b_ran.get());
    assert_eq!(b.state(), FiberState::Finished);
    drop(Z_CELL.with(|c| c.take()));
}
