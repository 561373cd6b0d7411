//! Shared test helpers: broker address (real or a librdkafka mock cluster), topic
//! provisioning, a pipeline per test, waiting on its metrics, a consumer that reads records
//! back through librdkafka, and reading a spool directory back.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;
use tracing_omninode::spool::{Spool, SpoolLimits};
use tracing_omninode::topics::{create_topics, TopicSpec};
use tracing_omninode::wire::WireRecord;
use tracing_omninode::{Guard, Metrics};

/// The audit event type (and topic name, without prefix).
pub const AUDIT: &str = "omninode.logging.audit.v1";

/// The application-log event type (and topic name, without prefix).
pub const APP: &str = "omninode.logging.application.v1";

/// A librdkafka mock cluster, as the tests use it.
pub type Mock = MockCluster<'static, DefaultProducerContext>;

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

/// Emits one audit event (`document.read` by `alice` on `resource`) through the current
/// subscriber.
pub fn audit(resource: &str) {
    tracing_omninode::audit!(
        action = "document.read",
        actor = "alice",
        resource = resource,
        outcome = "success"
    );
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
    pub offset: i64,
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
                    offset: m.offset(),
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

/// A one-broker mock cluster with the audit topic and its DLQ (1 partition each).
pub fn mock(prefix: &str) -> Mock {
    mock_cluster(prefix, &[AUDIT])
}

/// A one-broker mock cluster with the topic of each of `event_types` under `prefix` and
/// its DLQ (1 partition each).
pub fn mock_cluster(prefix: &str, event_types: &[&str]) -> Mock {
    let mock = MockCluster::new(1).expect("mock cluster");
    for t in event_types {
        mock.create_topic(&format!("{prefix}{t}"), 1, 1).unwrap();
        mock.create_topic(&format!("{prefix}{t}.dlq"), 1, 1)
            .unwrap();
    }
    mock
}

/// A port nobody listens on: connections are refused at once.
pub fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    addr
}

/// Polls `cond` on the guard's metrics until it holds or `timeout` passes; returns the last
/// metrics read.
pub fn wait_for(guard: &Guard, timeout: Duration, cond: impl Fn(&Metrics) -> bool) -> Metrics {
    let deadline = Instant::now() + timeout;
    loop {
        let m = guard.metrics();
        if cond(&m) || Instant::now() >= deadline {
            return m;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The number of records ever written to partition 0 of `topic` (its high watermark).
/// Checks that nothing was ever deleted from it (its low watermark is 0).
pub fn records_on(bootstrap: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer");
    let (low, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .expect("watermarks");
    assert_eq!(low, 0, "nothing is ever deleted from {topic}");
    high
}

/// Reads every record on partition 0 of `topic` (as many as [`records_on`] counts), within
/// `timeout`, and checks that all of them arrived.
pub fn consume_all(bootstrap: &str, topic: &str, timeout: Duration) -> Vec<Consumed> {
    let n = records_on(bootstrap, topic) as usize;
    let got = consume(bootstrap, &[topic.to_owned()], n, timeout);
    assert_eq!(got.len(), n, "read back all of {topic}");
    got
}

/// Whether the spool in `dir` holds no records.
pub fn spool_is_empty(dir: &Path) -> bool {
    Spool::open(dir, SpoolLimits::default()).unwrap().is_empty()
}

/// Every record in a spool directory, oldest first, read through the public spool API;
/// checks that none is corrupt. Removes the segments it read (use it once the pipeline is
/// shut down).
pub fn drain_spool(dir: &Path) -> Vec<WireRecord> {
    let mut spool = Spool::open(dir, SpoolLimits::default()).unwrap();
    let mut out = Vec::new();
    while let Some(seg) = spool.oldest_sealed() {
        let read = spool.read_segment(seg).unwrap();
        assert_eq!(read.corrupt, 0, "{seg}");
        out.extend(
            read.records
                .iter()
                .map(|b| WireRecord::from_bytes(b).expect("a spooled WireRecord")),
        );
        spool.remove_segment(seg).unwrap();
    }
    out
}
