//! How the operations tools reach a cluster ([`ClientOptions`]: the broker list plus any
//! librdkafka property, like kcat's `-X`), and what goes wrong doing so ([`OpsError`]).

use std::fmt;
use std::time::Duration;

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::KafkaError;

use crate::config::is_sensitive_property;

/// Default time a broker has to answer before a tool gives up with
/// [`OpsError::Unreachable`].
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The cluster the operations tools talk to. The same properties reach every client a tool
/// makes (consumer, producer, admin), so SASL/SSL clusters work everywhere.
#[derive(Clone)]
pub struct ClientOptions {
    /// `host:port[,host:port]`.
    pub bootstrap_servers: String,
    /// librdkafka properties (`security.protocol`, `sasl.password`, ...), applied last.
    pub properties: Vec<(String, String)>,
    /// How long a broker has to answer a request (default [`DEFAULT_CLIENT_TIMEOUT`]).
    pub timeout: Duration,
}

impl ClientOptions {
    /// Options for a broker list, no extra property, the default timeout.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        ClientOptions {
            bootstrap_servers: bootstrap_servers.into(),
            properties: Vec::new(),
            timeout: DEFAULT_CLIENT_TIMEOUT,
        }
    }

    /// Adds a librdkafka property.
    pub fn property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((name.into(), value.into()));
        self
    }

    /// The librdkafka configuration every client starts from; librdkafka's own logging is
    /// silenced (errors reach the caller as [`OpsError`]).
    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers)
            .set(
                "socket.timeout.ms",
                self.timeout.as_millis().max(10).to_string(),
            )
            .set_log_level(RDKafkaLogLevel::Emerg);
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    /// A pipeline configuration pointed at the same cluster with the same properties, for
    /// the tools that produce (replay, the monitor's alerts, the consumer-side DLQ).
    pub fn pipeline_builder(&self, service_name: &str) -> crate::Builder {
        self.properties.iter().fold(
            crate::builder()
                .ignore_env()
                .bootstrap_servers(self.bootstrap_servers.clone())
                .service_name(service_name),
            |b, (k, v)| b.kafka_property(k.clone(), v.clone()),
        )
    }

    pub(crate) fn unreachable(&self) -> OpsError {
        OpsError::Unreachable {
            bootstrap: self.bootstrap_servers.clone(),
            timeout: self.timeout,
        }
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let props: Vec<(&str, &str)> = self
            .properties
            .iter()
            .map(|(k, v)| {
                let shown = if is_sensitive_property(k) {
                    "[REDACTED]"
                } else {
                    v.as_str()
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("ClientOptions")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("properties", &props)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Why an operations tool could not do its job, and what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpsError {
    /// No broker answered in time.
    #[error("no broker answered at {bootstrap} within {timeout:?}: check --bootstrap-servers (or OMNINODE_KAFKA_BOOTSTRAP_SERVERS) and, on a secured cluster, the -X security.protocol / sasl.* / ssl.* properties")]
    Unreachable {
        /// The broker list tried.
        bootstrap: String,
        /// How long it waited.
        timeout: Duration,
    },
    /// A named topic is not on the broker.
    #[error("topic `{0}` does not exist: `omninode-events topics list` shows what the broker has (is --topic-prefix right?)")]
    NoSuchTopic(String),
    /// librdkafka refused the configuration (the property's value is never echoed).
    #[error("the Kafka client rejected its configuration: {0}; check the -X properties")]
    Config(String),
    /// A Kafka request failed.
    #[error("{what} failed: {message}")]
    Kafka {
        /// What was being done.
        what: &'static str,
        /// What librdkafka said.
        message: String,
    },
    /// Reading input or writing output failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being read or written.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl OpsError {
    /// A Kafka failure while doing `what`; a configuration error keeps the property's
    /// value out of the message (it may be a password).
    pub(crate) fn kafka(what: &'static str, e: KafkaError) -> OpsError {
        match e {
            KafkaError::ClientConfig(_, desc, key, _) => {
                OpsError::Config(format!("{desc} (property `{key}`)"))
            }
            other => OpsError::Kafka {
                what,
                message: other.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secret_properties() {
        let o = ClientOptions::new("h:1")
            .property("sasl.password", "hunter2")
            .property("security.protocol", "SASL_SSL");
        let text = format!("{o:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("SASL_SSL"), "{text}");
    }
}
