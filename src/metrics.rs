//! Pipeline counters, readable at any time from the guard or a
//! [`MetricsHandle`](crate::guard::MetricsHandle); with the `metrics` feature also
//! published through the `metrics` facade (see `export`).

#[cfg(feature = "metrics")]
pub mod export;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering, Ordering::Relaxed};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crossbeam_utils::CachePadded;

use crate::diagnostics::Problem;

/// Cells of a [`Striped`] counter: more than the callers that usually log at once.
const STRIPES: usize = 16;

/// A counter that many caller threads add to at once without sharing a cache line: each
/// thread adds to its own cell (picked once per thread, round robin), a reader sums the
/// cells. A thread's additions and subtractions land in the same cell.
#[derive(Debug, Default)]
pub(crate) struct Striped {
    cells: [CachePadded<AtomicU64>; STRIPES],
}

impl Striped {
    fn cell(&self) -> &AtomicU64 {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            // Const-initialised and without a destructor: one thread-local load, no lazy
            // initialisation check; `usize::MAX` until the thread's first use.
            static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
        }
        let i = STRIPE.with(|s| {
            let mut i = s.get();
            if i == usize::MAX {
                i = NEXT.fetch_add(1, Relaxed) % STRIPES;
                s.set(i);
            }
            i
        });
        &self.cells[i]
    }

    /// Adds `n` to this thread's cell.
    pub fn add(&self, n: u64, order: Ordering) {
        self.cell().fetch_add(n, order);
    }

    /// Subtracts `n` from this thread's cell (after an [`Striped::add`] of it on this
    /// thread).
    pub fn sub(&self, n: u64, order: Ordering) {
        self.cell().fetch_sub(n, order);
    }

    /// The sum of every cell.
    pub fn sum(&self, order: Ordering) -> u64 {
        self.cells
            .iter()
            .fold(0u64, |total, c| total.wrapping_add(c.load(order)))
    }
}

/// Live counters shared by the layer, the worker and the guard.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Added to by every caller: striped, so callers on different cores do not contend on
    /// it, nor with the worker's counters below.
    pub enqueued: Striped,
    pub dropped: AtomicU64,
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub spooled: AtomicU64,
    pub replayed: AtomicU64,
    pub skipped: AtomicU64,
    pub spool_full: AtomicU64,
    pub spool_corrupt: AtomicU64,
    pub spool_rejected: AtomicU64,
    pub validation_failed: AtomicU64,
    pub pipeline_errors: AtomicU64,
    pub producer_rebuilds: AtomicU64,
    pub worker_panics: AtomicU64,
    // Gauges, written by the worker.
    pub in_flight: AtomicU64,
    pub spool_bytes: AtomicU64,
    pub spool_records: AtomicU64,
    /// Unix time (ms) since when events have waited without an acknowledgement; 0 when
    /// nothing waits.
    pub stalled_since_ms: AtomicU64,
}

/// Unix time in milliseconds of `at` (an instant of this process).
pub(crate) fn unix_ms_of(at: Instant) -> u64 {
    let ago = at.elapsed();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    now.saturating_sub(ago).as_millis() as u64
}

/// Milliseconds from the unix time `ms` until now (0 for 0).
fn ms_since_unix(ms: u64) -> u64 {
    if ms == 0 {
        return 0;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    now.saturating_sub(ms)
}

impl Counters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }

    pub fn snapshot(&self, redacted: BTreeMap<String, u64>) -> Metrics {
        let g = |c: &AtomicU64| c.load(Relaxed);
        Metrics {
            enqueued: self.enqueued.sum(Relaxed),
            dropped: g(&self.dropped),
            delivered: g(&self.delivered),
            retried: g(&self.retried),
            dead_lettered: g(&self.dead_lettered),
            spooled: g(&self.spooled),
            replayed: g(&self.replayed),
            skipped: g(&self.skipped),
            spool_full: g(&self.spool_full),
            spool_corrupt: g(&self.spool_corrupt),
            spool_rejected: g(&self.spool_rejected),
            validation_failed: g(&self.validation_failed),
            pipeline_errors: g(&self.pipeline_errors),
            producer_rebuilds: g(&self.producer_rebuilds),
            worker_panics: g(&self.worker_panics),
            worker_stopped: false,
            queue_depth: 0,
            in_flight: g(&self.in_flight),
            spool_bytes: g(&self.spool_bytes),
            spool_records: g(&self.spool_records),
            unacked_wait_ms: ms_since_unix(g(&self.stalled_since_ms)),
            redacted,
        }
    }
}

