//! End-to-end tests of the `flownet` binary: several processes on one ledger file,
//! real models, real HTTP.

#[cfg(feature = "flow")]
mod sponsor_flow;
#[cfg(feature = "flow")]
mod sponsor_sign;
mod support;
mod two_processes;
mod verbs;
