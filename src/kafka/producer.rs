//! The pipeline's producer: one `BaseProducer` driven by the worker thread. Each record
//! travels with an opaque value of the caller's type `T` that comes back with its delivery
//! report, already classified ([`DeliveryError`]), so no rdkafka type leaves this folder.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Select, Sender};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode as C};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::PurgeConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};

use crate::config::Config;
use crate::contract::taxonomy::ErrorClass;
use crate::contract::wire::WireRecord;
use crate::diagnostics::{Condition, Diagnostics};
use crate::kafka::classify::{classify, ClassifyContext};

/// A failed send or delivery, classified (SPEC §3) with what the cluster said around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeliveryError {
    /// The class of the failure.
    pub class: ErrorClass,
    /// The librdkafka error name (`MessageSizeTooLarge`, ...).
    pub code: String,
    /// librdkafka's message.
    pub message: String,
    /// The producer hit a fatal error and must be rebuilt before anything is re-sent.
    pub rebuild_producer: bool,
    /// The record timed out while no broker was reachable: librdkafka already retried it
    /// for `message.timeout.ms`, so another round would only multiply that wait.
    pub cluster_unreachable: bool,
}

/// Why [`Producer::send`] did not take a record; the opaque comes back either way.
#[derive(Debug)]
pub(crate) enum Refused<T> {
    /// librdkafka's local queue is full: send again after a poll.
    QueueFull(Box<T>),
    /// The record cannot be sent.
    Failed(Box<T>, DeliveryError),
}

/// A delivery report: the record's opaque and its outcome.
pub(crate) type Report<T> = (Box<T>, Result<(), DeliveryError>);

type RawReport<T> = (Box<T>, Result<(), KafkaError>);

/// Receives librdkafka callbacks on the worker thread (during `poll`). It never logs
/// through `tracing`, so librdkafka cannot feed events back into the layer.
struct Ctx<T> {
    reports: Sender<RawReport<T>>,
    /// The last global error code (0 = none), for classification.
    last_global: Arc<AtomicI32>,
    diag: Arc<Diagnostics>,
    bootstrap: String,
}

impl<T: Send + Sync + 'static> ClientContext for Ctx<T> {
    /// librdkafka's warnings and errors (the log level is set to warning), rate-limited.
    /// Connection failures (`FAIL`) are left to [`ClientContext::error`], which turns them
    /// into conditions said once.
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        if fac == "FAIL" {
            return;
        }
        let level = match level {
            RDKafkaLogLevel::Warning => tracing::Level::WARN,
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info | RDKafkaLogLevel::Debug => return,
            _ => tracing::Level::ERROR,
        };
        self.diag.notice(
            level,
            &format!("librdkafka:{fac}"),
            &format!("librdkafka {fac}: {log_message}"),
        );
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let Some(code) = error.rdkafka_error_code() else {
            return;
        };
        self.last_global.store(code as i32, Ordering::Relaxed);
        if let Some((condition, message)) = condition_of(code, reason, &self.bootstrap) {
            self.diag.raise(condition, "", &message);
        }
    }
}

/// The condition a global librdkafka error starts, and what to say about it.
fn condition_of(code: C, reason: &str, bootstrap: &str) -> Option<(Condition, String)> {
    let kept = "guaranteed events are kept in the spool meanwhile";
    match code {
        C::SSL => Some((
            Condition::TlsFailed,
            format!(
                "TLS with the Kafka cluster at {bootstrap} failed: {reason}. Check \
                 ssl.ca.location (the CA that signed the brokers' certificates), the \
                 certificates' validity dates, and that they name the host you connect to; \
                 {kept}"
            ),
        )),
        C::Authentication | C::SaslAuthenticationFailed => Some((
            Condition::AuthenticationFailed,
            format!(
                "the Kafka cluster at {bootstrap} refused the credentials: {reason}. Check \
                 sasl.mechanism, sasl.username and sasl.password (OMNINODE_KAFKA_SASL_*); \
                 {kept}"
            ),
        )),
        C::AllBrokersDown | C::Resolve => Some((
            Condition::BrokerUnreachable,
            format!(
                "no Kafka broker answers at {bootstrap}: {reason}; events wait until one \
                 does ({kept})"
            ),
        )),
        _ => None,
    }
}

impl<T: Send + Sync + 'static> ProducerContext for Ctx<T> {
    type DeliveryOpaque = Box<T>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Box<T>) {
        let outcome = match result {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(e.clone()),
        };
        // The receiver lives in the producer that owns this context; it cannot be gone.
        let _ = self.reports.send((opaque, outcome));
    }
}

