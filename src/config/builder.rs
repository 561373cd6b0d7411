//! [`Builder`]: the settings given in code, each overriding its environment variable.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use tracing::Level;

use super::kafka_props::RedactedProps;
use super::resolve::resolve;
use super::{env, BuildError, Config, FsyncPolicy, SpoolMode};
#[cfg(doc)]
use super::{
    DEFAULT_BATCH_SIZE, DEFAULT_GUARANTEED_WAIT, DEFAULT_LINGER, DEFAULT_MESSAGE_MAX_BYTES,
    DEFAULT_MESSAGE_TIMEOUT, DEFAULT_QUEUE_CAPACITY, DEFAULT_SHUTDOWN_TIMEOUT,
    DEFAULT_SPOOL_MAX_BYTES,
};
use crate::contract::catalog::Family;
use crate::contract::partition::PartitionPolicy;
use crate::sanitize::Sanitizer;

/// The builder returned by [`crate::builder()`]. Every setter documents its default and its
/// environment variable; values set here override the environment.
#[derive(Clone, Default)]
#[must_use = "call .build() to get the layer and its guard"]
pub struct Builder {
    pub(crate) bootstrap_servers: Option<String>,
    pub(crate) service_name: Option<String>,
    pub(crate) instance_id: Option<String>,
    pub(crate) tenant_id: Option<String>,
    pub(crate) namespace: Option<String>,
    pub(crate) topic_prefix: Option<String>,
    pub(crate) queue_capacity: Option<usize>,
    pub(crate) guaranteed_wait: Option<Duration>,
    pub(crate) batch_size: Option<usize>,
    pub(crate) linger: Option<Duration>,
    pub(crate) message_timeout: Option<Duration>,
    pub(crate) message_max_bytes: Option<usize>,
    pub(crate) spool_dir: Option<PathBuf>,
    pub(crate) spool_max_bytes: Option<u64>,
    pub(crate) max_retries: Option<u32>,
    pub(crate) shutdown_timeout: Option<Duration>,
    pub(crate) spool_fsync: Option<FsyncPolicy>,
    pub(crate) max_level: Option<Level>,
    pub(crate) idempotence: Option<bool>,
    pub(crate) kafka_props: BTreeMap<String, String>,
    pub(crate) partition: PartitionPolicy,
    pub(crate) sanitizer: Option<Sanitizer>,
    pub(crate) degraded_after: Option<Duration>,
    pub(crate) spool_mode: Option<SpoolMode>,
    pub(crate) disabled: Option<bool>,
    pub(crate) ignore_env: bool,
}

