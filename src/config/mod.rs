//! Configuration: a builder whose setters override the environment, validated into a
//! [`Config`] by `build()`. Invalid values are a [`BuildError`] that says how to fix them.

// builder.rs: the settings given in code. env.rs: the `OMNINODE_*` variables and the one
// ladder every setting resolves through (builder, else variable, else default).
// resolve.rs: that ladder for every setting, and the validation into a `Config`.
// kafka_props.rs: librdkafka passthrough properties and their redaction. error.rs: BuildError.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use tracing::Level;

use crate::contract::partition::PartitionPolicy;
use crate::sanitize::Sanitizer;

mod builder;
pub mod env;
mod error;
mod kafka_props;
mod resolve;

pub use builder::Builder;
pub use error::BuildError;
pub use kafka_props::is_sensitive_property;
use kafka_props::RedactedProps;

/// Default capacity of the queue between callers and the worker, in events.
pub const DEFAULT_QUEUE_CAPACITY: usize = 16_384;
/// Guaranteed events that wait [`DEFAULT_GUARANTEED_WAIT`] for queue room in vain are
/// handed to the worker through an overflow list of `max(queue_capacity, this)` events,
/// which it takes first; past that they are dropped and reported in-stream.
pub const MIN_OVERFLOW_CAPACITY: usize = 16_384;
/// Default time a guaranteed event (audit, security, agent) waits for queue room before it
/// is written to the spool instead.
pub const DEFAULT_GUARANTEED_WAIT: Duration = Duration::from_millis(50);
/// Default largest number of events the worker takes from the queue at once.
pub const DEFAULT_BATCH_SIZE: usize = 512;
/// Default time librdkafka waits to fill a batch (`linger.ms`).
pub const DEFAULT_LINGER: Duration = Duration::from_millis(5);
/// Default librdkafka `queue.buffering.max.messages`: envelopes handed to librdkafka and not
/// yet acknowledged. librdkafka's own default (100 000) lets a broker outage hold up to about
/// 370 MB of envelopes (each is copied into librdkafka and kept by the worker for the DLQ
/// and the spool); at 10 000 a million logs during an outage grew the process by 35-42 MB.
/// The price was throughput on bursts larger than the buffer: in `benches/throughput.rs`
/// (bursts of 20 000) the pipeline delivered 117 k/s at 10 000 against 133 k/s at 100 000
/// and 135 k/s at 25 000 (+99 MB in the same outage), while the worker waited idle for room;
/// since it assembles one batch ahead during that wait it delivers 137-155 k/s at 10 000.
/// A steady stream at the pipeline's pace needs far fewer. When it is full the worker stops
/// taking events (past the one batch ahead) and the queue's overflow policy applies.
/// Override with `kafka_property("queue.buffering.max.messages", ..)`.
pub const DEFAULT_KAFKA_BUFFER_MESSAGES: usize = 10_000;
/// Default `message.timeout.ms`: how long librdkafka itself retries one record.
pub const DEFAULT_MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default deadline of the shutdown run when the guard is dropped.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time events may wait without any acknowledgement from the broker before the
/// pipeline's health is [`Degraded`](crate::HealthStatus::Degraded).
pub const DEFAULT_DEGRADED_AFTER: Duration = Duration::from_secs(15);

/// Where the pipeline keeps what it has not delivered yet (its write-ahead copies of
/// guaranteed events, and what waits for the broker).
///
/// Env: `OMNINODE_SPOOL` = `disk` or `memory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpoolMode {
    /// Files in the spool directory (the default): what was accepted survives a crash of
    /// the process (see [`FsyncPolicy`] for a crash of the machine) and is replayed by the
    /// next start.
    #[default]
    Disk,
    /// Memory only, bounded by the spool size: for a read-only filesystem or a container
    /// without a volume. Undelivered events, audit and security ones included, are **lost
    /// when the process dies**; a broker outage is still bridged while the process lives.
    Memory,
}

impl std::str::FromStr for SpoolMode {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s.trim().to_ascii_lowercase().as_str() {
            "disk" => Ok(SpoolMode::Disk),
            "memory" => Ok(SpoolMode::Memory),
            _ => Err(()),
        }
    }
}

/// A duration in the environment: `5s`, `500ms`, `1m 30s` (anything `humantime` reads), or
/// a bare number of milliseconds.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<u64>() {
        return Some(Duration::from_millis(ms));
    }
    humantime::parse_duration(text).ok()
}

