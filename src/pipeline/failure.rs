//! Carrying out the route of a failed record (SPEC §3): the decision itself is the pure
//! [`route`]; here the worker retries, dead-letters, spools or counts, and keeps the
//! counters and the cluster's health in step.

use std::time::Instant;

use crate::contract::dlq::{self, Failure};
use crate::contract::envelope::Source;
use crate::contract::taxonomy::ErrorClass;
use crate::contract::timestamp::Timestamp;
use crate::contract::wire::header;
use crate::contract::wire::WireRecord;
use crate::diagnostics::Condition;
use crate::kafka::producer::DeliveryError;
use crate::metrics::Counters;
use crate::pipeline::replay::PROBE_EVERY;
use crate::pipeline::route::{route, Action, Situation};
use crate::pipeline::worker::{InFlight, Origin, Skipped, Worker};

/// Records whose spool round trips are tracked at most (memory bound).
const MAX_TRACKED_ROUND_TRIPS: usize = 65_536;

impl Worker {
    /// Routes a failed record by the class of its error.
    pub(super) fn fail(&mut self, mut flight: Box<InFlight>, err: DeliveryError) {
        if err.rebuild_producer {
            self.rebuild = true;
        }
        flight.first_failed_at.get_or_insert_with(Timestamp::now);
        let round_trips = self.round_trips_of(&flight.record);
        let action = route(&Situation {
            class: err.class,
            attempt: flight.attempt,
            max_retries: self.config.max_retries,
            cluster_unreachable: err.cluster_unreachable,
            shutting_down: self.shutting_down,
            is_dlq: flight.is_dlq,
            round_trips,
            jitter: fastrand::f64(),
        });
        if !flight.is_dlq && err.class == ErrorClass::RetryableDependency {
            self.healthy = Some(false);
        }
        if err.code.starts_with("UnknownTopic") {
            let topic = &flight.record.topic;
            self.diag.raise(
                Condition::TopicMissing,
                topic,
                &format!(
                    "topic {topic} does not exist on the Kafka cluster at {}: create the \
                     catalog's topics with `omninode-events topics create` (or \
                     tracing_omninode::topics); its events go to the dead-letter topic or the \
                     spool meanwhile",
                    self.config.bootstrap_servers
                ),
            );
        }
        match action {
            Action::Retry { after } => {
                flight.attempt += 1;
                Counters::add(&self.counters.retried, 1);
                self.retries.push((Instant::now() + after, flight));
            }
            Action::Spool => {
                if flight.is_dlq && !err.class.is_retryable() {
                    // The DLQ refuses the record for good for now (credential, ACL, no
                    // topic): kept, and reported as a failure of the pipeline itself.
                    Counters::add(&self.counters.pipeline_errors, 1);
                } else if !flight.is_dlq && !err.cluster_unreachable && !self.shutting_down {
                    self.count_round_trip(&flight.record, round_trips);
                }
                self.spool(&flight)
            }
            Action::DeadLetter => {
                if err.class == ErrorClass::NonRetryableSecurity {
                    Counters::add(&self.counters.pipeline_errors, 1);
                }
                let dead = self.dead_letter(&flight, err.class, &err.code, &err.message);
                self.send(dead);
            }
            Action::Skip => {
                Counters::add(&self.counters.skipped, 1);
                let record = &flight.record;
                // A skipped report of a skip is not reported again (no loop).
                let is_report = record.value.contains("\"OMNINODE_EVENT_SKIPPED\"");
                if !is_report {
                    self.skips.push(Skipped {
                        sequence: record.header(header::SEQUENCE).and_then(|s| s.parse().ok()),
                        event_id: record
                            .header(header::EVENT_ID)
                            .unwrap_or_default()
                            .to_owned(),
                        event_type: record
                            .header(header::EVENT_TYPE)
                            .unwrap_or_default()
                            .to_owned(),
                        code: err.code.clone(),
                    });
                }
                self.done(&flight);
                self.resolve(flight.origin);
            }
        }
    }

    /// Spool round trips the record made while the cluster answered (by its event id).
    fn round_trips_of(&self, record: &WireRecord) -> u32 {
        record
            .header(header::EVENT_ID)
            .and_then(|id| self.round_trips.get(id))
            .copied()
            .unwrap_or(0)
    }

    fn count_round_trip(&mut self, record: &WireRecord, before: u32) {
        if let Some(id) = record.header(header::EVENT_ID) {
            if self.round_trips.len() >= MAX_TRACKED_ROUND_TRIPS {
                // Forgetting only delays a repeat offender's way to the DLQ.
                self.round_trips.clear();
            }
            self.round_trips.insert(id.to_owned(), before + 1);
        }
    }

    /// Forgets the round trips of a record that reached a final state.
    pub(super) fn forget_round_trips(&mut self, record: &WireRecord) {
        if !self.round_trips.is_empty() {
            if let Some(id) = record.header(header::EVENT_ID) {
                self.round_trips.remove(id);
            }
        }
    }

    /// The dead-letter record of `flight`, bound for `<topic>.dlq`. It settles the
    /// original's spool record when it is delivered.
    pub(super) fn dead_letter(
        &self,
        flight: &InFlight,
        class: ErrorClass,
        code: &str,
        why: &str,
    ) -> Box<InFlight> {
        let config = &self.config;
        let record = dlq::dead_letter(
            &flight.record,
            &Failure {
                class,
                code,
                message: why,
                retry_count: flight.attempt,
                first_failed_at: flight.first_failed_at.unwrap_or_else(Timestamp::now),
            },
            &Source {
                service_name: config.service_name.clone(),
                instance_id: config.instance_id.clone(),
            },
            &config.sanitizer,
            config.message_max_bytes,
        );
        let topic = &flight.record.topic;
        self.diag.notice(
            tracing::Level::WARN,
            &format!("dlq:{topic}"),
            &format!("an event for {topic} was dead-lettered to {topic}.dlq ({code}): {why}"),
        );
        let mut dead = InFlight::new(record, flight.origin, true);
        dead.first_failed_at = flight.first_failed_at;
        dead.guaranteed = flight.guaranteed;
        dead.wal = flight.wal;
        dead.wal_holds_original = flight.wal.is_some() && !flight.is_dlq;
        dead
    }

    /// Keeps `flight` on disk for a later replay. A live record the spool refuses is a
    /// drop, reported in-stream with its sequence number. A replayed record that failed
    /// again waits a probe interval before its segment is replayed again.
    pub(super) fn spool(&mut self, flight: &InFlight) {
        if !self.park(flight) {
            let sequence = flight.record.header(header::SEQUENCE);
            match sequence.and_then(|s| s.parse().ok()) {
                Some(seq) => self.queue.drops().record(seq),
                None => Counters::add(&self.counters.dropped, 1),
            }
        }
        if matches!(flight.origin, Origin::Replay(_)) {
            self.replay_after = Some(Instant::now() + PROBE_EVERY);
        }
        self.resolve(flight.origin);
    }
}
