//! Carrying out the route of a failed record (SPEC §3): the decision itself is the pure
//! [`route`]; here the worker retries, dead-letters, spools or counts, and keeps the
//! counters and the cluster's health in step.

use std::time::Instant;

use crate::contract::dlq::{self, Failure};
use crate::contract::envelope::Source;
use crate::contract::taxonomy::ErrorClass;
use crate::contract::timestamp::Timestamp;
use crate::contract::wire::header;
use crate::kafka::producer::DeliveryError;
use crate::metrics::Counters;
use crate::pipeline::route::{route, Action, Situation};
use crate::pipeline::worker::{InFlight, Origin, Worker};

impl Worker {
    /// Routes a failed record by the class of its error.
    pub(super) fn fail(&mut self, mut flight: Box<InFlight>, err: DeliveryError) {
        if err.rebuild_producer {
            self.rebuild = true;
        }
        flight.first_failed_at.get_or_insert_with(Timestamp::now);
        let action = route(&Situation {
            class: err.class,
            attempt: flight.attempt,
            max_retries: self.config.max_retries,
            cluster_unreachable: err.cluster_unreachable,
            shutting_down: self.shutting_down,
            is_dlq: flight.is_dlq,
            jitter: fastrand::f64(),
        });
        if !flight.is_dlq && err.class == ErrorClass::RetryableDependency {
            self.healthy = Some(false);
        }
        match action {
            Action::Retry { after } => {
                flight.attempt += 1;
                Counters::add(&self.counters.retried, 1);
                self.retries.push((Instant::now() + after, flight));
            }
            Action::Spool => self.spool(&flight),
            Action::DeadLetter => {
                if err.class == ErrorClass::NonRetryableSecurity {
                    Counters::add(&self.counters.pipeline_errors, 1);
                }
                self.dead_letter(&flight, err.class, &err.code, &err.message);
            }
            Action::Skip => {
                Counters::add(&self.counters.skipped, 1);
                self.resolve(flight.origin);
            }
            Action::Drop => {
                Counters::add(&self.counters.pipeline_errors, 1);
                Counters::add(&self.counters.dropped, 1);
                self.resolve(flight.origin);
            }
        }
    }

    /// Sends the dead-letter record of `flight` to `<topic>.dlq`.
    pub(super) fn dead_letter(
        &mut self,
        flight: &InFlight,
        class: ErrorClass,
        code: &str,
        why: &str,
    ) {
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
        let mut dead = InFlight::new(record, flight.origin, true);
        dead.first_failed_at = flight.first_failed_at;
        self.send(dead);
    }

    /// Keeps `flight` on disk. A live record the spool refuses is a drop, reported
    /// in-stream with its sequence number; a replayed one keeps its whole segment for a
    /// later replay instead (records of it already delivered may then repeat).
    pub(super) fn spool(&mut self, flight: &InFlight) {
        if !self.spooler.put(&flight.record) {
            match flight.origin {
                Origin::Replay(seg) => {
                    self.keep.insert(seg);
                }
                Origin::Live => {
                    let sequence = flight.record.header(header::SEQUENCE);
                    match sequence.and_then(|s| s.parse().ok()) {
                        Some(seq) => self.queue.drops().record(seq),
                        None => Counters::add(&self.counters.dropped, 1),
                    }
                }
            }
        }
        self.resolve(flight.origin);
    }
}
