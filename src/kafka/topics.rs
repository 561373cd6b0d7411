//! Topic provisioning: every catalog topic and its `.dlq` twin, through the Kafka admin API.
//! Brokers in production often disable auto-creation, so the library does not rely on it.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::RDKafkaErrorCode;

use crate::contract::catalog::CATALOG;
use crate::contract::dlq::DLQ_SUFFIX;

/// How to create the topics.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    /// `host:port[,..]`.
    pub bootstrap_servers: String,
    /// Prefix prepended to every topic.
    pub prefix: String,
    /// Partitions per topic (default 3).
    pub partitions: i32,
    /// Replication factor (default 1).
    pub replication: i32,
    /// Operation timeout (default 30 s).
    pub timeout: Duration,
}

impl TopicSpec {
    /// Defaults for a broker address.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        TopicSpec {
            bootstrap_servers: bootstrap_servers.into(),
            prefix: String::new(),
            partitions: 3,
            replication: 1,
            timeout: Duration::from_secs(30),
        }
    }
}

/// What provisioning did, per topic.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TopicsReport {
    /// Topics created now.
    pub created: Vec<String>,
    /// Topics that already existed.
    pub existing: Vec<String>,
}

/// A provisioning failure.
#[derive(Debug, thiserror::Error)]
#[error("creating topic {topic}: {message}")]
pub struct TopicError {
    /// The topic (or `*` for a client-level failure).
    pub topic: String,
    /// What the broker or client said.
    pub message: String,
}

/// Every topic the catalog needs: 19 event topics and 19 `.dlq` twins, with the prefix.
pub fn catalog_topics(prefix: &str) -> Vec<String> {
    CATALOG
        .iter()
        .flat_map(|k| {
            [
                format!("{prefix}{}", k.event_type),
                format!("{prefix}{}{DLQ_SUFFIX}", k.event_type),
            ]
        })
        .collect()
}

fn admin(bootstrap: &str) -> Result<AdminClient<DefaultClientContext>, TopicError> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set_log_level(RDKafkaLogLevel::Emerg)
        .create()
        .map_err(|e| TopicError {
            topic: "*".into(),
            message: e.to_string(),
        })
}

/// Creates every catalog topic and its `.dlq` twin. An existing topic is fine.
pub fn create_topics(spec: &TopicSpec) -> Result<TopicsReport, TopicError> {
    let client = admin(&spec.bootstrap_servers)?;
    let names = catalog_topics(&spec.prefix);
    let new: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| {
            NewTopic::new(
                n,
                spec.partitions,
                TopicReplication::Fixed(spec.replication),
            )
        })
        .collect();
    let opts = AdminOptions::new()
        .operation_timeout(Some(spec.timeout))
        .request_timeout(Some(spec.timeout));
    // The admin client's futures are completed by librdkafka's own background thread, so
    // this thread only waits: no async runtime is needed.
    let created = client.create_topics(new.iter(), &opts);
    let results = futures_executor::block_on(created).map_err(|e| TopicError {
        topic: "*".into(),
        message: e.to_string(),
    })?;
    let mut report = TopicsReport::default();
    for r in results {
        match r {
            Ok(t) => report.created.push(t),
            Err((t, RDKafkaErrorCode::TopicAlreadyExists)) => report.existing.push(t),
            Err((topic, code)) => {
                return Err(TopicError {
                    topic,
                    message: code.to_string(),
                })
            }
        }
    }
    Ok(report)
}

/// Lists the topics the broker has.
pub fn list_topics(bootstrap_servers: &str, timeout: Duration) -> Result<Vec<String>, TopicError> {
    let client = admin(bootstrap_servers)?;
    let md = client
        .inner()
        .fetch_metadata(None, timeout)
        .map_err(|e| TopicError {
            topic: "*".into(),
            message: e.to_string(),
        })?;
    let mut names: Vec<String> = md.topics().iter().map(|t| t.name().to_owned()).collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirty_eight_topics() {
        let t = catalog_topics("stg.");
        assert_eq!(t.len(), 38);
        assert!(t.contains(&"stg.omninode.logging.audit.v1.dlq".to_string()));
    }
}