/// The producer plus its report channel.
///
/// A thread of its own (`omninode-kafka-poll`) serves librdkafka's callbacks as they come,
/// so delivery reports arrive on a channel the worker can block on together with its other
/// inputs: nobody polls librdkafka in a loop. (rdkafka's `BaseProducer::poll` waits in whole
/// milliseconds and spins through the last fraction of its timeout: polled 1 ms at a time,
/// as the worker once did, it kept a core busy for as long as anything was outstanding.)
pub(crate) struct Producer<T: Send + Sync + 'static> {
    inner: Arc<BaseProducer<Ctx<T>>>,
    reports: Receiver<RawReport<T>>,
    last_global: Arc<AtomicI32>,
    poller: Option<Poller>,
}

/// How long a producer being replaced serves the reports of what it purged (they are local).
const PURGE_SERVE: Duration = Duration::from_millis(100);

/// How long one poll of the callback thread lasts: the longest a drop of the producer
/// waits for that thread, and the period of its only busy moment (the sub-millisecond end
/// of each poll, under 1 % of a core).
const POLL_SLICE: Duration = Duration::from_millis(100);

/// The thread that serves the producer's callbacks, and how to stop it.
struct Poller {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Poller {
    fn spawn<T: Send + Sync + 'static>(
        producer: Arc<BaseProducer<Ctx<T>>>,
    ) -> std::io::Result<Poller> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("omninode-kafka-poll".into())
            .spawn({
                let stop = stop.clone();
                move || {
                    // librdkafka's log and error callbacks run here; what they report must
                    // never be captured by the layer.
                    crate::capture::ignore_current_thread();
                    while !stop.load(Ordering::Acquire) {
                        producer.poll(POLL_SLICE);
                    }
                }
            })?;
        Ok(Poller { stop, thread })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.thread.join();
    }
}

impl<T: Send + Sync + 'static> Drop for Producer<T> {
    fn drop(&mut self) {
        // The callback thread holds the other reference: once it has ended, the
        // `BaseProducer` is dropped here (it purges what it holds and serves those reports).
        if let Some(poller) = self.poller.take() {
            poller.stop();
        }
    }
}

impl<T: Send + Sync + 'static> std::fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").finish_non_exhaustive()
    }
}

/// The librdkafka configuration of the pipeline's producer.
fn client_config(config: &Config) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.bootstrap_servers)
        .set("client.id", format!("omninode-{}", config.service_name))
        .set("acks", "all")
        .set("enable.idempotence", config.idempotence.to_string())
        .set("compression.type", "zstd")
        .set("linger.ms", config.linger.as_millis().to_string())
        .set("batch.num.messages", config.batch_size.to_string())
        .set(
            "queue.buffering.max.messages",
            crate::config::DEFAULT_KAFKA_BUFFER_MESSAGES.to_string(),
        )
        .set(
            "message.timeout.ms",
            config.message_timeout.as_millis().to_string(),
        )
        .set("message.max.bytes", config.message_max_bytes.to_string())
        .set("reconnect.backoff.max.ms", "2000");
    for (k, v) in &config.kafka_props {
        c.set(k, v);
    }
    c
}

