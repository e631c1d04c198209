//! Switching between fibers: ping-pong, three-way symmetric switching, data
//! passing, parents, panics and the build of the switch in use.

use std::cell::RefCell;
use std::rc::Rc;

use green_ctx::{Fiber, FiberRef, FiberState, Stack};

fn stack() -> Stack {
    Stack::new(64 * 1024).expect("map a test stack")
}

#[test]
fn ping_pong_passes_words_both_ways() {
    let fiber = Fiber::new(stack(), |first| {
        let root = FiberRef::root();
        let mut sum = first;
        for _ in 0..1000 {
            sum += root.switch(sum);
        }
        sum
    });
    assert_eq!(fiber.state(), FiberState::NotStarted);
    let mut expected = 1;
    assert_eq!(fiber.switch(1), expected);
    for i in 0..999 {
        expected += i;
        assert_eq!(fiber.switch(i), expected);
        assert_eq!(fiber.state(), FiberState::Suspended);
    }
    // The last switch in lets the entry return; its value reaches the parent.
    assert_eq!(fiber.switch(5), expected + 5);
    assert_eq!(fiber.state(), FiberState::Finished);
}

#[test]
fn three_fibers_switch_symmetrically() {
    // a -> b -> c -> a -> root: no fiber returns to the one that resumed it.
    let log = Rc::new(RefCell::new(Vec::new()));
    let slots: Rc<RefCell<Vec<FiberRef>>> = Rc::new(RefCell::new(Vec::new()));
    let mut fibers = Vec::new();
    for name in ["a", "b", "c"] {
        let log = Rc::clone(&log);
        let slots = Rc::clone(&slots);
        fibers.push(Fiber::new(stack(), move |word| {
            log.borrow_mut().push(format!("{name} got {word}"));
            let next = match name {
                "a" => slots.borrow()[1].clone(),
                "b" => slots.borrow()[2].clone(),
                _ => slots.borrow()[0].clone(),
            };
            let back = next.switch(word + 1);
            log.borrow_mut().push(format!("{name} resumed with {back}"));
            if name == "a" {
                FiberRef::root().switch(back + 100);
            }
            0
        }));
    }
    for f in &fibers {
        slots.borrow_mut().push(f.handle());
    }
    let got = fibers[0].switch(1);
    assert_eq!(got, 104);
    assert_eq!(
        *log.borrow(),
        ["a got 1", "b got 2", "c got 3", "a resumed with 4"]
    );
    for f in &fibers {
        assert_eq!(f.state(), FiberState::Suspended);
    }
    assert!(FiberRef::root().is_current());
}

#[test]
fn fiber_can_start_another_fiber_and_finish_into_its_parent() {
    let inner_result = Rc::new(RefCell::new(None));
    let seen = Rc::clone(&inner_result);
    let outer = Fiber::new(stack(), move |_| {
        let inner = Fiber::new(stack(), |w| w * 3);
        // The inner fiber's parent is whoever first switched into it: us.
        let r = inner.switch(7);
        *seen.borrow_mut() = Some(r);
        assert_eq!(inner.state(), FiberState::Finished);
        assert!(inner.take_stack().is_some());
        99
    });
    assert_eq!(outer.switch(0), 99);
    assert_eq!(*inner_result.borrow(), Some(21));
}

#[test]
fn set_parent_chooses_where_a_finished_fiber_goes() {
    let order = Rc::new(RefCell::new(Vec::new()));
    let o1 = Rc::clone(&order);
    let waiter = Fiber::new(stack(), move |w| {
        o1.borrow_mut().push(format!("waiter started {w}"));
        let back = FiberRef::root().switch(0);
        o1.borrow_mut().push(format!("waiter got {back}"));
        FiberRef::root().switch(back);
        0
    });
    waiter.switch(1); // waiter suspended, waiting
    let worker = Fiber::new(stack(), |w| w + 40);
    worker.set_parent(&waiter.handle());
    // The worker finishes into the waiter, which then switches to root.
    assert_eq!(worker.switch(2), 42);
    assert_eq!(*order.borrow(), ["waiter started 1", "waiter got 42"]);
    assert_eq!(worker.state(), FiberState::Finished);
}

