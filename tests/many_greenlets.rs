//! Cross-crate behaviour at scale: ten thousand greenlets on one thread
//! taking turns, sleeping, and being torn down, with their destructors run.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use green_core::{sleep, spawn, yield_now};

struct CountDrop(Rc<Cell<usize>>);

impl Drop for CountDrop {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn ten_thousand_greenlets_take_turns_in_order() {
    green_core::run(|| {
        let order = Rc::new(std::cell::RefCell::new(Vec::new()));
        let gs: Vec<_> = (0..10_000usize)
            .map(|i| {
                let order = Rc::clone(&order);
                spawn(move || {
                    for round in 0..3 {
                        order.borrow_mut().push((round, i));
                        yield_now();
                    }
                    i
                })
            })
            .collect();
        for (i, g) in gs.iter().enumerate() {
            assert_eq!(g.get().unwrap(), i);
        }
        let order = order.borrow();
        assert_eq!(order.len(), 30_000);
        // Round-robin: every greenlet does round r before any does round r + 1.
        for (k, &(round, i)) in order.iter().enumerate() {
            assert_eq!((round, i), (k / 10_000, k % 10_000));
        }
    });
}

#[test]
fn teardown_unwinds_ten_thousand_sleepers() {
    let drops = Rc::new(Cell::new(0));
    green_core::run(|| {
        for _ in 0..10_000 {
            let token = CountDrop(Rc::clone(&drops));
            green_core::Builder::new()
                .unguarded(true)
                .stack_size(32 * 1024)
                .spawn(move || {
                    let _token = token;
                    sleep(Duration::from_secs(3600));
                })
                .unwrap();
        }
        yield_now();
        assert_eq!(drops.get(), 0);
    });
    assert_eq!(
        drops.get(),
        10_000,
        "every sleeper's destructor ran at teardown"
    );
}
