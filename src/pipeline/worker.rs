//! The worker thread's loop: drains the queue in batches, assembles and sends records,
//! handles delivery reports, due retries and drop reports, and answers the guard's flush
//! and shutdown requests. What happens to a failed record is in [`super::failure`], the
//! spool replay in [`super::replay`].

use std::collections::{HashMap, VecDeque};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select, Sender, TryRecvError};

use crate::capture::queue::Queue;
use crate::capture::record::{Body, Captured, FieldValue, Fields};
use crate::config::Config;
use crate::contract::catalog::EventKind;
use crate::contract::limits::deadline_in;
use crate::contract::taxonomy::ErrorClass;
use crate::contract::timestamp::Timestamp;
use crate::contract::wire::{header, topic_for, WireRecord};
use crate::diagnostics::{Condition, Diagnostics};
use crate::kafka::producer::{DeliveryError, Producer, Refused};
use crate::metrics::{Counters, Report};
use crate::pipeline::assemble::{assemble, kind_of};
use crate::pipeline::spooler::Spooler;
use crate::spool::{RecordId, SegmentId};

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

/// Where an in-flight record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Live,
    Replay(SegmentId),
}

/// What travels with a record through librdkafka and comes back with its report:
/// everything needed to decide what to do next.
#[derive(Debug)]
pub(crate) struct InFlight {
    pub record: Arc<WireRecord>,
    pub attempt: u32,
    pub first_failed_at: Option<Timestamp>,
    pub origin: Origin,
    /// The record is itself a dead-letter record.
    pub is_dlq: bool,
    /// Of a guaranteed class: written to the spool before it is produced.
    pub guaranteed: bool,
    /// The spool record this flight's outcome settles (its write-ahead copy, or the record
    /// it was replayed from).
    pub wal: Option<RecordId>,
    /// `wal` holds the event this dead-letter record was made of, not this record.
    pub wal_holds_original: bool,
}

impl InFlight {
    pub fn new(record: WireRecord, origin: Origin, is_dlq: bool) -> Box<InFlight> {
        Box::new(InFlight {
            record: Arc::new(record),
            attempt: 0,
            first_failed_at: None,
            origin,
            is_dlq,
            guaranteed: false,
            wal: None,
            wal_holds_original: false,
        })
    }
}

/// Longest the worker sleeps with nothing to do: it wakes earlier for an event, a control
/// message, a delivery report, a retry that falls due or a spool sync.
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// Longest wait for the reports of purged records at shutdown (they are produced locally).
const PURGE_COLLECT: Duration = Duration::from_millis(250);

/// What the worker is given at start.
#[derive(Debug)]
pub(crate) struct Parts {
    pub config: Arc<Config>,
    pub counters: Arc<Counters>,
    pub queue: Arc<Queue>,
    pub spooler: Arc<Spooler>,
    pub rx: Receiver<Captured>,
    /// Guaranteed events the queue had no room for (taken first).
    pub overflow: Receiver<Captured>,
    pub ctrl: Receiver<Control>,
    pub producer: Producer<InFlight>,
    pub diag: Arc<Diagnostics>,
}

/// What is known of an event whose assembly panicked: its type, sequence and time (the
/// payload is not kept: it may hold secrets the sanitizer never saw).
fn unassembled(
    config: &Config,
    kind: &EventKind,
    sequence: u64,
    timestamp: Timestamp,
) -> WireRecord {
    let value = serde_json::json!({
        "event_type": kind.event_type,
        "sequence": sequence,
        "timestamp": timestamp.to_string(),
        "unassembled": true,
    });
    WireRecord {
        topic: topic_for(&config.topic_prefix, kind.event_type),
        key: String::new(),
        headers: vec![
            (header::EVENT_TYPE.into(), kind.event_type.into()),
            (header::SEQUENCE.into(), sequence.to_string().into()),
        ],
        value: value.to_string(),
    }
}

/// The text of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

