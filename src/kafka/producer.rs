//! The rdkafka side: one `BaseProducer` driven by the worker thread, whose delivery
//! reports come back with the event they belong to. No rdkafka type leaves the crate.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::PurgeConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};

use crate::config::Config;
use crate::contract::timestamp::Timestamp;
use crate::contract::wire::WireRecord;
use crate::spool::SegmentId;

/// Where an in-flight record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Live,
    Replay(SegmentId),
}

/// The per-message opaque: everything needed to decide what to do with its delivery report.
#[derive(Debug)]
pub(crate) struct InFlight {
    pub record: Arc<WireRecord>,
    pub attempt: u32,
    pub first_failed_at: Option<Timestamp>,
    pub origin: Origin,
    /// The record is itself a dead-letter record.
    pub is_dlq: bool,
}

/// A delivery report.
pub(crate) type Delivery = (Box<InFlight>, Result<(), KafkaError>);

/// Receives librdkafka callbacks on the worker thread (during `poll`). It never logs
/// through `tracing`, so librdkafka cannot feed events back into the layer.
pub(crate) struct Ctx {
    reports: Sender<Delivery>,
    /// The last global error code (0 = none), for classification.
    last_global: Arc<AtomicI32>,
}

impl ClientContext for Ctx {
    fn log(&self, _level: RDKafkaLogLevel, _fac: &str, _log_message: &str) {}

    fn error(&self, error: KafkaError, _reason: &str) {
        if let Some(code) = error.rdkafka_error_code() {
            self.last_global.store(code as i32, Ordering::Relaxed);
        }
    }
}

impl ProducerContext for Ctx {
    type DeliveryOpaque = Box<InFlight>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Box<InFlight>) {
        let outcome = match result {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(e.clone()),
        };
        // The receiver lives in the worker that owns this producer; it cannot be gone.
        let _ = self.reports.send((opaque, outcome));
    }
}

/// The producer plus its report channel.
pub(crate) struct Producer {
    inner: BaseProducer<Ctx>,
    pub reports: Receiver<Delivery>,
    last_global: Arc<AtomicI32>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").finish_non_exhaustive()
    }
}

/// The librdkafka configuration of the pipeline's producer.
pub(crate) fn client_config(config: &Config) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.bootstrap_servers)
        .set("client.id", format!("omninode-{}", config.service_name))
        .set("acks", "all")
        .set("enable.idempotence", config.idempotence.to_string())
        .set("compression.type", "zstd")
        .set("linger.ms", config.linger.as_millis().to_string())
        .set("batch.num.messages", config.batch_size.to_string())
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

impl Producer {
    pub fn new(config: &Config) -> Result<Producer, KafkaError> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let last_global = Arc::new(AtomicI32::new(0));
        let ctx = Ctx {
            reports: tx,
            last_global: last_global.clone(),
        };
        let inner = client_config(config)
            .set_log_level(RDKafkaLogLevel::Emerg)
            .create_with_context(ctx)?;
        Ok(Producer {
            inner,
            reports: rx,
            last_global,
        })
    }

    /// Enqueues a record; on failure hands the opaque back with the error.
    pub fn send(&self, flight: Box<InFlight>) -> Result<(), (KafkaError, Box<InFlight>)> {
        let record = flight.record.clone();
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (k, v) in &record.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        let base = BaseRecord::with_opaque_to(&record.topic, flight)
            .key(record.key.as_bytes())
            .payload(record.value.as_bytes())
            .headers(headers);
        self.inner
            .send(base)
            .map_err(|(e, base)| (e, base.delivery_opaque))
    }

    /// Serves delivery callbacks, waiting at most `timeout` for the first.
    pub fn poll(&self, timeout: Duration) {
        self.inner.poll(timeout);
    }

    /// The last global error librdkafka reported.
    pub fn last_global(&self) -> Option<RDKafkaErrorCode> {
        match self.last_global.load(Ordering::Relaxed) {
            0 => None,
            n => Some(RDKafkaErrorCode::from(
                rdkafka::types::RDKafkaRespErr::try_from(n).ok()?,
            )),
        }
    }

    pub fn clear_last_global(&self) {
        self.last_global.store(0, Ordering::Relaxed);
    }

    /// The code behind a fatal error, if the producer hit one.
    pub fn fatal_error(&self) -> Option<RDKafkaErrorCode> {
        self.inner.client().fatal_error().map(|(code, _)| code)
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
