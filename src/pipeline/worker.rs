//! The background worker: drains the queue in batches, assembles and produces records,
//! and routes every delivery failure by its class to a retry, the DLQ, the spool or a
//! counted skip. It also replays the spool and answers flush/shutdown requests.

use std::cell::Cell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use rdkafka::error::{KafkaError, RDKafkaErrorCode as C};

use crate::capture::queue::Shared;
use crate::capture::record::{Body, Captured, Causation, FieldValue};
use crate::contract::dlq::{self, Failure};
use crate::contract::envelope::Source;
use crate::contract::taxonomy::ErrorClass;
use crate::contract::timestamp::Timestamp;
use crate::contract::wire::WireRecord;
use crate::kafka::classify::{classify, ClassifyContext};
use crate::kafka::producer::{InFlight, Origin, Producer};
use crate::metrics::{Counters, Report};
use crate::pipeline::assemble::assemble;
use crate::spool::SegmentId;

thread_local! {
    /// True on the worker thread: the layer ignores every event emitted there, so nothing
    /// the worker or librdkafka does can feed back into the pipeline.
    pub(crate) static IN_WORKER: Cell<bool> = const { Cell::new(false) };
}

/// A request to the worker, carrying its own reply channel.
#[derive(Debug)]
pub(crate) enum Control {
    Flush {
        deadline: Instant,
        reply: Sender<Report>,
    },
    Shutdown {
        deadline: Instant,
        reply: Sender<Report>,
    },
}

const IDLE_WAIT: Duration = Duration::from_millis(5);
const PROBE_EVERY: Duration = Duration::from_secs(2);
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
const SYNC_EVERY: Duration = Duration::from_secs(1);
/// Longest wait for the reports of purged records at shutdown (they are produced locally).
const PURGE_COLLECT: Duration = Duration::from_millis(250);

pub(crate) fn spawn(
    shared: Arc<Shared>,
    rx: Receiver<Captured>,
    ctrl: Receiver<Control>,
    producer: Producer,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("omninode-worker".into())
        .spawn(move || {
            IN_WORKER.with(|w| w.set(true));
            let mut worker = Worker {
                shared,
                rx,
                producer,
                in_flight: 0,
                retries: Vec::new(),
                pending: VecDeque::new(),
                replay: HashMap::new(),
                keep: HashSet::new(),
                healthy: None,
                last_probe: None,
                last_sync: Instant::now(),
                rebuild: false,
                shutting_down: false,
            };
            worker.run(ctrl);
        })
}

struct Worker {
    shared: Arc<Shared>,
    rx: Receiver<Captured>,
    producer: Producer,
    in_flight: usize,
    retries: Vec<(Instant, Box<InFlight>)>,
    /// Records librdkafka's local queue refused (QueueFull), sent again after a poll.
    pending: VecDeque<Box<InFlight>>,
    /// Records of each spool segment being replayed that are not resolved yet.
    replay: HashMap<SegmentId, usize>,
    /// Replayed segments to keep on disk (a record of theirs could not be re-spooled).
    keep: HashSet<SegmentId>,
    healthy: Option<bool>,
    last_probe: Option<Instant>,
    last_sync: Instant,
    rebuild: bool,
    shutting_down: bool,
}

impl Worker {
    fn run(&mut self, ctrl: Receiver<Control>) {
        loop {
            match ctrl.try_recv() {
                Ok(Control::Flush { deadline, reply }) => {
                    self.drain_until(deadline);
                    let _ = reply.send(self.report());
                }
                Ok(Control::Shutdown { deadline, reply }) => {
                    self.shutdown(deadline);
                    let _ = reply.send(self.report());
                    return;
                }
                Err(TryRecvError::Disconnected) => {
                    let deadline = Instant::now() + self.shared.config.shutdown_timeout;
                    self.shutdown(deadline);
                    return;
                }
                Err(TryRecvError::Empty) => {}
            }
            if self.pending.is_empty() {
                let busy = self.in_flight > 0 || !self.retries.is_empty();
                self.take_batch(if busy {
                    Duration::from_millis(1)
                } else {
                    IDLE_WAIT
                });
            } else {
                // librdkafka's queue is full: leave new events in the bounded queue, whose
                // overflow policy applies (SPEC §4), instead of buffering them here unbounded.
                self.producer.poll(Duration::from_millis(1));
            }
            self.service();
            self.maybe_replay();
        }
    }

    fn report(&self) -> Report {
        Report::from(&self.shared.counters.snapshot(Default::default()))
    }

