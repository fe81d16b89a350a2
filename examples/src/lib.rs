//! Examples of FlowNet's libraries; see `embedded_market.rs`
//! (`cargo run -p flownet-examples --example embedded_market`).
//!
//! ## Feature Flags
//! None.
