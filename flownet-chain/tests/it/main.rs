//! Integration tests of the chain adapters: the embedded ledger, and with the
//! `flow` feature the Flow client's conformance with independent SDKs.

mod embedded;
#[cfg(feature = "flow")]
mod flow_attacks;
#[cfg(feature = "flow")]
mod flow_client;
#[cfg(feature = "flow")]
mod flow_conformance;
#[cfg(feature = "flow")]
mod flow_sponsor;
mod integrity;
mod loopback;
mod scenarios;