    /// Takes up to one batch from the queue, waiting at most `wait` for the first event.
    fn take_batch(&mut self, wait: Duration) {
        let first = match self.rx.recv_timeout(wait) {
            Ok(ev) => ev,
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return,
        };
        self.process(first);
        for _ in 1..self.shared.config.batch_size {
            match self.rx.try_recv() {
                Ok(ev) => self.process(ev),
                Err(_) => break,
            }
        }
    }

    /// Polls librdkafka, handles reports, due retries, drop reports and producer rebuilds.
    fn service(&mut self) {
        self.producer.poll(Duration::ZERO);
        self.handle_reports();
        self.resend_pending();
        self.due_retries();
        if self.pending.is_empty() {
            // While librdkafka is full the drop range keeps growing; it is reported once
            // there is room again (or at flush/shutdown).
            self.report_drops();
        }
        // librdkafka makes some errors fatal on its own (an out-of-order sequence at the head
        // of the queue): rebuild as soon as it says so, not only when a later send fails.
        if !self.rebuild && self.producer.fatal_error().is_some() {
            self.rebuild = true;
        }
        if self.rebuild {
            self.rebuild_producer();
        }
        if self.last_sync.elapsed() >= SYNC_EVERY {
            self.last_sync = Instant::now();
            let _ = self.shared.lock_spool().sync();
        }
    }

    fn process(&mut self, ev: Captured) {
        let assembled = assemble(&self.shared.config, ev);
        let flight = Box::new(InFlight {
            record: Arc::new(assembled.record),
            attempt: 0,
            first_failed_at: None,
            origin: Origin::Live,
            is_dlq: false,
        });
        match assembled.invalid {
            None => self.send(flight),
            Some(why) => {
                Counters::add(&self.shared.counters.validation_failed, 1);
                self.dead_letter(
                    &flight,
                    ErrorClass::NonRetryableValidation,
                    "SchemaValidation",
                    &why,
                );
            }
        }
    }

    fn send(&mut self, flight: Box<InFlight>) {
        match self.producer.send(flight) {
            Ok(()) => self.in_flight += 1,
            Err((KafkaError::MessageProduction(C::QueueFull), flight)) => {
                self.pending.push_back(flight)
            }
            Err((e, flight)) => self.fail(flight, e),
        }
    }

    fn resend_pending(&mut self) {
        for _ in 0..self.pending.len() {
            let Some(flight) = self.pending.pop_front() else {
                break;
            };
            match self.producer.send(flight) {
                Ok(()) => self.in_flight += 1,
                Err((KafkaError::MessageProduction(C::QueueFull), flight)) => {
                    self.pending.push_front(flight);
                    break;
                }
                Err((e, flight)) => self.fail(flight, e),
            }
        }
    }

    fn handle_reports(&mut self) {
        while let Ok((flight, outcome)) = self.producer.reports.try_recv() {
            self.in_flight = self.in_flight.saturating_sub(1);
            self.on_report(flight, outcome);
        }
    }

    fn on_report(&mut self, flight: Box<InFlight>, outcome: Result<(), KafkaError>) {
        match outcome {
            Ok(()) => {
                self.healthy = Some(true);
                // A delivery went through: an earlier global error no longer describes
                // the cluster and must not colour how later timeouts are classified.
                self.producer.clear_last_global();
                let c = &self.shared.counters;
                if flight.is_dlq {
                    Counters::add(&c.dead_lettered, 1);
                } else {
                    Counters::add(&c.delivered, 1);
                }
                if matches!(flight.origin, Origin::Replay(_)) {
                    Counters::add(&c.replayed, 1);
                }
                self.resolve(flight.origin);
            }
            Err(e) => self.fail(flight, e),
        }
    }

