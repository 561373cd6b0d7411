//! The `metrics` feature: every counter published through the [`metrics`] facade, so that
//! whichever recorder the application installed (`metrics-exporter-prometheus`, StatsD,
//! ...) exports them.
//!
//! [`metrics`]: https://docs.rs/metrics
//!
//! A background thread (`omninode-metrics`, one per pipeline) reads the counters every
//! [`PUBLISH_EVERY`] and adds what each grew since its last reading; it publishes once more
//! when the guard shuts down, so the final totals reach the recorder. The caller's thread
//! and the delivery worker never touch the recorder. Every series carries a `service` label
//! (the configured service name), so several pipelines in one process add up by service.
//! Every series is published from the start (at 0).
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `omninode_events_enqueued_total` | counter | `service` | events accepted into the queue |
//! | `omninode_events_delivered_total` | counter | `service` | records acknowledged by the broker (DLQ records and replays included) |
//! | `omninode_events_retried_total` | counter | `service` | retries scheduled |
//! | `omninode_events_dead_lettered_total` | counter | `service` | events written to a `.dlq` topic |
//! | `omninode_events_spooled_total` | counter | `service` | events written to the local spool |
//! | `omninode_events_replayed_total` | counter | `service` | spooled events delivered after replay |
//! | `omninode_events_skipped_total` | counter | `service` | events not re-sent (idempotency class) |
//! | `omninode_events_dropped_total` | counter | `service`, `reason` | events lost; `reason="spool_full"`: refused by a full (or failing) spool; `reason="queue_full"`: every other loss (application logs on a full queue, a full overflow list, nowhere to keep them after the worker stopped) |
//! | `omninode_events_validation_failed_total` | counter | `service` | events that failed validation (they go to the DLQ) |
//! | `omninode_events_spool_corrupt_total` | counter | `service` | corrupt or torn spool records skipped on replay |
//! | `omninode_events_spool_rejected_total` | counter | `service` | spool records not replayed (topic outside the configured catalog) |
//! | `omninode_events_pipeline_errors_total` | counter | `service` | security-class failures and other errors of the pipeline |
//! | `omninode_events_producer_rebuilds_total` | counter | `service` | Kafka producer rebuilt after a fatal error |
//! | `omninode_events_worker_panics_total` | counter | `service` | panics caught on the worker |
//! | `omninode_events_redacted_total` | counter | `service`, `kind` | secrets redacted, by kind of secret |
//! | `omninode_events_worker_stopped` | gauge | `service` | 1 once the worker gave up after repeated panics |
//!
//! The counters are totals over all classes of events; they do not tell application logs
//! from audit, security, agent or typed events, nor one topic family from another, so the
//! series carry no such labels.

use std::collections::HashMap;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, Sender};
use metrics_facade::{counter, describe_counter, describe_gauge, gauge, Label, Unit};

use super::Metrics;

/// How often the counters are published.
pub const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// The name, help text and value of each counter series, in the order of the table above.
fn series(m: &Metrics) -> Vec<(&'static str, Option<Label>, &'static str, u64)> {
    let mut out = vec![
        (
            "omninode_events_enqueued_total",
            None,
            "Events accepted into the queue.",
            m.enqueued,
        ),
        (
            "omninode_events_delivered_total",
            None,
            "Records acknowledged by the broker, DLQ records and replays included.",
            m.delivered,
        ),
        (
            "omninode_events_retried_total",
            None,
            "Retries scheduled.",
            m.retried,
        ),
        (
            "omninode_events_dead_lettered_total",
            None,
            "Events written to a dead-letter topic.",
            m.dead_lettered,
        ),
        (
            "omninode_events_spooled_total",
            None,
            "Events written to the local spool.",
            m.spooled,
        ),
        (
            "omninode_events_replayed_total",
            None,
            "Spooled events delivered after replay.",
            m.replayed,
        ),
        (
            "omninode_events_skipped_total",
            None,
            "Events not re-sent because a retry could duplicate them.",
            m.skipped,
        ),
        (
            "omninode_events_dropped_total",
            Some(Label::new("reason", "spool_full")),
            DROPPED,
            m.spool_full,
        ),
        (
            "omninode_events_dropped_total",
            Some(Label::new("reason", "queue_full")),
            DROPPED,
            m.dropped.saturating_sub(m.spool_full),
        ),
        (
            "omninode_events_validation_failed_total",
            None,
            "Events that failed validation (sent to the DLQ).",
            m.validation_failed,
        ),
        (
            "omninode_events_spool_corrupt_total",
            None,
            "Corrupt or torn spool records skipped on replay.",
            m.spool_corrupt,
        ),
        (
            "omninode_events_spool_rejected_total",
            None,
            "Spool records not replayed: topic outside the configured catalog.",
            m.spool_rejected,
        ),
        (
            "omninode_events_pipeline_errors_total",
            None,
            "Security-class failures and other errors of the pipeline.",
            m.pipeline_errors,
        ),
        (
            "omninode_events_producer_rebuilds_total",
            None,
            "Kafka producer rebuilt after a fatal error.",
            m.producer_rebuilds,
        ),
        (
            "omninode_events_worker_panics_total",
            None,
            "Panics caught on the delivery worker.",
            m.worker_panics,
        ),
    ];
    out.extend(m.redacted.iter().map(|(kind, n)| {
        (
            "omninode_events_redacted_total",
            Some(Label::new("kind", kind.clone())),
            "Secrets redacted, by kind of secret.",
            *n,
        )
    }));
    out
}

