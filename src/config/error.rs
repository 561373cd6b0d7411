//! [`BuildError`]: a configuration value that cannot be used, and how to fix it.

use std::path::PathBuf;

/// A configuration value that cannot be used, and how to fix it.
///
/// Its `Debug` form is its message (what `fn main() -> Result<..>` prints).
#[derive(thiserror::Error)]
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
    #[error("spool directory {dir}: {source}. Either set OMNINODE_SPOOL_DIR (or .spool_dir(..)) to a writable directory of this service's own, or set OMNINODE_SPOOL=memory (or .spool_mode(SpoolMode::Memory)) to keep undelivered events in memory only, where they are lost if the process dies")]
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

impl std::fmt::Debug for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl BuildError {
    /// [`BuildError::BadValue`] for the setting or variable `name`.
    pub(super) fn bad_value(name: &str, value: impl Into<String>, hint: &'static str) -> Self {
        BuildError::BadValue {
            name: name.to_owned(),
            value: value.into(),
            hint,
        }
    }
}
