//! The caller's thread: what runs inside `tracing` when a span opens or an event fires.
//!
//! The layer records fields into a compact owned record ([`record::Captured`]) and pushes it
//! onto the bounded queue ([`queue`]) under the overflow policy of its class. No JSON, no
//! sanitizing, no validation, no network: those belong to the worker ([`crate::pipeline`]),
//! which this side never imports.

pub mod layer;
pub(crate) mod queue;
pub(crate) mod record;
