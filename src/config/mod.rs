//! Configuration: a builder whose setters override the environment, validated into a
//! [`Config`] by `build()`. Invalid values are a [`BuildError`] that says how to fix them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use tracing::Level;

use crate::contract::catalog::Family;
use crate::contract::partition::PartitionPolicy;
use crate::sanitize::Sanitizer;

/// Default capacity of the queue between callers and the worker, in events.
pub const DEFAULT_QUEUE_CAPACITY: usize = 16_384;
/// Default time a guaranteed event (audit, security, agent) waits for queue room before it
/// is written to the spool instead.
pub const DEFAULT_GUARANTEED_WAIT: Duration = Duration::from_millis(50);
/// Default largest number of events the worker takes from the queue at once.
pub const DEFAULT_BATCH_SIZE: usize = 512;
/// Default time librdkafka waits to fill a batch (`linger.ms`).
pub const DEFAULT_LINGER: Duration = Duration::from_millis(5);
/// Default `message.timeout.ms`: how long librdkafka itself retries one record.
pub const DEFAULT_MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default deadline of the shutdown run when the guard is dropped.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// Default spool size bound.
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = crate::spool::DEFAULT_SPOOL_MAX_BYTES;
/// Default `message.max.bytes` (librdkafka's own default).
pub const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;
pub use crate::contract::limits::STACK_TRACE_CAP;

/// Environment variables read by [`Builder::build`] (code set on the builder wins).
pub mod env {
    /// Comma-separated `host:port` list.
    pub const BOOTSTRAP_SERVERS: &str = "OMNINODE_KAFKA_BOOTSTRAP_SERVERS";
    /// Service name (envelope `source.service_name`).
    pub const SERVICE_NAME: &str = "OMNINODE_SERVICE_NAME";
    /// Instance id (envelope `source.instance_id`).
    pub const INSTANCE_ID: &str = "OMNINODE_INSTANCE_ID";
    /// Default tenant.
    pub const TENANT_ID: &str = "OMNINODE_TENANT_ID";
    /// Default namespace.
    pub const NAMESPACE: &str = "OMNINODE_NAMESPACE";
    /// Prefix of every Kafka topic (not of `event_type`).
    pub const TOPIC_PREFIX: &str = "OMNINODE_TOPIC_PREFIX";
    /// Spool directory.
    pub const SPOOL_DIR: &str = "OMNINODE_SPOOL_DIR";
    /// Spool size bound in bytes.
    pub const SPOOL_MAX_BYTES: &str = "OMNINODE_SPOOL_MAX_BYTES";
    /// Overrides the retry budget of both retryable classes.
    pub const DLQ_MAX_RETRIES: &str = "OMNINODE_DLQ_MAX_RETRIES";
    /// Queue capacity in events.
    pub const QUEUE_CAPACITY: &str = "OMNINODE_QUEUE_CAPACITY";
    /// Default shutdown deadline in milliseconds.
    pub const SHUTDOWN_TIMEOUT_MS: &str = "OMNINODE_SHUTDOWN_TIMEOUT_MS";
    /// Prefix of librdkafka passthrough properties: `OMNINODE_KAFKA_SASL_PASSWORD` becomes
    /// `sasl.password`.
    pub const KAFKA_PREFIX: &str = "OMNINODE_KAFKA_";
}