#[test]
fn panic_in_a_fiber_is_caught_at_its_root_and_handed_back() {
    let n = std::hint::black_box(7);
    let fiber = Fiber::new(stack(), move |_| -> usize { panic!("boom {n}") });
    assert_eq!(fiber.switch(0), 0);
    assert_eq!(fiber.state(), FiberState::Finished);
    let payload = fiber.take_panic().expect("the payload is kept");
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("boom 7")
    );
    assert!(fiber.take_panic().is_none(), "handed out once");
}

#[test]
#[should_panic(expected = "finished fiber")]
fn switching_to_a_finished_fiber_panics() {
    let fiber = Fiber::new(stack(), |w| w);
    fiber.switch(0);
    fiber.switch(0);
}

#[test]
#[should_panic(expected = "cannot switch to itself")]
fn switching_to_the_current_context_panics() {
    FiberRef::current().switch(0);
}

#[test]
fn names_are_kept_for_reports() {
    let fiber = Fiber::new(stack(), |w| w);
    fiber.set_name("worker-1");
    assert_eq!(fiber.name(), "worker-1");
    assert!(format!("{fiber:?}").contains("worker-1"));
}

#[test]
fn the_fast_switch_build_is_in_use() {
    // .cargo/config.toml defines BOOST_USE_TSX for the `context` crate's
    // assembly; if this fails, the build lost that flag and every switch pays
    // for saving MXCSR and the x87 control word.
    assert!(
        !green_ctx::switch_saves_fp_control(),
        "the context switch saves FP control words: BOOST_USE_TSX is not defined"
    );
}

#[test]
fn many_fibers_take_turns() {
    let fibers: Vec<Fiber> = (0..200)
        .map(|i| {
            Fiber::new(Stack::new(16 * 1024).unwrap(), move |mut w| {
                let root = FiberRef::root();
                loop {
                    w = root.switch(w + i);
                }
            })
        })
        .collect();
    for round in 0..5 {
        for (i, f) in fibers.iter().enumerate() {
            assert_eq!(f.switch(round), round + i);
        }
    }
}

#[test]
fn a_finishing_fiber_can_start_an_unstarted_parent() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = Rc::clone(&log);
    let second = Fiber::new(stack(), move |w| {
        l.borrow_mut().push(format!("second started with {w}"));
        w + 1
    });
    let l = Rc::clone(&log);
    let second_ref = second.handle();
    let first = Fiber::new(stack(), move |w| {
        l.borrow_mut().push("first ran".to_string());
        w * 10
    });
    // The first fiber's final switch starts the second, whose own final
    // switch goes to its default parent: the context that first switched
    // into it (the finished first fiber), so the root takes over.
    first.set_parent(&second_ref);
    assert_eq!(first.switch(4), 41);
    assert_eq!(*log.borrow(), ["first ran", "second started with 40"]);
    assert_eq!(first.state(), FiberState::Finished);
    assert_eq!(second.state(), FiberState::Finished);
}

#[test]
fn prefetch_hints_never_fault_in_any_state() {
    // Hints only (P1): any address will do, and a context in any state may
    // be asked for, without changing what the fiber does.
    green_ctx::prefetch(std::ptr::null::<u8>());
    green_ctx::prefetch(usize::MAX as *const u8);
    green_ctx::prefetch(std::ptr::dangling::<u64>());
    let fiber = Fiber::new(stack(), |word| {
        let root = FiberRef::root();
        root.switch(word + 1) + 1
    });
    let handle = fiber.handle();
    let hint = || {
        handle.prefetch_slot();
        handle.prefetch_context();
        FiberRef::root().prefetch_context();
        FiberRef::current().prefetch_context();
    };
    hint(); // not started
    assert_eq!(fiber.switch(1), 2);
    hint(); // suspended
    assert_eq!(handle.state(), FiberState::Suspended);
    assert_eq!(fiber.switch(10), 11);
    hint(); // finished
    assert_eq!(handle.state(), FiberState::Finished);
}
