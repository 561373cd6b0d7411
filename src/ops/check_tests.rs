//! Each rule of the [`Checker`], on records built the way the pipeline builds them.

use super::*;
use crate::ops::test_support::audit_wire;

/// An audit record of instance `i-1` with `sequence`: (key, headers, value).
fn record(sequence: u64) -> (String, Vec<(String, String)>, Value) {
    let w = audit_wire("", sequence, |_| {});
    let headers = w
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (w.key, headers, serde_json::from_str(&w.value).unwrap())
}

fn check(
    c: &mut Checker,
    (key, headers, value): &(String, Vec<(String, String)>, Value),
) -> Vec<String> {
    c.check(Input {
        at: "here",
        key: Some(key),
        headers: Some(headers),
        value,
    })
    .into_iter()
    .map(|f| f.problem)
    .collect()
}

fn set(headers: &mut [(String, String)], name: &str, value: &str) {
    headers.iter_mut().find(|(k, _)| k == name).unwrap().1 = value.into();
}

#[test]
fn a_clean_stream_has_no_problem() {
    let mut c = Checker::new();
    for seq in 1..=3 {
        assert_eq!(check(&mut c, &record(seq)), Vec::<String>::new());
    }
    assert!(c.finish().is_empty());
    assert_eq!((c.checked, c.bad_records), (3, 0));
}

#[test]
fn each_record_rule_names_its_problem() {
    type Breaker = fn(&mut (String, Vec<(String, String)>, Value));
    let cases: [(&str, Breaker); 8] = [
        ("envelope payload.outcome", |r| {
            r.2["payload"]["outcome"] = "maybe".into()
        }),
        (
            "key `globex` is not the catalog partition key `acme` (payload.tenant_id)",
            |r| r.0 = "globex".into(),
        ),
        (
            "header x-tenant `globex` does not match the envelope (`acme`)",
            |r| set(&mut r.1, "x-tenant", "globex"),
        ),
        ("header x-sequence `9` does not match", |r| {
            set(&mut r.1, "x-sequence", "9")
        }),
        ("header x-event-id is missing", |r| {
            r.1.retain(|(k, _)| k != "x-event-id")
        }),
        ("header x-causation-id `", |r| {
            r.1.push(("x-causation-id".into(), uuid::Uuid::now_v7().to_string()))
        }),
        (
            "is not the hash of the shipped schemas/omninode.logging.audit.v1.json",
            |r| set(&mut r.1, "x-schema-hash", "sha256:00"),
        ),
        ("header x-traceparent `nope` is not", |r| {
            set(&mut r.1, "x-traceparent", "nope")
        }),
    ];
    for (needle, breaker) in cases {
        let mut r = record(1);
        breaker(&mut r);
        let problems = check(&mut Checker::new(), &r);
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "{needle}: {problems:?}"
        );
    }
}

#[test]
fn a_dlq_record_is_checked_through_its_original() {
    let (key, headers, value) = record(1);
    let dlq = serde_json::json!({
        "original_topic": "omninode.logging.audit.v1",
        "original_event": value,
        "original_event_truncated": false,
        "error": {"class": "NON_RETRYABLE_POLICY", "code": "X", "message": "", "retryable": false},
        "retry_count": 0,
        "first_failed_at": "2026-11-28T14:03:07.123456Z",
        "dead_lettered_at": "2026-11-28T14:03:07.123456Z",
        "producer": {"service_name": "s", "instance_id": "i"}
    });
    let mut h = headers.clone();
    h.push(("x-dlq-error-class".into(), "NON_RETRYABLE_POLICY".into()));
    assert!(check(&mut Checker::new(), &(key.clone(), h.clone(), dlq.clone())).is_empty());
    let mut bad = dlq;
    bad["original_event"]["sequence"] = 0.into();
    let problems = check(&mut Checker::new(), &(key, h, bad));
    assert!(
        problems.iter().any(|p| p.contains("envelope sequence")),
        "{problems:?}"
    );
}

#[test]
fn sequences_gaps_reported_drops_and_reuse() {
    let mut c = Checker::new();
    for seq in [1, 2, 5, 9] {
        check(&mut c, &record(seq));
    }
    // 6..8 reported dropped by the instance itself.
    let (k, h, mut drop) = record(10);
    drop["payload"] = serde_json::json!({"code": "OMNINODE_EVENTS_DROPPED",
        "context": {"first_sequence": 6, "last_sequence": 8}});
    c.check(Input {
        at: "drop",
        key: Some(&k),
        headers: Some(&h),
        value: &drop,
    });
    // 3 and 4: one skipped for an idempotency error (reported), one simply missing.
    let (k, h, mut skip) = record(12);
    skip["payload"] = serde_json::json!({"code": "OMNINODE_EVENT_SKIPPED",
        "context": {"skipped_sequence": 3}});
    c.check(Input {
        at: "skip",
        key: Some(&k),
        headers: Some(&h),
        value: &skip,
    });
    // The same event again is fine; another event with sequence 2 is not.
    let again = record(11);
    check(&mut c, &again);
    check(&mut c, &again);
    check(&mut c, &record(2));
    let found: Vec<String> = c.finish().into_iter().map(|f| f.problem).collect();
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("sequence 2 is also used by event")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.contains(": 4 of billing/i-1 missing (1 event,")),
        "{found:?}"
    );
}
