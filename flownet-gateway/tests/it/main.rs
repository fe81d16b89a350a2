//! The gateway over real HTTP, in process: a real ledger file, envelopes signed as the
//! browser signs them, a node worker beside it.

mod chat;
mod hostile;
mod web;
