//! Fixtures shared by green-core's integration tests (`mod support;`).
#![allow(dead_code)] // Each test binary uses a different subset.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// Counts how many times its values were dropped: kill and unwind tests
/// check that captured values and locals are dropped exactly once.
#[derive(Clone, Default)]
pub struct DropCounter {
    drops: Rc<Cell<usize>>,
}

impl DropCounter {
    pub fn new() -> DropCounter {
        DropCounter::default()
    }

    /// A value whose drop is counted.
    pub fn token(&self) -> DropToken {
        DropToken {
            drops: Rc::clone(&self.drops),
        }
    }

    pub fn drops(&self) -> usize {
        self.drops.get()
    }
}

/// Bumps its counter when dropped.
pub struct DropToken {
    drops: Rc<Cell<usize>>,
}

impl Drop for DropToken {
    fn drop(&mut self) {
        self.drops.set(self.drops.get() + 1);
    }
}

/// A shared, ordered log of events, for ordering tests.
#[derive(Clone, Default)]
pub struct Log {
    entries: Rc<RefCell<Vec<String>>>,
}

impl Log {
    pub fn new() -> Log {
        Log::default()
    }

    pub fn push(&self, entry: impl Into<String>) {
        self.entries.borrow_mut().push(entry.into());
    }

    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.entries.borrow_mut())
    }

    pub fn snapshot(&self) -> Vec<String> {
        self.entries.borrow().clone()
    }
}

/// The message of a panic payload, for assertions on caught panics.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string payload>".to_string()
    }
}