/// Default [`FsyncPolicy`]: every 10 ms.
pub const DEFAULT_SPOOL_FSYNC: FsyncPolicy = FsyncPolicy::Interval(Duration::from_millis(10));

/// When the write-ahead spool is flushed from the OS to the disk (`fsync`).
///
/// The worker writes every guaranteed event (audit, security, agent lifecycle, typed) to the
/// spool before producing it, and marks it done when the broker acknowledges it. A written
/// record survives the process being killed (`kill -9`, OOM, `abort`) whatever the policy:
/// it is in the OS's page cache. The policy decides what a crash of the *machine* (power,
/// kernel) can lose:
///
/// - [`Always`](FsyncPolicy::Always): nothing the worker wrote (one `fsync` per batch,
///   before the batch is produced);
/// - [`Interval`](FsyncPolicy::Interval) (default 10 ms): what was written in the last
///   interval;
/// - [`Never`](FsyncPolicy::Never): whatever the OS had not written back yet (typically
///   up to 30 s on Linux).
///
/// Env: `OMNINODE_SPOOL_FSYNC` = `always`, `never`, or an interval such as `10ms`, `1s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `fsync` after every batch, before it is produced.
    Always,
    /// `fsync` at most this often.
    Interval(Duration),
    /// Leave it to the OS.
    Never,
}

impl std::str::FromStr for FsyncPolicy {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "always" => Ok(FsyncPolicy::Always),
            "never" => Ok(FsyncPolicy::Never),
            _ => parse_duration(&s).map(FsyncPolicy::Interval).ok_or(()),
        }
    }
}
/// Default spool size bound.
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = crate::spool::DEFAULT_SPOOL_MAX_BYTES;
/// Default `message.max.bytes` (librdkafka's own default).
pub const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;
pub use crate::contract::limits::STACK_TRACE_CAP;

/// The validated configuration.
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// Broker list.
    pub bootstrap_servers: String,
    /// Service name.
    pub service_name: String,
    /// Instance id.
    pub instance_id: String,
    /// Default tenant.
    pub tenant_id: String,
    /// Default namespace.
    pub namespace: String,
    /// Topic prefix.
    pub topic_prefix: String,
    /// Queue capacity.
    pub queue_capacity: usize,
    /// Wait bound of guaranteed events.
    pub guaranteed_wait: Duration,
    /// Worker batch size.
    pub batch_size: usize,
    /// `linger.ms`.
    pub linger: Duration,
    /// `message.timeout.ms`.
    pub message_timeout: Duration,
    /// `message.max.bytes`.
    pub message_max_bytes: usize,
    /// Spool directory.
    pub spool_dir: PathBuf,
    /// Spool bound.
    pub spool_max_bytes: u64,
    /// When the write-ahead spool is flushed to the disk.
    pub spool_fsync: FsyncPolicy,
    /// Retry budget override for both retryable classes.
    pub max_retries: Option<u32>,
    /// Drop-guard shutdown deadline.
    pub shutdown_timeout: Duration,
    /// How long events may wait without an acknowledgement before the health is degraded.
    pub degraded_after: Duration,
    /// Disk or memory spool.
    pub spool_mode: SpoolMode,
    /// The pipeline does nothing (`OMNINODE_DISABLED`).
    pub disabled: bool,
    /// Most verbose level captured.
    pub max_level: Level,
    /// Idempotent producer.
    pub idempotence: bool,
    /// librdkafka passthrough properties (secrets redacted in `Debug`).
    pub kafka_props: BTreeMap<String, String>,
    /// Partition-key policy.
    pub partition: PartitionPolicy,
    /// The sanitizer every outgoing string passes through.
    pub sanitizer: Sanitizer,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("service_name", &self.service_name)
            .field("instance_id", &self.instance_id)
            .field("tenant_id", &self.tenant_id)
            .field("namespace", &self.namespace)
            .field("topic_prefix", &self.topic_prefix)
            .field("queue_capacity", &self.queue_capacity)
            .field("spool_dir", &self.spool_dir)
            .field("spool_mode", &self.spool_mode)
            .field("disabled", &self.disabled)
            .field("spool_fsync", &self.spool_fsync)
            .field("max_retries", &self.max_retries)
            .field("kafka_props", &RedactedProps(&self.kafka_props))
            .finish_non_exhaustive()
    }
}
