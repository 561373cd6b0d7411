#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
//! # tracing-omninode
//!
//! A [`tracing_subscriber::Layer`] that turns a service's `tracing` spans and events into
//! OmniNode event envelopes on Kafka, with an error taxonomy, a dead-letter topic, a local
//! disk spool and a secret sanitizer, so that nothing is lost silently and nothing secret
//! leaves the process.
//!
//! ## Quick start
//!
//! ```no_run
//! use tracing_subscriber::prelude::*;
//!
//! let (layer, guard) = tracing_omninode::builder()
//!     .bootstrap_servers("localhost:9092")
//!     .service_name("billing")
//!     .build()
//!     .expect("valid configuration");
//! tracing_subscriber::registry().with(layer).init();
//!
//! tracing::info!(order_id = 42, "order accepted");
//! tracing_omninode::audit!(action = "order.refund", actor = "alice", resource = "order/42",
//!     outcome = "success");
//!
//! let report = guard.shutdown(std::time::Duration::from_secs(5));
//! println!("{report:?}");
//! ```
//!
//! Or, reading everything from `OMNINODE_*` environment variables and installing
//! `registry + EnvFilter + layer` globally: `let guard = tracing_omninode::try_init()?;`.
//!
//! ## How tracing maps to envelopes
//!
//! | tracing | envelope |
//! |---|---|
//! | any event at or above the layer's level (default `INFO`) | `omninode.logging.application.v1`: `message`, `level`, `logger` = target, `code` = a `code` field, `context` = event fields then span fields (inner wins) |
//! | [`audit!`] / [`security!`] | `omninode.logging.audit.v1` / `omninode.logging.security.v1` |
//! | a span with an `agent_name` field, or an OpenTelemetry GenAI `invoke_agent`/`create_agent` span | first enter: `agent.execution.started`; close: `completed`, or `failed` when it closes during a panic (`error_type: "panic"`), when `#[instrument(err)]` reported an error at any level, when an ERROR event with an `error` field or an `error` span field was recorded (the README's "Agent spans and GenAI conventions" has the whole mapping) |
//! | span fields `user_request`, `session_id`, `context.*` | `execution.started` payload |
//! | span fields `quality_score`, `output_summary`, `metrics.*`, `partial_results.*`, `error_type` | the end event's payload |
//! | span field `correlation_id` | `correlation_id` of everything inside (a non-UUID string maps to a stable UUIDv5) |
//! | span fields `tenant_id`, `namespace` | envelope `tenant_id`, `namespace` (else config) |
//! | [`emit`] of any [`events`] type | that catalog event, correlated with the current span |
//!
//! ## Delivery guarantees
//!
//! The calling thread only records fields and pushes onto a bounded queue; it never waits on
//! the network or the disk. Application logs are dropped (newest first) when the queue is
//! full, and the drop is reported in-stream (`code: OMNINODE_EVENTS_DROPPED`). Audit,
//! security, agent and typed events wait a bounded time (default 50 ms) for room, then are
//! handed to an overflow list the worker drains first. A background worker builds the
//! envelopes, sanitizes, validates, writes guaranteed events ahead to the local spool, and
//! produces them (idempotent, `acks=all`, zstd); a guaranteed event is marked done in the
//! spool once the broker acknowledged it, so a crashed process's successor replays exactly
//! what was not ([`config::FsyncPolicy`] says what a machine crash can lose). Failures are
//! classified ([`taxonomy::ErrorClass`]): retried with full-jitter backoff, dead-lettered to
//! `<topic>.dlq`, spooled, or counted as skipped. The spool is replayed oldest-first when the
//! broker is back, also after a restart. [`Guard::shutdown`] is bounded by its deadline and
//! returns a [`Report`]. The layout of the code is in `docs/architecture.md`.
//!
//! ## Features
//!
//! - `opentelemetry`: `x-traceparent` carries the OpenTelemetry trace of the current span
//!   (with `tracing-opentelemetry`); otherwise it is derived from the correlation id.
//! - `cli`: the `omninode-events` tool (tail, validate, DLQ stats/monitor/replay, topics,
//!   sanitize); the library never needs it.
//! - `failpoints`: fault-injection points for the crate's own tests; never in production.
//! - `tokio`: `Guard::flush_async` and `Guard::shutdown_async`, which wait without
//!   blocking a runtime thread (see [`guard`](guard#in-an-async-runtime)).
//! - `metrics`: every counter published through the `metrics` facade as
//!   `omninode_events_*` (see `metrics::export`); [`Guard::handle`] gives a cloneable
//!   [`MetricsHandle`] for a health endpoint in any case.
//!
//! ## Limits
//!
//! A spool directory has one owner at a time (a lock file): a second live pipeline
//! configured with the same directory uses `<dir>.1`, `<dir>.2`, ... (see
//! [`Guard::spool_dir`]); the next owner of `<dir>` adopts what the free siblings hold.
//! Delivery is at-least-once: a record that was in flight when the process stopped may be
//! replayed from the spool and delivered twice (the `event_id` identifies duplicates).