/// Panics of the worker's loop (outside one record's assembly) tolerated within
/// [`PANIC_WINDOW`] before the worker gives up.
const MAX_LOOP_PANICS: usize = 5;
const PANIC_WINDOW: Duration = Duration::from_secs(10);

pub(crate) fn spawn(parts: Parts) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("omninode-worker".into())
        .spawn(move || {
            crate::capture::ignore_current_thread();
            let ctrl = parts.ctrl;
            let mut worker = Worker {
                config: parts.config,
                counters: parts.counters,
                queue: parts.queue,
                spooler: parts.spooler,
                rx: parts.rx,
                overflow: parts.overflow,
                producer: parts.producer,
                diag: parts.diag,
                progress_at: Instant::now(),
                waiting_since: None,
                in_flight: 0,
                retries: Vec::new(),
                pending: VecDeque::new(),
                skips: Vec::new(),
                replay: HashMap::new(),
                live: HashMap::new(),
                parked_active: false,
                acks: Vec::new(),
                round_trips: HashMap::new(),
                healthy: None,
                last_probe: None,
                replay_after: None,
                last_sync: Instant::now(),
                rebuild: false,
                shutting_down: false,
            };
            worker.run_isolated(&ctrl);
        })
}

/// A record the worker gave up on without sending it anywhere: the broker may or may not
/// hold it, and a re-send could duplicate it.
#[derive(Debug)]
pub(crate) struct Skipped {
    pub sequence: Option<u64>,
    pub event_id: String,
    pub event_type: String,
    pub code: String,
}

pub(super) struct Worker {
    pub config: Arc<Config>,
    pub counters: Arc<Counters>,
    pub queue: Arc<Queue>,
    pub spooler: Arc<Spooler>,
    rx: Receiver<Captured>,
    overflow: Receiver<Captured>,
    pub producer: Producer<InFlight>,
    pub diag: Arc<Diagnostics>,
    /// The last acknowledgement from the broker.
    progress_at: Instant,
    /// Since when events have waited without an acknowledgement (`None`: nothing waits).
    waiting_since: Option<Instant>,
    pub in_flight: usize,
    pub retries: Vec<(Instant, Box<InFlight>)>,
    /// Records librdkafka's local queue refused (QueueFull), sent again after a poll.
    pub pending: VecDeque<Box<InFlight>>,
    /// Records given up on because a re-send could duplicate them (idempotency errors),
    /// reported in-stream by [`Worker::report_skips`].
    pub skips: Vec<Skipped>,
    /// Records of each spool segment being replayed that are not resolved yet.
    pub replay: HashMap<SegmentId, usize>,
    /// Write-ahead records of each segment still in flight (a segment is replayed only
    /// when none of its records is).
    pub live: HashMap<SegmentId, usize>,
    /// A record of the active segment was kept for replay: seal it when it is idle.
    pub parked_active: bool,
    /// Spool records settled since the last [`Worker::flush_acks`].
    pub acks: Vec<RecordId>,
    /// Spool round trips per event id, of records that failed while the cluster answered.
    pub round_trips: HashMap<String, u32>,
    /// Whether the cluster answered lately (`None`: not known yet).
    pub healthy: Option<bool>,
    pub last_probe: Option<Instant>,
    /// No replay before this instant (the oldest segment could not be read).
    pub replay_after: Option<Instant>,
    pub last_sync: Instant,
    pub rebuild: bool,
    pub shutting_down: bool,
}

impl Worker {
    /// Runs the loop, restarting it after a panic. After [`MAX_LOOP_PANICS`] within
    /// [`PANIC_WINDOW`] it gives up: the queue is closed (callers stop handing events to a
    /// thread that will not take them) and what it holds is kept in the spool.
    fn run_isolated(&mut self, ctrl: &Receiver<Control>) {
        let mut recent: VecDeque<Instant> = VecDeque::new();
        loop {
            match panic::catch_unwind(AssertUnwindSafe(|| self.run(ctrl))) {
                Ok(()) => return,
                Err(_) => {
                    Counters::add(&self.counters.worker_panics, 1);
                    recent.push_back(Instant::now());
                    recent.retain(|t| t.elapsed() < PANIC_WINDOW);
                    if recent.len() >= MAX_LOOP_PANICS {
                        self.give_up();
                        return;
                    }
                }
            }
        }
    }

