//! Every delivery-error class of SPEC §3, driven for real: librdkafka's `MockCluster` injects
//! the broker error into the Produce response, and the test checks where the event ends up
//! (retried and delivered, dead-lettered, skipped, spooled) and what the counters say.
//!
//! Each test owns its own `MockCluster` (injected errors are per cluster) and topic prefix.

mod common;

use std::time::Duration;

use common::AUDIT;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use serde_json::Value;
use tracing_omninode::validate::validate_envelope;
use tracing_subscriber::prelude::*;

/// Emits one audit event whose `resource` is `resource`, through a pipeline's layer.
fn audit_with(layer: tracing_omninode::OmniNodeLayer, resources: &[&str]) {
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for resource in resources {
            tracing_omninode::audit!(
                action = "document.delete",
                actor = "alice",
                resource = *resource,
                outcome = "success"
            );
        }
    });
}

fn resource() -> String {
    format!("doc/{}", uuid::Uuid::new_v4())
}

fn is_rfc3339_micros(s: &str) -> bool {
    regex::Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
        .unwrap()
        .is_match(s)
}

/// Checks a consumed DLQ record against SPEC §3 and returns its value.
fn check_dlq_record(
    rec: &common::Consumed,
    prefix: &str,
    class: &str,
    code: &str,
    resource: &str,
) -> Value {
    let topic = format!("{prefix}{AUDIT}");
    assert_eq!(rec.topic, format!("{topic}.dlq"));
    let v = &rec.value;
    assert_eq!(v["original_topic"], topic.as_str(), "{v:#}");
    assert_eq!(v["original_event_truncated"], false, "{v:#}");
    let original = &v["original_event"];
    assert!(
        original.is_object(),
        "original_event is the envelope: {v:#}"
    );
    assert_eq!(original["event_type"], AUDIT);
    assert_eq!(original["payload"]["resource"], resource);
    assert_eq!(original["tenant_id"], "acme");
    assert_eq!(v["error"]["class"], class, "{v:#}");
    assert_eq!(v["error"]["code"], code, "{v:#}");
    assert_eq!(v["error"]["retryable"], false, "{v:#}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v:#}"
    );
    assert_eq!(v["retry_count"], 0, "{v:#}");
    for field in ["first_failed_at", "dead_lettered_at"] {
        let t = v[field].as_str().unwrap_or_default();
        assert!(is_rfc3339_micros(t), "{field} = {t:?}");
    }
    assert!(v["first_failed_at"].as_str() <= v["dead_lettered_at"].as_str());
    assert_eq!(v["producer"]["service_name"], "test-svc");
    assert_eq!(v["producer"]["instance_id"], "test-1");

    // Same key as the original (audit events are keyed by tenant), original headers kept,
    // plus the four x-dlq-* headers.
    assert_eq!(rec.key.as_deref(), Some("acme"));
    let h = &rec.headers;
    assert_eq!(h["x-event-id"], original["event_id"].as_str().unwrap());
    assert_eq!(h["x-event-type"], AUDIT);
    assert_eq!(
        h["x-correlation-id"],
        original["correlation_id"].as_str().unwrap()
    );
    assert_eq!(h["x-tenant"], "acme");
    assert_eq!(h["x-sequence"], original["sequence"].to_string());
    assert!(h["x-schema-hash"].starts_with("sha256:"));
    assert!(h.contains_key("x-traceparent"));
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["x-dlq-error-class"], class);
    assert_eq!(h["x-dlq-error-code"], code);
    assert_eq!(h["x-dlq-retry-count"], "0");
    assert_eq!(h["x-dlq-original-topic"], topic);
    v.clone()
}