macro_rules! setter {
    ($(#[$m:meta])* $name:ident: $ty:ty) => {
        $(#[$m])*
        pub fn $name(mut self, value: impl Into<$ty>) -> Self {
            self.$name = Some(value.into());
            self
        }
    };
}

impl Builder {
    setter!(
        /// Kafka `host:port[,host:port]`. Required. Env: `OMNINODE_KAFKA_BOOTSTRAP_SERVERS`.
        bootstrap_servers: String
    );
    setter!(
        /// Service name. Default: the executable's name. Env: `OMNINODE_SERVICE_NAME`.
        service_name: String
    );
    setter!(
        /// Instance id. Default: `<hostname>-<pid>`. Env: `OMNINODE_INSTANCE_ID`.
        instance_id: String
    );
    setter!(
        /// Tenant used when neither the event nor a span names one. Default `default`.
        /// Env: `OMNINODE_TENANT_ID`.
        tenant_id: String
    );
    setter!(
        /// Namespace used when no span names one. Default `default`. Env: `OMNINODE_NAMESPACE`.
        namespace: String
    );
    setter!(
        /// Prefix for every Kafka topic (e.g. `staging.`); `event_type` never carries it.
        /// Default none. Env: `OMNINODE_TOPIC_PREFIX`.
        topic_prefix: String
    );
    setter!(
        /// Queue capacity in events. Default [`DEFAULT_QUEUE_CAPACITY`].
        /// Env: `OMNINODE_QUEUE_CAPACITY`.
        queue_capacity: usize
    );
    setter!(
        /// How long a guaranteed event waits for queue room before going to the spool.
        /// Default [`DEFAULT_GUARANTEED_WAIT`].
        guaranteed_wait: Duration
    );
    setter!(
        /// Largest number of events taken from the queue per worker round, also librdkafka's
        /// `batch.num.messages`. Default [`DEFAULT_BATCH_SIZE`].
        batch_size: usize
    );
    setter!(
        /// librdkafka `linger.ms`. Default [`DEFAULT_LINGER`].
        linger: Duration
    );
    setter!(
        /// librdkafka `message.timeout.ms`, the time it retries one record by itself before
        /// the pipeline classifies the failure. Default [`DEFAULT_MESSAGE_TIMEOUT`].
        message_timeout: Duration
    );
    setter!(
        /// librdkafka `message.max.bytes`; larger events go to the DLQ, truncated.
        /// Default [`DEFAULT_MESSAGE_MAX_BYTES`].
        message_max_bytes: usize
    );
    setter!(
        /// Spool directory. Default `omninode/spool/<service_name>-<cluster>` under the
        /// user's state directory (`$XDG_STATE_HOME`, else `~/.local/state`), where
        /// `<cluster>` is a short hash of the bootstrap servers and topic prefix.
        /// Env: `OMNINODE_SPOOL_DIR`.
        spool_dir: PathBuf
    );
    setter!(
        /// Spool size bound in bytes. Default [`DEFAULT_SPOOL_MAX_BYTES`].
        /// Env: `OMNINODE_SPOOL_MAX_BYTES`.
        spool_max_bytes: u64
    );
    setter!(
        /// When the write-ahead spool is synced to the disk (what a machine crash can lose).
        /// Default [`DEFAULT_SPOOL_FSYNC`](super::DEFAULT_SPOOL_FSYNC).
        /// Env: `OMNINODE_SPOOL_FSYNC`.
        spool_fsync: FsyncPolicy
    );
    setter!(
        /// Retry budget of both retryable classes (SPEC default: 6 transient, 3 dependency).
        /// Env: `OMNINODE_DLQ_MAX_RETRIES`.
        max_retries: u32
    );
    setter!(
        /// Deadline of the shutdown run when the guard is dropped.
        /// Default [`DEFAULT_SHUTDOWN_TIMEOUT`]. Env: `OMNINODE_SHUTDOWN_TIMEOUT_MS`
        /// (`10s`, `500ms`, or milliseconds).
        shutdown_timeout: Duration
    );
    setter!(
        /// How long events may wait without any acknowledgement from the broker before
        /// [`MetricsHandle::health`](crate::MetricsHandle::health) says
        /// [`Degraded`](crate::HealthStatus::Degraded) (and the diagnostics say so).
        /// Default [`DEFAULT_DEGRADED_AFTER`](super::DEFAULT_DEGRADED_AFTER).
        /// Env: `OMNINODE_DEGRADED_AFTER` (`15s`, `500ms`).
        degraded_after: Duration
    );
    setter!(
        /// Where undelivered events are kept: [`SpoolMode::Disk`] (default; survives a
        /// crash) or [`SpoolMode::Memory`] (for a read-only filesystem; **lost when the
        /// process dies**). Env: `OMNINODE_SPOOL` = `disk` or `memory`.
        spool_mode: SpoolMode
    );
    setter!(
        /// `true`: the pipeline does nothing: no Kafka client, no spool, no worker thread;
        /// the layer captures nothing and the guard's flush and shutdown return at once
        /// (for tests and local runs without Kafka, like `OTEL_SDK_DISABLED`). No bootstrap
        /// servers are needed then. Default `false`. Env: `OMNINODE_DISABLED` = `true`.
        disabled: bool
    );
    setter!(
        /// Most verbose level turned into application logs. Default `INFO`.
        max_level: Level
    );
    setter!(
        /// Idempotent producer (`enable.idempotence`). Default `true`.
        idempotence: bool
    );

    /// Sets any librdkafka producer property (e.g. `security.protocol`, `sasl.password`).
    /// Env: `OMNINODE_KAFKA_<NAME>` with `_` for `.`.
    pub fn kafka_property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.kafka_props.insert(name.into(), value.into());
        self
    }

    /// Keys `family` by another payload field than its SPEC default.
    pub fn partition_key(mut self, family: Family, field: impl Into<String>) -> Self {
        self.partition = self.partition.with_key_field(family, field);
        self
    }

    /// Uses a custom sanitizer (extra patterns, allowlist, replacement format).
    pub fn sanitizer(mut self, sanitizer: Sanitizer) -> Self {
        self.sanitizer = Some(sanitizer);
        self
    }

    /// Ignores every `OMNINODE_*` environment variable.
    pub fn ignore_env(mut self) -> Self {
        self.ignore_env = true;
        self
    }

    /// Resolves code settings over the environment over defaults and validates them.
    pub fn resolve(&self) -> Result<Config, BuildError> {
        resolve(self, &env::read(self.ignore_env))
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("service_name", &self.service_name)
            .field("topic_prefix", &self.topic_prefix)
            .field("spool_dir", &self.spool_dir)
            .field("kafka_props", &RedactedProps(&self.kafka_props))
            .finish_non_exhaustive()
    }
}
