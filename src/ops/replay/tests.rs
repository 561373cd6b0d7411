//! The rules of [`decide`] and the commit bookkeeping of [`Progress`].

use super::progress::Progress;
use super::*;
use crate::contract::dlq::{dead_letter, Failure};
use crate::contract::dlq::{DlqRecord, OriginalEvent, REPLAY_COUNT_HEADER};
use crate::contract::envelope::Source;
use crate::contract::taxonomy::ErrorClass;
use crate::contract::timestamp::Timestamp;
use crate::kafka::consumer::Record;
use crate::ops::test_support::audit_wire;
use crate::sanitize::Sanitizer;

const TOPIC: &str = "stg.omninode.logging.audit.v1";

/// A DLQ record of a valid audit event, as the pipeline writes it, read back as a
/// [`Record`]; `edit` may change the original's value first.
fn dlq_record(max_bytes: usize, edit: impl Fn(&mut serde_json::Value)) -> Record {
    let original = audit_wire("stg.", 7, edit);
    let w = dead_letter(
        &original,
        &Failure {
            class: ErrorClass::NonRetryablePolicy,
            code: "TopicAuthorizationFailed",
            message: "denied",
            retry_count: 0,
            first_failed_at: Timestamp::now(),
        },
        &Source::default(),
        &Sanitizer::default(),
        max_bytes,
    );
    Record {
        topic: w.topic.clone(),
        partition: 0,
        offset: 5,
        timestamp_ms: None,
        key: Some(w.key.into_bytes()),
        value: Some(w.value.into_bytes()),
        headers: w
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect(),
    }
}

fn req() -> Request {
    Request::new(format!("{TOPIC}.dlq"), "stg.")
}

fn yes(_: &str) -> bool {
    true
}

#[test]
fn a_valid_record_is_resent_as_it_was_with_a_replay_count() {
    let rec = dlq_record(1_000_000, |_| {});
    let Decision::Send(out, 1) = decide(&rec, &req(), &yes) else {
        panic!("{:?}", decide(&rec, &req(), &yes))
    };
    assert_eq!(out.topic, TOPIC);
    assert_eq!(out.key, "acme");
    assert_eq!(out.header(REPLAY_COUNT_HEADER), Some("1"));
    assert!(out.headers.iter().all(|(k, _)| !k.starts_with("x-dlq-")));
    assert!(out.header("x-event-id").is_some());
    let DlqRecord { original_event, .. } = DlqRecord::parse(rec.value.as_deref().unwrap()).unwrap();
    assert_eq!(original_event, OriginalEvent::Json(out.value.clone()));

    // The second replay of the same event: the count goes on from the record's own.
    let mut again = rec.clone();
    again
        .headers
        .push((REPLAY_COUNT_HEADER.into(), b"1".to_vec()));
    let Decision::Send(out, 2) = decide(&again, &req(), &yes) else {
        panic!()
    };
    let counts: Vec<_> = out
        .headers
        .iter()
        .filter(|(k, _)| k == REPLAY_COUNT_HEADER)
        .collect();
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[0].1, "2");
}

#[test]
fn refusals_each_have_their_reason() {
    let ok = dlq_record(1_000_000, |_| {});
    let mut over = ok.clone();
    over.headers
        .push((REPLAY_COUNT_HEADER.into(), b"3".to_vec()));
    let mut foreign_req = req();
    foreign_req.dlq_topic = "stg.omninode.logging.security.v1.dlq".into();
    let mut not_dlq = ok.clone();
    not_dlq.value = Some(b"{\"hello\":1}".to_vec());
    let mut garbage = ok.clone();
    garbage.value = Some(b"\xff\x00 not json".to_vec());
    let truncated = dlq_record(20_000, |v| v["payload"]["blob"] = "x".repeat(30_000).into());
    let invalid = dlq_record(1_000_000, |v| v["payload"]["outcome"] = "maybe".into());
    let plain = req();
    let no = |_: &str| false;
    type Exists<'a> = &'a dyn Fn(&str) -> bool;
    let cases: Vec<(&Record, &Request, Exists<'_>, &str)> = vec![
        (&over, &plain, &yes, "replay limit reached"),
        (&ok, &foreign_req, &yes, "foreign original_topic"),
        (&ok, &plain, &no, "original topic missing"),
        (&not_dlq, &plain, &yes, "not a DLQ record"),
        (&garbage, &plain, &yes, "not a DLQ record"),
        (&truncated, &plain, &yes, "truncated original"),
        (&invalid, &plain, &yes, "invalid envelope"),
    ];
    for (rec, r, exists, kind) in cases {
        match decide(rec, r, exists) {
            Decision::Refuse(why) => {
                assert_eq!(why.kind(), kind, "{why}");
                assert!(!why.to_string().is_empty());
            }
            other => panic!("{kind}: {other:?}"),
        }
    }
    let mut limit = req();
    limit.max_replays = 4;
    assert!(matches!(decide(&over, &limit, &yes), Decision::Send(_, 4)));
}

#[test]
fn filters_skip_what_they_do_not_name() {
    let rec = dlq_record(1_000_000, |_| {});
    let with = |f: &dyn Fn(&mut Request)| {
        let mut r = req();
        f(&mut r);
        decide(&rec, &r, &yes)
    };
    assert_eq!(
        with(&|r| r.class = Some("NON_RETRYABLE_VALIDATION".into())),
        Decision::Skip
    );
    assert_eq!(
        with(&|r| r.code = Some("MessageSizeTooLarge".into())),
        Decision::Skip
    );
    assert!(matches!(
        with(&|r| r.class = Some("NON_RETRYABLE_POLICY".into())),
        Decision::Send(..)
    ));
    assert!(matches!(
        with(&|r| r.code = Some("TopicAuthorizationFailed".into())),
        Decision::Send(..)
    ));
    let later = Timestamp::from_micros(Timestamp::now().as_micros() + 60_000_000);
    assert_eq!(with(&|r| r.since = Some(later)), Decision::Skip);
    let earlier = Timestamp::from_micros(Timestamp::now().as_micros() - 60_000_000);
    assert!(matches!(
        with(&|r| r.since = Some(earlier)),
        Decision::Send(..)
    ));
}

#[test]
fn a_filtered_replay_has_its_own_group() {
    let plain = default_group(&req());
    let mut filtered = req();
    filtered.class = Some("NON_RETRYABLE_POLICY".into());
    assert_eq!(plain, format!("omninode-events-replay.{TOPIC}.dlq"));
    assert_ne!(default_group(&filtered), plain);
    assert!(default_group(&filtered).starts_with(&plain));
    assert_eq!(default_group(&filtered), default_group(&filtered.clone()));
}

#[test]
fn commits_stop_below_the_first_unsettled_record() {
    let mut p = Progress::default();
    for o in [10, 11, 12, 15] {
        p.read("t", 0, o);
    }
    p.read("t", 1, 3);
    assert!(p.committable().is_empty());
    p.settle("t", 0, 11);
    p.settle("t", 0, 12);
    assert!(p.committable().is_empty(), "10 is not settled yet");
    p.settle("t", 0, 10);
    assert_eq!(p.committable(), vec![("t".into(), 0, 13)]);
    assert!(p.committable().is_empty(), "nothing new");
    p.settle("t", 1, 3);
    p.settle("t", 0, 15);
    assert_eq!(
        p.committable(),
        vec![("t".into(), 0, 16), ("t".into(), 1, 4)]
    );
}