/// NETWORK_EXCEPTION is not in librdkafka's retry list, so it reaches the delivery report;
/// our taxonomy calls it RETRYABLE_TRANSIENT, so the pipeline retries it itself.
#[test]
fn transient_error_is_retried_then_delivered_exactly_once() {
    let prefix = common::unique_prefix("transient");
    let mock = common::mock(&prefix);
    let bootstrap = mock.bootstrap_servers();
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&bootstrap, &prefix, spool.path())
        .build()
        .unwrap();
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION],
    );
    let res = resource();
    audit_with(layer, &[&res]);

    let m = common::wait_for(&guard, Duration::from_secs(10), |m| m.delivered >= 1);
    assert_eq!(m.delivered, 1, "{m:?}");
    assert!(
        m.retried >= 1,
        "the failure was retried by the pipeline: {m:?}"
    );
    assert_eq!((m.dead_lettered, m.spooled, m.skipped), (0, 0, 0), "{m:?}");
    let report = guard.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(report.delivered, 1, "{report:?}");

    let topic = format!("{prefix}{AUDIT}");
    assert_eq!(
        common::records_on(&bootstrap, &topic),
        1,
        "exactly once on {topic}"
    );
    let got = common::consume(&bootstrap, &[topic], 1, Duration::from_secs(10));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].value["payload"]["resource"], res.as_str());
    validate_envelope(&got[0].value).unwrap();
    assert_eq!(
        common::records_on(&bootstrap, &format!("{prefix}{AUDIT}.dlq")),
        0
    );
}

/// UNKNOWN_SERVER_ERROR reaches the delivery report and is RETRYABLE_DEPENDENCY: it is
/// retried up to the budget, then spooled (not dead-lettered), then replayed from the
/// spool once the broker answers again, and delivered exactly once.
#[test]
fn dependency_error_exhausts_its_retries_then_spools_and_replays() {
    let prefix = common::unique_prefix("dependency");
    let mock = common::mock(&prefix);
    let bootstrap = mock.bootstrap_servers();
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&bootstrap, &prefix, spool.path())
        .max_retries(2u32)
        .build()
        .unwrap();
    // First attempt + 2 retries all fail.
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN; 3],
    );
    let res = resource();
    audit_with(layer, &[&res]);

    // Spooled after the budget; the broker answers again (the injected errors are used
    // up), so the spool is replayed at once and the event delivered from there.
    let m = common::wait_for(&guard, Duration::from_secs(20), |m| m.replayed >= 1);
    assert_eq!(m.retried, 2, "exactly the configured budget: {m:?}");
    assert_eq!(m.spooled, 1, "{m:?}");
    assert_eq!((m.replayed, m.delivered), (1, 1), "{m:?}");
    assert_eq!(
        (m.dead_lettered, m.skipped),
        (0, 0),
        "spooled, not dead-lettered: {m:?}"
    );
    let report = guard.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(
        (report.delivered, report.dead_lettered),
        (1, 0),
        "{report:?}"
    );

    let topic = format!("{prefix}{AUDIT}");
    assert_eq!(
        common::records_on(&bootstrap, &topic),
        1,
        "exactly once on {topic}"
    );
    let got = common::consume(&bootstrap, &[topic], 1, Duration::from_secs(10));
    assert_eq!(got[0].value["payload"]["resource"], res.as_str());
    assert_eq!(
        common::records_on(&bootstrap, &format!("{prefix}{AUDIT}.dlq")),
        0
    );
    assert!(
        common::spool_is_empty(spool.path()),
        "the replayed segment was removed"
    );
}