impl<T: Send + Sync + 'static> Producer<T> {
    /// Creates the producer. The error says what librdkafka refused, without the
    /// property's value (it may be a password).
    pub fn new(config: &Config, diag: Arc<Diagnostics>) -> Result<Self, String> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let last_global = Arc::new(AtomicI32::new(0));
        let ctx = Ctx {
            reports: tx,
            last_global: last_global.clone(),
            diag,
            bootstrap: config.bootstrap_servers.clone(),
        };
        let inner: BaseProducer<Ctx<T>> = client_config(config)
            .set_log_level(RDKafkaLogLevel::Warning)
            .create_with_context(ctx)
            .map_err(|e| match e {
                // librdkafka's message repeats the property's value; keep it out.
                KafkaError::ClientConfig(_, desc, key, _) => format!("{desc} (property `{key}`)"),
                other => other.to_string(),
            })?;
        let inner = Arc::new(inner);
        let poller = Poller::spawn(inner.clone())
            .map_err(|e| format!("could not start the Kafka callback thread: {e}"))?;
        Ok(Producer {
            inner,
            reports: rx,
            last_global,
            poller: Some(poller),
        })
    }

    /// Enqueues `record`; on failure hands `opaque` back with the reason.
    pub fn send(&self, record: &WireRecord, opaque: Box<T>) -> Result<(), Refused<T>> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (k, v) in &record.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        let base = BaseRecord::with_opaque_to(&record.topic, opaque)
            .key(record.key.as_bytes())
            .payload(record.value.as_bytes())
            .headers(headers);
        self.inner.send(base).map_err(|(e, base)| match e {
            KafkaError::MessageProduction(C::QueueFull) => Refused::QueueFull(base.delivery_opaque),
            e => Refused::Failed(base.delivery_opaque, self.classify(&e)),
        })
    }

    /// The next delivery report served by [`Producer::poll`], classified now (with what
    /// the cluster has said up to this report).
    pub fn next_report(&self) -> Option<Report<T>> {
        let (opaque, outcome) = self.reports.try_recv().ok()?;
        Some((opaque, outcome.map_err(|e| self.classify(&e))))
    }

    /// Waits, without spinning, until a delivery report is there (then
    /// [`Producer::next_report`] returns it) or `timeout` passed. True when one is there.
    pub fn wait_report(&self, timeout: Duration) -> bool {
        let mut select = Select::new();
        self.watch(&mut select);
        select.ready_timeout(timeout).is_ok()
    }

    /// Adds the delivery reports to `select`, for a worker that waits on them together with
    /// its other inputs (a `ready` wait: the reports stay to be taken with
    /// [`Producer::next_report`]). Returns the operation's index.
    pub fn watch<'a>(&'a self, select: &mut Select<'a>) -> usize {
        select.recv(&self.reports)
    }

    /// Replaces this (broken) producer with `fresh`. Dropping it purges what it still held;
    /// those purge reports come back, classified by the fresh producer, for re-sending.
    pub fn replace_with(mut self, fresh: &Producer<T>) -> Vec<Report<T>> {
        // Serve the last reports here, with the callback thread gone: a record's own
        // failure (the one that made the producer fatal) is classified with the fatal cause
        // this producer knows; the purged ones are sent again on the fresh producer.
        if let Some(poller) = self.poller.take() {
            poller.stop();
        }
        // What librdkafka already decided first (the failure that made it fatal), then
        // what the purge hands back.
        self.inner.poll(PURGE_SERVE);
        self.purge();
        self.inner.poll(PURGE_SERVE);
        let reports: Vec<Report<T>> = self
            .reports
            .try_iter()
            .map(|(opaque, outcome)| {
                let outcome = outcome.map_err(|e| match e.rdkafka_error_code() {
                    Some(C::PurgeQueue | C::PurgeInflight) => fresh.classify(&e),
                    _ => self.classify(&e),
                });
                (opaque, outcome)
            })
            .collect();
        drop(self);
        reports
    }

    fn classify(&self, err: &KafkaError) -> DeliveryError {
        let last_global = self.last_global();
        let fatal_cause = match err.rdkafka_error_code() {
            Some(C::Fatal) => self.fatal_error(),
            _ => None,
        };
        let c = classify(
            err,
            ClassifyContext {
                last_global,
                fatal_cause,
            },
        );
        DeliveryError {
            class: c.class,
            code: c.code,
            message: err.to_string(),
            rebuild_producer: c.rebuild_producer,
            cluster_unreachable: err.rdkafka_error_code() == Some(C::MessageTimedOut)
                && matches!(
                    last_global,
                    Some(C::AllBrokersDown | C::BrokerTransportFailure | C::Resolve | C::SSL)
                ),
        }
    }

    /// The last global error librdkafka reported.
    fn last_global(&self) -> Option<C> {
        match self.last_global.load(Ordering::Relaxed) {
            0 => None,
            n => Some(C::from(rdkafka::types::RDKafkaRespErr::try_from(n).ok()?)),
        }
    }

    /// Forgets the last global error: a delivery went through, so it no longer describes
    /// the cluster and must not colour how later timeouts are classified.
    pub fn clear_last_global(&self) {
        self.last_global.store(0, Ordering::Relaxed);
    }

    fn fatal_error(&self) -> Option<C> {
        self.inner.client().fatal_error().map(|(code, _)| code)
    }

    /// Whether librdkafka made the producer fatal on its own (an out-of-order sequence at
    /// the head of the queue): it must be rebuilt.
    pub fn is_fatal(&self) -> bool {
        self.fatal_error().is_some()
    }

    /// Asks the cluster for metadata: true when a broker answered within `timeout`.
    pub fn probe(&self, timeout: Duration) -> bool {
        self.inner
            .client()
            .fetch_metadata(None, timeout)
            .is_ok_and(|m| !m.brokers().is_empty())
    }

    /// Purges everything queued or in flight; their reports arrive on the next polls.
    pub fn purge(&self) {
        self.inner.purge(PurgeConfig::default().queue().inflight());
    }
}
