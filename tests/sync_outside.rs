//! The sync seam from outside green-core, as a user or green-pool sees it:
//! a `Waitable` of one's own, a primitive built on `Waiter`, and a
//! greenlet's outcome linked into an `AsyncResult`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use green_core::sync::{AsyncResult, Event, Waiter};
use green_core::{iwait, spawn, wait, yield_now, GreenletError, LinkId, Waitable};

/// A countdown latch with its own link table: ready once `count` arrivals
/// were counted. It keeps its callbacks itself and numbers them with
/// `LinkId::from_raw`, as any type outside green-core must.
#[derive(Clone, Default)]
struct Latch {
    inner: Rc<RefCell<LatchState>>,
}

#[derive(Default)]
struct LatchState {
    left: usize,
    next_id: u64,
    callbacks: Vec<(u64, Box<dyn FnOnce()>)>,
}

impl Latch {
    fn new(count: usize) -> Latch {
        let latch = Latch::default();
        latch.inner.borrow_mut().left = count;
        latch
    }

    fn arrive(&self) {
        let fire = {
            let mut state = self.inner.borrow_mut();
            state.left = state.left.saturating_sub(1);
            if state.left == 0 {
                std::mem::take(&mut state.callbacks)
            } else {
                Vec::new()
            }
        };
        for (_, callback) in fire {
            callback();
        }
    }
}

impl Waitable for Latch {
    fn is_ready(&self) -> bool {
        self.inner.borrow().left == 0
    }

    fn link_ready(&self, callback: Box<dyn FnOnce()>) -> LinkId {
        let mut state = self.inner.borrow_mut();
        state.next_id += 1;
        let id = state.next_id;
        if state.left == 0 {
            drop(state);
            callback();
        } else {
            state.callbacks.push((id, callback));
        }
        LinkId::from_raw(id)
    }

    fn unlink_ready(&self, id: LinkId) {
        self.inner
            .borrow_mut()
            .callbacks
            .retain(|(raw, _)| *raw != id.as_raw());
    }
}

#[test]
fn a_user_waitable_works_with_wait_and_iwait_beside_the_primitives() {
    green_core::run(|| {
        let latch = Latch::new(2);
        let event = Event::new();
        for _ in 0..2 {
            let latch = latch.clone();
            spawn(move || {
                green_core::sleep(Duration::from_millis(1));
                latch.arrive();
            });
        }
        {
            let event = event.clone();
            spawn(move || event.set());
        }
        let objects: [&dyn Waitable; 2] = [&latch, &event];
        let order: Vec<usize> = iwait(&objects, Some(Duration::from_secs(10))).collect();
        assert_eq!(order, [1, 0], "the event is set first, the latch later");
        // Waiting again on ready objects returns at once.
        assert_eq!(wait(&objects, Some(Duration::ZERO), None), [0, 1]);
        assert!(latch.inner.borrow().callbacks.is_empty());
    });
}

#[test]
fn a_timed_out_iwait_unlinks_its_callback_from_a_user_waitable() {
    green_core::run(|| {
        let latch = Latch::new(1);
        let objects: [&dyn Waitable; 1] = [&latch];
        let got = wait(&objects, Some(Duration::from_millis(1)), None);
        assert!(got.is_empty());
        assert!(latch.inner.borrow().callbacks.is_empty());
    });
}

/// A one-shot "first result wins" built on `Waiter`, the way a user (or
/// green-pool) builds a primitive of its own.
#[test]
fn a_primitive_built_on_waiter_wakes_its_greenlet_once() {
    green_core::run(|| {
        let first: Waiter<u32, String> = Waiter::new();
        for (value, delay) in [(1_u32, 30_u64), (2, 1)] {
            let first = first.clone();
            spawn(move || {
                green_core::sleep(Duration::from_millis(delay));
                if !first.ready() {
                    first.switch(value);
                }
            });
        }
        assert_eq!(first.get(), Ok(2));
        // `get` took it: the waiter is empty until filled again.
        assert!(!first.ready());
        assert_eq!(first.get_timeout(Duration::from_millis(1)), None);
        first.throw("boom".to_string());
        assert_eq!(first.get(), Err("boom".to_string()));
    });
}

#[test]
fn a_greenlets_outcome_links_into_an_async_result() {
    green_core::run(|| {
        let result: AsyncResult<u32> = AsyncResult::new();
        let ok = spawn(|| {
            yield_now();
            40 + 2
        });
        result.link_greenlet(&ok);
        assert_eq!(result.get().unwrap(), 42);

        let failed_result: AsyncResult<u32> = AsyncResult::new();
        let failed = green_core::Builder::new()
            .name("failing")
            .spawn(|| -> u32 { panic!("no answer") })
            .unwrap();
        green_core::silence_failures();
        failed_result.link_greenlet(&failed);
        let err: GreenletError = failed_result.get().unwrap_err();
        assert!(err.to_string().contains("no answer"), "{err}");
        green_core::reset_failure_reporter();
    });
}