// The floor plan (docs/architecture.md): `contract` is pure data; `sanitize` and `spool` are
// leaves; `config` builds on them; `capture` runs on the caller's thread, `pipeline` on the
// worker's, `kafka` is the only place that names rdkafka. Lower folders never import higher
// ones and `capture` never imports `pipeline`; this file wires them together.
pub mod config;
pub mod consumer;
pub mod contract;
pub mod diagnostics;
pub mod guard;
mod macros;
pub mod metrics;
pub mod ops;
pub mod sanitize;
pub mod spool;

mod capture;
mod kafka;
mod pipeline;

pub use capture::layer;
pub use contract::{
    catalog, dlq, envelope, events, partition, schema, taxonomy, timestamp, validate, wire,
};
pub use kafka::topics;

use std::sync::Arc;

pub use crate::metrics::{Health, HealthStatus, Metrics, Report};
pub use config::{BuildError, Builder, Config};
pub use envelope::Envelope;
pub use events::Event;
pub use guard::{Guard, MetricsHandle, PipelineError};
pub use layer::OmniNodeLayer;
pub use sanitize::{Sanitizer, Secret};
pub use timestamp::Timestamp;

/// Starts a configuration. Setters override the `OMNINODE_*` environment.
pub fn builder() -> Builder {
    Builder::default()
}

impl Builder {
    /// Validates the configuration, opens the spool and starts the delivery worker.
    /// Returns the layer to install and the guard that keeps the worker alive.
    ///
    /// It never sleeps: when another live pipeline holds the spool directory's lock, it
    /// takes the first free sibling slot (`<dir>.1`, ...) at once rather than waiting for
    /// the owner to let go, so it is safe to call on an async runtime's thread. What the
    /// pipeline spools there is adopted by the next owner of `<dir>`. It fails with
    /// [`BuildError::Spool`] only when every slot is held (or the directory is unusable).
    /// A pipeline that [`Guard::shutdown`] stopped (and whose layer is gone) no longer holds
    /// its directory.
    ///
    /// With [`Builder::disabled`] (`OMNINODE_DISABLED=true`) it starts nothing: the layer
    /// captures nothing and the guard's flush and shutdown return at once.
    pub fn build(self) -> Result<(OmniNodeLayer, Guard), BuildError> {
        let mut config = self.resolve()?;
        if config.disabled {
            return Ok(disabled(config));
        }
        let limits = spool::SpoolLimits {
            max_bytes: config.spool_max_bytes,
            // A segment always holds the largest record the producer accepts.
            segment_bytes: spool::DEFAULT_SPOOL_SEGMENT_BYTES
                .max(2 * config.message_max_bytes as u64 + 4096)
                .min(config.spool_max_bytes),
        };
        let spool = match config.spool_mode {
            config::SpoolMode::Memory => spool::Store::Memory(spool::MemorySpool::new(limits)),
            config::SpoolMode::Disk => {
                let spool = spool::Spool::open_slot(
                    &config.spool_dir,
                    limits,
                    spool::SPOOL_SLOTS,
                    // Never wait for the lock on the caller's thread (it may be an async
                    // runtime's): a directory held by another live pipeline means the next
                    // free slot, at once.
                    std::time::Duration::ZERO,
                )
                .map_err(|source| BuildError::Spool {
                    dir: config.spool_dir.clone(),
                    source,
                })?;
                // Another instance may hold the configured directory: this one got
                // `<dir>.<n>`.
                config.spool_dir = spool.dir().to_owned();
                spool::Store::Disk(spool)
            }
        };
        let diag = Arc::new(diagnostics::Diagnostics::of(&config));
        let producer =
            kafka::producer::Producer::new(&config, diag.clone()).map_err(BuildError::Kafka)?;
        let config = Arc::new(config);
        let counters = Arc::new(metrics::Counters::default());
        let spooler = Arc::new(pipeline::spooler::Spooler::new(
            config.clone(),
            counters.clone(),
            diag.clone(),
            spool,
        ));
        let (tx, rx) = crossbeam_channel::bounded(config.queue_capacity);
        let (ctrl_tx, ctrl_rx) = crossbeam_channel::unbounded();
        let (overflow, overflow_rx) = pipeline::spooler::OverflowSink::new(
            spooler.clone(),
            config.queue_capacity.max(config::MIN_OVERFLOW_CAPACITY),
        );
        let queue = Arc::new(capture::queue::Queue::new(
            tx,
            config.guaranteed_wait,
            counters.clone(),
            Arc::new(overflow),
        ));
        let agents = Arc::new(capture::agent::OpenAgents::default());
        let handle = pipeline::worker::spawn(pipeline::worker::Parts {
            config: config.clone(),
            counters: counters.clone(),
            queue: queue.clone(),
            spooler,
            rx,
            overflow: overflow_rx,
            ctrl: ctrl_rx,
            producer,
            diag: diag.clone(),
        })
        .map_err(BuildError::Thread)?;
        let layer = OmniNodeLayer::new(queue.clone(), agents.clone(), config.max_level);
        let guard = Guard::new(guard::GuardParts {
            config,
            counters,
            queue,
            agents,
            diag,
            ctrl: ctrl_tx,
            handle: Some(handle),
        });
        Ok((layer, guard))
    }
}

