//! The consumer side: a dead-letter helper for services that consume OmniNode topics.
//!
//! A service keeps its own Kafka consumer and hands [`DeadLetters`] each record it
//! consumed (as borrowed bytes, [`Consumed`]) with its handler's result. The helper counts
//! the failures of every message (bounded memory), asks for a retry of retryable ones
//! after a full-jitter backoff (the policy and budgets the producer uses, SPEC §3), and
//! dead-letters a message at once for a non-retryable failure, or when the retry budget is
//! spent: the record on `<topic>.dlq` is the SPEC §3 record the pipeline writes, sanitized,
//! with `error.context` naming the stage (`consume`), the consumer group, the partition and
//! the offset (headers `x-dlq-stage` and `x-dlq-consumer-group` too). The helper waits for
//! the broker's acknowledgement before it says [`Verdict::DeadLettered`]: commit the offset
//! then, not before.
//!
//! ```no_run
//! use tracing_omninode::consumer::{Consumed, DeadLetters, HandlerError, Verdict};
//!
//! # fn next_record() -> (String, i32, i64, Vec<u8>) { unimplemented!() }
//! let builder = tracing_omninode::builder().bootstrap_servers("localhost:9092");
//! let mut dlq = DeadLetters::new(&builder, "billing-consumers")?;
//! let (topic, partition, offset, value) = next_record();
//! let record = Consumed {
//!     topic: &topic,
//!     partition,
//!     offset,
//!     key: None,
//!     value: Some(&value),
//!     headers: &[],
//! };
//! let verdict = dlq.process(&record, |r| {
//!     let v: serde_json::Value = serde_json::from_slice(r.value.unwrap_or_default())
//!         .map_err(|e| HandlerError::invalid("NotJson", e.to_string()))?;
//!     println!("{}", v["event_type"]);
//!     Ok(())
//! })?;
//! assert!(matches!(verdict, Verdict::Done | Verdict::DeadLettered));
//! // commit `offset + 1` here
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod tracker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::config::{BuildError, Builder, Config};
use crate::contract::dlq::{dead_letter, Failure, DLQ_HEADER_PREFIX};
use crate::contract::envelope::Source;
use crate::contract::taxonomy::{Backoff, ErrorClass};
use crate::contract::wire::WireRecord;
use crate::diagnostics::Diagnostics;
use crate::kafka::producer::{Producer, Refused};

use tracker::Tracker;

/// Default number of messages whose failures are tracked at once.
pub const DEFAULT_TRACKED_MESSAGES: usize = 10_000;

/// One consumed record, borrowed from whatever Kafka client the service uses.
#[derive(Debug, Clone, Copy)]
pub struct Consumed<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key bytes.
    pub key: Option<&'a [u8]>,
    /// Value bytes.
    pub value: Option<&'a [u8]>,
    /// Headers.
    pub headers: &'a [(&'a str, &'a [u8])],
}

/// Why the service's handler failed, classified like a delivery failure (SPEC §3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{class} {code}: {message}")]
pub struct HandlerError {
    /// The class: retryable ones are retried within their budget.
    pub class: ErrorClass,
    /// A short code (`DatabaseDown`, `UnknownAgent`, ...).
    pub code: String,
    /// What went wrong (sanitized before it reaches the DLQ).
    pub message: String,
}

impl HandlerError {
    /// A failure of any class.
    pub fn new(class: ErrorClass, code: impl Into<String>, message: impl Into<String>) -> Self {
        HandlerError {
            class,
            code: code.into(),
            message: message.into(),
        }
    }

    /// A short-lived failure worth retrying (`RETRYABLE_TRANSIENT`).
    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::RetryableTransient, code, message)
    }

    /// A dependency of the handler is down (`RETRYABLE_DEPENDENCY`).
    pub fn dependency(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::RetryableDependency, code, message)
    }

    /// The record itself cannot be handled (`NON_RETRYABLE_VALIDATION`): no retry.
    pub fn invalid(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::NonRetryableValidation, code, message)
    }
}

/// What to do with a record after its handler ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Handled: commit its offset.
    Done,
    /// Run the handler on it again after `after` (do not commit); `retry` counts from 1.
    Retry {
        /// The full-jitter backoff.
        after: Duration,
        /// Which retry this is.
        retry: u32,
    },
    /// Written to `<topic>.dlq` and acknowledged by the broker: commit its offset.
    DeadLettered,
}

/// The dead-letter record could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeadLetterError {
    /// The broker refused the DLQ record, or did not acknowledge it in time.
    #[error("writing the DLQ record to {topic} failed ({reason}); do not commit the offset: the message will be consumed again")]
    Write {
        /// The DLQ topic.
        topic: String,
        /// What the producer said.
        reason: String,
    },
}

/// The dead-letter helper of a consuming service (see the [module docs](self)).
#[derive(Debug)]
pub struct DeadLetters {
    config: Arc<Config>,
    producer: Producer<()>,
    group: String,
    tracker: Tracker,
    backoff: Option<Backoff>,
}

impl DeadLetters {
    /// A helper for `consumer_group`, producing with the pipeline configuration of
    /// `builder` (brokers, Kafka properties, sanitizer, service identity, retry budget
    /// `max_retries` / `OMNINODE_DLQ_MAX_RETRIES`).
    pub fn new(builder: &Builder, consumer_group: &str) -> Result<Self, BuildError> {
        let config = builder.resolve()?;
        let diag = Arc::new(Diagnostics::of(&config));
        let producer = Producer::new(&config, diag).map_err(BuildError::Kafka)?;
        Ok(DeadLetters {
            group: config.sanitizer.sanitize_str(consumer_group).into_owned(),
            config: Arc::new(config),
            producer,
            tracker: Tracker::new(DEFAULT_TRACKED_MESSAGES),
            backoff: None,
        })
    }