/// A broker that is down surfaces as MessageTimedOut (RETRYABLE_DEPENDENCY) after
/// `message.timeout.ms`; the guaranteed event then waits in the spool.
#[test]
fn broker_down_times_out_and_the_guaranteed_event_is_spooled() {
    let prefix = common::unique_prefix("down");
    let mock = common::mock(&prefix);
    let bootstrap = mock.bootstrap_servers();
    let spool_dir = common::spool_dir();
    let (layer, guard) = common::builder(&bootstrap, &prefix, spool_dir.path())
        .message_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    mock.broker_down(1).unwrap();
    let res = resource();
    audit_with(layer, &[&res]);

    let m = common::wait_for(&guard, Duration::from_secs(20), |m| m.spooled >= 1);
    assert_eq!(
        m.spooled, 1,
        "spooled after the timeout, before shutdown: {m:?}"
    );
    assert_eq!(
        (m.delivered, m.dead_lettered, m.dropped),
        (0, 0, 0),
        "{m:?}"
    );
    let report = guard.shutdown(Duration::from_secs(3)).unwrap();
    assert!(report.spooled >= 1, "{report:?}");
    assert_eq!(report.delivered, 0, "{report:?}");

    let found = common::drain_spool(spool_dir.path());
    let ours: Vec<_> = found
        .iter()
        .filter(|r| r.value.contains(res.as_str()))
        .collect();
    assert_eq!(ours.len(), 1, "the event is in the spool once: {found:?}");
    assert_eq!(ours[0].topic, format!("{prefix}{AUDIT}"));
    let v: Value = serde_json::from_str(&ours[0].value).unwrap();
    validate_envelope(&v).unwrap();
}

#[test]
fn message_size_too_large_is_dead_lettered_with_the_spec_record() {
    let prefix = common::unique_prefix("toolarge");
    let mock = common::mock(&prefix);
    let bootstrap = mock.bootstrap_servers();
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&bootstrap, &prefix, spool.path())
        .build()
        .unwrap();
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
    );
    let res = resource();
    // A secret in the event: the DLQ carries the sanitized envelope, never the secret.
    const SECRET: &str = "Zq8vT2mK9pL4xW7r";
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing_omninode::audit!(
            action = "document.delete",
            actor = "alice",
            resource = res.as_str(),
            outcome = "success",
            db_password = SECRET
        );
    });

    let m = common::wait_for(&guard, Duration::from_secs(10), |m| m.dead_lettered >= 1);
    assert_eq!(m.dead_lettered, 1, "{m:?}");
    assert_eq!((m.delivered, m.retried, m.spooled), (0, 0, 0), "{m:?}");
    let report = guard.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(
        (report.dead_lettered, report.delivered),
        (1, 0),
        "{report:?}"
    );

    let topic = format!("{prefix}{AUDIT}");
    assert_eq!(
        common::records_on(&bootstrap, &topic),
        0,
        "not on the original topic"
    );
    let dlq = format!("{topic}.dlq");
    assert_eq!(common::records_on(&bootstrap, &dlq), 1);
    let got = common::consume(&bootstrap, &[dlq], 1, Duration::from_secs(10));
    assert_eq!(got.len(), 1);
    let v = check_dlq_record(
        &got[0],
        &prefix,
        "NON_RETRYABLE_VALIDATION",
        "MessageSizeTooLarge",
        &res,
    );
    validate_envelope(&v["original_event"]).unwrap();
    let redacted = v["original_event"]["payload"]["db_password"]
        .as_str()
        .unwrap_or_default();
    assert!(redacted.starts_with("[REDACTED"), "{v:#}");
    assert!(!v.to_string().contains(SECRET), "{v:#}");
    assert!(got[0].headers.values().all(|h| !h.contains(SECRET)));
}