/// The layer and guard of a disabled pipeline: no Kafka client, spool or worker.
fn disabled(config: Config) -> (OmniNodeLayer, Guard) {
    let config = Arc::new(config);
    let counters = Arc::new(metrics::Counters::default());
    let (tx, _) = crossbeam_channel::bounded(1);
    // Nothing reaches the queue of a disabled layer; nothing is kept either.
    let queue = Arc::new(capture::queue::Queue::new(
        tx,
        config.guaranteed_wait,
        counters.clone(),
        Arc::new(capture::queue::NoOverflow),
    ));
    let agents = Arc::new(capture::agent::OpenAgents::default());
    let layer = OmniNodeLayer::new(queue.clone(), agents.clone(), config.max_level).disabled();
    let diag = Arc::new(diagnostics::Diagnostics::of(&config));
    let (ctrl, _) = crossbeam_channel::unbounded();
    let guard = Guard::new(guard::GuardParts {
        config,
        counters,
        queue,
        agents,
        diag,
        ctrl,
        handle: None,
    });
    (layer, guard)
}

/// Errors of [`try_init`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// The configuration is invalid.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A global subscriber was already installed.
    #[error("a global tracing subscriber is already installed: {0}")]
    AlreadyInstalled(String),
}

/// Env: `false` keeps [`try_init`] from installing its console layer.
pub const CONSOLE_ENV: &str = "OMNINODE_CONSOLE";

/// Reads the environment and installs, as the global default subscriber, a registry with:
///
/// - this crate's layer, filtered by `RUST_LOG` (default `info`) **except** for what must
///   never be filtered away: audit, security and typed events, agent and tool spans (their
///   `execution.*` events), spans that carry context, and `#[instrument(err)]` events;
/// - a console layer (`tracing_subscriber::fmt`, to stdout) filtered by `RUST_LOG`, so the
///   application's own logs and the pipeline's [diagnostics] still
///   show; `OMNINODE_CONSOLE=false` leaves it out.
///
/// Keep the guard for the life of the program; dropping it flushes and shuts down:
///
/// ```no_run
/// fn main() -> Result<(), tracing_omninode::InitError> {
///     let _guard = tracing_omninode::try_init()?;
///     tracing::info!("started");
///     Ok(())
/// }
/// ```
pub fn try_init() -> Result<Guard, InitError> {
    use tracing_subscriber::filter::{filter_fn, FilterExt};
    use tracing_subscriber::prelude::*;
    let env_filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    let console = match std::env::var(CONSOLE_ENV) {
        Ok(v)
            if matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "false" | "0" | "off"
            ) =>
        {
            None
        }
        _ => Some(tracing_subscriber::fmt::layer().with_filter(env_filter())),
    };
    let (layer, guard) = builder().build()?;
    let capture = layer.capture_filter();
    let filter = capture.and(env_filter().or(filter_fn(layer::protected)));
    tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .with(console)
        .try_init()
        // The guard built above is dropped here, which stops its idle worker at once.
        .map_err(|e| InitError::AlreadyInstalled(e.to_string()))?;
    Ok(guard)
}

/// Publishes a typed catalog event, correlated with the current span. It travels as an
/// ordinary tracing event (target `omninode::typed`), so it is cheap when no OmniNode layer
/// is installed and it picks up the span's correlation and causation when one is.
pub fn emit<E: Event + std::fmt::Debug>(event: E) {
    layer::PENDING.with(|p| *p.borrow_mut() = Some(Box::new(event)));
    tracing::event!(target: "omninode::typed", tracing::Level::INFO, event_type = E::EVENT_TYPE);
    // Not taken when no layer saw the event: do not leak it into the next call.
    layer::PENDING.with(|p| p.borrow_mut().take());
}
