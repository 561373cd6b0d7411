#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
//! tracing-omninode (docs to come)

pub mod catalog;
pub mod envelope;
pub mod events;
pub mod partition;
pub mod taxonomy;
pub mod timestamp;
pub mod validate;
pub mod wire;