/// TOPIC_AUTHORIZATION_FAILED is NON_RETRYABLE_POLICY: straight to the DLQ. (librdkafka
/// keeps the topic marked failed afterwards, so this test has a topic of its own.)
#[test]
fn topic_authorization_failed_is_dead_lettered_as_policy() {
    let prefix = common::unique_prefix("authz");
    let mock = common::mock(&prefix);
    let bootstrap = mock.bootstrap_servers();
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&bootstrap, &prefix, spool.path())
        .build()
        .unwrap();
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED],
    );
    let res = resource();
    audit_with(layer, &[&res]);

    let m = common::wait_for(&guard, Duration::from_secs(10), |m| m.dead_lettered >= 1);
    assert_eq!(m.dead_lettered, 1, "{m:?}");
    assert_eq!((m.delivered, m.retried, m.spooled), (0, 0, 0), "{m:?}");
    assert_eq!(m.pipeline_errors, 0, "policy, not security: {m:?}");
    let report = guard.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(report.dead_lettered, 1, "{report:?}");

    let topic = format!("{prefix}{AUDIT}");
    assert_eq!(common::records_on(&bootstrap, &topic), 0);
    let dlq = format!("{topic}.dlq");
    let got = common::consume(&bootstrap, &[dlq], 1, Duration::from_secs(10));
    assert_eq!(got.len(), 1);
    let v = check_dlq_record(
        &got[0],
        &prefix,
        "NON_RETRYABLE_POLICY",
        "TopicAuthorizationFailed",
        &res,
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("authorization"),
        "{v:#}"
    );
}

/// OUT_OF_ORDER_SEQUENCE_NUMBER is NON_RETRYABLE_IDEMPOTENCY: a re-send could duplicate,
/// so the event is counted as skipped and never produced again (not to the DLQ either), and
/// the gap it may leave in `sequence` is reported in-stream (`OMNINODE_EVENT_SKIPPED` with
/// the skipped sequence and event id).
#[test]
fn out_of_order_sequence_is_skipped_reported_and_not_resent() {
    let prefix = common::unique_prefix("oos");
    let mock = common::mock_cluster(&prefix, &[AUDIT, common::APP]);
    let bootstrap = mock.bootstrap_servers();
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&bootstrap, &prefix, spool.path())
        .build()
        .unwrap();
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
    );
    audit_with(layer, &[&resource()]);

    // librdkafka also made the producer fatal: it is rebuilt right away, not only when
    // the next send fails.
    let m = common::wait_for(&guard, Duration::from_secs(10), |m| {
        m.skipped >= 1 && m.producer_rebuilds >= 1 && m.delivered >= 1
    });
    assert_eq!((m.skipped, m.producer_rebuilds), (1, 1), "{m:?}");
    // Give a wrong re-send the time to happen before checking it did not.
    std::thread::sleep(Duration::from_millis(500));
    let m = guard.metrics();
    assert_eq!(
        (
            m.skipped,
            m.delivered,
            m.retried,
            m.dead_lettered,
            m.spooled
        ),
        (1, 1, 0, 0, 0),
        "only the skip report is delivered: {m:?}"
    );
    let report = guard.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(report.skipped, 1, "{report:?}");
    assert_eq!((report.delivered, report.spooled), (1, 0), "{report:?}");
    let topic = format!("{prefix}{AUDIT}");
    assert_eq!(common::records_on(&bootstrap, &topic), 0, "never re-sent");
    assert_eq!(common::records_on(&bootstrap, &format!("{topic}.dlq")), 0);
    assert!(common::spool_is_empty(spool.path()), "not spooled either");

    let reports = common::consume_all(
        &bootstrap,
        &format!("{prefix}{}", common::APP),
        Duration::from_secs(10),
    );
    assert_eq!(reports.len(), 1, "one in-stream report");
    let r = &reports[0].value;
    let p = &r["payload"];
    assert_eq!(p["code"], "OMNINODE_EVENT_SKIPPED", "{r}");
    assert_eq!(p["level"], "WARN", "{r}");
    let c = &p["context"];
    assert_eq!(c["reason"], "idempotency", "{r}");
    assert_eq!(c["event_type"], AUDIT, "{r}");
    assert_eq!(c["error_code"], "OutOfOrderSequenceNumber", "{r}");
    // The audit event was the first captured (sequence 1); the report comes after it.
    assert_eq!(c["skipped_sequence"], 1, "{r}");
    assert!(r["sequence"].as_u64().unwrap() > 1, "{r}");
    assert!(
        c["event_id"].as_str().is_some_and(|id| id.len() == 36),
        "{r}"
    );
}

