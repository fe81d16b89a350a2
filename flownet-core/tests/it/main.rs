//! Integration tests of the rulebook, its invariants and the node worker.

mod invariants;
mod metered;
mod rules;
mod support;
mod worker;