/// A configuration value that cannot be used, and how to fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No broker address.
    #[error("no Kafka bootstrap servers: set OMNINODE_KAFKA_BOOTSTRAP_SERVERS=host:port or call .bootstrap_servers(\"host:port\")")]
    MissingBootstrapServers,
    /// A bootstrap address without a port or host.
    #[error("bootstrap server `{0}` is not host:port (for example `localhost:9092`)")]
    BadBootstrapServer(String),
    /// A number that does not parse or is out of range.
    #[error("{name}=`{value}` is invalid: {hint}")]
    BadValue {
        /// Setting or environment variable.
        name: String,
        /// The value given (secrets are never echoed here).
        value: String,
        /// How to fix it.
        hint: &'static str,
    },
    /// An empty identity field.
    #[error("{0} must not be empty: set it on the builder or in the environment")]
    Empty(&'static str),
    /// A topic prefix Kafka would reject.
    #[error("topic prefix `{0}` may only contain ASCII letters, digits, '.', '_' and '-'")]
    BadTopicPrefix(String),
    /// The spool directory cannot be used.
    #[error("spool directory {dir}: {source}; set OMNINODE_SPOOL_DIR or .spool_dir(..) to a writable directory of its own")]
    Spool {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: crate::spool::SpoolError,
    },
    /// librdkafka refused the configuration.
    #[error("the Kafka client rejected the configuration: {0}; check the librdkafka properties passed with .kafka_property(..) or OMNINODE_KAFKA_*")]
    Kafka(String),
    /// The worker thread could not be started.
    #[error("could not start the delivery worker thread: {0}")]
    Thread(#[source] std::io::Error),
}

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
    pub(crate) max_level: Option<Level>,
    pub(crate) idempotence: Option<bool>,
    pub(crate) kafka_props: BTreeMap<String, String>,
    pub(crate) partition: PartitionPolicy,
    pub(crate) sanitizer: Option<Sanitizer>,
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
        /// Spool directory. Default `$TMPDIR/omninode-spool/<service_name>`.
        /// Env: `OMNINODE_SPOOL_DIR`.
        spool_dir: PathBuf
    );
    setter!(
        /// Spool size bound in bytes. Default [`DEFAULT_SPOOL_MAX_BYTES`].
        /// Env: `OMNINODE_SPOOL_MAX_BYTES`.
        spool_max_bytes: u64
    );
    setter!(
        /// Retry budget of both retryable classes (SPEC default: 6 transient, 3 dependency).
        /// Env: `OMNINODE_DLQ_MAX_RETRIES`.
        max_retries: u32
    );
    setter!(
        /// Deadline of the shutdown run when the guard is dropped.
        /// Default [`DEFAULT_SHUTDOWN_TIMEOUT`]. Env: `OMNINODE_SHUTDOWN_TIMEOUT_MS`.
        shutdown_timeout: Duration
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
        let vars: BTreeMap<String, String> = if self.ignore_env {
            BTreeMap::new()
        } else {
            std::env::vars()
                .filter(|(k, _)| k.starts_with("OMNINODE_"))
                .collect()
        };
        resolve(self, &vars)
    }
}

/// Whether a librdkafka property holds a secret (redacted in `Debug`): librdkafka's own
/// sensitive properties, and any name the sanitizer's key rules call a secret.
pub fn is_sensitive_property(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    crate::sanitize::names_secret(name)
        || n.contains("password")
        || n.contains("secret")
        || n.contains("sasl.username")
        || n.contains("jaas")
        || n.contains("oauthbearer.config")
        || n.ends_with(".pem")
        || n.contains("key.pem")
        || n.contains("token")
        || n.contains("credential")
        || n.contains("user.info")
}

struct RedactedProps<'a>(&'a BTreeMap<String, String>);

impl fmt::Debug for RedactedProps<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| {
                let shown: &str = if is_sensitive_property(k) {
                    "[REDACTED]"
                } else {
                    v
                };
                (k, shown)
            }))
            .finish()
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
    /// Retry budget override for both retryable classes.
    pub max_retries: Option<u32>,
    /// Drop-guard shutdown deadline.
    pub shutdown_timeout: Duration,
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
            .field("max_retries", &self.max_retries)
            .field("kafka_props", &RedactedProps(&self.kafka_props))
            .finish_non_exhaustive()
    }
}

fn parse_num<T: std::str::FromStr>(
    name: &str,
    value: &str,
    hint: &'static str,
) -> Result<T, BuildError> {
    value.trim().parse().map_err(|_| BuildError::BadValue {
        name: name.to_owned(),
        value: value.to_owned(),
        hint,
    })
}

fn default_instance_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".into());
    format!("{host}-{}", std::process::id())
}

fn default_service_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "unknown-service".into())
}