/// An out-of-order sequence on the idempotent producer is a fatal error in librdkafka: the
/// producer is unusable from then on. The pipeline rebuilds it and keeps delivering.
#[test]
fn fatal_producer_is_rebuilt_and_delivery_continues() {
    let prefix = common::unique_prefix("fatal");
    let mock = common::mock(&prefix);
    let bootstrap = mock.bootstrap_servers();
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&bootstrap, &prefix, spool.path())
        .build()
        .unwrap();
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
    );
    let first = resource();
    let later: Vec<String> = (0..5).map(|_| resource()).collect();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        tracing_omninode::audit!(
            action = "document.delete",
            actor = "alice",
            resource = first.as_str(),
            outcome = "success"
        );
        let m = common::wait_for(&guard, Duration::from_secs(10), |m| m.skipped >= 1);
        assert_eq!(m.skipped, 1, "{m:?}");
        for res in &later {
            tracing_omninode::audit!(
                action = "document.delete",
                actor = "alice",
                resource = res.as_str(),
                outcome = "success"
            );
        }
    });
    // The five later events and the in-stream report of the skipped one.
    let m = common::wait_for(&guard, Duration::from_secs(15), |m| m.delivered >= 6);
    assert!(m.producer_rebuilds >= 1, "{m:?}");
    assert_eq!(m.delivered, 6, "{m:?}");
    assert_eq!((m.dead_lettered, m.spooled, m.dropped), (0, 0, 0), "{m:?}");
    let report = guard.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!((report.delivered, report.skipped), (6, 1), "{report:?}");

    let topic = format!("{prefix}{AUDIT}");
    assert_eq!(
        common::records_on(&bootstrap, &topic),
        5,
        "each later event once"
    );
    let got = common::consume(&bootstrap, &[topic], 5, Duration::from_secs(10));
    let mut resources: Vec<String> = got
        .iter()
        .map(|r| r.value["payload"]["resource"].as_str().unwrap().to_owned())
        .collect();
    resources.sort();
    let mut want = later.clone();
    want.sort();
    assert_eq!(resources, want);
}

/// An event that fails schema validation never reaches its topic: it goes to the DLQ as
/// NON_RETRYABLE_VALIDATION. Runs against the real broker.
#[test]
fn invalid_event_is_dead_lettered_as_validation_failure() {
    let bootstrap = common::broker();
    let prefix = common::unique_prefix("invalid");
    common::provision(&bootstrap, &prefix);
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&bootstrap, &prefix, spool.path())
        .build()
        .unwrap();
    let bad = resource();
    let good = resource();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing_omninode::audit!(
            action = "document.delete",
            actor = "alice",
            resource = bad.as_str(),
            outcome = "maybe"
        );
        tracing_omninode::audit!(
            action = "document.delete",
            actor = "alice",
            resource = good.as_str(),
            outcome = "failure"
        );
    });
    let report = guard.shutdown(Duration::from_secs(15)).unwrap();
    assert_eq!(
        (report.dead_lettered, report.delivered),
        (1, 1),
        "{report:?}"
    );

    let topic = format!("{prefix}{AUDIT}");
    let dlq = format!("{topic}.dlq");
    let got = common::consume(&bootstrap, &[dlq], 1, Duration::from_secs(15));
    assert_eq!(got.len(), 1, "{got:#?}");
    let v = check_dlq_record(
        &got[0],
        &prefix,
        "NON_RETRYABLE_VALIDATION",
        "SchemaValidation",
        &bad,
    );
    assert_eq!(v["original_event"]["payload"]["outcome"], "maybe");
    assert!(
        validate_envelope(&v["original_event"]).is_err(),
        "the DLQ carries the invalid envelope as it was"
    );
    let got = common::consume(&bootstrap, &[topic], 1, Duration::from_secs(15));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].value["payload"]["resource"], good.as_str());
}
