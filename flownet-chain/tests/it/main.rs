//! Integration tests of the embedded ledger.

mod embedded;