/// A snapshot of the pipeline counters (totals since the pipeline started). Serializes
/// as a flat JSON object of its fields (`redacted` as an object of kind to count).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Metrics {
    /// Events accepted into the queue.
    pub enqueued: u64,
    /// Events lost: application logs dropped on a full queue, and events refused by a full
    /// spool. Each drop of application logs is also reported in-stream.
    pub dropped: u64,
    /// Records acknowledged by the broker (including DLQ records and replays).
    pub delivered: u64,
    /// Application-level retries scheduled.
    pub retried: u64,
    /// Events written to a `.dlq` topic.
    pub dead_lettered: u64,
    /// Events written to the local spool.
    pub spooled: u64,
    /// Spooled events delivered after replay.
    pub replayed: u64,
    /// Events not re-sent because a retry could duplicate them (idempotency class).
    pub skipped: u64,
    /// Events the spool refused because it was full (also counted in `dropped`).
    pub spool_full: u64,
    /// Corrupt or torn spool records skipped on replay.
    pub spool_corrupt: u64,
    /// Spool records not replayed because their topic is not an OmniNode catalog topic (or
    /// its `.dlq`) under the configured prefix: planted, or from another configuration.
    pub spool_rejected: u64,
    /// Events that failed validation (they go to the DLQ).
    pub validation_failed: u64,
    /// Security-class failures and other errors of the pipeline itself.
    pub pipeline_errors: u64,
    /// Times the Kafka producer was rebuilt after a fatal error.
    pub producer_rebuilds: u64,
    /// Panics caught on the worker: a record whose processing panicked goes to the DLQ
    /// (code `WorkerPanic`) and the pipeline goes on.
    pub worker_panics: u64,
    /// The worker gave up after repeated panics: nothing is delivered any more; guaranteed
    /// events go to the spool (from the caller's thread), application logs are dropped.
    /// `flush` and `shutdown` then fail with [`crate::PipelineError::WorkerStopped`].
    pub worker_stopped: bool,
    /// Gauge: events in the queue between the callers and the worker.
    pub queue_depth: u64,
    /// Gauge: records handed to the Kafka client and not acknowledged yet.
    pub in_flight: u64,
    /// Gauge: bytes of the spool's segment files (write-ahead copies of guaranteed events
    /// in flight, and records waiting for replay).
    pub spool_bytes: u64,
    /// Gauge: spool records not acknowledged yet (segments left by an earlier process are
    /// counted once replay reads them).
    pub spool_records: u64,
    /// Gauge: how long events have waited without any acknowledgement from the broker, in
    /// milliseconds: 0 when nothing waits or acknowledgements keep coming; it grows while
    /// the broker takes nothing. (Not the age of the oldest event: under a steady flow of
    /// acknowledgements it stays near 0 even if one partition is stuck.)
    pub unacked_wait_ms: u64,
    /// Redactions by kind of secret.
    pub redacted: BTreeMap<String, u64>,
}

/// What a flush or shutdown achieved (SPEC §4): totals since the pipeline started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Records acknowledged by the broker.
    pub delivered: u64,
    /// Events written to a dead-letter topic.
    pub dead_lettered: u64,
    /// Events written to the local spool (to be replayed on the next start).
    pub spooled: u64,
    /// Events lost (full queue for application logs, full spool).
    pub dropped: u64,
    /// Events deliberately not re-sent (idempotency class).
    pub skipped: u64,
}

impl From<&Metrics> for Report {
    fn from(m: &Metrics) -> Self {
        Report {
            delivered: m.delivered,
            dead_lettered: m.dead_lettered,
            spooled: m.spooled,
            dropped: m.dropped,
            skipped: m.skipped,
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "delivered={} dead_lettered={} spooled={} dropped={} skipped={}",
            self.delivered, self.dead_lettered, self.spooled, self.dropped, self.skipped
        )
    }
}

/// Whether a pipeline delivers: what a health endpoint reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HealthStatus {
    /// The worker runs and delivers.
    Running,
    /// The worker runs, but events do not get through: nothing acknowledged for
    /// `degraded_after` while events wait, events waiting in the spool, the spool full, or
    /// TLS or authentication failing. [`Health::problems`] says which.
    Degraded,
    /// The worker gave up after repeated panics ([`Metrics::worker_stopped`]): nothing is
    /// delivered any more until the process restarts.
    WorkerStopped,
    /// The pipeline was shut down.
    ShutDown,
    /// Built disabled (`OMNINODE_DISABLED`): it does nothing, by choice. Healthy.
    Disabled,
}

impl HealthStatus {
    /// [`HealthStatus::Running`] and [`HealthStatus::Disabled`] are healthy.
    pub fn is_healthy(self) -> bool {
        matches!(self, HealthStatus::Running | HealthStatus::Disabled)
    }
}

/// A pipeline's health with its counters, from
/// [`MetricsHandle::health`](crate::guard::MetricsHandle::health); serializes as
/// `{"service": .., "status": "running", "healthy": true, "metrics": {..}}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Health {
    /// The configured service name.
    pub service: String,
    /// Running, degraded, worker stopped, or shut down.
    pub status: HealthStatus,
    /// `status.is_healthy()`, for readers of the JSON.
    pub healthy: bool,
    /// What is going wrong now, each with the message said when it started.
    pub problems: Vec<Problem>,
    /// The counters.
    pub metrics: Metrics,
}

impl Health {
    /// `status` is [`HealthStatus::Running`] unless the worker stopped, the pipeline was
    /// shut down, or a problem degrades it.
    pub(crate) fn new(
        service: String,
        status: HealthStatus,
        problems: Vec<Problem>,
        metrics: Metrics,
    ) -> Self {
        let status = match status {
            HealthStatus::Running if problems.iter().any(|p| p.condition.degrades()) => {
                HealthStatus::Degraded
            }
            other => other,
        };
        Health {
            service,
            status,
            healthy: status.is_healthy(),
            problems,
            metrics,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_serializes_for_an_endpoint() {
        let mut metrics = Metrics {
            delivered: 7,
            ..Metrics::default()
        };
        metrics.redacted.insert("password".into(), 2);
        let health = Health::new("api".into(), HealthStatus::Running, Vec::new(), metrics);
        let json = serde_json::to_value(&health).unwrap();
        assert_eq!(json["service"], "api");
        assert_eq!(json["status"], "running");
        assert_eq!(json["healthy"], true);
        assert_eq!(json["metrics"]["delivered"], 7);
        assert_eq!(json["metrics"]["worker_stopped"], false);
        assert_eq!(json["metrics"]["redacted"]["password"], 2);
        for (status, text, healthy) in [
            (HealthStatus::WorkerStopped, "worker_stopped", false),
            (HealthStatus::ShutDown, "shut_down", false),
        ] {
            assert_eq!(serde_json::to_value(status).unwrap(), text);
            assert_eq!(status.is_healthy(), healthy);
        }
    }
}