const DROPPED: &str =
    "Events lost, by reason: spool_full (refused by the spool), queue_full (every other loss).";

/// The publishing thread; dropping it publishes a last time and stops it.
#[derive(Debug)]
pub(crate) struct Publisher {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Publisher {
    /// Starts publishing what `snapshot` reads. `None` when the thread cannot be started
    /// (the pipeline works without it).
    pub fn spawn(
        service: String,
        snapshot: impl Fn() -> Metrics + Send + 'static,
    ) -> Option<Publisher> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(1);
        let thread = std::thread::Builder::new()
            .name("omninode-metrics".into())
            .spawn(move || {
                let mut state = State::new(service);
                loop {
                    state.publish(&snapshot());
                    match stopped.recv_timeout(PUBLISH_EVERY) {
                        Err(RecvTimeoutError::Timeout) => continue,
                        _ => break,
                    }
                }
                state.publish(&snapshot());
            })
            .ok()?;
        Some(Publisher {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What was published so far, to publish only what each series grew since.
struct State {
    service: String,
    last: HashMap<(&'static str, Option<Label>), u64>,
}

impl State {
    fn new(service: String) -> Self {
        describe_gauge!(
            "omninode_events_worker_stopped",
            Unit::Count,
            "1 once the delivery worker gave up after repeated panics."
        );
        State {
            service,
            last: HashMap::new(),
        }
    }

    fn publish(&mut self, m: &Metrics) {
        for (name, label, help, value) in series(m) {
            let mut labels = vec![Label::new("service", self.service.clone())];
            labels.extend(label.clone());
            match self.last.get_mut(&(name, label.clone())) {
                Some(last) => {
                    if value > *last {
                        counter!(name, labels).increment(value - *last);
                        *last = value;
                    }
                }
                None => {
                    describe_counter!(name, Unit::Count, help);
                    counter!(name, labels).increment(value);
                    self.last.insert((name, label), value);
                }
            }
        }
        gauge!("omninode_events_worker_stopped", "service" => self.service.clone())
            .set(f64::from(u8::from(m.worker_stopped)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_facade::{Key, KeyName, Metadata, Recorder, SharedString};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    /// A recorder that adds up what each counter series was incremented by.
    #[derive(Default, Clone)]
    struct Sums(Arc<Mutex<HashMap<String, Arc<AtomicU64>>>>);

    impl Sums {
        fn get(&self, key: &str) -> u64 {
            self.0
                .lock()
                .unwrap()
                .get(key)
                .map_or(0, |c| c.load(Ordering::Relaxed))
        }
    }

    impl Recorder for Sums {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> metrics_facade::Counter {
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            let cell = self.0.lock().unwrap().entry(name).or_default().clone();
            metrics_facade::Counter::from_arc(cell)
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> metrics_facade::Gauge {
            metrics_facade::Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> metrics_facade::Histogram {
            metrics_facade::Histogram::noop()
        }
    }

    #[test]
    fn publishes_what_each_counter_grew_with_its_labels() {
        let sums = Sums::default();
        metrics_facade::with_local_recorder(&sums, || {
            let mut state = State::new("svc".into());
            let mut m = Metrics {
                enqueued: 3,
                dropped: 5,
                spool_full: 2,
                ..Metrics::default()
            };
            state.publish(&m);
            m.enqueued = 10;
            m.dropped = 6;
            m.redacted.insert("password".into(), 4);
            state.publish(&m);
            // Nothing grew: nothing more is added.
            state.publish(&m);
        });
        assert_eq!(sums.get("omninode_events_enqueued_total{service=svc}"), 10);
        assert_eq!(
            sums.get("omninode_events_dropped_total{service=svc,reason=spool_full}"),
            2
        );
        assert_eq!(
            sums.get("omninode_events_dropped_total{service=svc,reason=queue_full}"),
            4
        );
        assert_eq!(
            sums.get("omninode_events_redacted_total{service=svc,kind=password}"),
            4
        );
        // Registered from the start, at 0.
        assert!(sums
            .0
            .lock()
            .unwrap()
            .contains_key("omninode_events_worker_panics_total{service=svc}"));
    }
}