    /// Routes a failed record by the class of its error (SPEC §3).
    fn fail(&mut self, mut flight: Box<InFlight>, err: KafkaError) {
        let last_global = self.producer.last_global();
        let fatal_cause = match err.rdkafka_error_code() {
            Some(C::Fatal) => self.producer.fatal_error(),
            _ => None,
        };
        let c = classify(
            &err,
            ClassifyContext {
                last_global,
                fatal_cause,
            },
        );
        if c.rebuild_producer {
            self.rebuild = true;
        }
        flight.first_failed_at.get_or_insert_with(Timestamp::now);
        if flight.is_dlq {
            if c.class.is_retryable() {
                // The dead-letter topic is unreachable for now: keep the record on disk.
                self.spool(&flight);
            } else {
                // The dead-letter topic refuses the record for good (missing topic, ACL):
                // replaying it would loop forever. Count it where it shows.
                Counters::add(&self.shared.counters.pipeline_errors, 1);
                Counters::add(&self.shared.counters.dropped, 1);
                self.resolve(flight.origin);
            }
            return;
        }
        match c.class {
            ErrorClass::RetryableTransient | ErrorClass::RetryableDependency => {
                if c.class == ErrorClass::RetryableDependency {
                    self.healthy = Some(false);
                }
                let backoff = c.class.default_backoff();
                let budget = self
                    .shared
                    .config
                    .max_retries
                    .unwrap_or(backoff.max_retries);
                // librdkafka already retried a timed-out record for message.timeout.ms;
                // when the cluster is unreachable another round would only multiply that.
                let cluster_down = err.rdkafka_error_code() == Some(C::MessageTimedOut)
                    && matches!(
                        last_global,
                        Some(C::AllBrokersDown | C::BrokerTransportFailure | C::Resolve)
                    );
                if self.shutting_down || cluster_down || flight.attempt >= budget {
                    self.spool(&flight);
                } else {
                    let delay = backoff.delay(flight.attempt);
                    flight.attempt += 1;
                    Counters::add(&self.shared.counters.retried, 1);
                    self.retries.push((Instant::now() + delay, flight));
                }
            }
            ErrorClass::NonRetryableValidation
            | ErrorClass::NonRetryablePolicy
            | ErrorClass::NonRetryableSecurity => {
                if c.class == ErrorClass::NonRetryableSecurity {
                    Counters::add(&self.shared.counters.pipeline_errors, 1);
                }
                let message = format!("{err}");
                self.dead_letter(&flight, c.class, &c.code, &message);
            }
            ErrorClass::NonRetryableIdempotency => {
                Counters::add(&self.shared.counters.skipped, 1);
                self.resolve(flight.origin);
            }
        }
    }

    fn dead_letter(&mut self, flight: &InFlight, class: ErrorClass, code: &str, why: &str) {
        let config = &self.shared.config;
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
        self.send(Box::new(InFlight {
            record: Arc::new(record),
            attempt: 0,
            first_failed_at: flight.first_failed_at,
            origin: flight.origin,
            is_dlq: true,
        }));
    }

    fn spool(&mut self, flight: &InFlight) {
        if let Origin::Replay(seg) = flight.origin {
            // Back to the spool it came from. If the spool is full (the segment being
            // replayed still counts), keep that whole segment for a later replay rather
            // than lose the record; records of it already delivered may then repeat.
            let bytes = flight.record.to_bytes();
            if self.shared.lock_spool().append(&bytes).is_ok() {
                Counters::add(&self.shared.counters.spooled, 1);
            } else {
                self.keep.insert(seg);
            }
        } else {
            let sequence = flight
                .record
                .header(crate::contract::wire::header::SEQUENCE)
                .and_then(|s| s.parse().ok());
            self.shared
                .spool_record(&flight.record.to_bytes(), sequence);
        }
        self.resolve(flight.origin);
    }

    /// A record reached a final state; a replayed segment is removed once all of its
    /// records have.
    fn resolve(&mut self, origin: Origin) {
        if let Origin::Replay(seg) = origin {
            if let Some(left) = self.replay.get_mut(&seg) {
                *left -= 1;
                if *left == 0 {
                    self.replay.remove(&seg);
                    if !self.keep.remove(&seg) {
                        let _ = self.shared.lock_spool().remove_segment(seg);
                    }
                }
            }
        }
    }