    /// Stops for good after repeated panics, keeping what can be kept.
    fn give_up(&mut self) {
        self.queue.worker_stopped();
        self.spool_queued();
        let parked = std::mem::take(&mut self.retries)
            .into_iter()
            .map(|(_, flight)| flight)
            .chain(std::mem::take(&mut self.pending));
        for flight in parked {
            if !self.park(&flight) {
                Counters::add(&self.counters.dropped, 1);
            }
        }
        self.flush_acks();
        self.spooler.sync();
    }

    fn run(&mut self, ctrl: &Receiver<Control>) {
        loop {
            fault!("omninode::worker_loop");
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
                    let deadline = deadline_in(self.config.shutdown_timeout);
                    self.shutdown(deadline);
                    return;
                }
                Err(TryRecvError::Empty) => {}
            }
            if self.pending.is_empty() {
                if !self.take_batch() {
                    self.wait(ctrl, true, self.wait_bound());
                    self.take_batch();
                }
            } else {
                // librdkafka's queue is full: assemble at most one batch ahead (it waits in
                // `pending`, so the worker's work overlaps the wait for acknowledgements),
                // and leave the rest in the bounded queue, whose overflow policy applies
                // (SPEC §4), instead of buffering it here unbounded.
                if self.pending.len() < self.config.batch_size {
                    self.take_batch();
                }
                // Until a delivery report makes room (or a control message, or a timer).
                self.wait(ctrl, false, self.wait_bound());
            }
            self.service();
            self.maybe_replay();
        }
    }

    fn report(&self) -> Report {
        Report::from(&self.counters.snapshot(Default::default()))
    }

    /// Takes up to one batch of what is waiting, overflowed guaranteed events first, then
    /// the queue, and processes it. False when nothing was waiting.
    fn take_batch(&mut self) -> bool {
        let batch: Vec<Captured> = self.waiting().take(self.config.batch_size).collect();
        if batch.is_empty() {
            return false;
        }
        self.process_batch(batch);
        true
    }

    /// Sleeps until there is something to do, at most `timeout`: a control message, a
    /// delivery report, or (when `events`) an event to take. Never spins: every input is a
    /// channel, librdkafka's reports included (see [`Producer::watch`]).
    fn wait(&self, ctrl: &Receiver<Control>, events: bool, timeout: Duration) {
        let mut select = Select::new();
        select.recv(ctrl);
        if events {
            select.recv(&self.overflow);
            select.recv(&self.rx);
        }
        self.producer.watch(&mut select);
        let _ = select.ready_timeout(timeout);
    }

    /// How long the worker may sleep: until the next retry falls due, the next spool sync
    /// while records are outstanding, at most [`IDLE_WAIT`].
    fn wait_bound(&self) -> Duration {
        let now = Instant::now();
        let mut bound = IDLE_WAIT;
        if let Some(due) = self.retries.iter().map(|(at, _)| *at).min() {
            bound = bound.min(due.saturating_duration_since(now));
        }
        if let crate::config::FsyncPolicy::Interval(every) = self.config.spool_fsync {
            if !self.idle() {
                bound = bound.min((self.last_sync + every).saturating_duration_since(now));
            }
        }
        bound
    }

    /// What is waiting to be taken, without waiting for more: overflowed guaranteed events
    /// first, then the queue.
    fn waiting(&self) -> impl Iterator<Item = Captured> + '_ {
        self.overflow.try_iter().chain(self.rx.try_iter())
    }

    /// Polls librdkafka, handles reports, due retries, drop reports and producer rebuilds.
    fn service(&mut self) {
        self.handle_reports();
        self.flush_acks();
        // librdkafka makes some errors fatal on its own (an out-of-order sequence at the head
        // of the queue): rebuild as soon as it says so, before anything more is handed to
        // the broken producer, not only when a later send fails.
        if !self.rebuild && self.producer.is_fatal() {
            self.rebuild = true;
        }
        if self.rebuild {
            self.rebuild_producer();
        }
        self.resend_pending();
        self.due_retries();
        if self.pending.is_empty() {
            // While librdkafka is full the drop range keeps growing; it is reported once
            // there is room again (or at flush/shutdown).
            self.report_drops();
        }
        self.report_skips();
        self.sync_due();
        self.publish();
    }

    /// Publishes the gauges, and says when events start or stop waiting without any
    /// acknowledgement for longer than `degraded_after`, or stop waiting in the spool.
    fn publish(&mut self) {
        let c = &self.counters;
        let waiting = !self.idle() || !self.rx.is_empty() || !self.overflow.is_empty();
        let (bytes, records, replayable) = {
            let spool = self.spooler.lock();
            let replayable = spool.has_sealed();
            (spool.bytes(), spool.unacked_records(), replayable)
        };
        c.in_flight.store(self.in_flight as u64, Relaxed);
        c.spool_bytes.store(bytes, Relaxed);
        c.spool_records.store(records, Relaxed);
        let stalled_since = match (waiting, self.waiting_since) {
            (false, _) => None,
            (true, None) => Some(Instant::now()),
            (true, Some(since)) => Some(since.max(self.progress_at)),
        };
        self.waiting_since = stalled_since;
        c.stalled_since_ms
            .store(stalled_since.map_or(0, crate::metrics::unix_ms_of), Relaxed);
        match stalled_since {
            Some(since) if since.elapsed() >= self.config.degraded_after => {
                self.diag.raise(
                    Condition::Stalled,
                    "",
                    &format!(
                        "nothing was acknowledged by the Kafka cluster at {} for {} s while \
                         events wait ({} in flight)",
                        self.config.bootstrap_servers,
                        since.elapsed().as_secs(),
                        self.in_flight
                    ),
                );
            }
            _ => self.diag.clear(Condition::Stalled, None),
        }
        if !replayable && !self.parked_active && self.replay.is_empty() {
            self.diag.clear(Condition::Spooling, None);
        }
    }

    /// Processes one captured event (see [`Worker::process_batch`]).
    fn process(&mut self, ev: Captured) {
        self.process_batch(vec![ev]);
    }

    /// Assembles a batch, writes its guaranteed records ahead to the spool (one write,
    /// synced per the fsync policy), then sends them.
    fn process_batch(&mut self, batch: Vec<Captured>) {
        let mut flights: Vec<Box<InFlight>> =
            batch.into_iter().map(|ev| self.prepare(ev)).collect();
        self.write_ahead(&mut flights);
        for flight in flights {
            self.send(flight);
        }
    }

    /// Assembles one captured event into the flight to send: its record, or the
    /// dead-letter record of an event that is invalid. A panic while assembling it (a bug,
    /// or a pathological input) is caught: the event goes to the DLQ as `WorkerPanic` and
    /// the pipeline goes on.
    fn prepare(&mut self, ev: Captured) -> Box<InFlight> {
        let (kind, sequence, timestamp) = (kind_of(&ev.body), ev.sequence, ev.timestamp);
        let guaranteed = ev.is_guaranteed();
        let config = &self.config;
        let (assembled, failure) = match panic::catch_unwind(AssertUnwindSafe(|| {
            fault!("omninode::assemble");
            assemble(config, ev)
        })) {
            Ok(assembled) => {
                let invalid = assembled.invalid.map(|why| ("SchemaValidation", why));
                (assembled.record, invalid)
            }
            Err(payload) => {
                Counters::add(&self.counters.worker_panics, 1);
                let why = format!(
                    "the worker panicked while assembling this event ({}); its payload was not kept",
                    panic_message(payload.as_ref())
                );
                (
                    unassembled(&self.config, kind, sequence, timestamp),
                    Some(("WorkerPanic", why)),
                )
            }
        };
        let mut flight = InFlight::new(assembled, Origin::Live, false);
        flight.guaranteed = guaranteed;
        let Some((code, why)) = failure else {
            return flight;
        };
        if code == "SchemaValidation" {
            Counters::add(&self.counters.validation_failed, 1);
        }
        self.dead_letter(&flight, ErrorClass::NonRetryableValidation, code, &why)
    }

    /// Sends a record; a full librdkafka queue parks it in `pending`. Behind records
    /// already parked it is parked too, so records leave in the order they were sent.
    pub(super) fn send(&mut self, flight: Box<InFlight>) {
        if !self.pending.is_empty() {
            return self.pending.push_back(flight);
        }
        if let Err(flight) = self.try_send(flight) {
            self.pending.push_back(flight);
        }
    }

    /// Sends a record, or hands it back when librdkafka's queue is full.
    fn try_send(&mut self, flight: Box<InFlight>) -> Result<(), Box<InFlight>> {
        let record = flight.record.clone();
        match self.producer.send(&record, flight) {
            Ok(()) => self.in_flight += 1,
            Err(Refused::QueueFull(flight)) => return Err(flight),
            Err(Refused::Failed(flight, e)) => self.fail(flight, e),
        }
        Ok(())
    }

    fn resend_pending(&mut self) {
        // One round over what is parked now (a failure may park a dead-letter record).
        for _ in 0..self.pending.len() {
            let Some(flight) = self.pending.pop_front() else {
                break;
            };
            if let Err(flight) = self.try_send(flight) {
                self.pending.push_front(flight);
                break;
            }
        }
    }

    fn handle_reports(&mut self) {
        while let Some((flight, outcome)) = self.producer.next_report() {
            self.in_flight = self.in_flight.saturating_sub(1);
            self.on_report(flight, outcome);
        }
    }

    fn on_report(&mut self, flight: Box<InFlight>, outcome: Result<(), DeliveryError>) {
        match outcome {
            Ok(()) => {
                self.healthy = Some(true);
                self.progress_at = Instant::now();
                self.diag.delivered(&flight.record.topic);
                self.producer.clear_last_global();
                let c = &self.counters;
                if flight.is_dlq {
                    Counters::add(&c.dead_lettered, 1);
                } else {
                    Counters::add(&c.delivered, 1);
                }
                if matches!(flight.origin, Origin::Replay(_)) {
                    Counters::add(&c.replayed, 1);
                }
                self.forget_round_trips(&flight.record);
                self.done(&flight);
                self.resolve(flight.origin);
            }
            Err(e) => self.fail(flight, e),
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

    /// Reports the events lost since the last report, in-stream (SPEC §4).
    fn report_drops(&mut self) {
        let Some(range) = self.queue.drops().take() else {
            return;
        };
        self.send_report(
            format!(
                "{} events dropped: the queue (application logs) or the spool was full",
                range.count
            ),
            Fields::from_iter([
                ("code", FieldValue::Str("OMNINODE_EVENTS_DROPPED".into())),
                ("dropped_count", FieldValue::U64(range.count)),
                ("first_sequence", FieldValue::U64(range.first_sequence)),
                ("last_sequence", FieldValue::U64(range.last_sequence)),
            ]),
        );
    }

    /// Sends one of the pipeline's own WARN reports (drops, skips) through the pipeline, in
    /// the stream it accounts for.
    fn send_report(&mut self, message: String, fields: Fields) {
        let ev = Captured {
            sequence: self.queue.next_sequence(),
            timestamp: Timestamp::now(),
            span: None,
            body: Body::Log {
                level: tracing::Level::WARN,
                target: "tracing_omninode",
                message: message.into(),
                fields,
            },
        };
        self.process(ev);
    }

    /// One in-stream `OMNINODE_EVENT_SKIPPED` report per record given up on for an
    /// idempotency error, so a consumer can account for the gap in `sequence`: the record
    /// may be on the broker (then it is no gap) or not (then this report explains it).
    fn report_skips(&mut self) {
        for skip in std::mem::take(&mut self.skips) {
            let mut fields = Fields::from_iter([
                ("code", FieldValue::Str("OMNINODE_EVENT_SKIPPED".into())),
                ("reason", FieldValue::Str("idempotency".into())),
                ("error_code", FieldValue::Str(skip.code.as_str().into())),
                ("event_id", FieldValue::Str(skip.event_id.into())),
                ("event_type", FieldValue::Str(skip.event_type.into())),
            ]);
            if let Some(seq) = skip.sequence {
                fields.push(("skipped_sequence", FieldValue::U64(seq)));
            }
            self.send_report(
                format!(
                    "an event was not re-sent after {}: a re-send could duplicate it, \
                     so the broker may or may not hold it",
                    skip.code
                ),
                fields,
            );
        }
    }

    fn rebuild_producer(&mut self) {
        self.rebuild = false;
        let Ok(fresh) = Producer::new(&self.config, self.diag.clone()) else {
            // Same configuration that worked at start; try again on the next round.
            self.rebuild = true;
            return;
        };
        Counters::add(&self.counters.producer_rebuilds, 1);
        let old = std::mem::replace(&mut self.producer, fresh);
        // The purge reports of what the broken producer still held send those records
        // again on the fresh producer.
        for (flight, outcome) in old.replace_with(&self.producer) {
            self.in_flight = self.in_flight.saturating_sub(1);
            self.on_report(flight, outcome);
        }
    }

    fn idle(&self) -> bool {
        self.in_flight == 0
            && self.retries.is_empty()
            && self.pending.is_empty()
            && self.replay.is_empty()
    }

    /// Sends everything queued when it is called and waits for its reports, up to
    /// `deadline`. Events are taken only while librdkafka's own queue has room, so a queue
    /// longer than librdkafka's buffer drains as acknowledgements make room; what is still
    /// queued at the deadline stays there (and is spooled at shutdown). Events queued after
    /// the call are not waited for: a busy caller cannot keep a flush from finishing.
    ///
    /// Events are taken a batch at a time (one write-ahead per batch), and up to one batch
    /// is assembled ahead into `pending` while librdkafka is full.
    fn drain_until(&mut self, deadline: Instant) {
        let mut left = self.overflow.len() + self.rx.len();
        let max = self.config.batch_size;
        while Instant::now() < deadline {
            while left > 0 && self.pending.len() < max && Instant::now() < deadline {
                let batch: Vec<Captured> = self.waiting().take(left.min(max)).collect();
                if batch.is_empty() {
                    left = 0;
                    break;
                }
                left -= batch.len();
                self.process_batch(batch);
            }
            self.report_drops();
            self.service();
            if left == 0 && self.idle() {
                break;
            }
            let until_deadline = deadline.saturating_duration_since(Instant::now());
            self.producer
                .wait_report(self.wait_bound().min(until_deadline));
        }
    }

    fn shutdown(&mut self, deadline: Instant) {
        self.queue.close();
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
                self.producer
                    .wait_report(cap.saturating_duration_since(Instant::now()));
                self.handle_reports();
            }
        }
        // Events still queued (deadline reached) or that raced the closing of the queue.
        self.spool_queued();
        self.flush_acks();
        // A fully acknowledged active segment goes now; one with parked records stays.
        self.spooler.lock().seal_active();
        self.spooler.sync();
    }

    /// After the queue was closed: once no push is under way (nothing else can arrive),
    /// spools what the overflow and the queue still hold.
    fn spool_queued(&mut self) {
        self.queue
            .settle(self.queue.guaranteed_wait() + PURGE_COLLECT);
        for ev in self.waiting() {
            self.queue.overflow(ev);
        }
    }
}
