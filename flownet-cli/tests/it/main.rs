//! End-to-end tests of the `flownet` binary: several processes on one ledger file,
//! real models, real HTTP.

mod chat;
mod embed;
mod ledger_verify;
mod ocr;
mod speech;
#[cfg(feature = "flow")]
mod sponsor_flow;
#[cfg(feature = "flow")]
mod sponsor_sign;
// The chain's harness helpers: collision-free ports, listeners on loopback only.
#[path = "../../../flownet-chain/tests/it/loopback.rs"]
mod loopback;
mod support;
mod two_processes;
mod verbs;
