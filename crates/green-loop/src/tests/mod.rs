//! Unit tests of private invariants (slab, wheel, diagnostics).

mod lifecycle;
