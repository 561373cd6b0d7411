//! The caller's thread: what runs inside `tracing` when a span opens or an event fires.
//!
//! The layer ([`layer`]) visits fields ([`visit`]) into a compact owned record
//! ([`record::Captured`]), keeps per-span state in the span's extensions ([`span`], and
//! [`agent`] for agent executions), and pushes onto the bounded queue ([`queue`]) under the
//! overflow policy of the event's class. No JSON, no sanitizing, no validation, no network:
//! those belong to the worker (`crate::pipeline`), which this side never imports.

use std::cell::Cell;

pub(crate) mod agent;
pub mod layer;
pub(crate) mod queue;
pub(crate) mod record;
pub(crate) mod span;
pub(crate) mod visit;

thread_local! {
    /// True on threads whose events the layer never captures (the worker): nothing the
    /// pipeline or librdkafka does there can feed back into the pipeline.
    static IGNORED: Cell<bool> = const { Cell::new(false) };
}

/// Marks the current thread as one whose events and spans the layer ignores.
pub(crate) fn ignore_current_thread() {
    IGNORED.with(|w| w.set(true));
}

/// Whether the current thread was marked by [`ignore_current_thread`].
pub(crate) fn is_ignored_thread() -> bool {
    IGNORED.with(|w| w.get())
}