fn resolve(b: &Builder, vars: &BTreeMap<String, String>) -> Result<Config, BuildError> {
    let var = |k: &str| {
        vars.get(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };

    let bootstrap_servers = b
        .bootstrap_servers
        .clone()
        .or_else(|| var(env::BOOTSTRAP_SERVERS))
        .ok_or(BuildError::MissingBootstrapServers)?;
    for server in bootstrap_servers.split(',') {
        let server = server.trim();
        let server = server.rsplit_once("://").map_or(server, |(_, s)| s);
        let ok = server
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if !ok {
            return Err(BuildError::BadBootstrapServer(server.to_owned()));
        }
    }
    let text = |code: &Option<String>, key: &str, default: &dyn Fn() -> String| {
        code.clone().or_else(|| var(key)).unwrap_or_else(default)
    };
    let service_name = text(&b.service_name, env::SERVICE_NAME, &default_service_name);
    let instance_id = text(&b.instance_id, env::INSTANCE_ID, &default_instance_id);
    let tenant_id = text(&b.tenant_id, env::TENANT_ID, &|| "default".into());
    let namespace = text(&b.namespace, env::NAMESPACE, &|| "default".into());
    for (name, v) in [
        ("service_name", &service_name),
        ("instance_id", &instance_id),
        ("tenant_id", &tenant_id),
        ("namespace", &namespace),
    ] {
        if v.trim().is_empty() {
            return Err(BuildError::Empty(name));
        }
    }
    let topic_prefix = text(&b.topic_prefix, env::TOPIC_PREFIX, &String::new);
    if !topic_prefix
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
    {
        return Err(BuildError::BadTopicPrefix(topic_prefix));
    }
    let queue_capacity = match (b.queue_capacity, var(env::QUEUE_CAPACITY)) {
        (Some(n), _) => n,
        (None, Some(v)) => parse_num(
            env::QUEUE_CAPACITY,
            &v,
            "use a whole number of events, e.g. 16384",
        )?,
        (None, None) => DEFAULT_QUEUE_CAPACITY,
    };
    if queue_capacity == 0 {
        return Err(BuildError::BadValue {
            name: "queue_capacity".into(),
            value: "0".into(),
            hint: "the queue needs room for at least one event",
        });
    }
    let spool_max_bytes = match (b.spool_max_bytes, var(env::SPOOL_MAX_BYTES)) {
        (Some(n), _) => n,
        (None, Some(v)) => parse_num(
            env::SPOOL_MAX_BYTES,
            &v,
            "use a size in bytes, e.g. 268435456",
        )?,
        (None, None) => DEFAULT_SPOOL_MAX_BYTES,
    };
    if spool_max_bytes < 4096 {
        return Err(BuildError::BadValue {
            name: "spool_max_bytes".into(),
            value: spool_max_bytes.to_string(),
            hint: "the spool needs at least 4096 bytes",
        });
    }
    let max_retries = match (b.max_retries, var(env::DLQ_MAX_RETRIES)) {
        (Some(n), _) => Some(n),
        (None, Some(v)) => Some(parse_num(
            env::DLQ_MAX_RETRIES,
            &v,
            "use a whole number of retries, e.g. 3",
        )?),
        (None, None) => None,
    };
    let shutdown_timeout = match (b.shutdown_timeout, var(env::SHUTDOWN_TIMEOUT_MS)) {
        (Some(d), _) => d,
        (None, Some(v)) => Duration::from_millis(parse_num(
            env::SHUTDOWN_TIMEOUT_MS,
            &v,
            "use milliseconds, e.g. 10000",
        )?),
        (None, None) => DEFAULT_SHUTDOWN_TIMEOUT,
    };
    let spool_dir = b
        .spool_dir
        .clone()
        .or_else(|| var(env::SPOOL_DIR).map(PathBuf::from))
        .unwrap_or_else(|| {
            std::env::temp_dir()
                .join("omninode-spool")
                .join(service_name.replace(['/', '\\'], "_"))
        });
    let batch_size = b.batch_size.unwrap_or(DEFAULT_BATCH_SIZE);
    if batch_size == 0 || batch_size > 1_000_000 {
        return Err(BuildError::BadValue {
            name: "batch_size".into(),
            value: batch_size.to_string(),
            hint: "use 1 ..= 1000000",
        });
    }
    let message_max_bytes = b.message_max_bytes.unwrap_or(DEFAULT_MESSAGE_MAX_BYTES);
    if !(1000..=1_000_000_000).contains(&message_max_bytes) {
        return Err(BuildError::BadValue {
            name: "message_max_bytes".into(),
            value: message_max_bytes.to_string(),
            hint: "librdkafka accepts 1000 ..= 1000000000",
        });
    }
    let message_timeout = b.message_timeout.unwrap_or(DEFAULT_MESSAGE_TIMEOUT);
    if message_timeout < Duration::from_millis(100) {
        return Err(BuildError::BadValue {
            name: "message_timeout".into(),
            value: format!("{message_timeout:?}"),
            hint: "use at least 100 ms",
        });
    }

    let mut kafka_props = BTreeMap::new();
    for (k, v) in vars {
        if let Some(rest) = k.strip_prefix(env::KAFKA_PREFIX) {
            if rest != "BOOTSTRAP_SERVERS" {
                kafka_props.insert(rest.to_ascii_lowercase().replace('_', "."), v.clone());
            }
        }
    }
    kafka_props.extend(b.kafka_props.clone());

    Ok(Config {
        bootstrap_servers,
        service_name,
        instance_id,
        tenant_id,
        namespace,
        topic_prefix,
        queue_capacity,
        guaranteed_wait: b.guaranteed_wait.unwrap_or(DEFAULT_GUARANTEED_WAIT),
        batch_size,
        linger: b.linger.unwrap_or(DEFAULT_LINGER),
        message_timeout,
        message_max_bytes,
        spool_dir,
        spool_max_bytes,
        max_retries,
        shutdown_timeout,
        max_level: b.max_level.unwrap_or(Level::INFO),
        idempotence: b.idempotence.unwrap_or(true),
        kafka_props,
        partition: b.partition.clone(),
        sanitizer: b.sanitizer.clone().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn code_overrides_env_overrides_default() {
        let env = vars(&[
            (env::BOOTSTRAP_SERVERS, "envhost:9092"),
            (env::SERVICE_NAME, "from-env"),
            (env::QUEUE_CAPACITY, "100"),
            (env::DLQ_MAX_RETRIES, "2"),
            ("OMNINODE_KAFKA_SASL_PASSWORD", "hunter2"),
        ]);
        let b = Builder::default().service_name("from-code");
        let c = resolve(&b, &env).unwrap();
        assert_eq!(c.bootstrap_servers, "envhost:9092");
        assert_eq!(c.service_name, "from-code");
        assert_eq!(c.queue_capacity, 100);
        assert_eq!(c.max_retries, Some(2));
        assert_eq!(
            c.kafka_props.get("sasl.password").map(String::as_str),
            Some("hunter2")
        );
        assert_eq!(c.tenant_id, "default");
    }

    #[test]
    fn bad_values_say_how_to_fix() {
        let cases: Vec<(Builder, BTreeMap<String, String>, &str)> = vec![
            (
                Builder::default(),
                vars(&[]),
                "OMNINODE_KAFKA_BOOTSTRAP_SERVERS",
            ),
            (
                Builder::default().bootstrap_servers("nohost"),
                vars(&[]),
                "host:port",
            ),
            (
                Builder::default().bootstrap_servers("h:1"),
                vars(&[(env::QUEUE_CAPACITY, "lots")]),
                "whole number",
            ),
            (
                Builder::default()
                    .bootstrap_servers("h:1")
                    .queue_capacity(0usize),
                vars(&[]),
                "at least one",
            ),
            (
                Builder::default()
                    .bootstrap_servers("h:1")
                    .topic_prefix("bad prefix/"),
                vars(&[]),
                "topic prefix",
            ),
            (
                Builder::default().bootstrap_servers("h:1").tenant_id(""),
                vars(&[]),
                "tenant_id must not be empty",
            ),
        ];
        for (b, env, needle) in cases {
            let e = resolve(&b, &env).unwrap_err().to_string();
            assert!(e.contains(needle), "{e:?} should mention {needle:?}");
        }
    }

    #[test]
    fn debug_redacts_secret_properties() {
        let b = Builder::default()
            .bootstrap_servers("h:1")
            .kafka_property("sasl.password", "hunter2-secret-value")
            .kafka_property("ssl.key.pem", "-----BEGIN PRIVATE KEY-----abc")
            // Not librdkafka's, but passed along by users: names the key rules know.
            .kafka_property("schema.registry.api.key", "apikey-value-1")
            .kafka_property("basic.auth.user.info", "bob:basic-pass-2")
            .kafka_property("client.id", "visible");
        let c = resolve(&b, &BTreeMap::new()).unwrap();
        for text in [format!("{b:?}"), format!("{c:?}"), format!("{c:#?}")] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(!text.contains("BEGIN PRIVATE"), "{text}");
            assert!(!text.contains("apikey-value-1"), "{text}");
            assert!(!text.contains("basic-pass-2"), "{text}");
            assert!(text.contains("visible"), "{text}");
        }
    }
}