    fn due_retries(&mut self) {
        if self.retries.is_empty() {
            return;
        }
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retries)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.retries = later;
        for (_, flight) in due {
            self.send(flight);
        }
    }

    fn report_drops(&mut self) {
        let Some(range) = self.shared.take_drops() else {
            return;
        };
        let ev = Captured {
            sequence: self.shared.next_sequence(),
            timestamp: Timestamp::now(),
            event_id: None,
            causation: Causation::Explicit(None),
            span: None,
            body: Body::Log {
                level: tracing::Level::WARN,
                target: "tracing_omninode",
                message: format!(
                    "{} events dropped: the queue (application logs) or the spool was full",
                    range.count
                ),
                fields: vec![
                    ("code", FieldValue::Str("OMNINODE_EVENTS_DROPPED".into())),
                    ("dropped_count", FieldValue::U64(range.count)),
                    ("first_sequence", FieldValue::U64(range.first_sequence)),
                    ("last_sequence", FieldValue::U64(range.last_sequence)),
                ],
            },
        };
        self.process(ev);
    }

    fn rebuild_producer(&mut self) {
        self.rebuild = false;
        let Ok(fresh) = Producer::new(&self.shared.config) else {
            // Same configuration that worked at start; try again on the next round.
            self.rebuild = true;
            return;
        };
        Counters::add(&self.shared.counters.producer_rebuilds, 1);
        let old = std::mem::replace(&mut self.producer, fresh);
        let reports = old.reports.clone();
        // Dropping purges what the broken producer still held; the purge reports send
        // those records again on the fresh producer.
        drop(old);
        for (flight, outcome) in reports.try_iter() {
            self.in_flight = self.in_flight.saturating_sub(1);
            self.on_report(flight, outcome);
        }
    }

    /// Replays the oldest spool segment when the broker is reachable (SPEC §4).
    fn maybe_replay(&mut self) {
        if !self.replay.is_empty() || self.shutting_down {
            return;
        }
        if self.shared.lock_spool().is_empty() {
            return;
        }
        if self.healthy != Some(true) {
            if self.last_probe.is_some_and(|t| t.elapsed() < PROBE_EVERY) {
                return;
            }
            self.last_probe = Some(Instant::now());
            if !self.producer.probe(PROBE_TIMEOUT) {
                self.healthy = Some(false);
                return;
            }
            self.producer.clear_last_global();
            self.healthy = Some(true);
        }
        let read = {
            let mut spool = self.shared.lock_spool();
            let Some(seg) = spool.oldest_sealed() else {
                return;
            };
            match spool.read_segment(seg) {
                Ok(read) => (seg, read),
                Err(_) => {
                    // Unreadable as a whole: count it and move on rather than retry forever.
                    Counters::add(&self.shared.counters.spool_corrupt, 1);
                    let _ = spool.remove_segment(seg);
                    return;
                }
            }
        };
        let (seg, read) = read;
        Counters::add(&self.shared.counters.spool_corrupt, read.corrupt);
        let records: Vec<WireRecord> = read
            .records
            .iter()
            .filter_map(|bytes| {
                let r = WireRecord::from_bytes(bytes);
                if r.is_none() {
                    Counters::add(&self.shared.counters.spool_corrupt, 1);
                }
                r
            })
            .collect();
        if records.is_empty() {
            let mut spool = self.shared.lock_spool();
            let _ = spool.remove_segment(seg);
            return;
        }
        self.replay.insert(seg, records.len());
        for record in records {
            let is_dlq = record.topic.ends_with(dlq::DLQ_SUFFIX);
            self.send(Box::new(InFlight {
                record: Arc::new(record),
                attempt: 0,
                first_failed_at: None,
                origin: Origin::Replay(seg),
                is_dlq,
            }));
        }
    }

    fn idle(&self) -> bool {
        self.in_flight == 0
            && self.retries.is_empty()
            && self.pending.is_empty()
            && self.replay.is_empty()
    }

    /// Sends everything queued so far and waits for its reports, up to `deadline`.
    fn drain_until(&mut self, deadline: Instant) {
        // Take what is queued, but not past the deadline and not while librdkafka's own
        // queue is full: what stays in our bounded queue is spooled at shutdown.
        while self.pending.is_empty() && Instant::now() < deadline {
            match self.rx.try_recv() {
                Ok(ev) => self.process(ev),
                Err(_) => break,
            }
        }
        self.report_drops();
        while Instant::now() < deadline {
            self.service();
            if self.idle() {
                break;
            }
            self.producer.poll(Duration::from_millis(5));
        }
    }

    fn shutdown(&mut self, deadline: Instant) {
        self.shared.closed.store(true, Ordering::Release);
        let now = Instant::now();
        // Keep a slice of the time for purging and spooling what is still in flight.
        let reserve = (deadline.saturating_duration_since(now) / 5).min(Duration::from_millis(500));
        self.drain_until(deadline.checked_sub(reserve).unwrap_or(now));
        self.shutting_down = true;
        for (_, flight) in std::mem::take(&mut self.retries) {
            self.spool(&flight);
        }
        while let Some(flight) = self.pending.pop_front() {
            self.spool(&flight);
        }
        if self.in_flight > 0 {
            // Purge reports are local and immediate; collect them even when the deadline
            // has passed, or the purged records would be lost with the producer.
            self.producer.purge();
            let cap = Instant::now() + PURGE_COLLECT;
            while self.in_flight > 0 && Instant::now() < cap {
                self.producer.poll(Duration::from_millis(1));
                self.handle_reports();
            }
        }
        // Events still queued (deadline reached) or that raced the closing of the queue.
        while let Ok(ev) = self.rx.try_recv() {
            self.shared.spool_captured(ev);
        }
        let _ = self.shared.lock_spool().sync();
    }
}