    /// Tracks at most `n` messages at once (default [`DEFAULT_TRACKED_MESSAGES`]).
    pub fn tracked_messages(mut self, n: usize) -> Self {
        self.tracker = Tracker::new(n);
        self
    }

    /// Uses this budget and these backoff bounds for every retryable class instead of the
    /// SPEC defaults (6 × 100 ms..5 s transient, 3 × 500 ms..10 s dependency).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    fn policy(&self, class: ErrorClass) -> Backoff {
        let mut b = self.backoff.unwrap_or(class.default_backoff());
        if let Some(n) = self.config.max_retries {
            b.max_retries = n;
        }
        b
    }

    /// Decides about `record` after its handler returned `result`. A failure is counted
    /// for the message; within the budget of a retryable class the answer is
    /// [`Verdict::Retry`], past it (or at once for a non-retryable class) the message is
    /// dead-lettered and the answer is [`Verdict::DeadLettered`].
    pub fn outcome(
        &mut self,
        record: &Consumed<'_>,
        result: Result<(), HandlerError>,
    ) -> Result<Verdict, DeadLetterError> {
        let id = (record.topic.to_owned(), record.partition, record.offset);
        let Err(error) = result else {
            self.tracker.forget(&id);
            return Ok(Verdict::Done);
        };
        let attempts = self.tracker.fail(&id);
        let retries = attempts.failures - 1;
        let policy = self.policy(error.class);
        if error.class.is_retryable() && retries < policy.max_retries {
            return Ok(Verdict::Retry {
                after: policy.delay(retries),
                retry: retries + 1,
            });
        }
        self.write(record, &error, retries, attempts.first_failed_at)?;
        self.tracker.forget(&id);
        Ok(Verdict::DeadLettered)
    }

    /// Runs `handler` on `record` until it succeeds, retrying (sleeping the backoff) within
    /// the budget, or dead-letters the record. Returns [`Verdict::Done`] or
    /// [`Verdict::DeadLettered`]; either way the offset may be committed.
    pub fn process(
        &mut self,
        record: &Consumed<'_>,
        mut handler: impl FnMut(&Consumed<'_>) -> Result<(), HandlerError>,
    ) -> Result<Verdict, DeadLetterError> {
        loop {
            match self.outcome(record, handler(record))? {
                Verdict::Retry { after, .. } => std::thread::sleep(after),
                done => return Ok(done),
            }
        }
    }

    /// The DLQ record of `record`: the SPEC §3 record of the pipeline, plus the consume
    /// context.
    fn record(
        &self,
        record: &Consumed<'_>,
        error: &HandlerError,
        retries: u32,
        first_failed_at: crate::Timestamp,
    ) -> WireRecord {
        let clean = |b: &[u8]| {
            self.config
                .sanitizer
                .sanitize_str(&String::from_utf8_lossy(b))
                .into_owned()
        };
        let original = WireRecord {
            topic: record.topic.to_owned(),
            key: clean(record.key.unwrap_or_default()),
            headers: record
                .headers
                .iter()
                // A record that already went through a DLQ keeps only its original headers.
                .filter(|(k, _)| !k.starts_with(DLQ_HEADER_PREFIX))
                .map(|(k, v)| ((*k).to_owned().into(), clean(v).into()))
                .collect(),
            value: clean(record.value.unwrap_or_default()),
        };
        let failure = Failure {
            class: error.class,
            code: &error.code,
            message: &error.message,
            retry_count: retries,
            first_failed_at,
        };
        let source = Source {
            service_name: self.config.service_name.clone(),
            instance_id: self.config.instance_id.clone(),
        };
        let mut dlq = dead_letter(
            &original,
            &failure,
            &source,
            &self.config.sanitizer,
            self.config.message_max_bytes,
        );
        let mut body: Value = serde_json::from_str(&dlq.value).expect("dead_letter writes JSON");
        body["error"]["context"] = json!({
            "stage": "consume",
            "consumer_group": self.group,
            "partition": record.partition,
            "offset": record.offset,
        });
        dlq.value = body.to_string();
        dlq.headers.push(("x-dlq-stage".into(), "consume".into()));
        dlq.headers
            .push(("x-dlq-consumer-group".into(), self.group.clone().into()));
        dlq
    }

    /// Writes the DLQ record and waits for the broker's acknowledgement.
    fn write(
        &self,
        record: &Consumed<'_>,
        error: &HandlerError,
        retries: u32,
        first_failed_at: crate::Timestamp,
    ) -> Result<(), DeadLetterError> {
        let dlq = self.record(record, error, retries, first_failed_at);
        let failed = |reason: String| DeadLetterError::Write {
            topic: dlq.topic.clone(),
            reason,
        };
        let mut opaque = Box::new(());
        loop {
            match self.producer.send(&dlq, opaque) {
                Ok(()) => break,
                Err(Refused::QueueFull(back)) => {
                    opaque = back;
                    // The callback thread frees room as acknowledgements come.
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(Refused::Failed(_, e)) => {
                    return Err(failed(format!("{} {}", e.class, e.code)))
                }
            }
        }
        let deadline = Instant::now() + self.config.message_timeout + Duration::from_secs(1);
        while Instant::now() < deadline {
            self.producer
                .wait_report(deadline.saturating_duration_since(Instant::now()));
            if let Some((_, outcome)) = self.producer.next_report() {
                return outcome
                    .map_err(|e| failed(format!("{} {}: {}", e.class, e.code, e.message)));
            }
        }
        Err(failed(
            "no acknowledgement within message.timeout.ms".into(),
        ))
    }
}
