//! Shared test helpers: broker address, topic provisioning, a pipeline per test, and a
//! consumer that reads records back through librdkafka.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;
use tracing_omninode::topics::{create_topics, TopicSpec};

/// The broker started by `scripts/test` (`OMNINODE_TEST_BOOTSTRAP`). Under CI a missing
/// variable is a failure, not a skip; locally the test starts one with `scripts/broker`.
pub fn broker() -> String {
    if let Ok(addr) = std::env::var("OMNINODE_TEST_BOOTSTRAP") {
        return addr;
    }
    if std::env::var_os("CI").is_some() {
        panic!("OMNINODE_TEST_BOOTSTRAP is not set: run the suite through scripts/test");
    }
    let out = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/broker"))
        .arg("start")
        .output()
        .expect("scripts/broker start");
    assert!(
        out.status.success(),
        "scripts/broker start failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A topic prefix unique to one test, so tests sharing a broker never see each other.
pub fn unique_prefix(name: &str) -> String {
    format!(
        "t{}-{name}.",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Creates every catalog topic (and `.dlq`) under `prefix`.
pub fn provision(bootstrap: &str, prefix: &str) {
    let mut spec = TopicSpec::new(bootstrap);
    spec.prefix = prefix.to_owned();
    spec.partitions = 1;
    // Generous: topic creation on tansu slows down a lot on a busy 2-core machine.
    spec.timeout = Duration::from_secs(90);
    let report = create_topics(&spec).expect("create topics");
    assert_eq!(report.created.len() + report.existing.len(), 38);
}

/// A fresh spool directory.
pub fn spool_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// A builder with test defaults: no environment, short timeouts.
pub fn builder(
    bootstrap: &str,
    prefix: &str,
    spool: &std::path::Path,
) -> tracing_omninode::Builder {
    tracing_omninode::builder()
        .ignore_env()
        .bootstrap_servers(bootstrap)
        .topic_prefix(prefix)
        .service_name("test-svc")
        .instance_id("test-1")
        .tenant_id("acme")
        .namespace("test")
        .spool_dir(PathBuf::from(spool))
        .message_timeout(Duration::from_secs(5))
}

/// One consumed record.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub topic: String,
    pub key: Option<String>,
    pub headers: HashMap<String, String>,
    pub value: Value,
}

/// Reads `topics` from the beginning until `want` records arrived or `timeout` passed.
pub fn consume(
    bootstrap: &str,
    topics: &[String],
    want: usize,
    timeout: Duration,
) -> Vec<Consumed> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("test-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        tpl.add_partition_offset(t, 0, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    while out.len() < want && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            {
                let mut headers = HashMap::new();
                if let Some(h) = m.headers() {
                    for hh in h.iter() {
                        headers.insert(
                            hh.key.to_owned(),
                            String::from_utf8_lossy(hh.value.unwrap_or_default()).into_owned(),
                        );
                    }
                }
                out.push(Consumed {
                    topic: m.topic().to_owned(),
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    headers,
                    value: serde_json::from_slice(m.payload().unwrap_or_default())
                        .unwrap_or(Value::Null),
                });
            }
        }
    }
    out
}

/// Every catalog topic under `prefix` (not the DLQs).
pub fn event_topics(prefix: &str) -> Vec<String> {
    tracing_omninode::catalog::CATALOG
        .iter()
        .map(|k| format!("{prefix}{}", k.event_type))
        .collect()
}

/// Every DLQ topic under `prefix`.
pub fn dlq_topics(prefix: &str) -> Vec<String> {
    event_topics(prefix)
        .into_iter()
        .map(|t| format!("{t}.dlq"))
        .collect()
}
