//! The consumer-side DLQ helper: a message whose handler keeps failing with a retryable
//! error is retried exactly the retry budget, then dead-lettered; a non-retryable failure
//! is dead-lettered at once; a message that recovers is not. The DLQ record is the SPEC §3
//! record (sanitized), with the consume context, under the original key and headers.

mod common;

use std::time::Duration;

use common::AUDIT;
use tracing_omninode::consumer::{Consumed, DeadLetters, HandlerError, Verdict};
use tracing_omninode::dlq::DlqRecord;
use tracing_omninode::taxonomy::Backoff;

#[test]
fn retried_exactly_the_budget_then_dead_lettered() {
    let bootstrap = common::broker();
    let prefix = common::unique_prefix("consumer");
    common::provision(&bootstrap, &prefix);
    let spool = common::spool_dir();
    let report = {
        use tracing_subscriber::prelude::*;
        let (layer, guard) = common::builder(&bootstrap, &prefix, spool.path())
            .build()
            .unwrap();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            for r in ["a", "b", "c"] {
                tracing_omninode::audit!(
                    action = "doc.read",
                    actor = "alice",
                    resource = r,
                    outcome = "success"
                );
            }
        });
        guard.shutdown(Duration::from_secs(20)).unwrap()
    };
    assert_eq!(report.delivered, 3);
    let topic = format!("{prefix}{AUDIT}");
    let got = common::consume(
        &bootstrap,
        std::slice::from_ref(&topic),
        3,
        Duration::from_secs(10),
    );
    assert_eq!(got.len(), 3);

    let builder = common::builder(&bootstrap, &prefix, spool.path()).max_retries(2u32);
    let mut dlq = DeadLetters::new(&builder, "billing-consumers")
        .unwrap()
        .backoff(Backoff {
            max_retries: 6,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(5),
        });
    let mut calls = [0u32; 3];
    let mut verdicts = Vec::new();
    for (i, rec) in got.iter().enumerate() {
        let value = rec.value.to_string();
        let key = rec.key.clone().unwrap_or_default();
        let headers: Vec<(&str, &[u8])> = rec
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect();
        let consumed = Consumed {
            topic: &topic,
            partition: 0,
            offset: i as i64,
            key: Some(key.as_bytes()),
            value: Some(value.as_bytes()),
            headers: &headers,
        };
        let verdict = dlq
            .process(&consumed, |_| {
                calls[i] += 1;
                match (i, calls[i]) {
                    (0, _) => Err(HandlerError::retryable(
                        "DatabaseBusy",
                        "db busy, password=hunter2",
                    )),
                    (1, _) => Err(HandlerError::invalid(
                        "UnknownResource",
                        "no handler for this resource",
                    )),
                    (_, 1) => Err(HandlerError::dependency("CacheDown", "cache down")),
                    _ => Ok(()),
                }
            })
            .unwrap();
        verdicts.push(verdict);
    }
    assert_eq!(calls, [3, 1, 2], "1 + 2 retries, 1, 1 + 1 retry");
    assert_eq!(
        verdicts,
        [Verdict::DeadLettered, Verdict::DeadLettered, Verdict::Done]
    );

    // outcome(), step by step, on a fresh message: Retry, Retry, then the DLQ.
    let fresh = Consumed {
        topic: &topic,
        partition: 0,
        offset: 99,
        key: None,
        value: Some(b"{}"),
        headers: &[],
    };
    let fail = || Err(HandlerError::retryable("X", "x"));
    assert!(matches!(
        dlq.outcome(&fresh, fail()).unwrap(),
        Verdict::Retry { retry: 1, .. }
    ));
    assert!(matches!(
        dlq.outcome(&fresh, fail()).unwrap(),
        Verdict::Retry { retry: 2, .. }
    ));
    assert_eq!(dlq.outcome(&fresh, fail()).unwrap(), Verdict::DeadLettered);

    let dead = common::consume(
        &bootstrap,
        &[format!("{topic}.dlq")],
        4,
        Duration::from_secs(5),
    );
    assert_eq!(dead.len(), 3, "{dead:?}");
    let first = &dead[0];
    let v = &first.value;
    DlqRecord::parse(v.to_string().as_bytes()).expect("the SPEC §3 record");
    assert_eq!(v["original_topic"], topic.as_str());
    assert_eq!(v["original_event"], got[0].value);
    assert_eq!(v["retry_count"], 2);
    assert_eq!(v["error"]["class"], "RETRYABLE_TRANSIENT");
    assert_eq!(v["error"]["code"], "DatabaseBusy");
    assert_eq!(v["error"]["retryable"], true);
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        !message.contains("hunter2") && message.contains("[REDACTED"),
        "{message}"
    );
    assert_eq!(v["error"]["context"]["stage"], "consume");
    assert_eq!(v["error"]["context"]["consumer_group"], "billing-consumers");
    assert_eq!(v["error"]["context"]["offset"], 0);
    assert_eq!(v["producer"]["service_name"], "test-svc");
    assert_eq!(first.key.as_deref(), Some("acme"));
    assert_eq!(first.headers["x-event-id"], got[0].headers["x-event-id"]);
    assert_eq!(first.headers["x-dlq-retry-count"], "2");
    assert_eq!(first.headers["x-dlq-error-class"], "RETRYABLE_TRANSIENT");
    assert_eq!(first.headers["x-dlq-stage"], "consume");
    assert_eq!(first.headers["x-dlq-consumer-group"], "billing-consumers");
    let second = &dead[1].value;
    assert_eq!(second["retry_count"], 0);
    assert_eq!(second["error"]["class"], "NON_RETRYABLE_VALIDATION");
    assert_eq!(second["original_event"], got[1].value);
    assert_eq!(dead[2].value["retry_count"], 2);
    assert_eq!(dead[2].value["error"]["context"]["offset"], 99);
}
